//! Label layers on screen, as data: one texture per layer of the image on display, the
//! disagreement of its layers (how many annotators marked each pixel, their outlines, their
//! pairwise IoU), the check of its group of views; and the pixels and lines they are drawn
//! from.

use std::collections::HashMap;
use std::sync::mpsc::Receiver;

use egui::{Color32, ColorImage, TextureHandle};
use ndarray::Array2;

use super::viewer::ViewState;
use crate::app::AppState;
use crate::project::Project;
use crate::project::mask::LabelMask;
use crate::project::review::{
    CONSENSUS, GroupInconsistency, PairIou, disagreement_map, pairwise_iou,
};
use crate::stats::acontrario::regions::Outline;
use crate::stats::acontrario::regions_at;

/// Colours of annotators' outlines, in project order.
pub(super) const ANNOTATOR_COLOURS: [Color32; 6] = [
    Color32::from_rgb(255, 210, 60),
    Color32::from_rgb(90, 200, 255),
    Color32::from_rgb(255, 110, 200),
    Color32::from_rgb(140, 255, 120),
    Color32::from_rgb(255, 150, 60),
    Color32::from_rgb(190, 150, 255),
];

/// A layer's texture.
pub(super) struct LayerTexture {
    pub(super) texture: TextureHandle,
    /// The texture is smaller than the image (beyond the GPU's limit): refreshed whole.
    pub(super) scaled: bool,
}

/// Textures of the label layers of one image.
#[derive(Default)]
pub(super) struct LabelTextures {
    pub(super) image: Option<usize>,
    pub(super) layers: HashMap<String, LayerTexture>,
}

/// The disagreement of the image on display, computed from its layers.
pub(super) struct Disagreement {
    /// (image, label revision) it was computed for.
    pub(super) key: (usize, u64),
    pub(super) texture: Option<TextureHandle>,
    /// Layers compared.
    pub(super) names: Vec<String>,
    /// Each layer's outlines, in image pixels.
    pub(super) outlines: Vec<Vec<Outline>>,
    pub(super) ious: Vec<PairIou>,
}

/// A disagreement computed off the UI thread (tracing outlines and comparing every pair of
/// layers of a large image takes longer than a frame); the window makes its texture.
pub(super) struct DisagreementData {
    pub(super) key: (usize, u64),
    /// Who marked each pixel, coloured by how many did, with its size (None: no layers).
    pub(super) rgba: Option<image::RgbaImage>,
    pub(super) names: Vec<String>,
    pub(super) outlines: Vec<Vec<Outline>>,
    pub(super) ious: Vec<PairIou>,
}

/// A disagreement being computed.
pub(super) struct DisagreementJob {
    pub(super) rx: Receiver<Result<DisagreementData, String>>,
}

impl DisagreementData {
    pub(super) fn compute(key: (usize, u64), layers: Vec<(String, LabelMask)>) -> Self {
        let refs: Vec<&LabelMask> = layers.iter().map(|(_, m)| m).collect();
        let rgba = refs.first().and_then(|first| {
            let n = refs.len() as u32;
            let rgba: Vec<u8> = disagreement_map(&refs)
                .iter()
                .flat_map(|bits| agreement_colour(bits.count_ones(), n).to_array())
                .collect();
            image::RgbaImage::from_raw(first.width, first.height, rgba)
        });
        Self {
            key,
            rgba,
            names: layers.iter().map(|(a, _)| a.clone()).collect(),
            outlines: layers.iter().map(|(_, m)| outlines_of(m)).collect(),
            ious: pairwise_iou(&layers),
        }
    }
}

/// The check of the group of the image on display, running or done.
pub(super) struct GroupCheck {
    pub(super) group: String,
    pub(super) revision: u64,
    pub(super) result: Option<Result<Vec<GroupInconsistency>, String>>,
    pub(super) rx: Option<Receiver<Result<Vec<GroupInconsistency>, String>>>,
}

/// RGBA of a mask's rectangle [x0, y0, x1, y1) in its classes' colours (transparent where 0).
pub(super) fn label_rgba(mask: &LabelMask, project: &Project, bbox: [u32; 4]) -> ColorImage {
    let [x0, y0, x1, y1] = bbox;
    let mut colours = [[0u8; 4]; 256];
    for (i, c) in colours.iter_mut().enumerate().skip(1) {
        let rgb = project.class(i as u8).map_or([255, 0, 0], |k| k.color);
        *c = [rgb[0], rgb[1], rgb[2], 255];
    }
    let mut rgba = Vec::with_capacity(((x1 - x0) * (y1 - y0) * 4) as usize);
    for y in y0..y1 {
        let row = (y * mask.width) as usize;
        for &v in &mask.data[row + x0 as usize..row + x1 as usize] {
            rgba.extend_from_slice(&colours[v as usize]);
        }
    }
    ColorImage::from_rgba_unmultiplied([(x1 - x0) as usize, (y1 - y0) as usize], &rgba)
}

/// The layers that say something about an image, as they are in memory: each annotator's
/// mask, a read-only ground truth without a mask as clean; the consensus left out.
pub(super) fn layers_in_memory(state: &AppState, index: usize) -> Vec<(String, LabelMask)> {
    let Some(p) = &state.project else {
        return Vec::new();
    };
    let Some(e) = p.file.images.get(index) else {
        return Vec::new();
    };
    let size = p
        .file
        .annotators
        .iter()
        .find_map(|a| state.labels.loaded(&e.id, &a.id))
        .map(|m| (m.width, m.height));
    p.file
        .annotators
        .iter()
        .filter(|a| a.id != CONSENSUS)
        .filter_map(|a| match state.labels.loaded(&e.id, &a.id) {
            Some(m) => Some((a.id.clone(), m.clone())),
            None if a.read_only => size.map(|(w, h)| (a.id.clone(), LabelMask::new(w, h))),
            None => None,
        })
        .collect()
}

/// Outlines of a mask's marked pixels, in image pixels.
pub(super) fn outlines_of(mask: &LabelMask) -> Vec<Outline> {
    let map = Array2::from_shape_fn((mask.height as usize, mask.width as usize), |(y, x)| {
        if mask.data[y * mask.width as usize + x] != 0 {
            -1.0f32
        } else {
            1.0
        }
    });
    regions_at(&map, None, 0.0, 0.5)
        .into_iter()
        .flat_map(|r| r.outlines)
        .collect()
}

/// Colour of a pixel marked by `k` of `n` layers: red when one marks it, shading to green when
/// all do.
pub(super) fn agreement_colour(k: u32, n: u32) -> Color32 {
    if k == 0 || n == 0 {
        return Color32::TRANSPARENT;
    }
    if k == n {
        return Color32::from_rgb(60, 200, 120);
    }
    let t = (k - 1) as f32 / (n - 1).max(1) as f32;
    Color32::from_rgb(235, (60.0 + 140.0 * t) as u8, 40)
}

/// Draw every layer's outlines in its colour over the view.
pub(super) fn draw_outlines(
    ui: &egui::Ui,
    view: &ViewState,
    rect: egui::Rect,
    outlines: &[Vec<Outline>],
) {
    let painter = ui.painter_at(rect);
    for (k, layer) in outlines.iter().enumerate() {
        let colour = ANNOTATOR_COLOURS[k % ANNOTATOR_COLOURS.len()];
        for outline in layer {
            let pts: Vec<egui::Pos2> = outline
                .iter()
                .map(|p| view.to_screen(rect, egui::pos2(p[0], p[1])))
                .collect();
            painter.add(egui::Shape::closed_line(
                pts,
                egui::Stroke::new(1.5, colour),
            ));
        }
    }
}
