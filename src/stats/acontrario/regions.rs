//! Detected regions at a threshold: connected components (4-connectivity) of
//! {log10 NFA < threshold}, each with its pixels, area, most significant log10 NFA and closed
//! outlines traced by marching squares on the log-NFA field and simplified by Douglas-Peucker.
//! Segmenting once gives the map; any threshold is answered from it without rebuilding the trees.

use ndarray::Array2;
use serde::Serialize;

/// A closed polyline in image coordinates (pixel (x, y) covers [x, x+1) x [y, y+1)).
pub type Outline = Vec<[f32; 2]>;

#[derive(Debug, Clone, Serialize)]
pub struct Region {
    pub id: usize,
    pub area: usize,
    /// Lowest log10 NFA inside the region.
    pub log10_nfa: f32,
    /// Pixel where that minimum is reached (x, y).
    pub peak: [usize; 2],
    /// Scale (0 = finest) that gave the peak its value, when known.
    pub scale: Option<u8>,
    /// Bounding box [x0, y0, x1, y1), exclusive end.
    pub bbox: [usize; 4],
    /// Outer outline first, then the outlines of holes.
    pub outlines: Vec<Outline>,
    /// Raster indices (y * width + x) of the region's pixels.
    #[serde(skip)]
    pub pixels: Vec<u32>,
}

fn find(par: &mut [u32], mut x: u32) -> u32 {
    while par[x as usize] != x {
        par[x as usize] = par[par[x as usize] as usize];
        x = par[x as usize];
    }
    x
}

/// How many regions `regions_at` would find, without tracing them.
pub fn count_at(log_nfa: &Array2<f32>, threshold: f32) -> usize {
    let (h, w) = log_nfa.dim();
    let data = log_nfa.as_standard_layout();
    let v = data.as_slice().expect("standard layout");
    let (runs, mut par) = components(v, h, w, threshold);
    (0..runs.len() as u32)
        .filter(|&i| find(&mut par, i) == i)
        .count()
}

/// The runs of `v < threshold` (row, x0, x1 exclusive) and a union-find forest over them whose
/// trees are the 4-connected regions.
fn components(v: &[f32], h: usize, w: usize, threshold: f32) -> (Vec<(u32, u32, u32)>, Vec<u32>) {
    // Runs of detected pixels per row, then union-find over overlapping runs: the work scales
    // with the number of runs, not pixels.
    let mut runs: Vec<(u32, u32, u32)> = Vec::new(); // (row, x0, x1 exclusive)
    let mut row_start = Vec::with_capacity(h + 1);
    for y in 0..h {
        row_start.push(runs.len());
        let row = &v[y * w..(y + 1) * w];
        let mut x = 0;
        while x < w {
            if row[x] < threshold {
                let x0 = x;
                while x < w && row[x] < threshold {
                    x += 1;
                }
                runs.push((y as u32, x0 as u32, x as u32));
            } else {
                x += 1;
            }
        }
    }
    row_start.push(runs.len());
    let mut par: Vec<u32> = (0..runs.len() as u32).collect();
    for y in 1..h {
        let (mut a, a_end) = (row_start[y - 1], row_start[y]);
        let (mut b, b_end) = (row_start[y], row_start[y + 1]);
        while a < a_end && b < b_end {
            let (ra, rb) = (runs[a], runs[b]);
            if ra.1 < rb.2 && rb.1 < ra.2 {
                let (x, yy) = (find(&mut par, a as u32), find(&mut par, b as u32));
                if x != yy {
                    par[x.max(yy) as usize] = x.min(yy);
                }
            }
            if ra.2 < rb.2 { a += 1 } else { b += 1 }
        }
    }
    (runs, par)
}

/// Regions of `log_nfa < threshold`, sorted by significance (lowest log10 NFA first).
/// `simplify` is the Douglas-Peucker tolerance in pixels (0 keeps every vertex).
pub fn regions_at(
    log_nfa: &Array2<f32>,
    best_scale: Option<&Array2<u8>>,
    threshold: f32,
    simplify: f32,
) -> Vec<Region> {
    let (h, w) = log_nfa.dim();
    let data = log_nfa.as_standard_layout();
    let v = data.as_slice().expect("standard layout");
    let (runs, mut par) = components(v, h, w, threshold);
    let mut index_of_root = vec![u32::MAX; runs.len()];
    let mut regions: Vec<Region> = Vec::new();
    for (i, &(ry, rx0, rx1)) in runs.iter().enumerate() {
        let root = find(&mut par, i as u32) as usize;
        if index_of_root[root] == u32::MAX {
            index_of_root[root] = regions.len() as u32;
            regions.push(Region {
                id: 0,
                area: 0,
                log10_nfa: f32::INFINITY,
                peak: [0, 0],
                scale: None,
                bbox: [usize::MAX, usize::MAX, 0, 0],
                outlines: Vec::new(),
                pixels: Vec::new(),
            });
        }
        let r = &mut regions[index_of_root[root] as usize];
        let (y, x0, x1) = (ry as usize, rx0 as usize, rx1 as usize);
        r.area += x1 - x0;
        r.bbox = [
            r.bbox[0].min(x0),
            r.bbox[1].min(y),
            r.bbox[2].max(x1),
            r.bbox[3].max(y + 1),
        ];
        for x in x0..x1 {
            let val = v[y * w + x];
            if val < r.log10_nfa {
                r.log10_nfa = val;
                r.peak = [x, y];
            }
            r.pixels.push((y * w + x) as u32);
        }
    }
    let mut label = vec![u32::MAX; 0];
    if !regions.is_empty() {
        label.resize(h * w, u32::MAX);
        for (k, r) in regions.iter().enumerate() {
            for &p in &r.pixels {
                label[p as usize] = k as u32;
            }
        }
    }
    for (k, r) in regions.iter_mut().enumerate() {
        r.scale = best_scale.map(|b| b[(r.peak[1], r.peak[0])]);
        r.outlines = trace(v, &label, w, h, k as u32, threshold, r.bbox)
            .into_iter()
            .map(|o| {
                if simplify > 0.0 {
                    simplify_closed(&o, simplify)
                } else {
                    o
                }
            })
            .collect();
    }
    regions.sort_by(|a, b| a.log10_nfa.total_cmp(&b.log10_nfa));
    for (i, r) in regions.iter_mut().enumerate() {
        r.id = i;
    }
    regions
}

/// Marching squares over the cells of the region's bounding box (plus a one-pixel frame), on the
/// field `threshold - value` restricted to the region: crossings are interpolated linearly inside
/// the map and put on the pixel border at the image's edge or against other regions.
fn trace(
    v: &[f32],
    label: &[u32],
    w: usize,
    h: usize,
    k: u32,
    threshold: f32,
    bbox: [usize; 4],
) -> Vec<Outline> {
    // Sample (i, j) sits at pixel centre (x0 - 1 + i + 0.5, y0 - 1 + j + 0.5).
    let (x0, y0) = (bbox[0] as isize - 1, bbox[1] as isize - 1);
    let gw = bbox[2] - bbox[0] + 2;
    let gh = bbox[3] - bbox[1] + 2;
    // Positive inside the region, negative outside.
    let field = |i: usize, j: usize| -> f32 {
        let (x, y) = (x0 + i as isize, y0 + j as isize);
        if x < 0 || y < 0 || x >= w as isize || y >= h as isize {
            return -1.0;
        }
        let p = y as usize * w + x as usize;
        if label[p] == k {
            (threshold - v[p]).max(1e-6)
        } else {
            (threshold - v[p]).min(-1e-6)
        }
    };
    let inside = |i: usize, j: usize| field(i, j) > 0.0;
    // Crossing on the edge between samples a and b (values fa > 0 >= fb or reverse).
    let cross = |(ia, ja): (usize, usize), (ib, jb): (usize, usize)| -> [f32; 2] {
        let (fa, fb) = (field(ia, ja), field(ib, jb));
        let xa = x0 as f32 + ia as f32 + 0.5;
        let ya = y0 as f32 + ja as f32 + 0.5;
        let xb = x0 as f32 + ib as f32 + 0.5;
        let yb = y0 as f32 + jb as f32 + 0.5;
        let outside_map = |i: usize, j: usize| {
            let (x, y) = (x0 + i as isize, y0 + j as isize);
            x < 0 || y < 0 || x >= w as isize || y >= h as isize
        };
        let other_region = |i: usize, j: usize| {
            let (x, y) = (x0 + i as isize, y0 + j as isize);
            !outside_map(i, j) && {
                let p = y as usize * w + x as usize;
                label[p] != u32::MAX && label[p] != k
            }
        };
        // Hard borders: the image edge and a neighbouring region sit on the pixel boundary.
        let t = if outside_map(ia, ja)
            || outside_map(ib, jb)
            || other_region(ia, ja)
            || other_region(ib, jb)
        {
            0.5
        } else {
            (fa / (fa - fb)).clamp(0.0, 1.0)
        };
        [xa + (xb - xa) * t, ya + (yb - ya) * t]
    };
    // Edge ids: horizontal edge (i, j)-(i+1, j) -> j * gw + i; vertical (i, j)-(i, j+1) ->
    // gw * gh + j * gw + i. Each crossing point is on one edge; link segments through them.
    let edges = 2 * gw * gh;
    let mut next = vec![u32::MAX; edges];
    let mut point: Vec<[f32; 2]> = vec![[0.0, 0.0]; 0];
    point.resize(edges, [0.0, 0.0]);
    let hid = |i: usize, j: usize| j * gw + i;
    let vid = |i: usize, j: usize| gw * gh + j * gw + i;
    let mut starts = Vec::new();
    for j in 0..gh - 1 {
        for i in 0..gw - 1 {
            let a = inside(i, j) as u8; // top-left
            let b = inside(i + 1, j) as u8; // top-right
            let c = inside(i + 1, j + 1) as u8; // bottom-right
            let d = inside(i, j + 1) as u8; // bottom-left
            let case = a | (b << 1) | (c << 2) | (d << 3);
            let top = (hid(i, j), (i, j), (i + 1, j));
            let right = (vid(i + 1, j), (i + 1, j), (i + 1, j + 1));
            let bottom = (hid(i, j + 1), (i, j + 1), (i + 1, j + 1));
            let left = (vid(i, j), (i, j), (i, j + 1));
            // Segments oriented with the inside on the right (clockwise outer outlines in image
            // coordinates). Saddles (5, 10) are split: diagonal pixels are not 4-connected.
            let segs: &[(_, _)] = match case {
                0 | 15 => &[],
                1 => &[(left, top)],
                2 => &[(top, right)],
                3 => &[(left, right)],
                4 => &[(right, bottom)],
                5 => &[(left, top), (right, bottom)],
                6 => &[(top, bottom)],
                7 => &[(left, bottom)],
                8 => &[(bottom, left)],
                9 => &[(bottom, top)],
                10 => &[(top, right), (bottom, left)],
                11 => &[(bottom, right)],
                12 => &[(right, left)],
                13 => &[(right, top)],
                14 => &[(top, left)],
                _ => unreachable!(),
            };
            for &((ea, a0, a1), (eb, b0, b1)) in segs {
                point[ea] = cross(a0, a1);
                point[eb] = cross(b0, b1);
                next[ea] = eb as u32;
                starts.push(ea);
            }
        }
    }
    let mut used = vec![false; edges];
    let mut out = Vec::new();
    for s in starts {
        if used[s] {
            continue;
        }
        let mut poly = Vec::new();
        let mut e = s;
        while !used[e] && next[e] != u32::MAX {
            used[e] = true;
            poly.push(point[e]);
            e = next[e] as usize;
        }
        if poly.len() >= 3 {
            out.push(poly);
        }
    }
    // Outer outline first: the one enclosing the largest area.
    out.sort_by(|a, b| polygon_area(b).abs().total_cmp(&polygon_area(a).abs()));
    out
}

pub fn polygon_area(p: &[[f32; 2]]) -> f32 {
    let n = p.len();
    (0..n)
        .map(|i| p[i][0] * p[(i + 1) % n][1] - p[(i + 1) % n][0] * p[i][1])
        .sum::<f32>()
        / 2.0
}

/// Douglas-Peucker on a closed polyline: split at the vertex farthest from the first, simplify
/// both halves.
pub fn simplify_closed(p: &[[f32; 2]], eps: f32) -> Outline {
    if p.len() < 4 {
        return p.to_vec();
    }
    let far = (1..p.len())
        .max_by(|&a, &b| dist2(p[0], p[a]).total_cmp(&dist2(p[0], p[b])))
        .unwrap();
    let mut keep = vec![false; p.len() + 1];
    keep[0] = true;
    keep[far] = true;
    keep[p.len()] = true;
    let at = |i: usize| p[i % p.len()];
    let mut stack = vec![(0, far), (far, p.len())];
    while let Some((a, b)) = stack.pop() {
        if b <= a + 1 {
            continue;
        }
        let (pa, pb) = (at(a), at(b));
        let (mut best, mut best_d) = (a, 0.0);
        for i in a + 1..b {
            let d = seg_dist(at(i), pa, pb);
            if d > best_d {
                best_d = d;
                best = i;
            }
        }
        if best_d > eps {
            keep[best] = true;
            stack.push((a, best));
            stack.push((best, b));
        }
    }
    (0..p.len()).filter(|&i| keep[i]).map(|i| p[i]).collect()
}

fn dist2(a: [f32; 2], b: [f32; 2]) -> f32 {
    (a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)
}

fn seg_dist(p: [f32; 2], a: [f32; 2], b: [f32; 2]) -> f32 {
    let (vx, vy) = (b[0] - a[0], b[1] - a[1]);
    let len2 = vx * vx + vy * vy;
    if len2 == 0.0 {
        return dist2(p, a).sqrt();
    }
    let t = (((p[0] - a[0]) * vx + (p[1] - a[1]) * vy) / len2).clamp(0.0, 1.0);
    dist2(p, [a[0] + t * vx, a[1] + t * vy]).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map_with(h: usize, w: usize, cells: &[(usize, usize, f32)]) -> Array2<f32> {
        let mut m = Array2::from_elem((h, w), 5.0f32);
        for &(y, x, v) in cells {
            m[(y, x)] = v;
        }
        m
    }

    #[test]
    fn components_are_four_connected_and_sorted_by_significance() {
        // A 2x2 block, a diagonal neighbour (separate under 4-connectivity), a far pixel.
        let m = map_with(
            8,
            8,
            &[
                (1, 1, -3.0),
                (1, 2, -1.0),
                (2, 1, -1.0),
                (2, 2, -1.0),
                (3, 3, -9.0),
                (6, 6, -2.0),
            ],
        );
        let r = regions_at(&m, None, 0.0, 0.0);
        assert_eq!(r.iter().map(|r| r.area).collect::<Vec<_>>(), vec![1, 4, 1]);
        assert_eq!(r[0].log10_nfa, -9.0);
        assert_eq!(r[0].peak, [3, 3]);
        assert_eq!(r[1].bbox, [1, 1, 3, 3]);
        // A stricter threshold keeps only the strong ones, from the same map.
        assert_eq!(regions_at(&m, None, -2.5, 0.0).len(), 2);
    }

    #[test]
    fn outline_of_a_block_is_closed_and_encloses_about_its_area() {
        let mut m = Array2::from_elem((20, 20), 1.0f32);
        for y in 5..11 {
            for x in 4..12 {
                m[(y, x)] = -1.0;
            }
        }
        let r = regions_at(&m, None, 0.0, 0.0);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].outlines.len(), 1);
        let area = polygon_area(&r[0].outlines[0]).abs();
        // Crossings halfway between centres: the polygon hugs the pixel borders, minus corners.
        assert!((area - 48.0).abs() < 2.0, "area {area}");
        let s = simplify_closed(&r[0].outlines[0], 0.3);
        assert!(s.len() < r[0].outlines[0].len() && s.len() >= 4, "{s:?}");
    }

    #[test]
    fn region_touching_the_border_and_with_a_hole_gets_two_outlines() {
        let mut m = Array2::from_elem((10, 10), -1.0f32);
        m[(5, 5)] = 1.0;
        let r = regions_at(&m, None, 0.0, 0.0);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].outlines.len(), 2);
        let outer = polygon_area(&r[0].outlines[0]).abs();
        assert!(
            (outer - 100.0).abs() < 1.0,
            "outer follows the image border: {outer}"
        );
    }
}
