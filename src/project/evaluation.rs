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
    let who = project
        .file
        .annotators
        .iter()
        .find(|a| a.read_only)
        .map(|a| a.id.clone())
        .unwrap_or_else(|| GT_ANNOTATOR.to_string());
    Ok(super::imaging::binary_mask_at(
        project.label_path(e, &who).as_deref(),
        (h, w),
    )?)
}

/// Evaluation of one category's test results.
pub fn evaluate(
    project: &Project,
    results: &[(ImageEntry, InferenceSummary)],
    threshold: f32,
) -> anyhow::Result<serde_json::Value> {
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
    Ok(serde_json::json!({
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
    }))
}
