//! Actions from keys, menus and buttons: the window's keys mapped to the app's, one dispatcher
//! for every action, and the overlay that lists them all (`?`).

use egui::RichText;

use super::ContrarioApp;
use crate::app::AppCommand;
use crate::app::actions::{Action, Group, Key, Shortcut};
use crate::app::annotation::{BRUSH_STEP, Compare, LabelCommand, Tool};
use crate::app::review::ReviewCommand;
use crate::app::watch::WatchCommand;
use crate::project::review::Verdict;

/// The app's key for an egui key, if it binds it.
fn key_of(k: egui::Key) -> Option<Key> {
    use egui::Key as E;
    Some(match k {
        E::A => Key::A,
        E::B => Key::B,
        E::C => Key::C,
        E::D => Key::D,
        E::E => Key::E,
        E::F => Key::F,
        E::G => Key::G,
        E::H => Key::H,
        E::J => Key::J,
        E::K => Key::K,
        E::L => Key::L,
        E::M => Key::M,
        E::N => Key::N,
        E::O => Key::O,
        E::P => Key::P,
        E::Q => Key::Q,
        E::R => Key::R,
        E::T => Key::T,
        E::U => Key::U,
        E::V => Key::V,
        E::X => Key::X,
        E::Y => Key::Y,
        E::Z => Key::Z,
        E::Num1 => Key::Num1,
        E::ArrowLeft => Key::ArrowLeft,
        E::ArrowRight => Key::ArrowRight,
        E::ArrowUp => Key::ArrowUp,
        E::ArrowDown => Key::ArrowDown,
        E::OpenBracket => Key::OpenBracket,
        E::CloseBracket => Key::CloseBracket,
        E::Plus | E::Equals => Key::Plus,
        E::Minus => Key::Minus,
        E::Enter => Key::Enter,
        E::Escape => Key::Escape,
        E::Space => Key::Space,
        E::Questionmark => Key::Questionmark,
        E::F11 => Key::F11,
        _ => return None,
    })
}

impl ContrarioApp {
    /// Keys pressed this frame, as actions (not while a text field has the keyboard).
    pub(super) fn shortcuts(&mut self, ctx: &egui::Context) {
        if ctx.egui_wants_keyboard_input() {
            return;
        }
        if self.demo.is_some() {
            return self.demo_keys(ctx);
        }
        let pressed: Vec<Shortcut> = ctx.input(|i| {
            i.events
                .iter()
                .filter_map(|e| match e {
                    egui::Event::Key {
                        key,
                        pressed: true,
                        modifiers,
                        ..
                    } => key_of(*key).map(|key| Shortcut {
                        key,
                        command: modifiers.command,
                        // '?' comes with shift on most layouts: the key itself says it.
                        shift: modifiers.shift && key != Key::Questionmark && key != Key::Plus,
                    }),
                    _ => None,
                })
                .collect()
        });
        for s in pressed {
            if let Some(a) = Action::for_shortcut(s) {
                self.act(ctx, a);
            }
        }
    }

    /// Do what an action means.
    pub(super) fn act(&mut self, ctx: &egui::Context, action: Action) {
        use Action::*;
        let label = |c: LabelCommand| AppCommand::Label(c);
        let cmd = match action {
            OpenProject => return self.folder_dialog("Open a project", AppCommand::OpenProject),
            OpenFolder => {
                return self.folder_dialog("Open a folder of images", AppCommand::OpenImageFolder);
            }
            WatchFolder => {
                return self.folder_dialog("Watch a folder a camera writes into", |d| {
                    AppCommand::Watch(WatchCommand::Start(d))
                });
            }
            PauseWatch => {
                let paused = self
                    .state
                    .live
                    .as_ref()
                    .is_some_and(|s| s.watch.is_paused());
                AppCommand::Watch(WatchCommand::Pause(!paused))
            }
            StopWatch => AppCommand::Watch(WatchCommand::Stop),
            OpenDemo => AppCommand::OpenDemo,
            Quit => return ctx.send_viewport_cmd(egui::ViewportCommand::Close),
            NextImage => AppCommand::SelectNext,
            PreviousImage => AppCommand::SelectPrevious,
            FitView => return self.view.fit(),
            ActualPixels => {
                self.view.zoom = 1.0;
                return;
            }
            ShowShortcuts => {
                self.show_shortcuts = !self.show_shortcuts;
                return;
            }
            Detect => AppCommand::DetectSelected,
            TrainUFlow => AppCommand::TrainSelectedCategory,
            CancelTraining => AppCommand::CancelTraining,
            ToggleHeatmap => AppCommand::ShowHeatmap(!self.state.show_heatmap),
            StricterLevel => AppCommand::SetNfaThreshold(self.state.nfa_threshold - 1.0),
            LooserLevel => AppCommand::SetNfaThreshold(self.state.nfa_threshold + 1.0),
            ToolNavigate => label(LabelCommand::SetTool(Tool::Navigate)),
            ToolBrush => label(LabelCommand::SetTool(Tool::Brush)),
            ToolEraser => label(LabelCommand::SetTool(Tool::Eraser)),
            ToolPolygon => label(LabelCommand::SetTool(Tool::Polygon)),
            ToolFill => label(LabelCommand::SetTool(Tool::Fill)),
            ToolAccept => label(LabelCommand::SetTool(Tool::AcceptRegion)),
            ToolCopy => label(LabelCommand::SetTool(Tool::CopyRegion)),
            BrushBigger => label(LabelCommand::SetBrushRadius(
                self.state.annotation.brush_radius * BRUSH_STEP,
            )),
            BrushSmaller => label(LabelCommand::SetBrushRadius(
                self.state.annotation.brush_radius / BRUSH_STEP,
            )),
            ClosePolygon => label(LabelCommand::ClosePolygon),
            CancelPolygon => {
                if self.demo.is_some() {
                    return self.toggle_demo(ctx);
                }
                if self.show_shortcuts {
                    self.show_shortcuts = false;
                    return;
                }
                label(LabelCommand::CancelPolygon)
            }
            Undo => label(LabelCommand::Undo),
            Redo => label(LabelCommand::Redo),
            NextLayer => AppCommand::ShowLabels(self.next_layer()),
            ToggleDisagreement => label(LabelCommand::ShowDisagreement(
                !self.state.annotation.show_disagreement,
            )),
            ToggleCompare => label(LabelCommand::SetCompare(
                match self.state.annotation.compare {
                    Some(_) => None,
                    None => Some(Compare::Annotators),
                },
            )),
            VerdictNormal => AppCommand::Review(ReviewCommand::Verdict(Verdict::Normal)),
            VerdictDefective => AppCommand::Review(ReviewCommand::Verdict(Verdict::Defective)),
            VerdictUnsure => AppCommand::Review(ReviewCommand::Verdict(Verdict::Unsure)),
            NextUnreviewed => AppCommand::Review(ReviewCommand::NextUnreviewed),
            ShowTraining => {
                self.show_training = !self.show_training;
                return;
            }
            RunOnAll => AppCommand::RunDetector { filtered: false },
            RunOnFiltered => AppCommand::RunDetector { filtered: true },
            CancelRun => AppCommand::CancelRun,
            ShowEvaluation => match self.state.evaluation {
                Some(_) => AppCommand::Evaluate(None),
                None => match self.evaluation_target() {
                    Some(t) => AppCommand::Evaluate(Some(t)),
                    None => {
                        self.state.notify(
                            crate::app::NoticeLevel::Warning,
                            "Train a U-Flow model and select an image of the category to evaluate",
                        );
                        return;
                    }
                },
            },
            DemoMode => return self.toggle_demo(ctx),
        };
        self.apply(cmd);
    }

    /// The annotator after the one shown, then none, then the first again.
    fn next_layer(&self) -> Option<String> {
        let p = self.state.project.as_ref()?;
        let ids: Vec<&String> = p.file.annotators.iter().map(|a| &a.id).collect();
        match &self.state.label_layer {
            None => ids.first().map(|s| s.to_string()),
            Some(cur) => {
                let i = ids.iter().position(|a| *a == cur)?;
                ids.get(i + 1).map(|s| s.to_string())
            }
        }
    }

    /// Every action with its keys, grouped, in a window (`?`, Esc closes it).
    pub(super) fn shortcut_overlay(&mut self, ctx: &egui::Context) {
        if !self.show_shortcuts {
            return;
        }
        let mut open = true;
        egui::Window::new("Keyboard shortcuts")
            .open(&mut open)
            .collapsible(false)
            .resizable(false)
            .anchor(egui::Align2::CENTER_CENTER, egui::Vec2::ZERO)
            .show(ctx, |ui| {
                ui.columns(2, |cols| {
                    let groups = [
                        Group::Images,
                        Group::View,
                        Group::Detection,
                        Group::Review,
                        Group::Labels,
                        Group::Models,
                        Group::Project,
                    ];
                    for (k, g) in groups.into_iter().enumerate() {
                        let ui = &mut cols[if k < 4 { 0 } else { 1 }];
                        ui.label(RichText::new(g.name()).strong());
                        egui::Grid::new(g.name()).show(ui, |ui| {
                            for a in Action::ALL.into_iter().filter(|a| a.group() == g) {
                                let keys: Vec<String> =
                                    a.shortcuts().iter().map(|s| s.text()).collect();
                                ui.label(RichText::new(keys.join(" / ")).monospace());
                                ui.label(a.label()).on_hover_text(a.tooltip());
                                ui.end_row();
                            }
                        });
                        ui.add_space(6.0);
                    }
                });
            });
        if !open {
            self.show_shortcuts = false;
        }
    }
}
