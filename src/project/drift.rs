//! The drift check: what the training normals look like at a glance (brightness, contrast,
//! colour), and whether an image is unlike all of them. A line's lighting changes between the
//! day the normals were collected and today; a model then flags normal images, or misses
//! defects, and nothing else would say why. Measured on the image as the model sees it (resized
//! to its input), so that the training images and the scored ones are measured alike.

use image::RgbImage;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// An image's global look: mean grey (0-255), grey standard deviation, and the colour cast
/// (each channel's mean minus the grey mean).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Look {
    pub brightness: f32,
    pub contrast: f32,
    pub cast: [f32; 3],
}

const GREY: [f32; 3] = [0.299, 0.587, 0.114];

pub fn look(img: &RgbImage) -> Look {
    let n = (img.width() as usize * img.height() as usize).max(1) as f64;
    let (mut sum, mut sq, mut ch) = (0f64, 0f64, [0f64; 3]);
    for p in img.pixels() {
        let g = GREY
            .iter()
            .zip(p.0)
            .map(|(w, v)| f64::from(*w) * f64::from(v))
            .sum::<f64>();
        sum += g;
        sq += g * g;
        for (c, v) in ch.iter_mut().zip(p.0) {
            *c += f64::from(v);
        }
    }
    let mean = sum / n;
    Look {
        brightness: mean as f32,
        contrast: (sq / n - mean * mean).max(0.0).sqrt() as f32,
        cast: ch.map(|c| (c / n - mean) as f32),
    }
}

/// An image as a model of input `size` sees it: decoded, RGB, resized (the one place both the
/// model's preprocessing and the drift check take it from).
pub fn model_view(path: &Path, size: u32) -> Result<RgbImage, super::imaging::ImageLoadError> {
    use fast_image_resize as fr;
    let img = super::imaging::load_dynamic(path)?.into_rgb8();
    let (w, h) = img.dimensions();
    // Bilinear convolution scaled to the reduction (the image crate's Triangle filter, the same
    // weights), in SIMD: 3-5x faster on 900 px photographs, a tenth of the time to score one.
    let resized = (|| {
        let src = fr::images::Image::from_vec_u8(w, h, img.into_raw(), fr::PixelType::U8x3).ok()?;
        let mut dst = fr::images::Image::new(size, size, fr::PixelType::U8x3);
        let alg = fr::ResizeAlg::Convolution(fr::FilterType::Bilinear);
        let opts = fr::ResizeOptions::new().resize_alg(alg);
        fr::Resizer::new().resize(&src, &mut dst, &opts).ok()?;
        RgbImage::from_raw(size, size, dst.into_vec())
    })();
    resized.ok_or_else(|| super::imaging::ImageLoadError::Decode {
        path: path.into(),
        message: format!("cannot resize a {w} x {h} image to {size} x {size}"),
    })
}

/// The range of one measure over the training images, and the bounds beyond which an image is
/// unlike them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Range {
    pub min: f32,
    pub max: f32,
    /// Where "unlike" starts: a prediction interval for one more image of the same kind,
    /// mean +- t(n-1, 1 - ALPHA/2) sd sqrt(1 + 1/n) (Student's t: few training images give
    /// wide bounds, as they should), and never closer to the extremes than `floor`.
    pub low: f32,
    pub high: f32,
}

/// Chance that a normal image of the training kind falls outside one measure's bounds, for a
/// Gaussian measure (five measures: about 0.5 % of such images warned about, at most).
const ALPHA: f64 = 0.001;

impl Range {
    fn of(values: impl Iterator<Item = f32> + Clone, floor: f32) -> Range {
        use statrs::distribution::{ContinuousCDF, StudentsT};
        let n = values.clone().count().max(1) as f64;
        let mean = values.clone().map(f64::from).sum::<f64>() / n;
        let var = values
            .clone()
            .map(|v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / (n - 1.0).max(1.0);
        // One image alone says nothing of the spread: only the floor then.
        let q = StudentsT::new(0.0, 1.0, (n - 1.0).max(1.0))
            .map_or(f64::INFINITY, |t| t.inverse_cdf(1.0 - ALPHA / 2.0));
        let half = if n < 2.0 {
            0.0
        } else {
            q * var.sqrt() * (1.0 + 1.0 / n).sqrt()
        };
        let min = values.clone().fold(f32::INFINITY, f32::min);
        let max = values.fold(f32::NEG_INFINITY, f32::max);
        Range {
            min,
            max,
            low: ((mean - half) as f32).min(min - floor),
            high: ((mean + half) as f32).max(max + floor),
        }
    }

    /// How far outside (negative below, positive above), relative to the bounds' half-width; 0
    /// inside.
    fn outside(&self, v: f32) -> f32 {
        let width = ((self.high - self.low) / 2.0).max(1e-3);
        if v < self.low {
            (v - self.low) / width
        } else if v > self.high {
            (v - self.high) / width
        } else {
            0.0
        }
    }
}

/// What the training normals look like, kept with a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingLook {
    pub images: usize,
    pub brightness: Range,
    pub contrast: Range,
    pub cast: [Range; 3],
}

/// An image unlike every training image: the measure that says so most, in words.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unlike {
    /// "brightness", "contrast" or "colour".
    pub measure: String,
    /// "darker than every training image (mean grey 170; training 176-190)".
    pub words: String,
    /// How far outside the training range, in tolerances (the larger, the more unlike).
    pub by: f32,
}

/// Grey levels (of 255) that count as no change: sensor noise and compression move this much.
const FLOOR_BRIGHTNESS: f32 = 2.0;
const FLOOR_CONTRAST: f32 = 1.5;
const FLOOR_CAST: f32 = 1.5;

impl TrainingLook {
    pub fn of(looks: &[Look]) -> Option<TrainingLook> {
        if looks.is_empty() {
            return None;
        }
        let it = looks.iter();
        Some(TrainingLook {
            images: looks.len(),
            brightness: Range::of(it.clone().map(|l| l.brightness), FLOOR_BRIGHTNESS),
            contrast: Range::of(it.clone().map(|l| l.contrast), FLOOR_CONTRAST),
            cast: [0, 1, 2].map(|c| Range::of(it.clone().map(move |l| l.cast[c]), FLOOR_CAST)),
        })
    }

    /// None when the image looks like the training images on every measure.
    pub fn judge(&self, l: &Look) -> Option<Unlike> {
        let range = |r: &Range| format!("{:.0}-{:.0}", r.min, r.max);
        let mut found: Vec<Unlike> = Vec::new();
        let b = self.brightness.outside(l.brightness);
        if b != 0.0 {
            found.push(Unlike {
                measure: "brightness".into(),
                words: format!(
                    "{} than every training image (mean grey {:.0}; training {})",
                    if b < 0.0 { "darker" } else { "brighter" },
                    l.brightness,
                    range(&self.brightness)
                ),
                by: b.abs(),
            });
        }
        let c = self.contrast.outside(l.contrast);
        if c != 0.0 {
            found.push(Unlike {
                measure: "contrast".into(),
                words: format!(
                    "{} contrast than every training image (grey spread {:.0}; training {})",
                    if c < 0.0 { "less" } else { "more" },
                    l.contrast,
                    range(&self.contrast)
                ),
                by: c.abs(),
            });
        }
        for (k, name) in ["red", "green", "blue"].iter().enumerate() {
            let d = self.cast[k].outside(l.cast[k]);
            if d != 0.0 {
                found.push(Unlike {
                    measure: "colour".into(),
                    words: format!(
                        "{} than every training image ({name} {:+.0} over grey; training {:+.0} to {:+.0})",
                        if d < 0.0 { format!("less {name}") } else { format!("more {name}") },
                        l.cast[k],
                        self.cast[k].min,
                        self.cast[k].max
                    ),
                    by: d.abs(),
                });
            }
        }
        found.into_iter().max_by(|a, b| a.by.total_cmp(&b.by))
    }
}

/// The training look of images on disk, as a model of input `size` sees them (unreadable ones
/// left out: the training reports those).
pub fn training_look(paths: &[std::path::PathBuf], size: u32) -> Option<TrainingLook> {
    TrainingLook::of(&looks(paths, size))
}

/// The look of each image that can be read, as a model of input `size` sees it.
pub fn looks(paths: &[std::path::PathBuf], size: u32) -> Vec<Look> {
    use rayon::prelude::*;
    paths
        .par_iter()
        .filter_map(|p| model_view(p, size).ok().map(|i| look(&i)))
        .collect()
}

/// What photometric standardisation sets every image to: the training images' mean grey and
/// mean grey spread.
pub fn standard_of(looks: &[Look]) -> Option<[f32; 2]> {
    if looks.is_empty() {
        return None;
    }
    let n = looks.len() as f32;
    Some([
        looks.iter().map(|l| l.brightness).sum::<f32>() / n,
        looks.iter().map(|l| l.contrast).sum::<f32>() / n,
    ])
}

/// An image's pixels as the network takes them (0-1 per channel, before the backbone's own
/// normalisation), with its grey mean and spread set to `standard` when there is one: a line's
/// lighting then moves nothing the model sees, while colours and local contrast keep their
/// relations (one gain and one offset for all three channels).
pub fn network_pixels(img: &RgbImage, look: &Look, standard: Option<[f32; 2]>) -> Vec<f32> {
    match standard {
        None => img.as_raw().iter().map(|&v| v as f32 / 255.0).collect(),
        Some([mean, spread]) => {
            // A flat image has no contrast to stretch: only its level moves.
            let gain = if look.contrast > 1.0 {
                spread / look.contrast
            } else {
                1.0
            };
            let offset = mean - gain * look.brightness;
            img.as_raw()
                .iter()
                .map(|&v| (gain * v as f32 + offset) / 255.0)
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(rgb: [u8; 3], noise: u8) -> RgbImage {
        RgbImage::from_fn(32, 32, |x, y| {
            let n = ((x * 7 + y * 13) % (u32::from(noise) + 1)) as u8;
            image::Rgb(rgb.map(|v| v.saturating_add(n)))
        })
    }

    #[test]
    fn standardised_pixels_have_the_standard_grey_mean_and_spread_whatever_the_lighting() {
        let base = flat([120, 140, 160], 40);
        let dim = RgbImage::from_fn(32, 32, |x, y| {
            image::Rgb(base.get_pixel(x, y).0.map(|v| (v as f32 * 0.8) as u8))
        });
        let standard = Some([150.0, 20.0]);
        for img in [&base, &dim] {
            let l = look(img);
            let px = network_pixels(img, &l, standard);
            let grey: Vec<f32> = px
                .chunks(3)
                .map(|c| 255.0 * (GREY[0] * c[0] + GREY[1] * c[1] + GREY[2] * c[2]))
                .collect();
            let n = grey.len() as f32;
            let m = grey.iter().sum::<f32>() / n;
            let sd = (grey.iter().map(|g| (g - m).powi(2)).sum::<f32>() / n).sqrt();
            assert!(
                (m - 150.0).abs() < 0.01 && (sd - 20.0).abs() < 0.01,
                "{m} {sd}"
            );
        }
        // Without a standard, the pixels as they are.
        let l = look(&base);
        assert_eq!(network_pixels(&base, &l, None)[0], 120.0 / 255.0);
    }

    #[test]
    fn the_model_view_is_the_bilinear_reduction_of_the_image_crate_within_a_grey_level() {
        // The SIMD resize must give the network what the reference filter gives, on a square
        // photograph-sized image and on a flat strip (the aspect squashed, as a camera strip is).
        let dir = tempfile::tempdir().unwrap();
        for (w, h) in [(900, 900), (606, 240)] {
            let img = RgbImage::from_fn(w, h, |x, y| {
                let v = |k: u32| ((x * k + y * (k + 3) + (x * y) / 97) % 256) as u8;
                image::Rgb([v(1), v(5), v(11)])
            });
            let path = dir.path().join(format!("{w}x{h}.png"));
            img.save(&path).unwrap();
            let ours = model_view(&path, 256).unwrap();
            let reference =
                image::imageops::resize(&img, 256, 256, image::imageops::FilterType::Triangle);
            let diffs: Vec<i32> = ours
                .as_raw()
                .iter()
                .zip(reference.as_raw())
                .map(|(&a, &b)| (i32::from(a) - i32::from(b)).abs())
                .collect();
            let mean = diffs.iter().sum::<i32>() as f64 / diffs.len() as f64;
            assert!(
                diffs.iter().all(|&d| d <= 1) && mean < 0.5,
                "{w}x{h}: mean {mean}"
            );
        }
        let missing = model_view(&dir.path().join("none.png"), 256);
        assert!(missing.is_err());
    }

    #[test]
    fn darker_brighter_flatter_and_tinted_images_are_told_apart_in_words() {
        let train: Vec<Look> = (0..30)
            .map(|i| 178 + (i % 10) as u8)
            .map(|g| look(&flat([g, g, g], 20)))
            .collect();
        let t = TrainingLook::of(&train).unwrap();
        assert_eq!(t.judge(&look(&flat([183, 183, 183], 20))), None);
        let dark = t.judge(&look(&flat([150, 150, 150], 20))).unwrap();
        assert_eq!(dark.measure, "brightness");
        assert!(
            dark.words.starts_with("darker than every training image"),
            "{}",
            dark.words
        );
        // Few training images say little of their range: only far outside it is unlike.
        let few = TrainingLook::of(&train[..4]).unwrap();
        assert_eq!(few.judge(&look(&flat([170, 170, 170], 20))), None);
        let bright = t.judge(&look(&flat([210, 210, 210], 20))).unwrap();
        assert!(bright.words.starts_with("brighter"), "{}", bright.words);
        let flatter = t.judge(&look(&flat([190, 190, 190], 0))).unwrap();
        assert_eq!(flatter.measure, "contrast");
        let red = t.judge(&look(&flat([215, 178, 178], 20))).unwrap();
        assert_eq!(red.measure, "colour");
        assert!(red.words.contains("more red"), "{}", red.words);
    }
}
