//! Importing datasets into projects: MVTec-AD-style folders (also BTAD-like layouts:
//! `category/train/good`, `category/test/<kind>`, `category/ground_truth/<kind>/<id>_mask.png`)
//! and the Magnetic-tile set (`MT_<Type>/Imgs/<name>.jpg` with `<name>.png` masks). The ground
//! truth becomes a read-only annotator whose masks are the dataset's own files.

use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::dataset;
use crate::project::{
    Annotator, DefectClass, ImageEntry, PROJECT_FILE, Project, ProjectFile, Split,
};

/// Class index of imported binary ground truth (MVTec masks hold 0 and 255).
pub const GT_CLASS: u8 = 255;
pub const GT_ANNOTATOR: &str = "gt";

#[derive(Debug, Default, Serialize, PartialEq)]
pub struct CategoryCounts {
    pub images: usize,
    pub train_normal: usize,
    pub test: usize,
    pub ground_truth_masks: usize,
}

/// Import an MVTec-style root into the project at `dir` (created if needed; images already in it
/// are kept, re-imported ones replaced). Returns counts per category.
pub fn import_mvtec(dir: &Path, data: &Path) -> anyhow::Result<BTreeMap<String, CategoryCounts>> {
    let data = std::fs::canonicalize(data)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", data.display()))?;
    let categories = dataset::mvtec_categories(&data)?;
    if categories.is_empty() {
        anyhow::bail!(
            "{} holds no MVTec-style category (a folder with train/ and test/)",
            data.display()
        );
    }
    let mut project = open_or_create(dir)?;
    let mut counts = BTreeMap::new();
    for cat in &categories {
        let mut c = CategoryCounts::default();
        let mut entries = Vec::new();
        for p in dataset::mvtec_train_good(&data, cat)? {
            entries.push(entry(cat, "train", "good", p, None, Split::Train));
            c.train_normal += 1;
        }
        for s in dataset::mvtec_test_samples(&data, cat)? {
            c.ground_truth_masks += s.mask.is_some() as usize;
            entries.push(entry(cat, "test", &s.kind, s.image, s.mask, Split::Test));
            c.test += 1;
        }
        c.images = entries.len();
        let ids: std::collections::HashSet<String> = entries.iter().map(|e| e.id.clone()).collect();
        project.file.images.retain(|e| !ids.contains(&e.id));
        project.file.images.extend(entries);
        counts.insert(cat.clone(), c);
    }
    project.save()?;
    Ok(counts)
}

/// Every how many normal Magnetic-tile images one goes to the test split (the set has no split).
pub const MT_TEST_EVERY: usize = 4;

/// Import the Magnetic-tile set: `MT_Free` is normal (every 4th image, by name, held out for the
/// test split, the rest for training), every other `MT_<Type>` folder is a defect kind.
pub fn import_magnetic_tile(
    dir: &Path,
    data: &Path,
) -> anyhow::Result<BTreeMap<String, CategoryCounts>> {
    let data = std::fs::canonicalize(data)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", data.display()))?;
    let mut types: Vec<PathBuf> = std::fs::read_dir(&data)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", data.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.join("Imgs").is_dir()
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("MT_"))
        })
        .collect();
    types.sort();
    if !types.iter().any(|p| p.ends_with("MT_Free")) {
        anyhow::bail!(
            "{} is not the Magnetic-tile set (no MT_Free/Imgs)",
            data.display()
        );
    }
    let cat = "magnetic_tile";
    let mut project = open_or_create(dir)?;
    let mut c = CategoryCounts::default();
    let mut entries = Vec::new();
    for t in &types {
        let kind = t
            .file_name()
            .unwrap()
            .to_string_lossy()
            .trim_start_matches("MT_")
            .to_lowercase();
        let mut imgs: Vec<PathBuf> = std::fs::read_dir(t.join("Imgs"))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("jpg")))
            .collect();
        imgs.sort();
        for (i, img) in imgs.into_iter().enumerate() {
            let mask = img.with_extension("png");
            if kind == "free" {
                if i % MT_TEST_EVERY == MT_TEST_EVERY - 1 {
                    entries.push(entry(cat, "test", "good", img, None, Split::Test));
                    c.test += 1;
                } else {
                    entries.push(entry(cat, "train", "good", img, None, Split::Train));
                    c.train_normal += 1;
                }
            } else {
                if !mask.is_file() {
                    anyhow::bail!(
                        "{} has no mask (expected {})",
                        img.display(),
                        mask.display()
                    );
                }
                entries.push(entry(cat, "test", &kind, img, Some(mask), Split::Test));
                c.test += 1;
                c.ground_truth_masks += 1;
            }
        }
    }
    c.images = entries.len();
    let ids: std::collections::HashSet<String> = entries.iter().map(|e| e.id.clone()).collect();
    project.file.images.retain(|e| !ids.contains(&e.id));
    project.file.images.extend(entries);
    project.save()?;
    Ok(BTreeMap::from([(cat.to_string(), c)]))
}

/// The project at `dir`, or a new one with the ground-truth annotator and class.
fn open_or_create(dir: &Path) -> anyhow::Result<Project> {
    let mut project = if dir.join(PROJECT_FILE).exists() {
        Project::open(dir)?
    } else {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Project {
            root: dir.to_path_buf(),
            file: ProjectFile::new(name),
            saved: false,
            migrated_from: None,
        }
    };
    if !project.file.annotators.iter().any(|a| a.id == GT_ANNOTATOR) {
        project.file.annotators.insert(
            0,
            Annotator {
                id: GT_ANNOTATOR.into(),
                name: "Ground truth (dataset)".into(),
                read_only: true,
            },
        );
    }
    if project.class(GT_CLASS).is_none() {
        project.file.classes.push(DefectClass {
            index: GT_CLASS,
            name: "defect".into(),
            color: [255, 60, 60],
        });
    }
    Ok(project)
}

fn entry(
    cat: &str,
    split_name: &str,
    kind: &str,
    image: PathBuf,
    mask: Option<PathBuf>,
    split: Split,
) -> ImageEntry {
    let stem = image
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut labels = BTreeMap::new();
    if let Some(m) = mask {
        labels.insert(GT_ANNOTATOR.to_string(), m);
    }
    ImageEntry {
        id: format!("{cat}/{split_name}/{kind}/{stem}"),
        path: image,
        split,
        category: cat.into(),
        kind: kind.into(),
        labels,
        group: String::new(),
    }
}
