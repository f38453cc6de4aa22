//! `contrario bench gui`: the time of the window's frames on the UI thread, headless (egui with
//! no renderer, so no GPU is needed): the whole frame (logic, layout, tessellation) with the
//! textures it hands the renderer counted in bytes. Three runs side by side on one image: idle
//! frames with the pointer over the image, a brush stroke (one pointer move per frame: painting,
//! the texture patch, the autosave hand-off), and the NFA level moving under a detection with
//! hundreds of outlines (re-thresholding and re-tracing every frame).

use std::path::Path;
use std::time::{Duration, Instant};

use egui::{Event, Modifiers, PointerButton, Pos2, RawInput, Rect, epaint::ImageData, vec2};
use ndarray::Array2;

use super::ContrarioApp;
use crate::app::AppCommand;
use crate::app::annotation::{LabelCommand, Tool};
use crate::app::detection::Detection;
use crate::stats::timing::median_p95_max;

const SCREEN: [f32; 2] = [1280.0, 800.0];

/// Frame times of one run, milliseconds.
struct Run {
    ms: Vec<f64>,
    texture_bytes: usize,
}

impl Run {
    fn json(&self, idle_median: Option<f64>) -> serde_json::Value {
        let (median, p95, max) = median_p95_max(&self.ms);
        let n = self.ms.len();
        let mut v = serde_json::json!({
            "frames": n,
            "median_ms": median,
            "p95_ms": p95,
            "max_ms": max,
            "texture_kib_per_frame": self.texture_bytes as f64 / 1024.0 / n as f64,
        });
        if let Some(idle) = idle_median {
            v["median_over_idle"] = (median / idle).into();
        }
        v
    }
}

/// A headless window.
struct Window {
    ctx: egui::Context,
    app: ContrarioApp,
    time: f64,
}

impl Window {
    /// One frame with these input events: its time, and the bytes of texture it uploads.
    fn frame(&mut self, events: Vec<Event>) -> (f64, usize) {
        self.time += 1.0 / 60.0;
        let input = RawInput {
            screen_rect: Some(Rect::from_min_size(Pos2::ZERO, vec2(SCREEN[0], SCREEN[1]))),
            max_texture_side: Some(8192),
            time: Some(self.time),
            predicted_dt: 1.0 / 60.0,
            events,
            focused: true,
            ..Default::default()
        };
        let start = Instant::now();
        let app = &mut self.app;
        let mut out = self.ctx.run_ui(input, |ui| {
            app.frame_logic(&ui.ctx().clone());
            app.frame_ui(ui);
        });
        let primitives = self.ctx.tessellate(out.shapes, out.pixels_per_point);
        std::hint::black_box(primitives);
        let seconds = start.elapsed().as_secs_f64();
        let bytes = out
            .textures_delta
            .set
            .values()
            .flat_map(|deltas| deltas.iter())
            .map(|d| match &d.image {
                ImageData::Color(c) => c.size[0] * c.size[1] * 4,
            })
            .sum();
        // No renderer takes them: dropped on purpose.
        out.textures_delta.clear();
        (seconds * 1e3, bytes)
    }

    /// Frames until the image is shown and nothing is loading.
    fn settle(&mut self) -> anyhow::Result<()> {
        let start = Instant::now();
        // A frame first: what the last input started begins in the next frame's logic.
        self.frame(Vec::new());
        while !self.app.is_settled() {
            anyhow::ensure!(
                start.elapsed() < Duration::from_secs(120),
                "the window did not settle within two minutes"
            );
            self.frame(Vec::new());
            std::thread::sleep(Duration::from_millis(5));
        }
        for _ in 0..5 {
            self.frame(Vec::new());
        }
        Ok(())
    }

    fn screen_of(&self, x: f32, y: f32) -> anyhow::Result<Pos2> {
        self.app
            .screen_of(x, y)
            .ok_or_else(|| anyhow::anyhow!("the image is not on screen"))
    }

    /// `frames` frames, each after `before` (which changes the app and gives the frame's input).
    fn run(
        &mut self,
        frames: usize,
        mut before: impl FnMut(&mut ContrarioApp, usize) -> Vec<Event>,
    ) -> Run {
        let mut run = Run {
            ms: Vec::with_capacity(frames),
            texture_bytes: 0,
        };
        for i in 0..frames {
            let events = before(&mut self.app, i);
            let (ms, bytes) = self.frame(events);
            run.ms.push(ms);
            run.texture_bytes += bytes;
        }
        run
    }
}

fn button(pos: Pos2, pressed: bool) -> Event {
    Event::PointerButton {
        pos,
        button: PointerButton::Primary,
        pressed,
        modifiers: Modifiers::NONE,
    }
}

/// A log10 NFA map of `side` x `side` with `n` cone-shaped regions whose depths differ, so that
/// every level gives other outlines.
fn cones(side: usize, n: usize) -> Array2<f32> {
    let mut map = Array2::<f32>::from_elem((side, side), 5.0);
    let per_row = (n as f64).sqrt().ceil() as usize;
    let cell = side / per_row;
    let radius = (cell as f32 * 0.4).max(2.0);
    for k in 0..n {
        let (cy, cx) = (
            (k / per_row) * cell + cell / 2,
            (k % per_row) * cell + cell / 2,
        );
        let depth = -3.0 - (k % 7) as f32;
        for y in cy.saturating_sub(cell / 2)..(cy + cell / 2).min(side) {
            for x in cx.saturating_sub(cell / 2)..(cx + cell / 2).min(side) {
                let r = ((y as f32 - cy as f32).powi(2) + (x as f32 - cx as f32).powi(2)).sqrt();
                if r < radius {
                    let t = r / radius;
                    map[(y, x)] = depth * (1.0 - t) + 5.0 * t;
                }
            }
        }
    }
    map
}

/// The benchmark on image `id` of the project at `project` (whose layer `annotator` is
/// writable): `frames` frames per run, and a detection map of `map_side` x `map_side` with
/// `outlines` regions.
pub fn frames(
    project: &Path,
    id: &str,
    annotator: &str,
    frames: usize,
    map_side: usize,
    outlines: usize,
) -> anyhow::Result<serde_json::Value> {
    let ctx = egui::Context::default();
    let app = ContrarioApp::new(&ctx, Some(project.to_path_buf()));
    let mut w = Window {
        ctx,
        app,
        time: 0.0,
    };
    w.app.apply(AppCommand::SetAutoDetect(false));
    let index = {
        let p = w
            .app
            .state
            .project
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("{} did not open", project.display()))?;
        p.file
            .images
            .iter()
            .position(|e| e.id == id)
            .ok_or_else(|| anyhow::anyhow!("no image {id:?} in the project"))?
    };
    w.app.apply(AppCommand::Select(index));
    w.settle()?;
    let size = w
        .app
        .current
        .as_ref()
        .map(|c| c.size)
        .ok_or_else(|| anyhow::anyhow!("image {id:?} was not shown"))?;
    let (iw, ih) = (size.0 as f32, size.1 as f32);
    let centre = w.screen_of(iw / 2.0, ih / 2.0)?;

    // Idle: the pointer rests on the image (the status bar reads the pixel under it).
    w.frame(vec![Event::PointerMoved(centre)]);
    let idle = w.run(frames, |_, _| Vec::new());

    // A brush stroke sweeping the image in a zigzag, one pointer move per frame.
    for cmd in [
        LabelCommand::SetAnnotator(Some(annotator.to_string())),
        LabelCommand::SetTool(Tool::Brush),
        LabelCommand::SetBrushRadius(16.0),
    ] {
        w.app.apply(AppCommand::Label(cmd));
    }
    let path: Vec<Pos2> = (0..=frames)
        .map(|i| {
            let t = i as f32 / frames as f32;
            let x = iw * (0.1 + 0.8 * t);
            let y = ih * (0.2 + 0.6 * ((t * 12.0).fract() - 0.5).abs() * 2.0);
            w.screen_of(x, y)
        })
        .collect::<anyhow::Result<_>>()?;
    w.frame(vec![Event::PointerMoved(path[0])]);
    w.frame(vec![button(path[0], true)]);
    let brush = w.run(frames, |_, i| vec![Event::PointerMoved(path[i + 1])]);
    w.frame(vec![button(path[frames], false)]);
    let painted = {
        let st = &w.app.state;
        anyhow::ensure!(
            st.undo_name() == Some("brush"),
            "the stroke was not painted: {:?}",
            st.notices.iter().map(|n| &n.text).collect::<Vec<_>>()
        );
        st.labels
            .loaded(id, annotator)
            .map_or(0, |m| m.data.iter().filter(|&&v| v != 0).count())
    };
    let unsaved = w.app.state.labels.flush();
    anyhow::ensure!(unsaved.is_empty(), "not saved: {unsaved:?}");
    // What the stroke's end starts (disagreement, group check) lands before the next run.
    w.settle()?;

    // The NFA level moving under a detection with many outlines, the heatmap shown.
    let map = cones(map_side, outlines);
    let mut d = Detection::new(map.clone(), Some(map.mapv(|v| -v)), 0.0, false, u64::MAX);
    d.trace_at(0.0);
    let regions = d.regions.len();
    w.app.state.detections.insert(index, d);
    w.app.apply(AppCommand::ShowHeatmap(true));
    w.frame(vec![Event::PointerMoved(centre)]);
    w.frame(Vec::new());
    let levels = frames;
    let level =
        |i: usize| -2.5 + 2.5 * ((i as f32 / levels as f32 * 8.0).fract() - 0.5).abs() * 2.0;
    let nfa = w.run(frames, |app, i| {
        app.apply(AppCommand::SetNfaThreshold(level(i)));
        Vec::new()
    });
    let idle_median = idle.json(None)["median_ms"].as_f64();
    Ok(serde_json::json!({
        "image": format!("{} x {}", size.0, size.1),
        "screen": format!("{} x {}", SCREEN[0], SCREEN[1]),
        "idle": idle.json(None),
        "brush": {
            "radius_px": 16,
            "painted_px": painted,
            "frames": brush.json(idle_median),
        },
        "nfa_level": {
            "map": format!("{map_side} x {map_side}"),
            "outlines_at_level_0": regions,
            "frames": nfa.json(idle_median),
        },
    }))
}

/// Keyboard-only review of the project at `project` (whose detector's results are cached):
/// with a reviewer set, the first image of the review queue opened, then `flagged` times the
/// verdict key `N`, each timed from the frame that takes the key to the end of the first frame
/// that draws the next flagged image with its heatmap and outlines at the level (frames run back
/// to back, as a window that the background keeps asking to repaint).
pub fn review_keys(project: &Path, flagged: usize) -> anyhow::Result<serde_json::Value> {
    use crate::app::review::ReviewCommand;
    let ctx = egui::Context::default();
    let app = ContrarioApp::with_preferences(&ctx, Some(project.to_path_buf()), None);
    let mut w = Window {
        ctx,
        app,
        time: 0.0,
    };
    anyhow::ensure!(
        w.app.state.detector.is_some(),
        "{} did not open on its model",
        project.display()
    );
    w.app.apply(AppCommand::Review(ReviewCommand::SetReviewer(
        "bench".into(),
    )));
    w.settle()?;
    let queue = w.app.state.review.queue.len();
    anyhow::ensure!(
        queue > flagged,
        "only {queue} flagged images in the queue, {flagged} wanted"
    );
    w.app
        .apply(AppCommand::Review(ReviewCommand::NextUnreviewed));
    w.settle()?;
    let key = |pressed| Event::Key {
        key: egui::Key::N,
        physical_key: None,
        pressed,
        repeat: false,
        modifiers: Modifiers::NONE,
    };
    let mut ms = Vec::with_capacity(flagged);
    let mut frames = Vec::with_capacity(flagged);
    for _ in 0..flagged {
        let before = w.app.state.selected;
        anyhow::ensure!(
            w.app.result_drawn() == before,
            "image {before:?} is not shown with its result"
        );
        let start = Instant::now();
        w.frame(vec![key(true), key(false)]);
        let mut n = 1;
        loop {
            let now = w.app.state.selected;
            if now != before && now.is_some() && w.app.result_drawn() == now {
                break;
            }
            anyhow::ensure!(
                start.elapsed() < Duration::from_secs(20),
                "the next flagged image was not drawn within 20 s (selected {now:?})"
            );
            w.frame(Vec::new());
            n += 1;
        }
        ms.push(start.elapsed().as_secs_f64() * 1e3);
        frames.push(n as f64);
    }
    let judged = w.app.state.review.verdicts.len();
    anyhow::ensure!(
        judged == flagged,
        "{judged} verdicts recorded, {flagged} given"
    );
    let unsaved = w.app.state.labels.flush();
    anyhow::ensure!(unsaved.is_empty(), "not saved: {unsaved:?}");
    let (median, p95, max) = median_p95_max(&ms);
    let (frames_median, frames_p95, _) = median_p95_max(&frames);
    Ok(serde_json::json!({
        "flagged_images": flagged,
        "queue_length": queue,
        "screen": format!("{} x {}", SCREEN[0], SCREEN[1]),
        "next_flagged_median_ms": median,
        "next_flagged_p95_ms": p95,
        "next_flagged_max_ms": max,
        "frames_median": frames_median,
        "frames_p95": frames_p95,
    }))
}
