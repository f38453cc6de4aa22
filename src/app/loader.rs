//! Background image decoding, so that opening a project or scrolling the image list never blocks
//! the UI. Requests run on rayon's pool; results come back over a channel tagged with the project
//! generation and the image index.

use image::{GrayImage, RgbaImage};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};

use super::jobs::spawn_caught;
use crate::project::imaging;

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
    thumb_cache: Option<PathBuf>,
    /// The decoder (a field so that a test can make it fail).
    decode: Decode,
}

type Decode = fn(&Path) -> Result<RgbaImage, imaging::ImageLoadError>;

/// A thumbnail through the disk cache `cache` (PNG files named by a hash of the image's path,
/// size and modification time, so a replaced image gets a new thumbnail). A cache that cannot be
/// written (a read-only project) only costs the decode.
pub fn thumbnail(path: &Path, cache: Option<&Path>) -> Result<RgbaImage, imaging::ImageLoadError> {
    thumbnail_with(path, cache, imaging::load_rgba)
}

fn thumbnail_with(
    path: &Path,
    cache: Option<&Path>,
    decode: Decode,
) -> Result<RgbaImage, imaging::ImageLoadError> {
    let cached = cache.map(|dir| {
        let mut h = crate::project::storage::Fnv::new();
        h.eat_file_stamp(path);
        h.eat(&THUMB_SIZE.to_le_bytes());
        dir.join(format!("{}.png", h.hex()))
    });
    if let Some(c) = &cached
        && c.exists()
        && let Ok(img) = imaging::load_rgba(c)
    {
        return Ok(img);
    }
    let thumb = imaging::fit_within(&decode(path)?, THUMB_SIZE);
    if let Some(c) = &cached {
        let _ = crate::project::storage::write_png_atomic(c, &thumb);
    }
    Ok(thumb)
}

impl Loader {
    pub fn new(notify: Arc<dyn Fn() + Send + Sync>) -> Self {
        let (tx, rx) = mpsc::channel();
        Self {
            tx,
            rx,
            notify,
            pending: 0,
            thumb_cache: None,
            decode: imaging::load_rgba,
        }
    }

    /// Where thumbnails are cached on disk (the project's `cache/thumbs`), or None.
    pub fn set_thumb_cache(&mut self, dir: Option<PathBuf>) {
        self.thumb_cache = dir;
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
        let cache = self.thumb_cache.clone();
        let shown = path.display().to_string();
        let decode = self.decode;
        let job = move || match kind {
            LoadKind::Thumbnail => {
                thumbnail_with(&path, cache.as_deref(), decode).map(|rgba| LoadedImage {
                    rgba,
                    labels: Vec::new(),
                })
            }
            LoadKind::Full => decode(&path).map(|rgba| {
                let size = rgba.dimensions();
                let labels = labels
                    .into_iter()
                    .map(|(who, p)| {
                        let mask = imaging::load_label(&p, size).map_err(|e| e.to_string());
                        (who, mask)
                    })
                    .collect();
                LoadedImage { rgba, labels }
            }),
        };
        spawn_caught(job, move |result| {
            let result = match result {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(panic) => Err(format!("decoding {shown} crashed: {panic}")),
            };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbnails_are_cached_on_disk_and_refreshed_when_the_image_changes() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("a.png");
        let cache = dir.path().join("cache");
        image::RgbImage::from_pixel(300, 150, image::Rgb([200, 10, 10]))
            .save(&img)
            .unwrap();
        let first = thumbnail(&img, Some(&cache)).unwrap();
        assert_eq!(first.dimensions(), (THUMB_SIZE, THUMB_SIZE / 2));
        let files: Vec<_> = std::fs::read_dir(&cache).unwrap().flatten().collect();
        assert_eq!(files.len(), 1);
        assert_eq!(thumbnail(&img, Some(&cache)).unwrap(), first);
        // A replaced image (another size) gets a new entry, not the stale thumbnail.
        image::RgbImage::from_pixel(100, 200, image::Rgb([0, 0, 250]))
            .save(&img)
            .unwrap();
        let second = thumbnail(&img, Some(&cache)).unwrap();
        assert_eq!(second.dimensions(), (THUMB_SIZE / 2, THUMB_SIZE));
        assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 2);
    }

    #[test]
    fn a_crashing_decoder_gives_an_error_for_that_image_only() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("a.png");
        image::RgbImage::new(5, 4).save(&img).unwrap();
        let mut loader = Loader::new(Arc::new(|| {}));
        loader.decode = |p| {
            if p.ends_with("a.png") {
                panic!("injected fault")
            }
            imaging::load_rgba(p)
        };
        loader.request(1, 0, LoadKind::Full, img.clone(), vec![]);
        loader.request(1, 1, LoadKind::Thumbnail, img.clone(), vec![]);
        let start = std::time::Instant::now();
        let mut got = Vec::new();
        while got.len() < 2 {
            assert!(start.elapsed().as_secs() < 30);
            got.extend(loader.drain());
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        for l in got {
            let err = l.result.unwrap_err();
            assert!(err.contains("crashed: injected fault"), "{err}");
            assert!(err.contains("a.png"), "{err}");
        }
        assert_eq!(loader.pending(), 0);
        // The loader goes on.
        loader.decode = imaging::load_rgba;
        loader.request(1, 0, LoadKind::Full, img, vec![]);
        while loader.pending() > 0 {
            for l in loader.drain() {
                assert_eq!(l.result.unwrap().rgba.dimensions(), (5, 4));
            }
        }
    }
}
