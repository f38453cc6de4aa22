//! `contrario detect` (the training-free detector on one image) and `contrario trainfree-eval`
//! (pixel AUROC and mIoU of every feature/NFA variant on MVTec-style categories or a project).

use anyhow::Context;
use ndarray::Array2;
use std::path::Path;
use std::time::Instant;

use crate::project::{dataset, imaging, storage};
use crate::stats::acontrario::trainfree::{self, Features, NfaKind, Params};
use crate::stats::metrics;

pub fn parse_features(s: &str) -> anyhow::Result<Features> {
    match s {
        "pca" | "patch-pca" => Ok(Features::PatchPca),
        "gabor" => Ok(Features::Gabor),
        _ => anyhow::bail!("unknown features {s:?} (pca, gabor)"),
    }
}

pub fn parse_nfa(s: &str) -> anyhow::Result<NfaKind> {
    match s {
        "pixel" => Ok(NfaKind::Pixel),
        "block" => Ok(NfaKind::Block),
        "region" => Ok(NfaKind::Region),
        _ => anyhow::bail!("unknown NFA kind {s:?} (pixel, block, region)"),
    }
}

/// Run the detector on one image file.
fn detect_file(path: &Path, params: &Params) -> anyhow::Result<Array2<f32>> {
    let img = imaging::load_dynamic(path)?;
    Ok(trainfree::detect(&trainfree::planes_of(&img), params)
        .with_context(|| path.display().to_string())?
        .log_nfa)
}

pub fn detect(image: &Path, out: &Path, params: &Params) -> anyhow::Result<()> {
    let start = Instant::now();
    let log_nfa = detect_file(image, params)?;
    let secs = start.elapsed().as_secs_f64();
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let (h, w) = log_nfa.dim();
    storage::write_npy_f32(&out.join("log_nfa.npy"), &[h, w], log_nfa.iter().copied())?;
    // Anomaly score -log10 NFA as a grey PNG: 0 at NFA >= 1, white at 10^-20 and beyond.
    let png = image::GrayImage::from_fn(w as u32, h as u32, |x, y| {
        let s = (-log_nfa[(y as usize, x as usize)]).clamp(0.0, 20.0);
        image::Luma([(s / 20.0 * 255.0) as u8])
    });
    storage::write_png_atomic(&out.join("anomaly_score.png"), &png)?;
    let detected = log_nfa.iter().filter(|&&v| v < 0.0).count();
    println!(
        "{}: {}x{} analysed in {:.2} s; {} pixel(s) at log10 NFA < 0; min log10 NFA {:.2}; wrote {}",
        image.display(),
        w,
        h,
        secs,
        detected,
        log_nfa.iter().copied().fold(f32::INFINITY, f32::min),
        out.display()
    );
    Ok(())
}

/// A test image with its ground truth, for the evaluation.
struct Sample {
    image: std::path::PathBuf,
    mask: Option<std::path::PathBuf>,
    kind: String,
}

/// The test images of each category: an MVTec-style root, or a project folder (its test split,
/// with the read-only annotator's masks as the ground truth).
fn samples(data: &Path, categories: &[String]) -> anyhow::Result<Vec<(String, Vec<Sample>)>> {
    if data.join(crate::project::PROJECT_FILE).is_file() {
        let p = crate::project::Project::open(data)?;
        let gt = p
            .read_only_annotator()
            .unwrap_or(crate::project::import::GT_ANNOTATOR)
            .to_string();
        let mut cats = p.categories();
        cats.retain(|c| categories.is_empty() || categories.contains(c));
        return Ok(cats
            .into_iter()
            .map(|c| {
                let s = p
                    .file
                    .images
                    .iter()
                    .filter(|e| e.category == c && e.split == crate::project::Split::Test)
                    .map(|e| Sample {
                        image: p.image_path(e),
                        mask: p.label_path(e, &gt),
                        kind: e.kind.clone(),
                    })
                    .collect();
                (c, s)
            })
            .collect());
    }
    let cats = if categories.is_empty() {
        dataset::mvtec_categories(data)?
    } else {
        categories.to_vec()
    };
    cats.into_iter()
        .map(|c| {
            let s = dataset::mvtec_test_samples(data, &c)?
                .into_iter()
                .map(|s| Sample {
                    image: s.image,
                    mask: s.mask,
                    kind: s.kind,
                })
                .collect();
            Ok((c, s))
        })
        .collect()
}

/// Pixel AUROC and mIoU (at NFA < 1, per defect kind, and at the oracle threshold) of each
/// variant on each category of an MVTec-style root or a project; returns JSON rows.
pub fn eval(
    data: &Path,
    categories: &[String],
    variants: &[(Features, NfaKind)],
    base: &Params,
) -> anyhow::Result<serde_json::Value> {
    let mut rows = Vec::new();
    for (cat, samples) in samples(data, categories)? {
        for &(features, nfa) in variants {
            let params = Params {
                features,
                nfa,
                ..base.clone()
            };
            let start = Instant::now();
            let (mut maps, mut masks) = (Vec::new(), Vec::new());
            for s in &samples {
                let log_nfa = detect_file(&s.image, &params)?;
                masks.push(imaging::binary_mask_at(s.mask.as_deref(), log_nfa.dim())?);
                maps.push(log_nfa);
            }
            let secs = start.elapsed().as_secs_f64() / samples.len().max(1) as f64;
            let scores: Vec<f32> = maps.iter().flat_map(|m| m.iter().map(|v| -v)).collect();
            let labels: Vec<bool> = masks.iter().flatten().copied().collect();
            let auroc = metrics::auroc(&scores, &labels);
            let slices: Vec<&[f32]> = maps.iter().map(|m| m.as_slice().unwrap_or(&[])).collect();
            let gts: Vec<&[bool]> = masks.iter().map(|m| m.as_slice()).collect();
            let miou = metrics::miou_below(&slices, &gts, 0.0);
            let (oracle_t, oracle) = metrics::miou_oracle(&slices, &gts, &[0.0]);
            let mut kinds: Vec<&str> = samples.iter().map(|s| s.kind.as_str()).collect();
            kinds.sort();
            kinds.dedup();
            let per_kind: serde_json::Map<String, serde_json::Value> = kinds
                .iter()
                .map(|&k| {
                    let idx: Vec<usize> = (0..samples.len())
                        .filter(|&i| samples[i].kind == k)
                        .collect();
                    let m: Vec<&[f32]> = idx.iter().map(|&i| slices[i]).collect();
                    let g: Vec<&[bool]> = idx.iter().map(|&i| gts[i]).collect();
                    (k.to_string(), metrics::miou_below(&m, &g, 0.0).into())
                })
                .collect();
            eprintln!(
                "{cat} {features:?}+{nfa:?}: pixel AUROC {auroc:?}, mIoU at NFA < 1 {miou:.3} (oracle {oracle:.3} at {oracle_t:.1}) ({secs:.2} s/image)"
            );
            rows.push(serde_json::json!({
                "category": cat,
                "features": features,
                "nfa": nfa,
                "images": samples.len(),
                "pixel_auroc": auroc,
                "miou_nfa": miou,
                "miou_oracle": oracle,
                "oracle_threshold": oracle_t,
                "miou_nfa_per_kind": per_kind,
                "seconds_per_image": secs,
            }));
        }
    }
    Ok(serde_json::Value::Array(rows))
}
