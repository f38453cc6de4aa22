//! `contrario import`, `group`, `export` and `review`: projects from the command line, for
//! scripting and CI. Commands that write `project.ron` take the project's lock, so they never
//! overwrite a project open in the window.

use anyhow::Context;
use std::path::{Path, PathBuf};

use crate::project::Project;
use crate::project::autosave::Autosaver;
use crate::project::import::{GroupSource, GroupSpec};
use crate::project::labels::LabelStore;
use crate::project::review;
use crate::project::storage::ProjectLock;

#[derive(clap::Args, Debug)]
pub struct GroupArgs {
    /// Regular expression on file names; the `group` capture (or the first, or the whole match)
    /// names the group, e.g. `^(?P<group>fruit\d+)_view\d+`.
    #[arg(long, conflicts_with = "groups")]
    pub group_pattern: Option<String>,
    /// CSV with `image` and `group` columns (image: id, file name or path).
    #[arg(long)]
    pub groups: Option<PathBuf>,
}

impl GroupArgs {
    fn spec(&self) -> Option<GroupSpec> {
        match (&self.group_pattern, &self.groups) {
            (Some(p), _) => Some(GroupSpec::Pattern(p.clone())),
            (None, Some(c)) => Some(GroupSpec::Csv(c.clone())),
            (None, None) => None,
        }
    }

    fn source(&self) -> anyhow::Result<Option<GroupSource>> {
        self.spec().map(|s| s.source()).transpose()
    }
}

fn lock(dir: &Path) -> anyhow::Result<Option<ProjectLock>> {
    if !dir.exists() {
        return Ok(None);
    }
    Ok(Some(ProjectLock::acquire(dir)?))
}

/// `NAME=FOLDER` of `--annotator-masks`.
pub fn parse_layer(s: &str) -> Result<(String, PathBuf), String> {
    let (n, d) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not NAME=FOLDER"))?;
    if n.is_empty()
        || !n
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(format!(
            "annotator name {n:?}: use letters, digits, - and _"
        ));
    }
    Ok((n.to_string(), PathBuf::from(d)))
}

pub fn import(
    project: &Path,
    format: &str,
    path: &Path,
    groups: &GroupArgs,
    layers: &[(String, PathBuf)],
) -> anyhow::Result<()> {
    let req = crate::project::import::ImportRequest {
        project: project.to_path_buf(),
        format: format.to_string(),
        data: path.to_path_buf(),
        layers: layers.to_vec(),
        groups: groups.spec(),
    };
    let _lock = lock(project)?;
    let summary = crate::project::import::run_import(&req, &|| {})?;
    for (cat, c) in &summary.categories {
        for p in &c.problems {
            eprintln!("warning: {cat}: {p}");
        }
    }
    if let Some((n, g)) = summary.grouped {
        eprintln!("{n} image(s) in {g} group(s)");
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&summary.categories).context("summary")?
    );
    Ok(())
}

pub fn group(project: &Path, groups: &GroupArgs) -> anyhow::Result<()> {
    let Some(src) = groups.source()? else {
        anyhow::bail!("give --group-pattern REGEX or --groups CSV");
    };
    let _lock = lock(project)?;
    let mut p = Project::open(project)?;
    let (n, g) = crate::project::import::assign_groups(&mut p, &src)?;
    p.save()?;
    println!("{}", serde_json::json!({"images": n, "groups": g}));
    Ok(())
}

pub fn export(
    project: &Path,
    format: &str,
    out: &Path,
    layer: Option<&str>,
    model: Option<&str>,
) -> anyhow::Result<()> {
    let p = Project::open(project)?;
    let req = crate::project::export::ExportRequest {
        format: format.to_string(),
        layer: layer.map(str::to_string),
        model: model.map(str::to_string),
        out: out.to_path_buf(),
    };
    let summary = crate::project::export::export(&p, &req)?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}

/// The review queue (images by annotator disagreement), inconsistent groups, and, with a model
/// whose results are cached, the label issues.
pub fn review(project: &Path, model: Option<&str>, limit: usize) -> anyhow::Result<()> {
    let p = Project::open(project)?;
    let mut store = LabelStore::new(Autosaver::new());
    let threshold = p.file.settings.log10_nfa_threshold as f32;
    let opts = review::IssueOptions {
        detect_below: p.file.settings.label_issue_log10_nfa as f32,
        ..Default::default()
    };
    let mut items = Vec::new();
    let (mut issues, mut unconfirmed) = (Vec::new(), Vec::new());
    // Labelled regions the finder judged per category (per annotator layer, 8-connected).
    let mut judged: std::collections::BTreeMap<&str, usize> = Default::default();
    for e in &p.file.images {
        let layers = review::layers_of(&p, &mut store, &e.id)?;
        if layers.is_empty() {
            continue;
        }
        let summary = model.and_then(|m| p.cached_result(m, e));
        if let Some(s) = &summary {
            let f = review::label_issues(&e.id, &s.log_nfa, Some(&s.anomaly_map), &layers, opts);
            *judged.entry(&e.category).or_default() += layers
                .iter()
                .map(|(_, m)| m.regions8(false).len())
                .sum::<usize>();
            issues.extend(f.issues);
            unconfirmed.extend(f.unconfirmed);
        }
        items.push(review::analyze(
            &e.id,
            &layers,
            summary.as_ref().map(|s| &s.log_nfa),
            threshold,
        ));
    }
    let queue = review::review_queue(items);
    issues.sort_by(|a, b| b.strength.total_cmp(&a.strength));
    let out = serde_json::json!({
        "queue": queue.iter().take(limit).collect::<Vec<_>>(),
        "inconsistent_groups": review::group_inconsistencies(&p, &mut store)?,
        "labelled_regions_judged": judged,
        "label_issues": issues.iter().take(limit).collect::<Vec<_>>(),
        // Labels the model sees something in, below the level: not issues.
        "unconfirmed_labels": unconfirmed.iter().take(limit).collect::<Vec<_>>(),
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

/// The durability check behind `contrario edit-stream` (hidden; used by the crash test): paint one
/// more pixel per edit into `annotator`'s layer of the project's first image, printing
/// `k unix_ms` once edit k is handed over, until `count` edits or the process is killed.
pub fn edit_stream(
    project: &Path,
    annotator: &str,
    count: usize,
    interval_ms: u64,
) -> anyhow::Result<()> {
    use std::io::Write;
    let _lock = ProjectLock::acquire(project)?;
    let mut p = Project::open(project)?;
    p.ensure_annotator(annotator, annotator);
    let class = match p.file.classes.first() {
        Some(c) => c.index,
        None => {
            p.file.classes.push(crate::project::DefectClass {
                index: 1,
                name: "defect".into(),
                color: [255, 60, 60],
            });
            1
        }
    };
    let image = p
        .file
        .images
        .first()
        .map(|e| e.id.clone())
        .ok_or_else(|| anyhow::anyhow!("the project has no images"))?;
    let mut store = LabelStore::new(Autosaver::new());
    let w = store.mask(&p, &image, annotator)?.width as usize;
    let mut out = std::io::stdout().lock();
    for k in 0..count {
        let (x, y) = ((k % w) as f32 + 0.5, (k / w) as f32 + 0.5);
        let edit = crate::project::labels::Edit::Brush {
            class,
            radius: 1.0,
            points: vec![[x, y]],
        };
        store.edit(&mut p, &image, annotator, edit)?;
        store.end_stroke(&image, annotator);
        writeln!(out, "{k} {}", crate::project::storage::now_ms())?;
        out.flush()?;
        std::thread::sleep(std::time::Duration::from_millis(interval_ms));
    }
    let errors = store.flush();
    if !errors.is_empty() {
        anyhow::bail!("{}", errors.join("; "));
    }
    Ok(())
}

/// Record a reviewer's verdict and/or note on an image in the review journal.
pub fn verdict(
    project: &Path,
    image: &str,
    reviewer: &str,
    verdict: Option<&str>,
    note: &str,
) -> anyhow::Result<()> {
    let p = Project::open(project)?;
    if p.image(image).is_none() {
        anyhow::bail!("no image {image:?} in {}", project.display());
    }
    let v = match verdict {
        None => None,
        Some("normal") => Some(review::Verdict::Normal),
        Some("defective") => Some(review::Verdict::Defective),
        Some("unsure") => Some(review::Verdict::Unsure),
        Some(other) => anyhow::bail!("verdict {other:?}: use normal, defective or unsure"),
    };
    if v.is_none() && note.is_empty() {
        anyhow::bail!("give a verdict (normal, defective, unsure), a --note, or both");
    }
    let saver = Autosaver::new();
    let e = review::record_review(&saver, &p.root, reviewer, image, v, note);
    let errors = saver.flush();
    if !errors.is_empty() {
        anyhow::bail!("{}", errors.join("; "));
    }
    println!("{}", serde_json::to_string(&e)?);
    Ok(())
}
