//! The work behind [`models`](super::models): a detector run over many images, sent to the worker
//! a few images at a time (so that the selected image's detection slips in between), and the
//! evaluation panel's numbers, computed on rayon's pool from the inference cache with the CLI's
//! own `Prepared` evaluation.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};

use super::jobs::{Repaint, spawn_caught};
use super::models::{EvaluationView, Run, curve_levels};
use super::{AppCommand, AppState, NoticeLevel};
use crate::project::evaluation::{Evaluation, Prepared};
use crate::project::{MODEL_META_FILE, Project, Split};
use crate::uflow::worker::{Command, Worker};

/// Set in the tag of a run's inferences, to tell them from the selected image's.
pub const RUN_TAG: u64 = 1 << 62;

/// Images per inference command of a run: small, so that other requests wait seconds at most.
const CHUNK: usize = 4;

/// (generation, model, category, level, (its level-independent part, evaluation)).
type Evaluated = (
    u64,
    String,
    String,
    f32,
    Result<(Arc<Prepared>, Evaluation), String>,
);

impl AppState {
    /// Run the current U-Flow model over every image, or over the filtered list.
    pub(super) fn start_run(&mut self, filtered: bool) {
        if self.project.is_none() {
            return;
        }
        let Some(model) = self.preferred_model() else {
            self.notify(
                NoticeLevel::Warning,
                "The project has no U-Flow model to run: train one first",
            );
            return;
        };
        if self.run.is_some() {
            self.notify(
                NoticeLevel::Warning,
                "A run is already going: cancel it first",
            );
            return;
        }
        // Its results are the detector's from now on (badges, queue and issues read them).
        self.apply(AppCommand::SetDetector(Some(model.clone())));
        let Some(p) = &self.project else { return };
        let images: Vec<usize> = if filtered {
            self.review.rows.clone()
        } else {
            (0..p.file.images.len()).collect()
        };
        let label = self.model_label(&model);
        self.run = Some(Run::new(model, label, images, None));
    }

    /// Open the evaluation panel on a model and category (None closes it). The category's test
    /// images are run first (those in the cache are only read back).
    pub(super) fn open_evaluation(&mut self, which: Option<(String, String)>) {
        let Some((model, category)) = which else {
            self.evaluation = None;
            self.comparison = None;
            return;
        };
        if self.model_file(&model, &category).is_none() {
            self.notify(
                NoticeLevel::Warning,
                format!("Model {model:?} has no version for category {category:?}: train it first"),
            );
            return;
        }
        let Some(tests) = self.test_images(&category) else {
            return;
        };
        // The compared model follows the category when it has a version for it.
        let compared = self
            .comparison
            .as_ref()
            .map(|c| c.model.clone())
            .filter(|m| *m != model && self.model_file(m, &category).is_some());
        self.evaluation = Some(EvaluationView::new(model.clone(), category.clone()));
        self.comparison = None;
        if self.run.is_some() {
            self.notify(
                NoticeLevel::Info,
                "The evaluation waits for the run to end; test images it does not cover are \
                 reported missing",
            );
        } else {
            let label = self.model_label(&model);
            self.run = Some(Run::new(model, label, tests, Some(category)));
        }
        if compared.is_some() {
            self.open_comparison(compared);
        }
    }

    /// The evaluated category's test images (the worker reads cached results back and computes
    /// the others: nothing is read here, on the UI thread).
    fn test_images(&self, category: &str) -> Option<Vec<usize>> {
        let p = self.project.as_ref()?;
        Some(
            p.file
                .images
                .iter()
                .enumerate()
                .filter(|(_, e)| e.category == category && e.split == Split::Test)
                .map(|(i, _)| i)
                .collect(),
        )
    }

    /// Evaluate another model of the panel's category beside it (None: the panel's model alone);
    /// its test images run after the run in flight.
    pub(super) fn open_comparison(&mut self, model: Option<String>) {
        let Some(category) = self.evaluation.as_ref().map(|e| e.category.clone()) else {
            return;
        };
        let Some(model) = model else {
            self.comparison = None;
            self.queued_run = None;
            return;
        };
        if self.model_file(&model, &category).is_none() {
            self.notify(
                NoticeLevel::Warning,
                format!("Model {model:?} has no version for category {category:?}: train it first"),
            );
            return;
        }
        let Some(tests) = self.test_images(&category) else {
            return;
        };
        self.comparison = Some(EvaluationView::new(model.clone(), category.clone()));
        let label = self.model_label(&model);
        let run = Run::new(model, label, tests, Some(category));
        if self.run.is_some() {
            self.queued_run = Some(run);
        } else {
            self.run = Some(run);
        }
    }
}

/// The run in flight and the evaluations computing; owned by the background.
pub struct Runner {
    /// The chunk on the worker: image id -> index.
    inflight: HashMap<String, usize>,
    tx: Sender<Evaluated>,
    rx: Receiver<Evaluated>,
}

impl Default for Runner {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel();
        Self {
            inflight: HashMap::new(),
            tx,
            rx,
        }
    }
}

impl Runner {
    pub fn is_idle(&self, state: &AppState) -> bool {
        state.run.is_none()
            && state.queued_run.is_none()
            && [&state.evaluation, &state.comparison]
                .iter()
                .all(|v| v.as_ref().is_none_or(|e| !e.computing))
    }

    /// Send the run's next chunk when the last one is back, end the run, and (re)compute the
    /// evaluation when it is missing or the NFA level moved.
    pub fn poll(&mut self, state: &mut AppState, worker: &Worker, repaint: &Repaint) {
        while let Ok((generation, model, category, level, outcome)) = self.rx.try_recv() {
            let Some(ev) = [state.evaluation.as_mut(), state.comparison.as_mut()]
                .into_iter()
                .flatten()
                .find(|v| v.model == model && v.category == category)
            else {
                continue;
            };
            if generation != state.generation {
                continue;
            }
            ev.computing = false;
            ev.level = level;
            match outcome {
                Ok((prepared, e)) => {
                    ev.prepared = Some(prepared);
                    ev.outcome = Some(Ok(e));
                }
                Err(e) => ev.outcome = Some(Err(e)),
            }
        }
        if state.run_cancel_requested {
            state.run_cancel_requested = false;
            if let Some(run) = state.run.take() {
                state.notify(
                    NoticeLevel::Info,
                    format!("Run cancelled after {} of {} images", run.done, run.total),
                );
            }
            state.queued_run = None;
            // The chunk on the worker stays known until it is back (its results are dropped),
            // so that an error of it is not taken for the selected image's.
        }
        self.send_chunk(state, worker);
        if state.run.is_none() {
            state.run = state.queued_run.take();
        }
        self.evaluate(state, repaint, false);
        self.evaluate(state, repaint, true);
    }

    fn send_chunk(&mut self, state: &mut AppState, worker: &Worker) {
        if !self.inflight.is_empty() {
            return;
        }
        let Some(run) = state.run.as_mut() else {
            return;
        };
        let Some(p) = &state.project else { return };
        let mut chunk: Vec<usize> = Vec::new();
        let mut category: Option<String> = None;
        while chunk.len() < CHUNK {
            let Some(&i) = run.pending.front() else { break };
            let Some(e) = p.file.images.get(i) else {
                run.pending.pop_front();
                run.failed += 1;
                continue;
            };
            // One model version per command: a chunk holds one category.
            if category.as_ref().is_some_and(|c| *c != e.category) {
                break;
            }
            run.pending.pop_front();
            if !p
                .model_dir(&run.model, &e.category)
                .join(MODEL_META_FILE)
                .exists()
            {
                run.failed += 1;
                continue;
            }
            category = Some(e.category.clone());
            chunk.push(i);
        }
        let Some(category) = category else {
            if run.pending.is_empty() {
                self.finish(state);
            }
            return;
        };
        let images = chunk
            .iter()
            .map(|&i| {
                let e = &p.file.images[i];
                self.inflight.insert(e.id.clone(), i);
                (e.id.clone(), p.image_path(e))
            })
            .collect();
        worker.send(Command::Infer {
            tag: state.generation | RUN_TAG,
            model: p.model_dir(&run.model, &category),
            images,
            cache: Some(p.cache_dir(&run.model, &category)),
            count: None,
            outline: None,
        });
    }

    /// A run's result: it feeds the review (badges, queue, issues) through the cache; the
    /// selected image shows it when the run's model is the detector (its index is returned then;
    /// the others are not kept in memory).
    pub fn inferred(
        &mut self,
        state: &mut AppState,
        tag: u64,
        id: &str,
        cached: bool,
    ) -> Option<usize> {
        let index = self.inflight.remove(id)?;
        if tag & !RUN_TAG != state.generation {
            return None;
        }
        let run = state.run.as_mut()?;
        run.done += 1;
        run.from_cache += cached as usize;
        state.review.stale_images.insert(index);
        if state.detector.as_ref() == Some(&run.model) && state.selected == Some(index) {
            Some(index)
        } else {
            None
        }
    }

    /// The worker refused the chunk in flight (an inference error): count it and go on.
    pub fn chunk_failed(&mut self, state: &mut AppState) -> bool {
        if self.inflight.is_empty() {
            return false;
        }
        if let Some(run) = state.run.as_mut() {
            run.failed += self.inflight.len();
        }
        self.inflight.clear();
        true
    }

    fn finish(&mut self, state: &mut AppState) {
        let Some(run) = state.run.take() else { return };
        // A run for the evaluation panel says so only when something went wrong.
        if run.then_evaluate.is_none() || run.failed > 0 {
            state.notify(NoticeLevel::Info, run.summary());
        }
        if run.failed > 0 && run.done == 0 {
            state.notify(
                NoticeLevel::Warning,
                format!(
                    "{} ran on no image: train it for these categories first",
                    run.label
                ),
            );
        }
        // The review's project-wide analysis reads the new results.
        state.review.stale = true;
    }

    /// (Re)compute the panel's evaluation, or the compared model's.
    fn evaluate(&mut self, state: &mut AppState, repaint: &Repaint, compared: bool) {
        let level = state.nfa_threshold;
        let running = state.run.is_some() || state.queued_run.is_some();
        let Some(p) = &state.project else { return };
        let view = if compared {
            state.comparison.as_mut()
        } else {
            state.evaluation.as_mut()
        };
        let Some(ev) = view else {
            return;
        };
        if ev.computing || running || ev.level == level {
            return;
        }
        ev.computing = true;
        // The project only travels when the level-independent part is still to be made.
        let known = ev.prepared.clone().ok_or_else(|| p.clone());
        let (model, category) = (ev.model.clone(), ev.category.clone());
        let (tx, wake, generation) = (self.tx.clone(), repaint.clone(), state.generation);
        let which = (model.clone(), category.clone());
        spawn_caught(
            move || -> Result<(Arc<Prepared>, Evaluation), String> {
                let prepared = match known {
                    Ok(p) => p,
                    Err(project) => Arc::new(prepare(&project, &model, &category)?),
                };
                let e = prepared.at(level);
                Ok((prepared, e))
            },
            move |r| {
                let r = r
                    .map_err(|panic| format!("the evaluation crashed ({panic})"))
                    .and_then(|r| r);
                let _ = tx.send((generation, which.0, which.1, level, r));
                wake();
            },
        );
    }
}

/// The level-independent part of the evaluation of `model` on `category`'s cached results.
fn prepare(project: &Project, model: &str, category: &str) -> Result<Prepared, String> {
    let results = project
        .cached_test_results(model, category)
        .map_err(|missing| {
            format!(
                "{missing} test image(s) of {category:?} have no result of {model:?}: evaluate \
                 again to run them"
            )
        })?;
    if results.is_empty() {
        return Err(format!("category {category:?} has no test images"));
    }
    Prepared::new(project, &results, &curve_levels())
        .map(|p| p.with_drift(project, model, category, &results))
        .map_err(|e| e.to_string())
}
