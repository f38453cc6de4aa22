//! What the window's image list, review queue and label-issue panel know of each image: the
//! model's evidence (image score, most significant log10 NFA), the annotators' agreement, and
//! the label issues nobody has dismissed. Computed off the UI thread, for a whole project from
//! the files and the model's cached results, or for one image from the layers being edited.

use std::collections::HashMap;
use std::path::Path;

use ndarray::Array2;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::labels::{LabelError, stored_opinion};
use super::mask::LabelMask;
use super::review::{self, CONSENSUS, IssueKind, IssueOptions, LabelIssue, ReviewEntry, Verdict};
use super::storage::{iso8601, now_ms, read_jsonl};
use super::{ImageEntry, Project};
use crate::project::autosave::Autosaver;

/// Annotators whose lowest pairwise IoU on an image is below this disagree on it: they do not
/// outline the same thing (IoU 0.5 is the usual "same object" line of detection benchmarks).
pub const DISAGREEMENT_IOU: f64 = 0.5;

/// What a detector said about an image.
#[derive(Debug, Clone)]
pub struct Evidence {
    pub log_nfa: Array2<f32>,
    /// The detector's score map, higher more anomalous (U-Flow's anomaly map; None for the
    /// training-free detector, whose score is `-log_nfa`).
    pub score: Option<Array2<f32>>,
    /// U-Flow's image score (None for the training-free detector).
    pub image_score: Option<f32>,
    /// The image's look as the model saw it, and the drift check of it: unlike every training
    /// image of the model, in words.
    pub look: Option<crate::project::drift::Look>,
    pub unlike_training: Option<String>,
}

/// What is known of one image.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ImageFacts {
    /// The detector's result, when there is one.
    pub image_score: Option<f32>,
    pub min_log_nfa: Option<f32>,
    /// Annotators who labelled the image (a read-only ground truth always has), consensus left
    /// out.
    pub annotators: Vec<String>,
    /// Lowest IoU between two annotators (None with fewer than two).
    pub worst_iou: Option<f64>,
    /// Lowest IoU between an annotator and the detection at the level (None without either).
    pub worst_model_iou: Option<f64>,
    /// Label issues of the image that nobody dismissed, strongest first.
    pub issues: Vec<LabelIssue>,
    /// Labels the model sees something in but not at the NFA level: not issues.
    pub unconfirmed: Vec<LabelIssue>,
    /// Unlike every image the model trained on (the drift check), in words.
    pub unlike_training: Option<String>,
}

impl ImageFacts {
    /// Annotators outline different things here.
    pub fn disagreement(&self) -> bool {
        self.worst_iou.is_some_and(|v| v < DISAGREEMENT_IOU)
    }

    /// The detector flags the image at `level`: some region has log10 NFA below it.
    pub fn flagged(&self, level: f32) -> bool {
        self.min_log_nfa.is_some_and(|v| v < level)
    }
}

/// The facts of one image from its layers and the detector's evidence.
pub fn image_facts(
    id: &str,
    layers: &[(String, LabelMask)],
    evidence: Option<&Evidence>,
    level: f32,
    opts: IssueOptions,
    decisions: &[IssueDecision],
) -> ImageFacts {
    let min_log_nfa = evidence.map(|e| e.log_nfa.iter().copied().fold(f32::INFINITY, f32::min));
    let d = review::analyze(id, layers, evidence.map(|e| &e.log_nfa), level);
    let lowest = |v: &[review::PairIou]| v.iter().map(|p| p.iou).reduce(f64::min);
    let found = evidence
        .map(|e| review::label_issues(id, &e.log_nfa, e.score.as_ref(), layers, opts))
        .unwrap_or_default();
    let issues = found
        .issues
        .into_iter()
        .filter(|i| !dismissed(i, decisions))
        .collect();
    ImageFacts {
        image_score: evidence.and_then(|e| e.image_score),
        min_log_nfa,
        annotators: d.annotators,
        worst_iou: lowest(&d.pairs),
        worst_model_iou: lowest(&d.vs_model),
        issues,
        unconfirmed: found.unconfirmed,
        unlike_training: evidence.and_then(|e| e.unlike_training.clone()),
    }
}

/// Every layer of an image that says something, read from the files (see
/// [`review::layers_of`], which also sees layers being edited).
pub fn stored_layers(
    project: &Project,
    entry: &ImageEntry,
) -> Result<Vec<(String, LabelMask)>, LabelError> {
    let mut out = Vec::new();
    for a in &project.file.annotators {
        if a.id == CONSENSUS {
            continue;
        }
        if let Some(m) = stored_opinion(project, entry, a)? {
            out.push((a.id.clone(), m));
        }
    }
    Ok(out)
}

/// The facts of every image of a project (in project order), in parallel, from the files and
/// `evidence` (the detector's result per image, if any). An image whose labels cannot be read
/// gets the facts of its evidence alone and a line in the returned problems.
pub fn project_facts(
    project: &Project,
    evidence: &(dyn Fn(usize, &ImageEntry) -> Option<Evidence> + Sync),
    level: f32,
    opts: IssueOptions,
    decisions: &[IssueDecision],
) -> (Vec<ImageFacts>, Vec<String>) {
    let by_image = decisions_by_image(decisions);
    let results: Vec<(ImageFacts, Option<String>)> = project
        .file
        .images
        .par_iter()
        .enumerate()
        .map(|(i, e)| {
            let ev = evidence(i, e);
            let mine = by_image
                .get(e.id.as_str())
                .map_or(&[][..], |v| v.as_slice());
            let (layers, problem) = match stored_layers(project, e) {
                Ok(l) => (l, None),
                Err(err) => (Vec::new(), Some(format!("{}: {err}", e.id))),
            };
            (
                image_facts(&e.id, &layers, ev.as_ref(), level, opts, mine),
                problem,
            )
        })
        .collect();
    let mut problems = Vec::new();
    let facts = results
        .into_iter()
        .map(|(f, p)| {
            problems.extend(p);
            f
        })
        .collect();
    (facts, problems)
}

fn decisions_by_image(decisions: &[IssueDecision]) -> HashMap<&str, Vec<IssueDecision>> {
    let mut out: HashMap<&str, Vec<IssueDecision>> = HashMap::new();
    for d in decisions {
        out.entry(d.image.as_str()).or_default().push(d.clone());
    }
    out
}

/// The review queue: images whose annotators disagree most first, then those where they
/// disagree with the detector, then the most significant detections; ties keep project order.
/// Images nobody labelled and the detector does not flag at `level` are not in it.
pub fn review_queue(facts: &[ImageFacts], level: f32) -> Vec<usize> {
    let mut q: Vec<usize> = (0..facts.len())
        .filter(|&i| !facts[i].annotators.is_empty() || facts[i].flagged(level))
        .collect();
    let key = |f: &ImageFacts| {
        (
            1.0 - f.worst_iou.unwrap_or(1.0),
            1.0 - f.worst_model_iou.unwrap_or(1.0),
            f.min_log_nfa.unwrap_or(f32::INFINITY),
        )
    };
    q.sort_by(|&a, &b| {
        let (ka, kb) = (key(&facts[a]), key(&facts[b]));
        kb.0.total_cmp(&ka.0)
            .then(kb.1.total_cmp(&ka.1))
            .then(ka.2.total_cmp(&kb.2))
    });
    q
}

/// Every verdict and note of the review journal, oldest first (an unreadable journal reads as
/// empty: the caller says so).
pub fn review_journal(root: &Path) -> std::io::Result<Vec<ReviewEntry>> {
    read_jsonl::<ReviewEntry>(&root.join(review::REVIEW_FILE))
}

/// The latest verdict per image from journal entries (an entry with only a note keeps the
/// earlier verdict).
pub fn latest_verdicts(journal: &[ReviewEntry]) -> HashMap<String, Verdict> {
    let mut out = HashMap::new();
    for e in journal {
        if let Some(v) = e.verdict {
            out.insert(e.image.clone(), v);
        }
    }
    out
}

/// What a reviewer decided about a label issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IssueAction {
    /// Not a label error: it is not shown again.
    Dismissed,
    /// Added to the reviewer's layer as a defect.
    Accepted,
}

/// One line of `journal/issues.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IssueDecision {
    pub time_ms: u64,
    pub time: String,
    pub reviewer: String,
    pub image: String,
    pub issue: IssueKind,
    pub bbox: [u32; 4],
    pub action: IssueAction,
}

pub const ISSUES_FILE: &str = "journal/issues.jsonl";

/// Record a decision on a label issue through the autosaver.
pub fn record_issue_decision(
    saver: &Autosaver,
    root: &Path,
    reviewer: &str,
    issue: &LabelIssue,
    action: IssueAction,
) -> IssueDecision {
    let time_ms = now_ms();
    let d = IssueDecision {
        time_ms,
        time: iso8601(time_ms),
        reviewer: reviewer.into(),
        image: issue.image.clone(),
        issue: issue.kind.clone(),
        bbox: issue.bbox,
        action,
    };
    saver.append_json(root.join(ISSUES_FILE), &d);
    d
}

pub fn issue_decisions(root: &Path) -> std::io::Result<Vec<IssueDecision>> {
    read_jsonl::<IssueDecision>(&root.join(ISSUES_FILE))
}

/// An issue was decided on already: same image and kind, and boxes that overlap by half (a
/// retrained model moves a region's edge by a few pixels; it is still the same issue).
pub fn dismissed(issue: &LabelIssue, decisions: &[IssueDecision]) -> bool {
    decisions.iter().any(|d| {
        d.image == issue.image && d.issue == issue.kind && box_iou(d.bbox, issue.bbox) >= 0.5
    })
}

fn box_iou(a: [u32; 4], b: [u32; 4]) -> f64 {
    let area =
        |r: [u32; 4]| (r[2].saturating_sub(r[0]) as f64) * (r[3].saturating_sub(r[1]) as f64);
    let i = [
        a[0].max(b[0]),
        a[1].max(b[1]),
        a[2].min(b[2]),
        a[3].min(b[3]),
    ];
    let inter = area(i);
    let union = area(a) + area(b) - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

/// The image pixels of an unlabelled detection: those of its box whose map cell is below
/// `below` (the map is laid over the image as the detector's grid).
pub fn issue_pixels(
    issue: &LabelIssue,
    log_nfa: &Array2<f32>,
    (w, h): (u32, u32),
    below: f32,
) -> Vec<u32> {
    let (gh, gw) = log_nfa.dim();
    if gh == 0 || gw == 0 || w == 0 || h == 0 {
        return Vec::new();
    }
    let [x0, y0, x1, y1] = issue.bbox;
    let mut out = Vec::new();
    for y in y0..y1.min(h) {
        let gy = (y as usize * gh / h as usize).min(gh - 1);
        for x in x0..x1.min(w) {
            let gx = (x as usize * gw / w as usize).min(gw - 1);
            if log_nfa[(gy, gx)] < below {
                out.push(y * w + x);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(w: u32, h: u32, rect: [u32; 4]) -> LabelMask {
        let mut m = LabelMask::new(w, h);
        for y in rect[1]..rect[3] {
            for x in rect[0]..rect[2] {
                m.data[(y * w + x) as usize] = 1;
            }
        }
        m
    }

    #[test]
    fn facts_say_who_disagrees_and_what_the_detector_flags() {
        let layers = vec![
            ("a".to_string(), mask(8, 8, [0, 0, 4, 4])),
            ("b".to_string(), mask(8, 8, [4, 4, 8, 8])),
        ];
        let mut map = Array2::<f32>::from_elem((4, 4), 5.0);
        map[(0, 0)] = -6.0;
        map[(3, 0)] = -9.0; // nobody marked the bottom-left corner
        let ev = Evidence {
            log_nfa: map,
            score: None,
            image_score: Some(0.7),
            look: None,
            unlike_training: None,
        };
        let f = image_facts("x", &layers, Some(&ev), 0.0, IssueOptions::default(), &[]);
        assert_eq!(f.worst_iou, Some(0.0));
        assert!(f.disagreement());
        assert!(f.flagged(0.0) && !f.flagged(-10.0));
        assert_eq!(f.min_log_nfa, Some(-9.0));
        assert_eq!(f.image_score, Some(0.7));
        let unlabelled: Vec<_> = f
            .issues
            .iter()
            .filter(|i| i.kind == IssueKind::UnlabelledDetection)
            .collect();
        assert_eq!(unlabelled.len(), 1);
        assert_eq!(unlabelled[0].bbox, [0, 6, 2, 8]);
        // Once dismissed, it is gone, also when a retrained model moves its box a little.
        let d = IssueDecision {
            time_ms: 0,
            time: String::new(),
            reviewer: "r".into(),
            image: "x".into(),
            issue: IssueKind::UnlabelledDetection,
            bbox: [0, 5, 2, 8],
            action: IssueAction::Dismissed,
        };
        let f = image_facts("x", &layers, Some(&ev), 0.0, IssueOptions::default(), &[d]);
        assert!(
            f.issues
                .iter()
                .all(|i| i.kind != IssueKind::UnlabelledDetection)
        );
        assert_eq!(
            issue_pixels(unlabelled[0], &ev.log_nfa, (8, 8), -2.0),
            vec![48, 49, 56, 57]
        );
    }

    #[test]
    fn the_queue_puts_disputes_first_and_leaves_out_what_nobody_looked_at() {
        let facts = vec![
            ImageFacts::default(),
            ImageFacts {
                annotators: vec!["a".into(), "b".into()],
                worst_iou: Some(0.9),
                ..Default::default()
            },
            ImageFacts {
                annotators: vec!["a".into(), "b".into()],
                worst_iou: Some(0.2),
                ..Default::default()
            },
            ImageFacts {
                min_log_nfa: Some(-4.0),
                ..Default::default()
            },
            ImageFacts {
                min_log_nfa: Some(3.0),
                ..Default::default()
            },
        ];
        assert_eq!(review_queue(&facts, 0.0), vec![2, 1, 3]);
    }

    #[test]
    fn decisions_round_trip_through_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let saver = Autosaver::new();
        let issue = LabelIssue {
            image: "img".into(),
            kind: IssueKind::LabelWithoutEvidence {
                annotator: "ben".into(),
            },
            bbox: [1, 2, 3, 4],
            area: 4,
            log10_nfa: 3.0,
            strength: 3.0,
            percentile: Some(0.4),
        };
        let d = record_issue_decision(&saver, dir.path(), "tess", &issue, IssueAction::Dismissed);
        assert!(saver.flush().is_empty());
        assert_eq!(issue_decisions(dir.path()).unwrap(), vec![d]);
        assert!(dismissed(&issue, &issue_decisions(dir.path()).unwrap()));
    }
}
