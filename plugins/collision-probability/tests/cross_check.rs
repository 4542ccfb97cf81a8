//! Foster against Chan on random well-conditioned conjunctions, and Foster against a Monte Carlo of the 3D
//! position errors, which shares no code with either (a mistake common to both formulas shows there).

mod common;

use collision_probability::{pc_chan, pc_foster};
use common::{ALONG_V, PLANE_X, PLANE_Z, conjunction};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    /// Chan's equivalent-area circle differs from the true circle at second order in R/sigma. Expanding the
    /// Gaussian f around the circle's centre (principal axes, k = sigma_major / sigma_minor, centre (cx, cz)):
    /// the integral over a disc is pi R^2 (f + R^2 (f_xx + f_zz) / 8 + ...), and Chan's circle is, in these axes,
    /// the ellipse of semi-axes R sqrt k and R / sqrt k, whose integral is pi R^2 (f + R^2 (k f_xx + f_zz / k) / 8
    /// + ...). So Chan / Foster - 1 = (R^2 / 8) ((k - 1) f_xx / f + (1 / k - 1) f_zz / f) + O((R / sigma_minor)^4),
    /// with f_xx / f = cx^2 / sigma_major^4 - 1 / sigma_major^2 (and so for z). The test asks the difference to
    /// be that second-order term within (R / sigma_minor)^4 (1 + d^2)^2 / 64 (d the Mahalanobis miss) plus 1e-8: the
    /// largest remainder seen over 4,000 cases was 0.0068 (R / sigma_minor)^4 (1 + d^2)^2, so a margin of 2.3.
    #[test]
    fn chan_matches_foster_to_second_order_in_the_radius(
        sigma_major_m in 20.0..3000.0f64,
        aspect in 1.0..6.0f64,
        angle in 0.0..std::f64::consts::PI,
        sigma_along_v_m in 1.0..10_000.0f64,
        radius_over_minor in 0.001..0.3f64,
        mahalanobis_x in -3.0..3.0f64,
        mahalanobis_z in -3.0..3.0f64,
    ) {
        let sigma_minor_m = sigma_major_m / aspect;
        let radius = radius_over_minor * sigma_minor_m;
        let (cx, cz) = (mahalanobis_x * sigma_major_m, mahalanobis_z * sigma_minor_m);
        let (miss_x, miss_z) = (cx * angle.cos() - cz * angle.sin(), cx * angle.sin() + cz * angle.cos());
        let (a, b) = conjunction(sigma_major_m, sigma_minor_m, angle, sigma_along_v_m, miss_x, miss_z);
        let foster = pc_foster(&a, &b, radius).unwrap();
        let chan = pc_chan(&a, &b, radius).unwrap();
        let second_order = radius * radius / 8.0
            * ((aspect - 1.0) * (cx * cx / sigma_major_m.powi(4) - 1.0 / sigma_major_m.powi(2))
                + (1.0 / aspect - 1.0) * (cz * cz / sigma_minor_m.powi(4) - 1.0 / sigma_minor_m.powi(2)));
        let d2 = mahalanobis_x.powi(2) + mahalanobis_z.powi(2);
        let allowed = radius_over_minor.powi(4) * (1.0 + d2).powi(2) / 64.0 + 1e-8;
        let difference = chan / foster - 1.0;
        prop_assert!(
            (difference - second_order).abs() <= allowed,
            "Foster {foster:e}, Chan {chan:e}: difference {difference:e}, second-order term {second_order:e}, allowed {allowed:e}"
        );
    }
}

/// SplitMix64: a fixed, seeded generator, so the Monte Carlo draws the same samples on every run.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    /// Two independent standard normals (Box-Muller).
    fn normal_pair(&mut self) -> (f64, f64) {
        let radius = (-2.0 * self.uniform().ln()).sqrt();
        let angle = std::f64::consts::TAU * self.uniform();
        (radius * angle.cos(), radius * angle.sin())
    }
}

/// The 3x3 lower Cholesky factor of a positive definite matrix.
fn cholesky(m: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let mut l = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..=i {
            let sum: f64 = (0..j).map(|k| l[i][k] * l[j][k]).sum();
            l[i][j] = if i == j { (m[i][i] - sum).sqrt() } else { (m[i][j] - sum) / l[j][j] };
        }
    }
    l
}

#[test]
fn foster_matches_a_monte_carlo_of_the_position_errors() {
    // An elongated, tilted ellipse, the circle off both axes, a large error along the relative velocity: Pc ~ 0.032.
    let (sigma_major, sigma_minor, angle, sigma_along_v) = (200.0, 50.0, 35f64.to_radians(), 300.0);
    let (miss_x, miss_z, radius) = (120.0, -40.0, 60.0);
    let (a, b) = conjunction(sigma_major, sigma_minor, angle, sigma_along_v, miss_x, miss_z);
    let foster = pc_foster(&a, &b, radius).unwrap();

    // Draw the relative position error from the full 3D combined covariance, and count a hit when the straight
    // relative path, with that error, passes within the radius: its distance to the line along the relative
    // velocity. No encounter frame, projection or 2D integral in common with the code under test.
    let combined: [[f64; 3]; 3] =
        std::array::from_fn(|i| std::array::from_fn(|j| a.position_covariance_m2[i][j] + b.position_covariance_m2[i][j]));
    let factor = cholesky(&combined);
    let miss: [f64; 3] = std::array::from_fn(|i| miss_x * PLANE_X[i] + miss_z * PLANE_Z[i]);
    let mut generator = SplitMix64(0x5DAC_0117_5104);
    let samples = 1_000_000u32;
    let mut hits = 0u32;
    for _ in 0..samples {
        let (n0, n1) = generator.normal_pair();
        let (n2, _) = generator.normal_pair();
        let normals = [n0, n1, n2];
        let error: [f64; 3] = std::array::from_fn(|i| (0..3).map(|k| factor[i][k] * normals[k]).sum());
        let relative: [f64; 3] = std::array::from_fn(|i| miss[i] + error[i]);
        let along: f64 = (0..3).map(|i| relative[i] * ALONG_V[i]).sum();
        let across_squared: f64 = (0..3).map(|i| (relative[i] - along * ALONG_V[i]).powi(2)).sum();
        if across_squared < radius * radius {
            hits += 1;
        }
    }
    let estimate = f64::from(hits) / f64::from(samples);
    let standard_error = (foster * (1.0 - foster) / f64::from(samples)).sqrt();
    eprintln!("Foster {foster:.6e}, Monte Carlo {estimate:.6e} +- {standard_error:.1e}");
    assert!(foster > 0.01 && foster < 0.2, "a Pc the samples can resolve: {foster}");
    assert!((estimate - foster).abs() <= 4.0 * standard_error, "Foster {foster:e}, Monte Carlo {estimate:e} +- {standard_error:e}");
}
