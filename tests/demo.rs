//! The bundled demo project is exactly what the documented generator writes, and it is a useful
//! demo: defects with masks, normal training images, and annotators who disagree.

use std::path::{Path, PathBuf};

use contrario::project::{Project, Split};

/// The project's own files: what using the project adds (caches, journals, the lock; all
/// git-ignored) is not the generator's business, nor is the shipped model (`make demo-model`).
fn files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap();
            if rel == Path::new(contrario::project::storage::LOCK_FILE)
                || rel.starts_with("cache")
                || rel.starts_with("journal")
                || rel.starts_with("models")
            {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

fn committed() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("projects/demo")
}

#[test]
fn committed_demo_is_reproduced_byte_for_byte_by_the_generator() {
    let dir = tempfile::tempdir().unwrap();
    contrario::project::demo::generate(dir.path(), contrario::project::demo::DEFAULT_SEED, false)
        .unwrap();
    let ours = files(dir.path());
    assert_eq!(
        ours,
        files(&committed()),
        "file lists differ: run `make demo-project`"
    );
    for f in ours {
        let a = std::fs::read(dir.path().join(&f)).unwrap();
        let b = std::fs::read(committed().join(&f)).unwrap();
        assert!(
            a == b,
            "{} differs from the generator's output: run `make demo-project`",
            f.display()
        );
    }
}

#[test]
fn demo_has_training_normals_defects_and_disagreeing_annotators() {
    let p = Project::open(&committed()).unwrap();
    let train = p
        .file
        .images
        .iter()
        .filter(|e| e.split == Split::Train)
        .count();
    let defects: Vec<_> = p
        .file
        .images
        .iter()
        .filter(|e| e.split == Split::Test && e.kind != "good")
        .collect();
    assert_eq!(train, 30);
    assert_eq!(defects.len(), 15);
    let load = |e: &contrario::project::ImageEntry, who: &str| {
        image::open(p.label_path(e, who).unwrap())
            .unwrap()
            .to_luma8()
    };
    let area = |m: &image::GrayImage| m.pixels().filter(|v| v.0[0] != 0).count();
    let mut ana_tighter = 0;
    let mut ben_missed = 0;
    for e in &defects {
        let (gt, ana, ben) = (load(e, "gt"), load(e, "ana"), load(e, "ben"));
        assert!(area(&gt) > 0, "{} has an empty ground truth", e.id);
        ana_tighter += (area(&ana) < area(&gt)) as usize;
        ben_missed += (area(&ben) == 0) as usize;
        if area(&ben) > 0 {
            assert!(area(&ben) > area(&gt), "Ben outlines loosely");
        }
    }
    assert!(ana_tighter >= 10, "Ana outlines tighter on most defects");
    assert_eq!(ben_missed, 3, "Ben misses one defect per category");
    // Ana marks a normal structure on one good image per category.
    let marked_good = p
        .file
        .images
        .iter()
        .filter(|e| e.split == Split::Test && e.kind == "good")
        .filter(|e| area(&load(e, "ana")) > 0)
        .count();
    assert_eq!(marked_good, 3);
    let size: u64 = files(&committed())
        .iter()
        .map(|f| std::fs::metadata(committed().join(f)).unwrap().len())
        .sum();
    assert!(
        size < 8 << 20,
        "demo project is {size} bytes: keep it a few MB"
    );
}

#[test]
fn the_shipped_model_was_trained_on_the_demo_as_it_is() {
    // Retrained by `make demo-model` whenever the generator changes the images.
    let p = Project::open(&committed()).unwrap();
    let default = contrario::project::training::TrainingSettings::default();
    assert_eq!(
        p.model_names(),
        vec![default.model_name()],
        "the default settings' model"
    );
    for cat in p.categories() {
        let f = contrario::project::model_file::ModelFile::read(
            &p.model_dir(&default.model_name(), &cat),
        )
        .unwrap_or_else(|e| panic!("{cat}: {e}"));
        let train = p
            .file
            .images
            .iter()
            .filter(|e| e.category == cat && e.split == Split::Train)
            .count();
        assert_eq!(f.training_images, train, "{cat}");
        assert_eq!(f.history.len(), f.train.epochs, "{cat}: its curve is kept");
    }
}
