//! The live strip: while a folder is watched, the latest images with their verdicts, the counts,
//! pause and stop; a click opens the image for review.

use egui::{Color32, RichText};

use super::ContrarioApp;
use super::review::verdict_colour;
use super::widgets::{Thumb, thumb_slot};
use crate::app::AppCommand;
use crate::app::actions::Action;
use crate::project::review::Verdict;

const THUMB: f32 = 56.0;
/// The strip's height: a thumbnail, its name and the scroll bar, whatever its content.
const STRIP_HEIGHT: f32 = THUMB + 36.0;

impl ContrarioApp {
    /// Above the status bar while a folder is watched; its height never depends on its content.
    pub(super) fn live_panel(&mut self, ui: &mut egui::Ui) {
        if self.state.live.is_some() {
            egui::Panel::bottom("live")
                .resizable(false)
                .exact_size(STRIP_HEIGHT)
                .show(ui, |ui| self.live_strip(ui));
        }
    }

    fn live_strip(&mut self, ui: &mut egui::Ui) {
        let Some(s) = &self.state.live else { return };
        let mut acts = Vec::new();
        let mut open = None;
        let mut wanted = Vec::new();
        ui.horizontal(|ui| {
            ui.vertical(|ui| {
                ui.set_width(170.0);
                let folder = s.watch.config.folder.file_name().map_or_else(
                    || s.watch.config.folder.display().to_string(),
                    |n| n.to_string_lossy().into_owned(),
                );
                ui.label(RichText::new(format!("Live: {folder}")).strong())
                    .on_hover_text(format!(
                        "Watching {} with model {:?}",
                        s.watch.config.folder.display(),
                        s.watch.model
                    ));
                let c = s.counts;
                ui.label(
                    RichText::new(format!(
                        "{} seen · {} flagged · {} error(s)",
                        c.seen, c.flagged, c.errors
                    ))
                    .small(),
                );
                ui.horizontal(|ui| {
                    let paused = s.watch.is_paused();
                    let pause = if paused {
                        "Resume"
                    } else {
                        Action::PauseWatch.label()
                    };
                    if ui
                        .add_enabled(!s.stopping, egui::Button::new(pause))
                        .on_hover_text(Action::PauseWatch.hover_text())
                        .clicked()
                    {
                        acts.push(Action::PauseWatch);
                    }
                    let stop = if s.stopping { "Stopping…" } else { "Stop" };
                    if ui
                        .add_enabled(!s.stopping, egui::Button::new(stop))
                        .on_hover_text(Action::StopWatch.hover_text())
                        .clicked()
                    {
                        acts.push(Action::StopWatch);
                    }
                });
            });
            ui.separator();
            egui::ScrollArea::horizontal()
                .id_salt("live-strip")
                .auto_shrink([false, true])
                .show(ui, |ui| {
                    ui.horizontal(|ui| {
                        if s.recent.is_empty() {
                            ui.label(
                                RichText::new("Waiting for images to land in the folder…").weak(),
                            );
                        }
                        for (r, index) in &s.recent {
                            let thumb = index.map(|i| self.thumb(i));
                            if let Some(i) = index
                                && matches!(thumb, Some(Thumb::Loading))
                            {
                                wanted.push(*i);
                            }
                            let colour = match (&r.error, r.flagged) {
                                (Some(_), _) => Color32::GRAY,
                                (None, true) => verdict_colour(Verdict::Defective),
                                (None, false) => verdict_colour(Verdict::Normal),
                            };
                            let name = r
                                .file
                                .file_name()
                                .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
                            let mut name_clicked = false;
                            let resp = ui
                                .vertical(|ui| {
                                    ui.set_width(THUMB);
                                    let slot = match (thumb, &r.error) {
                                        (Some(t), None) => thumb_slot(ui, t, THUMB),
                                        _ => ui.add_sized(
                                            [THUMB, THUMB],
                                            egui::Label::new(
                                                RichText::new("not read").small().weak(),
                                            ),
                                        ),
                                    };
                                    ui.painter().rect_stroke(
                                        slot.rect.expand(1.0),
                                        2.0,
                                        egui::Stroke::new(2.0, colour),
                                        egui::StrokeKind::Outside,
                                    );
                                    name_clicked = ui
                                        .add(
                                            egui::Label::new(RichText::new(name).small())
                                                .truncate()
                                                .sense(egui::Sense::click()),
                                        )
                                        .clicked();
                                })
                                .response
                                .interact(egui::Sense::click());
                            let hover = match &r.error {
                                Some(e) => e.clone(),
                                None => format!(
                                    "{}\n{}; {} region(s){}; scored {:.0} ms after it was complete",
                                    r.file.display(),
                                    if r.flagged { "flagged" } else { "not flagged" },
                                    r.regions.len(),
                                    r.min_log10_nfa.map_or(String::new(), |v| format!(
                                        ", strongest NFA 10^{v:.1}"
                                    )),
                                    r.latency_ms
                                ),
                            };
                            if (resp.on_hover_text(hover).clicked() || name_clicked)
                                && let Some(i) = index
                            {
                                open = Some(*i);
                            }
                        }
                    });
                });
        });
        self.request_thumbnails(wanted);
        if let Some(i) = open {
            self.state.apply(AppCommand::Select(i));
        }
        let ctx = ui.ctx().clone();
        for a in acts {
            self.act(&ctx, a);
        }
    }
}
