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

/// Median, 95th percentile and maximum of measured values (nearest rank; NaN when there are
/// none), as every benchmark reports latencies.
pub fn median_p95_max(values: &[f64]) -> (f64, f64, f64) {
    if values.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    (at(0.5), at(0.95), at(1.0))
}

#[cfg(test)]
mod tests {
    #[test]
    fn quantiles_are_nearest_ranks() {
        let v: Vec<f64> = (1..=20).rev().map(f64::from).collect();
        assert_eq!(super::median_p95_max(&v), (10.0, 19.0, 20.0));
        assert!(super::median_p95_max(&[]).0.is_nan());
    }
}
