//! Exports for other tools: a label layer (the consensus by default) as PNG masks in the MVTec
//! layout, a CSV report per image (scores, minimum log10 NFA, regions, verdict, annotator IoUs),
//! and COCO JSON with RLE masks, one annotation per connected region and class.

use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::project::Project;
use crate::project::labels::LabelStore;
use crate::project::review;
use crate::project::storage;

/// What an export wrote, for the CLI's summary.
#[derive(Debug, Default, Serialize, PartialEq)]
pub struct ExportSummary {
    pub images: usize,
    pub masks: usize,
    pub annotations: usize,
    /// Images left out because the exported layer has no label for them.
    pub unlabelled: usize,
    pub out: PathBuf,
}

impl ExportSummary {
    fn new(out: &Path) -> Self {
        Self {
            out: out.to_path_buf(),
            ..Default::default()
        }
    }
}

/// Formats `contrario export --format` and the window's export write.
pub const FORMATS: &[&str] = &["masks", "csv", "coco"];

/// An export as the window and the CLI ask for it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportRequest {
    pub format: String,
    /// The layer exported (masks, COCO); None: [`default_layer`].
    pub layer: Option<String>,
    /// The model whose cached results go in the CSV report.
    pub model: Option<String>,
    pub out: PathBuf,
}

/// Export as asked: the window's and the CLI's export.
pub fn export(project: &Project, req: &ExportRequest) -> anyhow::Result<ExportSummary> {
    let layer = req.layer.clone().unwrap_or_else(|| default_layer(project));
    if req.format != "csv" && project.annotator(&layer).is_none() {
        anyhow::bail!(
            "no layer {layer:?} in the project (annotators: {})",
            project
                .file
                .annotators
                .iter()
                .map(|a| a.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let mut store = LabelStore::new(crate::project::autosave::Autosaver::new());
    match req.format.as_str() {
        "masks" => export_masks(project, &mut store, &layer, &req.out),
        "csv" => export_csv(project, &mut store, req.model.as_deref(), &req.out),
        "coco" => export_coco(project, &mut store, &layer, &req.out),
        other => anyhow::bail!("unknown export format {other:?} ({})", FORMATS.join(", ")),
    }
}

impl ExportSummary {
    /// What was written, in a sentence, for a notice.
    pub fn sentence(&self, format: &str) -> String {
        let what = match format {
            "masks" => format!("{} masks", self.masks),
            "coco" => format!(
                "COCO JSON of {} images, {} annotations",
                self.images, self.annotations
            ),
            _ => format!("a CSV report of {} images", self.images),
        };
        format!("Wrote {what} to {}", self.out.display())
    }
}

/// The layer exported: `consensus` when any image has one, else the project's read-only ground
/// truth, unless the caller names one.
pub fn default_layer(project: &Project) -> String {
    let has = |a: &str| project.file.images.iter().any(|e| e.labels.contains_key(a));
    if has(review::CONSENSUS) {
        return review::CONSENSUS.into();
    }
    project
        .read_only_annotator()
        .unwrap_or(review::CONSENSUS)
        .to_string()
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Masks in the MVTec layout: `OUT/<category>/ground_truth/<kind>/<stem>_mask.png` (0 / 255) for
/// every image the layer marks; images it leaves clean get no file, as MVTec's good images.
pub fn export_masks(
    project: &Project,
    store: &mut LabelStore,
    layer: &str,
    out: &Path,
) -> anyhow::Result<ExportSummary> {
    let mut s = ExportSummary::new(out);
    for e in &project.file.images {
        let Some(m) = store.opinion(project, &e.id, layer)? else {
            s.unlabelled += 1;
            continue;
        };
        s.images += 1;
        if m.is_empty() {
            continue;
        }
        let kind = match e.kind.as_str() {
            "" | "good" => "defect",
            k => k,
        };
        let cat = if e.category.is_empty() {
            "images"
        } else {
            &e.category
        };
        let path = out
            .join(cat)
            .join("ground_truth")
            .join(kind)
            .join(format!("{}_mask.png", stem(&e.path)));
        let bin = image::GrayImage::from_raw(
            m.width,
            m.height,
            m.data
                .iter()
                .map(|&v| if v != 0 { 255 } else { 0 })
                .collect(),
        )
        .expect("mask buffer matches its size");
        storage::write_png_atomic(&path, &bin)?;
        s.masks += 1;
    }
    Ok(s)
}

/// Quote a CSV field when it needs it (RFC 4180).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// One row per image: split, category, kind, group, the model's image score, minimum log10 NFA
/// and region count at the project's NFA level (when `model` names a model whose results are
/// cached: run `contrario infer` first), the latest verdict and note, and the IoU of every pair of
/// annotators and of each annotator with the model.
pub fn export_csv(
    project: &Project,
    store: &mut LabelStore,
    model: Option<&str>,
    out: &Path,
) -> anyhow::Result<ExportSummary> {
    let reviews = review::latest_reviews(&project.root)?;
    let threshold = project.file.settings.log10_nfa_threshold as f32;
    let people: Vec<String> = project
        .file
        .annotators
        .iter()
        .filter(|a| a.id != review::CONSENSUS)
        .map(|a| a.id.clone())
        .collect();
    let mut pair_cols = Vec::new();
    for i in 0..people.len() {
        for j in i + 1..people.len() {
            pair_cols.push((people[i].clone(), people[j].clone()));
        }
    }
    let mut header: Vec<String> = [
        "image",
        "path",
        "category",
        "split",
        "kind",
        "group",
        "score",
        "min_log10_nfa",
        "regions",
        "verdict",
        "reviewer",
        "note",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    header.extend(pair_cols.iter().map(|(a, b)| format!("iou_{a}_{b}")));
    if model.is_some() {
        header.extend(people.iter().map(|a| format!("iou_{a}_model")));
    }
    let mut text = header.join(",") + "\n";
    let mut s = ExportSummary::new(out);
    for e in &project.file.images {
        let summary = model.and_then(|m| project.cached_result(m, e));
        let layers = review::layers_of(project, store, &e.id)?;
        let d = review::analyze(
            &e.id,
            &layers,
            summary.as_ref().map(|r| &r.log_nfa),
            threshold,
        );
        let (score, min_nfa, regions) = match &summary {
            Some(r) => (
                format!("{}", r.image_score),
                format!(
                    "{}",
                    r.log_nfa.iter().copied().fold(f32::INFINITY, f32::min)
                ),
                crate::stats::acontrario::regions_at(&r.log_nfa, None, threshold, 0.0)
                    .len()
                    .to_string(),
            ),
            None => Default::default(),
        };
        let rv = reviews.get(&e.id);
        let mut row = vec![
            e.id.clone(),
            e.path.to_string_lossy().into_owned(),
            e.category.clone(),
            format!("{:?}", e.split).to_lowercase(),
            e.kind.clone(),
            e.group.clone(),
            score,
            min_nfa,
            regions,
            rv.and_then(|r| r.verdict)
                .map(|v| v.name().to_string())
                .unwrap_or_default(),
            rv.map(|r| r.reviewer.clone()).unwrap_or_default(),
            rv.map(|r| r.note.clone()).unwrap_or_default(),
        ];
        let find = |v: &[review::PairIou], a: &str, b: &str| {
            v.iter()
                .find(|p| p.a == a && p.b == b)
                .map(|p| format!("{:.4}", p.iou))
                .unwrap_or_default()
        };
        row.extend(pair_cols.iter().map(|(a, b)| find(&d.pairs, a, b)));
        if model.is_some() {
            row.extend(people.iter().map(|a| find(&d.vs_model, a, review::MODEL)));
        }
        text += &row
            .iter()
            .map(|f| csv_field(f))
            .collect::<Vec<_>>()
            .join(",");
        text.push('\n');
        s.images += 1;
    }
    storage::write_atomic(out, text.as_bytes())?;
    Ok(s)
}

/// COCO's uncompressed RLE of a binary mask: run lengths in column-major order, starting with a
/// run of zeros.
pub fn rle_counts(mask: &[bool], width: usize, height: usize) -> Vec<u32> {
    let px: Vec<u32> = (0..mask.len() as u32)
        .filter(|&i| mask[i as usize])
        .collect();
    rle_of_pixels(&px, width, height)
}

/// The same from the raster indices of the marked pixels, without a full-size mask: the work is
/// in the region's size, not the image's.
pub fn rle_of_pixels(pixels: &[u32], width: usize, height: usize) -> Vec<u32> {
    let mut cols: Vec<u64> = pixels
        .iter()
        .map(|&i| (i as u64 % width as u64) * height as u64 + i as u64 / width as u64)
        .collect();
    cols.sort_unstable();
    let mut counts = Vec::new();
    let mut pos = 0u64; // next position not yet counted
    let mut k = 0;
    while k < cols.len() {
        let start = cols[k];
        let mut end = start + 1;
        k += 1;
        while k < cols.len() && cols[k] == end {
            end += 1;
            k += 1;
        }
        counts.push((start - pos) as u32);
        counts.push((end - start) as u32);
        pos = end;
    }
    // The last run is written whatever its value, and never empty (as pycocotools encodes).
    let rest = width as u64 * height as u64 - pos;
    if rest > 0 || counts.is_empty() {
        counts.push(rest as u32);
    }
    counts
}

/// COCO JSON of a layer: images, the project's defect classes as categories, and one annotation
/// per 8-connected region of one class, with its RLE mask, area and bounding box.
pub fn export_coco(
    project: &Project,
    store: &mut LabelStore,
    layer: &str,
    out: &Path,
) -> anyhow::Result<ExportSummary> {
    let mut s = ExportSummary::new(out);
    let mut images = Vec::new();
    let mut annotations = Vec::new();
    let mut classes: BTreeMap<u8, String> = project
        .file
        .classes
        .iter()
        .map(|c| (c.index, c.name.clone()))
        .collect();
    for (img_id, e) in project.file.images.iter().enumerate() {
        let Some(m) = store.opinion(project, &e.id, layer)? else {
            s.unlabelled += 1;
            continue;
        };
        let (w, h) = (m.width as usize, m.height as usize);
        images.push(serde_json::json!({
            "id": img_id + 1,
            "file_name": e.path.to_string_lossy(),
            "width": w,
            "height": h,
            "contrario_id": e.id,
        }));
        s.images += 1;
        for (class, px) in m.regions8(true) {
            let [x0, y0, x1, y1] = crate::project::mask::bbox_of(px.iter().copied(), m.width);
            classes
                .entry(class)
                .or_insert_with(|| format!("class {class}"));
            annotations.push(serde_json::json!({
                "id": annotations.len() + 1,
                "image_id": img_id + 1,
                "category_id": class,
                "segmentation": {"size": [h, w], "counts": rle_of_pixels(&px, w, h)},
                "area": px.len(),
                "bbox": [x0, y0, x1 - x0, y1 - y0],
                "iscrowd": 0,
            }));
        }
    }
    s.annotations = annotations.len();
    let categories: Vec<serde_json::Value> = classes
        .iter()
        .map(|(i, n)| serde_json::json!({"id": i, "name": n, "supercategory": "defect"}))
        .collect();
    let doc = serde_json::json!({
        "info": {"description": format!("{} ({} layer), exported by Contrario", project.file.name, layer)},
        "images": images,
        "annotations": annotations,
        "categories": categories,
    });
    storage::write_atomic(out, serde_json::to_string(&doc)?.as_bytes())?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rle_is_column_major_and_starts_with_zeros() {
        // 3 wide, 2 high:  . X .
        //                  . X X
        let m = [false, true, false, false, true, true];
        assert_eq!(rle_counts(&m, 3, 2), [2, 2, 1, 1]);
        assert_eq!(rle_counts(&[true; 4], 2, 2), [0, 4]);
        assert_eq!(rle_counts(&[false; 4], 2, 2), [4]);
        // No empty trailing run after a final run of ones, as pycocotools writes it.
        assert_eq!(rle_counts(&[false, true], 2, 1), [1, 1]);
    }

    #[test]
    fn csv_quotes_only_when_needed() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
