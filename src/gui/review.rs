//! The right-hand panel's review tabs: the review queue with verdicts, notes and the reviewer,
//! and the project's label issues; and the badges the image list shows for each image.

use egui::{Color32, RichText};

use super::ContrarioApp;
use super::widgets::{Thumb, image_name, thumb_slot};
use super::window_state::SideTab;
use crate::app::AppCommand;
use crate::app::actions::Action;
use crate::app::review::ReviewCommand;
use crate::project::overview::{DISAGREEMENT_IOU, ImageFacts};
use crate::project::review::{IssueKind, LabelIssue, Verdict};

/// A row of the queue: a thumbnail beside the image's name and what is known of it.
const SIDE_ROW: f32 = 34.0;

pub(super) fn verdict_colour(v: Verdict) -> Color32 {
    match v {
        Verdict::Normal => Color32::from_rgb(110, 190, 120),
        Verdict::Defective => Color32::from_rgb(235, 110, 90),
        Verdict::Unsure => Color32::from_rgb(230, 190, 80),
    }
}

fn verdict_action(v: Verdict) -> Action {
    match v {
        Verdict::Normal => Action::VerdictNormal,
        Verdict::Defective => Action::VerdictDefective,
        Verdict::Unsure => Action::VerdictUnsure,
    }
}

/// A log10 NFA as the order of magnitude of the expected false alarms ("NFA 1e-12").
pub(super) fn nfa_text(log10_nfa: f32) -> String {
    format!("NFA 1e{:.0}", log10_nfa.round())
}

/// The badges of an image: verdict, score, most significant NFA, worst IoU, label issues;
/// (text, colour) each.
pub(super) fn badges(
    facts: Option<&ImageFacts>,
    verdict: Option<Verdict>,
    level: f32,
) -> Vec<(String, Color32)> {
    let mut out = Vec::new();
    if let Some(v) = verdict {
        out.push((v.name().to_string(), verdict_colour(v)));
    }
    let Some(f) = facts else { return out };
    if let Some(s) = f.image_score {
        out.push((format!("score {s:.2}"), Color32::LIGHT_GRAY));
    }
    if let Some(v) = f.min_log_nfa {
        let c = if v < level {
            Color32::from_rgb(255, 140, 70)
        } else {
            Color32::GRAY
        };
        out.push((nfa_text(v), c));
    }
    if let Some(iou) = f.worst_iou {
        let c = if iou < DISAGREEMENT_IOU {
            Color32::from_rgb(255, 110, 110)
        } else {
            Color32::GRAY
        };
        out.push((format!("IoU {iou:.2}"), c));
    }
    if !f.issues.is_empty() {
        out.push((
            format!("{} issue(s)", f.issues.len()),
            Color32::from_rgb(255, 200, 80),
        ));
    }
    if f.unlike_training.is_some() {
        out.push(("unlike training".into(), Color32::from_rgb(200, 150, 255)));
    }
    out
}

/// Where a label's score falls among the image's unlabelled pixels, in words.
fn percentile_words(p: Option<f32>) -> String {
    match p {
        Some(p) => format!(" (above {:.0} % of it)", 100.0 * p),
        None => String::new(),
    }
}

/// What an issue is, in a line.
pub(super) fn issue_text(issue: &LabelIssue, annotator_name: impl Fn(&str) -> String) -> String {
    match &issue.kind {
        IssueKind::UnlabelledDetection => format!(
            "Detected, nobody marked it · {} · {} px",
            nfa_text(issue.log10_nfa),
            issue.area
        ),
        IssueKind::LabelWithoutEvidence { annotator } => format!(
            "{} marked it, the detector sees nothing beyond the rest of the image{} · {} px",
            annotator_name(annotator),
            percentile_words(issue.percentile),
            issue.area
        ),
        IssueKind::Unconfirmed { annotator } => format!(
            "{} marked it; the detector sees more than elsewhere{} but finds no region · {}, {} px",
            annotator_name(annotator),
            percentile_words(issue.percentile),
            nfa_text(issue.log10_nfa),
            issue.area
        ),
    }
}

impl ContrarioApp {
    /// The right-hand panel: labels, review or label issues.
    pub(super) fn side_panel(&mut self, ui: &mut egui::Ui) {
        // A signed action waits for a name: it is asked in the tab the action belongs to.
        if let Some(a) = &self.state.review.awaiting_name {
            let issue = matches!(
                a.cmd,
                ReviewCommand::AcceptIssue(_) | ReviewCommand::DismissIssue(_)
            );
            match (issue, self.side_tab) {
                (true, SideTab::Issues) | (false, SideTab::Review) => {}
                (true, _) => self.side_tab = SideTab::Issues,
                (false, _) => self.side_tab = SideTab::Review,
            }
        }
        let issues = self.state.review.issues.len();
        ui.horizontal(|ui| {
            for (tab, text) in [
                (SideTab::Labels, "Labels".to_string()),
                (SideTab::Review, "Queue".to_string()),
                (SideTab::Issues, format!("Issues ({issues})")),
            ] {
                if ui.selectable_label(self.side_tab == tab, text).clicked() {
                    self.side_tab = tab;
                }
            }
        });
        ui.separator();
        match self.side_tab {
            SideTab::Labels => self.labels_panel(ui),
            SideTab::Review => self.review_panel(ui),
            SideTab::Issues => self.issues_panel(ui),
        }
    }

    fn annotator_name(&self, id: &str) -> String {
        self.state
            .project
            .as_ref()
            .and_then(|p| p.annotator(id))
            .map_or(id.to_string(), |a| a.name.clone())
    }

    /// The review queue, the reviewer, the selected image's verdict, note and history.
    fn review_panel(&mut self, ui: &mut egui::Ui) {
        if self.state.project.is_none() {
            ui.label("No project");
            return;
        }
        let mut cmds = Vec::new();
        self.reviewer_field(ui, &mut cmds, true);
        let Some(p) = &self.state.project else { return };
        let (done, total) = self.state.review.progress(p);
        ui.add_space(4.0);
        if self.state.review.facts.is_empty() {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("analysing the project…");
            });
        } else {
            ui.label(RichText::new(format!("{done} of {total} reviewed")).strong());
            let frac = if total == 0 {
                1.0
            } else {
                done as f32 / total as f32
            };
            ui.add(egui::ProgressBar::new(frac).desired_height(6.0));
        }
        let next = Action::NextUnreviewed;
        if ui
            .button(next.menu_text())
            .on_hover_text(next.hover_text())
            .clicked()
        {
            cmds.push(ReviewCommand::NextUnreviewed);
        }
        ui.separator();
        // The selected image: verdict, note, history.
        if let Some(e) = self.state.selected.and_then(|i| p.file.images.get(i)) {
            let current = self.state.review.verdicts.get(&e.id).copied();
            ui.label(RichText::new(e.display_name()).strong());
            // Wrapped: the panel keeps its width whatever the tab shows.
            ui.horizontal_wrapped(|ui| {
                for v in [Verdict::Normal, Verdict::Defective, Verdict::Unsure] {
                    let a = verdict_action(v);
                    let text = format!("{} ({})", a.label(), a.shortcuts()[0].text());
                    let on = current == Some(v);
                    let text = if on {
                        RichText::new(text).color(verdict_colour(v)).strong()
                    } else {
                        RichText::new(text)
                    };
                    if ui
                        .selectable_label(on, text)
                        .on_hover_text(a.hover_text())
                        .clicked()
                    {
                        cmds.push(ReviewCommand::Verdict(v));
                    }
                }
            });
            if self.note_for != Some(e.id.clone()) {
                self.note_for = Some(e.id.clone());
                self.note_draft.clear();
            }
            ui.add(
                egui::TextEdit::multiline(&mut self.note_draft)
                    .desired_rows(2)
                    .desired_width(f32::INFINITY)
                    .hint_text("note on this image"),
            );
            if ui
                .add_enabled(
                    !self.note_draft.trim().is_empty(),
                    egui::Button::new("Save note"),
                )
                .clicked()
            {
                cmds.push(ReviewCommand::Note(std::mem::take(&mut self.note_draft)));
            }
            let history: Vec<String> = self
                .state
                .review
                .history_of(&e.id)
                .map(|h| {
                    let what = h.verdict.map_or("note", |v| v.name());
                    let note = if h.note.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", h.note)
                    };
                    format!(
                        "{} · {} · {what}{note}",
                        &h.time[..16.min(h.time.len())],
                        h.reviewer
                    )
                })
                .collect();
            if !history.is_empty() {
                ui.label(RichText::new("Earlier").small().strong());
                for line in history.iter().rev().take(6) {
                    ui.label(RichText::new(line).small());
                }
            }
        }
        ui.separator();
        ui.label(RichText::new("Queue: least agreed first").small().strong());
        let queue = &self.state.review.queue;
        let mut open = None;
        let mut wanted = Vec::new();
        egui::ScrollArea::vertical()
            .id_salt("review-queue")
            .auto_shrink([false, false])
            .show_rows(ui, SIDE_ROW, queue.len(), |ui, range| {
                for &i in &queue[range] {
                    let e = &p.file.images[i];
                    let f = self.state.review.facts.get(i);
                    let v = self.state.review.verdicts.get(&e.id).copied();
                    let thumb = self.thumb(i);
                    if matches!(thumb, Thumb::Loading) {
                        wanted.push(i);
                    }
                    ui.horizontal(|ui| {
                        ui.set_height(SIDE_ROW);
                        ui.spacing_mut().item_spacing.x = 4.0;
                        let slot = thumb_slot(ui, thumb, SIDE_ROW - 4.0);
                        // The verdict as the thumbnail's frame: the name keeps the room.
                        if let Some(v) = v {
                            ui.painter().rect_stroke(
                                slot.rect.expand(1.0),
                                2.0,
                                egui::Stroke::new(2.0, verdict_colour(v)),
                                egui::StrokeKind::Outside,
                            );
                        }
                        let selected = self.state.selected == Some(i);
                        ui.vertical(|ui| {
                            ui.spacing_mut().item_spacing.y = 0.0;
                            if image_name(ui, e, RichText::new, selected).clicked() {
                                open = Some(i);
                            }
                            let mut facts = Vec::new();
                            if let Some(iou) = f.and_then(|f| f.worst_iou) {
                                facts.push(format!("IoU {iou:.2}"));
                            }
                            if let Some(nfa) = f.and_then(|f| f.min_log_nfa) {
                                facts.push(nfa_text(nfa));
                            }
                            ui.horizontal(|ui| {
                                ui.spacing_mut().item_spacing.x = 4.0;
                                if let Some(v) = v {
                                    ui.label(
                                        RichText::new(v.name()).small().color(verdict_colour(v)),
                                    );
                                }
                                ui.label(RichText::new(facts.join(" · ")).small().weak());
                            });
                        });
                    });
                }
            });
        self.request_thumbnails(wanted);
        if let Some(i) = open {
            self.apply(AppCommand::Select(i));
        }
        for c in cmds {
            self.apply(AppCommand::Review(c));
        }
    }

    /// The reviewer's name: who signs, with a way to change it; or a field asking for it, at
    /// once when an action waits for it (focused, Enter signs and carries the action out, Escape
    /// lets it go). `always`: ask even when nothing waits (the queue's place for it).
    fn reviewer_field(&mut self, ui: &mut egui::Ui, cmds: &mut Vec<ReviewCommand>, always: bool) {
        let waiting = self.state.review.awaiting_name.clone();
        match (&self.state.review.reviewer, &waiting) {
            (Some(name), _) if !self.editing_reviewer => {
                if always {
                    ui.horizontal(|ui| {
                        ui.label(format!("Reviewer: {name}"));
                        if ui.small_button("change").clicked() {
                            self.reviewer_draft = name.clone();
                            self.editing_reviewer = true;
                        }
                    });
                }
            }
            (_, None) if !always => {}
            _ => {
                let why = match waiting.as_ref().map(|a| &a.cmd) {
                    Some(ReviewCommand::Verdict(v)) => {
                        format!("Your name, to sign the verdict {}:", v.name())
                    }
                    Some(ReviewCommand::Note(_)) => "Your name, to sign the note:".into(),
                    Some(ReviewCommand::AcceptIssue(_)) => {
                        "Your name, to sign the acceptance of this issue:".into()
                    }
                    Some(ReviewCommand::DismissIssue(_)) => {
                        "Your name, to sign the dismissal of this issue:".into()
                    }
                    _ => "Your name, to sign verdicts (asked once):".into(),
                };
                ui.label(RichText::new(why).color(if waiting.is_some() {
                    Color32::from_rgb(255, 200, 80)
                } else {
                    ui.visuals().text_color()
                }));
                // The field takes the panel's width, never more (the panel would grow with it);
                // its buttons go below.
                let field = ui.add(
                    egui::TextEdit::singleline(&mut self.reviewer_draft)
                        .desired_width(f32::INFINITY)
                        .hint_text("name"),
                );
                // Asked now: the keys go to the field at once.
                if waiting.is_some() && !self.name_asked {
                    field.request_focus();
                }
                let enter = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
                let escape = ui.input(|i| i.key_pressed(egui::Key::Escape));
                ui.horizontal(|ui| {
                    if (ui.button("Sign").clicked() || enter)
                        && !self.reviewer_draft.trim().is_empty()
                    {
                        cmds.push(ReviewCommand::SetReviewer(self.reviewer_draft.clone()));
                        self.editing_reviewer = false;
                    }
                    if waiting.is_some() && (ui.button("Cancel").clicked() || escape) {
                        cmds.push(ReviewCommand::CancelAwaiting);
                    }
                });
            }
        }
        self.name_asked = waiting.is_some();
    }

    /// The project's label issues, strongest first: open one, accept it, dismiss it.
    fn issues_panel(&mut self, ui: &mut egui::Ui) {
        if self.state.project.is_none() {
            ui.label("No project");
            return;
        }
        let mut asked = Vec::new();
        self.reviewer_field(ui, &mut asked, false);
        for c in asked {
            self.apply(AppCommand::Review(c));
        }
        let Some(p) = &self.state.project else { return };
        let detector = self
            .state
            .detector
            .clone()
            .unwrap_or_else(|| "training-free".into());
        let (n_issues, n_unconfirmed) = (
            self.state.review.issues.len(),
            self.state.review.unconfirmed.len(),
        );
        ui.label(RichText::new(format!("detector: {detector}")).small());
        ui.horizontal(|ui| {
            for (unconfirmed, text, tip) in [
                (
                    false,
                    format!("{n_issues} label issue(s)"),
                    "Significant detections nobody marked, and marks where the detector sees \
                     nothing beyond the rest of the image",
                ),
                (
                    true,
                    format!("{n_unconfirmed} it cannot confirm"),
                    "Marks where the detector sees more than the rest of the image but not \
                     enough to outline it at the level (weak or small defects): not issues",
                ),
            ] {
                let on = self.show_unconfirmed == unconfirmed;
                if ui
                    .selectable_label(on, RichText::new(text).strong())
                    .on_hover_text(tip)
                    .clicked()
                {
                    self.show_unconfirmed = unconfirmed;
                }
            }
        });
        let unconfirmed = self.show_unconfirmed;
        let list = if unconfirmed {
            &self.state.review.unconfirmed
        } else {
            &self.state.review.issues
        };
        if list.is_empty() {
            ui.label(if unconfirmed {
                "Every mark is either confirmed by a detection or an issue."
            } else {
                "An issue is a significant detection nobody marked, or a mark where the detector \
                 sees nothing beyond the rest of the image. They need the detector's results: \
                 run it on the images (R)."
            });
            return;
        }
        let name = |id: &str| self.annotator_name(id);
        let texts: Vec<String> = list.iter().map(|(_, x)| issue_text(x, name)).collect();
        let mut cmds = Vec::new();
        let mut wanted = Vec::new();
        let row_h = 2.0 * ui.text_style_height(&egui::TextStyle::Body) + 12.0;
        egui::ScrollArea::vertical()
            .id_salt(("label-issues", unconfirmed))
            .auto_shrink([false, false])
            .show_rows(ui, row_h, list.len(), |ui, range| {
                for k in range {
                    let (i, issue) = &list[k];
                    let e = &p.file.images[*i];
                    let open = self.opened_issue.as_ref() == Some(issue);
                    let thumb = self.thumb(*i);
                    if matches!(thumb, Thumb::Loading) {
                        wanted.push(*i);
                    }
                    ui.horizontal(|ui| {
                        thumb_slot(ui, thumb, row_h - 6.0);
                        ui.vertical(|ui| {
                            if image_name(ui, e, |t| RichText::new(t).strong(), open)
                                .on_hover_text(
                                    "Show the image around the region, with the detection",
                                )
                                .clicked()
                            {
                                let c = if unconfirmed {
                                    ReviewCommand::OpenUnconfirmed(k)
                                } else {
                                    ReviewCommand::OpenIssue(k)
                                };
                                cmds.push((c, Some(issue.clone())));
                            }
                            // Cut to the panel (whole on hover): rows have one height.
                            ui.add(egui::Label::new(RichText::new(&texts[k]).small()).truncate());
                            if unconfirmed {
                                return;
                            }
                            ui.horizontal(|ui| {
                                if issue.kind == IssueKind::UnlabelledDetection
                                    && ui
                                        .small_button("Accept as defect")
                                        .on_hover_text(
                                            "Add the region to the active annotator's layer",
                                        )
                                        .clicked()
                                {
                                    cmds.push((ReviewCommand::AcceptIssue(k), None));
                                }
                                if ui
                                    .small_button("Dismiss")
                                    .on_hover_text(
                                        "Not a label error: recorded, and not shown again",
                                    )
                                    .clicked()
                                {
                                    cmds.push((ReviewCommand::DismissIssue(k), None));
                                }
                            });
                        });
                    });
                }
            });
        self.request_thumbnails(wanted);
        // One command a frame: indices shift once an issue is taken off the list.
        if let Some((c, opened)) = cmds.into_iter().next() {
            if let Some(x) = opened {
                self.opened_issue = Some(x);
            }
            self.apply(AppCommand::Review(c));
        }
    }
}
