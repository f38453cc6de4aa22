//! Import and export run in the background: [`AppState`] queues a request, [`Tasks`] runs it on
//! a thread of its own with a progress counter and folds the outcome back as a notice.

use super::jobs::{Repaint, spawn_caught};
use super::tasks::{Task, TaskRequest};
use super::{AppCommand, AppState, NoticeLevel};
use crate::project::export::{self, ExportRequest};
use crate::project::import::{self, ImportRequest};
use crate::project::storage::ProjectLock;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::Instant;

enum Finished {
    Imported(ImportRequest, Result<import::ImportSummary, String>),
    Exported(ExportRequest, Result<export::ExportSummary, String>),
}

/// The jobs' channel; owned by the background.
pub struct Tasks {
    tx: Sender<Finished>,
    rx: Receiver<Finished>,
}

impl Default for Tasks {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel();
        Self { tx, rx }
    }
}

impl AppState {
    pub(super) fn request_task(&mut self, t: TaskRequest) {
        if let Some(running) = &self.task {
            let text = format!("Wait for {} to finish", running.what);
            self.notify(NoticeLevel::Warning, text);
            return;
        }
        self.task_requests.push(t);
    }

    /// The open project is being imported into: nothing may be written to it meanwhile (the
    /// import rewrites `project.ron`); it is opened again afterwards.
    fn is_open_project(&self, dir: &std::path::Path) -> bool {
        self.project
            .as_ref()
            .is_some_and(|p| std::fs::canonicalize(&p.root).ok() == std::fs::canonicalize(dir).ok())
    }
}

impl Tasks {
    /// Fold finished jobs into the state and start the one asked for.
    pub fn poll(&mut self, state: &mut AppState, repaint: &Repaint) {
        while let Ok(done) = self.rx.try_recv() {
            state.task = None;
            match done {
                Finished::Imported(req, Ok(summary)) => {
                    state.notify(NoticeLevel::Info, summary.sentence(&req.project));
                    state.apply(AppCommand::OpenProject(req.project));
                }
                Finished::Imported(req, Err(e)) => {
                    state.notify(NoticeLevel::Error, format!("Import failed: {e}"));
                    // The open project was held back from writing during the import.
                    if state.is_open_project(&req.project) {
                        state.apply(AppCommand::OpenProject(req.project));
                    }
                }
                Finished::Exported(req, Ok(summary)) => {
                    state.notify(NoticeLevel::Info, summary.sentence(&req.format));
                }
                Finished::Exported(_, Err(e)) => {
                    state.notify(NoticeLevel::Error, format!("Export failed: {e}"))
                }
            }
        }
        if state.task.is_some() {
            return;
        }
        let Some(req) = state.task_requests.pop() else {
            return;
        };
        state.task_requests.clear();
        let done = Arc::new(AtomicUsize::new(0));
        let (tx, wake) = (self.tx.clone(), repaint.clone());
        let what = match req {
            TaskRequest::Import(req) => {
                if state.is_open_project(&req.project) {
                    // What is pending goes first; then nothing is written until it reopens.
                    for e in state.labels.flush() {
                        state.notify(NoticeLevel::Error, format!("Not saved: {e}"));
                    }
                    state.writable = false;
                }
                let counter = done.clone();
                let r = req.clone();
                spawn_caught(
                    move || -> anyhow::Result<import::ImportSummary> {
                        let _lock = if r.project.exists() {
                            Some(ProjectLock::acquire(&r.project)?)
                        } else {
                            None
                        };
                        import::run_import(&r, &|| {
                            counter.fetch_add(1, Ordering::Relaxed);
                        })
                    },
                    move |result| {
                        let result = result.and_then(|r| r.map_err(|e| format!("{e:#}")));
                        let _ = tx.send(Finished::Imported(req, result));
                        wake();
                    },
                );
                "importing"
            }
            TaskRequest::Export(req) => {
                let Some(p) = state.project.clone() else {
                    state.notify(NoticeLevel::Warning, "Open a project to export");
                    return;
                };
                if !p.saved {
                    state.notify(
                        NoticeLevel::Warning,
                        "A folder of images is not a project: import it first (File > Import dataset)",
                    );
                    return;
                }
                // The export reads the files: what is pending is written first.
                for e in state.labels.flush() {
                    state.notify(NoticeLevel::Error, format!("Not saved: {e}"));
                }
                let r = req.clone();
                spawn_caught(
                    move || export::export(&p, &r).map_err(|e| format!("{e:#}")),
                    move |result| {
                        let result = result.and_then(|r| r);
                        let _ = tx.send(Finished::Exported(req, result));
                        wake();
                    },
                );
                "exporting"
            }
        };
        state.task = Some(Task {
            what: what.into(),
            done,
            started: Instant::now(),
        });
    }
}
