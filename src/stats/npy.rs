//! Minimal reader and writer of NumPy `.npy` files (float32 and unsigned bytes, C order, format
//! 1.0-3.0), for latents and maps exchanged with other implementations and the result cache.
//! Malformed files give errors, not panics.

use ndarray::{ArrayD, IxDyn};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum NpyError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a float32 C-order .npy file: {reason}")]
    Format { path: String, reason: String },
}

pub fn read_f32(path: &Path) -> Result<ArrayD<f32>, NpyError> {
    let p = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| NpyError::Io {
        path: p.clone(),
        source,
    })?;
    parse_f32(&bytes).map_err(|reason| NpyError::Format { path: p, reason })
}

pub fn parse_f32(bytes: &[u8]) -> Result<ArrayD<f32>, String> {
    let (shape, data) = parse(bytes, &["'<f4'", "'=f4'"], 4)?;
    let values: Vec<f32> = data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    ArrayD::from_shape_vec(IxDyn(&shape), values).map_err(|e| e.to_string())
}

/// An unsigned-byte `.npy` file (`|u1`: labels, indices), as [`parse_f32`] reads floats.
pub fn parse_u8(bytes: &[u8]) -> Result<ArrayD<u8>, String> {
    let (shape, data) = parse(bytes, &["'|u1'", "'<u1'", "'=u1'"], 1)?;
    ArrayD::from_shape_vec(IxDyn(&shape), data.to_vec()).map_err(|e| e.to_string())
}

/// The shape and the data bytes of a C-order `.npy` file whose dtype is one of `descrs`, each
/// value `size` bytes.
fn parse<'a>(
    bytes: &'a [u8],
    descrs: &[&str],
    size: usize,
) -> Result<(Vec<usize>, &'a [u8]), String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("missing the \\x93NUMPY magic".into());
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(format!("unsupported format version {v}")),
    };
    let header = bytes
        .get(start..start + header_len)
        .ok_or("truncated header")?;
    let header = std::str::from_utf8(header).map_err(|_| "header is not text")?;
    let field = |key: &str| -> Result<&str, String> {
        let at = header
            .find(&format!("'{key}'"))
            .ok_or(format!("no '{key}' in header"))?;
        let rest = &header[at + key.len() + 2..];
        Ok(rest.trim_start().trim_start_matches(':').trim_start())
    };
    let descr = field("descr")?;
    if !descrs.iter().any(|d| descr.starts_with(d)) {
        return Err(format!(
            "dtype {} (need {})",
            descr.split(',').next().unwrap_or(""),
            descrs[0]
        ));
    }
    if field("fortran_order")?.starts_with("True") {
        return Err("Fortran order".into());
    }
    let shape_text = field("shape")?;
    let open = shape_text.find('(').ok_or("bad shape")?;
    let close = shape_text.find(')').ok_or("bad shape")?;
    let shape: Vec<usize> = shape_text[open + 1..close]
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| format!("bad shape entry {s:?}"))
        })
        .collect::<Result<_, _>>()?;
    let count = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or("shape overflows")?;
    let data = &bytes[start + header_len..];
    if Some(data.len()) != count.checked_mul(size) {
        return Err(format!(
            "expected {} data bytes for shape {shape:?}, found {}",
            count.saturating_mul(size),
            data.len()
        ));
    }
    Ok((shape, data))
}

/// The bytes of a float32 `.npy` file holding `values` in `shape` (row-major).
pub fn to_bytes_f32(shape: &[usize], values: impl Iterator<Item = f32>) -> Vec<u8> {
    let mut out = header("<f4", shape, 4);
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// The bytes of an unsigned-byte `.npy` file holding `values` in `shape` (row-major).
pub fn to_bytes_u8(shape: &[usize], values: impl Iterator<Item = u8>) -> Vec<u8> {
    let mut out = header("|u1", shape, 1);
    out.extend(values);
    out
}

/// A format 1.0 header for `shape` of `descr`, with room reserved for the data.
fn header(descr: &str, shape: &[usize], size: usize) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_text = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_text}, }}");
    // Pad so that the data starts on a 64-byte boundary, newline-terminated.
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + shape.iter().product::<usize>() * size);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out
}

/// Read `dir/z_1.npy`, `dir/z_2.npy`, ... until the next one is missing.
pub fn read_latents(dir: &std::path::Path) -> anyhow::Result<Vec<ndarray::Array3<f32>>> {
    let mut out = Vec::new();
    for s in 1.. {
        let p = dir.join(format!("z_{s}.npy"));
        if !p.exists() {
            break;
        }
        let a = read_f32(&p)?;
        let a = a
            .into_dimensionality::<ndarray::Ix3>()
            .map_err(|_| anyhow::anyhow!("{} must be 3-D (C x H x W)", p.display()))?;
        if a.is_empty() {
            anyhow::bail!("{} is empty", p.display());
        }
        if a.iter().any(|v| !v.is_finite()) {
            anyhow::bail!("{} holds NaN or infinite values", p.display());
        }
        out.push(a);
    }
    if out.is_empty() {
        anyhow::bail!(
            "no latents in {}: expected z_1.npy, z_2.npy, ...",
            dir.display()
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bad_inputs() {
        let bytes = to_bytes_f32(&[2, 3], [1.0, 2.0, 3.0, 4.0, 5.0, -6.5].into_iter());
        assert_eq!(
            (10 + u16::from_le_bytes([bytes[8], bytes[9]]) as usize) % 64,
            0
        );
        let a = parse_f32(&bytes).unwrap();
        assert_eq!(a.shape(), &[2, 3]);
        assert_eq!(a[[1, 2]], -6.5);
        assert!(parse_f32(&bytes[..bytes.len() - 1]).is_err());
        assert!(parse_f32(b"garbage").is_err());
        let f8 = String::from_utf8_lossy(&bytes).replace("<f4", "<f8");
        assert!(parse_f32(f8.as_bytes()).is_err());
    }

    #[test]
    fn bytes_round_trip_and_are_not_taken_for_floats() {
        let bytes = to_bytes_u8(&[2, 2], [0u8, 1, 2, 255].into_iter());
        assert_eq!(
            (10 + u16::from_le_bytes([bytes[8], bytes[9]]) as usize) % 64,
            0
        );
        let a = parse_u8(&bytes).unwrap();
        assert_eq!(a.shape(), &[2, 2]);
        assert_eq!(a.iter().copied().collect::<Vec<_>>(), [0, 1, 2, 255]);
        assert!(
            parse_f32(&bytes).is_err(),
            "a byte map is not read as floats"
        );
        assert!(parse_u8(&to_bytes_f32(&[1], [1.0].into_iter())).is_err());
        assert!(parse_u8(&bytes[..bytes.len() - 1]).is_err());
    }
}
