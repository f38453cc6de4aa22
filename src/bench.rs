//! `contrario bench`: timings measured side by side in one run, reported as ratios. Run with the
//! release build (`cargo run --release -- bench nfa`).

use ndarray::{Array2, Array3};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};
use std::time::Instant;

use crate::acontrario::{self, SegmentOptions};

fn normal(rng: &mut StdRng, c: usize, h: usize, w: usize) -> Array3<f32> {
    Array3::from_shape_simple_fn((c, h, w), || StandardNormal.sample(rng))
}

/// Seconds per call: the median over 5 batches of `repeat / 5` calls, so that a hiccup of the
/// machine (other processes, frequency changes) does not decide the figure.
fn time<R>(repeat: usize, mut f: impl FnMut() -> R) -> f64 {
    let _ = f(); // warm-up
    let per_batch = (repeat / 5).max(1);
    let mut batches: Vec<f64> = (0..5)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..per_batch {
                std::hint::black_box(f());
            }
            start.elapsed().as_secs_f64() / per_batch as f64
        })
        .collect();
    batches.sort_by(f64::total_cmp);
    batches[2]
}

/// Segmentation of the two reference latent layouts, against the published Python
/// implementation's times from the shared fixtures (measured on this kind of machine), and
/// re-thresholding plus outline tracing of a 1024 x 1024 log-NFA map.
pub fn nfa(repeat: usize) -> serde_json::Value {
    let mut rng = StdRng::seed_from_u64(1);
    let mut out = serde_json::Map::new();
    // Python reference seconds per image (sum over scales) from shared/fixtures/nfa/*/ref.json.
    // (name, [(channels, side)] per scale, Python seconds)
    type Layout = (&'static str, Vec<(usize, usize)>, f64);
    let layouts: [Layout; 2] = [
        (
            "ms_cait_816x28x28_192x14x14",
            vec![(816, 28), (192, 14)],
            0.02133 + 0.00418,
        ),
        (
            "resnet18_84x64x64_80x32x32_128x16x16",
            vec![(84, 64), (80, 32), (128, 16)],
            0.20828 + 0.02937 + 0.00525,
        ),
    ];
    for (name, scales, python_s) in layouts {
        let z: Vec<Array3<f32>> = scales
            .iter()
            .map(|&(c, s)| normal(&mut rng, c, s, s))
            .collect();
        let views: Vec<_> = z.iter().map(|a| a.view()).collect();
        let ours = time(repeat, || {
            acontrario::segment(&views, None, SegmentOptions::default())
        });
        out.insert(
            name.into(),
            serde_json::json!({
                "contrario_seconds": ours,
                "python_reference_seconds": python_s,
                "speedup": python_s / ours,
            }),
        );
    }
    // A 1024 x 1024 map with a few dozen blobs, as the viewer would get after upsampling.
    let mut map = Array2::<f32>::from_elem((1024, 1024), 50.0);
    for k in 0..40usize {
        let (cy, cx, r) = ((k * 397) % 980 + 20, (k * 613) % 980 + 20, 6 + k % 20);
        for y in cy.saturating_sub(r)..(cy + r).min(1024) {
            for x in cx.saturating_sub(r)..(cx + r).min(1024) {
                let d = ((y as f32 - cy as f32).powi(2) + (x as f32 - cx as f32).powi(2)).sqrt();
                map[(y, x)] = map[(y, x)].min(d - r as f32 * 0.8 - k as f32);
            }
        }
    }
    let th = time(repeat.max(20), || {
        acontrario::regions_at(&map, None, 0.0, 0.35)
    });
    let regions = acontrario::regions_at(&map, None, 0.0, 0.35).len();
    out.insert(
        "rethreshold_1024x1024".into(),
        serde_json::json!({"seconds": th, "regions": regions, "target_seconds": 0.005}),
    );
    serde_json::Value::Object(out)
}

/// U-Flow timings on CPU: inference per image split into backbone / flow / a contrario
/// segmentation, and one training epoch over `images` cached feature sets (batch 8, Adam).
/// Random images and a freshly initialised flow: timing does not depend on the weights.
pub fn uflow(repeat: usize, images: usize, input: i64) -> anyhow::Result<serde_json::Value> {
    use crate::backbone::{Backbone, EfficientNetLite0};
    use crate::flow::{FlowShape, UFlow, nll_loss};
    use tch::nn::OptimizerConfig;
    let device = tch::Device::Cpu;
    tch::manual_seed(0);
    let backbone = EfficientNetLite0::builtin(device)?;
    let sizes = (0..3)
        .map(|s| (input / (4 << s), input / (4 << s)))
        .collect();
    let shape = FlowShape {
        channels: backbone.channels(),
        sizes,
        steps_per_scale: 4,
    };
    let vs = tch::nn::VarStore::new(device);
    let flow = UFlow::new(&vs.root(), shape, None, 0);
    let x = tch::Tensor::randn([1, 3, input, input], (tch::Kind::Float, device));
    let feats = backbone.features(&x);
    let t_backbone = time(repeat, || backbone.features(&x));
    let t_flow = time(repeat, || tch::no_grad(|| flow.forward(&feats)));
    let (z, _) = tch::no_grad(|| flow.forward(&feats));
    let lat: Vec<ndarray::Array3<f32>> = z
        .iter()
        .map(|t| crate::model::to_array3(&t.squeeze_dim(0)))
        .collect();
    let views: Vec<_> = lat.iter().map(|a| a.view()).collect();
    let size = Some((input as usize, input as usize));
    let t_seg = time(repeat, || {
        acontrario::segment(&views, size, SegmentOptions::default())
    });
    // One epoch: `images` feature sets, batches of 8.
    let batch = tch::Tensor::randn([images as i64, 3, input, input], (tch::Kind::Float, device));
    let all = backbone.features(&batch);
    let mut opt = tch::nn::Adam {
        wd: 1e-5,
        ..Default::default()
    }
    .build(&vs, 1e-4)?;
    let mut epoch = || -> f64 {
        let start = Instant::now();
        for k in (0..images as i64).step_by(8) {
            let n = 8.min(images as i64 - k);
            let xb: Vec<tch::Tensor> = all.iter().map(|f| f.narrow(0, k, n)).collect();
            let (z, logdet) = flow.forward(&xb);
            opt.backward_step(&nll_loss(&z, &logdet));
        }
        start.elapsed().as_secs_f64()
    };
    let _ = epoch();
    let mut epochs: Vec<f64> = (0..3).map(|_| epoch()).collect();
    epochs.sort_by(f64::total_cmp);
    Ok(serde_json::json!({
        "input": input,
        "threads": tch::get_num_threads(),
        "inference_seconds_per_image": {
            "backbone": t_backbone,
            "flow": t_flow,
            "segmentation": t_seg,
            "total": t_backbone + t_flow + t_seg,
        },
        "training": {"images": images, "batch": 8, "seconds_per_epoch": epochs[1]},
    }))
}
