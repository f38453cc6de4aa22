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
    /// The numbers `contrario eval --json` prints for a category.
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

/// The evaluation of one category's test results at `threshold`, with the pixel ROC, the mIoU at each of `levels` and each image's outcome.
pub fn evaluate_with_curves(
    project: &Project,
    results: &[(ImageEntry, InferenceSummary)],
    threshold: f32,
    levels: &[f32],
) -> anyhow::Result<Evaluation> {
    Ok(Prepared::new(project, results, levels)?.at(threshold))
}

/// An evaluation's part that does not depend on the NFA level, computed once: at another level
/// [`Prepared::at`] redoes only the mIoU at the level, the false alarms and whether the level
/// beats the oracle's other thresholds (a binary search per image, a component count per
/// normal image).
pub struct Prepared {
    /// The summary's level-independent figures.
    summary: serde_json::Map<String, serde_json::Value>,
    /// Per defect kind: its level-independent figures and its images.
    kinds: Vec<(
        String,
        serde_json::Map<String, serde_json::Value>,
        Vec<usize>,
    )>,
    index: metrics::IouIndex,
    /// The oracle over the thresholds that change a prediction (the level is tried last).
    oracle: (f32, f64),
    /// The normal images' ids and log10 NFA maps, for the false alarms.
    normal_maps: Vec<(String, ndarray::Array2<f32>)>,
    roc: Vec<(f64, f64)>,
    miou_curve: Vec<(f32, f64)>,
    images: Vec<ImageOutcome>,
    /// The test images unlike every training image of the model (the drift check): id and
    /// words; set by [`Prepared::with_drift`].
    pub unlike_training: Vec<(String, String)>,
}

impl Prepared {
    pub fn new(
        project: &Project,
        results: &[(ImageEntry, InferenceSummary)],
        levels: &[f32],
    ) -> anyhow::Result<Self> {
        let mut scores = Vec::new();
        let mut labels = Vec::new();
        let mut masks = Vec::new();
        let mut image_scores = Vec::new();
        let mut image_labels = Vec::new();
        let mut normal_maps = Vec::new();
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
                normal_maps.push((e.id.clone(), r.log_nfa.clone()));
                if z2.is_empty() {
                    z2 = vec![0.0; r.mean_z2_per_scale.len()];
                }
                z2.iter_mut()
                    .zip(&r.mean_z2_per_scale)
                    .for_each(|(a, b)| *a += b);
            }
            masks.push(gt);
        }
        let normals = normal_maps.len();
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
        let index = metrics::IouIndex::new(&nfa_maps, &mask_refs);
        // Per defect kind, against the same normal images: which kinds the model finds, and
        // how much of the category's defect area each kind is (it weighs that much in pixel
        // AUROC).
        let normal_idx: Vec<usize> = (0..results.len()).filter(|&i| !image_labels[i]).collect();
        let total_defect: usize = labels.iter().filter(|&&l| l).count();
        let mut by_kind: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, (e, _)) in results.iter().enumerate() {
            if image_labels[i] {
                by_kind.entry(e.kind.as_str()).or_default().push(i);
            }
        }
        let kinds = by_kind
            .into_iter()
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
                let v = serde_json::json!({
                    "images": idx.len(),
                    "share_of_defect_pixels": defect as f64 / total_defect.max(1) as f64,
                    "pixel_auroc": pct(metrics::auroc(&s, &l)),
                    "image_auroc": pct(metrics::auroc(&is, &il)),
                });
                (kind.to_string(), object(v), idx)
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
        // Over the same images as "miou_nfa", so that the curve passes through the table's
        // value.
        let miou_curve = if levels.is_empty() {
            Vec::new()
        } else {
            index.curve(levels).0
        };
        let summary = serde_json::json!({
            "images": results.len(),
            "pixel_auroc": pct(metrics::auroc(&scores, &labels)),
            "aupro": pct(metrics::aupro(&scored, 0.3)),
            "image_auroc": pct(metrics::auroc(&image_scores, &image_labels)),
            "mean_z2_per_scale": z2.iter().map(|v| v / normals.max(1) as f64).collect::<Vec<_>>(),
        });
        Ok(Self {
            summary: object(summary),
            kinds,
            oracle: index.oracle(),
            index,
            normal_maps,
            roc: metrics::roc_curve(&scores, &labels, 400),
            miou_curve,
            images,
            unlike_training: Vec::new(),
        })
    }

    /// With the drift check of model `name`'s results: the images unlike its training images.
    pub fn with_drift(
        self,
        project: &Project,
        name: &str,
        category: &str,
        results: &[(ImageEntry, InferenceSummary)],
    ) -> Self {
        let drift = project.unlike_training_images(name, category, results);
        self.with_unlike(&drift)
    }

    /// With a drift check already made: the images unlike the training images.
    pub fn with_unlike(mut self, drift: &[(String, super::drift::Unlike)]) -> Self {
        self.unlike_training = drift
            .iter()
            .map(|(id, u)| (id.clone(), u.words.clone()))
            .collect();
        self
    }

    /// The evaluation at the NFA level `threshold`.
    pub fn at(&self, threshold: f32) -> Evaluation {
        let miou = self.index.miou(threshold);
        let (best_t, best) = metrics::better(self.oracle, (threshold, miou));
        // The promise is held, or broken, on the normals like the training images; the
        // others are flagged as unlike them, which says why they may carry more.
        let (mut alarms, mut alarms_like, mut like) = (0usize, 0usize, 0usize);
        for (id, m) in &self.normal_maps {
            let n = crate::stats::acontrario::regions_at(m, None, threshold, 0.0).len();
            alarms += n;
            if !self.unlike_training.iter().any(|(u, _)| u == id) {
                alarms_like += n;
                like += 1;
            }
        }
        let normals = self.normal_maps.len();
        let per_kind: serde_json::Map<String, serde_json::Value> = self
            .kinds
            .iter()
            .map(|(kind, fixed, idx)| {
                let mut v = fixed.clone();
                v.insert("miou_nfa".into(), self.index.miou_of(idx, threshold).into());
                (kind.clone(), v.into())
            })
            .collect();
        let mut summary = self.summary.clone();
        summary.insert("miou_nfa".into(), miou.into());
        summary.insert("miou_oracle".into(), best.into());
        summary.insert("oracle_threshold".into(), best_t.into());
        summary.insert(
            "false_alarms_per_normal_image".into(),
            (normals > 0).then(|| alarms as f64 / normals as f64).into(),
        );
        summary.insert("normals_unlike_training".into(), (normals - like).into());
        summary.insert(
            "false_alarms_per_normal_image_like_training".into(),
            (like > 0).then(|| alarms_like as f64 / like as f64).into(),
        );
        summary.insert("per_kind".into(), per_kind.into());
        Evaluation {
            summary: summary.into(),
            roc: self.roc.clone(),
            miou_curve: self.miou_curve.clone(),
            images: self.images.clone(),
        }
    }
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("images", &self.images.len())
            .field("normals", &self.normal_maps.len())
            .field("oracle", &self.oracle)
            .finish_non_exhaustive()
    }
}

fn object(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    match v {
        serde_json::Value::Object(m) => m,
        _ => serde_json::Map::new(),
    }
}
