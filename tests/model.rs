//! U-Flow training, model files and inference on the demo project's leather images.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use contrario::project::model_file::TrainConfig;
use contrario::project::training::Progress;
use contrario::stats::acontrario::{SegmentOptions, TestCount};
use contrario::uflow::model::Model;
use std::sync::Mutex;

/// libtorch's random generator is process-wide: tests that seed it must not interleave.
static TORCH: Mutex<()> = Mutex::new(());
use contrario::project::{Project, Split};

fn demo() -> Project {
    Project::open(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("projects/demo")).unwrap()
}

fn paths(p: &Project, split: Split, category: &str, kind: Option<&str>) -> Vec<PathBuf> {
    p.file
        .images
        .iter()
        .filter(|e| e.split == split && e.category == category && kind.is_none_or(|k| e.kind == k))
        .map(|e| p.image_path(e))
        .collect()
}

/// One epoch at 64 px on the smallest backbone, Lite0: enough to exercise files, errors and
/// caches, not quality.
fn quick_config() -> TrainConfig {
    TrainConfig {
        input_size: 64,
        epochs: 1,
        builtin: "efficientnet-lite0".into(),
        ..TrainConfig::default()
    }
}

/// A quick model on the first three training images of a demo category.
fn quick_model(p: &Project, category: &str) -> Model {
    let train = paths(p, Split::Train, category, None);
    Model::train(
        &train[..3],
        &quick_config(),
        tch::Device::Cpu,
        &AtomicBool::new(false),
        |_| {},
    )
    .unwrap()
}

#[test]
fn trains_saves_loads_and_infers_deterministically() {
    let _torch = TORCH.lock().unwrap_or_else(|e| e.into_inner());
    let p = demo();
    let train = paths(&p, Split::Train, "leather", None);
    assert_eq!(train.len(), 10);
    let cfg = TrainConfig {
        input_size: 128,
        epochs: 6,
        batch_size: 4,
        builtin: "efficientnet-lite0".into(),
        ..TrainConfig::default()
    };
    let cancel = AtomicBool::new(false);
    let mut epochs = Vec::new();
    let model = Model::train(&train, &cfg, tch::Device::Cpu, &cancel, |pr| {
        if let Progress::Epoch { record, .. } = pr {
            epochs.push(record.validation_nll);
        }
    })
    .unwrap();
    assert_eq!(epochs.len(), 6);
    // The model keeps the curve, per latent dimension, and the epoch it chose is its minimum.
    let h = &model.file.history;
    assert_eq!(
        h.iter().map(|r| r.validation_nll).collect::<Vec<_>>(),
        epochs
    );
    assert_eq!(
        contrario::project::training::best_epoch(h).map(|r| r.epoch),
        Some(model.file.best_epoch)
    );
    assert!(h.windows(2).all(|w| w[1].seconds >= w[0].seconds));
    assert!(model.file.train_seconds >= h[5].seconds);
    assert!(
        epochs.last().unwrap() < epochs.first().unwrap(),
        "validation NLL should fall: {epochs:?}"
    );
    let cal = &model.file.calibration;
    assert_eq!(cal.validation_images, 2);
    assert_eq!(cal.mean_z2_per_scale.len(), 3);
    assert!(
        cal.mean_z2_per_scale
            .iter()
            .all(|v| v.is_finite() && *v > 0.0)
    );

    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path()).unwrap();
    let loaded = Model::load(dir.path(), tch::Device::Cpu).unwrap();
    assert_eq!(loaded.file, model.file);
    let img = paths(&p, Split::Test, "leather", Some("hole"))[0].clone();
    let a = model.infer(&img).unwrap();
    let b = loaded.infer(&img).unwrap();
    assert_eq!(a.anomaly_map.dim(), (128, 128));
    let diff = a
        .anomaly_map
        .iter()
        .zip(b.anomaly_map.iter())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(
        diff < 1e-5,
        "a reloaded model must give the same map ({diff})"
    );
    assert_eq!(
        a.latents.iter().map(|z| z.dim().0).collect::<Vec<_>>(),
        vec![30, 30, 56]
    );
    assert!((0.0..=1.0).contains(&a.image_score));

    // The calibration's per-scale correction: min(1, 1/sqrt(validation mean z^2)), applied to
    // the latents.
    let k = &model.file.calibration.latent_scale;
    assert_eq!(k.len(), 3);
    for (k, m) in k.iter().zip(&cal.mean_z2_per_scale) {
        if *m > 1.0 {
            assert!((k * k * m - 1.0).abs() < 1e-9);
        } else {
            assert_eq!(*k, 1.0);
        }
    }
    let mut raw = Model::load(dir.path(), tch::Device::Cpu).unwrap();
    raw.file.calibration.latent_scale.clear();
    let x = contrario::uflow::model::preprocess(&img, 128, None).unwrap();
    for ((zc, zr), k) in model.latents(&x).iter().zip(raw.latents(&x)).zip(k) {
        let d = (zc - zr * *k).abs().max().double_value(&[]);
        assert!(
            d < 1e-5,
            "corrected latents are the raw ones times the factor ({d})"
        );
    }

    // Same seed, same data: the same model.
    let again = Model::train(&train, &cfg, tch::Device::Cpu, &cancel, |_| {}).unwrap();
    assert_eq!(again.file.calibration, model.file.calibration);
}

#[test]
fn a_cancelled_training_resumes_and_ends_where_an_uninterrupted_one_does() {
    let _torch = TORCH.lock().unwrap_or_else(|e| e.into_inner());
    let p = demo();
    let train = paths(&p, Split::Train, "wood", None);
    let cfg = TrainConfig {
        input_size: 64,
        epochs: 4,
        batch_size: 2,
        ..TrainConfig::default()
    };
    let no = AtomicBool::new(false);
    let full = Model::train(&train[..5], &cfg, tch::Device::Cpu, &no, |_| {}).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let images = &train[..5];
    // Train with `cfg`, cancelling once epoch `stop` (0-based) has ended.
    let cancelled_after = |cfg: &TrainConfig, stop: usize| {
        let cancel = AtomicBool::new(false);
        Model::train_resumable(
            images,
            cfg,
            tch::Device::Cpu,
            &cancel,
            |pr| {
                if let Progress::Epoch { record, .. } = pr
                    && record.epoch == stop
                {
                    cancel.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            },
            Some(dir.path()),
        )
    };
    // Train with `cfg` to the end: the model and the epochs it resumed after, if it did.
    let to_the_end = |cfg: &TrainConfig| {
        let mut resumed = None;
        let m = Model::train_resumable(
            images,
            cfg,
            tch::Device::Cpu,
            &no,
            |pr| {
                if let Progress::Resumed { epochs_done } = pr {
                    resumed = Some(epochs_done);
                }
            },
            Some(dir.path()),
        )
        .unwrap();
        (m, resumed)
    };

    assert!(
        cancelled_after(&cfg, 1).is_err(),
        "cancelled in the third epoch"
    );
    assert!(dir.path().join(".checkpoint.json").exists());
    let (m, resumed) = to_the_end(&cfg);
    assert_eq!(resumed, Some(2));
    assert_eq!(m.file.best_epoch, full.file.best_epoch);
    assert_eq!(m.file.calibration, full.file.calibration);
    // The resumed model keeps the epochs of before the interruption in its history.
    let losses = |f: &contrario::project::model_file::ModelFile| {
        f.history
            .iter()
            .map(|r| (r.epoch, r.train_loss, r.validation_nll))
            .collect::<Vec<_>>()
    };
    assert_eq!(losses(&m.file), losses(&full.file));
    let (a, b) = (m.weights(), full.weights());
    for (k, t) in &a {
        let d = (t - &b[k]).abs().max().double_value(&[]);
        assert_eq!(d, 0.0, "{k} differs after resuming");
    }
    assert!(
        !dir.path().join(".checkpoint.json").exists(),
        "a finished training removes its checkpoint"
    );

    // A checkpoint of other settings is not resumed from.
    let _ = cancelled_after(&cfg, 0);
    let (_, resumed) = to_the_end(&TrainConfig { epochs: 2, ..cfg });
    assert_eq!(resumed, None);
}

#[test]
fn every_builtin_backbone_and_taps_train_save_reload_and_infer_the_same_latents() {
    let _torch = TORCH.lock().unwrap_or_else(|e| e.into_inner());
    let p = demo();
    let train = paths(&p, Split::Train, "fabric", None);
    let img = paths(&p, Split::Test, "fabric", Some("hole"))[0].clone();
    let train_with = |builtin: &str, first_stride: i64| {
        let cfg = TrainConfig {
            builtin: builtin.into(),
            first_stride,
            ..quick_config()
        };
        Model::train(
            &train[..3],
            &cfg,
            tch::Device::Cpu,
            &AtomicBool::new(false),
            |_| {},
        )
    };
    for (builtin, stride, name) in [
        ("efficientnet-lite1", 4, "efficientnet-lite1"),
        ("efficientnet-lite2", 8, "efficientnet-lite2-s8"),
        // The old name of Lite0's coarse taps still trains the same backbone.
        ("efficientnet-lite0-s8", 4, "efficientnet-lite0-s8"),
    ] {
        let model = train_with(builtin, stride).unwrap();
        assert_eq!(model.file.backbone, name);
        let dir = tempfile::tempdir().unwrap();
        model.save(dir.path()).unwrap();
        let loaded = Model::load(dir.path(), tch::Device::Cpu).unwrap();
        assert_eq!(
            loaded.file.backbone, name,
            "the model remembers its backbone and taps"
        );
        let (a, b) = (model.infer(&img).unwrap(), loaded.infer(&img).unwrap());
        // 64 px input: the finest map is 64 / stride.
        let s = if name.ends_with("-s8") { 8 } else { 4 };
        assert_eq!(
            b.latents.iter().map(|z| z.dim().1).collect::<Vec<_>>(),
            vec![64 / s, 32 / s, 16 / s],
            "{name}"
        );
        for (za, zb) in a.latents.iter().zip(&b.latents) {
            let d = (za - zb).iter().fold(0f32, |m, v| m.max(v.abs()));
            assert!(d < 1e-5, "{name}: reloaded latents differ by {d}");
        }
    }
    let e = train_with("resnet", 4).err().unwrap().to_string();
    assert!(e.contains("no built-in backbone \"resnet\""), "{e}");
}

#[test]
fn damaged_or_foreign_model_files_are_refused_clearly() {
    let _torch = TORCH.lock().unwrap_or_else(|e| e.into_inner());
    let p = demo();
    let train = paths(&p, Split::Train, "wood", None);
    let cfg = quick_config();
    let model = quick_model(&p, "wood");
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path()).unwrap();
    let ron = std::fs::read_to_string(dir.path().join("model.ron")).unwrap();

    std::fs::write(
        dir.path().join("model.ron"),
        ron.replace("efficientnet-lite0", "wide_resnet50_2"),
    )
    .unwrap();
    let e = Model::load(dir.path(), tch::Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("wide_resnet50_2"), "{e}");

    std::fs::write(
        dir.path().join("model.ron"),
        ron.replace("format_version: 1", "format_version: 9"),
    )
    .unwrap();
    let e = Model::load(dir.path(), tch::Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("model format 9"), "{e}");

    std::fs::write(dir.path().join("model.ron"), &ron).unwrap();
    let w = std::fs::read(dir.path().join("weights.safetensors")).unwrap();
    // Cut in the tensors, in the header, and in the header's length.
    for cut in [w.len() / 2, 18, 4] {
        std::fs::write(dir.path().join("weights.safetensors"), &w[..cut]).unwrap();
        let e = Model::load(dir.path(), tch::Device::Cpu)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("damaged"), "cut at {cut}: {e}");
    }

    let cancel = AtomicBool::new(true);
    let stopped = Model::train(&train, &cfg, tch::Device::Cpu, &cancel, |_| {});
    assert!(stopped.is_err());
    // A cancel, which the worker reports as such rather than as a failure.
    assert!(
        stopped
            .err()
            .is_some_and(|e| e.is::<contrario::uflow::model::Cancelled>())
    );
}

#[test]
fn a_torchscript_backbone_trains_saves_and_reloads() {
    let _torch = TORCH.lock().unwrap_or_else(|e| e.into_inner());
    let p = demo();
    let train = paths(&p, Split::Train, "fabric", None);
    let ts = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny_backbone.pt");
    let cfg = TrainConfig {
        input_size: 64,
        epochs: 2,
        backbone: Some(ts.clone()),
        ..TrainConfig::default()
    };
    let model = Model::train(
        &train[..4],
        &cfg,
        tch::Device::Cpu,
        &AtomicBool::new(false),
        |_| {},
    )
    .unwrap();
    assert_eq!(model.file.backbone, "torchscript:tiny_backbone.pt");
    assert_eq!(model.file.shape.channels, vec![8, 12, 16]);
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path()).unwrap();
    let loaded = Model::load(dir.path(), tch::Device::Cpu).unwrap();
    let img = paths(&p, Split::Test, "fabric", Some("hole"))[0].clone();
    assert_eq!(loaded.infer(&img).unwrap().anomaly_map.dim(), (64, 64));
}

#[test]
fn inference_cache_is_reused_and_invalidated_when_the_image_changes() {
    let _torch = TORCH.lock().unwrap_or_else(|e| e.into_inner());
    let p = demo();
    let model = quick_model(&p, "wood");
    let dir = tempfile::tempdir().unwrap();
    let mdir = dir.path().join("model");
    model.save(&mdir).unwrap();
    let cache = dir.path().join("cache");
    let img = dir.path().join("img.png");
    std::fs::copy(
        paths(&p, Split::Test, "wood", Some("hole"))[0].clone(),
        &img,
    )
    .unwrap();
    let count = || std::fs::read_dir(&cache).map(|d| d.count()).unwrap_or(0);
    let (a, hit) = model
        .infer_cached(&mdir, "x", &img, Some(&cache), None)
        .unwrap();
    assert!(!hit, "nothing cached yet");
    assert_eq!(
        count(),
        4,
        "the log NFA, the anomaly map, the scales and the summary"
    );
    let (b, hit) = model
        .infer_cached(&mdir, "x", &img, Some(&cache), None)
        .unwrap();
    assert!(hit, "the second call reads the cache");
    assert_eq!(a, b, "and reads back what was computed");
    assert_eq!(
        count(),
        4,
        "the log NFA, the anomaly map, the scales and the summary"
    );
    // A different image under the same name gets a different result, in place of the old one.
    std::fs::copy(
        paths(&p, Split::Test, "wood", Some("good"))[0].clone(),
        &img,
    )
    .unwrap();
    let (c, hit) = model
        .infer_cached(&mdir, "x", &img, Some(&cache), None)
        .unwrap();
    assert!(!hit, "a changed image is recomputed");
    assert_eq!(
        count(),
        4,
        "the stale entry is replaced, not kept beside the new one"
    );
    assert_ne!(a.anomaly_map, c.anomaly_map);
    let (d, hit) = model
        .infer_cached(&mdir, "x", &img, Some(&cache), None)
        .unwrap();
    assert!(hit && c == d, "and the new one is read back");
    // Damaged metadata is a miss, recomputed, never an error.
    std::fs::write(cache.join("x.json"), b"{not json").unwrap();
    let (e, hit) = model
        .infer_cached(&mdir, "x", &img, Some(&cache), None)
        .unwrap();
    assert!(!hit);
    assert_eq!(c.anomaly_map, e.anomaly_map);
    // A map changed behind its metadata's back (torn by a power cut: the cache is written without
    // fsync, or edited) fails its checksum: a miss, recomputed, never served.
    let forged = ndarray::Array2::<f32>::from_elem(e.anomaly_map.dim(), 0.123);
    let (h, w) = forged.dim();
    contrario::project::storage::write_npy_f32(
        &cache.join("x.map.npy"),
        &[h, w],
        forged.iter().copied(),
    )
    .unwrap();
    let (f, hit) = model
        .infer_cached(&mdir, "x", &img, Some(&cache), None)
        .unwrap();
    assert!(
        !hit,
        "a map that is not the one its metadata vouches for is not a hit"
    );
    assert_eq!(f.anomaly_map, e.anomaly_map);
    let (_, hit) = model
        .infer_cached(&mdir, "x", &img, Some(&cache), None)
        .unwrap();
    assert!(hit, "and the rewritten entry is read back");
    // Another count of tests is another result: computed, not read, and its maps differ.
    let thesis = Some(SegmentOptions::with_count(TestCount::Thesis));
    let (g, hit) = model
        .infer_cached(&mdir, "x", &img, Some(&cache), thesis)
        .unwrap();
    assert!(!hit);
    assert_ne!(g.log_nfa, e.log_nfa);
    let (_, hit) = model
        .infer_cached(&mdir, "x", &img, Some(&cache), thesis)
        .unwrap();
    assert!(hit);
}
