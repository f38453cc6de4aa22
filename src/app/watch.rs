//! Live inspection: watch a folder a line camera writes into, score each image once it is
//! complete, and hand each verdict to the journal (`live/watch.jsonl`, which makes the images the
//! project's live split), a JSON-lines file and MQTT. One thread runs it, with a worker of its
//! own; the CLI's `watch` and the window's File > Watch a folder… are the same [`Watch`].
//!
//! A file is complete when the kernel says it was closed after writing or renamed into place
//! (inotify, through `notify`), or, where no such event comes (files there before the start,
//! network shares), when a scan finds its size and time unchanged since the previous one. Bad
//! input never stops it: an image that cannot be read gets a record with the error.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};

use crate::app::mqtt::{Broker, Publisher};
use crate::project::imaging::is_image_path;
use crate::project::live::{self, LiveRecord, LiveRegion};
use crate::project::results::CacheEntry;
use crate::project::{DetectorChoice, Project};
use crate::uflow::worker::{Command, Message, Worker};

/// How often the folder is scanned for files no event announced.
const SCAN_EVERY: Duration = Duration::from_millis(500);
/// A file found by a scan is complete once unchanged for this long.
const STABLE_FOR: Duration = Duration::from_millis(400);
/// The result cache keeps the maps of at most this many of a watch's latest images with no
/// region, drift or error (about 560 MB at 576 KiB an image); older ones are removed as new
/// ones come. A line scores every image it sees, and its images with no finding are the bulk
/// that nobody opens: a day at one image a second would otherwise leave 50 GB. Flagged,
/// drifted and failed images keep theirs for the review queue, and an image whose maps were
/// removed is scored again when it is detected again.
pub const KEEP_UNFLAGGED: usize = 1000;

#[derive(Debug, Clone)]
pub struct WatchConfig {
    pub project: PathBuf,
    pub folder: PathBuf,
    /// The project's model by name; default: the project's detector, else its newest model.
    pub model: Option<String>,
    /// Every image's category; default: the project's only one, else the first sub-folder's
    /// name under the watched folder.
    pub category: Option<String>,
    /// Flag images with a region under this many expected false alarms per image; default: the
    /// project's NFA level.
    pub level: Option<f64>,
    /// A JSON-lines file each record is appended to.
    pub out: Option<PathBuf>,
    /// Publish each record to `PREFIX/CATEGORY` on this broker.
    pub mqtt: Option<(Broker, String)>,
    /// Stop after this many images (scored or failed).
    pub stop_after: Option<usize>,
    /// Cached results kept of the latest images with no finding ([`KEEP_UNFLAGGED`]).
    pub keep_unflagged: usize,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WatchCounts {
    pub seen: usize,
    pub flagged: usize,
    pub errors: usize,
}

#[derive(Debug, Clone)]
pub enum WatchEvent {
    /// Watching: the model, how many images earlier runs scored (not scored again).
    Started {
        model: String,
        folder: PathBuf,
        earlier: usize,
    },
    Record(Box<LiveRecord>),
    /// Something the user should know that does not stop the watch.
    Warning(String),
    Stopped {
        counts: WatchCounts,
        /// Messages the broker had not acknowledged when the watch ended (kept in
        /// `live/mqtt-unsent.jsonl` for the next watch with a broker).
        mqtt_unsent: usize,
    },
}

/// Records the live strip keeps (newest first).
pub const LIVE_STRIP: usize = 24;

#[derive(Debug, Clone, PartialEq)]
pub enum WatchCommand {
    /// Watch this folder into the open project with the current detector (its model) at the
    /// current NFA level.
    Start(PathBuf),
    Pause(bool),
    Stop,
}

/// A watch the window runs.
pub struct LiveSession {
    pub watch: Watch,
    pub counts: WatchCounts,
    /// The latest records, newest first, with the image's index where it joined the project.
    pub recent: VecDeque<(LiveRecord, Option<usize>)>,
    /// Stop asked for; the session ends when the watch says it stopped.
    pub stopping: bool,
}

struct Control {
    stop: AtomicBool,
    paused: AtomicBool,
}

/// A running watch. Dropping it stops it.
pub struct Watch {
    control: Arc<Control>,
    events: Receiver<WatchEvent>,
    handle: Option<JoinHandle<()>>,
    pub config: WatchConfig,
    pub model: String,
}

/// The model a watch scores with, or why there is none.
fn resolve_model(project: &Project, asked: Option<&str>) -> anyhow::Result<String> {
    if let Some(m) = asked {
        return Ok(m.to_string());
    }
    if let Some(DetectorChoice::Model(m)) = &project.file.settings.detector {
        return Ok(m.clone());
    }
    project.latest_model().context(
        "the project has no trained model: train one (`contrario train` or the Models panel) or name one with --model",
    )
}

impl Watch {
    /// Check the project, folder and model, then start watching. `notify` is called after each
    /// event (the window's repaint).
    pub fn start(config: WatchConfig, notify: Box<dyn Fn() + Send>) -> anyhow::Result<Watch> {
        let project = Project::open(&config.project)?;
        if !config.folder.is_dir() {
            bail!("{} is not a folder", config.folder.display());
        }
        let folder = std::fs::canonicalize(&config.folder)?;
        let model = resolve_model(&project, config.model.as_deref())?;
        let categories = project.categories();
        if let Some(c) = &config.category {
            if !categories.contains(c) {
                bail!(
                    "category {c:?} is not in the project (it has: {})",
                    categories.join(", ")
                );
            }
            let dir = project.model_dir(&model, c);
            if !dir.join(crate::project::MODEL_META_FILE).exists() {
                bail!("no model {} (train it first)", dir.display());
            }
        }
        if let Some(level) = config.level
            && !(level > 0.0 && level.is_finite())
        {
            bail!("the level is a number of false alarms per image, above 0 (got {level})");
        }
        if let Some(out) = &config.out {
            open_append(out).with_context(|| format!("cannot write {}", out.display()))?;
        }
        let control = Arc::new(Control {
            stop: AtomicBool::new(false),
            paused: AtomicBool::new(false),
        });
        let (tx, events) = mpsc::channel();
        let run = Run {
            level: config
                .level
                .unwrap_or(10f64.powf(project.file.settings.log10_nfa_threshold)),
            project,
            folder,
            model: model.clone(),
            categories,
            config: config.clone(),
            control: control.clone(),
            tx,
            notify,
        };
        let handle = std::thread::Builder::new()
            .name("contrario-watch".into())
            .spawn(move || run.run())?;
        Ok(Watch {
            control,
            events,
            handle: Some(handle),
            config,
            model,
        })
    }

    pub fn set_paused(&self, paused: bool) {
        self.control.paused.store(paused, Ordering::Relaxed);
    }

    pub fn is_paused(&self) -> bool {
        self.control.paused.load(Ordering::Relaxed)
    }

    /// Ask it to stop; [`WatchEvent::Stopped`] follows once the broker has what was queued
    /// (or a few seconds have passed).
    pub fn stop(&self) {
        self.control.stop.store(true, Ordering::Relaxed);
    }

    pub fn is_running(&self) -> bool {
        self.handle.as_ref().is_some_and(|h| !h.is_finished())
    }

    pub fn try_recv(&self) -> Option<WatchEvent> {
        self.events.try_recv().ok()
    }

    /// The next event; None when the watch has ended and everything was received.
    pub fn recv(&self) -> Option<WatchEvent> {
        self.events.recv().ok()
    }

    /// The next event within `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<WatchEvent> {
        self.events.recv_timeout(timeout).ok()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn open_append(path: &Path) -> std::io::Result<std::fs::File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

/// Size and modification time (ns) of a file, the stamp that says which version of it was scored.
fn stamp(path: &Path) -> Option<(u64, u128)> {
    let m = std::fs::metadata(path).ok()?;
    let t = m
        .modified()
        .ok()?
        .duration_since(SystemTime::UNIX_EPOCH)
        .ok()?;
    m.is_file().then_some((m.len(), t.as_nanos()))
}

type Ready = VecDeque<(PathBuf, Instant, SystemTime)>;

/// Queue a complete file for scoring unless it is queued already or this version of it is done.
fn enqueue(
    p: PathBuf,
    ready: &mut Ready,
    queued: &mut HashSet<PathBuf>,
    done: &HashSet<(PathBuf, u64, u128)>,
) {
    if queued.contains(&p) || !is_candidate(&p) {
        return;
    }
    if let Some((size, t)) = stamp(&p)
        && !done.contains(&(p.clone(), size, t))
    {
        queued.insert(p.clone());
        ready.push_back((p, Instant::now(), SystemTime::now()));
    }
}

/// Files a camera or a copy is still writing under another name are not images yet.
fn is_candidate(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    !name.starts_with('.') && !name.starts_with('~') && is_image_path(path)
}

/// The cached results kept of images with no finding: (cache folder, image id, generation) in
/// the order scored, each id's current generation, and how many are current.
#[derive(Default)]
struct Unflagged {
    order: VecDeque<(PathBuf, String, u64)>,
    latest: HashMap<String, u64>,
    live: usize,
    next: u64,
}

struct Run {
    project: Project,
    folder: PathBuf,
    model: String,
    categories: Vec<String>,
    level: f64,
    config: WatchConfig,
    control: Arc<Control>,
    tx: Sender<WatchEvent>,
    notify: Box<dyn Fn() + Send>,
}

impl Run {
    fn emit(&self, e: WatchEvent) {
        let _ = self.tx.send(e);
        (self.notify)();
    }

    fn run(self) {
        let root = self.project.root.clone();
        let earlier = live::read_journal(&root);
        let mut done = live::done_stamps(&earlier);
        // The cached results of the latest images with no finding, oldest first, from the
        // earlier watches' journal on: the bound holds across restarts.
        let mut unflagged = Unflagged::default();
        for r in &earlier {
            self.keep_result(&mut unflagged, r);
        }
        self.emit(WatchEvent::Started {
            model: self.model.clone(),
            folder: self.folder.clone(),
            earlier: earlier.len(),
        });
        drop(earlier);
        let worker = Worker::spawn(Box::new(|| {}));
        let publisher = self.config.mqtt.as_ref().map(|(b, _)| {
            let mut h = crate::project::storage::Fnv::new();
            h.eat(self.folder.as_os_str().as_encoded_bytes());
            let id = format!("contrario-{}-{}", std::process::id(), h.hex());
            Publisher::start(b, &id)
        });
        // What an earlier watch could not deliver goes first, in its order.
        let earlier_unsent = if let Some(p) = &publisher {
            let unsent = live::read_unsent(&root);
            for u in &unsent {
                p.publish(u.topic.clone(), u.payload.clone().into_bytes());
            }
            unsent.len()
        } else {
            0
        };
        if earlier_unsent > 0 {
            self.emit(WatchEvent::Warning(format!(
                "sending {earlier_unsent} message(s) an earlier watch could not deliver"
            )));
        }
        let mut out = self.config.out.as_ref().and_then(|p| open_append(p).ok());

        // Kernel events for files closed after writing or renamed into place.
        let (ev_tx, ev_rx) = mpsc::channel::<PathBuf>();
        let _events = self.watch_events(ev_tx);

        let mut ready: Ready = VecDeque::new();
        let mut queued: HashSet<PathBuf> = HashSet::new();
        let mut unsettled: HashMap<PathBuf, ((u64, u128), Instant)> = HashMap::new();
        let mut last_scan: Option<Instant> = None;
        let mut counts = WatchCounts::default();
        while !self.control.stop.load(Ordering::Relaxed) {
            while let Ok(p) = ev_rx.try_recv() {
                unsettled.remove(&p);
                enqueue(p, &mut ready, &mut queued, &done);
            }
            if last_scan.is_none_or(|t| t.elapsed() >= SCAN_EVERY) {
                let first = last_scan.is_none();
                let mut paths = Vec::new();
                let _ = crate::project::collect_images(&self.folder, 0, &mut paths);
                // One stat per file and scan; the backlog in the order it arrived.
                let mut found: Vec<(PathBuf, (u64, u128))> = paths
                    .into_iter()
                    .filter_map(|p| stamp(&p).map(|s| (p, s)))
                    .collect();
                found.sort_by_key(|(_, s)| s.1);
                for (p, s) in found {
                    if queued.contains(&p) || done.contains(&(p.clone(), s.0, s.1)) {
                        continue;
                    }
                    let age = SystemTime::now()
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .map(|n| n.as_nanos().saturating_sub(s.1))
                        .unwrap_or(0);
                    let old = age > 2 * STABLE_FOR.as_nanos();
                    let settled = match unsettled.get(&p) {
                        Some((prev, since)) => *prev == s && since.elapsed() >= STABLE_FOR,
                        None => first && old,
                    };
                    if settled {
                        unsettled.remove(&p);
                        enqueue(p, &mut ready, &mut queued, &done);
                    } else if unsettled.get(&p).is_none_or(|(prev, _)| *prev != s) {
                        unsettled.insert(p, (s, Instant::now()));
                    }
                }
                last_scan = Some(Instant::now());
            }
            if self.control.paused.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            let Some((path, seen, seen_at)) = ready.pop_front() else {
                if let Ok(p) = ev_rx.recv_timeout(Duration::from_millis(50)) {
                    unsettled.remove(&p);
                    enqueue(p, &mut ready, &mut queued, &done);
                }
                continue;
            };
            queued.remove(&path);
            let Some((size, modified_ns)) = stamp(&path) else {
                continue; // gone before its turn
            };
            let record = self.score(&worker, &path, size, modified_ns, seen, seen_at);
            done.insert(record.stamp());
            counts.seen += 1;
            counts.flagged += usize::from(record.flagged);
            counts.errors += usize::from(record.error.is_some());
            if let Err(e) = live::append(&root, &record) {
                self.emit(WatchEvent::Warning(format!(
                    "could not write {}: {e}",
                    live::journal_path(&root).display()
                )));
            }
            let line = serde_json::to_string(&record).unwrap_or_default();
            if let Some(f) = &mut out
                && let Err(e) = writeln!(f, "{line}")
            {
                self.emit(WatchEvent::Warning(format!(
                    "could not write the output: {e}"
                )));
            }
            if let (Some(p), Some((_, prefix))) = (&publisher, &self.config.mqtt) {
                let cat = if record.category.is_empty() {
                    "unknown"
                } else {
                    &record.category
                };
                p.publish(format!("{prefix}/{cat}"), line.into_bytes());
            }
            self.keep_result(&mut unflagged, &record);
            self.emit(WatchEvent::Record(Box::new(record)));
            if self.config.stop_after.is_some_and(|n| counts.seen >= n) {
                break;
            }
        }
        let mut mqtt_unsent = 0;
        if let Some(p) = publisher {
            let left: Vec<live::Unsent> = p
                .finish(Duration::from_secs(10))
                .into_iter()
                .map(|(topic, payload)| live::Unsent {
                    topic,
                    payload: String::from_utf8_lossy(&payload).into_owned(),
                })
                .collect();
            mqtt_unsent = left.len();
            if let Err(e) = live::write_unsent(&root, &left) {
                self.emit(WatchEvent::Warning(format!(
                    "could not keep the {} undelivered message(s): {e}",
                    left.len()
                )));
            }
        }
        self.emit(WatchEvent::Stopped {
            counts,
            mqtt_unsent,
        });
    }

    /// Count `r`'s cached result among the latest with no finding, and remove the oldest ones
    /// past [`WatchConfig::keep_unflagged`].
    fn keep_result(&self, kept: &mut Unflagged, r: &LiveRecord) {
        // An image scored again (its file rewritten) leaves the count first, so that a flagged
        // result is never removed for an older verdict; its old place in the order goes stale.
        if kept.latest.remove(&r.image).is_some() {
            kept.live -= 1;
        }
        if !(r.flagged || r.unlike_training || r.error.is_some() || r.category.is_empty()) {
            kept.next += 1;
            kept.latest.insert(r.image.clone(), kept.next);
            let cache = self.project.cache_dir(&r.model, &r.category);
            kept.order.push_back((cache, r.image.clone(), kept.next));
            kept.live += 1;
        }
        while kept.live > self.config.keep_unflagged {
            let Some((cache, id, generation)) = kept.order.pop_front() else {
                break;
            };
            if kept.latest.get(&id) != Some(&generation) {
                continue; // stale: scored again since
            }
            kept.latest.remove(&id);
            kept.live -= 1;
            if let Err(e) = CacheEntry::remove(&cache, &id) {
                self.emit(WatchEvent::Warning(format!(
                    "could not remove the cached result of {id}: {e}"
                )));
            }
        }
    }

    /// inotify events for complete files, or a warning and scans only.
    fn watch_events(&self, tx: Sender<PathBuf>) -> Option<notify::RecommendedWatcher> {
        use notify::Watcher;
        use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind, RenameMode};
        let handler = move |res: notify::Result<notify::Event>| {
            let Ok(ev) = res else { return };
            let path = match ev.kind {
                EventKind::Access(AccessKind::Close(AccessMode::Write)) => ev.paths.first(),
                EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both)) => {
                    ev.paths.last()
                }
                _ => None,
            };
            if let Some(p) = path {
                let _ = tx.send(p.clone());
            }
        };
        let made = notify::recommended_watcher(handler).and_then(|mut w| {
            w.watch(&self.folder, notify::RecursiveMode::Recursive)
                .map(|()| w)
        });
        match made {
            Ok(w) => Some(w),
            Err(e) => {
                self.emit(WatchEvent::Warning(format!(
                    "no file events for {} ({e}): scanning it every {} ms instead",
                    self.folder.display(),
                    SCAN_EVERY.as_millis()
                )));
                None
            }
        }
    }

    fn category_of(&self, path: &Path) -> Result<String, String> {
        if let Some(c) = &self.config.category {
            return Ok(c.clone());
        }
        if let [only] = self.categories.as_slice() {
            return Ok(only.clone());
        }
        let first = path
            .strip_prefix(&self.folder)
            .ok()
            .and_then(|r| r.components().next())
            .map(|c| c.as_os_str().to_string_lossy().into_owned());
        match first {
            Some(c) if self.categories.contains(&c) && path.parent() != Some(&self.folder) => Ok(c),
            _ => Err(format!(
                "which category? the project has several ({}): start the watch with one, or put the images in a sub-folder named after theirs",
                self.categories.join(", ")
            )),
        }
    }

    fn score(
        &self,
        worker: &Worker,
        path: &Path,
        size: u64,
        modified_ns: u128,
        seen: Instant,
        seen_at: SystemTime,
    ) -> LiveRecord {
        let mut r = LiveRecord {
            file: path.to_path_buf(),
            image: live::image_id(&self.folder, path),
            category: String::new(),
            model: self.model.clone(),
            size,
            modified_ns,
            seen: live::rfc3339(seen_at),
            scored: String::new(),
            latency_ms: 0.0,
            score: None,
            min_log10_nfa: None,
            flagged: false,
            level: self.level,
            regions: Vec::new(),
            unlike_training: false,
            drift: None,
            error: None,
        };
        let outcome = self.category_of(path).and_then(|c| {
            r.category = c.clone();
            self.infer(worker, &r.image, path, &c)
        });
        match outcome {
            Ok((summary, dims)) => {
                let t = self.level.log10() as f32;
                let regions = crate::stats::acontrario::regions_at(
                    &summary.log_nfa,
                    Some(&summary.best_scale),
                    t,
                    0.0,
                );
                let (mh, mw) = summary.log_nfa.dim();
                let (sx, sy) = (dims.0 as f64 / mw as f64, dims.1 as f64 / mh as f64);
                r.regions = regions
                    .iter()
                    .map(|g| LiveRegion {
                        log10_nfa: g.log10_nfa,
                        area: (g.area as f64 * sx * sy).round() as usize,
                        bbox: [
                            (g.bbox[0] as f64 * sx).floor() as usize,
                            (g.bbox[1] as f64 * sy).floor() as usize,
                            ((g.bbox[2] as f64 * sx).ceil() as usize).min(dims.0 as usize),
                            ((g.bbox[3] as f64 * sy).ceil() as usize).min(dims.1 as usize),
                        ],
                    })
                    .collect();
                r.flagged = !r.regions.is_empty();
                r.score = Some(summary.image_score);
                r.drift = self
                    .project
                    .unlike_training(&self.model, &r.category, &summary);
                r.unlike_training = r.drift.is_some();
                r.min_log10_nfa = summary.log_nfa.iter().copied().reduce(f32::min);
            }
            Err(e) => r.error = Some(e),
        }
        r.scored = live::rfc3339(SystemTime::now());
        r.latency_ms = seen.elapsed().as_secs_f64() * 1e3;
        r
    }

    /// One image through the worker (and the project's result cache, which the window reads).
    fn infer(
        &self,
        worker: &Worker,
        id: &str,
        path: &Path,
        category: &str,
    ) -> Result<(crate::project::results::InferenceSummary, (u32, u32)), String> {
        let dir = self.project.model_dir(&self.model, category);
        if !dir.join(crate::project::MODEL_META_FILE).exists() {
            return Err(format!(
                "no model {:?} for category {category:?} ({} is missing)",
                self.model,
                dir.display()
            ));
        }
        let dims = image::image_dimensions(path)
            .map_err(|e| format!("cannot read image {}: {e}", path.display()))?;
        worker.send(Command::Infer {
            tag: 0,
            model: dir,
            images: vec![(id.to_string(), path.to_path_buf())],
            cache: Some(self.project.cache_dir(&self.model, category)),
            count: None,
            outline: None,
        });
        let mut result = Err("the worker stopped".to_string());
        loop {
            match worker.recv() {
                Some(Message::Inferred { result: s, .. }) => result = Ok((*s, dims)),
                // An image's own error is followed by Finished; a model that did not load ends
                // the command with its error alone.
                Some(Message::Error { context, message }) => {
                    let message = if message.contains(&*path.to_string_lossy()) {
                        message
                    } else {
                        format!("{}: {message}", path.display())
                    };
                    if !context.ends_with(&format!(": {id}")) {
                        return Err(message);
                    }
                    result = Err(message);
                }
                Some(Message::Cancelled { .. }) => return Err("cancelled".into()),
                Some(Message::Finished) | None => return result,
                Some(_) => {}
            }
        }
    }
}
