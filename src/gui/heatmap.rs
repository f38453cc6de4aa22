//! Heatmaps and outlines over the image: the textures of a detection's maps, each on one fixed
//! scale (-log10 NFA, or the U-Flow anomaly score), their legend, and the regions' outlines.

use egui::{Color32, TextureHandle, Vec2};
use image::RgbaImage;

use super::viewer::{ViewState, fit_texture};
use crate::app::HeatmapKind;
use crate::app::detection::Detection;

/// Anomaly score (-log10 NFA) at which the heatmap saturates: one fixed, dataset-wide scale,
/// never per-image normalisation (which makes good images look hot).
pub const HEAT_MAX: f32 = 20.0;

/// Where the U-Flow anomaly map's scale starts: 1 - exp(-1/2), the score of a place exactly as
/// likely as the training normals on average (mean z^2 = 1 at every scale). Below it the map is
/// left transparent; 1 is the top. Fixed by the model's definition, not by the image.
pub const SCORE_FLOOR: f32 = 0.393_469_34;

/// The heatmap textures of one detection (rebuilt when its serial changes).
pub(super) struct HeatTextures {
    pub(super) serial: u64,
    nfa: TextureHandle,
    score: Option<TextureHandle>,
}

impl HeatTextures {
    pub(super) fn new(ctx: &egui::Context, index: usize, d: &Detection) -> Self {
        let texture = |name: &str, img: RgbaImage| {
            let img = fit_texture(ctx, &img);
            ctx.load_texture(format!("{name}{index}"), img, egui::TextureOptions::LINEAR)
        };
        Self {
            serial: d.serial,
            nfa: texture("heat", heat_image(&d.log_nfa)),
            score: d
                .score
                .as_ref()
                .map(|m| texture("score", score_heat_image(m))),
        }
    }

    /// The texture and its scale for the kind asked for, falling back to -log10 NFA when this
    /// result has no anomaly map.
    pub(super) fn get(&self, kind: HeatmapKind) -> (&TextureHandle, HeatmapKind) {
        match (&self.score, kind) {
            (Some(t), HeatmapKind::AnomalyScore) => (t, kind),
            _ => (&self.nfa, HeatmapKind::Nfa),
        }
    }
}

/// The map a detection paints for the kind asked for (the training-free detector has only -log10
/// NFA).
pub(super) fn drawn_kind(d: &Detection, kind: HeatmapKind) -> HeatmapKind {
    if d.score.is_some() {
        kind
    } else {
        HeatmapKind::Nfa
    }
}

/// Colour for an anomaly score in [0, 1] of the fixed scale (dark purple to pale yellow).
pub(super) fn heat_color(t: f32) -> [u8; 3] {
    const STOPS: [[f32; 3]; 5] = [
        [40.0, 11.0, 84.0],
        [120.0, 28.0, 109.0],
        [187.0, 55.0, 84.0],
        [249.0, 142.0, 9.0],
        [252.0, 255.0, 164.0],
    ];
    let x = t.clamp(0.0, 1.0) * (STOPS.len() - 1) as f32;
    let i = (x.floor() as usize).min(STOPS.len() - 2);
    let f = x - i as f32;
    let c = |k: usize| (STOPS[i][k] * (1.0 - f) + STOPS[i + 1][k] * f) as u8;
    [c(0), c(1), c(2)]
}

/// Heatmap of -log10 NFA on the fixed scale [0, HEAT_MAX]; transparent where NFA >= 1.
fn heat_image(log_nfa: &ndarray::Array2<f32>) -> RgbaImage {
    scaled_heat(log_nfa, |v| -v, 0.0, HEAT_MAX, 0.0)
}

/// Heatmap of a U-Flow anomaly map on the fixed scale [SCORE_FLOOR, 1]. It fades in over the
/// first tenth of the scale: normal places sit around the floor, and a hard edge there would
/// speckle every normal image.
fn score_heat_image(score: &ndarray::Array2<f32>) -> RgbaImage {
    scaled_heat(score, |v| v, SCORE_FLOOR, 1.0, 0.1)
}

/// `value(v)` coloured from `lo` (transparent at or below) to `hi` (saturated), opaque from
/// `fade` (a fraction of the scale) on.
fn scaled_heat(
    map: &ndarray::Array2<f32>,
    value: impl Fn(f32) -> f32,
    lo: f32,
    hi: f32,
    fade: f32,
) -> RgbaImage {
    let (h, w) = map.dim();
    let mut rgba = Vec::with_capacity(h * w * 4);
    for &v in map.iter() {
        let s = value(v);
        if s <= lo || s.is_nan() {
            rgba.extend_from_slice(&[0, 0, 0, 0]);
        } else {
            let t = (s - lo) / (hi - lo);
            let [r, g, b] = heat_color(t);
            let a = if t < fade { t / fade } else { 1.0 };
            rgba.extend_from_slice(&[r, g, b, (a * 255.0) as u8]);
        }
    }
    RgbaImage::from_raw(w as u32, h as u32, rgba).expect("one pixel per map value")
}

/// The colour scale of the heatmap on display, from `lo` to `hi`.
pub(super) fn heat_legend(ui: &mut egui::Ui, lo: &str, hi: &str, hover: &str) {
    ui.label(lo);
    let (rect, _) = ui.allocate_exact_size(Vec2::new(80.0, 12.0), egui::Sense::hover());
    let n = 30;
    for k in 0..n {
        let x0 = rect.left() + rect.width() * k as f32 / n as f32;
        let x1 = rect.left() + rect.width() * (k + 1) as f32 / n as f32;
        let [r, g, b] = heat_color(k as f32 / (n - 1) as f32);
        ui.painter().rect_filled(
            egui::Rect::from_min_max(egui::pos2(x0, rect.top()), egui::pos2(x1, rect.bottom())),
            0.0,
            Color32::from_rgb(r, g, b),
        );
    }
    ui.label(hi).on_hover_text(hover);
}

/// Region outlines (in detector-map coordinates) as closed lines over the image, with their
/// significance next to them.
pub(super) fn draw_regions(
    ui: &egui::Ui,
    view: &ViewState,
    rect: egui::Rect,
    image_size: Vec2,
    d: &Detection,
) {
    let (mh, mw) = d.log_nfa.dim();
    let scale = Vec2::new(image_size.x / mw as f32, image_size.y / mh as f32);
    let painter = ui.painter_at(rect);
    let colour = Color32::from_rgb(80, 255, 120);
    for r in &d.regions {
        for outline in &r.outlines {
            let pts: Vec<egui::Pos2> = outline
                .iter()
                .map(|p| view.to_screen(rect, egui::pos2(p[0] * scale.x, p[1] * scale.y)))
                .collect();
            painter.add(egui::Shape::closed_line(
                pts,
                egui::Stroke::new(2.0, colour),
            ));
        }
        // Label the region at the top of its outline.
        let top = r
            .outlines
            .first()
            .and_then(|o| o.iter().min_by(|a, b| a[1].total_cmp(&b[1])));
        let Some(top) = top else { continue };
        let anchor = view.to_screen(rect, egui::pos2(top[0] * scale.x, top[1] * scale.y));
        painter.text(
            anchor - Vec2::new(0.0, 2.0),
            egui::Align2::LEFT_BOTTOM,
            format!("{:.1}", r.log10_nfa),
            egui::FontId::proportional(12.0),
            colour,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heatmaps_are_transparent_where_nothing_is_and_use_fixed_scales() {
        let alpha = |img: &RgbaImage| img.pixels().map(|p| p.0[3]).collect::<Vec<_>>();
        // -log10 NFA: nothing where NFA >= 1, opaque from the first significant value on.
        let nfa = ndarray::arr2(&[[1.0f32, 0.0, -0.5, -50.0]]);
        assert_eq!(alpha(&heat_image(&nfa)), [0, 0, 255, 255]);
        // Anomaly score: nothing at or below the floor, fading in, opaque above a tenth of the
        // scale, the top colour at 1 whatever the image.
        let step = (1.0 - SCORE_FLOOR) * 0.05;
        let score = ndarray::arr2(&[[0.1f32, SCORE_FLOOR, SCORE_FLOOR + step, 0.6, 1.0]]);
        let img = score_heat_image(&score);
        let a = alpha(&img);
        assert_eq!((a[0], a[1]), (0, 0));
        assert!(
            (120..=135).contains(&a[2]),
            "half-way through the fade: {}",
            a[2]
        );
        assert_eq!((a[3], a[4]), (255, 255));
        let [r, g, b] = heat_color(1.0);
        assert_eq!(img.get_pixel(4, 0).0, [r, g, b, 255]);
    }
}
