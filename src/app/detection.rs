//! What a detector found on an image, as the window shows it: the log10 NFA map (and, for U-Flow,
//! the anomaly map), the regions at the current NFA level, and a training in progress.

use ndarray::Array2;

use crate::project::results::InferenceSummary;
use crate::project::training::{EpochRecord, Family, Progress};
use crate::stats::acontrario::{Region, regions_at};

/// Douglas-Peucker tolerance of the outlines drawn, in map pixels.
const OUTLINE_SIMPLIFY: f32 = 0.35;

/// A detector's result on one image.
#[derive(Debug, Clone)]
pub struct Detection {
    /// log10 NFA at the detector's resolution.
    pub log_nfa: Array2<f32>,
    /// The U-Flow anomaly map (1 - likelihood); None for the training-free detector, whose score
    /// is -log10 NFA itself.
    pub score: Option<Array2<f32>>,
    /// Regions below the NFA level they were last traced at.
    pub regions: Vec<Region>,
    pub traced_at: f32,
    /// How long the detection took.
    pub seconds: f64,
    /// Read back from the inference cache rather than computed.
    pub cached: bool,
    /// Unique per result, so that the window knows when to rebuild its textures.
    pub serial: u64,
    /// Per map cell, the scale (0 = finest) whose test gave its value (U-Flow).
    pub scales: Option<Array2<u8>>,
    /// U-Flow's image score.
    pub image_score: Option<f32>,
    /// The image's look as U-Flow saw it (for the drift check).
    pub look: Option<crate::project::drift::Look>,
}

impl Detection {
    pub fn new(
        log_nfa: Array2<f32>,
        score: Option<Array2<f32>>,
        seconds: f64,
        cached: bool,
        serial: u64,
    ) -> Self {
        Self {
            log_nfa,
            score,
            regions: Vec::new(),
            traced_at: f32::NAN,
            seconds,
            cached,
            serial,
            scales: None,
            image_score: None,
            look: None,
        }
    }

    /// A U-Flow result (computed, or read back from the cache).
    pub fn of_model(r: InferenceSummary, seconds: f64, cached: bool, serial: u64) -> Self {
        let mut d = Self::new(r.log_nfa, Some(r.anomaly_map), seconds, cached, serial);
        d.scales = Some(r.best_scale);
        d.image_score = Some(r.image_score);
        d.look = r.look;
        d
    }

    /// The result in a line: regions at the level, the most significant value, and how it
    /// was obtained.
    pub fn summary(&self) -> String {
        let how = if self.cached {
            "from the cache".to_string()
        } else {
            format!("{:.1} s", self.seconds)
        };
        format!(
            "{} region(s) · min log10 NFA {:.1} · {how}",
            self.regions.len(),
            self.min_log_nfa()
        )
    }

    /// Re-threshold and re-trace the outlines (milliseconds) when the level moved; the map is
    /// kept, the detector is never re-run.
    pub fn trace_at(&mut self, level: f32) {
        if self.traced_at != level {
            self.regions = regions_at(&self.log_nfa, None, level, OUTLINE_SIMPLIFY);
            self.traced_at = level;
        }
    }

    /// The most significant value of the map.
    pub fn min_log_nfa(&self) -> f32 {
        self.log_nfa.iter().copied().fold(f32::INFINITY, f32::min)
    }
}

/// A U-Flow training running on the worker.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingJob {
    pub category: String,
    /// The model it writes (named after its settings).
    pub model: String,
    /// The latest progress, in words.
    pub text: String,
    /// How far it is, 0 to 1 (feature extraction counts for the first tenth).
    pub fraction: f32,
    pub epochs: usize,
    /// The epochs done so far (with a resumed training's earlier ones).
    pub history: Vec<EpochRecord>,
    pub eta_seconds: Option<f64>,
    /// A memory bank (PatchCore): no epochs, no loss curve, no checkpoint.
    pub memory_bank: bool,
}

impl TrainingJob {
    pub fn new(category: String, model: String, family: Family, epochs: usize) -> Self {
        Self {
            category,
            model,
            memory_bank: family == Family::Patchcore,
            text: "starting".into(),
            fraction: 0.0,
            epochs: epochs.max(1),
            history: Vec::new(),
            eta_seconds: None,
        }
    }

    /// The notice of this training cancelled by the user: where it can go on from.
    pub fn cancelled_text(&self) -> String {
        let done = self.history.len();
        let then = if self.memory_bank {
            "(a memory bank keeps no checkpoint: training it again starts over)".to_string()
        } else if done == 0 {
            "before its first epoch".to_string()
        } else {
            // The checkpoint may be an epoch or two older than the last epoch seen (it is
            // written every half minute): the panel's button says which.
            format!("after epoch {done}; Resume training continues from its last checkpoint")
        };
        format!(
            "Training of {} on {} cancelled {then}",
            self.model, self.category
        )
    }

    /// Fold a progress report in: the fraction done, the curve, the line in words.
    pub fn update(&mut self, p: &Progress) {
        const FEATURES: f32 = 0.1;
        let epochs = self.epochs as f32;
        let left = |eta: Option<f64>| eta.map_or(String::new(), |s| format!(" · {s:.0} s left"));
        match *p {
            Progress::Resumed { epochs_done } => {
                self.text = format!("resuming after epoch {epochs_done}");
            }
            Progress::Features { done, total } => {
                self.fraction = FEATURES * done as f32 / total.max(1) as f32;
                self.text = format!("features {done}/{total}");
            }
            Progress::Coreset { done, total } => {
                // A memory bank has no epochs: its coreset is the rest of the work.
                self.fraction = FEATURES + (1.0 - FEATURES) * done as f32 / total.max(1) as f32;
                self.text = format!("memory bank {done}/{total} patches");
            }
            Progress::Step {
                epoch, step, steps, ..
            } => {
                let at = epoch as f32 + (step + 1) as f32 / steps.max(1) as f32;
                self.fraction = FEATURES + (1.0 - FEATURES) * at / epochs;
                self.text = format!(
                    "epoch {}/{} · step {}/{steps}{}",
                    epoch + 1,
                    self.epochs,
                    step + 1,
                    left(self.eta_seconds)
                );
            }
            Progress::Epoch {
                epochs,
                record,
                eta_seconds,
            } => {
                self.epochs = epochs.max(1);
                // A resumed training reports the epochs after the checkpoint only.
                self.history.retain(|r| r.epoch < record.epoch);
                self.history.push(record);
                self.eta_seconds = Some(eta_seconds);
                self.fraction =
                    FEATURES + (1.0 - FEATURES) * (record.epoch + 1) as f32 / self.epochs as f32;
                self.text = format!(
                    "epoch {}/{epochs} · validation NLL {:.3} per dim{}",
                    record.epoch + 1,
                    record.validation_nll,
                    left(Some(eta_seconds))
                );
            }
        }
    }
}

/// What the detector says at image pixel (x, y) of an image of `size` (w, h), for the status bar:
/// the maps are at the detector's own resolution, so the pixel is mapped to its cell.
pub fn readout(
    log_nfa: &Array2<f32>,
    score: Option<&Array2<f32>>,
    (x, y): (u32, u32),
    (w, h): (u32, u32),
) -> String {
    let at = |m: &Array2<f32>| {
        let (mh, mw) = m.dim();
        let i = (y as usize * mh / h.max(1) as usize).min(mh.saturating_sub(1));
        let j = (x as usize * mw / w.max(1) as usize).min(mw.saturating_sub(1));
        m.get((i, j)).copied()
    };
    let mut parts = Vec::new();
    if let Some(v) = at(log_nfa) {
        parts.push(format!("log10 NFA {v:.1}"));
    }
    if let Some(v) = score.and_then(at) {
        parts.push(format!("score {v:.2}"));
    }
    parts.join(" · ")
}

/// "Expected false alarms per image" in words for a log10 NFA level.
pub fn false_alarm_text(level: f32) -> String {
    if level >= 0.0 {
        let n = 10f32.powf(level);
        if n < 9.95 {
            format!("at most {n:.1} false alarms per image")
        } else {
            format!("at most {n:.0} false alarms per image")
        }
    } else {
        format!("at most 1 false alarm per 10^{:.1} images", -level)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_training_job_follows_its_progress_and_keeps_one_point_per_epoch() {
        let mut j = TrainingJob::new("leather".into(), "uflow".into(), Family::Uflow, 4);
        j.update(&Progress::Features { done: 5, total: 10 });
        assert!((j.fraction - 0.05).abs() < 1e-6, "{}", j.fraction);
        let epoch = |epoch, v| Progress::Epoch {
            epochs: 4,
            record: EpochRecord {
                epoch,
                train_loss: v + 0.1,
                validation_nll: v,
                seconds: epoch as f64,
            },
            eta_seconds: 30.0,
        };
        j.update(&epoch(0, 2.0));
        j.update(&epoch(1, 1.5));
        assert!((j.fraction - (0.1 + 0.9 * 2.0 / 4.0)).abs() < 1e-6);
        assert_eq!(
            j.text,
            "epoch 2/4 · validation NLL 1.500 per dim · 30 s left"
        );
        j.update(&Progress::Step {
            epoch: 2,
            step: 0,
            steps: 2,
            loss: 1.0,
        });
        assert_eq!(j.text, "epoch 3/4 · step 1/2 · 30 s left");
        // A resumed training reports epoch 1 again: it replaces, never duplicates.
        j.update(&epoch(1, 1.4));
        assert_eq!(
            j.history.iter().map(|r| r.epoch).collect::<Vec<_>>(),
            vec![0, 1]
        );
        assert_eq!(j.history[1].validation_nll, 1.4);
        // A memory bank's coreset fills the rest after the features.
        let mut b = TrainingJob::new("leather".into(), "patchcore".into(), Family::Patchcore, 1);
        assert!(b.memory_bank && !j.memory_bank);
        // Cancelled: a flow resumes from its checkpoint, a bank starts over (no epochs to name).
        assert!(
            j.cancelled_text()
                .contains("cancelled after epoch 2; Resume training")
        );
        let bank = b.cancelled_text();
        assert!(
            bank.contains("keeps no checkpoint") && !bank.contains("epoch"),
            "{bank}"
        );
        b.update(&Progress::Coreset {
            done: 256,
            total: 1024,
        });
        assert!(
            (b.fraction - (0.1 + 0.9 / 4.0)).abs() < 1e-6,
            "{}",
            b.fraction
        );
        assert_eq!(b.text, "memory bank 256/1024 patches");
    }

    #[test]
    fn the_readout_maps_an_image_pixel_to_the_cell_of_each_map() {
        // A 2 x 4 NFA map and a 1 x 2 score map over a 400 x 200 image.
        let nfa = ndarray::arr2(&[[0.0f32, 1.0, 2.0, 3.0], [-4.0, -5.0, -6.0, -7.3]]);
        let score = ndarray::arr2(&[[0.25f32, 0.75]]);
        assert_eq!(
            readout(&nfa, Some(&score), (399, 199), (400, 200)),
            "log10 NFA -7.3 · score 0.75"
        );
        assert_eq!(readout(&nfa, None, (100, 0), (400, 200)), "log10 NFA 1.0");
        assert_eq!(
            readout(&nfa, Some(&score), (0, 150), (400, 200)),
            "log10 NFA -4.0 · score 0.25"
        );
        // A pixel past the edge (a stale hover) lands in the last cell, never out of bounds.
        assert_eq!(
            readout(&nfa, None, (900, 900), (400, 200)),
            "log10 NFA -7.3"
        );
    }

    #[test]
    fn retracing_follows_the_level_and_keeps_the_map() {
        let nfa = ndarray::arr2(&[[5.0f32, -3.0, 5.0], [5.0, -8.0, 5.0], [-1.0, 5.0, 5.0]]);
        let mut d = Detection::new(nfa, None, 0.25, false, 1);
        d.trace_at(0.0);
        assert_eq!(d.regions.len(), 2);
        d.trace_at(-5.0);
        assert_eq!(d.regions.len(), 1);
        assert_eq!(d.min_log_nfa(), -8.0);
        assert_eq!(d.summary(), "1 region(s) · min log10 NFA -8.0 · 0.2 s");
        d.cached = true;
        assert!(d.summary().ends_with("· from the cache"));
        assert_eq!(false_alarm_text(0.0), "at most 1.0 false alarms per image");
        assert_eq!(
            false_alarm_text(-3.0),
            "at most 1 false alarm per 10^3.0 images"
        );
    }
}
