//! Chan's series (Chan 1997, 2008): the 2D Pc of the equivalent-area circle, the independent cross-check of Foster's
//! integral (README.md, "Chan").

use crate::encounter::EncounterPlane;
use crate::{ObjectAtTca, PcError};

/// Chan's series (Chan 1997/2008), as the independent cross-check of [`crate::pc_foster`].
///
/// Scaling the minor axis by sigma_major / sigma_minor makes the Gaussian circular and the hard-body circle an
/// ellipse of the same area; Chan replaces that ellipse by the circle of equal area, which makes the Pc the series
/// `P = sum over m of e^(-v/2) (v/2)^m / m! * [1 - e^(-u/2) sum over k <= m of (u/2)^k / k!]` with
/// `u = R^2 / (sigma_major sigma_minor)` and `v = (x_m / sigma_major)^2 + (z_m / sigma_minor)^2`.
/// For a circular covariance that is exact; the more elongated the ellipse and the larger R against sigma_minor,
/// the further it is from Foster's integral (README.md says by how much).
pub fn pc_chan(a: &ObjectAtTca, b: &ObjectAtTca, hard_body_radius_m: f64) -> Result<f64, PcError> {
    let plane = EncounterPlane::new(a, b, hard_body_radius_m)?;
    Ok(chan_series(&plane))
}

fn chan_series(plane: &EncounterPlane) -> f64 {
    let radius = plane.hard_body_radius_m;
    if radius == 0.0 {
        return 0.0;
    }
    let u = radius * radius / (plane.sigma_major_m * plane.sigma_minor_m);
    let v = (plane.centre_major_m / plane.sigma_major_m).powi(2) + (plane.centre_minor_m / plane.sigma_minor_m).powi(2);
    series(v / 2.0, u / 2.0)
}

/// `sum over m = 0..=M of w_m B_m`, with `w_m` the Poisson(`lambda`) probability of m and `B_m` the Poisson(`mu`)
/// probability of more than m. `M = ceil(lambda + 12 sqrt(lambda) + 40)`: the Poisson(`lambda`) mass beyond it is
/// below 1e-30, and every `B_m` is at most 1, so the terms left out add less than that.
/// Each factor is computed without cancellation: `w_m` and the Poisson(`mu`) probabilities `p_k` from logarithms
/// (no underflow of `e^(-lambda)` for large `lambda`); `B_m` as `1 - (p_0 + ... + p_m)` while m <= mu - 2 (where it is
/// at least 1/2), and beyond as a sum of the tail: `B_M` directly, then `B_(m-1) = B_m + p_m` downwards.
fn series(lambda: f64, mu: f64) -> f64 {
    let last = (lambda + 12.0 * lambda.sqrt() + 40.0).ceil() as u64;
    let ln_lambda = lambda.ln();
    let ln_mu = mu.ln();
    let weight = |m: u64| if m == 0 { (-lambda).exp() } else { (-lambda + m as f64 * ln_lambda - ln_factorial(m)).exp() };
    let poisson_mu = |k: u64| (-mu + k as f64 * ln_mu - ln_factorial(k)).exp();
    // First m whose B_m is summed from the tail: below it, m + 2 <= mu, under the Poisson median (which is above
    // mu - ln 2), so B_m >= 1/2 and 1 - sum loses nothing.
    let tail_from = if mu >= 2.0 { (mu - 2.0).floor() as u64 + 1 } else { 0 };
    let mut sum = 0.0;
    let mut cumulative = 0.0;
    for m in 0..tail_from.min(last + 1) {
        cumulative += poisson_mu(m);
        sum += weight(m) * (1.0 - cumulative).max(0.0);
    }
    if tail_from <= last {
        let mut above = tail_beyond(last, mu);
        for m in (tail_from..=last).rev() {
            sum += weight(m) * above;
            above += poisson_mu(m);
        }
    }
    sum.min(1.0)
}

/// P(N > m) for N ~ Poisson(`mu`), m > mu - 2: `p_(m+1) (1 + mu/(m+2) + mu^2/((m+2)(m+3)) + ...)`, every term
/// positive and, from k > mu on, decreasing, summed until the next adds less than 1e-17 of the total.
fn tail_beyond(m: u64, mu: f64) -> f64 {
    let first = (-mu + (m + 1) as f64 * mu.ln() - ln_factorial(m + 1)).exp();
    let (mut term, mut ratio_sum, mut k) = (1.0, 1.0, m + 2);
    while term > 1e-17 * ratio_sum {
        term *= mu / k as f64;
        ratio_sum += term;
        k += 1;
    }
    first * ratio_sum
}

fn ln_factorial(n: u64) -> f64 {
    libm::lgamma(n as f64 + 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn centred_on_a_circular_gaussian_it_is_a_rayleigh_probability() {
        // v = 0: only m = 0 counts and P = 1 - e^(-u/2).
        for mu in [1e-9_f64, 0.3, 2.0, 50.0, 1e4] {
            let exact = -(-mu).exp_m1();
            assert!((series(0.0, mu) - exact).abs() <= 1e-13 * exact, "mu = {mu}");
        }
    }

    #[test]
    fn the_series_is_the_noncentral_chi_square_distribution() {
        // lambda = mu = 1 against the Poisson mixture written out term by term with plain factorials:
        // sum over m of e^-1/m! * P(Poisson(1) > m).
        let mut independent = 0.0;
        let mut factorial = 1.0;
        for m in 0..60 {
            if m > 0 {
                factorial *= f64::from(m);
            }
            let mut at_most = 0.0;
            let mut f = 1.0;
            for k in 0..=m {
                if k > 0 {
                    f *= f64::from(k);
                }
                at_most += (-1f64).exp() / f;
            }
            independent += (-1f64).exp() / factorial * (1.0 - at_most);
        }
        assert!((series(1.0, 1.0) - independent).abs() < 1e-14, "{} vs {independent}", series(1.0, 1.0));
        // Both m < mu and m >= mu branches: lambda and mu large and of the same size.
        let big = series(400.0, 420.0);
        assert!(big > 0.0 && big < 1.0);
    }
}
