//! The autosaver: a thread that writes label masks, `project.ron` and journal lines so the UI
//! never waits on the disk. Changes to one file within a short window are coalesced (a brush
//! stroke rewrites its mask once, not per dab); everything handed over reaches the disk within
//! [`COALESCE`] plus the write time, well inside the 2 seconds users are promised.
//!
//! Order within a batch: masks and other files first, `project.ron` (which refers to them) next,
//! journal lines last. Files are replaced atomically; journal lines are appended with one
//! `write` each, so a killed process leaves whole lines.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::project::mask::LabelMask;
use crate::project::storage;
use crate::project::{PROJECT_FILE, Project};

/// How long the saver waits for more changes after the first one before writing.
pub const COALESCE: Duration = Duration::from_millis(300);

enum Job {
    /// A write that panics, for the test that the thread survives one.
    #[cfg(test)]
    Poison,
    Mask(PathBuf, LabelMask),
    File(PathBuf, Vec<u8>),
    Append(PathBuf, String),
    Flush(Sender<Vec<String>>),
}

/// Handle to the saver thread. Dropping it writes what is pending and joins the thread.
pub struct Autosaver {
    tx: Option<Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
    errors: Arc<Mutex<Vec<String>>>,
}

impl Default for Autosaver {
    fn default() -> Self {
        Self::new()
    }
}

impl Autosaver {
    pub fn new() -> Self {
        let (tx, rx) = mpsc::channel();
        let errors = Arc::new(Mutex::new(Vec::new()));
        let errs = errors.clone();
        let thread = std::thread::Builder::new()
            .name("contrario-autosave".into())
            .spawn(move || run(rx, errs))
            .expect("spawning the autosave thread");
        Self {
            tx: Some(tx),
            thread: Some(thread),
            errors,
        }
    }

    fn send(&self, job: Job) {
        if let Some(tx) = &self.tx
            && tx.send(job).is_err()
        {
            self.errors
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push("the autosave thread stopped: changes are not being saved".into());
        }
    }

    pub fn write_mask(&self, path: PathBuf, mask: LabelMask) {
        self.send(Job::Mask(path, mask));
    }

    pub fn write_file(&self, path: PathBuf, bytes: Vec<u8>) {
        self.send(Job::File(path, bytes));
    }

    pub fn save_project(&self, project: &Project) {
        self.write_file(
            project.root.join(PROJECT_FILE),
            crate::project::to_ron(&project.file).into_bytes(),
        );
    }

    pub fn append_json<T: serde::Serialize>(&self, path: PathBuf, value: &T) {
        match serde_json::to_string(value) {
            Ok(line) => self.send(Job::Append(path, line)),
            Err(e) => self
                .errors
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(format!("journal entry: {e}")),
        }
    }

    /// Write everything pending, wait, and return the errors since the last call (empty when all
    /// writes succeeded).
    pub fn flush(&self) -> Vec<String> {
        let (tx, rx) = mpsc::channel();
        self.send(Job::Flush(tx));
        let mut errs = rx.recv().unwrap_or_default();
        errs.extend(self.take_errors());
        errs
    }

    /// Write failures so far (for the GUI's notices); they are reported once.
    pub fn take_errors(&self) -> Vec<String> {
        std::mem::take(&mut *self.errors.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Drop for Autosaver {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[derive(Default)]
struct Batch {
    #[cfg(test)]
    poisoned: bool,
    files: BTreeMap<PathBuf, Job>,
    project: Option<(PathBuf, Vec<u8>)>,
    appends: Vec<(PathBuf, String)>,
}

impl Batch {
    fn add(&mut self, job: Job) {
        match job {
            Job::File(p, b) if p.file_name().is_some_and(|n| n == PROJECT_FILE) => {
                self.project = Some((p, b))
            }
            Job::Mask(ref p, _) | Job::File(ref p, _) => {
                let p = p.clone();
                self.files.insert(p, job);
            }
            Job::Append(p, l) => self.appends.push((p, l)),
            Job::Flush(_) => unreachable!("flushes are handled by the loop"),
            #[cfg(test)]
            Job::Poison => self.poisoned = true,
        }
    }

    fn is_empty(&self) -> bool {
        self.files.is_empty() && self.project.is_none() && self.appends.is_empty()
    }

    fn write(&mut self, errors: &Mutex<Vec<String>>) {
        #[cfg(test)]
        if std::mem::take(&mut self.poisoned) {
            panic!("injected fault");
        }
        let mut errs = Vec::new();
        for (path, job) in std::mem::take(&mut self.files) {
            let r = match job {
                Job::Mask(_, m) => storage::write_png_atomic(&path, &m.to_gray()),
                Job::File(_, b) => storage::write_atomic(&path, &b),
                _ => Ok(()),
            };
            if let Err(e) = r {
                errs.push(format!("cannot save {}: {e}", path.display()));
            }
        }
        if let Some((path, bytes)) = self.project.take()
            && let Err(e) = storage::write_atomic(&path, &bytes)
        {
            errs.push(format!("cannot save {}: {e}", path.display()));
        }
        let mut by_file: BTreeMap<PathBuf, String> = BTreeMap::new();
        for (p, l) in std::mem::take(&mut self.appends) {
            let s = by_file.entry(p).or_default();
            s.push_str(&l);
            s.push('\n');
        }
        for (path, text) in by_file {
            if let Err(e) = storage::append(&path, text.as_bytes()) {
                errs.push(format!("cannot append to {}: {e}", path.display()));
            }
        }
        errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(errs);
    }
}

/// Write a batch; a panic while writing (a bug, never expected) becomes a reported error rather
/// than the end of the saver thread, which would leave every later change unsaved.
fn write_caught(batch: &mut Batch, errors: &Mutex<Vec<String>>) {
    if let Err(text) = super::guard::catch(|| batch.write(errors)) {
        errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(format!("the autosaver failed while writing ({text})"));
        *batch = Batch::default();
    }
}

fn run(rx: Receiver<Job>, errors: Arc<Mutex<Vec<String>>>) {
    let mut batch = Batch::default();
    let mut started: Option<Instant> = None;
    loop {
        // A steady stream of changes must not postpone writing: past the window, write first.
        if started.is_some_and(|t0| t0.elapsed() >= COALESCE) {
            write_caught(&mut batch, &errors);
            started = None;
        }
        let job = match started {
            None => match rx.recv() {
                Ok(j) => j,
                Err(_) => break,
            },
            Some(t0) => match rx.recv_timeout(COALESCE.saturating_sub(t0.elapsed())) {
                Ok(j) => j,
                Err(RecvTimeoutError::Timeout) => {
                    write_caught(&mut batch, &errors);
                    started = None;
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            },
        };
        match job {
            Job::Flush(ack) => {
                write_caught(&mut batch, &errors);
                started = None;
                let _ = ack.send(std::mem::take(
                    &mut *errors.lock().unwrap_or_else(|e| e.into_inner()),
                ));
            }
            other => {
                batch.add(other);
                started.get_or_insert_with(Instant::now);
            }
        }
    }
    if !batch.is_empty() {
        write_caught(&mut batch, &errors);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_change_wins_journal_lines_keep_their_order_and_failures_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let saver = Autosaver::new();
        let p = dir.path().join("f.txt");
        for i in 0..100 {
            saver.write_file(p.clone(), format!("{i}").into_bytes());
            saver.append_json(dir.path().join("j.jsonl"), &i);
        }
        // A file cannot be a folder: the write fails and says so.
        std::fs::write(dir.path().join("blocker"), b"x").unwrap();
        saver.write_file(dir.path().join("blocker/inside.txt"), b"y".to_vec());
        let errors = saver.flush();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "99");
        let lines: Vec<u32> = storage::read_jsonl(&dir.path().join("j.jsonl")).unwrap();
        assert_eq!(lines, (0..100).collect::<Vec<_>>());
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("blocker"), "{errors:?}");
        assert!(saver.flush().is_empty(), "reported once");
    }

    #[test]
    fn the_saver_survives_a_crash_while_writing_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let saver = Autosaver::new();
        saver.send(Job::Poison);
        let errors = saver.flush();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("injected fault"), "{errors:?}");
        // Later changes are still written.
        let p = dir.path().join("after.txt");
        saver.write_file(p.clone(), b"saved".to_vec());
        assert!(saver.flush().is_empty());
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "saved");
    }
}
