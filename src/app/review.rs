//! Review as the app state holds it: what is known of each image (the background's analysis of the
//! project), the image list's filter and order, the review queue, verdicts and notes, the label
//! issues and what reviewers decided about them, and the reviewer's name (a preference of the
//! person, not of the project).

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use crate::project::overview::{ImageFacts, IssueDecision};
use crate::project::review::{LabelIssue, ReviewEntry, Verdict};
use crate::project::{ImageEntry, Project, Split};

/// Which verdicts the list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VerdictFilter {
    #[default]
    Any,
    Unreviewed,
    Is(Verdict),
}

/// The image list's filter: every field narrows it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ListFilter {
    pub split: Option<Split>,
    pub category: Option<String>,
    pub kind: Option<String>,
    pub verdict: VerdictFilter,
    /// Images this annotator labelled.
    pub annotator: Option<String>,
    /// Images whose annotators outline different things (IoU under 0.5).
    pub only_disagreements: bool,
    pub only_issues: bool,
    /// Images the detector flags at the current NFA level.
    pub only_flagged: bool,
    /// Images unlike every image the model trained on (the drift check).
    pub only_unlike_training: bool,
}

impl ListFilter {
    pub fn is_empty(&self) -> bool {
        *self == ListFilter::default()
    }
}

/// The image list's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortKey {
    /// Project order (datasets import by category, split, kind, file name).
    #[default]
    Name,
    /// Highest image score first.
    Score,
    /// Most significant detection (lowest log10 NFA) first.
    Significance,
    /// Lowest agreement between annotators first.
    Disagreement,
}

impl SortKey {
    pub const ALL: [SortKey; 4] = [
        SortKey::Name,
        SortKey::Score,
        SortKey::Significance,
        SortKey::Disagreement,
    ];

    pub fn label(self) -> &'static str {
        match self {
            SortKey::Name => "name",
            SortKey::Score => "score",
            SortKey::Significance => "significance",
            SortKey::Disagreement => "disagreement",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ReviewCommand {
    /// Who signs verdicts (kept in the person's preferences).
    SetReviewer(String),
    /// The selected image's verdict.
    Verdict(Verdict),
    /// A note on the selected image (with its current verdict).
    Note(String),
    /// Select the first image of the queue without a verdict.
    NextUnreviewed,
    Filter(ListFilter),
    Sort(SortKey),
    /// Select an issue's image, to be shown zoomed on it (index into `Review::issues`).
    OpenIssue(usize),
    /// The same for a label the model cannot confirm (index into `Review::unconfirmed`).
    OpenUnconfirmed(usize),
    /// Add an unlabelled detection to the active annotator's layer.
    AcceptIssue(usize),
    /// Not a label error: recorded, and not shown again.
    DismissIssue(usize),
    /// Let go of the action that waits for the reviewer's name.
    CancelAwaiting,
}

impl ReviewCommand {
    /// Whether the command is signed with the reviewer's name (in a journal).
    pub fn is_signed(&self) -> bool {
        matches!(
            self,
            ReviewCommand::Verdict(_)
                | ReviewCommand::Note(_)
                | ReviewCommand::AcceptIssue(_)
                | ReviewCommand::DismissIssue(_)
        )
    }
}

/// A signed action given before anyone said who reviews: it waits for the name, on the image
/// and the issue it was given for.
#[derive(Debug, Clone, PartialEq)]
pub struct Awaiting {
    pub cmd: ReviewCommand,
    pub image: Option<usize>,
    pub issue: Option<LabelIssue>,
}

/// What the background found over the whole project.
pub struct Overview {
    pub facts: Vec<ImageFacts>,
    pub problems: Vec<String>,
    pub journal: Result<Vec<ReviewEntry>, String>,
    pub decisions: Result<Vec<IssueDecision>, String>,
}

pub struct Review {
    /// Per image, in project order; empty until the first analysis lands.
    pub facts: Vec<ImageFacts>,
    /// Every verdict and note, oldest first, and the latest verdict per image id.
    pub journal: Vec<ReviewEntry>,
    pub verdicts: HashMap<String, Verdict>,
    pub decisions: Vec<IssueDecision>,
    /// Image indices, most disputed first.
    pub queue: Vec<usize>,
    /// Open label issues of the project with their image index, strongest first.
    pub issues: Vec<(usize, LabelIssue)>,
    /// Labels the model cannot confirm (seen above normal, below the level), weakest evidence
    /// first: shown apart, never counted as issues.
    pub unconfirmed: Vec<(usize, LabelIssue)>,
    pub filter: ListFilter,
    pub sort: SortKey,
    /// The image list: image indices, filtered and sorted.
    pub rows: Vec<usize>,
    pub reviewer: Option<String>,
    /// Where the person's preferences are kept (None: not kept, as in tests).
    pub preferences: Option<PathBuf>,
    /// A whole-project analysis is wanted, or one is running.
    pub stale: bool,
    pub analysing: bool,
    /// Images whose layers or results changed since their facts were computed.
    pub stale_images: BTreeSet<usize>,
    /// The label issue the viewer should zoom on: (image index, box); the window takes it.
    pub focus: Option<(usize, [u32; 4])>,
    /// The signed action that waits for the reviewer's name, if any.
    pub awaiting_name: Option<Awaiting>,
}

impl Review {
    pub fn new(preferences: Option<PathBuf>) -> Self {
        let reviewer = preferences.as_deref().and_then(read_reviewer);
        Self {
            facts: Vec::new(),
            journal: Vec::new(),
            verdicts: HashMap::new(),
            decisions: Vec::new(),
            queue: Vec::new(),
            issues: Vec::new(),
            unconfirmed: Vec::new(),
            filter: ListFilter::default(),
            sort: SortKey::default(),
            rows: Vec::new(),
            reviewer,
            preferences,
            stale: false,
            analysing: false,
            stale_images: BTreeSet::new(),
            focus: None,
            awaiting_name: None,
        }
    }

    /// Forget the previous project's review; what belongs to the person stays.
    pub fn reset(&mut self, images: usize) {
        *self = Self {
            filter: ListFilter::default(),
            sort: self.sort,
            reviewer: self.reviewer.take(),
            preferences: self.preferences.take(),
            stale: true,
            rows: (0..images).collect(),
            ..Self::new(None)
        };
    }

    /// Nothing is waiting to be analysed.
    pub fn is_idle(&self) -> bool {
        !self.stale && !self.analysing && self.stale_images.is_empty()
    }

    /// "37 of 120 reviewed": queue images with a verdict, and the queue's length.
    pub fn progress(&self, project: &Project) -> (usize, usize) {
        let done = self
            .queue
            .iter()
            .filter(|&&i| self.verdicts.contains_key(&project.file.images[i].id))
            .count();
        (done, self.queue.len())
    }

    /// The journal's entries for one image, oldest first.
    pub fn history_of<'a>(&'a self, id: &'a str) -> impl Iterator<Item = &'a ReviewEntry> {
        self.journal.iter().filter(move |e| e.image == id)
    }

    pub(super) fn rebuild_issues(&mut self) {
        self.issues = self
            .facts
            .iter()
            .enumerate()
            .flat_map(|(i, f)| f.issues.iter().map(move |x| (i, x.clone())))
            .collect();
        self.issues
            .sort_by(|a, b| b.1.strength.total_cmp(&a.1.strength));
        self.unconfirmed = self
            .facts
            .iter()
            .enumerate()
            .flat_map(|(i, f)| f.unconfirmed.iter().map(move |x| (i, x.clone())))
            .collect();
        self.unconfirmed.sort_by(|a, b| {
            let p = |x: &LabelIssue| x.percentile.unwrap_or(1.0);
            p(&a.1).total_cmp(&p(&b.1))
        });
    }
}

/// The most a label issue is magnified when opened (4 screen points per image pixel): closer, a
/// small region is a blur of pixels with nothing around it to judge it by.
pub const ISSUE_MAX_ZOOM: f32 = 4.0;

/// The part of an image of `size` (width, height) to show for a label issue's box
/// [x0, y0, x1, y1): the box grown about its centre to at least a quarter of the image's longer
/// side each way (and by half again, for context), moved inside the image where it would cross
/// an edge.
pub fn issue_frame(bbox: [u32; 4], size: [u32; 2]) -> [f32; 4] {
    let [x0, y0, x1, y1] = bbox.map(|v| v as f32);
    let [w, h] = size.map(|v| v as f32);
    let least = w.max(h) / 4.0;
    let side = |lo: f32, hi: f32, limit: f32| {
        let len = ((hi - lo) * 1.5).max(least).min(limit);
        let mid = (lo + hi) / 2.0;
        let start = (mid - len / 2.0).clamp(0.0, (limit - len).max(0.0));
        (start, start + len)
    };
    let (fx0, fx1) = side(x0, x1, w);
    let (fy0, fy1) = side(y0, y1, h);
    [fx0, fy0, fx1, fy1]
}

/// The reviewer's name from the preferences file, if one was kept.
fn read_reviewer(path: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let prefs: HashMap<String, String> = ron::from_str(&text).ok()?;
    prefs.get("reviewer").filter(|s| !s.is_empty()).cloned()
}

/// Where the person's preferences live: `CONTRARIO_CONFIG`, else the platform's config folder.
pub fn preferences_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CONTRARIO_CONFIG") {
        return Some(PathBuf::from(p).join("preferences.ron"));
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("contrario/preferences.ron"))
}

/// The image list's rows: images passing `filter`, in `sort` order (ties in project order).
pub fn list_rows(
    project: &Project,
    facts: &[ImageFacts],
    verdicts: &HashMap<String, Verdict>,
    filter: &ListFilter,
    sort: SortKey,
    level: f32,
) -> Vec<usize> {
    let none = ImageFacts::default();
    let fact = |i: usize| facts.get(i).unwrap_or(&none);
    let keep = |i: usize, e: &ImageEntry| {
        let f = fact(i);
        filter.split.is_none_or(|s| e.split == s)
            && filter.category.as_ref().is_none_or(|c| &e.category == c)
            && filter.kind.as_ref().is_none_or(|k| &e.kind == k)
            && match filter.verdict {
                VerdictFilter::Any => true,
                VerdictFilter::Unreviewed => !verdicts.contains_key(&e.id),
                VerdictFilter::Is(v) => verdicts.get(&e.id) == Some(&v),
            }
            && filter
                .annotator
                .as_ref()
                .is_none_or(|a| f.annotators.contains(a) || e.labels.contains_key(a))
            && (!filter.only_disagreements || f.disagreement())
            && (!filter.only_issues || !f.issues.is_empty())
            && (!filter.only_flagged || f.flagged(level))
            && (!filter.only_unlike_training || f.unlike_training.is_some())
    };
    let mut rows: Vec<usize> = project
        .file
        .images
        .iter()
        .enumerate()
        .filter(|(i, e)| keep(*i, e))
        .map(|(i, _)| i)
        .collect();
    // Missing values sort last whichever the direction.
    let last = |v: Option<f64>| v.unwrap_or(f64::INFINITY);
    match sort {
        SortKey::Name => {}
        SortKey::Score => rows.sort_by(|&a, &b| {
            last(fact(a).image_score.map(|v| -v as f64))
                .total_cmp(&last(fact(b).image_score.map(|v| -v as f64)))
        }),
        SortKey::Significance => rows.sort_by(|&a, &b| {
            last(fact(a).min_log_nfa.map(f64::from))
                .total_cmp(&last(fact(b).min_log_nfa.map(f64::from)))
        }),
        SortKey::Disagreement => {
            rows.sort_by(|&a, &b| last(fact(a).worst_iou).total_cmp(&last(fact(b).worst_iou)))
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_issue_is_framed_with_its_surroundings_inside_the_image() {
        // A 56-pixel region in a 1024 image: at least 256 px shown around it.
        let f = issue_frame([500, 500, 508, 507], [1024, 1024]);
        assert_eq!(f[2] - f[0], 256.0);
        assert_eq!(f[3] - f[1], 256.0);
        assert!(f[0] < 500.0 && f[2] > 508.0 && f[1] < 500.0 && f[3] > 507.0);
        // At a corner the frame moves inside the image instead of past its edge.
        let f = issue_frame([0, 1000, 10, 1024], [1024, 1024]);
        assert_eq!(f, [0.0, 768.0, 256.0, 1024.0]);
        // A large region gets room around it, never more than the image.
        let f = issue_frame([100, 0, 900, 300], [1024, 512]);
        assert_eq!((f[0], f[2]), (0.0, 1024.0));
        assert_eq!(f[3] - f[1], 450.0);
    }
}
