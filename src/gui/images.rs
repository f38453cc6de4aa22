//! The selected image and its label layers: requested from the background loader, turned into
//! textures when they arrive (its layers go to the label store); and the bar choosing which
//! layer is shown.

use egui::{Color32, Vec2};

use super::viewer::{CRISP, color_image, fit_texture};
use super::widgets::Thumb;
use super::{ContrarioApp, Current};
use crate::app::loader::{LoadKind, Loaded};
use crate::app::{AppCommand, NoticeLevel};

impl ContrarioApp {
    /// Decoded images and thumbnails into textures; the selected image requested.
    pub(super) fn poll_loader(&mut self, ctx: &egui::Context) {
        if self.seen_generation != self.state.generation {
            // Another project: nothing shown so far belongs to it.
            self.seen_generation = self.state.generation;
            self.loader.set_thumb_cache(
                self.state
                    .project
                    .as_ref()
                    .and_then(|p| p.thumb_cache_dir()),
            );
            self.thumbs.clear();
            self.thumbs_requested.clear();
            self.thumbs_failed.clear();
            self.current = None;
            self.full_requested = None;
            self.failed = None;
            self.heat.clear();
            self.view.fit();
        }
        for Loaded {
            generation,
            index,
            kind,
            result,
        } in self.loader.drain()
        {
            if generation != self.state.generation {
                continue;
            }
            // A file that failed and has since been read (rewritten, or written late): its
            // thumbnail is asked for again.
            if kind == LoadKind::Full && result.is_ok() && self.thumbs_failed.remove(&index) {
                self.thumbs_requested.remove(&index);
            }
            match (kind, result) {
                (LoadKind::Thumbnail, Ok(img)) => {
                    let tex =
                        ctx.load_texture(format!("thumb{index}"), color_image(&img.rgba), CRISP);
                    self.thumbs.insert(index, tex);
                }
                (LoadKind::Full, Ok(img)) if Some(index) == self.state.selected => {
                    let mut labels = Vec::new();
                    for (who, mask) in img.labels {
                        match mask {
                            Ok(m) => labels.push((who, m)),
                            Err(e) => self.state.notify(NoticeLevel::Warning, e),
                        }
                    }
                    self.adopt_layers(index, labels);
                    let display = fit_texture(ctx, &img.rgba);
                    let texture = ctx.load_texture(format!("image{index}"), display, CRISP);
                    if self
                        .current
                        .as_ref()
                        .is_none_or(|c| c.size != img.rgba.dimensions())
                    {
                        // Keep the zoom while stepping through images of one size; refit otherwise.
                        self.view.fit();
                    }
                    self.current = Some(Current {
                        index,
                        size: img.rgba.dimensions(),
                        rgba: img.rgba,
                        texture,
                    });
                }
                // The views of the group on display, for compare mode.
                (LoadKind::Full, Ok(img)) if self.compare_wanted.contains(&index) => {
                    let mut labels = Vec::new();
                    for (who, mask) in img.labels {
                        if let Ok(m) = mask {
                            labels.push((who, m));
                        }
                    }
                    self.adopt_layers(index, labels);
                    let display = fit_texture(ctx, &img.rgba);
                    let texture = ctx.load_texture(format!("view{index}"), display, CRISP);
                    self.compare_views
                        .insert(index, (texture, img.rgba.dimensions()));
                }
                (LoadKind::Full, Ok(_)) => {}
                (_, Err(e)) => {
                    if kind == LoadKind::Thumbnail {
                        self.thumbs_failed.insert(index);
                    }
                    if kind == LoadKind::Full && Some(index) == self.state.selected {
                        self.failed = Some(index);
                        self.current = None;
                    }
                    // One notice per failure, whichever of the thumbnail and the full load
                    // reports it first (they race): notify does not repeat itself.
                    self.state.notify(NoticeLevel::Error, e);
                }
            }
        }
        self.request_selected();
    }

    /// Image `index`'s thumbnail as every panel shows it (a loading one is the caller's to
    /// request).
    pub(super) fn thumb(&self, index: usize) -> Thumb<'_> {
        match self.thumbs.get(&index) {
            Some(t) => Thumb::Ready(t),
            None if self.thumbs_failed.contains(&index) => Thumb::Unreadable,
            None => Thumb::Loading,
        }
    }

    /// Ask the loader for the image (and its label masks) at `index`.
    pub(super) fn request_full(&mut self, index: usize) {
        let Some(project) = &self.state.project else {
            return;
        };
        let Some(entry) = project.file.images.get(index) else {
            return;
        };
        let labels = entry
            .labels
            .keys()
            .filter_map(|who| project.label_path(entry, who).map(|p| (who.clone(), p)))
            .collect();
        self.loader.request(
            self.state.generation,
            index,
            LoadKind::Full,
            project.image_path(entry),
            labels,
        );
    }

    fn request_selected(&mut self) {
        let Some(sel) = self.state.selected.filter(|_| self.state.project.is_some()) else {
            return;
        };
        let key = (self.state.generation, sel);
        if self.full_requested != Some(key) {
            self.full_requested = Some(key);
            self.request_full(sel);
        }
    }

    pub(super) fn layer_bar(&mut self, ui: &mut egui::Ui) {
        let Some(project) = &self.state.project else {
            return;
        };
        if project.file.annotators.is_empty() {
            return;
        }
        let mut layer = self.state.label_layer.clone();
        ui.horizontal_wrapped(|ui| {
            let name_of = |id: &Option<String>| match id {
                None => "None".to_string(),
                Some(id) => project
                    .file
                    .annotators
                    .iter()
                    .find(|a| &a.id == id)
                    .map_or(id.clone(), |a| a.name.clone()),
            };
            egui::ComboBox::from_label("labels")
                .selected_text(name_of(&layer))
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut layer, None, "None");
                    for a in &project.file.annotators {
                        ui.selectable_value(&mut layer, Some(a.id.clone()), &a.name);
                    }
                });
            ui.add(egui::Slider::new(&mut self.state.label_opacity, 0.0..=1.0).text("opacity"));
            for c in &project.file.classes {
                let [r, g, b] = c.color;
                let (swatch, _) = ui.allocate_exact_size(Vec2::splat(12.0), egui::Sense::hover());
                ui.painter()
                    .rect_filled(swatch, 2.0, Color32::from_rgb(r, g, b));
                ui.label(&c.name);
            }
        });
        if layer != self.state.label_layer {
            self.apply(AppCommand::ShowLabels(layer));
        }
    }
}
