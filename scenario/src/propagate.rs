//! Two-body motion by numerical integration (classic fourth-order Runge-Kutta).
//!
//! This is the reference's propagator, deliberately independent of the production correlator's
//! analytic Kepler solution: it only evaluates Newton's law `a = -mu r / |r|^3` and takes small
//! steps. The step is at most 1 s and at most 1% of the local dynamical time scales `|r|/|v|` and
//! `sqrt(|r|^3 / mu)`, so it shrinks where the motion is fast or strongly curved (near the perigee
//! of eccentric or hyperbolic orbits). For any valid observation (|r| >= 6378 km, |v| <= 20 km/s)
//! those scales exceed 300 s, so the step is 1 s and the local error of a step is below 1e-8 km.
//!
//! Only `+ - * /` and `sqrt` are used: all are correctly rounded in IEEE 754, so results are the
//! same bit for bit on every machine.

/// Earth's gravitational parameter, km^3/s^2 (the value SEMANTICS.md fixes).
pub const MU_KM3_S2: f64 = 398_600.441_8;

/// The largest integration step, in seconds.
pub const MAX_STEP_S: f64 = 1.0;

/// The step as a fraction of the local time scales.
const STEP_FRACTION: f64 = 0.01;

/// Small 3-vector helpers, written out so the arithmetic is plain to read.
pub mod vec3 {
    pub type Vec3 = [f64; 3];

    pub fn add(a: Vec3, b: Vec3) -> Vec3 {
        [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
    }
    pub fn sub(a: Vec3, b: Vec3) -> Vec3 {
        [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
    }
    pub fn scale(a: Vec3, k: f64) -> Vec3 {
        [a[0] * k, a[1] * k, a[2] * k]
    }
    /// `a + k b`.
    pub fn add_scaled(a: Vec3, b: Vec3, k: f64) -> Vec3 {
        [a[0] + k * b[0], a[1] + k * b[1], a[2] + k * b[2]]
    }
    pub fn dot(a: Vec3, b: Vec3) -> f64 {
        a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
    }
    pub fn cross(a: Vec3, b: Vec3) -> Vec3 {
        [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
    }
    pub fn norm(a: Vec3) -> f64 {
        dot(a, a).sqrt()
    }
    pub fn unit(a: Vec3) -> Vec3 {
        scale(a, 1.0 / norm(a))
    }
}

use vec3::Vec3;

/// Position (km) and velocity (km/s) in the Earth-centred inertial frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct State {
    pub position_km: Vec3,
    pub velocity_km_s: Vec3,
}

impl State {
    pub fn new(position_km: Vec3, velocity_km_s: Vec3) -> Self {
        State { position_km, velocity_km_s }
    }
}

/// Two-body gravitational acceleration at `r`, km/s^2.
pub fn gravity(r: Vec3) -> Vec3 {
    let r2 = vec3::dot(r, r);
    let r3 = r2 * r2.sqrt();
    vec3::scale(r, -MU_KM3_S2 / r3)
}

/// One classic RK4 step of `h` seconds (negative `h` integrates backwards).
pub fn rk4_step(state: &State, h: f64) -> State {
    let (r, v) = (state.position_km, state.velocity_km_s);
    let k1_r = v;
    let k1_v = gravity(r);
    let k2_r = vec3::add_scaled(v, k1_v, h / 2.0);
    let k2_v = gravity(vec3::add_scaled(r, k1_r, h / 2.0));
    let k3_r = vec3::add_scaled(v, k2_v, h / 2.0);
    let k3_v = gravity(vec3::add_scaled(r, k2_r, h / 2.0));
    let k4_r = vec3::add_scaled(v, k3_v, h);
    let k4_v = gravity(vec3::add_scaled(r, k3_r, h));
    let combine = |a: Vec3, b: Vec3, c: Vec3, d: Vec3| -> Vec3 {
        [
            (a[0] + 2.0 * b[0] + 2.0 * c[0] + d[0]) * (h / 6.0),
            (a[1] + 2.0 * b[1] + 2.0 * c[1] + d[1]) * (h / 6.0),
            (a[2] + 2.0 * b[2] + 2.0 * c[2] + d[2]) * (h / 6.0),
        ]
    };
    State { position_km: vec3::add(r, combine(k1_r, k2_r, k3_r, k4_r)), velocity_km_s: vec3::add(v, combine(k1_v, k2_v, k3_v, k4_v)) }
}

/// The largest step allowed from `state`: 1 s, or 1% of `|r|/|v|` or of `sqrt(|r|^3/mu)` if smaller.
pub fn max_step_s(state: &State) -> f64 {
    let r = vec3::norm(state.position_km);
    let v = vec3::norm(state.velocity_km_s);
    let crossing_time = if v > 0.0 { r / v } else { f64::INFINITY };
    let orbital_time = (r * r * r / MU_KM3_S2).sqrt();
    MAX_STEP_S.min(STEP_FRACTION * crossing_time).min(STEP_FRACTION * orbital_time)
}

/// The state `dt_s` seconds later (earlier if negative), in steps no longer than `max_step_s`.
pub fn propagate(state: &State, dt_s: f64) -> State {
    let mut current = *state;
    let mut remaining = dt_s;
    loop {
        let limit = max_step_s(&current);
        if remaining.abs() <= limit {
            if remaining != 0.0 {
                current = rk4_step(&current, remaining);
            }
            return current;
        }
        let step = limit.copysign(remaining);
        current = rk4_step(&current, step);
        remaining -= step;
    }
}

/// Specific orbital energy `v^2/2 - mu/r`, km^2/s^2 (negative for bound orbits).
pub fn specific_energy(state: &State) -> f64 {
    vec3::dot(state.velocity_km_s, state.velocity_km_s) / 2.0 - MU_KM3_S2 / vec3::norm(state.position_km)
}

/// Specific angular momentum `r x v`, km^2/s.
pub fn angular_momentum(state: &State) -> Vec3 {
    vec3::cross(state.position_km, state.velocity_km_s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn circular_leo() -> (State, f64) {
        let r = 6878.137;
        let speed = (MU_KM3_S2 / r).sqrt();
        // Inclined 51.6 degrees so no component is trivially zero.
        let (sin_i, cos_i) = 51.6f64.to_radians().sin_cos();
        let period = 2.0 * std::f64::consts::PI * (r * r * r / MU_KM3_S2).sqrt();
        (State::new([r, 0.0, 0.0], [0.0, speed * cos_i, speed * sin_i]), period)
    }

    /// Perigee state of an orbit with perigee radius `rp` and eccentricity `e` (hyperbolic if > 1).
    fn at_perigee(rp: f64, e: f64) -> State {
        let speed = (MU_KM3_S2 * (1.0 + e) / rp).sqrt();
        State::new([0.0, rp, 0.0], [-speed * 0.6, 0.0, speed * 0.8])
    }

    fn relative_drift(a: f64, b: f64) -> f64 {
        ((a - b) / b).abs()
    }

    fn assert_conserves(state: State, span_s: f64, label: &str) {
        let energy = specific_energy(&state);
        let momentum = angular_momentum(&state);
        // A window's worth of 1 s steps, both ways, as the reference uses them.
        for direction in [1.0, -1.0] {
            let mut current = state;
            let mut t = 0.0;
            while t < span_s {
                current = propagate(&current, direction);
                t += 1.0;
            }
            let drift_energy = relative_drift(specific_energy(&current), energy);
            let drift_momentum = vec3::norm(vec3::sub(angular_momentum(&current), momentum)) / vec3::norm(momentum);
            assert!(drift_energy < 1e-9, "{label}: energy drifted by {drift_energy:e} over {span_s} s");
            assert!(drift_momentum < 1e-9, "{label}: angular momentum drifted by {drift_momentum:e}");
        }
    }

    #[test]
    fn conserves_energy_and_angular_momentum_over_windows() {
        assert_conserves(circular_leo().0, 3600.0, "circular LEO, one hour");
        // Molniya-like perigee: rp = 6916 km, e = 0.74, about 10 km/s.
        assert_conserves(at_perigee(6916.0, 0.74), 600.0, "Molniya perigee pass");
        // GTO perigee at the 200 km floor.
        assert_conserves(at_perigee(6578.0, 0.73), 600.0, "GTO perigee pass");
    }

    #[test]
    fn hyperbolic_flyby_conserves_energy() {
        // e = 3 at 6578 km: |v| = 15.6 km/s, escape with v_inf = 11 km/s.
        let state = at_perigee(6578.0, 3.0);
        assert!(specific_energy(&state) > 0.0);
        assert_conserves(state, 600.0, "hyperbolic flyby");
        // The fastest valid observation: 20 km/s at the Earth's surface.
        let fastest = State::new([6378.137, 0.0, 0.0], [0.0, 20.0, 0.0]);
        assert_conserves(fastest, 300.0, "20 km/s at the surface");
    }

    #[test]
    fn circular_orbit_returns_to_its_start_after_one_period() {
        let (start, period) = circular_leo();
        let end = propagate(&start, period);
        let error_km = vec3::norm(vec3::sub(end.position_km, start.position_km));
        assert!(error_km < 1e-3, "returned {error_km} km away after one period");
        let back = propagate(&end, -period);
        let error_km = vec3::norm(vec3::sub(back.position_km, start.position_km));
        assert!(error_km < 1e-3, "backwards: {error_km} km away");
    }

    #[test]
    fn circular_orbit_stays_on_its_circle() {
        let (start, period) = circular_leo();
        let quarter = propagate(&start, period / 4.0);
        // A quarter period later the object sits on the orbit's second axis (velocity direction).
        let expected = vec3::scale(vec3::unit(start.velocity_km_s), vec3::norm(start.position_km));
        let error_km = vec3::norm(vec3::sub(quarter.position_km, expected));
        assert!(error_km < 1e-3, "quarter orbit off by {error_km} km");
    }

    #[test]
    fn forward_then_backward_returns_to_the_start() {
        let state = at_perigee(6916.0, 0.74);
        let back = propagate(&propagate(&state, 59.937), -59.937);
        let error_km = vec3::norm(vec3::sub(back.position_km, state.position_km));
        assert!(error_km < 1e-8, "round trip off by {error_km} km");
    }

    #[test]
    fn step_shrinks_for_fast_close_motion() {
        let slow = State::new([42164.0, 0.0, 0.0], [0.0, 3.07, 0.0]);
        assert_eq!(max_step_s(&slow), MAX_STEP_S);
        // A (non-physical) state deep inside the Earth moving fast gets a much smaller step.
        let deep = State::new([100.0, 0.0, 0.0], [0.0, 20.0, 0.0]);
        assert!(max_step_s(&deep) < 0.06);
    }
}
