//! The image list: one row per image with its thumbnail (decoded in the background, kept for
//! the rows near the selection), name, category, split and kind; virtualised, and scrolled to
//! follow the selection.

use egui::{Color32, RichText, TextureHandle};

use super::{ContrarioApp, ROW_HEIGHT, THUMB_CACHE};
use crate::app::AppCommand;
use crate::app::loader::LoadKind;
use crate::project::{ImageEntry, Split};

impl ContrarioApp {
    pub(super) fn image_list(&mut self, ui: &mut egui::Ui) {
        if self.state.project.is_none() {
            ui.label("Open a project or a folder of images from the File menu.");
            return;
        }
        let area = self.list_scroll_area(ui);
        let Some(project) = &self.state.project else {
            return;
        };
        let n = project.file.images.len();
        let mut clicked = None;
        let mut wanted = Vec::new();
        let output = area
            .id_salt("image-list")
            .show_rows(ui, ROW_HEIGHT, n, |ui, rows| {
                for i in rows {
                    let thumb = self.thumbs.get(&i);
                    if thumb.is_none() {
                        wanted.push(i);
                    }
                    let selected = self.state.selected == Some(i);
                    if image_row(ui, &project.file.images[i], thumb, selected).clicked() {
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
        let row = ROW_HEIGHT + ui.spacing().item_spacing.y;
        let visible = ui.available_height();
        let top = sel as f32 * row;
        let current = self.list_offset;
        if top < current || top + row > current + visible {
            area.vertical_scroll_offset((top - visible / 2.0 + row / 2.0).max(0.0))
        } else {
            area
        }
    }

    /// Ask the loader for the thumbnails of rows on display, and forget those far from the
    /// selection once too many are kept (they reload when scrolled back into view).
    fn request_thumbnails(&mut self, wanted: Vec<usize>) {
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

/// One row: the thumbnail (a spinner until it is decoded), the file name, and category, split and
/// kind in the kind's colour; framed when selected.
fn image_row(
    ui: &mut egui::Ui,
    e: &ImageEntry,
    thumb: Option<&TextureHandle>,
    selected: bool,
) -> egui::Response {
    let resp = ui
        .horizontal(|ui| {
            ui.set_min_height(ROW_HEIGHT);
            let side = ROW_HEIGHT - 4.0;
            match thumb {
                Some(t) => {
                    let s = t.size_vec2();
                    let scale = side / s.x.max(s.y);
                    ui.add(egui::Image::new((t.id(), s * scale)));
                }
                None => {
                    ui.add_sized([side, side], egui::Spinner::new());
                }
            }
            let split = match e.split {
                Split::Train => "train",
                Split::Test => "test",
            };
            let kind = if e.kind.is_empty() {
                String::new()
            } else {
                format!(" · {}", e.kind)
            };
            ui.vertical(|ui| {
                ui.add_space(6.0);
                let name = e
                    .path
                    .file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default();
                ui.label(RichText::new(name).strong());
                let line = format!("{}{split}{kind}", cat_prefix(&e.category));
                ui.label(RichText::new(line).small().color(kind_color(&e.kind)));
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
