//! Label editing, the audit trail, autosave, review and export on real project files.

use contrario::project::Project;
use contrario::project::autosave::Autosaver;
use contrario::project::labels::{Edit, LabelError, LabelStore, read_audit};
use contrario::project::mask::LabelMask;
use contrario::project::review::{self, ConsensusRule, Verdict};
use std::path::{Path, PathBuf};

fn copy_demo(dir: &Path) -> PathBuf {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("projects/demo");
    let to = dir.join("p");
    contrario::project::copy_folder(&demo, &to).unwrap();
    to
}

fn stare(dir: &Path) -> Project {
    let s = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/stare");
    contrario::project::import::import_with_layers(
        dir,
        "folder",
        &s.join("images"),
        &[
            ("ah".into(), s.join("labels-ah")),
            ("vk".into(), s.join("labels-vk")),
        ],
    )
    .unwrap();
    Project::open(dir).unwrap()
}

/// A defective test image of the demo with labels from gt, ana and ben.
fn labelled_image(p: &Project) -> String {
    p.file
        .images
        .iter()
        .find(|e| e.labels.len() == 3 && e.kind != "good")
        .unwrap()
        .id
        .clone()
}

#[test]
fn edits_undo_redo_and_the_audit_trail_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let root = copy_demo(dir.path());
    let mut p = Project::open(&root).unwrap();
    p.ensure_annotator("cleo", "Cleo");
    let img = labelled_image(&p);
    let mut store = LabelStore::new(Autosaver::new());
    let before = store.mask(&p, &img, "cleo").unwrap().clone();
    assert!(
        before.is_empty(),
        "a new annotator starts from an empty layer"
    );

    // A stroke in three pieces is one undo step.
    for piece in [
        vec![[10.5, 10.5], [20.5, 10.5]],
        vec![[20.5, 10.5], [20.5, 20.5]],
        vec![[20.5, 20.5], [30.5, 25.5]],
    ] {
        let out = store
            .edit(
                &mut p,
                &img,
                "cleo",
                Edit::Brush {
                    class: 1,
                    radius: 2.0,
                    points: piece,
                },
            )
            .unwrap();
        assert!(out.pixels_changed > 0);
    }
    store.end_stroke(&img, "cleo");
    let stroke = store.mask(&p, &img, "cleo").unwrap().clone();
    let poly = Edit::Polygon {
        class: 2,
        points: vec![[40.0, 40.0], [60.0, 40.0], [50.0, 60.0]],
    };
    store.edit(&mut p, &img, "cleo", poly).unwrap();
    let with_poly = store.mask(&p, &img, "cleo").unwrap().clone();
    assert_eq!(with_poly.get(50, 45), 2);

    store.undo(&mut p, &img, "cleo").unwrap().unwrap();
    assert_eq!(store.mask(&p, &img, "cleo").unwrap(), &stroke);
    store.undo(&mut p, &img, "cleo").unwrap().unwrap();
    assert_eq!(
        store.mask(&p, &img, "cleo").unwrap(),
        &before,
        "the whole stroke undone at once"
    );
    assert_eq!(store.undo(&mut p, &img, "cleo").unwrap(), None);
    store.redo(&mut p, &img, "cleo").unwrap().unwrap();
    store.redo(&mut p, &img, "cleo").unwrap().unwrap();
    assert_eq!(store.mask(&p, &img, "cleo").unwrap(), &with_poly);

    // Copy ana's region under one of her pixels, flood-fill, erase, accept a detection.
    let ana = store.existing_mask(&p, &img, "ana").unwrap().unwrap();
    let i = ana.data.iter().position(|&v| v != 0).unwrap() as u32;
    let seed = [i % ana.width, i / ana.width];
    store
        .edit(
            &mut p,
            &img,
            "cleo",
            Edit::CopyRegion {
                from: "ana".into(),
                seed,
            },
        )
        .unwrap();
    let region = ana.marked_region_at(seed[0], seed[1]);
    let now = store.mask(&p, &img, "cleo").unwrap().clone();
    assert!(
        region
            .iter()
            .all(|&j| now.data[j as usize] == ana.data[j as usize])
    );
    store
        .edit(
            &mut p,
            &img,
            "cleo",
            Edit::Erase {
                radius: 1.0,
                points: vec![[10.5, 10.5]],
            },
        )
        .unwrap();
    assert_eq!(store.mask(&p, &img, "cleo").unwrap().get(10, 10), 0);
    store.end_stroke(&img, "cleo");
    let before_accept = store.mask(&p, &img, "cleo").unwrap().clone();
    // Accepting a detected region paints exactly its pixels in the class; indices past the
    // image (a stale region) are ignored.
    let n = before_accept.data.len() as u32;
    let out = store
        .edit(
            &mut p,
            &img,
            "cleo",
            Edit::AcceptRegion {
                class: 3,
                log10_nfa: -7.5,
                pixels: vec![5, 6, 7, n + 10],
            },
        )
        .unwrap();
    let last = store.mask(&p, &img, "cleo").unwrap().clone();
    for (j, (&a, &b)) in before_accept.data.iter().zip(&last.data).enumerate() {
        let want = if (5..=7).contains(&j) { 3 } else { a };
        assert_eq!(b, want, "pixel {j}");
    }
    let changed = (5..=7).filter(|&j| before_accept.data[j] != 3).count();
    assert_eq!(out.pixels_changed, changed);

    // Read-only ground truth and unknown classes are refused with a reason.
    let ro = store.edit(
        &mut p,
        &img,
        "gt",
        Edit::Flood {
            class: 1,
            seed: [0, 0],
        },
    );
    assert!(matches!(ro, Err(LabelError::ReadOnly(_))));
    let bad = store.edit(
        &mut p,
        &img,
        "cleo",
        Edit::Flood {
            class: 9,
            seed: [0, 0],
        },
    );
    assert!(matches!(bad, Err(LabelError::UnknownClass(9))));

    assert!(store.flush().is_empty());
    drop(store);
    // Reopen from disk: the layer is registered in project.ron and holds the last state.
    let p2 = Project::open(&root).unwrap();
    assert!(p2.annotator("cleo").is_some());
    let mut store2 = LabelStore::new(Autosaver::new());
    assert_eq!(store2.mask(&p2, &img, "cleo").unwrap(), &last);
    let ops: Vec<String> = read_audit(&root)
        .unwrap()
        .into_iter()
        .filter(|e| e.annotator == "cleo")
        .map(|e| e.op)
        .collect();
    assert_eq!(
        ops,
        [
            "brush",
            "brush",
            "brush",
            "polygon",
            "undo:polygon",
            "undo:brush",
            "redo:brush",
            "redo:polygon",
            "copy_region",
            "erase",
            "accept_region"
        ]
    );
}

#[test]
fn stare_disagreement_consensus_and_exports() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = stare(dir.path());
    assert_eq!(p.file.images.len(), 10);
    assert!(
        p.annotator("gt").is_none(),
        "a plain folder has no ground truth"
    );
    let mut store = LabelStore::new(Autosaver::new());
    let mut items = Vec::new();
    for e in p.file.images.clone() {
        let layers = review::layers_of(&p, &mut store, &e.id).unwrap();
        assert_eq!(layers.len(), 2);
        let d = review::analyze(&e.id, &layers, None, 0.0);
        let iou = d.pairs[0].iou;
        let dice = 2.0 * iou / (1.0 + iou);
        // The dataset's README: inter-annotator Dice 0.675 to 0.790.
        assert!((0.67..=0.80).contains(&dice), "{}: dice {dice}", e.id);
        assert!(d.disputed_pixels > 0);
        items.push(d);
    }
    let queue = review::review_queue(items);
    assert!(queue.windows(2).all(|w| w[0].score >= w[1].score));
    assert_eq!(
        queue[0].image, "images/im0004",
        "the least agreed image first"
    );

    // Adjudicate the most disputed image: vk's outline, then an edit; the audit trail says so.
    let top = queue[0].image.clone();
    review::adjudicate(&mut p, &mut store, &top, &ConsensusRule::Take("vk".into())).unwrap();
    let second = queue[1].image.clone();
    review::adjudicate(&mut p, &mut store, &second, &ConsensusRule::Intersection).unwrap();
    let vk = store.existing_mask(&p, &top, "vk").unwrap().unwrap();
    assert_eq!(store.mask(&p, &top, review::CONSENSUS).unwrap(), &vk);
    store
        .edit(
            &mut p,
            &top,
            review::CONSENSUS,
            Edit::Erase {
                radius: 3.0,
                points: vec![[300.0, 300.0], [320.0, 300.0]],
            },
        )
        .unwrap();
    review::record_review(
        store.saver(),
        &p.root,
        "quality",
        &top,
        Some(Verdict::Defective),
        "vessels, \"thin\" ones too",
    );
    assert!(store.flush().is_empty());
    let audit = read_audit(&p.root).unwrap();
    let take = audit
        .iter()
        .find(|e| e.image == top && e.op == "replace")
        .unwrap();
    assert_eq!(take.detail["source"], "outline of vk");
    assert!(
        audit
            .iter()
            .any(|e| e.image == second && e.detail["source"] == "intersection of ah, vk")
    );
    assert!(
        audit
            .iter()
            .any(|e| e.image == top && e.op == "erase" && e.annotator == "consensus")
    );

    // Masks: only the adjudicated images, binary, MVTec layout.
    let out = dir.path().join("masks");
    let s =
        contrario::project::export::export_masks(&p, &mut store, review::CONSENSUS, &out).unwrap();
    assert_eq!((s.images, s.masks, s.unlabelled), (2, 2, 8));
    let m = image::open(out.join("images/ground_truth/defect/im0004_mask.png"))
        .unwrap()
        .to_luma8();
    let cons = store.mask(&p, &top, review::CONSENSUS).unwrap();
    assert!(
        m.pixels()
            .zip(&cons.data)
            .all(|(a, &b)| (a.0[0] == 255) == (b != 0))
    );

    // COCO: decoding every annotation's RLE rebuilds each layer's binary mask.
    let coco = dir.path().join("coco.json");
    let s = contrario::project::export::export_coco(&p, &mut store, "ah", &coco).unwrap();
    assert_eq!(s.images, 10);
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&coco).unwrap()).unwrap();
    for img in doc["images"].as_array().unwrap() {
        let (w, h) = (
            img["width"].as_u64().unwrap() as usize,
            img["height"].as_u64().unwrap() as usize,
        );
        let mut rebuilt = vec![false; w * h];
        let mut area = 0;
        for a in doc["annotations"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["image_id"] == img["id"])
        {
            let mut pos = 0usize;
            let mut on = false;
            for c in a["segmentation"]["counts"].as_array().unwrap() {
                let c = c.as_u64().unwrap() as usize;
                if on {
                    for k in pos..pos + c {
                        let (x, y) = (k / h, k % h); // column-major
                        assert!(!rebuilt[y * w + x], "regions overlap");
                        rebuilt[y * w + x] = true;
                    }
                }
                pos += c;
                on = !on;
            }
            assert_eq!(pos, w * h);
            area += a["area"].as_u64().unwrap() as usize;
        }
        let id = img["contrario_id"].as_str().unwrap();
        let ah = store.existing_mask(&p, id, "ah").unwrap().unwrap();
        assert_eq!(rebuilt, ah.binary(), "{id}");
        assert_eq!(area, ah.marked_pixels());
    }

    // CSV: a row per image, the IoU column, the verdict with its quoted note.
    let csv = dir.path().join("report.csv");
    contrario::project::export::export_csv(&p, &mut store, None, &csv).unwrap();
    let text = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 11);
    assert!(lines[0].ends_with(",note,iou_ah_vk"), "{}", lines[0]);
    let row = lines
        .iter()
        .find(|l| l.starts_with("images/im0004,"))
        .unwrap();
    assert!(
        row.contains(",defective,quality,\"vessels, \"\"thin\"\" ones too\","),
        "{row}"
    );
    assert_eq!(
        review::latest_reviews(&p.root).unwrap()[&top].verdict,
        Some(Verdict::Defective)
    );
}

#[test]
fn views_labelled_inconsistently_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let root = copy_demo(dir.path());
    let mut p = Project::open(&root).unwrap();
    // Pair a defective image with a good one of the same category as two views of one piece.
    let def = labelled_image(&p);
    let cat = p.image(&def).unwrap().category.clone();
    let good = p
        .file
        .images
        .iter()
        .find(|e| e.category == cat && e.kind == "good" && e.labels.contains_key("ana"))
        .map(|e| e.id.clone());
    let Some(good) = good else {
        panic!("the demo has labelled good test images")
    };
    for e in &mut p.file.images {
        if e.id == def || e.id == good {
            e.group = "piece-1".into();
        }
    }
    let mut store = LabelStore::new(Autosaver::new());
    let found = review::group_inconsistencies(&p, &mut store).unwrap();
    let ana = found.iter().find(|g| g.annotator == "ana").unwrap();
    assert_eq!(ana.group, "piece-1");
    assert_eq!(ana.defective_views, std::slice::from_ref(&def));
    assert_eq!(ana.clean_views, std::slice::from_ref(&good));
    // Once ana marks the other view too, she is consistent.
    store
        .edit(
            &mut p,
            &good,
            "ana",
            Edit::Brush {
                class: 1,
                radius: 3.0,
                points: vec![[5.0, 5.0]],
            },
        )
        .unwrap();
    let found = review::group_inconsistencies(&p, &mut store).unwrap();
    assert!(found.iter().all(|g| g.annotator != "ana"), "{found:?}");
}

#[test]
fn label_issues_on_a_planted_miss() {
    // The model's evidence (a log10 NFA map at a quarter of the image size) flags a region that
    // the annotator missed, and finds nothing under one of the annotator's marks.
    let mut m = LabelMask::new(64, 64);
    for y in 40..48 {
        for x in 40..48 {
            m.data[y * 64 + x] = 1; // labelled, and the model agrees
        }
    }
    // A stray mark, larger than one cell of the test grid (a smaller one can only be "cannot
    // confirm": the map cannot see it).
    for y in 2..8 {
        for x in 56..62 {
            m.data[y * 64 + x] = 1;
        }
    }
    let mut nfa = ndarray::Array2::<f32>::from_elem((16, 16), 300.0);
    for y in 10..12 {
        for x in 10..12 {
            nfa[(y, x)] = -20.0;
        }
    }
    nfa[(2, 2)] = -40.0; // nobody marked this
    let issues =
        review::label_issues("x", &nfa, None, &[("a".into(), m)], Default::default()).issues;
    assert_eq!(issues.len(), 2, "{issues:?}");
    assert!(matches!(
        issues[0].kind,
        review::IssueKind::LabelWithoutEvidence { .. }
    ));
    assert_eq!(issues[0].bbox, [56, 2, 62, 8]);
    assert_eq!(issues[1].kind, review::IssueKind::UnlabelledDetection);
    assert_eq!(issues[1].bbox, [8, 8, 12, 12]);
    assert_eq!(issues[1].log10_nfa, -40.0);
}

#[test]
fn a_killed_process_loses_nothing_older_than_two_seconds() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let root = copy_demo(dir.path());
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_contrario"))
        .args([
            "edit-stream",
            "--count",
            "100000",
            "--interval-ms",
            "5",
            "--project",
        ])
        .arg(&root)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Read the edit log on a thread; kill once edits have streamed for 3 s (whatever the start-up
    // took on a busy machine).
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let parsed = l
                .split_once(' ')
                .and_then(|(k, t)| Some((k.parse::<usize>().ok()?, t.parse::<u64>().ok()?)));
            if let Some(e) = parsed
                && tx.send(e).is_err()
            {
                break;
            }
        }
    });
    let mut log: Vec<(usize, u64)> = Vec::new();
    let started = std::time::Instant::now();
    while let Ok(e) = rx.recv_timeout(std::time::Duration::from_secs(60)) {
        log.push(e);
        if e.1 >= log[0].1 + 3000 {
            break;
        }
        assert!(started.elapsed().as_secs() < 120, "the edit stream stalled");
    }
    let killed_at = contrario::project::storage::now_ms();
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    log.extend(rx.try_iter());
    let old: Vec<usize> = log
        .iter()
        .filter(|(_, t)| *t + 2000 <= killed_at)
        .map(|(k, _)| *k)
        .collect();
    assert!(
        old.len() > 20,
        "too few edits before the kill: {}",
        log.len()
    );

    // Every file is whole: the project parses, every label decodes, the journal's lines parse.
    let p = Project::open(&root).unwrap();
    let img = p.file.images[0].id.clone();
    for e in &p.file.images {
        for m in e.labels.values() {
            image::open(root.join(m)).unwrap();
        }
    }
    let audit = read_audit(&root).unwrap();
    let text = std::fs::read_to_string(root.join(contrario::project::labels::AUDIT_FILE)).unwrap();
    assert_eq!(audit.len(), text.lines().count(), "a torn journal line");
    // Every edit older than 2 s is on disk.
    let mut store = LabelStore::new(Autosaver::new());
    let mask = store.mask(&p, &img, "crash-test").unwrap();
    let w = mask.width as usize;
    for k in old {
        assert_ne!(
            mask.data[(k / w) * w + k % w],
            0,
            "edit {k} of {} was lost",
            log.len()
        );
    }
    assert!(audit.len() >= log.len().saturating_sub(400));
    // The killed process's lock is stale: the project opens for editing again.
    contrario::project::storage::ProjectLock::acquire(&root).unwrap();
}

#[test]
fn images_of_every_depth_and_format_get_layers_of_their_size() {
    // 16-bit grey TIFF, RGBA PNG, grey BMP, RGB JPEG: a plain-folder import, then a layer each.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    image::ImageBuffer::<image::Luma<u16>, _>::from_fn(31, 7, |x, _| {
        image::Luma([x as u16 * 2000])
    })
    .save(data.join("a.tif"))
    .unwrap();
    image::RgbaImage::from_pixel(9, 12, image::Rgba([1, 2, 3, 128]))
        .save(data.join("b.png"))
        .unwrap();
    image::GrayImage::from_pixel(5, 6, image::Luma([7]))
        .save(data.join("c.bmp"))
        .unwrap();
    image::RgbImage::from_pixel(16, 8, image::Rgb([9, 9, 9]))
        .save(data.join("d.jpg"))
        .unwrap();
    let root = dir.path().join("p");
    let counts = contrario::project::import::import(&root, "folder", &data).unwrap();
    assert_eq!(counts["data"].images, 4);
    let mut p = Project::open(&root).unwrap();
    p.ensure_annotator("x", "X");
    p.file.classes.push(contrario::project::DefectClass {
        index: 1,
        name: "d".into(),
        color: [0, 0, 0],
    });
    let mut store = LabelStore::new(Autosaver::new());
    for (e, size) in p
        .file
        .images
        .clone()
        .iter()
        .zip([(31, 7), (9, 12), (5, 6), (16, 8)])
    {
        let full = contrario::project::imaging::load_rgba(&p.image_path(e)).unwrap();
        assert_eq!(full.dimensions(), size);
        store
            .edit(
                &mut p,
                &e.id,
                "x",
                Edit::Flood {
                    class: 1,
                    seed: [0, 0],
                },
            )
            .unwrap();
        let m = store.mask(&p, &e.id, "x").unwrap();
        assert_eq!((m.width, m.height), size);
        assert_eq!(m.marked_pixels(), (size.0 * size.1) as usize);
    }
}

#[test]
fn the_import_summary_counts_each_annotators_masks_and_lists_unreadable_images() {
    // STARE's two annotators, through the same function the CLI and the window call.
    let dir = tempfile::tempdir().unwrap();
    let s = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/stare");
    let counts = contrario::project::import::import_with_layers(
        dir.path(),
        "folder",
        &s.join("images"),
        &[
            ("ah".into(), s.join("labels-ah")),
            ("vk".into(), s.join("labels-vk")),
        ],
    )
    .unwrap();
    let c = &counts["images"];
    assert_eq!(c.images, 10);
    assert_eq!(c.annotator_masks["ah"], 10);
    assert_eq!(c.annotator_masks["vk"], 10);
    // A corrupt file is an unreadable image, not a test image.
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    image::GrayImage::from_pixel(8, 8, image::Luma([9]))
        .save(data.join("ok.png"))
        .unwrap();
    std::fs::write(data.join("broken.png"), b"\x89PNG\r\n\x1a\nnot really").unwrap();
    let counts =
        contrario::project::import::import(&dir.path().join("q"), "folder", &data).unwrap();
    let c = &counts["data"];
    assert_eq!((c.images, c.test), (1, 1));
    assert_eq!(c.unreadable.len(), 1);
    assert!(c.unreadable[0].ends_with("broken.png"));
    let json = serde_json::to_value(&counts).unwrap();
    assert_eq!(json["data"]["unreadable"].as_array().unwrap().len(), 1);
}
