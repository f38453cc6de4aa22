//! The worker thread: the one place that owns libtorch state (models, VarStores, tensors are not
//! Sync). The GUI and the CLI send it [`Command`]s and drain [`Message`]s; a libtorch error or
//! panic becomes a [`Message::Error`], never a crash of the app.

use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;

use crate::backbone;
use crate::runtime::{self, TorchInfo};

#[derive(Debug)]
pub enum Command {
    /// Report the libtorch version and the compute device.
    Probe,
    /// Locate and load the built-in backbone weights, reporting how many tensors they hold.
    CheckBackbone,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Torch(TorchInfo),
    BackboneReady { path: PathBuf, tensors: usize },
    Error { context: String, message: String },
}

/// Wakes the receiver (the GUI's `request_repaint`) after each message.
pub type Notify = Box<dyn Fn() + Send>;

pub struct Worker {
    tx: Option<Sender<Command>>,
    rx: Receiver<Message>,
    handle: Option<JoinHandle<()>>,
}

impl Worker {
    pub fn spawn(notify: Notify) -> Self {
        let (tx, cmd_rx) = mpsc::channel::<Command>();
        let (msg_tx, rx) = mpsc::channel::<Message>();
        let handle = std::thread::Builder::new()
            .name("contrario-worker".into())
            .spawn(move || {
                for cmd in cmd_rx {
                    let msg = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&cmd)))
                        .unwrap_or_else(|panic| Message::Error {
                            context: format!("{cmd:?}"),
                            message: panic_text(&panic),
                        });
                    if msg_tx.send(msg).is_err() {
                        break;
                    }
                    notify();
                }
            })
            .expect("spawning the worker thread");
        Self {
            tx: Some(tx),
            rx,
            handle: Some(handle),
        }
    }

    pub fn send(&self, cmd: Command) {
        if let Some(tx) = &self.tx {
            // A closed channel means the worker is gone; the caller sees no reply, not a panic.
            let _ = tx.send(cmd);
        }
    }

    /// Next pending message, if any (never blocks).
    pub fn try_recv(&self) -> Option<Message> {
        self.rx.try_recv().ok()
    }

    /// Block until the next message (CLI use).
    pub fn recv(&self) -> Option<Message> {
        self.rx.recv().ok()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn run(cmd: &Command) -> Message {
    match cmd {
        Command::Probe => Message::Torch(runtime::probe()),
        Command::CheckBackbone => {
            let result = backbone::builtin_weights_path()
                .and_then(|path| backbone::load_state_dict(&path).map(|t| (path, t.len())));
            match result {
                Ok((path, tensors)) => Message::BackboneReady { path, tensors },
                Err(e) => Message::Error {
                    context: "built-in backbone".into(),
                    message: e.to_string(),
                },
            }
        }
    }
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown error in libtorch".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_answers_probe_and_backbone_check() {
        let w = Worker::spawn(Box::new(|| {}));
        w.send(Command::Probe);
        w.send(Command::CheckBackbone);
        match w.recv().unwrap() {
            Message::Torch(info) => assert!(info.libtorch_version.starts_with("2.13")),
            m => panic!("unexpected {m:?}"),
        }
        match w.recv().unwrap() {
            Message::BackboneReady { tensors, .. } => {
                assert_eq!(tensors, backbone::EFFNET_LITE0_TENSORS)
            }
            m => panic!("unexpected {m:?}"),
        }
    }
}
