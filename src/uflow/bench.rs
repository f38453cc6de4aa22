//! `contrario bench uflow`: U-Flow's timings (backbone, flow, segmentation, a training epoch).

use std::time::Instant;

use crate::project::model_file::FlowShape;
use crate::stats::acontrario::{self, SegmentOptions};
use crate::stats::timing::median_seconds as time;
use crate::uflow::backbone::{Backbone, EfficientNetLite};
use crate::uflow::flow::{UFlow, nll_loss};

/// U-Flow timings on CPU: inference per image split into backbone / flow / a contrario
/// segmentation, and one training epoch over `images` cached feature sets (batch 8, Adam).
/// Random images and a freshly initialised flow: timing does not depend on the weights.
pub fn uflow(repeat: usize, images: usize, input: i64) -> anyhow::Result<serde_json::Value> {
    let device = tch::Device::Cpu;
    tch::manual_seed(0);
    let backbone = EfficientNetLite::builtin(device)?;
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
        .map(|t| crate::uflow::model::to_array3(&t.squeeze_dim(0)))
        .collect();
    let views: Vec<_> = lat.iter().map(|a| a.view()).collect();
    let size = Some((input as usize, input as usize));
    let t_seg = time(repeat, || {
        acontrario::segment(&views, size, SegmentOptions::default())
    });
    // The published way (every latent pixel tested, bilinear combination), side by side.
    let t_seg_reference = time(repeat, || {
        acontrario::segment(&views, size, SegmentOptions::reference())
    });
    // One epoch: `images` feature sets, batches of 8.
    let batch = tch::Tensor::randn([images as i64, 3, input, input], (tch::Kind::Float, device));
    let all = backbone.features(&batch);
    // The optimiser training uses (ours, with checkpointable moments).
    let mut opt = crate::uflow::model::Adam::new(&vs, 1e-4, 1e-5);
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
            "segmentation_reference_grid": t_seg_reference,
        },
        "training": {"images": images, "batch": 8, "seconds_per_epoch": epochs[1]},
    }))
}
