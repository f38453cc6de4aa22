//! Evaluation metrics, shared by the CLI and the GUI: pixel and image AUROC (exact, ties
//! handled), AUPRO up to a false-positive rate (8-connected ground-truth regions), per-image IoU
//! and mIoU, and the mIoU-versus-threshold curve with its oracle maximum.

/// Area under the ROC curve of `scores` for binary `labels` (true = anomalous): the Mann-Whitney
/// statistic with average ranks for ties, exact. `None` when one class is absent.
pub fn auroc(scores: &[f32], labels: &[bool]) -> Option<f64> {
    assert_eq!(scores.len(), labels.len());
    let pos = labels.iter().filter(|&&l| l).count();
    let neg = labels.len() - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    let mut idx: Vec<u32> = (0..scores.len() as u32).collect();
    idx.sort_unstable_by(|&a, &b| scores[a as usize].total_cmp(&scores[b as usize]));
    // Sum of the ranks of positives, with tied groups sharing their average rank.
    let mut rank_sum = 0.0f64;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        let v = scores[idx[i] as usize];
        let mut pos_in_group = 0usize;
        while j < idx.len() && scores[idx[j] as usize] == v {
            pos_in_group += labels[idx[j] as usize] as usize;
            j += 1;
        }
        let avg_rank = (i + 1 + j) as f64 / 2.0;
        rank_sum += avg_rank * pos_in_group as f64;
        i = j;
    }
    let (p, n) = (pos as f64, neg as f64);
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * n))
}

/// Points (false-positive rate, true-positive rate) of the ROC curve of `scores` for `labels`,
/// from (0, 0) to (1, 1), thinned evenly to about `most` points (ties are one point). Empty when
/// one class is absent.
pub fn roc_curve(scores: &[f32], labels: &[bool], most: usize) -> Vec<(f64, f64)> {
    assert_eq!(scores.len(), labels.len());
    let pos = labels.iter().filter(|&&l| l).count();
    let neg = labels.len() - pos;
    if pos == 0 || neg == 0 {
        return Vec::new();
    }
    let mut idx: Vec<u32> = (0..scores.len() as u32).collect();
    // Highest score first: lowering the threshold adds points to the curve.
    idx.sort_unstable_by(|&a, &b| scores[b as usize].total_cmp(&scores[a as usize]));
    let mut all = vec![(0.0, 0.0)];
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut i = 0;
    while i < idx.len() {
        let v = scores[idx[i] as usize];
        while i < idx.len() && scores[idx[i] as usize] == v {
            if labels[idx[i] as usize] {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        all.push((fp as f64 / neg as f64, tp as f64 / pos as f64));
    }
    let step = all.len().div_ceil(most.max(2)).max(1);
    let last = *all.last().expect("at least the origin");
    let mut out: Vec<(f64, f64)> = all.into_iter().step_by(step).collect();
    if out.last() != Some(&last) {
        out.push(last);
    }
    out
}

/// Labels of the 8-connected components of `mask` (row-major, `w` wide): 0 = background,
/// 1..=count for regions. Returns (labels, count).
pub fn components8(mask: &[bool], w: usize) -> (Vec<u32>, usize) {
    let h = mask.len().checked_div(w).unwrap_or(0);
    let mut label = vec![0u32; mask.len()];
    let mut count = 0;
    let mut stack = Vec::new();
    for start in 0..mask.len() {
        if !mask[start] || label[start] != 0 {
            continue;
        }
        count += 1;
        label[start] = count as u32;
        stack.push(start);
        while let Some(p) = stack.pop() {
            let (y, x) = ((p / w) as isize, (p % w) as isize);
            for dy in -1..=1 {
                for dx in -1..=1 {
                    let (ny, nx) = (y + dy, x + dx);
                    if ny < 0 || nx < 0 || ny >= h as isize || nx >= w as isize {
                        continue;
                    }
                    let q = ny as usize * w + nx as usize;
                    if mask[q] && label[q] == 0 {
                        label[q] = count as u32;
                        stack.push(q);
                    }
                }
            }
        }
    }
    (label, count)
}

/// One image for AUPRO: its anomaly scores and ground-truth mask, row-major, `width` wide.
pub struct ScoredImage<'a> {
    pub scores: &'a [f32],
    pub mask: &'a [bool],
    pub width: usize,
}

/// Area under the per-region-overlap curve up to `max_fpr`, normalised by `max_fpr` (so 1 is
/// perfect). Regions are 8-connected ground-truth components over all images; the curve is
/// swept exactly over every distinct score. `None` without any region or any normal pixel.
pub fn aupro(images: &[ScoredImage<'_>], max_fpr: f64) -> Option<f64> {
    // Each pixel: (score, region id or 0 for normal).
    let mut pixels: Vec<(f32, u32)> = Vec::new();
    let mut region_area: Vec<usize> = vec![0];
    for im in images {
        assert_eq!(im.scores.len(), im.mask.len());
        let (labels, n) = components8(im.mask, im.width);
        let base = region_area.len() as u32 - 1;
        region_area.resize(region_area.len() + n, 0);
        for (&s, &l) in im.scores.iter().zip(&labels) {
            let id = if l == 0 { 0 } else { base + l };
            region_area[id as usize] += (l != 0) as usize;
            pixels.push((s, id));
        }
    }
    let regions = region_area.len() - 1;
    let normals = pixels.iter().filter(|p| p.1 == 0).count();
    if regions == 0 || normals == 0 {
        return None;
    }
    pixels.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
    // Sweep thresholds from high to low; PRO is the mean over regions of their covered fraction.
    let mut fp = 0usize;
    let mut pro_sum = 0.0f64; // sum over regions of tp_r / area_r
    let (mut last_fpr, mut last_pro, mut area) = (0.0f64, 0.0f64, 0.0f64);
    let mut i = 0;
    while i < pixels.len() {
        let v = pixels[i].0;
        while i < pixels.len() && pixels[i].0 == v {
            let id = pixels[i].1 as usize;
            if id == 0 {
                fp += 1;
            } else {
                pro_sum += 1.0 / region_area[id] as f64;
            }
            i += 1;
        }
        let fpr = fp as f64 / normals as f64;
        let pro = pro_sum / regions as f64;
        if fpr >= max_fpr {
            // Interpolate the segment up to exactly max_fpr.
            let t = if fpr > last_fpr {
                (max_fpr - last_fpr) / (fpr - last_fpr)
            } else {
                0.0
            };
            let pro_at = last_pro + t * (pro - last_pro);
            area += (max_fpr - last_fpr) * (last_pro + pro_at) / 2.0;
            return Some(area / max_fpr);
        }
        area += (fpr - last_fpr) * (last_pro + pro) / 2.0;
        last_fpr = fpr;
        last_pro = pro;
    }
    Some(area / max_fpr)
}

/// Intersection over union of two binary masks; 1 when both are empty (a correct "nothing here"
/// on a normal image).
pub fn iou(pred: &[bool], gt: &[bool]) -> f64 {
    assert_eq!(pred.len(), gt.len());
    let (mut inter, mut union) = (0usize, 0usize);
    for (&p, &g) in pred.iter().zip(gt) {
        inter += (p && g) as usize;
        union += (p || g) as usize;
    }
    if union == 0 {
        1.0
    } else {
        inter as f64 / union as f64
    }
}

/// Mean over images of the IoU of `map < threshold` against the mask (for log10 NFA maps, where
/// lower means more anomalous).
pub fn miou_below(maps: &[&[f32]], masks: &[&[bool]], threshold: f32) -> f64 {
    assert_eq!(maps.len(), masks.len());
    if maps.is_empty() {
        return 0.0;
    }
    let sum: f64 = maps
        .iter()
        .zip(masks)
        .map(|(m, g)| {
            let pred: Vec<bool> = m.iter().map(|&v| v < threshold).collect();
            iou(&pred, g)
        })
        .sum();
    sum / maps.len() as f64
}

/// One image's map sorted, with running counts of ground-truth pixels: the IoU of `map < t`
/// at any t is one binary search.
struct SortedMap {
    values: Vec<f32>,
    /// gt_before[k]: ground-truth pixels among the k lowest values.
    gt_before: Vec<u32>,
}

impl SortedMap {
    fn new(map: &[f32], mask: &[bool]) -> Self {
        assert_eq!(map.len(), mask.len());
        let mut pairs: Vec<(f32, bool)> = map.iter().copied().zip(mask.iter().copied()).collect();
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut gt_before = Vec::with_capacity(pairs.len() + 1);
        gt_before.push(0);
        let mut n = 0;
        for &(_, g) in &pairs {
            n += g as u32;
            gt_before.push(n);
        }
        Self {
            values: pairs.into_iter().map(|p| p.0).collect(),
            gt_before,
        }
    }

    fn iou_below(&self, t: f32) -> f64 {
        let k = self.values.partition_point(|&v| v < t);
        let inter = self.gt_before[k] as usize;
        let union = *self.gt_before.last().unwrap() as usize + k - inter;
        if union == 0 {
            1.0
        } else {
            inter as f64 / union as f64
        }
    }
}

/// Images' maps indexed for the IoU of `map < t` at any t: one binary search per image.
pub struct IouIndex {
    maps: Vec<SortedMap>,
}

impl IouIndex {
    pub fn new(maps: &[&[f32]], masks: &[&[bool]]) -> Self {
        assert_eq!(maps.len(), masks.len());
        Self {
            maps: maps
                .iter()
                .zip(masks)
                .map(|(m, g)| SortedMap::new(m, g))
                .collect(),
        }
    }

    /// Mean IoU at `t` over all images (the same value as [`miou_below`]).
    pub fn miou(&self, t: f32) -> f64 {
        self.maps.iter().map(|s| s.iou_below(t)).sum::<f64>() / self.maps.len().max(1) as f64
    }

    /// Mean IoU at `t` over the images `of`.
    pub fn miou_of(&self, of: &[usize], t: f32) -> f64 {
        if of.is_empty() {
            return 0.0;
        }
        of.iter().map(|&i| self.maps[i].iou_below(t)).sum::<f64>() / of.len() as f64
    }

    /// The mIoU-versus-threshold curve over `thresholds`, and its best point (the first of
    /// equals; (NaN, -inf) when there is none).
    pub fn curve(&self, thresholds: &[f32]) -> (Vec<(f32, f64)>, (f32, f64)) {
        let curve: Vec<(f32, f64)> = thresholds.iter().map(|&t| (t, self.miou(t))).collect();
        let best = curve
            .iter()
            .copied()
            .fold((f32::NAN, f64::NEG_INFINITY), better);
        (curve, best)
    }

    /// The oracle's thresholds: just above each distinct value of the maps, evenly thinned to
    /// 20,000 when there are more; and its best point over them.
    pub fn oracle(&self) -> (f32, f64) {
        const MOST: usize = 20_000;
        let mut values: Vec<f32> = self
            .maps
            .iter()
            .flat_map(|m| m.values.iter().copied())
            .collect();
        values.sort_by(f32::total_cmp);
        values.dedup();
        let step = values.len().div_ceil(MOST).max(1);
        let thresholds: Vec<f32> = values.iter().step_by(step).map(|v| v.next_up()).collect();
        self.curve(&thresholds).1
    }
}

/// The later of two curve points when it is strictly better (so the first of equals wins).
pub fn better(best: (f32, f64), p: (f32, f64)) -> (f32, f64) {
    if p.1 > best.1 { p } else { best }
}

/// The mIoU-versus-threshold curve over `thresholds`, and the best (oracle) point.
pub fn miou_curve(
    maps: &[&[f32]],
    masks: &[&[bool]],
    thresholds: &[f32],
) -> (Vec<(f32, f64)>, (f32, f64)) {
    IouIndex::new(maps, masks).curve(thresholds)
}

/// The oracle: the best mIoU of `map < t` over every threshold that changes a prediction (just
/// above each distinct value; evenly thinned to 20,000 of them when there are more) and `extra`
/// (tried last: an extra threshold wins only when strictly better).
pub fn miou_oracle(maps: &[&[f32]], masks: &[&[bool]], extra: &[f32]) -> (f32, f64) {
    let index = IouIndex::new(maps, masks);
    extra
        .iter()
        .fold(index.oracle(), |b, &t| better(b, (t, index.miou(t))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_roc_curve_runs_corner_to_corner_and_its_area_is_the_auroc() {
        let s = [0.9, 0.8, 0.7, 0.6, 0.55, 0.4, 0.3, 0.2, 0.2, 0.1];
        let l = [
            true, true, false, true, false, true, false, false, true, false,
        ];
        let c = roc_curve(&s, &l, 1000);
        assert_eq!(c.first(), Some(&(0.0, 0.0)));
        assert_eq!(c.last(), Some(&(1.0, 1.0)));
        // Trapezoids under the curve (ties are one diagonal step) equal the Mann-Whitney AUROC.
        let area: f64 = c
            .windows(2)
            .map(|w| (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0)
            .sum();
        assert!((area - auroc(&s, &l).unwrap()).abs() < 1e-12, "{area}");
        assert!(c.windows(2).all(|w| w[1].0 >= w[0].0 && w[1].1 >= w[0].1));
        assert!(roc_curve(&s, &l, 3).len() <= 4);
        assert!(roc_curve(&[1.0], &[true], 10).is_empty());
    }

    #[test]
    fn the_index_gives_the_direct_miou_and_the_oracle_tries_the_extra_threshold_last() {
        let mut seed = 3u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 40) as f32 / (1u64 << 24) as f32
        };
        let maps: Vec<Vec<f32>> = (0..4)
            .map(|_| (0..300).map(|_| (next() * 8.0).round() - 4.0).collect())
            .collect();
        let masks: Vec<Vec<bool>> = (0..4)
            .map(|_| (0..300).map(|_| next() < 0.2).collect())
            .collect();
        let m: Vec<&[f32]> = maps.iter().map(|v| v.as_slice()).collect();
        let g: Vec<&[bool]> = masks.iter().map(|v| v.as_slice()).collect();
        let index = IouIndex::new(&m, &g);
        for t in [-5.0, -2.5, -1.0, 0.0, 0.5, 3.0, 9.0] {
            assert_eq!(index.miou(t), miou_below(&m, &g, t), "{t}");
            assert_eq!(
                index.miou_of(&[1, 3], t),
                miou_below(&[m[1], m[3]], &[g[1], g[3]], t)
            );
        }
        // The oracle with an extra threshold is the best of one curve over the distinct values'
        // thresholds followed by the extra one (the first of equals).
        let mut values: Vec<f32> = maps.iter().flatten().copied().collect();
        values.sort_by(f32::total_cmp);
        values.dedup();
        let mut thresholds: Vec<f32> = values.iter().map(|v| v.next_up()).collect();
        for extra in [-1.5f32, 0.25, 10.0] {
            thresholds.push(extra);
            let want = index.curve(&thresholds).1;
            thresholds.pop();
            let got = miou_oracle(&m, &g, &[extra]);
            assert_eq!(
                (got.0.to_bits(), got.1),
                (want.0.to_bits(), want.1),
                "{extra}"
            );
        }
    }

    #[test]
    fn auroc_by_hand_with_ties() {
        // Positives 0.8, 0.4; negatives 0.4, 0.1: pairs (0.8>0.4, 0.8>0.1, 0.4=0.4 -> 1/2, 0.4>0.1)
        let s = [0.8, 0.4, 0.4, 0.1];
        let l = [true, true, false, false];
        assert!((auroc(&s, &l).unwrap() - 3.5 / 4.0).abs() < 1e-12);
        assert_eq!(auroc(&[1.0, 2.0], &[true, true]), None);
        assert_eq!(auroc(&[0.0, 1.0], &[false, true]), Some(1.0));
    }

    #[test]
    fn components_are_eight_connected() {
        let m = [
            true, false, false, false, false, true, false, false, false, false, false, true,
        ];
        let (l, n) = components8(&m, 4);
        assert_eq!(n, 2);
        assert_eq!(l[0], l[5]);
        assert_ne!(l[0], l[11]);
    }

    #[test]
    fn aupro_perfect_and_by_hand() {
        // Perfect separation: PRO reaches 1 at FPR 0.
        let scores = [0.9, 0.9, 0.1, 0.1, 0.1, 0.1];
        let mask = [true, true, false, false, false, false];
        let im = ScoredImage {
            scores: &scores,
            mask: &mask,
            width: 6,
        };
        assert!((aupro(&[im], 0.3).unwrap() - 1.0).abs() < 1e-12);
        // One region of 2 pixels, 4 normals. Scores: region {0.9, 0.2}, normals {0.5, 0.1, 0.1, 0.1}.
        // Sweep: t=.9 -> fpr 0, pro .5; t=.5 -> fpr .25, pro .5; t=.2 -> fpr .25, pro 1;
        // t=.1 -> fpr 1. Area to 0.3: .25*.5 (trapezoid 0->.25 from .5 to .5... starts at (0,0)).
        let scores = [0.9, 0.2, 0.5, 0.1, 0.1, 0.1];
        let im = ScoredImage {
            scores: &scores,
            mask: &mask,
            width: 6,
        };
        // Curve: (0,0)->(0,.5) [no area], (0,.5)->(.25,.5): .125, (.25,.5)->(.25,1): 0,
        // (.25,1)->(1,1) cut at .3: .05. Total .175 / .3.
        assert!((aupro(&[im], 0.3).unwrap() - 0.175 / 0.3).abs() < 1e-12);
    }

    #[test]
    fn oracle_is_the_best_of_every_threshold() {
        // Two small maps with ties; brute force over thresholds between and beyond all values.
        let maps: [&[f32]; 2] = [
            &[3.0, 1.0, 2.0, 2.0, 5.0, -1.0],
            &[0.5, 0.5, 4.0, 4.0, 1.0, 9.0],
        ];
        let masks: [&[bool]; 2] = [
            &[false, true, true, true, false, true],
            &[true, true, false, false, false, false],
        ];
        let mut brute = f64::NEG_INFINITY;
        for t in (-20..=100).map(|k| k as f32 * 0.1 + 0.05) {
            brute = brute.max(miou_below(&maps, &masks, t));
        }
        let (t, best) = miou_oracle(&maps, &masks, &[]);
        assert!((best - brute).abs() < 1e-12, "{best} vs {brute}");
        assert!((miou_below(&maps, &masks, t) - best).abs() < 1e-12);
        // The curve's fast path agrees with the direct computation.
        for t in [-1.0f32, 0.6, 2.0, 2.5, 10.0] {
            let (curve, _) = miou_curve(&maps, &masks, &[t]);
            assert!((curve[0].1 - miou_below(&maps, &masks, t)).abs() < 1e-12);
        }
    }

    #[test]
    fn iou_conventions() {
        assert_eq!(iou(&[false, false], &[false, false]), 1.0);
        assert_eq!(iou(&[true, false], &[false, false]), 0.0);
        assert!((iou(&[true, true, false], &[true, false, true]) - 1.0 / 3.0).abs() < 1e-12);
        let maps: [&[f32]; 2] = [&[-1.0, 1.0], &[1.0, 1.0]];
        let masks: [&[bool]; 2] = [&[true, false], &[false, false]];
        assert_eq!(miou_below(&maps, &masks, 0.0), 1.0);
        let (curve, best) = miou_curve(&maps, &masks, &[-2.0, 0.0, 2.0]);
        assert_eq!(curve.len(), 3);
        assert_eq!(best, (0.0, 1.0));
    }
}
