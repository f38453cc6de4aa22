//! Headless GUI tests: the real `ContrarioApp` on the bundled demo project, rendered by wgpu on
//! the software Vulkan driver (lavapipe). The snapshots are the README's screenshots.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use contrario::app::review::ReviewCommand;
use contrario::app::{AppCommand, HeatmapKind};
use contrario::gui::ContrarioApp;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

fn harness(project: Option<PathBuf>) -> Harness<'static, ContrarioApp> {
    let mut h = Harness::builder()
        .with_size(egui::Vec2::new(1200.0, 760.0))
        .with_render_cursor(false)
        .wgpu()
        .build_eframe(move |cc| ContrarioApp::new(&cc.egui_ctx, project));
    settle(&mut h);
    h
}

/// Step until background decoding and the worker's device probe have arrived.
fn settle(h: &mut Harness<'static, ContrarioApp>) {
    settle_within(h, Duration::from_secs(60));
}

/// [`settle`], for work that takes longer (a training at the default settings).
fn settle_within(h: &mut Harness<'static, ContrarioApp>, limit: Duration) {
    let start = Instant::now();
    loop {
        h.step();
        if h.state().is_settled() {
            break;
        }
        assert!(start.elapsed() < limit, "app did not settle");
        std::thread::sleep(Duration::from_millis(10));
    }
    // A few more frames so thumbnails requested by the last layout arrive and are drawn.
    for _ in 0..50 {
        h.step();
        if h.state().is_settled() && h.run_ok().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The status bar's "log10 NFA V[ · score S]" under the cursor, parsed.
fn readout(text: Option<String>) -> Option<(f32, Option<f32>)> {
    let text = text?;
    let rest = text.strip_prefix("log10 NFA ")?;
    let mut parts = rest.split(" · score ");
    let nfa = parts.next()?.parse().ok()?;
    match parts.next() {
        Some(s) => Some((nfa, Some(s.parse().ok()?))),
        None => Some((nfa, None)),
    }
}

/// Index of the first demo image matching `pred`.
fn find(
    h: &Harness<'static, ContrarioApp>,
    pred: impl Fn(&contrario::project::ImageEntry) -> bool,
) -> usize {
    let p = h.state().state.project.as_ref().unwrap();
    p.file.images.iter().position(pred).unwrap()
}

/// Compare with (or, with UPDATE_SNAPSHOTS=1, write) tests/snapshots/NAME.png; tolerances are in
/// kittest.toml.
fn snapshot(h: &mut Harness<'static, ContrarioApp>, name: &str) {
    h.snapshot(name);
}

#[test]
fn opens_the_demo_project_with_image_list_viewer_and_status_bar() {
    let mut h = harness(None);
    let st = &h.state().state;
    let project = st.project.as_ref().expect("demo project opens by default");
    assert_eq!(project.file.name, "Contrario demo");
    assert_eq!(st.selected, Some(0));
    // The status bar shows the device and the libtorch version reported by the worker.
    h.get_by_label_contains("libtorch 2.13.0");
    h.get_by_label_contains("Contrario demo · 54 images");
    h.get_by_label("Image viewer");
    snapshot(&mut h, "main_window");
}

#[test]
fn stepping_to_a_defect_shows_its_labels() {
    let mut h = harness(None);
    let idx = find(&h, |e| e.kind == "combined");
    h.state_mut().apply(AppCommand::Select(idx));
    h.state_mut()
        .apply(AppCommand::ShowLabels(Some("gt".into())));
    settle(&mut h);
    h.get_by_label_contains("leather/test/combined/003 · 256×256");
    snapshot(&mut h, "defect_with_ground_truth");
    // Keyboard: the right arrow goes to the next image.
    h.key_press(egui::Key::ArrowRight);
    settle(&mut h);
    assert_eq!(h.state().state.selected, Some(idx + 1));
}

#[test]
fn a_click_on_a_rows_name_selects_its_image() {
    // Found by hand in the real window: the name and the line under it took the click (as
    // selectable text), so only a click on the thumbnail selected the image.
    let mut h = harness(None);
    let idx = find(&h, |e| e.id == "leather/train/good/002");
    h.get_all_by_label("002.png").next().unwrap().click();
    settle(&mut h);
    assert_eq!(h.state().state.selected, Some(idx));
    h.get_all_by_label_contains("leather · train · good")
        .nth(3)
        .unwrap()
        .click();
    settle(&mut h);
    assert_eq!(h.state().state.selected, Some(idx + 1));
}

#[test]
fn unreadable_folder_gives_a_dismissable_notice() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(None);
    h.state_mut()
        .apply(AppCommand::OpenImageFolder(dir.path().to_path_buf()));
    h.run_ok();
    h.get_by_label_contains("no images found");
    h.get_by_label("Dismiss").click();
    h.run_ok();
    assert!(h.query_by_label_contains("no images found").is_none());
    assert!(
        h.state().state.project.is_some(),
        "the demo project stays open"
    );
}

#[test]
fn corrupt_image_gives_a_notice_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("broken.png"), b"\x89PNG\r\n\x1a\ngarbage").unwrap();
    image::RgbImage::from_pixel(8, 8, image::Rgb([200, 10, 10]))
        .save(dir.path().join("ok.png"))
        .unwrap();
    let mut h = harness(Some(dir.path().to_path_buf()));
    h.get_by_label_contains("cannot decode image");
    // Its row says so instead of a spinner that would never stop.
    h.get_by_label("unreadable");
    h.state_mut().apply(AppCommand::SelectNext);
    settle(&mut h);
    h.get_by_label_contains("ok · 8×8");
    // Rewritten whole and shown again, it gets its thumbnail.
    image::RgbImage::from_pixel(6, 6, image::Rgb([10, 200, 10]))
        .save(dir.path().join("broken.png"))
        .unwrap();
    h.state_mut().apply(AppCommand::SelectPrevious);
    settle(&mut h);
    h.get_by_label_contains("broken · 6×6");
    settle(&mut h);
    assert!(h.query_by_label("unreadable").is_none());
}

#[test]
fn detection_shows_heatmap_and_contours_and_the_nfa_level_rethresholds_live() {
    let mut h = harness(None);
    // The demo opens on its U-Flow; this is the training-free detector's test.
    assert_eq!(h.state().state.detector.as_deref(), Some("uflow-l2"));
    h.state_mut().apply(AppCommand::SetDetector(None));
    let idx = find(&h, |e| e.id == "wood/test/hole/002");
    h.state_mut().apply(AppCommand::Select(idx));
    h.state_mut().apply(AppCommand::ShowLabels(None));
    settle(&mut h);
    h.get_by_label("Detect anomalies").click();
    settle(&mut h);
    let text = h
        .get_by_label_contains("region(s)")
        .value()
        .unwrap_or_default();
    let regions: usize = text.split(' ').next().unwrap().parse().unwrap();
    assert!(regions >= 1, "the planted hole is detected: {text}");
    snapshot(&mut h, "detection");
    // The strictest level keeps only overwhelming evidence; the map is not recomputed.
    h.state_mut().apply(AppCommand::SetNfaThreshold(-20.0));
    settle(&mut h);
    h.get_by_label_contains("1 false alarm per 10^20.0 images");
    // Under the cursor, the readout over the image says what the detector says there.
    h.get_by_label("Image viewer").hover();
    h.run_steps(2);
    assert!(
        h.query_all_by(|n| readout(n.value()).is_some_and(|(_, score)| score.is_none()))
            .next()
            .is_some(),
        "no detector readout in the status bar"
    );
    // The training-free detector has no other map: asking for the anomaly score keeps -log10 NFA.
    h.state_mut()
        .apply(AppCommand::SetHeatmapKind(HeatmapKind::AnomalyScore));
    settle(&mut h);
    h.get_by_value("heatmap: -log10 NFA");
}

#[test]
fn a_darkened_image_is_told_unlike_training_and_the_pointer_readout_is_never_cut() {
    let dir = tempfile::tempdir().unwrap();
    let demo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("projects/demo");
    let p = dir.path().join("p");
    contrario::project::copy_folder(&demo, &p).unwrap();
    // The line's light dimmed by a fifth on one normal test image.
    let file = p.join("images/fabric/test/good/000.png");
    let mut img = image::open(&file).unwrap().to_rgb8();
    for px in img.pixels_mut() {
        px.0 = px.0.map(|v| (f32::from(v) * 0.8) as u8);
    }
    img.save(&file).unwrap();
    let mut h = harness(Some(p));
    let idx = find(&h, |e| e.id == "fabric/test/good/000");
    h.state_mut().apply(AppCommand::Select(idx));
    settle(&mut h);
    h.get_by_label("Detect anomalies").click();
    settle(&mut h);
    // The status bar says it in words, last, cut to the room left (whole on hover): nothing
    // before them, nor they, runs under the bar's right side.
    let words = h
        .get_by_label_contains("unlike training: darker than every training image")
        .rect();
    let zoom = h.get_by_label_contains("zoom ").rect();
    let right_side = h.get_by_label_contains("editing: ").rect();
    assert!(
        zoom.max.x < words.min.x && words.max.x <= right_side.min.x,
        "zoom {zoom:?}, words {words:?}, the right side {right_side:?}"
    );
    // What lies under the pointer is shown whole over the image, in a corner, never under the
    // pointer: at the centre and at the bottom right corner, where the box would be.
    let viewer = h.get_by_label("Image viewer").rect();
    for at in [
        viewer.center(),
        viewer.right_bottom() - egui::vec2(20.0, 20.0),
    ] {
        h.hover_at(at);
        h.run_steps(3);
        let boxed = |h: &Harness<'static, ContrarioApp>, prefix: &str| {
            h.query_all_by(|n| n.value().is_some_and(|t| t.starts_with(prefix)))
                .next()
                .unwrap_or_else(|| panic!("no \"{prefix}…\" readout at {at:?}"))
                .rect()
        };
        for r in [boxed(&h, "log10 NFA "), boxed(&h, "(")] {
            assert!(
                viewer.contains_rect(r),
                "{r:?} is cut: the view is {viewer:?}"
            );
            assert!(
                !r.expand(4.0).contains(at),
                "{r:?} is under the pointer at {at:?}"
            );
        }
        let said = h.query_all_by(|n| readout(n.value()).is_some()).next();
        let (nfa, score) = readout(said.and_then(|n| n.value())).unwrap();
        assert!(
            nfa.is_finite() && score.is_some(),
            "U-Flow's readout: {nfa} {score:?}"
        );
    }
    // The image list's filter keeps it, alone.
    let filter = contrario::app::review::ListFilter {
        only_unlike_training: true,
        ..Default::default()
    };
    h.state_mut()
        .apply(AppCommand::Review(ReviewCommand::Filter(filter)));
    settle(&mut h);
    assert_eq!(h.state().state.review.rows, vec![idx]);
}

#[test]
fn train_u_flow_from_the_window_then_detect_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let demo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("projects/demo");
    contrario::project::copy_folder(&demo, &dir.path().join("p")).unwrap();
    let mut h = harness(Some(dir.path().join("p")));
    let idx = find(&h, |e| e.id == "fabric/test/hole/002");
    h.state_mut().apply(AppCommand::Select(idx));
    h.state_mut().apply(AppCommand::SetTraining(
        contrario::project::TrainingSettings {
            epochs: 3,
            input_size: 64,
            ..Default::default()
        },
    ));
    settle(&mut h);
    // The training panel shows the settings and the model they write.
    h.get_by_label("Training…").click();
    h.run_steps(2);
    h.get_by_label_contains("writes model \"uflow-l2-64\"");
    h.key_press(egui::Key::T);
    h.run_steps(2);
    h.get_by_label("Train model").click();
    settle(&mut h);
    let notices = &h.state().state.notices;
    assert!(
        notices
            .iter()
            .any(|n| n.text.contains("U-Flow trained on fabric")),
        "{notices:?}"
    );
    h.get_by_label_contains("U-Flow trained on fabric");
    assert_eq!(h.state().state.detector.as_deref(), Some("uflow-l2-64"));
    assert!(
        dir.path()
            .join("p/models/uflow-l2-64/fabric/weights.safetensors")
            .exists()
    );
    h.get_by_label("Detect anomalies").click();
    settle(&mut h);
    // Computed on the worker: the summary says how long it took.
    let summary = h
        .get_by_label_contains("region(s)")
        .value()
        .unwrap_or_default();
    assert!(summary.ends_with(" s"), "{summary}");
    assert!(
        dir.path()
            .join("p/cache/uflow-l2-64/fabric")
            .read_dir()
            .unwrap()
            .count()
            >= 3,
        "result cached"
    );
    // Asked again (the detector chosen anew drops the results shown): read from the cache.
    h.state_mut().apply(AppCommand::SetDetector(None));
    h.state_mut()
        .apply(AppCommand::SetDetector(Some("uflow-l2-64".into())));
    h.get_by_label("Detect anomalies").click();
    settle(&mut h);
    let summary = h
        .get_by_label_contains("region(s)")
        .value()
        .unwrap_or_default();
    assert!(summary.ends_with("· from the cache"), "{summary}");
    // U-Flow results carry the model's anomaly map too, on its own fixed scale.
    h.get_by_value("heatmap: -log10 NFA");
    h.state_mut()
        .apply(AppCommand::SetHeatmapKind(HeatmapKind::AnomalyScore));
    settle(&mut h);
    h.get_by_value("heatmap: anomaly score");
    h.get_by_label("0.39");
}

#[test]
fn a_u_flow_trained_from_the_window_outlines_the_scratch_at_the_default_level() {
    // The thin scratch the anomaly map shows bright was never outlined at NFA < 1 when every
    // region paid for all 10^623 shapes; with the per-area count it is, at the default level.
    let dir = tempfile::tempdir().unwrap();
    let demo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("projects/demo");
    contrario::project::copy_folder(&demo, &dir.path().join("p")).unwrap();
    let mut h = harness(Some(dir.path().join("p")));
    let idx = find(&h, |e| e.id == "leather/test/scratch/000");
    h.state_mut().apply(AppCommand::Select(idx));
    h.state_mut()
        .apply(AppCommand::ShowLabels(Some("gt".into())));
    settle(&mut h);
    assert_eq!(h.state().state.nfa_threshold, 0.0);
    h.get_by_label_contains("at most 1.0 false alarms per image");
    h.get_by_label("Train model").click();
    settle_within(&mut h, Duration::from_secs(600));
    assert_eq!(h.state().state.detector.as_deref(), Some("uflow-l2"));
    h.get_by_label("Detect anomalies").click();
    settle(&mut h);
    let st = &h.state().state;
    let d = &st.detections[&idx];
    assert!(!d.regions.is_empty(), "{}", d.summary());
    // The regions at the level cover most of the scratch of the ground truth, and the most
    // significant one lies on it (a thin scratch may come as several regions along its length).
    let p = st.project.as_ref().unwrap();
    let e = &p.file.images[idx];
    let gt = image::open(p.label_path(e, "gt").unwrap())
        .unwrap()
        .to_luma8();
    let (mh, mw) = d.log_nfa.dim();
    let on_scratch = |r: &contrario::stats::acontrario::Region| {
        r.pixels
            .iter()
            .filter(|&&i| {
                let (y, x) = (i as usize / mw, i as usize % mw);
                let (gx, gy) = (
                    (x * gt.width() as usize / mw) as u32,
                    (y * gt.height() as usize / mh) as u32,
                );
                gt.get_pixel(gx, gy).0[0] != 0
            })
            .count()
    };
    let scratch: usize = gt.pixels().filter(|p| p.0[0] != 0).count();
    let covered: usize = d.regions.iter().map(on_scratch).sum();
    assert!(
        covered * 2 >= scratch,
        "{covered} of the {scratch}-pixel scratch under the regions"
    );
    let strongest = d
        .regions
        .iter()
        .min_by(|a, b| a.log10_nfa.total_cmp(&b.log10_nfa))
        .unwrap();
    assert!(
        on_scratch(strongest) > 0,
        "the strongest region misses the scratch"
    );
    h.get_by_label_contains("region(s)");
    // The notice says how long the training took: not in the screenshot.
    let ids: Vec<u64> = h.state().state.notices.iter().map(|n| n.id).collect();
    for id in ids {
        h.state_mut().apply(AppCommand::DismissNotice(id));
    }
    h.run_steps(2);
    snapshot(&mut h, "uflow_scratch");
    // Hovering the region tells its NFA and the scale(s) whose test found it.
    let (cell, width, (iw, ih)) = {
        let st = &h.state().state;
        let d = &st.detections[&idx];
        let e = &st.project.as_ref().unwrap().file.images[idx];
        let size = image::image_dimensions(st.project.as_ref().unwrap().image_path(e)).unwrap();
        (d.regions[0].pixels[0] as usize, d.log_nfa.dim().1, size)
    };
    let mh = h.state().state.detections[&idx].log_nfa.dim().0;
    let (cx, cy) = (
        ((cell % width) as f32 + 0.5) * iw as f32 / width as f32,
        ((cell / width) as f32 + 0.5) * ih as f32 / mh as f32,
    );
    let p = h.state().screen_of(cx, cy).unwrap();
    h.hover_at(p);
    h.run_steps(2);
    h.get_by_label_contains("· scale ");
}
