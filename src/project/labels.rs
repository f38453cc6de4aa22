//! Label editing: a label mask holds a defect class per pixel (0 = normal). Edits (brush, eraser,
//! polygon, flood fill, accepting a detected region, copying a region from another annotator)
//! record the pixels they change, so undo/redo per image is exact and cheap, and a stroke of many
//! brush dabs is one undo step. Every change goes to the audit trail.
//!
//! [`LabelStore`] keeps the layers being edited and hands every change to the [`Autosaver`]
//! thread, which writes it atomically within a fraction of a second.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::autosave::Autosaver;
use super::mask::{Change, LabelMask, bbox_of};
use super::storage::{iso8601, now_ms, read_jsonl};
use super::{Annotator, Project, imaging};

/// An editing operation, in image pixel coordinates (pixel (x, y) covers [x, x+1) x [y, y+1)).
#[derive(Debug, Clone, PartialEq)]
pub enum Edit {
    /// One piece of a brush stroke (the stroke is one undo step; see [`LabelStore::end_stroke`]).
    Brush {
        class: u8,
        radius: f32,
        points: Vec<[f32; 2]>,
    },
    Erase {
        radius: f32,
        points: Vec<[f32; 2]>,
    },
    Polygon {
        class: u8,
        points: Vec<[f32; 2]>,
    },
    /// Fill the 4-connected area of the seed's class with `class`.
    Flood {
        class: u8,
        seed: [u32; 2],
    },
    /// Take a region the detector found (its pixels in image raster indices).
    AcceptRegion {
        class: u8,
        log10_nfa: f32,
        pixels: Vec<u32>,
    },
    /// Copy the labelled region under `seed` from another annotator's layer, with its classes.
    CopyRegion {
        from: String,
        seed: [u32; 2],
    },
    /// Replace the whole layer (adjudication); `source` says where it came from.
    Replace {
        source: String,
        mask: LabelMask,
    },
}

impl Edit {
    pub fn name(&self) -> &'static str {
        match self {
            Edit::Brush { .. } => "brush",
            Edit::Erase { .. } => "erase",
            Edit::Polygon { .. } => "polygon",
            Edit::Flood { .. } => "flood_fill",
            Edit::AcceptRegion { .. } => "accept_region",
            Edit::CopyRegion { .. } => "copy_region",
            Edit::Replace { .. } => "replace",
        }
    }

    /// What the audit trail keeps: the parameters, without pixel lists.
    fn detail(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            Edit::Brush {
                class,
                radius,
                points,
            } => json!({"class": class, "radius": radius, "points": points.len()}),
            Edit::Erase { radius, points } => json!({"radius": radius, "points": points.len()}),
            Edit::Polygon { class, points } => json!({"class": class, "vertices": points}),
            Edit::Flood { class, seed } => json!({"class": class, "seed": seed}),
            Edit::AcceptRegion {
                class,
                log10_nfa,
                pixels,
            } => json!({"class": class, "log10_nfa": log10_nfa, "area": pixels.len()}),
            Edit::CopyRegion { from, seed } => json!({"from": from, "seed": seed}),
            Edit::Replace { source, .. } => json!({"source": source}),
        }
    }
}

struct Step {
    op: &'static str,
    changes: Vec<Change>,
}

/// Undo/redo of one layer. Steps keep only changed pixels.
#[derive(Default)]
pub struct History {
    undo: Vec<Step>,
    redo: Vec<Step>,
    /// The stroke in progress: its pieces accumulate here until it ends.
    open: Option<Step>,
}

/// Undo steps kept per layer; older ones are dropped (the files on disk are unaffected).
pub const UNDO_DEPTH: usize = 500;

impl History {
    pub fn can_undo(&self) -> bool {
        self.open.is_some() || !self.undo.is_empty()
    }
    pub fn can_redo(&self) -> bool {
        !self.redo.is_empty()
    }
    /// What an undo would undo ("brush", "polygon", ...): the open stroke or the last step.
    pub fn next_undo(&self) -> Option<&'static str> {
        self.open
            .as_ref()
            .filter(|s| !s.changes.is_empty())
            .or(self.undo.last())
            .map(|s| s.op)
    }
    /// What a redo would redo.
    pub fn next_redo(&self) -> Option<&'static str> {
        self.redo.last().map(|s| s.op)
    }
    fn close(&mut self) {
        if let Some(s) = self.open.take()
            && !s.changes.is_empty()
        {
            self.undo.push(s);
            if self.undo.len() > UNDO_DEPTH {
                self.undo.remove(0);
            }
        }
    }
}

/// A layer being edited: one annotator's mask of one image.
pub struct Layer {
    pub mask: LabelMask,
    pub history: History,
}

/// One line of the audit trail (`journal/audit.jsonl`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Milliseconds since the Unix epoch, and the same instant in ISO 8601 (UTC).
    pub time_ms: u64,
    pub time: String,
    pub annotator: String,
    pub image: String,
    pub op: String,
    #[serde(default)]
    pub detail: serde_json::Value,
    pub pixels_changed: usize,
}

pub const AUDIT_FILE: &str = "journal/audit.jsonl";

/// The audit trail of a project, oldest first. A torn last line (power cut) is skipped.
pub fn read_audit(root: &Path) -> std::io::Result<Vec<AuditEntry>> {
    read_jsonl(&root.join(AUDIT_FILE))
}

#[derive(Debug, thiserror::Error)]
pub enum LabelError {
    #[error("no image {0:?} in the project")]
    NoImage(String),
    #[error("no annotator {0:?} in the project")]
    NoAnnotator(String),
    #[error("annotator {0:?} is read-only (imported ground truth): edit your own layer")]
    ReadOnly(String),
    #[error("{annotator:?} has no label on {image:?} to copy from")]
    NothingToCopy { annotator: String, image: String },
    #[error("class {0} is not a defect class of the project")]
    UnknownClass(u8),
    #[error(transparent)]
    Image(#[from] imaging::ImageLoadError),
    #[error("replacement mask is {found:?}, the image is {expected:?}")]
    WrongSize {
        found: (u32, u32),
        expected: (u32, u32),
    },
}

/// The result of an edit, undo or redo.
#[derive(Debug, Clone, PartialEq)]
pub struct EditOutcome {
    pub pixels_changed: usize,
    /// Bounding box [x0, y0, x1, y1) of the change, for the viewer to refresh; None if nothing.
    pub bbox: Option<[u32; 4]>,
}

fn outcome(changes: &[Change], width: u32) -> EditOutcome {
    EditOutcome {
        pixels_changed: changes.len(),
        bbox: (!changes.is_empty()).then(|| bbox_of(changes.iter().map(|c| c.idx), width)),
    }
}

/// Where a person's layer of an image is stored, relative to the project.
pub fn layer_rel_path(annotator: &str, image_id: &str) -> PathBuf {
    let safe = |s: &str| {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                    c
                } else {
                    '_'
                }
            })
            .collect::<String>()
    };
    PathBuf::from("labels")
        .join(safe(annotator))
        .join(format!("{}.png", safe(image_id)))
}

/// The layers being edited in a project, their undo histories, and the autosaver that writes
/// every change. Methods take the project so that new layers are registered in `project.ron`.
pub struct LabelStore {
    layers: HashMap<(String, String), Layer>,
    saver: Autosaver,
    /// Mask files the saver has a whole copy of: later edits hand it only their rectangle.
    saver_has: std::collections::HashSet<PathBuf>,
}

impl LabelStore {
    pub fn new(saver: Autosaver) -> Self {
        Self {
            layers: HashMap::new(),
            saver,
            saver_has: Default::default(),
        }
    }

    pub fn saver(&self) -> &Autosaver {
        &self.saver
    }

    /// Write everything pending now and wait for it (before closing, and in tests).
    pub fn flush(&self) -> Vec<String> {
        self.saver.flush()
    }

    /// Forget the layers (another project was opened); flush first.
    pub fn clear(&mut self) {
        self.layers.clear();
        self.saver_has.clear();
    }

    /// Take a mask decoded elsewhere (the window's background loader) as the layer of an
    /// annotator on an image, unless that layer is already being edited: no disk read later.
    pub fn adopt(&mut self, image_id: &str, annotator: &str, mask: LabelMask) {
        self.layers
            .entry((image_id.to_string(), annotator.to_string()))
            .or_insert(Layer {
                mask,
                history: History::default(),
            });
    }

    /// A layer's mask if it is in memory (no disk access).
    pub fn loaded(&self, image_id: &str, annotator: &str) -> Option<&LabelMask> {
        self.layers
            .get(&(image_id.to_string(), annotator.to_string()))
            .map(|l| &l.mask)
    }

    /// An annotator's mask of an image as currently edited (loaded from disk on first use; an
    /// image without a label from that annotator gives an empty mask of the image's size).
    pub fn mask(
        &mut self,
        project: &Project,
        image_id: &str,
        annotator: &str,
    ) -> Result<&LabelMask, LabelError> {
        Ok(&self.layer(project, image_id, annotator)?.mask)
    }

    /// A mask as stored or being edited, without creating a layer: None when the annotator has
    /// not labelled the image.
    pub fn existing_mask(
        &mut self,
        project: &Project,
        image_id: &str,
        annotator: &str,
    ) -> Result<Option<LabelMask>, LabelError> {
        let key = (image_id.to_string(), annotator.to_string());
        if let Some(l) = self.layers.get(&key) {
            return Ok(Some(l.mask.clone()));
        }
        stored_mask(project, find_image(project, image_id)?, annotator)
    }

    /// What an annotator says about an image: their mask, an empty one for a read-only dataset
    /// ground truth without a file (it covers every image: no file means clean), or None when a
    /// person has not labelled the image.
    pub fn opinion(
        &mut self,
        project: &Project,
        image_id: &str,
        annotator: &str,
    ) -> Result<Option<LabelMask>, LabelError> {
        if let Some(m) = self.existing_mask(project, image_id, annotator)? {
            return Ok(Some(m));
        }
        if !project.annotator(annotator).is_some_and(|a| a.read_only) {
            return Ok(None);
        }
        let (w, h) = imaging::image_size(&project.image_path(find_image(project, image_id)?))?;
        Ok(Some(LabelMask::new(w, h)))
    }

    fn layer(
        &mut self,
        project: &Project,
        image_id: &str,
        annotator: &str,
    ) -> Result<&mut Layer, LabelError> {
        let key = (image_id.to_string(), annotator.to_string());
        if !self.layers.contains_key(&key) {
            let mask = match self.existing_mask(project, image_id, annotator)? {
                Some(m) => m,
                None => {
                    let entry = find_image(project, image_id)?;
                    let (w, h) = imaging::image_size(&project.image_path(entry))?;
                    LabelMask::new(w, h)
                }
            };
            self.layers.insert(
                key.clone(),
                Layer {
                    mask,
                    history: History::default(),
                },
            );
        }
        Ok(self.layers.get_mut(&key).expect("inserted above"))
    }

    pub fn history(&self, image_id: &str, annotator: &str) -> Option<&History> {
        self.layers
            .get(&(image_id.to_string(), annotator.to_string()))
            .map(|l| &l.history)
    }

    /// Apply an edit to `annotator`'s layer of `image_id`. Brush and eraser pieces join the open
    /// stroke (one undo step, closed by [`Self::end_stroke`]); every other edit is its own step.
    pub fn edit(
        &mut self,
        project: &mut Project,
        image_id: &str,
        annotator: &str,
        edit: Edit,
    ) -> Result<EditOutcome, LabelError> {
        let who = check_editable(project, annotator)?;
        for class in edit_classes(&edit) {
            if class != 0 && project.class(class).is_none() {
                return Err(LabelError::UnknownClass(class));
            }
        }
        // Resolve copies against the other layer before borrowing this one.
        let copied = if let Edit::CopyRegion { from, seed } = &edit {
            let other = self
                .existing_mask(project, image_id, from)?
                .ok_or_else(|| LabelError::NothingToCopy {
                    annotator: from.clone(),
                    image: image_id.into(),
                })?;
            let px = other.marked_region_at(seed[0], seed[1]);
            if px.is_empty() {
                return Err(LabelError::NothingToCopy {
                    annotator: from.clone(),
                    image: image_id.into(),
                });
            }
            px.into_iter()
                .map(|i| (i, other.data[i as usize]))
                .collect()
        } else {
            Vec::new()
        };
        let layer = self.layer(project, image_id, annotator)?;
        let stroke = matches!(edit, Edit::Brush { .. } | Edit::Erase { .. });
        if !stroke
            || layer
                .history
                .open
                .as_ref()
                .is_some_and(|s| s.op != edit.name())
        {
            layer.history.close();
        }
        let mut changes = Vec::new();
        let mask = &mut layer.mask;
        match &edit {
            Edit::Brush {
                class,
                radius,
                points,
            } => mask.stamp_polyline(points, *radius, *class, &mut changes),
            Edit::Erase { radius, points } => mask.stamp_polyline(points, *radius, 0, &mut changes),
            Edit::Polygon { class, points } => mask.fill_polygon(points, *class, &mut changes),
            Edit::Flood { class, seed } => {
                for i in mask.component_at(seed[0], seed[1]) {
                    mask.set(i, *class, &mut changes);
                }
            }
            Edit::AcceptRegion { class, pixels, .. } => {
                let n = mask.data.len() as u32;
                for &i in pixels.iter().filter(|&&i| i < n) {
                    mask.set(i, *class, &mut changes);
                }
            }
            Edit::CopyRegion { .. } => {
                for &(i, c) in &copied {
                    mask.set(i, c, &mut changes);
                }
            }
            Edit::Replace { mask: new, .. } => {
                if (new.width, new.height) != (mask.width, mask.height) {
                    return Err(LabelError::WrongSize {
                        found: (new.width, new.height),
                        expected: (mask.width, mask.height),
                    });
                }
                for (i, &c) in new.data.iter().enumerate() {
                    mask.set(i as u32, c, &mut changes);
                }
            }
        }
        let out = outcome(&changes, mask.width);
        let step = layer.history.open.get_or_insert(Step {
            op: edit.name(),
            changes: Vec::new(),
        });
        step.changes.extend_from_slice(&changes);
        if !changes.is_empty() {
            layer.history.redo.clear();
        }
        if !stroke {
            layer.history.close();
        }
        self.record(project, image_id, &who, edit.name(), edit.detail(), &out);
        Ok(out)
    }

    /// Close the open brush/eraser stroke: what was painted since it began becomes one undo step.
    pub fn end_stroke(&mut self, image_id: &str, annotator: &str) {
        if let Some(l) = self
            .layers
            .get_mut(&(image_id.to_string(), annotator.to_string()))
        {
            l.history.close();
        }
    }

    pub fn undo(
        &mut self,
        project: &mut Project,
        image_id: &str,
        annotator: &str,
    ) -> Result<Option<EditOutcome>, LabelError> {
        self.undo_redo(project, image_id, annotator, true)
    }

    pub fn redo(
        &mut self,
        project: &mut Project,
        image_id: &str,
        annotator: &str,
    ) -> Result<Option<EditOutcome>, LabelError> {
        self.undo_redo(project, image_id, annotator, false)
    }

    fn undo_redo(
        &mut self,
        project: &mut Project,
        image_id: &str,
        annotator: &str,
        undo: bool,
    ) -> Result<Option<EditOutcome>, LabelError> {
        let who = check_editable(project, annotator)?;
        let layer = self.layer(project, image_id, annotator)?;
        layer.history.close();
        let h = &mut layer.history;
        let Some(step) = (if undo { h.undo.pop() } else { h.redo.pop() }) else {
            return Ok(None);
        };
        if undo {
            for c in step.changes.iter().rev() {
                layer.mask.data[c.idx as usize] = c.old;
            }
        } else {
            for c in &step.changes {
                layer.mask.data[c.idx as usize] = c.new;
            }
        }
        let out = outcome(&step.changes, layer.mask.width);
        let op = format!("{}:{}", if undo { "undo" } else { "redo" }, step.op);
        if undo {
            layer.history.redo.push(step);
        } else {
            layer.history.undo.push(step);
        }
        self.record(project, image_id, &who, &op, serde_json::Value::Null, &out);
        Ok(Some(out))
    }

    /// Save the layer (and `project.ron` when the layer is new) through the autosaver, and
    /// append the audit entry.
    fn record(
        &mut self,
        project: &mut Project,
        image_id: &str,
        annotator: &Annotator,
        op: &str,
        detail: serde_json::Value,
        outcome: &EditOutcome,
    ) {
        let key = (image_id.to_string(), annotator.id.clone());
        if let Some(bbox) = outcome.bbox
            && let Some(layer) = self.layers.get(&key)
        {
            let rel = layer_rel_path(&annotator.id, image_id);
            if let Some(entry) = project.file.images.iter_mut().find(|e| e.id == image_id)
                && entry.labels.get(&annotator.id) != Some(&rel)
            {
                entry.labels.insert(annotator.id.clone(), rel.clone());
                self.saver.save_project(project);
            }
            // The saver gets the whole mask once, then only what each edit changed: a stroke
            // on a large image costs its rectangle, not a copy of the layer.
            let path = project.root.join(&rel);
            if self.saver_has.insert(path.clone()) {
                self.saver.write_mask(path, layer.mask.clone());
            } else {
                self.saver.patch_mask(path, &layer.mask, bbox);
            }
        }
        let pixels_changed = outcome.pixels_changed;
        let time_ms = now_ms();
        let entry = AuditEntry {
            time_ms,
            time: iso8601(time_ms),
            annotator: annotator.id.clone(),
            image: image_id.to_string(),
            op: op.to_string(),
            detail,
            pixels_changed,
        };
        self.saver
            .append_json(project.root.join(AUDIT_FILE), &entry);
    }
}

/// An annotator's mask file of an image, read and normalised; None when there is none.
fn stored_mask(
    project: &Project,
    entry: &super::ImageEntry,
    annotator: &str,
) -> Result<Option<LabelMask>, LabelError> {
    let Some(path) = project.label_path(entry, annotator) else {
        return Ok(None);
    };
    let size = imaging::image_size(&project.image_path(entry))?;
    let mut mask = LabelMask::load(&path, size)?;
    normalise_foreign(&mut mask, project);
    Ok(Some(mask))
}

/// What an annotator says about an image according to the files alone (no store, so it can
/// run on any thread): [`LabelStore::opinion`] without the layers being edited.
pub fn stored_opinion(
    project: &Project,
    entry: &super::ImageEntry,
    annotator: &Annotator,
) -> Result<Option<LabelMask>, LabelError> {
    if let Some(m) = stored_mask(project, entry, &annotator.id)? {
        return Ok(Some(m));
    }
    if !annotator.read_only {
        return Ok(None);
    }
    let (w, h) = imaging::image_size(&project.image_path(entry))?;
    Ok(Some(LabelMask::new(w, h)))
}

/// Masks from datasets may hold values that are no class of the project: anti-aliased edges
/// (Magnetic-tile), instance numbers (VisA). Such a mask is read as binary, every non-zero pixel
/// in the ground-truth class (255) or, without it, the project's first class. Masks the app
/// writes hold only project classes, so they are never touched.
pub fn normalise_foreign(mask: &mut LabelMask, project: &Project) {
    let mut defined = [false; 256];
    for c in &project.file.classes {
        defined[c.index as usize] = true;
    }
    if !mask.data.iter().any(|&v| v != 0 && !defined[v as usize]) {
        return;
    }
    let to = if defined[255] {
        255
    } else {
        project.file.classes.first().map_or(255, |c| c.index)
    };
    for v in &mut mask.data {
        if *v != 0 {
            *v = to;
        }
    }
}

fn edit_classes(edit: &Edit) -> Vec<u8> {
    match edit {
        Edit::Brush { class, .. }
        | Edit::Polygon { class, .. }
        | Edit::Flood { class, .. }
        | Edit::AcceptRegion { class, .. } => vec![*class],
        _ => Vec::new(),
    }
}

fn find_image<'a>(
    project: &'a Project,
    image_id: &str,
) -> Result<&'a super::ImageEntry, LabelError> {
    project
        .file
        .images
        .iter()
        .find(|e| e.id == image_id)
        .ok_or_else(|| LabelError::NoImage(image_id.into()))
}

fn check_editable(project: &Project, annotator: &str) -> Result<Annotator, LabelError> {
    let a = project
        .file
        .annotators
        .iter()
        .find(|a| a.id == annotator)
        .ok_or_else(|| LabelError::NoAnnotator(annotator.into()))?;
    if a.read_only {
        return Err(LabelError::ReadOnly(annotator.into()));
    }
    Ok(a.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_mask_values_read_as_binary_and_own_classes_stay() {
        let mut p = Project {
            root: ".".into(),
            file: crate::project::ProjectFile::new("t"),
            saved: false,
            migrated_from: None,
        };
        for i in [1u8, 2, 255] {
            p.file.classes.push(crate::project::DefectClass {
                index: i,
                name: format!("c{i}"),
                color: [0, 0, 0],
            });
        }
        let mut own = LabelMask::new(3, 1);
        own.data = vec![0, 2, 1];
        normalise_foreign(&mut own, &p);
        assert_eq!(own.data, [0, 2, 1]);
        // Anti-aliased dataset edges: 37 and 128 are no class.
        let mut edges = LabelMask::new(4, 1);
        edges.data = vec![0, 37, 128, 255];
        normalise_foreign(&mut edges, &p);
        assert_eq!(edges.data, [0, 255, 255, 255]);
    }
}
