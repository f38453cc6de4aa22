//! Every action a user can take by key, menu item or button, with its one label, tooltip and
//! shortcut: menus, toolbars, tooltips and the shortcut overlay (`?`) all read them from here,
//! so they never disagree. Plain data, no window toolkit: the window maps [`Key`] to its own.

/// The keys the app binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key {
    A,
    B,
    C,
    D,
    E,
    F,
    G,
    H,
    J,
    K,
    L,
    M,
    N,
    O,
    P,
    Q,
    R,
    T,
    U,
    V,
    X,
    Y,
    Z,
    Num1,
    ArrowLeft,
    ArrowRight,
    ArrowUp,
    ArrowDown,
    OpenBracket,
    CloseBracket,
    Plus,
    Minus,
    Enter,
    Escape,
    Space,
    Questionmark,
    F11,
}

impl Key {
    pub fn name(self) -> &'static str {
        use Key::*;
        match self {
            A => "A",
            B => "B",
            C => "C",
            D => "D",
            E => "E",
            F => "F",
            G => "G",
            H => "H",
            J => "J",
            K => "K",
            L => "L",
            M => "M",
            N => "N",
            O => "O",
            P => "P",
            Q => "Q",
            R => "R",
            T => "T",
            U => "U",
            V => "V",
            X => "X",
            Y => "Y",
            Z => "Z",
            Num1 => "1",
            ArrowLeft => "Left",
            ArrowRight => "Right",
            ArrowUp => "Up",
            ArrowDown => "Down",
            OpenBracket => "[",
            CloseBracket => "]",
            Plus => "+",
            Minus => "-",
            Enter => "Enter",
            Escape => "Esc",
            Space => "Space",
            Questionmark => "?",
            F11 => "F11",
        }
    }
}

/// A key with modifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shortcut {
    pub key: Key,
    /// Ctrl (Cmd on macOS).
    pub command: bool,
    pub shift: bool,
}

impl Shortcut {
    pub const fn key(key: Key) -> Self {
        Self {
            key,
            command: false,
            shift: false,
        }
    }

    pub const fn ctrl(key: Key) -> Self {
        Self {
            key,
            command: true,
            shift: false,
        }
    }

    pub const fn shift(key: Key) -> Self {
        Self {
            key,
            command: false,
            shift: true,
        }
    }

    pub const fn ctrl_shift(key: Key) -> Self {
        Self {
            key,
            command: true,
            shift: true,
        }
    }

    /// "Ctrl+Shift+Z".
    pub fn text(&self) -> String {
        let mut s = String::new();
        if self.command {
            s.push_str("Ctrl+");
        }
        if self.shift {
            s.push_str("Shift+");
        }
        s.push_str(self.key.name());
        s
    }
}

/// An action, by what the user means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    OpenProject,
    OpenFolder,
    OpenDemo,
    WatchFolder,
    PauseWatch,
    StopWatch,
    Quit,
    NextImage,
    PreviousImage,
    FitView,
    ActualPixels,
    ShowShortcuts,
    Detect,
    TrainUFlow,
    CancelTraining,
    ToggleHeatmap,
    StricterLevel,
    LooserLevel,
    ToolNavigate,
    ToolBrush,
    ToolEraser,
    ToolPolygon,
    ToolFill,
    ToolAccept,
    ToolCopy,
    BrushBigger,
    BrushSmaller,
    ClosePolygon,
    CancelPolygon,
    Undo,
    Redo,
    NextLayer,
    ToggleDisagreement,
    ToggleCompare,
    VerdictNormal,
    VerdictDefective,
    VerdictUnsure,
    NextUnreviewed,
    ShowTraining,
    RunOnAll,
    RunOnFiltered,
    CancelRun,
    ShowEvaluation,
    DemoMode,
}

/// Where an action belongs, for the shortcut overlay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    Project,
    Images,
    View,
    Detection,
    Labels,
    Review,
    Models,
}

impl Group {
    pub fn name(self) -> &'static str {
        match self {
            Group::Project => "Project",
            Group::Images => "Images",
            Group::View => "View",
            Group::Detection => "Detection",
            Group::Labels => "Labels",
            Group::Review => "Review",
            Group::Models => "Models",
        }
    }
}

use Key as K;
type S = Shortcut;

impl Action {
    pub const ALL: [Action; 44] = [
        Action::OpenProject,
        Action::OpenFolder,
        Action::OpenDemo,
        Action::WatchFolder,
        Action::PauseWatch,
        Action::StopWatch,
        Action::Quit,
        Action::NextImage,
        Action::PreviousImage,
        Action::FitView,
        Action::ActualPixels,
        Action::ShowShortcuts,
        Action::Detect,
        Action::TrainUFlow,
        Action::CancelTraining,
        Action::ToggleHeatmap,
        Action::StricterLevel,
        Action::LooserLevel,
        Action::ToolNavigate,
        Action::ToolBrush,
        Action::ToolEraser,
        Action::ToolPolygon,
        Action::ToolFill,
        Action::ToolAccept,
        Action::ToolCopy,
        Action::BrushBigger,
        Action::BrushSmaller,
        Action::ClosePolygon,
        Action::CancelPolygon,
        Action::Undo,
        Action::Redo,
        Action::NextLayer,
        Action::ToggleDisagreement,
        Action::ToggleCompare,
        Action::VerdictNormal,
        Action::VerdictDefective,
        Action::VerdictUnsure,
        Action::NextUnreviewed,
        Action::ShowTraining,
        Action::RunOnAll,
        Action::RunOnFiltered,
        Action::CancelRun,
        Action::ShowEvaluation,
        Action::DemoMode,
    ];

    /// What a menu item or button says.
    pub fn label(self) -> &'static str {
        use Action::*;
        match self {
            OpenProject => "Open project…",
            OpenFolder => "Open folder of images…",
            OpenDemo => "Open demo project",
            WatchFolder => "Watch a folder…",
            PauseWatch => "Pause",
            StopWatch => "Stop watching",
            Quit => "Quit",
            NextImage => "Next image",
            PreviousImage => "Previous image",
            FitView => "Fit to window",
            ActualPixels => "Actual pixels 1:1",
            ShowShortcuts => "Keyboard shortcuts",
            Detect => "Detect anomalies",
            TrainUFlow => "Train model",
            CancelTraining => "Cancel training",
            ToggleHeatmap => "Show heatmap",
            StricterLevel => "Stricter NFA level",
            LooserLevel => "Looser NFA level",
            ToolNavigate => "Navigate",
            ToolBrush => "Brush",
            ToolEraser => "Eraser",
            ToolPolygon => "Polygon",
            ToolFill => "Fill",
            ToolAccept => "Accept detected region",
            ToolCopy => "Copy region from annotator",
            BrushBigger => "Bigger brush",
            BrushSmaller => "Smaller brush",
            ClosePolygon => "Close polygon",
            CancelPolygon => "Cancel polygon",
            Undo => "Undo",
            Redo => "Redo",
            NextLayer => "Next label layer",
            ToggleDisagreement => "Disagreement map",
            ToggleCompare => "Compare side by side",
            VerdictNormal => "Normal",
            VerdictDefective => "Defective",
            VerdictUnsure => "Unsure",
            NextUnreviewed => "Next unreviewed",
            ShowTraining => "Training panel",
            RunOnAll => "Run the model on all images",
            RunOnFiltered => "Run the model on the listed images",
            CancelRun => "Cancel the run",
            ShowEvaluation => "Evaluation panel",
            DemoMode => "Demo mode",
        }
    }

    /// What hovering it explains.
    pub fn tooltip(self) -> &'static str {
        use Action::*;
        match self {
            OpenProject => "Open a project folder (project.ron)",
            OpenFolder => "Open a folder of images as a transient project",
            OpenDemo => "Open the bundled demo project",
            WatchFolder => {
                "Score each image a line camera writes into a folder as it lands, with the \
                 detector's model at the NFA level; they join this project's live split and the \
                 review queue"
            }
            PauseWatch => "Stop scoring for now; images that land meanwhile wait their turn",
            StopWatch => {
                "Stop the watch; started again, it scores what landed meanwhile and nothing twice"
            }
            Quit => "Close the window (pending label changes are saved first)",
            NextImage => "Select the next image of the list",
            PreviousImage => "Select the previous image of the list",
            FitView => "Fit the image to the view (also a double-click)",
            ActualPixels => "One image pixel per screen pixel",
            ShowShortcuts => "Every action and its key",
            Detect => "Run the detector on this image (in the background)",
            TrainUFlow => {
                "Train a model (U-Flow or PatchCore, as the training panel sets) on this \
                 category's normal training images (background)"
            }
            CancelTraining => "Stop the training; started again, it resumes where it stopped",
            ToggleHeatmap => "Paint the detector's map over the image",
            StricterLevel => "Fewer expected false alarms: one order of magnitude down",
            LooserLevel => "More expected false alarms: one order of magnitude up",
            ToolNavigate => "Drag to pan; labels are not touched",
            ToolBrush => "Paint the selected class on the active annotator's layer",
            ToolEraser => "Erase the active annotator's labels",
            ToolPolygon => "Click vertices; Enter or a double-click closes, Esc cancels",
            ToolFill => "Fill the area under the click with the selected class",
            ToolAccept => "Click inside a detected region to add it to the active layer",
            ToolCopy => "Click inside another annotator's label to copy it to the active layer",
            BrushBigger => "Brush and eraser one step larger",
            BrushSmaller => "Brush and eraser one step smaller",
            ClosePolygon => "Fill the polygon drawn so far",
            CancelPolygon => "Drop the polygon drawn so far",
            Undo => "Undo the active layer's last change",
            Redo => "Redo the change undone last",
            NextLayer => "Show the next annotator's labels",
            ToggleDisagreement => {
                "Color each pixel by how many annotators marked it, with everyone's outlines"
            }
            ToggleCompare => {
                "The annotators of this image (or the views of its group) side by side, zoom and pan together"
            }
            VerdictNormal => {
                "Verdict on this image: normal (in the review journal, signed); from the queue, on to its next unreviewed image"
            }
            VerdictDefective => {
                "Verdict on this image: defective (in the review journal, signed); from the queue, on to its next unreviewed image"
            }
            VerdictUnsure => {
                "Verdict on this image: unsure, for someone else to look at; from the queue, on to its next unreviewed image"
            }
            NextUnreviewed => "The first image of the review queue without a verdict",
            ShowTraining => {
                "Train a model on this category: family and settings, progress, the loss curve, \
                 calibration"
            }
            RunOnAll => {
                "Run the chosen model on every image in the background (cached ones are \
                 read back); badges, queue and label issues follow"
            }
            RunOnFiltered => "Run the chosen model on the images the list shows",
            CancelRun => "Stop running the model over the images (results so far are kept)",
            ShowEvaluation => {
                "The model against this category's ground truth: AUROC, AUPRO, mIoU, false \
                 alarms, the ROC and mIoU curves"
            }
            DemoMode => {
                "Full screen: image, heatmap and regions side by side, advancing through the \
                 flagged images (Space pauses, arrows step, Esc leaves)"
            }
        }
    }

    /// Its keys; the first is the one menus show.
    pub fn shortcuts(self) -> &'static [Shortcut] {
        use Action::*;
        const fn k(key: Key) -> Shortcut {
            S::key(key)
        }
        match self {
            OpenProject => const { &[S::ctrl(K::O)] },
            OpenFolder | OpenDemo | WatchFolder | PauseWatch | StopWatch => &[],
            Quit => const { &[S::ctrl(K::Q)] },
            NextImage => const { &[k(K::J), k(K::ArrowRight), k(K::ArrowDown)] },
            PreviousImage => const { &[k(K::K), k(K::ArrowLeft), k(K::ArrowUp)] },
            FitView => const { &[k(K::F)] },
            ActualPixels => const { &[k(K::Num1)] },
            ShowShortcuts => const { &[k(K::Questionmark)] },
            Detect => const { &[k(K::R)] },
            TrainUFlow => &[],
            CancelTraining => &[],
            ToggleHeatmap => const { &[k(K::H)] },
            StricterLevel => const { &[k(K::Minus)] },
            LooserLevel => const { &[k(K::Plus)] },
            ToolNavigate => const { &[k(K::V)] },
            ToolBrush => const { &[k(K::B)] },
            ToolEraser => const { &[k(K::E)] },
            ToolPolygon => const { &[k(K::P)] },
            ToolFill => const { &[k(K::G)] },
            ToolAccept => const { &[k(K::A)] },
            ToolCopy => const { &[k(K::C)] },
            BrushBigger => const { &[k(K::CloseBracket)] },
            BrushSmaller => const { &[k(K::OpenBracket)] },
            ClosePolygon => const { &[k(K::Enter)] },
            CancelPolygon => const { &[k(K::Escape)] },
            Undo => const { &[S::ctrl(K::Z)] },
            Redo => const { &[S::ctrl_shift(K::Z), S::ctrl(K::Y)] },
            NextLayer => const { &[k(K::L)] },
            ToggleDisagreement => const { &[k(K::X)] },
            ToggleCompare => const { &[k(K::M)] },
            VerdictNormal => const { &[k(K::N)] },
            VerdictDefective => const { &[k(K::D)] },
            VerdictUnsure => const { &[k(K::U)] },
            NextUnreviewed => const { &[S::shift(K::J)] },
            ShowTraining => const { &[k(K::T)] },
            RunOnAll => const { &[S::shift(K::R)] },
            RunOnFiltered | CancelRun => &[],
            ShowEvaluation => const { &[S::shift(K::E)] },
            DemoMode => const { &[k(K::F11)] },
        }
    }

    /// "Undo (Ctrl+Z)": a menu item's text.
    pub fn menu_text(self) -> String {
        match self.shortcuts().first() {
            Some(s) => format!("{} ({})", self.label(), s.text()),
            None => self.label().to_string(),
        }
    }

    /// The tooltip with every key that triggers it.
    pub fn hover_text(self) -> String {
        let keys: Vec<String> = self.shortcuts().iter().map(|s| s.text()).collect();
        if keys.is_empty() {
            self.tooltip().to_string()
        } else {
            format!("{} [{}]", self.tooltip(), keys.join(", "))
        }
    }

    pub fn group(self) -> Group {
        use Action::*;
        match self {
            OpenProject | OpenFolder | OpenDemo | WatchFolder | PauseWatch | StopWatch | Quit => {
                Group::Project
            }
            NextImage | PreviousImage => Group::Images,
            FitView | ActualPixels | ShowShortcuts | ToggleCompare => Group::View,
            Detect | TrainUFlow | CancelTraining | ToggleHeatmap | StricterLevel | LooserLevel => {
                Group::Detection
            }
            VerdictNormal | VerdictDefective | VerdictUnsure | NextUnreviewed => Group::Review,
            ShowTraining | RunOnAll | RunOnFiltered | CancelRun | ShowEvaluation | DemoMode => {
                Group::Models
            }
            _ => Group::Labels,
        }
    }

    /// The action a shortcut triggers, if any (the first in [`Action::ALL`] order).
    pub fn for_shortcut(s: Shortcut) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.shortcuts().contains(&s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shortcut_triggers_one_action_and_every_action_is_listed() {
        let mut seen = std::collections::HashMap::new();
        for a in Action::ALL {
            for s in a.shortcuts() {
                if let Some(other) = seen.insert(*s, a) {
                    panic!("{} is bound to {other:?} and {a:?}", s.text());
                }
            }
        }
        assert_eq!(Action::for_shortcut(S::ctrl(K::Y)), Some(Action::Redo));
        assert_eq!(Action::for_shortcut(S::key(K::Z)), None);
        assert_eq!(Action::Undo.menu_text(), "Undo (Ctrl+Z)");
        assert!(
            Action::Redo
                .hover_text()
                .ends_with("[Ctrl+Shift+Z, Ctrl+Y]")
        );
        // ALL is every variant: a new action must be listed (and so shown in the overlay).
        let listed: std::collections::HashSet<_> = Action::ALL.into_iter().collect();
        assert_eq!(listed.len(), Action::ALL.len());
    }
}
