//! A label mask: a defect class per pixel (0 = normal), and the raster operations edits are made
//! of (brush dabs along a polyline, polygon fill, flood regions), each recording the pixels it
//! changes so that undo and redo are exact.

use std::path::Path;

use super::imaging;

/// A class per pixel, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelMask {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

impl LabelMask {
    pub fn new(width: u32, height: u32) -> Self {
        Self {
            width,
            height,
            data: vec![0; width as usize * height as usize],
        }
    }

    pub fn from_gray(img: image::GrayImage) -> Self {
        let (width, height) = img.dimensions();
        Self {
            width,
            height,
            data: img.into_raw(),
        }
    }

    pub fn to_gray(&self) -> image::GrayImage {
        image::GrayImage::from_raw(self.width, self.height, self.data.clone())
            .expect("mask buffer matches its size")
    }

    /// Load a mask and check its size against its image's.
    pub fn load(path: &Path, expected: (u32, u32)) -> Result<Self, imaging::ImageLoadError> {
        imaging::load_label(path, expected).map(Self::from_gray)
    }

    pub fn get(&self, x: u32, y: u32) -> u8 {
        self.data[(y * self.width + x) as usize]
    }

    pub fn is_empty(&self) -> bool {
        self.data.iter().all(|&v| v == 0)
    }

    /// Any defect class counts as anomalous.
    pub fn binary(&self) -> Vec<bool> {
        self.data.iter().map(|&v| v != 0).collect()
    }

    pub fn marked_pixels(&self) -> usize {
        self.data.iter().filter(|&&v| v != 0).count()
    }

    pub(super) fn set(&mut self, idx: u32, class: u8, out: &mut Vec<Change>) {
        let old = self.data[idx as usize];
        if old != class {
            self.data[idx as usize] = class;
            out.push(Change {
                idx,
                old,
                new: class,
            });
        }
    }

    /// Pixels whose centre lies within `radius - 0.5` of a point of the polyline: radius 1 paints
    /// exactly the pixel under a point, and dabs are spaced so that no gap opens between them.
    pub(super) fn stamp_polyline(
        &mut self,
        points: &[[f32; 2]],
        radius: f32,
        class: u8,
        out: &mut Vec<Change>,
    ) {
        let r = (radius.max(1.0) - 0.5).max(0.0);
        let mut dab = |c: [f32; 2], mask: &mut Self| {
            let (x0, x1) = ((c[0] - r - 0.5).floor(), (c[0] + r - 0.5).ceil());
            let (y0, y1) = ((c[1] - r - 0.5).floor(), (c[1] + r - 0.5).ceil());
            let (w, h) = (mask.width as f32, mask.height as f32);
            let mut y = y0.max(0.0);
            while y <= y1.min(h - 1.0) {
                let mut x = x0.max(0.0);
                while x <= x1.min(w - 1.0) {
                    let (dx, dy) = (x + 0.5 - c[0], y + 0.5 - c[1]);
                    if dx * dx + dy * dy <= r * r + 1e-4 {
                        mask.set(y as u32 * mask.width + x as u32, class, out);
                    }
                    x += 1.0;
                }
                y += 1.0;
            }
        };
        if let Some(&first) = points.first() {
            dab(first, self);
        }
        for seg in points.windows(2) {
            let (a, b) = (seg[0], seg[1]);
            let len = ((b[0] - a[0]).powi(2) + (b[1] - a[1]).powi(2)).sqrt();
            let n = (len / 0.5).ceil().max(1.0) as usize;
            for i in 1..=n {
                let t = i as f32 / n as f32;
                dab([a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t], self);
            }
        }
    }

    /// Even-odd fill of a closed polygon, sampled at pixel centres.
    pub(super) fn fill_polygon(&mut self, points: &[[f32; 2]], class: u8, out: &mut Vec<Change>) {
        if points.len() < 3 {
            return;
        }
        let mut xs = Vec::new();
        for y in 0..self.height {
            let cy = y as f32 + 0.5;
            xs.clear();
            for i in 0..points.len() {
                let (a, b) = (points[i], points[(i + 1) % points.len()]);
                if (a[1] <= cy) != (b[1] <= cy) {
                    xs.push(a[0] + (cy - a[1]) / (b[1] - a[1]) * (b[0] - a[0]));
                }
            }
            xs.sort_by(f32::total_cmp);
            for pair in xs.chunks_exact(2) {
                // Pixel x is inside when its centre x + 0.5 lies in [pair[0], pair[1]).
                let from = (pair[0] - 0.5).ceil().max(0.0) as u32;
                let to = ((pair[1] - 0.5).ceil().max(0.0) as u32).min(self.width);
                for x in from..to {
                    self.set(y * self.width + x, class, out);
                }
            }
        }
    }

    /// The 4-connected set of pixels sharing the seed's class, as raster indices.
    pub fn component_at(&self, x: u32, y: u32) -> Vec<u32> {
        if x >= self.width || y >= self.height {
            return Vec::new();
        }
        let (w, h) = (self.width, self.height);
        let target = self.get(x, y);
        let mut seen = vec![false; self.data.len()];
        let mut stack = vec![y * w + x];
        seen[(y * w + x) as usize] = true;
        let mut out = Vec::new();
        while let Some(i) = stack.pop() {
            out.push(i);
            let (px, py) = (i % w, i / w);
            let mut push = |j: u32| {
                if !seen[j as usize] && self.data[j as usize] == target {
                    seen[j as usize] = true;
                    stack.push(j);
                }
            };
            if px > 0 {
                push(i - 1);
            }
            if px + 1 < w {
                push(i + 1);
            }
            if py > 0 {
                push(i - w);
            }
            if py + 1 < h {
                push(i + w);
            }
        }
        out
    }

    /// The 8-connected labelled region (any non-zero class) under a pixel: what "copy this region"
    /// and "this outline" mean to an annotator.
    pub fn marked_region_at(&self, x: u32, y: u32) -> Vec<u32> {
        if x >= self.width || y >= self.height || self.get(x, y) == 0 {
            return Vec::new();
        }
        let mut seen = vec![false; self.data.len()];
        self.grow8((y * self.width + x) as usize, &mut seen, |v| v != 0)
    }

    /// Every 8-connected region of marked pixels, in raster order of their first pixel: any
    /// non-zero class together, or (`by_class`) one region per class. One pass over the mask.
    pub fn regions8(&self, by_class: bool) -> Vec<(u8, Vec<u32>)> {
        let mut seen = vec![false; self.data.len()];
        let mut out = Vec::new();
        for start in 0..self.data.len() {
            let c = self.data[start];
            if c == 0 || seen[start] {
                continue;
            }
            let px = if by_class {
                self.grow8(start, &mut seen, |v| v == c)
            } else {
                self.grow8(start, &mut seen, |v| v != 0)
            };
            out.push((c, px));
        }
        out
    }

    /// Flood from `start` over 8-neighbours whose class satisfies `keep`, marking `seen`.
    fn grow8(&self, start: usize, seen: &mut [bool], keep: impl Fn(u8) -> bool) -> Vec<u32> {
        let (w, h) = (self.width as i64, self.height as i64);
        seen[start] = true;
        let mut stack = vec![start];
        let mut out = Vec::new();
        while let Some(i) = stack.pop() {
            out.push(i as u32);
            let (px, py) = (i as i64 % w, i as i64 / w);
            for dy in -1..=1 {
                for dx in -1..=1 {
                    let (nx, ny) = (px + dx, py + dy);
                    if (dx, dy) != (0, 0) && nx >= 0 && ny >= 0 && nx < w && ny < h {
                        let j = (ny * w + nx) as usize;
                        if !seen[j] && keep(self.data[j]) {
                            seen[j] = true;
                            stack.push(j);
                        }
                    }
                }
            }
        }
        out
    }
}

/// Bounding box [x0, y0, x1, y1) of raster indices in an image `width` wide.
pub fn bbox_of(pixels: impl IntoIterator<Item = u32>, width: u32) -> [u32; 4] {
    let mut b = [u32::MAX, u32::MAX, 0, 0];
    for i in pixels {
        let (x, y) = (i % width, i / width);
        b = [b[0].min(x), b[1].min(y), b[2].max(x + 1), b[3].max(y + 1)];
    }
    b
}

/// One pixel's change, enough to undo and redo it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    pub idx: u32,
    pub old: u8,
    pub new: u8,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(mask: &mut LabelMask, pts: &[[f32; 2]], r: f32) -> usize {
        let mut c = Vec::new();
        mask.stamp_polyline(pts, r, 1, &mut c);
        c.len()
    }

    #[test]
    fn radius_one_paints_one_pixel_and_strokes_have_no_gaps() {
        let mut m = LabelMask::new(20, 20);
        assert_eq!(stamp(&mut m, &[[5.5, 5.5]], 1.0), 1);
        assert_eq!(m.get(5, 5), 1);
        let mut m = LabelMask::new(20, 20);
        // A diagonal line of radius 1 touches each row once or twice, never skips a row.
        stamp(&mut m, &[[1.5, 1.5], [15.5, 12.5]], 1.0);
        for y in 1..=12 {
            assert!((0..20).any(|x| m.get(x, y) == 1), "gap at row {y}");
        }
        let mut m = LabelMask::new(20, 20);
        assert_eq!(stamp(&mut m, &[[10.5, 10.5]], 2.0), 9, "radius 2 is 3x3");
    }

    #[test]
    fn polygon_fill_covers_pixel_centres_inside() {
        let mut m = LabelMask::new(10, 10);
        let mut c = Vec::new();
        m.fill_polygon(&[[2.0, 2.0], [6.0, 2.0], [6.0, 5.0], [2.0, 5.0]], 3, &mut c);
        assert_eq!(c.len(), 12, "4 x 3 pixels");
        assert_eq!(m.get(2, 2), 3);
        assert_eq!(m.get(5, 4), 3);
        assert_eq!(m.get(6, 4), 0);
    }

    #[test]
    fn flood_and_region_lookup() {
        let mut m = LabelMask::new(6, 6);
        for i in 0..6 {
            m.data[2 * 6 + i] = 1; // a wall on row 2
        }
        assert_eq!(m.component_at(0, 0).len(), 12);
        assert_eq!(m.component_at(0, 5).len(), 18);
        assert_eq!(m.marked_region_at(3, 2).len(), 6);
        assert!(m.marked_region_at(0, 0).is_empty());
    }
}
