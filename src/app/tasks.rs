//! Project-wide jobs started from the window: importing a dataset and exporting labels or a
//! report, as the app state holds them (the request, and the job running with its progress).
//! `task_runner` runs them off the UI thread through the same functions as the CLI.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use crate::project::export::ExportRequest;
use crate::project::import::ImportRequest;

#[derive(Debug, Clone, PartialEq)]
pub enum TaskRequest {
    Import(ImportRequest),
    Export(ExportRequest),
}

/// A job running: what it is, how far it got, since when.
#[derive(Debug, Clone)]
pub struct Task {
    pub what: String,
    /// Images done so far.
    pub done: Arc<AtomicUsize>,
    pub started: Instant,
}

impl Task {
    /// "importing: 1,204 images read · 12 s".
    pub fn line(&self) -> String {
        let n = self.done.load(Ordering::Relaxed);
        let secs = self.started.elapsed().as_secs();
        if n > 0 {
            format!("{}: {n} images read · {secs} s", self.what)
        } else {
            format!("{} · {secs} s", self.what)
        }
    }
}
