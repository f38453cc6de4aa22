//! Review: where annotators disagree with each other and with the model, which views of one object
//! are labelled inconsistently, which labels are probably wrong given the model's a contrario
//! evidence, adjudication into a consensus layer, and the review journal (verdicts and notes).

use ndarray::Array2;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use crate::project::Project;
use crate::project::autosave::Autosaver;
use crate::project::labels::{Edit, EditOutcome, LabelError, LabelStore};
use crate::project::mask::{LabelMask, bbox_of};
use crate::project::storage::{iso8601, now_ms, read_jsonl};
use crate::stats::acontrario::nfa::DEFAULT_TEST_SIDE;
use crate::stats::metrics;

/// The layer adjudication writes.
pub const CONSENSUS: &str = "consensus";
/// The model's detection, when it takes part in a comparison.
pub const MODEL: &str = "model";

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairIou {
    pub a: String,
    pub b: String,
    pub iou: f64,
}

/// Every layer of an image that says something: each annotator who labelled it (a read-only
/// dataset ground truth covers every image, so its missing mask means "clean"), in project order.
/// The consensus layer is left out: it is the result of review, not an opinion.
pub fn layers_of(
    project: &Project,
    store: &mut LabelStore,
    image_id: &str,
) -> Result<Vec<(String, LabelMask)>, LabelError> {
    let mut out = Vec::new();
    for a in &project.file.annotators {
        if a.id == CONSENSUS {
            continue;
        }
        if let Some(m) = store.opinion(project, image_id, &a.id)? {
            out.push((a.id.clone(), m));
        }
    }
    Ok(out)
}

/// The model's detection at a threshold as a mask of the image's size (class 1 where the
/// log10 NFA map, nearest-neighbour upsampled, is below the threshold).
pub fn detection_mask(log_nfa: &Array2<f32>, threshold: f32, (w, h): (u32, u32)) -> LabelMask {
    let (gh, gw) = log_nfa.dim();
    let mut m = LabelMask::new(w, h);
    for y in 0..h as usize {
        let gy = (y * gh / h as usize).min(gh - 1);
        for x in 0..w as usize {
            let gx = (x * gw / w as usize).min(gw - 1);
            if log_nfa[(gy, gx)] < threshold {
                m.data[y * w as usize + x] = 1;
            }
        }
    }
    m
}

/// Pairwise IoU of binary masks (any class), every unordered pair in order.
pub fn pairwise_iou(layers: &[(String, LabelMask)]) -> Vec<PairIou> {
    pairs_of(layers, &binaries(layers))
}

fn binaries(layers: &[(String, LabelMask)]) -> Vec<Vec<bool>> {
    layers.iter().map(|(_, m)| m.binary()).collect()
}

fn pairs_of(layers: &[(String, LabelMask)], bins: &[Vec<bool>]) -> Vec<PairIou> {
    let mut out = Vec::new();
    for i in 0..layers.len() {
        for j in i + 1..layers.len() {
            out.push(PairIou {
                a: layers[i].0.clone(),
                b: layers[j].0.clone(),
                iou: metrics::iou(&bins[i], &bins[j]),
            });
        }
    }
    out
}

/// Who marked what, per pixel: bit i is set when layer i marks the pixel. A pixel is disputed
/// when some but not all layers mark it.
pub fn disagreement_map(layers: &[&LabelMask]) -> Vec<u32> {
    assert!(
        layers.len() <= 32,
        "at most 32 layers in a disagreement map"
    );
    let n = layers.first().map_or(0, |m| m.data.len());
    let mut out = vec![0u32; n];
    for (i, m) in layers.iter().enumerate() {
        for (o, &v) in out.iter_mut().zip(&m.data) {
            *o |= ((v != 0) as u32) << i;
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageDisagreement {
    pub image: String,
    pub annotators: Vec<String>,
    /// Between annotators.
    pub pairs: Vec<PairIou>,
    /// Each annotator against the model's detection (empty without a model).
    pub vs_model: Vec<PairIou>,
    /// Pixels marked by some layers (the model included) but not all.
    pub disputed_pixels: usize,
    /// 1 - the lowest IoU between two annotators (0 when fewer than two labelled the image):
    /// what the review queue sorts by.
    pub score: f64,
    /// 1 - the lowest IoU between an annotator and the model (tie-breaker of the queue).
    pub model_score: f64,
}

/// Compare an image's layers with each other and, when given, with the model's log10 NFA map
/// thresholded at the project's NFA level.
pub fn analyze(
    image_id: &str,
    layers: &[(String, LabelMask)],
    model: Option<&Array2<f32>>,
    threshold: f32,
) -> ImageDisagreement {
    // Binary masks once, for the pairs and for the comparison with the model.
    let bins = binaries(layers);
    let pairs = pairs_of(layers, &bins);
    let mut all: Vec<&LabelMask> = layers.iter().map(|(_, m)| m).collect();
    let det = match (model, layers.first()) {
        (Some(map), Some((_, m))) => Some(detection_mask(map, threshold, (m.width, m.height))),
        _ => None,
    };
    let vs_model: Vec<PairIou> = det
        .as_ref()
        .map(|d| {
            let db = d.binary();
            layers
                .iter()
                .zip(&bins)
                .map(|((a, _), b)| PairIou {
                    a: a.clone(),
                    b: MODEL.into(),
                    iou: metrics::iou(b, &db),
                })
                .collect()
        })
        .unwrap_or_default();
    if let Some(d) = &det {
        all.push(d);
    }
    let full = if all.is_empty() {
        0
    } else {
        (1u64 << all.len()) - 1
    } as u32;
    let disputed_pixels = disagreement_map(&all[..all.len().min(32)])
        .iter()
        .filter(|&&b| b != 0 && b != full)
        .count();
    let worst = |v: &[PairIou]| v.iter().map(|p| 1.0 - p.iou).fold(0.0f64, f64::max);
    ImageDisagreement {
        image: image_id.into(),
        annotators: layers.iter().map(|(a, _)| a.clone()).collect(),
        score: worst(&pairs),
        model_score: worst(&vs_model),
        pairs,
        vs_model,
        disputed_pixels,
    }
}

/// The review queue: images ordered by disagreement between annotators, then with the model,
/// most disputed first; ties keep project order.
pub fn review_queue(mut items: Vec<ImageDisagreement>) -> Vec<ImageDisagreement> {
    items.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(b.model_score.total_cmp(&a.model_score))
    });
    items
}

/// A group (views of one object) that an annotator labelled defective in some views and clean in
/// others: a defect visible from one side only, or a missed or spurious label.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupInconsistency {
    pub group: String,
    pub annotator: String,
    pub defective_views: Vec<String>,
    pub clean_views: Vec<String>,
}

pub fn group_inconsistencies(
    project: &Project,
    store: &mut LabelStore,
) -> Result<Vec<GroupInconsistency>, LabelError> {
    let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for e in &project.file.images {
        if !e.group.is_empty() {
            groups.entry(&e.group).or_default().push(&e.id);
        }
    }
    let mut out = Vec::new();
    for (g, ids) in groups {
        out.extend(inconsistencies_of(project, store, g, &ids)?);
    }
    Ok(out)
}

/// [`group_inconsistencies`] of one group (the window checks the group of the image on
/// display).
pub fn group_inconsistency(
    project: &Project,
    store: &mut LabelStore,
    group: &str,
) -> Result<Vec<GroupInconsistency>, LabelError> {
    let ids: Vec<&str> = project
        .file
        .images
        .iter()
        .filter(|e| e.group == group)
        .map(|e| e.id.as_str())
        .collect();
    inconsistencies_of(project, store, group, &ids)
}

fn inconsistencies_of(
    project: &Project,
    store: &mut LabelStore,
    group: &str,
    ids: &[&str],
) -> Result<Vec<GroupInconsistency>, LabelError> {
    let mut per: BTreeMap<String, (Vec<String>, Vec<String>)> = BTreeMap::new();
    for &id in ids {
        for (a, m) in layers_of(project, store, id)? {
            let slot = per.entry(a).or_default();
            if m.is_empty() {
                slot.1.push(id.to_string());
            } else {
                slot.0.push(id.to_string());
            }
        }
    }
    Ok(per
        .into_iter()
        .filter(|(_, (def, clean))| !def.is_empty() && !clean.is_empty())
        .map(|(a, (def, clean))| GroupInconsistency {
            group: group.to_string(),
            annotator: a,
            defective_views: def,
            clean_views: clean,
        })
        .collect())
}

/// How adjudication builds the consensus layer.
#[derive(Debug, Clone, PartialEq)]
pub enum ConsensusRule {
    /// Take one annotator's outline as it is.
    Take(String),
    /// Pixels marked by more than half of the layers (class: the most frequent one there).
    Majority,
    Union,
    Intersection,
}

impl ConsensusRule {
    fn describe(&self, names: &[String]) -> String {
        match self {
            ConsensusRule::Take(a) => format!("outline of {a}"),
            ConsensusRule::Majority => format!("majority of {}", names.join(", ")),
            ConsensusRule::Union => format!("union of {}", names.join(", ")),
            ConsensusRule::Intersection => format!("intersection of {}", names.join(", ")),
        }
    }
}

/// Combine layers per pixel. With `Take`, only that layer counts.
pub fn combine(layers: &[(String, LabelMask)], rule: &ConsensusRule) -> Option<LabelMask> {
    let (_, first) = layers.first()?;
    if let ConsensusRule::Take(who) = rule {
        return layers
            .iter()
            .find(|(a, _)| a == who)
            .map(|(_, m)| m.clone());
    }
    let n = layers.len();
    let mut out = LabelMask::new(first.width, first.height);
    let mut counts = [0u16; 256];
    for i in 0..out.data.len() {
        let mut marked = 0;
        let mut seen: [u8; 32] = [0; 32];
        let mut k = 0;
        for (_, m) in layers {
            let c = m.data[i];
            if c != 0 {
                marked += 1;
                counts[c as usize] += 1;
                if k < 32 {
                    seen[k] = c;
                    k += 1;
                }
            }
        }
        let keep = match rule {
            ConsensusRule::Majority => 2 * marked > n,
            ConsensusRule::Union => marked > 0,
            ConsensusRule::Intersection => marked == n,
            ConsensusRule::Take(_) => unreachable!(),
        };
        if keep {
            // Most frequent class; ties go to the lower class index.
            let mut best = 0u8;
            for &c in &seen[..k] {
                if best == 0
                    || counts[c as usize] > counts[best as usize]
                    || (counts[c as usize] == counts[best as usize] && c < best)
                {
                    best = c;
                }
            }
            out.data[i] = best;
        }
        for &c in &seen[..k] {
            counts[c as usize] = 0;
        }
    }
    Some(out)
}

/// Adjudicate an image: write the consensus layer from the annotators' layers with `rule`. The
/// audit trail records the rule and whose outlines went into it; later edits of the consensus
/// layer are recorded like any other edit.
pub fn adjudicate(
    project: &mut Project,
    store: &mut LabelStore,
    image_id: &str,
    rule: &ConsensusRule,
) -> Result<EditOutcome, LabelError> {
    let layers = layers_of(project, store, image_id)?;
    let names: Vec<String> = layers.iter().map(|(a, _)| a.clone()).collect();
    let mask = combine(&layers, rule).ok_or_else(|| match rule {
        ConsensusRule::Take(a) => LabelError::NothingToCopy {
            annotator: a.clone(),
            image: image_id.into(),
        },
        _ => LabelError::NothingToCopy {
            annotator: "any annotator".into(),
            image: image_id.into(),
        },
    })?;
    project.ensure_annotator(CONSENSUS, "Consensus");
    store.edit(
        project,
        image_id,
        CONSENSUS,
        Edit::Replace {
            source: rule.describe(&names),
            mask,
        },
    )
}

/// What a label issue is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum IssueKind {
    /// The model finds a strongly significant region that no annotator marked.
    UnlabelledDetection,
    /// An annotator marked a region where the model sees nothing beyond normal: no significant
    /// region, and its score there typical of the image's unlabelled pixels.
    LabelWithoutEvidence { annotator: String },
    /// Not an issue: an annotator's region that the model sees above normal but not at the NFA
    /// level (a weak defect), or one that nowhere holds a whole cell of its test grid (below
    /// what it resolves: a speck, a crack thinner than a cell), so it can neither confirm nor
    /// accuse it.
    Unconfirmed { annotator: String },
}

impl IssueKind {
    /// The annotator whose label it is about (None for a detection nobody marked).
    pub fn annotator(&self) -> Option<&str> {
        match self {
            IssueKind::UnlabelledDetection => None,
            IssueKind::LabelWithoutEvidence { annotator }
            | IssueKind::Unconfirmed { annotator } => Some(annotator),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabelIssue {
    pub image: String,
    #[serde(flatten)]
    pub kind: IssueKind,
    /// [x0, y0, x1, y1) in image pixels.
    pub bbox: [u32; 4],
    pub area: usize,
    /// The lowest log10 NFA inside the region.
    pub log10_nfa: f32,
    /// How strong the evidence is, in orders of magnitude of NFA beyond the threshold; issues
    /// are ranked by it.
    pub strength: f32,
    /// For a label: where the detector's score at the label's median pixel falls among the
    /// image's unlabelled pixels (0-1; about 0.5 for a region like the rest of the image).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percentile: Option<f32>,
}

/// What the finder says of one image: the issues (wrong labels, ranked) and, apart, the labels
/// the model cannot confirm.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LabelFindings {
    pub issues: Vec<LabelIssue>,
    pub unconfirmed: Vec<LabelIssue>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IssueOptions {
    /// Detections below this log10 NFA that nobody labelled are issues.
    pub detect_below: f32,
    /// A labelled region whose lowest log10 NFA is not below this has no evidence.
    pub evidence_below: f32,
    /// A detection counts as labelled when at least this fraction of it is marked by someone,
    /// or lies within `near` of a mark.
    pub min_overlap: f64,
    /// How close to a mark a detection counts as the same anomaly, as a fraction of the
    /// image's longer side: the model's evidence spreads a little beyond a defect (its features
    /// see a neighbourhood), and the fragments it leaves around a labelled defect are not
    /// unlabelled defects. Two cells of the default 32 x 32 test grid.
    pub near: f64,
    /// A label without a significant region is accused only when the score at its median pixel
    /// lies below this fraction of the image's unlabelled pixels, i.e. is typical of them; above
    /// it the model sees something there (a weak defect) and cannot confirm the label.
    pub typical_below: f64,
}

impl Default for IssueOptions {
    fn default() -> Self {
        Self {
            detect_below: -2.0,
            evidence_below: 0.0,
            min_overlap: 0.1,
            near: 2.0 / 32.0,
            typical_below: TYPICAL_BELOW,
        }
    }
}

/// Where the finder draws the line between a label typical of the rest of the image and one
/// the model sees something in (measured in `tests/review.rs` on every shared category).
pub const TYPICAL_BELOW: f64 = 0.8;

/// Probably wrong labels of one image, from the model's log10 NFA map and its score map (any
/// resolutions, each mapped onto the image; higher scores more anomalous, `-log_nfa` when there
/// is none) and the annotators' layers. Issues sorted by strength, strongest first.
pub fn label_issues(
    image_id: &str,
    log_nfa: &Array2<f32>,
    score: Option<&Array2<f32>>,
    layers: &[(String, LabelMask)],
    opts: IssueOptions,
) -> LabelFindings {
    let mut out = LabelFindings::default();
    let Some((_, first)) = layers.first() else {
        return out;
    };
    let (w, h) = (first.width as usize, first.height as usize);
    let (gh, gw) = log_nfa.dim();
    if w == 0 || h == 0 || gh == 0 || gw == 0 {
        return out;
    }
    let cell = |x: usize, y: usize| ((y * gh / h).min(gh - 1), (x * gw / w).min(gw - 1));
    // Detections nobody marked: overlap measured on the image grid, with the marks grown by
    // `near` (a detection next to a marked defect is that defect's).
    let union: Vec<bool> = (0..w * h)
        .map(|i| layers.iter().any(|(_, m)| m.data[i] != 0))
        .collect();
    let union = dilate(&union, w, h, (opts.near * w.max(h) as f64).round() as usize);
    for r in crate::stats::acontrario::regions_at(log_nfa, None, opts.detect_below, 0.0) {
        let (mut inside, mut marked) = (0usize, 0usize);
        let [gx0, gy0, gx1, gy1] = r.bbox;
        let (x0, x1) = (gx0 * w / gw, (gx1 * w).div_ceil(gw).min(w));
        let (y0, y1) = (gy0 * h / gh, (gy1 * h).div_ceil(gh).min(h));
        let mut bbox = [u32::MAX, u32::MAX, 0, 0];
        for y in y0..y1 {
            for x in x0..x1 {
                if log_nfa[cell(x, y)] < opts.detect_below {
                    inside += 1;
                    marked += union[y * w + x] as usize;
                    bbox = [
                        bbox[0].min(x as u32),
                        bbox[1].min(y as u32),
                        bbox[2].max(x as u32 + 1),
                        bbox[3].max(y as u32 + 1),
                    ];
                }
            }
        }
        if inside > 0 && (marked as f64) < opts.min_overlap * inside as f64 {
            out.issues.push(LabelIssue {
                image: image_id.into(),
                kind: IssueKind::UnlabelledDetection,
                bbox,
                area: inside,
                log10_nfa: r.log10_nfa,
                strength: opts.detect_below - r.log10_nfa,
                percentile: None,
            });
        }
    }
    // Labelled regions without a significant region, per annotator: accused when the score
    // inside is typical of the image's unlabelled pixels, otherwise unconfirmed. The image's
    // own unlabelled pixels are the reference (not the training normals): a drifted image
    // shifts both alike, and what the model makes of this object's surface is in them.
    let score_at = |x: usize, y: usize| -> f32 {
        match score {
            Some(s) => {
                let (sh, sw) = s.dim();
                s[((y * sh / h).min(sh - 1), (x * sw / w).min(sw - 1))]
            }
            None => -log_nfa[cell(x, y)],
        }
    };
    let mut reference: Vec<f32> = Vec::new();
    let step = (w.max(h) / 256).max(1);
    for y in (0..h).step_by(step) {
        for x in (0..w).step_by(step) {
            if !union[y * w + x] {
                reference.push(score_at(x, y));
            }
        }
    }
    reference.retain(|v| !v.is_nan());
    reference.sort_by(f32::total_cmp);
    // A label that nowhere holds a whole cell of the test grid (a speck, a fragment, a crack
    // thinner than a cell) is below what the model resolves: each cell's evidence is summed
    // over the cell, so such a defect's is diluted among normal pixels, and the model can
    // neither confirm nor deny it. The grid is the map's or the a contrario test's (at most
    // DEFAULT_TEST_SIDE a side), whichever is coarser.
    let side = |n: usize, g: usize| {
        ((n as f64 / g.min(DEFAULT_TEST_SIDE) as f64).floor() as usize).clamp(1, n)
    };
    let (cw, ch) = (side(w, gw), side(h, gh));
    for (who, m) in layers {
        for (_, px) in m.regions8(false) {
            let lowest = px
                .iter()
                .map(|&i| log_nfa[cell(i as usize % w, i as usize / w)])
                .fold(f32::INFINITY, f32::min);
            if lowest < opts.evidence_below {
                continue;
            }
            let mut inside: Vec<f32> = px
                .iter()
                .map(|&i| score_at(i as usize % w, i as usize / w))
                .collect();
            let percentile = percentile_of_median(&mut inside, &reference);
            let typical = percentile.is_some_and(|p| (p as f64) < opts.typical_below)
                && holds_rect(&px, w, cw, ch);
            let issue = LabelIssue {
                image: image_id.into(),
                kind: if typical {
                    IssueKind::LabelWithoutEvidence {
                        annotator: who.clone(),
                    }
                } else {
                    IssueKind::Unconfirmed {
                        annotator: who.clone(),
                    }
                },
                bbox: bbox_of(px.iter().copied(), m.width),
                area: px.len(),
                log10_nfa: lowest,
                strength: lowest - opts.evidence_below,
                percentile,
            };
            if typical {
                out.issues.push(issue);
            } else {
                out.unconfirmed.push(issue);
            }
        }
    }
    out.issues.sort_by(|a, b| b.strength.total_cmp(&a.strength));
    out
}

/// Whether the region (pixel indices `px` of a `w`-wide image) contains a whole `cw` x `ch`
/// rectangle: a summed-area table over its bounding box.
fn holds_rect(px: &[u32], w: usize, cw: usize, ch: usize) -> bool {
    if px.is_empty() {
        return false;
    }
    let [x0, y0, x1, y1] = bbox_of(px.iter().copied(), w as u32).map(|v| v as usize);
    let (bw, bh) = (x1 - x0, y1 - y0);
    if bw < cw || bh < ch {
        return false;
    }
    // sat[(y, x)]: pixels of the region in [0, x) x [0, y) of the box.
    let mut sat = vec![0u32; (bw + 1) * (bh + 1)];
    for &i in px {
        let (x, y) = (i as usize % w - x0, i as usize / w - y0);
        sat[(y + 1) * (bw + 1) + x + 1] = 1;
    }
    for y in 1..=bh {
        for x in 1..=bw {
            let k = y * (bw + 1) + x;
            sat[k] += sat[k - 1] + sat[k - bw - 1] - sat[k - bw - 2];
        }
    }
    let full = (cw * ch) as u32;
    (0..=bh - ch).any(|y| {
        (0..=bw - cw).any(|x| {
            let at = |yy: usize, xx: usize| sat[yy * (bw + 1) + xx];
            at(y + ch, x + cw) + at(y, x) - at(y, x + cw) - at(y + ch, x) == full
        })
    })
}

/// Where the median of `inside` falls in `reference` (sorted), ties counted half: None when
/// there are too few reference pixels to say (labels cover nearly the whole image).
fn percentile_of_median(inside: &mut [f32], reference: &[f32]) -> Option<f32> {
    if inside.is_empty() || reference.len() < 64 {
        return None;
    }
    let mid = inside.len() / 2;
    let (_, &mut m, _) = inside.select_nth_unstable_by(mid, f32::total_cmp);
    let below = reference.partition_point(|&v| v < m);
    let up_to = reference.partition_point(|&v| v <= m);
    Some(((below + up_to) as f64 / 2.0 / reference.len() as f64) as f32)
}

/// `mask` (w x h) grown by `radius` pixels (a square).
fn dilate(mask: &[bool], w: usize, h: usize, radius: usize) -> Vec<bool> {
    if radius == 0 {
        return mask.to_vec();
    }
    let along = |src: &[bool], horizontal: bool| -> Vec<bool> {
        let mut out = vec![false; w * h];
        for y in 0..h {
            for x in 0..w {
                let (c, n) = if horizontal { (x, w) } else { (y, h) };
                let (lo, hi) = (c.saturating_sub(radius), (c + radius).min(n - 1));
                out[y * w + x] = (lo..=hi).any(|k| {
                    if horizontal {
                        src[y * w + k]
                    } else {
                        src[k * w + x]
                    }
                });
            }
        }
        out
    };
    along(&along(mask, true), false)
}

/// A reviewer's verdict on an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Normal,
    Defective,
    Unsure,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Normal => "normal",
            Verdict::Defective => "defective",
            Verdict::Unsure => "unsure",
        }
    }
}

/// One line of the review journal (`journal/reviews.jsonl`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewEntry {
    pub time_ms: u64,
    pub time: String,
    pub reviewer: String,
    pub image: String,
    pub verdict: Option<Verdict>,
    #[serde(default)]
    pub note: String,
}

pub const REVIEW_FILE: &str = "journal/reviews.jsonl";

/// Record a verdict and/or note through the autosaver.
pub fn record_review(
    saver: &Autosaver,
    root: &Path,
    reviewer: &str,
    image: &str,
    verdict: Option<Verdict>,
    note: &str,
) -> ReviewEntry {
    let time_ms = now_ms();
    let e = ReviewEntry {
        time_ms,
        time: iso8601(time_ms),
        reviewer: reviewer.into(),
        image: image.into(),
        verdict,
        note: note.into(),
    };
    saver.append_json(root.join(REVIEW_FILE), &e);
    e
}

/// The latest verdict per image (a later entry without a verdict keeps the earlier verdict and
/// adds its note).
pub fn latest_reviews(root: &Path) -> std::io::Result<HashMap<String, ReviewEntry>> {
    let mut out: HashMap<String, ReviewEntry> = HashMap::new();
    for e in read_jsonl::<ReviewEntry>(&root.join(REVIEW_FILE))? {
        match out.get_mut(&e.image) {
            Some(prev) if e.verdict.is_none() => {
                prev.note = e.note;
                prev.time_ms = e.time_ms;
                prev.time = e.time;
            }
            _ => {
                out.insert(e.image.clone(), e);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(w: u32, h: u32, marked: &[(u32, u32, u8)]) -> LabelMask {
        let mut m = LabelMask::new(w, h);
        for &(x, y, c) in marked {
            m.data[(y * w + x) as usize] = c;
        }
        m
    }

    #[test]
    fn combine_rules() {
        let a = mask(4, 1, &[(0, 0, 1), (1, 0, 1), (2, 0, 2)]);
        let b = mask(4, 1, &[(1, 0, 2), (2, 0, 2)]);
        let c = mask(4, 1, &[(1, 0, 2), (3, 0, 1)]);
        let l = vec![("a".into(), a), ("b".into(), b), ("c".into(), c)];
        assert_eq!(
            combine(&l, &ConsensusRule::Majority).unwrap().data,
            [0, 2, 2, 0]
        );
        assert_eq!(
            combine(&l, &ConsensusRule::Union).unwrap().data,
            [1, 2, 2, 1]
        );
        assert_eq!(
            combine(&l, &ConsensusRule::Intersection).unwrap().data,
            [0, 2, 0, 0]
        );
        assert_eq!(
            combine(&l, &ConsensusRule::Take("b".into())).unwrap().data,
            [0, 2, 2, 0]
        );
    }

    #[test]
    fn disagreement_counts_partial_marks() {
        let a = mask(3, 1, &[(0, 0, 1), (1, 0, 1)]);
        let b = mask(3, 1, &[(1, 0, 1)]);
        let l = vec![("a".to_string(), a), ("b".to_string(), b)];
        let d = analyze("x", &l, None, 0.0);
        assert_eq!(d.disputed_pixels, 1);
        assert!((d.score - 0.5).abs() < 1e-12);
        assert_eq!(disagreement_map(&[&l[0].1, &l[1].1]), [1, 3, 0]);
    }

    #[test]
    fn label_issues_find_missed_and_unsupported_regions() {
        // 64x64 image, 8x8 NFA grid: a strong detection at grid cell (0, 0), a weak one at
        // (7, 7); a score map that is noise but for a raised patch at cells (4..6, 0..2).
        let mut nfa = Array2::<f32>::from_elem((8, 8), 50.0);
        nfa[(0, 0)] = -12.0;
        nfa[(7, 7)] = -1.0; // weak: evidence for a label, but not an issue by itself
        let mut score = Array2::from_shape_fn((32, 32), |(y, x)| ((x * 7 + y * 13) % 10) as f32);
        for y in 0..8 {
            for x in 16..24 {
                score[(y, x)] += 20.0;
            }
        }
        let sized = |x0: u32, y0: u32, side: u32| -> Vec<(u32, u32, u8)> {
            (y0..y0 + side)
                .flat_map(|y| (x0..x0 + side).map(move |x| (x, y, 1)))
                .collect()
        };
        // One cell of the grid: 8 x 8 pixels.
        let block = |x0: u32, y0: u32| sized(x0, y0, 8);
        // A label on the plain middle, one on the raised patch, one on the weak detection, and
        // a speck (smaller than a cell) on the plain part.
        let marks: Vec<_> = [block(28, 28), block(34, 2), block(56, 56), sized(10, 40, 3)].concat();
        let ann = mask(64, 64, &marks);
        let f = label_issues(
            "x",
            &nfa,
            Some(&score),
            &[("a".into(), ann)],
            IssueOptions::default(),
        );
        assert_eq!(f.issues.len(), 2, "{f:?}");
        // Ranked by strength: the label where the model is 50 orders of magnitude from any
        // evidence first, then the detection 10 orders below the issue threshold.
        let k = IssueKind::LabelWithoutEvidence {
            annotator: "a".into(),
        };
        assert_eq!(f.issues[0].kind, k);
        assert_eq!(f.issues[0].bbox, [28, 28, 36, 36]);
        assert_eq!(f.issues[0].strength, 50.0);
        assert!(f.issues[0].percentile.unwrap() < 0.8, "{f:?}");
        assert_eq!(f.issues[1].kind, IssueKind::UnlabelledDetection);
        assert_eq!(f.issues[1].bbox, [0, 0, 8, 8]);
        assert_eq!(f.issues[1].strength, 10.0);
        // The raised patch: above the rest of the image, so the model cannot confirm it; nor
        // the speck, typical of the image but below the model's resolution.
        assert_eq!(f.unconfirmed.len(), 2, "{f:?}");
        let patch = f.unconfirmed.iter().find(|u| u.bbox == [34, 2, 42, 10]);
        assert!(patch.unwrap().percentile.unwrap() > 0.95, "{f:?}");
        let speck = f.unconfirmed.iter().find(|u| u.bbox == [10, 40, 13, 43]);
        assert!(speck.unwrap().percentile.unwrap() < 0.8, "{f:?}");
        // A long mark thinner than a cell (a crack, 3 x 40 pixels), on the plain part: below
        // the model's resolution however long, so not accused.
        let crack: Vec<_> = (20..60)
            .flat_map(|y| (4..7).map(move |x| (x, y, 1)))
            .collect();
        let f = label_issues(
            "x",
            &nfa,
            Some(&score),
            &[("a".into(), mask(64, 64, &crack))],
            IssueOptions::default(),
        );
        assert!(
            f.issues
                .iter()
                .all(|i| i.kind == IssueKind::UnlabelledDetection)
        );
        assert_eq!(f.unconfirmed.len(), 1, "{f:?}");
        // A cell-sized square anywhere, aligned to the grid or not, is enough.
        assert!(holds_rect(&[0, 1, 64, 65], 64, 2, 2));
        assert!(!holds_rect(&[0, 1, 64], 64, 2, 2));
        let square: Vec<u32> = (3..11)
            .flat_map(|y| (5..13).map(move |x| y * 64 + x))
            .collect();
        assert!(holds_rect(&square, 64, 8, 8) && !holds_rect(&square, 64, 9, 8));
        // Without a score map the NFA map is the score: the plain label ties with the
        // unlabelled pixels (about the 50th percentile) and is accused.
        let ann = mask(64, 64, &block(28, 28));
        let f = label_issues(
            "x",
            &nfa,
            None,
            &[("a".into(), ann)],
            IssueOptions::default(),
        );
        assert_eq!(f.issues.len(), 2, "{f:?}");
        assert!(
            (f.issues[0].percentile.unwrap() - 0.5).abs() < 0.05,
            "{f:?}"
        );
    }
}
