//! Project data, without libtorch: the project folder and its files, labels and their edits,
//! review, imports and exports, cached results.
//!
//! A project is a folder with a versioned `project.ron`: the images (by path relative to the
//! project when inside it), their split and category, the annotators, the defect classes, and one
//! label mask per (annotator, image). Label masks are 8-bit PNGs holding a class index per pixel
//! (0 = normal), so binary masks are the one-class case. Models live in `models/NAME/CATEGORY/`,
//! what can be recomputed in `cache/`.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

pub mod autosave;
pub mod dataset;
pub mod demo;
pub mod drift;
pub mod evaluation;
pub mod export;
pub mod guard;
pub mod imaging;
pub mod import;
pub mod labels;
pub mod live;
pub mod mask;
pub mod model_file;
pub mod overview;
pub mod results;
pub mod review;
pub mod storage;
pub mod training;

pub use training::TrainingSettings;

/// Version of `project.ron` this build writes.
pub const FORMAT_VERSION: u32 = 2;
pub const PROJECT_FILE: &str = "project.ron";
/// Trained models: `models/NAME/CATEGORY/`.
pub const MODELS_DIR: &str = "models";
/// A model folder's description (`model_file::ModelFile`) and weights.
pub const MODEL_META_FILE: &str = "model.ron";
pub const MODEL_WEIGHTS_FILE: &str = "weights.safetensors";
/// What can be recomputed (inference results, thumbnails): safe to delete, never copied.
pub const CACHE_DIR: &str = "cache";

#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error(
        "{path} was written by a newer Contrario (format {found}, this build reads up to {FORMAT_VERSION}): update Contrario"
    )]
    TooNew { path: PathBuf, found: u32 },
    #[error("{path} is not a project folder (no {PROJECT_FILE} in it)")]
    NotAProject { path: PathBuf },
    #[error("no images found in {path} (looked for PNG, JPEG, BMP and TIFF files)")]
    NoImages { path: PathBuf },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Split {
    /// Normal images the model trains on.
    Train,
    /// Images to review: normal or defective.
    #[default]
    Test,
    /// Images a watcher scored as they came from the line (`live/watch.jsonl`, never written
    /// into `project.ron`).
    Live,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Annotator {
    pub id: String,
    pub name: String,
    /// Imported ground truth is read-only: relabelling goes to a person's own layer.
    #[serde(default)]
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DefectClass {
    /// Pixel value in label masks (1..=255).
    pub index: u8,
    pub name: String,
    /// sRGB colour of the overlay.
    pub color: [u8; 3],
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ImageEntry {
    /// Stable identifier, unique in the project.
    pub id: String,
    /// Relative to the project folder, or absolute for images outside it.
    pub path: PathBuf,
    #[serde(default)]
    pub split: Split,
    #[serde(default)]
    pub category: String,
    /// "good" for normal images, the defect type otherwise; empty when unknown.
    #[serde(default)]
    pub kind: String,
    /// Label mask per annotator id, relative to the project folder.
    #[serde(default)]
    pub labels: BTreeMap<String, PathBuf>,
    /// Images with the same group are views of one object (reviewed and checked together);
    /// empty when the image stands alone.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
}

impl Split {
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
            Split::Live => "live",
        }
    }
}

impl ImageEntry {
    /// The image's name as lists and notices give it, unique in a project where file names
    /// repeat (every MVTec folder has a 000.png): category/split/kind/file, empty parts left out.
    pub fn display_name(&self) -> String {
        let file = self
            .path
            .file_name()
            .map_or_else(|| self.id.clone(), |n| n.to_string_lossy().into_owned());
        [
            self.category.as_str(),
            self.split.name(),
            self.kind.as_str(),
        ]
        .into_iter()
        .filter(|s| !s.is_empty())
        .chain(std::iter::once(file.as_str()))
        .collect::<Vec<_>>()
        .join("/")
    }
}

/// `name` in at most `max` characters: the middle parts of a path give way to "…" first, so
/// that its first part (the category) and its last (the file) stay readable.
pub fn shorten_middle(name: &str, max: usize) -> String {
    let count = |s: &str| s.chars().count();
    if count(name) <= max {
        return name.to_string();
    }
    let parts: Vec<&str> = name.split('/').collect();
    if parts.len() > 2 {
        // Drop middle parts, those nearest the file last.
        for keep in (0..parts.len() - 2).rev() {
            let mut v = vec![parts[0], "…"];
            v.extend(&parts[parts.len() - 1 - keep..]);
            let s = v.join("/");
            if count(&s) <= max {
                return s;
            }
        }
    }
    // Still too long: keep the end (the file's name tells images apart) behind an ellipsis.
    let tail: Vec<char> = name.chars().rev().take(max.saturating_sub(1)).collect();
    std::iter::once('…').chain(tail.into_iter().rev()).collect()
}

/// A dataset imported into the project, so that a re-import knows where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetRef {
    /// mvtec, btad, visa, magnetic-tile or folder.
    pub format: String,
    /// Relative to the project folder when inside it.
    pub path: PathBuf,
}

/// A trained model of the project (`models/NAME/CATEGORY`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRef {
    pub name: String,
    pub category: String,
    pub path: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Detection threshold on log10 NFA: regions with log10 NFA below it are shown. 0 means one
    /// false alarm expected per image under the normal model.
    pub log10_nfa_threshold: f64,
    /// Label issues: detections below this log10 NFA that nobody labelled are listed (-2: one
    /// such region by chance in a hundred images).
    #[serde(default = "default_issue_threshold")]
    pub label_issue_log10_nfa: f64,
    /// Settings of the U-Flow trainings started from the window.
    #[serde(default)]
    pub training: TrainingSettings,
    /// The detector last chosen in the window, which the next opening starts on (None: the
    /// most recently trained model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detector: Option<DetectorChoice>,
}

/// A detector as the project remembers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DetectorChoice {
    /// The training-free detector of thesis chapter 3.
    TrainingFree,
    /// A model of the project's `models/` folder, by name.
    Model(String),
}

fn default_issue_threshold() -> f64 {
    -2.0
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            log10_nfa_threshold: 0.0,
            label_issue_log10_nfa: default_issue_threshold(),
            training: TrainingSettings::default(),
            detector: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectFile {
    pub format_version: u32,
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub annotators: Vec<Annotator>,
    #[serde(default)]
    pub classes: Vec<DefectClass>,
    #[serde(default)]
    pub images: Vec<ImageEntry>,
    #[serde(default)]
    pub datasets: Vec<DatasetRef>,
    #[serde(default)]
    pub models: Vec<ModelRef>,
    #[serde(default)]
    pub settings: Settings,
}

impl ProjectFile {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            format_version: FORMAT_VERSION,
            name: name.into(),
            description: String::new(),
            annotators: Vec::new(),
            classes: Vec::new(),
            images: Vec::new(),
            datasets: Vec::new(),
            models: Vec::new(),
            settings: Settings::default(),
        }
    }
}

/// An opened project: its folder and its description. A folder of images opened directly is a
/// project without a file on disk (`saved == false`) until the user saves it.
#[derive(Debug, Clone)]
pub struct Project {
    pub root: PathBuf,
    pub file: ProjectFile,
    pub saved: bool,
    /// The format version the file had when opened, when older than this build's: the next save
    /// keeps a copy of the old file as `project.v<N>.ron`.
    pub migrated_from: Option<u32>,
}

impl Project {
    /// Open `dir/project.ron` (or the file itself when `dir` names it).
    pub fn open(dir: &Path) -> Result<Self, ProjectError> {
        let (root, path) = if dir.is_file() {
            (
                dir.parent().unwrap_or(Path::new(".")).to_path_buf(),
                dir.to_path_buf(),
            )
        } else {
            (dir.to_path_buf(), dir.join(PROJECT_FILE))
        };
        if !path.exists() {
            if !root.exists() {
                return Err(ProjectError::Io {
                    path: root,
                    source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such folder"),
                });
            }
            return Err(ProjectError::NotAProject { path: root });
        }
        let text = std::fs::read_to_string(&path).map_err(|source| ProjectError::Io {
            path: path.clone(),
            source,
        })?;
        let found = scan_version(&text);
        let mut file = parse_project(&text, &path)?;
        file.add_live(&root);
        Ok(Self {
            root,
            file,
            saved: true,
            migrated_from: found.filter(|&v| v < FORMAT_VERSION),
        })
    }

    /// A transient project over every image found in `dir` (recursively, sorted by path).
    pub fn from_image_folder(dir: &Path) -> Result<Self, ProjectError> {
        let mut paths = Vec::new();
        collect_images(dir, 0, &mut paths).map_err(|source| ProjectError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        if paths.is_empty() {
            return Err(ProjectError::NoImages {
                path: dir.to_path_buf(),
            });
        }
        paths.sort();
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut file = ProjectFile::new(name);
        for p in paths {
            let rel = p.strip_prefix(dir).unwrap_or(&p).to_path_buf();
            let id = rel
                .with_extension("")
                .to_string_lossy()
                .replace(['/', '\\'], "_");
            file.images.push(ImageEntry {
                id,
                path: rel,
                ..Default::default()
            });
        }
        Ok(Self {
            root: dir.to_path_buf(),
            file,
            saved: false,
            migrated_from: None,
        })
    }

    pub fn image_path(&self, entry: &ImageEntry) -> PathBuf {
        self.root.join(&entry.path)
    }

    pub fn label_path(&self, entry: &ImageEntry, annotator: &str) -> Option<PathBuf> {
        entry.labels.get(annotator).map(|p| self.root.join(p))
    }

    pub fn class(&self, index: u8) -> Option<&DefectClass> {
        self.file.classes.iter().find(|c| c.index == index)
    }

    /// Write `project.ron` atomically (after keeping the file of an older format once).
    pub fn save(&mut self) -> std::io::Result<()> {
        let path = self.root.join(PROJECT_FILE);
        if let Some(v) = self.migrated_from
            && path.exists()
        {
            let backup = self.root.join(format!("project.v{v}.ron"));
            if !backup.exists() {
                storage::write_atomic(&backup, &std::fs::read(&path)?)?;
            }
            self.migrated_from = None;
        }
        let text = to_ron(&self.file);
        storage::write_atomic(&path, text.as_bytes())?;
        self.saved = true;
        Ok(())
    }

    pub fn image(&self, id: &str) -> Option<&ImageEntry> {
        self.file.images.iter().find(|e| e.id == id)
    }

    /// The read-only annotator (a dataset's ground truth), if the project has one.
    pub fn read_only_annotator(&self) -> Option<&str> {
        self.file
            .annotators
            .iter()
            .find(|a| a.read_only)
            .map(|a| a.id.as_str())
    }

    pub fn annotator(&self, id: &str) -> Option<&Annotator> {
        self.file.annotators.iter().find(|a| a.id == id)
    }

    /// Add an annotator (a person's editable layer) unless one with that id exists.
    pub fn ensure_annotator(&mut self, id: &str, name: &str) {
        if self.annotator(id).is_none() {
            self.file.annotators.push(Annotator {
                id: id.into(),
                name: name.into(),
                read_only: false,
            });
        }
    }

    /// Where model `name` trained on `category` lives (`models/NAME/CATEGORY`; a project without
    /// categories keeps it in `models/NAME`).
    pub fn model_dir(&self, name: &str, category: &str) -> PathBuf {
        let base = self.root.join(MODELS_DIR).join(name);
        if category.is_empty() {
            base
        } else {
            base.join(category)
        }
    }

    /// Where inference results of model `name` on `category` are cached.
    pub fn cache_dir(&self, name: &str, category: &str) -> PathBuf {
        cache_root(&self.root).join(name).join(category)
    }

    /// Where thumbnails are cached: only for a project saved on disk (a folder of images opened
    /// directly gets no folder written into it).
    pub fn thumb_cache_dir(&self) -> Option<PathBuf> {
        self.saved.then(|| cache_root(&self.root).join("thumbs"))
    }

    /// The categories of the project's images, sorted.
    pub fn categories(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .file
            .images
            .iter()
            .map(|e| e.category.clone())
            .collect();
        all.sort();
        all.dedup();
        all
    }

    /// The model trained most recently (its newest `model.ron` over the categories), if any.
    pub fn latest_model(&self) -> Option<String> {
        let newest = |name: &String| {
            std::fs::read_dir(self.root.join(MODELS_DIR).join(name))
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|c| {
                    c.path()
                        .join(MODEL_META_FILE)
                        .metadata()
                        .ok()?
                        .modified()
                        .ok()
                })
                .max()
        };
        self.model_names()
            .into_iter()
            .filter_map(|n| Some((newest(&n)?, n)))
            .max()
            .map(|(_, n)| n)
    }

    /// Names of the models saved in the project folder (`models/NAME/...`), sorted.
    pub fn model_names(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.root.join(MODELS_DIR))
            .map(|d| {
                d.flatten()
                    .filter(|e| e.path().is_dir())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Store a path relative to the project when it lies inside it.
    pub fn relative(&self, p: &Path) -> PathBuf {
        self.relativizer()(p)
    }

    /// [`Self::relative`] for many paths: the project folder is resolved once.
    pub fn relativizer(&self) -> impl Fn(&Path) -> PathBuf + use<> {
        let root = std::fs::canonicalize(&self.root).unwrap_or_else(|_| self.root.clone());
        move |p: &Path| {
            let abs = std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
            abs.strip_prefix(&root)
                .map(Path::to_path_buf)
                .unwrap_or(abs)
        }
    }
}

/// Where a project's caches live: its own `cache/` folder, or, for a project folder this user
/// cannot write (the demo an installed package ships), a folder in the user's cache named after
/// the project's path. Decided once per folder and process.
pub fn cache_root(root: &Path) -> PathBuf {
    static ROOTS: std::sync::OnceLock<std::sync::Mutex<HashMap<PathBuf, PathBuf>>> =
        std::sync::OnceLock::new();
    let mut known = ROOTS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    known
        .entry(root.to_path_buf())
        .or_insert_with(|| {
            let own = root.join(CACHE_DIR);
            if storage::can_write_in(&own) {
                return own;
            }
            let abs = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
            let mut h = storage::Fnv::new();
            h.eat(abs.to_string_lossy().as_bytes());
            user_cache_dir().join("projects").join(h.hex())
        })
        .clone()
}

/// The user's cache folder for Contrario: `$XDG_CACHE_HOME/contrario`, else
/// `~/.cache/contrario`, else one under the system's temporary folder.
pub fn user_cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".cache"))
        })
        .unwrap_or_else(std::env::temp_dir);
    base.join("contrario")
}

/// The folder the running program is installed in (its executable's, links resolved): an
/// installed package finds its libraries, weights and demo beside it.
pub fn install_dir() -> Option<PathBuf> {
    std::env::current_exe()
        .ok()
        .and_then(|e| std::fs::canonicalize(e).ok())
        .and_then(|e| e.parent().map(Path::to_path_buf))
}

/// Copy a project folder to `dst` (created): its files, labels, journal and models, without what
/// belongs to the running copy (the `cache` folder, the lock). Entries that vanish while it
/// copies (another process's lock or temporary files) are skipped, not errors.
pub fn copy_folder(src: &Path, dst: &Path) -> std::io::Result<()> {
    fn copy(src: &Path, dst: &Path, top: bool) -> std::io::Result<()> {
        std::fs::create_dir_all(dst)?;
        for entry in std::fs::read_dir(src)? {
            let entry = entry?;
            let name = entry.file_name();
            if top && (name == CACHE_DIR || name == storage::LOCK_FILE) {
                continue;
            }
            let (from, to) = (entry.path(), dst.join(&name));
            let done = match entry.file_type()? {
                t if t.is_dir() => copy(&from, &to, false),
                _ => std::fs::copy(&from, &to).map(|_| ()),
            };
            match done {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                other => other?,
            }
        }
        Ok(())
    }
    copy(src, dst, true)
}

pub fn to_ron(file: &ProjectFile) -> String {
    // The live split belongs to the watcher's journal, not to the shared project file.
    let shared;
    let file = if file.images.iter().any(|e| e.split == Split::Live) {
        shared = ProjectFile {
            images: file
                .images
                .iter()
                .filter(|e| e.split != Split::Live)
                .cloned()
                .collect(),
            ..file.clone()
        };
        &shared
    } else {
        file
    };
    let cfg = ron::ser::PrettyConfig::new()
        .struct_names(true)
        .indentor("  ".to_string());
    ron::ser::to_string_pretty(file, cfg).expect("project serialisation cannot fail")
}

/// Parse a project file, checking its version first so that a newer file gets a version message
/// rather than a confusing field error.
pub fn parse_project(text: &str, path: &Path) -> Result<ProjectFile, ProjectError> {
    if let Some(found) = scan_version(text)
        && found > FORMAT_VERSION
    {
        return Err(ProjectError::TooNew {
            path: path.to_path_buf(),
            found,
        });
    }
    let mut file = ron::from_str::<ProjectFile>(text).map_err(|e| ProjectError::Parse {
        path: path.to_path_buf(),
        line: e.span.start.line,
        column: e.span.start.col,
        message: e.code.to_string(),
    })?;
    migrate(&mut file);
    Ok(file)
}

/// Bring an older file up to [`FORMAT_VERSION`]. Version 1 had no groups, datasets, models or
/// label-issue threshold; serde's defaults fill them, and the models already trained in the
/// folder are registered by the caller that knows the folder.
fn migrate(file: &mut ProjectFile) {
    if file.format_version < 2 {
        file.format_version = 2;
    }
}

/// The `format_version: N` field, read without trusting the rest of the file.
fn scan_version(text: &str) -> Option<u32> {
    let at = text.find("format_version")?;
    let rest = text[at + "format_version".len()..]
        .trim_start()
        .strip_prefix(':')?;
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

pub(crate) fn collect_images(
    dir: &Path,
    depth: usize,
    out: &mut Vec<PathBuf>,
) -> std::io::Result<()> {
    // Depth limit: a mistaken click on `/` must not scan the whole disk.
    if depth > 6 {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)? {
        let Ok(entry) = entry else { continue };
        let p = entry.path();
        let Ok(ft) = entry.file_type() else { continue };
        if ft.is_dir() {
            let hidden = p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'));
            if !hidden {
                // Unreadable sub-folders are skipped, not fatal.
                let _ = collect_images(&p, depth + 1, out);
            }
        } else if imaging::is_image_path(&p) {
            out.push(p);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_project_folder_that_cannot_be_written_keeps_its_caches_in_the_users_cache() {
        let dir = tempfile::tempdir().unwrap();
        let mine = dir.path().join("mine");
        std::fs::create_dir(&mine).unwrap();
        assert_eq!(cache_root(&mine), mine.join(CACHE_DIR));
        // A folder where no cache can be made (here its `cache` is a file; for an installed
        // demo, a folder of root's): the user's cache, one folder per project, stable.
        let theirs = dir.path().join("theirs");
        std::fs::create_dir(&theirs).unwrap();
        std::fs::write(theirs.join(CACHE_DIR), "not a folder").unwrap();
        let elsewhere = cache_root(&theirs);
        assert!(!elsewhere.starts_with(&theirs), "{}", elsewhere.display());
        assert!(elsewhere.starts_with(user_cache_dir().join("projects")));
        assert_eq!(cache_root(&theirs), elsewhere);
        let p = Project {
            root: theirs.clone(),
            file: ProjectFile::new("p"),
            saved: true,
            migrated_from: None,
        };
        assert!(p.cache_dir("m", "c").starts_with(&elsewhere));
        assert_eq!(p.thumb_cache_dir(), Some(elsewhere.join("thumbs")));
    }

    #[test]
    fn images_are_named_by_their_place_in_the_project_and_shortened_in_the_middle() {
        let e = ImageEntry {
            id: "x".into(),
            path: "data/transistor/test/misplaced/001.png".into(),
            split: Split::Test,
            category: "transistor".into(),
            kind: "misplaced".into(),
            ..Default::default()
        };
        assert_eq!(e.display_name(), "transistor/test/misplaced/001.png");
        let bare = ImageEntry {
            id: "y".into(),
            path: "a.png".into(),
            ..Default::default()
        };
        assert_eq!(bare.display_name(), "test/a.png");
        let name = e.display_name();
        assert_eq!(shorten_middle(&name, 40), name);
        assert_eq!(shorten_middle(&name, 30), "transistor/…/misplaced/001.png");
        assert_eq!(shorten_middle(&name, 20), "transistor/…/001.png");
        let tight = shorten_middle(&name, 12);
        assert!(
            tight.chars().count() <= 12 && tight.ends_with("001.png"),
            "{tight}"
        );
    }

    #[test]
    fn a_copied_folder_leaves_the_cache_and_the_lock_behind() {
        let src = tempfile::tempdir().unwrap();
        let s = src.path();
        for (path, body) in [
            ("project.ron", "p"),
            ("labels/gt/a.png", "l"),
            ("journal/audit.jsonl", "j"),
            ("cache/thumbs/x.png", "c"),
            (storage::LOCK_FILE, "1 host 0"),
        ] {
            std::fs::create_dir_all(s.join(path).parent().unwrap()).unwrap();
            std::fs::write(s.join(path), body).unwrap();
        }
        let dst = tempfile::tempdir().unwrap();
        let d = dst.path().join("copy");
        copy_folder(s, &d).unwrap();
        for kept in ["project.ron", "labels/gt/a.png", "journal/audit.jsonl"] {
            assert!(d.join(kept).is_file(), "{kept} copied");
        }
        assert!(!d.join("cache").exists() && !d.join(storage::LOCK_FILE).exists());
        assert!(copy_folder(&s.join("missing"), &d.join("x")).is_err());
    }

    #[test]
    fn round_trip_through_ron() {
        let mut f = ProjectFile::new("t");
        f.annotators.push(Annotator {
            id: "a".into(),
            name: "A".into(),
            read_only: false,
        });
        f.images.push(ImageEntry {
            id: "x".into(),
            path: "images/x.png".into(),
            split: Split::Train,
            category: "c".into(),
            kind: "good".into(),
            labels: BTreeMap::from([("a".to_string(), PathBuf::from("labels/a/x.png"))]),
            group: "g1".into(),
        });
        let text = to_ron(&f);
        assert_eq!(parse_project(&text, Path::new("p.ron")).unwrap(), f);
    }

    #[test]
    fn damaged_file_names_file_and_line() {
        let text = "ProjectFile(\n  format_version: 1,\n  name: \"x\",\n  images: [oops],\n)";
        let err = parse_project(text, Path::new("/tmp/p/project.ron"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("/tmp/p/project.ron:4:"), "{err}");
    }

    #[test]
    fn version_one_files_migrate_and_keep_a_copy() {
        let dir = tempfile::tempdir().unwrap();
        let v1 = "ProjectFile(\n  format_version: 1,\n  name: \"old\",\n  images: [ImageEntry(id: \"a\", path: \"a.png\", labels: {\"gt\": \"m.png\"})],\n  settings: Settings(log10_nfa_threshold: -1.5),\n)";
        std::fs::write(dir.path().join(PROJECT_FILE), v1).unwrap();
        let mut p = Project::open(dir.path()).unwrap();
        assert_eq!(p.migrated_from, Some(1));
        assert_eq!(p.file.format_version, FORMAT_VERSION);
        assert_eq!(p.file.settings.log10_nfa_threshold, -1.5);
        assert_eq!(p.file.settings.label_issue_log10_nfa, -2.0);
        assert_eq!(p.file.images[0].labels["gt"], PathBuf::from("m.png"));
        p.save().unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("project.v1.ron")).unwrap(),
            v1
        );
        let again = Project::open(dir.path()).unwrap();
        assert_eq!(again.migrated_from, None);
        assert_eq!(again.file, p.file);
    }

    #[test]
    fn newer_version_is_refused_clearly() {
        let text = "ProjectFile(format_version: 99, name: \"x\", future_field: 3)";
        let err = parse_project(text, Path::new("p.ron")).unwrap_err();
        assert!(
            matches!(err, ProjectError::TooNew { found: 99, .. }),
            "{err}"
        );
    }

    #[test]
    fn folder_without_images_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notes.txt"), "hi").unwrap();
        assert!(matches!(
            Project::from_image_folder(dir.path()),
            Err(ProjectError::NoImages { .. })
        ));
        assert!(matches!(
            Project::open(dir.path()),
            Err(ProjectError::NotAProject { .. })
        ));
    }
}
