//! A model folder's description (`model.ron`) as plain data: what a model was trained on and
//! how, its shapes and calibration. The window and reports read it without libtorch; the weights
//! beside it are `uflow`'s.

use anyhow::bail;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use super::MODEL_META_FILE;
use super::training::{Family, Photometric, TrainingSettings};
use crate::stats::acontrario::null::CellNull;
use crate::stats::acontrario::{SegmentOptions, TestCount};

/// Version of `model.ron` this build writes and reads.
pub const MODEL_FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Square input side the images are resized to (a multiple of 32).
    pub input_size: i64,
    pub batch_size: usize,
    pub epochs: usize,
    pub learning_rate: f64,
    pub weight_decay: f64,
    /// Fraction of the normal training images held out for validation (epoch selection and
    /// calibration); test images are never used for either.
    pub validation_fraction: f64,
    pub seed: u64,
    /// A TorchScript backbone to use instead of a built-in one.
    #[serde(default)]
    pub backbone: Option<PathBuf>,
    /// Which built-in backbone when there is no TorchScript one
    /// (`project::training::BUILTIN_BACKBONES`).
    #[serde(default = "default_builtin")]
    pub builtin: String,
    /// Finest stride of the three tapped feature maps (4 or 8); a `-s8` builtin name says 8 too
    /// (models saved before the taps were a setting).
    #[serde(default = "four")]
    pub first_stride: i64,
    /// Reproducible training: the same seed and data give the same model.
    #[serde(default = "yes")]
    pub deterministic: bool,
    /// How the model's a contrario segmentation counts its tests (models saved before the
    /// choice existed use the default, the per-area count).
    #[serde(default = "per_area")]
    pub test_count: TestCount,
    /// How images' brightness and contrast are evened out before the backbone (models saved
    /// before the choice existed took them as they were).
    #[serde(default)]
    pub photometric: Photometric,
    /// The model family (models saved before the choice existed are U-Flows).
    #[serde(default)]
    pub family: Family,
    /// PatchCore: the share of the training patches kept in the memory bank (greedy coreset).
    #[serde(default = "coreset")]
    pub coreset_fraction: f64,
}

fn coreset() -> f64 {
    0.1
}

fn four() -> i64 {
    4
}

fn per_area() -> TestCount {
    TestCount::PerArea
}

fn yes() -> bool {
    true
}

/// Model files from before the choice existed were trained with Lite0.
fn default_builtin() -> String {
    "efficientnet-lite0".into()
}

impl Default for TrainConfig {
    /// The project's default knobs (`TrainingSettings`) and defaults for the rest that train a
    /// useful model on 2 CPU cores in minutes.
    fn default() -> Self {
        Self::from_settings(&TrainingSettings::default())
    }
}

impl TrainConfig {
    /// The configuration of a training with these knobs, the rest at its defaults.
    pub fn from_settings(s: &TrainingSettings) -> Self {
        Self {
            input_size: s.input_size,
            batch_size: s.batch_size,
            epochs: s.epochs,
            learning_rate: s.learning_rate,
            weight_decay: 1e-5,
            validation_fraction: 0.2,
            seed: 0,
            backbone: s.backbone_file.clone(),
            builtin: s.normalised().builtin,
            first_stride: s.normalised().first_stride,
            deterministic: true,
            test_count: TestCount::PerArea,
            photometric: s.photometric,
            family: s.family,
            coreset_fraction: coreset(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Mean z^2 per scale on the validation normals, as the flow gives them: close to 1 when the
    /// flow is calibrated on its own.
    pub mean_z2_per_scale: Vec<f64>,
    /// Factor per scale applied to the latents at inference, min(1, 1/sqrt(mean z^2 on the
    /// validation normals)): a flow that overfits its few training images spreads unseen normals
    /// wider than N(0, 1) (more at coarse scales, with fewer samples per image), which the a
    /// contrario test would read as anomalies. Only shrinking: latents narrower than N(0, 1)
    /// cannot raise false alarms (the Chernoff bound is clamped at t < 1), and inflating them on a
    /// noisy estimate would. Empty (no correction) for models saved before it existed or trained
    /// without a validation split.
    #[serde(default)]
    pub latent_scale: Vec<f64>,
    /// Per scale, how a tested cell's statistic is distributed on the validation normals (after
    /// the correction): flows leave their channels correlated and their tails heavy, and the
    /// per-area count weighs each cell's evidence against what normal cells do
    /// (`stats::acontrario::null`). Empty (independent N(0, 1) cells) for models saved before
    /// it existed.
    #[serde(default)]
    pub cell_null: Vec<CellNull>,
    /// log10 of the factor the number of tests is multiplied by, so that the held-out normals,
    /// each scored against a cell null fitted without it, keep their false alarms at level 0
    /// within the promise with 95 % confidence (`stats::acontrario::null::level_offset`). 0 for
    /// models saved before it existed.
    #[serde(default)]
    pub level_offset: f64,
    /// Detected regions per validation normal image at log10 NFA < 0, with the correction and
    /// the offset, each image scored against a null fitted without it (the bound is 1).
    pub false_alarms_per_normal_image: f64,
    pub validation_images: usize,
    pub validation_nll: f64,
}

impl Calibration {
    /// An upper bound, with this confidence, on the mean false alarms per normal image that the
    /// validation figure estimates: the regions counted on the held-out images are a Poisson
    /// count (Garwood's exact bound), so few held-out images give a wide bound.
    pub fn false_alarms_upper(&self, confidence: f64) -> f64 {
        let n = self.validation_images.max(1) as f64;
        let count = (self.false_alarms_per_normal_image * n).round().max(0.0) as u64;
        crate::stats::acontrario::tails::poisson_upper(count, confidence) / n
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelFile {
    pub format_version: u32,
    pub backbone: String,
    /// The TorchScript file of a `torchscript:` backbone (absent for the built-in one).
    #[serde(default)]
    pub backbone_path: Option<PathBuf>,
    pub input_size: i64,
    pub shape: FlowShape,
    pub permutations: Vec<Vec<i64>>,
    pub train: TrainConfig,
    /// Hash of the training images' paths and bytes: tells whether a model saw these images.
    pub training_fingerprint: String,
    pub training_images: usize,
    /// What the training images look like (brightness, contrast, colour), for the drift check;
    /// models saved before it was kept have none (the project's training images stand in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training_look: Option<crate::project::drift::TrainingLook>,
    /// With [`Photometric::Standardise`], the training images' mean grey and mean grey spread
    /// that every image is set to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub photometric_standard: Option<[f32; 2]>,
    /// PatchCore: how held-out normal patches' distances to the bank are distributed (what
    /// turns a distance into evidence).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distance_null: Option<crate::stats::acontrario::null::DistanceNull>,
    pub best_epoch: usize,
    pub calibration: Calibration,
    /// Loss and validation per epoch (models saved before it was kept have none).
    #[serde(default)]
    pub history: Vec<crate::project::training::EpochRecord>,
    /// Seconds the training took, features included (0 when unknown).
    #[serde(default)]
    pub train_seconds: f64,
}

/// Shapes of a U-Flow: per scale (finest first) the feature channels and size.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FlowShape {
    pub channels: Vec<i64>,
    pub sizes: Vec<(i64, i64)>,
    pub steps_per_scale: usize,
}

impl FlowShape {
    /// Channels entering each stage and the channels each stage sends up (finest first; the
    /// finest sends none).
    pub fn stage_channels(&self) -> (Vec<i64>, Vec<i64>) {
        let n = self.channels.len();
        let mut input = vec![0; n];
        let mut up = vec![0; n];
        let mut carried = 0;
        for s in (0..n).rev() {
            input[s] = self.channels[s] + carried;
            up[s] = if s == 0 { 0 } else { (input[s] / 8) * 4 };
            carried = up[s] / 4;
        }
        (input, up)
    }

    /// Channels of each scale's latent z (finest first).
    pub fn latent_channels(&self) -> Vec<i64> {
        let (input, up) = self.stage_channels();
        input.iter().zip(&up).map(|(i, u)| i - u).collect()
    }
}

impl ModelFile {
    /// The segmentation this model's results are made with (its own count of tests).
    pub fn segment_options(&self) -> SegmentOptions {
        SegmentOptions::with_count(self.train.test_count)
    }

    /// Read `dir/model.ron`; a damaged file or another format version is an error naming the
    /// file.
    pub fn read(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(MODEL_META_FILE);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        let file: ModelFile = ron::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "{}:{}:{}: {}",
                path.display(),
                e.span.start.line,
                e.span.start.col,
                e.code
            )
        })?;
        if file.format_version != MODEL_FORMAT {
            bail!(
                "{} has model format {} but this build reads {MODEL_FORMAT}",
                path.display(),
                file.format_version
            );
        }
        Ok(file)
    }
}
