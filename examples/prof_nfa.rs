use contrario::acontrario::nfa::segment_scale;
use contrario::acontrario::tree::{MaxTree, significant_leaves};
use contrario::acontrario::{SegmentOptions, segment};
use ndarray::Array3;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use std::time::Instant;

fn main() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let z1: Array3<f32> =
        Array3::from_shape_simple_fn((816, 28, 28), || StandardNormal.sample(&mut rng));
    let z2: Array3<f32> =
        Array3::from_shape_simple_fn((192, 14, 14), || StandardNormal.sample(&mut rng));
    let n = 2000;
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(segment(
            &[z1.view(), z2.view()],
            None,
            SegmentOptions::default(),
        ));
    }
    println!(
        "segment {:.1} us",
        t.elapsed().as_secs_f64() / n as f64 * 1e6
    );
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(segment_scale(z1.view(), SegmentOptions::default()));
    }
    println!(
        "scale1 {:.1} us",
        t.elapsed().as_secs_f64() / n as f64 * 1e6
    );
    let t = Instant::now();
    for _ in 0..n {
        let mut sq = vec![0.0f32; 784];
        for ch in z1.outer_iter() {
            sq.iter_mut()
                .zip(ch.as_slice().unwrap())
                .for_each(|(a, v)| *a += v * v);
        }
        std::hint::black_box(sq);
    }
    println!("sumsq {:.1} us", t.elapsed().as_secs_f64() / n as f64 * 1e6);
    let mut sq = vec![0.0f32; 784];
    for ch in z1.outer_iter() {
        sq.iter_mut()
            .zip(ch.as_slice().unwrap())
            .for_each(|(a, v)| *a += v * v);
    }
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(MaxTree::build(&sq, 28, 28));
    }
    println!("tree {:.1} us", t.elapsed().as_secs_f64() / n as f64 * 1e6);
    let tree = MaxTree::build(&sq, 28, 28);
    let lp: Vec<f64> = (0..tree.len())
        .map(|v| {
            contrario::acontrario::nfa::log10_pfa(
                tree.area[v],
                816,
                (tree.level[v] / 816.0) as f64,
                false,
            )
        })
        .collect();
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(significant_leaves(&tree, &lp));
    }
    println!(
        "prune/merge {:.1} us",
        t.elapsed().as_secs_f64() / n as f64 * 1e6
    );
}
