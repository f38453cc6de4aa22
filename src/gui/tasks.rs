//! The import and export forms (File menu): what to import or export and where, with folder
//! pickers; they hand the app an `Import` or `Export` command, which runs in the background and
//! ends in a notice. The progress line is the status bar's.

use std::path::PathBuf;

use egui::RichText;

use super::ContrarioApp;
use super::window_state::{ExportForm, ImportForm, PathField};
use crate::app::AppCommand;
use crate::app::jobs::spawn_thread_caught;
use crate::project::export::{self, ExportRequest};
use crate::project::import::{self, GroupSpec, ImportRequest};

/// A text field with a label that names it (for people and for screen readers).
fn field(ui: &mut egui::Ui, label: &str, value: &mut String, hint: &str) -> bool {
    let l = ui.label(label);
    let r = ui.add(
        egui::TextEdit::singleline(value)
            .hint_text(hint)
            .desired_width(260.0),
    );
    let _ = r.clone().labelled_by(l.id);
    r.changed()
}

impl ContrarioApp {
    /// Ask for a folder on the dialog thread; the answer fills `target` at a later frame.
    pub(super) fn pick_folder(&self, target: PathField) {
        let tx = self.picks_tx.clone();
        spawn_thread_caught(
            move || match target {
                PathField::BackboneFile => rfd::FileDialog::new()
                    .set_title("A TorchScript backbone")
                    .add_filter("TorchScript", &["pt", "pth", "ts"])
                    .pick_file(),
                _ => rfd::FileDialog::new().pick_folder(),
            },
            move |picked| {
                if let Ok(Some(dir)) = picked {
                    let _ = tx.send((target, dir));
                }
            },
        );
    }

    /// Folders picked since the last frame go into their fields.
    pub(super) fn poll_picks(&mut self) {
        while let Ok((target, dir)) = self.picks_rx.try_recv() {
            let text = dir.display().to_string();
            match (target, &mut self.import_form, &mut self.export_form) {
                (PathField::ImportProject, Some(f), _) => f.project = text,
                (PathField::ImportData, Some(f), _) => f.data = text,
                (PathField::ImportLayer(i), Some(f), _) => {
                    if let Some(l) = f.layers.get_mut(i) {
                        l.1 = text;
                    }
                }
                (PathField::ExportOut, _, Some(f)) => f.out = text,
                (PathField::BackboneFile, _, _) => {
                    let mut t = self.state.training_settings();
                    t.backbone_file = Some(dir);
                    self.state.apply(AppCommand::SetTraining(t));
                }
                _ => {}
            }
        }
    }

    /// Open the import form, into the open project (`into_open`) or a new one.
    pub(super) fn open_import_form(&mut self, into_open: bool) {
        let project = match (&self.state.project, into_open) {
            (Some(p), true) if p.saved && self.state.writable() => p.root.display().to_string(),
            _ => String::new(),
        };
        self.import_form = Some(ImportForm {
            project,
            format: import::FORMATS[0].to_string(),
            ..Default::default()
        });
    }

    pub(super) fn open_export_form(&mut self) {
        let layer = self.state.project.as_ref().map(export::default_layer);
        self.export_form = Some(ExportForm {
            format: export::FORMATS[0].to_string(),
            layer,
            out: String::new(),
        });
    }

    /// The forms, when open.
    pub(super) fn task_forms(&mut self, ctx: &egui::Context) {
        self.import_window(ctx);
        self.export_window(ctx);
    }

    fn import_window(&mut self, ctx: &egui::Context) {
        let Some(mut f) = self.import_form.take() else {
            return;
        };
        let mut open = true;
        let (mut submit, mut pick) = (false, None);
        egui::Window::new("Import a dataset")
            .open(&mut open)
            .collapsible(false)
            .resizable(false)
            .show(ctx, |ui| {
                egui::Grid::new("import-form")
                    .num_columns(3)
                    .show(ui, |ui| {
                        field(
                            ui,
                            "project folder",
                            &mut f.project,
                            "new or existing project",
                        );
                        if ui.button("Choose…").clicked() {
                            pick = Some(PathField::ImportProject);
                        }
                        ui.end_row();
                        ui.label("");
                        egui::ComboBox::from_label("format")
                        .selected_text(f.format.clone())
                        .show_ui(ui, |ui| {
                            for fmt in import::FORMATS {
                                ui.selectable_value(&mut f.format, fmt.to_string(), *fmt);
                            }
                        })
                        .response
                        .on_hover_text(
                            "mvtec, btad: category/train, category/test, masks; visa: its split \
                             CSV; magnetic-tile: MT_* folders; folder: any images, to review",
                        );
                        ui.end_row();
                        field(ui, "dataset folder", &mut f.data, "the dataset's root");
                        if ui.button("Choose…").clicked() {
                            pick = Some(PathField::ImportData);
                        }
                        ui.end_row();
                        let mut remove = None;
                        for (i, (name, folder)) in f.layers.iter_mut().enumerate() {
                            ui.add(
                                egui::TextEdit::singleline(name)
                                    .hint_text("annotator")
                                    .desired_width(90.0),
                            );
                            ui.add(
                                egui::TextEdit::singleline(folder)
                                    .hint_text("their masks' folder")
                                    .desired_width(260.0),
                            );
                            ui.horizontal(|ui| {
                                if ui.button("Choose…").clicked() {
                                    pick = Some(PathField::ImportLayer(i));
                                }
                                if ui.button("Remove").clicked() {
                                    remove = Some(i);
                                }
                            });
                            ui.end_row();
                        }
                        if let Some(i) = remove {
                            f.layers.remove(i);
                        }
                        field(ui, "group pattern", &mut f.group_pattern, "optional regex");
                        ui.end_row();
                    });
                if ui
                    .button("Add an annotator's masks")
                    .on_hover_text(
                        "A folder of one person's masks, named after their images \
                         (im01.png, im01_mask.png, im01.ah.png)",
                    )
                    .clicked()
                {
                    f.layers.push(Default::default());
                }
                ui.label(
                    RichText::new(
                        "Datasets stay where they are; the project points at them. Re-importing \
                         replaces those images.",
                    )
                    .small(),
                );
                let ready = !f.project.trim().is_empty() && !f.data.trim().is_empty();
                if ui.add_enabled(ready, egui::Button::new("Import")).clicked() {
                    submit = true;
                }
            });
        if let Some(target) = pick {
            self.pick_folder(target);
        }
        if submit {
            let groups = (!f.group_pattern.trim().is_empty())
                .then(|| GroupSpec::Pattern(f.group_pattern.trim().to_string()));
            let req = ImportRequest {
                project: PathBuf::from(f.project.trim()),
                format: f.format.clone(),
                data: PathBuf::from(f.data.trim()),
                layers: f
                    .layers
                    .iter()
                    .filter(|(n, d)| !n.trim().is_empty() && !d.trim().is_empty())
                    .map(|(n, d)| (n.trim().to_string(), PathBuf::from(d.trim())))
                    .collect(),
                groups,
            };
            self.apply(AppCommand::Import(req));
        } else if open {
            self.import_form = Some(f);
        }
    }

    fn export_window(&mut self, ctx: &egui::Context) {
        let Some(mut f) = self.export_form.take() else {
            return;
        };
        let Some(p) = &self.state.project else { return };
        let layers: Vec<(String, String)> = p
            .file
            .annotators
            .iter()
            .map(|a| (a.id.clone(), a.name.clone()))
            .collect();
        let model = self.state.detector.clone();
        let mut open = true;
        let (mut submit, mut pick) = (false, false);
        egui::Window::new("Export labels or a report")
            .open(&mut open)
            .collapsible(false)
            .resizable(false)
            .show(ctx, |ui| {
                egui::Grid::new("export-form")
                    .num_columns(3)
                    .show(ui, |ui| {
                        ui.label("");
                        egui::ComboBox::from_label("format")
                            .selected_text(f.format.clone())
                            .show_ui(ui, |ui| {
                                for fmt in export::FORMATS {
                                    ui.selectable_value(&mut f.format, fmt.to_string(), *fmt);
                                }
                            })
                            .response
                            .on_hover_text(
                                "masks: MVTec layout, 0/255 PNG; csv: a row per image (score, NFA, \
                             verdict, IoUs); coco: JSON with RLE masks",
                            );
                        ui.end_row();
                        if f.format != "csv" {
                            ui.label("");
                            let shown = f.layer.clone().unwrap_or_default();
                            egui::ComboBox::from_label("layer")
                                .selected_text(shown)
                                .show_ui(ui, |ui| {
                                    for (id, name) in &layers {
                                        ui.selectable_value(&mut f.layer, Some(id.clone()), name);
                                    }
                                });
                            ui.end_row();
                        }
                        let what = if f.format == "masks" {
                            "output folder"
                        } else {
                            "output file"
                        };
                        field(ui, what, &mut f.out, "where to write");
                        if f.format == "masks" && ui.button("Choose…").clicked() {
                            pick = true;
                        }
                        ui.end_row();
                    });
                if f.format == "csv" {
                    let m = model
                        .clone()
                        .unwrap_or_else(|| "none (training-free results are not kept)".into());
                    ui.label(RichText::new(format!("scores from the model: {m}")).small());
                }
                if ui
                    .add_enabled(!f.out.trim().is_empty(), egui::Button::new("Export"))
                    .clicked()
                {
                    submit = true;
                }
            });
        if pick {
            self.pick_folder(PathField::ExportOut);
        }
        if submit {
            let req = ExportRequest {
                format: f.format.clone(),
                layer: f.layer.clone(),
                model,
                out: PathBuf::from(f.out.trim()),
            };
            self.apply(AppCommand::Export(req));
        } else if open {
            self.export_form = Some(f);
        }
    }
}
