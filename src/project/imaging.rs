//! Image and mask loading. Decoding never panics on bad files: every failure is an
//! [`ImageLoadError`] that names the file, for the GUI's notices and the CLI's messages.

use image::{DynamicImage, GrayImage, RgbaImage};
use std::path::{Path, PathBuf};

pub const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "bmp", "tif", "tiff"];

#[derive(Debug, thiserror::Error)]
pub enum ImageLoadError {
    #[error("cannot read image {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot decode image {path}: {message}")]
    Decode { path: PathBuf, message: String },
    #[error("label mask {path} is {found:?} but its image is {expected:?}")]
    SizeMismatch {
        path: PathBuf,
        found: (u32, u32),
        expected: (u32, u32),
    },
}

pub fn is_image_path(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Decode any supported image (8/16-bit, grey/RGB/RGBA) into a dynamic image.
pub fn load_dynamic(path: &Path) -> Result<DynamicImage, ImageLoadError> {
    let bytes = std::fs::read(path).map_err(|source| ImageLoadError::Io {
        path: path.into(),
        source,
    })?;
    let reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|source| ImageLoadError::Io {
            path: path.into(),
            source,
        })?;
    // The decoder's own limits guard against absurd dimensions in corrupt headers.
    reader.decode().map_err(|e| ImageLoadError::Decode {
        path: path.into(),
        message: e.to_string(),
    })
}

/// Decode into 8-bit RGBA for display.
pub fn load_rgba(path: &Path) -> Result<RgbaImage, ImageLoadError> {
    Ok(load_dynamic(path)?.to_rgba8())
}

/// Load a label mask (class index per pixel) and check it matches its image's size: masks of
/// another size are reported, never silently resized.
pub fn load_label(path: &Path, expected: (u32, u32)) -> Result<GrayImage, ImageLoadError> {
    let mask = load_dynamic(path)?.to_luma8();
    if mask.dimensions() != expected {
        return Err(ImageLoadError::SizeMismatch {
            path: path.into(),
            found: mask.dimensions(),
            expected,
        });
    }
    Ok(mask)
}

/// A label mask as a binary map at (h, w): any non-zero class is anomalous; resized by nearest
/// neighbour (each output pixel takes the mask pixel under its centre), as the official MVTec AD
/// evaluation resizes ground truth. `None` (no mask) means all normal.
pub fn binary_mask_at(
    path: Option<&Path>,
    (h, w): (usize, usize),
) -> Result<Vec<bool>, ImageLoadError> {
    let Some(p) = path else {
        return Ok(vec![false; h * w]);
    };
    let m = load_dynamic(p)?.to_luma8();
    Ok(nearest_binary(&m, (h, w)))
}

/// `m`'s non-zero pixels at (h, w) by nearest neighbour, centre sampled: output pixel x reads
/// mask column floor((x + 0.5) W / w).
fn nearest_binary(m: &GrayImage, (h, w): (usize, usize)) -> Vec<bool> {
    let (mw, mh) = (m.width() as usize, m.height() as usize);
    if mw == 0 || mh == 0 {
        return vec![false; h * w];
    }
    let at = |i: usize, n: usize, big: usize| ((2 * i + 1) * big / (2 * n)).min(big - 1);
    let cols: Vec<u32> = (0..w).map(|x| at(x, w, mw) as u32).collect();
    let mut out = Vec::with_capacity(h * w);
    for y in 0..h {
        let sy = at(y, h, mh) as u32;
        out.extend(cols.iter().map(|&sx| m.get_pixel(sx, sy).0[0] != 0));
    }
    out
}

/// Downscale to fit in `max` x `max`, keeping the aspect ratio (never upscales).
pub fn fit_within(img: &RgbaImage, max: u32) -> RgbaImage {
    let (w, h) = img.dimensions();
    if w <= max && h <= max {
        return img.clone();
    }
    let scale = max as f64 / w.max(h) as f64;
    let nw = ((w as f64 * scale).round() as u32).max(1);
    let nh = ((h as f64 * scale).round() as u32).max(1);
    image::imageops::thumbnail(img, nw, nh)
}

/// An image's size from its header, without decoding the pixels.
pub fn image_size(path: &Path) -> Result<(u32, u32), ImageLoadError> {
    image::ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .map_err(|source| ImageLoadError::Io {
            path: path.into(),
            source,
        })?
        .into_dimensions()
        .map_err(|e| ImageLoadError::Decode {
            path: path.into(),
            message: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_shrink_by_nearest_neighbour_at_pixel_centres() {
        // 8 x 4 mask, marked at columns 2-3 of row 1 and at the last pixel: halved, output
        // pixel (x, y) reads mask pixel (2x + 1, 2y + 1).
        let mut m = GrayImage::new(8, 4);
        for x in [2, 3] {
            m.put_pixel(x, 1, image::Luma([1]));
        }
        m.put_pixel(7, 3, image::Luma([255]));
        let r = nearest_binary(&m, (2, 4));
        assert_eq!(
            r,
            vec![false, true, false, false, false, false, false, true]
        );
        // Same size: unchanged; a single mask pixel grown to any size fills it.
        assert_eq!(nearest_binary(&m, (4, 8)).iter().filter(|&&v| v).count(), 3);
        let one = GrayImage::from_pixel(1, 1, image::Luma([9]));
        assert!(nearest_binary(&one, (3, 5)).iter().all(|&v| v));
    }

    #[test]
    fn garbage_file_is_a_decode_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.png");
        std::fs::write(&p, b"\x89PNG\r\n\x1a\nthis is not a png").unwrap();
        assert!(matches!(load_rgba(&p), Err(ImageLoadError::Decode { .. })));
        assert!(matches!(
            load_rgba(&dir.path().join("missing.png")),
            Err(ImageLoadError::Io { .. })
        ));
    }

    #[test]
    fn sixteen_bit_grey_loads_and_mask_size_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("g16.png");
        let img = image::ImageBuffer::<image::Luma<u16>, _>::from_fn(5, 3, |x, _| {
            image::Luma([x as u16 * 10000])
        });
        img.save(&p).unwrap();
        let rgba = load_rgba(&p).unwrap();
        assert_eq!(rgba.dimensions(), (5, 3));
        assert!(rgba.get_pixel(4, 0)[0] > rgba.get_pixel(1, 0)[0]);
        assert!(matches!(
            load_label(&p, (4, 4)),
            Err(ImageLoadError::SizeMismatch { .. })
        ));
        assert!(load_label(&p, (5, 3)).is_ok());
    }

    #[test]
    fn fit_within_keeps_aspect() {
        let img = RgbaImage::new(400, 100);
        assert_eq!(fit_within(&img, 96).dimensions(), (96, 24));
        assert_eq!(
            fit_within(&RgbaImage::new(10, 20), 96).dimensions(),
            (10, 20)
        );
    }
}
