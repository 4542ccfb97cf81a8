//! Inputs at the edges: refused ones (each error names its problem) and the limits where the Pc is known exactly.

mod common;

use collision_probability::{ObjectAtTca, PcError, pc_chan, pc_foster};
use common::conjunction;

type PcFunction = fn(&ObjectAtTca, &ObjectAtTca, f64) -> Result<f64, PcError>;
const METHODS: [(&str, PcFunction); 2] = [("Foster", pc_foster), ("Chan", pc_chan)];

#[test]
fn zero_relative_velocity_is_refused() {
    let (a, mut b) = conjunction(100.0, 50.0, 0.3, 100.0, 10.0, 5.0);
    b.velocity_km_s = a.velocity_km_s;
    for (name, pc) in METHODS {
        let error = pc(&a, &b, 10.0).unwrap_err();
        assert!(matches!(error, PcError::ZeroRelativeVelocity { .. }), "{name}: {error}");
        assert!(error.to_string().contains("zero relative velocity"), "{error}");
    }
}

#[test]
fn a_covariance_not_positive_definite_in_the_plane_is_refused() {
    // Zero covariance; a covariance that is flat across the plane (its minor axis zero); one with a negative
    // variance. Each is refused by name rather than given a Pc.
    let (a, b) = conjunction(100.0, 0.0, 0.3, 100.0, 10.0, 5.0);
    let zero = ObjectAtTca { position_covariance_m2: [[0.0; 3]; 3], ..a };
    let mut negative = b;
    negative.position_covariance_m2[0][0] = -1e6;
    for (name, pc) in METHODS {
        for (what, first, second) in
            [("zero", zero, ObjectAtTca { position_covariance_m2: [[0.0; 3]; 3], ..b }), ("flat", a, b), ("negative", a, negative)]
        {
            let error = pc(&first, &second, 10.0).unwrap_err();
            assert!(matches!(error, PcError::NotPositiveDefinite { .. }), "{name}, {what}: {error}");
            assert!(error.to_string().contains("not positive definite in the encounter plane"), "{error}");
        }
    }
}

#[test]
fn non_finite_inputs_are_refused_by_name() {
    let (a, mut b) = conjunction(100.0, 50.0, 0.3, 100.0, 10.0, 5.0);
    b.position_covariance_m2[2][1] = f64::NAN;
    let error = pc_foster(&a, &b, 10.0).unwrap_err();
    assert_eq!(error, PcError::NonFinite { what: "the second object's covariance" });
    assert_eq!(error.to_string(), "non-finite input: the second object's covariance is NaN or infinite");
    let (a, b) = conjunction(100.0, 50.0, 0.3, 100.0, 10.0, 5.0);
    assert_eq!(pc_chan(&a, &b, f64::INFINITY), Err(PcError::NonFinite { what: "the hard-body radius" }));
    assert_eq!(pc_foster(&a, &b, -1.0), Err(PcError::NegativeHardBodyRadius { hard_body_radius_m: -1.0 }));
}

#[test]
fn a_zero_radius_has_zero_probability() {
    let (a, b) = conjunction(100.0, 50.0, 0.3, 100.0, 0.0, 0.0);
    for (name, pc) in METHODS {
        assert_eq!(pc(&a, &b, 0.0), Ok(0.0), "{name}");
    }
}

#[test]
fn a_head_on_hit_with_tiny_uncertainty_is_certain() {
    // Miss 0, sigmas of 1 mm and 0.5 mm, radius 10 m: the whole Gaussian is inside the circle.
    let (a, b) = conjunction(1e-3, 5e-4, 0.7, 1e-3, 0.0, 0.0);
    for (name, pc) in METHODS {
        let pc = pc(&a, &b, 10.0).unwrap();
        assert!((pc - 1.0).abs() < 1e-12, "{name}: {pc}");
    }
}

#[test]
fn a_circle_much_larger_than_the_ellipse() {
    // Radius 5 km, sigmas 3 m and 0.2 m. A miss 30 sigma inside the edge is a certain hit.
    let inside = conjunction(3.0, 0.2, 0.0, 50.0, 4000.0, 0.0);
    let pc = pc_foster(&inside.0, &inside.1, 5000.0).unwrap();
    assert!((pc - 1.0).abs() < 1e-12, "{pc}");
    // With the centre 5001 m along the minor axis, the edge is 1 m = 5 sigma_minor away at x = 0 and bends away as
    // 1 + x^2 / (2 R): Pc = E[Q(5 + x^2 / (2 R sigma_minor))] over x ~ N(0, 3^2). To first order in the bend,
    // Q(5 + d) = Q(5) e^(-h d) with h = phi(5) / Q(5), so Pc = Q(5) / sqrt(1 + h sigma_major^2 / (R sigma_minor)).
    // The bend lowers the Pc by 2.3 %, which this resolves: the next order is about 1e-5 here.
    let outside = conjunction(3.0, 0.2, 0.0, 50.0, 0.0, 5001.0);
    let pc = pc_foster(&outside.0, &outside.1, 5000.0).unwrap();
    let (tail, density): (f64, f64) = (2.866_515_718_791_939e-7, 1.486_719_514_734_297_7e-6);
    let expected = tail / (1.0 + density / tail * 9.0 / (5000.0 * 0.2)).sqrt();
    assert!((pc / expected - 1.0).abs() < 1e-4, "{pc:e} vs {expected:e}");
}

#[test]
fn a_circle_much_smaller_than_the_ellipse_is_its_area_times_the_density() {
    // R / sigma_minor = 1e-4: Pc = pi R^2 f(centre) to within (R / sigma)^2.
    let (sigma_major, sigma_minor, radius) = (800.0, 200.0, 0.02);
    let (cx, cz) = (1.5 * sigma_major, -0.5 * sigma_minor);
    let (a, b) = conjunction(sigma_major, sigma_minor, 0.0, 100.0, cx, cz);
    let density =
        (-0.5 * ((cx / sigma_major).powi(2) + (cz / sigma_minor).powi(2))).exp() / (std::f64::consts::TAU * sigma_major * sigma_minor);
    let expected = std::f64::consts::PI * radius * radius * density;
    for (name, pc) in METHODS {
        let pc = pc(&a, &b, radius).unwrap();
        assert!((pc / expected - 1.0).abs() < 1e-8, "{name}: {pc:e} vs {expected:e}");
    }
}

#[test]
fn far_in_the_tail_foster_keeps_its_relative_accuracy() {
    // Circular covariance, where Chan's series is exact: a circle 20 and 30 sigma away (Pc ~ 1e-88 and 1e-196).
    for distance_sigmas in [20.0, 30.0] {
        let (a, b) = conjunction(100.0, 100.0, 0.0, 100.0, distance_sigmas * 100.0, 0.0);
        let foster = pc_foster(&a, &b, 100.0).unwrap();
        let chan = pc_chan(&a, &b, 100.0).unwrap();
        assert!(foster > 0.0 && (foster / chan - 1.0).abs() < 1e-8, "{distance_sigmas} sigma: Foster {foster:e}, Chan {chan:e}");
    }
}
