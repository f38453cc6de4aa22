//! A trained U-Flow model: preprocessing, cached backbone features, training on normal images
//! with a held-out validation split, calibration, the model files (safetensors + `model.ron`), and
//! inference (latents, anomaly map, image score, a contrario segmentation).

use anyhow::{Context, bail};
use ndarray::Array3;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use tch::{Device, Kind, Tensor, nn};

use crate::project::drift::{self, Look};
use crate::project::model_file::{Calibration, FlowShape, MODEL_FORMAT, ModelFile, TrainConfig};
use crate::project::results::{CacheEntry, InferenceSummary};
use crate::project::storage::Fnv;
use crate::project::training::{BUILTIN_BACKBONES, Family, Photometric, parse_builtin};
use crate::project::training::{EpochRecord, Progress};
use crate::project::{MODEL_META_FILE, MODEL_WEIGHTS_FILE};
use crate::stats::acontrario::nfa::OutlineEvidence;
use crate::stats::acontrario::null::{self, CellNull, DistanceNull};
use crate::stats::acontrario::{self, OutlineRule, SegmentOptions, TestCount};
use crate::uflow::backbone::{Backbone, EfficientNetLite, IMAGENET_MEAN, IMAGENET_STD};
use crate::uflow::flow::{UFlow, nll_loss};
use crate::uflow::patchcore::{self, Bank};

/// Work stopped at the user's request: the worker reports it as [`Message::Cancelled`], not as
/// a failure.
///
/// [`Message::Cancelled`]: crate::uflow::worker::Message::Cancelled
#[derive(Debug)]
pub struct Cancelled;

impl std::fmt::Display for Cancelled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("cancelled")
    }
}

impl std::error::Error for Cancelled {}

/// Image file -> normalised 3 x S x S tensor, its lighting set to `standard` (grey mean and
/// spread) when there is one.
pub fn preprocess(path: &Path, size: i64, standard: Option<[f32; 2]>) -> anyhow::Result<Tensor> {
    Ok(preprocess_with_look(path, size, standard)?.0)
}

/// The network's input, and the image's look as the drift check measures it (on the same
/// resized image, before any standardisation: the drift check says how the camera's image
/// differs).
pub fn preprocess_with_look(
    path: &Path,
    size: i64,
    standard: Option<[f32; 2]>,
) -> anyhow::Result<(Tensor, Look)> {
    let img = drift::model_view(path, size as u32)?;
    let look = drift::look(&img);
    let data = drift::network_pixels(&img, &look, standard);
    let t = Tensor::from_slice(&data)
        .view([size, size, 3])
        .permute([2, 0, 1]);
    let mean = Tensor::from_slice(&IMAGENET_MEAN).view([3, 1, 1]);
    let std = Tensor::from_slice(&IMAGENET_STD).view([3, 1, 1]);
    Ok((((t - mean) / std).contiguous(), look))
}

/// Backbone features of each image (finest first), computed once: the backbone is frozen, so
/// every epoch after the first costs only the flow.
pub fn extract_features(
    backbone: &dyn Backbone,
    paths: &[PathBuf],
    size: i64,
    standard: Option<[f32; 2]>,
    device: Device,
    cancel: &AtomicBool,
    mut progress: impl FnMut(Progress),
) -> anyhow::Result<Vec<Vec<Tensor>>> {
    let mut out = Vec::with_capacity(paths.len());
    for chunk in paths.chunks(8) {
        if cancel.load(Ordering::Relaxed) {
            return Err(Cancelled.into());
        }
        let batch: Vec<Tensor> = chunk
            .iter()
            .map(|p| preprocess(p, size, standard))
            .collect::<anyhow::Result<_>>()?;
        let x = Tensor::stack(&batch, 0).to_device(device);
        let feats = backbone.features(&x);
        for i in 0..chunk.len() as i64 {
            out.push(
                feats
                    .iter()
                    .map(|f| f.get(i).to_device(Device::Cpu))
                    .collect(),
            );
        }
        progress(Progress::Features {
            done: out.len(),
            total: paths.len(),
        });
    }
    Ok(out)
}

/// Hash of the training images' paths and contents.
fn fingerprint(paths: &[PathBuf]) -> String {
    let mut h = Fnv::new();
    for p in paths {
        h.eat(p.to_string_lossy().as_bytes());
        if let Ok(b) = std::fs::read(p) {
            h.eat(&b);
        }
    }
    h.hex()
}

fn batch_of(feats: &[Vec<Tensor>], idx: &[usize], device: Device) -> Vec<Tensor> {
    let scales = feats[0].len();
    (0..scales)
        .map(|s| {
            Tensor::stack(
                &idx.iter()
                    .map(|&i| feats[i][s].shallow_clone())
                    .collect::<Vec<_>>(),
                0,
            )
            .to_device(device)
        })
        .collect()
}

/// A loaded or freshly trained model, ready for inference (lives on the worker thread).
pub struct Model {
    pub file: ModelFile,
    pub net: Net,
    pub backbone: Box<dyn Backbone>,
    pub device: Device,
}

/// What a family learnt from the normal images.
pub enum Net {
    /// U-Flow: the flow and its weights.
    Flow { vs: nn::VarStore, flow: UFlow },
    /// PatchCore: the memory bank.
    Bank(Bank),
}

/// Inference result for one image.
pub struct Inference {
    /// Latents per scale (C x H x W), finest first.
    pub latents: Vec<Array3<f32>>,
    /// 1 - mean over scales of exp(-0.5 mean_c z^2), at the input size; one scale for every
    /// image, never normalised per image.
    pub anomaly_map: ndarray::Array2<f32>,
    pub image_score: f32,
    pub segmentation: acontrario::Segmentation,
    /// The image's look, for the drift check.
    pub look: Look,
}

/// The backbone a model names: a TorchScript file, or a built-in one by name.
/// The training images' looks (the drift check's reference) and the standard their lighting is
/// set to under `config.photometric`, which their features are extracted with.
pub(crate) fn training_looks(
    paths: &[PathBuf],
    config: &TrainConfig,
) -> (Vec<Look>, Option<[f32; 2]>) {
    let looks = drift::looks(paths, config.input_size as u32);
    let standard = match config.photometric {
        Photometric::AsIs => None,
        Photometric::Standardise => drift::standard_of(&looks),
    };
    (looks, standard)
}

fn open_backbone(
    path: Option<&Path>,
    builtin: &str,
    first_stride: i64,
    device: Device,
) -> anyhow::Result<Box<dyn Backbone>> {
    Ok(match path {
        Some(p) => Box::new(crate::uflow::backbone::TorchScriptBackbone::load(
            p, device,
        )?),
        None => Box::new(EfficientNetLite::builtin_named(
            builtin,
            first_stride,
            device,
        )?),
    })
}

/// A flow of `shape` in a fresh VarStore: random weights (`seed`) to train, or the given
/// permutations to load saved weights into.
fn new_flow(
    shape: &FlowShape,
    permutations: Option<Vec<Vec<i64>>>,
    seed: u64,
    device: Device,
) -> (nn::VarStore, UFlow) {
    let vs = nn::VarStore::new(device);
    let flow = UFlow::new(&vs.root(), shape.clone(), permutations, seed);
    (vs, flow)
}

/// The flow's shape over a backbone's feature maps at input side `size`.
fn flow_shape(backbone: &dyn Backbone, size: i64) -> FlowShape {
    let channels = backbone.channels();
    let sizes = (0..channels.len())
        .map(|s| {
            let side = size / (backbone.first_stride() << s);
            (side, side)
        })
        .collect();
    FlowShape {
        channels,
        sizes,
        steps_per_scale: 4,
    }
}

/// Adam with L2 weight decay, as `torch.optim.Adam(weight_decay=...)`, written out so that its
/// moments can be checkpointed (libtorch's C++ optimiser state is not reachable from tch). The
/// moments of all parameters live in two flat tensors, so a step is a dozen kernels, not a dozen
/// per parameter tensor.
pub struct Adam {
    params: Vec<(String, Tensor)>,
    m: Tensor,
    v: Tensor,
    t: i64,
    lr: f64,
    wd: f64,
}

impl Adam {
    const BETAS: (f64, f64) = (0.9, 0.999);
    const EPS: f64 = 1e-8;

    pub fn new(vs: &nn::VarStore, lr: f64, wd: f64) -> Self {
        let mut params: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let n: i64 = params.iter().map(|(_, p)| p.numel() as i64).sum();
        let (kind, device) = params
            .first()
            .map_or((Kind::Float, Device::Cpu), |(_, p)| (p.kind(), p.device()));
        Self {
            params,
            m: Tensor::zeros([n], (kind, device)),
            v: Tensor::zeros([n], (kind, device)),
            t: 0,
            lr,
            wd,
        }
    }

    pub fn backward_step(&mut self, loss: &Tensor) {
        for (_, p) in &self.params {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
        loss.backward();
        self.t += 1;
        let (b1, b2) = Self::BETAS;
        let c1 = 1.0 - b1.powi(self.t as i32);
        let c2 = 1.0 - b2.powi(self.t as i32);
        tch::no_grad(|| {
            let grads: Vec<Tensor> = self
                .params
                .iter()
                .map(|(_, p)| {
                    let g = p.grad();
                    if g.defined() {
                        g.reshape([-1])
                    } else {
                        p.zeros_like().reshape([-1])
                    }
                })
                .collect();
            let mut g = Tensor::cat(&grads, 0);
            if self.wd != 0.0 {
                let flat: Vec<Tensor> = self.params.iter().map(|(_, p)| p.reshape([-1])).collect();
                g += Tensor::cat(&flat, 0) * self.wd;
            }
            let _ = self.m.lerp_(&g, 1.0 - b1);
            let _ = self.v.g_mul_scalar_(b2).addcmul_(&g, &(&g * (1.0 - b2)));
            let denom = (&self.v / c2).sqrt() + Self::EPS;
            let step = &self.m / &denom * (self.lr / c1);
            let mut at = 0i64;
            for (_, p) in self.params.iter_mut() {
                let n = p.numel() as i64;
                let _ = p.g_sub_(&step.narrow(0, at, n).view(p.size().as_slice()));
                at += n;
            }
        });
    }
}

/// A training's state after an epoch, in `dir/.checkpoint.safetensors` (weights, Adam moments,
/// best weights) and `dir/.checkpoint.json` (epochs done, Adam step, best epoch, and a key of
/// the settings and images, so that only the same training resumes from it).
struct Checkpoint {
    epochs_done: usize,
    best: Option<BestEpoch>,
    history: Vec<EpochRecord>,
}

/// How often a training writes its checkpoint (and at a cancel).
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// (validation NLL, epoch, weights) of the best epoch so far.
type BestEpoch = (f64, usize, Vec<(String, Tensor)>);

fn checkpoint_key(config: &TrainConfig, fingerprint: &str) -> String {
    // How regions are counted does not change the weights: it must not invalidate a checkpoint.
    let weights_only = TrainConfig {
        test_count: TestCount::PerArea,
        ..config.clone()
    };
    let mut h = Fnv::new();
    h.eat(ron::to_string(&weights_only).unwrap_or_default().as_bytes());
    h.eat(fingerprint.as_bytes());
    h.hex()
}

/// How many epochs the checkpoint in `dir` holds: a training of the same images and settings
/// started again resumes after them. None when there is none (or it cannot be read).
pub fn checkpoint_epochs(dir: &Path) -> Option<usize> {
    let (_, meta) = Checkpoint::paths(dir);
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(meta).ok()?).ok()?;
    v["epochs_done"].as_u64().map(|n| n as usize)
}

impl Checkpoint {
    fn paths(dir: &Path) -> (PathBuf, PathBuf) {
        (
            dir.join(".checkpoint.safetensors"),
            dir.join(".checkpoint.json"),
        )
    }

    fn save(
        dir: &Path,
        key: &str,
        epochs_done: usize,
        vs: &nn::VarStore,
        opt: &Adam,
        best: Option<&BestEpoch>,
        history: &[EpochRecord],
    ) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let (tensors_p, meta_p) = Self::paths(dir);
        let mut named: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .map(|(k, v)| (format!("w.{k}"), v.detach()))
            .collect();
        named.push(("adam.m".into(), opt.m.shallow_clone()));
        named.push(("adam.v".into(), opt.v.shallow_clone()));
        if let Some((_, _, snap)) = best {
            for (k, t) in snap {
                named.push((format!("b.{k}"), t.shallow_clone()));
            }
        }
        let tmp = dir.join(".checkpoint.tmp.safetensors");
        Tensor::write_safetensors(&named, &tmp).context("writing the checkpoint")?;
        std::fs::rename(&tmp, &tensors_p)?;
        let meta = serde_json::json!({
            "key": key,
            "epochs_done": epochs_done,
            "adam_t": opt.t,
            "best_validation_nll": best.map(|b| b.0),
            "best_epoch": best.map(|b| b.1),
            "history": history,
        });
        // Written last: a checkpoint counts only once its metadata names it.
        crate::project::storage::write_atomic(&meta_p, meta.to_string().as_bytes())?;
        Ok(())
    }

    /// The checkpoint in `dir` for this training (same key), loaded into `vs` and `opt`; None when
    /// there is none or it belongs to another training.
    fn load(
        dir: &Path,
        key: &str,
        vs: &nn::VarStore,
        opt: &mut Adam,
    ) -> anyhow::Result<Option<Checkpoint>> {
        let (tensors_p, meta_p) = Self::paths(dir);
        let Ok(text) = std::fs::read(&meta_p) else {
            return Ok(None);
        };
        let meta: serde_json::Value = match serde_json::from_slice(&text) {
            Ok(m) => m,
            Err(_) => return Ok(None),
        };
        if meta["key"] != key {
            return Ok(None);
        }
        check_safetensors(&tensors_p)?;
        let named: HashMap<String, Tensor> = Tensor::read_safetensors(&tensors_p)
            .map_err(|e| anyhow::anyhow!("{}: {e}", tensors_p.display()))?
            .into_iter()
            .collect();
        let get = |k: &str| {
            named
                .get(k)
                .ok_or_else(|| anyhow::anyhow!("{}: no tensor {k}", tensors_p.display()))
        };
        let mut vars = vs.variables();
        tch::no_grad(|| -> anyhow::Result<()> {
            for (k, t) in vars.iter_mut() {
                t.copy_(get(&format!("w.{k}"))?);
            }
            opt.m.copy_(get("adam.m")?);
            opt.v.copy_(get("adam.v")?);
            Ok(())
        })?;
        opt.t = meta["adam_t"].as_i64().unwrap_or(0);
        let best = match (
            meta["best_validation_nll"].as_f64(),
            meta["best_epoch"].as_u64(),
        ) {
            (Some(val), Some(epoch)) => {
                let snap = vars
                    .keys()
                    .map(|k| Ok((k.clone(), get(&format!("b.{k}"))?.copy())))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                Some((val, epoch as usize, snap))
            }
            _ => None,
        };
        Ok(Some(Checkpoint {
            epochs_done: meta["epochs_done"].as_u64().unwrap_or(0) as usize,
            best,
            // Checkpoints written before the history was kept resume without it.
            history: serde_json::from_value(meta["history"].clone()).unwrap_or_default(),
        }))
    }

    fn remove(dir: &Path) {
        let (a, b) = Self::paths(dir);
        let _ = std::fs::remove_file(b);
        let _ = std::fs::remove_file(a);
    }
}

impl Model {
    /// Train on `train` (normal images only), holding out a validation split.
    pub fn train(
        train_paths: &[PathBuf],
        config: &TrainConfig,
        device: Device,
        cancel: &AtomicBool,
        progress: impl FnMut(Progress),
    ) -> anyhow::Result<Model> {
        Self::train_resumable(train_paths, config, device, cancel, progress, None)
    }

    /// [`Self::train`], writing a checkpoint into `checkpoint_dir` at an epoch end every half
    /// minute and when cancelled (weights, optimiser moments, best epoch so far), and resuming
    /// from one left there by an interrupted training of the same images with the same settings.
    /// A resumed training ends exactly where an uninterrupted one would; the checkpoint is
    /// removed when training completes.
    pub fn train_resumable(
        train_paths: &[PathBuf],
        config: &TrainConfig,
        device: Device,
        cancel: &AtomicBool,
        mut progress: impl FnMut(Progress),
        checkpoint_dir: Option<&Path>,
    ) -> anyhow::Result<Model> {
        let started = Instant::now();
        if train_paths.is_empty() {
            bail!("no normal training images");
        }
        if config.input_size % 32 != 0 || config.input_size < 64 {
            bail!(
                "input size {} must be a multiple of 32, at least 64",
                config.input_size
            );
        }
        tch::manual_seed(config.seed as i64);
        if config.deterministic {
            // Pin libtorch's intra-op thread pool before any work: with its lazy default set-up,
            // the first training of a process ran with other kernels than later ones (seen as
            // two trainings with one seed diverging).
            tch::set_num_threads(tch::get_num_threads());
        }
        let mut rng = StdRng::seed_from_u64(config.seed);
        let mut paths = train_paths.to_vec();
        paths.sort();
        let mut order: Vec<usize> = (0..paths.len()).collect();
        order.shuffle(&mut rng);
        if config.family == Family::Patchcore {
            // Every image is held out once, a fold at a time, as many folds as the validation
            // share says (5 for a fifth).
            let folds = (1.0 / config.validation_fraction.max(1e-3)).round() as usize;
            return train_bank(&paths, &order, folds, config, device, cancel, &mut progress);
        }
        let n_val = if paths.len() >= 2 {
            ((paths.len() as f64 * config.validation_fraction).round() as usize)
                .clamp(1, paths.len() - 1)
        } else {
            0
        };
        let (val_idx, train_idx) = order.split_at(n_val);
        let backbone = open_backbone(
            config.backbone.as_deref(),
            &config.builtin,
            config.first_stride,
            device,
        )?;
        let (looks, standard) = training_looks(&paths, config);
        let feats = extract_features(
            backbone.as_ref(),
            &paths,
            config.input_size,
            standard,
            device,
            cancel,
            &mut progress,
        )?;
        let shape = flow_shape(backbone.as_ref(), config.input_size);
        let (vs, flow) = new_flow(&shape, None, config.seed, device);
        let mut opt = Adam::new(&vs, config.learning_rate, config.weight_decay);
        // With a single image there is nothing to hold out: validate on it (reported).
        let val_idx: Vec<usize> = if val_idx.is_empty() {
            train_idx.to_vec()
        } else {
            val_idx.to_vec()
        };
        let mut train_idx = train_idx.to_vec();
        let mut best: Option<BestEpoch> = None;
        let fingerprint = fingerprint(&paths);
        let key = checkpoint_key(config, &fingerprint);
        let mut first_epoch = 0;
        let mut history: Vec<EpochRecord> = Vec::new();
        // Latent dimensions per image: the losses are reported per dimension.
        let dims = shape
            .channels
            .iter()
            .zip(&shape.sizes)
            .map(|(c, (h, w))| c * h * w)
            .sum::<i64>()
            .max(1) as f64;
        // Time already spent by the interrupted training this one resumes.
        let mut earlier = 0.0;
        if let Some(dir) = checkpoint_dir
            && let Some(c) = Checkpoint::load(dir, &key, &vs, &mut opt)?
        {
            first_epoch = c.epochs_done;
            best = c.best;
            history = c.history;
            history.truncate(first_epoch);
            earlier = history.last().map_or(0.0, |r| r.seconds);
            progress(Progress::Resumed {
                epochs_done: first_epoch,
            });
        }
        let start = Instant::now();
        let mut last_checkpoint = Instant::now();
        for epoch in first_epoch..config.epochs {
            // Each epoch's order depends only on the seed and the epoch, so a resumed training
            // visits the batches an uninterrupted one would.
            let mut epoch_rng = StdRng::seed_from_u64(
                config.seed ^ (epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            );
            train_idx.sort_unstable();
            train_idx.shuffle(&mut epoch_rng);
            let steps = train_idx.len().div_ceil(config.batch_size.max(1));
            let mut total = 0.0;
            for (step, chunk) in train_idx.chunks(config.batch_size.max(1)).enumerate() {
                if cancel.load(Ordering::Relaxed) {
                    return Err(Cancelled.into());
                }
                let x = batch_of(&feats, chunk, device);
                let (z, logdet) = flow.forward(&x);
                let loss = nll_loss(&z, &logdet);
                opt.backward_step(&loss);
                let l = loss.double_value(&[]);
                if !l.is_finite() {
                    bail!("the loss diverged at epoch {epoch} (try a lower learning rate)");
                }
                total += l;
                progress(Progress::Step {
                    epoch,
                    step,
                    steps,
                    loss: l,
                });
            }
            let val = validation_nll(&flow, &feats, &val_idx, device);
            let per_epoch = start.elapsed().as_secs_f64() / (epoch + 1 - first_epoch) as f64;
            let record = EpochRecord {
                epoch,
                train_loss: total / steps.max(1) as f64 / dims,
                validation_nll: val / dims,
                seconds: earlier + started.elapsed().as_secs_f64(),
            };
            history.push(record);
            progress(Progress::Epoch {
                epochs: config.epochs,
                record,
                eta_seconds: per_epoch * (config.epochs - epoch - 1) as f64,
            });
            if best.as_ref().is_none_or(|b| val < b.0) {
                let snapshot = vs
                    .variables()
                    .into_iter()
                    .map(|(k, v)| (k, v.detach().copy()))
                    .collect();
                best = Some((val, epoch, snapshot));
            }
            // Checkpoint every half minute (writing one per short epoch would cost more than the
            // epochs) and whenever a cancel is pending, so a cancelled training keeps its epochs.
            if let Some(dir) = checkpoint_dir
                && epoch + 1 < config.epochs
                && (last_checkpoint.elapsed() >= CHECKPOINT_EVERY || cancel.load(Ordering::Relaxed))
            {
                Checkpoint::save(dir, &key, epoch + 1, &vs, &opt, best.as_ref(), &history)?;
                last_checkpoint = Instant::now();
            }
        }
        if let Some(dir) = checkpoint_dir {
            Checkpoint::remove(dir);
        }
        let (val_nll, best_epoch) = match best {
            Some((val, epoch, snapshot)) => {
                let mut vars = vs.variables();
                tch::no_grad(|| {
                    for (k, v) in &snapshot {
                        if let Some(t) = vars.get_mut(k) {
                            t.copy_(v);
                        }
                    }
                });
                (val, epoch)
            }
            None => (f64::NAN, 0),
        };
        let opts = SegmentOptions::with_count(config.test_count);
        let calibration = calibrate(&flow, &feats, &val_idx, device, val_nll, opts);
        let file = ModelFile {
            format_version: MODEL_FORMAT,
            backbone: backbone.name(),
            backbone_path: config.backbone.clone(),
            input_size: config.input_size,
            shape,
            permutations: flow.permutations.clone(),
            train: config.clone(),
            training_fingerprint: fingerprint,
            training_images: paths.len(),
            training_look: drift::TrainingLook::of(&looks),
            photometric_standard: standard,
            distance_null: None,
            best_epoch,
            calibration,
            train_seconds: earlier + started.elapsed().as_secs_f64(),
            history,
        };
        Ok(Model {
            file,
            net: Net::Flow { vs, flow },
            backbone,
            device,
        })
    }

    /// Write `dir/weights.safetensors` and `dir/model.ron`.
    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        // tch picks the format from the extension, so the temporary name keeps it.
        let tmp = dir.join(".tmp-weights.safetensors");
        match &self.net {
            Net::Flow { vs, .. } => vs.save(&tmp).context("writing the weights")?,
            Net::Bank(b) => Tensor::write_safetensors(&[(BANK_TENSOR, &b.patches)], &tmp)
                .context("writing the memory bank")?,
        }
        std::fs::rename(&tmp, dir.join(MODEL_WEIGHTS_FILE))?;
        let cfg = ron::ser::PrettyConfig::new().struct_names(true);
        let text = ron::ser::to_string_pretty(&self.file, cfg)?;
        crate::project::storage::write_atomic(&dir.join(MODEL_META_FILE), text.as_bytes())?;
        Ok(())
    }

    /// Load a model directory; other backbones, format versions or damaged files are refused
    /// with a message naming the file.
    pub fn load(dir: &Path, device: Device) -> anyhow::Result<Model> {
        let ron_path = dir.join(MODEL_META_FILE);
        let file = ModelFile::read(dir)?;
        let backbone = match (&file.backbone_path, file.backbone.as_str()) {
            (None, name) if parse_builtin(name).is_none() => bail!(
                "{} was trained with backbone {:?}, which this build cannot provide (it has {} and TorchScript files)",
                ron_path.display(),
                file.backbone,
                BUILTIN_BACKBONES.map(|b| b.name).join(", ")
            ),
            // A built-in backbone whose package is missing says which one to install.
            (path, name) => {
                open_backbone(path.as_deref(), name, file.train.first_stride, device)
                    .with_context(|| format!("loading the backbone of {}", ron_path.display()))?
            }
        };
        let expected = match file.train.family {
            Family::Uflow => flow_shape(backbone.as_ref(), file.input_size),
            Family::Patchcore => bank_shape(backbone.as_ref(), file.input_size),
        };
        if expected != file.shape {
            bail!(
                "{}: its feature shapes do not match the backbone at input size {}",
                ron_path.display(),
                file.input_size
            );
        }
        let weights = dir.join(MODEL_WEIGHTS_FILE);
        check_safetensors(&weights)?;
        let net = match file.train.family {
            Family::Uflow => {
                let (mut vs, flow) =
                    new_flow(&file.shape, Some(file.permutations.clone()), 0, device);
                vs.load(&weights)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", weights.display()))?;
                Net::Flow { vs, flow }
            }
            Family::Patchcore => {
                let read = Tensor::read_safetensors(&weights)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", weights.display()))?;
                let bank = read
                    .into_iter()
                    .find(|(k, _)| k == BANK_TENSOR)
                    .map(|(_, t)| t)
                    .ok_or_else(|| {
                        anyhow::anyhow!("{}: no memory bank in it", weights.display())
                    })?;
                let dims = bank.size();
                if dims.len() != 2
                    || dims[1] != file.shape.channels[0]
                    || file.distance_null.is_none()
                {
                    bail!(
                        "{}: the memory bank does not match {}",
                        weights.display(),
                        ron_path.display()
                    );
                }
                Net::Bank(Bank::new(bank.to_kind(Kind::Float).to_device(device)))
            }
        };
        Ok(Model {
            file,
            net,
            backbone,
            device,
        })
    }

    /// Latents of one preprocessed image, with the calibration's per-scale correction (for
    /// PatchCore, its one map of half-normal scores).
    pub fn latents(&self, x: &Tensor) -> Vec<Tensor> {
        let _g = tch::no_grad_guard();
        let feats = self
            .backbone
            .features(&x.unsqueeze(0).to_device(self.device));
        let flow = match &self.net {
            Net::Flow { flow, .. } => flow,
            Net::Bank(bank) => {
                let (_, z) = self.bank_maps(bank, &feats);
                return vec![z.unsqueeze(0)];
            }
        };
        let scale = &self.file.calibration.latent_scale;
        flow.forward(&feats)
            .0
            .into_iter()
            .enumerate()
            .map(|(s, z)| {
                let z = z.squeeze_dim(0).to_device(Device::Cpu);
                match scale.get(s) {
                    Some(&k) => z * k,
                    None => z,
                }
            })
            .collect()
    }

    /// What the model learnt, by name: the flow's weights, or the memory bank.
    pub fn weights(&self) -> HashMap<String, Tensor> {
        match &self.net {
            Net::Flow { vs, .. } => vs.variables(),
            Net::Bank(b) => HashMap::from([(BANK_TENSOR.to_string(), b.patches.shallow_clone())]),
        }
    }

    /// PatchCore's maps of one image's features: each patch's distance to the bank (h x w, on
    /// the device) and its half-normal score under the held-out normals' law (on the CPU).
    fn bank_maps(&self, bank: &Bank, feats: &[Tensor]) -> (Tensor, Tensor) {
        let p = patchcore::patch_features(feats, self.backbone.first_stride()).squeeze_dim(0);
        let (h, w) = (p.size()[1], p.size()[2]);
        let dist = bank.nearest(&patchcore::rows(&p)).view([h, w]);
        let z = match &self.file.distance_null {
            Some(null) => bank_scores(null, &dist),
            None => dist.to_device(Device::Cpu),
        };
        (dist, z)
    }

    /// The segmentation this model's results are made with (its own count of tests).
    pub fn segment_options(&self) -> SegmentOptions {
        self.file.segment_options()
    }

    /// Inference with the model's own segmentation.
    pub fn infer(&self, path: &Path) -> anyhow::Result<Inference> {
        self.infer_with(path, self.segment_options())
    }

    /// Inference with another segmentation (to compare counts of tests on one model).
    pub fn infer_with(&self, path: &Path, opts: SegmentOptions) -> anyhow::Result<Inference> {
        let size = self.file.input_size;
        let (x, look) = preprocess_with_look(path, size, self.file.photometric_standard)?;
        if let Net::Bank(bank) = &self.net {
            let _g = tch::no_grad_guard();
            let feats = self
                .backbone
                .features(&x.unsqueeze(0).to_device(self.device));
            let (dist, z) = self.bank_maps(bank, &feats);
            let anomaly_map = to_array2(&patchcore::smooth_map(&dist, size));
            let image_score = anomaly_map
                .iter()
                .copied()
                .fold(f32::NEG_INFINITY, f32::max);
            let latents = vec![to_array3(&z.unsqueeze(0))];
            let views: Vec<_> = latents.iter().map(|a| a.view()).collect();
            let out = Some((size as usize, size as usize));
            // Outlined on the distances at the input's size, finer than the tested cells.
            let outline = (opts.outline == OutlineRule::Evidence)
                .then_some(self.file.distance_null.as_ref())
                .flatten()
                .map(|null| bank_outline(&dist, size, null));
            let segmentation = segment_for(&views, out, opts, &self.file.calibration, outline);
            return Ok(Inference {
                latents,
                anomaly_map,
                image_score,
                segmentation,
                look,
            });
        }
        let z = self.latents(&x);
        let _g = tch::no_grad_guard();
        let maps: Vec<Tensor> = z
            .iter()
            .map(|t| {
                let p = (t
                    .pow_tensor_scalar(2)
                    .mean_dim([0i64].as_slice(), true, Kind::Float)
                    * -0.5)
                    .exp();
                p.unsqueeze(0)
                    .upsample_bilinear2d([size, size], false, None, None)
                    .squeeze()
            })
            .collect();
        let map: Tensor =
            1.0 - Tensor::stack(&maps, 0).mean_dim([0i64].as_slice(), false, Kind::Float);
        // The map shown and scored per pixel is blurred as PatchCore's (Gaussian, sigma 4): on
        // every shared category pixel AUROC and AU-PRO rose or held (README, "Which
        // detector"). The image score stays the unblurred maximum, which separated defective
        // images better (blurred, image AUROC fell on bottle and Magnetic-tile).
        let image_score = map.max().double_value(&[]) as f32;
        let anomaly_map = to_array2(&patchcore::smooth_map(&map, size));
        let latents: Vec<Array3<f32>> = z.iter().map(to_array3).collect();
        let views: Vec<_> = latents.iter().map(|a| a.view()).collect();
        let out = Some((size as usize, size as usize));
        let segmentation = segment_for(&views, out, opts, &self.file.calibration, None);
        Ok(Inference {
            latents,
            anomaly_map,
            image_score,
            segmentation,
            look,
        })
    }
}

/// Distances (h x w) as half-normal scores under `null`, on the CPU.
fn bank_scores(null: &DistanceNull, dist: &Tensor) -> Tensor {
    let a = to_array2(dist);
    let z: Vec<f32> = a.iter().map(|&d| null.z(d as f64) as f32).collect();
    Tensor::from_slice(&z).view([a.dim().0 as i64, a.dim().1 as i64])
}

/// The outline rule's evidence of a distance map (h x w) under `null`: the distances upsampled
/// to `size` x `size` without the shown map's blur, which widens a small defect's outline
/// (`OutlineEvidence::of_distances`). Inference and the calibration's held-out count both use it.
pub(crate) fn bank_outline(dist: &Tensor, size: i64, null: &DistanceNull) -> OutlineEvidence {
    let cell = (size / dist.size()[0].max(1)) as usize;
    let sharp = to_array2(&patchcore::upsampled(dist, size));
    OutlineEvidence::of_distances(&sharp, null, cell)
}

/// PatchCore's shape over a backbone at input side `size`: one map of stride-8 patches whose
/// descriptors join the stride-8 and stride-16 channels.
fn bank_shape(backbone: &dyn Backbone, size: i64) -> FlowShape {
    let c = backbone.channels();
    let (a, b) = if backbone.first_stride() <= 4 {
        (1, 2)
    } else {
        (0, 1)
    };
    let side = size / 8;
    FlowShape {
        channels: vec![c[a] + c[b]],
        sizes: vec![(side, side)],
        steps_per_scale: 0,
    }
}

/// The memory bank's tensor in `weights.safetensors`.
const BANK_TENSOR: &str = "memory_bank";

/// Train a PatchCore: a greedy coreset of all the training images' patches is the bank. Its
/// calibration holds every image out once (cross-fitting): the images are dealt into `folds`
/// folds in `order`, and each fold's distances are measured to the bank without the rows its
/// own images gave. Those distances give the distance null, their scores the cell null and the
/// validation false alarms (as for a flow), on every training image rather than on one fold's
/// few. An unseen normal meets the whole bank, a little denser than each fold's, so it lies no
/// farther from it than the calibration assumed. One image: it is calibrated on itself (its
/// validation then says so by counting one image).
fn train_bank(
    paths: &[PathBuf],
    order: &[usize],
    folds: usize,
    config: &TrainConfig,
    device: Device,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(Progress),
) -> anyhow::Result<Model> {
    let started = Instant::now();
    let backbone = open_backbone(
        config.backbone.as_deref(),
        &config.builtin,
        config.first_stride,
        device,
    )?;
    if backbone.channels().len() < 3 && backbone.first_stride() <= 4 {
        bail!("PatchCore needs a backbone with stride-8 and stride-16 feature maps");
    }
    let (looks, standard) = training_looks(paths, config);
    let feats = extract_features(
        backbone.as_ref(),
        paths,
        config.input_size,
        standard,
        device,
        cancel,
        &mut *progress,
    )?;
    let _g = tch::no_grad_guard();
    let (rows, side) = patchcore::patch_rows(&feats, backbone.first_stride());
    let starts: Vec<i64> = rows
        .iter()
        .scan(0, |at, r| {
            let s = *at;
            *at += r.size()[0];
            Some(s)
        })
        .collect();
    let x = Tensor::cat(&rows, 0).to_device(device);
    let k = patchcore::coreset_size(x.size()[0], config.coreset_fraction);
    let picks = patchcore::greedy_coreset(&x, k, config.seed, cancel, &mut |done| {
        progress(Progress::Coreset { done, total: k })
    })
    .ok_or(Cancelled)?;
    let owner = |row: i64| starts.partition_point(|&s| s <= row) - 1;
    let folds = folds.clamp(1, paths.len());
    let mut fold = vec![0; paths.len()];
    for (at, &i) in order.iter().enumerate() {
        fold[i] = at % folds;
    }
    let mut dists: Vec<Tensor> = Vec::with_capacity(paths.len());
    for f in 0..folds {
        let keep: Vec<i64> = picks
            .iter()
            .copied()
            .filter(|&r| folds == 1 || fold[owner(r)] != f)
            .collect();
        if keep.is_empty() {
            bail!("a fold of the training images left no memory bank to calibrate on");
        }
        let bank = Bank::new(patchcore::take(&x, &keep));
        for (r, _) in rows.iter().zip(&fold).filter(|(_, g)| **g == f) {
            dists.push(bank.nearest(r).view([side.0, side.1]));
        }
    }
    let bank = Bank::new(patchcore::take(&x, &picks));
    let all: Vec<f64> = dists
        .iter()
        .flat_map(|d| {
            Vec::<f32>::try_from(&d.flatten(0, -1).to_device(Device::Cpu)).unwrap_or_default()
        })
        .map(f64::from)
        .collect();
    let null = DistanceNull::fit(&all)
        .ok_or_else(|| anyhow::anyhow!("too few held-out patches to calibrate on"))?;
    let opts = SegmentOptions::with_count(config.test_count);
    let latents: Vec<Vec<Array3<f32>>> = dists
        .iter()
        .map(|d| vec![to_array3(&bank_scores(&null, d).unsqueeze(0))])
        .collect();
    // No likelihood to validate: 0 rather than NaN, so that model files compare equal. Held-out
    // regions are counted as inference outlines them (`Model::infer_with`).
    let outline = |i: usize| Some(bank_outline(&dists[i], config.input_size, &null));
    let calibration = calibrate_latents(latents, false, 0.0, opts, &outline);
    let file = ModelFile {
        format_version: MODEL_FORMAT,
        backbone: backbone.name(),
        backbone_path: config.backbone.clone(),
        input_size: config.input_size,
        shape: bank_shape(backbone.as_ref(), config.input_size),
        permutations: Vec::new(),
        train: config.clone(),
        training_fingerprint: fingerprint(paths),
        training_images: paths.len(),
        training_look: drift::TrainingLook::of(&looks),
        photometric_standard: standard,
        distance_null: Some(null),
        best_epoch: 0,
        calibration,
        train_seconds: started.elapsed().as_secs_f64(),
        history: Vec::new(),
    };
    Ok(Model {
        file,
        net: Net::Bank(bank),
        backbone,
        device,
    })
}

/// A model's segmentation: the per-area count weighs each cell's evidence against the cells of
/// held-out normals, with the number of tests grown by the calibration's offset; the thesis'
/// count is as published. `outline`: the outline rule's evidence where the family gives its own.
fn segment_for(
    latents: &[ndarray::ArrayView3<'_, f32>],
    out: Option<(usize, usize)>,
    opts: SegmentOptions,
    calibration: &Calibration,
    outline: Option<OutlineEvidence>,
) -> acontrario::Segmentation {
    segment_with(
        latents,
        out,
        opts,
        &calibration.cell_null,
        calibration.level_offset,
        outline,
    )
}

fn segment_with(
    latents: &[ndarray::ArrayView3<'_, f32>],
    out: Option<(usize, usize)>,
    opts: SegmentOptions,
    cell_null: &[CellNull],
    offset: f64,
    outline: Option<OutlineEvidence>,
) -> acontrario::Segmentation {
    let (nulls, offset) = match opts.count {
        TestCount::PerArea => (cell_null, offset),
        TestCount::Thesis => (&[][..], 0.0),
    };
    let mut seg = acontrario::nfa::segment_outlined(latents, out, opts, nulls, outline);
    if offset != 0.0 {
        seg.log10_nt += offset;
        seg.log_nfa.mapv_inplace(|v| v + offset as f32);
    }
    seg
}

/// libtorch can abort on a truncated safetensors file: check, from its header and length alone,
/// that every tensor lies inside the file before handing it over.
fn check_safetensors(path: &Path) -> anyhow::Result<()> {
    use std::io::Read;
    let read = || -> std::io::Result<(Vec<u8>, u64)> {
        let mut f = std::fs::File::open(path)?;
        let len = f.metadata()?.len();
        let mut n = [0u8; 8];
        f.read_exact(&mut n)?;
        let n = u64::from_le_bytes(n);
        if n > len.saturating_sub(8) {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let mut header = vec![0u8; n as usize];
        f.read_exact(&mut header)?;
        Ok((header, len - 8 - n))
    };
    let (header, data_len) = read().map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => {
            anyhow::anyhow!("{} is damaged: truncated header", path.display())
        }
        _ => anyhow::anyhow!("cannot read {}: {e}", path.display()),
    })?;
    safetensors_header_ok(&header, data_len)
        .map_err(|e| anyhow::anyhow!("{} is damaged: {e}", path.display()))
}

fn safetensors_header_ok(header: &[u8], data_len: u64) -> Result<(), String> {
    let v: serde_json::Value = serde_json::from_slice(header).map_err(|e| e.to_string())?;
    for (k, t) in v.as_object().ok_or("header is not an object")? {
        if k == "__metadata__" {
            continue;
        }
        let end = t["data_offsets"][1].as_u64().ok_or("missing offsets")?;
        if end > data_len {
            return Err(format!("tensor {k} runs past the end of the file"));
        }
    }
    Ok(())
}

pub fn to_array2(t: &Tensor) -> ndarray::Array2<f32> {
    let t = t.to_kind(Kind::Float).to_device(Device::Cpu).contiguous();
    let s = t.size();
    let v: Vec<f32> = Vec::<f32>::try_from(&t.flatten(0, -1)).unwrap_or_default();
    ndarray::Array2::from_shape_vec((s[0] as usize, s[1] as usize), v).expect("2-D tensor")
}

pub fn to_array3(t: &Tensor) -> Array3<f32> {
    let t = t.to_kind(Kind::Float).to_device(Device::Cpu).contiguous();
    let s = t.size();
    let v: Vec<f32> = Vec::<f32>::try_from(&t.flatten(0, -1)).unwrap_or_default();
    Array3::from_shape_vec((s[0] as usize, s[1] as usize, s[2] as usize), v).expect("3-D tensor")
}

fn validation_nll(flow: &UFlow, feats: &[Vec<Tensor>], idx: &[usize], device: Device) -> f64 {
    let _g = tch::no_grad_guard();
    let mut total = 0.0;
    for chunk in idx.chunks(8) {
        let x = batch_of(feats, chunk, device);
        let (z, logdet) = flow.forward(&x);
        total += nll_loss(&z, &logdet).double_value(&[]) * chunk.len() as f64;
    }
    total / idx.len().max(1) as f64
}

fn calibrate(
    flow: &UFlow,
    feats: &[Vec<Tensor>],
    idx: &[usize],
    device: Device,
    val_nll: f64,
    opts: SegmentOptions,
) -> Calibration {
    let _g = tch::no_grad_guard();
    let latents: Vec<Vec<Array3<f32>>> = idx
        .iter()
        .map(|&i| {
            let x = batch_of(feats, &[i], device);
            let (z, _) = flow.forward(&x);
            z.iter().map(|t| to_array3(&t.squeeze_dim(0))).collect()
        })
        .collect();
    calibrate_latents(latents, true, val_nll, opts, &|_| None)
}

/// Held-out images are scored out of sample in at most this many groups.
const OUT_OF_SAMPLE_GROUPS: usize = 10;

/// The calibration from held-out normals' latents (per image, per scale): their mean z^2, with
/// `correct` the per-scale factor that brings it to at most 1, the cell null of each scale, the
/// offset on the number of tests that keeps the promise out of sample, and the false alarms at
/// level 0 with it. `outline(i)`: image i's outline evidence where the family draws its own (its
/// regions are then counted as inference outlines them, at that size), else None.
fn calibrate_latents(
    mut latents: Vec<Vec<Array3<f32>>>,
    correct: bool,
    val_nll: f64,
    opts: SegmentOptions,
    outline: &dyn Fn(usize) -> Option<OutlineEvidence>,
) -> Calibration {
    let scales = latents.first().map_or(0, |l| l.len());
    let n = latents.len().max(1) as f64;
    let mean_z2: Vec<f64> = (0..scales)
        .map(|s| {
            latents
                .iter()
                .map(|l| {
                    l[s].iter().map(|v| f64::from(*v).powi(2)).sum::<f64>()
                        / l[s].len().max(1) as f64
                })
                .sum::<f64>()
                / n
        })
        .collect();
    let latent_scale: Vec<f64> = if latents.is_empty() || !correct {
        Vec::new()
    } else {
        mean_z2
            .iter()
            .map(|m| (1.0 / m.max(1e-6).sqrt()).min(1.0))
            .collect()
    };
    for lat in &mut latents {
        for (z, k) in lat.iter_mut().zip(&latent_scale) {
            z.mapv_inplace(|v| v * *k as f32);
        }
    }
    // How the tested cells are distributed on the held-out normals, after the correction: what
    // the test weighs each cell's evidence against. Each image's cells once, per scale.
    let cells: Vec<Vec<(Vec<f64>, usize)>> = latents
        .iter()
        .map(|lat| {
            lat.iter()
                .map(|z| {
                    let (c, k) = acontrario::nfa::tested_cells(z.view(), opts);
                    (c.iter().map(|&v| v as f64).collect(), k)
                })
                .collect()
        })
        .collect();
    let fit = |keep: &dyn Fn(usize) -> bool| -> Vec<CellNull> {
        (0..scales)
            .map(|s| {
                let mut all = Vec::new();
                let mut channels = 0;
                for (_, c) in cells.iter().enumerate().filter(|(i, _)| keep(*i)) {
                    all.extend_from_slice(&c[s].0);
                    channels = c[s].1;
                }
                CellNull::fit(&all, channels)
            })
            .collect()
    };
    let cell_null: Vec<CellNull> = if latents.is_empty() {
        Vec::new()
    } else {
        fit(&|_| true)
    };
    // Out of sample: each held-out image scored against the null of the others (in at most
    // OUT_OF_SAMPLE_GROUPS groups, so that a large bank's thousand normals cost ten fits), then
    // the offset that keeps the promise on them (`null::level_offset`). With one image there
    // are no others: it is scored in sample. The thesis' count uses no null, so no refits.
    let groups = match opts.count {
        TestCount::PerArea => latents.len().min(OUT_OF_SAMPLE_GROUPS),
        TestCount::Thesis => 1,
    };
    let maps: Vec<ndarray::Array2<f32>> = (0..groups.max(1))
        .flat_map(|g| {
            let null = if groups >= 2 {
                fit(&|i| i % groups != g)
            } else {
                cell_null.clone()
            };
            latents
                .iter()
                .enumerate()
                .filter(|(i, _)| groups < 2 || i % groups == g)
                .map(|(i, lat)| {
                    let views: Vec<_> = lat.iter().map(|a| a.view()).collect();
                    let o = (opts.outline == OutlineRule::Evidence)
                        .then(|| outline(i))
                        .flatten();
                    let out = o.as_ref().map(|o| o.evidence.dim());
                    segment_with(&views, out, opts, &null, 0.0, o).log_nfa
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let level_offset = match opts.count {
        TestCount::PerArea => null::level_offset(&maps, null::PROMISE_CONFIDENCE),
        TestCount::Thesis => 0.0,
    };
    let alarms: usize = maps
        .iter()
        .map(|m| acontrario::regions::count_at(m, -level_offset as f32))
        .sum();
    Calibration {
        mean_z2_per_scale: mean_z2,
        latent_scale,
        cell_null,
        level_offset,
        false_alarms_per_normal_image: alarms as f64 / n,
        validation_images: latents.len(),
        validation_nll: val_nll,
    }
}

impl From<&Inference> for InferenceSummary {
    fn from(i: &Inference) -> Self {
        Self {
            anomaly_map: i.anomaly_map.clone(),
            log_nfa: i.segmentation.log_nfa.clone(),
            best_scale: i.segmentation.best_scale.clone(),
            image_score: i.image_score,
            look: Some(i.look),
            mean_z2_per_scale: i
                .latents
                .iter()
                .map(|z| z.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / z.len().max(1) as f64)
                .collect(),
        }
    }
}

impl Model {
    /// Inference through the per-(model, image) cache, with the model's segmentation or
    /// `opts`: a changed model, image or segmentation gives another key, so stale results are
    /// never read (and are replaced). The flag says whether the result was read from the cache.
    pub fn infer_cached(
        &self,
        model_dir: &Path,
        id: &str,
        image: &Path,
        cache: Option<&Path>,
        opts: Option<SegmentOptions>,
    ) -> anyhow::Result<(InferenceSummary, bool)> {
        let opts = opts.unwrap_or_else(|| self.segment_options());
        let Some(cache) = cache else {
            return Ok((
                InferenceSummary::from(&self.infer_with(image, opts)?),
                false,
            ));
        };
        let c = CacheEntry::new(model_dir, id, image, cache, &opts);
        if let Some(s) = c.read() {
            return Ok((s, true));
        }
        let s = InferenceSummary::from(&self.infer_with(image, opts)?);
        c.write(&s)?;
        Ok((s, false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_distr::{Distribution, StandardNormal};

    /// Eight held-out images of 16 N(0, 1) channels on 32 x 32, each with `bump(i)` times its
    /// latents on a 4 x 4 patch of its own (wide enough for the outline's evidence to keep).
    fn held_out(bump: impl Fn(usize) -> f32) -> Vec<Vec<Array3<f32>>> {
        let mut rng = StdRng::seed_from_u64(7);
        (0..8)
            .map(|i| {
                let mut z =
                    Array3::from_shape_simple_fn((16, 32, 32), || StandardNormal.sample(&mut rng));
                let (y, x) = (3 + 3 * i, 25 - 3 * i);
                z.slice_mut(ndarray::s![.., y..y + 4, x..x + 4])
                    .mapv_inplace(|v| v * bump(i));
                vec![z]
            })
            .collect()
    }

    #[test]
    fn the_offset_keeps_the_held_out_promise_out_of_sample() {
        let opts = SegmentOptions::with_count(TestCount::PerArea);
        // White noise: the promise holds as fitted, nothing to pay.
        let clean = calibrate_latents(held_out(|_| 1.0), false, 0.0, opts, &|_| None);
        assert_eq!(clean.level_offset, 0.0);
        // A patch of its own in every image, each stronger than the last: every image alarms
        // (the budget of eight images is three), so the number of tests must grow until at most
        // three of them do.
        let c = calibrate_latents(
            held_out(|i| 2.2 + 0.1 * i as f32),
            false,
            0.0,
            opts,
            &|_| None,
        );
        assert!(c.level_offset > 0.0, "{c:?}");
        let alarms = (c.false_alarms_per_normal_image * 8.0).round() as usize;
        assert!(
            alarms <= null::promise_budget(8, null::PROMISE_CONFIDENCE),
            "{c:?}"
        );
        // The model scores with the offset: the strongest patch stays a region, and its log10
        // NFA is the one without the offset plus the offset.
        let strongest = held_out(|i| 2.2 + 0.1 * i as f32).pop().unwrap();
        let views: Vec<_> = strongest.iter().map(|a| a.view()).collect();
        let with = segment_for(&views, None, opts, &c, None);
        let without = segment_with(&views, None, opts, &c.cell_null, 0.0, None);
        let min = |m: &ndarray::Array2<f32>| m.iter().fold(f32::INFINITY, |a, &v| a.min(v));
        assert!((min(&with.log_nfa) - min(&without.log_nfa) - c.level_offset as f32).abs() < 1e-4);
        // The thesis' count is as published: no offset.
        let thesis = SegmentOptions::with_count(TestCount::Thesis);
        let t = segment_for(&views, None, thesis, &c, None);
        assert_eq!(
            t.log_nfa,
            segment_with(&views, None, thesis, &[], 0.0, None).log_nfa
        );
    }
}
