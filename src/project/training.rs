//! What a project keeps about training, as plain data (no libtorch): the knobs of the trainings
//! started from the window, the built-in backbones by name, and the progress a training reports.
//! `uflow::model::TrainConfig` turns the settings into a full training configuration.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A built-in backbone the user can choose by name: its feature strides, for menus and help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuiltinBackbone {
    pub name: &'static str,
    /// Strides (input pixels per feature pixel) of the three tapped feature maps, finest first.
    pub strides: [i64; 3],
}

/// The built-in backbones, the default first. `uflow::backbone` knows how to build each.
pub const BUILTIN_BACKBONES: [BuiltinBackbone; 2] = [
    BuiltinBackbone {
        name: "efficientnet-lite0",
        strides: [4, 8, 16],
    },
    BuiltinBackbone {
        name: "efficientnet-lite0-s8",
        strides: [8, 16, 32],
    },
];

/// The default built-in backbone's name.
pub const DEFAULT_BACKBONE: &str = BUILTIN_BACKBONES[0].name;

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
    /// A TorchScript backbone file used instead of the built-in one.
    pub backbone_file: Option<PathBuf>,
    pub batch_size: usize,
    pub learning_rate: f64,
}

impl Default for TrainingSettings {
    /// Defaults that train a useful model on 2 CPU cores in minutes.
    fn default() -> Self {
        Self {
            epochs: 60,
            input_size: 256,
            builtin: DEFAULT_BACKBONE.into(),
            backbone_file: None,
            batch_size: 8,
            learning_rate: 1e-3,
        }
    }
}

impl TrainingSettings {
    pub const MAX_EPOCHS: usize = 1000;
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
        } else if builtin_backbone(&self.builtin).is_none() {
            return Some(format!("unknown backbone variant {:?}", self.builtin));
        }
        None
    }

    /// Name of the model a window training with these settings writes: one name per backbone
    /// variant and input size, so that trying another one does not overwrite a trained model
    /// (`uflow`, `uflow-s8`, `uflow-384`, `uflow-s8-384`; a TorchScript backbone by its file
    /// name: `uflow-cait`).
    pub fn model_name(&self) -> String {
        let mut name = String::from("uflow");
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
        } else if let Some(suffix) = self
            .builtin
            .strip_prefix(DEFAULT_BACKBONE)
            .filter(|s| !s.is_empty())
        {
            name.push_str(suffix);
        }
        if self.input_size != Self::default().input_size {
            name.push_str(&format!("-{}", self.input_size));
        }
        name
    }
}

/// A built-in backbone by name.
pub fn builtin_backbone(name: &str) -> Option<&'static BuiltinBackbone> {
    BUILTIN_BACKBONES.iter().find(|b| b.name == name)
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
        assert_eq!(d.model_name(), "uflow");
        let s8 = TrainingSettings {
            input_size: 384,
            builtin: "efficientnet-lite0-s8".into(),
            ..d.clone()
        };
        assert_eq!(s8.model_name(), "uflow-s8-384");
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
