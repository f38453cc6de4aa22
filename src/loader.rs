//! Background image decoding, so that opening a project or scrolling the image list never blocks
//! the UI. Requests run on rayon's pool; results come back over a channel tagged with the project
//! generation and the image index.

use image::{GrayImage, RgbaImage};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};

use crate::imaging;

/// Thumbnails are decoded at this size (longest side, pixels).
pub const THUMB_SIZE: u32 = 96;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LoadKind {
    Thumbnail,
    Full,
}

#[derive(Debug)]
pub struct Loaded {
    pub generation: u64,
    pub index: usize,
    pub kind: LoadKind,
    pub result: Result<LoadedImage, String>,
}

#[derive(Debug)]
pub struct LoadedImage {
    pub rgba: RgbaImage,
    /// Label masks that belong to the image: (annotator, mask) or the reason one failed.
    pub labels: Vec<(String, Result<GrayImage, String>)>,
}

pub struct Loader {
    tx: Sender<Loaded>,
    rx: Receiver<Loaded>,
    notify: Arc<dyn Fn() + Send + Sync>,
    pending: usize,
}

impl Loader {
    pub fn new(notify: Arc<dyn Fn() + Send + Sync>) -> Self {
        let (tx, rx) = mpsc::channel();
        Self {
            tx,
            rx,
            notify,
            pending: 0,
        }
    }

    /// Decode `path` (and, for a full load, its label masks) in the background.
    pub fn request(
        &mut self,
        generation: u64,
        index: usize,
        kind: LoadKind,
        path: PathBuf,
        labels: Vec<(String, PathBuf)>,
    ) {
        self.pending += 1;
        let tx = self.tx.clone();
        let notify = self.notify.clone();
        rayon::spawn(move || {
            let result = imaging::load_rgba(&path)
                .map_err(|e| e.to_string())
                .map(|rgba| {
                    let size = rgba.dimensions();
                    let labels = labels
                        .into_iter()
                        .map(|(who, p)| {
                            (
                                who,
                                imaging::load_label(&p, size).map_err(|e| e.to_string()),
                            )
                        })
                        .collect();
                    let rgba = match kind {
                        LoadKind::Thumbnail => imaging::fit_within(&rgba, THUMB_SIZE),
                        LoadKind::Full => rgba,
                    };
                    LoadedImage { rgba, labels }
                });
            let _ = tx.send(Loaded {
                generation,
                index,
                kind,
                result,
            });
            notify();
        });
    }

    /// Results that arrived since the last call.
    pub fn drain(&mut self) -> Vec<Loaded> {
        let out: Vec<Loaded> = self.rx.try_iter().collect();
        self.pending -= out.len().min(self.pending);
        out
    }

    /// Requests still being decoded.
    pub fn pending(&self) -> usize {
        self.pending
    }
}
