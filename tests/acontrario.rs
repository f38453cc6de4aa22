//! The a contrario engine: parity with the published implementation on the shared fixtures, and
//! statistical tests that fail if the statistics are wrong.

use ndarray::{Array3, s};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{ChiSquared, Distribution, StandardNormal};
use std::path::PathBuf;

use contrario::stats::acontrario::nfa::segment_scale;
use contrario::stats::acontrario::null::log10_pfa;
use contrario::stats::acontrario::{OutlineRule, SegmentOptions, TestCount, regions_at, segment};
use contrario::stats::npy;
use contrario::stats::npy::read_latents;

/// The segmentation with regions drawn as tested: what the tests of the count and of the null
/// are about (the outline is tested on its own).
fn tested(count: TestCount) -> SegmentOptions {
    SegmentOptions {
        outline: OutlineRule::Tested,
        ..SegmentOptions::with_count(count)
    }
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/nfa")
}

fn normal(rng: &mut StdRng, c: usize, h: usize, w: usize, scale: f32) -> Array3<f32> {
    Array3::from_shape_simple_fn((c, h, w), || {
        let v: f32 = StandardNormal.sample(rng);
        v * scale
    })
}

#[test]
fn per_scale_maps_match_the_reference_fixtures_in_parity_mode() {
    for case in ["cait_h0", "cait_blob_1p5", "resnet_h0"] {
        let dir = fixtures().join(case);
        let z = read_latents(&dir).unwrap();
        let views: Vec<_> = z.iter().map(|a| a.view()).collect();
        let seg = segment(&views, None, SegmentOptions::reference());
        let refj: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("ref.json")).unwrap()).unwrap();
        let nt = refj["log10_nt"].as_f64().unwrap();
        assert!(
            (seg.log10_nt - nt).abs() < 1e-3,
            "{case}: log10 N_T {} vs {nt}",
            seg.log10_nt
        );
        for (s, r) in seg.scales.iter().enumerate() {
            let want = npy::read_f32(&dir.join(format!("ref_log_pfa_{}.npy", s + 1))).unwrap();
            assert_eq!(want.shape(), r.log_pfa.shape());
            let mut worst = 0.0f32;
            for (a, b) in r.log_pfa.iter().zip(want.iter()) {
                let err = (a - b).abs() / b.abs().max(1.0);
                worst = worst.max(err);
            }
            assert!(
                worst < 1e-4,
                "{case} scale {}: worst relative error {worst}",
                s + 1
            );
        }
    }
}

#[test]
fn blob_fixture_is_found_with_its_extent() {
    let z = read_latents(&fixtures().join("cait_blob_1p5")).unwrap();
    let views: Vec<_> = z.iter().map(|a| a.view()).collect();
    for count in [TestCount::Thesis, TestCount::PerArea] {
        let seg = segment(&views, None, tested(count));
        let regions = regions_at(&seg.log_nfa, Some(&seg.best_scale), 0.0, 0.0);
        assert_eq!(regions.len(), 1, "{count:?}: {regions:?}");
        blob_extent(&regions[0]);
        // Outlined by its evidence: the blob less some of its corners (a corner pixel has 4 of
        // its 9 neighbours in the blob, below their median), nothing outside it.
        let seg = segment(&views, None, SegmentOptions::with_count(count));
        let regions = regions_at(&seg.log_nfa, Some(&seg.best_scale), 0.0, 0.0);
        assert_eq!(regions.len(), 1, "{count:?}: {regions:?}");
        let [x0, y0, x1, y1] = regions[0].bbox;
        assert!(x0 >= 10 && y0 >= 10 && x1 <= 14 && y1 <= 14, "{regions:?}");
        assert!((10..=16).contains(&regions[0].area), "{regions:?}");
    }
}

fn blob_extent(r: &contrario::stats::acontrario::Region) {
    // The 4x4 block at rows/cols 10..14: the most significant level set is the block less its
    // weakest pixel (15 x the bound at t = 2.11 beats 16 x the bound at t = 2.05), as in the
    // reference's map.
    assert!(
        r.bbox[0] >= 10 && r.bbox[1] >= 10 && r.bbox[2] <= 14 && r.bbox[3] <= 14,
        "{:?}",
        r.bbox
    );
    assert!((15..=16).contains(&r.area), "area {}", r.area);
}

#[test]
fn planted_blobs_strong_found_exactly_weak_only_with_the_per_area_count() {
    let mut rng = StdRng::seed_from_u64(7);
    let mut z1 = normal(&mut rng, 816, 28, 28, 1.0);
    let z2 = normal(&mut rng, 192, 14, 14, 1.0);
    z1.slice_mut(s![.., 6..10, 16..20])
        .mapv_inplace(|v| v * 1.5);
    for count in [TestCount::Thesis, TestCount::PerArea] {
        let seg = segment(&[z1.view(), z2.view()], None, tested(count));
        let r = regions_at(&seg.log_nfa, None, 0.0, 0.0);
        assert_eq!(r.len(), 1, "{count:?}");
        // All of the blob, or all but its weakest pixel (when dropping it is more significant),
        // and nothing outside it.
        assert!((15..=16).contains(&r[0].area), "area {}", r[0].area);
        assert!(
            r[0].pixels
                .iter()
                .all(|&p| (6..10).contains(&(p / 28)) && (16..20).contains(&(p % 28)))
        );
    }
    // A 4x4 blob scaled by 1.2 (log10 PFA about -50) is not enough evidence against the
    // thesis' 10^477 tests; against the 10^12 of 16-cell shapes it is, and exactly the blob.
    let mut rng = StdRng::seed_from_u64(8);
    let mut z1 = normal(&mut rng, 816, 28, 28, 1.0);
    let z2 = normal(&mut rng, 192, 14, 14, 1.0);
    z1.slice_mut(s![.., 6..10, 16..20])
        .mapv_inplace(|v| v * 1.2);
    let views = [z1.view(), z2.view()];
    let thesis = segment(&views, None, tested(TestCount::Thesis));
    assert!(regions_at(&thesis.log_nfa, None, 0.0, 0.0).is_empty());
    let per_area = segment(&views, None, tested(TestCount::PerArea));
    let r = regions_at(&per_area.log_nfa, None, 0.0, 0.0);
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(
        r[0].pixels
            .iter()
            .all(|&p| (6..10).contains(&(p / 28)) && (16..20).contains(&(p % 28))),
        "{:?}",
        r[0].bbox
    );
    // Globally inflated latents (z * 1.15) are detected, pure noise is not.
    let mut inflated = 0;
    for seed in 0..10 {
        let mut rng = StdRng::seed_from_u64(100 + seed);
        for (scale, count) in [(1.15f32, &mut inflated), (1.0, &mut 0)] {
            let z1 = normal(&mut rng, 816, 28, 28, scale);
            let z2 = normal(&mut rng, 192, 14, 14, scale);
            let seg = segment(&[z1.view(), z2.view()], None, SegmentOptions::default());
            let found = !regions_at(&seg.log_nfa, None, 0.0, 0.0).is_empty();
            if scale == 1.0 {
                assert!(!found, "pure noise detected (seed {seed})");
            }
            *count += found as usize;
        }
    }
    eprintln!("inflated latents detected in {inflated} of 10 draws");
    assert!(
        inflated >= 9,
        "inflated latents detected in only {inflated} of 10 draws"
    );
}

#[test]
fn clamp_keeps_shrunk_latents_quiet_where_parity_mode_fires() {
    let mut rng = StdRng::seed_from_u64(3);
    let z1 = normal(&mut rng, 816, 28, 28, 0.9);
    let z2 = normal(&mut rng, 192, 14, 14, 0.9);
    let views = [z1.view(), z2.view()];
    let clamped = segment(&views, None, SegmentOptions::default());
    assert!(regions_at(&clamped.log_nfa, None, 0.0, 0.0).is_empty());
    let parity = segment(&views, None, SegmentOptions::reference());
    let area: usize = regions_at(&parity.log_nfa, None, 0.0, 0.0)
        .iter()
        .map(|r| r.area)
        .sum();
    assert!(
        area > 700,
        "the unclamped bound flags shrunk latents everywhere ({area} px)"
    );
}

/// One-sided binomial upper bound (normal approximation plus continuity, 4 sigma) on the count
/// of events with probability p in n trials.
fn upper_bound(n: usize, p: f64) -> f64 {
    n as f64 * p + 4.0 * (n as f64 * p * (1.0 - p)).sqrt() + 1.0
}

#[test]
fn chernoff_bound_is_a_valid_pfa_for_chi_square() {
    // Under H0, P(PFA bound <= 10^-k) must not exceed 10^-k: a wrong constant (ln vs log10, C
    // vs C/2) breaks this.
    let mut rng = StdRng::seed_from_u64(11);
    let n = 200_000;
    for c in [16usize, 192, 816] {
        let chi = ChiSquared::new(c as f64).unwrap();
        for k in [1.0, 2.0] {
            let hits = (0..n)
                .filter(|_| log10_pfa(1, c as f64, chi.sample(&mut rng) / c as f64, false) <= -k)
                .count();
            let bound = upper_bound(n, 10f64.powf(-k));
            assert!((hits as f64) <= bound, "C={c} k={k}: {hits} hits > {bound}");
            // And not absurdly conservative: the true chi-square tail where the bound reaches
            // 10^-k is 8 to 15 % of it for these C and k, so at least a twentieth must show.
            let floor = n as f64 * 10f64.powf(-k) / 20.0;
            assert!(
                hits as f64 >= floor,
                "C={c} k={k}: {hits} hits, the bound is too loose (< {floor})"
            );
        }
    }
}

/// Segment `trials` pure-noise images drawn by `draw` with each count, and check the guarantee:
/// the mean number of detections per image at log10 NFA < k stays below 10^k (k = -1, 0, 1).
fn false_alarms_within_bound(
    trials: usize,
    seed: u64,
    mut draw: impl FnMut(&mut StdRng) -> Vec<Array3<f32>>,
    check: impl Fn(&contrario::stats::acontrario::Segmentation),
) {
    const LEVELS: [f32; 3] = [-1.0, 0.0, 1.0];
    // Each count with regions as tested (what the bound is about) and as outlined by evidence
    // (what users see: regions only shrink, but a region cut in two would count twice).
    let counts_all = [
        tested(TestCount::PerArea),
        tested(TestCount::Thesis),
        SegmentOptions::with_count(TestCount::PerArea),
        SegmentOptions::with_count(TestCount::Thesis),
    ];
    let mut counts = [[0usize; 3]; 4];
    let mut rng = StdRng::seed_from_u64(seed);
    for _ in 0..trials {
        let z = draw(&mut rng);
        let views: Vec<_> = z.iter().map(|a| a.view()).collect();
        for (c, &count) in counts_all.iter().enumerate() {
            let seg = segment(&views, None, count);
            check(&seg);
            for (i, &k) in LEVELS.iter().enumerate() {
                counts[c][i] += regions_at(&seg.log_nfa, None, k, 0.0).len();
            }
        }
    }
    for (c, count) in counts_all.iter().enumerate() {
        for (i, &k) in LEVELS.iter().enumerate() {
            // 10^k per image on average; for k = 1 the bound is 10 per image, checked as a mean.
            let p = 10f64.powf(k as f64);
            let bound = if p < 1.0 {
                upper_bound(trials, p)
            } else {
                trials as f64 * p + 4.0 * (trials as f64 * p).sqrt()
            };
            assert!(
                (counts[c][i] as f64) <= bound,
                "{count:?}, k={k}: {} detections in {trials} images (bound {bound:.0})",
                counts[c][i]
            );
        }
        eprintln!(
            "{count:?}: {:?} detections in {trials} images at log10 NFA < {LEVELS:?}",
            counts[c]
        );
    }
}

#[test]
fn false_alarms_under_pure_noise_stay_within_their_bound() {
    // Many pure-noise images at two scales, each tested pixel by pixel.
    false_alarms_within_bound(
        400,
        12,
        |rng| vec![normal(rng, 64, 24, 24, 1.0), normal(rng, 64, 12, 12, 1.0)],
        |_| {},
    );
}

#[test]
fn false_alarms_stay_within_their_bound_on_the_latent_layouts_we_use() {
    // MS-CaiT at 448 px (the thesis), our EfficientNet-Lite0 at 256 px, a ResNet18 at 256 px.
    false_alarms_within_bound(
        200,
        14,
        |rng| vec![normal(rng, 816, 28, 28, 1.0), normal(rng, 192, 14, 14, 1.0)],
        |_| {},
    );
    false_alarms_within_bound(
        300,
        15,
        |rng| {
            vec![
                normal(rng, 30, 64, 64, 1.0),
                normal(rng, 30, 32, 32, 1.0),
                normal(rng, 56, 16, 16, 1.0),
            ]
        },
        |_| {},
    );
    false_alarms_within_bound(
        150,
        16,
        |rng| {
            vec![
                normal(rng, 84, 64, 64, 1.0),
                normal(rng, 80, 32, 32, 1.0),
                normal(rng, 128, 16, 16, 1.0),
            ]
        },
        |_| {},
    );
}

#[test]
fn pooled_test_keeps_false_alarms_within_their_bound() {
    // The default test grid sums a 64x64 latent over 2x2 blocks (chi2 with 4C degrees under H0).
    false_alarms_within_bound(
        300,
        13,
        |rng| vec![normal(rng, 8, 64, 64, 1.0), normal(rng, 16, 32, 32, 1.0)],
        |seg| {
            assert_eq!(
                seg.scales[0].log_pfa.dim(),
                (32, 32),
                "tested on 2x2 blocks"
            )
        },
    );
}

#[test]
fn pooled_test_finds_a_blob_that_the_full_grid_cannot_afford() {
    // An 8x8 blob of latents scaled by 2.6 in a 64x64 x 24 latent: its evidence (log10 PFA
    // about -660 on the full grid, -890 on 2x2 blocks) is far short of the full grid's 10^2493
    // tests and ample for the 10^623 of the 32x32 one; the outline at the 64x64 output is the
    // blob's, pixel for pixel.
    let mut rng = StdRng::seed_from_u64(21);
    let mut z1 = normal(&mut rng, 24, 64, 64, 1.0);
    let z2 = normal(&mut rng, 40, 32, 32, 1.0);
    z1.slice_mut(s![.., 20..28, 36..44])
        .mapv_inplace(|v| v * 2.6);
    // (The thesis' count: what this test is about is the size of the grid.)
    let thesis = tested(TestCount::Thesis);
    let full = SegmentOptions {
        test_side: None,
        ..thesis
    };
    let seg = segment(&[z1.view(), z2.view()], None, full);
    assert!(regions_at(&seg.log_nfa, None, 0.0, 0.0).is_empty());
    let evidence = |seg: &contrario::stats::acontrario::Segmentation| {
        seg.log_nfa.iter().copied().fold(f32::INFINITY, f32::min) as f64 - seg.log10_nt
    };
    eprintln!(
        "full grid: log10 PFA {:.0} vs log10 N_T {:.0}",
        evidence(&seg),
        seg.log10_nt
    );
    let seg = segment(&[z1.view(), z2.view()], None, thesis);
    eprintln!(
        "2x2 blocks: log10 PFA {:.0} vs log10 N_T {:.0}",
        evidence(&seg),
        seg.log10_nt
    );
    let r = regions_at(&seg.log_nfa, None, 0.0, 0.0);
    assert_eq!(r.len(), 1, "{r:?}");
    let want: Vec<u32> = (20..28)
        .flat_map(|y| (36..44).map(move |x| y * 64 + x))
        .collect();
    let mut got = r[0].pixels.clone();
    got.sort_unstable();
    assert_eq!(got, want);
}

#[test]
fn per_scale_map_is_zero_outside_final_regions_and_negative_inside() {
    let mut rng = StdRng::seed_from_u64(5);
    let mut z = normal(&mut rng, 32, 16, 16, 1.0);
    z.slice_mut(s![.., 4..8, 4..8]).mapv_inplace(|v| v * 2.0);
    // The thesis' count: the map holds log10 PFA, never positive.
    let r = segment_scale(z.view(), SegmentOptions::with_count(TestCount::Thesis));
    assert!(r.log_pfa[(5, 5)] < -20.0);
    assert!(r.regions >= 1);
    // Each final region is a connected set of pixels sharing its node's log10 PFA; every other
    // pixel is exactly 0. Flood the negative pixels by value: each component is one final region
    // (regions whose level is at most the mean, t <= 1, have PFA 1 and stay 0), so there are at
    // most as many components as final regions, and no pixel is positive.
    let (h, w) = r.log_pfa.dim();
    let mut seen = vec![false; h * w];
    let mut components = 0;
    for start in 0..h * w {
        let v = r.log_pfa[(start / w, start % w)];
        assert!(v <= 0.0, "log10 PFA {v} > 0");
        if v == 0.0 || seen[start] {
            continue;
        }
        components += 1;
        let mut stack = vec![start];
        seen[start] = true;
        while let Some(p) = stack.pop() {
            let (y, x) = (p / w, p % w);
            let mut next = vec![];
            if x > 0 {
                next.push(p - 1);
            }
            if x + 1 < w {
                next.push(p + 1);
            }
            if y > 0 {
                next.push(p - w);
            }
            if y + 1 < h {
                next.push(p + w);
            }
            for q in next {
                let u = r.log_pfa[(q / w, q % w)];
                if !seen[q] && u == v {
                    seen[q] = true;
                    stack.push(q);
                }
            }
        }
    }
    assert!(
        (1..=r.regions).contains(&components),
        "{components} constant components for {} final regions",
        r.regions
    );
    // Most of the blob lies in one final region (a few of its pixels draw small values and stay
    // below the region's level).
    let blob = r.log_pfa.slice(s![4..8, 4..8]);
    let inside = blob.iter().copied().fold(f32::INFINITY, f32::min);
    let covered = blob.iter().filter(|&&v| v == inside).count();
    assert!(covered >= 12, "{blob:?}");
}

#[test]
fn a_thin_line_and_a_small_blob_are_found_with_the_per_area_count_not_the_thesis_one() {
    // Latents of our EfficientNet-Lite0 U-Flow at 256 px. On the same draws: a scratch (one
    // latent pixel wide, 20 long) and a 3x3 blob, each moderately inflated, in the finest scale.
    // Against the thesis' 10^623 tests neither is found; against the tests of its own area each
    // is, within a pixel or two of where it lies; and nothing else is.
    let mut found = [0usize; 2];
    let draws = 10;
    for seed in 0..draws {
        let mut rng = StdRng::seed_from_u64(300 + seed);
        let mut z1 = normal(&mut rng, 30, 64, 64, 1.0);
        let z2 = normal(&mut rng, 30, 32, 32, 1.0);
        let z3 = normal(&mut rng, 56, 16, 16, 1.0);
        z1.slice_mut(s![.., 10, 20..40]).mapv_inplace(|v| v * 1.6);
        z1.slice_mut(s![.., 44..47, 44..47])
            .mapv_inplace(|v| v * 1.6);
        let views = [z1.view(), z2.view(), z3.view()];
        let thesis = segment(&views, None, tested(TestCount::Thesis));
        assert!(
            regions_at(&thesis.log_nfa, None, 0.0, 0.0).is_empty(),
            "seed {seed}: the thesis' count found something"
        );
        let per_area = segment(&views, None, tested(TestCount::PerArea));
        let regions = regions_at(&per_area.log_nfa, None, 0.0, 0.0);
        let mut this = [false; 2];
        for r in &regions {
            let [x0, y0, x1, y1] = r.bbox;
            let line = y0 >= 8 && y1 <= 13 && x0 >= 18 && x1 <= 42;
            let blob = y0 >= 42 && y1 <= 49 && x0 >= 42 && x1 <= 49;
            assert!(
                line || blob,
                "seed {seed}: a region off the planted ones {:?}",
                r.bbox
            );
            this[0] |= line;
            this[1] |= blob;
        }
        found[0] += this[0] as usize;
        found[1] += this[1] as usize;
    }
    eprintln!(
        "line found in {} of {draws} draws, blob in {}",
        found[0], found[1]
    );
    assert!(found[0] >= 9 && found[1] >= 9, "{found:?} of {draws}");
}

#[test]
fn correlated_channels_need_the_calibrated_degrees_of_freedom() {
    // A flow's latents on unseen normals: N(0, 1) marginals, but channels in correlated groups
    // (each drawn four times), so a cell's sum of squares spreads four times as wide as chi2_C
    // (real flows: about twice, with heavier tails). The i.i.d. null then sees false alarms at
    // NFA < 1; the null fitted on other such images (a quarter of C's degrees of freedom, and
    // their tail) brings them back within the bound.
    use contrario::stats::acontrario::nfa::{segment_calibrated, tested_cells};
    use contrario::stats::acontrario::null::CellNull;
    let paired = |rng: &mut StdRng, c: usize, h: usize, w: usize| {
        let quarter = normal(rng, c / 4 + 1, h, w, 1.0);
        Array3::from_shape_fn((c, h, w), |(k, y, x)| quarter[(k / 4, y, x)])
    };
    let draw = |rng: &mut StdRng| {
        vec![
            paired(rng, 32, 64, 64),
            paired(rng, 32, 32, 32),
            paired(rng, 56, 16, 16),
        ]
    };
    let opts = tested(TestCount::PerArea);
    let mut rng = StdRng::seed_from_u64(40);
    // Calibration on two images, as a model does on its held-out normals.
    let mut cells = vec![Vec::new(); 3];
    let mut channels = [0; 3];
    for _ in 0..2 {
        for (s, z) in draw(&mut rng).iter().enumerate() {
            let (c, k) = tested_cells(z.view(), opts);
            cells[s].extend(c.iter().map(|&v| v as f64));
            channels[s] = k;
        }
    }
    let nulls: Vec<CellNull> = (0..3)
        .map(|s| CellNull::fit(&cells[s], channels[s]))
        .collect();
    for n in &nulls {
        assert!((0.2..0.33).contains(&n.dof_ratio), "{nulls:?}");
    }
    let trials = 100;
    let (mut ideal, mut calibrated) = (0, 0);
    for _ in 0..trials {
        let z = draw(&mut rng);
        let views: Vec<_> = z.iter().map(|a| a.view()).collect();
        ideal += regions_at(&segment(&views, None, opts).log_nfa, None, 0.0, 0.0).len();
        let seg = segment_calibrated(&views, None, opts, &nulls);
        calibrated += regions_at(&seg.log_nfa, None, 0.0, 0.0).len();
    }
    eprintln!(
        "{trials} images: {ideal} false alarms with the i.i.d. null, {calibrated} calibrated"
    );
    assert!(ideal as f64 > upper_bound(trials, 1.0), "{ideal}");
    assert!(
        calibrated as f64 <= upper_bound(trials, 1.0),
        "{calibrated}"
    );
    // Independent latents keep (about) all their degrees of freedom.
    let z = normal(&mut rng, 30, 64, 64, 1.0);
    let (c, k) = tested_cells(z.view(), opts);
    let r = CellNull::fit(&c.iter().map(|&v| v as f64).collect::<Vec<_>>(), k).dof_ratio;
    assert!(r > 0.85, "{r}");
}

#[test]
fn evidence_outlines_keep_defects_and_drop_their_speckled_halo() {
    // Latents of our default U-Flow (64, 32, 16 a side) drawn at 256 px: a 6x6 blob and a line
    // three latent pixels wide, moderately raised, and around the blob four lone latent pixels
    // raised further (the halo a defect leaves in features whose receptive fields reach it).
    // As tested, each lone pixel's cell is a region of its own; outlined by evidence, the blob
    // and the line remain, most of them, and nothing else.
    let (blob_rows, blob_cols) = (40..46usize, 10..16usize);
    let lone = [(36usize, 12usize), (48, 13), (42, 19), (43, 6)];
    let mut halo_regions = 0;
    let (mut least_blob, mut least_line) = (f64::INFINITY, f64::INFINITY);
    for seed in 0..10 {
        let mut rng = StdRng::seed_from_u64(500 + seed);
        let mut z1 = normal(&mut rng, 24, 64, 64, 1.0);
        let z2 = normal(&mut rng, 40, 32, 32, 1.0);
        let z3 = normal(&mut rng, 112, 16, 16, 1.0);
        z1.slice_mut(s![.., blob_rows.clone(), blob_cols.clone()])
            .mapv_inplace(|v| v * 1.8);
        z1.slice_mut(s![.., 12..15, 20..44])
            .mapv_inplace(|v| v * 1.6);
        for &(y, x) in &lone {
            z1.slice_mut(s![.., y, x]).mapv_inplace(|v| v * 2.5);
        }
        let views = [z1.view(), z2.view(), z3.view()];
        let out = Some((256, 256));
        let in_blob = |y: usize, x: usize| {
            (blob_rows.start * 4..blob_rows.end * 4).contains(&y)
                && (blob_cols.start * 4..blob_cols.end * 4).contains(&x)
        };
        let planted = |r: &contrario::stats::acontrario::Region| {
            let [x0, y0, x1, y1] = r.bbox;
            let blob = y0 + 4 >= 160 && y1 <= 184 + 4 && x0 + 4 >= 40 && x1 <= 64 + 4;
            let line = y0 + 4 >= 48 && y1 <= 60 + 4 && x0 + 4 >= 80 && x1 <= 176 + 4;
            (blob, line)
        };
        let as_tested = segment(&views, out, tested(TestCount::PerArea));
        halo_regions += regions_at(&as_tested.log_nfa, None, 0.0, 0.0)
            .iter()
            .filter(|r| planted(r) == (false, false))
            .count();
        let seg = segment(&views, out, SegmentOptions::default());
        let regions = regions_at(&seg.log_nfa, None, 0.0, 0.0);
        let (mut blob, mut line) = (0, 0);
        for r in &regions {
            match planted(r) {
                (true, _) => {
                    blob += r
                        .pixels
                        .iter()
                        .filter(|&&p| in_blob(p as usize / 256, p as usize % 256))
                        .count()
                }
                (_, true) => line += r.area,
                _ => panic!("seed {seed}: a region off the planted ones {:?}", r.bbox),
            }
        }
        eprintln!("seed {seed}: blob {blob} of 576 pixels, line {line} of 1152");
        least_blob = least_blob.min(blob as f64 / 576.0);
        least_line = least_line.min(line as f64 / 1152.0);
    }
    // Not whole: corners go (a corner's 3 x 3 median lies outside), and the interpolated median
    // crosses the level up to half a latent pixel inside an edge, more where noise pulls an
    // edge pixel's median down (per-pixel noise is white here; a real flow's is smoother).
    assert!(least_blob >= 0.5, "blob: {least_blob}");
    assert!(least_line >= 0.25, "line: {least_line}");
    assert!(
        halo_regions >= 20,
        "as tested, {halo_regions} halo regions in 10 draws"
    );
}

#[test]
fn a_strong_defect_is_outlined_without_the_halo_it_leaves() {
    // A 4 x 4 latent core at 100x the normal mean square, its halo falling by 2.5x per latent
    // pixel (the decay measured around real defects): 40, 16, 6.4, 2.6, 1.0. A fixed level of
    // twice normal would outline core and four rings (12 latent pixels a side); half the peak's
    // evidence in log (10x) is crossed between the second and third ring. The coarser scales see
    // the same defect with the same halo on their grids. The regions as tested spread over the
    // halo; outlined, they keep the core and at most two rings and a half.
    // Chebyshev distance (in pixels of a grid `f` times coarser than the finest) to the core.
    let ring_at = |f: usize, y: usize, x: usize| {
        let d = |v: usize| {
            let (a, b) = (32 / f - 2 / f.min(2), 32 / f + 2 / f.min(2) - 1);
            if v < a { a - v } else { v.saturating_sub(b) }
        };
        d(y).max(d(x))
    };
    let ring = |y: usize, x: usize| ring_at(1, y, x);
    let plant = |z: &mut Array3<f32>, f: usize| {
        for ((_, y, x), v) in z.indexed_iter_mut() {
            *v *= (100.0f32 / 2.5f32.powi(ring_at(f, y, x) as i32))
                .max(1.0)
                .sqrt();
        }
    };
    for seed in 0..5 {
        let mut rng = StdRng::seed_from_u64(700 + seed);
        let mut z1 = normal(&mut rng, 24, 64, 64, 1.0);
        let mut z2 = normal(&mut rng, 40, 32, 32, 1.0);
        let mut z3 = normal(&mut rng, 112, 16, 16, 1.0);
        plant(&mut z1, 1);
        plant(&mut z2, 2);
        plant(&mut z3, 4);
        let views = [z1.view(), z2.view(), z3.view()];
        let out = Some((256, 256));
        let widest = |opts: SegmentOptions| {
            let seg = segment(&views, out, opts);
            let regions = regions_at(&seg.log_nfa, None, 0.0, 0.0);
            let mut core_pixels = 0;
            let mut reach = 0;
            for r in &regions {
                for &p in &r.pixels {
                    let (y, x) = (p as usize / 256 / 4, p as usize % 256 / 4);
                    reach = reach.max(ring(y, x));
                    core_pixels += usize::from(ring(y, x) == 0);
                }
            }
            (core_pixels, reach, regions.len())
        };
        let (tested_core, tested_reach, _) = widest(tested(TestCount::PerArea));
        let (core_pixels, reach, n) = widest(SegmentOptions::default());
        eprintln!(
            "seed {seed}: as tested reach {tested_reach} core {tested_core}, outlined reach {reach} core {core_pixels} in {n}"
        );
        assert_eq!(tested_core, 256, "seed {seed}: the core as tested");
        assert_eq!(core_pixels, 256, "seed {seed}: the core outlined");
        assert!(
            tested_reach >= 4,
            "seed {seed}: as tested reaches {tested_reach}"
        );
        assert!(reach <= 3, "seed {seed}: outlined reaches ring {reach}");
        assert_eq!(n, 1, "seed {seed}: one region");
    }
}

#[test]
fn a_line_of_uneven_strength_keeps_one_outline() {
    // A line three latent pixels wide at 6x normal, with bright spots (100x) every 9 pixels, that
    // a coarser scale sees whole: the halo floor (10x near a spot) cuts the line between spots;
    // what lies between the pieces and passes the fixed level is given back, so the line stays
    // one region from its first spot to its last.
    for seed in 0..5 {
        let mut rng = StdRng::seed_from_u64(900 + seed);
        let mut z1 = normal(&mut rng, 24, 64, 64, 1.0);
        for x in 10..50usize {
            let t: f32 = if (x - 10) % 9 < 4 { 100.0 } else { 6.0 };
            z1.slice_mut(s![.., 30..33, x])
                .mapv_inplace(|v| v * t.sqrt());
        }
        // The coarser scale sees the line as one, as its larger receptive fields do.
        let mut z2 = normal(&mut rng, 40, 32, 32, 1.0);
        z2.slice_mut(s![.., 15..17, 5..27])
            .mapv_inplace(|v| v * 2.0);
        let z3 = normal(&mut rng, 112, 16, 16, 1.0);
        let views = [z1.view(), z2.view(), z3.view()];
        let seg = segment(&views, Some((256, 256)), SegmentOptions::default());
        let regions = regions_at(&seg.log_nfa, None, 0.0, 0.0);
        let spans: Vec<[usize; 4]> = regions.iter().map(|r| r.bbox).collect();
        assert_eq!(regions.len(), 1, "seed {seed}: {spans:?}");
        let [x0, _, x1, _] = regions[0].bbox;
        assert!(
            x0 <= 44 && x1 >= 196,
            "seed {seed}: the whole line {spans:?}"
        );
    }
}
