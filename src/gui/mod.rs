//! The window: a thin egui layer over [`AppState`]. It draws the state, turns input into
//! [`AppCommand`]s, uploads textures for what the background loader decoded, and shows the
//! worker's messages. No decoding, file I/O or tensor work happens on this thread.

mod detection;
pub mod viewer;

use detection::{DetectionResult, DetectionView, TrainingView, draw_regions};
pub use detection::{HEAT_MAX, false_alarm_text};

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};

use egui::{Color32, ColorImage, Key, RichText, TextureHandle, Vec2};
use image::{GrayImage, RgbaImage};

use crate::acontrario::{Region, regions_at};
use crate::app::{AppCommand, AppState, NoticeLevel};
use crate::loader::{LoadKind, Loaded, Loader};
use crate::model::Progress;
use crate::project::Split;
use crate::worker::{Command, Message, Worker};
use viewer::{CRISP, Layer, MAX_TEXTURE_SIDE, ViewState};

const ROW_HEIGHT: f32 = 52.0;
const THUMB_CACHE: usize = 600;

/// The image on display, with its label layers.
struct Current {
    index: usize,
    size: (u32, u32),
    rgba: RgbaImage,
    texture: TextureHandle,
    labels: Vec<(String, GrayImage)>,
    overlay: Option<(String, TextureHandle)>,
}

pub struct ContrarioApp {
    pub state: AppState,
    worker: Worker,
    loader: Loader,
    dialogs_tx: Sender<AppCommand>,
    dialogs_rx: Receiver<AppCommand>,
    thumbs: HashMap<usize, TextureHandle>,
    thumbs_requested: HashSet<usize>,
    current: Option<Current>,
    full_requested: Option<(u64, usize)>,
    /// The selected image could not be decoded (its notice is shown; it is not retried).
    failed: Option<usize>,
    view: ViewState,
    hovered: Option<(u32, u32)>,
    seen_generation: u64,
    /// Selection the image list last showed: when it changes by key or command, the list scrolls.
    listed_selection: Option<usize>,
    list_offset: f32,
    detections: HashMap<usize, DetectionView>,
    detecting: HashSet<usize>,
    detect_tx: Sender<DetectionResult>,
    /// U-Flow inference in flight on the worker: image id -> index.
    inferring: HashMap<String, usize>,
    training: Option<TrainingView>,
    /// The detector the stored detections came from.
    detections_for: Option<String>,
    detect_rx: Receiver<DetectionResult>,
    repaint: egui::Context,
}

impl ContrarioApp {
    /// The real app, opening `project` (or the bundled demo when `None`).
    pub fn new(ctx: &egui::Context, project: Option<PathBuf>) -> Self {
        let repaint = ctx.clone();
        let worker = Worker::spawn(Box::new(move || repaint.request_repaint()));
        worker.send(Command::Probe);
        worker.send(Command::CheckBackbone);
        let repaint = ctx.clone();
        let loader = Loader::new(Arc::new(move || repaint.request_repaint()));
        let (dialogs_tx, dialogs_rx) = mpsc::channel();
        let (detect_tx, detect_rx) = mpsc::channel();
        let mut state = AppState::new(crate::app::demo_project_dir());
        state.apply(match project {
            Some(p) if p.join(crate::project::PROJECT_FILE).exists() || p.is_file() => {
                AppCommand::OpenProject(p)
            }
            Some(p) if p.is_dir() => AppCommand::OpenImageFolder(p),
            Some(p) => AppCommand::OpenProject(p),
            None => AppCommand::OpenDemo,
        });
        Self {
            state,
            worker,
            loader,
            dialogs_tx,
            dialogs_rx,
            thumbs: HashMap::new(),
            thumbs_requested: HashSet::new(),
            current: None,
            full_requested: None,
            failed: None,
            view: ViewState::default(),
            hovered: None,
            seen_generation: u64::MAX,
            listed_selection: None,
            list_offset: 0.0,
            detections: HashMap::new(),
            detecting: HashSet::new(),
            detect_tx,
            detect_rx,
            inferring: HashMap::new(),
            training: None,
            detections_for: None,
            repaint: ctx.clone(),
        }
    }

    /// True when nothing is loading and the worker has reported the device: tests wait for this.
    pub fn is_settled(&self) -> bool {
        self.loader.pending() == 0
            && self.detecting.is_empty()
            && self.training.is_none()
            && self.state.train_requests.is_empty()
            && self.state.detect_requests.is_empty()
            && self.state.torch.is_some()
            && (self.state.selected.is_none()
                || self.failed == self.state.selected
                || self.current.as_ref().map(|c| c.index) == self.state.selected)
    }

    pub fn apply(&mut self, cmd: AppCommand) {
        self.state.apply(cmd);
    }

    fn poll_background(&mut self, ctx: &egui::Context) {
        while let Ok(cmd) = self.dialogs_rx.try_recv() {
            self.apply(cmd);
        }
        while let Some(msg) = self.worker.try_recv() {
            match msg {
                Message::Torch(info) => self.state.torch = Some(info),
                // Nothing to show: trainings and inferences report through their own messages.
                Message::BackboneReady { .. } | Message::Finished => {}
                Message::Progress(p) => {
                    if let Some(t) = &mut self.training {
                        t.text = match p {
                            Progress::Resumed { epochs_done } => {
                                format!("resuming after epoch {epochs_done}")
                            }
                            Progress::Features { done, total } => {
                                format!("features {done}/{total}")
                            }
                            Progress::Step {
                                epoch, step, steps, ..
                            } => {
                                format!("epoch {} step {}/{steps}", epoch + 1, step + 1)
                            }
                            Progress::Epoch {
                                epoch,
                                epochs,
                                validation_nll,
                                eta_seconds,
                                ..
                            } => format!(
                                "epoch {}/{epochs} · validation NLL {validation_nll:.0} · {eta_seconds:.0} s left",
                                epoch + 1
                            ),
                        };
                    }
                }
                Message::Trained { file, seconds, .. } => {
                    // The models folder changed either way.
                    if let Some(p) = &self.state.project {
                        self.state.models = crate::app::model_names(&p.root);
                    }
                    let Some(TrainingView {
                        category: cat,
                        model,
                        ..
                    }) = self.training.take()
                    else {
                        continue; // not a training of this window's (it was let go)
                    };
                    let z2: Vec<String> = file
                        .calibration
                        .mean_z2_per_scale
                        .iter()
                        .map(|v| format!("{v:.2}"))
                        .collect();
                    self.state.notify(
                        NoticeLevel::Info,
                        format!(
                            "U-Flow trained on {cat} in {seconds:.0} s (best epoch {}; mean z^2 per scale on held-out normals {})",
                            file.best_epoch + 1,
                            z2.join(", ")
                        ),
                    );
                    self.apply(AppCommand::SetDetector(Some(model)));
                    self.detections.clear();
                }
                Message::Inferred { id, result } => {
                    if let Some(index) = self.inferring.remove(&id) {
                        self.detecting.remove(&index);
                        let d = DetectionView::new(
                            ctx,
                            index,
                            result.log_nfa,
                            Some(result.anomaly_map),
                            None,
                        );
                        self.detections.insert(index, d);
                    }
                }
                Message::Error { context, message } => {
                    if context.starts_with("training") {
                        self.training = None;
                    }
                    if context.starts_with("inference") {
                        for (_, i) in self.inferring.drain() {
                            self.detecting.remove(&i);
                        }
                    }
                    self.state
                        .notify(NoticeLevel::Warning, format!("{context}: {message}"))
                }
            }
        }
        if self.seen_generation != self.state.generation {
            self.seen_generation = self.state.generation;
            self.loader.set_thumb_cache(
                self.state
                    .project
                    .as_ref()
                    .filter(|p| p.saved)
                    .map(|p| p.root.join("cache").join("thumbs")),
            );
            self.thumbs.clear();
            self.thumbs_requested.clear();
            self.current = None;
            self.full_requested = None;
            self.failed = None;
            self.detections.clear();
            self.detecting.clear();
            self.view.fit();
        }
        self.poll_detections(ctx);
        self.poll_training();
        for Loaded {
            generation,
            index,
            kind,
            result,
        } in self.loader.drain()
        {
            if generation != self.state.generation {
                continue;
            }
            match (kind, result) {
                (LoadKind::Thumbnail, Ok(img)) => {
                    let tex =
                        ctx.load_texture(format!("thumb{index}"), color_image(&img.rgba), CRISP);
                    self.thumbs.insert(index, tex);
                }
                (LoadKind::Full, Ok(img)) if Some(index) == self.state.selected => {
                    let mut labels = Vec::new();
                    for (who, mask) in img.labels {
                        match mask {
                            Ok(m) => labels.push((who, m)),
                            Err(e) => self.state.notify(NoticeLevel::Warning, e),
                        }
                    }
                    let display = fit_texture(&img.rgba);
                    let texture = ctx.load_texture(format!("image{index}"), display, CRISP);
                    if self
                        .current
                        .as_ref()
                        .is_none_or(|c| c.size != img.rgba.dimensions())
                    {
                        // Keep the zoom while stepping through images of one size; refit otherwise.
                        self.view.fit();
                    }
                    self.current = Some(Current {
                        index,
                        size: img.rgba.dimensions(),
                        rgba: img.rgba,
                        texture,
                        labels,
                        overlay: None,
                    });
                }
                (LoadKind::Full, Ok(_)) => {}
                (_, Err(e)) => {
                    if kind == LoadKind::Full && Some(index) == self.state.selected {
                        self.failed = Some(index);
                        self.current = None;
                    }
                    // One notice per failure, whichever of the thumbnail and the full load
                    // reports it first (they race).
                    if !self.state.notices.iter().any(|n| n.text == e) {
                        self.state.notify(NoticeLevel::Error, e);
                    }
                }
            }
        }
        self.request_selected();
        self.refresh_overlay(ctx);
    }

    fn request_selected(&mut self) {
        let (Some(sel), Some(project)) = (self.state.selected, &self.state.project) else {
            return;
        };
        let key = (self.state.generation, sel);
        if self.full_requested == Some(key) {
            return;
        }
        self.full_requested = Some(key);
        let entry = &project.file.images[sel];
        let labels = entry
            .labels
            .keys()
            .filter_map(|who| project.label_path(entry, who).map(|p| (who.clone(), p)));
        let labels = labels.collect();
        self.loader.request(
            key.0,
            sel,
            LoadKind::Full,
            project.image_path(entry),
            labels,
        );
    }

    fn refresh_overlay(&mut self, ctx: &egui::Context) {
        let Some(cur) = &mut self.current else { return };
        let want = self.state.label_layer.clone();
        if cur.overlay.as_ref().map(|(w, _)| Some(w)) == Some(want.as_ref()) {
            return;
        }
        cur.overlay = None;
        let (Some(who), Some(project)) = (want, &self.state.project) else {
            return;
        };
        let Some((_, mask)) = cur.labels.iter().find(|(w, _)| *w == who) else {
            return;
        };
        let mut rgba = RgbaImage::new(mask.width(), mask.height());
        for (dst, src) in rgba.pixels_mut().zip(mask.pixels()) {
            if src.0[0] != 0 {
                let c = project.class(src.0[0]).map_or([255, 0, 0], |c| c.color);
                *dst = image::Rgba([c[0], c[1], c[2], 255]);
            }
        }
        let tex = ctx.load_texture(format!("labels-{who}"), fit_texture(&rgba), CRISP);
        cur.overlay = Some((who, tex));
    }

    fn open_dialog(&self, folder_of_images: bool) {
        let tx = self.dialogs_tx.clone();
        // The dialog runs on its own thread so the window keeps repainting behind it.
        std::thread::spawn(move || {
            let title = if folder_of_images {
                "Open a folder of images"
            } else {
                "Open a project"
            };
            if let Some(dir) = rfd::FileDialog::new().set_title(title).pick_folder() {
                let _ = tx.send(if folder_of_images {
                    AppCommand::OpenImageFolder(dir)
                } else {
                    AppCommand::OpenProject(dir)
                });
            }
        });
    }

    fn shortcuts(&mut self, ctx: &egui::Context) {
        if ctx.egui_wants_keyboard_input() {
            return;
        }
        let mut cmds = Vec::new();
        ctx.input(|i| {
            if i.key_pressed(Key::ArrowRight)
                || i.key_pressed(Key::ArrowDown)
                || i.key_pressed(Key::J)
            {
                cmds.push(AppCommand::SelectNext);
            }
            if i.key_pressed(Key::ArrowLeft) || i.key_pressed(Key::ArrowUp) || i.key_pressed(Key::K)
            {
                cmds.push(AppCommand::SelectPrevious);
            }
        });
        for c in cmds {
            self.apply(c);
        }
        if ctx.input(|i| i.key_pressed(Key::F)) {
            self.view.fit();
        }
        if ctx.input(|i| i.key_pressed(Key::Num1)) {
            self.view.zoom = 1.0;
        }
        if ctx.input(|i| i.modifiers.command && i.key_pressed(Key::O)) {
            self.open_dialog(false);
        }
    }

    fn menu_bar(&mut self, ui: &mut egui::Ui) {
        egui::MenuBar::new().ui(ui, |ui| {
            ui.menu_button("File", |ui| {
                if ui.button("Open project…").clicked() {
                    self.open_dialog(false);
                }
                if ui.button("Open folder of images…").clicked() {
                    self.open_dialog(true);
                }
                if ui.button("Open demo project").clicked() {
                    self.apply(AppCommand::OpenDemo);
                }
                ui.separator();
                if ui.button("Quit").clicked() {
                    ui.ctx().send_viewport_cmd(egui::ViewportCommand::Close);
                }
            });
            ui.menu_button("View", |ui| {
                if ui.button("Fit to window (F)").clicked() {
                    self.view.fit();
                }
                if ui.button("Actual pixels 1:1 (1)").clicked() {
                    self.view.zoom = 1.0;
                }
                if ui.button("Next image (Right)").clicked() {
                    self.apply(AppCommand::SelectNext);
                }
                if ui.button("Previous image (Left)").clicked() {
                    self.apply(AppCommand::SelectPrevious);
                }
            });
        });
    }

    fn status_bar(&self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            match &self.state.project {
                Some(p) => {
                    ui.label(format!("{} · {} images", p.file.name, p.file.images.len()));
                }
                None => {
                    ui.label("No project");
                }
            }
            if let (Some(cur), Some(p)) = (&self.current, &self.state.project) {
                ui.separator();
                let e = &p.file.images[cur.index];
                ui.label(format!("{} · {}×{}", e.id, cur.size.0, cur.size.1));
                ui.separator();
                ui.label(format!("zoom {:.0}%", self.view.zoom * 100.0));
                if let Some((x, y)) = self.hovered {
                    let px = cur.rgba.get_pixel(x, y).0;
                    ui.separator();
                    ui.label(format!("({x}, {y}) RGB {} {} {}", px[0], px[1], px[2]));
                    if let Some(d) = self.detections.get(&cur.index) {
                        let score = d.score.as_ref().map(|(m, _)| m);
                        ui.separator();
                        ui.label(detection::readout(&d.log_nfa, score, (x, y), cur.size));
                    }
                }
            }
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                match &self.state.torch {
                    Some(t) => ui.label(t.summary()),
                    None => ui.label("starting libtorch…"),
                };
            });
        });
    }

    fn image_list(&mut self, ui: &mut egui::Ui) {
        let Some(project) = &self.state.project else {
            ui.label("Open a project or a folder of images from the File menu.");
            return;
        };
        let n = project.file.images.len();
        let generation = self.state.generation;
        let mut clicked = None;
        let mut wanted = Vec::new();
        let mut area = egui::ScrollArea::vertical().auto_shrink([false, false]);
        if self.listed_selection != self.state.selected {
            self.listed_selection = self.state.selected;
            if let Some(sel) = self.state.selected {
                let row = ROW_HEIGHT + ui.spacing().item_spacing.y;
                let visible = ui.available_height();
                let top = sel as f32 * row;
                // Only scroll when the row is out of view, centring it then.
                let current = self.list_offset;
                if top < current || top + row > current + visible {
                    area = area.vertical_scroll_offset((top - visible / 2.0 + row / 2.0).max(0.0));
                }
            }
        }
        let output = area
            .id_salt("image-list")
            .show_rows(ui, ROW_HEIGHT, n, |ui, rows| {
                for i in rows {
                    let e = &project.file.images[i];
                    let selected = self.state.selected == Some(i);
                    let resp = ui
                        .horizontal(|ui| {
                            ui.set_min_height(ROW_HEIGHT);
                            let side = ROW_HEIGHT - 4.0;
                            match self.thumbs.get(&i) {
                                Some(t) => {
                                    let s = t.size_vec2();
                                    let scale = side / s.x.max(s.y);
                                    ui.add(egui::Image::new((t.id(), s * scale)));
                                }
                                None => {
                                    wanted.push(i);
                                    ui.add_sized([side, side], egui::Spinner::new());
                                }
                            }
                            let split = match e.split {
                                Split::Train => "train",
                                Split::Test => "test",
                            };
                            let kind = if e.kind.is_empty() {
                                String::new()
                            } else {
                                format!(" · {}", e.kind)
                            };
                            ui.vertical(|ui| {
                                ui.add_space(6.0);
                                let name = e
                                    .path
                                    .file_name()
                                    .map(|n| n.to_string_lossy())
                                    .unwrap_or_default();
                                ui.label(RichText::new(name).strong());
                                ui.label(
                                    RichText::new(format!(
                                        "{}{split}{kind}",
                                        cat_prefix(&e.category)
                                    ))
                                    .small()
                                    .color(kind_color(&e.kind)),
                                );
                            });
                        })
                        .response;
                    let resp = resp.interact(egui::Sense::click());
                    if selected {
                        ui.painter().rect_stroke(
                            resp.rect.expand(1.0),
                            4.0,
                            egui::Stroke::new(2.0, ui.visuals().selection.stroke.color),
                            egui::StrokeKind::Inside,
                        );
                    }
                    if resp.clicked() {
                        clicked = Some(i);
                    }
                }
            });
        self.list_offset = output.state.clamped_offset().y;
        for i in wanted {
            if self.thumbs_requested.insert(i) {
                let e = &project.file.images[i];
                self.loader.request(
                    generation,
                    i,
                    LoadKind::Thumbnail,
                    project.image_path(e),
                    vec![],
                );
            }
        }
        if self.thumbs.len() > THUMB_CACHE {
            // Forget thumbnails far from the selection; they reload when scrolled back into view.
            let sel = self.state.selected.unwrap_or(0);
            let mut keys: Vec<usize> = self.thumbs.keys().copied().collect();
            keys.sort_by_key(|k| std::cmp::Reverse(k.abs_diff(sel)));
            for k in keys.into_iter().take(self.thumbs.len() - THUMB_CACHE / 2) {
                self.thumbs.remove(&k);
                self.thumbs_requested.remove(&k);
            }
        }
        if let Some(i) = clicked {
            self.apply(AppCommand::Select(i));
            // A click selects a visible row: no need to scroll.
            self.listed_selection = Some(i);
        }
    }

    fn notices(&mut self, ui: &mut egui::Ui) {
        let mut dismiss = Vec::new();
        for n in &self.state.notices {
            let (fill, icon) = match n.level {
                NoticeLevel::Info => (Color32::from_rgb(30, 60, 90), "Note:"),
                NoticeLevel::Warning => (Color32::from_rgb(95, 75, 20), "Warning:"),
                NoticeLevel::Error => (Color32::from_rgb(110, 30, 30), "Error:"),
            };
            egui::Frame::new()
                .fill(fill)
                .inner_margin(6.0)
                .corner_radius(4.0)
                .show(ui, |ui| {
                    ui.horizontal(|ui| {
                        ui.label(RichText::new(format!("{icon} {}", n.text)).color(Color32::WHITE));
                        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                            if ui.button("Dismiss").clicked() {
                                dismiss.push(n.id);
                            }
                        });
                    });
                });
        }
        for id in dismiss {
            self.apply(AppCommand::DismissNotice(id));
        }
    }

    fn layer_bar(&mut self, ui: &mut egui::Ui) {
        let Some(project) = &self.state.project else {
            return;
        };
        if project.file.annotators.is_empty() {
            return;
        }
        let mut layer = self.state.label_layer.clone();
        ui.horizontal_wrapped(|ui| {
            let name_of = |id: &Option<String>| match id {
                None => "None".to_string(),
                Some(id) => project
                    .file
                    .annotators
                    .iter()
                    .find(|a| &a.id == id)
                    .map_or(id.clone(), |a| a.name.clone()),
            };
            egui::ComboBox::from_label("labels")
                .selected_text(name_of(&layer))
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut layer, None, "None");
                    for a in &project.file.annotators {
                        ui.selectable_value(&mut layer, Some(a.id.clone()), &a.name);
                    }
                });
            ui.add(egui::Slider::new(&mut self.state.label_opacity, 0.0..=1.0).text("opacity"));
            for c in &project.file.classes {
                let [r, g, b] = c.color;
                let (swatch, _) = ui.allocate_exact_size(Vec2::splat(12.0), egui::Sense::hover());
                ui.painter()
                    .rect_filled(swatch, 2.0, Color32::from_rgb(r, g, b));
                ui.label(&c.name);
            }
        });
        if layer != self.state.label_layer {
            self.apply(AppCommand::ShowLabels(layer));
        }
    }
}

fn cat_prefix(category: &str) -> String {
    if category.is_empty() {
        String::new()
    } else {
        format!("{category} · ")
    }
}

fn kind_color(kind: &str) -> Color32 {
    match kind {
        "good" => Color32::from_rgb(110, 190, 120),
        "" => Color32::GRAY,
        _ => Color32::from_rgb(235, 140, 90),
    }
}

fn color_image(img: &RgbaImage) -> ColorImage {
    ColorImage::from_rgba_unmultiplied([img.width() as usize, img.height() as usize], img.as_raw())
}

/// Downsample images beyond the GPU texture limit; the viewer keeps image coordinates anyway.
fn fit_texture(img: &RgbaImage) -> ColorImage {
    if img.width() > MAX_TEXTURE_SIDE || img.height() > MAX_TEXTURE_SIDE {
        color_image(&crate::imaging::fit_within(img, MAX_TEXTURE_SIDE))
    } else {
        color_image(img)
    }
}

impl eframe::App for ContrarioApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.state.poll_saver();
        self.poll_background(ctx);
        self.shortcuts(ctx);
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        egui::Panel::top("menu").show(ui, |ui| self.menu_bar(ui));
        egui::Panel::bottom("status").show(ui, |ui| self.status_bar(ui));
        egui::Panel::left("images")
            .resizable(true)
            .default_size(260.0)
            .show(ui, |ui| self.image_list(ui));
        egui::CentralPanel::default().show(ui, |ui| {
            self.notices(ui);
            self.layer_bar(ui);
            self.detection_bar(ui);
            self.hovered = None;
            match &self.current {
                Some(cur) => {
                    let detection = self.detections.get(&cur.index);
                    let mut layers: Vec<Layer> = Vec::new();
                    if let Some(d) = detection.filter(|_| self.state.show_heatmap) {
                        layers.push(Layer {
                            texture: d.heatmap(self.state.heatmap_kind).0,
                            opacity: self.state.heatmap_opacity,
                        });
                    }
                    layers.extend(cur.overlay.iter().map(|(_, t)| Layer {
                        texture: t,
                        opacity: self.state.label_opacity,
                    }));
                    let size = Vec2::new(cur.size.0 as f32, cur.size.1 as f32);
                    let out = viewer::show(ui, &mut self.view, &cur.texture, size, &layers);
                    self.hovered = out.hovered_pixel;
                    if let Some(d) = detection {
                        draw_regions(ui, &self.view, out.view, size, d);
                    }
                }
                None if self.failed.is_some() && self.failed == self.state.selected => {
                    ui.centered_and_justified(|ui| {
                        ui.label("This image cannot be displayed (see the notice above).")
                    });
                }
                None if self.state.selected.is_some() => {
                    ui.centered_and_justified(|ui| ui.spinner());
                }
                None => {
                    ui.centered_and_justified(|ui| ui.label("No image selected"));
                }
            }
        });
    }
}

/// Open the window (blocking until it closes).
pub fn run(project: Option<PathBuf>) -> anyhow::Result<()> {
    let mut viewport = egui::ViewportBuilder::default()
        .with_title("Contrario")
        .with_app_id("contrario")
        .with_inner_size([1280.0, 800.0]);
    if let Ok(icon) = image::load_from_memory(include_bytes!("../../assets/icon.png")) {
        let icon = icon.to_rgba8();
        viewport = viewport.with_icon(egui::IconData {
            width: icon.width(),
            height: icon.height(),
            rgba: icon.into_raw(),
        });
    }
    let options = eframe::NativeOptions {
        viewport,
        ..Default::default()
    };
    eframe::run_native(
        "Contrario",
        options,
        Box::new(move |cc| Ok(Box::new(ContrarioApp::new(&cc.egui_ctx, project)))),
    )
    .map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))
}
