//! `contrario bench watch`: images written into a watched folder at a steady rate (each renamed
//! into place, as a camera's software does), the latency from a file being complete to its JSON
//! record and to its MQTT message (a local mosquitto, or --mqtt), median and p95; then higher
//! rates until one is not held, to find the highest steady rate on this machine.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::app::mqtt::{self, Broker, LocalBroker};
use crate::app::watch::{Watch, WatchConfig, WatchEvent};
use crate::stats::timing::median_p95_max;

fn summary(v: &[f64]) -> serde_json::Value {
    let (median, p95, max) = median_p95_max(v);
    serde_json::json!({"median": median, "p95": p95, "max": max, "n": v.len()})
}

/// The demo's leather test images at `size` px, encoded once (the camera's files).
fn camera_images(size: u32) -> anyhow::Result<Vec<Vec<u8>>> {
    let dir = crate::app::demo_project_dir().join("images/leather/test");
    let mut out = Vec::new();
    for kind in ["good", "hole", "scratch", "stain"] {
        for e in std::fs::read_dir(dir.join(kind))? {
            let img = image::open(e?.path())?.to_rgb8();
            let img =
                image::imageops::resize(&img, size, size, image::imageops::FilterType::Triangle);
            let mut bytes = Vec::new();
            img.write_to(
                &mut std::io::Cursor::new(&mut bytes),
                image::ImageFormat::Png,
            )?;
            out.push(bytes);
        }
    }
    anyhow::ensure!(!out.is_empty(), "no demo images in {}", dir.display());
    Ok(out)
}

struct Step {
    json_ms: Vec<f64>,
    mqtt_ms: Vec<f64>,
    held: bool,
    scored: usize,
}

/// Write `count` images at `rate` per second, wait for their records and messages.
fn step(
    watch: &Watch,
    messages: Option<&std::sync::mpsc::Receiver<(String, Vec<u8>, Instant)>>,
    folder: &Path,
    images: &[Vec<u8>],
    rate: f64,
    count: usize,
    tag: &str,
) -> anyhow::Result<Step> {
    let folder = folder.to_path_buf();
    let images = images.to_vec();
    let tag = tag.to_string();
    let writer = std::thread::spawn(move || -> std::io::Result<HashMap<String, Instant>> {
        let start = Instant::now();
        let mut complete = HashMap::new();
        for i in 0..count {
            let due = start + Duration::from_secs_f64(i as f64 / rate);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let name = format!("{tag}-{i:04}.png");
            let tmp = folder.join(format!(".{name}.part"));
            std::fs::write(&tmp, &images[i % images.len()])?;
            std::fs::rename(&tmp, folder.join(&name))?;
            complete.insert(name, Instant::now());
        }
        Ok(complete)
    });
    let mut scored: HashMap<String, Instant> = HashMap::new();
    let mut heard: HashMap<String, Instant> = HashMap::new();
    let end = Instant::now() + Duration::from_secs_f64(count as f64 / rate + 60.0);
    let name_of = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    while (scored.len() < count || messages.is_some_and(|_| heard.len() < count))
        && Instant::now() < end
    {
        if let Some(WatchEvent::Record(r)) = watch.recv_timeout(Duration::from_millis(2)) {
            scored.insert(name_of(&r.file), Instant::now());
        }
        if let Some(rx) = messages {
            while let Ok((_, payload, at)) = rx.try_recv() {
                if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&payload)
                    && let Some(f) = v["file"].as_str()
                {
                    heard.insert(name_of(Path::new(f)), at);
                }
            }
        }
    }
    let complete = writer
        .join()
        .map_err(|_| anyhow::anyhow!("the writer panicked"))??;
    let since = |m: &HashMap<String, Instant>, name: &str| {
        Some(
            m.get(name)?
                .saturating_duration_since(complete[name])
                .as_secs_f64()
                * 1e3,
        )
    };
    let mut names: Vec<&String> = complete.keys().collect();
    names.sort();
    let json_ms: Vec<f64> = names.iter().filter_map(|n| since(&scored, n)).collect();
    let mqtt_ms: Vec<f64> = names.iter().filter_map(|n| since(&heard, n)).collect();
    // Held: everything scored, and the latency does not climb over the run (a backlog growing
    // means the rate is above what the machine sustains).
    let third = (json_ms.len() / 3).max(1);
    let median = |v: &[f64]| median_p95_max(v).0;
    let first = median(&json_ms[..third.min(json_ms.len())]);
    let last = median(&json_ms[json_ms.len().saturating_sub(third)..]);
    let held = json_ms.len() == count && last <= 2.0 * first + 50.0;
    Ok(Step {
        scored: json_ms.len(),
        json_ms,
        mqtt_ms,
        held,
    })
}

pub fn watch(
    rate: f64,
    count: usize,
    size: u32,
    broker: Option<Broker>,
) -> anyhow::Result<serde_json::Value> {
    anyhow::ensure!(
        rate > 0.0 && count > 0,
        "--rate and --images must be positive"
    );
    let scratch =
        std::env::temp_dir().join(format!("contrario-bench-watch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let result = run(&scratch, rate, count, size, broker);
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

fn run(
    scratch: &Path,
    rate: f64,
    count: usize,
    size: u32,
    broker: Option<Broker>,
) -> anyhow::Result<serde_json::Value> {
    let project = scratch.join("project");
    crate::project::copy_folder(&crate::app::demo_project_dir(), &project)
        .context("copy the demo project")?;
    let folder = scratch.join("camera");
    std::fs::create_dir_all(&folder)?;
    let images = camera_images(size)?;
    // A broker of our own unless one is named; without mosquitto, JSON latency only.
    let mut local = None;
    let (broker, broker_note) = match broker {
        Some(b) => (Some(b), "given".to_string()),
        None => match LocalBroker::free_port()
            .map_err(anyhow::Error::from)
            .and_then(|port| LocalBroker::start(&scratch.join("broker"), port))
        {
            Ok(b) => {
                let broker = b.broker();
                local = Some(b);
                (
                    Some(broker),
                    "mosquitto on the loopback address".to_string(),
                )
            }
            Err(e) => (None, format!("not measured: {e}")),
        },
    };
    let messages = broker
        .as_ref()
        .map(|b| mqtt::subscribe(b, "contrario-bench-subscriber", "bench/#", false));
    let watch = Watch::start(
        WatchConfig {
            project: project.clone(),
            folder: folder.clone(),
            model: Some("uflow-l2".into()),
            category: Some("leather".into()),
            level: None,
            out: Some(scratch.join("verdicts.jsonl")),
            mqtt: broker.clone().map(|b| (b, "bench".to_string())),
            stop_after: None,
            keep_unflagged: crate::app::watch::KEEP_UNFLAGGED,
        },
        Box::new(|| {}),
    )?;
    // The model's first load and a warm-up image are not part of the measure.
    let warm = step(
        &watch,
        messages.as_ref(),
        &folder,
        &images,
        1.0,
        2,
        "warmup",
    )?;
    anyhow::ensure!(warm.scored == 2, "the watch scored no image");
    let main = step(
        &watch,
        messages.as_ref(),
        &folder,
        &images,
        rate,
        count,
        "steady",
    )?;
    // Scoring alone: one image at a time, nothing queued.
    let alone = step(
        &watch,
        messages.as_ref(),
        &folder,
        &images,
        2.0,
        10,
        "alone",
    )?;
    let mut rates = Vec::new();
    let mut highest = main.held.then_some(rate);
    let mut r = rate;
    for _ in 0..6 {
        r *= 1.5;
        let s = step(
            &watch,
            messages.as_ref(),
            &folder,
            &images,
            r,
            30,
            &format!("r{r:.1}"),
        )?;
        rates.push(serde_json::json!({"rate": r, "held": s.held, "json_ms": summary(&s.json_ms)}));
        if !s.held {
            break;
        }
        highest = Some(r);
    }
    watch.stop();
    drop(watch);
    drop(local);
    let scoring = median_p95_max(&alone.json_ms).0;
    Ok(serde_json::json!({
        "image_px": size,
        "rate_per_s": rate,
        "images": count,
        "broker": broker_note,
        "latency_ms": {
            "to_json_record": summary(&main.json_ms),
            "to_mqtt_message": summary(&main.mqtt_ms),
        },
        "held": main.held,
        "scoring_alone_ms": summary(&alone.json_ms),
        "higher_rates": rates,
        "highest_rate_held_per_s": highest,
        "bound": format!(
            "scoring one image (decode, backbone, flow, a contrario test) takes {scoring:.0} ms \
             alone on this machine: the watch cannot hold much more than {:.1} images per second",
            1e3 / scoring
        ),
        "threads": rayon::current_num_threads(),
        "command": format!("contrario bench watch --rate {rate} --images {count} --size {size}"),
    }))
}
