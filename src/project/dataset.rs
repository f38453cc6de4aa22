//! Reading datasets laid out like MVTec AD: `category/train/good/*.png`,
//! `category/test/<defect|good>/*.png`, `category/ground_truth/<defect>/<id>_mask.png`; BTAD's
//! variant (`ok` for normal, `ko` for defective, masks named like their image, PNG or BMP) reads
//! the same way. (Importing them into projects belongs to the import module.)

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
        .filter(|p| p.is_file() && crate::project::imaging::is_image_path(p))
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
        let folder = kdir.file_name().unwrap().to_string_lossy().into_owned();
        let normal = is_normal_folder(&folder);
        let kind = if normal {
            "good".to_string()
        } else {
            folder.clone()
        };
        for image in images_in(&kdir)? {
            let mask = if normal {
                None
            } else {
                let stem = image.file_stem().unwrap().to_string_lossy().into_owned();
                let gt = root.join(category).join("ground_truth").join(&folder);
                let candidates = [
                    gt.join(format!("{stem}_mask.png")),
                    gt.join(format!("{stem}.png")),
                    gt.join(format!("{stem}.bmp")),
                ];
                let Some(m) = candidates.iter().find(|m| m.is_file()) else {
                    anyhow::bail!(
                        "{} has no ground-truth mask (expected {})",
                        image.display(),
                        candidates[0].display()
                    );
                };
                Some(m.clone())
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

/// MVTec names normal images `good`, BTAD `ok`.
fn is_normal_folder(name: &str) -> bool {
    matches!(name, "good" | "ok")
}

/// Normal training images of one MVTec-style category.
pub fn mvtec_train_good(root: &Path, category: &str) -> anyhow::Result<Vec<PathBuf>> {
    let train = root.join(category).join("train");
    let dir = ["good", "ok"]
        .iter()
        .map(|n| train.join(n))
        .find(|d| d.is_dir())
        .unwrap_or_else(|| train.join("good"));
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
