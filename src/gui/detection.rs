//! The detection bar: which detector runs (training-free or a U-Flow model), training from the
//! window and its settings, the NFA level in words, and what the heatmap shows.

use super::ContrarioApp;
use super::heatmap::{HEAT_MAX, SCORE_FLOOR, drawn_kind, heat_legend};
use crate::app::detection::false_alarm_text;
use crate::app::{AppCommand, HeatmapKind};
use crate::project::training::{BUILTIN_BACKBONES, TrainingSettings};

impl ContrarioApp {
    pub(super) fn detection_bar(&mut self, ui: &mut egui::Ui) {
        if self.state.project.is_none() {
            return;
        }
        let sel = self.state.selected;
        let mut cmds = Vec::new();
        // Two rows: what detects (detector, training), then how its result is shown.
        ui.horizontal_wrapped(|ui| self.detector_row(ui, sel, &mut cmds));
        ui.horizontal_wrapped(|ui| self.display_row(ui, sel, &mut cmds));
        for c in cmds {
            self.apply(c);
        }
    }

    /// What detects: run it, the detector, training and its settings, the result in numbers.
    fn detector_row(&self, ui: &mut egui::Ui, sel: Option<usize>, cmds: &mut Vec<AppCommand>) {
        let busy = sel.is_some_and(|s| self.state.detecting.contains(&s));
        if busy {
            ui.add(egui::Spinner::new());
            ui.label("detecting…");
        } else if ui
            .add_enabled(sel.is_some(), egui::Button::new("Detect anomalies"))
            .on_hover_text("Training-free a contrario detector (thesis chapter 3) on this image")
            .clicked()
        {
            cmds.push(AppCommand::DetectSelected);
        }
        let name = |d: &Option<String>| {
            d.as_ref()
                .map_or("training-free".to_string(), |m| format!("U-Flow {m}"))
        };
        let mut det = self.state.detector.clone();
        egui::ComboBox::from_label("detector")
            .selected_text(name(&det))
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut det, None, name(&None));
                for m in &self.state.models {
                    ui.selectable_value(&mut det, Some(m.clone()), name(&Some(m.clone())));
                }
            });
        if det != self.state.detector {
            cmds.push(AppCommand::SetDetector(det));
        }
        match &self.state.training_job {
            Some(t) => {
                ui.add(egui::Spinner::new());
                ui.label(format!("training {}: {}", t.category, t.text));
                if ui.button("Cancel training").clicked() {
                    cmds.push(AppCommand::CancelTraining);
                }
            }
            None => {
                if ui
                    .add_enabled(sel.is_some(), egui::Button::new("Train U-Flow"))
                    .on_hover_text("Train a U-Flow model on this category's normal training images (background)")
                    .clicked()
                {
                    cmds.push(AppCommand::TrainSelectedCategory);
                }
                training_settings_menu(ui, &self.state.training_settings(), cmds);
            }
        }
        let mut auto = self.state.auto_detect;
        if ui.checkbox(&mut auto, "on every image").changed() {
            cmds.push(AppCommand::SetAutoDetect(auto));
        }
        if let Some(d) = sel.and_then(|s| self.state.detections.get(&s)) {
            ui.separator();
            ui.label(d.summary());
        }
    }

    /// How the result is shown: the NFA level in words, the heatmap, its opacity and scale.
    fn display_row(&mut self, ui: &mut egui::Ui, sel: Option<usize>, cmds: &mut Vec<AppCommand>) {
        let mut t = self.state.nfa_threshold;
        let slider = egui::Slider::new(&mut t, -20.0..=2.0)
            .step_by(0.5)
            .text("log10 NFA level");
        if ui
            .add(slider)
            .on_hover_text("Regions whose NFA is below 10^level are shown")
            .changed()
        {
            cmds.push(AppCommand::SetNfaThreshold(t));
        }
        ui.label(false_alarm_text(self.state.nfa_threshold));
        ui.separator();
        // What is painted: the chosen map when this result has it, else -log10 NFA.
        let drawn = sel
            .and_then(|s| self.state.detections.get(&s))
            .map_or(self.state.heatmap_kind, |d| {
                drawn_kind(d, self.state.heatmap_kind)
            });
        heatmap_choice(ui, self.state.show_heatmap, drawn, cmds);
        ui.scope(|ui| {
            ui.spacing_mut().slider_width = 60.0;
            ui.add(egui::Slider::new(
                &mut self.state.heatmap_opacity,
                0.0..=1.0,
            ))
            .on_hover_text("heatmap opacity");
        });
        // The scale as one piece, so that a narrow window wraps it whole.
        ui.horizontal(|ui| match drawn {
            HeatmapKind::Nfa => heat_legend(
                ui,
                "0",
                &format!("{HEAT_MAX:.0}"),
                "-log10 NFA, one scale for every image, never rescaled",
            ),
            HeatmapKind::AnomalyScore => heat_legend(
                ui,
                &format!("{SCORE_FLOOR:.2}"),
                "1",
                "1 - likelihood under the model, one scale for every image, never \
                 rescaled; 0.39 is as likely as the training normals on average",
            ),
        });
    }
}

/// No heatmap, -log10 NFA or the anomaly score (`drawn` is what the result on display paints).
fn heatmap_choice(ui: &mut egui::Ui, show: bool, drawn: HeatmapKind, cmds: &mut Vec<AppCommand>) {
    let text = |on: bool, k: HeatmapKind| match (on, k) {
        (false, _) => "no heatmap",
        (true, HeatmapKind::Nfa) => "heatmap: -log10 NFA",
        (true, HeatmapKind::AnomalyScore) => "heatmap: anomaly score",
    };
    let mut choice = (show, drawn);
    egui::ComboBox::from_id_salt("heatmap")
        .selected_text(text(show, drawn))
        .show_ui(ui, |ui| {
            for c in [
                (false, drawn),
                (true, HeatmapKind::Nfa),
                (true, HeatmapKind::AnomalyScore),
            ] {
                ui.selectable_value(&mut choice, c, text(c.0, c.1));
            }
        })
        .response
        .on_hover_text(
            "-log10 NFA: where the a contrario test finds regions. Anomaly score: the \
             U-Flow model's map everywhere, also where the evidence is too weak for a \
             region (the training-free detector has only the first)",
        );
    if choice != (show, drawn) {
        if choice.0 != show {
            cmds.push(AppCommand::ShowHeatmap(choice.0));
        }
        if choice.0 {
            cmds.push(AppCommand::SetHeatmapKind(choice.1));
        }
    }
}

/// The training knobs, in a menu beside "Train U-Flow": they take effect at the next training.
fn training_settings_menu(
    ui: &mut egui::Ui,
    current: &TrainingSettings,
    cmds: &mut Vec<AppCommand>,
) {
    ui.menu_button("Training settings", |ui| {
        let mut t = current.clone();
        ui.horizontal(|ui| {
            ui.label("epochs");
            ui.add(egui::DragValue::new(&mut t.epochs).range(1..=TrainingSettings::MAX_EPOCHS));
        });
        egui::ComboBox::from_label("input size")
            .selected_text(format!("{} px", t.input_size))
            .show_ui(ui, |ui| {
                for side in [128, 192, 256, 320, 384, 512] {
                    ui.selectable_value(&mut t.input_size, side, format!("{side} px"));
                }
            });
        egui::ComboBox::from_label("backbone")
            .selected_text(t.builtin.clone())
            .show_ui(ui, |ui| {
                for b in BUILTIN_BACKBONES {
                    let [s0, s1, s2] = b.strides;
                    ui.selectable_value(&mut t.builtin, b.name.to_string(), b.name)
                        .on_hover_text(format!("features at strides {s0}, {s1}, {s2}"));
                }
            });
        ui.label(format!("writes model \"{}\"", t.model_name()));
        if &t != current {
            cmds.push(AppCommand::SetTraining(t));
        }
    });
}
