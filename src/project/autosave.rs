//! The autosaver: a thread that writes label masks, `project.ron` and journal lines so the UI
//! never waits on the disk. Changes to one file within a short window are coalesced (a brush
//! stroke rewrites its mask once, not per dab); everything handed over reaches the disk within
//! [`COALESCE`] plus the write time, well inside the 2 seconds users are promised.
//!
//! Order within a batch: masks and other files first, `project.ron` (which refers to them) next,
//! journal lines last. Files are replaced atomically; journal lines are appended with one
//! `write` each, so a killed process leaves whole lines.
//!
//! A write that fails (disk full, a folder made read-only) is reported once and kept: it is
//! tried again every [`RETRY`] until it succeeds or a newer version of the file replaces it, so
//! an edit made while the disk was full reaches it once there is room. [`Autosaver::status`]
//! says whether everything handed over is on disk.

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
/// How often failed writes are tried again.
pub const RETRY: Duration = Duration::from_secs(2);

/// Whether what was handed to the saver is on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaveStatus {
    Saved,
    /// Changes waiting for (or in) their write.
    Saving,
    /// Writes that failed and are being retried: how many files, and the first one's error.
    Failing {
        files: usize,
        error: String,
    },
}

/// What the saver thread shares with its handle.
#[derive(Default)]
struct Shared {
    /// Errors not yet reported.
    errors: Vec<String>,
    /// Jobs handed over and not yet written or given up.
    pending: usize,
    /// Files whose last write failed: path -> error.
    failing: BTreeMap<PathBuf, String>,
}

enum Job {
    /// A write that panics, for the test that the thread survives one.
    #[cfg(test)]
    Poison,
    Mask(PathBuf, LabelMask),
    /// A rectangle [x0, y0, x1, y1) of a mask the saver has (row-major pixels).
    Patch(PathBuf, [u32; 4], Vec<u8>),
    File(PathBuf, Vec<u8>),
    Append(PathBuf, String),
    Flush(Sender<Vec<String>>),
}

/// Handle to the saver thread. Dropping it writes what is pending and joins the thread.
pub struct Autosaver {
    tx: Option<Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
    shared: Arc<Mutex<Shared>>,
}

impl Default for Autosaver {
    fn default() -> Self {
        Self::new()
    }
}

impl Autosaver {
    pub fn new() -> Self {
        let (tx, rx) = mpsc::channel();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let for_thread = shared.clone();
        let thread = std::thread::Builder::new()
            .name("contrario-autosave".into())
            .spawn(move || run(rx, for_thread))
            .expect("spawning the autosave thread");
        Self {
            tx: Some(tx),
            thread: Some(thread),
            shared,
        }
    }

    fn shared(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn send(&self, job: Job) {
        let counted = !matches!(job, Job::Flush(_));
        if counted {
            self.shared().pending += 1;
        }
        if let Some(tx) = &self.tx
            && tx.send(job).is_err()
        {
            let mut s = self.shared();
            s.pending -= counted as usize;
            s.errors
                .push("the autosave thread stopped: changes are not being saved".into());
        }
    }

    /// Whether everything handed over is on disk (for the window's indicator).
    pub fn status(&self) -> SaveStatus {
        let s = self.shared();
        if let Some((path, e)) = s.failing.iter().next() {
            SaveStatus::Failing {
                files: s.failing.len(),
                error: format!("{}: {e}", path.display()),
            }
        } else if s.pending > 0 {
            SaveStatus::Saving
        } else {
            SaveStatus::Saved
        }
    }

    pub fn write_mask(&self, path: PathBuf, mask: LabelMask) {
        self.send(Job::Mask(path, mask));
    }

    /// The rectangle `bbox` of `mask`, for a mask file whose whole content was handed over
    /// before ([`Self::write_mask`]).
    pub fn patch_mask(&self, path: PathBuf, mask: &LabelMask, bbox: [u32; 4]) {
        let [x0, y0, x1, y1] = bbox;
        let mut data = Vec::with_capacity(((x1 - x0) * (y1 - y0)) as usize);
        for y in y0..y1 {
            let row = (y * mask.width) as usize;
            data.extend_from_slice(&mask.data[row + x0 as usize..row + x1 as usize]);
        }
        self.send(Job::Patch(path, bbox, data));
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
            Err(e) => self.shared().errors.push(format!("journal entry: {e}")),
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
        std::mem::take(&mut self.shared().errors)
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
    /// Jobs in the batch (for the shared pending count).
    jobs: usize,
    /// The whole content of every mask file handed over, patched by later edits; written
    /// when in `files`.
    masks: std::collections::HashMap<PathBuf, LabelMask>,
}

impl Batch {
    fn add(&mut self, job: Job) {
        self.jobs += 1;
        match job {
            Job::File(p, b) if p.file_name().is_some_and(|n| n == PROJECT_FILE) => {
                self.project = Some((p, b))
            }
            Job::Mask(p, m) => {
                self.masks.insert(p.clone(), m);
                self.files
                    .insert(p.clone(), Job::Mask(p, LabelMask::new(0, 0)));
            }
            Job::Patch(p, [x0, y0, x1, y1], data) => {
                // A patch of a mask whose whole content never came would be lost: it cannot
                // happen (the store sends the whole mask first), and is dropped if it does.
                if let Some(m) = self.masks.get_mut(&p) {
                    let w = (x1 - x0) as usize;
                    for (k, y) in (y0..y1).enumerate() {
                        let row = (y * m.width) as usize;
                        m.data[row + x0 as usize..row + x1 as usize]
                            .copy_from_slice(&data[k * w..(k + 1) * w]);
                    }
                    self.files
                        .insert(p.clone(), Job::Mask(p, LabelMask::new(0, 0)));
                }
            }
            Job::File(ref p, _) => {
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

    /// Write everything; what fails stays in the batch for the next attempt (a newer version
    /// of a file, added meanwhile, replaces it). Errors are reported once per file.
    fn write(&mut self, shared: &Mutex<Shared>) {
        #[cfg(test)]
        if std::mem::take(&mut self.poisoned) {
            panic!("injected fault");
        }
        let mut failed = Batch {
            masks: std::collections::HashMap::new(),
            ..Batch::default()
        };
        let mut results: Vec<(PathBuf, Result<(), String>)> = Vec::new();
        for (path, job) in std::mem::take(&mut self.files) {
            let r = match &job {
                Job::Mask(..) => match self.masks.get(&path) {
                    Some(m) => storage::write_png_atomic(&path, &m.to_gray()),
                    None => Ok(()),
                },
                Job::File(_, b) => storage::write_atomic(&path, b),
                _ => Ok(()),
            };
            if let Err(e) = &r {
                failed.files.insert(path.clone(), job);
                results.push((path, Err(e.to_string())));
            } else {
                results.push((path, Ok(())));
            }
        }
        if let Some((path, bytes)) = self.project.take() {
            match storage::write_atomic(&path, &bytes) {
                Ok(()) => results.push((path, Ok(()))),
                Err(e) => {
                    results.push((path.clone(), Err(e.to_string())));
                    failed.project = Some((path, bytes));
                }
            }
        }
        let mut by_file: BTreeMap<PathBuf, Vec<String>> = BTreeMap::new();
        for (p, l) in std::mem::take(&mut self.appends) {
            by_file.entry(p).or_default().push(l);
        }
        for (path, lines) in by_file {
            let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
            match storage::append(&path, text.as_bytes()) {
                Ok(()) => results.push((path, Ok(()))),
                Err(e) => {
                    results.push((path.clone(), Err(e.to_string())));
                    failed
                        .appends
                        .extend(lines.into_iter().map(|l| (path.clone(), l)));
                }
            }
        }
        let mut s = shared.lock().unwrap_or_else(|e| e.into_inner());
        for (path, r) in results {
            match r {
                Ok(()) => {
                    s.failing.remove(&path);
                }
                Err(e) => {
                    if !s.failing.contains_key(&path) {
                        s.errors.push(format!(
                            "cannot save {}: {e} (kept in memory, tried again every {} s)",
                            path.display(),
                            RETRY.as_secs()
                        ));
                    }
                    s.failing.insert(path, e);
                }
            }
        }
        // What failed goes back in, behind anything newer for the same file.
        failed.jobs = failed.files.len() + failed.project.is_some() as usize + failed.appends.len();
        s.pending = s
            .pending
            .saturating_sub(self.jobs.saturating_sub(failed.jobs));
        drop(s);
        for (path, job) in failed.files {
            self.files.entry(path).or_insert(job);
        }
        if self.project.is_none() {
            self.project = failed.project;
        }
        let newer = std::mem::take(&mut self.appends);
        self.appends = failed.appends;
        self.appends.extend(newer);
        self.jobs = failed.jobs;
    }
}

/// Write a batch; a panic while writing (a bug, never expected) becomes a reported error rather
/// than the end of the saver thread, which would leave every later change unsaved.
fn write_caught(batch: &mut Batch, shared: &Mutex<Shared>) {
    if let Err(text) = super::guard::catch(|| batch.write(shared)) {
        let mut s = shared.lock().unwrap_or_else(|e| e.into_inner());
        s.errors
            .push(format!("the autosaver failed while writing ({text})"));
        s.pending = s.pending.saturating_sub(batch.jobs);
        // The masks' contents stay: later edits patch them.
        let masks = std::mem::take(&mut batch.masks);
        *batch = Batch {
            masks,
            ..Batch::default()
        };
    }
}

fn run(rx: Receiver<Job>, shared: Arc<Mutex<Shared>>) {
    let mut batch = Batch::default();
    let mut started: Option<Instant> = None;
    loop {
        // A steady stream of changes must not postpone writing: past the window, write first.
        if started.is_some_and(|t0| t0.elapsed() >= COALESCE) {
            write_caught(&mut batch, &shared);
            // Whatever failed waits for the retry.
            started = (!batch.is_empty()).then(|| Instant::now() + RETRY - COALESCE);
        }
        let job = match started {
            None => match rx.recv() {
                Ok(j) => j,
                Err(_) => break,
            },
            Some(t0) => match rx.recv_timeout(COALESCE.saturating_sub(t0.elapsed())) {
                Ok(j) => j,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
            },
        };
        match job {
            Job::Flush(ack) => {
                write_caught(&mut batch, &shared);
                started = (!batch.is_empty()).then(|| Instant::now() + RETRY - COALESCE);
                let errors =
                    std::mem::take(&mut shared.lock().unwrap_or_else(|e| e.into_inner()).errors);
                let _ = ack.send(errors);
            }
            other => {
                batch.add(other);
                started.get_or_insert_with(Instant::now);
            }
        }
    }
    if !batch.is_empty() {
        write_caught(&mut batch, &shared);
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

    #[test]
    fn patches_reach_the_file_and_a_failed_write_is_retried_until_it_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        let saver = Autosaver::new();
        let p = dir.path().join("m.png");
        let mut m = LabelMask::new(4, 3);
        saver.write_mask(p.clone(), m.clone());
        m.data[5] = 2;
        m.data[6] = 2;
        saver.patch_mask(p.clone(), &m, [1, 1, 3, 2]);
        assert!(saver.flush().is_empty());
        assert_eq!(saver.status(), SaveStatus::Saved);
        let back = image::open(&p).unwrap().to_luma8();
        assert_eq!(back.into_raw(), m.data);
        // A folder where a file should be: the write fails, is reported once, and stays.
        let blocked = dir.path().join("sub/m.png");
        std::fs::write(dir.path().join("sub"), b"not a folder").unwrap();
        saver.write_mask(blocked.clone(), m.clone());
        let errors = saver.flush();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("tried again"), "{errors:?}");
        assert!(matches!(
            saver.status(),
            SaveStatus::Failing { files: 1, .. }
        ));
        // The cause goes: the retry writes it, with the patches made meanwhile.
        std::fs::remove_file(dir.path().join("sub")).unwrap();
        m.data[0] = 1;
        saver.patch_mask(blocked.clone(), &m, [0, 0, 1, 1]);
        let start = Instant::now();
        while saver.status() != SaveStatus::Saved {
            assert!(
                start.elapsed() < RETRY * 3,
                "not retried: {:?}",
                saver.status()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(saver.take_errors().is_empty(), "no second report");
        assert_eq!(image::open(&blocked).unwrap().to_luma8().into_raw(), m.data);
    }
}
