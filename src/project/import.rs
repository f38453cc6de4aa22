//! Importing datasets into projects: MVTec-AD-style folders (`category/train/good`,
//! `category/test/<kind>`, `category/ground_truth/<kind>/<id>_mask.png`), BTAD (`ok`/`ko`, masks
//! named like their images), VisA (its split CSV), the Magnetic-tile set (`MT_<Type>/Imgs/<name>.jpg`
//! with `<name>.png` masks) and plain folders of images. A dataset's ground truth becomes a
//! read-only annotator whose masks are the dataset's own files. Masks whose size differs from
//! their image are reported in the summary and left out, never resized.

use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::project::dataset;
use crate::project::{
    Annotator, DatasetRef, DefectClass, ImageEntry, PROJECT_FILE, Project, ProjectFile, Split,
};

/// Class index of imported binary ground truth (MVTec masks hold 0 and 255).
pub const GT_CLASS: u8 = 255;
pub const GT_ANNOTATOR: &str = "gt";

/// Formats `contrario import --format` accepts.
pub const FORMATS: &[&str] = &["mvtec", "btad", "visa", "magnetic-tile", "folder"];

#[derive(Debug, Default, Serialize, PartialEq)]
pub struct CategoryCounts {
    pub images: usize,
    pub train_normal: usize,
    pub test: usize,
    pub ground_truth_masks: usize,
    /// Masks attached per annotator from their folders (`--annotator-masks`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotator_masks: BTreeMap<String, usize>,
    /// Images whose file cannot be read as an image: left out, never counted as test images.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unreadable: Vec<String>,
    /// Files that were not imported as they are (mask size mismatch, unreadable header).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// Import `data` in `format` into the project at `dir` (created if needed; images already in it
/// are kept, re-imported ones replaced). Returns counts per category.
pub fn import(
    dir: &Path,
    format: &str,
    data: &Path,
) -> anyhow::Result<BTreeMap<String, CategoryCounts>> {
    import_with_layers(dir, format, data, &[])
}

/// [`import`], also attaching each annotator's masks from a folder (`(annotator, folder)`): a
/// mask belongs to the image whose file stem it starts with (`im01.png`, `im01_mask.png`,
/// `im01.ah.png`). These layers stay editable; edits go to the project's own files.
pub fn import_with_layers(
    dir: &Path,
    format: &str,
    data: &Path,
    layers: &[(String, PathBuf)],
) -> anyhow::Result<BTreeMap<String, CategoryCounts>> {
    import_with_progress(dir, format, data, layers, &|| {})
}

/// [`import_with_layers`], calling `tick` once per image read (the window's progress).
pub fn import_with_progress(
    dir: &Path,
    format: &str,
    data: &Path,
    layers: &[(String, PathBuf)],
    tick: &(dyn Fn() + Sync),
) -> anyhow::Result<BTreeMap<String, CategoryCounts>> {
    let data = std::fs::canonicalize(data)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", data.display()))?;
    let (entries, counts) = match format {
        "mvtec" | "btad" => collect_mvtec(&data, tick)?,
        "visa" => collect_visa(&data, tick)?,
        "magnetic-tile" | "mt" => collect_magnetic_tile(&data, tick)?,
        "folder" => collect_folder(&data, tick)?,
        other => anyhow::bail!(
            "unknown format {other:?} (this build imports: {})",
            FORMATS.join(", ")
        ),
    };
    let (mut entries, mut counts) = (entries, counts);
    for (who, folder) in layers {
        attach_layer(&mut entries, &mut counts, who, folder)?;
    }
    let mut project = open_or_create(dir, format != "folder")?;
    for (who, _) in layers {
        project.ensure_annotator(who, who);
    }
    if !layers.is_empty() {
        ensure_gt_class(&mut project);
    }
    let ids: std::collections::HashSet<&str> = entries.iter().map(|e| e.id.as_str()).collect();
    project.file.images.retain(|e| !ids.contains(e.id.as_str()));
    let rel = project.relativizer();
    for e in &mut entries {
        e.path = rel(&e.path);
        for m in e.labels.values_mut() {
            *m = rel(m);
        }
    }
    project.file.images.extend(entries);
    let dref = DatasetRef {
        format: format.to_string(),
        path: project.relative(&data),
    };
    if !project.file.datasets.contains(&dref) {
        project.file.datasets.push(dref);
    }
    project.save()?;
    Ok(counts)
}

fn attach_layer(
    entries: &mut [ImageEntry],
    counts: &mut BTreeMap<String, CategoryCounts>,
    who: &str,
    folder: &Path,
) -> anyhow::Result<()> {
    let mut masks = Vec::new();
    crate::project::collect_images(folder, 0, &mut masks)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", folder.display()))?;
    let mut by_name: Vec<(String, PathBuf)> = masks
        .into_iter()
        .filter_map(|p| Some((p.file_name()?.to_string_lossy().into_owned(), p)))
        .collect();
    by_name.sort();
    let mut found = 0;
    for e in entries.iter_mut() {
        let stem = e
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let hit = by_name.iter().find(|(n, _)| {
            n.strip_prefix(&stem)
                .is_some_and(|rest| rest.starts_with(['.', '_']))
        });
        let Some((_, m)) = hit else { continue };
        let c = counts.entry(e.category.clone()).or_default();
        match check_mask(&e.path, m) {
            MaskCheck::Fits => {
                e.labels.insert(who.to_string(), m.clone());
                *c.annotator_masks.entry(who.to_string()).or_default() += 1;
                found += 1;
            }
            MaskCheck::ImageUnreadable(why) | MaskCheck::Rejected(why) => {
                c.problems.push(format!("{why} ({who}'s mask): left out"))
            }
        }
    }
    if found == 0 {
        anyhow::bail!(
            "no mask in {} matches an image (a mask's name must start with its image's file stem)",
            folder.display()
        );
    }
    Ok(())
}

type Collected = (Vec<ImageEntry>, BTreeMap<String, CategoryCounts>);

/// Whether a mask can go with its image, from the two headers alone.
enum MaskCheck {
    Fits,
    ImageUnreadable(String),
    /// Why the mask cannot be used (its size, or it cannot be read).
    Rejected(String),
}

fn check_mask(image: &Path, mask: &Path) -> MaskCheck {
    match (
        crate::project::imaging::image_size(image),
        crate::project::imaging::image_size(mask),
    ) {
        (Ok(a), Ok(b)) if a == b => MaskCheck::Fits,
        (Ok(a), Ok(b)) => MaskCheck::Rejected(format!(
            "mask {} is {}x{} but its image is {}x{}",
            mask.display(),
            b.0,
            b.1,
            a.0,
            a.1
        )),
        (Err(e), _) => MaskCheck::ImageUnreadable(e.to_string()),
        (_, Err(e)) => MaskCheck::Rejected(e.to_string()),
    }
}

/// Add an entry, checking a mask's size against its image from the headers alone.
fn push(
    entries: &mut Vec<ImageEntry>,
    c: &mut CategoryCounts,
    e: ImageEntry,
    image: &Path,
    mask: Option<&Path>,
    tick: &(dyn Fn() + Sync),
) {
    tick();
    let mut e = e;
    let check = match mask {
        Some(m) => check_mask(image, m),
        None => match crate::project::imaging::image_size(image) {
            Ok(_) => MaskCheck::Fits,
            Err(e) => MaskCheck::ImageUnreadable(e.to_string()),
        },
    };
    match (check, mask) {
        (MaskCheck::ImageUnreadable(why), _) => {
            c.unreadable.push(image.display().to_string());
            c.problems.push(format!("{why}: image left out"));
            return;
        }
        (MaskCheck::Fits, Some(m)) => {
            e.labels.insert(GT_ANNOTATOR.to_string(), m.to_path_buf());
            c.ground_truth_masks += 1;
        }
        (MaskCheck::Rejected(why), _) => c.problems.push(format!("{why}: left out")),
        (MaskCheck::Fits, None) => {}
    }
    match e.split {
        Split::Train => c.train_normal += 1,
        Split::Test | Split::Live => c.test += 1,
    }
    c.images += 1;
    entries.push(e);
}

fn collect_mvtec(data: &Path, tick: &(dyn Fn() + Sync)) -> anyhow::Result<Collected> {
    let categories = dataset::mvtec_categories(data)?;
    if categories.is_empty() {
        anyhow::bail!(
            "{} holds no MVTec-style category (a folder with train/ and test/)",
            data.display()
        );
    }
    let mut entries = Vec::new();
    let mut counts = BTreeMap::new();
    for cat in &categories {
        let mut c = CategoryCounts::default();
        for p in dataset::mvtec_train_good(data, cat)? {
            let e = entry(cat, "train", "good", &p, Split::Train);
            push(&mut entries, &mut c, e, &p, None, tick);
        }
        for s in dataset::mvtec_test_samples(data, cat)? {
            let e = entry(cat, "test", &s.kind, &s.image, Split::Test);
            push(&mut entries, &mut c, e, &s.image, s.mask.as_deref(), tick);
        }
        counts.insert(cat.clone(), c);
    }
    Ok((entries, counts))
}

/// VisA: `split_csv/1cls.csv` (or the CSV itself) with columns object, split, label, image, mask;
/// paths relative to the dataset root.
fn collect_visa(data: &Path, tick: &(dyn Fn() + Sync)) -> anyhow::Result<Collected> {
    let (csv, root) = if data.is_file() {
        let root = data
            .parent()
            .and_then(|p| {
                if p.ends_with("split_csv") {
                    p.parent()
                } else {
                    Some(p)
                }
            })
            .unwrap_or(Path::new("."))
            .to_path_buf();
        (data.to_path_buf(), root)
    } else {
        (data.join("split_csv").join("1cls.csv"), data.to_path_buf())
    };
    let text = std::fs::read_to_string(&csv)
        .map_err(|e| anyhow::anyhow!("cannot read {} (VisA's split file): {e}", csv.display()))?;
    let mut lines = text.lines().enumerate();
    let header: Vec<String> = lines
        .next()
        .map(|(_, l)| l.split(',').map(|s| s.trim().to_lowercase()).collect())
        .unwrap_or_default();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| anyhow::anyhow!("{}: no {name:?} column in the header", csv.display()))
    };
    let (c_obj, c_split, c_label, c_img, c_mask) = (
        col("object")?,
        col("split")?,
        col("label")?,
        col("image")?,
        col("mask")?,
    );
    let mut entries = Vec::new();
    let mut counts: BTreeMap<String, CategoryCounts> = BTreeMap::new();
    for (n, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let get = |i: usize| {
            f.get(i).copied().ok_or_else(|| {
                anyhow::anyhow!(
                    "{}:{}: expected {} columns",
                    csv.display(),
                    n + 1,
                    header.len()
                )
            })
        };
        let (obj, split, label, img) = (get(c_obj)?, get(c_split)?, get(c_label)?, get(c_img)?);
        let mask = f.get(c_mask).copied().unwrap_or("");
        let split = match split {
            "train" => Split::Train,
            "test" => Split::Test,
            other => anyhow::bail!(
                "{}:{}: split {other:?} is neither train nor test",
                csv.display(),
                n + 1
            ),
        };
        let normal = label == "normal";
        if split == Split::Train && !normal {
            anyhow::bail!(
                "{}:{}: an anomalous image in the training split",
                csv.display(),
                n + 1
            );
        }
        let image = root.join(img);
        if !image.is_file() {
            anyhow::bail!(
                "{}:{}: {} does not exist",
                csv.display(),
                n + 1,
                image.display()
            );
        }
        let kind = if normal { "good" } else { "anomaly" };
        let split_name = if split == Split::Train {
            "train"
        } else {
            "test"
        };
        let e = entry(obj, split_name, kind, &image, split);
        let m = (!mask.is_empty()).then(|| root.join(mask));
        if !normal && m.as_ref().is_none_or(|m| !m.is_file()) {
            anyhow::bail!(
                "{}:{}: anomalous image without its mask",
                csv.display(),
                n + 1
            );
        }
        let c = counts.entry(obj.to_string()).or_default();
        push(&mut entries, c, e, &image, m.as_deref(), tick);
    }
    if entries.is_empty() {
        anyhow::bail!("{} lists no images", csv.display());
    }
    Ok((entries, counts))
}

/// A plain folder of images, all to review (test split, no labels). Images in sub-folders take
/// the sub-folder's name as category, the others the folder's own name.
fn collect_folder(data: &Path, tick: &(dyn Fn() + Sync)) -> anyhow::Result<Collected> {
    let mut paths = Vec::new();
    crate::project::collect_images(data, 0, &mut paths)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", data.display()))?;
    if paths.is_empty() {
        anyhow::bail!(
            "no images found in {} (looked for PNG, JPEG, BMP and TIFF files)",
            data.display()
        );
    }
    paths.sort();
    let own = data
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "images".into());
    let mut entries = Vec::new();
    let mut counts: BTreeMap<String, CategoryCounts> = BTreeMap::new();
    for p in paths {
        let rel = p.strip_prefix(data).unwrap_or(&p);
        let cat = if rel.components().count() > 1 {
            rel.components()
                .next()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .unwrap_or_else(|| own.clone())
        } else {
            own.clone()
        };
        let e = ImageEntry {
            id: format!("{own}/{}", rel.with_extension("").to_string_lossy()),
            path: p.clone(),
            split: Split::Test,
            category: cat.clone(),
            ..Default::default()
        };
        push(
            &mut entries,
            counts.entry(cat).or_default(),
            e,
            &p,
            None,
            tick,
        );
    }
    Ok((entries, counts))
}

/// Import an MVTec-style root (kept for callers that name the format in code).
pub fn import_mvtec(dir: &Path, data: &Path) -> anyhow::Result<BTreeMap<String, CategoryCounts>> {
    import(dir, "mvtec", data)
}

/// Every how many normal Magnetic-tile images one goes to the test split (the set has no split).
pub const MT_TEST_EVERY: usize = 4;

/// The Magnetic-tile set: `MT_Free` is normal (every 4th image, by name, held out for the test
/// split, the rest for training), every other `MT_<Type>` folder is a defect kind.
fn collect_magnetic_tile(data: &Path, tick: &(dyn Fn() + Sync)) -> anyhow::Result<Collected> {
    let mut types: Vec<PathBuf> = std::fs::read_dir(data)
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
                let split = if i % MT_TEST_EVERY == MT_TEST_EVERY - 1 {
                    Split::Test
                } else {
                    Split::Train
                };
                let name = if split == Split::Test {
                    "test"
                } else {
                    "train"
                };
                let e = entry(cat, name, "good", &img, split);
                push(&mut entries, &mut c, e, &img, None, tick);
            } else {
                if !mask.is_file() {
                    anyhow::bail!(
                        "{} has no mask (expected {})",
                        img.display(),
                        mask.display()
                    );
                }
                let e = entry(cat, "test", &kind, &img, Split::Test);
                push(&mut entries, &mut c, e, &img, Some(&mask), tick);
            }
        }
    }
    Ok((entries, BTreeMap::from([(cat.to_string(), c)])))
}

/// Import the Magnetic-tile set (its layout: see `collect_magnetic_tile`).
pub fn import_magnetic_tile(
    dir: &Path,
    data: &Path,
) -> anyhow::Result<BTreeMap<String, CategoryCounts>> {
    import(dir, "magnetic-tile", data)
}

/// The class binary dataset masks (0/255) stand for.
fn ensure_gt_class(project: &mut Project) {
    if project.class(GT_CLASS).is_none() {
        project.file.classes.push(DefectClass {
            index: GT_CLASS,
            name: "defect".into(),
            color: [255, 60, 60],
        });
    }
}

/// The project at `dir`, or a new one; with the dataset ground-truth annotator and class when the
/// format has ground truth (a plain folder has none).
fn open_or_create(dir: &Path, with_gt: bool) -> anyhow::Result<Project> {
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
    if !with_gt {
        return Ok(project);
    }
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
    ensure_gt_class(&mut project);
    Ok(project)
}

fn entry(cat: &str, split_name: &str, kind: &str, image: &Path, split: Split) -> ImageEntry {
    let stem = image
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    ImageEntry {
        id: format!("{cat}/{split_name}/{kind}/{stem}"),
        path: image.to_path_buf(),
        split,
        category: cat.into(),
        kind: kind.into(),
        ..Default::default()
    }
}

/// An import as the window and the CLI ask for it.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportRequest {
    /// The project folder (created when new).
    pub project: PathBuf,
    pub format: String,
    pub data: PathBuf,
    /// Annotators' mask folders, `(name, folder)`.
    pub layers: Vec<(String, PathBuf)>,
    pub groups: Option<GroupSpec>,
}

/// Where groups come from, as typed: a regular expression on file names, or a CSV.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupSpec {
    Pattern(String),
    Csv(PathBuf),
}

impl GroupSpec {
    pub fn source(&self) -> anyhow::Result<GroupSource> {
        Ok(match self {
            GroupSpec::Pattern(p) => GroupSource::Pattern(
                regex::Regex::new(p).map_err(|e| anyhow::anyhow!("group pattern {p:?}: {e}"))?,
            ),
            GroupSpec::Csv(c) => GroupSource::Csv(c.clone()),
        })
    }
}

/// What an import did: counts per category, and the images grouped (images, groups).
#[derive(Debug, Serialize)]
pub struct ImportSummary {
    pub categories: BTreeMap<String, CategoryCounts>,
    pub grouped: Option<(usize, usize)>,
}

impl ImportSummary {
    /// The summary in a sentence, for a notice.
    pub fn sentence(&self, project: &Path) -> String {
        let sum = |f: fn(&CategoryCounts) -> usize| self.categories.values().map(f).sum::<usize>();
        let mut masks: BTreeMap<&str, usize> = BTreeMap::new();
        for c in self.categories.values() {
            for (who, n) in &c.annotator_masks {
                *masks.entry(who).or_default() += n;
            }
        }
        let mut s = format!(
            "Imported {} images ({} training normals, {} test; {} ground-truth masks",
            sum(|c| c.images),
            sum(|c| c.train_normal),
            sum(|c| c.test),
            sum(|c| c.ground_truth_masks)
        );
        for (who, n) in masks {
            s.push_str(&format!("; {n} of {who}'s masks"));
        }
        s.push_str(&format!(") into {}", project.display()));
        if let Some((n, g)) = self.grouped {
            s.push_str(&format!("; {n} images in {g} groups"));
        }
        let unreadable = sum(|c| c.unreadable.len());
        let problems = sum(|c| c.problems.len()) - unreadable;
        if unreadable > 0 {
            s.push_str(&format!("; {unreadable} unreadable images left out"));
        }
        if problems > 0 {
            s.push_str(&format!(
                "; {problems} masks left out (see the CLI's summary)"
            ));
        }
        s
    }
}

/// Import as asked, then group: the window's and the CLI's import. The caller holds the
/// project's lock.
pub fn run_import(req: &ImportRequest, tick: &(dyn Fn() + Sync)) -> anyhow::Result<ImportSummary> {
    // A bad pattern is refused before anything is written.
    let source = req.groups.as_ref().map(GroupSpec::source).transpose()?;
    let categories = import_with_progress(&req.project, &req.format, &req.data, &req.layers, tick)?;
    let grouped = match source {
        Some(src) => {
            let mut p = Project::open(&req.project)?;
            let g = assign_groups(&mut p, &src)?;
            p.save()?;
            Some(g)
        }
        None => None,
    };
    Ok(ImportSummary {
        categories,
        grouped,
    })
}

/// Where group names come from.
pub enum GroupSource {
    /// A regular expression on the file name: the `group` capture, else the first capture, else
    /// the whole match. Images whose name does not match stay alone.
    Pattern(regex::Regex),
    /// A CSV with `image` and `group` columns; `image` is an image id, a file name or a path.
    Csv(PathBuf),
}

/// Assign groups (views of one object). Returns (images grouped, groups).
pub fn assign_groups(
    project: &mut Project,
    source: &GroupSource,
) -> anyhow::Result<(usize, usize)> {
    let mut assigned: HashMap<usize, String> = HashMap::new();
    match source {
        GroupSource::Pattern(re) => {
            for (i, e) in project.file.images.iter().enumerate() {
                let name = e
                    .path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if let Some(c) = re.captures(&name) {
                    let g = c
                        .name("group")
                        .or_else(|| c.get(1))
                        .or_else(|| c.get(0))
                        .map(|m| m.as_str().to_string())
                        .unwrap_or_default();
                    if !g.is_empty() {
                        assigned.insert(i, g);
                    }
                }
            }
        }
        GroupSource::Csv(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
            let mut lines = text.lines();
            let header: Vec<String> = lines
                .next()
                .unwrap_or("")
                .split(',')
                .map(|s| s.trim().to_lowercase())
                .collect();
            let (Some(ci), Some(cg)) = (
                header.iter().position(|h| h == "image"),
                header.iter().position(|h| h == "group"),
            ) else {
                anyhow::bail!(
                    "{}: the header must have image and group columns",
                    path.display()
                );
            };
            let mut by_key: HashMap<String, usize> = HashMap::new();
            for (i, e) in project.file.images.iter().enumerate() {
                by_key.insert(e.id.clone(), i);
                by_key.insert(e.path.to_string_lossy().into_owned(), i);
                if let Some(n) = e.path.file_name() {
                    by_key.entry(n.to_string_lossy().into_owned()).or_insert(i);
                }
            }
            for (n, line) in lines.enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let f: Vec<&str> = line.split(',').map(str::trim).collect();
                let (Some(img), Some(g)) = (f.get(ci), f.get(cg)) else {
                    anyhow::bail!("{}:{}: missing columns", path.display(), n + 2);
                };
                let Some(&i) = by_key.get(*img) else {
                    anyhow::bail!(
                        "{}:{}: no image {img:?} in the project",
                        path.display(),
                        n + 2
                    );
                };
                assigned.insert(i, g.to_string());
            }
        }
    }
    let groups: std::collections::HashSet<&String> = assigned.values().collect();
    let n_groups = groups.len();
    for (i, g) in &assigned {
        project.file.images[*i].group = g.clone();
    }
    Ok((assigned.len(), n_groups))
}
