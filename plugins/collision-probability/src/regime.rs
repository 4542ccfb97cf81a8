//! The orbit regime of a state (LEO, MEO, GEO, HEO), from its two-body elements, to pick default uncertainties.

use crate::frames::{cross, dot, norm};
use serde::{Deserialize, Serialize};

/// Earth's gravitational parameter, km^3/s^2 (WGS-84 / EGM-96).
pub const MU_EARTH_KM3_S2: f64 = 398_600.441_8;
/// Earth's equatorial radius, km (WGS-84): altitudes are above it.
pub const EARTH_RADIUS_KM: f64 = 6378.137;
/// One sidereal day, s: the period of a geosynchronous orbit.
pub const SIDEREAL_DAY_S: f64 = 86_164.090_5;

/// Orbit regimes, by [`regime`]'s rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Regime {
    /// Near-circular (e < 0.25) with perigee altitude below 2,000 km.
    Leo,
    /// Near-circular, perigee at or above 2,000 km, period under 0.9 sidereal day.
    Meo,
    /// Near-circular, period within 10 % of a sidereal day.
    Geo,
    /// Everything else: highly eccentric (e >= 0.25: Molniya, GTO), near-circular beyond the GEO band (period above
    /// 1.1 sidereal day), or not bound (the energy is >= 0).
    Heo,
}

/// The regime of a state (km, km/s, Earth-centred inertial), from its osculating two-body elements with
/// `mu = 398600.4418 km^3/s^2`, in this order: not bound or e >= 0.25 -> `Heo`; perigee altitude < 2,000 km ->
/// `Leo`; period within [0.9, 1.1] sidereal days -> `Geo`; period < 0.9 sidereal day -> `Meo`; else `Heo`.
/// A zero position (no orbit) is `Heo`, the regime with the largest default uncertainties.
pub fn regime(position_km: [f64; 3], velocity_km_s: [f64; 3]) -> Regime {
    let r = norm(position_km);
    if r.is_nan() || r <= 0.0 {
        return Regime::Heo;
    }
    let speed_squared = dot(velocity_km_s, velocity_km_s);
    let specific_energy = 0.5 * speed_squared - MU_EARTH_KM3_S2 / r;
    if specific_energy.is_nan() || specific_energy >= 0.0 {
        return Regime::Heo;
    }
    let semi_major_axis = -MU_EARTH_KM3_S2 / (2.0 * specific_energy);
    let angular_momentum = norm(cross(position_km, velocity_km_s));
    // e^2 = 1 - h^2 / (mu a); clamped at 0 against rounding for circular orbits.
    let eccentricity = (1.0 - angular_momentum * angular_momentum / (MU_EARTH_KM3_S2 * semi_major_axis)).max(0.0).sqrt();
    if eccentricity >= 0.25 {
        return Regime::Heo;
    }
    let perigee_altitude = semi_major_axis * (1.0 - eccentricity) - EARTH_RADIUS_KM;
    if perigee_altitude < 2000.0 {
        return Regime::Leo;
    }
    let period = std::f64::consts::TAU * (semi_major_axis.powi(3) / MU_EARTH_KM3_S2).sqrt();
    let days = period / SIDEREAL_DAY_S;
    if (0.9..=1.1).contains(&days) {
        Regime::Geo
    } else if days < 0.9 {
        Regime::Meo
    } else {
        Regime::Heo
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn circular(radius_km: f64) -> ([f64; 3], [f64; 3]) {
        ([radius_km, 0.0, 0.0], [0.0, (MU_EARTH_KM3_S2 / radius_km).sqrt(), 0.0])
    }

    #[test]
    fn circular_orbits_by_altitude() {
        for (altitude, want) in [(400.0, Regime::Leo), (1999.0, Regime::Leo), (2001.0, Regime::Meo), (20_200.0, Regime::Meo)] {
            let (r, v) = circular(EARTH_RADIUS_KM + altitude);
            assert_eq!(regime(r, v), want, "{altitude} km");
        }
        let (r, v) = circular(42_164.0);
        assert_eq!(regime(r, v), Regime::Geo);
        let (r, v) = circular(60_000.0);
        assert_eq!(regime(r, v), Regime::Heo, "beyond the GEO band");
    }

    #[test]
    fn eccentric_and_unbound_orbits_are_heo() {
        // Molniya at perigee: rp = 6378 + 600 km, a = 26,600 km.
        let rp = EARTH_RADIUS_KM + 600.0;
        let a = 26_600.0;
        let speed = (MU_EARTH_KM3_S2 * (2.0 / rp - 1.0 / a)).sqrt();
        assert_eq!(regime([rp, 0.0, 0.0], [0.0, speed * 0.5, speed * 0.866_025_403_784_438_6]), Regime::Heo);
        let escape = (2.0 * MU_EARTH_KM3_S2 / 7000.0).sqrt();
        assert_eq!(regime([7000.0, 0.0, 0.0], [0.0, escape * 1.01, 0.0]), Regime::Heo);
        assert_eq!(regime([0.0; 3], [1.0, 0.0, 0.0]), Regime::Heo, "no orbit");
    }
}
