//! Label commands applied to the project's layers: every edit goes through the project's
//! `LabelStore` (undo history, audit trail, autosave) and is reported as a changed rectangle for
//! the window to refresh. Edits that cannot be made say why in a notice.

use super::annotation::{BRUSH_MAX, BRUSH_MIN, LabelChange, LabelCommand, Tool};
use super::{AppState, NoticeLevel};
use crate::project::labels::{Edit, EditOutcome, LabelError};
use crate::project::review;

impl AppState {
    pub(super) fn apply_label(&mut self, cmd: LabelCommand) {
        match cmd {
            LabelCommand::SetTool(t) => {
                if t != Tool::Polygon {
                    self.annotation.polygon.clear();
                }
                self.annotation.tool = t;
            }
            LabelCommand::SetBrushRadius(r) => {
                if r.is_finite() {
                    self.annotation.brush_radius = r.clamp(BRUSH_MIN, BRUSH_MAX);
                }
            }
            LabelCommand::SetClass(c) => {
                if self.project.as_ref().is_some_and(|p| p.class(c).is_some()) {
                    self.annotation.class = c;
                }
            }
            LabelCommand::SetAnnotator(a) => self.set_annotator(a),
            LabelCommand::AddAnnotator(name) => self.add_annotator(&name),
            LabelCommand::SetCopySource(a) => self.annotation.copy_from = a,
            LabelCommand::Stroke(points) => {
                let radius = self.annotation.brush_radius;
                let edit = match self.annotation.tool {
                    Tool::Eraser => Edit::Erase { radius, points },
                    _ => Edit::Brush {
                        class: self.annotation.class,
                        radius,
                        points,
                    },
                };
                self.edit(edit);
            }
            LabelCommand::EndStroke => {
                if let (Some(id), Some(a)) = (self.selected_id(), &self.annotation.annotator) {
                    self.labels.end_stroke(&id, a);
                    if let Some(i) = self.selected {
                        self.review.stale_images.insert(i);
                    }
                }
            }
            LabelCommand::PolygonPoint(p) => self.annotation.polygon.push(p),
            LabelCommand::ClosePolygon => {
                let points = std::mem::take(&mut self.annotation.polygon);
                if points.len() >= 3 {
                    let class = self.annotation.class;
                    self.edit(Edit::Polygon { class, points });
                }
            }
            LabelCommand::CancelPolygon => self.annotation.polygon.clear(),
            LabelCommand::ClickAt(p) => self.click_at(p),
            LabelCommand::Undo => self.undo_redo(true),
            LabelCommand::Redo => self.undo_redo(false),
            LabelCommand::Adjudicate(rule) => self.adjudicate(&rule),
            LabelCommand::ShowDisagreement(on) => self.annotation.show_disagreement = on,
            LabelCommand::SetCompare(c) => self.annotation.compare = c,
        }
    }

    /// The id of the selected image.
    pub fn selected_id(&self) -> Option<String> {
        let p = self.project.as_ref()?;
        Some(p.file.images.get(self.selected?)?.id.clone())
    }

    /// Why labels cannot be edited here, if they cannot.
    pub fn why_read_only(&self) -> Option<String> {
        let p = self.project.as_ref()?;
        if self.read_only {
            Some("the project is open in another Contrario: it is read-only here".into())
        } else if !p.saved {
            Some(
                "a folder of images is not a project: import it (contrario import --format folder) to label it"
                    .into(),
            )
        } else if !self.writable() {
            Some("the bundled demo is kept as shipped: File > Work on a copy of the demo".into())
        } else {
            None
        }
    }

    fn set_annotator(&mut self, a: Option<String>) {
        if let Some(id) = &a
            && self
                .project
                .as_ref()
                .is_none_or(|p| p.annotator(id).is_none())
        {
            self.notify(NoticeLevel::Warning, format!("No annotator {id:?} here"));
            return;
        }
        // Editing a layer means seeing it.
        if a.is_some() {
            self.label_layer = a.clone();
        }
        self.annotation.annotator = a;
    }

    fn add_annotator(&mut self, name: &str) {
        let name = name.trim();
        let id: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect();
        if id.trim_matches('_').is_empty() {
            self.notify(
                NoticeLevel::Warning,
                format!("{name:?} is no annotator name: use letters or digits"),
            );
            return;
        }
        if let Some(why) = self.why_read_only() {
            self.notify(NoticeLevel::Warning, format!("No annotator added: {why}"));
            return;
        }
        let Some(p) = &mut self.project else { return };
        p.ensure_annotator(&id, name);
        self.labels.saver().save_project(p);
        self.set_annotator(Some(id));
    }

    /// Apply an edit to the active layer of the selected image, or say why not.
    pub(super) fn edit(&mut self, edit: Edit) {
        let Some((id, annotator)) = self.editable_target() else {
            return;
        };
        let stroke = matches!(edit, Edit::Brush { .. } | Edit::Erase { .. });
        let Some(p) = &mut self.project else { return };
        let result = self.labels.edit(p, &id, &annotator, edit);
        self.report_edit(annotator, result.map(Some), stroke);
    }

    /// The selected image and the active layer, when labels can be edited there (else a
    /// notice says why).
    fn editable_target(&mut self) -> Option<(String, String)> {
        let id = self.selected_id()?;
        if let Some(why) = self.why_read_only() {
            self.notify(NoticeLevel::Warning, format!("Labels not changed: {why}"));
            return None;
        }
        let Some(a) = self.annotation.annotator.clone() else {
            self.notify(
                NoticeLevel::Warning,
                "Labels not changed: choose whose layer to edit (the annotator menu), or add yourself",
            );
            return None;
        };
        Some((id, a))
    }

    /// A change made: the window refreshes its rectangle, and the image's review facts are
    /// recomputed (after the stroke, for a piece of one).
    fn report_edit(
        &mut self,
        annotator: String,
        result: Result<Option<EditOutcome>, LabelError>,
        stroke: bool,
    ) {
        match result {
            Ok(Some(EditOutcome {
                bbox: Some(bbox), ..
            })) => {
                if let Some(image) = self.selected {
                    let change = LabelChange {
                        image,
                        annotator,
                        bbox,
                    };
                    self.labels_changed(&change, stroke);
                    self.annotation.changes.push(change);
                }
                self.annotation.revision += 1;
            }
            Ok(_) => {}
            Err(e) => self.notify(NoticeLevel::Warning, format!("Labels not changed: {e}")),
        }
    }

    fn click_at(&mut self, [x, y]: [u32; 2]) {
        let class = self.annotation.class;
        match self.annotation.tool {
            Tool::Fill => self.edit(Edit::Flood {
                class,
                seed: [x, y],
            }),
            Tool::AcceptRegion => match self.detected_region_at(x, y) {
                Some((pixels, log10_nfa)) => self.edit(Edit::AcceptRegion {
                    class,
                    log10_nfa,
                    pixels,
                }),
                None => self.notify(
                    NoticeLevel::Info,
                    "No detected region there at this NFA level: click inside an outline",
                ),
            },
            Tool::CopyRegion => {
                let from = self
                    .annotation
                    .copy_from
                    .clone()
                    .or_else(|| self.label_layer.clone())
                    .filter(|f| Some(f) != self.annotation.annotator.as_ref());
                match from {
                    Some(from) => self.edit(Edit::CopyRegion { from, seed: [x, y] }),
                    None => self.notify(
                        NoticeLevel::Info,
                        "Choose whose label to copy (the copy tool's menu)",
                    ),
                }
            }
            _ => {}
        }
    }

    /// The pixels (image raster indices) of the detected region under image pixel (x, y), at
    /// the NFA level, with its log10 NFA.
    fn detected_region_at(&mut self, x: u32, y: u32) -> Option<(Vec<u32>, f32)> {
        let sel = self.selected?;
        let (w, h) = self.selected_size()?;
        let d = self.detections.get(&sel)?;
        let (mh, mw) = d.log_nfa.dim();
        let cell = |x: u32, y: u32| {
            let gy = (y as usize * mh / h as usize).min(mh - 1);
            let gx = (x as usize * mw / w as usize).min(mw - 1);
            gy * mw + gx
        };
        let r = d
            .regions
            .iter()
            .find(|r| r.pixels.contains(&(cell(x, y) as u32)))?;
        let mut inside = vec![false; mh * mw];
        for &i in &r.pixels {
            inside[i as usize] = true;
        }
        let [bx0, by0, bx1, by1] = r.bbox;
        let (x0, x1) = (
            bx0 * w as usize / mw,
            (bx1 * w as usize).div_ceil(mw).min(w as usize),
        );
        let (y0, y1) = (
            by0 * h as usize / mh,
            (by1 * h as usize).div_ceil(mh).min(h as usize),
        );
        let pixels = (y0..y1)
            .flat_map(|py| (x0..x1).map(move |px| (px as u32, py as u32)))
            .filter(|&(px, py)| inside[cell(px, py)])
            .map(|(px, py)| py * w + px)
            .collect();
        Some((pixels, r.log10_nfa))
    }

    /// The selected image's size, from its label layers in memory or its file's header.
    pub fn selected_size(&self) -> Option<(u32, u32)> {
        let p = self.project.as_ref()?;
        let e = p.file.images.get(self.selected?)?;
        crate::project::imaging::image_size(&p.image_path(e)).ok()
    }

    fn undo_redo(&mut self, undo: bool) {
        let Some((id, annotator)) = self.editable_target() else {
            return;
        };
        let Some(p) = &mut self.project else { return };
        let result = if undo {
            self.labels.undo(p, &id, &annotator)
        } else {
            self.labels.redo(p, &id, &annotator)
        };
        if matches!(result, Ok(None)) {
            let what = if undo { "undo" } else { "redo" };
            self.notify(
                NoticeLevel::Info,
                format!("Nothing to {what} on this layer"),
            );
        }
        self.report_edit(annotator, result, false);
    }

    fn adjudicate(&mut self, rule: &review::ConsensusRule) {
        let Some(id) = self.selected_id() else { return };
        if let Some(why) = self.why_read_only() {
            self.notify(NoticeLevel::Warning, format!("No consensus written: {why}"));
            return;
        }
        let Some(p) = &mut self.project else { return };
        let result = review::adjudicate(p, &mut self.labels, &id, rule);
        if result.is_ok() {
            self.label_layer = Some(review::CONSENSUS.into());
        }
        self.report_edit(review::CONSENSUS.into(), result.map(Some), false);
    }

    /// What the next undo on the active layer undoes ("brush", "polygon", ...), if anything.
    pub fn undo_name(&self) -> Option<&'static str> {
        let (id, a) = (self.selected_id()?, self.annotation.annotator.as_ref()?);
        self.labels.history(&id, a)?.next_undo()
    }

    /// What the next redo redoes, if anything.
    pub fn redo_name(&self) -> Option<&'static str> {
        let (id, a) = (self.selected_id()?, self.annotation.annotator.as_ref()?);
        self.labels.history(&id, a)?.next_redo()
    }
}
