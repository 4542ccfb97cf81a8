//! The generator's truth: closed-form Keplerian motion for bound orbits.
//!
//! The generator may use a different method from the reference (only the production plugins must
//! not share one with the reference), and using the analytic solution here makes every scenario a
//! cross-check of the reference's integrator. Trigonometry comes from `libm`, a pure-Rust libm, so
//! scenario files are byte-identical on every platform (the system libm may differ in the last bit).

use crate::propagate::{MU_KM3_S2, State, vec3};

/// Classical orbital elements (angles in radians).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Elements {
    pub semi_major_axis_km: f64,
    pub eccentricity: f64,
    pub inclination: f64,
    pub raan: f64,
    pub arg_perigee: f64,
    pub true_anomaly: f64,
}

/// The inertial state of an elliptic orbit at its true anomaly.
pub fn state_from_elements(elements: &Elements) -> State {
    let Elements { semi_major_axis_km: a, eccentricity: e, inclination: i, raan, arg_perigee, true_anomaly: nu } = *elements;
    let p = a * (1.0 - e * e);
    let (sin_nu, cos_nu) = (libm::sin(nu), libm::cos(nu));
    let r = p / (1.0 + e * cos_nu);
    let position_pf = [r * cos_nu, r * sin_nu, 0.0];
    let k = (MU_KM3_S2 / p).sqrt();
    let velocity_pf = [-k * sin_nu, k * (e + cos_nu), 0.0];
    // Perifocal to inertial: R3(-raan) R1(-i) R3(-arg_perigee).
    let (so, co) = (libm::sin(raan), libm::cos(raan));
    let (si, ci) = (libm::sin(i), libm::cos(i));
    let (sw, cw) = (libm::sin(arg_perigee), libm::cos(arg_perigee));
    let rotation = [
        [co * cw - so * sw * ci, -co * sw - so * cw * ci, so * si],
        [so * cw + co * sw * ci, -so * sw + co * cw * ci, -co * si],
        [sw * si, cw * si, ci],
    ];
    let rotate = |v: [f64; 3]| [vec3::dot(rotation[0], v), vec3::dot(rotation[1], v), vec3::dot(rotation[2], v)];
    State::new(rotate(position_pf), rotate(velocity_pf))
}

/// Perigee radius of the conic through `state` (any eccentricity), km.
pub fn perigee_radius_km(state: &State) -> f64 {
    let h = vec3::norm(crate::propagate::angular_momentum(state));
    let energy = crate::propagate::specific_energy(state);
    let p = h * h / MU_KM3_S2;
    let e = (1.0 + 2.0 * energy * h * h / (MU_KM3_S2 * MU_KM3_S2)).max(0.0).sqrt();
    p / (1.0 + e)
}

/// Mean motion of a bound orbit, rad/s.
pub fn mean_motion(state: &State) -> f64 {
    let alpha = -2.0 * crate::propagate::specific_energy(state) / MU_KM3_S2; // 1/a
    (MU_KM3_S2 * alpha * alpha * alpha).sqrt()
}

/// The state `dt_s` seconds later on the ellipse through `state` (f and g functions in the
/// eccentric-anomaly difference, Battin's form: no element singularities for circular or
/// equatorial orbits). Panics if the orbit is not bound.
pub fn propagate_kepler(state: &State, dt_s: f64) -> State {
    let r0 = state.position_km;
    let v0 = state.velocity_km_s;
    let r0_norm = vec3::norm(r0);
    let alpha = 2.0 / r0_norm - vec3::dot(v0, v0) / MU_KM3_S2; // 1/a
    assert!(alpha > 0.0, "the generator's Kepler propagation needs a bound orbit");
    let a = 1.0 / alpha;
    let sqrt_a = a.sqrt();
    let n = (MU_KM3_S2 * alpha * alpha * alpha).sqrt();
    let sigma0 = vec3::dot(r0, v0) / MU_KM3_S2.sqrt();
    let e_sin = sigma0 / sqrt_a; // e sin E0
    let e_cos = 1.0 - r0_norm * alpha; // e cos E0
    let mean = n * dt_s;
    // Solve  x - e_cos sin x + e_sin (1 - cos x) = mean  for x = E - E0. The left side is strictly
    // increasing and differs from x by at most 2e < 2: the root is in [mean - 2, mean + 2].
    let kepler = |x: f64| x - e_cos * libm::sin(x) + e_sin * (1.0 - libm::cos(x)) - mean;
    let (mut lo, mut hi) = (mean - 2.0, mean + 2.0);
    let mut x = mean;
    for _ in 0..200 {
        let f = kepler(x);
        if f > 0.0 {
            hi = x;
        } else {
            lo = x;
        }
        let slope = 1.0 - e_cos * libm::cos(x) + e_sin * libm::sin(x);
        let mut next = x - f / slope;
        if !(next > lo && next < hi) {
            next = (lo + hi) / 2.0; // Newton left the bracket: bisect instead
        }
        if (next - x).abs() <= 1e-15 * x.abs().max(1.0) {
            x = next;
            break;
        }
        x = next;
    }
    let (sin_x, cos_x) = (libm::sin(x), libm::cos(x));
    let r = a + (r0_norm - a) * cos_x + sigma0 * sqrt_a * sin_x;
    let f = 1.0 - a / r0_norm * (1.0 - cos_x);
    let g = dt_s - (a * a * a / MU_KM3_S2).sqrt() * (x - sin_x);
    let f_dot = -(MU_KM3_S2 * a).sqrt() / (r * r0_norm) * sin_x;
    let g_dot = 1.0 - a / r * (1.0 - cos_x);
    State::new(vec3::add(vec3::scale(r0, f), vec3::scale(v0, g)), vec3::add(vec3::scale(r0, f_dot), vec3::scale(v0, g_dot)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::propagate::{angular_momentum, propagate, specific_energy};

    fn molniya() -> State {
        state_from_elements(&Elements {
            semi_major_axis_km: 26_560.0,
            eccentricity: 0.74,
            inclination: 63.4f64.to_radians(),
            raan: 1.0,
            arg_perigee: 270f64.to_radians(),
            true_anomaly: -0.3,
        })
    }

    #[test]
    fn elements_give_the_expected_radius_and_energy() {
        let s = molniya();
        let a = -MU_KM3_S2 / (2.0 * specific_energy(&s));
        assert!((a - 26_560.0).abs() < 1e-6);
        assert!((perigee_radius_km(&s) - 26_560.0 * 0.26).abs() < 1e-6);
    }

    #[test]
    fn agrees_with_the_reference_integrator() {
        // Two independent methods: closed form and RK4. They must agree far below a millimetre.
        let leo = state_from_elements(&Elements {
            semi_major_axis_km: 6_900.0,
            eccentricity: 0.01,
            inclination: 1.7,
            raan: 0.3,
            arg_perigee: 2.0,
            true_anomaly: 4.0,
        });
        for (state, label) in [(leo, "LEO"), (molniya(), "Molniya near perigee")] {
            for dt in [-60.0, 0.4, 59.999, 600.0, -3600.0] {
                let analytic = propagate_kepler(&state, dt);
                let numeric = propagate(&state, dt);
                let error = vec3::norm(vec3::sub(analytic.position_km, numeric.position_km));
                assert!(error < 1e-6, "{label}, dt {dt}: {error} km apart");
                let verror = vec3::norm(vec3::sub(analytic.velocity_km_s, numeric.velocity_km_s));
                assert!(verror < 1e-9, "{label}, dt {dt}: velocity {verror} km/s apart");
            }
        }
    }

    #[test]
    fn conserves_the_integrals_over_many_revolutions() {
        let s = molniya();
        let later = propagate_kepler(&s, 5.0 * 86_400.0);
        assert!(((specific_energy(&later) - specific_energy(&s)) / specific_energy(&s)).abs() < 1e-12);
        let dh = vec3::norm(vec3::sub(angular_momentum(&later), angular_momentum(&s)));
        assert!(dh / vec3::norm(angular_momentum(&s)) < 1e-12);
    }
}
