//! The image area: the viewer with its layers (heatmap, a label layer or the disagreement map,
//! outlines), the tool in hand turned into label commands, the brush cursor and the polygon
//! being drawn, what lies under the cursor; and compare mode, 2 to 4 panes whose zoom and pan
//! move together.

use egui::{Color32, Pos2, Stroke, Vec2};

use super::ContrarioApp;
use super::heatmap::draw_regions;
use super::layer_views::{ANNOTATOR_COLOURS, draw_outlines, layers_in_memory};
use super::viewer::{self, Layer, Picture};
use crate::app::AppCommand;
use crate::app::annotation::{Compare, LabelCommand, Tool};
use crate::app::detection::readout;

/// Panes at most in compare mode.
const MAX_PANES: usize = 4;

/// The room left for the image: what the layout offers, never beyond what is visible (a bar
/// wider than the window must not widen the image past the panel beside it).
fn canvas_size(ui: &egui::Ui) -> Vec2 {
    let visible = ui.clip_rect().right() - ui.cursor().min.x;
    Vec2::new(
        ui.available_width().min(visible).max(1.0),
        ui.available_height().max(1.0),
    )
}

impl ContrarioApp {
    /// The image area: compare mode's panes, or the one viewer.
    pub(super) fn canvas(&mut self, ui: &mut egui::Ui) {
        self.hovered = None;
        let Some(cur) = &self.current else {
            let text = if self.failed.is_some() && self.failed == self.state.selected {
                "This image cannot be displayed (see the notice above)."
            } else if self.state.selected.is_some() {
                ""
            } else {
                "No image selected"
            };
            ui.centered_and_justified(|ui| {
                if text.is_empty() {
                    ui.spinner();
                } else {
                    ui.label(text);
                }
            });
            return;
        };
        let index = cur.index;
        if self.drawn_compare != self.state.annotation.compare {
            self.drawn_compare = self.state.annotation.compare;
            self.view.fit();
        }
        match self.state.annotation.compare {
            Some(mode) => self.compare(ui, index, mode),
            None => self.single_view(ui, index),
        }
    }

    fn single_view(&mut self, ui: &mut egui::Ui, index: usize) {
        self.drawn_result = None;
        let ctx = ui.ctx().clone();
        let show_disagreement = self.state.annotation.show_disagreement;
        let outlines = if show_disagreement {
            self.disagreement().map(|d| d.outlines.clone())
        } else {
            None
        };
        let disagreement_tex = if show_disagreement {
            self.disagreement().and_then(|d| d.texture.clone())
        } else {
            None
        };
        let label_tex = match (&self.state.label_layer, show_disagreement) {
            (Some(who), false) => {
                let who = who.clone();
                self.layer_texture(&ctx, &who).cloned()
            }
            _ => None,
        };
        let Some(cur) = &self.current else { return };
        let mut layers: Vec<Layer> = Vec::new();
        if let Some(t) = self.heat.get(&index).filter(|_| self.state.show_heatmap) {
            layers.push(Layer {
                texture: t.get(self.state.heatmap_kind).0,
                opacity: self.state.heatmap_opacity,
            });
        }
        if let Some(t) = disagreement_tex.as_ref().or(label_tex.as_ref()) {
            layers.push(Layer {
                texture: t,
                opacity: self.state.label_opacity,
            });
        }
        let size = Vec2::new(cur.size.0 as f32, cur.size.1 as f32);
        let tool = self.state.annotation.tool;
        let room = canvas_size(ui);
        let picture = Picture {
            texture: &cur.texture,
            size,
            layers: &layers,
        };
        let out = viewer::show(
            ui,
            &mut self.view,
            &picture,
            tool == Tool::Navigate,
            Some(room),
            "Image viewer",
        );
        self.hovered = out.hovered_pixel.map(|(x, y)| (index, x, y));
        self.view_rect = Some(out.view);
        if let Some(d) = self.state.detections.get(&index) {
            draw_regions(ui, &self.view, out.view, size, d);
            // What this frame showed of the result (the keyboard review's benchmark reads it).
            let heat = !self.state.show_heatmap || self.heat.contains_key(&index);
            if heat && d.traced_at == self.state.nfa_threshold {
                self.drawn_result = Some((index, d.serial));
            }
        }
        if let Some(o) = &outlines {
            draw_outlines(ui, &self.view, out.view, o);
        }
        if let Some((_, [x0, y0, x1, y1])) = self.issue_box.filter(|b| b.0 == index) {
            // The label issue opened from the issues panel.
            let r = egui::Rect::from_min_max(
                self.view
                    .to_screen(out.view, Pos2::new(x0 as f32, y0 as f32)),
                self.view
                    .to_screen(out.view, Pos2::new(x1 as f32, y1 as f32)),
            );
            ui.painter_at(out.view).rect_stroke(
                r.expand(3.0),
                2.0,
                egui::Stroke::new(2.0, egui::Color32::from_rgb(255, 200, 80)),
                egui::StrokeKind::Outside,
            );
        }
        self.tool_input(ui, &out, size);
        self.heat_legend_overlay(ui, out.view);
        self.pointer_readout(ui, out.view, index);
    }

    /// What lies under the pointer (the pixel and its colour, what the detector says there, the
    /// region and the labels) over the view's bottom right corner, or its top right corner while
    /// the pointer is where the box would be: beside what is pointed at, never over it, and
    /// never cut as a status bar cuts a long line. Its labels sense no clicks, so the viewer
    /// under them stays hovered.
    fn pointer_readout(&mut self, ui: &mut egui::Ui, view: egui::Rect, index: usize) {
        let Some((_, x, y)) = self.hovered.filter(|h| h.0 == index) else {
            return;
        };
        let Some(cur) = &self.current else { return };
        let Some(px) = cur.rgba.get_pixel_checked(x, y) else {
            return;
        };
        let px = px.0;
        let mut lines = vec![format!("({x}, {y}) RGB {} {} {}", px[0], px[1], px[2])];
        if let Some(d) = self.state.detections.get(&index) {
            lines.push(readout(&d.log_nfa, d.score.as_ref(), (x, y), cur.size));
        }
        lines.extend(self.hover_text(index));
        let margin = 8.0;
        let bottom = egui::Rect::from_min_max(
            view.right_bottom() - self.readout_size - Vec2::splat(margin),
            view.right_bottom(),
        );
        let pointer = ui.ctx().pointer_hover_pos();
        let layout = if pointer.is_some_and(|p| bottom.expand(margin).contains(p)) {
            egui::Layout::top_down(egui::Align::Max)
        } else {
            // The box's content inherits the layout: from the bottom, the last line first.
            lines.reverse();
            egui::Layout::bottom_up(egui::Align::Max)
        };
        let mut child = ui.new_child(
            egui::UiBuilder::new()
                .max_rect(view.shrink(margin))
                .layout(layout),
        );
        let shown = egui::Frame::new()
            .fill(Color32::from_black_alpha(170))
            .inner_margin(4.0)
            .corner_radius(3.0)
            .show(&mut child, |ui| {
                ui.spacing_mut().item_spacing.y = 2.0;
                for line in lines {
                    let text = egui::RichText::new(line).color(Color32::from_gray(235));
                    ui.add(egui::Label::new(text).selectable(false));
                }
            });
        self.readout_size = shown.response.rect.size();
    }

    /// The tool in hand: drags, clicks and double-clicks on the image become label commands;
    /// the brush's footprint and the polygon so far are drawn.
    fn tool_input(&mut self, ui: &egui::Ui, out: &viewer::ViewerOutput, size: Vec2) {
        let resp = &out.response;
        let to_image = |p: Pos2| {
            let q = self.view.to_image(out.view, p);
            [q.x, q.y]
        };
        let primary = egui::PointerButton::Primary;
        let mut cmds = Vec::new();
        let a = &self.state.annotation;
        match a.tool {
            Tool::Brush | Tool::Eraser => {
                if resp.drag_started_by(primary) {
                    let origin = ui.input(|i| i.pointer.press_origin());
                    if let Some(p) = origin.or(resp.interact_pointer_pos()) {
                        let p = to_image(p);
                        cmds.push(LabelCommand::Stroke(vec![p]));
                        self.stroke_last = Some(p);
                    }
                }
                if resp.dragged_by(primary)
                    && let (Some(last), Some(p)) = (self.stroke_last, resp.interact_pointer_pos())
                {
                    let p = to_image(p);
                    if p != last {
                        cmds.push(LabelCommand::Stroke(vec![last, p]));
                        self.stroke_last = Some(p);
                    }
                }
                if resp.drag_stopped_by(primary) {
                    cmds.push(LabelCommand::EndStroke);
                    self.stroke_last = None;
                } else if resp.clicked_by(primary)
                    && let Some(p) = resp.interact_pointer_pos()
                {
                    cmds.push(LabelCommand::Stroke(vec![to_image(p)]));
                    cmds.push(LabelCommand::EndStroke);
                }
            }
            Tool::Polygon => {
                if resp.double_clicked() {
                    cmds.push(LabelCommand::ClosePolygon);
                } else if resp.clicked_by(primary)
                    && let Some(p) = resp.interact_pointer_pos()
                {
                    cmds.push(LabelCommand::PolygonPoint(to_image(p)));
                }
            }
            Tool::Fill | Tool::AcceptRegion | Tool::CopyRegion => {
                if resp.clicked_by(primary)
                    && let Some(p) = resp.interact_pointer_pos()
                {
                    let [x, y] = to_image(p);
                    if x >= 0.0 && y >= 0.0 && x < size.x && y < size.y {
                        cmds.push(LabelCommand::ClickAt([x as u32, y as u32]));
                    }
                }
            }
            Tool::Navigate => {}
        }
        // The brush's footprint and the polygon so far.
        let painter = ui.painter_at(out.view);
        if matches!(a.tool, Tool::Brush | Tool::Eraser)
            && let Some(h) = resp.hover_pos()
        {
            let r = (a.brush_radius - 0.5).max(0.5) * self.view.zoom;
            painter.circle_stroke(h, r, Stroke::new(1.5, Color32::WHITE));
            painter.circle_stroke(h, r + 1.5, Stroke::new(1.0, Color32::BLACK));
        }
        if !a.polygon.is_empty() {
            let mut pts: Vec<Pos2> = a
                .polygon
                .iter()
                .map(|p| self.view.to_screen(out.view, egui::pos2(p[0], p[1])))
                .collect();
            if let Some(h) = resp.hover_pos() {
                pts.push(h);
            }
            painter.add(egui::Shape::line(
                pts,
                Stroke::new(2.0, Color32::from_rgb(255, 220, 80)),
            ));
        }
        for c in cmds {
            self.apply(AppCommand::Label(c));
        }
    }

    /// What lies under the cursor: the detected region (area, log10 NFA, the scales that found
    /// it) and the labels (annotator and class).
    fn hover_text(&self, index: usize) -> Option<String> {
        let (_, x, y) = self.hovered.filter(|h| h.0 == index)?;
        let cur = self.current.as_ref()?;
        let p = self.state.project.as_ref()?;
        let mut parts = Vec::new();
        if let Some(d) = self.state.detections.get(&index) {
            let (mh, mw) = d.log_nfa.dim();
            let gy = (y as usize * mh / cur.size.1 as usize).min(mh - 1);
            let gx = (x as usize * mw / cur.size.0 as usize).min(mw - 1);
            let cell = (gy * mw + gx) as u32;
            if let Some(r) = d.regions.iter().find(|r| r.pixels.contains(&cell)) {
                let (iw, ih) = (cur.size.0 as f64 / mw as f64, cur.size.1 as f64 / mh as f64);
                let area = (r.area as f64 * iw * ih).round();
                let mut text = format!("region: {area} px · log10 NFA {:.1}", r.log10_nfa);
                if let Some(scales) = &d.scales {
                    let mut found: Vec<u8> = r
                        .pixels
                        .iter()
                        .map(|&i| scales[(i as usize / mw, i as usize % mw)])
                        .collect();
                    found.sort();
                    found.dedup();
                    let names: Vec<String> = found.iter().map(|s| (s + 1).to_string()).collect();
                    text.push_str(&format!(" · scale {}", names.join(", ")));
                }
                parts.push(text);
            }
        }
        let e = p.file.images.get(index)?;
        for a in &p.file.annotators {
            if let Some(m) = self.state.labels.loaded(&e.id, &a.id)
                && x < m.width
                && y < m.height
            {
                let v = m.get(x, y);
                if v != 0 {
                    let class = p.class(v).map_or(format!("class {v}"), |c| c.name.clone());
                    parts.push(format!("{}: {class}", a.name));
                }
            }
        }
        (!parts.is_empty()).then(|| parts.join(" · "))
    }

    /// Compare mode: the annotators of the image, or the views of its group, side by side; one
    /// view state, so zoom and pan move together.
    fn compare(&mut self, ui: &mut egui::Ui, index: usize, mode: Compare) {
        let ctx = ui.ctx().clone();
        let Some(cur) = &self.current else { return };
        let base = (cur.texture.clone(), cur.size);
        // Panes: (title, base texture and size, label texture, whether it shows the selected
        // image: there the pointer's readout is drawn).
        let mut panes = Vec::new();
        match mode {
            Compare::Annotators => {
                let names: Vec<String> = layers_in_memory(&self.state, index)
                    .into_iter()
                    .map(|(a, _)| a)
                    .take(MAX_PANES)
                    .collect();
                for a in names {
                    let tex = self.layer_texture(&ctx, &a).cloned();
                    let title = self
                        .state
                        .project
                        .as_ref()
                        .and_then(|p| p.annotator(&a))
                        .map_or(a.clone(), |an| an.name.clone());
                    panes.push((title, base.clone(), tex, true));
                }
            }
            Compare::GroupViews => {
                let Some(p) = &self.state.project else { return };
                let group = p.file.images[index].group.clone();
                let views: Vec<(usize, String)> = p
                    .file
                    .images
                    .iter()
                    .enumerate()
                    .filter(|(_, e)| !group.is_empty() && e.group == group)
                    .map(|(i, e)| (i, e.id.clone()))
                    .take(MAX_PANES)
                    .collect();
                let shown = self.state.label_layer.clone();
                for (i, id) in views {
                    let view = if i == index {
                        Some(base.clone())
                    } else {
                        if self.compare_wanted.insert(i) {
                            self.request_full(i);
                        }
                        self.compare_views.get(&i).cloned()
                    };
                    let Some(view) = view else {
                        panes.push((id, base.clone(), None, false));
                        continue;
                    };
                    let tex = shown
                        .as_ref()
                        .and_then(|who| self.view_layer_texture(&ctx, i, &id, who));
                    panes.push((id, view, tex, i == index));
                }
            }
        }
        if panes.len() < 2 {
            ui.label(match mode {
                Compare::Annotators => {
                    "Fewer than two annotators labelled this image: nothing to compare."
                }
                Compare::GroupViews => "This image is in no group of views.",
            });
            return;
        }
        let n = panes.len() as f32;
        let spacing = ui.spacing().item_spacing.x;
        let room = canvas_size(ui);
        let pane = Vec2::new((room.x - spacing * (n - 1.0)) / n, room.y - 22.0);
        ui.horizontal(|ui| {
            for (k, (title, (texture, size), label, selected)) in panes.iter().enumerate() {
                ui.vertical(|ui| {
                    let colour = ANNOTATOR_COLOURS[k % ANNOTATOR_COLOURS.len()];
                    ui.label(egui::RichText::new(title).color(colour).strong());
                    let layers: Vec<Layer> = label
                        .iter()
                        .map(|t| Layer {
                            texture: t,
                            opacity: self.state.label_opacity,
                        })
                        .collect();
                    let picture = Picture {
                        texture,
                        size: Vec2::new(size.0 as f32, size.1 as f32),
                        layers: &layers,
                    };
                    let out = viewer::show(
                        ui,
                        &mut self.view,
                        &picture,
                        true,
                        Some(pane),
                        &format!("Compare pane {}", k + 1),
                    );
                    if *selected && let Some((x, y)) = out.hovered_pixel {
                        self.hovered = Some((index, x, y));
                        self.pointer_readout(ui, out.view, index);
                    }
                });
            }
        });
    }
}
