//! The evaluation panel (Shift+E): the chosen U-Flow model against a category's ground truth,
//! with the numbers `contrario eval --json` prints (one row per defect kind), the image-level
//! decision at the NFA level, the pixel ROC curve and mIoU against the level (thesis Figure 5.7),
//! where a click on the curve sets the level. The table copies as CSV; the plots save as PNG.

use std::path::PathBuf;

use egui::{Color32, RichText};
use egui_plot::{Legend, Line, Plot, Points, VLine};

use super::ContrarioApp;
use super::widgets::PROBLEM_TEXT;
use crate::app::AppCommand;
use crate::app::actions::Action;
use crate::app::detection::false_alarm_text;
use crate::app::models::{EvaluationView, TABLE};
use crate::project::evaluation::Evaluation;

const CURVE: Color32 = Color32::from_rgb(90, 160, 255);
const ORACLE: Color32 = Color32::from_rgb(255, 170, 60);

impl ContrarioApp {
    /// What the panel opens on: the U-Flow model in use (or the project's, with the
    /// training-free detector) and the selected image's category.
    pub(super) fn evaluation_target(&self) -> Option<(String, String)> {
        let model = self.state.preferred_model()?;
        let p = self.state.project.as_ref()?;
        let category = p.file.images.get(self.state.selected?)?.category.clone();
        Some((model, category))
    }

    /// Where log10 NFA `level` lies on the mIoU curve as last drawn (tests click there).
    pub fn miou_curve_point(&self, level: f32) -> Option<egui::Pos2> {
        let t = self.miou_plot.as_ref()?;
        let b = t.bounds();
        let y = (b.min()[1] + b.max()[1]) / 2.0;
        Some(t.position_from_point(&egui_plot::PlotPoint::new(level as f64, y)))
    }

    pub(super) fn evaluation_window(&mut self, ctx: &egui::Context) {
        let Some(view) = self.state.evaluation.clone() else {
            self.miou_plot = None;
            return;
        };
        let mut open = true;
        let mut cmds = Vec::new();
        let mut plots = None;
        egui::Window::new("Evaluation")
            .open(&mut open)
            .default_width(720.0)
            .resizable(true)
            .show(ctx, |ui| {
                plots = self.evaluation_panel(ui, &view, &mut cmds)
            });
        if !open {
            cmds.push(AppCommand::Evaluate(None));
        }
        if let Some((roc, miou, save)) = plots
            && save
        {
            self.save_plots(ctx, &view, [("roc", roc), ("miou", miou)]);
        }
        for c in cmds {
            self.apply(c);
        }
    }

    /// The panel; returns the plots' rectangles and whether they are to be saved.
    fn evaluation_panel(
        &mut self,
        ui: &mut egui::Ui,
        view: &EvaluationView,
        cmds: &mut Vec<AppCommand>,
    ) -> Option<(egui::Rect, egui::Rect, bool)> {
        let compared = self.state.comparison.clone();
        ui.horizontal(|ui| {
            let family = self
                .state
                .model_file(&view.model, &view.category)
                .map_or("U-Flow", |f| f.train.family.label());
            ui.label(RichText::new(format!("{family} \"{}\"", view.model)).strong());
            let mut chosen = view.category.clone();
            let state = &mut self.state;
            egui::ComboBox::from_id_salt("evaluation-category")
                .selected_text(&chosen)
                .show_ui(ui, |ui| {
                    // Listed only while open: the categories the model has a version for.
                    let all = state
                        .project
                        .as_ref()
                        .map_or(Vec::new(), |p| p.categories());
                    for c in all {
                        if state.model_file(&view.model, &c).is_some() {
                            ui.selectable_value(&mut chosen, c.clone(), c);
                        }
                    }
                });
            if chosen != view.category {
                cmds.push(AppCommand::Evaluate(Some((view.model.clone(), chosen))));
            }
            // Another model of the category beside it, a column each.
            let mut other = compared.as_ref().map(|c| c.model.clone());
            let before = other.clone();
            let names = self.state.models.clone();
            let models: Vec<String> = names
                .into_iter()
                .filter(|m| *m != view.model)
                .filter(|m| self.state.model_file(m, &view.category).is_some())
                .collect();
            ui.add_enabled_ui(!models.is_empty(), |ui| {
                egui::ComboBox::from_id_salt("evaluation-compare")
                    .selected_text(
                        other
                            .clone()
                            .map_or("compare with…".into(), |m| format!("beside {m}")),
                    )
                    .show_ui(ui, |ui| {
                        ui.selectable_value(&mut other, None, "no other model");
                        for m in &models {
                            ui.selectable_value(&mut other, Some(m.clone()), m);
                        }
                    })
                    .response
                    .on_hover_text(
                        "Evaluate another model of this category beside this one, to pick the \
                         detector on evidence",
                    )
                    .on_disabled_hover_text("The category has no other model: train one");
            });
            if other != before {
                cmds.push(AppCommand::CompareWith(other));
            }
        });
        if let Some(run) = &self.state.run
            && run.then_evaluate.as_ref() == Some(&view.category)
        {
            ui.label("Running the model on the test images first:");
            ui.horizontal(|ui| {
                ui.add(
                    egui::ProgressBar::new(run.fraction())
                        .text(run.line())
                        .desired_width(420.0),
                );
                if ui
                    .button(Action::CancelRun.label())
                    .on_hover_text(Action::CancelRun.hover_text())
                    .clicked()
                {
                    cmds.push(AppCommand::CancelRun);
                }
            });
            return None;
        }
        let e = match &view.outcome {
            None => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label("computing…");
                });
                return None;
            }
            Some(Err(why)) => {
                ui.colored_label(PROBLEM_TEXT, why);
                return None;
            }
            Some(Ok(e)) => e,
        };
        let level = self.state.nfa_threshold;
        ui.horizontal(|ui| {
            ui.label(format!(
                "At the NFA level {level:.1} ({})",
                false_alarm_text(level)
            ));
            if view.computing || view.level != level {
                ui.spinner();
            }
        });
        if let Some(c) = &compared {
            let mut column = |v: &EvaluationView| {
                let f = self.state.model_file(&v.model, &v.category);
                let family = f.map_or("U-Flow", |f| f.train.family.label());
                let seconds = f.map_or(0.0, |f| f.train_seconds);
                (v.clone(), format!("{} ({family})", v.model), seconds)
            };
            let cols = [column(view), column(c)];
            comparison_table(ui, &cols);
            ui.label(RichText::new(format!("{} per defect kind:", view.model)).small());
        }
        summary_table(ui, view);
        ui.add_space(4.0);
        decision_table(ui, view, level, &self.state.review.verdicts);
        if let Some(p) = &view.prepared
            && let Some((id, words)) = p.unlike_training.first()
        {
            ui.label(
                RichText::new(format!(
                    "{} of the test images are unlike every training image, e.g. {id}: {words}",
                    p.unlike_training.len()
                ))
                .color(Color32::from_rgb(200, 150, 255)),
            )
            .on_hover_text(
                "The drift check: the model's flags on those images are not to be trusted \
                 (lighting or camera changed?). The image list's filter 'unlike training' shows them.",
            );
        }
        ui.add_space(4.0);
        let mut save = false;
        ui.horizontal(|ui| {
            if ui
                .button("Copy table as CSV")
                .on_hover_text("The table, one row per defect kind, to paste in a spreadsheet")
                .clicked()
                && let Some(csv) = view.csv()
            {
                ui.ctx().copy_text(csv);
            }
            save = ui
                .button("Save plots as PNG")
                .on_hover_text("Both plots as PNG files in the project's reports folder")
                .clicked();
        });
        let (roc, miou) = ui.columns(2, |cols| {
            let roc = roc_plot(&mut cols[0], e);
            let (rect, transform, clicked) = miou_plot(&mut cols[1], e, level);
            (roc, (rect, transform, clicked))
        });
        let (miou_rect, transform, clicked) = miou;
        self.miou_plot = Some(transform);
        if let Some(x) = clicked {
            cmds.push(AppCommand::SetNfaThreshold((x * 2.0).round() / 2.0));
        }
        Some((roc, miou_rect, save))
    }

    /// Save the plots' pixels (a screenshot of the window, cropped) as PNG files.
    fn save_plots(
        &self,
        ctx: &egui::Context,
        view: &EvaluationView,
        rects: [(&str, egui::Rect); 2],
    ) {
        let dir = match &self.state.project {
            Some(p) if self.state.writable() => p.root.join("reports"),
            _ => std::env::temp_dir().join("contrario-reports"),
        };
        let stem = format!("{}-{}", view.model, view.category);
        let (tx, wake) = (self.saved_tx.clone(), ctx.clone());
        let ppp = ctx.pixels_per_point();
        let rects: Vec<(String, egui::Rect)> =
            rects.iter().map(|(n, r)| (n.to_string(), *r)).collect();
        ctx.send_viewport_cmd(egui::ViewportCommand::Screenshot(
            egui::ScreenshotCallback::new(move |img| {
                let _ = tx.send(write_plots(&img, ppp, &dir, &stem, &rects));
                // The notice saying where they went needs a frame.
                wake.request_repaint();
            }),
        ));
    }
}

fn write_plots(
    img: &egui::ColorImage,
    ppp: f32,
    dir: &std::path::Path,
    stem: &str,
    rects: &[(String, egui::Rect)],
) -> Result<String, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut written: Vec<PathBuf> = Vec::new();
    // The window may have shrunk since the plots were drawn: cut only what the screenshot has
    // (`ColorImage::region` panics past its edges).
    let whole = egui::Rect::from_min_size(
        egui::Pos2::ZERO,
        egui::vec2(img.size[0] as f32, img.size[1] as f32) / ppp.max(1e-3),
    );
    for (name, r) in rects {
        let r = r.intersect(whole);
        if !r.is_positive() {
            return Err(format!("the {name} plot is off the window"));
        }
        let part = img.region(&r, Some(ppp));
        let [w, h] = part.size;
        let bytes: Vec<u8> = part.pixels.iter().flat_map(|c| c.to_array()).collect();
        let out = image::RgbaImage::from_raw(w as u32, h as u32, bytes)
            .ok_or_else(|| "the screenshot has no pixels".to_string())?;
        let path = dir.join(format!("{stem}-{name}.png"));
        out.save(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        written.push(path);
    }
    Ok(format!(
        "Plots saved: {}",
        written
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

fn num(v: &serde_json::Value, decimals: usize) -> String {
    v.as_f64().map_or("-".into(), |x| format!("{x:.decimals$}"))
}

/// One row for the category, one per defect kind (the kind's defective images against all the
/// normal ones).
fn summary_table(ui: &mut egui::Ui, view: &EvaluationView) {
    egui::Grid::new("evaluation-table")
        .striped(true)
        .num_columns(TABLE.len() + 1)
        .show(ui, |ui| {
            ui.label("");
            for (_, heading, _) in TABLE {
                ui.label(RichText::new(heading).strong());
            }
            ui.end_row();
            for (i, (kind, v)) in view.rows().into_iter().enumerate() {
                let name = RichText::new(kind);
                ui.label(if i == 0 { name.strong() } else { name });
                for (key, _, decimals) in TABLE {
                    let cell = match v.get(key) {
                        None => String::new(),
                        Some(x) => num(x, decimals),
                    };
                    // The oracle's mIoU says at which level it is reached.
                    if key == "miou_oracle" && v.get("oracle_threshold").is_some() {
                        ui.label(format!("{cell} (level {})", num(&v["oracle_threshold"], 1)));
                    } else {
                        ui.label(cell);
                    }
                }
                ui.end_row();
            }
        });
}

/// The category's figures of two models, a column each (a model still computing shows "…"):
/// (its view, its title, its training seconds).
fn comparison_table(ui: &mut egui::Ui, cols: &[(EvaluationView, String, f64); 2]) {
    egui::Grid::new("evaluation-comparison")
        .striped(true)
        .num_columns(3)
        .show(ui, |ui| {
            ui.label("");
            for (_, title, _) in cols {
                ui.label(RichText::new(title).strong());
            }
            ui.end_row();
            for (key, heading, decimals) in TABLE {
                ui.label(heading);
                for (v, _, _) in cols {
                    ui.label(match (&v.outcome, v.evaluation()) {
                        (_, Some(e)) => num(&e.summary[key], decimals),
                        (Some(Err(_)), None) => "failed".into(),
                        _ => "…".into(),
                    });
                }
                ui.end_row();
            }
            ui.label("training time");
            for (_, _, s) in cols {
                ui.label(if *s > 0.0 {
                    format!("{s:.0} s")
                } else {
                    "-".into()
                });
            }
            ui.end_row();
        });
    if let (v, _, _) = &cols[1]
        && let Some(Err(why)) = &v.outcome
    {
        ui.colored_label(PROBLEM_TEXT, format!("{}: {why}", v.model));
    }
    ui.add_space(4.0);
}

/// Flagged (minimum log10 NFA below the level) against the ground truth, or the reviewers'
/// verdicts where there is none, as counts.
fn decision_table(
    ui: &mut egui::Ui,
    view: &EvaluationView,
    level: f32,
    verdicts: &std::collections::HashMap<String, crate::project::review::Verdict>,
) {
    let Some(([tp, fneg, fp, tn], by_verdicts)) = view.decisions_or_verdicts(level, verdicts)
    else {
        return;
    };
    let against = if by_verdicts {
        "the reviewers' verdicts (no ground truth here)"
    } else {
        "the ground truth"
    };
    ui.label(
        RichText::new(format!(
            "Image-level decision (flagged: a region below the level), against {against}"
        ))
        .strong(),
    );
    egui::Grid::new("evaluation-decisions")
        .striped(true)
        .show(ui, |ui| {
            ui.label("");
            ui.label(RichText::new("flagged").strong());
            ui.label(RichText::new("not flagged").strong());
            ui.end_row();
            ui.label(RichText::new("defective").strong());
            ui.label(tp.to_string());
            ui.label(fneg.to_string());
            ui.end_row();
            ui.label(RichText::new("normal").strong());
            ui.label(fp.to_string());
            ui.label(tn.to_string());
            ui.end_row();
        });
}

/// The ROC plot; returns its rectangle with the axes (what a saved PNG shows).
fn roc_plot(ui: &mut egui::Ui, e: &Evaluation) -> egui::Rect {
    let pts: Vec<[f64; 2]> = e.roc.iter().map(|&(x, y)| [x, y]).collect();
    ui.scope(|ui| {
        Plot::new("roc-plot")
            .height(220.0)
            .x_axis_label("false-positive rate (pixels)")
            .y_axis_label("true-positive rate")
            .include_x(0.0)
            .include_x(1.0)
            .include_y(0.0)
            .include_y(1.0)
            .allow_drag(false)
            .allow_zoom(false)
            .allow_scroll(false)
            .show(ui, |p| {
                p.line(Line::new("chance", vec![[0.0, 0.0], [1.0, 1.0]]).color(Color32::DARK_GRAY));
                p.line(Line::new("pixel ROC", pts).color(CURVE).width(2.0));
            })
    })
    .response
    .rect
}

/// mIoU against the level; returns the plot's rectangle with the axes, its transform and the
/// level clicked.
fn miou_plot(
    ui: &mut egui::Ui,
    e: &Evaluation,
    level: f32,
) -> (egui::Rect, egui_plot::PlotTransform, Option<f32>) {
    let pts: Vec<[f64; 2]> = e.miou_curve.iter().map(|&(t, m)| [t as f64, m]).collect();
    let oracle = (
        e.summary["oracle_threshold"].as_f64(),
        e.summary["miou_oracle"].as_f64(),
    );
    let scope = ui.scope(|ui| {
        Plot::new("miou-plot")
            .height(220.0)
            .legend(Legend::default())
            .x_axis_label("log10 NFA level (click to set it)")
            .y_axis_label("mIoU")
            .include_y(0.0)
            .include_y(1.0)
            .allow_drag(false)
            .allow_zoom(false)
            .allow_scroll(false)
            .allow_boxed_zoom(false)
            .allow_double_click_reset(false)
            .show(ui, |p| {
                p.line(Line::new("mIoU", pts).color(CURVE).width(2.0));
                p.vline(VLine::new("current level", level as f64).color(Color32::LIGHT_GRAY));
                if let (Some(t), Some(m)) = oracle
                    && (-20.0..=2.0).contains(&t)
                {
                    p.points(
                        Points::new("oracle", vec![[t, m]])
                            .color(ORACLE)
                            .radius(5.0),
                    );
                }
                p.pointer_coordinate()
            })
    });
    let r = scope.inner;
    let clicked = if r.response.clicked() {
        r.inner.map(|c| c.x.clamp(-20.0, 2.0) as f32)
    } else {
        None
    };
    (scope.response.rect, r.transform, clicked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plots_are_cut_out_of_the_screenshot_and_written_as_png() {
        // A 200 x 100 point window at 2 pixels per point: red left half, blue right half.
        let (w, h) = (400, 200);
        let pixels = (0..w * h)
            .map(|i| {
                if i % w < w / 2 {
                    egui::Color32::RED
                } else {
                    egui::Color32::BLUE
                }
            })
            .collect();
        let img = egui::ColorImage::new([w, h], pixels);
        let dir = tempfile::tempdir().unwrap();
        let rects = [
            (
                "roc".to_string(),
                egui::Rect::from_min_size(egui::pos2(10.0, 10.0), egui::vec2(50.0, 40.0)),
            ),
            (
                "miou".to_string(),
                egui::Rect::from_min_size(egui::pos2(120.0, 20.0), egui::vec2(60.0, 30.0)),
            ),
        ];
        let said = write_plots(&img, 2.0, dir.path(), "uflow-leather", &rects).unwrap();
        assert!(said.contains("uflow-leather-roc.png"), "{said}");
        let roc = image::open(dir.path().join("uflow-leather-roc.png"))
            .unwrap()
            .to_rgba8();
        assert_eq!(roc.dimensions(), (100, 80), "points times pixels per point");
        assert_eq!(roc.get_pixel(5, 5).0, [255, 0, 0, 255]);
        let miou = image::open(dir.path().join("uflow-leather-miou.png"))
            .unwrap()
            .to_rgba8();
        assert_eq!(miou.dimensions(), (120, 60));
        assert_eq!(miou.get_pixel(5, 5).0, [0, 0, 255, 255]);
        // A plot partly off the window is cut to what is there; one wholly off it is a message.
        let off = [(
            "roc".to_string(),
            egui::Rect::from_min_size(egui::pos2(180.0, 90.0), egui::vec2(50.0, 40.0)),
        )];
        write_plots(&img, 2.0, dir.path(), "edge", &off).unwrap();
        let edge = image::open(dir.path().join("edge-roc.png")).unwrap();
        assert_eq!((edge.width(), edge.height()), (40, 20));
        let gone = [(
            "roc".to_string(),
            egui::Rect::from_min_size(egui::pos2(300.0, 300.0), egui::vec2(50.0, 40.0)),
        )];
        assert!(write_plots(&img, 2.0, dir.path(), "gone", &gone).is_err());
        // A folder that cannot be made is a message, not a panic.
        let file = dir.path().join("a-file");
        std::fs::write(&file, b"x").unwrap();
        assert!(write_plots(&img, 2.0, &file.join("reports"), "x", &rects).is_err());
    }
}
