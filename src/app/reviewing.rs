//! Review commands on the app state (verdicts, notes, the queue, label issues) and the analyses
//! behind the review, run on rayon's pool one at a time and folded back into [`AppState`].

use std::collections::HashMap;
use std::sync::mpsc::{self, Receiver, Sender};

use ndarray::Array2;

use super::annotation::LabelChange;
use super::jobs::{Repaint, spawn_caught};
use super::review::*;
use super::{AppState, NoticeLevel};
use crate::project::labels::{Edit, stored_opinion};
use crate::project::mask::LabelMask;
use crate::project::overview::{
    self, Evidence, ImageFacts, IssueAction, IssueDecision, issue_pixels, project_facts,
};
use crate::project::review::{CONSENSUS, IssueKind, IssueOptions, Verdict, record_review};
use crate::project::storage::write_atomic;
use crate::project::{ImageEntry, Project};

impl AppState {
    /// Select a finding's image, zoomed on it, judged with what it is about: the detection, and
    /// the layer it concerns (the one that marked it, or, for a detection nobody marked, the
    /// layer an acceptance would write).
    fn open_finding(&mut self, i: usize, issue: &crate::project::review::LabelIssue) {
        self.select(i);
        self.review.focus = Some((i, issue.bbox));
        self.show_heatmap = true;
        let layer = match issue.kind.annotator() {
            Some(a) => Some(a.to_string()),
            None => self
                .annotation
                .annotator
                .clone()
                .or_else(|| self.label_layer.clone()),
        };
        if layer.is_some() {
            self.label_layer = layer;
        }
    }

    pub(super) fn apply_review(&mut self, cmd: ReviewCommand) {
        if cmd.is_signed() && self.review.reviewer.is_none() {
            // Asked where the person is (the panel shows a name field), then carried out.
            let issue = match &cmd {
                ReviewCommand::AcceptIssue(k) | ReviewCommand::DismissIssue(k) => {
                    self.review.issues.get(*k).map(|(_, x)| x.clone())
                }
                _ => None,
            };
            self.review.awaiting_name = Some(Awaiting {
                cmd,
                image: self.selected,
                issue,
            });
            return;
        }
        match cmd {
            ReviewCommand::SetReviewer(name) => self.set_reviewer(name),
            ReviewCommand::CancelAwaiting => self.review.awaiting_name = None,
            ReviewCommand::Verdict(v) => {
                if let Some(i) = self.selected {
                    self.record(i, Some(v), String::new());
                    self.next_after_verdict(i);
                }
            }
            ReviewCommand::Note(text) => {
                if let Some(i) = self.selected
                    && !text.trim().is_empty()
                {
                    self.record(i, None, text.trim().to_string());
                }
            }
            ReviewCommand::NextUnreviewed => {
                let Some(p) = &self.project else { return };
                let next = self
                    .review
                    .queue
                    .iter()
                    .copied()
                    .find(|&i| !self.review.verdicts.contains_key(&p.file.images[i].id));
                match next {
                    Some(i) => self.select(i),
                    None if self.review.queue.is_empty() => self.notify(
                        NoticeLevel::Info,
                        "The review queue is empty: nobody labelled an image and the detector flags none",
                    ),
                    None => self.notify(NoticeLevel::Info, "Every image of the queue is reviewed"),
                }
            }
            ReviewCommand::Filter(f) => {
                self.review.filter = f;
                self.refresh_rows();
            }
            ReviewCommand::Sort(s) => {
                self.review.sort = s;
                self.refresh_rows();
            }
            ReviewCommand::OpenIssue(k) => {
                if let Some((i, issue)) = self.review.issues.get(k).cloned() {
                    self.open_finding(i, &issue);
                }
            }
            ReviewCommand::OpenUnconfirmed(k) => {
                if let Some((i, issue)) = self.review.unconfirmed.get(k).cloned() {
                    self.open_finding(i, &issue);
                }
            }
            ReviewCommand::AcceptIssue(k) => self.accept_issue(k),
            ReviewCommand::DismissIssue(k) => self.decide(k, IssueAction::Dismissed),
        }
    }

    /// Recompute the image list's rows (filter, sort, level changed, or new facts).
    pub(super) fn refresh_rows(&mut self) {
        let Some(p) = &self.project else {
            self.review.rows.clear();
            return;
        };
        let r = &self.review;
        self.review.rows = list_rows(
            p,
            &r.facts,
            &r.verdicts,
            &r.filter,
            r.sort,
            self.nfa_threshold,
        );
    }

    /// After a verdict on a queue image, the next image of the queue without one (after it,
    /// then from the start): reviewing the queue is one key per image.
    fn next_after_verdict(&mut self, i: usize) {
        let Some(p) = &self.project else { return };
        let q = &self.review.queue;
        let Some(at) = q.iter().position(|&x| x == i) else {
            return;
        };
        let next = q[at + 1..]
            .iter()
            .chain(&q[..at])
            .copied()
            .find(|&x| !self.review.verdicts.contains_key(&p.file.images[x].id));
        if let Some(n) = next {
            self.select(n);
        }
    }

    fn set_reviewer(&mut self, name: String) {
        let name = name.trim().to_string();
        if name.is_empty() {
            self.notify(NoticeLevel::Warning, "A reviewer needs a name");
            return;
        }
        if let Some(path) = &self.review.preferences {
            let mut prefs = HashMap::new();
            prefs.insert("reviewer".to_string(), name.clone());
            let text = ron::ser::to_string_pretty(&prefs, ron::ser::PrettyConfig::default())
                .unwrap_or_default();
            let written = path
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|_| write_atomic(path, text.as_bytes()));
            if let Err(e) = written {
                self.notify(
                    NoticeLevel::Warning,
                    format!("Your name is not remembered: {}: {e}", path.display()),
                );
            }
        }
        self.review.reviewer = Some(name);
        // What waited for the name goes ahead, on the image and issue it was asked for.
        if let Some(a) = self.review.awaiting_name.take() {
            match a.cmd {
                ReviewCommand::Verdict(v) => {
                    if let Some(i) = a.image {
                        self.record(i, Some(v), String::new());
                        if self.selected == Some(i) {
                            self.next_after_verdict(i);
                        }
                    }
                }
                ReviewCommand::Note(text) => {
                    if let Some(i) = a.image {
                        self.record(i, None, text.trim().to_string());
                    }
                }
                cmd @ (ReviewCommand::AcceptIssue(_) | ReviewCommand::DismissIssue(_)) => {
                    let k = a
                        .issue
                        .and_then(|x| self.review.issues.iter().position(|(_, y)| *y == x));
                    match (k, cmd) {
                        (Some(k), ReviewCommand::AcceptIssue(_)) => self.accept_issue(k),
                        (Some(k), _) => self.decide(k, IssueAction::Dismissed),
                        (None, _) => {}
                    }
                }
                other => self.apply_review(other),
            }
        }
    }

    /// The reviewer's name (commands that sign ask for it before they get here).
    fn reviewer(&self) -> Option<String> {
        self.review.reviewer.clone()
    }

    /// A verdict and/or note on image `i`, in the review journal.
    fn record(&mut self, i: usize, verdict: Option<Verdict>, note: String) {
        if let Some(why) = self.why_read_only() {
            self.notify(NoticeLevel::Warning, format!("Not recorded: {why}"));
            return;
        }
        let Some(p) = &self.project else { return };
        let Some(id) = p.file.images.get(i).map(|e| e.id.clone()) else {
            return;
        };
        let Some(reviewer) = self.reviewer() else {
            return;
        };
        let Some(p) = &self.project else { return };
        let e = record_review(self.labels.saver(), &p.root, &reviewer, &id, verdict, &note);
        if let Some(v) = verdict {
            self.review.verdicts.insert(id, v);
        }
        self.review.journal.push(e);
        self.refresh_rows();
    }

    fn accept_issue(&mut self, k: usize) {
        let Some((i, issue)) = self.review.issues.get(k).cloned() else {
            return;
        };
        if issue.kind != IssueKind::UnlabelledDetection {
            self.notify(
                NoticeLevel::Info,
                "This region is marked already: dismiss the issue, or erase the mark",
            );
            return;
        }
        let Some(map) = self.evidence_map(i) else {
            self.notify(
                NoticeLevel::Warning,
                "The detector's result on this image is gone: run the detector again",
            );
            return;
        };
        let Some(p) = &self.project else { return };
        let e = &p.file.images[i];
        let Ok(size) = crate::project::imaging::image_size(&p.image_path(e)) else {
            self.notify(NoticeLevel::Warning, "The image cannot be read");
            return;
        };
        let below = p.file.settings.label_issue_log10_nfa as f32;
        let pixels = issue_pixels(&issue, &map, size, below);
        if self.selected != Some(i) {
            self.select(i);
        }
        let before = self.annotation.changes.len();
        let class = self.annotation.class;
        self.edit(Edit::AcceptRegion {
            class,
            log10_nfa: issue.log10_nfa,
            pixels,
        });
        if self.annotation.changes.len() > before {
            self.decide(k, IssueAction::Accepted);
        }
    }

    /// The detector's log10 NFA map on image `i`: the result in memory, or the cached one.
    fn evidence_map(&self, i: usize) -> Option<Array2<f32>> {
        if let Some(d) = self.detections.get(&i) {
            return Some(d.log_nfa.clone());
        }
        let p = self.project.as_ref()?;
        let name = self.detector.as_ref()?;
        Some(p.cached_result(name, &p.file.images[i])?.log_nfa)
    }

    /// Record a decision on issue `k` and take it off the lists.
    fn decide(&mut self, k: usize, action: IssueAction) {
        if let Some(why) = self.why_read_only() {
            self.notify(NoticeLevel::Warning, format!("Not recorded: {why}"));
            return;
        }
        let Some(reviewer) = self.reviewer() else {
            return;
        };
        let Some((i, issue)) = self.review.issues.get(k).cloned() else {
            return;
        };
        let Some(p) = &self.project else { return };
        let d = overview::record_issue_decision(
            self.labels.saver(),
            &p.root,
            &reviewer,
            &issue,
            action,
        );
        self.review.decisions.push(d);
        if let Some(f) = self.review.facts.get_mut(i) {
            f.issues.retain(|x| x != &issue);
        }
        self.review.issues.remove(k);
        self.refresh_rows();
    }

    /// What the background analysed over the whole project.
    pub(super) fn land_overview(&mut self, o: Overview) {
        for p in o.problems.iter().take(3) {
            self.notify(NoticeLevel::Warning, format!("Labels not read: {p}"));
        }
        match o.journal {
            Ok(j) => {
                self.review.verdicts = overview::latest_verdicts(&j);
                self.review.journal = j;
            }
            Err(e) => self.notify(
                NoticeLevel::Warning,
                format!("Review journal not read: {e}"),
            ),
        }
        match o.decisions {
            Ok(d) => self.review.decisions = d,
            Err(e) => self.notify(NoticeLevel::Warning, format!("Issue journal not read: {e}")),
        }
        self.review.facts = o.facts;
        self.review.queue = overview::review_queue(&self.review.facts, self.nfa_threshold);
        self.review.rebuild_issues();
        self.refresh_rows();
    }

    /// New facts of one image.
    pub(super) fn land_image_facts(&mut self, i: usize, f: ImageFacts) {
        if let Some(slot) = self.review.facts.get_mut(i) {
            *slot = f;
            self.review.queue = overview::review_queue(&self.review.facts, self.nfa_threshold);
            self.review.rebuild_issues();
            self.refresh_rows();
        }
    }

    /// A label change: the image's facts are recomputed (not while a stroke is drawn; its end
    /// is a change of its own).
    pub(super) fn labels_changed(&mut self, change: &LabelChange, stroke: bool) {
        if !stroke {
            self.review.stale_images.insert(change.image);
        }
    }
}

/// The analyses behind the review, run on rayon's pool one at a time; owned by the background.
pub struct Analyses {
    tx: Sender<(u64, Analysis)>,
    rx: Receiver<(u64, Analysis)>,
}

enum Analysis {
    Project(Result<Overview, String>),
    Image(usize, Result<ImageFacts, String>),
}

impl Default for Analyses {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel();
        Self { tx, rx }
    }
}

impl Analyses {
    /// Fold finished analyses into the state and start the next one it asks for.
    pub fn poll(&mut self, state: &mut AppState, repaint: &Repaint) {
        while let Ok((generation, a)) = self.rx.try_recv() {
            if generation != state.generation {
                continue;
            }
            state.review.analysing = false;
            match a {
                Analysis::Project(Ok(o)) => state.land_overview(o),
                Analysis::Image(i, Ok(f)) => state.land_image_facts(i, f),
                Analysis::Project(Err(e)) | Analysis::Image(_, Err(e)) => {
                    state.notify(NoticeLevel::Error, format!("Review analysis failed: {e}"))
                }
            }
        }
        if state.review.analysing {
            return;
        }
        let Some(p) = &state.project else {
            state.review.stale = false;
            state.review.stale_images.clear();
            return;
        };
        let opts = IssueOptions {
            detect_below: p.file.settings.label_issue_log10_nfa as f32,
            ..Default::default()
        };
        let level = state.nfa_threshold;
        let model = state.detector.clone();
        let (tx, generation, wake) = (self.tx.clone(), state.generation, repaint.clone());
        if state.review.stale {
            state.review.stale = false;
            state.review.stale_images.clear();
            let project = p.clone();
            // The training-free detector's results live only in memory.
            let in_memory: HashMap<usize, Evidence> = state
                .detections
                .iter()
                .map(|(&i, d)| (i, evidence_of(d)))
                .collect();
            spawn_caught(
                move || {
                    let evidence = |i: usize, e: &ImageEntry| {
                        let ev = in_memory.get(&i).cloned();
                        judged(
                            &project,
                            &model,
                            e,
                            ev.or_else(|| cached(&project, &model, e)),
                        )
                    };
                    let decisions = overview::issue_decisions(&project.root);
                    let (facts, problems) = project_facts(
                        &project,
                        &evidence,
                        level,
                        opts,
                        decisions.as_deref().unwrap_or(&[]),
                    );
                    Overview {
                        facts,
                        problems,
                        journal: overview::review_journal(&project.root).map_err(|e| e.to_string()),
                        decisions: decisions.map_err(|e| e.to_string()),
                    }
                },
                move |r| {
                    let _ = tx.send((generation, Analysis::Project(r)));
                    wake();
                },
            );
            state.review.analysing = true;
        } else if let Some(i) = state.review.stale_images.pop_first() {
            let Some(e) = p.file.images.get(i).cloned() else {
                return;
            };
            // Layers being edited are taken as they are in memory; the others are read there.
            let in_memory: HashMap<String, LabelMask> = p
                .file
                .annotators
                .iter()
                .filter_map(|a| Some((a.id.clone(), state.labels.loaded(&e.id, &a.id)?.clone())))
                .collect();
            let evidence = state.detections.get(&i).map(evidence_of);
            let project = p.clone();
            let decisions: Vec<IssueDecision> = state
                .review
                .decisions
                .iter()
                .filter(|d| d.image == e.id)
                .cloned()
                .collect();
            spawn_caught(
                move || -> Result<ImageFacts, String> {
                    let mut layers = Vec::new();
                    for a in &project.file.annotators {
                        if a.id == CONSENSUS {
                            continue;
                        }
                        let m = match in_memory.get(&a.id) {
                            Some(m) => Some(m.clone()),
                            None => stored_opinion(&project, &e, a).map_err(|x| x.to_string())?,
                        };
                        if let Some(m) = m {
                            layers.push((a.id.clone(), m));
                        }
                    }
                    let ev = judged(
                        &project,
                        &model,
                        &e,
                        evidence.or_else(|| cached(&project, &model, &e)),
                    );
                    Ok(overview::image_facts(
                        &e.id,
                        &layers,
                        ev.as_ref(),
                        level,
                        opts,
                        &decisions,
                    ))
                },
                move |r| {
                    let _ = tx.send((generation, Analysis::Image(i, r.and_then(|r| r))));
                    wake();
                },
            );
            state.review.analysing = true;
        }
    }
}

fn evidence_of(d: &super::detection::Detection) -> Evidence {
    Evidence {
        log_nfa: d.log_nfa.clone(),
        score: d.score.clone(),
        image_score: d.image_score,
        look: d.look,
        unlike_training: None,
    }
}

/// A U-Flow model's cached result on an image, as evidence.
fn cached(project: &Project, model: &Option<String>, e: &ImageEntry) -> Option<Evidence> {
    let s = project.cached_result(model.as_ref()?, e)?;
    Some(Evidence {
        log_nfa: s.log_nfa,
        score: Some(s.anomaly_map),
        image_score: Some(s.image_score),
        look: s.look,
        unlike_training: None,
    })
}

/// The evidence with the drift check of the model's look of the image (in the background: the
/// training images' look may have to be measured once).
fn judged(
    project: &Project,
    model: &Option<String>,
    e: &ImageEntry,
    ev: Option<Evidence>,
) -> Option<Evidence> {
    let mut ev = ev?;
    if let (Some(m), Some(l)) = (model, &ev.look) {
        ev.unlike_training = project
            .training_look(m, &e.category)
            .and_then(|t| t.judge(l))
            .map(|u| u.words);
    }
    Some(ev)
}
