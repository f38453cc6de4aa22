//! PatchCore (Roth et al., CVPR 2022), the memory-bank family: the backbone's stride-8 and
//! stride-16 features, each averaged over its 3 x 3 neighbourhood, the coarser upsampled and
//! concatenated, are patch descriptors; a greedy coreset of the training images' patches is the
//! memory bank; a patch's evidence is its distance to the nearest patch of the bank. The map
//! shown is that distance upsampled to the input and blurred (Gaussian, sigma 4), the image score
//! its maximum, as published; the a contrario regions are tested on the distances turned into
//! half-normal scores by the held-out normals' law (`stats::acontrario::null::DistanceNull`).
//! Everything runs in libtorch on the model's device: batched distances by one matrix product.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicBool, Ordering};
use tch::{Kind, Tensor};

/// Descriptors projected to this many dimensions for the coreset's distances (a
/// Johnson-Lindenstrauss projection, as published: the selection barely changes, and it costs a
/// fraction).
const PROJECTION_DIM: i64 = 128;

/// Patch descriptors of a batch of backbone features (finest first, the finest at
/// `first_stride`): N x D x h x w at stride 8.
pub fn patch_features(feats: &[Tensor], first_stride: i64) -> Tensor {
    let (a, b) = if first_stride <= 4 { (1, 2) } else { (0, 1) };
    let local = |t: &Tensor| t.avg_pool2d([3, 3], [1, 1], [1, 1], false, false, None::<i64>);
    let fine = local(&feats[a]);
    let size = fine.size();
    let coarse = local(&feats[b]).upsample_bilinear2d([size[2], size[3]], false, None, None);
    Tensor::cat(&[fine, coarse], 1)
}

/// One image's descriptors (D x h x w) as rows (h w x D).
pub fn rows(patches: &Tensor) -> Tensor {
    let d = patches.size()[0];
    patches.view([d, -1]).transpose(0, 1).contiguous()
}

/// Each image's patch descriptors as rows (h w x D), from its backbone features (finest first),
/// and the side (h, w) of its map.
pub fn patch_rows(feats: &[Vec<Tensor>], first_stride: i64) -> (Vec<Tensor>, (i64, i64)) {
    let _g = tch::no_grad_guard();
    let mut side = (0, 0);
    let rows = feats
        .iter()
        .map(|f| {
            let f: Vec<Tensor> = f.iter().map(|t| t.unsqueeze(0)).collect();
            let p = patch_features(&f, first_stride).squeeze_dim(0);
            side = (p.size()[1], p.size()[2]);
            self::rows(&p)
        })
        .collect();
    (rows, side)
}

/// Indices of a greedy k-center coreset of `x` (N x D): each next row the one farthest from
/// those chosen, from a seeded first row; distances on a seeded random projection. The
/// published selection (the same rows; picks tied to rounding may come in another order), found
/// by [`farthest_first`] without measuring every row at every pick. Checks `cancel` and tells
/// `picked` how many it has every 256 picks and at the end (None: cancelled).
pub fn greedy_coreset(
    x: &Tensor,
    k: usize,
    seed: u64,
    cancel: &AtomicBool,
    picked: &mut dyn FnMut(usize),
) -> Option<Vec<i64>> {
    let (xp, first) = projected(x, seed);
    let dim = xp.size()[1].max(1) as usize;
    let flat = Vec::<f32>::try_from(&xp.to_device(tch::Device::Cpu).contiguous().view([-1]))
        .unwrap_or_default();
    let Some(first) = first else {
        return Some(Vec::new());
    };
    let picks = farthest_first(flat, dim, k, first, cancel, picked)?;
    Some(picks.into_iter().map(|i| i as i64).collect())
}

/// The same selection as the published code finds it, every row's distance to each new pick in
/// libtorch (one matrix-vector product a pick): `contrario bench coreset`'s side-by-side figure.
pub fn greedy_coreset_scan(
    x: &Tensor,
    k: usize,
    seed: u64,
    cancel: &AtomicBool,
) -> Option<Vec<i64>> {
    let _g = tch::no_grad_guard();
    let (xp, first) = projected(x, seed);
    let n = xp.size()[0];
    let k = (k as i64).clamp(1, n.max(1));
    let norms = xp
        .pow_tensor_scalar(2)
        .sum_dim_intlist([1i64].as_slice(), false, Kind::Float);
    let mut chosen = Vec::with_capacity(k as usize);
    let Some(first) = first else {
        return Some(Vec::new());
    };
    let mut next = first as i64;
    let mut nearest = Tensor::full([n], f64::INFINITY, (Kind::Float, x.device()));
    for i in 0..k {
        if i % 256 == 0 && cancel.load(Ordering::Relaxed) {
            return None;
        }
        chosen.push(next);
        let c = xp.get(next);
        // |x - c|^2 = |x|^2 - 2 x.c + |c|^2, one matrix-vector product.
        let dist = &norms - xp.mv(&c) * 2.0 + c.pow_tensor_scalar(2).sum(Kind::Float);
        nearest = nearest.minimum(&dist);
        next = nearest.argmax(None, false).int64_value(&[]);
    }
    Some(chosen)
}

/// `x` (N x D) on a seeded Gaussian projection to [`PROJECTION_DIM`] dimensions (as it is when
/// D is no more), and the seeded first pick (None when `x` has no rows).
fn projected(x: &Tensor, seed: u64) -> (Tensor, Option<usize>) {
    let _g = tch::no_grad_guard();
    let n = x.size()[0];
    let d = x.size()[1];
    let mut rng = StdRng::seed_from_u64(seed);
    let xp = if d > PROJECTION_DIM {
        let p: Vec<f32> = (0..d * PROJECTION_DIM)
            .map(|_| {
                // Box-Muller: a Gaussian matrix from the seeded generator.
                let (u, v): (f64, f64) = (rng.random::<f64>().max(1e-12), rng.random());
                ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
            })
            .collect();
        let p = Tensor::from_slice(&p)
            .view([d, PROJECTION_DIM])
            .to_device(x.device());
        x.mm(&p)
    } else {
        x.shallow_clone()
    };
    let first = (n > 0).then(|| rng.random_range(0..n) as usize);
    (xp, first)
}

/// Squared Euclidean distance of two rows, summed in eight lanes so that it vectorises.
fn dist2(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| (x - y) * (x - y))
        .sum();
    for (u, v) in ca.zip(cb) {
        for l in 0..8 {
            let d = u[l] - v[l];
            acc[l] += d * d;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// The rows nearest one pick, their coordinates side by side (a cell is scanned as one stream),
/// each row's index and squared distance to the pick, and the farthest of them.
struct Cell {
    centre: Vec<f32>,
    ids: Vec<u32>,
    near: Vec<f32>,
    rows: Vec<f32>,
    far: f32,
    far_at: u32,
    far_pos: usize,
}

impl Cell {
    fn new(centre: Vec<f32>, ids: Vec<u32>, near: Vec<f32>, rows: Vec<f32>) -> Self {
        let mut cell = Self {
            centre,
            ids,
            near,
            rows,
            far: 0.0,
            far_at: u32::MAX,
            far_pos: 0,
        };
        cell.refresh();
        cell
    }

    /// The farthest member, the lowest index among equals (as an argmax over all rows).
    fn refresh(&mut self) {
        (self.far, self.far_at, self.far_pos) = (0.0, u32::MAX, 0);
        for (i, (&m, &d)) in self.ids.iter().zip(&self.near).enumerate() {
            if d > self.far || (d == self.far && m < self.far_at) {
                (self.far, self.far_at, self.far_pos) = (d, m, i);
            }
        }
    }

    /// Gives the new pick `at` the members nearer to it than to this cell's pick: (their
    /// indices, squared distances to `at`, coordinates). By the triangle inequality a member x
    /// can be nearer only if |at - p| < 2 |x - p| (p this cell's pick), so the cell is passed
    /// over whole when |at - p| >= 2 r, and a member when |at - p| >= 2 |x - p|, each with a
    /// margin for the rounding of both sides.
    fn give(&mut self, at: &[f32]) -> (Vec<u32>, Vec<f32>, Vec<f32>) {
        let dim = at.len();
        let mut taken = (Vec::new(), Vec::new(), Vec::new());
        let reach = dist2(&self.centre, at) / (4.0 * (1.0 + 1e-3));
        if reach > self.far {
            return taken;
        }
        let mut kept = 0;
        for i in 0..self.ids.len() {
            let (m, d) = (self.ids[i], self.near[i]);
            let row = &self.rows[i * dim..(i + 1) * dim];
            let dc = if reach > d { d } else { dist2(row, at) };
            if dc < d {
                taken.0.push(m);
                taken.1.push(dc);
                taken.2.extend_from_slice(row);
            } else {
                if kept != i {
                    self.ids[kept] = m;
                    self.near[kept] = d;
                    self.rows.copy_within(i * dim..(i + 1) * dim, kept * dim);
                }
                kept += 1;
            }
        }
        if kept < self.ids.len() {
            self.ids.truncate(kept);
            self.near.truncate(kept);
            self.rows.truncate(kept * dim);
            self.refresh();
        }
        taken
    }
}

/// A greedy k-center traversal (Gonzalez 1985) of the `x.len() / dim` rows of `x`, from row
/// `first`: each next pick is the row farthest from all picks so far (the lowest index among
/// equals), until `k` picks or every row is a pick's duplicate. Returns the picks in order.
///
/// Exact, and faster than the plain traversal, which measures every row at every pick: each
/// pick keeps its cell (the rows it is nearest) and a new pick measures only the rows the
/// triangle inequality leaves it a chance to take ([`Cell::give`]). On patch descriptors that is
/// about a third of them (`contrario bench coreset`). Cells are scanned in parallel, each as one
/// stream. Checks `cancel` and tells `picked` how many it has every 256 picks and at the end
/// (None: cancelled).
pub fn farthest_first(
    mut x: Vec<f32>,
    dim: usize,
    k: usize,
    first: usize,
    cancel: &AtomicBool,
    picked: &mut dyn FnMut(usize),
) -> Option<Vec<usize>> {
    use rayon::prelude::*;
    let n = x.len().checked_div(dim).unwrap_or(0);
    if n == 0 || k == 0 {
        return Some(Vec::new());
    }
    let first = first.min(n - 1);
    let start = x[first * dim..(first + 1) * dim].to_vec();
    let near = x.par_chunks_exact(dim).map(|r| dist2(r, &start)).collect();
    let ids = (0..n as u32).collect();
    // The rows move into the first cell (no second copy of them).
    x.truncate(n * dim);
    let mut cells = vec![Cell::new(start, ids, near, x)];
    let mut picks = vec![first];
    while picks.len() < k.min(n) {
        if picks.len() % 256 == 0 {
            if cancel.load(Ordering::Relaxed) {
                return None;
            }
            picked(picks.len());
        }
        let best = cells
            .iter()
            .max_by(|a, b| a.far.total_cmp(&b.far).then(b.far_at.cmp(&a.far_at)))?;
        if best.far <= 0.0 {
            break;
        }
        let c = best.far_at as usize;
        let at = best.rows[best.far_pos * dim..(best.far_pos + 1) * dim].to_vec();
        let given: Vec<_> = cells
            .par_iter_mut()
            .map(|cell| cell.give(&at))
            .filter(|t| !t.0.is_empty())
            .collect();
        let mut taken = (Vec::new(), Vec::new(), Vec::new());
        for (ids, near, rows) in given {
            taken.0.extend(ids);
            taken.1.extend(near);
            taken.2.extend(rows);
        }
        cells.push(Cell::new(at, taken.0, taken.1, taken.2));
        picks.push(c);
    }
    picked(picks.len());
    Some(picks)
}

/// The memory bank: normal patch descriptors (M x D) and their squared norms.
pub struct Bank {
    pub patches: Tensor,
    norms: Tensor,
}

/// Bank rows per distance block: the P x 512 block of one product (2 MB for 1024 patches)
/// stays in the cache while its minimum is taken. Tried on 2 cores, 1024 patches against 6,144
/// rows (`contrario bench patchcore`): blocks of 256 to 1024 rows took 20-23 ms; one block of
/// all the rows, before the minimum took values only, 36 ms.
const BLOCK: i64 = 512;

impl Bank {
    pub fn new(patches: Tensor) -> Self {
        let norms =
            patches
                .pow_tensor_scalar(2)
                .sum_dim_intlist([1i64].as_slice(), false, Kind::Float);
        Self { patches, norms }
    }

    pub fn len(&self) -> i64 {
        self.patches.size()[0]
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Each query row's (P x D) Euclidean distance to its nearest bank row: P. Exact. The
    /// product is the whole cost, so each block is one fused `|b|^2 - 2 q.b` (the bank's norms
    /// as the addend of the product) whose minimum (values only) is taken before the query's
    /// own `|q|^2`, constant along the row, is added: one pass over the P x M matrix instead of
    /// three (`contrario bench patchcore` times both).
    pub fn nearest(&self, q: &Tensor) -> Tensor {
        let _g = tch::no_grad_guard();
        let q = q.to_device(self.patches.device());
        let qn = q
            .pow_tensor_scalar(2)
            .sum_dim_intlist([1i64].as_slice(), false, Kind::Float);
        let q2 = &q * -2.0;
        let m = self.len();
        let mut best: Option<Tensor> = None;
        let mut start = 0;
        while start < m {
            let len = BLOCK.min(m - start);
            let b = self.patches.narrow(0, start, len);
            let d2 = self
                .norms
                .narrow(0, start, len)
                .unsqueeze(0)
                .addmm(&q2, &b.tr());
            let low = d2.amin([1i64].as_slice(), false);
            best = Some(match best {
                Some(t) => t.minimum(&low),
                None => low,
            });
            start += len;
        }
        match best {
            Some(low) => (low + qn).clamp_min(0.0).sqrt(),
            None => Tensor::zeros([q.size()[0]], (Kind::Float, q.device())),
        }
    }

    /// The same distances by the plain formula (three P x M passes), for the benchmark's
    /// side-by-side figure.
    pub fn nearest_plain(&self, q: &Tensor) -> Tensor {
        let _g = tch::no_grad_guard();
        let qn = q
            .pow_tensor_scalar(2)
            .sum_dim_intlist([1i64].as_slice(), true, Kind::Float);
        let d2 = &qn + self.norms.unsqueeze(0) - q.mm(&self.patches.tr()) * 2.0;
        d2.min_dim(1, false).0.clamp_min(0.0).sqrt()
    }
}

/// The shown map of either family: an h x w map (PatchCore's distances, U-Flow's anomaly score)
/// upsampled bilinearly to `size` x `size` and blurred by
/// a Gaussian of sigma 4 pixels (reflected at the borders, radius 4 sigma, as scipy's
/// `gaussian_filter` the published code uses).
pub fn smooth_map(dist: &Tensor, size: i64) -> Tensor {
    let _g = tch::no_grad_guard();
    const SIGMA: f64 = 4.0;
    let r = (4.0 * SIGMA).round() as i64;
    let k: Vec<f32> = (-r..=r)
        .map(|i| (-(i * i) as f64 / (2.0 * SIGMA * SIGMA)).exp() as f32)
        .collect();
    let sum: f32 = k.iter().sum();
    let k =
        Tensor::from_slice(&k.iter().map(|v| v / sum).collect::<Vec<_>>()).to_device(dist.device());
    let up = upsampled(dist, size).view([1, 1, size, size]);
    let pad = r.min(size - 1);
    let x = up.reflection_pad2d([pad, pad, 0, 0]);
    let x = x.conv2d(
        &k.view([1, 1, 1, -1]),
        None::<Tensor>,
        [1, 1],
        [0, 0],
        [1, 1],
        1,
    );
    let x = x.reflection_pad2d([0, 0, pad, pad]);
    let x = x.conv2d(
        &k.view([1, 1, -1, 1]),
        None::<Tensor>,
        [1, 1],
        [0, 0],
        [1, 1],
        1,
    );
    x.view([size, size])
}

/// A distance map (h x w) upsampled bilinearly to `size` x `size`.
pub fn upsampled(dist: &Tensor, size: i64) -> Tensor {
    let _g = tch::no_grad_guard();
    dist.view([1, 1, dist.size()[0], dist.size()[1]])
        .upsample_bilinear2d([size, size], false, None, None)
        .view([size, size])
}

/// The most rows a memory bank keeps: a 10 % coreset of 160 images' patches at 256 px.
///
/// Why: the search of every scored image grows with the bank, and so does the coreset's
/// traversal, one pick per bank row; capped, inference stops growing past 160 images and the
/// training grows linearly with the images (README "Which detector").
pub const MAX_BANK: usize = 16_384;

/// A share of `n` rows, at least one and at most [`MAX_BANK`].
pub fn coreset_size(n: i64, fraction: f64) -> usize {
    ((n as f64 * fraction).ceil() as i64)
        .clamp(1, n.max(1))
        .min(MAX_BANK as i64) as usize
}

/// The rows of `x` at `idx`.
pub fn take(x: &Tensor, idx: &[i64]) -> Tensor {
    x.index_select(0, &Tensor::from_slice(idx).to_device(x.device()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn the_bank_is_a_share_of_the_patches_up_to_its_cap() {
        assert_eq!(coreset_size(1024 * 60, 0.1), 6144);
        assert_eq!(coreset_size(5, 0.1), 1);
        assert_eq!(coreset_size(0, 0.1), 1);
        assert_eq!(coreset_size(1024 * 160, 0.1), MAX_BANK);
        assert_eq!(coreset_size(1024 * 1000, 0.1), MAX_BANK);
        assert_eq!(coreset_size(1000, 1.0), 1000);
    }

    #[test]
    fn coreset_covers_every_cluster_and_distances_are_exact() {
        // Four tight clusters of 100 points in 200 dimensions: a coreset of 4 takes one of each.
        let mut rng = StdRng::seed_from_u64(0);
        let mut data = Vec::new();
        for c in 0..4 {
            for _ in 0..100 {
                for j in 0..200 {
                    let centre = if j == c { 10.0 } else { 0.0 };
                    data.push(centre + 0.01 * rng.random::<f32>());
                }
            }
        }
        let x = Tensor::from_slice(&data).view([400, 200]);
        let picks = greedy_coreset(&x, 4, 1, &AtomicBool::new(false), &mut |_| {}).unwrap();
        let mut clusters: Vec<i64> = picks.iter().map(|i| i / 100).collect();
        clusters.sort();
        assert_eq!(clusters, vec![0, 1, 2, 3]);
        // Nearest distances by the product form equal the direct ones.
        let bank = Bank::new(take(&x, &picks));
        let q = x.narrow(0, 0, 10) + 1.0;
        let fast = bank.nearest(&q);
        let direct = (q.unsqueeze(1) - bank.patches.unsqueeze(0))
            .pow_tensor_scalar(2)
            .sum_dim_intlist([2i64].as_slice(), false, Kind::Float)
            .min_dim(1, false)
            .0
            .sqrt();
        let diff = (fast - direct).abs().max().double_value(&[]);
        assert!(diff < 1e-3, "{diff}");
    }

    /// The plain traversal: every row's distance to each new pick, the farthest next.
    fn farthest_first_plain(x: &[f32], dim: usize, k: usize, first: usize) -> Vec<usize> {
        let n = x.len() / dim;
        let row = |i: usize| &x[i * dim..(i + 1) * dim];
        let mut near: Vec<f32> = (0..n).map(|m| dist2(row(m), row(first))).collect();
        let mut picks = vec![first];
        while picks.len() < k.min(n) {
            let mut next = 0;
            for m in 0..n {
                if near[m] > near[next] {
                    next = m;
                }
            }
            if near[next] <= 0.0 {
                break;
            }
            picks.push(next);
            for (m, d) in near.iter_mut().enumerate() {
                *d = d.min(dist2(row(m), row(next)));
            }
        }
        picks
    }

    #[test]
    fn the_pruned_traversal_picks_exactly_as_the_plain_one() {
        // Clusters of several sizes and spreads in 19 dimensions (not a multiple of the lanes),
        // as patch descriptors are: most cells are passed over late in the traversal.
        let mut rng = StdRng::seed_from_u64(7);
        let dim = 19;
        let mut x = Vec::new();
        for c in 0..40 {
            let centre: Vec<f32> = (0..dim).map(|_| 5.0 * rng.random::<f32>()).collect();
            let spread = 0.05 + 0.5 * (c % 5) as f32;
            for _ in 0..(20 + 7 * (c % 9)) {
                x.extend(
                    centre
                        .iter()
                        .map(|v| v + spread * (rng.random::<f32>() - 0.5)),
                );
            }
        }
        let n = x.len() / dim;
        let mut told = Vec::new();
        let all = farthest_first(x.clone(), dim, n, 11, &AtomicBool::new(false), &mut |p| {
            told.push(p)
        });
        let expected: Vec<usize> = (1..=(n - 1) / 256).map(|i| i * 256).chain([n]).collect();
        assert_eq!((all.map(|p| p.len()), told), (Some(n), expected));
        for (k, first) in [(1, 0), (40, 3), (n / 10, n / 2), (n, 11)] {
            let fast = farthest_first(
                x.clone(),
                dim,
                k,
                first,
                &AtomicBool::new(false),
                &mut |_| {},
            )
            .unwrap();
            assert_eq!(fast, farthest_first_plain(&x, dim, k, first), "k {k}");
        }
        // Cancelled, it says so.
        assert!(
            farthest_first(x.clone(), dim, n, 0, &AtomicBool::new(true), &mut |_| {}).is_none()
        );
    }

    #[test]
    fn the_traversal_stops_when_every_row_is_a_pick() {
        // Three distinct rows, each four times: asked for ten, it picks the three.
        let rows = [[0.0f32, 1.0], [3.0, 0.0], [1.0, 5.0]];
        let x: Vec<f32> = (0..12).flat_map(|i| rows[i % 3]).collect();
        let mut told = Vec::new();
        let picks = farthest_first(x, 2, 10, 4, &AtomicBool::new(false), &mut |n| told.push(n));
        let picks = picks.unwrap();
        assert_eq!(told, vec![3], "the end is told even short of 256 picks");
        assert_eq!(picks.len(), 3);
        let mut kinds: Vec<usize> = picks.iter().map(|i| i % 3).collect();
        kinds.sort();
        assert_eq!(kinds, vec![0, 1, 2]);
        assert_eq!(
            farthest_first(Vec::new(), 2, 10, 0, &AtomicBool::new(false), &mut |_| {}),
            Some(vec![])
        );
    }

    #[test]
    fn blocked_distances_equal_the_plain_formula_across_blocks() {
        // More rows than one block, the nearest row of some queries in the second block.
        tch::manual_seed(3);
        let bank = Bank::new(Tensor::randn([BLOCK + 500, 8], (Kind::Float, Device::Cpu)));
        let q = Tensor::cat(
            &[
                bank.patches.narrow(0, BLOCK + 10, 20) + 0.01,
                Tensor::randn([30, 8], (Kind::Float, Device::Cpu)),
            ],
            0,
        );
        let fast = bank.nearest(&q);
        let plain = bank.nearest_plain(&q);
        let diff = (&fast - plain).abs().max().double_value(&[]);
        assert!(diff < 1e-4, "{diff}");
        let near = fast.narrow(0, 0, 20).max().double_value(&[]);
        assert!(near < 0.05, "{near}");
    }

    #[test]
    fn the_smoothed_map_keeps_its_mass_and_spreads_a_peak() {
        let d = Tensor::zeros([8, 8], (Kind::Float, Device::Cpu));
        let _ = d.get(4).get(4).fill_(1.0);
        let m = smooth_map(&d, 64);
        assert_eq!(m.size(), vec![64, 64]);
        let (peak, at) = m.view([-1]).max_dim(0, false);
        let at = at.int64_value(&[]);
        assert!(
            peak.double_value(&[]) < 1.0 && (at / 64 - 36).abs() <= 4,
            "{at}"
        );
        // A constant map stays constant (the kernel sums to one, borders reflected).
        let c = smooth_map(&Tensor::ones([8, 8], (Kind::Float, Device::Cpu)), 32);
        let spread = (c.max() - c.min()).double_value(&[]);
        assert!(spread < 1e-5, "{spread}");
    }
}
