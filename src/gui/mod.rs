//! The window: a thin egui layer over [`AppState`]. It draws the state, turns input into
//! [`AppCommand`]s, and uploads textures for what the background decoded or detected. No
//! decoding, file I/O or tensor work happens on this thread: [`Background`] runs detectors and
//! trainings, the [`Loader`] decodes images.

mod actions;
pub mod bench;
mod canvas;
mod demo;
mod detection;
mod evaluation;
mod heatmap;
mod image_list;
mod images;
mod labels;
mod layer_views;
mod live;
mod menus;
mod review;
mod status;
mod tasks;
mod tools;
mod training;
pub mod viewer;
mod widgets;
mod window_state;

pub use heatmap::{HEAT_MAX, SCORE_FLOOR};

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};

use egui::TextureHandle;
use image::RgbaImage;

use crate::app::background::Background;
use crate::app::loader::Loader;
use crate::app::{AppCommand, AppState, NoticeLevel};
use heatmap::HeatTextures;
use layer_views::{Disagreement, DisagreementJob, GroupCheck, LabelTextures};
use viewer::ViewState;

const ROW_HEIGHT: f32 = 52.0;
const THUMB_CACHE: usize = 600;

/// The image on display (its label layers are the store's).
struct Current {
    index: usize,
    size: (u32, u32),
    rgba: RgbaImage,
    texture: TextureHandle,
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
    /// Images whose thumbnail could not be decoded (shown as such, not as a spinner).
    thumbs_failed: HashSet<usize>,
    current: Option<Current>,
    full_requested: Option<(u64, usize)>,
    /// The selected image could not be decoded (its notice is shown; it is not retried).
    failed: Option<usize>,
    view: ViewState,
    /// The image pixel under the cursor, with the index of the image it was on (set by the
    /// viewer each frame; what is told of it must not be told of another image).
    hovered: Option<(usize, u32, u32)>,
    /// The pointer readout's size last frame (where it would sit decides whether it moves).
    readout_size: egui::Vec2,
    seen_generation: u64,
    /// Selection the image list last showed: when it changes by key or command, the list scrolls.
    listed_selection: Option<usize>,
    list_offset: f32,
    /// Heatmap textures of the detections, by image index.
    heat: HashMap<usize, HeatTextures>,
    /// Label layers of the image on display, the disagreement map, the check of its group.
    label_textures: LabelTextures,
    disagreement: Option<Disagreement>,
    disagreement_job: Option<DisagreementJob>,
    group_check: Option<GroupCheck>,
    /// Compare mode's other views: requested, decoded, and their label textures.
    compare_wanted: HashSet<usize>,
    compare_views: HashMap<usize, (TextureHandle, (u32, u32))>,
    compare_labels: HashMap<(usize, String), TextureHandle>,
    /// The brush stroke's last point, while a stroke is drawn.
    stroke_last: Option<[f32; 2]>,
    /// Where the last frame drew the image: its view rectangle (for tests that point at image
    /// pixels).
    view_rect: Option<egui::Rect>,
    /// Compare mode as last drawn: entering or leaving it fits the image to the new panes.
    drawn_compare: Option<crate::app::annotation::Compare>,
    show_shortcuts: bool,
    /// The training panel is open.
    show_training: bool,
    /// Demo mode, when on.
    demo: Option<window_state::DemoShow>,
    /// The evaluation panel's mIoU plot as last drawn (tests click on it).
    miou_plot: Option<egui_plot::PlotTransform>,
    /// The name typed for a new annotator.
    new_annotator: String,
    /// The right-hand panel's tab; the reviewer's name and the note being typed (and for which
    /// image); the label issue opened last and the box drawn for it.
    side_tab: window_state::SideTab,
    editing_reviewer: bool,
    reviewer_draft: String,
    /// The name field was shown for an action waiting on it last frame (focus it once).
    name_asked: bool,
    /// The image and result the last frame drew with its heatmap and outlines at the level.
    drawn_result: Option<(usize, u64)>,
    note_for: Option<String>,
    note_draft: String,
    opened_issue: Option<crate::project::review::LabelIssue>,
    /// The issues tab lists the labels the model cannot confirm instead of the issues.
    show_unconfirmed: bool,
    issue_box: Option<(usize, [u32; 4])>,
    /// The import and export forms, when open, and folders picked for their fields.
    import_form: Option<window_state::ImportForm>,
    export_form: Option<window_state::ExportForm>,
    picks_tx: Sender<(window_state::PathField, PathBuf)>,
    picks_rx: Receiver<(window_state::PathField, PathBuf)>,
    /// Plots saved as PNG (or why not), from the screenshot's callback.
    saved_tx: Sender<Result<String, String>>,
    saved_rx: Receiver<Result<String, String>>,
    repaint: egui::Context,
}

impl ContrarioApp {
    /// The real app, opening `project` (or the bundled demo when `None`), with the person's
    /// preferences in their config folder.
    pub fn new(ctx: &egui::Context, project: Option<PathBuf>) -> Self {
        Self::with_preferences(ctx, project, crate::app::review::preferences_path())
    }

    /// The app with the person's preferences kept in `preferences` (None: not kept; tests).
    pub fn with_preferences(
        ctx: &egui::Context,
        project: Option<PathBuf>,
        preferences: Option<PathBuf>,
    ) -> Self {
        let repaint = ctx.clone();
        let background = Background::new(Arc::new(move || repaint.request_repaint()));
        let repaint = ctx.clone();
        let loader = Loader::new(Arc::new(move || repaint.request_repaint()));
        let (dialogs_tx, dialogs_rx) = mpsc::channel();
        let (picks_tx, picks_rx) = mpsc::channel();
        let (saved_tx, saved_rx) = mpsc::channel();
        let mut state = AppState::with_preferences(crate::app::demo_project_dir(), preferences);
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
            thumbs_failed: HashSet::new(),
            current: None,
            full_requested: None,
            failed: None,
            view: ViewState::default(),
            hovered: None,
            readout_size: egui::Vec2::ZERO,
            seen_generation: u64::MAX,
            listed_selection: None,
            list_offset: 0.0,
            heat: HashMap::new(),
            label_textures: LabelTextures::default(),
            disagreement: None,
            disagreement_job: None,
            group_check: None,
            compare_wanted: HashSet::new(),
            compare_views: HashMap::new(),
            compare_labels: HashMap::new(),
            stroke_last: None,
            view_rect: None,
            drawn_compare: None,
            show_shortcuts: false,
            show_training: false,
            demo: None,
            miou_plot: None,
            new_annotator: String::new(),
            side_tab: window_state::SideTab::default(),
            editing_reviewer: false,
            reviewer_draft: String::new(),
            name_asked: false,
            drawn_result: None,
            note_for: None,
            note_draft: String::new(),
            opened_issue: None,
            show_unconfirmed: false,
            issue_box: None,
            import_form: None,
            export_form: None,
            picks_tx,
            picks_rx,
            saved_tx,
            saved_rx,
            repaint: ctx.clone(),
        }
    }

    /// True when nothing is loading and the worker has reported the device: tests wait for this.
    pub fn is_settled(&self) -> bool {
        self.loader.pending() == 0
            && self.background.is_idle(&self.state)
            && self.disagreement_job.is_none()
            && self.group_check.as_ref().is_none_or(|c| c.rx.is_none())
            && self.state.torch.is_some()
            && (self.state.selected.is_none()
                || self.failed == self.state.selected
                || self.current.as_ref().map(|c| c.index) == self.state.selected)
    }

    pub fn apply(&mut self, cmd: AppCommand) {
        self.state.apply(cmd);
    }

    /// Where image pixel coordinate (x, y) was on screen in the last frame (tests point there).
    pub fn screen_of(&self, x: f32, y: f32) -> Option<egui::Pos2> {
        Some(self.view.to_screen(self.view_rect?, egui::pos2(x, y)))
    }

    /// The image whose detection the last frame drew, heatmap and outlines at the level.
    pub fn result_drawn(&self) -> Option<usize> {
        self.drawn_result.map(|(i, _)| i)
    }

    /// The view's zoom and centre (compare mode's panes share them).
    pub fn view_state(&self) -> (f32, egui::Pos2) {
        (self.view.zoom, self.view.center)
    }

    /// A label issue opened from its panel: once its image is on display, zoom on it and mark it.
    fn take_focus(&mut self) {
        if let Some((i, bbox)) = self.state.review.focus
            && let Some(c) = self.current.as_ref().filter(|c| c.index == i)
        {
            let [x0, y0, x1, y1] = crate::app::review::issue_frame(bbox, [c.size.0, c.size.1]);
            self.view.focus(
                egui::Rect::from_min_max(egui::pos2(x0, y0), egui::pos2(x1, y1)),
                crate::app::review::ISSUE_MAX_ZOOM,
            );
            self.issue_box = Some((i, bbox));
            self.state.review.focus = None;
        }
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
}

impl ContrarioApp {
    /// Work of a frame before drawing: background results, decoded images, texture updates,
    /// shortcuts. eframe's `logic` and the headless benchmark both call it.
    pub fn frame_logic(&mut self, ctx: &egui::Context) {
        self.state.poll_saver();
        while let Ok(picked) = self.dialogs_rx.try_recv() {
            match picked {
                Ok(cmd) => self.apply(cmd),
                Err(e) => self.state.notify(NoticeLevel::Error, e),
            }
        }
        while let Ok(saved) = self.saved_rx.try_recv() {
            match saved {
                Ok(text) => self.state.notify(NoticeLevel::Info, text),
                Err(e) => self
                    .state
                    .notify(NoticeLevel::Error, format!("Plots not saved: {e}")),
            }
        }
        self.background.poll(&mut self.state);
        self.poll_picks();
        self.poll_loader(ctx);
        self.take_focus();
        self.refresh_heat(ctx);
        self.apply_label_changes();
        self.poll_disagreement(ctx);
        self.poll_group_check();
        self.shortcuts(ctx);
    }

    /// Drawing a frame (eframe's `ui`, and the headless benchmark's).
    pub fn frame_ui(&mut self, ui: &mut egui::Ui) {
        if self.demo.is_some() {
            return self.demo_ui(ui);
        }
        egui::Panel::top("menu").show(ui, |ui| self.menu_bar(ui));
        egui::Panel::bottom("status").show(ui, |ui| self.status_bar(ui));
        self.live_panel(ui);
        // The side panels share the room so that the review lists name images by their place in
        // the project (category/split/kind/file) and the bars above the image stay on one line.
        egui::Panel::left("images")
            .resizable(true)
            .default_size(230.0)
            .show(ui, |ui| self.image_list(ui));
        egui::Panel::right("labels")
            .resizable(true)
            .default_size(230.0)
            .show(ui, |ui| self.side_panel(ui));
        egui::CentralPanel::default().show(ui, |ui| {
            self.layer_bar(ui);
            self.tool_bar(ui);
            self.detection_bar(ui);
            ui.horizontal_top(|ui| {
                self.tool_strip(ui);
                self.canvas(ui);
            });
        });
        let ctx = ui.ctx().clone();
        self.task_forms(&ctx);
        self.training_window(&ctx);
        self.evaluation_window(&ctx);
        self.notices(&ctx);
        self.shortcut_overlay(&ctx);
    }
}

impl eframe::App for ContrarioApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.frame_logic(ctx);
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.frame_ui(ui);
    }

    /// Closing the window writes every pending label change first.
    fn on_exit(&mut self) {
        for e in self.state.labels.flush() {
            eprintln!("contrario: not saved: {e}");
        }
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
