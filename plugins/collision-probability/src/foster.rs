//! Foster's method (Foster & Estes 1992): the 2D Pc as the numerical integral of the combined Gaussian over the
//! hard-body circle in the encounter plane (README.md, "Foster").

use crate::encounter::EncounterPlane;
use crate::{ObjectAtTca, PcError};
use std::f64::consts::{FRAC_1_SQRT_2, FRAC_PI_2, PI};

/// Relative accuracy asked of the integration (CARA's unit tests ask 1e-8 or 1e-9 of MATLAB's quad2d).
const RELATIVE_TOLERANCE: f64 = 1e-10;

/// Bisections allowed below each initial segment: 2^-50 of a segment is below the rounding of the angle, so going
/// deeper could not help.
const MAX_DEPTH: u32 = 50;

/// Beyond this many standard deviations the Gaussian is below exp(-760), under the smallest positive f64: the
/// integral along the major axis is restricted to within it, so a circle far larger than the ellipse is not
/// sampled where its integrand is zero.
const GAUSSIAN_SUPPORT_SIGMAS: f64 = 39.0;

/// Foster's method (Foster & Estes 1992): 2D Pc by numerical integration of the combined Gaussian over the hard-body
/// circle in the encounter plane. `hard_body_radius_m` is the radius of the sphere enclosing both objects, metres.
///
/// In the principal axes of the projected covariance the integral over the minor axis is exact (a difference of
/// normal distribution functions); the remaining integral along the major axis, over the chord of the circle, is
/// computed by adaptive Gauss-Kronrod (7/15 points) to a relative accuracy of about 1e-10. A Pc below about 1e-300
/// comes out as 0.
pub fn pc_foster(a: &ObjectAtTca, b: &ObjectAtTca, hard_body_radius_m: f64) -> Result<f64, PcError> {
    let plane = EncounterPlane::new(a, b, hard_body_radius_m)?;
    Ok(integrate_over_circle(&plane))
}

fn integrate_over_circle(plane: &EncounterPlane) -> f64 {
    let radius = plane.hard_body_radius_m;
    if radius == 0.0 {
        return 0.0;
    }
    let (sigma_x, sigma_z) = (plane.sigma_major_m, plane.sigma_minor_m);
    let (centre_x, centre_z) = (plane.centre_major_m, plane.centre_minor_m);
    let support = GAUSSIAN_SUPPORT_SIGMAS * sigma_x;
    let (low, high) = ((centre_x - radius).max(-support), (centre_x + radius).min(support));
    if low >= high {
        return 0.0;
    }
    // x = centre_x + radius sin(angle): the chord's half-length is radius cos(angle), and dx = radius cos(angle)
    // d(angle), so the square-root ends of the circle become smooth.
    let angle_of = |x: f64| ((x - centre_x) / radius).clamp(-1.0, 1.0).asin();
    let integrand = |angle: f64| {
        let half_chord = radius * angle.cos();
        let x = centre_x + radius * angle.sin();
        let density_x = (-0.5 * (x / sigma_x).powi(2)).exp() / (sigma_x * (2.0 * PI).sqrt());
        density_x * normal_mass_within(centre_z / sigma_z, half_chord / sigma_z) * half_chord
    };
    // Breaks where the integrand changes fastest: the Gaussian's peak (x = 0), and where the chord's ends cross the
    // minor axis (half-chord = |centre_z|), a step as sharp as sigma_z is small against the radius.
    let mut breaks = vec![angle_of(low), angle_of(high)];
    breaks.push(angle_of(0.0));
    if centre_z.abs() < radius {
        let crossing = (centre_z.abs() / radius).acos();
        breaks.extend([crossing, -crossing]);
    }
    let (first, last) = (angle_of(low), angle_of(high));
    breaks.retain(|angle| (first..=last).contains(angle));
    breaks.sort_by(f64::total_cmp);
    breaks.dedup();
    debug_assert!(first >= -FRAC_PI_2 && last <= FRAC_PI_2);
    integrate(&integrand, &breaks)
}

/// P(|Z - c| <= t) for a standard normal Z: the mass of a strip of half-width `t` centred at `c`, both in standard
/// deviations. Written with the tail that does not cancel; for a strip much narrower than 1 and than 1/|c|, the
/// midpoint series 2 t phi(c) (1 + t^2 (c^2 - 1)/6), whose next term is below 1e-12 of it there.
fn normal_mass_within(c: f64, t: f64) -> f64 {
    if t * (1.0 + c.abs()) < 1e-3 {
        let density = (-0.5 * c * c).exp() / (2.0 * PI).sqrt();
        return 2.0 * t * density * (1.0 + t * t * (c * c - 1.0) / 6.0);
    }
    let (low, high) = (c - t, c + t);
    let upper_tail = |s: f64| 0.5 * libm::erfc(s * FRAC_1_SQRT_2);
    if low >= 0.0 {
        upper_tail(low) - upper_tail(high)
    } else if high <= 0.0 {
        upper_tail(-high) - upper_tail(-low)
    } else {
        1.0 - upper_tail(-low) - upper_tail(high)
    }
}

/// Adaptive Gauss-Kronrod over consecutive segments `breaks[i]..breaks[i + 1]`. A piece is accepted when the
/// Kronrod-Gauss difference is within the relative tolerance of its own value or of its share (by width) of the
/// first estimate of the whole, so that pieces where the integrand is negligible are not refined for nothing.
fn integrate(f: &impl Fn(f64) -> f64, breaks: &[f64]) -> f64 {
    let total_width = breaks.last().unwrap_or(&0.0) - breaks.first().unwrap_or(&0.0);
    let first_estimate: f64 = breaks.windows(2).map(|w| gauss_kronrod(f, w[0], w[1]).0.abs()).sum();
    let density = first_estimate / total_width.max(f64::MIN_POSITIVE);
    breaks.windows(2).map(|w| adapt(f, w[0], w[1], density, MAX_DEPTH)).sum()
}

fn adapt(f: &impl Fn(f64) -> f64, low: f64, high: f64, density: f64, depth: u32) -> f64 {
    let (kronrod, gauss) = gauss_kronrod(f, low, high);
    let tolerance = RELATIVE_TOLERANCE * kronrod.abs().max(density * (high - low));
    if (kronrod - gauss).abs() <= tolerance || depth == 0 {
        return kronrod;
    }
    let middle = 0.5 * (low + high);
    adapt(f, low, middle, density, depth - 1) + adapt(f, middle, high, density, depth - 1)
}

/// Kronrod 15-point nodes on [-1, 1] (non-negative half, descending), from QUADPACK's qk15.
const KRONROD_NODES: [f64; 8] = [
    0.991_455_371_120_812_6,
    0.949_107_912_342_758_5,
    0.864_864_423_359_769_1,
    0.741_531_185_599_394_4,
    0.586_087_235_467_691_1,
    0.405_845_151_377_397_2,
    0.207_784_955_007_898_5,
    0.0,
];
const KRONROD_WEIGHTS: [f64; 8] = [
    0.022_935_322_010_529_22,
    0.063_092_092_629_978_55,
    0.104_790_010_322_250_2,
    0.140_653_259_715_525_9,
    0.169_004_726_639_267_9,
    0.190_350_578_064_785_4,
    0.204_432_940_075_298_9,
    0.209_482_141_084_727_8,
];
/// Gauss 7-point weights for the Kronrod nodes 1, 3, 5 and 7 (the odd ones of the list above).
const GAUSS_WEIGHTS: [f64; 4] = [0.129_484_966_168_869_7, 0.279_705_391_489_276_7, 0.381_830_050_505_118_9, 0.417_959_183_673_469_4];

/// (15-point Kronrod, 7-point Gauss) estimates of the integral of `f` over `low..high`.
fn gauss_kronrod(f: &impl Fn(f64) -> f64, low: f64, high: f64) -> (f64, f64) {
    let (middle, half) = (0.5 * (low + high), 0.5 * (high - low));
    let centre_value = f(middle);
    let mut kronrod = KRONROD_WEIGHTS[7] * centre_value;
    let mut gauss = GAUSS_WEIGHTS[3] * centre_value;
    for (i, (&node, &weight)) in KRONROD_NODES.iter().zip(&KRONROD_WEIGHTS).take(7).enumerate() {
        let pair = f(middle - half * node) + f(middle + half * node);
        kronrod += weight * pair;
        if i % 2 == 1 {
            gauss += GAUSS_WEIGHTS[i / 2] * pair;
        }
    }
    (kronrod * half, gauss * half)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rules_integrate_polynomials_of_their_degree_exactly() {
        // Kronrod 15 is exact to degree 22, Gauss 7 to degree 13: a wrong digit in a constant shows here.
        for degree in 0..=22 {
            let (kronrod, gauss) = gauss_kronrod(&|x: f64| x.powi(degree), 0.0, 1.0);
            let exact = 1.0 / f64::from(degree + 1);
            assert!((kronrod - exact).abs() < 1e-15, "Kronrod, degree {degree}: {kronrod} vs {exact}");
            if degree <= 13 {
                assert!((gauss - exact).abs() < 1e-15, "Gauss, degree {degree}: {gauss} vs {exact}");
            }
        }
    }

    #[test]
    fn a_strip_agrees_on_both_sides_of_every_switch() {
        // Each branch against its neighbour at the switch between them: the series against the tails, and the
        // straddling form against the one-sided ones.
        let near = |a: f64, b: f64| (a - b).abs() <= 1e-10 * a.abs().max(b.abs());
        let t = 1e-3 / 3.0;
        assert!(near(normal_mass_within(2.0, t * (1.0 - 1e-12)), normal_mass_within(2.0, t * (1.0 + 1e-12))));
        assert!(near(normal_mass_within(1.0, 1.0 - 1e-12), normal_mass_within(1.0, 1.0 + 1e-12)));
        assert!(near(normal_mass_within(0.0, 1.0), 0.682_689_492_137_085_9), "one sigma");
        assert!(near(normal_mass_within(-7.0, 0.5), normal_mass_within(7.0, 0.5)), "symmetric");
    }

    #[test]
    fn a_circle_on_a_circular_gaussian_is_a_rayleigh_probability() {
        // Centred circle, isotropic sigma: Pc = 1 - exp(-R^2 / (2 sigma^2)) exactly, over many orders of R/sigma.
        for radius in [1e-4, 0.01, 0.5, 1.0, 3.0, 8.0, 1e3] {
            let plane = EncounterPlane {
                sigma_major_m: 1.0,
                sigma_minor_m: 1.0,
                centre_major_m: 0.0,
                centre_minor_m: 0.0,
                hard_body_radius_m: radius,
            };
            let exact = -(-0.5 * radius * radius).exp_m1();
            let pc = integrate_over_circle(&plane);
            assert!((pc - exact).abs() <= 1e-9 * exact, "R = {radius}: {pc} vs {exact}");
        }
    }
}
