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

/// The command succeeded; otherwise fail with what it printed on stderr.
fn assert_ok(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    // The reading end is closed before the command prints (`contrario info | head -0`).
    let mut child = contrario()
        .args(["info", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{:?}", out.status);
    }
}

#[test]
fn info_reports_libtorch_and_the_builtin_backbone() {
    let out = contrario().args(["info", "--json"]).output().unwrap();
    assert_ok(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v["torch"]["libtorch_version"]
            .as_str()
            .unwrap()
            .starts_with("2.13.0")
    );
    // The default backbone, EfficientNet-Lite2.
    assert_eq!(v["builtin_backbone"]["tensors"], 386);
    assert_eq!(v["builtin_backbone"]["name"], "efficientnet-lite2");
    // Every built-in backbone by its name, with its file.
    let all = v["builtin_backbones"].as_array().unwrap();
    let names: Vec<&str> = all.iter().map(|b| b["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "efficientnet-lite2",
            "efficientnet-lite0",
            "efficientnet-lite1"
        ]
    );
    for b in all {
        let file = b["path"].as_str().unwrap();
        let family = b["name"].as_str().unwrap().replace('-', "_");
        assert!(file.contains(&family), "{file} for {}", b["name"]);
    }
    // In words: each named beside its own file, none called Lite0 beside Lite2's weights.
    let out = contrario().arg("info").output().unwrap();
    assert_ok(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("built-in backbone"))
        .collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("built-in backbone efficientnet-lite2 (default): 386 tensors"));
    for l in lines {
        let name = l.split_whitespace().nth(2).unwrap().trim_end_matches(':');
        assert!(l.contains(&name.replace('-', "_")), "{l}");
    }
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
    assert_ok(&run);
    let v: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert!(v["seconds_per_image"].as_f64().unwrap() > 0.0);
    assert!((v["log10_nt"].as_f64().unwrap() - 476.924).abs() < 1e-3);
    assert_eq!(v["test_count"], "thesis");
    assert_eq!(v["regions"], 1);
    let nfa = contrario::stats::npy::read_f32(&out.path().join("log_nfa.npy")).unwrap();
    assert_eq!(nfa.shape(), &[56, 56]);
    let p2 = contrario::stats::npy::read_f32(&out.path().join("log_pfa_2.npy")).unwrap();
    assert_eq!(p2.shape(), &[14, 14]);
    let regions: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("regions.json")).unwrap())
            .unwrap();
    let r = &regions["regions"][0];
    assert!(r["outlines"][0].as_array().unwrap().len() >= 4);
    assert!(r["log10_nfa"].as_f64().unwrap() < -400.0);
    assert_eq!(v["outline"], "tested");
    // By default the blob is outlined by its evidence, a little smaller than as tested.
    let area = |extra: &[&str]| {
        let run = contrario()
            .args(["segment", "--latents"])
            .arg(&latents)
            .arg("--out")
            .arg(out.path())
            .args(["--size", "56x56", "--json"])
            .args(extra)
            .output()
            .unwrap();
        assert_ok(&run);
        let v: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
        let regions: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(out.path().join("regions.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(v["regions"], 1, "{extra:?}");
        (
            v["outline"].as_str().unwrap().to_string(),
            regions["regions"][0]["area"].as_u64().unwrap(),
        )
    };
    let (tested, evidence) = (area(&["--outline", "tested"]), area(&[]));
    assert_eq!(
        (tested.0.as_str(), evidence.0.as_str()),
        ("tested", "evidence")
    );
    assert!(
        evidence.1 < tested.1 && evidence.1 * 2 > tested.1,
        "{tested:?} {evidence:?}"
    );
    let bad = contrario()
        .args(["segment", "--latents"])
        .arg(&latents)
        .arg("--out")
        .arg(out.path())
        .args(["--outline", "wide"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("evidence or tested"));
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
    assert_ok(&run);
    let nfa = contrario::stats::npy::read_f32(&out.path().join("log_nfa.npy")).unwrap();
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
    assert_ok(&run);
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
    // Importing again succeeds and replaces, never duplicates.
    let again = contrario()
        .args(["import", "--project"])
        .arg(dir.path())
        .arg(&data)
        .output()
        .unwrap();
    assert_ok(&again);
    let counts: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert!(
        counts.as_object().is_some_and(|c| !c.is_empty()),
        "{counts}"
    );
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
    let p = dir.path().join("p");
    contrario::project::copy_folder(&demo, &p).unwrap();
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
    assert_ok(&run);
    assert!(p.join("models/m/fabric/weights.safetensors").exists());
    let models = contrario::project::Project::open(&p).unwrap().file.models;
    assert_eq!(models.len(), 1);
    assert_eq!(
        (models[0].name.as_str(), models[0].category.as_str()),
        ("m", "fabric")
    );
    assert_eq!(models[0].path, std::path::PathBuf::from("models/m/fabric"));
    let run = contrario()
        .args(["eval", "--project"])
        .arg(&p)
        .args(["--model", "m", "--category", "fabric", "--json"])
        .output()
        .unwrap();
    assert_ok(&run);
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
    // The demo's normals are like its training images: the promise is judged on all of them.
    assert_eq!(c["normals_unlike_training"], 0, "{c}");
    assert_eq!(
        c["false_alarms_per_normal_image_like_training"],
        c["false_alarms_per_normal_image"]
    );
    // Per defect kind: each against the normals, their shares of the defect pixels adding to 1.
    let kinds = c["per_kind"].as_object().unwrap();
    assert!(
        !kinds.is_empty() && !kinds.contains_key("good"),
        "{kinds:?}"
    );
    let share: f64 = kinds
        .values()
        .map(|k| k["share_of_defect_pixels"].as_f64().unwrap())
        .sum();
    assert!((share - 1.0).abs() < 1e-9, "shares add to {share}");
    assert!(
        kinds
            .values()
            .all(|k| k["pixel_auroc"].is_number() && k["image_auroc"].is_number())
    );

    assert_eq!(c["mean_z2_per_scale"].as_array().unwrap().len(), 3);
    assert!(v["overall"]["pixel_auroc"].is_number());
    // Results were cached: inference reads them back (each line says so) and agrees.
    let cached = std::fs::read_dir(p.join("cache/m/fabric")).unwrap().count();
    assert_eq!(
        cached,
        8 * 4,
        "four files per test image (maps, scales, metadata)"
    );
    let infer = |p: &std::path::Path| {
        let run = contrario()
            .args(["infer", "--project"])
            .arg(p)
            .args(["--model", "m", "--category", "fabric"])
            .output()
            .unwrap();
        assert_ok(&run);
        String::from_utf8_lossy(&run.stdout)
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .collect::<Vec<_>>()
    };
    let lines = infer(&p);
    assert_eq!(lines.len(), 8);
    assert!(lines.iter().all(|l| l["cached"] == true), "{lines:?}");
    let again = contrario()
        .args(["eval", "--project"])
        .arg(&p)
        .args(["--model", "m", "--category", "fabric", "--json"])
        .output()
        .unwrap();
    let w: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(w["categories"]["fabric"], *c);
    // Without the cache the same results are computed again, not read.
    std::fs::remove_dir_all(p.join("cache/m/fabric")).unwrap();
    let fresh = infer(&p);
    assert!(fresh.iter().all(|l| l["cached"] == false), "{fresh:?}");
    for (a, b) in lines.iter().zip(&fresh) {
        assert_eq!((&a["image"], &a["score"]), (&b["image"], &b["score"]));
    }
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
    assert_ok(&run);
    let v: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(
        v["magnetic_tile"],
        serde_json::json!({"images": 1344, "train_normal": 714, "test": 630, "ground_truth_masks": 392})
    );
    let wrong = import(dir.path(), "magnetic-tile", &shared_data("mvtec_ad"));
    assert_eq!(wrong.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("not the Magnetic-tile set"));
}

#[test]
fn scale_benchmark_generates_opens_and_caches() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("scale");
    let out = contrario()
        .args([
            "bench",
            "project",
            "--images",
            "300",
            "--size",
            "48",
            "--project",
        ])
        .arg(&p)
        .output()
        .unwrap();
    assert_ok(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["open"]["images"], 300);
    assert!(v["open"]["memory_for_the_project_mib"].as_f64().unwrap() >= 0.0);
    // 200 thumbnails went to the disk cache.
    assert_eq!(
        std::fs::read_dir(p.join("cache/thumbs")).unwrap().count(),
        200
    );
    let proj = contrario::project::Project::open(&p).unwrap();
    assert_eq!(proj.file.images.len(), 300);
    assert_eq!(proj.file.images[1].group, proj.file.images[0].group);
}

#[test]
fn coreset_benchmark_times_both_traversals_on_a_projects_normals() {
    // On three of the demo's leather normals: both selections pick the same 308 of 3,072 rows.
    let demo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("projects/demo");
    let out = contrario()
        .args([
            "bench",
            "coreset",
            "--category",
            "leather",
            "--images",
            "3",
            "--project",
        ])
        .arg(&demo)
        .output()
        .unwrap();
    assert_ok(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["images"].as_u64(), v["rows"].as_u64()),
        (Some(3), Some(3072)),
        "{v}"
    );
    assert_eq!(v["picks"], 308);
    assert_eq!(v["rows_both_pick"], 308, "{v}");
    assert!(v["seconds_pruned"].as_f64().unwrap() > 0.0);
    // Without a project it says what it needs.
    let bare = contrario().args(["bench", "coreset"]).output().unwrap();
    assert_eq!(bare.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bare.stderr).contains("--project and --category"));
}

#[test]
fn gui_benchmark_paints_saves_and_traces_headless() {
    // The frame benchmark drives the real window without a screen: its stroke must paint (the
    // run fails otherwise) and the detection it moves the level under must have its outlines.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("gui");
    let out = contrario()
        .args([
            "bench",
            "gui",
            "--size",
            "320",
            "--repeat",
            "20",
            "--project",
        ])
        .arg(&p)
        .output()
        .unwrap();
    assert_ok(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["image"], "320 x 320");
    assert!(v["brush"]["painted_px"].as_u64().unwrap() > 5_000, "{v}");
    assert_eq!(v["nfa_level"]["outlines_at_level_0"], 200);
    for run in ["idle", "brush", "nfa_level"] {
        let r = if run == "idle" {
            &v[run]
        } else {
            &v[run]["frames"]
        };
        assert_eq!(r["frames"], 20, "{run}: {v}");
    }
    // The stroke went to disk through the autosaver.
    let m = image::open(p.join("labels/a/img00003.png"))
        .unwrap()
        .to_luma8();
    assert!(m.pixels().filter(|p| p.0[0] != 0).count() > 5_000);
}

#[test]
fn review_benchmark_analyses_a_generated_project() {
    let out = contrario()
        .args([
            "bench", "review", "--images", "200", "--size", "40", "--repeat", "5",
        ])
        .output()
        .unwrap();
    assert_ok(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["labelled_images"], 20);
    assert_eq!(v["queue_length"], 20);
    assert_eq!(v["list"]["all, by name"]["rows"], 200);
    // Some of the generated pairs disagree (IoU under 0.5), not all.
    let disputes = v["list"]["disagreements, by disagreement"]["rows"]
        .as_u64()
        .unwrap();
    assert!(disputes > 0 && disputes < 20, "{v}");
}

/// A small BTAD-like dataset (ok/ko, masks named like their images, one of the wrong size) and
/// a VisA-like one (split CSV), written on the fly.
fn write_btad_and_visa(root: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let save = |p: std::path::PathBuf, w: u32, h: u32, v: u8| {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        image::GrayImage::from_pixel(w, h, image::Luma([v]))
            .save(&p)
            .unwrap();
    };
    let btad = root.join("btad");
    for i in 0..3 {
        save(btad.join(format!("01/train/ok/{i:04}.bmp")), 40, 30, 128);
    }
    save(btad.join("01/test/ok/0100.bmp"), 40, 30, 128);
    save(btad.join("01/test/ko/0200.bmp"), 40, 30, 128);
    save(btad.join("01/ground_truth/ko/0200.png"), 40, 30, 255);
    save(btad.join("01/test/ko/0201.bmp"), 40, 30, 128);
    save(btad.join("01/ground_truth/ko/0201.png"), 20, 15, 255); // wrong size
    let visa = root.join("visa");
    save(visa.join("candle/Data/Images/Normal/0000.JPG"), 32, 32, 90);
    save(visa.join("candle/Data/Images/Normal/0001.JPG"), 32, 32, 90);
    save(visa.join("candle/Data/Images/Anomaly/000.JPG"), 32, 32, 90);
    save(visa.join("candle/Data/Masks/Anomaly/000.png"), 32, 32, 1);
    std::fs::create_dir_all(visa.join("split_csv")).unwrap();
    std::fs::write(
        visa.join("split_csv/1cls.csv"),
        "object,split,label,image,mask\n\
         candle,train,normal,candle/Data/Images/Normal/0000.JPG,\n\
         candle,test,normal,candle/Data/Images/Normal/0001.JPG,\n\
         candle,test,anomaly,candle/Data/Images/Anomaly/000.JPG,candle/Data/Masks/Anomaly/000.png\n",
    )
    .unwrap();
    (btad, visa)
}

#[test]
fn import_btad_visa_and_folders_then_group_and_export() {
    let dir = tempfile::tempdir().unwrap();
    let (btad, visa) = write_btad_and_visa(dir.path());
    let p = dir.path().join("proj");
    let run = import(&p, "btad", &btad);
    assert_ok(&run);
    let v: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(v["01"]["train_normal"], 3);
    assert_eq!(v["01"]["test"], 3);
    assert_eq!(
        v["01"]["ground_truth_masks"], 1,
        "the wrong-size mask is left out"
    );
    let problems = v["01"]["problems"].as_array().unwrap();
    assert!(
        problems[0]
            .as_str()
            .unwrap()
            .contains("20x15 but its image is 40x30")
    );
    assert!(String::from_utf8_lossy(&run.stderr).contains("warning: 01:"));

    let run = import(&p, "visa", &visa);
    assert_ok(&run);
    let v: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(
        v["candle"],
        serde_json::json!({"images": 3, "train_normal": 1, "test": 2, "ground_truth_masks": 1})
    );
    let folder = dir.path().join("btad/01/test");
    let run = import(&p, "folder", &folder);
    assert!(run.status.success());
    let v: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(v["ok"]["images"], 1);
    assert_eq!(v["ko"]["images"], 2);

    // Groups: images 0200 and 0201 are two views of one piece.
    let g = contrario()
        .args([
            "group",
            "--group-pattern",
            r"^(?P<group>020)\d\.bmp$",
            "--project",
        ])
        .arg(&p)
        .output()
        .unwrap();
    assert_ok(&g);
    let proj = contrario::project::Project::open(&p).unwrap();
    assert_eq!(
        proj.file.images.iter().filter(|e| e.group == "020").count(),
        4
    );
    assert_eq!(proj.file.datasets.len(), 3);

    // Exports of the dataset ground truth.
    let masks = dir.path().join("masks");
    let e = contrario()
        .args(["export", "--format", "masks", "--project"])
        .arg(&p)
        .arg("--out")
        .arg(&masks)
        .output()
        .unwrap();
    assert_ok(&e);
    let m = image::open(masks.join("01/ground_truth/ko/0200_mask.png"))
        .unwrap()
        .to_luma8();
    assert!(m.pixels().all(|p| p.0[0] == 255));
    assert!(
        masks
            .join("candle/ground_truth/anomaly/000_mask.png")
            .is_file()
    );
    for (fmt, file) in [("csv", "r.csv"), ("coco", "c.json")] {
        let e = contrario()
            .args(["export", "--format", fmt, "--project"])
            .arg(&p)
            .arg("--out")
            .arg(dir.path().join(file))
            .output()
            .unwrap();
        assert_ok(&e);
    }
    // A verdict from the command line lands in the report.
    let v = contrario()
        .args([
            "verdict",
            "--image",
            "01/test/ko/0200",
            "--reviewer",
            "qe",
            "--note",
            "chipped, edge",
        ])
        .arg("--project")
        .arg(&p)
        .arg("defective")
        .output()
        .unwrap();
    assert_ok(&v);
    let bad = contrario()
        .args([
            "verdict",
            "--image",
            "nope",
            "--reviewer",
            "qe",
            "normal",
            "--project",
        ])
        .arg(&p)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    let e = contrario()
        .args(["export", "--format", "csv", "--project"])
        .arg(&p)
        .arg("--out")
        .arg(dir.path().join("r.csv"))
        .output()
        .unwrap();
    assert_ok(&e);
    let csv = std::fs::read_to_string(dir.path().join("r.csv")).unwrap();
    assert!(
        csv.lines()
            .any(|l| l.starts_with("01/test/ko/0200,")
                && l.contains(",defective,qe,\"chipped, edge\"")),
        "{csv}"
    );
    let coco: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("c.json")).unwrap()).unwrap();
    assert_eq!(coco["annotations"].as_array().unwrap().len(), 2);
    let csv = std::fs::read_to_string(dir.path().join("r.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + proj.file.images.len());
    let bad = contrario()
        .args(["export", "--format", "pdf", "--project"])
        .arg(&p)
        .args(["--out", "/tmp/x"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
}

#[test]
fn a_project_open_elsewhere_is_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let (btad, _) = write_btad_and_visa(dir.path());
    let p = dir.path().join("proj");
    assert!(import(&p, "btad", &btad).status.success());
    // Another live process holds the lock (pid 1 always runs).
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    std::fs::write(
        p.join(contrario::project::storage::LOCK_FILE),
        format!("1 {} 0", host.trim()),
    )
    .unwrap();
    let before = std::fs::read(p.join("project.ron")).unwrap();
    let run = import(&p, "btad", &btad);
    assert_eq!(run.status.code(), Some(1));
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("is open in another Contrario"), "{err}");
    assert_eq!(std::fs::read(p.join("project.ron")).unwrap(), before);
}

#[test]
fn eval_and_infer_tell_the_test_images_unlike_the_training_images() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("p");
    let demo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("projects/demo");
    contrario::project::copy_folder(&demo, &p).unwrap();
    // One normal test image taken under dimmer light.
    let dim = p.join("images/leather/test/good/000.png");
    let mut img = image::open(&dim).unwrap().to_rgb8();
    for px in img.pixels_mut() {
        px.0 = px.0.map(|v| (f32::from(v) * 0.85) as u8);
    }
    img.save(&dim).unwrap();
    let args = ["--model", "uflow-l2", "--category", "leather"];
    let out = contrario()
        .args(["eval", "--json", "--project"])
        .arg(&p)
        .args(args)
        .output()
        .unwrap();
    assert_ok(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let leather = &v["categories"]["leather"];
    assert_eq!(leather["unlike_training"], 1, "{leather}");
    let first = &leather["unlike_training_images"][0];
    assert_eq!(first["image"], "leather/test/good/000");
    assert!(
        first["words"]
            .as_str()
            .unwrap()
            .starts_with("darker than every training image")
    );
    let out = contrario()
        .args(["infer", "--project"])
        .arg(&p)
        .args(args)
        .output()
        .unwrap();
    assert_ok(&out);
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let unlike: Vec<&str> = lines
        .iter()
        .filter(|l| l["unlike_training"] == true)
        .map(|l| l["image"].as_str().unwrap())
        .collect();
    assert_eq!(unlike, ["leather/test/good/000"]);
}
