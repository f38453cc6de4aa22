//! Models in the window, driven as a user would on a copy of the demo project (which ships a
//! trained U-Flow, `uflow-l2`, the default settings' model): training from the panel with its live
//! curve, the model run over the
//! whole project into the cache, the evaluation panel against `contrario eval --json`, a click
//! on the mIoU curve setting the NFA level, and demo mode.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use contrario::app::AppCommand;
use contrario::app::detection::TrainingJob;
use contrario::project::training::{Family, TrainingSettings, best_epoch};
use egui::{Event, Modifiers, PointerButton};
use egui_kittest::SnapshotOptions;
use egui_kittest::kittest::Queryable;

mod window;
use window::{H, demo_copy, key, settle};

fn harness(project: PathBuf, prefs: &Path) -> H {
    window::harness(project, Some(prefs), (1280.0, 860.0))
}

/// Select the first image of `category`.
fn select_category(h: &mut H, category: &str) -> usize {
    let p = h.state().state.project.as_ref().unwrap();
    let i = p
        .file
        .images
        .iter()
        .position(|e| e.category == category)
        .unwrap();
    h.state_mut().apply(AppCommand::Select(i));
    settle(h);
    i
}

fn notices(h: &H) -> Vec<String> {
    h.state()
        .state
        .notices
        .iter()
        .map(|n| n.text.clone())
        .collect()
}

/// Numbers of panels that depend on libtorch's arithmetic may differ in a last digit on another
/// CPU: a few digits' worth of pixels may differ, a changed layout may not.
fn tolerant() -> SnapshotOptions {
    SnapshotOptions::new().max_failed_pixels(1500)
}

#[test]
fn training_from_the_panel_draws_the_loss_curve_and_keeps_it_with_the_model() {
    let (dir, root) = demo_copy();
    let mut h = harness(root.clone(), &dir.path().join("prefs.ron"));
    select_category(&mut h, "leather");
    // The panel (T) on the shipped model: its curve, best epoch, calibration and time, read
    // back from the model folder.
    key(&mut h, egui::Key::T, Modifiers::NONE);
    assert!(h.query_by_label("Start training").is_some());
    h.get_by_label("mean z² per scale");
    h.get_by_label("best epoch");
    h.get_by_label("false alarms / normal image");
    // No false alarm on 2 held-out images, and its Poisson bound (-ln 0.05 / 2).
    h.get_by_label("0.00 on 2 held-out images (at most 1.50 with 95 % confidence)");
    h.snapshot("training_panel");
    // A model whose held-out normals asked for a stricter test says by how much.
    assert!(h.query_by_label("significance asked").is_none());
    let ron = root.join("models/uflow-l2/leather/model.ron");
    let text = std::fs::read_to_string(&ron).unwrap();
    assert!(text.contains("false_alarms_per_normal_image:"));
    std::fs::write(
        &ron,
        text.replace(
            "false_alarms_per_normal_image:",
            "level_offset: 1.5, false_alarms_per_normal_image:",
        ),
    )
    .unwrap();
    h.state_mut().state.forget_model_file("uflow-l2", "leather");
    h.run_steps(2);
    h.get_by_label("significance asked");
    h.get_by_label("32 times the a contrario test's");
    std::fs::write(&ron, text).unwrap();
    h.state_mut().state.forget_model_file("uflow-l2", "leather");
    h.run_steps(2);
    assert!(h.query_by_label("significance asked").is_none());
    // PatchCore's taps are its two maps whatever the setting; U-Flow's are a choice.
    assert!(h.query_by_label("strides 8 / 16").is_none());
    let flow = h.state().state.training.clone();
    let bank = TrainingSettings {
        family: Family::Patchcore,
        ..flow.clone()
    };
    h.state_mut().apply(AppCommand::SetTraining(bank));
    h.run_steps(2);
    h.get_by_label("strides 8 / 16");
    h.state_mut().apply(AppCommand::SetTraining(flow));
    h.run_steps(2);
    assert!(h.query_by_label("strides 8 / 16").is_none());

    // A tiny training from the panel: the curve gets a point per epoch while it runs (20 short
    // epochs, so that the frames see it run however fast the machine).
    let tiny = TrainingSettings {
        epochs: 20,
        input_size: 64,
        batch_size: 4,
        ..TrainingSettings::default()
    };
    h.state_mut().apply(AppCommand::SetTraining(tiny.clone()));
    h.run_steps(2);
    assert!(
        h.query_by_label("Not trained yet with these settings.")
            .is_some(),
        "uflow-l2-64 is a new model"
    );
    h.get_by_label("Start training").click();
    h.run_steps(2);
    let start = Instant::now();
    let mut seen_points = 0;
    loop {
        h.step();
        let st = &h.state().state;
        match &st.training_job {
            Some(j) => {
                seen_points = seen_points.max(j.history.len());
                assert!(j.fraction <= 1.0);
            }
            None => break,
        }
        assert!(start.elapsed() < Duration::from_secs(300), "training hangs");
        std::thread::sleep(Duration::from_millis(20));
    }
    settle(&mut h);
    assert!(seen_points >= 1, "the live curve got points while training");
    let model = tiny.model_name();
    assert_eq!(model, "uflow-l2-64");
    assert_eq!(h.state().state.detector.as_deref(), Some("uflow-l2-64"));
    let f = h
        .state_mut()
        .state
        .model_file(&model, "leather")
        .cloned()
        .expect("the model was written");
    assert_eq!(f.history.len(), 20);
    assert_eq!(
        best_epoch(&f.history).map(|r| r.epoch),
        Some(f.best_epoch),
        "the best epoch marked is the lowest validation"
    );
    assert!(f.train_seconds > 0.0);
    assert_eq!((f.train.batch_size, f.input_size), (4, 64));
    // The panel shows the finished model again, its best epoch among its facts.
    h.get_by_label("mean z² per scale");
    h.get_by_label("best epoch");
    assert!(
        h.query_all_by_label(&format!("{}", f.best_epoch + 1))
            .next()
            .is_some()
    );

    // Cancelled by the user after an epoch or more: news (where to resume), not a warning.
    let long = TrainingSettings {
        epochs: 500,
        ..tiny
    };
    h.state_mut().apply(AppCommand::SetTraining(long));
    h.run_steps(2);
    h.get_by_label("Start training").click();
    let start = Instant::now();
    while h
        .state()
        .state
        .training_job
        .as_ref()
        .is_none_or(|j| j.history.is_empty())
    {
        h.step();
        assert!(start.elapsed() < Duration::from_secs(300), "training hangs");
        std::thread::sleep(Duration::from_millis(20));
    }
    let before = h.state().state.notices.len();
    h.state_mut().apply(AppCommand::CancelTraining);
    while h.state().state.training_job.is_some() {
        h.step();
        assert!(start.elapsed() < Duration::from_secs(300), "cancel hangs");
        std::thread::sleep(Duration::from_millis(20));
    }
    let news: Vec<_> = h.state().state.notices[before..].to_vec();
    assert!(
        news.iter()
            .any(|n| n.level == contrario::app::NoticeLevel::Info
                && n.text.contains("cancelled after epoch")
                && n.text.contains("Resume training")),
        "{news:?}"
    );
    assert!(
        news.iter()
            .all(|n| n.level == contrario::app::NoticeLevel::Info),
        "{news:?}"
    );

    // A memory bank while it trains (its job as the window holds it, since a bank of the demo's
    // ten images trains faster than frames can be sure to see): no empty loss curve.
    let bank = TrainingSettings {
        family: Family::Patchcore,
        ..TrainingSettings::default()
    };
    h.state_mut().apply(AppCommand::SetTraining(bank.clone()));
    h.run_steps(2);
    h.state_mut().state.training_job = Some(TrainingJob::new(
        "leather".into(),
        bank.model_name(),
        Family::Patchcore,
        bank.epochs,
    ));
    h.run_steps(2);
    h.get_by_label("A memory bank: no epochs, no loss curve.");
    h.get_by_label("starting");
    h.state_mut().state.training_job = None;
}

#[test]
fn the_model_runs_over_the_project_and_the_evaluation_matches_the_cli() {
    let (dir, root) = demo_copy();
    let mut h = harness(root.clone(), &dir.path().join("prefs.ron"));
    h.state_mut()
        .apply(AppCommand::SetDetector(Some("uflow-l2".into())));
    settle(&mut h);
    // Every image, in the background, into the cache; the badges' facts fill in.
    key(&mut h, egui::Key::R, Modifiers::SHIFT);
    settle(&mut h);
    let st = &h.state().state;
    assert_eq!(st.review.facts.len(), 54);
    assert!(
        st.review.facts.iter().all(|f| f.min_log_nfa.is_some()),
        "every image has the model's result"
    );
    assert!(
        notices(&h)
            .iter()
            .any(|n| n.starts_with("Ran U-Flow uflow-l2 on 54 image(s)")),
        "{:?}",
        notices(&h)
    );
    // Again: everything comes from the cache.
    key(&mut h, egui::Key::R, Modifiers::SHIFT);
    settle(&mut h);
    assert!(
        notices(&h)
            .iter()
            .any(|n| n.contains("(54 already cached)")),
        "{:?}",
        notices(&h)
    );

    // The evaluation panel on leather (Shift+E) says what `contrario eval --json` says.
    select_category(&mut h, "leather");
    h.state_mut().apply(AppCommand::SetNfaThreshold(0.0));
    key(&mut h, egui::Key::E, Modifiers::SHIFT);
    settle(&mut h);
    let summary = {
        let ev = h
            .state()
            .state
            .evaluation
            .as_ref()
            .expect("the panel is open");
        assert_eq!(
            (ev.model.as_str(), ev.category.as_str()),
            ("uflow-l2", "leather")
        );
        ev.evaluation().expect("computed").summary.clone()
    };
    let same_as_cli = |summary: &serde_json::Value, level: f32| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_contrario"))
            .args([
                "eval",
                "--json",
                "--model",
                "uflow-l2",
                "--category",
                "leather",
            ])
            .arg(format!("--threshold={level}"))
            .arg("--project")
            .arg(&root)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let cli: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let cli = &cli["categories"]["leather"];
        for k in [
            "images",
            "pixel_auroc",
            "aupro",
            "image_auroc",
            "miou_nfa",
            "miou_oracle",
            "oracle_threshold",
            "false_alarms_per_normal_image",
            "per_kind",
        ] {
            assert_eq!(summary[k], cli[k], "{k} at level {level}");
        }
    };
    same_as_cli(&summary, 0.0);
    h.get_by_label("Copy table as CSV");
    let [tp, missed, fp, tn] = h
        .state()
        .state
        .evaluation
        .as_ref()
        .unwrap()
        .decisions(0.0)
        .unwrap();
    assert_eq!(
        tp + missed + fp + tn,
        8,
        "every test image of leather is decided"
    );
    h.snapshot_options("evaluation_panel", &tolerant());

    // A click on the mIoU curve sets the NFA level there, and the numbers follow it.
    let at = h
        .state()
        .miou_curve_point(-5.0)
        .expect("the curve is drawn");
    h.hover_at(at);
    h.step();
    for pressed in [true, false] {
        h.event(Event::PointerButton {
            pos: at,
            button: PointerButton::Primary,
            pressed,
            modifiers: Modifiers::NONE,
        });
        h.step();
    }
    settle(&mut h);
    assert_eq!(h.state().state.nfa_threshold, -5.0);
    let ev = h.state().state.evaluation.as_ref().unwrap();
    assert_eq!(ev.level, -5.0, "recomputed at the new level");
    let e = ev.evaluation().unwrap();
    let on_curve = e
        .miou_curve
        .iter()
        .find(|(t, _)| *t == -5.0)
        .map(|p| p.1)
        .unwrap();
    let table = e.summary["miou_nfa"].as_f64().unwrap();
    assert!((on_curve - table).abs() < 1e-12, "{on_curve} vs {table}");
    // Recomputed from the level-independent part kept from the first evaluation: still what
    // the CLI computes from scratch at that level.
    same_as_cli(&e.summary.clone(), -5.0);
}

#[test]
fn demo_mode_shows_the_shipped_model_and_advances_through_the_images() {
    let (dir, root) = demo_copy();
    let mut h = harness(root, &dir.path().join("prefs.ron"));
    key(&mut h, egui::Key::F11, Modifiers::NONE);
    assert_eq!(h.state().state.detector.as_deref(), Some("uflow-l2"));
    let first = h.state().demo_image().expect("demo mode is on");
    settle(&mut h);
    assert!(
        h.state().state.detections.contains_key(&first),
        "the image on show is detected"
    );
    h.get_by_label("Anomaly heatmap");
    h.snapshot_options("demo_mode", &tolerant());
    // Every few seconds the next image (the harness steps a quarter of a second).
    let mut advanced = None;
    for _ in 0..40 {
        h.step();
        std::thread::sleep(Duration::from_millis(20));
        if h.state().demo_image() != Some(first) {
            advanced = h.state().demo_image();
            break;
        }
    }
    let second = advanced.expect("the show advanced by itself");
    settle(&mut h);
    // Space pauses; the arrows step; Esc leaves.
    key(&mut h, egui::Key::Space, Modifiers::NONE);
    for _ in 0..30 {
        h.step();
    }
    assert_eq!(h.state().demo_image(), Some(second), "paused");
    key(&mut h, egui::Key::ArrowLeft, Modifiers::NONE);
    assert_eq!(h.state().demo_image(), Some(first));
    key(&mut h, egui::Key::Escape, Modifiers::NONE);
    assert_eq!(h.state().demo_image(), None);
    settle(&mut h);
}

#[test]
fn the_evaluation_panel_puts_two_models_side_by_side() {
    let (dir, root) = demo_copy();
    // A PatchCore beside the shipped U-Flow, trained as a user would on the command line.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_contrario"))
        .args(["train", "--model", "patchcore-l2", "--category", "leather"])
        .args(["--detector", "patchcore", "--project"])
        .arg(&root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut h = harness(root.clone(), &dir.path().join("prefs.ron"));
    // The newest model is the detector the project opens on: the U-Flow is chosen instead.
    assert_eq!(h.state().state.detector.as_deref(), Some("patchcore-l2"));
    h.state_mut()
        .apply(AppCommand::SetDetector(Some("uflow-l2".into())));
    select_category(&mut h, "leather");
    h.state_mut().apply(AppCommand::SetNfaThreshold(0.0));
    key(&mut h, egui::Key::E, Modifiers::SHIFT);
    settle(&mut h);
    h.get_by_label_contains("Evaluate another model").click();
    h.run_steps(2);
    h.get_by_label("patchcore-l2").click();
    settle(&mut h);
    let st = &h.state().state;
    let (a, b) = (
        st.evaluation.as_ref().unwrap(),
        st.comparison.as_ref().unwrap(),
    );
    assert_eq!(
        (a.model.as_str(), b.model.as_str()),
        ("uflow-l2", "patchcore-l2")
    );
    let (ea, eb) = (a.evaluation().unwrap(), b.evaluation().unwrap());
    assert_ne!(ea.summary["pixel_auroc"], eb.summary["pixel_auroc"]);
    // The compared column says what `contrario eval` says of that model.
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_contrario"))
        .args([
            "eval",
            "--json",
            "--model",
            "patchcore-l2",
            "--category",
            "leather",
        ])
        .arg("--threshold=0")
        .arg("--project")
        .arg(&root)
        .output()
        .unwrap();
    let cli: serde_json::Value = serde_json::from_slice(&cli.stdout).unwrap();
    for k in [
        "pixel_auroc",
        "aupro",
        "image_auroc",
        "miou_nfa",
        "false_alarms_per_normal_image",
    ] {
        assert_eq!(eb.summary[k], cli["categories"]["leather"][k], "{k}");
    }
    h.get_by_label("uflow-l2 (U-Flow)");
    h.get_by_label("patchcore-l2 (PatchCore)");
    h.snapshot_options("evaluation_compare", &tolerant());
    // Another category the PatchCore has no version of: the panel goes back to one model.
    h.state_mut().apply(AppCommand::Evaluate(Some((
        "uflow-l2".into(),
        "wood".into(),
    ))));
    settle(&mut h);
    assert!(h.state().state.comparison.is_none());
}
