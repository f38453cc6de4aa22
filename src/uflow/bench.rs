//! `contrario bench uflow`, `patchcore` and `coreset`: the model families' timings (backbone,
//! flow or search, segmentation, a training epoch, the coreset selection).

use std::time::Instant;

use crate::project::model_file::FlowShape;
use crate::stats::acontrario::nfa::segment_outlined;
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

/// PatchCore's inference per image on CPU split into backbone / patch descriptors / nearest-
/// neighbour search / smoothed map / a contrario segmentation, for banks of 10 % of `images`
/// training images' patches (the default coreset), and the search by the plain three-pass
/// formula side by side. Random images and banks: the timing does not depend on the values.
pub fn patchcore(repeat: usize, images: &[usize], input: i64) -> anyhow::Result<serde_json::Value> {
    use crate::uflow::patchcore::{self, Bank};
    let device = tch::Device::Cpu;
    tch::manual_seed(0);
    let backbone = EfficientNetLite::builtin(device)?;
    let x = tch::Tensor::randn([1, 3, input, input], (tch::Kind::Float, device));
    let _g = tch::no_grad_guard();
    let feats = backbone.features(&x);
    let stride = backbone.first_stride();
    let t_backbone = time(repeat, || backbone.features(&x));
    let t_patches = time(repeat, || patchcore::patch_features(&feats, stride));
    let p = patchcore::patch_features(&feats, stride).squeeze_dim(0);
    let (d, h, w) = (p.size()[0], p.size()[1], p.size()[2]);
    let q = patchcore::rows(&p);
    let dist = tch::Tensor::rand([h, w], (tch::Kind::Float, device));
    let t_smooth = time(repeat, || patchcore::smooth_map(&dist, input));
    let z = crate::uflow::model::to_array3(&dist.unsqueeze(0));
    let views = [z.view()];
    let size = Some((input as usize, input as usize));
    // As the model segments: outlined on the upsampled distances under their null (here the
    // random distances' own), beside the outline from the tested map alone.
    let sample: Vec<f64> = z.iter().map(|&v| f64::from(v)).collect();
    let null = crate::stats::acontrario::null::DistanceNull::fit(&sample)
        .ok_or_else(|| anyhow::anyhow!("too few distances"))?;
    let opts = SegmentOptions::default();
    let t_seg = time(repeat, || {
        let outline = crate::uflow::model::bank_outline(&dist, input, &null);
        segment_outlined(&views, size, opts, &[], Some(outline))
    });
    let t_seg_latent = time(repeat, || acontrario::segment(&views, size, opts));
    let mut banks = Vec::new();
    for &n in images {
        let rows = patchcore::coreset_size(n as i64 * h * w, 0.1) as i64;
        let bank = Bank::new(tch::Tensor::randn([rows, d], (tch::Kind::Float, device)));
        let t_search = time(repeat, || bank.nearest(&q));
        let t_plain = time(repeat, || bank.nearest_plain(&q));
        banks.push(serde_json::json!({
            "training_images": n,
            "bank_rows": rows,
            "search": t_search,
            "search_plain_formula": t_plain,
            "plain_over_search": t_plain / t_search,
            "total": t_backbone + t_patches + t_search + t_smooth + t_seg,
        }));
    }
    Ok(serde_json::json!({
        "input": input,
        "threads": tch::get_num_threads(),
        "descriptor_dims": d,
        "queries": h * w,
        "inference_seconds_per_image": {
            "backbone": t_backbone,
            "patch_descriptors": t_patches,
            "smoothed_map": t_smooth,
            "segmentation": t_seg,
            "segmentation_outlined_on_the_tested_map": t_seg_latent,
        },
        "banks": banks,
    }))
}

/// PatchCore's coreset selection on the patch descriptors of `paths` (normal images, the
/// built-in backbone on CPU at `input` px, lit as training's defaults set them), a share
/// `fraction` of them: the pruned traversal training uses against the plain scan of every row
/// at every pick, side by side, and how many rows both pick.
pub fn coreset(
    paths: &[std::path::PathBuf],
    fraction: f64,
    input: i64,
) -> anyhow::Result<serde_json::Value> {
    use crate::uflow::patchcore;
    use std::sync::atomic::AtomicBool;
    let device = tch::Device::Cpu;
    let backbone = EfficientNetLite::builtin(device)?;
    let config = crate::project::model_file::TrainConfig {
        input_size: input,
        ..Default::default()
    };
    let (_, standard) = crate::uflow::model::training_looks(paths, &config);
    let never = AtomicBool::new(false);
    let feats = crate::uflow::model::extract_features(
        &backbone,
        paths,
        input,
        standard,
        device,
        &never,
        |_| {},
    )?;
    let (rows, _) = patchcore::patch_rows(&feats, backbone.first_stride());
    let x = tch::Tensor::cat(&rows, 0);
    let k = patchcore::coreset_size(x.size()[0], fraction);
    let clock = Instant::now();
    let pruned = patchcore::greedy_coreset(&x, k, 0, &never, &mut |_| {}).unwrap_or_default();
    let t_pruned = clock.elapsed().as_secs_f64();
    let clock = Instant::now();
    let plain = patchcore::greedy_coreset_scan(&x, k, 0, &never).unwrap_or_default();
    let t_plain = clock.elapsed().as_secs_f64();
    let chosen: std::collections::HashSet<i64> = plain.iter().copied().collect();
    Ok(serde_json::json!({
        "images": paths.len(),
        "input": input,
        "threads": tch::get_num_threads(),
        "rows": x.size()[0],
        "picks": k,
        "seconds_pruned": t_pruned,
        "seconds_plain_scan": t_plain,
        "plain_over_pruned": t_plain / t_pruned,
        "rows_both_pick": pruned.iter().filter(|i| chosen.contains(i)).count(),
    }))
}
