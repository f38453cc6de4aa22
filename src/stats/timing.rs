//! Timing for benchmarks: robust to a hiccup of the machine, so that figures measured side by
//! side in one run can be compared as ratios.

use std::time::Instant;

/// Seconds per call: the median over 5 batches of `repeat / 5` calls, so that a hiccup of the
/// machine (other processes, frequency changes) does not decide the figure.
pub fn median_seconds<R>(repeat: usize, mut f: impl FnMut() -> R) -> f64 {
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
