//! The work behind the window, off the UI thread: the worker thread (U-Flow training and
//! inference, the only owner of libtorch state) and the training-free detector on rayon's pool.
//! [`Background::poll`] starts what [`AppState`] asks for and folds finished work back into it;
//! the window calls it once a frame and never waits. A panic in a job becomes a notice.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, Sender};

use ndarray::Array2;

use super::detection::{Detection, TrainingJob};
use super::jobs::{Repaint, spawn_caught};
use super::{AppCommand, AppState, NoticeLevel};
use crate::project::imaging;
use crate::project::model_file::TrainConfig;
use crate::project::results::InferenceSummary;
use crate::project::training::Family;
use crate::project::{MODEL_META_FILE, Split};
use crate::stats::acontrario::trainfree;
use crate::uflow::worker::{Command, Message, Worker};

/// A finished training-free detection: (generation, image index, log10 NFA map and seconds).
type Detected = (u64, usize, Result<(Array2<f32>, f64), String>);

/// A cached result read back: (generation, image index, model, result and seconds if cached).
type Looked = (u64, usize, String, Option<(InferenceSummary, f64)>);

/// U-Flow results kept in memory besides the selected image's: the rest are read back from the
/// cache when selected again (a few milliseconds), so memory stays flat over a long review.
const KEPT_RESULTS: usize = 16;

/// The training-free detector on an image file (thesis chapter 3, default parameters).
pub fn detect_trainfree(path: &std::path::Path) -> Result<Array2<f32>, String> {
    let img = imaging::load_dynamic(path).map_err(|e| e.to_string())?;
    let params = trainfree::Params::default();
    trainfree::detect(&trainfree::planes_of(&img), &params)
        .map(|d| d.log_nfa)
        .map_err(|e| format!("{}: {e}", path.display()))
}

pub struct Background {
    worker: Worker,
    /// The training-free detector (a field so that a test can make it fail).
    trainfree: fn(&std::path::Path) -> Result<Array2<f32>, String>,
    repaint: Repaint,
    detect_tx: Sender<Detected>,
    detect_rx: Receiver<Detected>,
    look_tx: Sender<Looked>,
    look_rx: Receiver<Looked>,
    /// Cache reads in flight: (generation, image index).
    looking: std::collections::HashSet<(u64, usize)>,
    /// U-Flow inference in flight: (generation, image id) -> (image index, model).
    inferring: HashMap<(u64, String), (usize, String)>,
    serial: u64,
    /// The review's analyses of the project; imports and exports.
    analyses: super::reviewing::Analyses,
    tasks: super::task_runner::Tasks,
    /// Runs over many images and the evaluation panel's numbers.
    runner: super::runner::Runner,
}

impl Background {
    /// Start the worker and ask it for the device and the built-in backbone.
    pub fn new(repaint: Repaint) -> Self {
        let wake = repaint.clone();
        let worker = Worker::spawn(Box::new(move || wake()));
        worker.send(Command::Probe);
        worker.send(Command::CheckBackbone { all: false });
        let (detect_tx, detect_rx) = mpsc::channel();
        let (look_tx, look_rx) = mpsc::channel();
        Self {
            worker,
            trainfree: detect_trainfree,
            repaint,
            detect_tx,
            detect_rx,
            look_tx,
            look_rx,
            looking: Default::default(),
            inferring: HashMap::new(),
            serial: 0,
            analyses: Default::default(),
            tasks: Default::default(),
            runner: Default::default(),
        }
    }

    /// Nothing of the app's is running in the background.
    pub fn is_idle(&self, state: &AppState) -> bool {
        state.detecting.is_empty()
            && state.training_job.is_none()
            && state.train_requests.is_empty()
            && state.detect_requests.is_empty()
            && state.cache_requests.is_empty()
            && self.looking.is_empty()
            && state.review.is_idle()
            && state.task.is_none()
            && state.task_requests.is_empty()
            && self.runner.is_idle(state)
    }

    /// Start what the state asks for and fold finished work into it.
    pub fn poll(&mut self, state: &mut AppState) {
        if std::mem::take(&mut state.cancel_requested) {
            self.worker.cancel();
        }
        if let Some(cpu_only) = state.device_request.take() {
            self.worker.send(Command::UseDevice { cpu_only });
        }
        for c in std::mem::take(&mut state.watch_requests) {
            let wake = self.repaint.clone();
            state.apply_watch(c, Box::new(move || wake()));
        }
        state.poll_watch();
        self.start_lookups(state);
        self.start_detections(state);
        self.start_trainings(state);
        self.drain_worker(state);
        while let Ok((generation, index, result)) = self.detect_rx.try_recv() {
            if generation != state.generation || state.detector.is_some() {
                continue;
            }
            state.detecting.remove(&index);
            match result {
                Ok((log_nfa, seconds)) => {
                    self.serial += 1;
                    let d = Detection::new(log_nfa, None, seconds, false, self.serial);
                    state.detections.insert(index, d);
                    state.review.stale_images.insert(index);
                }
                Err(e) => state.notify(NoticeLevel::Error, format!("Detection failed: {e}")),
            }
        }
        self.land_lookups(state);
        let level = state.nfa_threshold;
        if let Some(d) = state.selected.and_then(|s| state.detections.get_mut(&s)) {
            d.trace_at(level);
        }
        self.tasks.poll(state, &self.repaint);
        self.runner.poll(state, &self.worker, &self.repaint);
        self.analyses.poll(state, &self.repaint);
    }

    /// Read back the detector's cached results of the images asked for, on rayon's pool: a
    /// selected image shows what a run or an earlier session computed, with no key pressed.
    fn start_lookups(&mut self, state: &mut AppState) {
        let requests = std::mem::take(&mut state.cache_requests);
        let (Some(project), Some(model)) = (&state.project, &state.detector) else {
            return;
        };
        for index in requests {
            let Some(e) = project.file.images.get(index) else {
                continue;
            };
            let key = (state.generation, index);
            if state.detections.contains_key(&index)
                || state.detecting.contains(&index)
                || !self.looking.insert(key)
            {
                continue;
            }
            let (model_dir, cache) = (
                project.model_dir(model, &e.category),
                project.cache_dir(model, &e.category),
            );
            let (id, path, name) = (e.id.clone(), project.image_path(e), model.clone());
            let (tx, repaint) = (self.look_tx.clone(), self.repaint.clone());
            spawn_caught(
                move || {
                    let start = std::time::Instant::now();
                    crate::project::results::cached_summary(&model_dir, &id, &path, &cache)
                        .map(|r| (r, start.elapsed().as_secs_f64()))
                },
                move |found| {
                    // A cache that cannot be read is no result: the detector can still run.
                    let _ = tx.send((key.0, key.1, name, found.ok().flatten()));
                    repaint();
                },
            );
        }
    }

    /// Cached results that came back, shown when still the detector's on this project.
    fn land_lookups(&mut self, state: &mut AppState) {
        while let Ok((generation, index, model, found)) = self.look_rx.try_recv() {
            self.looking.remove(&(generation, index));
            let Some((r, seconds)) = found else { continue };
            if generation != state.generation
                || state.detector.as_ref() != Some(&model)
                || state.detections.contains_key(&index)
            {
                continue;
            }
            self.serial += 1;
            let d = Detection::of_model(r, seconds, true, self.serial);
            state.detections.insert(index, d);
            state.detecting.remove(&index);
            state.review.stale_images.insert(index);
            forget_old_results(state);
        }
    }

    fn start_detections(&mut self, state: &mut AppState) {
        for index in std::mem::take(&mut state.detect_requests) {
            let Some(entry) = state
                .project
                .as_ref()
                .and_then(|p| p.file.images.get(index))
            else {
                continue;
            };
            if state.detections.contains_key(&index) || state.detecting.contains(&index) {
                continue;
            }
            let project = state.project.as_ref().expect("checked above");
            let path = project.image_path(entry);
            if let Some(name) = state.detector.clone() {
                let model = project.model_dir(&name, &entry.category);
                if !model.join(MODEL_META_FILE).exists() {
                    let msg = format!(
                        "Model {name:?} has no version for category {:?}: train it first",
                        entry.category
                    );
                    state.notify(NoticeLevel::Warning, msg);
                    continue;
                }
                let cache = project.cache_dir(&name, &entry.category);
                let id = entry.id.clone();
                self.inferring
                    .insert((state.generation, id.clone()), (index, name));
                self.worker.send(Command::Infer {
                    tag: state.generation,
                    model,
                    images: vec![(id, path)],
                    cache: Some(cache),
                    count: None,
                    outline: None,
                });
            } else {
                let (tx, repaint, generation) = (
                    self.detect_tx.clone(),
                    self.repaint.clone(),
                    state.generation,
                );
                let detect = self.trainfree;
                spawn_caught(
                    move || {
                        let start = std::time::Instant::now();
                        detect(&path).map(|m| (m, start.elapsed().as_secs_f64()))
                    },
                    move |result| {
                        let result = result
                            .map_err(|panic| format!("the detector crashed ({panic})"))
                            .and_then(|r| r);
                        let _ = tx.send((generation, index, result));
                        repaint();
                    },
                );
            }
            state.detecting.insert(index);
        }
    }

    fn start_trainings(&mut self, state: &mut AppState) {
        for category in std::mem::take(&mut state.train_requests) {
            let Some(project) = &state.project else { break };
            if state.training_job.is_some() {
                state.notify(NoticeLevel::Warning, "A training is already running");
                continue;
            }
            let images: Vec<PathBuf> = project
                .file
                .images
                .iter()
                .filter(|e| e.category == category && e.split == Split::Train)
                .map(|e| project.image_path(e))
                .collect();
            if images.is_empty() {
                state.notify(
                    NoticeLevel::Warning,
                    format!("Category {category:?} has no normal training images"),
                );
                continue;
            }
            let settings = state.training_settings();
            let model = settings.model_name();
            let out = project.model_dir(&model, &category);
            self.worker.send(Command::Train {
                images,
                config: TrainConfig::from_settings(&settings),
                out,
            });
            state.training_job = Some(TrainingJob::new(
                category,
                model,
                settings.family,
                settings.epochs,
            ));
        }
    }

    fn drain_worker(&mut self, state: &mut AppState) {
        while let Some(msg) = self.worker.try_recv() {
            match msg {
                Message::Torch(info) => state.torch = Some(info),
                // Nothing to show: trainings and inferences report through their own messages.
                Message::Backbones(found) => {
                    // Only the default is checked here: trainings and inference need it.
                    if let Some(Err(e)) = found.first().map(|b| &b.found) {
                        state.notify(NoticeLevel::Warning, format!("built-in backbone: {e}"));
                    }
                }
                Message::Finished => {}
                Message::Progress(p) => {
                    if let Some(job) = &mut state.training_job {
                        job.update(&p);
                    }
                }
                Message::Trained { file, seconds, .. } => {
                    // The models folder changed either way.
                    if let Some(p) = &state.project {
                        state.models = p.model_names();
                    }
                    let Some(TrainingJob {
                        category, model, ..
                    }) = state.training_job.take()
                    else {
                        continue; // not a training of this window's (it was let go)
                    };
                    state.forget_model_file(&model, &category);
                    let z2: Vec<String> = file
                        .calibration
                        .mean_z2_per_scale
                        .iter()
                        .map(|v| format!("{v:.2}"))
                        .collect();
                    state.notify(
                        NoticeLevel::Info,
                        match file.train.family {
                            Family::Uflow => format!(
                                "U-Flow trained on {category} in {seconds:.0} s (best epoch {}; mean z^2 per scale on held-out normals {})",
                                file.best_epoch + 1,
                                z2.join(", ")
                            ),
                            Family::Patchcore => format!(
                                "PatchCore trained on {category} in {seconds:.0} s ({:.2} false alarms per held-out normal image)",
                                file.calibration.false_alarms_per_normal_image
                            ),
                        },
                    );
                    // A retrained model's results replace the old ones.
                    state.detections.clear();
                    state.detecting.clear();
                    state.apply(AppCommand::SetDetector(Some(model)));
                }
                Message::Inferred {
                    tag,
                    id,
                    result,
                    cached,
                    seconds,
                } => {
                    let target = if tag & super::runner::RUN_TAG != 0 {
                        // A run's result: counted by the runner, shown when on screen.
                        self.runner
                            .inferred(state, tag, &id, cached)
                            .filter(|i| !state.detections.contains_key(i))
                            .and_then(|i| Some((i, state.detector.clone()?)))
                    } else {
                        self.inferring.remove(&(tag, id))
                    };
                    let Some((index, model)) = target else {
                        continue;
                    };
                    let tag = tag & !super::runner::RUN_TAG;
                    if tag != state.generation || state.detector.as_ref() != Some(&model) {
                        continue;
                    }
                    state.detecting.remove(&index);
                    self.serial += 1;
                    let d = Detection::of_model(*result, seconds, cached, self.serial);
                    state.detections.insert(index, d);
                    state.review.stale_images.insert(index);
                    forget_old_results(state);
                }
                Message::Error { context, message } => self.stopped(state, &context, Some(message)),
                Message::Cancelled { context } => self.stopped(state, &context, None),
            }
        }
    }

    /// A worker command that failed (`failure`) or was cancelled at the user's request.
    fn stopped(&mut self, state: &mut AppState, context: &str, failure: Option<String>) {
        if context.starts_with("training")
            && let Some(job) = state.training_job.take()
        {
            // A cancel leaves a checkpoint to resume from.
            state.forget_model_file(&job.model, &job.category);
            if failure.is_none() {
                state.notify(NoticeLevel::Info, job.cancelled_text());
                return;
            }
        }
        // The worker runs commands in order: a run's chunk fails before the selected image's
        // inference queued behind it.
        if context.starts_with("inference") && !self.runner.chunk_failed(state) {
            for ((_, _), (i, _)) in self.inferring.drain() {
                state.detecting.remove(&i);
            }
        }
        match failure {
            Some(message) => state.notify(NoticeLevel::Warning, format!("{context}: {message}")),
            // The user asked for it: news, not a warning.
            None => state.notify(NoticeLevel::Info, format!("{context}: cancelled")),
        }
    }
}

/// Keep the selected image's U-Flow result and the [`KEPT_RESULTS`] newest others: every U-Flow
/// result is in the cache, so one let go is read back when needed. (The training-free detector's
/// results are kept: they exist only in memory.)
fn forget_old_results(state: &mut AppState) {
    if state.detector.is_none() || state.detections.len() <= KEPT_RESULTS + 1 {
        return;
    }
    let mut old: Vec<(u64, usize)> = state
        .detections
        .iter()
        .filter(|(i, _)| Some(**i) != state.selected)
        .map(|(&i, d)| (d.serial, i))
        .collect();
    old.sort_unstable();
    let extra = state.detections.len() - (KEPT_RESULTS + 1);
    for (_, i) in old.into_iter().take(extra) {
        state.detections.remove(&i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    fn open_folder(sizes: &[(u32, u32)]) -> (tempfile::TempDir, AppState) {
        let dir = tempfile::tempdir().unwrap();
        for (k, &(w, h)) in sizes.iter().enumerate() {
            image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 7 + y) as u8, 90, 40]))
                .save(dir.path().join(format!("img{k}.png")))
                .unwrap();
        }
        let mut s = AppState::new(dir.path().join("no-demo"));
        s.apply(AppCommand::OpenImageFolder(dir.path().into()));
        (dir, s)
    }

    /// Poll until nothing runs (a panic would have ended the test process instead).
    fn settle(bg: &mut Background, s: &mut AppState) {
        let start = Instant::now();
        bg.poll(s);
        while !bg.is_idle(s) {
            assert!(start.elapsed() < Duration::from_secs(60), "still busy");
            std::thread::sleep(Duration::from_millis(5));
            bg.poll(s);
        }
    }

    #[test]
    fn a_crashing_detector_becomes_a_notice_and_the_app_goes_on() {
        let (_dir, mut s) = open_folder(&[(40, 30), (40, 30)]);
        let mut bg = Background::new(Arc::new(|| {}));
        bg.trainfree = |_| panic!("injected fault");
        s.apply(AppCommand::DetectSelected);
        settle(&mut bg, &mut s);
        assert!(
            s.notices
                .iter()
                .any(|n| n.text.contains("the detector crashed (injected fault)")),
            "{:?}",
            s.notices
        );
        assert!(s.detections.is_empty());
        // The next detection runs normally.
        bg.trainfree = detect_trainfree;
        s.apply(AppCommand::SelectNext);
        s.apply(AppCommand::DetectSelected);
        settle(&mut bg, &mut s);
        assert!(s.detections.contains_key(&1), "{:?}", s.notices);
    }

    #[test]
    fn detection_requests_run_once_per_image_and_detector() {
        let (_dir, mut s) = open_folder(&[(40, 30), (40, 30)]);
        let mut bg = Background::new(Arc::new(|| {}));
        static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        bg.trainfree = |p| {
            RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            detect_trainfree(p)
        };
        // Asked twice, and again by automatic detection: the image is analysed once.
        s.apply(AppCommand::DetectSelected);
        s.apply(AppCommand::DetectSelected);
        s.apply(AppCommand::SetAutoDetect(true));
        settle(&mut bg, &mut s);
        s.apply(AppCommand::DetectSelected);
        settle(&mut bg, &mut s);
        assert_eq!(RUNS.load(std::sync::atomic::Ordering::SeqCst), 1);
        // Stepping with automatic detection on analyses the next image.
        s.apply(AppCommand::SelectNext);
        settle(&mut bg, &mut s);
        assert_eq!(RUNS.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert_eq!(s.detections.len(), 2);
        // A detector that cannot run says why.
        s.apply(AppCommand::SetDetector(Some("nope".into())));
        settle(&mut bg, &mut s);
        assert!(
            s.detections.is_empty(),
            "another detector's results are gone"
        );
        assert!(
            s.notices.iter().any(|n| n.text.contains("train it first")),
            "{:?}",
            s.notices
        );
    }

    #[test]
    fn a_tiny_image_gets_a_message_not_a_crash() {
        let (_dir, mut s) = open_folder(&[(1, 1), (4096, 200)]);
        let mut bg = Background::new(Arc::new(|| {}));
        s.apply(AppCommand::DetectSelected);
        settle(&mut bg, &mut s);
        assert!(
            s.notices
                .iter()
                .any(|n| n.text.contains("needs at least 17 pixels a side")),
            "{:?}",
            s.notices
        );
        s.apply(AppCommand::SelectNext);
        s.apply(AppCommand::DetectSelected);
        settle(&mut bg, &mut s);
        let d = &s.detections[&1];
        assert_eq!(d.log_nfa.dim(), (57, 1159));
    }
}
