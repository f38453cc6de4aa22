//! Menus, keyboard shortcuts, file dialogs and notices.

use egui::{Color32, RichText};
use std::path::PathBuf;

use super::ContrarioApp;
use crate::app::actions::Action;
use crate::app::jobs::spawn_thread_caught;
use crate::app::{AppCommand, NoticeLevel};

impl ContrarioApp {
    /// A folder picked in a dialog becomes `then(folder)`. The dialog runs on its own thread so
    /// the window keeps repainting behind it; a dialog that fails (no desktop portal, a crash in
    /// the toolkit) says so in a notice.
    pub(super) fn folder_dialog(&self, title: &'static str, then: fn(PathBuf) -> AppCommand) {
        let tx = self.dialogs_tx.clone();
        spawn_thread_caught(
            move || rfd::FileDialog::new().set_title(title).pick_folder(),
            move |picked| {
                let _ = match picked {
                    Ok(Some(dir)) => tx.send(Ok(then(dir))),
                    Ok(None) => Ok(()),
                    Err(e) => tx.send(Err(format!("The file dialog failed: {e}"))),
                };
            },
        );
    }

    pub(super) fn menu_bar(&mut self, ui: &mut egui::Ui) {
        let mut acts = Vec::new();
        let item = |ui: &mut egui::Ui, a: Action, acts: &mut Vec<Action>| {
            if ui
                .button(a.menu_text())
                .on_hover_text(a.hover_text())
                .clicked()
            {
                acts.push(a);
                ui.close();
            }
        };
        egui::MenuBar::new().ui(ui, |ui| {
            ui.menu_button("File", |ui| {
                for a in [Action::OpenProject, Action::OpenFolder, Action::OpenDemo] {
                    item(ui, a, &mut acts);
                }
                ui.separator();
                if self.state.live.is_some() {
                    item(ui, Action::StopWatch, &mut acts);
                } else {
                    item(ui, Action::WatchFolder, &mut acts);
                }
                if ui
                    .button("Work on a copy of the demo")
                    .on_hover_text(
                        "Copy the bundled demo project to your data folder and open it: there \
                         you can label, train and review (the bundled one stays as shipped)",
                    )
                    .clicked()
                {
                    self.open_demo_copy();
                    ui.close();
                }
                ui.separator();
                if ui
                    .button("New project from a dataset…")
                    .on_hover_text("Import a dataset (MVTec, BTAD, VisA, Magnetic-tile, a folder) into a new project")
                    .clicked()
                {
                    self.open_import_form(false);
                    ui.close();
                }
                if ui
                    .add_enabled(
                        self.state.writable(),
                        egui::Button::new("Import a dataset into this project…"),
                    )
                    .on_hover_text("Add a dataset's images (and annotators' masks) to this project")
                    .clicked()
                {
                    self.open_import_form(true);
                    ui.close();
                }
                if ui
                    .add_enabled(
                        self.state.project.as_ref().is_some_and(|p| p.saved),
                        egui::Button::new("Export…"),
                    )
                    .on_hover_text("Masks (MVTec layout), a CSV report or COCO JSON")
                    .clicked()
                {
                    self.open_export_form();
                    ui.close();
                }
                ui.separator();
                item(ui, Action::Quit, &mut acts);
            });
            ui.menu_button("Edit", |ui| {
                let undo = self.state.undo_name();
                let redo = self.state.redo_name();
                for (a, what) in [(Action::Undo, undo), (Action::Redo, redo)] {
                    let text = match what {
                        Some(op) => format!("{} {op} ({})", a.label(), a.shortcuts()[0].text()),
                        None => a.menu_text(),
                    };
                    if ui
                        .add_enabled(what.is_some(), egui::Button::new(text))
                        .on_hover_text(a.hover_text())
                        .clicked()
                    {
                        acts.push(a);
                        ui.close();
                    }
                }
                ui.separator();
                for t in crate::app::annotation::Tool::ALL {
                    item(ui, super::tools::tool_action(t), &mut acts);
                }
                item(ui, Action::BrushBigger, &mut acts);
                item(ui, Action::BrushSmaller, &mut acts);
            });
            ui.menu_button("View", |ui| {
                for a in [
                    Action::NextImage,
                    Action::PreviousImage,
                    Action::FitView,
                    Action::ActualPixels,
                    Action::NextLayer,
                    Action::ToggleDisagreement,
                    Action::ToggleCompare,
                    Action::ToggleHeatmap,
                    Action::StricterLevel,
                    Action::LooserLevel,
                    Action::ShowShortcuts,
                ] {
                    item(ui, a, &mut acts);
                }
            });
            ui.menu_button("Review", |ui| {
                for a in [
                    Action::VerdictNormal,
                    Action::VerdictDefective,
                    Action::VerdictUnsure,
                    Action::NextUnreviewed,
                ] {
                    item(ui, a, &mut acts);
                }
            });
            ui.menu_button("Models", |ui| {
                item(ui, Action::ShowTraining, &mut acts);
                ui.separator();
                let uflow = self.state.preferred_model().is_some();
                let running = self.state.run.is_some();
                for (a, on) in [
                    (Action::RunOnAll, uflow && !running),
                    (Action::RunOnFiltered, uflow && !running),
                    (Action::CancelRun, running),
                ] {
                    if ui
                        .add_enabled(on, egui::Button::new(a.menu_text()))
                        .on_hover_text(a.hover_text())
                        .clicked()
                    {
                        acts.push(a);
                        ui.close();
                    }
                }
                ui.separator();
                item(ui, Action::ShowEvaluation, &mut acts);
                item(ui, Action::DemoMode, &mut acts);
            });
        });
        for a in acts {
            self.act(ui.ctx(), a);
        }
    }

    /// Copy the bundled demo to the user's data folder (once; the copy keeps what is done in
    /// it) and open it.
    fn open_demo_copy(&mut self) {
        let base = std::env::var_os("CONTRARIO_DATA")
            .map(std::path::PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .map(|h| std::path::PathBuf::from(h).join(".local/share/contrario"))
            })
            .unwrap_or_else(std::env::temp_dir);
        let to = base.join("demo");
        if !to.join(crate::project::PROJECT_FILE).exists()
            && let Err(e) = crate::project::copy_folder(&crate::app::demo_project_dir(), &to)
        {
            self.state.notify(
                NoticeLevel::Error,
                format!("Could not copy the demo to {}: {e}", to.display()),
            );
            return;
        }
        self.apply(AppCommand::OpenProject(to));
    }

    /// Notices float over the view's top right corner: one appearing never moves the controls
    /// under the cursor.
    pub(super) fn notices(&mut self, ctx: &egui::Context) {
        if self.state.notices.is_empty() {
            return;
        }
        let mut dismiss = Vec::new();
        // Over the image's top right corner: never over the panels' controls.
        let corner = self.view_rect.map_or_else(
            || ctx.content_rect().right_top() + egui::vec2(-12.0, 96.0),
            |v| v.right_top() + egui::vec2(-8.0, 8.0),
        );
        let width = self
            .view_rect
            .map_or(520.0, |v| (v.width() - 16.0).clamp(200.0, 520.0));
        egui::Area::new(egui::Id::unique("contrario-notices"))
            .pivot(egui::Align2::RIGHT_TOP)
            .fixed_pos(corner)
            .order(egui::Order::Foreground)
            .show(ctx, |ui| {
                ui.set_max_width(width);
                for n in &self.state.notices {
                    let (fill, icon) = match n.level {
                        NoticeLevel::Info => (Color32::from_rgb(30, 60, 90), "Note:"),
                        NoticeLevel::Warning => (Color32::from_rgb(95, 75, 20), "Warning:"),
                        NoticeLevel::Error => (Color32::from_rgb(110, 30, 30), "Error:"),
                    };
                    egui::Frame::new()
                        .fill(fill)
                        .inner_margin(6.0)
                        .corner_radius(4.0)
                        .show(ui, |ui| {
                            ui.horizontal(|ui| {
                                if ui.button("Dismiss").clicked() {
                                    dismiss.push(n.id);
                                }
                                ui.add(
                                    egui::Label::new(
                                        RichText::new(format!("{icon} {}", n.text))
                                            .color(Color32::WHITE),
                                    )
                                    .wrap(),
                                );
                            });
                        });
                    ui.add_space(4.0);
                }
            });
        for id in dismiss {
            self.apply(AppCommand::DismissNotice(id));
        }
    }
}
