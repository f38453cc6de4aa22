//! Small widgets the bars and panels share.

use egui::{Color32, Vec2};

/// A small square of a colour (no font has every symbol).
pub(super) fn swatch(ui: &mut egui::Ui, colour: Color32) {
    let (rect, _) = ui.allocate_exact_size(Vec2::splat(10.0), egui::Sense::hover());
    ui.painter().rect_filled(rect, 2.0, colour);
}
