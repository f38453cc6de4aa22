//! Reading datasets laid out like MVTec AD: `category/train/good/*.png`,
//! `category/test/<defect|good>/*.png`, `category/ground_truth/<defect>/<id>_mask.png`.
//! (Importing them into projects, and other layouts, belong to the projects module.)

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub image: PathBuf,
    /// Ground-truth mask; `None` for good images (all normal).
    pub mask: Option<PathBuf>,
    /// "good" or the defect type.
    pub kind: String,
}

fn images_in(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && crate::imaging::is_image_path(p))
        .collect();
    v.sort();
    Ok(v)
}

/// Test samples of one MVTec-style category, with their masks. A defective image without a mask
/// is an error (it would silently count as normal).
pub fn mvtec_test_samples(root: &Path, category: &str) -> anyhow::Result<Vec<Sample>> {
    let test = root.join(category).join("test");
    let mut kinds: Vec<PathBuf> = std::fs::read_dir(&test)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", test.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    kinds.sort();
    let mut out = Vec::new();
    for kdir in kinds {
        let kind = kdir.file_name().unwrap().to_string_lossy().into_owned();
        for image in images_in(&kdir)? {
            let mask = if kind == "good" {
                None
            } else {
                let stem = image.file_stem().unwrap().to_string_lossy();
                let m = root
                    .join(category)
                    .join("ground_truth")
                    .join(&kind)
                    .join(format!("{stem}_mask.png"));
                if !m.is_file() {
                    anyhow::bail!(
                        "{} has no ground-truth mask (expected {})",
                        image.display(),
                        m.display()
                    );
                }
                Some(m)
            };
            out.push(Sample {
                image,
                mask,
                kind: kind.clone(),
            });
        }
    }
    if out.is_empty() {
        anyhow::bail!("no test images under {}", test.display());
    }
    Ok(out)
}

/// Normal training images of one MVTec-style category.
pub fn mvtec_train_good(root: &Path, category: &str) -> anyhow::Result<Vec<PathBuf>> {
    let dir = root.join(category).join("train").join("good");
    images_in(&dir).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", dir.display()))
}

/// Categories (sub-folders with a `test` folder) of an MVTec-style root.
pub fn mvtec_categories(root: &Path) -> anyhow::Result<Vec<String>> {
    let mut v: Vec<String> = std::fs::read_dir(root)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", root.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("test").is_dir())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    v.sort();
    Ok(v)
}
