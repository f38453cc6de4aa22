//! `contrario watch` as a line runs it: a real MQTT broker (Debian's mosquitto) on the loopback
//! address, images landing in a folder (copied, renamed into place, truncated), the broker
//! restarted mid-run, and the watcher itself stopped and started again; and the same watch
//! started from the window, its live strip, and a flagged image opened from it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use contrario::app::AppCommand;
use contrario::app::mqtt::LocalBroker;
use contrario::app::watch::WatchCommand;
use contrario::project::{Project, Split};
use egui_kittest::kittest::Queryable;

mod window;

fn demo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("projects/demo")
}

/// A subscriber with a persistent session: it gets every QoS 1 message, also those published
/// while it was reconnecting after the broker's restart.
fn subscribe(port: u16, topic: &str) -> Arc<Mutex<Vec<(String, serde_json::Value)>>> {
    let got = Arc::new(Mutex::new(Vec::new()));
    let broker = contrario::app::mqtt::Broker {
        host: "127.0.0.1".into(),
        port,
    };
    let rx = contrario::app::mqtt::subscribe(&broker, "contrario-test-subscriber", topic, true);
    let sink = got.clone();
    std::thread::spawn(move || {
        for (topic, payload, _) in rx {
            let v = serde_json::from_slice(&payload).unwrap();
            sink.lock().unwrap().push((topic, v));
        }
    });
    got
}

fn wait_for(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn file_name(v: &serde_json::Value) -> String {
    Path::new(v["file"].as_str().unwrap())
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn a_watched_folder_is_scored_published_once_across_a_broker_restart_and_resumed() {
    let tmp = tempfile::tempdir().unwrap();
    let project = tmp.path().join("project");
    contrario::project::copy_folder(&demo(), &project).unwrap();
    let line = tmp.path().join("camera");
    std::fs::create_dir_all(line.join("station2")).unwrap();
    let images = demo().join("images/leather/test");
    let hole = images.join("hole/004.png");
    let good = images.join("good/000.png");
    // Already there when the watch starts.
    std::fs::copy(&good, line.join("before.png")).unwrap();

    let port = LocalBroker::free_port().unwrap();
    let broker_dir = tmp.path().join("broker");
    std::fs::create_dir_all(&broker_dir).unwrap();
    let broker = LocalBroker::start(&broker_dir, port).unwrap();
    let got = subscribe(port, "line1/#");
    let out = tmp.path().join("verdicts.jsonl");
    let watcher = Command::new(env!("CARGO_BIN_EXE_contrario"))
        .args(["watch", "--project"])
        .arg(&project)
        .arg("--folder")
        .arg(&line)
        .args(["--model", "uflow-l2", "--category", "leather", "--out"])
        .arg(&out)
        .args([
            "--mqtt",
            &format!("mqtt://127.0.0.1:{port}"),
            "--topic",
            "line1",
        ])
        // The cache keeps the maps of the latest two images with no finding only.
        .args(["--stop-after", "5", "--keep-unflagged", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Renamed into place in a sub-folder, and a truncated file.
    std::fs::copy(&hole, line.join("station2/hole.png.part")).unwrap();
    std::fs::rename(
        line.join("station2/hole.png.part"),
        line.join("station2/hole.png"),
    )
    .unwrap();
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(line.join("bad.png"), &bytes[..bytes.len() / 3]).unwrap();
    wait_for("three records", 180, || lines(&out).len() >= 3);
    wait_for("three messages", 30, || got.lock().unwrap().len() >= 3);

    // The broker goes away; the line does not stop.
    broker.stop();
    std::fs::copy(&good, line.join("during.png")).unwrap();
    wait_for("the record made while the broker was down", 60, || {
        lines(&out).len() >= 4
    });
    let broker = LocalBroker::start(&broker_dir, port).unwrap();
    std::fs::copy(&hole, line.join("after.png")).unwrap();
    let done = watcher.wait_with_output().unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert!(stderr.contains("5 seen"), "{stderr}");
    assert!(!stderr.contains("never acknowledged"), "{stderr}");

    // Every image's message arrived, once, on its category's topic, in the order scored.
    wait_for("five messages", 30, || got.lock().unwrap().len() >= 5);
    std::thread::sleep(Duration::from_millis(500));
    let msgs = got.lock().unwrap().clone();
    let mut per_file: BTreeMap<String, usize> = BTreeMap::new();
    for (topic, v) in &msgs {
        assert_eq!(topic, "line1/leather");
        *per_file.entry(file_name(v)).or_default() += 1;
    }
    assert_eq!(
        per_file,
        BTreeMap::from(
            [
                "after.png",
                "bad.png",
                "before.png",
                "during.png",
                "hole.png"
            ]
            .map(|f| (f.into(), 1))
        ),
        "{msgs:?}"
    );
    let order: Vec<String> = msgs.iter().map(|(_, v)| file_name(v)).collect();
    let scored: Vec<String> = lines(&out).iter().map(file_name).collect();
    assert_eq!(order, scored);

    // The records: the planted hole flagged with its region, the truncated file an error.
    let recs: BTreeMap<String, serde_json::Value> = lines(&out)
        .into_iter()
        .map(|v| (file_name(&v), v))
        .collect();
    let h = &recs["hole.png"];
    assert_eq!(h["flagged"], true, "{h}");
    assert_eq!(h["image"], "live/station2/hole");
    let region = &h["regions"][0];
    assert!(region["log10_nfa"].as_f64().unwrap() < 0.0);
    let b = region["box"].as_array().unwrap();
    assert!(b[2].as_u64() > b[0].as_u64() && b[3].as_u64() > b[1].as_u64());
    assert!(
        recs["bad.png"]["error"]
            .as_str()
            .unwrap()
            .contains("bad.png")
    );
    assert!(recs["during.png"]["error"].is_null());
    assert!(h["latency_ms"].as_f64().unwrap() > 0.0);
    drop(broker);

    // Stopped, images land, one taken under dimmer light; started again, only the new and the
    // rewritten ones are scored, and the drift check says the dim one is unlike training.
    let mut dim = image::open(&good).unwrap().to_rgb8();
    for p in dim.pixels_mut() {
        p.0 = p.0.map(|v| (f32::from(v) * 0.85) as u8);
    }
    dim.save(line.join("while_stopped.png")).unwrap();
    // And "during" is rewritten with a defect: scored again, its older verdict with no finding
    // leaves the bound's count, so when "later" (no finding) takes the one place kept, the
    // bound does not remove the newer, flagged result.
    std::fs::copy(&hole, line.join("during.png")).unwrap();
    std::fs::copy(&good, line.join("later.png")).unwrap();
    let again = Command::new(env!("CARGO_BIN_EXE_contrario"))
        .args(["watch", "--project"])
        .arg(&project)
        .arg("--folder")
        .arg(&line)
        .args([
            "--model",
            "uflow-l2",
            "--category",
            "leather",
            "--stop-after",
            "3",
            // The bound counts the earlier watch's images first: "before" loses its maps now.
            "--keep-unflagged",
            "1",
        ])
        .output()
        .unwrap();
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let resumed: BTreeMap<String, serde_json::Value> = String::from_utf8_lossy(&again.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .map(|v: serde_json::Value| (file_name(&v), v))
        .collect();
    assert_eq!(
        resumed.keys().collect::<Vec<_>>(),
        ["during.png", "later.png", "while_stopped.png"]
    );
    assert_eq!(resumed["during.png"]["flagged"], true);
    assert_eq!(resumed["later.png"]["flagged"], false);
    let dimmed = &resumed["while_stopped.png"];
    assert_eq!(dimmed["unlike_training"], true, "{dimmed}");
    let words = dimmed["drift"]["words"].as_str().unwrap();
    assert!(
        words.starts_with("darker than every training image"),
        "{words}"
    );
    assert_eq!(recs["during.png"]["unlike_training"], false);
    assert_eq!(recs["hole.png"]["unlike_training"], false);

    // The scored images are the project's live split, with results the window reads from the
    // cache (the truncated one is not an image of the project), but for the images with no
    // finding: "before" gave its place when the second watch counted the first's, and
    // "during", flagged now, keeps its new result beside "later", the one kept with no finding.
    let p = Project::open(&project).unwrap();
    let live: Vec<_> = p
        .file
        .images
        .iter()
        .filter(|e| e.split == Split::Live)
        .collect();
    assert_eq!(live.len(), 6, "{live:?}");
    for e in &live {
        assert_eq!(
            p.cached_result("uflow-l2", e).is_some(),
            e.id != "live/before",
            "{}: cached result",
            e.id
        );
    }
    let cache = project.join("cache/uflow-l2/leather");
    assert!(!cache.join("live__before.json").exists());
    assert!(!cache.join("live__before.nfa.npy").exists());
    assert!(cache.join("live__station2__hole.json").exists());
    // And project.ron does not carry them: they stay the watcher's.
    let ron = std::fs::read_to_string(project.join("project.ron")).unwrap();
    assert!(!ron.contains("live/"));
}

#[test]
fn watch_refuses_what_it_cannot_do_with_a_message() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_contrario"))
            .arg("watch")
            .args(args)
            .output()
            .unwrap()
    };
    let demo = demo();
    let demo = demo.to_str().unwrap();
    let folder = tmp.path().to_str().unwrap();
    for (args, says) in [
        (
            vec!["--project", demo, "--folder", "/no/such/folder"],
            "is not a folder",
        ),
        (
            vec!["--project", demo, "--folder", folder, "--category", "glass"],
            "not in the project",
        ),
        (
            vec![
                "--project",
                demo,
                "--folder",
                folder,
                "--model",
                "nope",
                "--category",
                "wood",
            ],
            "no model",
        ),
        (
            vec![
                "--project",
                demo,
                "--folder",
                folder,
                "--mqtt",
                "tcp://x:1",
                "--topic",
                "t",
            ],
            "mqtt://",
        ),
        (
            vec!["--project", demo, "--folder", folder, "--level", "0"],
            "above 0",
        ),
    ] {
        let out = run(&args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

/// A notice of the window says `text`.
fn assert_notice(h: &window::H, text: &str) {
    let notices = &h.state().state.notices;
    assert!(
        notices.iter().any(|n| n.text.contains(text)),
        "no notice says {text:?}: {notices:?}"
    );
}

#[test]
fn the_window_watches_a_folder_shows_the_live_strip_and_opens_a_flagged_image_for_review() {
    let (dir, root) = window::demo_copy();
    let line = dir.path().join("camera");
    std::fs::create_dir_all(line.join("leather")).unwrap();
    let mut h = window::harness(root.clone(), None, (1200.0, 760.0));
    h.state_mut()
        .apply(AppCommand::Watch(WatchCommand::Start(line.clone())));
    h.run_steps(2);
    assert!(
        h.state().state.live.is_some(),
        "{:?}",
        h.state().state.notices
    );
    h.get_by_label_contains("Waiting for images");
    // The demo has three categories: a sub-folder names the images' one. One image lands at a
    // time, each scored before the next (the strip and the list in a known order).
    let images = demo().join("images/leather/test");
    let mut dim = image::open(images.join("good/002.png")).unwrap().to_rgb8();
    // Taken under dimmer light.
    for p in dim.pixels_mut() {
        p.0 = p.0.map(|v| (f32::from(v) * 0.85) as u8);
    }
    let land: [&dyn Fn(&Path); 4] = [
        &|to| {
            std::fs::copy(images.join("good/001.png"), to).unwrap();
        },
        &|to| {
            std::fs::copy(images.join("hole/004.png"), to).unwrap();
        },
        &|to| std::fs::write(to, b"not a png").unwrap(),
        &|to| dim.save(to).unwrap(),
    ];
    for (k, write) in land.iter().enumerate() {
        write(&line.join(format!("leather/part-{:04}.png", k + 1)));
        let end = Instant::now() + Duration::from_secs(180);
        while h
            .state()
            .state
            .live
            .as_ref()
            .is_none_or(|s| s.recent.len() < k + 1)
        {
            assert!(
                Instant::now() < end,
                "the window's watch did not score image {}",
                k + 1
            );
            h.step();
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    window::settle(&mut h);
    let flagged = h.state().state.live.as_ref().unwrap().counts.flagged;
    assert!(flagged >= 1);
    h.get_by_label_contains(&format!("4 seen · {flagged} flagged · 1 error(s)"));
    // The dim one is unlike every training image: a badge, and the list's filter finds it.
    let dim = window::index_of(&h, "live/leather/part-0004");
    let words = h.state().state.review.facts[dim].unlike_training.clone();
    assert!(
        words.as_deref().is_some_and(|w| w.starts_with("darker")),
        "{words:?}"
    );
    let only = contrario::app::review::ListFilter {
        only_unlike_training: true,
        ..Default::default()
    };
    h.state_mut().apply(AppCommand::Review(
        contrario::app::review::ReviewCommand::Filter(only),
    ));
    h.run_steps(2);
    assert_eq!(h.state().state.review.rows, vec![dim]);
    h.state_mut().apply(AppCommand::Review(
        contrario::app::review::ReviewCommand::Filter(Default::default()),
    ));
    h.run_steps(2);
    // The truncated file says so in a notice; the scored ones are the project's live split.
    assert_notice(&h, "part-0003.png");
    let hole = window::index_of(&h, "live/leather/part-0002");
    let p = h.state().state.project.as_ref().unwrap();
    assert_eq!(p.file.images[hole].split, Split::Live);
    // Flagged, it is in the review queue.
    assert!(h.state().state.review.queue.contains(&hole));
    // A click on its thumbnail opens it, with its result from the cache.
    h.get_by_label("part-0002.png").click();
    window::settle(&mut h);
    assert_eq!(h.state().state.selected, Some(hole));
    assert_eq!(h.state().result_drawn(), Some(hole));
    let ids: Vec<u64> = h.state().state.notices.iter().map(|n| n.id).collect();
    for id in ids {
        h.state_mut().apply(AppCommand::DismissNotice(id));
    }
    window::settle(&mut h);
    h.snapshot("live_strip");
    h.state_mut().apply(AppCommand::Watch(WatchCommand::Stop));
    window::settle(&mut h);
    let end = Instant::now() + Duration::from_secs(30);
    while h.state().state.live.is_some() {
        assert!(Instant::now() < end, "the watch did not stop");
        h.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_notice(&h, "Watch stopped: 4 seen");
}

#[test]
fn messages_the_broker_never_acknowledged_are_kept_and_sent_by_the_next_watch() {
    let tmp = tempfile::tempdir().unwrap();
    let project = tmp.path().join("project");
    contrario::project::copy_folder(&demo(), &project).unwrap();
    let line = tmp.path().join("camera");
    std::fs::create_dir_all(&line).unwrap();
    let good = demo().join("images/leather/test/good/000.png");
    let port = LocalBroker::free_port().unwrap();
    let broker_dir = tmp.path().join("broker");
    let broker = LocalBroker::start(&broker_dir, port).unwrap();
    let got = subscribe(port, "line2/#");
    std::thread::sleep(Duration::from_millis(300));
    let watch = |stop_after: &str| {
        Command::new(env!("CARGO_BIN_EXE_contrario"))
            .args(["watch", "--project"])
            .arg(&project)
            .arg("--folder")
            .arg(&line)
            .args(["--model", "uflow-l2", "--category", "leather"])
            .args([
                "--mqtt",
                &format!("mqtt://127.0.0.1:{port}"),
                "--topic",
                "line2",
            ])
            .args(["--stop-after", stop_after])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    // The broker is away for the whole of a watch: its message is kept when it stops.
    broker.stop();
    let first = watch("1");
    std::fs::copy(&good, line.join("first.png")).unwrap();
    let out = first.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("1 message(s) the broker never acknowledged"),
        "{err}"
    );
    assert!(project.join("live/mqtt-unsent.jsonl").exists());
    // Back, the next watch sends it first, then its own.
    let broker = LocalBroker::start(&broker_dir, port).unwrap();
    let second = watch("1");
    std::thread::sleep(Duration::from_millis(500));
    std::fs::copy(&good, line.join("second.png")).unwrap();
    let out = second.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("an earlier watch could not deliver"), "{err}");
    wait_for("both messages", 30, || got.lock().unwrap().len() >= 2);
    std::thread::sleep(Duration::from_millis(300));
    let names: Vec<String> = got
        .lock()
        .unwrap()
        .iter()
        .map(|(_, v)| file_name(v))
        .collect();
    assert_eq!(names, ["first.png", "second.png"]);
    assert!(!project.join("live/mqtt-unsent.jsonl").exists());
    drop(broker);
}
