//! The image list: a filter and an order, then one row per image with its thumbnail (decoded
//! in the background, kept for the rows near the selection), name, category, split and kind,
//! and its badges (verdict, score, most significant NFA, agreement, label issues); virtualised,
//! and scrolled to follow the selection.

use egui::{Color32, RichText};

use super::review::badges;
use super::widgets::{Thumb, thumb_slot};
use super::{ContrarioApp, ROW_HEIGHT, THUMB_CACHE};
use crate::app::AppCommand;
use crate::app::loader::LoadKind;
use crate::app::review::{ListFilter, ReviewCommand, SortKey, VerdictFilter};
use crate::project::review::Verdict;
use crate::project::{ImageEntry, Split};

impl ContrarioApp {
    pub(super) fn image_list(&mut self, ui: &mut egui::Ui) {
        if self.state.project.is_none() {
            ui.label("Open a project or a folder of images from the File menu.");
            return;
        }
        self.list_controls(ui);
        let area = self.list_scroll_area(ui);
        let Some(project) = &self.state.project else {
            return;
        };
        let review = &self.state.review;
        let level = self.state.nfa_threshold;
        let n = review.rows.len();
        let mut clicked = None;
        let mut wanted = Vec::new();
        let output = area
            .id_salt("image-list")
            .show_rows(ui, ROW_HEIGHT, n, |ui, rows| {
                for r in rows {
                    let i = review.rows[r];
                    let thumb = self.thumb(i);
                    if matches!(thumb, Thumb::Loading) {
                        wanted.push(i);
                    }
                    let selected = self.state.selected == Some(i);
                    let e = &project.file.images[i];
                    let marks = badges(
                        review.facts.get(i),
                        review.verdicts.get(&e.id).copied(),
                        level,
                    );
                    if image_row(ui, e, thumb, selected, &marks).clicked() {
                        clicked = Some(i);
                    }
                }
            });
        self.list_offset = output.state.clamped_offset().y;
        self.request_thumbnails(wanted);
        if let Some(i) = clicked {
            self.apply(AppCommand::Select(i));
            // A click selects a visible row: no need to scroll.
            self.listed_selection = Some(i);
        }
    }

    /// The list's scroll area, scrolled to the selection when it moved by key or command and
    /// is out of view (centred then).
    fn list_scroll_area(&mut self, ui: &egui::Ui) -> egui::ScrollArea {
        let area = egui::ScrollArea::vertical().auto_shrink([false, false]);
        if self.listed_selection == self.state.selected {
            return area;
        }
        self.listed_selection = self.state.selected;
        let Some(sel) = self.state.selected else {
            return area;
        };
        let Some(pos) = self.state.review.rows.iter().position(|&r| r == sel) else {
            return area;
        };
        let row = ROW_HEIGHT + ui.spacing().item_spacing.y;
        let visible = ui.available_height();
        let top = pos as f32 * row;
        let current = self.list_offset;
        if top < current || top + row > current + visible {
            area.vertical_scroll_offset((top - visible / 2.0 + row / 2.0).max(0.0))
        } else {
            area
        }
    }

    /// Ask the loader for the thumbnails of rows on display, and forget those far from the
    /// selection once too many are kept (they reload when scrolled back into view).
    pub(super) fn request_thumbnails(&mut self, wanted: Vec<usize>) {
        let Some(project) = &self.state.project else {
            return;
        };
        for i in wanted {
            if self.thumbs_requested.insert(i) {
                let e = &project.file.images[i];
                let path = project.image_path(e);
                let generation = self.state.generation;
                self.loader
                    .request(generation, i, LoadKind::Thumbnail, path, vec![]);
            }
        }
        if self.thumbs.len() > THUMB_CACHE {
            let sel = self.state.selected.unwrap_or(0);
            let mut keys: Vec<usize> = self.thumbs.keys().copied().collect();
            keys.sort_by_key(|k| std::cmp::Reverse(k.abs_diff(sel)));
            for k in keys.into_iter().take(self.thumbs.len() - THUMB_CACHE / 2) {
                self.thumbs.remove(&k);
                self.thumbs_requested.remove(&k);
            }
        }
    }
}

/// One row: the thumbnail (a spinner until it is decoded, "unreadable" when it cannot be), the
/// file name, and category, split and kind in the kind's colour; framed when selected.
fn image_row(
    ui: &mut egui::Ui,
    e: &ImageEntry,
    thumb: Thumb<'_>,
    selected: bool,
    marks: &[(String, Color32)],
) -> egui::Response {
    let resp = ui
        .horizontal(|ui| {
            ui.set_min_height(ROW_HEIGHT);
            thumb_slot(ui, thumb, ROW_HEIGHT - 4.0);
            let split = e.split.name();
            let kind = if e.kind.is_empty() {
                String::new()
            } else {
                format!(" · {}", e.kind)
            };
            ui.vertical(|ui| {
                ui.spacing_mut().item_spacing.y = 1.0;
                ui.add_space(if marks.is_empty() { 6.0 } else { 1.0 });
                let name = e
                    .path
                    .file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default();
                // Not selectable: a selectable label takes the click, and a click on the
                // row's name would then select text instead of the image.
                ui.add(egui::Label::new(RichText::new(name).strong()).selectable(false))
                    .on_hover_text(e.display_name());
                let line = format!("{}{split}{kind}", cat_prefix(&e.category));
                ui.add(
                    egui::Label::new(RichText::new(line).small().color(kind_color(&e.kind)))
                        .selectable(false),
                );
                if !marks.is_empty() {
                    // One line, cut at the panel's edge: badges never widen the list.
                    let font = egui::TextStyle::Small.resolve(ui.style());
                    let mut job = egui::text::LayoutJob::default();
                    for (k, (text, colour)) in marks.iter().enumerate() {
                        let gap = if k == 0 { 0.0 } else { 5.0 };
                        job.append(text, gap, egui::TextFormat::simple(font.clone(), *colour));
                    }
                    // A point spare: a line as wide as the panel would widen it frame after
                    // frame (side panels grow to their content).
                    job.wrap.max_width = ui.available_width() - 1.0;
                    job.wrap.max_rows = 1;
                    job.wrap.break_anywhere = true;
                    ui.add(egui::Label::new(job).selectable(false));
                }
            });
        })
        .response
        .interact(egui::Sense::click());
    if selected {
        ui.painter().rect_stroke(
            resp.rect.expand(1.0),
            4.0,
            egui::Stroke::new(2.0, ui.visuals().selection.stroke.color),
            egui::StrokeKind::Inside,
        );
    }
    resp
}

impl ContrarioApp {
    /// The list's order and filter, and how many images pass it.
    fn list_controls(&mut self, ui: &mut egui::Ui) {
        let Some(p) = &self.state.project else { return };
        let review = &self.state.review;
        let mut sort = review.sort;
        let mut f = review.filter.clone();
        // One line that fits the panel's default width (a wider line would widen the panel for
        // good): clearing the filter is in its menu.
        ui.horizontal(|ui| {
            egui::ComboBox::from_label("sort")
                .selected_text(sort.label())
                .show_ui(ui, |ui| {
                    for k in SortKey::ALL {
                        ui.selectable_value(&mut sort, k, k.label());
                    }
                });
            let active = filter_count(&f);
            let title = if active == 0 {
                "filter".to_string()
            } else {
                format!("filter ({active})")
            };
            ui.menu_button(title, |ui| {
                if ui
                    .add_enabled(active > 0, egui::Button::new("clear the filter"))
                    .on_hover_text("Show every image")
                    .clicked()
                {
                    f = ListFilter::default();
                } else {
                    filter_menu(ui, p, &mut f);
                }
            })
            .response
            .on_hover_text("Narrow the list (clear it from the menu)");
        });
        let shown = review.rows.len();
        let total = p.file.images.len();
        let line = if shown == total {
            format!("{total} images")
        } else {
            format!("{shown} of {total} images")
        };
        ui.label(RichText::new(line).small());
        if sort != review.sort {
            self.apply(AppCommand::Review(ReviewCommand::Sort(sort)));
        }
        if f != self.state.review.filter {
            self.apply(AppCommand::Review(ReviewCommand::Filter(f)));
        }
    }
}

fn filter_count(f: &ListFilter) -> usize {
    [
        f.split.is_some(),
        f.category.is_some(),
        f.kind.is_some(),
        f.verdict != VerdictFilter::Any,
        f.annotator.is_some(),
        f.only_disagreements,
        f.only_issues,
        f.only_flagged,
        f.only_unlike_training,
    ]
    .iter()
    .filter(|&&b| b)
    .count()
}

/// A choice among `values` (None: any).
fn pick(ui: &mut egui::Ui, label: &str, value: &mut Option<String>, values: &[String]) {
    egui::ComboBox::from_label(label)
        .selected_text(value.clone().unwrap_or_else(|| "any".into()))
        .show_ui(ui, |ui| {
            ui.selectable_value(value, None, "any");
            for v in values {
                ui.selectable_value(value, Some(v.clone()), v);
            }
        });
}

fn filter_menu(ui: &mut egui::Ui, p: &crate::project::Project, f: &mut ListFilter) {
    let distinct = |get: fn(&ImageEntry) -> &str| {
        let mut v: Vec<String> = p
            .file
            .images
            .iter()
            .map(|e| get(e).to_string())
            .filter(|s| !s.is_empty())
            .collect();
        v.sort();
        v.dedup();
        v
    };
    ui.horizontal(|ui| {
        ui.label("split");
        ui.selectable_value(&mut f.split, None, "any");
        ui.selectable_value(&mut f.split, Some(Split::Train), "train");
        ui.selectable_value(&mut f.split, Some(Split::Test), "test");
        if p.file.images.iter().any(|e| e.split == Split::Live) {
            ui.selectable_value(&mut f.split, Some(Split::Live), "live");
        }
    });
    pick(ui, "category", &mut f.category, &distinct(|e| &e.category));
    pick(ui, "kind", &mut f.kind, &distinct(|e| &e.kind));
    let annotators: Vec<String> = p.file.annotators.iter().map(|a| a.id.clone()).collect();
    pick(ui, "labelled by", &mut f.annotator, &annotators);
    egui::ComboBox::from_label("verdict")
        .selected_text(match f.verdict {
            VerdictFilter::Any => "any",
            VerdictFilter::Unreviewed => "unreviewed",
            VerdictFilter::Is(v) => v.name(),
        })
        .show_ui(ui, |ui| {
            ui.selectable_value(&mut f.verdict, VerdictFilter::Any, "any");
            ui.selectable_value(&mut f.verdict, VerdictFilter::Unreviewed, "unreviewed");
            for v in [Verdict::Normal, Verdict::Defective, Verdict::Unsure] {
                ui.selectable_value(&mut f.verdict, VerdictFilter::Is(v), v.name());
            }
        });
    ui.checkbox(&mut f.only_disagreements, "only disagreements")
        .on_hover_text("Annotators whose outlines overlap by less than half (IoU < 0.5)");
    ui.checkbox(&mut f.only_issues, "only label issues");
    ui.checkbox(&mut f.only_flagged, "flagged at the NFA level")
        .on_hover_text("The detector finds a region below the current NFA level");
    ui.checkbox(&mut f.only_unlike_training, "unlike training")
        .on_hover_text(
            "Images unlike every image the model trained on (darker, brighter, flatter, another \
             colour): its flags there are not to be trusted",
        );
}

fn cat_prefix(category: &str) -> String {
    if category.is_empty() {
        String::new()
    } else {
        format!("{category} · ")
    }
}

fn kind_color(kind: &str) -> Color32 {
    match kind {
        "good" => Color32::from_rgb(110, 190, 120),
        "" => Color32::GRAY,
        _ => Color32::from_rgb(235, 140, 90),
    }
}
