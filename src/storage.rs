//! Durable file writes. Every file Contrario writes (project, labels, reviews) goes through
//! [`write_atomic`]: a reader or a crash sees the old content or the new one, never a torn file.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

/// Write `bytes` to `path` atomically: temporary file in the same folder, fsync, rename, fsync of
/// the folder (so the rename itself survives a power cut).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
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
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
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

/// Encode a grey image as PNG in memory and write it atomically.
pub fn write_png_atomic(path: &Path, img: &image::GrayImage) -> io::Result<()> {
    let mut buf = Vec::new();
    img.write_to(&mut io::Cursor::new(&mut buf), image::ImageFormat::Png)
        .map_err(io::Error::other)?;
    write_atomic(path, &buf)
}

/// Same as [`write_png_atomic`] for colour images.
pub fn write_rgb_png_atomic(path: &Path, img: &image::RgbImage) -> io::Result<()> {
    let mut buf = Vec::new();
    img.write_to(&mut io::Cursor::new(&mut buf), image::ImageFormat::Png)
        .map_err(io::Error::other)?;
    write_atomic(path, &buf)
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
}
