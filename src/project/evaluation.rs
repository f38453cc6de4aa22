//! Evaluation of a model's cached results against a category's ground truth: pixel and image
//! AUROC, AUPRO, mIoU at an NFA level and at the oracle threshold, false alarms per normal image,
//! and the same per defect kind. The CLI's `eval` and the window's evaluation panel share it.

use std::collections::BTreeMap;

use super::import::GT_ANNOTATOR;
use super::results::InferenceSummary;
use super::{ImageEntry, Project};
use crate::stats::metrics;

/// Ground truth of an image at `size`: the project's read-only annotator (or "gt"), any non-zero
/// pixel anomalous; no mask means normal.
fn ground_truth(
    project: &Project,
    e: &ImageEntry,
    (h, w): (usize, usize),
) -> anyhow::Result<Vec<bool>> {
    let who = project.read_only_annotator().unwrap_or(GT_ANNOTATOR);
    Ok(super::imaging::binary_mask_at(
        project.label_path(e, who).as_deref(),
        (h, w),
    )?)
}

/// Evaluation of one category's test results: the numbers `contrario eval --json` prints.
pub fn evaluate(
    project: &Project,
    results: &[(ImageEntry, InferenceSummary)],
    threshold: f32,
) -> anyhow::Result<serde_json::Value> {
    Ok(evaluate_with_curves(project, results, threshold, &[])?.summary)
}

/// An image's outcome, for the image-level decision: flagged when its most significant region
/// is below the NFA level.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageOutcome {
    pub id: String,
    pub min_log10_nfa: f32,
    /// Its ground truth marks a defect.
    pub defective: bool,
}

/// The evaluation with the curves the window plots.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// What [`evaluate`] returns.
    pub summary: serde_json::Value,
    /// Pixel ROC: (false-positive rate, true-positive rate).
    pub roc: Vec<(f64, f64)>,
    /// mIoU against the log10 NFA level (thesis Figure 5.7), over the images "miou_nfa" counts.
    pub miou_curve: Vec<(f32, f64)>,
    pub images: Vec<ImageOutcome>,
}

/// Counts of the image-level decision at a level: (flagged defective, missed defective, flagged
/// normal, passed normal).
pub fn decisions(images: &[ImageOutcome], level: f32) -> [usize; 4] {
    let mut c = [0; 4];
    for i in images {
        let flagged = i.min_log10_nfa < level;
        c[match (i.defective, flagged) {
            (true, true) => 0,
            (true, false) => 1,
            (false, true) => 2,
            (false, false) => 3,
        }] += 1;
    }
    c
}

/// [`evaluate`], with the pixel ROC, the mIoU at each of `levels` and each image's outcome.
pub fn evaluate_with_curves(
    project: &Project,
    results: &[(ImageEntry, InferenceSummary)],
    threshold: f32,
    levels: &[f32],
) -> anyhow::Result<Evaluation> {
    let mut scores = Vec::new();
    let mut labels = Vec::new();
    let mut masks = Vec::new();
    let mut image_scores = Vec::new();
    let mut image_labels = Vec::new();
    let (mut alarms, mut normals) = (0usize, 0usize);
    let mut z2: Vec<f64> = Vec::new();
    // Where each image's pixels lie in `scores` and `labels`.
    let mut spans = Vec::new();
    for (e, r) in results {
        let dim = r.anomaly_map.dim();
        let gt = ground_truth(project, e, dim)?;
        let start = scores.len();
        scores.extend(r.anomaly_map.iter().copied());
        labels.extend(gt.iter().copied());
        spans.push(start..scores.len());
        image_scores.push(r.image_score);
        let defective = e.kind != "good" && gt.iter().any(|&g| g);
        image_labels.push(defective);
        if !defective {
            normals += 1;
            alarms += crate::stats::acontrario::regions_at(&r.log_nfa, None, threshold, 0.0).len();
            if z2.is_empty() {
                z2 = vec![0.0; r.mean_z2_per_scale.len()];
            }
            z2.iter_mut()
                .zip(&r.mean_z2_per_scale)
                .for_each(|(a, b)| *a += b);
        }
        masks.push(gt);
    }
    let pct = |v: Option<f64>| v.map(|x| x * 100.0);
    let scored: Vec<metrics::ScoredImage> = results
        .iter()
        .zip(&masks)
        .map(|((_, r), m)| metrics::ScoredImage {
            scores: r.anomaly_map.as_slice().unwrap(),
            mask: m,
            width: r.anomaly_map.dim().1,
        })
        .collect();
    let nfa_maps: Vec<&[f32]> = results
        .iter()
        .map(|(_, r)| r.log_nfa.as_slice().unwrap())
        .collect();
    let mask_refs: Vec<&[bool]> = masks.iter().map(|m| m.as_slice()).collect();
    let (best_t, best) = metrics::miou_oracle(&nfa_maps, &mask_refs, &[threshold]);
    // Per defect kind, against the same normal images: which kinds the model finds, and how
    // much of the category's defect area each kind is (it weighs that much in pixel AUROC).
    let normal_idx: Vec<usize> = (0..results.len()).filter(|&i| !image_labels[i]).collect();
    let total_defect: usize = labels.iter().filter(|&&l| l).count();
    let mut kinds: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, (e, _)) in results.iter().enumerate() {
        if image_labels[i] {
            kinds.entry(e.kind.as_str()).or_default().push(i);
        }
    }
    let per_kind: serde_json::Map<String, serde_json::Value> = kinds
        .iter()
        .map(|(kind, idx)| {
            let (mut s, mut l) = (Vec::new(), Vec::new());
            let (mut is, mut il) = (Vec::new(), Vec::new());
            for &i in idx.iter().chain(&normal_idx) {
                s.extend_from_slice(&scores[spans[i].clone()]);
                l.extend_from_slice(&labels[spans[i].clone()]);
                is.push(image_scores[i]);
                il.push(image_labels[i]);
            }
            let defect = idx
                .iter()
                .map(|&i| labels[spans[i].clone()].iter().filter(|&&g| g).count())
                .sum::<usize>();
            let maps: Vec<&[f32]> = idx.iter().map(|&i| nfa_maps[i]).collect();
            let gts: Vec<&[bool]> = idx.iter().map(|&i| mask_refs[i]).collect();
            let v = serde_json::json!({
                "images": idx.len(),
                "share_of_defect_pixels": defect as f64 / total_defect.max(1) as f64,
                "pixel_auroc": pct(metrics::auroc(&s, &l)),
                "image_auroc": pct(metrics::auroc(&is, &il)),
                "miou_nfa": metrics::miou_below(&maps, &gts, threshold),
            });
            (kind.to_string(), v)
        })
        .collect();
    let images = results
        .iter()
        .zip(&image_labels)
        .map(|((e, r), &defective)| ImageOutcome {
            id: e.id.clone(),
            min_log10_nfa: r.log_nfa.iter().copied().fold(f32::INFINITY, f32::min),
            defective,
        })
        .collect();
    // Over the same images as "miou_nfa", so that the curve passes through the table's value.
    let miou_curve = if levels.is_empty() {
        Vec::new()
    } else {
        metrics::miou_curve(&nfa_maps, &mask_refs, levels).0
    };
    let roc = metrics::roc_curve(&scores, &labels, 400);
    let summary = serde_json::json!({
        "images": results.len(),
        "pixel_auroc": pct(metrics::auroc(&scores, &labels)),
        "aupro": pct(metrics::aupro(&scored, 0.3)),
        "image_auroc": pct(metrics::auroc(&image_scores, &image_labels)),
        "miou_nfa": metrics::miou_below(&nfa_maps, &mask_refs, threshold),
        "miou_oracle": best,
        "oracle_threshold": best_t,
        "false_alarms_per_normal_image": if normals > 0 { Some(alarms as f64 / normals as f64) } else { None },
        "mean_z2_per_scale": z2.iter().map(|v| v / normals.max(1) as f64).collect::<Vec<_>>(),
        "per_kind": per_kind,
    });
    Ok(Evaluation {
        summary,
        roc,
        miou_curve,
        images,
    })
}
