//! Generator of the bundled demo project (`projects/demo`): procedural leather-, wood- and
//! fabric-like surfaces with planted defects of three kinds and their exact masks, normal training
//! images, and two human annotators who disagree the way real operators do (one outlines tighter,
//! one outlines loosely and misses a defect, one marks a normal structure). Everything is drawn from
//! a seeded generator, so the same seed gives the same bytes and the project can be redistributed.
//!
//! Regenerate with `contrario demo --out projects/demo --force` (or `make demo-project`).

use image::{GrayImage, Luma, Rgb, RgbImage};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};

use crate::project::storage;
use crate::project::{Annotator, DefectClass, ImageEntry, Project, ProjectFile, Split};

pub const DEFAULT_SEED: u64 = 20261128;
pub const SIZE: u32 = 256;
pub const CATEGORIES: [&str; 3] = ["leather", "wood", "fabric"];
const TRAIN_PER_CATEGORY: usize = 10;
const GOOD_TEST_PER_CATEGORY: usize = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Defect {
    Scratch = 1,
    Stain = 2,
    Hole = 3,
}

impl Defect {
    pub fn name(self) -> &'static str {
        match self {
            Defect::Scratch => "scratch",
            Defect::Stain => "stain",
            Defect::Hole => "hole",
        }
    }
}

/// The defects planted in each category's defective test images, in order.
const DEFECT_PLAN: &[&[Defect]] = &[
    &[Defect::Scratch],
    &[Defect::Stain],
    &[Defect::Hole],
    &[Defect::Scratch, Defect::Stain],
    &[Defect::Hole],
];

/// Which images the annotators get wrong (index into DEFECT_PLAN / good test images).
const BEN_MISSES: usize = 2;
const ANA_MARKS_GOOD: usize = 1;

// ---------------------------------------------------------------- noise

fn hash(ix: i32, iy: i32, seed: u32) -> f32 {
    let mut h = (ix as u32).wrapping_mul(0x8da6_b343)
        ^ (iy as u32).wrapping_mul(0xd816_3841)
        ^ seed.wrapping_mul(0xcb1a_b31f);
    h ^= h >> 13;
    h = h.wrapping_mul(0x5bd1_e995);
    h ^= h >> 15;
    (h & 0x00ff_ffff) as f32 / 16_777_216.0
}

/// Smooth value noise in [0, 1].
fn value_noise(x: f32, y: f32, seed: u32) -> f32 {
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let (sx, sy) = (fx * fx * (3.0 - 2.0 * fx), fy * fy * (3.0 - 2.0 * fy));
    let (ix, iy) = (x0 as i32, y0 as i32);
    let a = hash(ix, iy, seed);
    let b = hash(ix + 1, iy, seed);
    let c = hash(ix, iy + 1, seed);
    let d = hash(ix + 1, iy + 1, seed);
    let top = a + (b - a) * sx;
    let bottom = c + (d - c) * sx;
    top + (bottom - top) * sy
}

/// Fractal sum of octaves, normalised to about [0, 1].
fn fbm(x: f32, y: f32, seed: u32, octaves: u32) -> f32 {
    let (mut sum, mut amp, mut norm, mut f) = (0.0, 1.0, 0.0, 1.0);
    for o in 0..octaves {
        sum += amp * value_noise(x * f, y * f, seed.wrapping_add(o * 101));
        norm += amp;
        amp *= 0.5;
        f *= 2.0;
    }
    sum / norm
}

fn to_rgb(base: [f32; 3], v: f32) -> Rgb<u8> {
    Rgb(base.map(|c| (c * v).clamp(0.0, 255.0) as u8))
}

// ---------------------------------------------------------------- textures

/// A normal surface of the category; `seed` varies the sample.
pub fn texture(category: &str, seed: u32) -> RgbImage {
    let ox = hash(1, 2, seed) * 1000.0;
    let oy = hash(3, 4, seed) * 1000.0;
    RgbImage::from_fn(SIZE, SIZE, |x, y| {
        let (x, y) = (x as f32 + ox, y as f32 + oy);
        match category {
            "leather" => {
                let mottle = fbm(x / 40.0, y / 40.0, 11, 3);
                let grain = fbm(x / 2.5, y / 2.5, 12, 2);
                // Ridged noise draws the fine crease network of grained leather.
                let crease = 1.0 - (2.0 * fbm(x / 9.0, y / 9.0, 13, 2) - 1.0).abs();
                let v = 0.78 + 0.25 * mottle + 0.10 * grain - 0.22 * crease.powi(8);
                to_rgb([150.0, 92.0, 52.0], v)
            }
            "wood" => {
                let warp = 22.0 * fbm(x / 70.0, y / 70.0, 21, 3);
                let r = (y + warp) / 13.0 + 0.4 * fbm(x / 10.0, y / 90.0, 22, 2);
                let ring = (r.fract() * std::f32::consts::TAU).sin() * 0.5 + 0.5;
                let fibre = fbm(x / 45.0, y / 1.5, 23, 2);
                let v = 0.72 + 0.22 * ring.powf(3.0) + 0.12 * fibre;
                to_rgb([205.0, 150.0, 96.0], v)
            }
            _ => {
                // Plain weave: period-8 threads, over/under alternating like a checkerboard.
                let (cx, cy) = ((x / 8.0).floor() as i32, (y / 8.0).floor() as i32);
                let over_warp = (cx + cy) % 2 == 0;
                let px = (x / 8.0).fract();
                let py = (y / 8.0).fract();
                let profile = if over_warp {
                    (px * std::f32::consts::PI).sin()
                } else {
                    (py * std::f32::consts::PI).sin()
                };
                let slub = fbm(x / 30.0, y / 30.0, 31, 2);
                let v = 0.55 + 0.35 * profile + 0.15 * slub;
                to_rgb([88.0, 112.0, 160.0], v)
            }
        }
    })
}

// ---------------------------------------------------------------- defects

/// Per-pixel opacity of one planted defect, in [0, 1].
fn defect_alpha(kind: Defect, rng: &mut StdRng) -> Vec<f32> {
    let n = SIZE as usize;
    let mut alpha = vec![0.0f32; n * n];
    let margin = 40.0;
    let cx = rng.random_range(margin..SIZE as f32 - margin);
    let cy = rng.random_range(margin..SIZE as f32 - margin);
    match kind {
        Defect::Scratch => {
            // A gently curving polyline, about 2 px wide.
            let mut pts = vec![(cx, cy)];
            let mut dir: f32 = rng.random_range(0.0..std::f32::consts::TAU);
            let steps = rng.random_range(10..18);
            for _ in 0..steps {
                dir += rng.random_range(-0.25..0.25);
                let (px, py) = *pts.last().unwrap();
                pts.push((
                    (px + 6.0 * dir.cos()).clamp(4.0, SIZE as f32 - 5.0),
                    (py + 6.0 * dir.sin()).clamp(4.0, SIZE as f32 - 5.0),
                ));
            }
            for y in 0..n {
                for x in 0..n {
                    let d = dist_to_polyline(x as f32, y as f32, &pts);
                    alpha[y * n + x] = (1.6 - d).clamp(0.0, 1.0);
                }
            }
        }
        Defect::Stain => {
            let r0 = rng.random_range(12.0..24.0);
            let s = rng.random::<u32>();
            for y in 0..n {
                for x in 0..n {
                    let (dx, dy) = (x as f32 - cx, y as f32 - cy);
                    let theta = dy.atan2(dx);
                    let wobble = fbm(theta.cos() * 2.0 + 5.0, theta.sin() * 2.0 + 5.0, s, 2);
                    let r = r0 * (0.75 + 0.5 * wobble);
                    let d = (dx * dx + dy * dy).sqrt();
                    alpha[y * n + x] = ((r - d) / 4.0 + 0.5).clamp(0.0, 1.0) * 0.8;
                }
            }
        }
        Defect::Hole => {
            let (rx, ry) = (rng.random_range(5.0..11.0), rng.random_range(4.0..9.0));
            let rot: f32 = rng.random_range(0.0..std::f32::consts::PI);
            let (c, s) = (rot.cos(), rot.sin());
            for y in 0..n {
                for x in 0..n {
                    let (dx, dy) = (x as f32 - cx, y as f32 - cy);
                    let (u, v) = (c * dx + s * dy, -s * dx + c * dy);
                    let e = ((u / rx).powi(2) + (v / ry).powi(2)).sqrt();
                    alpha[y * n + x] = ((1.0 - e) * rx.min(ry) + 0.5).clamp(0.0, 1.0);
                }
            }
        }
    }
    alpha
}

fn dist_to_polyline(x: f32, y: f32, pts: &[(f32, f32)]) -> f32 {
    let mut best = f32::MAX;
    for w in pts.windows(2) {
        let ((ax, ay), (bx, by)) = (w[0], w[1]);
        let (vx, vy) = (bx - ax, by - ay);
        let len2 = (vx * vx + vy * vy).max(1e-6);
        let t = (((x - ax) * vx + (y - ay) * vy) / len2).clamp(0.0, 1.0);
        let (qx, qy) = (ax + t * vx - x, ay + t * vy - y);
        best = best.min((qx * qx + qy * qy).sqrt());
    }
    best
}

/// Blend a defect into the image and write its class into the mask where it is really visible.
fn plant(img: &mut RgbImage, mask: &mut GrayImage, kind: Defect, rng: &mut StdRng) {
    let alpha = defect_alpha(kind, rng);
    for (i, (p, m)) in img.pixels_mut().zip(mask.pixels_mut()).enumerate() {
        let a = alpha[i];
        if a <= 0.0 {
            continue;
        }
        let target = match kind {
            Defect::Scratch => p.0.map(|c| (c as f32 * 1.35 + 45.0).min(255.0)),
            Defect::Stain => [
                p.0[0] as f32 * 0.55,
                p.0[1] as f32 * 0.6,
                p.0[2] as f32 * 0.35,
            ],
            Defect::Hole => [18.0, 14.0, 12.0],
        };
        for (c, t) in p.0.iter_mut().zip(target) {
            *c = (*c as f32 * (1.0 - a) + t * a).round() as u8;
        }
        if a >= 0.5 {
            m.0[0] = kind as u8;
        }
    }
}

/// One more defective sample of a category, as the demo's are made: a surface with a planted
/// `kind` of defect, and its ground-truth mask (benchmarks that need many flagged images).
pub fn defective_sample(category: &str, kind: Defect, seed: u64) -> (RgbImage, GrayImage) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut img = texture(category, rng.random());
    let mut gt = GrayImage::new(SIZE, SIZE);
    plant(&mut img, &mut gt, kind, &mut rng);
    (img, gt)
}

// ---------------------------------------------------------------- annotators

/// Morphology with a disc: `grow > 0` dilates, `grow < 0` erodes; classes are preserved.
pub fn morph(mask: &GrayImage, grow: i32) -> GrayImage {
    let (w, h) = mask.dimensions();
    let r = grow.abs();
    let mut out = GrayImage::new(w, h);
    for y in 0..h as i32 {
        for x in 0..w as i32 {
            let here = mask.get_pixel(x as u32, y as u32).0[0];
            let mut found = if grow > 0 { 0 } else { here };
            'scan: for dy in -r..=r {
                for dx in -r..=r {
                    if dx * dx + dy * dy > r * r {
                        continue;
                    }
                    let (nx, ny) = (x + dx, y + dy);
                    let v = if nx < 0 || ny < 0 || nx >= w as i32 || ny >= h as i32 {
                        0
                    } else {
                        mask.get_pixel(nx as u32, ny as u32).0[0]
                    };
                    if grow > 0 && v != 0 {
                        found = v;
                        break 'scan;
                    }
                    if grow < 0 && v == 0 {
                        found = 0;
                        break 'scan;
                    }
                }
            }
            out.put_pixel(x as u32, y as u32, Luma([found]));
        }
    }
    out
}

/// A disc around the darkest smooth spot of a normal image: what an over-eager operator marks.
fn mark_normal_structure(img: &RgbImage, class: u8) -> GrayImage {
    let (w, h) = img.dimensions();
    let lum = |x: u32, y: u32| {
        let p = img.get_pixel(x, y).0;
        p[0] as u32 + p[1] as u32 + p[2] as u32
    };
    let (mut best, mut at) = (u32::MAX, (w / 2, h / 2));
    for y in (16..h - 16).step_by(4) {
        for x in (16..w - 16).step_by(4) {
            let mut s = 0;
            for dy in 0..8 {
                for dx in 0..8 {
                    s += lum(x - 4 + dx, y - 4 + dy);
                }
            }
            if s < best {
                best = s;
                at = (x, y);
            }
        }
    }
    GrayImage::from_fn(w, h, |x, y| {
        let (dx, dy) = (x as i32 - at.0 as i32, y as i32 - at.1 as i32);
        Luma([if dx * dx + dy * dy <= 81 { class } else { 0 }])
    })
}

// ---------------------------------------------------------------- project

/// Write the demo project into `out` (which must be empty unless `force`).
pub fn generate(out: &Path, seed: u64, force: bool) -> anyhow::Result<Project> {
    if out.join(crate::project::PROJECT_FILE).exists() && !force {
        anyhow::bail!(
            "{} already holds a project: pass --force to overwrite it",
            out.display()
        );
    }
    for sub in ["images", "labels"] {
        let p = out.join(sub);
        if p.exists() {
            std::fs::remove_dir_all(&p)?;
        }
    }
    let mut file = ProjectFile::new("Contrario demo");
    file.description =
        "Procedural leather, wood and fabric surfaces with planted scratches, stains \
        and holes. Annotators Ana (tight outlines, marks one normal structure) and Ben (loose \
        outlines, misses a defect) disagree with each other and with the generator's ground truth."
            .into();
    file.annotators = vec![
        Annotator {
            id: "gt".into(),
            name: "Ground truth (generator)".into(),
            read_only: true,
        },
        Annotator {
            id: "ana".into(),
            name: "Ana".into(),
            read_only: false,
        },
        Annotator {
            id: "ben".into(),
            name: "Ben".into(),
            read_only: false,
        },
    ];
    file.classes = vec![
        DefectClass {
            index: 1,
            name: "scratch".into(),
            color: [255, 214, 10],
        },
        DefectClass {
            index: 2,
            name: "stain".into(),
            color: [255, 64, 160],
        },
        DefectClass {
            index: 3,
            name: "hole".into(),
            color: [0, 200, 255],
        },
    ];
    let mut rng = StdRng::seed_from_u64(seed);
    let entry = |file: &mut ProjectFile, id: String, split, cat: &str, kind: &str| {
        let path = PathBuf::from("images").join(format!("{id}.png"));
        file.images.push(ImageEntry {
            id,
            path,
            split,
            category: cat.into(),
            kind: kind.into(),
            ..Default::default()
        });
        file.images.len() - 1
    };
    let save_labels = |file: &mut ProjectFile, idx: usize, masks: [(&str, &GrayImage); 3]| {
        for (who, mask) in masks {
            let rel = PathBuf::from("labels")
                .join(who)
                .join(format!("{}.png", file.images[idx].id));
            storage::write_png_atomic(&out.join(&rel), mask)?;
            file.images[idx].labels.insert(who.to_string(), rel);
        }
        anyhow::Ok(())
    };
    for cat in CATEGORIES {
        for i in 0..TRAIN_PER_CATEGORY {
            let img = texture(cat, rng.random());
            let idx = entry(
                &mut file,
                format!("{cat}/train/good/{i:03}"),
                Split::Train,
                cat,
                "good",
            );
            storage::write_png_atomic(&out.join(&file.images[idx].path), &img)?;
        }
        for i in 0..GOOD_TEST_PER_CATEGORY {
            let img = texture(cat, rng.random());
            let idx = entry(
                &mut file,
                format!("{cat}/test/good/{i:03}"),
                Split::Test,
                cat,
                "good",
            );
            storage::write_png_atomic(&out.join(&file.images[idx].path), &img)?;
            let empty = GrayImage::new(SIZE, SIZE);
            let ana = if i == ANA_MARKS_GOOD {
                mark_normal_structure(&img, Defect::Stain as u8)
            } else {
                empty.clone()
            };
            save_labels(
                &mut file,
                idx,
                [("gt", &empty), ("ana", &ana), ("ben", &empty)],
            )?;
        }
        for (i, plan) in DEFECT_PLAN.iter().enumerate() {
            let mut img = texture(cat, rng.random());
            let mut gt = GrayImage::new(SIZE, SIZE);
            for &d in plan.iter() {
                plant(&mut img, &mut gt, d, &mut rng);
            }
            let kind = if plan.len() > 1 {
                "combined".to_string()
            } else {
                plan[0].name().into()
            };
            let idx = entry(
                &mut file,
                format!("{cat}/test/{kind}/{i:03}"),
                Split::Test,
                cat,
                &kind,
            );
            // Consecutive defective images are two views of one piece: where Ben misses the
            // defect in one view only, the group check flags him.
            file.images[idx].group = format!("{cat}/piece{:02}", i / 2);
            storage::write_png_atomic(&out.join(&file.images[idx].path), &img)?;
            let mut ana = morph(&gt, -2);
            if ana.pixels().all(|p| p.0[0] == 0) {
                ana = gt.clone();
            }
            let ben = if i == BEN_MISSES {
                GrayImage::new(SIZE, SIZE)
            } else {
                morph(&gt, 3)
            };
            save_labels(&mut file, idx, [("gt", &gt), ("ana", &ana), ("ben", &ben)])?;
        }
    }
    let mut project = Project {
        root: out.to_path_buf(),
        file,
        saved: false,
        migrated_from: None,
    };
    project.save()?;
    Ok(project)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ones(m: &GrayImage) -> usize {
        m.pixels().filter(|p| p.0[0] != 0).count()
    }

    #[test]
    fn planted_defects_change_the_image_where_the_mask_says() {
        let mut rng = StdRng::seed_from_u64(1);
        for kind in [Defect::Scratch, Defect::Stain, Defect::Hole] {
            let clean = texture("leather", 7);
            let mut img = clean.clone();
            let mut mask = GrayImage::new(SIZE, SIZE);
            plant(&mut img, &mut mask, kind, &mut rng);
            let n = ones(&mask);
            assert!(n > 20, "{kind:?} planted only {n} pixels");
            let changed_inside = img
                .pixels()
                .zip(clean.pixels())
                .zip(mask.pixels())
                .filter(|((a, b), m)| m.0[0] != 0 && a != b)
                .count();
            assert_eq!(
                changed_inside, n,
                "{kind:?}: masked pixels must differ from the clean image"
            );
            assert!(mask.pixels().all(|p| p.0[0] == 0 || p.0[0] == kind as u8));
        }
    }

    #[test]
    fn morphology_shrinks_and_grows() {
        let mut m = GrayImage::new(40, 40);
        for y in 10..30 {
            for x in 10..30 {
                m.put_pixel(x, y, Luma([2]));
            }
        }
        assert!(ones(&morph(&m, -2)) < ones(&m));
        assert!(ones(&morph(&m, 3)) > ones(&m));
        assert_eq!(morph(&m, 3).get_pixel(8, 20).0[0], 2);
    }

    #[test]
    fn textures_differ_between_categories_and_seeds() {
        let a = texture("wood", 1);
        assert_ne!(a, texture("wood", 2));
        assert_ne!(a, texture("fabric", 1));
        assert_eq!(a, texture("wood", 1), "same seed, same texture");
    }
}
