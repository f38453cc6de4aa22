//! The image viewer: zoom with the wheel around the cursor, pan by dragging, fit on double-click
//! or `F`, 1:1 on `1`. Textures magnify with nearest-neighbour filtering, so pixels stay crisp past
//! 1:1, and minify linearly. Coordinates are kept in image pixels, so overlays stay aligned.

use egui::{Color32, ColorImage, Pos2, Rect, Sense, TextureHandle, Vec2};
use image::RgbaImage;

const MIN_ZOOM: f32 = 0.02;
const MAX_ZOOM: f32 = 64.0;

pub const CRISP: egui::TextureOptions = egui::TextureOptions {
    magnification: egui::TextureFilter::Nearest,
    minification: egui::TextureFilter::Linear,
    wrap_mode: egui::TextureWrapMode::ClampToEdge,
    mipmap_mode: None,
};

#[derive(Debug, Clone, PartialEq)]
pub struct ViewState {
    /// Screen points per image pixel.
    pub zoom: f32,
    /// Image coordinate shown at the centre of the view.
    pub center: Pos2,
    /// Fit at the next frame (the view's size is only known while drawing).
    pub fit_pending: bool,
    /// Show this image rectangle at the next frame, magnified at most so much.
    pub focus_pending: Option<(Rect, f32)>,
}

impl Default for ViewState {
    fn default() -> Self {
        Self {
            zoom: 1.0,
            center: Pos2::ZERO,
            fit_pending: true,
            focus_pending: None,
        }
    }
}

impl ViewState {
    pub fn fit(&mut self) {
        self.fit_pending = true;
    }

    pub fn to_screen(&self, view: Rect, p: Pos2) -> Pos2 {
        view.center() + (p - self.center) * self.zoom
    }

    pub fn to_image(&self, view: Rect, s: Pos2) -> Pos2 {
        self.center + (s - view.center()) / self.zoom
    }

    /// Zoom by `factor` keeping the image point under `anchor` (screen) in place.
    pub fn zoom_about(&mut self, view: Rect, anchor: Pos2, factor: f32) {
        let before = self.to_image(view, anchor);
        self.zoom = (self.zoom * factor).clamp(MIN_ZOOM, MAX_ZOOM);
        self.center = before - (anchor - view.center()) / self.zoom;
    }

    /// Show an image rectangle whole at the next frame, magnified at most `max_zoom`.
    pub fn focus(&mut self, rect: Rect, max_zoom: f32) {
        self.focus_pending = Some((rect, max_zoom));
        self.fit_pending = false;
    }

    fn apply_focus(&mut self, view: Rect, (r, max_zoom): (Rect, f32)) {
        let (w, h) = (r.width().max(1.0), r.height().max(1.0));
        self.zoom = (view.width() / w)
            .min(view.height() / h)
            .min(max_zoom)
            .clamp(MIN_ZOOM, MAX_ZOOM);
        self.center = r.center();
    }

    fn apply_fit(&mut self, view: Rect, image_size: Vec2) {
        let z = (view.width() / image_size.x).min(view.height() / image_size.y) * 0.98;
        self.zoom = z.clamp(MIN_ZOOM, MAX_ZOOM);
        self.center = (image_size / 2.0).to_pos2();
        self.fit_pending = false;
    }
}

/// One layer drawn over the image, in image coordinates.
pub struct Layer<'a> {
    pub texture: &'a TextureHandle,
    pub opacity: f32,
}

pub struct ViewerOutput {
    pub response: egui::Response,
    /// The screen rectangle of the view (for drawing overlays with `ViewState::to_screen`).
    pub view: Rect,
    /// Image pixel under the pointer, when it is over the image.
    pub hovered_pixel: Option<(u32, u32)>,
    /// The pointer in image coordinates (also off the image), when over the view.
    pub pointer: Option<Pos2>,
}

/// An image (`texture`, of `size` image pixels) with the layers drawn over it.
pub struct Picture<'a> {
    pub texture: &'a TextureHandle,
    pub size: Vec2,
    pub layers: &'a [Layer<'a>],
}

/// Draw a picture in `room` (the space available when None), named `name` for accessibility.
/// Dragging with the secondary or middle button always pans; with the primary one when
/// `primary_pans` (no tool in hand), which also makes a double-click fit.
pub fn show(
    ui: &mut egui::Ui,
    state: &mut ViewState,
    picture: &Picture<'_>,
    primary_pans: bool,
    room: Option<Vec2>,
    name: &str,
) -> ViewerOutput {
    let (texture, image_size, layers) = (picture.texture, picture.size, picture.layers);
    let size = room;
    let size = size.unwrap_or_else(|| ui.available_size());
    let (view, response) = ui.allocate_exact_size(size, Sense::click_and_drag());
    let label = name.to_string();
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Image, true, &label));
    if state.fit_pending || (primary_pans && response.double_clicked()) {
        state.apply_fit(view, image_size);
    }
    if let Some(r) = state.focus_pending.take() {
        state.apply_focus(view, r);
    }
    let panning = response.dragged_by(egui::PointerButton::Secondary)
        || response.dragged_by(egui::PointerButton::Middle)
        || (primary_pans && response.dragged_by(egui::PointerButton::Primary));
    if panning {
        state.center -= response.drag_delta() / state.zoom;
    }
    if let Some(pointer) = response.hover_pos() {
        let (scroll, pinch) = ui.input(|i| (i.smooth_scroll_delta.y, i.zoom_delta()));
        let factor = pinch * (scroll * 0.002).exp();
        if (factor - 1.0).abs() > 1e-4 {
            state.zoom_about(view, pointer, factor);
        }
    }
    let painter = ui.painter_at(view);
    painter.rect_filled(view, 0.0, Color32::from_gray(24));
    let rect = Rect::from_min_max(
        state.to_screen(view, Pos2::ZERO),
        state.to_screen(view, image_size.to_pos2()),
    );
    let uv = Rect::from_min_max(Pos2::ZERO, Pos2::new(1.0, 1.0));
    painter.image(texture.id(), rect, uv, Color32::WHITE);
    for layer in layers {
        let tint = Color32::from_white_alpha((layer.opacity.clamp(0.0, 1.0) * 255.0) as u8);
        painter.image(layer.texture.id(), rect, uv, tint);
    }
    let hovered_pixel = response.hover_pos().and_then(|p| {
        let q = state.to_image(view, p);
        (q.x >= 0.0 && q.y >= 0.0 && q.x < image_size.x && q.y < image_size.y)
            .then_some((q.x as u32, q.y as u32))
    });
    let pointer = response.hover_pos().map(|p| state.to_image(view, p));
    ViewerOutput {
        response,
        view,
        hovered_pixel,
        pointer,
    }
}

pub fn color_image(img: &RgbaImage) -> ColorImage {
    ColorImage::from_rgba_unmultiplied([img.width() as usize, img.height() as usize], img.as_raw())
}

/// An image as a texture the renderer accepts: downsampled when a side exceeds its limit
/// (`egui::InputState::max_texture_side`: 2048 to 16384 depending on the GPU); the viewer keeps
/// image coordinates anyway.
pub fn fit_texture(ctx: &egui::Context, img: &RgbaImage) -> ColorImage {
    let max = ctx.input(|i| i.max_texture_side).max(1) as u32;
    if img.width() > max || img.height() > max {
        color_image(&crate::project::imaging::fit_within(img, max))
    } else {
        color_image(img)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zoom_keeps_the_anchor_pixel_fixed_and_fit_centres() {
        let view = Rect::from_min_size(Pos2::new(10.0, 20.0), Vec2::new(400.0, 300.0));
        let mut s = ViewState::default();
        s.apply_fit(view, Vec2::new(200.0, 100.0));
        assert!((s.zoom - 1.96).abs() < 1e-4);
        assert_eq!(s.to_screen(view, Pos2::new(100.0, 50.0)), view.center());
        let anchor = Pos2::new(50.0, 60.0);
        let before = s.to_image(view, anchor);
        s.zoom_about(view, anchor, 3.0);
        let after = s.to_image(view, anchor);
        assert!((before - after).length() < 1e-3);
    }
}
