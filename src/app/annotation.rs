//! The annotator's side of the state: the tool in hand, the brush, the class, whose layer is
//! edited, the polygon being drawn, and the label commands. Plain data; `app::editing` applies
//! the commands to the project's layers.

use crate::project::review::ConsensusRule;

/// What a click or a drag on the image does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// Drag pans; labels are not touched.
    Navigate,
    Brush,
    Eraser,
    Polygon,
    Fill,
    /// Click inside a detected region to add it to the active layer.
    AcceptRegion,
    /// Click inside another annotator's label to copy it to the active layer.
    CopyRegion,
}

impl Tool {
    pub const ALL: [Tool; 7] = [
        Tool::Navigate,
        Tool::Brush,
        Tool::Eraser,
        Tool::Polygon,
        Tool::Fill,
        Tool::AcceptRegion,
        Tool::CopyRegion,
    ];

    /// Whether it changes labels (and so needs an editable layer).
    pub fn edits(self) -> bool {
        self != Tool::Navigate
    }
}

/// Brush radius bounds and steps, in image pixels (radius 1 paints exactly one pixel).
pub const BRUSH_MIN: f32 = 1.0;
pub const BRUSH_MAX: f32 = 256.0;
pub const BRUSH_STEP: f32 = 1.25;

/// A change to labels, as the window asks for it (points in image pixels; pixel (x, y) covers
/// [x, x+1) x [y, y+1)).
#[derive(Debug, Clone, PartialEq)]
pub enum LabelCommand {
    SetTool(Tool),
    SetBrushRadius(f32),
    /// The class painted, filled and accepted.
    SetClass(u8),
    /// The annotator whose layer is edited.
    SetAnnotator(Option<String>),
    /// A new annotator (name; the id is made from it), who becomes the active one.
    AddAnnotator(String),
    /// Whose label the copy tool takes.
    SetCopySource(Option<String>),
    /// A piece of a brush or eraser stroke.
    Stroke(Vec<[f32; 2]>),
    /// The stroke is finished: what it painted becomes one undo step.
    EndStroke,
    PolygonPoint([f32; 2]),
    ClosePolygon,
    CancelPolygon,
    /// Fill, accept or copy at a pixel, by the tool in hand.
    ClickAt([u32; 2]),
    Undo,
    Redo,
    /// Write the consensus layer of the image by a rule.
    Adjudicate(ConsensusRule),
    ShowDisagreement(bool),
    /// Side by side: the image's annotators, or the views of its group.
    SetCompare(Option<Compare>),
}

/// What compare mode shows side by side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compare {
    Annotators,
    GroupViews,
}

/// A layer's pixels changed: the window refreshes that rectangle of its textures.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelChange {
    pub image: usize,
    pub annotator: String,
    /// [x0, y0, x1, y1) in image pixels.
    pub bbox: [u32; 4],
}

/// The annotator's state.
#[derive(Debug, Clone, PartialEq)]
pub struct Annotation {
    pub tool: Tool,
    pub brush_radius: f32,
    pub class: u8,
    /// The layer edits go to (None: none chosen yet).
    pub annotator: Option<String>,
    pub copy_from: Option<String>,
    /// Vertices of the polygon being drawn.
    pub polygon: Vec<[f32; 2]>,
    /// Layers changed since the window last looked.
    pub changes: Vec<LabelChange>,
    /// Bumped with every change, so views computed from the layers (disagreement, outlines,
    /// IoU) know when to recompute.
    pub revision: u64,
    pub show_disagreement: bool,
    pub compare: Option<Compare>,
}

impl Default for Annotation {
    fn default() -> Self {
        Self {
            tool: Tool::Navigate,
            brush_radius: 4.0,
            class: 1,
            annotator: None,
            copy_from: None,
            polygon: Vec::new(),
            changes: Vec::new(),
            revision: 0,
            show_disagreement: false,
            compare: None,
        }
    }
}
