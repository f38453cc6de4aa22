//! Durable file writes. Every file Contrario writes (project, labels, reviews) goes through
//! [`write_atomic`]: a reader or a crash sees the old content or the new one, never a torn file.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

/// Write `bytes` to `path` atomically: temporary file in the same folder, fsync, rename, fsync of
/// the folder (so the rename itself survives a power cut).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace_file(path, bytes, true)
}

/// Replace `path` by rename like [`write_atomic`], without waiting for the disk: readers never
/// see a half-written file, but after a power cut the file may hold anything. For data that
/// can be recomputed and is checked on read (the inference cache's checksums), where two
/// fsyncs per file would cost more than making it.
pub fn write_atomic_unsynced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace_file(path, bytes, false)
}

fn replace_file(path: &Path, bytes: &[u8], durable: bool) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        if durable {
            f.sync_all()?;
        }
        drop(f);
        fs::rename(&tmp, path)?;
        if !durable {
            return Ok(());
        }
        if let Ok(d) = File::open(dir) {
            // Not every filesystem supports fsync on a directory; the rename is already done.
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Encode an image (grey, RGB, RGBA, 8 or 16 bits) as PNG in memory and write it atomically.
pub fn write_png_atomic<P>(
    path: &Path,
    img: &image::ImageBuffer<P, Vec<P::Subpixel>>,
) -> io::Result<()>
where
    P: image::PixelWithColorType,
    [P::Subpixel]: image::EncodableLayout,
{
    let mut buf = Vec::new();
    img.write_to(&mut io::Cursor::new(&mut buf), image::ImageFormat::Png)
        .map_err(io::Error::other)?;
    write_atomic(path, &buf)
}

/// Write float32 values as a `.npy` array of `shape`, atomically.
pub fn write_npy_f32(
    path: &Path,
    shape: &[usize],
    values: impl Iterator<Item = f32>,
) -> io::Result<()> {
    write_atomic(path, &crate::stats::npy::to_bytes_f32(shape, values))
}

/// Append with a single `write` (O_APPEND), then fsync.
pub fn append(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_data()
}

/// Read a JSON-lines journal, skipping a torn or unparsable line (it is reported by count in
/// the log, never fatal). A missing file is an empty journal.
pub fn read_jsonl<T: serde::de::DeserializeOwned>(path: &Path) -> std::io::Result<Vec<T>> {
    let text = match std::fs::read(path) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// ISO 8601 UTC for a Unix time in ms (civil-from-days, Howard Hinnant's algorithm).
pub fn iso8601(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + (m <= 2) as i64;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

/// FNV-1a, 64 bits: cache keys and fingerprints (not for security).
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self::new()
    }
}

impl Fnv {
    pub fn new() -> Self {
        Self(0xcbf29ce484222325)
    }

    pub fn eat(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= b as u64;
            self.0 = self.0.wrapping_mul(0x100000001b3);
        }
    }

    /// A file's path, size and modification time: what changes when the file is replaced.
    pub fn eat_file_stamp(&mut self, p: &Path) {
        self.eat(p.to_string_lossy().as_bytes());
        if let Ok(m) = fs::metadata(p) {
            self.eat(&m.len().to_le_bytes());
            if let Ok(t) = m.modified().and_then(|t| {
                t.duration_since(std::time::UNIX_EPOCH)
                    .map_err(io::Error::other)
            }) {
                self.eat(&t.as_nanos().to_le_bytes());
            }
        }
    }

    pub fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}

/// Lock file that keeps a second Contrario from editing the same project.
pub const LOCK_FILE: &str = ".contrario.lock";

/// Who holds a project: written into the lock file as `pid host unix-seconds`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockOwner {
    pub pid: u32,
    pub host: String,
    pub since_unix: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "{path} is open in another Contrario (process {pid} on {host}, since {since}); close it there first, or open a copy"
    , path = .path.display(), pid = .owner.pid, host = .owner.host, since = iso8601(.owner.since_unix * 1000))]
    Held {
        path: std::path::PathBuf,
        owner: LockOwner,
    },
    #[error("cannot lock {path}: {source}", path = .path.display())]
    Io {
        path: std::path::PathBuf,
        source: io::Error,
    },
}

/// An exclusive hold on a project folder, released on drop. A lock left by a process that no
/// longer runs on this host (a crash, a kill) is taken over. Within one process the lock is
/// shared (counted), so a second view of the same project in one app does not lock itself out.
#[derive(Debug)]
pub struct ProjectLock {
    path: std::path::PathBuf,
    token: String,
}

/// Locks this process holds: lock file -> (token, holders).
fn held()
-> &'static std::sync::Mutex<std::collections::HashMap<std::path::PathBuf, (String, usize)>> {
    static HELD: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<std::path::PathBuf, (String, usize)>>,
    > = std::sync::OnceLock::new();
    HELD.get_or_init(Default::default)
}

fn host_name() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_else(|| "this computer".into())
}

fn process_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new(&format!("/proc/{pid}")).exists()
    } else {
        // Without a cheap portable check, assume it runs: the message tells the user what to do.
        true
    }
}

impl ProjectLock {
    pub fn acquire(root: &Path) -> Result<Self, LockError> {
        let path = root.join(LOCK_FILE);
        let io_err = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let token = format!("{} {} {since}", std::process::id(), host_name());
        let mut ours = held().lock().unwrap_or_else(|e| e.into_inner());
        if let Some((t, n)) = ours.get_mut(&path)
            && fs::read_to_string(&path).is_ok_and(|c| c == *t)
        {
            *n += 1;
            return Ok(Self {
                path,
                token: t.clone(),
            });
        }
        for _ in 0..3 {
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    f.write_all(token.as_bytes()).map_err(io_err)?;
                    f.sync_all().map_err(io_err)?;
                    ours.insert(path.clone(), (token.clone(), 1));
                    return Ok(Self { path, token });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let text = fs::read_to_string(&path).unwrap_or_default();
                    match parse_owner(&text) {
                        Some(owner) if owner.host != host_name() || process_alive(owner.pid) => {
                            return Err(LockError::Held {
                                path: root.to_path_buf(),
                                owner,
                            });
                        }
                        // Stale (its process is gone) or unreadable (a torn write): take over.
                        _ => {
                            let _ = fs::remove_file(&path);
                        }
                    }
                }
                Err(e) => return Err(io_err(e)),
            }
        }
        Err(io_err(io::Error::other("the lock file keeps changing")))
    }
}

fn parse_owner(text: &str) -> Option<LockOwner> {
    let mut it = text.split_whitespace();
    Some(LockOwner {
        pid: it.next()?.parse().ok()?,
        host: it.next()?.to_string(),
        since_unix: it.next()?.parse().ok()?,
    })
}

impl Drop for ProjectLock {
    fn drop(&mut self) {
        let mut ours = held().lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, n)) = ours.get_mut(&self.path) {
            *n -= 1;
            if *n > 0 {
                return;
            }
            ours.remove(&self.path);
        }
        // Only remove a lock that is still ours.
        if fs::read_to_string(&self.path).is_ok_and(|t| t == self.token) {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Whether this process can create files in `dir` (made if missing): tried, not guessed from
/// permission bits, which say nothing of who runs the program.
pub fn can_write_in(dir: &Path) -> bool {
    if std::fs::create_dir_all(dir).is_err() {
        return false;
    }
    let probe = dir.join(format!(".write-probe-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            true
        }
        Err(e) => e.kind() == std::io::ErrorKind::AlreadyExists,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_content_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/file.txt");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(p.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1, "temporary file left behind");
    }

    #[test]
    fn lock_is_exclusive_and_stale_locks_are_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let a = ProjectLock::acquire(dir.path()).unwrap();
        let b = ProjectLock::acquire(dir.path()).unwrap(); // shared within the process
        drop(a);
        assert!(dir.path().join(LOCK_FILE).exists(), "still held by b");
        drop(b);
        assert!(!dir.path().join(LOCK_FILE).exists());
        // Another live process (pid 1 always runs) holds it: refused, with the reason.
        fs::write(dir.path().join(LOCK_FILE), format!("1 {} 0", host_name())).unwrap();
        let err = ProjectLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("open in another Contrario (process 1"),
            "{err}"
        );
        // A lock from a process that no longer exists (pid beyond pid_max) is stale.
        fs::write(
            dir.path().join(LOCK_FILE),
            format!("4194305 {} 0", host_name()),
        )
        .unwrap();
        let _b = ProjectLock::acquire(dir.path()).unwrap();
    }

    #[test]
    fn iso_dates() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(1_795_869_296_123), "2026-11-28T12:34:56.123Z");
    }
}
