//! The training-free multi-scale detector of thesis chapter 3: it needs no normal images, only
//! the image under inspection. Per scale of an image pyramid and per colour channel: features
//! from Patch-PCA (filters learnt from the image itself, applied as convolutions) or a Gabor bank,
//! a Mahalanobis distance to normality that follows chi2(m) under H0, and an NFA by pixels, by
//! blocks (binomial tail) or by regions (NFA-guided region growing); the minimum over channels and
//! scales gives the final log10 NFA map, and the anomaly score is -log10 NFA.

use ndarray::Array2;
use rayon::prelude::*;
use statrs::distribution::{ChiSquared, ContinuousCDF};

use super::linalg::symmetric_eigen;
use super::nfa::resize_bilinear;
use super::tails::{ln_gamma_q, log10_binomial_tail, log10_chi2_sf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Features {
    PatchPca,
    Gabor,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum NfaKind {
    Pixel,
    Block,
    Region,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Params {
    pub features: Features,
    pub nfa: NfaKind,
    /// Pyramid levels, each half the previous.
    pub scales: usize,
    /// Patch-PCA: components kept (m) and patch side (s).
    pub pca_components: usize,
    pub patch: usize,
    /// Gabor bank: kernel sides and orientations (m = sides x orientations).
    pub gabor_sizes: Vec<usize>,
    pub gabor_orientations: usize,
    /// Block NFA: block side w, stride, and the per-pixel p-value of candidates.
    pub block: usize,
    pub stride: usize,
    pub block_p: f64,
    /// The image is analysed at at most work_size^2 pixels, aspect kept (None: native size).
    pub work_size: Option<usize>,
    /// Outline refinement: each level's map is eroded by half a patch less one pixel (see
    /// [`erode`]); false keeps the thesis' maps.
    pub refine: bool,
}

impl Default for Params {
    /// The thesis' parameters (PCA m = 45, s = 17, 4 scales; Gabor m = 72 with sides 7..31;
    /// blocks w = 51, stride 10, p = 0.01).
    fn default() -> Self {
        Self {
            features: Features::PatchPca,
            nfa: NfaKind::Pixel,
            scales: 4,
            pca_components: 45,
            patch: 17,
            gabor_sizes: vec![7, 10, 13, 16, 19, 22, 25, 28, 31],
            gabor_orientations: 8,
            block: 51,
            stride: 10,
            block_p: 0.01,
            work_size: Some(256),
            refine: true,
        }
    }
}

/// Output: the log10 NFA map at the analysed size (the anomaly score is its negation).
pub struct Detection {
    pub log_nfa: Array2<f32>,
}

/// Why an image cannot be analysed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DetectError {
    #[error(
        "the image is {width}x{height} pixels: the training-free detector needs at least {needed} pixels a side (its patch), so there is nothing it can test here"
    )]
    TooSmall {
        width: usize,
        height: usize,
        needed: usize,
    },
    #[error("the image has no channels")]
    NoChannels,
}

impl Params {
    /// The smallest side the detector can analyse: a patch (Patch-PCA) or the middle Gabor
    /// kernel must fit, or there are no features to estimate.
    pub fn min_side(&self) -> usize {
        let side = match self.features {
            Features::PatchPca => self.patch,
            Features::Gabor => {
                let mut s = self.gabor_sizes.clone();
                s.sort();
                s.get(s.len() / 2).copied().unwrap_or(1)
            }
        };
        side.max(2)
    }

    /// How far each level's detections are eroded: a feature at a pixel sums its whole patch,
    /// so a defect shows in every pixel whose patch touches it, dilated by half a patch (the
    /// bands around thin cracks, the blocks of the coarse levels). Eroding by half a patch less
    /// one pixel takes a detection back to the pixels that carry its evidence and keeps a
    /// defect as thin as a pixel; isolated single-patch responses on normal texture go. Patch-PCA
    /// only: a Gabor bank's kernels have footprints from 7 to 31 pixels, and its small ones
    /// answer in lines a pixel or two wide that any common erosion would erase.
    pub fn refine_radius(&self) -> usize {
        match self.features {
            Features::PatchPca => (self.patch.saturating_sub(1) / 2).saturating_sub(1),
            Features::Gabor => 0,
        }
    }

    /// The size an `h0` x `w0` image is analysed at: at most `work_size`^2 pixels with the
    /// aspect kept (a line-scan image keeps a useful short side, where capping its long side
    /// would squash it), never smaller than [`Self::min_side`] where the image allows, never
    /// larger than the image.
    pub fn work_dims(&self, h0: usize, w0: usize) -> (usize, usize) {
        let Some(max) = self.work_size else {
            return (h0, w0);
        };
        let area = (h0 * w0) as f64;
        let mut s = (max as f64 * max as f64 / area).sqrt().min(1.0);
        let short = h0.min(w0) as f64;
        s = s.max((self.min_side() as f64 / short).min(1.0));
        (
            ((h0 as f64 * s).round() as usize).clamp(1, h0),
            ((w0 as f64 * s).round() as usize).clamp(1, w0),
        )
    }
}

/// Detect anomalies in one image given as channel planes (grey: one plane; colour: three), all of
/// one size, values in any range. Images smaller than [`Params::min_side`] are refused.
pub fn detect(planes: &[Array2<f32>], params: &Params) -> Result<Detection, DetectError> {
    let Some(first) = planes.first() else {
        return Err(DetectError::NoChannels);
    };
    let (h0, w0) = first.dim();
    if h0.min(w0) < params.min_side() {
        return Err(DetectError::TooSmall {
            width: w0,
            height: h0,
            needed: params.min_side(),
        });
    }
    let (h, w) = params.work_dims(h0, w0);
    let base: Vec<Array2<f32>> = planes.iter().map(|p| resize_area(p, h, w)).collect();
    // Pyramid: level 0 is the work size; stop before a level gets smaller than a patch.
    let mut levels = vec![base];
    while levels.len() < params.scales {
        let prev = levels.last().unwrap();
        let (ph, pw) = prev[0].dim();
        if ph / 2 < params.patch.max(8) || pw / 2 < params.patch.max(8) {
            break;
        }
        levels.push(prev.iter().map(halve).collect());
    }
    // Every (level, channel) map is tested: each map's tests are counted in one total, so the
    // minimum over maps is an NFA with the same guarantee as one map's (the thesis counts each
    // map's tests alone, which understates the number of tests by the number of maps).
    let per_level: Vec<(Array2<f32>, f64)> = levels
        .par_iter()
        .map(|chans| {
            let maps: Vec<(Array2<f32>, f64)> =
                chans.par_iter().map(|c| channel_nfa(c, params)).collect();
            let mut m = maps[0].0.clone();
            for (other, _) in &maps[1..] {
                m.zip_mut_with(other, |a, &b| *a = a.min(b));
            }
            let tests: f64 = maps.iter().map(|(_, n)| n).sum();
            if params.refine && params.refine_radius() > 0 {
                m = erode(&m, params.refine_radius());
            }
            (resize_bilinear(&m, h, w), tests)
        })
        .collect();
    let tests: f64 = per_level.iter().map(|(_, n)| n).sum();
    let mut out = per_level[0].0.clone();
    for (other, _) in &per_level[1..] {
        out.zip_mut_with(other, |a, &b| *a = a.min(b));
    }
    let common = tests.max(1.0).log10() as f32;
    out.mapv_inplace(|v| v + common);
    Ok(Detection { log_nfa: out })
}

/// Features of one channel at one scale, as per-feature squared standardised deviations
/// (each ~ chi2(1) under H0), plus the independence side (pixels closer than it are dependent).
fn features(x: &Array2<f32>, params: &Params) -> (Vec<Array2<f32>>, usize) {
    match params.features {
        Features::PatchPca => {
            let kernels = pca_filters(x, params.patch, params.pca_components);
            (
                kernels
                    .iter()
                    .map(|k| standardised_sq(&convolve_reflect(x, k, params.patch)))
                    .collect(),
                params.patch,
            )
        }
        Features::Gabor => {
            let mut out = Vec::new();
            for &size in &params.gabor_sizes {
                for o in 0..params.gabor_orientations {
                    let theta = std::f32::consts::PI * o as f32 / params.gabor_orientations as f32;
                    let k = gabor_kernel(size, theta);
                    out.push(standardised_sq(&convolve_reflect(x, &k, size)));
                }
            }
            let mut sizes = params.gabor_sizes.clone();
            sizes.sort();
            (out, sizes.get(sizes.len() / 2).copied().unwrap_or(1))
        }
    }
}

/// One channel at one level: per pixel, the log10 NFA of the test it belongs to without the
/// factor common to every map (the p-value of a pixel or a block; for a region, the shapes of
/// its area times its probability), and this map's share of that factor (its number of pixels,
/// blocks, or region areas).
fn channel_nfa(x: &Array2<f32>, params: &Params) -> (Array2<f32>, f64) {
    let (h, w) = x.dim();
    let (feats, indep) = features(x, params);
    let m = feats.len();
    // Squared distance to normality: sum of the standardised squares, ~ chi2(m).
    let mut d2 = Array2::<f32>::zeros((h, w));
    for f in &feats {
        d2 += f;
    }
    match params.nfa {
        NfaKind::Pixel => (
            d2.mapv(|d| log10_chi2_sf(m as f64, d as f64) as f32),
            (h * w) as f64,
        ),
        NfaKind::Block => block_nfa(&d2, m, indep, params),
        NfaKind::Region => region_nfa(&d2, m, indep),
    }
}

/// NFA by blocks: candidates are pixels whose distance exceeds the chi2(m) quantile of p; a w x w
/// block holding k of them observes k/s^2 independent events out of w^2/s^2, each of probability
/// p, so NFA(B) = (HW s^2 / w^2) * P(Binomial(w^2/s^2, p) >= k/s^2). A pixel gets the lowest
/// binomial tail of the blocks that cover it; the map's tests are HW s^2 / w^2.
fn block_nfa(d2: &Array2<f32>, m: usize, s: usize, params: &Params) -> (Array2<f32>, f64) {
    let (h, w) = d2.dim();
    let p = params.block_p;
    let tau = ChiSquared::new(m as f64)
        .map(|c| c.inverse_cdf(1.0 - p))
        .unwrap_or(f64::INFINITY);
    let bw = params.block.min(h).min(w).max(1);
    let stride = params.stride.max(1);
    let s2 = (s * s) as f64;
    let n_tests = (h * w) as f64 * s2 / (bw * bw) as f64;
    // Integral image of candidates.
    let mut integral = vec![0u32; (h + 1) * (w + 1)];
    for y in 0..h {
        let mut row = 0u32;
        for x in 0..w {
            row += (d2[(y, x)] as f64 > tau) as u32;
            integral[(y + 1) * (w + 1) + x + 1] = integral[y * (w + 1) + x + 1] + row;
        }
    }
    let count = |y0: usize, x0: usize| {
        let (y1, x1) = (y0 + bw, x0 + bw);
        (integral[y1 * (w + 1) + x1] + integral[y0 * (w + 1) + x0]) as i64
            - (integral[y0 * (w + 1) + x1] + integral[y1 * (w + 1) + x0]) as i64
    };
    let starts = |n: usize| {
        let mut v: Vec<usize> = (0..=n - bw).step_by(stride).collect();
        if *v.last().unwrap() != n - bw {
            v.push(n - bw);
        }
        v
    };
    let mut out = Array2::<f32>::from_elem((h, w), f32::INFINITY);
    let trials = (bw * bw) as f64 / s2;
    for &y0 in &starts(h) {
        for &x0 in &starts(w) {
            let k = count(y0, x0) as f64 / s2;
            let v = log10_binomial_tail(trials, k, p) as f32;
            for y in y0..y0 + bw {
                for x in x0..x0 + bw {
                    let o = &mut out[(y, x)];
                    *o = o.min(v);
                }
            }
        }
    }
    (out, n_tests)
}

/// ln of the NFA of a region of `n` pixels whose distances sum to `sum`, each ~ chi2(m), with
/// dependence side `s`: n/s^2 independent observations on a grid of hw/s^2, so the polyominoes
/// of its area placed there (hw/s^2 alpha beta^eff / eff) times its probability; the split of the
/// budget over areas (and maps) is the common factor `detect` adds.
fn ln_region_nfa(hw: f64, n: f64, sum: f64, m: usize, s2: f64) -> f64 {
    const ALPHA: f64 = 0.316915;
    const BETA: f64 = 4.062570;
    let eff = (n / s2).max(1e-9);
    (hw / s2).ln() + ALPHA.ln() + eff * BETA.ln() - eff.ln()
        + ln_gamma_q(m as f64 * eff / 2.0, sum / s2 / 2.0)
}

/// NFA by regions: 4-connected regions of pixels whose distance exceeds its mean (m), grown from
/// raster-order seeds; a neighbour joins only if it lowers the region's NFA. Pixels in no region
/// get the map's maximum. (The thesis grows per feature; we grow on each channel's distance map,
/// which sums the features and is m times cheaper.) Regions are counted by area, as U-Flow's:
/// the map holds each region's shapes-of-its-area times probability, and its share of the
/// common factor is its number of areas, hw/s^2.
fn region_nfa(d2: &Array2<f32>, m: usize, s: usize) -> (Array2<f32>, f64) {
    let (h, w) = d2.dim();
    let hw = (h * w) as f64;
    let s2 = (s * s) as f64;
    let d = d2.as_standard_layout();
    let d = d.as_slice().unwrap();
    let cand: Vec<bool> = d.iter().map(|&v| v as f64 > m as f64).collect();
    let mut owner = vec![u32::MAX; h * w];
    let mut values: Vec<f64> = Vec::new();
    let mut queue = std::collections::VecDeque::new();
    let mut members = Vec::new();
    for seed in 0..h * w {
        if !cand[seed] || owner[seed] != u32::MAX {
            continue;
        }
        let id = values.len() as u32;
        let (mut n, mut sum) = (1.0, d[seed] as f64);
        let mut best = ln_region_nfa(hw, n, sum, m, s2);
        owner[seed] = id;
        members.clear();
        members.push(seed);
        queue.push_back(seed);
        while let Some(p) = queue.pop_front() {
            let (y, x) = (p / w, p % w);
            let nbrs = [
                (x > 0).then(|| p - 1),
                (x + 1 < w).then(|| p + 1),
                (y > 0).then(|| p - w),
                (y + 1 < h).then(|| p + w),
            ];
            for q in nbrs.into_iter().flatten() {
                if !cand[q] || owner[q] != u32::MAX {
                    continue;
                }
                let nfa = ln_region_nfa(hw, n + 1.0, sum + d[q] as f64, m, s2);
                if nfa < best {
                    best = nfa;
                    n += 1.0;
                    sum += d[q] as f64;
                    owner[q] = id;
                    members.push(q);
                    queue.push_back(q);
                }
            }
        }
        values.push(best / std::f64::consts::LN_10);
    }
    let max = values.iter().copied().fold(0.0, f64::max);
    let map = Array2::from_shape_fn((h, w), |(y, x)| {
        let o = owner[y * w + x];
        if o == u32::MAX {
            max as f32
        } else {
            values[o as usize] as f32
        }
    });
    (map, (hw / s2).max(1.0))
}

/// Grayscale erosion of the detections of a log10 NFA map: each pixel takes the highest (least
/// significant) value within `radius` (a square window, clipped at the image's edges: beyond
/// them is unknown, not normal), so thresholding the result at any level gives the detection at
/// that level eroded by the window.
pub fn erode(map: &Array2<f32>, radius: usize) -> Array2<f32> {
    let (h, w) = map.dim();
    let along = |src: &Array2<f32>, horizontal: bool| {
        Array2::from_shape_fn((h, w), |(y, x)| {
            let (c, n) = if horizontal { (x, w) } else { (y, h) };
            let (lo, hi) = (c.saturating_sub(radius), (c + radius).min(n - 1));
            (lo..=hi)
                .map(|k| if horizontal { src[(y, k)] } else { src[(k, x)] })
                .fold(f32::NEG_INFINITY, f32::max)
        })
    };
    along(&along(map, true), false)
}

/// (v - mean)^2 / variance over the map: ~ chi2(1) per pixel under a Gaussian H0.
fn standardised_sq(v: &Array2<f32>) -> Array2<f32> {
    let n = v.len() as f64;
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = (v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n).max(1e-12);
    v.mapv(|x| ((x as f64 - mean).powi(2) / var) as f32)
}

/// The top `m` principal directions of the image's s x s patches, as s x s kernels. The patch
/// covariance of a (locally) stationary image depends only on the offset between two patch
/// positions, so it is read off the image's autocovariance: O(N s^2) instead of O(N s^4).
fn pca_filters(x: &Array2<f32>, s: usize, m: usize) -> Vec<Vec<f32>> {
    let (h, w) = x.dim();
    let mean = x.iter().map(|&v| v as f64).sum::<f64>() / x.len() as f64;
    let r = s as isize - 1;
    let side = 2 * r as usize + 1;
    let mut acov = vec![0.0f64; side * side];
    let xs: Vec<f64> = x.iter().map(|&v| v as f64 - mean).collect();
    acov.par_iter_mut().enumerate().for_each(|(idx, a)| {
        let dy = (idx / side) as isize - r;
        let dx = (idx % side) as isize - r;
        let (y0, y1) = (0.max(-dy) as usize, (h as isize - 0.max(dy)) as usize);
        let (x0, x1) = (0.max(-dx) as usize, (w as isize - 0.max(dx)) as usize);
        let mut sum = 0.0;
        for y in y0..y1 {
            let row = &xs[y * w..(y + 1) * w];
            let other = &xs[(y as isize + dy) as usize * w..];
            for xx in x0..x1 {
                sum += row[xx] * other[(xx as isize + dx) as usize];
            }
        }
        let count = ((y1 - y0) * (x1 - x0)).max(1);
        *a = sum / count as f64;
    });
    let n = s * s;
    let mut cov = vec![0.0f64; n * n];
    for i in 0..n {
        let (yi, xi) = ((i / s) as isize, (i % s) as isize);
        for j in 0..n {
            let (yj, xj) = ((j / s) as isize, (j % s) as isize);
            cov[i * n + j] = acov[((yj - yi + r) as usize) * side + (xj - xi + r) as usize];
        }
    }
    let (_vals, vecs) = symmetric_eigen(&cov, n);
    (0..m.min(n))
        .map(|c| (0..n).map(|k| vecs[k * n + c] as f32).collect())
        .collect()
}

/// A zero-mean Gabor kernel of side `size` at orientation `theta`: wavelength size/2, envelope
/// sigma size/6, aspect 0.5.
fn gabor_kernel(size: usize, theta: f32) -> Vec<f32> {
    let half = (size as f32 - 1.0) / 2.0;
    let (sigma, lambda, gamma) = (size as f32 / 6.0, size as f32 / 2.0, 0.5f32);
    let (c, s) = (theta.cos(), theta.sin());
    let mut k: Vec<f32> = (0..size * size)
        .map(|i| {
            let (y, x) = ((i / size) as f32 - half, (i % size) as f32 - half);
            let (xr, yr) = (x * c + y * s, -x * s + y * c);
            (-(xr * xr + gamma * gamma * yr * yr) / (2.0 * sigma * sigma)).exp()
                * (2.0 * std::f32::consts::PI * xr / lambda).cos()
        })
        .collect();
    let mean = k.iter().sum::<f32>() / k.len() as f32;
    k.iter_mut().for_each(|v| *v -= mean);
    let norm = k.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
    k.iter_mut().for_each(|v| *v /= norm);
    k
}

/// Correlation of `x` with a `k x k` kernel, reflect padding, same size. Written as one row axpy
/// per kernel tap so the inner loop vectorises.
pub fn convolve_reflect(x: &Array2<f32>, kernel: &[f32], k: usize) -> Array2<f32> {
    let (h, w) = x.dim();
    let r = k / 2;
    let (ph, pw) = (h + k - 1, w + k - 1);
    let reflect = |i: isize, n: usize| -> usize {
        let n = n as isize;
        let mut i = i;
        if n == 1 {
            return 0;
        }
        loop {
            if i < 0 {
                i = -i;
            } else if i >= n {
                i = 2 * (n - 1) - i;
            } else {
                return i as usize;
            }
        }
    };
    let mut padded = vec![0.0f32; ph * pw];
    for py in 0..ph {
        let sy = reflect(py as isize - r as isize, h);
        for px in 0..pw {
            padded[py * pw + px] = x[(sy, reflect(px as isize - r as isize, w))];
        }
    }
    let mut out = vec![0.0f32; h * w];
    out.par_chunks_mut(w).enumerate().for_each(|(y, row)| {
        for ky in 0..k {
            let src = &padded[(y + ky) * pw..(y + ky) * pw + pw];
            for kx in 0..k {
                let kv = kernel[ky * k + kx];
                if kv == 0.0 {
                    continue;
                }
                for (o, &v) in row.iter_mut().zip(&src[kx..kx + w]) {
                    *o += kv * v;
                }
            }
        }
    });
    Array2::from_shape_vec((h, w), out).expect("shape")
}

/// Half-size plane by 2 x 2 averaging.
fn halve(x: &Array2<f32>) -> Array2<f32> {
    let (h, w) = x.dim();
    let (nh, nw) = ((h / 2).max(1), (w / 2).max(1));
    Array2::from_shape_fn((nh, nw), |(y, xx)| {
        let (y0, x0) = (2 * y, 2 * xx);
        let y1 = (y0 + 1).min(h - 1);
        let x1 = (x0 + 1).min(w - 1);
        (x[(y0, x0)] + x[(y0, x1)] + x[(y1, x0)] + x[(y1, x1)]) / 4.0
    })
}

/// Area-average resize (box filter), for downscaling to the work size without aliasing.
fn resize_area(x: &Array2<f32>, oh: usize, ow: usize) -> Array2<f32> {
    let (h, w) = x.dim();
    if (h, w) == (oh, ow) {
        return x.clone();
    }
    if oh > h || ow > w {
        return resize_bilinear(x, oh, ow);
    }
    let (sy, sx) = (h as f64 / oh as f64, w as f64 / ow as f64);
    Array2::from_shape_fn((oh, ow), |(y, xx)| {
        let (y0, y1) = (
            (y as f64 * sy) as usize,
            (((y + 1) as f64 * sy).ceil() as usize).min(h),
        );
        let (x0, x1) = (
            (xx as f64 * sx) as usize,
            (((xx + 1) as f64 * sx).ceil() as usize).min(w),
        );
        let mut s = 0.0;
        for yy in y0..y1 {
            for xk in x0..x1 {
                s += x[(yy, xk)];
            }
        }
        s / ((y1 - y0) * (x1 - x0)).max(1) as f32
    })
}

/// Planes of an image in [0, 1]: one for grey images, three for colour ones.
pub fn planes_of(img: &image::DynamicImage) -> Vec<Array2<f32>> {
    let grey = matches!(img.color().channel_count(), 1 | 2);
    let (w, h) = (img.width() as usize, img.height() as usize);
    if grey {
        let g = img.to_luma32f();
        vec![Array2::from_shape_vec((h, w), g.into_raw()).expect("shape")]
    } else {
        let rgb = img.to_rgb32f();
        let raw = rgb.as_raw();
        (0..3)
            .map(|c| Array2::from_shape_fn((h, w), |(y, x)| raw[(y * w + x) * 3 + c]))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_distr::{Distribution, StandardNormal};

    fn noise(seed: u64, h: usize, w: usize) -> Array2<f32> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        Array2::from_shape_simple_fn((h, w), || StandardNormal.sample(&mut rng))
    }

    #[test]
    fn convolution_with_a_delta_is_identity_and_reflects_at_borders() {
        let x = noise(1, 9, 11);
        let mut k = vec![0.0; 9];
        k[4] = 1.0;
        assert_eq!(convolve_reflect(&x, &k, 3), x);
        let mut shift = vec![0.0; 9];
        shift[3] = 1.0; // left neighbour
        let y = convolve_reflect(&x, &shift, 3);
        assert_eq!(y[(2, 5)], x[(2, 4)]);
        assert_eq!(y[(2, 0)], x[(2, 1)], "reflect padding");
    }

    #[test]
    fn pca_filters_are_orthonormal() {
        let x = noise(2, 40, 40);
        let f = pca_filters(&x, 5, 6);
        for a in 0..6 {
            for b in 0..6 {
                let dot: f32 = f[a].iter().zip(&f[b]).map(|(p, q)| p * q).sum();
                assert!((dot - if a == b { 1.0 } else { 0.0 }).abs() < 1e-4);
            }
        }
    }

    fn textured_with_defect() -> (Array2<f32>, (usize, usize)) {
        // A periodic texture plus noise, with a bright 10x10 blotch.
        let mut x = Array2::from_shape_fn((96, 96), |(y, xx)| {
            ((xx as f32 * 0.8).sin() + (y as f32 * 0.5).cos()) * 0.3
        });
        x += &(noise(3, 96, 96) * 0.05);
        for y in 38..48 {
            for xx in 58..68 {
                x[(y, xx)] += 1.5;
            }
        }
        (x, (43, 63))
    }

    #[test]
    fn every_variant_flags_the_defect_and_not_the_background() {
        let (x, (cy, cx)) = textured_with_defect();
        for features in [Features::PatchPca, Features::Gabor] {
            for nfa in [NfaKind::Pixel, NfaKind::Block, NfaKind::Region] {
                let params = Params {
                    features,
                    nfa,
                    scales: 2,
                    pca_components: 8,
                    patch: 7,
                    gabor_sizes: vec![5, 7],
                    gabor_orientations: 4,
                    block: 33,
                    stride: 4,
                    work_size: None,
                    ..Params::default()
                };
                let d = detect(std::slice::from_ref(&x), &params).unwrap();
                // The blotch's most significant pixel (band-pass Gabor features answer at its
                // edges, not in its flat middle), against the background.
                let at_defect = d
                    .log_nfa
                    .slice(ndarray::s![cy - 5..cy + 5, cx - 5..cx + 5])
                    .iter()
                    .copied()
                    .fold(f32::INFINITY, f32::min);
                let far = d.log_nfa[(10, 10)];
                assert!(
                    at_defect < 0.0,
                    "{features:?}/{nfa:?}: defect log NFA {at_defect}"
                );
                assert!(
                    at_defect < far - 1.0,
                    "{features:?}/{nfa:?}: {at_defect} vs {far}"
                );
            }
        }
    }

    #[test]
    fn pixel_nfa_false_alarms_on_noise_stay_bounded() {
        // Pure noise: the expected number of pixels with NFA < 1 is at most 1 per image and
        // scale-channel map; over 10 images allow a generous binomial margin.
        let params = Params {
            scales: 1,
            pca_components: 8,
            patch: 5,
            work_size: None,
            ..Params::default()
        };
        let mut detections = 0;
        for seed in 0..10 {
            let d = detect(&[noise(100 + seed, 64, 64)], &params).unwrap();
            detections += d.log_nfa.iter().filter(|&&v| v < 0.0).count();
        }
        assert!(
            detections <= 10 + 4 * 4,
            "{detections} pixels with NFA < 1 in 10 noise images"
        );
    }

    #[test]
    fn any_size_grey_and_colour() {
        let img = image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(70, 33, |x, y| {
            image::Rgb([(x * 3) as u8, (y * 7) as u8, ((x + y) * 2) as u8])
        }));
        let planes = planes_of(&img);
        assert_eq!(planes.len(), 3);
        let params = Params {
            pca_components: 4,
            patch: 5,
            ..Params::default()
        };
        assert_eq!(detect(&planes, &params).unwrap().log_nfa.dim(), (33, 70));
        let grey =
            image::DynamicImage::ImageLuma16(image::ImageBuffer::from_fn(300, 20, |x, _| {
                image::Luma([x as u16 * 200])
            }));
        let planes = planes_of(&grey);
        assert_eq!(planes.len(), 1);
        // 6000 pixels: analysed as they are.
        assert_eq!(detect(&planes, &params).unwrap().log_nfa.dim(), (20, 300));
    }

    #[test]
    fn narrow_and_tiny_images_are_analysed_or_refused_clearly() {
        let params = Params::default();
        // A line-scan image keeps its pixel budget, not its long side: the short side stays
        // analysable (a 256 cap on the long side would leave 13 rows for 17-pixel patches).
        assert_eq!(params.work_dims(200, 4096), (57, 1159));
        assert_eq!(params.work_dims(4096, 200), (1159, 57));
        assert_eq!(params.work_dims(512, 512), (256, 256));
        // Never below a patch where the image allows, never above the image.
        assert_eq!(params.work_dims(20, 20000), (17, 17000));
        assert_eq!(params.work_dims(17, 17), (17, 17));
        for (h, w) in [(1, 1), (1, 300), (300, 1), (3, 3), (16, 400)] {
            let err = detect(&[Array2::zeros((h, w))], &params).err();
            assert_eq!(
                err,
                Some(DetectError::TooSmall {
                    width: w,
                    height: h,
                    needed: 17
                }),
                "{h}x{w}"
            );
        }
        let small = Params {
            scales: 2,
            ..Params::default()
        };
        for (h, w) in [(17, 17), (17, 301), (301, 17), (23, 41)] {
            let d = detect(&[noise(h as u64 * 7 + w as u64, h, w)], &small).unwrap();
            assert_eq!(d.log_nfa.dim(), small.work_dims(h, w), "{h}x{w}");
            assert!(d.log_nfa.iter().all(|v| v.is_finite()), "{h}x{w}");
        }
        assert_eq!(detect(&[], &params).err(), Some(DetectError::NoChannels));
    }

    #[test]
    fn erosion_thresholds_like_an_eroded_detection() {
        let m = ndarray::arr2(&[
            [5.0f32, 5.0, 5.0, 5.0, 5.0],
            [5.0, -1.0, -2.0, -3.0, 5.0],
            [5.0, -4.0, -9.0, -2.0, 5.0],
            [5.0, -1.0, -1.0, -1.0, 5.0],
        ]);
        let e = erode(&m, 1);
        // The centre of the 3x3 detected block keeps its window inside the detection, and so
        // does the block's pixel on the image's edge (what lies beyond is not normal, unknown).
        assert_eq!(e[(2, 2)], -1.0);
        assert_eq!(e[(3, 2)], -1.0);
        assert_eq!(e.iter().filter(|&&v| v < 0.0).count(), 2);
    }

    #[test]
    fn a_thin_crack_is_outlined_as_a_thin_band_not_a_patch_wide_one() {
        // A faint textured background with a 2-pixel dark line across it.
        let mut x = noise(9, 128, 128) * 0.2;
        for y in 20..108 {
            for xx in 63..65 {
                x[(y, xx)] -= 2.0;
            }
        }
        let width = |refine: bool| {
            let params = Params {
                pca_components: 12,
                refine,
                work_size: None,
                ..Params::default()
            };
            let d = detect(std::slice::from_ref(&x), &params).unwrap();
            let row = d.log_nfa.row(64);
            let on_line = row[63] < 0.0 && row[64] < 0.0;
            (on_line, row.iter().filter(|&&v| v < 0.0).count())
        };
        let (hit_raw, raw) = width(false);
        let (hit, refined) = width(true);
        assert!(hit_raw && hit, "the crack is found either way");
        assert!(raw >= 16, "a band as wide as a patch: {raw} px");
        assert!(refined <= 6, "back to the crack: {refined} px (was {raw})");
    }
}
