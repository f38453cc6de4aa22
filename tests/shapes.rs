//! Real inputs come in every size, shape and format. Each image of a shape matrix (1 x 1, one row,
//! one column, 3 x 3, 17 x 17, line-scan 4096 x 200 both ways, odd sizes, 16-bit grey, RGBA with
//! transparency, a palette PNG, a CMYK JPEG, 20000 x 300 beyond the GPU's texture limit) goes
//! through import, the window (image list, viewer, the readout under the cursor, detection), the
//! training-free detector on the command line, U-Flow training and inference, segmentation and
//! export. Each works or ends in a clear message; the process never aborts.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;

use contrario::app::AppCommand;
use contrario::gui::ContrarioApp;
use contrario::project::Project;
use contrario::project::autosave::Autosaver;
use contrario::project::labels::{Edit, LabelStore};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

/// (file name, width, height) of the matrix; the fixtures' sizes are fixed by the files.
const SHAPES: [(&str, u32, u32); 13] = [
    ("a_1x1.png", 1, 1),
    ("b_row_300x1.png", 300, 1),
    ("c_column_1x300.png", 1, 300),
    ("d_3x3.png", 3, 3),
    ("e_17x17.png", 17, 17),
    ("f_linescan_4096x200.png", 4096, 200),
    ("g_linescan_200x4096.png", 200, 4096),
    ("h_odd_333x217.png", 333, 217),
    ("i_grey16_64x48.png", 64, 48),
    ("j_rgba_50x40.png", 50, 40),
    ("k_palette.png", 29, 31),
    ("l_cmyk.jpg", 37, 23),
    ("m_wide_20000x300.png", 20000, 300),
];

/// Smallest side the training-free detector analyses (its 17-pixel patch).
const MIN_SIDE: u32 = 17;

mod window;
use window::settle;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/shapes")
}

/// Write the matrix into `dir`: generated images, and the palette PNG and CMYK JPEG fixtures
/// (which the image crate cannot write).
fn write_matrix(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let texture = |x: u32, y: u32| ((x * 37 + y * 91) % 251) as u8;
    for (name, w, h) in SHAPES {
        let p = dir.join(name);
        match name {
            "i_grey16_64x48.png" => {
                image::ImageBuffer::<image::Luma<u16>, _>::from_fn(w, h, |x, y| {
                    image::Luma([texture(x, y) as u16 * 257])
                })
                .save(&p)
                .unwrap();
            }
            "j_rgba_50x40.png" => {
                image::RgbaImage::from_fn(w, h, |x, y| {
                    image::Rgba([texture(x, y), 40, 200, if x < w / 2 { 0 } else { 255 }])
                })
                .save(&p)
                .unwrap();
            }
            "k_palette.png" => {
                std::fs::copy(fixtures().join("palette.png"), &p).unwrap();
            }
            "l_cmyk.jpg" => {
                std::fs::copy(fixtures().join("cmyk.jpg"), &p).unwrap();
            }
            _ => {
                image::RgbImage::from_fn(w, h, |x, y| image::Rgb([texture(x, y), 90, 60]))
                    .save(&p)
                    .unwrap();
            }
        }
    }
}

fn contrario() -> Command {
    Command::new(env!("CARGO_BIN_EXE_contrario"))
}

#[test]
fn every_shape_imports_decodes_labels_and_exports() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_matrix(&data);
    let root = dir.path().join("project");
    let counts = contrario::project::import::import(&root, "folder", &data).unwrap();
    let images: usize = counts.values().map(|c| c.images).sum();
    assert_eq!(images, SHAPES.len(), "{counts:?}");
    assert!(counts.values().all(|c| c.problems.is_empty()), "{counts:?}");
    let mut p = Project::open(&root).unwrap();
    for (name, w, h) in SHAPES {
        let e = p
            .file
            .images
            .iter()
            .find(|e| e.path.ends_with(name))
            .unwrap();
        let rgba = contrario::project::imaging::load_rgba(&p.image_path(e)).unwrap();
        assert_eq!(rgba.dimensions(), (w, h), "{name}");
    }
    // A label on each, exported three ways.
    p.ensure_annotator("ann", "Ann");
    p.file.classes.push(contrario::project::DefectClass {
        index: 1,
        name: "defect".into(),
        color: [255, 0, 0],
    });
    let mut store = LabelStore::new(Autosaver::new());
    let ids: Vec<String> = p.file.images.iter().map(|e| e.id.clone()).collect();
    for id in &ids {
        let edit = Edit::Brush {
            class: 1,
            radius: 2.0,
            points: vec![[0.5, 0.5], [2.5, 0.5]],
        };
        let out = store.edit(&mut p, id, "ann", edit).unwrap();
        assert!(out.pixels_changed >= 1, "{id}");
        store.end_stroke(id, "ann");
    }
    assert!(store.flush().is_empty());
    let masks = dir.path().join("masks");
    let s = contrario::project::export::export_masks(&p, &mut store, "ann", &masks).unwrap();
    assert_eq!(s.masks, SHAPES.len());
    let coco = dir.path().join("coco.json");
    let s = contrario::project::export::export_coco(&p, &mut store, "ann", &coco).unwrap();
    assert_eq!(s.annotations, SHAPES.len());
    let csv = dir.path().join("report.csv");
    contrario::project::export::export_csv(&p, &mut store, None, &csv).unwrap();
    let rows = std::fs::read_to_string(&csv).unwrap().lines().count();
    assert_eq!(rows, SHAPES.len() + 1);
}

#[test]
fn the_training_free_detector_answers_every_shape() {
    let dir = tempfile::tempdir().unwrap();
    write_matrix(dir.path());
    for (name, w, h) in SHAPES {
        let out = dir.path().join(format!("out-{name}"));
        let run = contrario()
            .args(["detect", "--image"])
            .arg(dir.path().join(name))
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&run.stderr);
        if w.min(h) < MIN_SIDE {
            assert_eq!(run.status.code(), Some(1), "{name}: {err}");
            assert!(
                err.contains("needs at least 17 pixels a side"),
                "{name}: {err}"
            );
            assert!(err.contains(name), "the message names the file: {err}");
        } else {
            assert!(run.status.success(), "{name}: {err}");
            let map = contrario::stats::npy::read_f32(&out.join("log_nfa.npy")).unwrap();
            assert!(map.iter().all(|v| v.is_finite()), "{name}");
            // The analysed map keeps the image's aspect.
            let (mh, mw) = (map.shape()[0] as f64, map.shape()[1] as f64);
            let aspect = (mw / mh) / (w as f64 / h as f64);
            assert!((0.9..1.1).contains(&aspect), "{name}: {mh}x{mw}");
        }
    }
}

#[test]
fn u_flow_trains_on_mixed_sizes_and_infers_every_shape() {
    use contrario::project::model_file::TrainConfig;
    use contrario::uflow::model::Model;
    let dir = tempfile::tempdir().unwrap();
    write_matrix(dir.path());
    let paths: Vec<PathBuf> = SHAPES.iter().map(|s| dir.path().join(s.0)).collect();
    let cfg = TrainConfig {
        input_size: 64,
        epochs: 1,
        ..TrainConfig::default()
    };
    let model = Model::train(
        &paths,
        &cfg,
        tch::Device::Cpu,
        &AtomicBool::new(false),
        |_| {},
    )
    .unwrap();
    for p in &paths {
        let r = model.infer(p).unwrap();
        assert_eq!(r.anomaly_map.dim(), (64, 64), "{}", p.display());
        assert!(r.image_score.is_finite());
    }
}

#[test]
fn segmentation_takes_latents_of_any_shape() {
    use contrario::stats::acontrario::{SegmentOptions, regions_at, segment};
    for (c, h, w) in [
        (1, 1, 1),
        (3, 1, 40),
        (3, 40, 1),
        (2, 3, 3),
        (4, 17, 17),
        (2, 5, 7),
    ] {
        let z = ndarray::Array3::<f32>::from_shape_fn((c, h, w), |(k, y, x)| {
            ((k * 31 + y * 7 + x * 3) % 11) as f32 / 3.0 - 1.5
        });
        for opts in [SegmentOptions::default(), SegmentOptions::reference()] {
            let seg = segment(&[z.view()], Some((h * 3, w * 2)), opts);
            assert_eq!(seg.log_nfa.dim(), (h * 3, w * 2), "{c}x{h}x{w}");
            assert!(seg.log_nfa.iter().all(|v| !v.is_nan()), "{c}x{h}x{w}");
            let _ = regions_at(&seg.log_nfa, None, 0.0, 0.35);
        }
    }
}

fn harness(folder: &Path) -> Harness<'static, ContrarioApp> {
    let folder = folder.to_path_buf();
    let mut h = Harness::builder()
        .with_size(egui::Vec2::new(1200.0, 760.0))
        .with_render_cursor(false)
        .build_eframe(move |cc| ContrarioApp::new(&cc.egui_ctx, Some(folder)));
    settle(&mut h);
    h
}

#[test]
fn the_window_steps_through_every_shape_with_the_cursor_on_the_image() {
    let dir = tempfile::tempdir().unwrap();
    // A large image first and a small one next, as in the report of the crash.
    image::RgbImage::from_fn(1024, 1024, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 9])
    })
    .save(dir.path().join("0_big_1024.png"))
    .unwrap();
    image::RgbImage::from_pixel(48, 48, image::Rgb([200, 10, 10]))
        .save(dir.path().join("0_small_48.png"))
        .unwrap();
    write_matrix(dir.path());
    let mut h = harness(dir.path());
    let n = h.state().state.image_count();
    assert_eq!(n, SHAPES.len() + 2);
    // The big image first: point at its bottom-right corner.
    let big = (0..n)
        .find(|&i| h.state().state.project.as_ref().unwrap().file.images[i].id == "0_big_1024")
        .unwrap();
    h.state_mut().apply(AppCommand::Select(big));
    settle(&mut h);
    for _ in 0..n {
        // Near the bottom-right corner of a square image fitted into the view.
        let view = h.get_by_label("Image viewer").rect();
        let d = 0.45 * view.width().min(view.height());
        h.hover_at(view.center() + egui::vec2(d, d));
        h.run_steps(2);
        let (id, path) = {
            let state = &h.state().state;
            let p = state.project.as_ref().unwrap();
            let e = &p.file.images[state.selected.unwrap()];
            (e.id.clone(), p.image_path(e))
        };
        let (w, hh) = image::image_dimensions(&path).unwrap();
        h.get_by_label_contains(&format!("{id} · {w}×{hh}"));
        // Detect: regions, or a notice that says why not; never a crash.
        h.state_mut().apply(AppCommand::DetectSelected);
        settle(&mut h);
        let state = &h.state().state;
        let i = state.selected.unwrap();
        if w.min(hh) >= MIN_SIDE {
            assert!(
                state.detections.contains_key(&i),
                "{id}: {:?}",
                state.notices
            );
            h.get_by_label_contains("region(s)");
            // The readout under the cursor (the centre is on every image).
            let view = h.get_by_label("Image viewer").rect();
            h.hover_at(view.center());
            h.run_steps(2);
            let found = h
                .query_all_by(|n| {
                    n.value().is_some_and(|t| {
                        t.strip_prefix("log10 NFA ")
                            .is_some_and(|v| v.parse::<f32>().is_ok())
                    })
                })
                .next()
                .is_some();
            assert!(found, "{id}: no readout");
        } else {
            assert!(
                state
                    .notices
                    .iter()
                    .any(|n| n.text.contains("needs at least 17 pixels a side")),
                "{id}: {:?}",
                state.notices
            );
        }
        // Next image with the cursor still where it was.
        h.key_press(egui::Key::J);
        settle(&mut h);
    }
}
