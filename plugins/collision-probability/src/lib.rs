//! The 2D probability of collision (Pc) of a conjunction at its time of closest approach, and default covariances.
//!
//! Two methods over the same encounter plane (README.md gives the exact rules): [`pc_foster`], the numerical integral
//! the alerts report, and [`pc_chan`], Chan's series, an independent cross-check. [`position_covariance_inertial`]
//! turns an RTN covariance (as a CDM carries it) into the inertial one the methods take, and [`DefaultSigmas`] gives
//! configured covariances by orbit [`Regime`] for objects whose orbit determination comes without one.

mod chan;
mod encounter;
mod foster;
mod frames;
mod regime;
mod sigmas;

pub use chan::pc_chan;
pub use foster::pc_foster;
pub use frames::{position_covariance_inertial, rtn_basis};
pub use regime::{Regime, regime};
pub use sigmas::{DefaultSigmas, RtnSigmas};

/// One object at TCA: state (km, km/s, in an Earth-centred inertial frame) and its 3x3 position covariance in the
/// same inertial frame, m^2.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ObjectAtTca {
    pub position_km: [f64; 3],
    pub velocity_km_s: [f64; 3],
    pub position_covariance_m2: [[f64; 3]; 3],
}

/// Why a Pc could not be computed. Each names the problem in the input, never a partial result.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum PcError {
    /// A position, velocity, covariance element or the hard-body radius is NaN or infinite.
    #[error("non-finite input: {what} is NaN or infinite")]
    NonFinite { what: &'static str },
    /// The hard-body radius is negative.
    #[error("the hard-body radius must be >= 0 m, got {hard_body_radius_m} m")]
    NegativeHardBodyRadius { hard_body_radius_m: f64 },
    /// The objects do not move relative to each other (below 1e-9 m/s): there is no encounter plane.
    #[error("zero relative velocity ({relative_speed_m_s} m/s): the encounter plane is undefined and the 2D Pc does not apply")]
    ZeroRelativeVelocity { relative_speed_m_s: f64 },
    /// The combined covariance projected into the encounter plane has an eigenvalue <= 0, or one below 1e-12 times
    /// the other (an axis ratio above 1e6, where the smaller axis is lost in rounding).
    #[error(
        "combined position covariance is not positive definite in the encounter plane \
         (eigenvalues {major_m2:e} m^2 and {minor_m2:e} m^2)"
    )]
    NotPositiveDefinite { major_m2: f64, minor_m2: f64 },
}
