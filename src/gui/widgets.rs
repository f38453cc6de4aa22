//! Small widgets the bars and panels share.

use egui::{Color32, RichText, TextureHandle, Vec2};

use crate::project::{ImageEntry, shorten_middle};

/// A small square of a colour (no font has every symbol).
pub(super) fn swatch(ui: &mut egui::Ui, colour: Color32) {
    let (rect, _) = ui.allocate_exact_size(Vec2::splat(10.0), egui::Sense::hover());
    ui.painter().rect_filled(rect, 2.0, colour);
}

/// An image's thumbnail as the panels have it: decoded, on its way, or not decodable (the
/// file's notice says why).
pub(super) enum Thumb<'a> {
    Ready(&'a TextureHandle),
    Loading,
    Unreadable,
}

/// The colour of text that reports a problem (an unreadable file, why a figure is missing).
pub(super) const PROBLEM_TEXT: Color32 = Color32::from_rgb(230, 120, 90);

/// An image's thumbnail in a square of `side` whatever its aspect, so that every row's text
/// starts alike: a spinner until it is decoded, "unreadable" when it cannot be (not a spinner:
/// nothing is on its way).
pub(super) fn thumb_slot(ui: &mut egui::Ui, thumb: Thumb<'_>, side: f32) -> egui::Response {
    match thumb {
        Thumb::Ready(t) => {
            let s = t.size_vec2();
            let scale = side / s.x.max(s.y);
            ui.add_sized([side, side], egui::Image::new((t.id(), s * scale)))
        }
        Thumb::Loading => ui.add_sized([side, side], egui::Spinner::new()),
        Thumb::Unreadable => ui.add_sized(
            [side, side],
            egui::Label::new(RichText::new("unreadable").small().color(PROBLEM_TEXT))
                .selectable(false),
        ),
    }
}

/// An image's name as lists give it: its place in the project (category/split/kind/file),
/// shortened in the middle to the room there is (measured in the font it is drawn in), whole
/// on hover.
pub(super) fn image_name(
    ui: &mut egui::Ui,
    e: &ImageEntry,
    text: impl Fn(String) -> RichText,
    selected: bool,
) -> egui::Response {
    let full = e.display_name();
    let pad = 2.0 * ui.spacing().button_padding.x;
    // A point spare: a row wider than the panel would widen it (side panels grow to their
    // content), and names would creep back to full length frame after frame.
    let room = ui.available_width() - pad - 1.0;
    let width = |s: &str| {
        egui::WidgetText::from(text(s.to_string()))
            .into_galley(
                ui,
                Some(egui::TextWrapMode::Extend),
                f32::INFINITY,
                egui::TextStyle::Button,
            )
            .size()
            .x
    };
    let mut shown = full.clone();
    let mut chars = full.chars().count();
    while chars > 8 && width(&shown) > room {
        chars -= 1;
        shown = shorten_middle(&full, chars);
    }
    // Truncated as a last resort, so that the row never outgrows the panel.
    ui.add(egui::Button::selectable(selected, text(shown)).truncate())
        .on_hover_text(full)
}
