//! The window: a thin egui layer over [`AppState`]. It draws the state, turns input into
//! [`AppCommand`]s, and uploads textures for what the background decoded or detected. No
//! decoding, file I/O or tensor work happens on this thread: [`Background`] runs detectors and
//! trainings, the [`Loader`] decodes images.

mod detection;
mod heatmap;
mod image_list;
mod images;
mod menus;
mod status;
pub mod viewer;

pub use heatmap::{HEAT_MAX, SCORE_FLOOR};

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};

use egui::{TextureHandle, Vec2};
use image::{GrayImage, RgbaImage};

use crate::app::background::Background;
use crate::app::loader::Loader;
use crate::app::{AppCommand, AppState, NoticeLevel};
use heatmap::{HeatTextures, draw_regions};
use viewer::{Layer, ViewState};

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
    background: Background,
    loader: Loader,
    /// What a file dialog chose (on its own thread), or why it failed.
    dialogs_tx: Sender<Result<AppCommand, String>>,
    dialogs_rx: Receiver<Result<AppCommand, String>>,
    thumbs: HashMap<usize, TextureHandle>,
    thumbs_requested: HashSet<usize>,
    current: Option<Current>,
    full_requested: Option<(u64, usize)>,
    /// The selected image could not be decoded (its notice is shown; it is not retried).
    failed: Option<usize>,
    view: ViewState,
    /// The image pixel under the cursor in the last frame, with the index of the image it was
    /// on: the status bar, drawn before the viewer, must not read it on another image.
    hovered: Option<(usize, u32, u32)>,
    seen_generation: u64,
    /// Selection the image list last showed: when it changes by key or command, the list scrolls.
    listed_selection: Option<usize>,
    list_offset: f32,
    /// Heatmap textures of the detections, by image index.
    heat: HashMap<usize, HeatTextures>,
}

impl ContrarioApp {
    /// The real app, opening `project` (or the bundled demo when `None`).
    pub fn new(ctx: &egui::Context, project: Option<PathBuf>) -> Self {
        let repaint = ctx.clone();
        let background = Background::new(Arc::new(move || repaint.request_repaint()));
        let repaint = ctx.clone();
        let loader = Loader::new(Arc::new(move || repaint.request_repaint()));
        let (dialogs_tx, dialogs_rx) = mpsc::channel();
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
            background,
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
            heat: HashMap::new(),
        }
    }

    /// True when nothing is loading and the worker has reported the device: tests wait for this.
    pub fn is_settled(&self) -> bool {
        self.loader.pending() == 0
            && self.background.is_idle(&self.state)
            && self.state.torch.is_some()
            && (self.state.selected.is_none()
                || self.failed == self.state.selected
                || self.current.as_ref().map(|c| c.index) == self.state.selected)
    }

    pub fn apply(&mut self, cmd: AppCommand) {
        self.state.apply(cmd);
    }

    /// Heatmap textures for the detections that are new since the last frame; those of
    /// detections that are gone are dropped.
    fn refresh_heat(&mut self, ctx: &egui::Context) {
        let detections = &self.state.detections;
        self.heat
            .retain(|i, t| detections.get(i).is_some_and(|d| d.serial == t.serial));
        for (&i, d) in detections {
            self.heat
                .entry(i)
                .or_insert_with(|| HeatTextures::new(ctx, i, d));
        }
    }

    /// The viewer with the image, the heatmap, the label overlay and the regions' outlines.
    fn viewer(&mut self, ui: &mut egui::Ui) {
        self.hovered = None;
        let Some(cur) = &self.current else {
            let text = if self.failed.is_some() && self.failed == self.state.selected {
                "This image cannot be displayed (see the notice above)."
            } else if self.state.selected.is_some() {
                ""
            } else {
                "No image selected"
            };
            ui.centered_and_justified(|ui| {
                if text.is_empty() {
                    ui.spinner();
                } else {
                    ui.label(text);
                }
            });
            return;
        };
        let detection = self.state.detections.get(&cur.index);
        let mut layers: Vec<Layer> = Vec::new();
        if let Some(t) = self
            .heat
            .get(&cur.index)
            .filter(|_| self.state.show_heatmap)
        {
            layers.push(Layer {
                texture: t.get(self.state.heatmap_kind).0,
                opacity: self.state.heatmap_opacity,
            });
        }
        layers.extend(cur.overlay.iter().map(|(_, t)| Layer {
            texture: t,
            opacity: self.state.label_opacity,
        }));
        let size = Vec2::new(cur.size.0 as f32, cur.size.1 as f32);
        let out = viewer::show(ui, &mut self.view, &cur.texture, size, &layers);
        self.hovered = out.hovered_pixel.map(|(x, y)| (cur.index, x, y));
        if let Some(d) = detection {
            draw_regions(ui, &self.view, out.view, size, d);
        }
    }
}

impl eframe::App for ContrarioApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.state.poll_saver();
        while let Ok(picked) = self.dialogs_rx.try_recv() {
            match picked {
                Ok(cmd) => self.apply(cmd),
                Err(e) => self.state.notify(NoticeLevel::Error, e),
            }
        }
        self.background.poll(&mut self.state);
        self.poll_loader(ctx);
        self.refresh_heat(ctx);
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
            self.viewer(ui);
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
