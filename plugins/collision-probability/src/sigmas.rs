//! Default 1-sigma uncertainties in RTN by orbit regime, for objects whose orbit determination gives no covariance.

use crate::regime::{Regime, regime};
use sda_records::Covariance6;
use serde::{Deserialize, Serialize};

/// 1-sigma uncertainties in RTN: position in metres, velocity in m/s. Every field is required when read.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RtnSigmas {
    pub radial_m: f64,
    pub transverse_m: f64,
    pub normal_m: f64,
    pub radial_rate_m_s: f64,
    pub transverse_rate_m_s: f64,
    pub normal_rate_m_s: f64,
}

impl RtnSigmas {
    /// The diagonal 6x6 RTN covariance of these sigmas (variances m^2 and m^2/s^2, no correlations).
    pub fn covariance(&self) -> Covariance6 {
        let sigmas =
            [self.radial_m, self.transverse_m, self.normal_m, self.radial_rate_m_s, self.transverse_rate_m_s, self.normal_rate_m_s];
        let mut m = [[0.0; 6]; 6];
        for (i, sigma) in sigmas.iter().enumerate() {
            m[i][i] = sigma * sigma;
        }
        Covariance6::from_matrix(&m)
    }

    /// Every sigma finite and > 0; the message names the field as `{what}.{field}` (e.g. `default_sigmas.leo`).
    pub fn check(&self, what: &str) -> Result<(), String> {
        let fields = [
            ("radial_m", self.radial_m),
            ("transverse_m", self.transverse_m),
            ("normal_m", self.normal_m),
            ("radial_rate_m_s", self.radial_rate_m_s),
            ("transverse_rate_m_s", self.transverse_rate_m_s),
            ("normal_rate_m_s", self.normal_rate_m_s),
        ];
        match fields.iter().find(|(_, sigma)| !(sigma.is_finite() && *sigma > 0.0)) {
            Some((field, sigma)) => Err(format!("{what}.{field} must be a finite number > 0, got {sigma}")),
            None => Ok(()),
        }
    }
}

/// Configured default uncertainties by regime ([`regime`]'s rule). A regime left out of the configuration keeps
/// its default below.
///
/// The defaults are of the order of general-perturbations (TLE/SGP4) accuracy near epoch: radial and normal a few
/// hundred metres at most, transverse (along-track) five times larger, growing with altitude. The rates are the
/// mean motion n times the position sigma they couple with (radial rate ~ n * transverse, transverse and normal
/// rates ~ n * radial and normal), rounded. They are placeholders: an operations team must set them from its own
/// orbit-determination statistics (residuals against precise ephemerides), per regime and per propagation age.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DefaultSigmas {
    /// Default R 100 m, T 500 m, N 100 m; rates 0.55, 0.11, 0.11 m/s (n ~ 1.1e-3 rad/s).
    pub leo: RtnSigmas,
    /// Default R 500 m, T 2,000 m, N 500 m; rates 0.3, 0.075, 0.075 m/s (n ~ 1.5e-4 rad/s, GNSS altitudes).
    pub meo: RtnSigmas,
    /// Default R 1,000 m, T 5,000 m, N 1,000 m; rates 0.4, 0.08, 0.08 m/s (n ~ 7.3e-5 rad/s).
    pub geo: RtnSigmas,
    /// Default R 2,000 m, T 10,000 m, N 2,000 m; rates 1.5, 0.3, 0.3 m/s (Molniya mean motion, n ~ 1.5e-4 rad/s).
    pub heo: RtnSigmas,
}

impl Default for DefaultSigmas {
    fn default() -> Self {
        let sigmas = |radial_m, transverse_m, normal_m, radial_rate_m_s, transverse_rate_m_s, normal_rate_m_s| RtnSigmas {
            radial_m,
            transverse_m,
            normal_m,
            radial_rate_m_s,
            transverse_rate_m_s,
            normal_rate_m_s,
        };
        DefaultSigmas {
            leo: sigmas(100.0, 500.0, 100.0, 0.55, 0.11, 0.11),
            meo: sigmas(500.0, 2000.0, 500.0, 0.3, 0.075, 0.075),
            geo: sigmas(1000.0, 5000.0, 1000.0, 0.4, 0.08, 0.08),
            heo: sigmas(2000.0, 10_000.0, 2000.0, 1.5, 0.3, 0.3),
        }
    }
}

impl DefaultSigmas {
    /// The sigmas of the regime of a state (km, km/s, Earth-centred inertial).
    pub fn for_state(&self, position_km: [f64; 3], velocity_km_s: [f64; 3]) -> &RtnSigmas {
        match regime(position_km, velocity_km_s) {
            Regime::Leo => &self.leo,
            Regime::Meo => &self.meo,
            Regime::Geo => &self.geo,
            Regime::Heo => &self.heo,
        }
    }

    /// Every regime's sigmas checked, named `{what}.leo` and so on.
    pub fn check(&self, what: &str) -> Result<(), String> {
        self.leo.check(&format!("{what}.leo"))?;
        self.meo.check(&format!("{what}.meo"))?;
        self.geo.check(&format!("{what}.geo"))?;
        self.heo.check(&format!("{what}.heo"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_regime_left_out_keeps_its_default_and_an_unknown_field_is_refused() {
        let text =
            r#"{"geo":{"radial_m":1,"transverse_m":2,"normal_m":3,"radial_rate_m_s":0.1,"transverse_rate_m_s":0.2,"normal_rate_m_s":0.3}}"#;
        let read: DefaultSigmas = serde_json::from_str(text).unwrap();
        assert_eq!(read.leo, DefaultSigmas::default().leo);
        assert_eq!(read.geo.normal_m, 3.0);
        assert!(serde_json::from_str::<DefaultSigmas>(r#"{"low_earth":{}}"#).is_err(), "unknown regime");
        let extra = text.replace("\"normal_m\":3", "\"normal_m\":3,\"along_m\":4");
        assert!(serde_json::from_str::<DefaultSigmas>(&extra).unwrap_err().to_string().contains("along_m"));
        let missing = text.replace(",\"normal_rate_m_s\":0.3", "");
        assert!(serde_json::from_str::<DefaultSigmas>(&missing).unwrap_err().to_string().contains("normal_rate_m_s"));
    }

    #[test]
    fn check_names_the_field() {
        let defaults = DefaultSigmas::default();
        assert_eq!(defaults.check("default_sigmas"), Ok(()));
        let mut bad = defaults;
        bad.meo.transverse_rate_m_s = 0.0;
        assert_eq!(bad.check("default_sigmas").unwrap_err(), "default_sigmas.meo.transverse_rate_m_s must be a finite number > 0, got 0");
        bad.meo.transverse_rate_m_s = f64::NAN;
        assert!(bad.check("x").unwrap_err().contains("x.meo.transverse_rate_m_s"));
    }

    #[test]
    fn covariance_is_diagonal_variances() {
        let c = DefaultSigmas::default().leo.covariance();
        assert_eq!((c.get(0, 0), c.get(1, 1), c.get(2, 2)), (1e4, 2.5e5, 1e4));
        assert!((c.get(3, 3) - 0.3025).abs() < 1e-15);
        assert_eq!(c.get(1, 0), 0.0);
    }

    #[test]
    fn for_state_picks_the_regime() {
        let defaults = DefaultSigmas::default();
        assert_eq!(defaults.for_state([7000.0, 0.0, 0.0], [0.0, 7.546, 0.0]).radial_m, 100.0);
        assert_eq!(defaults.for_state([42_164.0, 0.0, 0.0], [0.0, 3.0747, 0.0]).radial_m, 1000.0);
    }
}
