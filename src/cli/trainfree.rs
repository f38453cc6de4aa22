//! `contrario detect` (the training-free detector on one image) and `contrario trainfree-eval`
//! (pixel AUROC of every feature/NFA variant on MVTec-style categories).

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

/// Pixel AUROC of each variant on each category; returns JSON rows.
pub fn eval(
    root: &Path,
    categories: &[String],
    variants: &[(Features, NfaKind)],
    base: &Params,
) -> anyhow::Result<serde_json::Value> {
    let mut rows = Vec::new();
    for cat in categories {
        let samples = dataset::mvtec_test_samples(root, cat)?;
        for &(features, nfa) in variants {
            let params = Params {
                features,
                nfa,
                ..base.clone()
            };
            let start = Instant::now();
            let mut scores = Vec::new();
            let mut labels = Vec::new();
            for s in &samples {
                let log_nfa = detect_file(&s.image, &params)?;
                let (h, w) = log_nfa.dim();
                labels.extend(imaging::binary_mask_at(s.mask.as_deref(), (h, w))?);
                scores.extend(log_nfa.iter().map(|v| -v));
            }
            let auroc = metrics::auroc(&scores, &labels);
            let secs = start.elapsed().as_secs_f64() / samples.len() as f64;
            eprintln!(
                "{cat} {features:?}+{nfa:?}: pixel AUROC {:?} ({secs:.2} s/image)",
                auroc
            );
            rows.push(serde_json::json!({
                "category": cat,
                "features": features,
                "nfa": nfa,
                "images": samples.len(),
                "pixel_auroc": auroc,
                "seconds_per_image": secs,
            }));
        }
    }
    Ok(serde_json::Value::Array(rows))
}
