//! What the window keeps between frames beside the app state and that its parts share: the right
//! panel's tab and the import and export forms as typed.

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
