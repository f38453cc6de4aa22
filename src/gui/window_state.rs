//! What the window keeps between frames beside the app state and that its parts share: the right
//! panel's tab, the import and export forms as typed, and demo mode's show.

use super::viewer::ViewState;

/// The tabs of the right-hand panel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SideTab {
    #[default]
    Labels,
    Review,
    Issues,
}

/// The fields a folder picker can fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PathField {
    ImportProject,
    ImportData,
    ImportLayer(usize),
    ExportOut,
    /// A TorchScript backbone file for training (a file, not a folder).
    BackboneFile,
}

/// The import form as typed.
#[derive(Debug, Clone, Default)]
pub(super) struct ImportForm {
    pub(super) project: String,
    pub(super) format: String,
    pub(super) data: String,
    /// Annotators' mask folders: (name, folder).
    pub(super) layers: Vec<(String, String)>,
    pub(super) group_pattern: String,
}

/// The export form as typed.
#[derive(Debug, Clone, Default)]
pub(super) struct ExportForm {
    pub(super) format: String,
    pub(super) layer: Option<String>,
    pub(super) out: String,
}

/// The show: which images, where it is, and whether it waits.
pub(super) struct DemoShow {
    pub order: Vec<usize>,
    pub pos: usize,
    pub paused: bool,
    /// When the image on screen was first complete (loaded and detected).
    pub shown_at: Option<f64>,
    pub views: [ViewState; 3],
    pub fitted_for: Option<usize>,
}
