//! The binary's subcommands, run as a user would.

use std::process::Command;

fn contrario() -> Command {
    Command::new(env!("CARGO_BIN_EXE_contrario"))
}

/// A folder of ../shared/data.
fn shared_data(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data")
        .join(name)
}

/// `contrario import --project DIR --format FORMAT DATA`: the process output.
fn import(dir: &std::path::Path, format: &str, data: &std::path::Path) -> std::process::Output {
    contrario()
        .args(["import", "--project"])
        .arg(dir)
        .args(["--format", format])
        .arg(data)
        .output()
        .unwrap()
}

#[test]
fn info_reports_libtorch_and_the_builtin_backbone() {
    let out = contrario().args(["info", "--json"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v["torch"]["libtorch_version"]
            .as_str()
            .unwrap()
            .starts_with("2.13.0")
    );
    assert_eq!(v["builtin_backbone"]["tensors"], 296);
}

#[test]
fn demo_refuses_to_overwrite_without_force() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("project.ron"), "x").unwrap();
    let out = contrario()
        .args(["demo", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
}

#[test]
fn unknown_subcommand_exits_non_zero() {
    let out = contrario().arg("frobnicate").output().unwrap();
    assert!(!out.status.success());
}

#[test]
fn segment_writes_maps_and_regions_and_reports_timing() {
    let latents = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/nfa/cait_blob_1p5");
    let out = tempfile::tempdir().unwrap();
    let run = contrario()
        .args(["segment", "--latents"])
        .arg(&latents)
        .arg("--out")
        .arg(out.path())
        .args([
            "--parity",
            "--size",
            "56x56",
            "--repeat",
            "3",
            "--json",
            "--threshold",
            "-1",
        ])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert!(v["seconds_per_image"].as_f64().unwrap() > 0.0);
    assert!((v["log10_nt"].as_f64().unwrap() - 476.924).abs() < 1e-3);
    assert_eq!(v["regions"], 1);
    let nfa = contrario::npy::read_f32(&out.path().join("log_nfa.npy")).unwrap();
    assert_eq!(nfa.shape(), &[56, 56]);
    let p2 = contrario::npy::read_f32(&out.path().join("log_pfa_2.npy")).unwrap();
    assert_eq!(p2.shape(), &[14, 14]);
    let regions: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("regions.json")).unwrap())
            .unwrap();
    let r = &regions["regions"][0];
    assert!(r["outlines"][0].as_array().unwrap().len() >= 4);
    assert!(r["log10_nfa"].as_f64().unwrap() < -400.0);
}

#[test]
fn segment_bad_input_fails_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let segment = |extra: &[&str]| {
        contrario()
            .args(["segment", "--latents"])
            .arg(dir.path())
            .arg("--out")
            .arg(dir.path())
            .args(extra)
            .output()
            .unwrap()
    };
    let run = segment(&[]);
    assert_eq!(run.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&run.stderr).contains("no latents"));
    std::fs::write(dir.path().join("z_1.npy"), b"\x93NUMPY\x01\x00garbage").unwrap();
    let run = segment(&[]);
    assert_eq!(run.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&run.stderr).contains("z_1.npy"));
    assert_eq!(segment(&["--size", "big"]).status.code(), Some(1));
}

#[test]
fn detect_runs_the_training_free_detector_on_an_image() {
    let out = tempfile::tempdir().unwrap();
    let image = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("projects/demo/images/wood/test/hole/002.png");
    let run = contrario()
        .args(["detect", "--image"])
        .arg(&image)
        .arg("--out")
        .arg(out.path())
        .args(["--components", "12", "--patch", "9", "--scales", "2"])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let nfa = contrario::npy::read_f32(&out.path().join("log_nfa.npy")).unwrap();
    assert_eq!(nfa.shape(), &[256, 256]);
    // The planted hole is detected where the ground truth says.
    let gt = image::open(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("projects/demo/labels/gt/wood/test/hole/002.png"),
    )
    .unwrap()
    .to_luma8();
    let (mut inside, mut n) = (f32::INFINITY, 0);
    for (x, y, p) in gt.enumerate_pixels() {
        if p.0[0] != 0 {
            inside = inside.min(nfa[[y as usize, x as usize]]);
            n += 1;
        }
    }
    assert!(
        n > 0 && inside < 0.0,
        "hole not detected: min log NFA {inside}"
    );
    assert!(out.path().join("anomaly_score.png").exists());
    let bad = contrario()
        .args(["detect", "--image", "/nonexistent.png"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
}

#[test]
fn import_mvtec_counts_the_shared_data() {
    let dir = tempfile::tempdir().unwrap();
    let data = shared_data("mvtec_ad");
    let run = import(dir.path(), "mvtec", &data);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(
        v["leather"],
        serde_json::json!({"images": 19, "train_normal": 4, "test": 15, "ground_truth_masks": 11})
    );
    assert_eq!(v["bottle"]["train_normal"], 40);
    assert_eq!(v["bottle"]["ground_truth_masks"], 8);
    let p = contrario::project::Project::open(dir.path()).unwrap();
    assert!(
        p.file
            .annotators
            .iter()
            .any(|a| a.id == "gt" && a.read_only)
    );
    // Importing again replaces, never duplicates.
    contrario()
        .args(["import", "--project"])
        .arg(dir.path())
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(
        contrario::project::Project::open(dir.path())
            .unwrap()
            .file
            .images
            .len(),
        p.file.images.len()
    );
    let bad = import(dir.path(), "visa", std::path::Path::new("/nonexistent"));
    assert_eq!(bad.status.code(), Some(1));
}

#[test]
fn train_infer_eval_on_a_project() {
    let dir = tempfile::tempdir().unwrap();
    let demo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("projects/demo");
    let copy = std::process::Command::new("cp")
        .arg("-r")
        .arg(&demo)
        .arg(dir.path().join("p"))
        .status()
        .unwrap();
    assert!(copy.success());
    let p = dir.path().join("p");
    // Several categories and none chosen: a clear refusal.
    let run = contrario()
        .args(["train", "--project"])
        .arg(&p)
        .args(["--model", "m"])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&run.stderr).contains("--category"));
    let run = contrario()
        .args(["train", "--project"])
        .arg(&p)
        .args([
            "--model",
            "m",
            "--category",
            "fabric",
            "--epochs",
            "2",
            "--input-size",
            "64",
        ])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(p.join("models/m/fabric/weights.safetensors").exists());
    let run = contrario()
        .args(["eval", "--project"])
        .arg(&p)
        .args(["--model", "m", "--category", "fabric", "--json"])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let c = &v["categories"]["fabric"];
    for k in [
        "pixel_auroc",
        "aupro",
        "image_auroc",
        "miou_nfa",
        "miou_oracle",
        "false_alarms_per_normal_image",
    ] {
        assert!(c[k].is_number(), "{k} missing: {c}");
    }
    assert!(c["miou_oracle"].as_f64() >= c["miou_nfa"].as_f64());
    assert_eq!(c["mean_z2_per_scale"].as_array().unwrap().len(), 3);
    assert!(v["overall"]["pixel_auroc"].is_number());
    // Results were cached: a second evaluation reads them back and agrees.
    let cached = std::fs::read_dir(p.join("cache/m/fabric")).unwrap().count();
    assert_eq!(cached, 8 * 3, "three files per test image");
    let again = contrario()
        .args(["eval", "--project"])
        .arg(&p)
        .args(["--model", "m", "--category", "fabric", "--json"])
        .output()
        .unwrap();
    let w: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(w["categories"]["fabric"]["pixel_auroc"], c["pixel_auroc"]);
    // A model that does not exist.
    let run = contrario()
        .args(["eval", "--project"])
        .arg(&p)
        .args(["--model", "nope", "--category", "fabric"])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&run.stderr).contains("no model"));
}

#[test]
fn import_magnetic_tile_splits_normals_and_keeps_masks() {
    let dir = tempfile::tempdir().unwrap();
    let run = import(dir.path(), "magnetic-tile", &shared_data("magnetic_tile"));
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(
        v["magnetic_tile"],
        serde_json::json!({"images": 1344, "train_normal": 714, "test": 630, "ground_truth_masks": 392})
    );
    let wrong = import(dir.path(), "magnetic-tile", &shared_data("mvtec_ad"));
    assert_eq!(wrong.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("not the Magnetic-tile set"));
}
