//! The detection bar: which detector runs (training-free or a U-Flow model), training from the
//! window and its settings, the NFA level in words, and what the heatmap shows.

use egui::Vec2;

use super::ContrarioApp;
use super::heatmap::{HEAT_MAX, SCORE_FLOOR, drawn_kind, heat_legend};
use crate::app::actions::Action;
use crate::app::detection::false_alarm_text;
use crate::app::{AppCommand, HeatmapKind};

impl ContrarioApp {
    pub(super) fn detection_bar(&mut self, ui: &mut egui::Ui) {
        if self.state.project.is_none() {
            return;
        }
        let sel = self.state.selected;
        let mut cmds = Vec::new();
        // Two rows: what detects (detector, training), then how its result is shown.
        let open_training = ui
            .horizontal_wrapped(|ui| self.detector_row(ui, sel, &mut cmds))
            .inner;
        if open_training {
            self.show_training = true;
        }
        ui.horizontal_wrapped(|ui| self.display_row(ui, sel, &mut cmds));
        for c in cmds {
            self.apply(c);
        }
    }

    /// What detects: run it, the detector, training and its progress. True when the training
    /// panel is asked for.
    fn detector_row(
        &mut self,
        ui: &mut egui::Ui,
        sel: Option<usize>,
        cmds: &mut Vec<AppCommand>,
    ) -> bool {
        let mut open_training = false;
        // Fixed widths: a detection starting or a training's progress never moves the controls.
        let busy = sel.is_some_and(|s| self.state.detecting.contains(&s));
        let detect = egui::Button::new(if busy {
            "detecting…"
        } else {
            Action::Detect.label()
        });
        if ui
            .add_enabled(
                sel.is_some() && !busy,
                detect.min_size(Vec2::new(130.0, 0.0)),
            )
            .on_hover_text(Action::Detect.hover_text())
            .clicked()
        {
            cmds.push(AppCommand::DetectSelected);
        }
        let mut names: Vec<(Option<String>, String)> = vec![(None, "training-free".into())];
        for m in self.state.models.clone() {
            let label = self.state.model_label(&m);
            names.push((Some(m), label));
        }
        let mut det = self.state.detector.clone();
        let selected = names
            .iter()
            .find(|(d, _)| *d == det)
            .map_or_else(|| "training-free".to_string(), |(_, l)| l.clone());
        egui::ComboBox::from_id_salt("detector")
            .selected_text(selected)
            .width(140.0)
            .show_ui(ui, |ui| {
                for (d, label) in &names {
                    ui.selectable_value(&mut det, d.clone(), label);
                }
            })
            .response
            .on_hover_text(
                "The detector: training-free, or a model of this project (U-Flow or PatchCore)",
            );
        if det != self.state.detector {
            cmds.push(AppCommand::SetDetector(det));
        }
        match &self.state.training_job {
            Some(t) => {
                if ui
                    .button(Action::CancelTraining.label())
                    .on_hover_text(Action::CancelTraining.hover_text())
                    .clicked()
                {
                    cmds.push(AppCommand::CancelTraining);
                }
                // A bar of fixed width: the progress never moves the controls after it.
                let text = format!("{}: {}", t.category, t.text);
                if ui
                    .add(
                        egui::ProgressBar::new(t.fraction)
                            .text(text.clone())
                            .desired_width(240.0),
                    )
                    .on_hover_text(format!("training {text} (click for the training panel)"))
                    .interact(egui::Sense::click())
                    .clicked()
                {
                    open_training = true;
                }
            }
            None => {
                if ui
                    .add_enabled(sel.is_some(), egui::Button::new(Action::TrainUFlow.label()))
                    .on_hover_text(Action::TrainUFlow.hover_text())
                    .clicked()
                {
                    cmds.push(AppCommand::TrainSelectedCategory);
                }
                if ui
                    .button("Training…")
                    .on_hover_text(Action::ShowTraining.hover_text())
                    .clicked()
                {
                    open_training = true;
                }
            }
        }
        let mut auto = self.state.auto_detect;
        if ui
            .checkbox(&mut auto, "on every image")
            .on_hover_text("Detect on each image as it is selected")
            .changed()
        {
            cmds.push(AppCommand::SetAutoDetect(auto));
        }
        open_training
    }

    /// The heatmap's scale over the view's bottom left corner (beside the image it describes,
    /// and no width taken from the bars). Drawn in the view's own layer, not a floating area:
    /// a window opened over the image (the shortcuts, the evaluation) then covers it.
    pub(super) fn heat_legend_overlay(&self, ui: &mut egui::Ui, view: egui::Rect) {
        if !self.state.show_heatmap {
            return;
        }
        let sel = self.state.selected;
        let drawn = sel
            .and_then(|s| self.state.detections.get(&s))
            .map_or(self.state.heatmap_kind, |d| {
                drawn_kind(d, self.state.heatmap_kind)
            });
        let at = egui::Rect::from_min_max(
            view.left_bottom() + Vec2::new(8.0, -30.0),
            view.right_bottom(),
        );
        let mut legend = ui.new_child(
            egui::UiBuilder::new()
                .max_rect(at)
                .layout(egui::Layout::left_to_right(egui::Align::Min)),
        );
        egui::Frame::new()
            .fill(egui::Color32::from_black_alpha(170))
            .inner_margin(4.0)
            .corner_radius(3.0)
            .show(&mut legend, |ui| {
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
            });
    }

    /// How the result is shown: the NFA level in words, the heatmap, its opacity and scale.
    fn display_row(&mut self, ui: &mut egui::Ui, sel: Option<usize>, cmds: &mut Vec<AppCommand>) {
        let mut t = self.state.nfa_threshold;
        ui.label("NFA level")
            .on_hover_text("log10 of the NFA below which regions are shown");
        let slider = egui::Slider::new(&mut t, -20.0..=2.0).step_by(0.5);
        if ui
            .add(slider)
            .on_hover_text(format!(
                "Regions whose NFA is below 10^level are shown [{}, {}]",
                Action::StricterLevel.shortcuts()[0].text(),
                Action::LooserLevel.shortcuts()[0].text()
            ))
            .changed()
        {
            cmds.push(AppCommand::SetNfaThreshold(t));
        }
        // Fixed width: the words change with the level, the controls after them stay.
        ui.add_sized(
            [215.0, 18.0],
            egui::Label::new(false_alarm_text(self.state.nfa_threshold)).truncate(),
        );
        // What is painted: the chosen map when this result has it, else -log10 NFA.
        let drawn = sel
            .and_then(|s| self.state.detections.get(&s))
            .map_or(self.state.heatmap_kind, |d| {
                drawn_kind(d, self.state.heatmap_kind)
            });
        heatmap_choice(ui, self.state.show_heatmap, drawn, cmds);
        ui.add_sized(
            [60.0, 18.0],
            egui::Slider::new(&mut self.state.heatmap_opacity, 0.0..=1.0).show_value(false),
        )
        .on_hover_text("heatmap opacity");
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
