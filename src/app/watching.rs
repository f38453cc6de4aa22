//! The window's live inspection: a [`Watch`] into the open project, its latest records and
//! counts; each scored image joins the project (live split) and the review as it lands.

use std::collections::VecDeque;
use std::path::PathBuf;

use super::watch::{
    LIVE_STRIP, LiveSession, Watch, WatchCommand, WatchConfig, WatchCounts, WatchEvent,
};
use super::{AppState, NoticeLevel};
use crate::project::live::{self, LiveRecord};
use crate::project::overview::ImageFacts;

impl AppState {
    pub fn apply_watch(&mut self, cmd: WatchCommand, repaint: Box<dyn Fn() + Send>) {
        match cmd {
            WatchCommand::Start(folder) => self.start_watch(folder, repaint),
            WatchCommand::Pause(on) => {
                if let Some(s) = &self.live {
                    s.watch.set_paused(on);
                }
            }
            WatchCommand::Stop => {
                if let Some(s) = &mut self.live {
                    s.watch.stop();
                    s.stopping = true;
                }
            }
        }
    }

    fn start_watch(&mut self, folder: PathBuf, repaint: Box<dyn Fn() + Send>) {
        if self.live.is_some() {
            self.notify(
                NoticeLevel::Warning,
                "A watch is running already: stop it first (one watched folder at a time).",
            );
            return;
        }
        let Some(p) = &self.project else {
            self.notify(
                NoticeLevel::Warning,
                "Open a project to watch a folder into.",
            );
            return;
        };
        if !self.writable() {
            let why = self.why_read_only().unwrap_or_default();
            self.notify(
                NoticeLevel::Warning,
                format!("Cannot watch into this project: {why}."),
            );
            return;
        }
        let config = WatchConfig {
            project: p.root.clone(),
            folder,
            model: self.detector.clone(),
            category: None,
            level: Some(10f64.powf(f64::from(self.nfa_threshold))),
            out: None,
            mqtt: None,
            stop_after: None,
            keep_unflagged: crate::app::watch::KEEP_UNFLAGGED,
        };
        match Watch::start(config, repaint) {
            Ok(watch) => {
                // The list, queue and canvas show the results of the model that scores.
                if self.detector.as_deref() != Some(watch.model.as_str()) {
                    let m = watch.model.clone();
                    self.notify(
                        NoticeLevel::Info,
                        format!("The detector is now {m:?}, the model the watch scores with."),
                    );
                    self.apply(super::AppCommand::SetDetector(Some(m)));
                }
                self.live = Some(LiveSession {
                    watch,
                    counts: WatchCounts::default(),
                    recent: VecDeque::new(),
                    stopping: false,
                });
            }
            Err(e) => self.notify(NoticeLevel::Error, format!("Cannot watch: {e:#}")),
        }
    }

    /// Fold what the watch did since the last frame into the project and the review.
    pub fn poll_watch(&mut self) {
        let mut events = Vec::new();
        if let Some(s) = &self.live {
            while let Some(e) = s.watch.try_recv() {
                events.push(e);
            }
        }
        for e in events {
            match e {
                WatchEvent::Started { .. } => {}
                WatchEvent::Warning(w) => self.notify(NoticeLevel::Warning, w),
                WatchEvent::Record(r) => self.land_live(*r),
                WatchEvent::Stopped { counts, .. } => {
                    self.notify(
                        NoticeLevel::Info,
                        format!(
                            "Watch stopped: {} seen, {} flagged, {} error(s).",
                            counts.seen, counts.flagged, counts.errors
                        ),
                    );
                    self.live = None;
                }
            }
        }
        // A watch that ended on its own (its thread gone) without a last word.
        if self.live.as_ref().is_some_and(|s| !s.watch.is_running()) {
            while let Some(WatchEvent::Record(r)) =
                self.live.as_ref().and_then(|s| s.watch.try_recv())
            {
                self.land_live(*r);
            }
            self.live = None;
        }
    }

    fn land_live(&mut self, r: LiveRecord) {
        let index = match (&r.error, &mut self.project) {
            (Some(err), _) => {
                self.notify(NoticeLevel::Warning, format!("Live: {err}"));
                None
            }
            (None, Some(p)) => Some(match p.file.images.iter().position(|e| e.id == r.image) {
                Some(i) => i,
                None => {
                    p.file.images.push(live::entry(&r));
                    p.file.images.len() - 1
                }
            }),
            (None, None) => None,
        };
        if let Some(i) = index {
            // Its facts (flagged, issues) come from the cached result the watch wrote.
            let facts = &mut self.review.facts;
            if facts.len() == i {
                facts.push(ImageFacts::default());
            }
            self.review.stale_images.insert(i);
            self.detections.remove(&i);
            self.cache_requests.push(i);
            self.refresh_rows();
        }
        if let Some(s) = &mut self.live {
            s.counts.seen += 1;
            s.counts.flagged += usize::from(r.flagged);
            s.counts.errors += usize::from(r.error.is_some());
            s.recent.push_front((r, index));
            s.recent.truncate(LIVE_STRIP);
        }
    }
}
