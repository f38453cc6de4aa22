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

use crate::autosave::Autosaver;
use crate::imaging;
use crate::project::{Annotator, Project};

/// A class per pixel, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelMask {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

impl LabelMask {
    pub fn new(width: u32, height: u32) -> Self {
        Self {
            width,
            height,
            data: vec![0; width as usize * height as usize],
        }
    }

    pub fn from_gray(img: image::GrayImage) -> Self {
        let (width, height) = img.dimensions();
        Self {
            width,
            height,
            data: img.into_raw(),
        }
    }

    pub fn to_gray(&self) -> image::GrayImage {
        image::GrayImage::from_raw(self.width, self.height, self.data.clone())
            .expect("mask buffer matches its size")
    }

    /// Load a mask and check its size against its image's.
    pub fn load(path: &Path, expected: (u32, u32)) -> Result<Self, imaging::ImageLoadError> {
        imaging::load_label(path, expected).map(Self::from_gray)
    }

    pub fn get(&self, x: u32, y: u32) -> u8 {
        self.data[(y * self.width + x) as usize]
    }

    pub fn is_empty(&self) -> bool {
        self.data.iter().all(|&v| v == 0)
    }

    /// Any defect class counts as anomalous.
    pub fn binary(&self) -> Vec<bool> {
        self.data.iter().map(|&v| v != 0).collect()
    }

    pub fn marked_pixels(&self) -> usize {
        self.data.iter().filter(|&&v| v != 0).count()
    }

    fn set(&mut self, idx: u32, class: u8, out: &mut Vec<Change>) {
        let old = self.data[idx as usize];
        if old != class {
            self.data[idx as usize] = class;
            out.push(Change {
                idx,
                old,
                new: class,
            });
        }
    }

    /// Pixels whose centre lies within `radius - 0.5` of a point of the polyline: radius 1 paints
    /// exactly the pixel under a point, and dabs are spaced so that no gap opens between them.
    fn stamp_polyline(
        &mut self,
        points: &[[f32; 2]],
        radius: f32,
        class: u8,
        out: &mut Vec<Change>,
    ) {
        let r = (radius.max(1.0) - 0.5).max(0.0);
        let mut dab = |c: [f32; 2], mask: &mut Self| {
            let (x0, x1) = ((c[0] - r - 0.5).floor(), (c[0] + r - 0.5).ceil());
            let (y0, y1) = ((c[1] - r - 0.5).floor(), (c[1] + r - 0.5).ceil());
            let (w, h) = (mask.width as f32, mask.height as f32);
            let mut y = y0.max(0.0);
            while y <= y1.min(h - 1.0) {
                let mut x = x0.max(0.0);
                while x <= x1.min(w - 1.0) {
                    let (dx, dy) = (x + 0.5 - c[0], y + 0.5 - c[1]);
                    if dx * dx + dy * dy <= r * r + 1e-4 {
                        mask.set(y as u32 * mask.width + x as u32, class, out);
                    }
                    x += 1.0;
                }
                y += 1.0;
            }
        };
        if let Some(&first) = points.first() {
            dab(first, self);
        }
        for seg in points.windows(2) {
            let (a, b) = (seg[0], seg[1]);
            let len = ((b[0] - a[0]).powi(2) + (b[1] - a[1]).powi(2)).sqrt();
            let n = (len / 0.5).ceil().max(1.0) as usize;
            for i in 1..=n {
                let t = i as f32 / n as f32;
                dab([a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t], self);
            }
        }
    }

    /// Even-odd fill of a closed polygon, sampled at pixel centres.
    fn fill_polygon(&mut self, points: &[[f32; 2]], class: u8, out: &mut Vec<Change>) {
        if points.len() < 3 {
            return;
        }
        let mut xs = Vec::new();
        for y in 0..self.height {
            let cy = y as f32 + 0.5;
            xs.clear();
            for i in 0..points.len() {
                let (a, b) = (points[i], points[(i + 1) % points.len()]);
                if (a[1] <= cy) != (b[1] <= cy) {
                    xs.push(a[0] + (cy - a[1]) / (b[1] - a[1]) * (b[0] - a[0]));
                }
            }
            xs.sort_by(f32::total_cmp);
            for pair in xs.chunks_exact(2) {
                // Pixel x is inside when its centre x + 0.5 lies in [pair[0], pair[1]).
                let from = (pair[0] - 0.5).ceil().max(0.0) as u32;
                let to = ((pair[1] - 0.5).ceil().max(0.0) as u32).min(self.width);
                for x in from..to {
                    self.set(y * self.width + x, class, out);
                }
            }
        }
    }

    /// The 4-connected set of pixels sharing the seed's class, as raster indices.
    pub fn component_at(&self, x: u32, y: u32) -> Vec<u32> {
        if x >= self.width || y >= self.height {
            return Vec::new();
        }
        let (w, h) = (self.width, self.height);
        let target = self.get(x, y);
        let mut seen = vec![false; self.data.len()];
        let mut stack = vec![y * w + x];
        seen[(y * w + x) as usize] = true;
        let mut out = Vec::new();
        while let Some(i) = stack.pop() {
            out.push(i);
            let (px, py) = (i % w, i / w);
            let mut push = |j: u32| {
                if !seen[j as usize] && self.data[j as usize] == target {
                    seen[j as usize] = true;
                    stack.push(j);
                }
            };
            if px > 0 {
                push(i - 1);
            }
            if px + 1 < w {
                push(i + 1);
            }
            if py > 0 {
                push(i - w);
            }
            if py + 1 < h {
                push(i + w);
            }
        }
        out
    }

    /// The 8-connected labelled region (any non-zero class) under a pixel: what "copy this region"
    /// and "this outline" mean to an annotator.
    pub fn marked_region_at(&self, x: u32, y: u32) -> Vec<u32> {
        if x >= self.width || y >= self.height || self.get(x, y) == 0 {
            return Vec::new();
        }
        let mut seen = vec![false; self.data.len()];
        self.grow8((y * self.width + x) as usize, &mut seen, |v| v != 0)
    }

    /// Every 8-connected region of marked pixels, in raster order of their first pixel: any
    /// non-zero class together, or (`by_class`) one region per class. One pass over the mask.
    pub fn regions8(&self, by_class: bool) -> Vec<(u8, Vec<u32>)> {
        let mut seen = vec![false; self.data.len()];
        let mut out = Vec::new();
        for start in 0..self.data.len() {
            let c = self.data[start];
            if c == 0 || seen[start] {
                continue;
            }
            let px = if by_class {
                self.grow8(start, &mut seen, |v| v == c)
            } else {
                self.grow8(start, &mut seen, |v| v != 0)
            };
            out.push((c, px));
        }
        out
    }

    /// Flood from `start` over 8-neighbours whose class satisfies `keep`, marking `seen`.
    fn grow8(&self, start: usize, seen: &mut [bool], keep: impl Fn(u8) -> bool) -> Vec<u32> {
        let (w, h) = (self.width as i64, self.height as i64);
        seen[start] = true;
        let mut stack = vec![start];
        let mut out = Vec::new();
        while let Some(i) = stack.pop() {
            out.push(i as u32);
            let (px, py) = (i as i64 % w, i as i64 / w);
            for dy in -1..=1 {
                for dx in -1..=1 {
                    let (nx, ny) = (px + dx, py + dy);
                    if (dx, dy) != (0, 0) && nx >= 0 && ny >= 0 && nx < w && ny < h {
                        let j = (ny * w + nx) as usize;
                        if !seen[j] && keep(self.data[j]) {
                            seen[j] = true;
                            stack.push(j);
                        }
                    }
                }
            }
        }
        out
    }
}

/// Bounding box [x0, y0, x1, y1) of raster indices in an image `width` wide.
pub fn bbox_of(pixels: impl IntoIterator<Item = u32>, width: u32) -> [u32; 4] {
    let mut b = [u32::MAX, u32::MAX, 0, 0];
    for i in pixels {
        let (x, y) = (i % width, i / width);
        b = [b[0].min(x), b[1].min(y), b[2].max(x + 1), b[3].max(y + 1)];
    }
    b
}

/// One pixel's change, enough to undo and redo it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    pub idx: u32,
    pub old: u8,
    pub new: u8,
}

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
    crate::autosave::read_jsonl(&root.join(AUDIT_FILE))
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// ISO 8601 UTC for a Unix time in ms (civil-from-days, Howard Hinnant's algorithm).
pub fn iso8601(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + (m <= 2) as i64;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
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
}

impl LabelStore {
    pub fn new(saver: Autosaver) -> Self {
        Self {
            layers: HashMap::new(),
            saver,
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
        let entry = find_image(project, image_id)?;
        let Some(path) = project.label_path(entry, annotator) else {
            return Ok(None);
        };
        let size = image_size(&project.image_path(entry))?;
        let mut mask = LabelMask::load(&path, size)?;
        normalise_foreign(&mut mask, project);
        Ok(Some(mask))
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
        let (w, h) = image_size(&project.image_path(find_image(project, image_id)?))?;
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
                    let (w, h) = image_size(&project.image_path(entry))?;
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
        self.record(
            project,
            image_id,
            &who,
            edit.name(),
            edit.detail(),
            out.pixels_changed,
        );
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
        self.record(
            project,
            image_id,
            &who,
            &op,
            serde_json::Value::Null,
            out.pixels_changed,
        );
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
        pixels_changed: usize,
    ) {
        let key = (image_id.to_string(), annotator.id.clone());
        if pixels_changed > 0
            && let Some(layer) = self.layers.get(&key)
        {
            let rel = layer_rel_path(&annotator.id, image_id);
            if let Some(entry) = project.file.images.iter_mut().find(|e| e.id == image_id)
                && entry.labels.get(&annotator.id) != Some(&rel)
            {
                entry.labels.insert(annotator.id.clone(), rel.clone());
                self.saver.save_project(project);
            }
            self.saver
                .write_mask(project.root.join(&rel), layer.mask.clone());
        }
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
) -> Result<&'a crate::project::ImageEntry, LabelError> {
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

/// An image's size from its header, without decoding the pixels.
pub fn image_size(path: &Path) -> Result<(u32, u32), imaging::ImageLoadError> {
    image::ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .map_err(|source| imaging::ImageLoadError::Io {
            path: path.into(),
            source,
        })?
        .into_dimensions()
        .map_err(|e| imaging::ImageLoadError::Decode {
            path: path.into(),
            message: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(mask: &mut LabelMask, pts: &[[f32; 2]], r: f32) -> usize {
        let mut c = Vec::new();
        mask.stamp_polyline(pts, r, 1, &mut c);
        c.len()
    }

    #[test]
    fn radius_one_paints_one_pixel_and_strokes_have_no_gaps() {
        let mut m = LabelMask::new(20, 20);
        assert_eq!(stamp(&mut m, &[[5.5, 5.5]], 1.0), 1);
        assert_eq!(m.get(5, 5), 1);
        let mut m = LabelMask::new(20, 20);
        // A diagonal line of radius 1 touches each row once or twice, never skips a row.
        stamp(&mut m, &[[1.5, 1.5], [15.5, 12.5]], 1.0);
        for y in 1..=12 {
            assert!((0..20).any(|x| m.get(x, y) == 1), "gap at row {y}");
        }
        let mut m = LabelMask::new(20, 20);
        assert_eq!(stamp(&mut m, &[[10.5, 10.5]], 2.0), 9, "radius 2 is 3x3");
    }

    #[test]
    fn polygon_fill_covers_pixel_centres_inside() {
        let mut m = LabelMask::new(10, 10);
        let mut c = Vec::new();
        m.fill_polygon(&[[2.0, 2.0], [6.0, 2.0], [6.0, 5.0], [2.0, 5.0]], 3, &mut c);
        assert_eq!(c.len(), 12, "4 x 3 pixels");
        assert_eq!(m.get(2, 2), 3);
        assert_eq!(m.get(5, 4), 3);
        assert_eq!(m.get(6, 4), 0);
    }

    #[test]
    fn flood_and_region_lookup() {
        let mut m = LabelMask::new(6, 6);
        for i in 0..6 {
            m.data[2 * 6 + i] = 1; // a wall on row 2
        }
        assert_eq!(m.component_at(0, 0).len(), 12);
        assert_eq!(m.component_at(0, 5).len(), 18);
        assert_eq!(m.marked_region_at(3, 2).len(), 6);
        assert!(m.marked_region_at(0, 0).is_empty());
    }

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

    #[test]
    fn iso_dates() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(1_795_869_296_123), "2026-11-28T12:34:56.123Z");
    }
}
