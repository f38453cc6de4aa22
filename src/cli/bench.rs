//! `contrario bench`: timings measured side by side in one run, reported as ratios. Run with the
//! release build (`cargo run --release -- bench nfa`).

use ndarray::{Array2, Array3};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};
use std::path::Path;
use std::time::Instant;

use crate::stats::acontrario::{self, OutlineRule, SegmentOptions};
use crate::stats::timing::median_seconds as time;

fn normal(rng: &mut StdRng, c: usize, h: usize, w: usize) -> Array3<f32> {
    Array3::from_shape_simple_fn((c, h, w), || StandardNormal.sample(rng))
}

/// Segmentation of the two reference latent layouts, against the published Python
/// implementation's times from the shared fixtures (measured on this kind of machine), and
/// re-thresholding plus outline tracing of a 1024 x 1024 log-NFA map.
pub fn nfa(repeat: usize) -> serde_json::Value {
    let mut rng = StdRng::seed_from_u64(1);
    let mut out = serde_json::Map::new();
    // Python reference seconds per image (sum over scales) from shared/fixtures/nfa/*/ref.json.
    // (name, [(channels, side)] per scale, Python seconds)
    type Layout = (&'static str, Vec<(usize, usize)>, f64);
    let layouts: [Layout; 2] = [
        (
            "ms_cait_816x28x28_192x14x14",
            vec![(816, 28), (192, 14)],
            0.02133 + 0.00418,
        ),
        (
            "resnet18_84x64x64_80x32x32_128x16x16",
            vec![(84, 64), (80, 32), (128, 16)],
            0.20828 + 0.02937 + 0.00525,
        ),
    ];
    for (name, scales, python_s) in layouts {
        let z: Vec<Array3<f32>> = scales
            .iter()
            .map(|&(c, s)| normal(&mut rng, c, s, s))
            .collect();
        let views: Vec<_> = z.iter().map(|a| a.view()).collect();
        let ours = time(repeat, || {
            acontrario::segment(&views, None, SegmentOptions::default())
        });
        out.insert(
            name.into(),
            serde_json::json!({
                "contrario_seconds": ours,
                "python_reference_seconds": python_s,
                "speedup": python_s / ours,
            }),
        );
    }
    // What drawing outlines by evidence costs, side by side with regions as tested: the default
    // U-Flow's latents (EfficientNet-Lite2 at 256 px) combined at 256 x 256, normal, and with a
    // strong defect (a core at 100x normal, its halo falling 2.5x per latent pixel), where the
    // halo floor and the rejoining of pieces do their work.
    for (key, defect) in [
        ("lite2_24x64x64_48x32x32_120x16x16_at_256", false),
        ("lite2_with_a_strong_defect_at_256", true),
    ] {
        let mut z: Vec<Array3<f32>> = [(24, 64), (48, 32), (120, 16)]
            .iter()
            .map(|&(c, s)| normal(&mut rng, c, s, s))
            .collect();
        if defect {
            for a in &mut z {
                let f = 64 / a.dim().1;
                for ((_, y, x), v) in a.indexed_iter_mut() {
                    let d = |p: usize| (p * f).abs_diff(31).saturating_sub(2) / f;
                    *v *= (100.0f32 / 2.5f32.powi(d(y).max(d(x)) as i32))
                        .max(1.0)
                        .sqrt();
                }
            }
        }
        let views: Vec<_> = z.iter().map(|a| a.view()).collect();
        let at = |outline| {
            let opts = SegmentOptions {
                outline,
                ..SegmentOptions::default()
            };
            time(repeat, || {
                acontrario::segment(&views, Some((256, 256)), opts)
            })
        };
        let (tested, evidence) = (at(OutlineRule::Tested), at(OutlineRule::Evidence));
        out.insert(
            key.into(),
            serde_json::json!({
                "tested_seconds": tested,
                "evidence_seconds": evidence,
                "evidence_over_tested": evidence / tested,
            }),
        );
    }
    // A 1024 x 1024 map with a few dozen blobs, as the viewer would get after upsampling.
    let mut map = Array2::<f32>::from_elem((1024, 1024), 50.0);
    for k in 0..40usize {
        let (cy, cx, r) = ((k * 397) % 980 + 20, (k * 613) % 980 + 20, 6 + k % 20);
        for y in cy.saturating_sub(r)..(cy + r).min(1024) {
            for x in cx.saturating_sub(r)..(cx + r).min(1024) {
                let d = ((y as f32 - cy as f32).powi(2) + (x as f32 - cx as f32).powi(2)).sqrt();
                map[(y, x)] = map[(y, x)].min(d - r as f32 * 0.8 - k as f32);
            }
        }
    }
    let th = time(repeat.max(20), || {
        acontrario::regions_at(&map, None, 0.0, 0.35)
    });
    let regions = acontrario::regions_at(&map, None, 0.0, 0.35).len();
    out.insert(
        "rethreshold_1024x1024".into(),
        serde_json::json!({"seconds": th, "regions": regions, "target_seconds": 0.005}),
    );
    serde_json::Value::Object(out)
}

/// The evaluation panel's work at a new NFA level against a whole evaluation, side by side on a
/// model's cached results for one category.
pub fn evaluation(
    project: &Path,
    model: &str,
    category: &str,
    repeat: usize,
) -> anyhow::Result<serde_json::Value> {
    use crate::project::evaluation::{Prepared, evaluate_with_curves};
    let p = crate::project::Project::open(project)?;
    let results = p
        .cached_test_results(model, category)
        .map_err(|missing| {
            anyhow::anyhow!(
                "{missing} test image(s) of {category:?} have no result of {model:?}: run `contrario infer` first"
            )
        })?;
    if results.is_empty() {
        anyhow::bail!("category {category:?} has no test images");
    }
    let levels = crate::app::models::curve_levels();
    let mut k = 0.0;
    let mut next_level = || {
        k += 1.0;
        -k
    };
    let whole = time(repeat, || {
        evaluate_with_curves(&p, &results, next_level(), &levels)
    });
    let prepared = Prepared::new(&p, &results, &levels)?;
    let at_level = time(repeat, || prepared.at(next_level()));
    Ok(serde_json::json!({
        "images": results.len(),
        "whole_seconds": whole,
        "at_another_level_seconds": at_level,
        "ratio": at_level / whole,
    }))
}

/// Peak and current resident memory of this process in MiB (Linux; None elsewhere).
fn memory_mib() -> Option<(f64, f64)> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse::<f64>()
            .ok()
            .map(|kb| kb / 1024.0)
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}

/// Generate a project of `n` images (`size` x `size` grey PNGs in 10 categories, pairs of views
/// as groups, two annotators' masks on every tenth image) under `dir`.
pub fn generate_scale_project(dir: &std::path::Path, n: usize, size: u32) -> anyhow::Result<()> {
    use crate::project::{Annotator, DefectClass, ImageEntry, Project, ProjectFile, Split};
    use rayon::prelude::*;
    std::fs::create_dir_all(dir.join("images"))?;
    std::fs::create_dir_all(dir.join("labels/a"))?;
    std::fs::create_dir_all(dir.join("labels/b"))?;
    let entries: Vec<ImageEntry> = (0..n)
        .into_par_iter()
        .map(|i| -> anyhow::Result<ImageEntry> {
            let img = image::GrayImage::from_fn(size, size, |x, y| {
                image::Luma([((x * 7 + y * 13 + i as u32 * 31) % 251) as u8])
            });
            let rel = std::path::PathBuf::from(format!("images/{i:05}.png"));
            img.save(dir.join(&rel))?;
            let mut e = ImageEntry {
                id: format!("img{i:05}"),
                path: rel,
                split: if i % 5 == 0 {
                    Split::Train
                } else {
                    Split::Test
                },
                category: format!("cat{}", i % 10),
                kind: if i % 10 == 3 { "defect" } else { "good" }.into(),
                group: format!("piece{}", i / 2),
                ..Default::default()
            };
            if i % 10 == 3 {
                // b's outline shifts from image to image: from nearly a's to far off it.
                for (who, off) in [("a", 0), ("b", 2 + 5 * ((i / 10) % 4) as u32)] {
                    let m = image::GrayImage::from_fn(size, size, |x, y| {
                        let inside = (10 + off..30 + off).contains(&x) && (10..30).contains(&y);
                        image::Luma([inside as u8])
                    });
                    let rel = std::path::PathBuf::from(format!("labels/{who}/{i:05}.png"));
                    m.save(dir.join(&rel))?;
                    e.labels.insert(who.to_string(), rel);
                }
            }
            Ok(e)
        })
        .collect::<anyhow::Result<_>>()?;
    let mut file = ProjectFile::new(format!("scale-{n}"));
    file.annotators = ["a", "b"]
        .iter()
        .map(|id| Annotator {
            id: id.to_string(),
            name: id.to_uppercase(),
            read_only: false,
        })
        .collect();
    file.classes.push(DefectClass {
        index: 1,
        name: "defect".into(),
        color: [255, 60, 60],
    });
    file.images = entries;
    Project {
        root: dir.to_path_buf(),
        file,
        saved: false,
        migrated_from: None,
    }
    .save()?;
    Ok(())
}

/// What opening a project costs in a fresh process: parsing `project.ron`, building the app
/// state the window draws (no image is decoded until it is shown), and memory.
pub fn project_open(dir: &std::path::Path) -> anyhow::Result<serde_json::Value> {
    // The process's own baseline: the binary with libtorch mapped, before any project.
    let (_, base) = memory_mib().unwrap_or((f64::NAN, f64::NAN));
    let t0 = Instant::now();
    let p = crate::project::Project::open(dir)?;
    let parse = t0.elapsed().as_secs_f64();
    let images = p.file.images.len();
    drop(p);
    let t1 = Instant::now();
    let mut state = crate::app::AppState::new(dir.to_path_buf());
    state.apply(crate::app::AppCommand::OpenProject(dir.to_path_buf()));
    let open = t1.elapsed().as_secs_f64();
    if !state.notices.is_empty() {
        anyhow::bail!("{}", state.notices[0].text);
    }
    let (peak, rss) = memory_mib().unwrap_or((f64::NAN, f64::NAN));
    Ok(serde_json::json!({
        "images": images,
        "parse_project_s": parse,
        "open_in_app_state_s": open,
        "peak_memory_mib": peak,
        "memory_at_start_mib": base,
        "memory_after_open_mib": rss,
        "memory_for_the_project_mib": rss - base,
    }))
}

/// The scale benchmark: generate a project of `n` images, open it in a fresh process (this
/// binary, `bench project-open`), and time thumbnails of its first images cold (decode, write the
/// disk cache) against warm (read the cache), side by side.
pub fn project_scale(
    n: usize,
    size: u32,
    keep: Option<&std::path::Path>,
) -> anyhow::Result<serde_json::Value> {
    let scratch = Scratch::new(keep)?;
    let dir = &scratch.dir;
    let t0 = Instant::now();
    generate_scale_project(dir, n, size)?;
    let generate = t0.elapsed().as_secs_f64();
    let out = std::process::Command::new(std::env::current_exe()?)
        .args(["bench", "project-open", "--project"])
        .arg(dir)
        .output()?;
    if !out.status.success() {
        anyhow::bail!("{}", String::from_utf8_lossy(&out.stderr));
    }
    let open: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let p = crate::project::Project::open(dir)?;
    let cache = dir.join("cache/thumbs");
    let sample: Vec<_> = p
        .file
        .images
        .iter()
        .take(200)
        .map(|e| p.image_path(e))
        .collect();
    let time_all = || -> anyhow::Result<f64> {
        let t = Instant::now();
        for path in &sample {
            crate::app::loader::thumbnail(path, Some(&cache))?;
        }
        Ok(t.elapsed().as_secs_f64() / sample.len().max(1) as f64)
    };
    let cold = time_all()?;
    let warm = time_all()?;
    Ok(serde_json::json!({
        "images": n,
        "image_size": size,
        "generate_s": generate,
        "open": open,
        "thumbnail_cold_ms": cold * 1e3,
        "thumbnail_warm_ms": warm * 1e3,
        "thumbnail_warm_over_cold": warm / cold,
    }))
}

/// Where a benchmark generates its project: `keep` when given (left there), else a fresh scratch
/// folder, removed when this is dropped (also on an error).
struct Scratch {
    dir: std::path::PathBuf,
    remove: bool,
}

impl Scratch {
    fn new(keep: Option<&std::path::Path>) -> anyhow::Result<Self> {
        if let Some(k) = keep {
            return Ok(Self {
                dir: k.to_path_buf(),
                remove: false,
            });
        }
        let d = std::env::temp_dir().join(format!("contrario-scale-{}", std::process::id()));
        if d.exists() {
            std::fs::remove_dir_all(&d)?;
        }
        std::fs::create_dir_all(&d)?;
        Ok(Self {
            dir: d,
            remove: true,
        })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The window's frame times (see `gui::bench`) on a generated project's labelled image of
/// `size` x `size`, with `frames` frames per run; the project is kept in `keep` if given.
pub fn gui(
    frames: usize,
    size: u32,
    keep: Option<&std::path::Path>,
) -> anyhow::Result<serde_json::Value> {
    let scratch = Scratch::new(keep)?;
    let dir = &scratch.dir;
    // Image 3 of a generated project carries labels by annotators a and b.
    generate_scale_project(dir, 4, size)?;
    crate::gui::bench::frames(dir, "img00003", "a", frames, 512, 200)
}

/// Flagged images reviewed by key in `bench review`.
const KEYBOARD_FLAGGED: usize = 100;

/// Keyboard-only review: a project of defective demo surfaces (scratches, stains and holes on
/// leather, wood and fabric, as the demo makes them) with the demo's shipped U-Flow models run
/// over them into the cache, opened in the window headless; `flagged` of them judged with one
/// verdict key each, timed from the key to the next flagged image drawn with its heatmap and
/// outlines (see `gui::bench::review_keys`).
pub fn review_keys(flagged: usize) -> anyhow::Result<serde_json::Value> {
    use crate::project::demo::{CATEGORIES, Defect, defective_sample};
    use crate::project::{ImageEntry, Project, ProjectFile, Split, storage};
    use rayon::prelude::*;
    let scratch = Scratch::new(None)?;
    let dir = &scratch.dir;
    let demo = crate::app::demo_project_dir();
    let model = crate::project::training::TrainingSettings::default().model_name();
    crate::project::copy_folder(
        &demo.join(crate::project::MODELS_DIR).join(&model),
        &dir.join(crate::project::MODELS_DIR).join(&model),
    )
    .map_err(|e| anyhow::anyhow!("the demo's {model} models ({}): {e}", demo.display()))?;
    // A few more than asked: a weak scratch may stay under the level.
    let n = flagged + flagged / 4;
    let kinds = [Defect::Scratch, Defect::Stain, Defect::Hole];
    let entries: Vec<ImageEntry> = (0..n)
        .into_par_iter()
        .map(|k| -> anyhow::Result<ImageEntry> {
            let (cat, kind) = (CATEGORIES[k % 3], kinds[(k / 3) % 3]);
            let (img, _) = defective_sample(cat, kind, 7000 + k as u64);
            let path = std::path::PathBuf::from(format!("images/{cat}/{k:04}.png"));
            storage::write_png_atomic(&dir.join(&path), &img)?;
            Ok(ImageEntry {
                id: format!("{cat}/test/{}/{k:04}", kind.name()),
                path,
                split: Split::Test,
                category: cat.into(),
                kind: kind.name().into(),
                ..Default::default()
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let mut file = ProjectFile::new("keyboard review");
    file.images = entries;
    let mut p = Project {
        root: dir.clone(),
        file,
        saved: false,
        migrated_from: None,
    };
    p.save()?;
    let p = Project::open(dir)?;
    let worker = crate::uflow::worker::Worker::spawn(Box::new(|| {}));
    let args = super::uflow::ModelArgs {
        project: dir.clone(),
        model: model.clone(),
        category: Vec::new(),
        test_count: None,
        outline: None,
    };
    let t = Instant::now();
    for cat in CATEGORIES {
        super::uflow::infer_category(&worker, &p, &args, cat)?;
    }
    let inference = t.elapsed().as_secs_f64();
    drop(worker);
    let mut v = crate::gui::bench::review_keys(dir, flagged)?;
    v["generated_images"] = n.into();
    v["inference_s_per_image"] = (inference / n as f64).into();
    Ok(v)
}

/// The review side at scale: a generated project of `n` images (`size` px, a tenth of them
/// labelled by two annotators), opened, analysed (facts of every image, the review queue) as the
/// window does after opening, then the image list filtered and sorted, median of `repeat` runs.
pub fn review(n: usize, size: u32, repeat: usize) -> anyhow::Result<serde_json::Value> {
    use crate::app::review::{ListFilter, SortKey, list_rows};
    use crate::project::overview::{self, project_facts};
    let scratch = Scratch::new(None)?;
    let dir = &scratch.dir;
    generate_scale_project(dir, n, size)?;
    let t0 = Instant::now();
    let p = crate::project::Project::open(dir)?;
    let opened = t0.elapsed().as_secs_f64();
    let decisions = overview::issue_decisions(&p.root)?;
    let (facts, problems) = project_facts(&p, &|_, _| None, 0.0, Default::default(), &decisions);
    let journal = overview::review_journal(&p.root)?;
    let verdicts = overview::latest_verdicts(&journal);
    let queue = overview::review_queue(&facts, 0.0);
    let ready = t0.elapsed().as_secs_f64();
    anyhow::ensure!(problems.is_empty(), "{problems:?}");
    let mut cases = serde_json::Map::new();
    let disputes = ListFilter {
        only_disagreements: true,
        ..Default::default()
    };
    let one_category = ListFilter {
        category: Some("cat3".into()),
        kind: Some("defect".into()),
        ..Default::default()
    };
    for (name, filter, sort) in [
        ("all, by name", ListFilter::default(), SortKey::Name),
        (
            "all, by disagreement",
            ListFilter::default(),
            SortKey::Disagreement,
        ),
        (
            "disagreements, by disagreement",
            disputes,
            SortKey::Disagreement,
        ),
        (
            "a category's defects, by score",
            one_category,
            SortKey::Score,
        ),
    ] {
        let mut rows = 0;
        let s = time(repeat, || {
            rows = list_rows(&p, &facts, &verdicts, &filter, sort, 0.0).len();
        });
        cases.insert(
            name.into(),
            serde_json::json!({"rows": rows, "milliseconds": s * 1e3}),
        );
    }
    drop(scratch);
    let keyboard = review_keys(KEYBOARD_FLAGGED)?;
    Ok(serde_json::json!({
        "next_flagged_median_ms": keyboard["next_flagged_median_ms"],
        "next_flagged_p95_ms": keyboard["next_flagged_p95_ms"],
        "keyboard": keyboard,
        "images": n,
        "labelled_images": facts.iter().filter(|f| !f.annotators.is_empty()).count(),
        "open_s": opened,
        "queue_ready_after_open_s": ready,
        "queue_length": queue.len(),
        "list": cases,
    }))
}
