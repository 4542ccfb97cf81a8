//! SGP4 through the `sgp4` crate, as Vallado's SGP4 in its "improved" mode (opsmode 'i') with WGS-72 constants, its
//! errors named as Vallado names them.
//!
//! Why this mode: Vallado's verification ephemerides (`tcppver.out`, as python-sgp4 ships them) were printed in it, and
//! the operator reproduces them to 2e-7 km (`tests/vallado.rs`). The crate's AFSPC-compatible mode (AFSPC sidereal
//! time, the node kept in [0, 2pi) in the Lyddane terms) is 0.9 km away from them on satellite 23599 at 420 min.
//! Why WGS-72: element sets are fitted with WGS-72 SGP4; the crate's high-level `Constants::from_elements` takes
//! WGS-84, which the elements were not fitted with, so the operator builds the constants itself.
//!
//! Vallado's SGP4 (Revisiting Spacetrack Report #3, 2006) reports an error code; the crate reports its own variants,
//! and it does not check for decay (code 6), which [`Propagator::at_minutes`] adds.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::elements::ElementSet;

/// A position and velocity in TEME, km and km/s.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TemeState {
    pub position_km: [f64; 3],
    pub velocity_km_s: [f64; 3],
}

/// Why SGP4 cannot give a state, with the number of Vallado's error code it corresponds to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Sgp4Error {
    /// The epoch eccentricity is outside [0, 1) (Vallado's code 1, which his SGP4 reports at the first propagation).
    EpochEccentricityOutOfRange { eccentricity: f64 },
    /// The mean motion (as given, or once converted to Brouwer's) is not positive (code 2).
    NegativeMeanMotion,
    /// The mean eccentricity left [-0.001, 1) (code 1).
    MeanEccentricityOutOfRange { eccentricity: f64, minutes: f64 },
    /// The eccentricity after lunar-solar perturbations left [0, 1] (code 3).
    PerturbedEccentricityOutOfRange { eccentricity: f64, minutes: f64 },
    /// The semi-latus rectum became negative (code 4).
    NegativeSemiLatusRectum { minutes: f64 },
    /// The orbit radius fell below the Earth's radius: the object has decayed (code 6).
    Decayed { radius_km: f64, minutes: f64 },
}

impl Sgp4Error {
    /// The error code Vallado's SGP4 reports for the same condition.
    pub fn vallado_code(&self) -> u8 {
        match self {
            Sgp4Error::EpochEccentricityOutOfRange { .. } | Sgp4Error::MeanEccentricityOutOfRange { .. } => 1,
            Sgp4Error::NegativeMeanMotion => 2,
            Sgp4Error::PerturbedEccentricityOutOfRange { .. } => 3,
            Sgp4Error::NegativeSemiLatusRectum { .. } => 4,
            Sgp4Error::Decayed { .. } => 6,
        }
    }
}

impl fmt::Display for Sgp4Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = self.vallado_code();
        match self {
            Sgp4Error::EpochEccentricityOutOfRange { eccentricity } => {
                write!(f, "eccentricity {eccentricity} is out of range [0, 1) (Vallado's SGP4 error {code})")
            }
            Sgp4Error::NegativeMeanMotion => write!(f, "the mean motion is not positive (Vallado's SGP4 error {code})"),
            Sgp4Error::MeanEccentricityOutOfRange { eccentricity, minutes } => {
                write!(f, "mean eccentricity {eccentricity} left [-0.001, 1) {minutes} min from epoch (Vallado's SGP4 error {code})")
            }
            Sgp4Error::PerturbedEccentricityOutOfRange { eccentricity, minutes } => {
                write!(f, "perturbed eccentricity {eccentricity} left [0, 1] {minutes} min from epoch (Vallado's SGP4 error {code})")
            }
            Sgp4Error::NegativeSemiLatusRectum { minutes } => {
                write!(f, "the semi-latus rectum is negative {minutes} min from epoch (Vallado's SGP4 error {code})")
            }
            Sgp4Error::Decayed { radius_km, minutes } => write!(
                f,
                "decayed: the orbit radius is {radius_km} km, below the Earth's radius, {minutes} min from epoch \
                 (Vallado's SGP4 error {code})"
            ),
        }
    }
}

/// SGP4 initialised for one element set.
#[derive(Debug, Clone)]
pub struct Propagator {
    constants: sgp4::Constants,
    epoch_us: i64,
}

/// Microseconds in a day.
const DAY_US: i64 = 86_400_000_000;
/// Julian date of the Unix epoch, and of J2000 (2000-01-01T12:00): the crate takes epochs as years since J2000.
const UNIX_EPOCH_JD: f64 = 2_440_587.5;
const J2000_JD: f64 = 2_451_545.0;

impl Propagator {
    /// Initialises SGP4 (WGS-72, IAU-82 sidereal time as Vallado's `gstime`) for `set`.
    pub fn new(set: &ElementSet) -> Result<Propagator, Sgp4Error> {
        let radians = std::f64::consts::PI / 180.0;
        let orbit = sgp4::Orbit::from_kozai_elements(
            &sgp4::WGS72,
            set.inclination_deg * radians,
            set.ra_of_asc_node_deg * radians,
            set.eccentricity,
            set.arg_of_pericenter_deg * radians,
            set.mean_anomaly_deg * radians,
            // rev/day to rad/min.
            set.mean_motion_rev_per_day * (std::f64::consts::PI / 720.0),
        )
        .map_err(|_| Sgp4Error::NegativeMeanMotion)?;
        let constants = sgp4::Constants::new(
            sgp4::WGS72,
            sgp4::iau_epoch_to_sidereal_time,
            julian_years_since_j2000(set.epoch_us),
            set.bstar_per_earth_radius,
            orbit,
        )
        .map_err(|sgp4::OutOfRangeEpochEccentricity(eccentricity)| Sgp4Error::EpochEccentricityOutOfRange { eccentricity })?;
        Ok(Propagator { constants, epoch_us: set.epoch_us })
    }

    /// The state `minutes` after the epoch (before it if negative).
    pub fn at_minutes(&self, minutes: f64) -> Result<TemeState, Sgp4Error> {
        let prediction = self.constants.propagate(sgp4::MinutesSinceEpoch(minutes)).map_err(|e| match e {
            sgp4::Error::OutOfRangeEccentricity { eccentricity, t } => Sgp4Error::MeanEccentricityOutOfRange { eccentricity, minutes: t },
            sgp4::Error::OutOfRangePerturbedEccentricity { eccentricity, t } => {
                Sgp4Error::PerturbedEccentricityOutOfRange { eccentricity, minutes: t }
            }
            sgp4::Error::NegativeSemiLatusRectum { t } => Sgp4Error::NegativeSemiLatusRectum { minutes: t },
        })?;
        // Vallado's decay test is on the radius in Earth radii (`mrt < 1`); the position is that radius times the
        // model's Earth radius along a unit vector.
        let radius_km = norm(prediction.position);
        if radius_km < sgp4::WGS72.ae {
            return Err(Sgp4Error::Decayed { radius_km, minutes });
        }
        Ok(TemeState { position_km: prediction.position, velocity_km_s: prediction.velocity })
    }

    /// The state at Unix millisecond `t_ms`.
    pub fn at_unix_ms(&self, t_ms: i64) -> Result<TemeState, Sgp4Error> {
        // Exact in microseconds, then one rounding to minutes.
        let since_epoch_us = i128::from(t_ms) * 1000 - i128::from(self.epoch_us);
        self.at_minutes(since_epoch_us as f64 / 60_000_000.0)
    }
}

/// Years since J2000 as the crate takes them, from Unix microseconds, computed as Vallado's 2006 SGP4 (and the
/// crate's `Elements`) compute it: the epoch's Julian date in one f64, whose last bit is some 40 us at today's dates.
/// That rounding reaches the deep-space lunar-solar terms: an exact epoch moves the WIND case (23333) of the
/// verification set 4e-6 km away from `tcppver.out`. Minutes since the epoch are computed exactly, from microseconds.
fn julian_years_since_j2000(epoch_us: i64) -> f64 {
    let julian_date_at_midnight = epoch_us.div_euclid(DAY_US) as f64 + UNIX_EPOCH_JD;
    let fraction_of_day = epoch_us.rem_euclid(DAY_US) as f64 / DAY_US as f64;
    (julian_date_at_midnight + fraction_of_day - J2000_JD) / 365.25
}

pub fn norm(v: [f64; 3]) -> f64 {
    (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt()
}
