//! `contrario segment`: the a contrario engine on latents from files, for debugging and for
//! side-by-side comparison with other implementations on identical inputs.

use anyhow::{Context, bail};
use std::path::PathBuf;
use std::time::Instant;

use crate::stats::acontrario::{self, OutlineRule, SegmentOptions, TestCount};
use crate::stats::npy;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Folder with z_1.npy, z_2.npy, ...
    #[arg(long)]
    pub latents: PathBuf,
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Reproduce the published implementation exactly (no clamp of the bound where t < 1, every
    /// latent pixel tested, bilinear combination, the thesis' count of tests).
    #[arg(long, conflicts_with = "test_count")]
    pub parity: bool,
    /// How regions' tests are counted: per-area (the default) or thesis.
    #[arg(long, value_parser = parse_count)]
    pub test_count: Option<TestCount>,
    /// How regions are outlined: evidence (the default: where the finest features carry the
    /// region's evidence) or tested (the regions as tested, on their scales' grids).
    #[arg(long, value_parser = parse_outline, conflicts_with = "parity")]
    pub outline: Option<OutlineRule>,
    /// Detection threshold on log10 NFA.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub threshold: f32,
    /// Output size HxW of the combined map (default: the finest scale's size).
    #[arg(long)]
    pub size: Option<String>,
    /// Segment N times and report the mean time (segmentation only, no file I/O).
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn parse_count(s: &str) -> Result<TestCount, String> {
    TestCount::parse(s).ok_or_else(|| format!("{s:?}: use per-area or thesis"))
}

pub fn parse_outline(s: &str) -> Result<OutlineRule, String> {
    OutlineRule::parse(s).ok_or_else(|| format!("{s:?}: use evidence or tested"))
}

/// `HxW` -> (H, W).
pub fn parse_size(s: &str) -> anyhow::Result<(usize, usize)> {
    let (h, w) = s
        .split_once(['x', 'X'])
        .with_context(|| format!("size {s:?} is not HxW"))?;
    let h: usize = h
        .trim()
        .parse()
        .with_context(|| format!("bad height in {s:?}"))?;
    let w: usize = w
        .trim()
        .parse()
        .with_context(|| format!("bad width in {s:?}"))?;
    if h == 0 || w == 0 || h > 16384 || w > 16384 {
        bail!("size {s:?} must be between 1x1 and 16384x16384");
    }
    Ok((h, w))
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let latents = npy::read_latents(&args.latents)?;
    let size = args.size.as_deref().map(parse_size).transpose()?;
    let opts = if args.parity {
        SegmentOptions::reference()
    } else {
        SegmentOptions {
            outline: args.outline.unwrap_or_default(),
            ..SegmentOptions::with_count(args.test_count.unwrap_or(TestCount::PerArea))
        }
    };
    let views: Vec<_> = latents.iter().map(|a| a.view()).collect();
    let repeat = args.repeat.max(1);
    let start = Instant::now();
    let mut seg = acontrario::segment(&views, size, opts);
    for _ in 1..repeat {
        seg = acontrario::segment(&views, size, opts);
    }
    let seconds = start.elapsed().as_secs_f64() / repeat as f64;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    for (s, r) in seg.scales.iter().enumerate() {
        let (h, w) = r.log_pfa.dim();
        crate::project::storage::write_npy_f32(
            &args.out.join(format!("log_pfa_{}.npy", s + 1)),
            &[h, w],
            r.log_pfa.iter().copied(),
        )?;
    }
    let (h, w) = seg.log_nfa.dim();
    crate::project::storage::write_npy_f32(
        &args.out.join("log_nfa.npy"),
        &[h, w],
        seg.log_nfa.iter().copied(),
    )?;
    let regions = acontrario::regions_at(&seg.log_nfa, Some(&seg.best_scale), args.threshold, 0.35);
    let summary = serde_json::json!({
        "scales": latents.iter().zip(&seg.scales).map(|(z, r)| serde_json::json!({
            "shape": z.shape(),
            "final_regions": r.regions,
            "min_log_pfa": r.log_pfa.iter().copied().fold(0.0f32, f32::min),
        })).collect::<Vec<_>>(),
        "log10_nt": seg.log10_nt,
        "test_count": opts.count.name(),
        "outline": opts.outline.name(),
        "threshold": args.threshold,
        "parity": args.parity,
        "size": [h, w],
        "repeat": repeat,
        "seconds_per_image": seconds,
        "regions": regions.len(),
    });
    crate::project::storage::write_atomic(
        &args.out.join("regions.json"),
        serde_json::to_string_pretty(
            &serde_json::json!({ "summary": summary, "regions": regions }),
        )?
        .as_bytes(),
    )?;
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!(
            "{} region(s) at log10 NFA < {}; {} count, log10 of the tests every region pays {:.3}; {:.3} ms per image; wrote {}",
            regions.len(),
            args.threshold,
            opts.count.name(),
            seg.log10_nt,
            seconds * 1e3,
            args.out.display()
        );
    }
    Ok(())
}
