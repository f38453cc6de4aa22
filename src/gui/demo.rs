//! Demo mode (F11): full screen, large type, the image, the detector's heatmap and its regions
//! side by side with a caption in words, advancing through the flagged images every few seconds.
//! Space pauses, the arrows step, Esc or F11 leaves.

use egui::{Color32, RichText, Vec2};

use super::ContrarioApp;
use super::heatmap::draw_regions;
use super::viewer::{self, Layer, Picture};
use super::window_state::DemoShow;
use crate::app::AppCommand;
use crate::app::detection::false_alarm_text;

/// Seconds each image stays on screen.
pub const DEMO_SECONDS: f64 = 4.0;

impl ContrarioApp {
    /// The images the show goes through: those flagged at the NFA level; without results yet,
    /// the test images from defect folders; else every image.
    fn demo_order(&self) -> Vec<usize> {
        let Some(p) = &self.state.project else {
            return Vec::new();
        };
        let level = self.state.nfa_threshold;
        let flagged: Vec<usize> = (0..p.file.images.len())
            .filter(|&i| {
                let min = self
                    .state
                    .detections
                    .get(&i)
                    .map(|d| d.min_log_nfa())
                    .or_else(|| self.state.review.facts.get(i).and_then(|f| f.min_log_nfa));
                min.is_some_and(|m| m < level)
            })
            .collect();
        if !flagged.is_empty() {
            return flagged;
        }
        let defects: Vec<usize> = (0..p.file.images.len())
            .filter(|&i| {
                let e = &p.file.images[i];
                e.split == crate::project::Split::Test && e.kind != "good"
            })
            .collect();
        if !defects.is_empty() {
            return defects;
        }
        (0..p.file.images.len()).collect()
    }

    /// Enter or leave demo mode.
    pub(super) fn toggle_demo(&mut self, ctx: &egui::Context) {
        if self.demo.take().is_some() {
            ctx.send_viewport_cmd(egui::ViewportCommand::Fullscreen(false));
            return;
        }
        // The show is U-Flow's when the project has a model (the bundled demo ships one).
        if self.state.detector.is_none()
            && let Some(m) = self.state.preferred_model()
        {
            self.apply(AppCommand::SetDetector(Some(m)));
        }
        let order = self.demo_order();
        if order.is_empty() {
            self.state.notify(
                crate::app::NoticeLevel::Warning,
                "Open a project with images for the demo",
            );
            return;
        }
        let pos = self
            .state
            .selected
            .and_then(|s| order.iter().position(|&i| i == s))
            .unwrap_or(0);
        self.demo = Some(DemoShow {
            order,
            pos,
            paused: false,
            shown_at: None,
            views: Default::default(),
            fitted_for: None,
        });
        ctx.send_viewport_cmd(egui::ViewportCommand::Fullscreen(true));
        self.demo_show_current();
    }

    /// Select the show's image and detect on it.
    fn demo_show_current(&mut self) {
        let Some(d) = &mut self.demo else { return };
        d.shown_at = None;
        let i = d.order[d.pos];
        self.apply(AppCommand::Select(i));
        self.apply(AppCommand::DetectSelected);
    }

    /// The image the show is on (for tests).
    pub fn demo_image(&self) -> Option<usize> {
        self.demo.as_ref().map(|d| d.order[d.pos])
    }

    fn demo_step(&mut self, delta: isize) {
        let Some(d) = &mut self.demo else { return };
        let n = d.order.len() as isize;
        d.pos = ((d.pos as isize + delta).rem_euclid(n)) as usize;
        self.demo_show_current();
    }

    /// Demo mode's keys (the app's shortcuts are off meanwhile): Space, arrows, Esc, F11.
    pub(super) fn demo_keys(&mut self, ctx: &egui::Context) {
        let (space, next, prev, leave) = ctx.input(|i| {
            (
                i.key_pressed(egui::Key::Space),
                i.key_pressed(egui::Key::ArrowRight) || i.key_pressed(egui::Key::J),
                i.key_pressed(egui::Key::ArrowLeft) || i.key_pressed(egui::Key::K),
                i.key_pressed(egui::Key::Escape) || i.key_pressed(egui::Key::F11),
            )
        });
        if leave {
            return self.toggle_demo(ctx);
        }
        if space && let Some(d) = &mut self.demo {
            d.paused = !d.paused;
        }
        if next {
            self.demo_step(1);
        } else if prev {
            self.demo_step(-1);
        }
    }

    /// The show, drawn over the whole window.
    pub(super) fn demo_ui(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        let now = ctx.input(|i| i.time);
        let Some(index) = self.demo_image() else {
            return;
        };
        let ready = self.current.as_ref().is_some_and(|c| c.index == index)
            && (self.state.detections.contains_key(&index)
                || !self.state.detecting.contains(&index));
        let mut advance = false;
        if let Some(d) = &mut self.demo {
            if ready && d.shown_at.is_none() {
                d.shown_at = Some(now);
            }
            if let Some(t) = d.shown_at
                && !d.paused
            {
                if now - t >= DEMO_SECONDS {
                    advance = true;
                } else {
                    ctx.request_repaint_after(std::time::Duration::from_secs_f64(
                        DEMO_SECONDS - (now - t),
                    ));
                }
            }
        }
        if advance {
            self.demo_step(1);
        }
        egui::CentralPanel::default()
            .frame(
                egui::Frame::new()
                    .fill(Color32::from_gray(12))
                    .inner_margin(24.0),
            )
            .show(ui, |ui| self.demo_panes(ui));
    }

    fn demo_panes(&mut self, ui: &mut egui::Ui) {
        let Some(index) = self.demo_image() else {
            return;
        };
        let category = match &self.state.project {
            Some(p) => p.file.images[index].category.clone(),
            None => return,
        };
        let detector = match self.state.detector.clone() {
            Some(m) => {
                let family = self
                    .state
                    .model_file(&m, &category)
                    .map_or("U-Flow", |f| f.train.family.label());
                format!("{family} \"{m}\"")
            }
            None => "the training-free detector".to_string(),
        };
        let Some(p) = &self.state.project else { return };
        let e = &p.file.images[index];
        let detection = self.state.detections.get(&index);
        let level = self.state.nfa_threshold;
        let verdict = match detection {
            Some(d) if !d.regions.is_empty() => {
                let m = d.min_log_nfa();
                let chance = if m < 0.0 {
                    format!("chance makes one this strong once in 10^{:.0} images", -m)
                } else {
                    format!("chance makes {:.1} this strong per image", 10f32.powf(m))
                };
                format!(
                    "{} anomalous region(s) found by {detector}; {chance}",
                    d.regions.len()
                )
            }
            Some(_) => format!("Nothing anomalous found by {detector}"),
            None => format!("{detector} is looking…"),
        };
        let score = detection
            .and_then(|d| d.image_score)
            .map_or(String::new(), |s| format!(" · score {s:.2}"));
        let (paused, pos, n) = self
            .demo
            .as_ref()
            .map_or((false, 0, 0), |d| (d.paused, d.pos, d.order.len()));
        ui.vertical_centered(|ui| {
            ui.label(
                RichText::new(format!("{} · {}{score}", e.category, e.id))
                    .size(34.0)
                    .strong()
                    .color(Color32::WHITE),
            );
            ui.label(RichText::new(verdict).size(24.0).color(Color32::LIGHT_GRAY));
            // The level, and on the same line (the panes never move) the drift check's words
            // where the image is unlike every training image.
            let font = egui::FontId::proportional(20.0);
            let mut job = egui::text::LayoutJob::default();
            job.append(
                &format!("NFA level {level:.1}: {}", false_alarm_text(level)),
                0.0,
                egui::TextFormat::simple(font.clone(), Color32::GRAY),
            );
            if let Some(words) = self
                .state
                .review
                .facts
                .get(index)
                .and_then(|f| f.unlike_training.as_ref())
            {
                job.append(
                    &format!("· this image is {words}"),
                    12.0,
                    egui::TextFormat::simple(font, Color32::from_rgb(200, 150, 255)),
                );
            }
            ui.label(job);
        });
        ui.add_space(12.0);
        let Some(cur) = self.current.as_ref().filter(|c| c.index == index) else {
            ui.spinner();
            return;
        };
        let size = Vec2::new(cur.size.0 as f32, cur.size.1 as f32);
        let room = ui.available_size() - Vec2::new(0.0, 40.0);
        let spacing = 16.0;
        let pane = Vec2::new((room.x - 2.0 * spacing) / 3.0, room.y - 40.0);
        let heat = self
            .heat
            .get(&index)
            .map(|t| t.get(crate::app::HeatmapKind::AnomalyScore).0.clone());
        let Some(demo) = self.demo.as_mut() else {
            return;
        };
        if demo.fitted_for != Some(index) {
            demo.views.iter_mut().for_each(|v| v.fit());
            demo.fitted_for = Some(index);
        }
        let titles = ["Image", "Anomaly heatmap", "Detected regions"];
        ui.horizontal(|ui| {
            ui.spacing_mut().item_spacing.x = spacing;
            for (k, title) in titles.iter().enumerate() {
                ui.vertical(|ui| {
                    ui.label(RichText::new(*title).size(22.0).color(Color32::WHITE));
                    let layers: Vec<Layer> = match (k, &heat) {
                        (1, Some(t)) => vec![Layer {
                            texture: t,
                            opacity: 0.75,
                        }],
                        _ => Vec::new(),
                    };
                    let picture = Picture {
                        texture: &cur.texture,
                        size,
                        layers: &layers,
                    };
                    let out = viewer::show(
                        ui,
                        &mut demo.views[k],
                        &picture,
                        true,
                        Some(pane),
                        &format!("Demo pane {}", k + 1),
                    );
                    if k == 2
                        && let Some(d) = detection
                    {
                        draw_regions(ui, &demo.views[k], out.view, size, d);
                    }
                });
            }
        });
        ui.vertical_centered(|ui| {
            ui.label(
                RichText::new(format!(
                    "{} / {n}{} · Space {} · arrows step · Esc leaves",
                    pos + 1,
                    if paused { " · paused" } else { "" },
                    if paused { "resumes" } else { "pauses" }
                ))
                .size(18.0)
                .color(Color32::GRAY),
            );
        });
    }
}
