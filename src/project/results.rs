//! Cached inference results, readable without the model (and without libtorch): the anomaly map,
//! the log10 NFA map and the image score of a model on an image, one entry per image in
//! `cache/MODEL/CATEGORY/`, stamped with a key of everything that decided it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::drift::{self, TrainingLook};
use super::model_file::ModelFile;
use super::storage::{self, Fnv};
use super::{ImageEntry, MODEL_META_FILE, MODEL_WEIGHTS_FILE, Project};
use crate::stats::acontrario::SegmentOptions;

/// What inference keeps per image: enough to display, threshold and evaluate without the model.
#[derive(Debug, Clone, PartialEq)]
pub struct InferenceSummary {
    pub anomaly_map: ndarray::Array2<f32>,
    pub log_nfa: ndarray::Array2<f32>,
    pub image_score: f32,
    pub mean_z2_per_scale: Vec<f64>,
    /// The image's look as the model saw it (for the drift check; None in results made before).
    pub look: Option<drift::Look>,
    /// Per cell of `log_nfa`, the scale (0 = finest) whose test gave its value.
    pub best_scale: ndarray::Array2<u8>,
}

/// Bumped whenever the code that turns latents into cached maps changes its output (settings
/// changes are caught by the key on their own).
const RESULTS_VERSION: u32 = 10;

/// FNV-1a of the things that decide a result: the model files, the image file, the
/// segmentation's settings and the version of the code that made it.
fn cache_key(model_dir: &Path, image: &Path, opts: &SegmentOptions) -> String {
    let mut h = Fnv::new();
    h.eat(&RESULTS_VERSION.to_le_bytes());
    h.eat(format!("{opts:?}").as_bytes());
    if let Ok(t) = std::fs::read(model_dir.join(MODEL_META_FILE)) {
        h.eat(&t);
    }
    h.eat_file_stamp(&model_dir.join(MODEL_WEIGHTS_FILE));
    h.eat_file_stamp(image);
    h.hex()
}

/// Files of one cached inference result: log10 NFA, anomaly and scale maps, and the metadata written
/// last. One entry per image, named by its id: the metadata holds the key the maps were made
/// under, and a result made under another key is overwritten, so stale entries never pile up.
pub struct CacheEntry {
    map: PathBuf,
    nfa: PathBuf,
    scale: PathBuf,
    meta: PathBuf,
    key: String,
}

impl CacheEntry {
    pub fn new(
        model_dir: &Path,
        id: &str,
        image: &Path,
        cache: &Path,
        opts: &SegmentOptions,
    ) -> Self {
        Self::files(cache, id, cache_key(model_dir, image, opts))
    }

    fn files(cache: &Path, id: &str, key: String) -> Self {
        let stem = id.replace(['/', '\\', ':'], "__");
        Self {
            map: cache.join(format!("{stem}.map.npy")),
            nfa: cache.join(format!("{stem}.nfa.npy")),
            scale: cache.join(format!("{stem}.scale.npy")),
            meta: cache.join(format!("{stem}.json")),
            key,
        }
    }

    /// Remove the entry of image `id` in `cache`, whatever it was made under: the metadata
    /// first, so that maps left by an interruption never pass for a result. Missing files are
    /// no error.
    pub fn remove(cache: &Path, id: &str) -> std::io::Result<()> {
        let e = Self::files(cache, id, String::new());
        for p in [&e.meta, &e.map, &e.nfa, &e.scale] {
            match std::fs::remove_file(p) {
                Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(err),
                _ => {}
            }
        }
        Ok(())
    }

    /// The cached result, if there is one made under this entry's key.
    pub fn read(&self) -> Option<InferenceSummary> {
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&self.meta).ok()?).ok()?;
        if meta["key"].as_str() != Some(self.key.as_str()) {
            return None;
        }
        // A map whose bytes are not those the metadata vouches for (torn by a power cut: the
        // cache is written without fsync) is no result: the image is scored again.
        let checked = |p: &Path, i: usize| {
            let bytes = std::fs::read(p).ok()?;
            (meta["sums"][i].as_str() == Some(checksum(&bytes).as_str())).then_some(bytes)
        };
        let two = |p: &Path, i: usize| {
            crate::stats::npy::parse_f32(&checked(p, i)?)
                .ok()?
                .into_dimensionality::<ndarray::Ix2>()
                .ok()
        };
        let scales = crate::stats::npy::parse_u8(&checked(&self.scale, 2)?).ok()?;
        Some(InferenceSummary {
            anomaly_map: two(&self.map, 0)?,
            log_nfa: two(&self.nfa, 1)?,
            best_scale: scales.into_dimensionality::<ndarray::Ix2>().ok()?,
            image_score: meta["image_score"].as_f64().unwrap_or(f64::NAN) as f32,
            mean_z2_per_scale: serde_json::from_value(meta["mean_z2_per_scale"].clone()).ok()?,
            look: serde_json::from_value(meta["look"].clone()).ok(),
        })
    }

    /// Written without fsync (a result costs less to recompute than two fsyncs per file): the
    /// metadata, written last, holds a checksum of each map, and [`CacheEntry::read`] serves
    /// only maps that match it.
    pub fn write(&self, s: &InferenceSummary) -> anyhow::Result<()> {
        // The old metadata goes first: maps half-replaced must not pass for valid.
        match std::fs::remove_file(&self.meta) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        use crate::stats::npy::{to_bytes_f32, to_bytes_u8};
        let npy =
            |a: &ndarray::Array2<f32>| to_bytes_f32(&[a.nrows(), a.ncols()], a.iter().copied());
        let b = &s.best_scale;
        // The scale that found each cell is a byte: a quarter of the room of a float map.
        let maps = [
            (&self.map, npy(&s.anomaly_map)),
            (&self.nfa, npy(&s.log_nfa)),
            (
                &self.scale,
                to_bytes_u8(&[b.nrows(), b.ncols()], b.iter().copied()),
            ),
        ];
        let mut sums = Vec::with_capacity(maps.len());
        for (path, bytes) in &maps {
            storage::write_atomic_unsynced(path, bytes)?;
            sums.push(checksum(bytes));
        }
        let meta = serde_json::json!({
            "key": self.key,
            "sums": sums,
            "image_score": s.image_score,
            "mean_z2_per_scale": s.mean_z2_per_scale,
            "look": s.look,
        });
        storage::write_atomic_unsynced(&self.meta, meta.to_string().as_bytes())?;
        Ok(())
    }
}

/// CRC-32 of a cached map, hex: what a torn write is caught by (SIMD, on every cached read:
/// FNV, byte by byte, cost more than reading the file from the page cache).
fn checksum(bytes: &[u8]) -> String {
    format!("{:08x}", crc32fast::hash(bytes))
}

/// A cached result of the model in `model_dir` on an image, made with the model's own
/// segmentation, if one is there and still valid (reports and label-issue lists read results
/// without loading the model).
pub fn cached_summary(
    model_dir: &Path,
    id: &str,
    image: &Path,
    cache: &Path,
) -> Option<InferenceSummary> {
    let opts = ModelFile::read(model_dir).ok()?.segment_options();
    CacheEntry::new(model_dir, id, image, cache, &opts).read()
}

impl Project {
    /// What the training images of model `name` for `category` look like: kept with the model,
    /// else (a model saved before it was kept) measured on the project's training images of the
    /// category. Remembered per model file, so that a whole project's drift check reads it once.
    pub fn training_look(&self, name: &str, category: &str) -> Option<TrainingLook> {
        type Memo = HashMap<(PathBuf, std::time::SystemTime), Option<TrainingLook>>;
        static MEMO: std::sync::OnceLock<std::sync::Mutex<Memo>> = std::sync::OnceLock::new();
        let dir = self.model_dir(name, category);
        let meta = dir.join(MODEL_META_FILE);
        let stamp = std::fs::metadata(&meta).and_then(|m| m.modified()).ok()?;
        let key = (meta, stamp);
        let memo = MEMO.get_or_init(Default::default);
        if let Some(t) = memo.lock().ok()?.get(&key) {
            return t.clone();
        }
        let file = ModelFile::read(&dir).ok()?;
        let look = file.training_look.clone().or_else(|| {
            let paths: Vec<PathBuf> = self
                .file
                .images
                .iter()
                .filter(|e| e.category == category && e.split == super::Split::Train)
                .map(|e| self.image_path(e))
                .collect();
            drift::training_look(&paths, file.input_size as u32)
        });
        memo.lock().ok()?.insert(key, look.clone());
        look
    }

    /// The drift check of a result of model `name`: None when the image looks like the
    /// training images (or either look is unknown).
    pub fn unlike_training(
        &self,
        name: &str,
        category: &str,
        result: &InferenceSummary,
    ) -> Option<drift::Unlike> {
        self.training_look(name, category)?
            .judge(result.look.as_ref()?)
    }

    /// The images of `results` that the drift check finds unlike model `name`'s training images.
    pub fn unlike_training_images(
        &self,
        name: &str,
        category: &str,
        results: &[(ImageEntry, InferenceSummary)],
    ) -> Vec<(String, drift::Unlike)> {
        results
            .iter()
            .filter_map(|(e, r)| Some((e.id.clone(), self.unlike_training(name, category, r)?)))
            .collect()
    }

    /// The cached result of model `name` on an image, if one is there and still valid.
    pub fn cached_result(&self, name: &str, entry: &ImageEntry) -> Option<InferenceSummary> {
        cached_summary(
            &self.model_dir(name, &entry.category),
            &entry.id,
            &self.image_path(entry),
            &self.cache_dir(name, &entry.category),
        )
    }

    /// The cached results of model `name` on every test image of `category`, in the project's
    /// order; or how many have none.
    pub fn cached_test_results(
        &self,
        name: &str,
        category: &str,
    ) -> Result<Vec<(ImageEntry, InferenceSummary)>, usize> {
        let mut out = Vec::new();
        let mut missing = 0;
        for e in self
            .file
            .images
            .iter()
            .filter(|e| e.category == category && e.split == super::Split::Test)
        {
            match self.cached_result(name, e) {
                Some(r) => out.push((e.clone(), r)),
                None => missing += 1,
            }
        }
        if missing > 0 {
            return Err(missing);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary() -> InferenceSummary {
        let map = ndarray::Array2::from_shape_fn((8, 6), |(y, x)| (y * 6 + x) as f32 / 48.0);
        InferenceSummary {
            anomaly_map: map.clone(),
            log_nfa: map.mapv(|v| -3.0 * v),
            image_score: 0.75,
            mean_z2_per_scale: vec![1.0, 1.25],
            look: None,
            best_scale: map.mapv(|v| (v * 3.0) as u8),
        }
    }

    #[test]
    fn cached_result_reads_back_and_a_damaged_map_is_never_served() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("a.png");
        std::fs::write(&image, b"image bytes").unwrap();
        let cache = dir.path().join("cache");
        let entry = || {
            CacheEntry::new(
                dir.path(),
                "cat/a.png",
                &image,
                &cache,
                &SegmentOptions::default(),
            )
        };
        let s = summary();
        entry().write(&s).unwrap();
        assert_eq!(entry().read(), Some(s.clone()));
        // A map torn or swapped behind the metadata's back (a power cut: no fsync) reads as no
        // result, so the image is scored again; each of the three maps is checked.
        for suffix in ["map", "nfa", "scale"] {
            let p = cache.join(format!("cat__a.png.{suffix}.npy"));
            let good = std::fs::read(&p).unwrap();
            let mut bad = good.clone();
            let last = bad.len() - 1;
            bad[last] ^= 0x40;
            std::fs::write(&p, &bad).unwrap();
            assert_eq!(entry().read(), None, "{suffix} damaged");
            std::fs::write(&p, &good[..good.len() / 2]).unwrap();
            assert_eq!(entry().read(), None, "{suffix} truncated");
            std::fs::write(&p, &good).unwrap();
            assert_eq!(entry().read(), Some(s.clone()));
        }
    }
}
