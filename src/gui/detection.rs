//! The detection side of the window: running the selected detector (training-free on rayon's
//! pool, U-Flow on the worker), training from the window, the detection bar with the NFA level,
//! and drawing heatmaps and region outlines.

use egui::{Color32, ColorImage, TextureHandle};

use crate::app::HeatmapKind;

use super::*;

/// Anomaly score (-log10 NFA) at which the heatmap saturates: one fixed, dataset-wide scale,
/// never per-image normalisation (which makes good images look hot).
pub const HEAT_MAX: f32 = 20.0;

/// Where the U-Flow anomaly map's scale starts: 1 - exp(-1/2), the score of a place exactly as
/// likely as the training normals on average (mean z^2 = 1 at every scale). Below it the map is
/// left transparent; 1 is the top. Fixed by the model's definition, not by the image.
pub const SCORE_FLOOR: f32 = 0.393_469_34;

/// A detector result for one image: its log10 NFA map, the heatmap texture, and the regions at
/// the threshold they were last traced for.
pub(super) struct DetectionView {
    pub(super) log_nfa: ndarray::Array2<f32>,
    pub(super) heat: TextureHandle,
    /// The U-Flow anomaly map and its texture (None for the training-free detector, whose score
    /// is -log10 NFA itself).
    pub(super) score: Option<(ndarray::Array2<f32>, TextureHandle)>,
    pub(super) regions: Vec<Region>,
    pub(super) traced_at: f32,
    /// How long the detection took, when it was measured here (U-Flow results may come from
    /// the cache).
    pub(super) seconds: Option<f64>,
}

impl DetectionView {
    /// A fresh result for image `index`, with its heatmap textures (traced at the next frame).
    pub(super) fn new(
        ctx: &egui::Context,
        index: usize,
        log_nfa: ndarray::Array2<f32>,
        score: Option<ndarray::Array2<f32>>,
        seconds: Option<f64>,
    ) -> Self {
        let texture = |name: &str, img| {
            ctx.load_texture(format!("{name}{index}"), img, egui::TextureOptions::LINEAR)
        };
        Self {
            heat: texture("heat", heat_image(&log_nfa)),
            score: score.map(|m| {
                let t = texture("score", score_heat_image(&m));
                (m, t)
            }),
            log_nfa,
            regions: Vec::new(),
            traced_at: f32::NAN,
            seconds,
        }
    }

    /// The texture and its scale for the kind asked for, falling back to -log10 NFA when this
    /// result has no anomaly map.
    pub(super) fn heatmap(&self, kind: HeatmapKind) -> (&TextureHandle, HeatmapKind) {
        match (&self.score, kind) {
            (Some((_, t)), HeatmapKind::AnomalyScore) => (t, kind),
            _ => (&self.heat, HeatmapKind::Nfa),
        }
    }
}

pub(super) type DetectionResult = (u64, usize, Result<(ndarray::Array2<f32>, f64), String>);

/// A U-Flow training running on the worker.
pub(super) struct TrainingView {
    pub(super) category: String,
    /// The model it writes (named after its settings).
    pub(super) model: String,
    pub(super) text: String,
}

impl ContrarioApp {
    /// Start requested detections and collect finished ones. The training-free detector is pure
    /// Rust (no libtorch state), so it runs on rayon's pool rather than the tch worker.
    pub(super) fn poll_detections(&mut self, ctx: &egui::Context) {
        if self.detections_for != self.state.detector {
            // Results of another detector must not be shown as this one's.
            self.detections_for = self.state.detector.clone();
            self.detections.clear();
        }
        for index in std::mem::take(&mut self.state.detect_requests) {
            let Some(project) = &self.state.project else {
                break;
            };
            let Some(entry) = project.file.images.get(index) else {
                continue;
            };
            if self.detections.contains_key(&index) || !self.detecting.insert(index) {
                continue;
            }
            let path = project.image_path(entry);
            if let Some(name) = &self.state.detector {
                let model = crate::uflow_cmd::model_dir(project, name, &entry.category);
                if !model.join("model.ron").exists() {
                    self.detecting.remove(&index);
                    let msg = format!(
                        "model {name:?} has no version for category {:?}: train it first",
                        entry.category
                    );
                    self.state.notify(NoticeLevel::Warning, msg);
                    continue;
                }
                let cache = crate::uflow_cmd::cache_dir(project, name, &entry.category);
                self.inferring.insert(entry.id.clone(), index);
                self.worker.send(Command::Infer {
                    model,
                    images: vec![(entry.id.clone(), path)],
                    cache: Some(cache),
                });
                continue;
            }
            let (tx, repaint, generation) = (
                self.detect_tx.clone(),
                self.repaint.clone(),
                self.state.generation,
            );
            rayon::spawn(move || {
                let start = std::time::Instant::now();
                let params = crate::acontrario::trainfree::Params::default();
                let result = crate::trainfree_cmd::detect_file(&path, &params)
                    .map(|m| (m, start.elapsed().as_secs_f64()))
                    .map_err(|e| format!("detection failed: {e:#}"));
                let _ = tx.send((generation, index, result));
                repaint.request_repaint();
            });
        }
        while let Ok((generation, index, result)) = self.detect_rx.try_recv() {
            if generation != self.state.generation {
                continue;
            }
            self.detecting.remove(&index);
            match result {
                Ok((log_nfa, seconds)) => {
                    let d = DetectionView::new(ctx, index, log_nfa, None, Some(seconds));
                    self.detections.insert(index, d);
                }
                Err(e) => self.state.notify(NoticeLevel::Error, e),
            }
        }
        // Re-threshold and re-trace (milliseconds) when the NFA level moved; the map is kept.
        let t = self.state.nfa_threshold;
        if let Some(sel) = self.state.selected
            && let Some(d) = self.detections.get_mut(&sel)
            && d.traced_at != t
        {
            d.regions = regions_at(&d.log_nfa, None, t, 0.35);
            d.traced_at = t;
        }
    }

    pub(super) fn poll_training(&mut self) {
        if std::mem::take(&mut self.state.cancel_requested) {
            self.worker.cancel();
        }
        for category in std::mem::take(&mut self.state.train_requests) {
            let Some(project) = &self.state.project else {
                break;
            };
            if self.training.is_some() {
                self.state
                    .notify(NoticeLevel::Warning, "a training is already running");
                continue;
            }
            let images: Vec<PathBuf> = project
                .file
                .images
                .iter()
                .filter(|e| e.category == category && e.split == crate::project::Split::Train)
                .map(|e| project.image_path(e))
                .collect();
            if images.is_empty() {
                self.state.notify(
                    NoticeLevel::Warning,
                    format!("category {category:?} has no normal training images"),
                );
                continue;
            }
            let model = self.state.training_settings().model_name();
            let out = crate::uflow_cmd::model_dir(project, &model, &category);
            self.worker.send(Command::Train {
                images,
                config: self.state.train_config.clone(),
                out,
            });
            self.training = Some(TrainingView {
                category,
                model,
                text: "starting".into(),
            });
        }
    }

    pub(super) fn detection_bar(&mut self, ui: &mut egui::Ui) {
        if self.state.project.is_none() {
            return;
        }
        let sel = self.state.selected;
        let mut cmds = Vec::new();
        // Two rows: what detects (detector, training), then how its result is shown.
        ui.horizontal_wrapped(|ui| {
            let busy = sel.is_some_and(|s| self.detecting.contains(&s));
            if busy {
                ui.add(egui::Spinner::new());
                ui.label("detecting…");
            } else if ui
                .add_enabled(sel.is_some(), egui::Button::new("Detect anomalies"))
                .on_hover_text(
                    "Training-free a contrario detector (thesis chapter 3) on this image",
                )
                .clicked()
            {
                cmds.push(AppCommand::DetectSelected);
            }
            let name = |d: &Option<String>| d.as_ref().map_or("training-free".to_string(), |m| format!("U-Flow {m}"));
            let mut det = self.state.detector.clone();
            egui::ComboBox::from_label("detector").selected_text(name(&det)).show_ui(ui, |ui| {
                ui.selectable_value(&mut det, None, name(&None));
                for m in &self.state.models {
                    ui.selectable_value(&mut det, Some(m.clone()), name(&Some(m.clone())));
                }
            });
            if det != self.state.detector {
                cmds.push(AppCommand::SetDetector(det));
            }
            match &self.training {
                Some(t) => {
                    ui.add(egui::Spinner::new());
                    ui.label(format!("training {}: {}", t.category, t.text));
                    if ui.button("Cancel training").clicked() {
                        cmds.push(AppCommand::CancelTraining);
                    }
                }
                None => {
                    if ui
                        .add_enabled(sel.is_some(), egui::Button::new("Train U-Flow"))
                        .on_hover_text("Train a U-Flow model on this category's normal training images (background)")
                        .clicked()
                    {
                        cmds.push(AppCommand::TrainSelectedCategory);
                    }
                    training_settings_menu(ui, &self.state.training_settings(), &mut cmds);
                }
            }
            let mut auto = self.state.auto_detect;
            if ui.checkbox(&mut auto, "on every image").changed() {
                cmds.push(AppCommand::SetAutoDetect(auto));
            }
            if let Some(d) = sel.and_then(|s| self.detections.get(&s)) {
                ui.separator();
                let min = d.log_nfa.iter().copied().fold(f32::INFINITY, f32::min);
                let took = d.seconds.map_or(String::new(), |s| format!(" · {s:.1} s"));
                ui.label(format!(
                    "{} region(s) · min log10 NFA {min:.1}{took}",
                    d.regions.len()
                ));
            }
        });
        ui.horizontal_wrapped(|ui| {
            let mut t = self.state.nfa_threshold;
            let slider = egui::Slider::new(&mut t, -20.0..=2.0)
                .step_by(0.5)
                .text("log10 NFA level");
            if ui
                .add(slider)
                .on_hover_text("Regions whose NFA is below 10^level are shown")
                .changed()
            {
                cmds.push(AppCommand::SetNfaThreshold(t));
            }
            ui.label(false_alarm_text(self.state.nfa_threshold));
            ui.separator();
            // What is painted: the chosen map when this result has it, else -log10 NFA.
            let drawn = sel
                .and_then(|s| self.detections.get(&s))
                .map_or(self.state.heatmap_kind, |d| {
                    d.heatmap(self.state.heatmap_kind).1
                });
            let show = self.state.show_heatmap;
            let text = |on: bool, k: HeatmapKind| match (on, k) {
                (false, _) => "no heatmap",
                (true, HeatmapKind::Nfa) => "heatmap: -log10 NFA",
                (true, HeatmapKind::AnomalyScore) => "heatmap: anomaly score",
            };
            let mut choice = (show, drawn);
            egui::ComboBox::from_id_salt("heatmap")
                .selected_text(text(show, drawn))
                .show_ui(ui, |ui| {
                    for c in [
                        (false, drawn),
                        (true, HeatmapKind::Nfa),
                        (true, HeatmapKind::AnomalyScore),
                    ] {
                        ui.selectable_value(&mut choice, c, text(c.0, c.1));
                    }
                })
                .response
                .on_hover_text(
                    "-log10 NFA: where the a contrario test finds regions. Anomaly score: the \
                     U-Flow model's map everywhere, also where the evidence is too weak for a \
                     region (the training-free detector has only the first)",
                );
            if choice != (show, drawn) {
                if choice.0 != show {
                    cmds.push(AppCommand::ShowHeatmap(choice.0));
                }
                if choice.0 {
                    cmds.push(AppCommand::SetHeatmapKind(choice.1));
                }
            }
            ui.scope(|ui| {
                ui.spacing_mut().slider_width = 60.0;
                ui.add(egui::Slider::new(
                    &mut self.state.heatmap_opacity,
                    0.0..=1.0,
                ))
                .on_hover_text("heatmap opacity");
            });
            // The scale as one piece, so that a narrow window wraps it whole.
            ui.horizontal(|ui| match drawn {
                HeatmapKind::Nfa => heat_legend(
                    ui,
                    "0",
                    &format!("{HEAT_MAX:.0}"),
                    "-log10 NFA, one scale for every image, never rescaled",
                ),
                HeatmapKind::AnomalyScore => heat_legend(
                    ui,
                    &format!("{SCORE_FLOOR:.2}"),
                    "1",
                    "1 - likelihood under the model, one scale for every image, never \
                     rescaled; 0.39 is as likely as the training normals on average",
                ),
            });
        });
        for c in cmds {
            self.apply(c);
        }
    }
}

/// What the detector says at image pixel (x, y) of an image of `size` (w, h), for the status bar:
/// the maps are at the detector's own resolution, so the pixel is mapped to its cell.
pub fn readout(
    log_nfa: &ndarray::Array2<f32>,
    score: Option<&ndarray::Array2<f32>>,
    (x, y): (u32, u32),
    (w, h): (u32, u32),
) -> String {
    let at = |m: &ndarray::Array2<f32>| {
        let (mh, mw) = m.dim();
        let i = (y as usize * mh / h.max(1) as usize).min(mh.saturating_sub(1));
        let j = (x as usize * mw / w.max(1) as usize).min(mw.saturating_sub(1));
        m.get((i, j)).copied()
    };
    let mut parts = Vec::new();
    if let Some(v) = at(log_nfa) {
        parts.push(format!("log10 NFA {v:.1}"));
    }
    if let Some(v) = score.and_then(at) {
        parts.push(format!("score {v:.2}"));
    }
    parts.join(" · ")
}

/// "Expected false alarms per image" in words for a log10 NFA level.
pub fn false_alarm_text(level: f32) -> String {
    if level >= 0.0 {
        let n = 10f32.powf(level);
        if n < 9.95 {
            format!("at most {n:.1} false alarms per image")
        } else {
            format!("at most {n:.0} false alarms per image")
        }
    } else {
        format!("at most 1 false alarm per 10^{:.1} images", -level)
    }
}

/// Colour for an anomaly score in [0, 1] of the fixed scale (dark purple to pale yellow).
pub(super) fn heat_color(t: f32) -> [u8; 3] {
    const STOPS: [[f32; 3]; 5] = [
        [40.0, 11.0, 84.0],
        [120.0, 28.0, 109.0],
        [187.0, 55.0, 84.0],
        [249.0, 142.0, 9.0],
        [252.0, 255.0, 164.0],
    ];
    let x = t.clamp(0.0, 1.0) * (STOPS.len() - 1) as f32;
    let i = (x.floor() as usize).min(STOPS.len() - 2);
    let f = x - i as f32;
    let c = |k: usize| (STOPS[i][k] * (1.0 - f) + STOPS[i + 1][k] * f) as u8;
    [c(0), c(1), c(2)]
}

/// Heatmap of -log10 NFA on the fixed scale [0, HEAT_MAX]; transparent where NFA >= 1.
fn heat_image(log_nfa: &ndarray::Array2<f32>) -> ColorImage {
    scaled_heat(log_nfa, |v| -v, 0.0, HEAT_MAX, 0.0)
}

/// Heatmap of a U-Flow anomaly map on the fixed scale [SCORE_FLOOR, 1]. It fades in over the
/// first tenth of the scale: normal places sit around the floor, and a hard edge there would
/// speckle every normal image.
fn score_heat_image(score: &ndarray::Array2<f32>) -> ColorImage {
    scaled_heat(score, |v| v, SCORE_FLOOR, 1.0, 0.1)
}

/// `value(v)` coloured from `lo` (transparent at or below) to `hi` (saturated), opaque from
/// `fade` (a fraction of the scale) on.
fn scaled_heat(
    map: &ndarray::Array2<f32>,
    value: impl Fn(f32) -> f32,
    lo: f32,
    hi: f32,
    fade: f32,
) -> ColorImage {
    let (h, w) = map.dim();
    let mut rgba = Vec::with_capacity(h * w * 4);
    for &v in map.iter() {
        let s = value(v);
        if s <= lo || s.is_nan() {
            rgba.extend_from_slice(&[0, 0, 0, 0]);
        } else {
            let t = (s - lo) / (hi - lo);
            let [r, g, b] = heat_color(t);
            let a = if t < fade { t / fade } else { 1.0 };
            rgba.extend_from_slice(&[r, g, b, (a * 255.0) as u8]);
        }
    }
    ColorImage::from_rgba_unmultiplied([w, h], &rgba)
}

/// The colour scale of the heatmap on display, from `lo` to `hi`.
pub(super) fn heat_legend(ui: &mut egui::Ui, lo: &str, hi: &str, hover: &str) {
    ui.label(lo);
    let (rect, _) = ui.allocate_exact_size(Vec2::new(80.0, 12.0), egui::Sense::hover());
    let n = 30;
    for k in 0..n {
        let x0 = rect.left() + rect.width() * k as f32 / n as f32;
        let x1 = rect.left() + rect.width() * (k + 1) as f32 / n as f32;
        let [r, g, b] = heat_color(k as f32 / (n - 1) as f32);
        ui.painter().rect_filled(
            egui::Rect::from_min_max(egui::pos2(x0, rect.top()), egui::pos2(x1, rect.bottom())),
            0.0,
            Color32::from_rgb(r, g, b),
        );
    }
    ui.label(hi).on_hover_text(hover);
}

/// Region outlines (in detector-map coordinates) as closed lines over the image, with their
/// significance next to them.
pub(super) fn draw_regions(
    ui: &egui::Ui,
    view: &ViewState,
    rect: egui::Rect,
    image_size: Vec2,
    d: &DetectionView,
) {
    let (mh, mw) = d.log_nfa.dim();
    let scale = Vec2::new(image_size.x / mw as f32, image_size.y / mh as f32);
    let painter = ui.painter_at(rect);
    let colour = Color32::from_rgb(80, 255, 120);
    for r in &d.regions {
        for outline in &r.outlines {
            let pts: Vec<egui::Pos2> = outline
                .iter()
                .map(|p| view.to_screen(rect, egui::pos2(p[0] * scale.x, p[1] * scale.y)))
                .collect();
            painter.add(egui::Shape::closed_line(
                pts,
                egui::Stroke::new(2.0, colour),
            ));
        }
        // Label the region at the top of its outline.
        let top = r
            .outlines
            .first()
            .and_then(|o| o.iter().min_by(|a, b| a[1].total_cmp(&b[1])));
        let Some(top) = top else { continue };
        let anchor = view.to_screen(rect, egui::pos2(top[0] * scale.x, top[1] * scale.y));
        painter.text(
            anchor - Vec2::new(0.0, 2.0),
            egui::Align2::LEFT_BOTTOM,
            format!("{:.1}", r.log10_nfa),
            egui::FontId::proportional(12.0),
            colour,
        );
    }
}

/// The training knobs, in a menu beside "Train U-Flow": they take effect at the next training.
fn training_settings_menu(
    ui: &mut egui::Ui,
    current: &crate::project::TrainingSettings,
    cmds: &mut Vec<AppCommand>,
) {
    use crate::project::TrainingSettings;
    ui.menu_button("Training settings", |ui| {
        let mut t = current.clone();
        ui.horizontal(|ui| {
            ui.label("epochs");
            ui.add(egui::DragValue::new(&mut t.epochs).range(1..=TrainingSettings::MAX_EPOCHS));
        });
        egui::ComboBox::from_label("input size")
            .selected_text(format!("{} px", t.input_size))
            .show_ui(ui, |ui| {
                for side in [128, 192, 256, 320, 384, 512] {
                    ui.selectable_value(&mut t.input_size, side, format!("{side} px"));
                }
            });
        egui::ComboBox::from_label("backbone")
            .selected_text(t.builtin.clone())
            .show_ui(ui, |ui| {
                for (name, _, _, stride) in crate::backbone::BUILTIN_VARIANTS {
                    ui.selectable_value(&mut t.builtin, name.to_string(), name)
                        .on_hover_text(format!(
                            "EfficientNet-Lite0 features at strides {stride}, {}, {}",
                            stride * 2,
                            stride * 4
                        ));
                }
            });
        ui.label(format!("writes model \"{}\"", t.model_name()));
        if &t != current {
            cmds.push(AppCommand::SetTraining(t));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heatmaps_are_transparent_where_nothing_is_and_use_fixed_scales() {
        let alpha = |img: &ColorImage| img.pixels.iter().map(|p| p.a()).collect::<Vec<_>>();
        // -log10 NFA: nothing where NFA >= 1, opaque from the first significant value on.
        let nfa = ndarray::arr2(&[[1.0f32, 0.0, -0.5, -50.0]]);
        assert_eq!(alpha(&heat_image(&nfa)), [0, 0, 255, 255]);
        // Anomaly score: nothing at or below the floor, fading in, opaque above a tenth of the
        // scale, the top colour at 1 whatever the image.
        let step = (1.0 - SCORE_FLOOR) * 0.05;
        let score = ndarray::arr2(&[[0.1f32, SCORE_FLOOR, SCORE_FLOOR + step, 0.6, 1.0]]);
        let img = score_heat_image(&score);
        let a = alpha(&img);
        assert_eq!((a[0], a[1]), (0, 0));
        assert!(
            (120..=135).contains(&a[2]),
            "half-way through the fade: {}",
            a[2]
        );
        assert_eq!((a[3], a[4]), (255, 255));
        let [r, g, b] = heat_color(1.0);
        assert_eq!(img.pixels[4], Color32::from_rgba_unmultiplied(r, g, b, 255));
    }

    #[test]
    fn the_readout_maps_an_image_pixel_to_the_cell_of_each_map() {
        // A 2 x 4 NFA map and a 1 x 2 score map over a 400 x 200 image.
        let nfa = ndarray::arr2(&[[0.0f32, 1.0, 2.0, 3.0], [-4.0, -5.0, -6.0, -7.3]]);
        let score = ndarray::arr2(&[[0.25f32, 0.75]]);
        assert_eq!(
            readout(&nfa, Some(&score), (399, 199), (400, 200)),
            "log10 NFA -7.3 · score 0.75"
        );
        assert_eq!(readout(&nfa, None, (100, 0), (400, 200)), "log10 NFA 1.0");
        assert_eq!(
            readout(&nfa, Some(&score), (0, 150), (400, 200)),
            "log10 NFA -4.0 · score 0.25"
        );
        // A pixel past the edge (a stale hover) lands in the last cell, never out of bounds.
        assert_eq!(
            readout(&nfa, None, (900, 900), (400, 200)),
            "log10 NFA -7.3"
        );
    }
}
