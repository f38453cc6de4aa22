//! Log-space tail probabilities for NFA computations, where the probabilities of interest are far
//! below what an f64 can hold (1e-300 and less): chi-square survival and binomial tails.

use statrs::function::gamma::ln_gamma;

const EPS: f64 = 1e-15;
const TINY: f64 = 1e-300;

/// ln Q(a, x), the regularised upper incomplete gamma function, accurate far into the tail.
pub fn ln_gamma_q(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x < a + 1.0 {
        // Series for P; Q = 1 - P is not small here.
        let (mut sum, mut term, mut ap) = (1.0 / a, 1.0 / a, a);
        for _ in 0..10_000 {
            ap += 1.0;
            term *= x / ap;
            sum += term;
            if term.abs() < sum.abs() * EPS {
                break;
            }
        }
        let ln_p = -x + a * x.ln() - ln_gamma(a) + sum.ln();
        return (-ln_p.exp()).ln_1p();
    }
    // Continued fraction for Q (modified Lentz), kept in log form.
    let mut b = x + 1.0 - a;
    let mut c = 1.0 / TINY;
    let mut d = 1.0 / b;
    let mut h = d;
    for i in 1..10_000 {
        let an = -(i as f64) * (i as f64 - a);
        b += 2.0;
        d = an * d + b;
        if d.abs() < TINY {
            d = TINY;
        }
        c = b + an / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < EPS {
            break;
        }
    }
    -x + a * x.ln() - ln_gamma(a) + h.ln()
}

/// log10 P(chi2_k >= x).
pub fn log10_chi2_sf(k: f64, x: f64) -> f64 {
    ln_gamma_q(k / 2.0, x / 2.0) / std::f64::consts::LN_10
}

/// One step of the modified Lentz algorithm for a continued fraction term `aa`: updates `c` and
/// `d` and returns the factor to multiply the running value by.
fn lentz_step(aa: f64, c: &mut f64, d: &mut f64) -> f64 {
    *d = 1.0 + aa * *d;
    if d.abs() < TINY {
        *d = TINY;
    }
    *c = 1.0 + aa / *c;
    if c.abs() < TINY {
        *c = TINY;
    }
    *d = 1.0 / *d;
    *d * *c
}

fn ln_beta_cf(a: f64, b: f64, x: f64) -> f64 {
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..10_000 {
        let m = m as f64;
        let m2 = 2.0 * m;
        h *= lentz_step(m * (b - m) * x / ((qam + m2) * (a + m2)), &mut c, &mut d);
        let del = lentz_step(
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
            &mut c,
            &mut d,
        );
        h *= del;
        if (del - 1.0).abs() < EPS {
            break;
        }
    }
    h.ln()
}

/// ln I_x(a, b), the regularised incomplete beta function.
pub fn ln_beta_reg(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if x >= 1.0 {
        return 0.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    if x < (a + 1.0) / (a + b + 2.0) {
        ln_front + ln_beta_cf(a, b, x) - a.ln()
    } else {
        // I_x(a, b) = 1 - I_{1-x}(b, a)
        let other = ln_front + ln_beta_cf(b, a, 1.0 - x) - b.ln();
        (-other.exp()).ln_1p()
    }
}

/// log10 P(X >= k) for X ~ Binomial(n, p), with real n and k (the continuous extension through
/// the incomplete beta function: P(X >= k) = I_p(k, n - k + 1)).
pub fn log10_binomial_tail(n: f64, k: f64, p: f64) -> f64 {
    if k <= 0.0 {
        return 0.0;
    }
    if k > n {
        return f64::NEG_INFINITY;
    }
    ln_beta_reg(k, n - k + 1.0, p) / std::f64::consts::LN_10
}

/// The exact (Garwood) upper confidence bound on a Poisson mean from `count` events seen: the
/// mean `m` for which seeing at most `count` has probability 1 - `confidence`, i.e. half the
/// `confidence` quantile of chi-square with 2 (count + 1) degrees of freedom.
pub fn poisson_upper(count: u64, confidence: f64) -> f64 {
    use statrs::distribution::{ChiSquared, ContinuousCDF};
    ChiSquared::new(2.0 * (count as f64 + 1.0))
        .map_or(f64::INFINITY, |c| c.inverse_cdf(confidence) / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poisson_upper_bounds_match_the_tables() {
        // Garwood's one-sided 95 % bounds: 0 -> 3.00, 1 -> 4.74, 5 -> 10.51.
        for (k, m) in [(0, 2.9957), (1, 4.7439), (5, 10.5130)] {
            assert!((poisson_upper(k, 0.95) - m).abs() < 1e-3, "{k}");
        }
        // By definition: P(X <= k | m) = 5 %.
        let m = poisson_upper(3, 0.95);
        let p: f64 = (0..=3u32)
            .map(|i| (-m).exp() * m.powi(i as i32) / (1..=i).map(f64::from).product::<f64>())
            .sum();
        assert!((p - 0.05).abs() < 1e-6, "{p}");
    }
    use statrs::distribution::{Binomial, ChiSquared, ContinuousCDF, DiscreteCDF};

    #[test]
    fn chi2_tail_matches_statrs_where_representable_and_stays_finite_beyond() {
        for k in [1.0, 3.0, 45.0, 72.0, 816.0] {
            let chi = ChiSquared::new(k).unwrap();
            for x in [0.1, 1.0, k * 0.5, k, k * 1.5, k * 3.0] {
                let want = chi.sf(x).log10();
                let got = log10_chi2_sf(k, x);
                assert!(
                    (got - want).abs() < 1e-8 * want.abs().max(1.0),
                    "k={k} x={x}: {got} vs {want}"
                );
            }
        }
        // Far tail: log10 P(chi2_1 >= 5000) is about -1087.
        let v = log10_chi2_sf(1.0, 5000.0);
        assert!(v.is_finite() && (-1090.0..-1084.0).contains(&v), "{v}");
    }

    #[test]
    fn binomial_tail_matches_statrs_on_integers() {
        for (n, k, p) in [
            (20u64, 5u64, 0.1),
            (100, 30, 0.2),
            (25, 1, 0.01),
            (9, 9, 0.5),
        ] {
            let b = Binomial::new(p, n).unwrap();
            let want = if k == 0 { 1.0 } else { b.sf(k - 1) }.log10();
            let got = log10_binomial_tail(n as f64, k as f64, p);
            assert!(
                (got - want).abs() < 1e-8 * want.abs().max(1.0),
                "n={n} k={k}: {got} vs {want}"
            );
        }
        assert!(log10_binomial_tail(2000.0, 1500.0, 0.01) < -2000.0);
    }
}
