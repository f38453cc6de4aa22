//! Application state and commands, independent of any window: the GUI is a thin layer that draws
//! this state and turns clicks and keys into [`AppCommand`]s. Everything here is testable headless.

pub mod actions;
pub mod annotation;
pub mod background;
pub mod detection;
mod editing;
pub mod jobs;
pub mod loader;
pub mod models;
pub mod mqtt;
pub mod review;
mod reviewing;
pub mod runner;
mod task_runner;
pub mod tasks;
pub mod watch;
mod watching;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use annotation::{Annotation, LabelCommand};
use detection::{Detection, TrainingJob};
use review::{Review, ReviewCommand};

use crate::project::autosave::Autosaver;
use crate::project::labels::LabelStore;
use crate::project::model_file::ModelFile;
use crate::project::storage::ProjectLock;
use crate::project::training::TrainingSettings;
use crate::project::{DetectorChoice, FORMAT_VERSION, PROJECT_FILE, Project};
use crate::uflow::runtime::TorchInfo;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeLevel {
    Info,
    Warning,
    Error,
}

/// A visible, dismissable message (errors never crash the app; they end up here).
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub id: u64,
    pub level: NoticeLevel,
    pub text: String,
}

/// Every user action, from menus, shortcuts, buttons and tests alike.
#[derive(Debug, Clone, PartialEq)]
pub enum AppCommand {
    OpenProject(PathBuf),
    OpenImageFolder(PathBuf),
    OpenDemo,
    Select(usize),
    SelectNext,
    SelectPrevious,
    ShowLabels(Option<String>),
    /// Run the training-free a contrario detector on the selected image.
    DetectSelected,
    /// Detect automatically on every image that gets selected.
    SetAutoDetect(bool),
    /// The NFA level: regions with log10 NFA below it are shown.
    SetNfaThreshold(f32),
    ShowHeatmap(bool),
    /// What the heatmap shows (for U-Flow results; the training-free detector has one map).
    SetHeatmapKind(HeatmapKind),
    /// Which detector "Detect anomalies" runs: None for the training-free one, or a U-Flow model
    /// name (from the project's models folder).
    SetDetector(Option<String>),
    /// Train a U-Flow model on the normal training images of the selected image's category.
    TrainSelectedCategory,
    /// Epochs, input size and backbone variant of trainings started from the window (kept in
    /// the project); refused with a notice when they cannot train.
    SetTraining(TrainingSettings),
    CancelTraining,
    DismissNotice(u64),
    /// Tools, edits, undo and redo, adjudication, and how labels are shown.
    Label(LabelCommand),
    /// Verdicts, notes, the image list's filter and order, label issues.
    Review(ReviewCommand),
    /// Import a dataset (into a new project or the open one), in the background.
    Import(crate::project::import::ImportRequest),
    /// Export masks, a CSV report or COCO JSON, in the background.
    Export(crate::project::export::ExportRequest),
    /// Run the U-Flow detector over every image (or only the filtered list) into the cache.
    RunDetector {
        filtered: bool,
    },
    CancelRun,
    /// Open the evaluation panel on (model, category); None closes it.
    Evaluate(Option<(String, String)>),
    /// Put another model of the evaluated category beside it in the panel (None: alone).
    CompareWith(Option<String>),
    /// Train and infer on the CPU even when a GPU is usable (false: the GPU again).
    UseCpu(bool),
    /// Live inspection: watch a folder into the project, pause, stop.
    Watch(watch::WatchCommand),
}

/// The two maps a U-Flow result can paint over the image, each on one fixed scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeatmapKind {
    /// -log10 NFA: only where the a contrario test finds something (NFA < 1).
    Nfa,
    /// The model's anomaly map (1 - mean over scales of the likelihood): everywhere, also where
    /// the evidence is too weak for any region to pass the test.
    AnomalyScore,
}

pub struct AppState {
    pub project: Option<Project>,
    /// Index into `project.file.images`.
    pub selected: Option<usize>,
    /// Annotator whose labels are overlaid on the viewer.
    pub label_layer: Option<String>,
    pub label_opacity: f32,
    pub notices: Vec<Notice>,
    pub torch: Option<TorchInfo>,
    /// Detection display: log10 NFA threshold ("expected false alarms per image" = 10^threshold),
    /// heatmap on/off and opacity, automatic detection on selection.
    pub nfa_threshold: f32,
    pub show_heatmap: bool,
    pub heatmap_kind: HeatmapKind,
    pub heatmap_opacity: f32,
    pub auto_detect: bool,
    /// Detection requests the background has not picked up yet (image indices).
    pub detect_requests: Vec<usize>,
    /// Images whose cached result of the detector is to be shown if there is one (selected,
    /// or about to be): read in the background, never inferred.
    pub cache_requests: Vec<usize>,
    /// Results of the current detector per image index, and the images it is working on.
    pub detections: HashMap<usize, Detection>,
    pub detecting: HashSet<usize>,
    /// The U-Flow training running in the background, if any.
    pub training_job: Option<TrainingJob>,
    /// The detector in use (None: training-free) and the U-Flow models the project has.
    pub detector: Option<String>,
    pub models: Vec<String>,
    /// Training requests (category) and cancellations the GUI has not picked up yet.
    pub train_requests: Vec<String>,
    pub cancel_requested: bool,
    /// Settings of trainings started from the window.
    pub training: TrainingSettings,
    /// Bumped whenever a different project is opened, so late background results for the old one
    /// are recognised and dropped.
    pub generation: u64,
    /// The open project's lock; `read_only` when another Contrario holds it.
    pub lock: Option<ProjectLock>,
    pub read_only: bool,
    writable: bool,
    /// Label layers being edited, and the autosaver that writes them, the project's settings
    /// and the journals.
    pub labels: LabelStore,
    /// The tool, the brush, the class and whose layer is edited.
    pub annotation: Annotation,
    /// What is known of each image, the list's filter and order, verdicts, label issues.
    pub review: Review,
    /// The import or export running, and the one asked for.
    pub task: Option<tasks::Task>,
    pub task_requests: Vec<tasks::TaskRequest>,
    /// The detector running over many images, and a cancel the background has not seen yet.
    pub run: Option<models::Run>,
    pub run_cancel_requested: bool,
    /// A change of compute device the background has not sent to the worker yet.
    pub device_request: Option<bool>,
    /// The evaluation panel's model, category and numbers, and the model compared with it.
    pub evaluation: Option<models::EvaluationView>,
    pub comparison: Option<models::EvaluationView>,
    /// A run waiting for the one in flight (the compared model's test images).
    pub queued_run: Option<models::Run>,
    /// The folder being watched, and watch commands the background has not run yet.
    pub live: Option<watch::LiveSession>,
    pub watch_requests: Vec<watch::WatchCommand>,
    /// Model files read so far: (model, category) -> settings, history, calibration.
    model_files: HashMap<(String, String), Option<ModelFile>>,
    /// Checkpoints read so far: (model, category) -> the epochs a restart resumes after.
    checkpoints: HashMap<(String, String), Option<usize>>,
    next_notice: u64,
    demo_dir: PathBuf,
}

/// Where the bundled demo project lives: `CONTRARIO_DEMO`, else `projects/demo` next to the
/// working directory, else the installed package's (`share/contrario/demo` beside the
/// `lib/contrario` folder of the executable), else the one in the source tree this binary was
/// built from.
pub fn demo_project_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("CONTRARIO_DEMO") {
        return PathBuf::from(p);
    }
    let local = PathBuf::from("projects/demo");
    if local.join(PROJECT_FILE).exists() {
        return local;
    }
    let installed = crate::project::install_dir()
        .and_then(|d| Some(d.parent()?.parent()?.join("share/contrario/demo")))
        .filter(|d| d.join(PROJECT_FILE).exists());
    // A package names no folder of the machine that built it.
    #[cfg(contrario_package)]
    let source: Option<PathBuf> = None;
    #[cfg(not(contrario_package))]
    let source = Some(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("projects/demo"));
    installed
        .or(source)
        .unwrap_or_else(|| PathBuf::from("projects/demo"))
}

impl AppState {
    /// The state of a window that keeps no personal preferences (tests, benchmarks).
    pub fn new(demo_dir: PathBuf) -> Self {
        Self::with_preferences(demo_dir, None)
    }

    /// The state, with the person's preferences (the reviewer's name) kept in `preferences`.
    pub fn with_preferences(demo_dir: PathBuf, preferences: Option<PathBuf>) -> Self {
        Self {
            project: None,
            selected: None,
            label_layer: None,
            label_opacity: 0.45,
            notices: Vec::new(),
            torch: None,
            nfa_threshold: 0.0,
            show_heatmap: true,
            heatmap_kind: HeatmapKind::Nfa,
            heatmap_opacity: 0.6,
            auto_detect: false,
            detect_requests: Vec::new(),
            cache_requests: Vec::new(),
            detections: HashMap::new(),
            detecting: HashSet::new(),
            training_job: None,
            detector: None,
            models: Vec::new(),
            train_requests: Vec::new(),
            cancel_requested: false,
            training: TrainingSettings::default(),
            generation: 0,
            lock: None,
            read_only: false,
            writable: false,
            labels: LabelStore::new(Autosaver::new()),
            annotation: Annotation::default(),
            review: Review::new(preferences),
            task: None,
            task_requests: Vec::new(),
            run: None,
            run_cancel_requested: false,
            device_request: None,
            evaluation: None,
            comparison: None,
            queued_run: None,
            live: None,
            watch_requests: Vec::new(),
            model_files: HashMap::new(),
            checkpoints: HashMap::new(),
            next_notice: 0,
            demo_dir,
        }
    }

    /// The U-Flow model the panels and demo mode work with: the detector when it is one, else the
    /// model the training settings write if the project has it, else any of the project's.
    pub fn preferred_model(&self) -> Option<String> {
        if self.detector.is_some() {
            return self.detector.clone();
        }
        let settings = self.training.model_name();
        self.models
            .iter()
            .find(|m| **m == settings)
            .or(self.models.first())
            .cloned()
    }

    /// The window's training knobs as they stand.
    pub fn training_settings(&self) -> TrainingSettings {
        self.training.clone()
    }

    /// Show a notice; the same one already on screen is not repeated (a refused stroke would
    /// otherwise say so once per pointer move).
    pub fn notify(&mut self, level: NoticeLevel, text: impl Into<String>) {
        let text = text.into();
        if self
            .notices
            .iter()
            .any(|n| n.level == level && n.text == text)
        {
            return;
        }
        self.next_notice += 1;
        self.notices.push(Notice {
            id: self.next_notice,
            level,
            text,
        });
    }

    pub fn image_count(&self) -> usize {
        self.project.as_ref().map_or(0, |p| p.file.images.len())
    }

    pub fn apply(&mut self, cmd: AppCommand) {
        match cmd {
            AppCommand::OpenProject(dir) => match Project::open(&dir) {
                Ok(p) => self.open_saved_project(p),
                Err(e) => self.notify(NoticeLevel::Error, format!("Could not open project: {e}")),
            },
            AppCommand::OpenImageFolder(dir) => match Project::from_image_folder(&dir) {
                Ok(p) => {
                    self.lock = None;
                    self.read_only = false;
                    self.set_project(p)
                }
                Err(e) => self.notify(NoticeLevel::Error, format!("Could not open folder: {e}")),
            },
            AppCommand::OpenDemo => {
                let dir = self.demo_dir.clone();
                self.apply(AppCommand::OpenProject(dir));
            }
            AppCommand::Select(i) => {
                if i < self.image_count() {
                    self.select(i);
                }
            }
            AppCommand::SelectNext => self.step_selection(1),
            AppCommand::SelectPrevious => self.step_selection(-1),
            AppCommand::ShowLabels(layer) => self.label_layer = layer,
            AppCommand::DetectSelected => {
                if let Some(i) = self.selected {
                    self.detect_requests.push(i);
                }
            }
            AppCommand::SetAutoDetect(on) => {
                self.auto_detect = on;
                if on {
                    self.apply(AppCommand::DetectSelected);
                }
            }
            AppCommand::SetNfaThreshold(t) => {
                // log10 NFA from -20 (one false alarm in 10^20 images) to 2 (a hundred per image).
                let before = self.nfa_threshold;
                self.nfa_threshold = if t.is_finite() {
                    t.clamp(-20.0, 2.0)
                } else {
                    0.0
                };
                self.persist_settings();
                if self.nfa_threshold != before {
                    // Flags and the agreement with the detection depend on the level.
                    self.review.stale = true;
                    self.refresh_rows();
                }
            }
            AppCommand::ShowHeatmap(on) => self.show_heatmap = on,
            AppCommand::SetHeatmapKind(k) => self.heatmap_kind = k,
            AppCommand::SetDetector(d) => self.set_detector(d),
            AppCommand::TrainSelectedCategory => {
                if let (Some(p), Some(i)) = (&self.project, self.selected) {
                    self.train_requests.push(p.file.images[i].category.clone());
                }
            }
            AppCommand::SetTraining(t) => self.set_training(t),
            AppCommand::CancelTraining => self.cancel_requested = true,
            AppCommand::DismissNotice(id) => self.notices.retain(|n| n.id != id),
            AppCommand::Label(cmd) => self.apply_label(cmd),
            AppCommand::Review(cmd) => self.apply_review(cmd),
            AppCommand::Import(req) => self.request_task(tasks::TaskRequest::Import(req)),
            AppCommand::Export(req) => self.request_task(tasks::TaskRequest::Export(req)),
            AppCommand::RunDetector { filtered } => self.start_run(filtered),
            AppCommand::CancelRun => self.run_cancel_requested = true,
            AppCommand::Evaluate(which) => self.open_evaluation(which),
            AppCommand::CompareWith(model) => self.open_comparison(model),
            AppCommand::UseCpu(on) => self.device_request = Some(on),
            AppCommand::Watch(c) => self.watch_requests.push(c),
        }
    }

    /// A model's file for a category (its settings, training history and calibration), read
    /// once; None when the category has no version of the model.
    pub fn model_file(&mut self, model: &str, category: &str) -> Option<&ModelFile> {
        let key = (model.to_string(), category.to_string());
        if !self.model_files.contains_key(&key) {
            let file = self
                .project
                .as_ref()
                .and_then(|p| ModelFile::read(&p.model_dir(model, category)).ok());
            self.model_files.insert(key.clone(), file);
        }
        self.model_files.get(&key).and_then(|f| f.as_ref())
    }

    /// A model in words, its family and its name ("PatchCore pc"): the family of the selected
    /// image's category's version, else of the first category that has one (a name may be a
    /// U-Flow on one category and a PatchCore on another).
    pub fn model_label(&mut self, model: &str) -> String {
        // Drawn every frame: the selected category, then the files read already, and only then
        // every category (a walk over the project's images).
        let label = |f: &ModelFile| format!("{} {model}", f.train.family.label());
        let selected = self.selected.and_then(|i| {
            let p = self.project.as_ref()?;
            Some(p.file.images.get(i)?.category.clone())
        });
        if let Some(c) = selected
            && let Some(f) = self.model_file(model, &c)
        {
            return label(f);
        }
        if let Some((_, f)) = self
            .model_files
            .iter()
            .filter(|((m, _), _)| m == model)
            .filter_map(|((_, c), f)| Some((c, f.as_ref()?)))
            .min_by_key(|(c, _)| *c)
        {
            return label(f);
        }
        let all = self
            .project
            .as_ref()
            .map(|p| p.categories())
            .unwrap_or_default();
        for c in all {
            if let Some(f) = self.model_file(model, &c) {
                return label(f);
            }
        }
        format!("model {model}")
    }

    /// The epochs a training of `model` on `category` would resume after (a cancelled or crashed
    /// one left a checkpoint), read once.
    pub fn resumable_epochs(&mut self, model: &str, category: &str) -> Option<usize> {
        let key = (model.to_string(), category.to_string());
        if !self.checkpoints.contains_key(&key) {
            let epochs = self.project.as_ref().and_then(|p| {
                crate::uflow::model::checkpoint_epochs(&p.model_dir(model, category))
            });
            self.checkpoints.insert(key.clone(), epochs);
        }
        self.checkpoints.get(&key).copied().flatten()
    }

    /// A training of the model ended (trained, cancelled or failed): its file and checkpoint are
    /// read again when next asked for.
    pub fn forget_model_file(&mut self, model: &str, category: &str) {
        let key = (model.to_string(), category.to_string());
        self.model_files.remove(&key);
        self.checkpoints.remove(&key);
    }

    /// The knobs of the next training from the window, kept in the project; refused with a
    /// notice when they cannot train.
    fn set_training(&mut self, t: TrainingSettings) {
        if let Some(why) = t.problem() {
            self.notify(
                NoticeLevel::Warning,
                format!("Training settings not changed: {why}"),
            );
        } else {
            self.training = t.clone();
            if let Some(p) = &mut self.project
                && self.writable
                && p.file.settings.training != t
            {
                p.file.settings.training = t;
                self.labels.saver().save_project(p);
            }
        }
    }

    /// Another detector: the results shown so far were another detector's. The choice is kept
    /// in the project, which opens on it next time.
    fn set_detector(&mut self, d: Option<String>) {
        if d != self.detector {
            // Results of another detector must not be shown as this one's.
            self.detector = d;
            self.detections.clear();
            self.detecting.clear();
            self.review.stale = true;
            if self.auto_detect {
                self.apply(AppCommand::DetectSelected);
            }
            self.cache_requests.extend(self.selected);
        }
        let choice = Some(match &self.detector {
            Some(m) => DetectorChoice::Model(m.clone()),
            None => DetectorChoice::TrainingFree,
        });
        if let Some(p) = &mut self.project
            && self.writable
            && p.file.settings.detector != choice
        {
            p.file.settings.detector = choice;
            self.labels.saver().save_project(p);
        }
    }

    /// The detector a project opens on: the one chosen there last, else its most recently
    /// trained model, else the training-free detector.
    fn opening_detector(p: &Project, models: &[String]) -> Option<String> {
        match &p.file.settings.detector {
            Some(DetectorChoice::TrainingFree) => None,
            Some(DetectorChoice::Model(m)) if models.contains(m) => Some(m.clone()),
            _ => p.latest_model(),
        }
    }

    /// The next or previous image of the list as filtered and sorted (its first or last when
    /// the selection is not in it).
    fn step_selection(&mut self, delta: isize) {
        let rows = &self.review.rows;
        let n = rows.len();
        if n == 0 {
            return;
        }
        let cur = self
            .selected
            .and_then(|s| rows.iter().position(|&r| r == s))
            .map_or(if delta > 0 { -1 } else { n as isize }, |p| p as isize);
        self.select(rows[(cur + delta).clamp(0, n as isize - 1) as usize]);
    }

    pub(crate) fn select(&mut self, i: usize) {
        self.selected = Some(i);
        if self.auto_detect {
            self.detect_requests.push(i);
        }
        self.cache_requests.push(i);
    }

    /// A project from disk: take its lock (another Contrario on it means read-only here, said
    /// in a notice), and bring an older format up to date, keeping the old file.
    fn open_saved_project(&mut self, mut p: Project) {
        self.lock = None;
        self.read_only = false;
        // The bundled demo is never written (an installed one cannot be): no lock to take.
        let demo =
            std::fs::canonicalize(&p.root).ok() == std::fs::canonicalize(&self.demo_dir).ok();
        match ProjectLock::acquire(&p.root).map_err(|e| (demo, e)) {
            Err((true, _)) => {}
            Ok(l) => self.lock = Some(l),
            Err((false, e)) => {
                self.read_only = true;
                self.notify(
                    NoticeLevel::Warning,
                    format!("{e}. Opened read-only: nothing you change here is saved."),
                );
            }
        }
        if let Some(v) = p.migrated_from
            && !self.read_only
        {
            match p.save() {
                Ok(()) => self.notify(
                    NoticeLevel::Info,
                    format!(
                        "Updated {} from format {v} to {}; the old file is kept as project.v{v}.ron.",
                        p.root.join(PROJECT_FILE).display(),
                        FORMAT_VERSION
                    ),
                ),
                Err(e) => self.notify(
                    NoticeLevel::Warning,
                    format!("Could not update the project file to the current format: {e}"),
                ),
            }
        }
        self.set_project(p);
    }

    /// Whether changes to the open project are written: a saved project this app holds the lock
    /// of, other than the bundled demo (a showcase that `make test` checks byte for byte).
    /// Decided once when the project opens, not on every move of a slider.
    pub fn writable(&self) -> bool {
        self.writable
    }

    /// Keep the project's settings (the NFA level) in `project.ron`, through the autosaver.
    fn persist_settings(&mut self) {
        if let Some(p) = &mut self.project {
            let t = self.nfa_threshold as f64;
            if self.writable && p.file.settings.log10_nfa_threshold != t {
                p.file.settings.log10_nfa_threshold = t;
                self.labels.saver().save_project(p);
            }
        }
    }

    /// Autosave failures since the last frame become notices.
    pub fn poll_saver(&mut self) {
        for e in self.labels.saver().take_errors() {
            self.notify(NoticeLevel::Error, format!("Not saved: {e}"));
        }
    }

    fn set_project(&mut self, p: Project) {
        // A watch scores into the project it was started on.
        if let Some(s) = self.live.take() {
            s.watch.stop();
            self.notify(
                NoticeLevel::Info,
                format!(
                    "Stopped watching {}: another project was opened.",
                    s.watch.config.folder.display()
                ),
            );
        }
        self.writable = p.saved
            && !self.read_only
            && std::fs::canonicalize(&p.root).ok() != std::fs::canonicalize(&self.demo_dir).ok();
        // Whatever the previous project still had pending goes to disk before it is let go.
        for e in self.labels.flush() {
            self.notify(NoticeLevel::Error, format!("Not saved: {e}"));
        }
        self.labels.clear();
        self.generation += 1;
        // Tools and brush stay; what belonged to the old project goes.
        self.annotation = Annotation {
            tool: self.annotation.tool,
            brush_radius: self.annotation.brush_radius,
            class: p.file.classes.first().map_or(1, |c| c.index),
            ..Annotation::default()
        };
        self.selected = if p.file.images.is_empty() {
            None
        } else {
            Some(0)
        };
        // Show the first human annotator's labels by default, if any image has labels at all.
        let has_labels = p.file.images.iter().any(|i| !i.labels.is_empty());
        self.label_layer = has_labels
            .then(|| p.file.annotators.first().map(|a| a.id.clone()))
            .flatten();
        self.nfa_threshold = p.file.settings.log10_nfa_threshold as f32;
        self.training = TrainingSettings::default();
        match p.file.settings.training.problem() {
            None => self.training = p.file.settings.training.clone(),
            Some(why) => self.notify(
                NoticeLevel::Warning,
                format!("The project's training settings are ignored: {why}"),
            ),
        }
        self.detect_requests.clear();
        self.cache_requests.clear();
        self.detections.clear();
        self.detecting.clear();
        self.run = None;
        self.evaluation = None;
        self.model_files.clear();
        self.checkpoints.clear();
        self.models = p.model_names();
        self.detector = Self::opening_detector(&p, &self.models);
        self.review.reset(p.file.images.len());
        self.cache_requests.extend(self.selected);
        self.project = Some(p);
        if self.auto_detect
            && let Some(i) = self.selected
        {
            self.detect_requests.push(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_panels_work_with_the_detector_else_the_settings_model_else_any() {
        let mut s = AppState::new(PathBuf::from("nodemo"));
        assert_eq!(s.preferred_model(), None, "no model, nothing to run");
        s.models = vec!["a".into(), TrainingSettings::default().model_name()];
        assert_eq!(
            s.preferred_model(),
            Some(TrainingSettings::default().model_name())
        );
        s.models = vec!["a".into(), "b".into()];
        assert_eq!(s.preferred_model().as_deref(), Some("a"));
        s.detector = Some("b".into());
        assert_eq!(s.preferred_model().as_deref(), Some("b"));
    }

    #[test]
    fn a_project_opens_on_the_detector_chosen_last_else_its_newest_model() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(PROJECT_FILE),
            crate::project::to_ron(&crate::project::ProjectFile::new("p")),
        )
        .unwrap();
        let open = || {
            let mut s = AppState::new(dir.path().join("nodemo"));
            s.apply(AppCommand::OpenProject(dir.path().into()));
            s
        };
        assert_eq!(
            open().detector,
            None,
            "no model: the training-free detector"
        );
        // Two models, "b" trained after "a" although "a" sorts first.
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        for (name, time) in [("a", std::time::SystemTime::now()), ("b", old)] {
            let d = dir.path().join("models").join(name).join("cat");
            std::fs::create_dir_all(&d).unwrap();
            let f = std::fs::File::create(d.join(crate::project::MODEL_META_FILE)).unwrap();
            f.set_modified(time).unwrap();
        }
        assert_eq!(open().detector.as_deref(), Some("a"), "the newest model");
        // Chosen in the window: kept in the project, the next opening starts on it.
        let mut s = open();
        s.apply(AppCommand::SetDetector(Some("b".into())));
        assert!(s.labels.flush().is_empty());
        drop(s);
        assert_eq!(open().detector.as_deref(), Some("b"));
        let mut s = open();
        s.apply(AppCommand::SetDetector(None));
        assert!(s.labels.flush().is_empty());
        drop(s);
        assert_eq!(open().detector, None, "the training-free detector, chosen");
    }

    #[test]
    fn a_signed_action_waits_for_the_reviewers_name_then_goes_ahead() {
        use crate::project::review::{IssueKind, LabelIssue};
        use review::ReviewCommand;
        let dir = tempfile::tempdir().unwrap();
        let mut f = crate::project::ProjectFile::new("p");
        f.images.push(crate::project::ImageEntry {
            id: "a".into(),
            path: "a.png".into(),
            ..Default::default()
        });
        std::fs::write(dir.path().join(PROJECT_FILE), crate::project::to_ron(&f)).unwrap();
        let mut s = AppState::new(dir.path().join("nodemo"));
        s.apply(AppCommand::OpenProject(dir.path().into()));
        let issue = |x0| LabelIssue {
            image: "a".into(),
            kind: IssueKind::LabelWithoutEvidence {
                annotator: "ana".into(),
            },
            bbox: [x0, 0, x0 + 4, 4],
            area: 16,
            log10_nfa: 1.0,
            strength: 1.0,
            percentile: Some(0.5),
        };
        s.review.issues = vec![(0, issue(0)), (0, issue(10))];
        // Dismissed before anyone said who reviews: it waits, nothing is recorded or refused.
        s.apply(AppCommand::Review(ReviewCommand::DismissIssue(1)));
        assert!(s.review.awaiting_name.is_some());
        assert_eq!(s.review.issues.len(), 2);
        assert!(s.notices.is_empty(), "{:?}", s.notices);
        // Meanwhile the list changed: the issue it was given for is still the one dismissed.
        s.review.issues.remove(0);
        s.apply(AppCommand::Review(ReviewCommand::SetReviewer(
            "Tess".into(),
        )));
        assert!(s.review.awaiting_name.is_none());
        assert!(s.review.issues.is_empty());
        assert!(s.labels.flush().is_empty());
        let lines = std::fs::read_to_string(dir.path().join("journal/issues.jsonl")).unwrap();
        assert_eq!(lines.lines().count(), 1);
        assert!(
            lines.contains("Tess") && lines.contains("dismissed"),
            "{lines}"
        );
        // Let go of: nothing happens when a name comes later.
        s.review.reviewer = None;
        s.review.issues = vec![(0, issue(20))];
        s.apply(AppCommand::Review(ReviewCommand::DismissIssue(0)));
        s.apply(AppCommand::Review(ReviewCommand::CancelAwaiting));
        s.apply(AppCommand::Review(ReviewCommand::SetReviewer(
            "Tess".into(),
        )));
        assert_eq!(s.review.issues.len(), 1);
    }

    #[test]
    fn the_nfa_level_is_kept_in_the_project_but_never_written_into_the_demo() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = crate::project::ProjectFile::new("p");
        f.images.push(crate::project::ImageEntry {
            id: "a".into(),
            path: "a.png".into(),
            ..Default::default()
        });
        let text = crate::project::to_ron(&f);
        std::fs::write(dir.path().join(PROJECT_FILE), &text).unwrap();
        // As a user project: the level is saved.
        let mut s = AppState::new(dir.path().join("elsewhere"));
        s.apply(AppCommand::OpenProject(dir.path().into()));
        s.apply(AppCommand::SetNfaThreshold(-3.0));
        assert!(s.labels.flush().is_empty());
        let again = Project::open(dir.path()).unwrap();
        assert_eq!(again.file.settings.log10_nfa_threshold, -3.0);
        drop(s);
        let mut s = AppState::new(dir.path().join("elsewhere"));
        s.apply(AppCommand::OpenProject(dir.path().into()));
        assert_eq!(s.nfa_threshold, -3.0, "reopened at the saved level");
        drop(s);
        // As the bundled demo: left as it is.
        let before = std::fs::read(dir.path().join(PROJECT_FILE)).unwrap();
        let mut s = AppState::new(dir.path().into());
        s.apply(AppCommand::OpenDemo);
        s.apply(AppCommand::SetNfaThreshold(-7.0));
        assert!(s.labels.flush().is_empty());
        assert_eq!(
            std::fs::read(dir.path().join(PROJECT_FILE)).unwrap(),
            before
        );
    }

    #[test]
    fn a_project_locked_elsewhere_opens_read_only_and_old_formats_are_updated() {
        let dir = tempfile::tempdir().unwrap();
        let v1 = "ProjectFile(format_version: 1, name: \"old\")";
        std::fs::write(dir.path().join(PROJECT_FILE), v1).unwrap();
        let mut s = AppState::new(dir.path().join("nodemo"));
        s.apply(AppCommand::OpenProject(dir.path().into()));
        assert!(!s.read_only);
        assert!(
            s.notices[0].text.contains("from format 1 to 2"),
            "{:?}",
            s.notices
        );
        assert!(dir.path().join("project.v1.ron").exists());
        assert!(dir.path().join(crate::project::storage::LOCK_FILE).exists());
        drop(s); // closing releases the lock
        assert!(!dir.path().join(crate::project::storage::LOCK_FILE).exists());

        // Another live process (pid 1) holds it: opened read-only, with the reason.
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        std::fs::write(
            dir.path().join(crate::project::storage::LOCK_FILE),
            format!("1 {} 0", host.trim()),
        )
        .unwrap();
        let mut s = AppState::new(dir.path().join("nodemo"));
        s.apply(AppCommand::OpenProject(dir.path().into()));
        assert!(s.read_only);
        assert!(s.project.is_some());
        assert_eq!(s.notices[0].level, NoticeLevel::Warning);
        assert!(s.notices[0].text.contains("Opened read-only"));
    }

    #[test]
    fn bad_paths_become_notices_and_keep_the_current_project() {
        let dir = tempfile::tempdir().unwrap();
        let img_dir = dir.path().join("imgs");
        std::fs::create_dir(&img_dir).unwrap();
        image::RgbImage::new(4, 4)
            .save(img_dir.join("a.png"))
            .unwrap();
        let mut s = AppState::new(dir.path().join("nodemo"));
        s.apply(AppCommand::OpenImageFolder(img_dir.clone()));
        assert_eq!(s.image_count(), 1);
        assert_eq!(s.selected, Some(0));
        s.apply(AppCommand::OpenProject(dir.path().join("missing")));
        s.apply(AppCommand::OpenDemo);
        assert_eq!(s.notices.len(), 2);
        assert_eq!(
            s.image_count(),
            1,
            "a failed open must not close the current project"
        );
        let id = s.notices[0].id;
        s.apply(AppCommand::DismissNotice(id));
        assert_eq!(s.notices.len(), 1);
    }

    #[test]
    fn the_nfa_level_is_bounded() {
        // (What detection requests lead to is tested with the background that runs them:
        // app::background's tests.)
        let dir = tempfile::tempdir().unwrap();
        image::RgbImage::new(2, 2)
            .save(dir.path().join("a.png"))
            .unwrap();
        let mut s = AppState::new(dir.path().into());
        s.apply(AppCommand::OpenImageFolder(dir.path().into()));
        s.apply(AppCommand::SetNfaThreshold(-1e9));
        assert_eq!(s.nfa_threshold, -20.0);
        s.apply(AppCommand::SetNfaThreshold(3.5));
        assert_eq!(s.nfa_threshold, 2.0);
        s.apply(AppCommand::SetNfaThreshold(f32::NAN));
        assert_eq!(s.nfa_threshold, 0.0);
    }

    #[test]
    fn training_settings_are_checked_kept_in_the_project_and_name_the_model() {
        let dir = tempfile::tempdir().unwrap();
        let f = crate::project::ProjectFile::new("p");
        let file = dir.path().join(PROJECT_FILE);
        std::fs::write(&file, crate::project::to_ron(&f)).unwrap();
        let mut s = AppState::new(dir.path().join("nodemo"));
        s.apply(AppCommand::OpenProject(dir.path().into()));
        assert_eq!(s.training_settings(), TrainingSettings::default());
        assert_eq!(s.training_settings().model_name(), "uflow-l2");

        let chosen = TrainingSettings {
            epochs: 7,
            input_size: 384,
            builtin: "efficientnet-lite0-s8".into(),
            batch_size: 4,
            learning_rate: 5e-4,
            ..TrainingSettings::default()
        };
        s.apply(AppCommand::SetTraining(chosen.clone()));
        assert_eq!(s.training_settings(), chosen);
        assert_eq!((s.training.epochs, s.training.input_size), (7, 384));
        assert_eq!(chosen.model_name(), "uflow-s8-384");

        for bad in [
            TrainingSettings {
                epochs: 0,
                ..chosen.clone()
            },
            TrainingSettings {
                input_size: 100,
                ..chosen.clone()
            },
            TrainingSettings {
                builtin: "resnet".into(),
                ..chosen.clone()
            },
            TrainingSettings {
                batch_size: 0,
                ..chosen.clone()
            },
            TrainingSettings {
                learning_rate: 2.0,
                ..chosen.clone()
            },
            TrainingSettings {
                backbone_file: Some(dir.path().join("missing.pt")),
                ..chosen.clone()
            },
        ] {
            s.apply(AppCommand::SetTraining(bad));
        }
        assert_eq!(
            s.training_settings(),
            chosen,
            "refused settings change nothing"
        );
        assert_eq!(s.notices.len(), 6, "{:?}", s.notices);
        assert!(
            s.notices
                .iter()
                .all(|n| n.text.starts_with("Training settings not changed"))
        );

        // Kept in project.ron: a reopened project trains with them again.
        assert!(s.labels.flush().is_empty());
        drop(s);
        let mut again = AppState::new(dir.path().join("nodemo"));
        again.apply(AppCommand::OpenProject(dir.path().into()));
        assert_eq!(again.training_settings(), chosen);
        drop(again);

        // A hand-edited setting that cannot train is reported and the defaults are used.
        let text = std::fs::read_to_string(&file).unwrap();
        std::fs::write(&file, text.replace("input_size: 384", "input_size: 100")).unwrap();
        let mut s = AppState::new(dir.path().join("nodemo"));
        s.apply(AppCommand::OpenProject(dir.path().into()));
        assert_eq!(s.training_settings(), TrainingSettings::default());
        assert!(
            s.notices
                .iter()
                .any(|n| n.text.contains("training settings are ignored"))
        );
    }

    #[test]
    fn selection_steps_and_clamps() {
        let dir = tempfile::tempdir().unwrap();
        for n in ["a", "b", "c"] {
            image::RgbImage::new(2, 2)
                .save(dir.path().join(format!("{n}.png")))
                .unwrap();
        }
        let mut s = AppState::new(dir.path().into());
        s.apply(AppCommand::OpenImageFolder(dir.path().into()));
        s.apply(AppCommand::SelectNext);
        s.apply(AppCommand::SelectNext);
        s.apply(AppCommand::SelectNext);
        assert_eq!(s.selected, Some(2));
        s.apply(AppCommand::SelectPrevious);
        assert_eq!(s.selected, Some(1));
        s.apply(AppCommand::Select(99));
        assert_eq!(s.selected, Some(1));
    }
}
