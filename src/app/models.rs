//! Models over the whole project, as the app state holds them: a detector run over many images
//! (the project or the filtered list) and the evaluation of a model on a category. `runner`
//! does the work on the worker and rayon's pool.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use crate::project::evaluation::{Evaluation, ImageOutcome, Prepared, decisions};
use crate::project::review::Verdict;

/// A model run over many images, a few at a time on the worker so that the selected image's
/// detection never waits for the whole run.
#[derive(Debug, Clone)]
pub struct Run {
    pub model: String,
    /// The model in words ("U-Flow uflow-l2", see `AppState::model_label`).
    pub label: String,
    /// Image indices not sent yet.
    pub pending: VecDeque<usize>,
    pub total: usize,
    pub done: usize,
    /// Of `done`, read back from the cache.
    pub from_cache: usize,
    /// Images that failed or whose category has no version of the model.
    pub failed: usize,
    pub started: Instant,
    /// Evaluate this category when the run ends (the evaluation panel asked for the run).
    pub then_evaluate: Option<String>,
}

impl Run {
    pub fn new(
        model: String,
        label: String,
        images: Vec<usize>,
        then_evaluate: Option<String>,
    ) -> Self {
        Self {
            model,
            label,
            total: images.len(),
            pending: images.into(),
            done: 0,
            from_cache: 0,
            failed: 0,
            started: Instant::now(),
            then_evaluate,
        }
    }

    pub fn fraction(&self) -> f32 {
        (self.done + self.failed) as f32 / self.total.max(1) as f32
    }

    /// "U-Flow uflow-l2: 40/120 images · 35 s left".
    pub fn line(&self) -> String {
        let finished = self.done + self.failed;
        let computed = finished.saturating_sub(self.from_cache);
        let elapsed = self.started.elapsed().as_secs_f64();
        let left = if computed > 0 && finished < self.total {
            let per = elapsed / finished as f64;
            format!(" · {:.0} s left", per * (self.total - finished) as f64)
        } else {
            String::new()
        };
        format!("{}: {finished}/{} images{left}", self.label, self.total)
    }

    /// What a finished run says.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "Ran {} on {} image(s) in {:.0} s",
            self.label,
            self.done,
            self.started.elapsed().as_secs_f64()
        );
        if self.from_cache > 0 {
            s.push_str(&format!(" ({} already cached)", self.from_cache));
        }
        if self.failed > 0 {
            s.push_str(&format!("; {} could not be run", self.failed));
        }
        s
    }
}

/// The levels (log10 NFA) the mIoU curve is drawn at: the slider's range.
pub fn curve_levels() -> Vec<f32> {
    (0..=88).map(|k| -20.0 + 0.25 * k as f32).collect()
}

/// The evaluation panel's model and category, and what was computed for them.
#[derive(Debug, Clone)]
pub struct EvaluationView {
    pub model: String,
    pub category: String,
    /// The level-independent part of the evaluation, once computed: a new level redoes only
    /// the rest.
    pub prepared: Option<Arc<Prepared>>,
    /// The evaluation at `level`, or why there is none.
    pub outcome: Option<Result<Evaluation, String>>,
    /// The NFA level the outcome was computed at.
    pub level: f32,
    pub computing: bool,
}

impl EvaluationView {
    pub fn new(model: String, category: String) -> Self {
        Self {
            model,
            category,
            prepared: None,
            outcome: None,
            level: f32::NAN,
            computing: false,
        }
    }

    /// The evaluation, if computed.
    pub fn evaluation(&self) -> Option<&Evaluation> {
        self.outcome.as_ref().and_then(|o| o.as_ref().ok())
    }

    /// Image-level decision counts at `level`: [flagged defective, missed defective, flagged
    /// normal, passed normal], against the ground truth.
    pub fn decisions(&self, level: f32) -> Option<[usize; 4]> {
        self.evaluation().map(|e| decisions(&e.images, level))
    }

    /// The decision counts against the ground truth, or, when the category has none (no test
    /// image is defective by it), against the reviewers' verdicts (images without a normal or
    /// defective verdict left out). The flag says whether verdicts were used.
    pub fn decisions_or_verdicts(
        &self,
        level: f32,
        verdicts: &HashMap<String, Verdict>,
    ) -> Option<([usize; 4], bool)> {
        let e = self.evaluation()?;
        if e.images.iter().any(|i| i.defective) {
            return Some((decisions(&e.images, level), false));
        }
        let judged: Vec<ImageOutcome> = e
            .images
            .iter()
            .filter_map(|i| {
                let defective = match verdicts.get(&i.id)? {
                    Verdict::Defective => true,
                    Verdict::Normal => false,
                    Verdict::Unsure => return None,
                };
                Some(ImageOutcome {
                    defective,
                    ..i.clone()
                })
            })
            .collect();
        Some((decisions(&judged, level), true))
    }

    /// The table's rows: the category ("all"), then each defect kind, with the summary each
    /// reads its columns from ([`TABLE`]; a kind has no AUPRO, oracle or false alarms).
    pub fn rows(&self) -> Vec<(String, &serde_json::Value)> {
        let Some(e) = self.evaluation() else {
            return Vec::new();
        };
        let s = &e.summary;
        let mut rows = vec![("all".to_string(), s)];
        if let Some(kinds) = s["per_kind"].as_object() {
            rows.extend(kinds.iter().map(|(k, v)| (k.clone(), v)));
        }
        rows
    }

    /// The summary table as CSV: one row for the category and one per defect kind.
    pub fn csv(&self) -> Option<String> {
        self.evaluation()?;
        let mut out = String::from("model,category,kind");
        for (key, _, _) in TABLE {
            out.push(',');
            out.push_str(key);
        }
        out.push('\n');
        for (kind, v) in self.rows() {
            out.push_str(&format!("{},{},{kind}", self.model, self.category));
            for (key, _, _) in TABLE {
                let cell = match &v[key] {
                    n if n.is_u64() => n.to_string(),
                    n => n.as_f64().map_or(String::new(), |x| format!("{x:.4}")),
                };
                out.push(',');
                out.push_str(&cell);
            }
            out.push('\n');
        }
        Some(out)
    }
}

/// The evaluation table's columns: (key in the evaluation summary, heading, decimals shown). The
/// panel and the CSV both read them.
pub const TABLE: [(&str, &str, usize); 7] = [
    ("images", "images", 0),
    ("pixel_auroc", "pixel AUROC", 1),
    ("aupro", "AUPRO", 1),
    ("image_auroc", "image AUROC", 1),
    ("miou_nfa", "mIoU at level", 3),
    ("miou_oracle", "mIoU oracle", 3),
    (
        "false_alarms_per_normal_image",
        "false alarms / normal image",
        2,
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn view(images: Vec<ImageOutcome>) -> EvaluationView {
        let mut v = EvaluationView::new("uflow".into(), "c".into());
        v.outcome = Some(Ok(Evaluation {
            summary: serde_json::json!({"images": images.len(), "per_kind": {}}),
            roc: Vec::new(),
            miou_curve: Vec::new(),
            images,
        }));
        v
    }

    fn outcome(id: &str, min: f32, defective: bool) -> ImageOutcome {
        ImageOutcome {
            id: id.into(),
            min_log10_nfa: min,
            defective,
        }
    }

    #[test]
    fn the_decision_counts_against_the_truth_or_else_the_verdicts() {
        let with_gt = view(vec![
            outcome("a", -9.0, true),
            outcome("b", 0.5, true),
            outcome("c", -2.0, false),
            outcome("d", 3.0, false),
        ]);
        assert_eq!(with_gt.decisions(0.0), Some([1, 1, 1, 1]));
        assert_eq!(with_gt.decisions(-5.0), Some([1, 1, 0, 2]));
        let verdicts: HashMap<String, Verdict> = [
            ("a".to_string(), Verdict::Defective),
            ("b".to_string(), Verdict::Unsure),
            ("c".to_string(), Verdict::Normal),
        ]
        .into();
        assert_eq!(
            with_gt.decisions_or_verdicts(0.0, &verdicts),
            Some(([1, 1, 1, 1], false)),
            "ground truth first"
        );
        // No ground truth: the verdicts decide, unjudged and unsure images left out.
        let no_gt = view(vec![
            outcome("a", -9.0, false),
            outcome("b", 0.5, false),
            outcome("c", -2.0, false),
            outcome("d", 3.0, false),
        ]);
        assert_eq!(
            no_gt.decisions_or_verdicts(0.0, &verdicts),
            Some(([1, 0, 1, 0], true))
        );
        assert!(no_gt.csv().unwrap().starts_with("model,category,kind"));
    }
}
