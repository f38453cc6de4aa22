//! Live inspection's record: what a watcher scored, one JSON line per image in
//! `PROJECT/live/watch.jsonl` (append-only, so a watcher and the window never rewrite each
//! other's work). The same object goes to the `--out` file and to MQTT. The images it names join
//! the project as the "live" split when it opens; the file is also how a restarted watcher knows
//! what it already scored.

use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use super::{ImageEntry, ProjectFile, Split};

pub const LIVE_DIR: &str = "live";
pub const LIVE_JOURNAL: &str = "watch.jsonl";

/// A detected region, in the image's own pixels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveRegion {
    pub log10_nfa: f32,
    /// Pixels of the image the region covers.
    pub area: usize,
    /// [x0, y0, x1, y1), exclusive end.
    #[serde(rename = "box")]
    pub bbox: [usize; 4],
}

/// One image the watcher saw: scored, or the reason it could not be.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveRecord {
    /// The image file, as found in the watched folder (absolute).
    pub file: PathBuf,
    /// Its id in the project ("live/" and its path under the watched folder, no extension).
    pub image: String,
    pub category: String,
    pub model: String,
    /// Size and modification time (ns since the epoch) when scored: with the file, what tells a
    /// restarted watcher that it has this one already (a file written again is scored again).
    pub size: u64,
    pub modified_ns: u128,
    /// When the file was found complete, and when its score was ready (RFC 3339, UTC).
    pub seen: String,
    pub scored: String,
    /// From complete file to this record, in milliseconds.
    pub latency_ms: f64,
    pub score: Option<f32>,
    /// Lowest log10 NFA of the image.
    pub min_log10_nfa: Option<f32>,
    /// Some region's NFA is below the level.
    pub flagged: bool,
    /// The level in expected false alarms per image, and its log10.
    pub level: f64,
    pub regions: Vec<LiveRegion>,
    /// The drift check: the image is unlike every image the model trained on (its flag is then
    /// not to be trusted), and why.
    #[serde(default)]
    pub unlike_training: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<super::drift::Unlike>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl LiveRecord {
    /// The key that says "this file, as it was, is done".
    pub fn stamp(&self) -> (PathBuf, u64, u128) {
        (self.file.clone(), self.size, self.modified_ns)
    }
}

impl ProjectFile {
    /// The images a watcher scored (`live/watch.jsonl`), as the live split, after the project's
    /// own; an id the project already has stays the project's.
    pub fn add_live(&mut self, root: &Path) {
        let known: HashSet<String> = self.images.iter().map(|e| e.id.clone()).collect();
        let live = entries(&read_journal(root));
        self.images
            .extend(live.into_iter().filter(|e| !known.contains(&e.id)));
    }
}

/// Messages a watch published that its broker had not acknowledged when it stopped (the broker
/// away): sent first by the next watch with a broker, so that none is lost to a restart.
pub const MQTT_UNSENT: &str = "mqtt-unsent.jsonl";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unsent {
    pub topic: String,
    /// The record, as JSON text.
    pub payload: String,
}

pub fn read_unsent(root: &Path) -> Vec<Unsent> {
    std::fs::read_to_string(root.join(LIVE_DIR).join(MQTT_UNSENT))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Keep `unsent` for the next watch (atomically), or forget the file when nothing is left.
pub fn write_unsent(root: &Path, unsent: &[Unsent]) -> std::io::Result<()> {
    let path = root.join(LIVE_DIR).join(MQTT_UNSENT);
    if unsent.is_empty() {
        return match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    }
    let mut text = String::new();
    for u in unsent {
        text += &serde_json::to_string(u).map_err(std::io::Error::other)?;
        text.push('\n');
    }
    std::fs::create_dir_all(path.parent().unwrap_or(root))?;
    super::storage::write_atomic(&path, text.as_bytes())
}

pub fn journal_path(root: &Path) -> PathBuf {
    root.join(LIVE_DIR).join(LIVE_JOURNAL)
}

/// Every record of the journal, oldest first. A torn last line (a watcher killed mid-write) and
/// lines of another format are skipped.
pub fn read_journal(root: &Path) -> Vec<LiveRecord> {
    let Ok(f) = std::fs::File::open(journal_path(root)) else {
        return Vec::new();
    };
    std::io::BufReader::new(f)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str(&l).ok())
        .collect()
}

/// The files already done, for a watcher that starts again.
pub fn done_stamps(records: &[LiveRecord]) -> HashSet<(PathBuf, u64, u128)> {
    records.iter().map(LiveRecord::stamp).collect()
}

/// Append one record as one line, written in one call and synced, so that a crash leaves at most
/// a torn last line (which [`read_journal`] skips) and never a half-record in the middle.
pub fn append(root: &Path, record: &LiveRecord) -> std::io::Result<()> {
    let path = journal_path(root);
    std::fs::create_dir_all(path.parent().unwrap_or(root))?;
    let mut line = serde_json::to_vec(record).map_err(std::io::Error::other)?;
    line.push(b'\n');
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)?;
    f.write_all(&line)?;
    f.sync_data()
}

/// The images the journal scored, as project entries of the live split (the latest record of
/// each image; images that failed to score are not entries).
pub fn entries(records: &[LiveRecord]) -> Vec<ImageEntry> {
    let mut latest: HashMap<&str, &LiveRecord> = HashMap::new();
    let mut order = Vec::new();
    for r in records.iter().filter(|r| r.error.is_none()) {
        if latest.insert(&r.image, r).is_none() {
            order.push(r.image.as_str());
        }
    }
    order.into_iter().map(|id| entry(latest[id])).collect()
}

pub fn entry(r: &LiveRecord) -> ImageEntry {
    ImageEntry {
        id: r.image.clone(),
        path: r.file.clone(),
        split: Split::Live,
        category: r.category.clone(),
        kind: String::new(),
        ..Default::default()
    }
}

/// The project id of a file under the watched folder.
pub fn image_id(folder: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(folder).unwrap_or(file).with_extension("");
    let rel = rel.to_string_lossy().replace('\\', "/");
    format!("{LIVE_DIR}/{}", rel.trim_start_matches('/'))
}

/// RFC 3339 in UTC with milliseconds.
pub fn rfc3339(t: std::time::SystemTime) -> String {
    let ms = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    super::storage::iso8601(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(image: &str, error: Option<&str>) -> LiveRecord {
        LiveRecord {
            file: PathBuf::from(format!("/line/{image}.png")),
            image: format!("live/{image}"),
            category: "wood".into(),
            model: "m".into(),
            size: 10,
            modified_ns: 5,
            seen: String::new(),
            scored: String::new(),
            latency_ms: 1.0,
            score: Some(1.0),
            min_log10_nfa: Some(-3.0),
            flagged: true,
            level: 1.0,
            regions: vec![],
            unlike_training: false,
            drift: None,
            error: error.map(String::from),
        }
    }

    #[test]
    fn the_journal_survives_a_torn_line_and_gives_one_entry_per_image() {
        let dir = tempfile::tempdir().unwrap();
        append(dir.path(), &record("a", None)).unwrap();
        append(dir.path(), &record("bad", Some("truncated"))).unwrap();
        append(dir.path(), &record("a", None)).unwrap();
        // A watcher killed mid-line.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(journal_path(dir.path()))
            .unwrap();
        f.write_all(b"{\"file\":\"/line/b").unwrap();
        let all = read_journal(dir.path());
        assert_eq!(all.len(), 3);
        let e = entries(&all);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].id, "live/a");
        assert_eq!(e[0].split, Split::Live);
        assert_eq!(done_stamps(&all).len(), 2);
    }

    #[test]
    fn ids_and_times_read_as_expected() {
        assert_eq!(
            image_id(Path::new("/cam"), Path::new("/cam/wood/0001.png")),
            "live/wood/0001"
        );
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_764_684_000_123);
        assert_eq!(rfc3339(t), "2025-12-02T14:00:00.123Z");
    }
}
