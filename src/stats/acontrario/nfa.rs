//! NFA segmentation of U-Flow latents (thesis 5.3.4, reference section 5): per scale, the tree of
//! upper level sets of u = mean_c z^2, a Chernoff-bound log10 PFA per node, the number of tests,
//! prune/merge on the resulting NFA, the per-scale map of each final region's NFA; then all
//! scales upsampled, each region kept where the finest features carry its evidence
//! ([`OutlineRule`]: [`EVIDENCE_LEVEL`], [`HALO_REACH`], [`REJOIN_REACH`]), and combined by a
//! pixelwise minimum.
//!
//! # Counting the tests
//! A region R (a connected set of grid cells, a polyomino) is tested with the statistic
//! PFA(R) = B(lambda_min(R))^|R|, B the Chernoff bound of P(chi2_C >= lambda), clamped to 1. Under
//! H0 the cells are independent chi2_C, so P(PFA(R) <= p) <= p for every fixed R. Its NFA is
//! N(R) PFA(R), and the expected number of regions with NFA <= eps is at most
//! sum_R N(R) eps / N(R) over the regions that count, so N(R) must make sum_R 1/N(R) <= 1:
//! - [`TestCount::Thesis`] gives every region the same N_T = sum_s n_s sum_{a=1}^{n_s}
//!   alpha beta^a / a (n_s cells on scale s; alpha beta^a / a polyominoes of area a per anchor).
//!   The sum is dominated by the largest areas: 10^623 tests on a 32 x 32 grid, which every
//!   region pays, a 12-cell scratch as much as a region covering the image.
//! - [`TestCount::PerArea`] (the default) splits the budget evenly over the K = sum_s n_s strata
//!   (scale s, area a): NFA(R) = K N_s(|R|) PFA(R) with N_s(a) = n_s alpha beta^a / a, the
//!   polyominoes of area a on scale s's grid. Then sum_R 1/N(R) = sum_{s,a} N_s(a) / (K N_s(a))
//!   = 1: the guarantee is the same (at most eps false alarms per image at NFA <= eps), and a
//!   12-cell region on a 32 x 32 grid costs 10^12 tests instead of 10^623, a region covering the
//!   image still 10^623.
//!
//! The tree's prune/merge picks, in each branch, the region of lowest NFA: with the per-area
//! count that weighs a region's area against its evidence, as the test itself does.

use ndarray::{Array2, ArrayView3};
use rayon::prelude::*;

use super::null::{CellNull, DistanceNull};
use super::tree::{MaxTree, leaf_of_nodes, significant_leaves};

/// Polyomino count approximation: alpha * beta^r / r regions of r pixels (4-connected).
const POLYOMINO_ALPHA: f64 = 0.316915;
const POLYOMINO_BETA: f64 = 4.062570;

/// The grid the default test runs on: at most 32 latent pixels a side, as coarse as the thesis'
/// 28x28 (a 64x64 latent is tested as 32x32 blocks of 2x2).
pub const DEFAULT_TEST_SIDE: usize = 32;

/// How the number of tests is counted (see the module's documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TestCount {
    /// One N_T for every region: all polyominoes up to the grid's size (the thesis, the published
    /// implementation).
    Thesis,
    /// The budget split evenly over (scale, area): a region pays for the shapes of its own area.
    PerArea,
}

impl TestCount {
    pub fn name(self) -> &'static str {
        match self {
            TestCount::Thesis => "thesis",
            TestCount::PerArea => "per-area",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "thesis" => Some(TestCount::Thesis),
            "per-area" => Some(TestCount::PerArea),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SegmentOptions {
    /// Reproduce the published implementation exactly: no clamp where t = lambda_min / C < 1.
    /// There the Chernoff bound exceeds 1, and slightly shrunk latents would make the whole image
    /// "significant"; by default such nodes get PFA = 1 (log10 PFA = 0).
    pub parity: bool,
    pub upsampling: Upsampling,
    /// Largest side of the grid a scale is tested on: finer latents are summed over k x k blocks
    /// (k a power of two) into pixels of k^2 C channels first (under H0 the sum of k^2 C squared
    /// independent N(0,1) is chi2 with k^2 C degrees). Why: the number of tests grows as 4^(H W),
    /// so a 64x64 latent costs 10^2493 tests and a defect needs that much evidence to be found at
    /// NFA < 1; tested as 32x32 it costs 10^623 with the same evidence per area. None: every
    /// latent pixel (the reference).
    pub test_side: Option<usize>,
    /// How the tests are counted.
    pub count: TestCount,
    /// How a region's pixels are drawn.
    pub outline: OutlineRule,
}

/// How a detected region is outlined at the output size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutlineRule {
    /// The region as tested, on its scale's grid, upsampled (the reference).
    Tested,
    /// The region where the finest features carry its evidence (see [`EVIDENCE_LEVEL`]); the
    /// default.
    #[default]
    Evidence,
}

impl OutlineRule {
    pub fn name(self) -> &'static str {
        match self {
            OutlineRule::Tested => "tested",
            OutlineRule::Evidence => "evidence",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "tested" => Some(OutlineRule::Tested),
            "evidence" => Some(OutlineRule::Evidence),
            _ => None,
        }
    }
}

/// Where a region's pixels carry its evidence: the finest latent's mean square per value, as
/// the median of 3 x 3 latent pixels interpolated to the output ([`evidence_map`]), reaches the
/// region's own level or this, whichever is lower (normal latents average 1).
///
/// Why: a defect disturbs the features around it as far as their receptive fields reach. A
/// tested region (cells of 8 to 16 pixels at 256 px, grown by the tree down to the lowest level
/// its evidence carries) spreads over that halo, coarse scales add pieces of it, and lone cells
/// of the halo pass as regions of their own. Keeping a region only where the finest features are
/// at least twice their normal level trims the halo; the median ignores lone latent pixels, so
/// speckle neither cuts an outline into pieces nor survives as a region (a latent disturbance
/// must be two latent pixels wide to count, which a real defect's is); the region's own level
/// keeps a moderately raised region (every cell above 1.3, say) whole. Measured in the README
/// ("How outlines are drawn"): mIoU at NFA < 1 rises on every category tried. Regions are only
/// shrunk, split or removed, never grown or added, so the false-alarm bound holds as before (the
/// statistical tests check it on the outlines too, since a cut can split a region in two).
pub const EVIDENCE_LEVEL: f32 = 2.0;

/// How far (in pixels of the finest latent) a strong defect's halo reaches: within it, a pixel
/// keeps its region only where its evidence reaches the geometric mean of the normal level (1)
/// and the nearby peak, i.e. half the peak's evidence in log, when that is above
/// [`EVIDENCE_LEVEL`] ([`halo_floor`]).
///
/// Why: around a strong defect the finest features stay disturbed for 4 to 6 latent pixels
/// (16 to 24 px at 256 px), their mean square falling by a roughly constant factor per pixel
/// from the defect's level (measured on the demo's and MVTec's defects: a hole at 100x normal
/// leaves 2 to 3x normal five pixels away), so a fixed level outlines a strong defect with a band of
/// halo whose width grows with the defect's strength. Half the log of the peak cuts that decay
/// at the same place whatever the strength, as a half maximum does for a blurred edge. A weak
/// defect (peak below 4) is untouched. The cost: a large defect of uneven strength loses its
/// weaker parts near a bright spot (MVTec bottle's broken_large and contamination).
pub const HALO_REACH: usize = 5;

/// Where the halo floor leaves pieces of one region within this many latent pixels of each
/// other (a line of uneven strength, thinner between bright spots), the pixels between them
/// that pass the fixed level ([`EVIDENCE_LEVEL`] or the region's own) are given back: a binary
/// closing of the outlined pixels, filled from the regions as cut at the fixed level only. A
/// halo surrounds a piece rather than lying between pieces, so it stays cut. Everything given
/// back was part of a tested region, so the false-alarm bound holds; pieces that join count once.
pub const REJOIN_REACH: usize = 3;

impl Default for SegmentOptions {
    fn default() -> Self {
        Self {
            parity: false,
            upsampling: Upsampling::Median,
            test_side: Some(DEFAULT_TEST_SIDE),
            count: TestCount::PerArea,
            outline: OutlineRule::default(),
        }
    }
}

impl SegmentOptions {
    /// The published implementation: no clamp, every latent pixel tested, bilinear upsampling,
    /// the thesis' count, regions as tested.
    pub fn reference() -> Self {
        Self {
            parity: true,
            upsampling: Upsampling::Bilinear,
            test_side: None,
            count: TestCount::Thesis,
            outline: OutlineRule::Tested,
        }
    }

    /// The default segmentation with another count.
    pub fn with_count(count: TestCount) -> Self {
        Self {
            count,
            ..Self::default()
        }
    }
}

/// Block size that brings an h x w latent to at most `side` on its longer side: a power of two
/// dividing both sides (smaller where they stop dividing).
pub fn block_size(h: usize, w: usize, side: Option<usize>) -> usize {
    let mut k = 1;
    if let Some(side) = side {
        while h.max(w) / k > side.max(1) && h.is_multiple_of(2 * k) && w.is_multiple_of(2 * k) {
            k *= 2;
        }
    }
    k
}

/// How the per-scale log10 NFA maps reach the output size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upsampling {
    /// Bilinear interpolation of the values (the reference). An outline then depends on how far
    /// the region's value lies below the threshold: a very significant region grows by up to
    /// half a coarse pixel, a marginal one shrinks to nothing.
    Bilinear,
    /// Per output pixel, the bilinear-weighted lower median of the four coarse neighbours:
    /// thresholding the result at any level gives exactly the bilinear upsampling of that level's
    /// detection mask cut at 1/2, so outlines sit half-way between coarse pixels whatever the
    /// values, and moving the NFA level adds or removes whole regions without reshaping them.
    Median,
}

/// log10 of the number of tests: sum over scales of H_s W_s * sum_{r=1}^{H_s W_s} alpha beta^r / r,
/// computed in log space (the sum overflows any float).
pub fn log10_number_of_tests(scale_sizes: &[usize]) -> f64 {
    let (ln_a, ln_b) = (POLYOMINO_ALPHA.ln(), POLYOMINO_BETA.ln());
    let per_scale: Vec<f64> = scale_sizes
        .iter()
        .map(|&n| {
            // ln sum_r exp(ln a + r ln b - ln r), anchored at the largest (last) term.
            let top = ln_a + n as f64 * ln_b - (n as f64).ln();
            let mut acc = 0.0;
            for r in (1..=n).rev() {
                let term = ln_a + r as f64 * ln_b - (r as f64).ln() - top;
                if term < -40.0 {
                    break;
                }
                acc += term.exp();
            }
            (n as f64).ln() + top + acc.ln()
        })
        .collect();
    let top = per_scale.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = per_scale.iter().map(|v| (v - top).exp()).sum();
    (top + sum.ln()) / std::f64::consts::LN_10
}

/// log10 of the number of polyominoes of `area` cells placed on a grid of `cells` cells:
/// cells * alpha * beta^area / area.
pub fn log10_polyominoes(cells: usize, area: u32) -> f64 {
    let a = area.max(1) as f64;
    ((cells.max(1) as f64).ln() + POLYOMINO_ALPHA.ln() + a * POLYOMINO_BETA.ln() - a.ln())
        / std::f64::consts::LN_10
}

/// log10 of the factor every region of an image pays besides its own: N_T for the thesis'
/// count, K = sum_s n_s (the number of (scale, area) strata) for the per-area one.
pub fn log10_common_tests(scale_sizes: &[usize], count: TestCount) -> f64 {
    match count {
        TestCount::Thesis => log10_number_of_tests(scale_sizes),
        TestCount::PerArea => (scale_sizes.iter().sum::<usize>().max(1) as f64).log10(),
    }
}

/// The result of one scale.
#[derive(Debug, Clone)]
pub struct ScaleResult {
    /// Per pixel, the log10 NFA of the final region it belongs to without the factor common to
    /// all regions ([`Segmentation::log10_nt`]): log10 PFA (thesis count) or
    /// log10 N_s(|R|) PFA(R) (per-area count); 0 where none.
    pub log_pfa: Array2<f32>,
    /// Per pixel, the level t (mean square per latent value) of the final region it belongs to:
    /// every cell of that region is at least this high; 0 where none.
    pub level: Array2<f32>,
    pub channels: usize,
    /// Number of final regions (leaves after prune/merge).
    pub regions: usize,
}

/// Per pixel, the sum over channels of z^2, accumulated channel by channel in f32 (numpy's order
/// for an axis-0 reduction, so parity mode sees the reference's values). Large latents are split
/// by pixel ranges across threads: every pixel keeps the same accumulation order, so the result
/// is identical to the sequential one.
fn sum_of_squares(z: ArrayView3<'_, f32>) -> Vec<f32> {
    let (c, h, w) = z.dim();
    let n = h * w;
    let mut sq = vec![0.0f32; n];
    let standard = z.as_standard_layout();
    let data = standard.as_slice().expect("standard layout");
    let accumulate = |start: usize, out: &mut [f32]| {
        for ch in 0..c {
            let row = &data[ch * n + start..ch * n + start + out.len()];
            out.iter_mut().zip(row).for_each(|(a, v)| *a += v * v);
        }
    };
    if c * n >= 8_000_000 && rayon::current_num_threads() > 1 {
        let chunk = n.div_ceil(rayon::current_num_threads()).max(64);
        sq.par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(k, out)| accumulate(k * chunk, out));
    } else {
        accumulate(0, &mut sq);
    }
    sq
}

/// Segment one scale: `z` is C x H x W. The result is on the tested grid (see
/// [`SegmentOptions::test_side`]).
pub fn segment_scale(z: ArrayView3<'_, f32>, opts: SegmentOptions) -> ScaleResult {
    segment_scale_calibrated(z, opts, &CellNull::default())
}

/// [`segment_scale`] with the cells' statistic distributed as `null` says on normal images
/// (see [`CellNull`]; the default is independent N(0, 1) latents).
pub fn segment_scale_calibrated(
    z: ArrayView3<'_, f32>,
    opts: SegmentOptions,
    null: &CellNull,
) -> ScaleResult {
    let (_, h, w) = z.dim();
    // Sum of squares over channels, accumulated channel by channel in f32 (numpy's order for an
    // axis-0 reduction), so parity mode sees the same values as the reference.
    let k = block_size(h, w, opts.test_side);
    let (sq, c) = tested_cells(z, opts);
    let (h, w) = (h / k, w / k);
    let tree = MaxTree::build(&sq, h, w);
    let log_pfa: Vec<f64> = (0..tree.len())
        .map(|v| {
            // lambda_min of a node's region is its own level (all descendants are higher).
            let t = (tree.level[v] / c as f32) as f64;
            tree.area[v] as f64 * null.log10_pfa_cell(t, c, opts.parity)
        })
        .collect();
    // Which regions: in each branch the most significant by PFA (the thesis' selection, the
    // same whichever count); how significant: the count's NFA of the region chosen. The bound
    // holds for any region, however it was chosen.
    let leaves = significant_leaves(&tree, &log_pfa);
    let owner = leaf_of_nodes(&tree, &leaves);
    let log_nfa = |l: usize| match opts.count {
        TestCount::Thesis => log_pfa[l],
        TestCount::PerArea => log_pfa[l] + log10_polyominoes(h * w, tree.area[l]),
    };
    let map: Vec<f32> = tree
        .node_of
        .iter()
        .map(|&node| owner[node as usize].map_or(0.0, |l| log_nfa(l as usize) as f32))
        .collect();
    let level: Vec<f32> = tree
        .node_of
        .iter()
        .map(|&node| owner[node as usize].map_or(0.0, |l| tree.level[l as usize] / c as f32))
        .collect();
    ScaleResult {
        log_pfa: Array2::from_shape_vec((h, w), map).expect("shape"),
        level: Array2::from_shape_vec((h, w), level).expect("shape"),
        channels: c,
        regions: leaves.len(),
    }
}

/// The two source samples of output sample `o` and the weight of the second, for a bilinear
/// resize from `n_in` to `n_out` samples with align_corners = false.
fn taps(o: usize, n_in: usize, n_out: usize) -> (usize, usize, f64) {
    let s = ((o as f64 + 0.5) * n_in as f64 / n_out as f64 - 0.5).max(0.0);
    let i0 = (s.floor() as usize).min(n_in - 1);
    let i1 = (i0 + 1).min(n_in - 1);
    (i0, i1, s - i0 as f64)
}

/// Bilinear resize with align_corners = false (PyTorch's `F.interpolate` convention).
pub fn resize_bilinear(src: &Array2<f32>, out_h: usize, out_w: usize) -> Array2<f32> {
    let (h, w) = src.dim();
    if (h, w) == (out_h, out_w) {
        return src.clone();
    }
    let xs: Vec<_> = (0..out_w).map(|x| taps(x, w, out_w)).collect();
    let mut out = Array2::<f32>::zeros((out_h, out_w));
    for (y, mut row) in out.outer_iter_mut().enumerate() {
        let (y0, y1, fy) = taps(y, h, out_h);
        let fy = fy as f32;
        for (x, v) in row.iter_mut().enumerate() {
            let (x0, x1, fx) = xs[x];
            let fx = fx as f32;
            let top = src[(y0, x0)] * (1.0 - fx) + src[(y0, x1)] * fx;
            let bottom = src[(y1, x0)] * (1.0 - fx) + src[(y1, x1)] * fx;
            *v = top * (1.0 - fy) + bottom * fy;
        }
    }
    out
}

/// Resize by the bilinear-weighted lower median of the four neighbours (see [`Upsampling::Median`]).
pub fn resize_median(src: &Array2<f32>, out_h: usize, out_w: usize) -> Array2<f32> {
    let (h, w) = src.dim();
    if (h, w) == (out_h, out_w) {
        return src.clone();
    }
    picked(src, Some(&median_sources(src, out_h, out_w)), out_h, out_w)
}

/// Per output pixel, the source pixel (row-major index) whose value [`resize_median`] takes.
fn median_sources(src: &Array2<f32>, out_h: usize, out_w: usize) -> Vec<u32> {
    let (h, w) = src.dim();
    let src = src.as_standard_layout();
    let d = src.as_slice().expect("standard layout");
    let xs: Vec<_> = (0..out_w).map(|x| taps(x, w, out_w)).collect();
    let mut out = Vec::with_capacity(out_h * out_w);
    for y in 0..out_h {
        let (y0, y1, fy) = taps(y, h, out_h);
        let fy = fy as f32;
        for &(x0, x1, fx) in &xs {
            let idx = [y0 * w + x0, y0 * w + x1, y1 * w + x0, y1 * w + x1];
            let v = idx.map(|i| d[i]);
            // Most pixels lie inside one region or none: four equal values need no median.
            if v[0] == v[1] && v[0] == v[2] && v[0] == v[3] {
                out.push(idx[0] as u32);
                continue;
            }
            let fx = fx as f32;
            let wt = [
                (1.0 - fx) * (1.0 - fy),
                fx * (1.0 - fy),
                (1.0 - fx) * fy,
                fx * fy,
            ];
            // The lowest level at which the neighbours at or below it hold half the weight; a
            // hair of slack so that exact halves (centres between two coarse pixels) count.
            // (The largest value always qualifies.)
            let mut best: Option<usize> = None;
            for (k, &vi) in v.iter().enumerate() {
                let below: f32 = v
                    .iter()
                    .zip(&wt)
                    .filter(|(vj, _)| **vj <= vi)
                    .map(|(_, w)| w)
                    .sum();
                if below >= 0.5 - 1e-6 && best.is_none_or(|b| vi < v[b]) {
                    best = Some(k);
                }
            }
            out.push(idx[best.unwrap_or(0)] as u32);
        }
    }
    out
}

/// `src` at the output size through [`median_sources`] (None: the same size).
fn picked(src: &Array2<f32>, sources: Option<&[u32]>, oh: usize, ow: usize) -> Array2<f32> {
    let Some(sources) = sources else {
        return src.clone();
    };
    let d = src.as_standard_layout();
    let d = d.as_slice().expect("standard layout");
    Array2::from_shape_vec((oh, ow), sources.iter().map(|&i| d[i as usize]).collect())
        .expect("shape")
}

/// The finest latent's mean square per value, the median of its 3 x 3 latent pixels (the upper
/// median of the 4 or 6 at the borders), on the latent's grid (see [`EVIDENCE_LEVEL`]).
pub fn latent_evidence(z: ArrayView3<'_, f32>) -> Array2<f32> {
    let (c, h, w) = z.dim();
    let sq = sum_of_squares(z);
    let per_value = 1.0 / c.max(1) as f32;
    let mut t = Array2::<f32>::zeros((h, w));
    let mut around = Vec::with_capacity(9);
    for ((y, x), v) in t.indexed_iter_mut() {
        around.clear();
        for yy in y.saturating_sub(1)..(y + 2).min(h) {
            around.extend_from_slice(&sq[yy * w + x.saturating_sub(1)..yy * w + (x + 2).min(w)]);
        }
        around.sort_unstable_by(f32::total_cmp);
        *v = around[around.len() / 2] * per_value;
    }
    t
}

/// [`latent_evidence`] interpolated bilinearly to the output.
pub fn evidence_map(z: ArrayView3<'_, f32>, oh: usize, ow: usize) -> Array2<f32> {
    resize_bilinear(&latent_evidence(z), oh, ow)
}

/// The level a pixel's evidence must reach near a strong defect (see [`HALO_REACH`]): the square
/// root of the largest evidence within `HALO_REACH` latent pixels (a square window, as a
/// separable maximum), on the latent's grid.
pub fn halo_floor(evidence: &Array2<f32>) -> Array2<f32> {
    window_max(evidence, HALO_REACH).mapv(f32::sqrt)
}

/// The largest value within `r` pixels (a square window, as a separable maximum; 0 at least).
fn window_max(a: &Array2<f32>, r: usize) -> Array2<f32> {
    let (h, w) = a.dim();
    let e = a.as_standard_layout();
    let e = e.as_slice().expect("standard layout");
    let mut rows = vec![0f32; h * w];
    for y in 0..h {
        for x in 0..w {
            let line = &e[y * w + x.saturating_sub(r)..y * w + (x + r + 1).min(w)];
            rows[y * w + x] = line.iter().fold(0f32, |m, &v| m.max(v));
        }
    }
    Array2::from_shape_fn((h, w), |(y, x)| {
        (y.saturating_sub(r)..(y + r + 1).min(h)).fold(0f32, |m, yy| m.max(rows[yy * w + x]))
    })
}

/// What the outline rule ([`OutlineRule::Evidence`]) compares a region's pixels with, at the
/// output size and in the units of the tested statistic (mean square per value, normal 1): each
/// pixel's evidence and, where some peak is strong, the floor near it. By default both come from
/// the finest latent ([`latent_evidence`], [`halo_floor`]); a family whose map is finer than
/// what it tests gives its own ([`OutlineEvidence::of_distances`]).
#[derive(Clone, Debug)]
pub struct OutlineEvidence {
    pub evidence: Array2<f32>,
    pub floor: Option<Array2<f32>>,
}

/// Where a distance map's halo ends around a peak: half-way from the normal patches' upper
/// level (the null's tail start, its 90th percentile) to the peak.
pub const DISTANCE_HALF: f32 = 0.5;

impl OutlineEvidence {
    /// The default: from the finest latent, interpolated to the output.
    pub fn of_latent(z: ArrayView3<'_, f32>, oh: usize, ow: usize) -> Self {
        let e = latent_evidence(z);
        let floor = halo_floor(&e);
        let floor = floor
            .iter()
            .any(|&f| f > EVIDENCE_LEVEL)
            .then(|| resize_bilinear(&floor, oh, ow));
        Self {
            evidence: resize_bilinear(&e, oh, ow),
            floor,
        }
    }

    /// From a distance map at the output size (PatchCore's, upsampled from its `cell`-pixel
    /// grid), as half-normal scores squared under `null` (so 1 on average where normal).
    ///
    /// Why: a memory bank's distance is a smooth bump around a defect (its descriptors average
    /// 3 x 3 patches of stride 8, each seeing beyond its cell), whose score grows linearly with the
    /// distance past the tail's start rather than by a factor per pixel as a flow's latents do;
    /// the flow's floor (the square root of the peak) would keep the whole bump, 5 to 20 times a
    /// small defect's area. Its edge is where the bump is at half its height above the normal
    /// level, as for any blurred edge ([`DISTANCE_HALF`]), the peak taken within [`HALO_REACH`]
    /// cells. Measured in the README ("How outlines are drawn"). As the flow's rule, it only
    /// shrinks or splits regions.
    pub fn of_distances(map: &Array2<f32>, null: &DistanceNull, cell: usize) -> Self {
        let (oh, ow) = map.dim();
        let cell = cell.max(1);
        let score = |d: f32| {
            let z = null.z(d as f64) as f32;
            z * z
        };
        // The peak near each pixel on the cells' grid (the largest value within each cell, then
        // within the reach), its floor there, interpolated to the output as the flow's is.
        let (ch, cw) = (oh.div_ceil(cell), ow.div_ceil(cell));
        let mut peaks = Array2::<f32>::zeros((ch, cw));
        for ((y, x), &v) in map.indexed_iter() {
            let p = &mut peaks[(y / cell, x / cell)];
            *p = p.max(v);
        }
        let normal = null.tail_from as f32;
        let floor = window_max(&peaks, HALO_REACH).mapv(|peak| {
            if peak > normal {
                score(normal + DISTANCE_HALF * (peak - normal))
            } else {
                0.0
            }
        });
        let floor = resize_bilinear(&floor, oh, ow);
        // Every pixel's score by linear interpolation between SCORE_POINTS exact ones (monotone
        // as the score; an exact quantile per pixel cost 7 ms an image, `bench patchcore`).
        const SCORE_POINTS: usize = 512;
        let top = peaks
            .iter()
            .fold(0f32, |m, &v| m.max(v))
            .max(f32::MIN_POSITIVE);
        let step = top / (SCORE_POINTS - 1) as f32;
        let table: Vec<f32> = (0..SCORE_POINTS).map(|i| score(i as f32 * step)).collect();
        let evidence = map.mapv(|d| {
            let at = (d.max(0.0) / step).min((SCORE_POINTS - 1) as f32);
            let i = (at as usize).min(SCORE_POINTS - 2);
            let f = at - i as f32;
            table[i] + f * (table[i + 1] - table[i])
        });
        let floor = floor.iter().any(|&f| f > EVIDENCE_LEVEL).then_some(floor);
        Self { evidence, floor }
    }
}

/// The level below which a pixel leaves a region of level `level` (0 outside any region): the
/// region's own level or [`EVIDENCE_LEVEL`], whichever is lower, raised to the halo floor where
/// that is higher than [`EVIDENCE_LEVEL`].
fn outline_level(level: f32, halo_floor: f32) -> f32 {
    if halo_floor > EVIDENCE_LEVEL {
        halo_floor
    } else {
        level.min(EVIDENCE_LEVEL)
    }
}

/// Binary closing with a (2r+1)-pixel square: what lies within r pixels of the mask on two
/// sides. Each pass is separable, with running counts, so its cost does not grow with r.
pub fn close_mask(mask: &Array2<bool>, r: usize) -> Array2<bool> {
    // On a copy padded by r, so that what the dilation grows past an edge is there for the
    // erosion, as on an unbounded plane.
    let (h, w) = mask.dim();
    let mut padded = Array2::from_elem((h + 2 * r, w + 2 * r), false);
    padded
        .slice_mut(ndarray::s![r..r + h, r..r + w])
        .assign(mask);
    let grown = dilate(&padded, r);
    let closed = dilate(&grown.mapv(|v| !v), r).mapv(|v| !v);
    closed.slice(ndarray::s![r..r + h, r..r + w]).to_owned()
}

/// Binary dilation with a (2r+1)-pixel square (rows, then columns), nothing beyond the edges.
fn dilate(mask: &Array2<bool>, r: usize) -> Array2<bool> {
    let (h, w) = mask.dim();
    let mut v: Vec<bool> = mask.iter().copied().collect();
    let mut count = Vec::with_capacity(h.max(w) + 1);
    // One line (n values `stride` apart from `start`): a pixel is set when its window holds one.
    let mut pass = |v: &mut [bool], start: usize, stride: usize, n: usize| {
        count.clear();
        count.push(0u32);
        for i in 0..n {
            count.push(count[i] + u32::from(v[start + i * stride]));
        }
        for i in 0..n {
            v[start + i * stride] = count[(i + r + 1).min(n)] > count[i.saturating_sub(r)];
        }
    };
    for y in 0..h {
        pass(&mut v, y * w, 1, w);
    }
    for x in 0..w {
        pass(&mut v, x, w, h);
    }
    Array2::from_shape_vec((h, w), v).expect("shape")
}

/// Keeps, per pixel, the lowest value seen and the scale that gave it.
fn keep_min(min_map: &mut Array2<f32>, best: &mut Array2<u8>, up: &Array2<f32>, s: usize) {
    ndarray::Zip::from(min_map)
        .and(best)
        .and(up)
        .for_each(|m, b, &v| {
            if v < *m {
                *m = v;
                *b = s as u8;
            }
        });
}

/// The tested cells of a scale: the per-pixel sum of squares over channels, summed over the
/// k x k blocks of [`SegmentOptions::test_side`]; with their channels (k^2 C).
pub fn tested_cells(z: ArrayView3<'_, f32>, opts: SegmentOptions) -> (Vec<f32>, usize) {
    let (c, h, w) = z.dim();
    let sq = sum_of_squares(z);
    let k = block_size(h, w, opts.test_side);
    if k == 1 {
        return (sq, c);
    }
    let (bh, bw) = (h / k, w / k);
    let mut pooled = vec![0f32; bh * bw];
    for (i, v) in sq.iter().enumerate() {
        pooled[(i / w / k) * bw + (i % w) / k] += v;
    }
    (pooled, c * k * k)
}

/// All scales of one image, combined.
#[derive(Debug, Clone)]
pub struct Segmentation {
    pub scales: Vec<ScaleResult>,
    /// log10 of the factor every region pays besides its own: N_T (thesis count) or the number
    /// of strata K (per-area count).
    pub log10_nt: f64,
    /// log10 NFA at the output size: log10_nt + min over scales of the upsampled per-scale maps.
    pub log_nfa: Array2<f32>,
    /// Scale (0 = finest) that gave each pixel its minimum.
    pub best_scale: Array2<u8>,
}

/// Segment the latents of one image (`latents[s]` is C_s x H_s x W_s, finest first) and combine at
/// `out_size` (default: the finest scale's size).
pub fn segment(
    latents: &[ArrayView3<'_, f32>],
    out_size: Option<(usize, usize)>,
    opts: SegmentOptions,
) -> Segmentation {
    segment_calibrated(latents, out_size, opts, &[])
}

/// [`segment`] with each scale's cells distributed as `nulls` says (the default where missing).
pub fn segment_calibrated(
    latents: &[ArrayView3<'_, f32>],
    out_size: Option<(usize, usize)>,
    opts: SegmentOptions,
    nulls: &[CellNull],
) -> Segmentation {
    segment_outlined(latents, out_size, opts, nulls, None)
}

/// [`segment_calibrated`] with the outline rule's evidence given (None, or another size than the
/// output: the finest latent's, [`OutlineEvidence::of_latent`]).
pub fn segment_outlined(
    latents: &[ArrayView3<'_, f32>],
    out_size: Option<(usize, usize)>,
    opts: SegmentOptions,
    nulls: &[CellNull],
    outline: Option<OutlineEvidence>,
) -> Segmentation {
    assert!(!latents.is_empty(), "no scales to segment");
    let ideal = CellNull::default();
    let ratio = |s: usize| nulls.get(s).unwrap_or(&ideal);
    // Threads pay off only for large latents; waking them costs more than a small map's work.
    let largest = latents.iter().map(|z| z.len()).max().unwrap_or(0);
    let scales: Vec<ScaleResult> = if largest > 4_000_000 {
        latents
            .par_iter()
            .enumerate()
            .map(|(s, z)| segment_scale_calibrated(z.view(), opts, ratio(s)))
            .collect()
    } else {
        latents
            .iter()
            .enumerate()
            .map(|(s, z)| segment_scale_calibrated(z.view(), opts, ratio(s)))
            .collect()
    };
    // The tests are counted on the grids the scales were tested on.
    let sizes: Vec<usize> = scales.iter().map(|r| r.log_pfa.len()).collect();
    let log10_nt = log10_common_tests(&sizes, opts.count);
    let (oh, ow) = out_size.unwrap_or((latents[0].dim().1, latents[0].dim().2));
    // The finest features' evidence at the output and, where some peak is strong enough for it
    // to matter, the halo floor (normal images mostly have none and skip its work).
    // A family's evidence comes at the output's size; another size is its caller's bug, which
    // the tests' builds stop on and a user's run survives with the latent's evidence.
    debug_assert!(
        outline
            .as_ref()
            .is_none_or(|o| o.evidence.dim() == (oh, ow)),
        "outline evidence of another size than the output"
    );
    let evidence = match opts.outline {
        OutlineRule::Evidence => Some(
            outline
                .filter(|o| o.evidence.dim() == (oh, ow))
                .unwrap_or_else(|| OutlineEvidence::of_latent(latents[0], oh, ow)),
        ),
        OutlineRule::Tested => None,
    }
    .map(|o| (o.evidence, o.floor));
    // The minimum over scales, with regions as tested or cut at their evidence; and, where the
    // halo floor applies, the same cut at the fixed level only (gaps refill from it, see below).
    let mut min_map = Array2::<f32>::from_elem((oh, ow), f32::INFINITY);
    let mut best_scale = Array2::<u8>::zeros((oh, ow));
    let mut min_fixed = evidence
        .as_ref()
        .and_then(|(_, floor)| floor.as_ref())
        .map(|_| {
            (
                Array2::<f32>::from_elem((oh, ow), f32::INFINITY),
                Array2::<u8>::zeros((oh, ow)),
            )
        });
    for (s, r) in scales.iter().enumerate() {
        let sources = (r.log_pfa.dim() != (oh, ow)).then(|| median_sources(&r.log_pfa, oh, ow));
        let mut up = match opts.upsampling {
            Upsampling::Bilinear => resize_bilinear(&r.log_pfa, oh, ow),
            Upsampling::Median => picked(&r.log_pfa, sources.as_deref(), oh, ow),
        };
        if let Some((e, floor)) = &evidence {
            // A pixel leaves its region where the finest features fall short of its evidence.
            let level = picked(&r.level, sources.as_deref(), oh, ow);
            ndarray::Zip::from(&mut up)
                .and(&level)
                .and(e)
                .for_each(|u, &l, &e| {
                    if l > 0.0 && e < l.min(EVIDENCE_LEVEL) {
                        *u = 0.0;
                    }
                });
            if let (Some(floor), Some((fixed_map, fixed_scale))) = (floor, &mut min_fixed) {
                keep_min(fixed_map, fixed_scale, &up, s);
                ndarray::Zip::from(&mut up)
                    .and(&level)
                    .and(e)
                    .and(floor)
                    .for_each(|u, &l, &e, &f| {
                        if l > 0.0 && e < outline_level(l, f) {
                            *u = 0.0;
                        }
                    });
            }
        }
        keep_min(&mut min_map, &mut best_scale, &up, s);
    }
    if let Some((fixed_map, fixed_scale)) = &min_fixed {
        // Pieces of one defect that the halo floor cut apart join again (see [`REJOIN_REACH`]):
        // the closing, on the window of the pixels that could come back and what is within
        // twice its reach of them (all it depends on there).
        let (mut y0, mut x0, mut y1, mut x1) = (oh, ow, 0, 0);
        ndarray::Zip::indexed(&min_map)
            .and(fixed_map)
            .for_each(|(y, x), &m, &f| {
                if m >= 0.0 && f < 0.0 {
                    (y0, x0, y1, x1) = (y0.min(y), x0.min(x), y1.max(y + 1), x1.max(x + 1));
                }
            });
        if y0 < y1 {
            let r = REJOIN_REACH * oh / latents[0].dim().1.max(1);
            let (y0, x0) = (y0.saturating_sub(2 * r), x0.saturating_sub(2 * r));
            let (y1, x1) = ((y1 + 2 * r).min(oh), (x1 + 2 * r).min(ow));
            let window = ndarray::s![y0..y1, x0..x1];
            let between = close_mask(&min_map.slice(window).mapv(|v| v < 0.0), r);
            ndarray::Zip::from(min_map.slice_mut(window))
                .and(best_scale.slice_mut(window))
                .and(&between)
                .and(fixed_map.slice(window))
                .and(fixed_scale.slice(window))
                .for_each(|m, b, &between, &f, &fs| {
                    if between && *m >= 0.0 && f < 0.0 {
                        *m = f;
                        *b = fs;
                    }
                });
        }
    }
    let nt = log10_nt as f32;
    let log_nfa = min_map.mapv(|v| v + nt);
    Segmentation {
        scales,
        log10_nt,
        log_nfa,
        best_scale,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::acontrario::null::log10_pfa;
    use ndarray::Array3;

    #[test]
    fn number_of_tests_matches_the_thesis_values() {
        assert!((log10_number_of_tests(&[784, 196]) - 476.924).abs() < 1e-3);
        assert!((log10_number_of_tests(&[4096, 1024, 256]) - 2493.27).abs() < 1e-2);
    }

    #[test]
    fn chernoff_values_match_the_reference_table() {
        // Per-pixel log10 PFA for C = 816 (reference section 5).
        for (t, want) in [
            (0.85, -2.22),
            (1.2, -3.13),
            (1.5, -16.75),
            (2.0, -54.37),
            (3.0, -159.7),
        ] {
            let got = log10_pfa(1, 816.0, t, true);
            assert!(
                (got - want).abs() < 0.01 * want.abs().max(1.0),
                "t={t}: {got} vs {want}"
            );
        }
        assert_eq!(
            log10_pfa(10, 816.0, 0.85, false),
            0.0,
            "t < 1 is clamped to PFA = 1"
        );
    }

    #[test]
    fn block_size_halves_while_it_divides() {
        assert_eq!(block_size(64, 64, Some(32)), 2);
        assert_eq!(block_size(64, 64, None), 1);
        assert_eq!(block_size(32, 32, Some(32)), 1);
        assert_eq!(block_size(128, 96, Some(32)), 4);
        assert_eq!(block_size(6, 64, Some(32)), 2);
        assert_eq!(block_size(64, 3, Some(32)), 1);
    }

    #[test]
    fn a_pooled_block_is_tested_as_one_pixel_of_k2_c_channels() {
        // 3 channels on 8x8, tested on a 4x4 grid: one 2x2 block of z = 3 (lambda = 4 * 3 * 9),
        // zeros elsewhere. The block is the only region, with the bound of chi2 with 12 degrees
        // and, with the per-area count, the 16 places a one-cell shape can take on the grid.
        let mut z = ndarray::Array3::<f32>::zeros((3, 8, 8));
        z.slice_mut(ndarray::s![.., 2..4, 4..6]).fill(3.0);
        let pfa = log10_pfa(1, 12.0, 9.0, false);
        for (count, want) in [
            (TestCount::Thesis, pfa),
            (TestCount::PerArea, pfa + log10_polyominoes(16, 1)),
        ] {
            let opts = SegmentOptions {
                test_side: Some(4),
                ..SegmentOptions::with_count(count)
            };
            let r = segment_scale(z.view(), opts);
            assert_eq!((r.log_pfa.dim(), r.channels, r.regions), ((4, 4), 12, 1));
            for ((y, x), &v) in r.log_pfa.indexed_iter() {
                let expect = if (y, x) == (1, 2) { want as f32 } else { 0.0 };
                assert!(
                    (v - expect).abs() < 1e-4,
                    "{count:?}, block ({y}, {x}): {v} vs {expect}"
                );
            }
        }
    }

    #[test]
    fn the_per_area_count_spends_the_budget_on_each_area_once() {
        // N_s(a) = n alpha beta^a / a; the strata's shares 1 / (K N_s(a)) over every shape of
        // every area on every scale add up to 1 (the guarantee), computed in log space.
        let sizes = [1024usize, 1024, 256];
        let k = log10_common_tests(&sizes, TestCount::PerArea);
        assert!((k - 2304f64.log10()).abs() < 1e-12);
        let mut total = 0.0;
        for &n in &sizes {
            for a in 1..=n as u32 {
                // N_s(a) shapes of area a, each with a budget share 1 / (K N_s(a)).
                let shapes = log10_polyominoes(n, a);
                total += 10f64.powf(shapes - (k + shapes));
            }
        }
        assert!((total - 1.0).abs() < 1e-9, "{total}");
        // A 12-cell region on a 32 x 32 grid: 10^8.7 shapes (10^12.1 with the K strata) where
        // the thesis counts 10^623 for every region.
        let scratch = log10_polyominoes(1024, 12);
        assert!((scratch - 8.74).abs() < 0.01, "{scratch}");
        assert!((log10_common_tests(&[1024], TestCount::Thesis) - 623.0).abs() < 1.0);
        // The biggest shapes cost what the thesis' count charges them.
        let whole = log10_polyominoes(1024, 1024) + (1024f64).log10();
        assert!((whole - log10_number_of_tests(&[1024])).abs() < 4.0);
    }

    #[test]
    fn median_upsampling_thresholds_like_the_bilinear_detection_mask() {
        // For every level t: (median-resized map < t) == (bilinear-resized [map < t]) >= 1/2.
        let mut seed = 7u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as u32
        };
        for (h, w, oh, ow) in [
            (8, 8, 32, 32),
            (16, 8, 32, 32),
            (7, 9, 21, 27),
            (5, 5, 5, 5),
        ] {
            // Few distinct values, so ties occur.
            let src = Array2::from_shape_fn((h, w), |_| (next() % 6) as f32 * -10.0);
            let med = resize_median(&src, oh, ow);
            for t in [-55.0f32, -45.0, -25.0, -5.0, 1.0] {
                let ind = src.mapv(|v| if v < t { 1.0 } else { 0.0 });
                let bil = resize_bilinear(&ind, oh, ow);
                for (m, b) in med.iter().zip(bil.iter()) {
                    assert_eq!(*m < t, *b >= 0.5, "{h}x{w} -> {oh}x{ow} at {t}: {m} vs {b}");
                }
            }
        }
    }

    #[test]
    fn evidence_ignores_lone_latent_pixels_and_keeps_lines_two_wide() {
        // 2 channels on 12 x 12, all ones (t = 1), a lone pixel at t = 9, a line two pixels wide
        // at t = 4, and on a corner a lone pixel at t = 9 (only 4 neighbours there).
        let mut z = ndarray::Array3::<f32>::ones((2, 12, 12));
        z.slice_mut(ndarray::s![.., 2, 2]).fill(3.0);
        z.slice_mut(ndarray::s![.., 6..8, 1..11]).fill(2.0);
        z.slice_mut(ndarray::s![.., 11, 11]).fill(3.0);
        let e = evidence_map(z.view(), 12, 12);
        assert_eq!(e[(2, 2)], 1.0, "a lone pixel is its neighbours' median");
        assert_eq!(e[(11, 11)], 1.0, "also at a corner");
        for x in 2..10 {
            assert_eq!((e[(6, x)], e[(7, x)]), (4.0, 4.0), "line at {x}");
        }
        assert_eq!(e[(6, 1)], 1.0, "its ends lose a pixel (4 of 9 on the line)");
        assert_eq!(e[(5, 5)], 1.0, "beside the line: 3 of its 9 are on it");
        // At another size, bilinear between those.
        let up = evidence_map(z.view(), 48, 48);
        assert!(up[(27, 20)] > 3.9 && up[(10, 10)] == 1.0);
    }

    #[test]
    fn halo_floor_is_half_the_nearby_peak_in_log_and_weak_regions_keep_their_level() {
        let mut e = Array2::<f32>::ones((20, 20));
        e[(5, 5)] = 100.0;
        let f = halo_floor(&e);
        assert_eq!(f[(5, 5)], 10.0);
        let r = HALO_REACH;
        assert_eq!(
            (f[(5 + r, 5 + r)], f[(5, 5 + r)]),
            (10.0, 10.0),
            "within reach"
        );
        assert_eq!((f[(6 + r, 5)], f[(5, 6 + r)]), (1.0, 1.0), "beyond it");
        // Near a strong peak, the floor decides; near a weak one (floor 2 or below), the
        // region's own level or EVIDENCE_LEVEL, as before.
        assert_eq!(outline_level(50.0, 10.0), 10.0);
        assert_eq!(outline_level(1.3, 10.0), 10.0);
        assert_eq!(outline_level(1.3, 1.9), 1.3);
        assert_eq!(outline_level(50.0, 1.9), EVIDENCE_LEVEL);
    }

    #[test]
    fn a_distance_bump_is_outlined_at_half_its_height_inside_its_tested_region() {
        // Normal distances spread over [10, 20]; a defect's bump in distance peaks at 60 in the
        // middle of a 32 x 32 grid of cells (8 px each at 256 px).
        let normal: Vec<f64> = (0..2000)
            .map(|i| 10.0 + (i % 1000) as f64 / 100.0)
            .collect();
        let null = DistanceNull::fit(&normal).unwrap();
        let (size, cell) = (256usize, 8usize);
        let centre = 128.0f32;
        let bump = |y: usize, x: usize| {
            let r2 = (y as f32 + 0.5 - centre).powi(2) + (x as f32 + 0.5 - centre).powi(2);
            15.0 + 45.0 * (-r2 / (2.0 * 12.0f32.powi(2))).exp()
        };
        let map = Array2::from_shape_fn((size, size), |(y, x)| bump(y, x));
        let z = Array3::from_shape_fn((1, 32, 32), |(_, y, x)| {
            let d = bump(y * cell + cell / 2, x * cell + cell / 2);
            null.z(d as f64) as f32
        });
        let views = [z.view()];
        let out = Some((size, size));
        let tested = segment(
            &views,
            out,
            SegmentOptions {
                outline: OutlineRule::Tested,
                ..Default::default()
            },
        );
        let outline = OutlineEvidence::of_distances(&map, &null, cell);
        let seg = segment_outlined(&views, out, SegmentOptions::default(), &[], Some(outline));
        let inside = |s: &Segmentation| s.log_nfa.mapv(|v| v < 0.0);
        let (t, o) = (inside(&tested), inside(&seg));
        assert!(o[(128, 128)], "the peak is kept");
        assert!(
            o.iter().zip(&t).all(|(&o, &t)| !o || t),
            "only pixels of the tested region"
        );
        // Half-way from the tail's start to the peak, as the bump's own half height there.
        let half = null.tail_from as f32 + DISTANCE_HALF * (60.0 - null.tail_from as f32);
        let expected = map.iter().filter(|&&d| d >= half).count();
        let kept = o.iter().filter(|&&v| v).count();
        let (t_count, e) = (t.iter().filter(|&&v| v).count(), expected as f64);
        assert!(
            t_count as f64 > 1.25 * e,
            "the tested region is the wider bump: {t_count} against {expected}, kept {kept}"
        );
        assert!((kept as f64 - e).abs() < 0.15 * e, "{kept} of {expected}");
    }

    #[test]
    fn closing_joins_what_lies_between_and_grows_nothing_else() {
        let mut m = Array2::from_elem((12, 20), false);
        m.slice_mut(ndarray::s![4..7, 2..6]).fill(true);
        m.slice_mut(ndarray::s![4..7, 10..14]).fill(true);
        let c = close_mask(&m, 2);
        assert!(
            c.slice(ndarray::s![4..7, 2..14]).iter().all(|&v| v),
            "the gap of 4 filled"
        );
        assert_eq!(c.iter().filter(|&&v| v).count(), 3 * 12, "nothing around");
        let c = close_mask(&m, 1);
        assert_eq!(c, m, "a gap wider than 2r stays");
        // At an edge as anywhere: a closing never loses what the mask holds.
        let mut e = Array2::from_elem((6, 6), false);
        e.slice_mut(ndarray::s![0..2, 0..6]).fill(true);
        assert_eq!(close_mask(&e, 2), e);
    }

    #[test]
    fn resize_matches_align_corners_false() {
        let src = Array2::from_shape_vec((2, 2), vec![0.0f32, 1.0, 2.0, 3.0]).unwrap();
        let up = resize_bilinear(&src, 4, 4);
        // PyTorch: F.interpolate([[0,1],[2,3]], size=4, bilinear, align_corners=False)
        let want = [
            0.0, 0.25, 0.75, 1.0, 0.5, 0.75, 1.25, 1.5, 1.5, 1.75, 2.25, 2.5, 2.0, 2.25, 2.75, 3.0,
        ];
        for (a, b) in up.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{up:?}");
        }
    }
}
