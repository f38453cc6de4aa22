//! The annotation bar: whose layer is edited (or a new annotator), the tools with their keys,
//! the brush size, the class, the copy tool's source, undo and redo saying what they undo, and
//! whether changes are saved.

use egui::{Color32, Vec2};

use super::ContrarioApp;
use super::widgets::swatch;
use crate::app::AppCommand;
use crate::app::actions::Action;
use crate::app::annotation::{BRUSH_MAX, BRUSH_MIN, LabelCommand, Tool};
use crate::project::autosave::SaveStatus;

/// The action that picks a tool.
pub(super) fn tool_action(t: Tool) -> Action {
    match t {
        Tool::Navigate => Action::ToolNavigate,
        Tool::Brush => Action::ToolBrush,
        Tool::Eraser => Action::ToolEraser,
        Tool::Polygon => Action::ToolPolygon,
        Tool::Fill => Action::ToolFill,
        Tool::AcceptRegion => Action::ToolAccept,
        Tool::CopyRegion => Action::ToolCopy,
    }
}

impl ContrarioApp {
    /// The tools, one above the other beside the image, each with its key.
    pub(super) fn tool_strip(&mut self, ui: &mut egui::Ui) {
        let mut acts = Vec::new();
        ui.vertical(|ui| {
            ui.set_width(96.0);
            for t in Tool::ALL {
                let act = tool_action(t);
                let key = act
                    .shortcuts()
                    .first()
                    .map(|s| s.text())
                    .unwrap_or_default();
                let short = match t {
                    Tool::Navigate => "Navigate",
                    Tool::Brush => "Brush",
                    Tool::Eraser => "Eraser",
                    Tool::Polygon => "Polygon",
                    Tool::Fill => "Fill",
                    Tool::AcceptRegion => "Accept",
                    Tool::CopyRegion => "Copy",
                };
                let on = self.state.annotation.tool == t;
                let b = egui::Button::selectable(on, format!("{short}  {key}"))
                    .min_size(Vec2::new(92.0, 22.0));
                if ui
                    .add(b)
                    .on_hover_text(format!("{}: {}", act.label(), act.hover_text()))
                    .clicked()
                {
                    acts.push(act);
                }
            }
            ui.separator();
            for (act, what) in [
                (Action::Undo, self.state.undo_name()),
                (Action::Redo, self.state.redo_name()),
            ] {
                let b = egui::Button::new(act.label()).min_size(Vec2::new(92.0, 22.0));
                let hover = match what {
                    Some(op) => format!("{} {op} [{}]", act.label(), act.shortcuts()[0].text()),
                    None => format!("Nothing to {} on this layer", act.label().to_lowercase()),
                };
                if ui
                    .add_enabled(what.is_some(), b)
                    .on_hover_text(hover)
                    .clicked()
                {
                    acts.push(act);
                }
            }
            ui.separator();
            save_indicator(
                ui,
                &self.state.labels.saver().status(),
                self.state.why_read_only(),
            );
            if !self.state.annotation.polygon.is_empty() {
                ui.separator();
                ui.label(format!(
                    "{} vertices\n{} closes\n{} cancels",
                    self.state.annotation.polygon.len(),
                    Action::ClosePolygon.shortcuts()[0].text(),
                    Action::CancelPolygon.shortcuts()[0].text()
                ));
            }
        });
        for act in acts {
            self.act(ui.ctx(), act);
        }
    }

    /// Whose layer, the brush, the class, the copy tool's source; undo and redo; saved or not.
    pub(super) fn tool_bar(&mut self, ui: &mut egui::Ui) {
        let Some(project) = &self.state.project else {
            return;
        };
        let mut cmds: Vec<AppCommand> = Vec::new();
        let a = &self.state.annotation;
        ui.horizontal_wrapped(|ui| {
            // Whose layer.
            let shown = |id: &Option<String>| match id {
                None => "nobody (choose)".to_string(),
                Some(id) => project.annotator(id).map_or(id.clone(), |a| {
                    if a.read_only {
                        format!("{} (read-only)", a.name)
                    } else {
                        a.name.clone()
                    }
                }),
            };
            let mut who = a.annotator.clone();
            egui::ComboBox::from_id_salt("active-annotator")
                .selected_text(format!("editing: {}", shown(&who)))
                .show_ui(ui, |ui| {
                    for an in &project.file.annotators {
                        ui.selectable_value(
                            &mut who,
                            Some(an.id.clone()),
                            shown(&Some(an.id.clone())),
                        );
                    }
                })
                .response
                .on_hover_text("Whose labels the tools change");
            if who != a.annotator {
                cmds.push(AppCommand::Label(LabelCommand::SetAnnotator(who)));
            }
            ui.menu_button("+", |ui| {
                ui.label("New annotator");
                let r = ui.add(
                    egui::TextEdit::singleline(&mut self.new_annotator)
                        .hint_text("name")
                        .desired_width(120.0),
                );
                let enter = r.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
                if (ui.button("Add").clicked() || enter) && !self.new_annotator.trim().is_empty() {
                    cmds.push(AppCommand::Label(LabelCommand::AddAnnotator(
                        std::mem::take(&mut self.new_annotator),
                    )));
                    ui.close();
                }
            })
            .response
            .on_hover_text("Add an annotator (yourself): a new, editable layer");
            ui.separator();
            let mut r = a.brush_radius;
            ui.label("brush");
            let brush = egui::Slider::new(&mut r, BRUSH_MIN..=BRUSH_MAX)
                .logarithmic(true)
                .max_decimals(1);
            if ui
                .add_sized([150.0, 18.0], brush)
                .on_hover_text(format!(
                    "Brush and eraser radius in image pixels (1 paints one pixel) [{}, {}]",
                    Action::BrushSmaller.shortcuts()[0].text(),
                    Action::BrushBigger.shortcuts()[0].text()
                ))
                .changed()
            {
                cmds.push(AppCommand::Label(LabelCommand::SetBrushRadius(r)));
            }
            // The class painted.
            for c in &project.file.classes {
                let [r, g, b] = c.color;
                let on = a.class == c.index;
                swatch(ui, Color32::from_rgb(r, g, b));
                if ui
                    .selectable_label(on, &c.name)
                    .on_hover_text("The class painted, filled and accepted")
                    .clicked()
                {
                    cmds.push(AppCommand::Label(LabelCommand::SetClass(c.index)));
                }
            }
            if a.tool == Tool::CopyRegion {
                let mut from = a.copy_from.clone();
                egui::ComboBox::from_id_salt("copy-from")
                    .selected_text(format!(
                        "copy from: {}",
                        from.as_ref()
                            .or(self.state.label_layer.as_ref())
                            .map_or("the layer shown".into(), |f| shown(&Some(f.clone())))
                    ))
                    .show_ui(ui, |ui| {
                        ui.selectable_value(&mut from, None, "the layer shown");
                        for an in &project.file.annotators {
                            ui.selectable_value(&mut from, Some(an.id.clone()), &an.name);
                        }
                    });
                if from != a.copy_from {
                    cmds.push(AppCommand::Label(LabelCommand::SetCopySource(from)));
                }
            }
        });
        for c in cmds {
            self.apply(c);
        }
    }
}

/// Saved / saving / failing, with the reason when labels are not written at all.
fn save_indicator(ui: &mut egui::Ui, status: &SaveStatus, read_only: Option<String>) {
    let (dot, text, hover) = match (read_only, status) {
        (Some(why), _) => (Color32::GRAY, "not saved here".to_string(), why),
        (None, SaveStatus::Saved) => (
            Color32::from_rgb(90, 200, 110),
            "saved".to_string(),
            "Every change is on disk".to_string(),
        ),
        (None, SaveStatus::Saving) => (
            Color32::from_rgb(230, 190, 60),
            "saving…".to_string(),
            "Changes are written within a second".to_string(),
        ),
        (None, SaveStatus::Failing { files, error }) => (
            Color32::from_rgb(230, 70, 60),
            format!("not saved ({files} file(s))"),
            format!("{error}; kept in memory and tried again every few seconds"),
        ),
    };
    let (rect, _) = ui.allocate_exact_size(Vec2::splat(10.0), egui::Sense::hover());
    ui.painter().circle_filled(rect.center(), 4.5, dot);
    ui.label(text).on_hover_text(hover);
}
