//! `contrario train`, `infer` and `eval`: U-Flow on a project, headless. The work runs
//! on the worker thread, as it does for the window.

use anyhow::bail;
use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::import::GT_ANNOTATOR;
use crate::metrics;
use crate::model::{InferenceSummary, Progress, TrainConfig};
use crate::project::{ImageEntry, Project, Split};
use crate::worker::{Command, Message, Worker};

#[derive(clap::Args, Debug)]
pub struct ModelArgs {
    /// Project folder.
    #[arg(long)]
    pub project: PathBuf,
    /// Model name (stored under PROJECT/models/NAME[/CATEGORY]).
    #[arg(long)]
    pub model: String,
    /// Category; required when the project has several. Repeatable for eval/infer.
    #[arg(long)]
    pub category: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    pub target: ModelArgs,
    #[arg(long, default_value_t = TrainConfig::default().epochs)]
    pub epochs: usize,
    #[arg(long, default_value_t = TrainConfig::default().batch_size)]
    pub batch: usize,
    #[arg(long, default_value_t = TrainConfig::default().learning_rate)]
    pub lr: f64,
    /// Square input side (multiple of 32).
    #[arg(long, default_value_t = TrainConfig::default().input_size)]
    pub input_size: i64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// A TorchScript backbone (scripts/export_torchscript_backbone.py) instead of the built-in
    /// EfficientNet-Lite0.
    #[arg(long)]
    pub backbone: Option<PathBuf>,
    /// The built-in backbone's variant: efficientnet-lite0 (features at strides 4, 8, 16) or
    /// efficientnet-lite0-s8 (8, 16, 32: tighter outlines at NFA < 1 on objects).
    #[arg(long, default_value = crate::model::BUILTIN_BACKBONE)]
    pub builtin: String,
}

fn categories(project: &Project, asked: &[String]) -> anyhow::Result<Vec<String>> {
    let mut all: Vec<String> = project
        .file
        .images
        .iter()
        .map(|e| e.category.clone())
        .collect();
    all.sort();
    all.dedup();
    if asked.is_empty() {
        return Ok(all);
    }
    for c in asked {
        if !all.contains(c) {
            bail!(
                "category {c:?} is not in the project (it has: {})",
                all.join(", ")
            );
        }
    }
    Ok(asked.to_vec())
}

pub fn model_dir(project: &Project, name: &str, category: &str) -> PathBuf {
    let base = project.root.join("models").join(name);
    if category.is_empty() {
        base
    } else {
        base.join(category)
    }
}

/// Where inference results of model `name` on `category` are cached.
pub fn cache_dir(project: &Project, name: &str, category: &str) -> PathBuf {
    project.root.join("cache").join(name).join(category)
}

fn images<'a>(project: &'a Project, category: &str, split: Split) -> Vec<&'a ImageEntry> {
    project
        .file
        .images
        .iter()
        .filter(|e| e.category == category && e.split == split)
        .collect()
}

pub fn train(args: &TrainArgs) -> anyhow::Result<()> {
    let project = Project::open(&args.target.project)?;
    let cats = categories(&project, &args.target.category)?;
    if cats.len() > 1 && args.target.category.is_empty() {
        bail!(
            "the project has several categories ({}): pick one with --category (one model per category)",
            cats.join(", ")
        );
    }
    let config = TrainConfig {
        epochs: args.epochs,
        batch_size: args.batch.max(1),
        learning_rate: args.lr,
        input_size: args.input_size,
        seed: args.seed,
        backbone: args
            .backbone
            .as_ref()
            .map(|p| std::fs::canonicalize(p).unwrap_or(p.clone())),
        builtin: args.builtin.clone(),
        ..TrainConfig::default()
    };
    let worker = Worker::spawn(Box::new(|| {}));
    for cat in cats {
        let train: Vec<PathBuf> = images(&project, &cat, Split::Train)
            .iter()
            .map(|e| project.image_path(e))
            .collect();
        if train.is_empty() {
            bail!("category {cat:?} has no normal training images");
        }
        let out = model_dir(&project, &args.target.model, &cat);
        eprintln!(
            "training {} on {} normal image(s) of {cat:?}",
            out.display(),
            train.len()
        );
        worker.send(Command::Train {
            images: train,
            config: config.clone(),
            out: out.clone(),
        });
        loop {
            match worker.recv() {
                Some(Message::Progress(Progress::Epoch {
                    epoch,
                    epochs,
                    train_loss,
                    validation_nll,
                    eta_seconds,
                })) => eprintln!(
                    "epoch {}/{epochs}: loss {train_loss:.1}, validation NLL {validation_nll:.1}, ETA {eta_seconds:.0} s",
                    epoch + 1
                ),
                Some(Message::Progress(Progress::Resumed { epochs_done })) => eprintln!(
                    "resuming the interrupted training after epoch {epochs_done} (checkpoint in {})",
                    out.display()
                ),
                Some(Message::Progress(Progress::Features { done, total })) if done == total => {
                    eprintln!("backbone features of {total} image(s) cached")
                }
                Some(Message::Progress(_)) => {}
                Some(Message::Trained { dir, file, seconds }) => {
                    register_model(&args.target.project, &args.target.model, &cat, &dir)?;
                    println!(
                        "{}",
                        serde_json::json!({
                            "model": dir, "category": cat, "seconds": seconds, "best_epoch": file.best_epoch,
                            "calibration": file.calibration,
                        })
                    );
                    break;
                }
                Some(Message::Error { context, message }) => bail!("{context}: {message}"),
                Some(_) => {}
                None => bail!("the worker stopped"),
            }
        }
    }
    Ok(())
}

/// Record a trained model in `project.ron` (under the project's lock; reread, so nothing written
/// meanwhile is lost).
fn register_model(
    root: &std::path::Path,
    name: &str,
    category: &str,
    dir: &std::path::Path,
) -> anyhow::Result<()> {
    let _lock = crate::storage::ProjectLock::acquire(root)?;
    let mut p = Project::open(root)?;
    let m = crate::project::ModelRef {
        name: name.into(),
        category: category.into(),
        path: p.relative(dir),
    };
    p.file
        .models
        .retain(|x| !(x.name == m.name && x.category == m.category));
    p.file.models.push(m);
    p.save()?;
    Ok(())
}

/// Infer every test image of `category` (through the cache) on the worker.
fn infer_category(
    worker: &Worker,
    project: &Project,
    name: &str,
    category: &str,
) -> anyhow::Result<Vec<(ImageEntry, InferenceSummary)>> {
    let dir = model_dir(project, name, category);
    if !dir.join("model.ron").exists() {
        bail!(
            "no model {} (train it with `contrario train`)",
            dir.display()
        );
    }
    let tests: Vec<&ImageEntry> = images(project, category, Split::Test);
    let by_id: BTreeMap<String, &ImageEntry> = tests.iter().map(|e| (e.id.clone(), *e)).collect();
    let cache = cache_dir(project, name, category);
    worker.send(Command::Infer {
        model: dir,
        images: tests
            .iter()
            .map(|e| (e.id.clone(), project.image_path(e)))
            .collect(),
        cache: Some(cache),
    });
    let mut out = Vec::new();
    loop {
        match worker.recv() {
            Some(Message::Inferred { id, result }) => out.push((by_id[&id].clone(), *result)),
            Some(Message::Finished) => break,
            Some(Message::Error { context, message }) => bail!("{context}: {message}"),
            Some(_) => {}
            None => bail!("the worker stopped"),
        }
    }
    Ok(out)
}

pub fn infer(args: &ModelArgs) -> anyhow::Result<()> {
    let project = Project::open(&args.project)?;
    let worker = Worker::spawn(Box::new(|| {}));
    for cat in categories(&project, &args.category)? {
        for (e, r) in infer_category(&worker, &project, &args.model, &cat)? {
            let regions = crate::acontrario::regions_at(
                &r.log_nfa,
                None,
                project.file.settings.log10_nfa_threshold as f32,
                0.0,
            );
            let min = r.log_nfa.iter().copied().fold(f32::INFINITY, f32::min);
            println!(
                "{}",
                serde_json::json!({"image": e.id, "score": r.image_score, "min_log10_nfa": min, "regions": regions.len()})
            );
        }
    }
    Ok(())
}

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
    Ok(crate::imaging::binary_mask_at(
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
            alarms += crate::acontrario::regions_at(&r.log_nfa, None, threshold, 0.0).len();
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

pub fn eval(args: &ModelArgs, threshold: Option<f32>, json: bool) -> anyhow::Result<()> {
    let project = Project::open(&args.project)?;
    let threshold = threshold.unwrap_or(project.file.settings.log10_nfa_threshold as f32);
    let worker = Worker::spawn(Box::new(|| {}));
    let mut per = serde_json::Map::new();
    for cat in categories(&project, &args.category)? {
        let results = infer_category(&worker, &project, &args.model, &cat)?;
        if results.is_empty() {
            continue;
        }
        let mut v = evaluate(&project, &results, threshold)?;
        let calib =
            std::fs::read_to_string(model_dir(&project, &args.model, &cat).join("model.ron"))
                .ok()
                .and_then(|t| ron::from_str::<crate::model::ModelFile>(&t).ok())
                .map(|f| f.calibration);
        v["validation_calibration"] = serde_json::to_value(calib)?;
        per.insert(cat, v);
    }
    if per.is_empty() {
        bail!("no test images to evaluate");
    }
    let keys = [
        "pixel_auroc",
        "aupro",
        "image_auroc",
        "miou_nfa",
        "miou_oracle",
        "false_alarms_per_normal_image",
    ];
    let mut overall = serde_json::Map::new();
    for k in keys {
        let vals: Vec<f64> = per.values().filter_map(|v| v[k].as_f64()).collect();
        overall.insert(
            k.into(),
            if vals.is_empty() {
                serde_json::Value::Null
            } else {
                (vals.iter().sum::<f64>() / vals.len() as f64).into()
            },
        );
    }
    let out = serde_json::json!({"threshold": threshold, "categories": per, "overall": overall});
    if json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "{:<16} {:>7} {:>7} {:>7} {:>8} {:>8} {:>6}",
            "category", "pixAUC", "AUPRO", "imgAUC", "mIoU@T", "mIoU*", "FA/img"
        );
        let f = |v: &serde_json::Value| v.as_f64().map_or("-".to_string(), |x| format!("{x:.3}"));
        for (k, v) in per.iter().chain([(
            &"overall".to_string(),
            &serde_json::Value::Object(overall.clone()),
        )]) {
            println!(
                "{:<16} {:>7} {:>7} {:>7} {:>8} {:>8} {:>6}",
                k,
                f(&v["pixel_auroc"]),
                f(&v["aupro"]),
                f(&v["image_auroc"]),
                f(&v["miou_nfa"]),
                f(&v["miou_oracle"]),
                f(&v["false_alarms_per_normal_image"])
            );
            // Each defect kind against the same normals, with its share of the defect pixels.
            for (kind, kv) in v["per_kind"].as_object().into_iter().flatten() {
                println!(
                    "  {:<14} {:>7} {:>7} {:>7} {:>8}   ({:.0}% of defect pixels)",
                    kind,
                    f(&kv["pixel_auroc"]),
                    "",
                    f(&kv["image_auroc"]),
                    f(&kv["miou_nfa"]),
                    kv["share_of_defect_pixels"].as_f64().unwrap_or(0.0) * 100.0
                );
            }
        }
    }
    Ok(())
}
