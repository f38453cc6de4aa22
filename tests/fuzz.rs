//! Bad input never panics: thousands of malformed project files, masks, images, journals and
//! CSVs, made by mutating valid ones with a seeded generator, each end in a value (Ok or Err).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::Path;

const CASES: usize = 1500;

/// A random mutation: flip, delete, duplicate, insert tokens, or truncate.
fn mutate(rng: &mut StdRng, src: &[u8], tokens: &[&[u8]]) -> Vec<u8> {
    let mut v = src.to_vec();
    for _ in 0..rng.random_range(1..6) {
        if v.is_empty() {
            v.push(b'(');
        }
        let at = rng.random_range(0..v.len());
        match rng.random_range(0..6) {
            0 => v[at] ^= 1 << rng.random_range(0..8),
            1 => {
                let end = (at + rng.random_range(1..64)).min(v.len());
                v.drain(at..end);
            }
            2 => {
                let end = (at + rng.random_range(1..64)).min(v.len());
                let piece = v[at..end].to_vec();
                v.splice(at..at, piece);
            }
            3 => {
                let t = tokens[rng.random_range(0..tokens.len())];
                v.splice(at..at, t.iter().copied());
            }
            4 => v.truncate(at),
            _ => v[at] = rng.random(),
        }
    }
    v
}

#[test]
fn malformed_project_files_are_errors() {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("projects/demo/project.ron");
    let valid = std::fs::read(&demo).unwrap();
    let tokens: &[&[u8]] = &[
        b"(",
        b")",
        b"[",
        b"]",
        b"{",
        b"}",
        b"\"",
        b":",
        b",",
        b"format_version: 99999999999999999999",
        b"format_version: 1",
        b"-1",
        b"1e999",
        b"NaN",
        b"\\u{0}",
        b"\xff\xfe",
        b"Some(",
        b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
        b"index: 300",
        b"split: Validation",
        b"labels: {\"a\": 5}",
    ];
    let mut rng = StdRng::seed_from_u64(7);
    let dir = tempfile::tempdir().unwrap();
    let (mut ok, mut err) = (0, 0);
    for _ in 0..CASES * 2 {
        let bytes = mutate(&mut rng, &valid, tokens);
        let text = String::from_utf8_lossy(&bytes);
        match contrario::project::parse_project(&text, Path::new("project.ron")) {
            Ok(_) => ok += 1,
            Err(e) => {
                let msg = e.to_string();
                assert!(!msg.is_empty());
                err += 1;
            }
        }
        // Through the front door too, with non-UTF-8 bytes kept as they are.
        std::fs::write(dir.path().join("project.ron"), &bytes).unwrap();
        let _ = contrario::project::Project::open(dir.path());
    }
    assert!(
        err > CASES,
        "mutations should mostly break the file: {ok} ok, {err} errors"
    );
}

fn encoded(format: image::ImageFormat, grey: bool) -> Vec<u8> {
    let img = image::RgbImage::from_fn(23, 17, |x, y| {
        image::Rgb([(x * 11) as u8, (y * 13) as u8, ((x + y) * 7) as u8])
    });
    let dynimg = if grey {
        image::DynamicImage::ImageLuma8(image::DynamicImage::ImageRgb8(img).to_luma8())
    } else {
        image::DynamicImage::ImageRgb8(img)
    };
    let mut buf = Vec::new();
    dynimg
        .write_to(&mut std::io::Cursor::new(&mut buf), format)
        .unwrap();
    buf
}

#[test]
fn malformed_images_and_masks_are_errors() {
    use image::ImageFormat::*;
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(11);
    let tokens: &[&[u8]] = &[
        b"\x00\x00\xff\xff",
        b"\xff\xff\xff\xff\xff\xff\xff\xff",
        b"IHDR",
        b"IDAT",
        b"IEND",
        b"\xff\xd8\xff",
        b"BM",
        b"II*\x00",
    ];
    let mut errors = 0;
    for (format, ext, grey) in [
        (Png, "png", true),
        (Png, "png", false),
        (Jpeg, "jpg", false),
        (Bmp, "bmp", true),
        (Tiff, "tif", false),
    ] {
        let valid = encoded(format, grey);
        let path = dir.path().join(format!("x.{ext}"));
        for _ in 0..CASES / 2 {
            std::fs::write(&path, mutate(&mut rng, &valid, tokens)).unwrap();
            let a = contrario::project::imaging::load_dynamic(&path);
            let b = contrario::project::mask::LabelMask::load(&path, (23, 17));
            let _ = contrario::project::imaging::image_size(&path);
            errors += a.is_err() as usize + b.is_err() as usize;
        }
    }
    assert!(errors > CASES, "{errors}");
}

#[test]
fn malformed_labels_in_a_project_are_errors() {
    // A project whose label files are damaged: the store answers with errors, and the review and
    // export code pass them on.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("labels")).unwrap();
    let img = image::GrayImage::from_fn(16, 12, |x, y| image::Luma([(x * y) as u8]));
    img.save(root.join("a.png")).unwrap();
    let mut p = contrario::project::Project {
        root: root.to_path_buf(),
        file: contrario::project::ProjectFile::new("fuzz"),
        saved: false,
        migrated_from: None,
    };
    p.ensure_annotator("ann", "Ann");
    p.file.images.push(contrario::project::ImageEntry {
        id: "a".into(),
        path: "a.png".into(),
        labels: [("ann".to_string(), "labels/m.png".into())].into(),
        ..Default::default()
    });
    let valid = encoded(image::ImageFormat::Png, true);
    let mut rng = StdRng::seed_from_u64(3);
    let mut store =
        contrario::project::labels::LabelStore::new(contrario::project::autosave::Autosaver::new());
    let mut errors = 0;
    for _ in 0..CASES / 3 {
        std::fs::write(
            root.join("labels/m.png"),
            mutate(&mut rng, &valid, &[b"IDAT"]),
        )
        .unwrap();
        let layers = contrario::project::review::layers_of(&p, &mut store, "a");
        errors += layers.is_err() as usize;
    }
    // Wrong size: reported, not resized.
    image::GrayImage::new(5, 5)
        .save(root.join("labels/m.png"))
        .unwrap();
    let e = store.existing_mask(&p, "a", "ann").unwrap_err().to_string();
    assert!(e.contains("(5, 5)") && e.contains("(16, 12)"), "{e}");
    assert!(errors > 0);
}

#[test]
fn malformed_journals_and_csvs_are_errors_or_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(5);
    let line = br#"{"time_ms":1,"time":"1970-01-01T00:00:00.001Z","reviewer":"q","image":"a","verdict":"normal","note":"x"}
"#;
    let journal = dir.path().join("journal/reviews.jsonl");
    std::fs::create_dir_all(journal.parent().unwrap()).unwrap();
    for _ in 0..CASES {
        let mut bytes = line.repeat(3);
        bytes = mutate(&mut rng, &bytes, &[b"\n", b"{", b"\"verdict\":7"]);
        std::fs::write(&journal, &bytes).unwrap();
        let r = contrario::project::review::latest_reviews(dir.path()).unwrap();
        assert!(r.len() <= 3, "at most one entry per line");
    }
    // VisA split files and group CSVs.
    let visa = dir.path().join("visa");
    std::fs::create_dir_all(visa.join("split_csv")).unwrap();
    std::fs::create_dir_all(visa.join("c/Data/Images/Normal")).unwrap();
    image::GrayImage::new(8, 8)
        .save(visa.join("c/Data/Images/Normal/0.png"))
        .unwrap();
    let csv = b"object,split,label,image,mask\nc,train,normal,c/Data/Images/Normal/0.png,\n";
    let mut imported = 0;
    for i in 0..CASES / 5 {
        std::fs::write(
            visa.join("split_csv/1cls.csv"),
            mutate(&mut rng, csv, &[b",", b"\n", b"anomaly", b"test"]),
        )
        .unwrap();
        let proj = dir.path().join(format!("p{i}"));
        imported += contrario::project::import::import(&proj, "visa", &visa).is_ok() as usize;
        let groups = dir.path().join("groups.csv");
        std::fs::write(
            &groups,
            mutate(&mut rng, b"image,group\n0.png,g1\n", &[b",", b"\n"]),
        )
        .unwrap();
        if let Ok(mut p) = contrario::project::Project::open(&proj) {
            let _ = contrario::project::import::assign_groups(
                &mut p,
                &contrario::project::import::GroupSource::Csv(groups),
            );
        }
    }
    assert!(imported < CASES / 5);
}
