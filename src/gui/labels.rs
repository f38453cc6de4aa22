//! The label layers of the image on display, kept in step with the store: their textures
//! (refreshed by rectangle after each edit), the disagreement map with everyone's outlines,
//! the check of its group of views, and the labels panel: whose layers, their pairwise IoU,
//! adjudication into the consensus, and a group whose views disagree.

use std::collections::HashMap;

use egui::{Color32, RichText, TextureHandle};

use super::ContrarioApp;
use super::layer_views::{
    ANNOTATOR_COLOURS, Disagreement, DisagreementData, DisagreementJob, GroupCheck, LabelTextures,
    LayerTexture, label_rgba, layers_in_memory,
};
use super::viewer::{CRISP, fit_texture};
use super::widgets::swatch;
use crate::app::annotation::{Compare, LabelCommand};
use crate::app::jobs::spawn_caught;
use crate::app::{AppCommand, NoticeLevel};
use crate::project::mask::LabelMask;
use crate::project::review::{self, ConsensusRule};

impl ContrarioApp {
    /// Layers decoded by the loader become the store's (no disk read when they are edited).
    pub(super) fn adopt_layers(&mut self, index: usize, masks: Vec<(String, image::GrayImage)>) {
        let Some(p) = &self.state.project else { return };
        let Some(e) = p.file.images.get(index) else {
            return;
        };
        let id = e.id.clone();
        for (who, gray) in masks {
            let mut m = LabelMask::from_gray(gray);
            crate::project::labels::normalise_foreign(&mut m, p);
            self.state.labels.adopt(&id, &who, m);
        }
    }

    /// The texture of `annotator`'s layer on the image on display (built on first use).
    pub(super) fn layer_texture(
        &mut self,
        ctx: &egui::Context,
        annotator: &str,
    ) -> Option<&TextureHandle> {
        let index = self.current.as_ref()?.index;
        if self.label_textures.image != Some(index) {
            self.label_textures = LabelTextures {
                image: Some(index),
                layers: HashMap::new(),
            };
        }
        if !self.label_textures.layers.contains_key(annotator) {
            let p = self.state.project.as_ref()?;
            let id = &p.file.images.get(index)?.id;
            let mask = self.state.labels.loaded(id, annotator)?;
            let full = label_rgba(mask, p, [0, 0, mask.width, mask.height]);
            let max = ctx.input(|i| i.max_texture_side) as u32;
            let scaled = mask.width > max || mask.height > max;
            let img = if scaled {
                let rgba = image::RgbaImage::from_raw(
                    mask.width,
                    mask.height,
                    full.pixels.iter().flat_map(|c| c.to_array()).collect(),
                )?;
                fit_texture(ctx, &rgba)
            } else {
                full
            };
            let texture = ctx.load_texture(format!("labels-{index}-{annotator}"), img, CRISP);
            self.label_textures
                .layers
                .insert(annotator.to_string(), LayerTexture { texture, scaled });
        }
        self.label_textures
            .layers
            .get(annotator)
            .map(|l| &l.texture)
    }

    /// The texture of `who`'s layer on another image of the group (compare mode; those images
    /// are not edited here, so it is built once).
    pub(super) fn view_layer_texture(
        &mut self,
        ctx: &egui::Context,
        index: usize,
        id: &str,
        who: &str,
    ) -> Option<TextureHandle> {
        let key = (index, who.to_string());
        if let Some(t) = self.compare_labels.get(&key) {
            return Some(t.clone());
        }
        let p = self.state.project.as_ref()?;
        let m = self.state.labels.loaded(id, who)?;
        let img = label_rgba(m, p, [0, 0, m.width, m.height]);
        let t = ctx.load_texture(format!("view-labels-{index}-{who}"), img, CRISP);
        self.compare_labels.insert(key, t.clone());
        Some(t)
    }

    /// Bring the textures in step with the edits made since the last frame: the changed
    /// rectangle only (the whole layer when its texture is scaled down).
    pub(super) fn apply_label_changes(&mut self) {
        for change in std::mem::take(&mut self.state.annotation.changes) {
            if self.label_textures.image != Some(change.image) {
                continue;
            }
            let Some(layer) = self.label_textures.layers.get_mut(&change.annotator) else {
                continue;
            };
            let (Some(p), true) = (&self.state.project, !layer.scaled) else {
                self.label_textures.layers.remove(&change.annotator);
                continue;
            };
            let Some(mask) = p
                .file
                .images
                .get(change.image)
                .and_then(|e| self.state.labels.loaded(&e.id, &change.annotator))
            else {
                continue;
            };
            let [x0, y0, ..] = change.bbox;
            let patch = label_rgba(mask, p, change.bbox);
            layer
                .texture
                .set_partial([x0 as usize, y0 as usize], patch, CRISP);
        }
    }

    /// The disagreement of the image on display (of its layers as they were at the last
    /// computation: a newer one is on its way after an edit).
    pub(super) fn disagreement(&self) -> Option<&Disagreement> {
        let index = self.current.as_ref()?.index;
        self.disagreement.as_ref().filter(|d| d.key.0 == index)
    }

    /// Keep the disagreement in step with the layers: computed in the background after each
    /// edit, one computation at a time, none while a stroke is drawn (its end starts one).
    pub(super) fn poll_disagreement(&mut self, ctx: &egui::Context) {
        if let Some(job) = &self.disagreement_job
            && let Ok(done) = job.rx.try_recv()
        {
            self.disagreement_job = None;
            match done {
                Ok(d) => {
                    let texture = d.rgba.as_ref().map(|img| {
                        ctx.load_texture(
                            format!("disagreement-{}", d.key.0),
                            fit_texture(ctx, img),
                            CRISP,
                        )
                    });
                    self.disagreement = Some(Disagreement {
                        key: d.key,
                        texture,
                        names: d.names,
                        outlines: d.outlines,
                        ious: d.ious,
                    });
                }
                Err(e) => self.state.notify(
                    NoticeLevel::Error,
                    format!("Disagreement not computed: {e}"),
                ),
            }
        }
        let Some(index) = self.current.as_ref().map(|c| c.index) else {
            return;
        };
        let key = (index, self.state.annotation.revision);
        let fresh = self.disagreement.as_ref().is_some_and(|d| d.key == key);
        if fresh || self.disagreement_job.is_some() || self.stroke_last.is_some() {
            return;
        }
        let layers = layers_in_memory(&self.state, index);
        let (tx, rx) = std::sync::mpsc::channel();
        let repaint = self.repaint.clone();
        spawn_caught(
            move || DisagreementData::compute(key, layers),
            move |r| {
                let _ = tx.send(r);
                repaint.request_repaint();
            },
        );
        self.disagreement_job = Some(DisagreementJob { rx });
    }

    /// Start checking the group of the image on display (in the background), or collect the
    /// check.
    pub(super) fn poll_group_check(&mut self) {
        let Some(p) = &self.state.project else { return };
        let Some(group) = self
            .state
            .selected
            .and_then(|i| p.file.images.get(i))
            .map(|e| e.group.clone())
            .filter(|g| !g.is_empty())
        else {
            self.group_check = None;
            return;
        };
        let revision = self.state.annotation.revision;
        // One check at a time, none while a stroke is drawn: a stale result stays on screen
        // until the next one is in.
        let running = self.group_check.as_ref().is_some_and(|c| c.rx.is_some());
        let stale = self
            .group_check
            .as_ref()
            .is_none_or(|c| c.group != group || c.revision != revision);
        let group_changed = self.group_check.as_ref().is_none_or(|c| c.group != group);
        if stale && (group_changed || (!running && self.stroke_last.is_none())) {
            let (tx, rx) = std::sync::mpsc::channel();
            let project = p.clone();
            let g = group.clone();
            let repaint = self.repaint.clone();
            spawn_caught(
                move || {
                    let mut store = crate::project::labels::LabelStore::new(
                        crate::project::autosave::Autosaver::new(),
                    );
                    review::group_inconsistency(&project, &mut store, &g).map_err(|e| e.to_string())
                },
                move |r| {
                    let _ = tx.send(r.and_then(|r| r));
                    repaint.request_repaint();
                },
            );
            self.group_check = Some(GroupCheck {
                group,
                revision,
                result: None,
                rx: Some(rx),
            });
        }
        if let Some(c) = &mut self.group_check
            && let Some(rx) = &c.rx
            && let Ok(r) = rx.try_recv()
        {
            c.result = Some(r);
            c.rx = None;
        }
    }

    /// The labels panel: the image's layers and their agreement, adjudication, its group.
    pub(super) fn labels_panel(&mut self, ui: &mut egui::Ui) {
        if self.current.is_none() {
            ui.label("No image");
            return;
        }
        let mut cmds = Vec::new();
        ui.heading("Labels");
        let names = self.state.project.as_ref().map(|p| {
            p.file
                .annotators
                .iter()
                .map(|a| (a.id.clone(), a.name.clone()))
                .collect::<HashMap<_, _>>()
        });
        let name = |id: &str| {
            names
                .as_ref()
                .and_then(|n| n.get(id).cloned())
                .unwrap_or_else(|| id.to_string())
        };
        if let Some(d) = self.disagreement() {
            if d.names.is_empty() {
                ui.label("Nobody labelled this image.");
            }
            for (k, a) in d.names.iter().enumerate() {
                let c = ANNOTATOR_COLOURS[k % ANNOTATOR_COLOURS.len()];
                ui.horizontal(|ui| {
                    swatch(ui, c);
                    ui.label(RichText::new(name(a)).color(c));
                });
            }
            if !d.ious.is_empty() {
                ui.separator();
                ui.label(RichText::new("Agreement (IoU)").strong());
                egui::Grid::new("iou-table").striped(true).show(ui, |ui| {
                    for pair in &d.ious {
                        ui.label(format!("{} · {}", name(&pair.a), name(&pair.b)));
                        ui.label(format!("{:.2}", pair.iou));
                        ui.end_row();
                    }
                });
            }
            if d.names.len() >= 2 {
                ui.separator();
                ui.label(RichText::new("Consensus").strong())
                    .on_hover_text("Write the consensus layer of this image; it can be edited afterwards like any layer");
                ui.horizontal_wrapped(|ui| {
                    for a in &d.names {
                        if ui.button(format!("Take {}", name(a))).clicked() {
                            cmds.push(ConsensusRule::Take(a.clone()));
                        }
                    }
                    for (label, rule) in [
                        ("Majority", ConsensusRule::Majority),
                        ("Union", ConsensusRule::Union),
                        ("Intersection", ConsensusRule::Intersection),
                    ] {
                        if ui.button(label).clicked() {
                            cmds.push(rule);
                        }
                    }
                });
            }
        }
        let mut compare = None;
        if let Some(check) = &self.group_check {
            ui.separator();
            ui.label(RichText::new(format!("Views of {}", check.group)).strong());
            match &check.result {
                None => {
                    ui.spinner();
                }
                Some(Err(e)) => {
                    ui.label(e);
                }
                Some(Ok(found)) if found.is_empty() => {
                    ui.label("Its views are labelled consistently.");
                }
                Some(Ok(found)) => {
                    for f in found {
                        ui.label(
                            RichText::new(format!(
                                "{} marked {} but not {}",
                                name(&f.annotator),
                                f.defective_views.join(", "),
                                f.clean_views.join(", ")
                            ))
                            .color(Color32::from_rgb(235, 160, 60)),
                        );
                    }
                    if ui.button("Compare the views").clicked() {
                        compare = Some(Compare::GroupViews);
                    }
                }
            }
        }
        for rule in cmds {
            self.apply(AppCommand::Label(LabelCommand::Adjudicate(rule)));
        }
        if let Some(c) = compare {
            self.apply(AppCommand::Label(LabelCommand::SetCompare(Some(c))));
        }
    }
}
