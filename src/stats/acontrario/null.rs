//! The background model of a tested cell: how its statistic (the sum of squares of its k^2 C
//! latent values, t = that sum / k^2 C) is distributed on normal images.
//!
//! Ideal latents are i.i.d. N(0, 1): the statistic is chi2 with k^2 C degrees of freedom and
//! [`log10_pfa`]'s Chernoff bound applies. A real flow's latents on unseen normals
//! are not: its channels stay correlated and its tails heavy (on the demo's leather, a cell's
//! sum of squares spreads twice as wide as chi2; a few cells of a normal image reach t = 3 where
//! chi2 would stop at 1.5). With the per-area count of tests, where a region of a few cells is
//! tested against 10^7 shapes rather than 10^623, that shows as false alarms on normal images.
//! So a model measures, on its held-out normals, the cells' distribution ([`CellNull::fit`]):
//! - its spread, as a moment-matched chi-square (a mean M and variance V around it have
//!   2 M^2 / V degrees of freedom, M of them for independent latents): `dof_ratio`;
//! - its upper tail, from the median to the most extreme of the n cells seen (about a 1-in-n
//!   event).
//!
//! A cell at level t then has the larger (less significant) of the two probabilities: the
//! moment-matched bound, and the empirical tail (beyond the most extreme cell seen, 1/(n+1)
//! times the moment-matched bound's further decrease). Rare levels have to be rarer than
//! anything the normals showed to count, while a cell far beyond them still weighs a lot.

use serde::{Deserialize, Serialize};

/// log10 of the Chernoff bound of P(chi2_dof >= dof t)^area (for a cell whose statistic is a
/// scaled chi-square with `dof` degrees of freedom, t = statistic / its mean).
pub fn log10_pfa(area: u32, dof: f64, t: f64, parity: bool) -> f64 {
    if !parity && t <= 1.0 {
        return 0.0;
    }
    area as f64 * (dof / 2.0) * (1.0 + t.ln() - t) / std::f64::consts::LN_10
}

/// How the statistic of a scale's tested cells is distributed on normal images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellNull {
    /// Moment-matched degrees of freedom, as a fraction of the cell's channels (at most 1).
    pub dof_ratio: f64,
    /// The upper tail of the normal cells' t: (t, log10 P(T >= t)) by increasing t, from the
    /// median to the most extreme cell (log10 1/(n+1)). Empty: no empirical tail.
    pub tail: Vec<(f64, f64)>,
}

impl Default for CellNull {
    /// Independent N(0, 1) latents: chi-square cells.
    fn default() -> Self {
        Self {
            dof_ratio: 1.0,
            tail: Vec::new(),
        }
    }
}

/// Points kept of the empirical tail: enough to follow its shape, few enough for a model file.
const TAIL_POINTS: usize = 24;

impl CellNull {
    /// The distribution of `cells` (sums of squares of normal images' cells, `channels` each).
    pub fn fit(cells: &[f64], channels: usize) -> Self {
        if cells.len() < 2 || channels == 0 {
            return Self::default();
        }
        let m = channels as f64;
        // The spread around the nominal mean: a mean below it (latents narrower than N(0, 1))
        // must not pass for a small variance.
        let var = cells.iter().map(|v| (v - m).powi(2)).sum::<f64>() / cells.len() as f64;
        let dof_ratio = (2.0 * m / var.max(1e-12)).min(1.0);
        let mut t: Vec<f64> = cells.iter().map(|v| v / m).collect();
        t.sort_by(f64::total_cmp);
        let n = t.len();
        // Survival levels from 1/2 down to 1/(n+1), evenly spaced in log: the cell at rank k
        // from the top (k = 1 the most extreme) has P(T >= t) about k / (n + 1).
        let lo = ((n + 1) as f64).log10();
        let mut tail: Vec<(f64, f64)> = (0..TAIL_POINTS)
            .map(|i| {
                let f = i as f64 / (TAIL_POINTS - 1) as f64;
                let log_s = -lo * f - std::f64::consts::LOG10_2 * (1.0 - f);
                let k = ((n + 1) as f64 * 10f64.powf(log_s))
                    .round()
                    .clamp(1.0, n as f64) as usize;
                (t[n - k], (k as f64 / (n + 1) as f64).log10())
            })
            .collect();
        tail.dedup_by(|b, a| b.0 <= a.0);
        Self { dof_ratio, tail }
    }

    /// log10 of the probability that a cell of `channels` channels reaches t (statistic /
    /// channels) under this null: the larger of the moment-matched bound and the empirical
    /// tail; 0 at t <= 1. `parity`: the published bound, unclamped, ideal cells.
    pub fn log10_pfa_cell(&self, t: f64, channels: usize, parity: bool) -> f64 {
        let c = channels as f64;
        let moments = log10_pfa(1, c * self.dof_ratio, t, parity);
        if parity || t <= 1.0 || self.tail.is_empty() {
            return moments;
        }
        let (t_max, floor) = *self.tail.last().expect("not empty");
        let empirical = if t >= t_max {
            floor + (moments - log10_pfa(1, c * self.dof_ratio, t_max, false))
        } else {
            // Linear in t between the tail's points; above the median's level, 0 (1/2) below.
            let i = self.tail.partition_point(|p| p.0 <= t);
            if i == 0 {
                0.0
            } else {
                let (a, b) = (self.tail[i - 1], self.tail[i]);
                a.1 + (b.1 - a.1) * (t - a.0) / (b.0 - a.0).max(1e-12)
            }
        };
        moments.max(empirical)
    }
}

/// How a memory-bank detector's score (a patch's distance to its nearest normal patch) is
/// distributed on held-out normal patches, turned into the latent the a contrario test expects.
///
/// A flow's latents are N(0, 1) by training; a distance is not, and its law depends on the
/// backbone and the images. So the distances of held-out normals (never in the bank) define it:
/// a patch at distance d gets the score z >= 0 with P(|N(0, 1)| >= z) = P(D >= d), the probability
/// integral transform onto a half-normal, so that z^2 is chi-square with one degree of freedom
/// under normality and grows with d only (a close patch is never evidence). Below the 90th
/// percentile P(D >= d) is the held-out patches' empirical survival; above it an exponential tail
/// fitted to them (its scale the mean excess, the maximum-likelihood fit) carries it beyond the
/// largest distance seen, so that a patch far from every normal keeps gaining evidence. The
/// patches' spatial correlation (neighbouring patches share pixels) is the cell null's business
/// ([`CellNull::fit`] on the held-out images' scores), as for a flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistanceNull {
    /// (d, P(D >= d)) by increasing d, from the smallest distance to `tail_from`.
    pub body: Vec<(f64, f64)>,
    /// Where the exponential tail starts (the 90th percentile) and its mean excess.
    pub tail_from: f64,
    pub tail_scale: f64,
}

/// The share of held-out patches beyond `tail_from`.
const TAIL_MASS: f64 = 0.1;
const BODY_POINTS: usize = 64;

impl DistanceNull {
    /// The null of held-out normal patches' distances; None with too few to say anything.
    pub fn fit(distances: &[f64]) -> Option<Self> {
        let mut d: Vec<f64> = distances
            .iter()
            .copied()
            .filter(|v| v.is_finite())
            .collect();
        if d.len() < 20 {
            return None;
        }
        d.sort_by(f64::total_cmp);
        let n = d.len();
        let at = |q: f64| d[((q * (n - 1) as f64).round() as usize).min(n - 1)];
        let body: Vec<(f64, f64)> = (0..BODY_POINTS)
            .map(|i| {
                let q = (1.0 - TAIL_MASS) * i as f64 / (BODY_POINTS - 1) as f64;
                (at(q), 1.0 - q)
            })
            .collect();
        let tail_from = at(1.0 - TAIL_MASS);
        let excess: Vec<f64> = d
            .iter()
            .filter(|&&v| v > tail_from)
            .map(|v| v - tail_from)
            .collect();
        let tail_scale = (excess.iter().sum::<f64>() / excess.len().max(1) as f64).max(1e-9);
        Some(Self {
            body,
            tail_from,
            tail_scale,
        })
    }

    /// ln P(D >= d) under the null.
    pub fn ln_survival(&self, d: f64) -> f64 {
        if d >= self.tail_from {
            return TAIL_MASS.ln() - (d - self.tail_from) / self.tail_scale;
        }
        let i = self.body.partition_point(|p| p.0 <= d);
        if i == 0 {
            return 0.0;
        }
        let (a, b) = (self.body[i - 1], self.body[i.min(self.body.len() - 1)]);
        let s = if b.0 > a.0 {
            a.1 + (b.1 - a.1) * (d - a.0) / (b.0 - a.0)
        } else {
            a.1
        };
        s.clamp(TAIL_MASS, 1.0).ln()
    }

    /// The half-normal score of distance d: P(|N(0, 1)| >= z) = P(D >= d).
    pub fn z(&self, d: f64) -> f64 {
        half_normal_quantile(self.ln_survival(d))
    }
}

/// z >= 0 with P(|N(0, 1)| >= z) = exp(ln_s), accurate far into the tail (where 1 - s/2 is 1
/// in floating point): statrs' inverse above 1e-12, Abramowitz and Stegun 26.2.23 (error below
/// 5e-4) from the logarithm below.
fn half_normal_quantile(ln_s: f64) -> f64 {
    use statrs::distribution::{ContinuousCDF, Normal};
    if ln_s >= 0.0 {
        return 0.0;
    }
    let ln_p = ln_s - std::f64::consts::LN_2; // one tail
    if ln_p > (1e-12f64).ln() {
        return Normal::standard().inverse_cdf(1.0 - ln_p.exp()).max(0.0);
    }
    let t = (-2.0 * ln_p).sqrt();
    t - (2.515517 + 0.802853 * t + 0.010328 * t * t)
        / (1.0 + 1.432788 * t + 0.189269 * t * t + 0.001308 * t * t * t)
}

/// The confidence with which held-out normals must keep the promise of at most one false alarm
/// per image at level 0 ([`level_offset`]).
pub const PROMISE_CONFIDENCE: f64 = 0.95;

/// The offsets tried by [`level_offset`] are multiples of this (log10).
const OFFSET_STEP: f64 = 0.25;

/// The most false alarms that `images` normal images may show for the promise (at most one per
/// image) to hold with `confidence`: the largest count whose exact Poisson upper bound is at
/// most `images` (0 where even none would not prove it, with one or two images).
pub fn promise_budget(images: usize, confidence: f64) -> usize {
    (1..=images)
        .take_while(|&c| super::tails::poisson_upper(c as u64, confidence) <= images as f64)
        .last()
        .unwrap_or(0)
}

/// The least offset (log10 of a factor on the number of tests, a multiple of [`OFFSET_STEP`])
/// for which the held-out normals' log10 NFA maps, shifted by it, show at most
/// [`promise_budget`] regions at level 0, at that and every larger offset.
///
/// Why: a null fitted on a few normal images is judged by the same images too kindly. Its tail
/// ends at their most extreme cell, and a new normal image goes beyond that about once in n + 1
/// images, where the fitted tail gives it every decade the moment bound still falls. Scored
/// against a null fitted without them (`maps`), the held-out images show what unseen normals
/// will; the offset is what the number of tests must grow by for the promise to hold on them
/// with [`PROMISE_CONFIDENCE`]. An offset only removes regions (a larger NFA everywhere), so
/// every other guarantee stays as it was.
pub fn level_offset(maps: &[ndarray::Array2<f32>], confidence: f64) -> f64 {
    let budget = promise_budget(maps.len(), confidence);
    let deepest = maps
        .iter()
        .flat_map(|m| m.iter())
        .fold(0f32, |a, &v| a.min(v));
    let count = |k: usize| -> usize {
        let threshold = -(k as f64 * OFFSET_STEP) as f32;
        maps.iter()
            .map(|m| super::regions::count_at(m, threshold))
            .sum()
    };
    // From an offset past every region downwards while the budget holds.
    let mut k = (f64::from(-deepest) / OFFSET_STEP).ceil() as usize;
    while k > 0 && count(k - 1) <= budget {
        k -= 1;
    }
    k as f64 * OFFSET_STEP
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_distr::{ChiSquared, Distribution};

    #[test]
    fn the_promise_budget_is_the_count_whose_poisson_bound_fits() {
        // Garwood's 95 % bounds: 3 events -> 7.75, 4 -> 9.15; 6 -> 11.84, 7 -> 13.15.
        assert_eq!(promise_budget(8, 0.95), 3);
        assert_eq!(promise_budget(12, 0.95), 6);
        // One or two images cannot prove a mean of one: none of them may alarm.
        assert_eq!(promise_budget(1, 0.95), 0);
        assert_eq!(promise_budget(2, 0.95), 0);
        assert_eq!(promise_budget(0, 0.95), 0);
    }

    #[test]
    fn the_offset_removes_the_weakest_regions_until_the_budget_holds() {
        // Eight held-out maps, one region each at log10 NFA -0.1, -0.6, ..., -3.6 (background
        // +5): the budget of 3 keeps the three strongest, so the offset passes the fifth (-2.1).
        let maps: Vec<ndarray::Array2<f32>> = (0..8)
            .map(|i| {
                let mut m = ndarray::Array2::from_elem((8, 8), 5.0f32);
                m[(2, 3)] = -0.1 - 0.5 * i as f32;
                m
            })
            .collect();
        let d = level_offset(&maps, 0.95);
        assert_eq!(d, 2.25);
        let left: usize = maps
            .iter()
            .map(|m| crate::stats::acontrario::regions::count_at(m, -d as f32))
            .sum();
        assert_eq!(left, 3);
        // Maps with no region need no offset.
        let clean = vec![ndarray::Array2::from_elem((8, 8), 5.0f32); 4];
        assert_eq!(level_offset(&clean, 0.95), 0.0);
    }

    #[test]
    fn chi_square_cells_keep_their_degrees_of_freedom_and_a_matching_tail() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let chi = ChiSquared::new(120.0).unwrap();
        let cells: Vec<f64> = (0..4000).map(|_| chi.sample(&mut rng)).collect();
        let null = CellNull::fit(&cells, 120);
        assert!(null.dof_ratio > 0.9, "{null:?}");
        let (t_max, floor) = *null.tail.last().unwrap();
        assert!((floor - (-(4001f64).log10())).abs() < 1e-9);
        // Up to the most extreme cell seen, the empirical tail is no more significant than the
        // chi-square bound (which is an upper bound of the true tail): their max is the bound's
        // or close to it.
        for t in [1.2, 1.4, t_max] {
            let v = null.log10_pfa_cell(t, 120, false);
            let bound = log10_pfa(1, 120.0 * null.dof_ratio, t, false);
            assert!(
                v >= bound - 1e-9 && v - bound < 1.0,
                "t={t}: {v} vs {bound}"
            );
        }
        assert_eq!(null.log10_pfa_cell(0.9, 120, false), 0.0);
    }

    #[test]
    fn distances_become_half_normal_scores_that_keep_growing_beyond_the_normals() {
        use rand_distr::Gamma;
        // Distances of some skewed law: their scores are half-normal, z^2 chi-square(1).
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let g = Gamma::new(3.0, 0.5).unwrap();
        let held_out: Vec<f64> = (0..20_000).map(|_| g.sample(&mut rng)).collect();
        let null = DistanceNull::fit(&held_out).unwrap();
        let fresh: Vec<f64> = (0..20_000).map(|_| null.z(g.sample(&mut rng))).collect();
        let mean_z2 = fresh.iter().map(|z| z * z).sum::<f64>() / fresh.len() as f64;
        assert!((mean_z2 - 1.0).abs() < 0.05, "{mean_z2}");
        // P(|N| >= 1.96) = 5 %.
        let beyond = fresh.iter().filter(|&&z| z >= 1.96).count() as f64 / fresh.len() as f64;
        assert!((beyond - 0.05).abs() < 0.006, "{beyond}");
        // Close patches are never evidence; far ones ever more.
        assert_eq!(null.z(0.0), 0.0);
        let max = held_out.iter().copied().fold(0.0, f64::max);
        assert!(null.z(2.0 * max) > null.z(max) + 1.0 && null.z(10.0 * max).is_finite());
        // The two branches of the quantile meet.
        let edge = (1e-12f64).ln() + std::f64::consts::LN_2;
        let (a, b) = (
            half_normal_quantile(edge + 1e-9),
            half_normal_quantile(edge - 1e-9),
        );
        assert!((b - a).abs() < 1e-3, "{a} {b}");
    }

    #[test]
    fn heavy_tailed_cells_need_levels_beyond_what_normals_showed() {
        // Cells whose statistic is chi-square most of the time and three times as large once in
        // a hundred: the bulk looks like chi-square, the tail does not.
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let chi = ChiSquared::new(60.0).unwrap();
        let cells: Vec<f64> = (0..5000)
            .map(|i| chi.sample(&mut rng) * if i % 100 == 0 { 3.0 } else { 1.0 })
            .collect();
        let null = CellNull::fit(&cells, 60);
        let ideal = CellNull::default();
        // At t = 2.7, about 1 in 150 here, the ideal null calls it a 1e-9 event.
        let t = 2.7;
        assert!(ideal.log10_pfa_cell(t, 60, false) < -8.0);
        let v = null.log10_pfa_cell(t, 60, false);
        assert!(v > -2.5, "{v}");
        // Beyond the most extreme cell seen, evidence keeps growing.
        let (t_max, floor) = *null.tail.last().unwrap();
        assert!(null.log10_pfa_cell(t_max * 2.0, 60, false) < floor - 5.0);
    }
}
