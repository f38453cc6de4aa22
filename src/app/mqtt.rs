//! Verdicts to a plant's MQTT broker (QoS 1, through rumqttc). Publishing never blocks the
//! watcher: messages wait in a bounded queue, in order, while the broker is down or slow; the
//! connection is retried with back-off, and what the client had in flight when the connection
//! dropped is sent again once it is back (rumqttc keeps it).

use std::collections::VecDeque;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rumqttc::{Client, Event, MqttOptions, Outgoing, Packet, QoS};

/// Messages kept while the broker is away; past it the oldest are dropped (and counted).
pub const QUEUE_LIMIT: usize = 10_000;

/// Where to publish: `mqtt://HOST[:PORT]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broker {
    pub host: String,
    pub port: u16,
}

impl std::str::FromStr for Broker {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let rest = s.strip_prefix("mqtt://").ok_or_else(|| {
            format!("{s:?}: a broker is written mqtt://HOST:PORT (TLS is not supported yet)")
        })?;
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>()
                    .map_err(|_| format!("{s:?}: the port {p:?} is not a number"))?,
            ),
            None => (rest, 1883),
        };
        if host.is_empty() {
            return Err(format!("{s:?}: no host"));
        }
        Ok(Broker {
            host: host.trim_start_matches('[').trim_end_matches(']').into(),
            port,
        })
    }
}

/// What the publisher has done, for the status line and the end of a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MqttStatus {
    pub connected: bool,
    /// Handed to the client and not yet acknowledged by the broker, plus those waiting.
    pub pending: usize,
    /// Acknowledged by the broker (PUBACK).
    pub acknowledged: u64,
    /// Dropped because the queue was full (the broker away too long).
    pub dropped: u64,
    pub last_error: Option<String>,
}

/// A topic and its payload.
pub type Message = (String, Vec<u8>);

/// Messages published and not acknowledged yet, oldest first: a QoS 1 broker acknowledges in
/// the order it received them (MQTT 3.1.1, 4.6), so each PUBACK is the oldest one's.
type Unacked = Arc<Mutex<VecDeque<Message>>>;

pub struct Publisher {
    tx: Option<Sender<Message>>,
    status: Arc<Mutex<MqttStatus>>,
    unacked: Unacked,
    client: Client,
    threads: Vec<JoinHandle<()>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Publisher {
    pub fn start(broker: &Broker, client_id: &str) -> Self {
        let mut opts = MqttOptions::new(client_id, broker.host.clone(), broker.port);
        opts.set_keep_alive(Duration::from_secs(10));
        let (client, mut connection) = Client::new(opts, 64);
        let status = Arc::new(Mutex::new(MqttStatus::default()));
        let unacked: Unacked = Arc::default();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (tx, rx) = mpsc::channel::<Message>();

        // The connection: driven here, reconnected with back-off after each failure.
        let st = status.clone();
        let un = unacked.clone();
        let halt = stop.clone();
        let net = std::thread::Builder::new()
            .name("contrario-mqtt-net".into())
            .spawn(move || {
                let mut backoff = Duration::from_millis(100);
                while !halt.load(std::sync::atomic::Ordering::Relaxed) {
                    match connection.recv_timeout(Duration::from_millis(200)) {
                        Err(rumqttc::RecvTimeoutError::Timeout) => continue,
                        Err(rumqttc::RecvTimeoutError::Disconnected) => break,
                        Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                            backoff = Duration::from_millis(100);
                            let mut s = st.lock().unwrap();
                            s.connected = true;
                            s.last_error = None;
                        }
                        Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => {
                            let mut u = un.lock().unwrap();
                            u.pop_front();
                            let mut s = st.lock().unwrap();
                            s.acknowledged += 1;
                            s.pending = u.len();
                        }
                        Ok(Ok(Event::Outgoing(Outgoing::Disconnect))) => break,
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => {
                            {
                                let mut s = st.lock().unwrap();
                                s.connected = false;
                                s.last_error = Some(e.to_string());
                            }
                            std::thread::sleep(backoff);
                            backoff = (backoff * 2).min(Duration::from_secs(5));
                        }
                    }
                }
            })
            .expect("spawn the MQTT connection thread");

        // The queue: order kept, bounded, fed to the client as fast as it takes them.
        let st = status.clone();
        let un = unacked.clone();
        let c = client.clone();
        let halt = stop.clone();
        let feed = std::thread::Builder::new()
            .name("contrario-mqtt-queue".into())
            .spawn(move || feed_loop(rx, c, st, un, halt))
            .expect("spawn the MQTT queue thread");
        Publisher {
            tx: Some(tx),
            status,
            unacked,
            client,
            threads: vec![net, feed],
            stop,
        }
    }

    /// Queue one message (QoS 1, not retained).
    pub fn publish(&self, topic: String, payload: Vec<u8>) {
        if let Some(tx) = &self.tx {
            let mut u = self.unacked.lock().unwrap();
            u.push_back((topic.clone(), payload.clone()));
            self.status.lock().unwrap().pending = u.len();
            let _ = tx.send((topic, payload));
        }
    }

    pub fn status(&self) -> MqttStatus {
        self.status.lock().unwrap().clone()
    }

    /// Wait until the broker has acknowledged everything queued, up to `timeout`; then close.
    /// Returns the messages still unacknowledged, oldest first (none when all arrived).
    pub fn finish(mut self, timeout: Duration) -> Vec<Message> {
        self.tx = None;
        let end = Instant::now() + timeout;
        while self.status().pending > 0 && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.client.try_disconnect();
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        self.unacked.lock().unwrap().drain(..).collect()
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.tx = None;
    }
}

fn feed_loop(
    rx: Receiver<Message>,
    client: Client,
    status: Arc<Mutex<MqttStatus>>,
    unacked: Unacked,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    let mut queue: VecDeque<Message> = VecDeque::new();
    let mut open = true;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) && (open || !queue.is_empty()) {
        // Take what arrived; wait a little only when there is nothing to hand over.
        let wait = if queue.is_empty() {
            Duration::from_millis(100)
        } else {
            Duration::from_millis(0)
        };
        match rx.recv_timeout(wait) {
            Ok(m) => queue.push_back(m),
            Err(RecvTimeoutError::Disconnected) => open = false,
            Err(RecvTimeoutError::Timeout) => {}
        }
        while let Ok(m) = rx.try_recv() {
            queue.push_back(m);
        }
        while queue.len() > QUEUE_LIMIT {
            // The oldest not handed to the client: in the unacknowledged list, after those that
            // were.
            let mut u = unacked.lock().unwrap();
            let at = u.len().saturating_sub(queue.len());
            u.remove(at);
            queue.pop_front();
            let mut s = status.lock().unwrap();
            s.dropped += 1;
            s.pending = u.len();
        }
        while let Some((topic, payload)) = queue.front() {
            match client.try_publish(topic.clone(), QoS::AtLeastOnce, false, payload.clone()) {
                Ok(()) => {
                    queue.pop_front();
                }
                // The client's own buffer is full (the broker is away): keep ours, in order.
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(20));
                    break;
                }
            }
        }
    }
}

/// Messages of `topic` (wildcards allowed) as they arrive, with the moment each did: for the
/// benchmark and the tests. With `persistent`, the session (and what the broker queued for it
/// while it was away) survives reconnections and the broker's restart.
pub fn subscribe(
    broker: &Broker,
    client_id: &str,
    topic: &str,
    persistent: bool,
) -> Receiver<(String, Vec<u8>, Instant)> {
    let mut opts = MqttOptions::new(client_id, broker.host.clone(), broker.port);
    opts.set_clean_session(!persistent);
    opts.set_keep_alive(Duration::from_secs(5));
    let (client, mut connection) = Client::new(opts, 16);
    let _ = client.subscribe(topic, QoS::AtLeastOnce);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _client = client;
        for ev in connection.iter() {
            match ev {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if tx
                        .send((p.topic.clone(), p.payload.to_vec(), Instant::now()))
                        .is_err()
                    {
                        break;
                    }
                }
                Ok(_) => {}
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    });
    rx
}

/// A mosquitto broker on the loopback address, for the tests, the benchmark and offline demos:
/// started from Debian's package, its sessions kept in `dir` across a restart, stopped with
/// SIGTERM (as a service manager does) or when dropped.
pub struct LocalBroker {
    child: std::process::Child,
    pub port: u16,
}

impl LocalBroker {
    pub fn start(dir: &std::path::Path, port: u16) -> anyhow::Result<LocalBroker> {
        let exe = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .ok_or_else(|| {
                anyhow::anyhow!("mosquitto is not installed (make setup installs Debian's)")
            })?;
        // Started as root, mosquitto would become user `mosquitto` and could not write its
        // sessions into `dir`: it stays whoever starts it.
        let me = std::process::Command::new("id").arg("-un").output()?;
        let me = String::from_utf8_lossy(&me.stdout).trim().to_string();
        std::fs::create_dir_all(dir)?;
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\nuser {me}\n",
                dir.display()
            ),
        )?;
        let child = std::process::Command::new(exe)
            .arg("-c")
            .arg(&conf)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let mut b = LocalBroker { child, port };
        let end = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > end || b.child.try_wait()?.is_some() {
                anyhow::bail!("mosquitto did not start on port {port}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(b)
    }

    /// A port nobody listens on now.
    pub fn free_port() -> std::io::Result<u16> {
        Ok(std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port())
    }

    pub fn broker(&self) -> Broker {
        Broker {
            host: "127.0.0.1".into(),
            port: self.port,
        }
    }

    /// SIGTERM: mosquitto writes its sessions and exits.
    pub fn stop(mut self) {
        let _ = std::process::Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for LocalBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_addresses_are_read_or_refused_with_a_reason() {
        let b: Broker = "mqtt://plant.local:1884".parse().unwrap();
        assert_eq!((b.host.as_str(), b.port), ("plant.local", 1884));
        let b: Broker = "mqtt://10.0.0.5".parse().unwrap();
        assert_eq!(b.port, 1883);
        assert!(
            "tcp://x:1"
                .parse::<Broker>()
                .unwrap_err()
                .contains("mqtt://")
        );
        assert!(
            "mqtt://x:port"
                .parse::<Broker>()
                .unwrap_err()
                .contains("port")
        );
    }
}
