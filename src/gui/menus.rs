//! Menus, keyboard shortcuts, file dialogs and notices.

use egui::{Color32, Key, RichText};

use super::ContrarioApp;
use crate::app::background::spawn_thread_caught;
use crate::app::{AppCommand, NoticeLevel};

impl ContrarioApp {
    pub(super) fn open_dialog(&self, folder_of_images: bool) {
        let tx = self.dialogs_tx.clone();
        // The dialog runs on its own thread so the window keeps repainting behind it; a dialog
        // that fails (no desktop portal, a crash in the toolkit) says so in a notice.
        let title = if folder_of_images {
            "Open a folder of images"
        } else {
            "Open a project"
        };
        spawn_thread_caught(
            move || rfd::FileDialog::new().set_title(title).pick_folder(),
            move |picked| {
                let _ = match picked {
                    Ok(Some(dir)) => tx.send(Ok(if folder_of_images {
                        AppCommand::OpenImageFolder(dir)
                    } else {
                        AppCommand::OpenProject(dir)
                    })),
                    Ok(None) => Ok(()),
                    Err(e) => tx.send(Err(format!("The file dialog failed: {e}"))),
                };
            },
        );
    }

    pub(super) fn shortcuts(&mut self, ctx: &egui::Context) {
        if ctx.egui_wants_keyboard_input() {
            return;
        }
        let mut cmds = Vec::new();
        ctx.input(|i| {
            if i.key_pressed(Key::ArrowRight)
                || i.key_pressed(Key::ArrowDown)
                || i.key_pressed(Key::J)
            {
                cmds.push(AppCommand::SelectNext);
            }
            if i.key_pressed(Key::ArrowLeft) || i.key_pressed(Key::ArrowUp) || i.key_pressed(Key::K)
            {
                cmds.push(AppCommand::SelectPrevious);
            }
        });
        for c in cmds {
            self.apply(c);
        }
        if ctx.input(|i| i.key_pressed(Key::F)) {
            self.view.fit();
        }
        if ctx.input(|i| i.key_pressed(Key::Num1)) {
            self.view.zoom = 1.0;
        }
        if ctx.input(|i| i.modifiers.command && i.key_pressed(Key::O)) {
            self.open_dialog(false);
        }
    }

    pub(super) fn menu_bar(&mut self, ui: &mut egui::Ui) {
        egui::MenuBar::new().ui(ui, |ui| {
            ui.menu_button("File", |ui| {
                if ui.button("Open project…").clicked() {
                    self.open_dialog(false);
                }
                if ui.button("Open folder of images…").clicked() {
                    self.open_dialog(true);
                }
                if ui.button("Open demo project").clicked() {
                    self.apply(AppCommand::OpenDemo);
                }
                ui.separator();
                if ui.button("Quit").clicked() {
                    ui.ctx().send_viewport_cmd(egui::ViewportCommand::Close);
                }
            });
            ui.menu_button("View", |ui| {
                if ui.button("Fit to window (F)").clicked() {
                    self.view.fit();
                }
                if ui.button("Actual pixels 1:1 (1)").clicked() {
                    self.view.zoom = 1.0;
                }
                if ui.button("Next image (Right)").clicked() {
                    self.apply(AppCommand::SelectNext);
                }
                if ui.button("Previous image (Left)").clicked() {
                    self.apply(AppCommand::SelectPrevious);
                }
            });
        });
    }

    pub(super) fn notices(&mut self, ui: &mut egui::Ui) {
        let mut dismiss = Vec::new();
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
                        ui.label(RichText::new(format!("{icon} {}", n.text)).color(Color32::WHITE));
                        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                            if ui.button("Dismiss").clicked() {
                                dismiss.push(n.id);
                            }
                        });
                    });
                });
        }
        for id in dismiss {
            self.apply(AppCommand::DismissNotice(id));
        }
    }
}
