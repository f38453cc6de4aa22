//! U-Flow (thesis chapter 5, reference section 2): a U-shaped normalizing flow over multi-scale
//! features. From the coarsest scale to the finest: a stage of all-in-one Glow steps, a split whose
//! first part is pixel-shuffled up and concatenated to the next finer features, the rest being
//! that scale's latent z. Trained on normal images only, it makes their features white noise.

use crate::project::model_file::FlowShape;
use tch::{Kind, Tensor, nn};

/// Soft clamp of the coupling's log-scale (FrEIA's `affine_clamping`).
const CLAMP: f64 = 2.0;

/// One all-in-one Glow block: affine coupling with a soft-clamped scale, then a learnt global
/// affine (softplus-parametrised scale) and a fixed channel permutation.
pub struct FlowStep {
    conv1: nn::Conv2D,
    conv2: nn::Conv2D,
    /// Global scale parameters g (gamma = 0.2 * softplus(g / 2)) and offsets beta.
    global_scale: Tensor,
    global_offset: Tensor,
    perm: Tensor,
    inv_perm: Tensor,
    c1: i64,
    c2: i64,
}

impl FlowStep {
    pub fn new(p: &nn::Path, channels: i64, kernel: i64, perm: &[i64]) -> Self {
        let c2 = channels / 2;
        let c1 = channels - c2;
        let cfg = nn::ConvConfig {
            padding: kernel / 2,
            ..Default::default()
        };
        let conv1 = nn::conv2d(p / "subnet1", c1, c1, kernel, cfg);
        let conv2 = nn::conv2d(p / "subnet2", c1, 2 * c2, kernel, cfg);
        // g = 2 ln(e^5 - 1) gives gamma = 1 at initialisation.
        let g0 = 2.0 * (5f64.exp() - 1.0).ln();
        let global_scale = p.var("global_scale", &[channels], nn::Init::Const(g0));
        let global_offset = p.var("global_offset", &[channels], nn::Init::Const(0.0));
        let perm_t = Tensor::from_slice(perm);
        let mut inv = vec![0i64; perm.len()];
        for (i, &v) in perm.iter().enumerate() {
            inv[v as usize] = i as i64;
        }
        Self {
            conv1,
            conv2,
            global_scale,
            global_offset,
            perm: perm_t.to_device(p.device()),
            inv_perm: Tensor::from_slice(&inv).to_device(p.device()),
            c1,
            c2,
        }
    }

    fn coupling(&self, x1: &Tensor) -> (Tensor, Tensor) {
        let a = x1.apply(&self.conv1).relu().apply(&self.conv2) * 0.1;
        let s = (a.narrow(1, 0, self.c2)).tanh() * CLAMP;
        let t = a.narrow(1, self.c2, self.c2);
        (s, t)
    }

    fn gamma(&self) -> Tensor {
        (&self.global_scale * 0.5).softplus() * 0.2
    }

    /// y and the log-determinant per sample.
    pub fn forward(&self, x: &Tensor) -> (Tensor, Tensor) {
        let x1 = x.narrow(1, 0, self.c1);
        let x2 = x.narrow(1, self.c1, self.c2);
        let (s, t) = self.coupling(&x1);
        let x2 = x2 * s.exp() + t;
        let gamma = self.gamma();
        let c = self.c1 + self.c2;
        let v = Tensor::cat(&[x1, x2], 1) * gamma.view([1, c, 1, 1])
            + self.global_offset.view([1, c, 1, 1]);
        let y = v.index_select(1, &self.perm);
        let hw = (x.size()[2] * x.size()[3]) as f64;
        let logdet = s.sum_dim_intlist([1, 2, 3].as_slice(), false, Kind::Float)
            + gamma.log().sum(Kind::Float) * hw;
        (y, logdet)
    }

    pub fn reverse(&self, y: &Tensor) -> Tensor {
        let c = self.c1 + self.c2;
        let v = y.index_select(1, &self.inv_perm);
        let u = (v - self.global_offset.view([1, c, 1, 1])) / self.gamma().view([1, c, 1, 1]);
        let x1 = u.narrow(1, 0, self.c1);
        let x2 = u.narrow(1, self.c1, self.c2);
        let (s, t) = self.coupling(&x1);
        let x2 = (x2 - t) * (-s).exp();
        Tensor::cat(&[x1, x2], 1)
    }
}

/// The U-shaped flow with its per-scale LayerNorms (over the whole C x H x W volume, trainable).
pub struct UFlow {
    pub shape: FlowShape,
    norms: Vec<nn::LayerNorm>,
    /// stages[s]: the flow steps of scale s (finest first).
    stages: Vec<Vec<FlowStep>>,
    up: Vec<i64>,
    /// The fixed permutations, in construction order (saved with the model).
    pub permutations: Vec<Vec<i64>>,
}

/// A random permutation of 0..n from a seeded generator (reproducible across platforms).
fn permutation(n: i64, state: &mut u64) -> Vec<i64> {
    let mut v: Vec<i64> = (0..n).collect();
    for i in (1..v.len()).rev() {
        *state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let j = ((*state >> 33) % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
    v
}

impl UFlow {
    /// A new flow; `permutations` (as saved with a model) or fresh ones drawn from `seed`.
    pub fn new(
        p: &nn::Path,
        shape: FlowShape,
        permutations: Option<Vec<Vec<i64>>>,
        seed: u64,
    ) -> Self {
        let (input, up) = shape.stage_channels();
        let mut state = seed;
        let mut perms = Vec::new();
        let mut stages = Vec::new();
        let mut norms = Vec::new();
        for (s, (&stage_in, &(h, w))) in input.iter().zip(&shape.sizes).enumerate() {
            let ln_cfg = nn::LayerNormConfig {
                eps: 1e-5,
                ..Default::default()
            };
            norms.push(nn::layer_norm(
                p / format!("norm{s}"),
                vec![shape.channels[s], h, w],
                ln_cfg,
            ));
            let mut steps = Vec::new();
            for k in 0..shape.steps_per_scale {
                let idx = perms.len();
                let perm = match &permutations {
                    Some(given) => given[idx].clone(),
                    None => permutation(stage_in, &mut state),
                };
                let kernel = if k % 2 == 0 { 3 } else { 1 };
                steps.push(FlowStep::new(
                    &(p / format!("scale{s}") / format!("step{k}")),
                    stage_in,
                    kernel,
                    &perm,
                ));
                perms.push(perm);
            }
            stages.push(steps);
        }
        Self {
            shape,
            norms,
            stages,
            up,
            permutations: perms,
        }
    }

    /// Normalise raw backbone features (finest first).
    pub fn normalise(&self, features: &[Tensor]) -> Vec<Tensor> {
        features
            .iter()
            .zip(&self.norms)
            .map(|(f, n)| f.apply(n))
            .collect()
    }

    /// Latents (finest first) and the log-determinant per sample, from normalised features.
    pub fn flow_forward(&self, normed: &[Tensor]) -> (Vec<Tensor>, Tensor) {
        let n = normed.len();
        let mut z: Vec<Option<Tensor>> = (0..n).map(|_| None).collect();
        let mut carry: Option<Tensor> = None;
        let mut logdet: Option<Tensor> = None;
        for s in (0..n).rev() {
            let mut x = match carry.take() {
                Some(u) => Tensor::cat(&[normed[s].shallow_clone(), u], 1),
                None => normed[s].shallow_clone(),
            };
            for step in &self.stages[s] {
                let (y, ld) = step.forward(&x);
                x = y;
                logdet = Some(match logdet {
                    Some(l) => l + ld,
                    None => ld,
                });
            }
            if s > 0 {
                let c = x.size()[1];
                let u = x.narrow(1, 0, self.up[s]);
                z[s] = Some(x.narrow(1, self.up[s], c - self.up[s]));
                carry = Some(u.pixel_shuffle(2));
            } else {
                z[s] = Some(x);
            }
        }
        (
            z.into_iter().map(|t| t.expect("every scale")).collect(),
            logdet.expect("at least one step"),
        )
    }

    /// Normalised features back from latents (finest first).
    pub fn flow_reverse(&self, z: &[Tensor]) -> Vec<Tensor> {
        let n = z.len();
        let mut out = Vec::with_capacity(n);
        let mut up: Option<Tensor> = None;
        for (s, zs) in z.iter().enumerate() {
            let mut y = match up.take() {
                Some(u) => Tensor::cat(&[u, zs.shallow_clone()], 1),
                None => zs.shallow_clone(),
            };
            for step in self.stages[s].iter().rev() {
                y = step.reverse(&y);
            }
            let c = self.shape.channels[s];
            out.push(y.narrow(1, 0, c));
            if s + 1 < n {
                up = Some(y.narrow(1, c, y.size()[1] - c).pixel_unshuffle(2));
            }
        }
        out
    }

    /// Latents and log-determinant from raw features.
    /// The LayerNorms' trainable scales are part of the map from (standardised) features to z,
    /// so their log-determinant counts in the likelihood. Without it the loss can fall forever by
    /// shrinking those scales, and the latents collapse (seen on the Magnetic-tile set: mean z^2
    /// about 0.1 and pixel AUROC 56).
    pub fn forward(&self, features: &[Tensor]) -> (Vec<Tensor>, Tensor) {
        let (z, logdet) = self.flow_forward(&self.normalise(features));
        let affine = self
            .norms
            .iter()
            .filter_map(|n| n.ws.as_ref())
            .map(|w| w.abs().log().sum(Kind::Float))
            .reduce(|a, b| a + b);
        match affine {
            Some(a) => (z, logdet + a),
            None => (z, logdet),
        }
    }
}

/// Per sample: 0.5 * sum of z^2 over all scales minus the log-determinant; averaged over the
/// batch (a sum over the batch would weight the z^2 term B times and shrink the latents).
pub fn nll_loss(z: &[Tensor], logdet: &Tensor) -> Tensor {
    let per_sample = z
        .iter()
        .map(|t| {
            t.pow_tensor_scalar(2)
                .sum_dim_intlist([1, 2, 3].as_slice(), false, Kind::Float)
                * 0.5
        })
        .reduce(|a, b| a + b)
        .expect("latents");
    (per_sample - logdet).mean(Kind::Float)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny(vs: &nn::VarStore, channels: Vec<i64>, sizes: Vec<(i64, i64)>) -> UFlow {
        UFlow::new(
            &vs.root(),
            FlowShape {
                channels,
                sizes,
                steps_per_scale: 4,
            },
            None,
            7,
        )
    }

    fn perturb_weights(vs: &nn::VarStore) {
        // Move away from the identity-like initialisation so the test exercises real couplings.
        tch::no_grad(|| {
            for (name, mut v) in vs.variables() {
                if name.contains("global") {
                    let _ = v.g_add_(&(v.randn_like() * 0.3));
                } else {
                    let _ = v.g_add_(&(v.randn_like() * 0.2));
                }
            }
        });
    }

    #[test]
    fn shapes_follow_the_split_rule() {
        // ResNet18 example of the reference: 64/128/256 channels.
        let s = FlowShape {
            channels: vec![64, 128, 256],
            sizes: vec![(64, 64), (32, 32), (16, 16)],
            steps_per_scale: 4,
        };
        assert_eq!(s.latent_channels(), vec![84, 80, 128]);
        let (input, up) = s.stage_channels();
        assert_eq!(input, vec![84, 160, 256]);
        assert_eq!(up, vec![0, 80, 128]);
        // MS-CaiT: 768@28 + 384@14 -> 816 and 192.
        let c = FlowShape {
            channels: vec![768, 384],
            sizes: vec![(28, 28), (14, 14)],
            steps_per_scale: 4,
        };
        assert_eq!(c.latent_channels(), vec![816, 192]);
    }

    #[test]
    fn reverse_of_forward_is_the_identity() {
        tch::manual_seed(1);
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let flow = tiny(&vs, vec![6, 8, 16], vec![(8, 8), (4, 4), (2, 2)]);
        perturb_weights(&vs);
        let feats: Vec<Tensor> = flow
            .shape
            .channels
            .iter()
            .zip(&flow.shape.sizes)
            .map(|(&c, &(h, w))| Tensor::randn([2, c, h, w], (Kind::Float, tch::Device::Cpu)))
            .collect();
        let normed = flow.normalise(&feats);
        let (z, logdet) = flow.flow_forward(&normed);
        assert_eq!(logdet.size(), vec![2]);
        assert_eq!(
            z.iter().map(|t| t.size()[1]).collect::<Vec<_>>(),
            flow.shape.latent_channels()
        );
        let back = flow.flow_reverse(&z);
        for (a, b) in back.iter().zip(&normed) {
            let err = (a - b).abs().max().double_value(&[]);
            assert!(err < 1e-4, "reconstruction error {err}");
        }
    }

    #[test]
    fn log_determinant_matches_a_numerical_jacobian() {
        tch::manual_seed(2);
        let mut vs = nn::VarStore::new(tch::Device::Cpu);
        let flow = tiny(&vs, vec![3, 8], vec![(2, 2), (1, 1)]);
        perturb_weights(&vs);
        vs.double();
        let shapes = [(3i64, 2i64, 2i64), (8, 1, 1)];
        let n_in: i64 = shapes.iter().map(|(c, h, w)| c * h * w).sum();
        let x0 = Tensor::randn([n_in], (Kind::Double, tch::Device::Cpu));
        let unflatten = |x: &Tensor| -> Vec<Tensor> {
            let mut off = 0;
            shapes
                .iter()
                .map(|&(c, h, w)| {
                    let t = x.narrow(0, off, c * h * w).view([1, c, h, w]);
                    off += c * h * w;
                    t
                })
                .collect()
        };
        let flat =
            |z: &[Tensor]| Tensor::cat(&z.iter().map(|t| t.flatten(0, -1)).collect::<Vec<_>>(), 0);
        let f = |x: &Tensor| flat(&flow.flow_forward(&unflatten(x)).0);
        let (_, logdet) = flow.flow_forward(&unflatten(&x0));
        let n = n_in as usize;
        let eps = 1e-6;
        let mut jac = vec![0.0f64; n * n];
        for j in 0..n {
            let mut e = vec![0.0f64; n];
            e[j] = eps;
            let d = Tensor::from_slice(&e);
            let col = (f(&(&x0 + &d)) - f(&(&x0 - &d))) / (2.0 * eps);
            let col: Vec<f64> = Vec::<f64>::try_from(&col).unwrap();
            for i in 0..n {
                jac[i * n + j] = col[i];
            }
        }
        let numeric = Tensor::from_slice(&jac)
            .view([n_in, n_in])
            .slogdet()
            .1
            .double_value(&[]);
        let analytic = logdet.double_value(&[0]);
        assert!(
            (numeric - analytic).abs() < 1e-5,
            "numerical {numeric} vs analytic {analytic}"
        );
    }

    #[test]
    fn layer_norm_scales_count_in_the_log_determinant() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let flow = tiny(&vs, vec![3, 8], vec![(2, 2), (1, 1)]);
        tch::no_grad(|| {
            for (name, mut v) in vs.variables() {
                if name.starts_with("norm") && name.ends_with("weight") {
                    let _ = v.fill_(2.0);
                }
            }
        });
        let feats = vec![
            Tensor::randn([1, 3, 2, 2], (Kind::Float, tch::Device::Cpu)),
            Tensor::randn([1, 8, 1, 1], (Kind::Float, tch::Device::Cpu)),
        ];
        let (_, total) = flow.forward(&feats);
        let (_, inner) = flow.flow_forward(&flow.normalise(&feats));
        let expected = (3.0 * 4.0 + 8.0) * 2f64.ln();
        assert!(((total - inner).double_value(&[0]) - expected).abs() < 1e-4);
    }

    #[test]
    fn loss_is_a_per_sample_mean_over_the_batch() {
        let z = vec![Tensor::ones([4, 2, 3, 3], (Kind::Float, tch::Device::Cpu))];
        let logdet = Tensor::zeros([4], (Kind::Float, tch::Device::Cpu));
        // Each sample: 0.5 * 18 = 9; the mean over 4 samples is 9 (a batch sum would give 36).
        assert!((nll_loss(&z, &logdet).double_value(&[]) - 9.0).abs() < 1e-6);
    }
}
