//! Orbits of the generated objects: random orbits per regime, planted conjunctions and formations.

use super::kepler::{self, Elements};
use super::rng::Rng;
use crate::propagate::{State, vec3};
use serde::{Deserialize, Serialize};

/// The Earth's equatorial radius, km.
const EARTH_RADIUS_KM: f64 = 6378.137;
/// No generated orbit comes lower than this (200 km altitude), so every position is valid.
pub const MIN_PERIGEE_KM: f64 = 6578.0;
/// Geostationary radius, km.
const GEO_RADIUS_KM: f64 = 42_164.17;

/// Orbit families, with the fractions of background objects drawn from each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Regime {
    /// Low Earth orbit: perigee altitude 300-1200 km, mostly near-circular.
    Leo,
    /// Medium Earth orbit: GNSS-like, a = 25500-29700 km.
    Meo,
    /// Geostationary belt.
    Geo,
    /// Highly eccentric: Molniya-like and geostationary transfer orbits.
    Heo,
}

/// Where an object is and how it moves: its state at one epoch, moved by Kepler's laws.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Truth {
    pub epoch_ms: i64,
    pub state: State,
}

impl Truth {
    pub fn at(&self, time_ms: i64) -> State {
        kepler::propagate_kepler(&self.state, (time_ms - self.epoch_ms) as f64 / 1000.0)
    }
}

fn degrees(value: f64) -> f64 {
    value.to_radians()
}

/// Random elements of a regime, perigee always at least `MIN_PERIGEE_KM`.
pub fn random_elements(regime: Regime, rng: &mut Rng) -> Elements {
    // (semi-major axis km, eccentricity, inclination degrees, argument of perigee radians)
    let (a, e, i, arg_perigee) = match regime {
        Regime::Leo => {
            let perigee = EARTH_RADIUS_KM + rng.uniform(300.0, 1200.0);
            let e = if rng.chance(0.7) { rng.uniform(0.0, 0.002) } else { rng.uniform(0.002, 0.03) };
            // Common LEO inclinations: sun-synchronous, ISS-like, mega-constellation shells, other.
            let i = match rng.index(5) {
                0 | 1 => rng.uniform(96.5, 99.0),
                2 => rng.uniform(51.0, 52.0),
                3 => rng.uniform(52.5, 53.5),
                _ => rng.uniform(0.0, 110.0),
            };
            (perigee / (1.0 - e), e, i, rng.angle())
        }
        Regime::Meo => (rng.uniform(25_500.0, 29_700.0), rng.uniform(0.0, 0.01), rng.uniform(50.0, 66.0), rng.angle()),
        Regime::Geo => (GEO_RADIUS_KM + rng.uniform(-30.0, 30.0), rng.uniform(0.0, 0.0008), rng.uniform(0.0, 3.0), rng.angle()),
        Regime::Heo => {
            if rng.chance(0.5) {
                // Molniya: 12 h, critical inclination, apogee over the northern hemisphere.
                (rng.uniform(26_460.0, 26_660.0), rng.uniform(0.70, 0.74), rng.uniform(62.9, 63.9), degrees(rng.uniform(265.0, 275.0)))
            } else {
                // Geostationary transfer orbit.
                let perigee = EARTH_RADIUS_KM + rng.uniform(250.0, 600.0);
                let apogee = GEO_RADIUS_KM + rng.uniform(-200.0, 200.0);
                ((perigee + apogee) / 2.0, (apogee - perigee) / (apogee + perigee), rng.uniform(0.0, 28.5), rng.angle())
            }
        }
    };
    Elements { semi_major_axis_km: a, eccentricity: e, inclination: degrees(i), raan: rng.angle(), arg_perigee, true_anomaly: rng.angle() }
}

/// A random object of `regime` whose state is given at `epoch_ms`.
pub fn random_object(regime: Regime, epoch_ms: i64, rng: &mut Rng) -> Truth {
    Truth { epoch_ms, state: kepler::state_from_elements(&random_elements(regime, rng)) }
}

/// Rodrigues' rotation of `v` by `angle` about the unit vector `axis`.
fn rotate(v: [f64; 3], axis: [f64; 3], angle: f64) -> [f64; 3] {
    let (sin, cos) = (libm::sin(angle), libm::cos(angle));
    let along = vec3::scale(axis, vec3::dot(axis, v) * (1.0 - cos));
    vec3::add(vec3::add(vec3::scale(v, cos), vec3::scale(vec3::cross(axis, v), sin)), along)
}

/// Two objects built to pass `miss_km` apart at `tca_ms`.
pub struct PlantedPair {
    pub first: Truth,
    pub second: Truth,
    pub crossing_angle_deg: f64,
    pub relative_speed_km_s: f64,
}

/// A LEO object, and a second one at `tca_ms` sitting `miss_km` from it, perpendicular to the
/// relative velocity (so `tca_ms` is the time of closest approach), with the same speed turned by
/// 20-170 degrees about the radial direction: a crossing at a similar altitude.
pub fn plant_conjunction(tca_ms: i64, miss_km: f64, reference_epoch_ms: i64, rng: &mut Rng) -> PlantedPair {
    loop {
        let first = random_object(Regime::Leo, reference_epoch_ms, rng);
        let at_tca = first.at(tca_ms);
        let radial = vec3::unit(at_tca.position_km);
        let angle = degrees(rng.uniform(20.0, 170.0));
        let velocity = rotate(at_tca.velocity_km_s, radial, angle);
        let relative = vec3::sub(velocity, at_tca.velocity_km_s);
        let along = vec3::unit(relative);
        // An orthonormal basis of the plane perpendicular to the relative velocity.
        let e1 = vec3::unit(vec3::sub(radial, vec3::scale(along, vec3::dot(radial, along))));
        let e2 = vec3::cross(along, e1);
        let phase = rng.angle();
        let offset = vec3::add(vec3::scale(e1, miss_km * libm::cos(phase)), vec3::scale(e2, miss_km * libm::sin(phase)));
        let second = State::new(vec3::add(at_tca.position_km, offset), velocity);
        if crate::propagate::specific_energy(&second) < 0.0 && kepler::perigee_radius_km(&second) >= MIN_PERIGEE_KM + 20.0 {
            let cos_angle = vec3::dot(at_tca.velocity_km_s, velocity) / (vec3::norm(velocity) * vec3::norm(at_tca.velocity_km_s));
            return PlantedPair {
                first,
                second: Truth { epoch_ms: tca_ms, state: second },
                crossing_angle_deg: libm::acos(cos_angle.clamp(-1.0, 1.0)).to_degrees(),
                relative_speed_km_s: vec3::norm(relative),
            };
        }
    }
}

/// Two objects flying in formation: a near-circular LEO leader and a follower offset by
/// `radial_km` (up) and `along_km` (ahead) at `epoch_ms`, with the Clohessy-Wiltshire velocity of
/// a pure along-track drift: the radial offset stays, the along-track one changes at
/// `-1.5 n radial_km` km/s, so the separation changes slowly and steadily.
pub fn plant_formation(radial_km: f64, along_km: f64, leader: Truth) -> Truth {
    let State { position_km: r, velocity_km_s: v } = leader.state;
    let x = vec3::unit(r);
    let z = vec3::unit(vec3::cross(r, v));
    let y = vec3::cross(z, x);
    let n = kepler::mean_motion(&leader.state);
    let position = vec3::add(r, vec3::add(vec3::scale(x, radial_km), vec3::scale(y, along_km)));
    // Inertial relative velocity = LVLH rate (0, -1.5 n x0, 0) + omega x rho, omega = n z.
    let velocity = vec3::add(v, vec3::add(vec3::scale(x, -n * along_km), vec3::scale(y, -0.5 * n * radial_km)));
    Truth { epoch_ms: leader.epoch_ms, state: State::new(position, velocity) }
}

/// A near-circular LEO formation leader.
pub fn formation_leader(epoch_ms: i64, rng: &mut Rng) -> Truth {
    let elements = Elements {
        semi_major_axis_km: EARTH_RADIUS_KM + rng.uniform(450.0, 900.0),
        eccentricity: rng.uniform(0.0, 0.0005),
        inclination: degrees(rng.uniform(40.0, 99.0)),
        raan: rng.angle(),
        arg_perigee: rng.angle(),
        true_anomaly: rng.angle(),
    };
    Truth { epoch_ms, state: kepler::state_from_elements(&elements) }
}
