//! Command-line interface: no subcommand opens the window; subcommands do headless work and exit
//! non-zero with a message on bad input.

mod bench;
mod project;
mod segment;
mod trainfree;
mod uflow;
mod watch;
mod watch_bench;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

use crate::uflow::worker::{Command, Message, Worker};

#[derive(Parser, Debug)]
#[command(
    name = "contrario",
    version,
    about = "Review industrial visual anomalies and correct their labels"
)]
pub struct Cli {
    /// Project folder (or folder of images) to open in the window; default: the demo project.
    #[arg(long, global = false)]
    pub project: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Cmd>,
}

impl Cli {
    /// Whether a closed output pipe may simply end the process (SIGPIPE's default action): the
    /// one-shot commands that print, so that `contrario infer ... | head` stops quietly rather
    /// than panicking in println!. Not the window, `watch` and the benchmarks: they hold
    /// sockets (MQTT, the display), whose writes to a peer gone must stay errors to handle.
    pub fn ends_on_closed_pipe(&self) -> bool {
        !matches!(
            self.command,
            None | Some(Cmd::Gui { .. } | Cmd::Watch(_) | Cmd::Bench { .. })
        )
    }
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Open the window (the default).
    Gui {
        #[arg(long)]
        project: Option<PathBuf>,
    },
    /// Generate the procedural demo project (textures, planted defects, two annotators).
    Demo {
        /// Output folder.
        #[arg(long, default_value = "projects/demo")]
        out: PathBuf,
        #[arg(long, default_value_t = crate::project::demo::DEFAULT_SEED)]
        seed: u64,
        /// Overwrite an existing project there.
        #[arg(long)]
        force: bool,
    },
    /// A contrario segmentation of latents: reads DIR/z_1.npy, z_2.npy, ... (float32, C x H x W,
    /// finest first), writes per-scale log10 PFA maps, the combined log10 NFA map and the regions.
    Segment(self::segment::Args),
    /// The training-free detector (thesis chapter 3) on one image: writes log_nfa.npy and
    /// anomaly_score.png.
    Detect {
        #[arg(long)]
        image: PathBuf,
        #[arg(long, default_value = "detect-out")]
        out: PathBuf,
        #[command(flatten)]
        params: TrainFreeArgs,
    },
    /// Pixel AUROC of the training-free detector's variants on MVTec-style categories.
    TrainfreeEval {
        /// MVTec-style root (category/test/..., category/ground_truth/...), or a project folder
        /// (its test images, with the read-only annotator's masks as ground truth).
        #[arg(long)]
        data: PathBuf,
        /// Categories (default: every category under --data).
        #[arg(long)]
        category: Vec<String>,
        /// Variants as FEATURES+NFA, e.g. pca+pixel (default: all six).
        #[arg(long)]
        variant: Vec<String>,
        #[command(flatten)]
        params: TrainFreeArgs,
        #[arg(long)]
        json: bool,
    },
    /// Import a dataset into a project (created if needed); prints counts per category as JSON.
    Import {
        #[arg(long)]
        project: PathBuf,
        /// Layout of PATH: mvtec, btad, visa (its root or split CSV), magnetic-tile, or folder
        /// (a plain folder of images).
        #[arg(long, default_value = "mvtec")]
        format: String,
        path: PathBuf,
        #[command(flatten)]
        groups: self::project::GroupArgs,
        /// An annotator's masks: NAME=FOLDER (repeatable); a mask's file name starts with its
        /// image's stem (im01.png, im01_mask.png, im01.ah.png).
        #[arg(long = "annotator-masks", value_parser = self::project::parse_layer)]
        layers: Vec<(String, PathBuf)>,
    },
    /// Mark images as views of one object (groups), from a file-name pattern or a CSV.
    Group {
        #[arg(long)]
        project: PathBuf,
        #[command(flatten)]
        groups: self::project::GroupArgs,
    },
    /// Export labels and reports: masks (MVTec layout, into folder OUT), csv (one row per image)
    /// or coco (JSON with RLE masks).
    Export {
        #[arg(long)]
        project: PathBuf,
        #[arg(long)]
        format: String,
        #[arg(long)]
        out: PathBuf,
        /// Layer to export (default: consensus when there is one, else the dataset ground truth).
        #[arg(long)]
        layer: Option<String>,
        /// Model whose cached results fill the CSV's score columns.
        #[arg(long)]
        model: Option<String>,
    },
    /// The review queue (images by annotator disagreement), inconsistent groups of views, and,
    /// with --model, label issues from the model's a contrario evidence; JSON.
    Review {
        #[arg(long)]
        project: PathBuf,
        #[arg(long)]
        model: Option<String>,
        /// At most this many queue entries and label issues.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Train a U-Flow model on the project's normal training images (one per category).
    Train(self::uflow::TrainArgs),
    /// Run a model on the project's test images (results cached per model and image).
    Infer(self::uflow::ModelArgs),
    /// Evaluate a model: pixel/image AUROC, AUPRO, mIoU at the NFA threshold and its oracle,
    /// false alarms per normal image, latent calibration.
    Eval {
        #[command(flatten)]
        target: self::uflow::ModelArgs,
        /// log10 NFA threshold (default: the project's setting).
        #[arg(long, allow_negative_numbers = true)]
        threshold: Option<f32>,
        #[arg(long)]
        json: bool,
    },
    /// Record a verdict (normal, defective, unsure) and/or a note on an image in the project's
    /// review journal.
    Verdict {
        #[arg(long)]
        project: PathBuf,
        /// Image id (as `review` and the CSV report list them).
        #[arg(long)]
        image: String,
        #[arg(long)]
        reviewer: String,
        verdict: Option<String>,
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Durability check used by the crash test: a stream of one-pixel edits, one line per edit.
    #[command(hide = true)]
    EditStream {
        #[arg(long)]
        project: PathBuf,
        #[arg(long, default_value = "crash-test")]
        annotator: String,
        #[arg(long, default_value_t = 1000)]
        count: usize,
        #[arg(long, default_value_t = 20)]
        interval_ms: u64,
    },
    /// Watch a folder a line camera writes into: score each image once complete, one JSON line
    /// each (stdout, --out, MQTT), and add it to the project's live split for review.
    Watch(self::watch::WatchArgs),
    /// Benchmarks, measured side by side in one run (use a release build).
    Bench {
        /// What to measure: `nfa` (segmentation and re-thresholding), `uflow` (inference split
        /// into backbone / flow / segmentation, and a training epoch), `patchcore` (inference
        /// split likewise, the nearest-neighbour search against banks of 10 % of --images
        /// training images' patches, default 15, 30, 60, 119 and 238), `coreset` (PatchCore's
        /// coreset selection on the first --images (default all) training images of
        /// --category of --project: the pruned traversal against the plain scan), `project` (generate a
        /// project of --images images, open it in a fresh process: time and memory; thumbnails
        /// cold against the disk cache) or `gui` (the window's frame time, headless, on an image
        /// of --size (use 2048): idle, a brush stroke, the NFA level moving under 200 outlines;
        /// --repeat frames each) or `review` (a project of --images images opened and analysed
        /// for the review queue; the image list filtered and sorted; then 100 flagged images
        /// with cached results reviewed by key in the window, headless: from a verdict key to
        /// the next flagged image drawn with heatmap and outlines) or `evaluation` (the
        /// evaluation of --model on --category of --project from its cached results: from
        /// scratch against at another NFA level, as the evaluation panel redoes it).
        #[arg(default_value = "nfa")]
        what: String,
        #[arg(long, default_value_t = 50)]
        repeat: usize,
        /// How many images (default: 10000 for `project` and `review`, 50 for `watch`; the
        /// training images behind the bank for `patchcore`).
        #[arg(long)]
        images: Option<usize>,
        /// Side of the generated images, pixels (default: 256; 512 for `watch`).
        #[arg(long)]
        size: Option<u32>,
        /// Project folder: kept for `project` (default: a temporary folder), read by
        /// `project-open` and `evaluation`.
        #[arg(long)]
        project: Option<PathBuf>,
        /// Model and category for `evaluation`.
        #[arg(long)]
        model: Option<String>,
        #[arg(long)]
        category: Option<String>,
        /// Images per second for `watch`.
        #[arg(long, default_value_t = 5.0)]
        rate: f64,
        /// The broker `watch` publishes to (default: a mosquitto of its own on the loopback
        /// address).
        #[arg(long)]
        mqtt: Option<crate::app::mqtt::Broker>,
    },
    /// Show the libtorch version, the compute device and the built-in backbone weights.
    Info {
        #[arg(long)]
        json: bool,
    },
}

/// Parameters of the training-free detector (defaults: the thesis').
#[derive(clap::Args, Debug)]
pub struct TrainFreeArgs {
    /// pca or gabor.
    #[arg(long, default_value = "pca")]
    features: String,
    /// pixel, block or region.
    #[arg(long, default_value = "pixel")]
    nfa: String,
    #[arg(long, default_value_t = 4)]
    scales: usize,
    /// Patch-PCA components kept (m).
    #[arg(long, default_value_t = 45)]
    components: usize,
    /// Patch side (s).
    #[arg(long, default_value_t = 17)]
    patch: usize,
    /// Block side (w) and stride of the block NFA.
    #[arg(long, default_value_t = 51)]
    block: usize,
    #[arg(long, default_value_t = 10)]
    stride: usize,
    /// Size the image is analysed at: at most WORK_SIZE^2 pixels, aspect kept (0: native
    /// size).
    #[arg(long, default_value_t = 256)]
    work_size: usize,
    /// Keep each level's detections as wide as its patches make them (the thesis' maps), rather
    /// than eroding them back to the pixels that carry the evidence.
    #[arg(long)]
    no_refine: bool,
}

impl TrainFreeArgs {
    fn params(&self) -> anyhow::Result<crate::stats::acontrario::trainfree::Params> {
        use self::trainfree::{parse_features, parse_nfa};
        if self.patch == 0 || self.components == 0 || self.scales == 0 || self.block == 0 {
            anyhow::bail!("--patch, --components, --scales and --block must be positive");
        }
        Ok(crate::stats::acontrario::trainfree::Params {
            features: parse_features(&self.features)?,
            nfa: parse_nfa(&self.nfa)?,
            scales: self.scales,
            pca_components: self.components.min(self.patch * self.patch),
            patch: self.patch,
            block: self.block,
            stride: self.stride.max(1),
            work_size: (self.work_size > 0).then_some(self.work_size),
            refine: !self.no_refine,
            ..Default::default()
        })
    }
}

/// Run the CLI; returns the process exit code.
pub fn main_with(cli: Cli) -> i32 {
    let result = match cli.command {
        None => crate::gui::run(cli.project),
        Some(Cmd::Gui { project }) => crate::gui::run(project.or(cli.project)),
        Some(Cmd::Demo { out, seed, force }) => crate::project::demo::generate(&out, seed, force)
            .map(|p| {
                println!("wrote {} images to {}", p.file.images.len(), out.display());
            }),
        Some(Cmd::Info { json }) => info(json),
        Some(Cmd::Watch(args)) => self::watch::run(args),
        Some(Cmd::Detect { image, out, params }) => params
            .params()
            .and_then(|p| self::trainfree::detect(&image, &out, &p)),
        Some(Cmd::TrainfreeEval {
            data,
            category,
            variant,
            params,
            json,
        }) => (|| {
            use self::trainfree::{parse_features, parse_nfa};
            let base = params.params()?;
            let variants = if variant.is_empty() {
                [
                    "pca+pixel",
                    "pca+block",
                    "pca+region",
                    "gabor+pixel",
                    "gabor+block",
                    "gabor+region",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect()
            } else {
                variant
            };
            let variants = variants
                .iter()
                .map(|v| {
                    let (f, n) = v
                        .split_once('+')
                        .ok_or_else(|| anyhow::anyhow!("variant {v:?} is not FEATURES+NFA"))?;
                    Ok((parse_features(f)?, parse_nfa(n)?))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let rows = self::trainfree::eval(&data, &category, &variants, &base)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                println!(
                    "{:<10} {:<8} {:<7} {:>11} {:>8} {:>8} {:>9}",
                    "category", "features", "nfa", "pixel AUROC", "mIoU@1", "mIoU*", "s/image"
                );
                let f = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
                for r in rows.as_array().into_iter().flatten() {
                    println!(
                        "{:<10} {:<8} {:<7} {:>11.4} {:>8.3} {:>8.3} {:>9.2}",
                        r["category"].as_str().unwrap_or(""),
                        r["features"].as_str().unwrap_or(""),
                        r["nfa"].as_str().unwrap_or(""),
                        f(&r["pixel_auroc"]),
                        f(&r["miou_nfa"]),
                        f(&r["miou_oracle"]),
                        f(&r["seconds_per_image"])
                    );
                    for (kind, v) in r["miou_nfa_per_kind"].as_object().into_iter().flatten() {
                        println!("  {kind:<40} {:>8.3}", f(v));
                    }
                }
            }
            Ok(())
        })(),
        Some(Cmd::Bench {
            what,
            repeat,
            images,
            size,
            project,
            model,
            category,
            rate,
            mqtt,
        }) => match what.as_str() {
            "watch" => {
                self::watch_bench::watch(rate, images.unwrap_or(50), size.unwrap_or(512), mqtt).map(
                    |v| {
                        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                    },
                )
            }
            "project" => self::bench::project_scale(
                images.unwrap_or(10_000),
                size.unwrap_or(256),
                project.as_deref(),
            )
            .map(|v| {
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            }),
            "project-open" => match project {
                Some(p) => self::bench::project_open(&p).map(|v| println!("{v}")),
                None => Err(anyhow::anyhow!("project-open needs --project")),
            },
            "nfa" => {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&self::bench::nfa(repeat.max(1)))
                        .unwrap_or_default()
                );
                Ok(())
            }
            "uflow" => crate::uflow::bench::uflow(repeat.max(1), 32, 256).map(|v| {
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            }),
            "patchcore" => {
                let n = images.map_or_else(|| vec![15, 30, 60, 119, 238], |n| vec![n]);
                crate::uflow::bench::patchcore(repeat.max(1), &n, 256).map(|v| {
                    println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                })
            }
            "coreset" => match (project, category) {
                (Some(p), Some(c)) => crate::project::Project::open(&p)
                    .map_err(anyhow::Error::from)
                    .and_then(|project| self::uflow::normal_training_paths(&project, &c))
                    .and_then(|paths| {
                        let n = images.unwrap_or(paths.len()).min(paths.len());
                        crate::uflow::bench::coreset(&paths[..n], 0.1, 256).map(|v| {
                            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                        })
                    }),
                _ => Err(anyhow::anyhow!("coreset needs --project and --category")),
            },
            "gui" => {
                self::bench::gui(repeat.max(20), size.unwrap_or(256), project.as_deref()).map(|v| {
                    println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                })
            }
            "review" => {
                self::bench::review(images.unwrap_or(10_000), size.unwrap_or(256), repeat.max(5))
                    .map(|v| {
                        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                    })
            }
            "evaluation" => match (project, model, category) {
                (Some(p), Some(m), Some(c)) => self::bench::evaluation(&p, &m, &c, repeat.max(3))
                    .map(|v| {
                        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                    }),
                _ => Err(anyhow::anyhow!(
                    "evaluation needs --project, --model and --category"
                )),
            },
            other => Err(anyhow::anyhow!(
                "unknown benchmark {other:?} (known: nfa, uflow, patchcore, coreset, project, gui, review, evaluation, watch)"
            )),
        },
        Some(Cmd::Segment(args)) => self::segment::run(&args),
        Some(Cmd::Import {
            project,
            format,
            path,
            groups,
            layers,
        }) => self::project::import(&project, &format, &path, &groups, &layers),
        Some(Cmd::Group { project, groups }) => self::project::group(&project, &groups),
        Some(Cmd::Export {
            project,
            format,
            out,
            layer,
            model,
        }) => self::project::export(&project, &format, &out, layer.as_deref(), model.as_deref()),
        Some(Cmd::Review {
            project,
            model,
            limit,
        }) => self::project::review(&project, model.as_deref(), limit),
        Some(Cmd::Verdict {
            project,
            image,
            reviewer,
            verdict,
            note,
        }) => self::project::verdict(&project, &image, &reviewer, verdict.as_deref(), &note),
        Some(Cmd::EditStream {
            project,
            annotator,
            count,
            interval_ms,
        }) => self::project::edit_stream(&project, &annotator, count, interval_ms),
        Some(Cmd::Train(args)) => self::uflow::train(&args),
        Some(Cmd::Infer(args)) => self::uflow::infer(&args),
        Some(Cmd::Eval {
            target,
            threshold,
            json,
        }) => self::uflow::eval(&target, threshold, json),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("contrario: error: {e:#}");
            1
        }
    }
}

fn info(json: bool) -> anyhow::Result<()> {
    let worker = Worker::spawn(Box::new(|| {}));
    worker.send(Command::Probe);
    worker.send(Command::CheckBackbone { all: true });
    let mut torch = None;
    let mut backbones = Vec::new();
    for _ in 0..2 {
        match worker.recv() {
            Some(Message::Torch(t)) => torch = Some(t),
            Some(Message::Backbones(found)) => backbones = found,
            Some(_) => {}
            None => break,
        }
    }
    let torch = torch.ok_or_else(|| anyhow::anyhow!("the worker thread did not answer"))?;
    if json {
        let found: Vec<serde_json::Value> = backbones
            .iter()
            .map(|b| match &b.found {
                Ok((p, n)) => serde_json::json!({"name": b.name, "path": p, "tensors": n}),
                Err(e) => serde_json::json!({"name": b.name, "package": b.package, "error": e}),
            })
            .collect();
        let out = serde_json::json!({
            "torch": torch,
            // The default's, as before; then every built-in backbone, the default first.
            "builtin_backbone": found.first(),
            "builtin_backbones": found,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("{}", torch.summary());
        for (k, b) in backbones.iter().enumerate() {
            let default = if k == 0 { " (default)" } else { "" };
            match &b.found {
                Ok((p, n)) => println!(
                    "built-in backbone {}{default}: {n} tensors, {}",
                    b.name,
                    p.display()
                ),
                Err(e) => println!("built-in backbone {}{default}: {e}", b.name),
            }
        }
    }
    // The default is what training and inference need: without it, say so in the exit code.
    match backbones.first().map(|b| &b.found) {
        Some(Ok(_)) => Ok(()),
        Some(Err(e)) => anyhow::bail!("{e}"),
        None => anyhow::bail!("the worker did not check the built-in backbones"),
    }
}
