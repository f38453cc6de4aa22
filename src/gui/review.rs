//! The right-hand panel's review tabs: the review queue with verdicts, notes and the reviewer,
//! and the project's label issues; and the badges the image list shows for each image.

use egui::{Color32, RichText};

use super::ContrarioApp;
use super::widgets::swatch;
use super::window_state::SideTab;
use crate::app::AppCommand;
use crate::app::actions::Action;
use crate::app::review::ReviewCommand;
use crate::project::overview::{DISAGREEMENT_IOU, ImageFacts};
use crate::project::review::{IssueKind, LabelIssue, Verdict};

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
    out
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
            "{} marked it, the detector sees nothing · {} px",
            annotator_name(annotator),
            issue.area
        ),
    }
}

impl ContrarioApp {
    /// The right-hand panel: labels, review or label issues.
    pub(super) fn side_panel(&mut self, ui: &mut egui::Ui) {
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
        let Some(p) = &self.state.project else {
            ui.label("No project");
            return;
        };
        let mut cmds = Vec::new();
        // The reviewer, asked once and kept in the person's preferences.
        match &self.state.review.reviewer {
            Some(name) if !self.editing_reviewer => {
                ui.horizontal(|ui| {
                    ui.label(format!("Reviewer: {name}"));
                    if ui.small_button("change").clicked() {
                        self.reviewer_draft = name.clone();
                        self.editing_reviewer = true;
                    }
                });
            }
            _ => {
                ui.label("Your name, to sign verdicts (asked once):");
                ui.horizontal(|ui| {
                    let field = ui.add(
                        egui::TextEdit::singleline(&mut self.reviewer_draft)
                            .desired_width(120.0)
                            .hint_text("name"),
                    );
                    let enter = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
                    if (ui.button("Save").clicked() || enter)
                        && !self.reviewer_draft.trim().is_empty()
                    {
                        cmds.push(ReviewCommand::SetReviewer(self.reviewer_draft.clone()));
                        self.editing_reviewer = false;
                    }
                });
            }
        }
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
            ui.label(RichText::new(&e.id).strong());
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
        let row_h = ui.text_style_height(&egui::TextStyle::Body) + 4.0;
        egui::ScrollArea::vertical()
            .id_salt("review-queue")
            .auto_shrink([false, false])
            .show_rows(ui, row_h, queue.len(), |ui, range| {
                for &i in &queue[range] {
                    let e = &p.file.images[i];
                    let f = self.state.review.facts.get(i);
                    let v = self.state.review.verdicts.get(&e.id).copied();
                    ui.horizontal(|ui| {
                        match v {
                            Some(v) => swatch(ui, verdict_colour(v)),
                            None => swatch(ui, Color32::from_gray(70)),
                        }
                        let iou = f
                            .and_then(|f| f.worst_iou)
                            .map_or(String::new(), |v| format!(" · IoU {v:.2}"));
                        let name = e.path.file_name().map_or(e.id.clone(), |n| {
                            format!("{} {}", e.category, n.to_string_lossy())
                        });
                        let selected = self.state.selected == Some(i);
                        if ui
                            .selectable_label(selected, format!("{name}{iou}"))
                            .clicked()
                        {
                            open = Some(i);
                        }
                    });
                }
            });
        if let Some(i) = open {
            self.apply(AppCommand::Select(i));
        }
        for c in cmds {
            self.apply(AppCommand::Review(c));
        }
    }

    /// The project's label issues, strongest first: open one, accept it, dismiss it.
    fn issues_panel(&mut self, ui: &mut egui::Ui) {
        let Some(p) = &self.state.project else {
            ui.label("No project");
            return;
        };
        let issues = &self.state.review.issues;
        let detector = self
            .state
            .detector
            .clone()
            .unwrap_or_else(|| "training-free".into());
        ui.label(
            RichText::new(format!(
                "{} label issue(s) · detector: {detector}",
                issues.len()
            ))
            .strong(),
        );
        if issues.is_empty() {
            ui.label(
                "An issue is a significant detection nobody marked, or a mark where the detector \
                 sees nothing. They need the detector's results: run it on the images (R).",
            );
            return;
        }
        let name = |id: &str| self.annotator_name(id);
        let texts: Vec<String> = issues.iter().map(|(_, x)| issue_text(x, name)).collect();
        let mut cmds = Vec::new();
        let row_h = 2.0 * ui.text_style_height(&egui::TextStyle::Body) + 12.0;
        egui::ScrollArea::vertical()
            .id_salt("label-issues")
            .auto_shrink([false, false])
            .show_rows(ui, row_h, issues.len(), |ui, range| {
                for k in range {
                    let (i, issue) = &issues[k];
                    let e = &p.file.images[*i];
                    let open = self.opened_issue.as_ref() == Some(issue);
                    ui.vertical(|ui| {
                        let title = format!(
                            "{} {}",
                            e.category,
                            e.path
                                .file_name()
                                .map_or(e.id.clone(), |n| n.to_string_lossy().to_string())
                        );
                        if ui
                            .selectable_label(open, RichText::new(title).strong())
                            .on_hover_text("Show the image, zoomed on the region")
                            .clicked()
                        {
                            cmds.push((ReviewCommand::OpenIssue(k), Some(issue.clone())));
                        }
                        ui.horizontal(|ui| {
                            ui.label(RichText::new(&texts[k]).small());
                        });
                        ui.horizontal(|ui| {
                            if issue.kind == IssueKind::UnlabelledDetection
                                && ui
                                    .small_button("Accept as defect")
                                    .on_hover_text("Add the region to the active annotator's layer")
                                    .clicked()
                            {
                                cmds.push((ReviewCommand::AcceptIssue(k), None));
                            }
                            if ui
                                .small_button("Dismiss")
                                .on_hover_text("Not a label error: recorded, and not shown again")
                                .clicked()
                            {
                                cmds.push((ReviewCommand::DismissIssue(k), None));
                            }
                        });
                    });
                }
            });
        // One command a frame: indices shift once an issue is taken off the list.
        if let Some((c, opened)) = cmds.into_iter().next() {
            if let Some(x) = opened {
                self.opened_issue = Some(x);
            }
            self.apply(AppCommand::Review(c));
        }
    }
}
