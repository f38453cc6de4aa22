//! What the window tests share: the real app in a headless harness on a project, waiting for its
//! background work, a scratch copy of the demo project, and keys and selection as a user gives
//! them. Each test file uses its own part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use contrario::app::AppCommand;
use contrario::gui::ContrarioApp;
use egui::{Event, Modifiers};
use egui_kittest::Harness;

pub type H = Harness<'static, ContrarioApp>;

/// The app on `project`, `width` x `height` points, keeping the person's preferences in `prefs`
/// (none: the app keeps none), settled.
pub fn harness(project: PathBuf, prefs: Option<&Path>, (width, height): (f32, f32)) -> H {
    let prefs = prefs.map(Path::to_path_buf);
    let mut h = Harness::builder()
        .with_size(egui::Vec2::new(width, height))
        .with_render_cursor(false)
        .wgpu()
        .build_eframe(move |cc| match prefs {
            Some(prefs) => ContrarioApp::with_preferences(&cc.egui_ctx, Some(project), Some(prefs)),
            None => ContrarioApp::new(&cc.egui_ctx, Some(project)),
        });
    settle(&mut h);
    h
}

/// Step until nothing loads or runs in the background, then a few frames more.
pub fn settle(h: &mut H) {
    let start = Instant::now();
    loop {
        h.step();
        if h.state().is_settled() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "app did not settle"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    h.run_steps(3);
}

/// A copy of the demo project (the bundled one is never written).
pub fn demo_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let demo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("projects/demo");
    let p = dir.path().join("p");
    contrario::project::copy_folder(&demo, &p).unwrap();
    (dir, p)
}

/// A key pressed and released.
pub fn key(h: &mut H, key: egui::Key, modifiers: Modifiers) {
    for pressed in [true, false] {
        h.event(Event::Key {
            key,
            physical_key: None,
            pressed,
            repeat: false,
            modifiers,
        });
        h.step();
    }
    h.run_steps(2);
}

pub fn index_of(h: &H, id: &str) -> usize {
    let p = h.state().state.project.as_ref().unwrap();
    p.file.images.iter().position(|e| e.id == id).unwrap()
}

/// Select the image `id` and wait for it.
pub fn select(h: &mut H, id: &str) -> usize {
    let i = index_of(h, id);
    h.state_mut().apply(AppCommand::Select(i));
    settle(h);
    i
}
