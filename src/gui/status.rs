//! The status bar: project, image and size, the detection's summary, zoom, the drift check's
//! words, who edits, jobs and the compute device (what lies under the pointer is shown over the
//! image: see the canvas).

use super::ContrarioApp;
use crate::app::AppCommand;
use crate::app::actions::Action;

impl ContrarioApp {
    pub(super) fn status_bar(&mut self, ui: &mut egui::Ui) {
        let mut cancel_run = false;
        let mut device = None;
        // The right side (device, who edits, jobs) first; the left side gets the room left and
        // is cut there, so a long readout never runs under it.
        ui.horizontal(|ui| {
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                let mut use_cpu = None;
                match &self.state.torch {
                    Some(t) => {
                        ui.label(t.summary());
                        // The choice exists only where a GPU is usable.
                        if t.cuda_devices > 0 {
                            let mut gpu = t.on_gpu();
                            let _ = egui::ComboBox::from_id_salt("device")
                                .selected_text(if gpu { "GPU" } else { "CPU" })
                                .show_ui(ui, |ui| {
                                    ui.selectable_value(&mut gpu, true, "GPU");
                                    ui.selectable_value(&mut gpu, false, "CPU");
                                })
                                .response
                                .on_hover_text("Where the worker trains and infers");
                            if gpu != t.on_gpu() {
                                use_cpu = Some(!gpu);
                            }
                        }
                    }
                    None => {
                        ui.label("starting libtorch…");
                    }
                };
                if let Some(cpu) = use_cpu {
                    device = Some(cpu);
                }
                ui.separator();
                let editing = match (&self.state.annotation.annotator, &self.state.project) {
                    (Some(a), Some(p)) => p.annotator(a).map_or(a.clone(), |an| an.name.clone()),
                    _ => "nobody".into(),
                };
                ui.label(format!("editing: {editing}"))
                    .on_hover_text("Whose labels the tools change");
                if let Some(t) = &self.state.task {
                    ui.separator();
                    ui.spinner();
                    ui.label(t.line());
                }
                if let Some(r) = &self.state.run {
                    ui.separator();
                    cancel_run = ui
                        .small_button("Cancel")
                        .on_hover_text(Action::CancelRun.hover_text())
                        .clicked();
                    ui.add(
                        egui::ProgressBar::new(r.fraction())
                            .text(r.line())
                            .desired_width(260.0),
                    );
                }
                ui.with_layout(egui::Layout::left_to_right(egui::Align::Center), |ui| {
                    ui.set_clip_rect(ui.max_rect().intersect(ui.clip_rect()));
                    match &self.state.project {
                        Some(p) => {
                            ui.label(format!("{} · {} images", p.file.name, p.file.images.len()));
                        }
                        None => {
                            ui.label("No project");
                        }
                    }
                    if let (Some(cur), Some(p)) = (&self.current, &self.state.project) {
                        ui.separator();
                        let e = &p.file.images[cur.index];
                        ui.label(format!("{} · {}×{}", e.id, cur.size.0, cur.size.1));
                        if let Some(d) = self.state.detections.get(&cur.index) {
                            ui.separator();
                            ui.label(d.summary());
                        }
                        ui.separator();
                        ui.label(format!("zoom {:.0}%", self.view.zoom * 100.0));
                        // The drift check: the model's flags here are not to be trusted.
                        if let Some(words) = self
                            .state
                            .review
                            .facts
                            .get(cur.index)
                            .and_then(|f| f.unlike_training.as_ref())
                        {
                            ui.separator();
                            // The words are long and last: cut to the room left, whole on hover.
                            let text = egui::RichText::new(format!("unlike training: {words}"))
                                .color(egui::Color32::from_rgb(200, 150, 255));
                            ui.add(
                                egui::Label::new(text)
                                    .truncate()
                                    .show_tooltip_when_elided(false),
                            )
                            .on_hover_text(format!(
                                "Unlike training: {words}.\nThis image is unlike every image \
                                 the model was trained on: its flags and outlines here are \
                                 not to be trusted (lighting or camera changed?)"
                            ));
                        }
                    }
                });
            });
        });
        if cancel_run {
            self.apply(AppCommand::CancelRun);
        }
        if let Some(cpu) = device {
            self.apply(AppCommand::UseCpu(cpu));
        }
    }
}
