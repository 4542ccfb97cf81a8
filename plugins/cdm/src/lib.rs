//! The CDM operator: Alert v1 records in, one CCSDS Conjunction Data Message (CCSDS 508.0-B-1) per alert out.
//!
//! Output record: key = MESSAGE_ID, payload = the whole CDM (KVN or XML), event time = the alert's `tca_ms`. The
//! contract (configuration, field mapping, frames, accuracy, determinism) is `plugins/cdm/README.md`. Stateless:
//! the message depends on the alert and the configuration only (no clock is read), so a replay writes the same
//! bytes.

pub mod frames;
pub mod message;
pub mod number;
pub mod parse;

use frames::Frame;
use message::{Cdm, CdmObject};
use sda_guest::{Emitter, Failure, Operator, Record, export_operator};
use sda_records::{Alert, CovarianceSource, PcMethod, StateVector};
use serde::Deserialize;

/// `[operators.NAME.config]` of the CDM operator; every key optional. Values are read as strings and checked
/// by `init`, so an error names the key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `"kvn"` (default) or `"xml"`.
    #[serde(default = "defaults::format")]
    pub format: String,
    /// ORIGINATOR: uppercased (text values are uppercase in CDMs); default `SDA-PIPELINE`.
    #[serde(default = "defaults::originator")]
    pub originator: String,
    /// The frame the alerts' states are in: `"TEME"` (default, states from element sets), `"EME2000"` or `"GCRF"`.
    #[serde(default = "defaults::input_frame")]
    pub input_frame: String,
    /// REF_FRAME of the CDM: `"EME2000"` (default) or `"GCRF"`; `"ITRF"` is refused (see the README).
    #[serde(default = "defaults::ref_frame")]
    pub ref_frame: String,
    /// MESSAGE_FOR, uppercased; absent by default.
    #[serde(default)]
    pub message_for: Option<String>,
}

mod defaults {
    pub fn format() -> String {
        "kvn".into()
    }
    pub fn originator() -> String {
        "SDA-PIPELINE".into()
    }
    pub fn input_frame() -> String {
        "TEME".into()
    }
    pub fn ref_frame() -> String {
        "EME2000".into()
    }
}

/// Which syntax the CDM is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    Kvn,
    Xml,
}

/// A text value of the configuration, uppercased: letters, digits, spaces and `- _ . , / ( ) + :` only, so that
/// it is one KVN line and needs no XML escape; at most 64 characters.
fn config_text(key: &str, value: &str) -> Result<String, String> {
    let upper = value.trim().to_ascii_uppercase();
    if upper.is_empty() || upper.len() > 64 {
        return Err(format!("`{key}` must have 1 to 64 characters, not {value:?}"));
    }
    if let Some(bad) = upper.chars().find(|c| !(c.is_ascii_alphanumeric() || " -_.,/()+:".contains(*c))) {
        return Err(format!("`{key}` = {value:?} has {bad:?}: use letters, digits, spaces and - _ . , / ( ) + : only"));
    }
    Ok(upper)
}

/// The operator: its checked configuration.
#[derive(Debug, Clone)]
pub struct CdmWriter {
    pub syntax: Syntax,
    pub originator: String,
    pub message_for: Option<String>,
    pub input_frame: Frame,
    pub ref_frame: Frame,
}

impl CdmWriter {
    pub fn new(config: Config) -> Result<Self, String> {
        let syntax = match config.format.as_str() {
            "kvn" => Syntax::Kvn,
            "xml" => Syntax::Xml,
            other => return Err(format!("`format` must be \"kvn\" or \"xml\", not {other:?}")),
        };
        let input_frame = match config.input_frame.as_str() {
            "TEME" => Frame::Teme,
            "EME2000" => Frame::Eme2000,
            "GCRF" => Frame::Gcrf,
            other => return Err(format!("`input_frame` must be \"TEME\", \"EME2000\" or \"GCRF\", not {other:?}")),
        };
        let ref_frame = match config.ref_frame.as_str() {
            "EME2000" => Frame::Eme2000,
            "GCRF" => Frame::Gcrf,
            "ITRF" => {
                return Err("`ref_frame` = \"ITRF\" is not supported: rotating to the Earth-fixed frame needs Earth orientation data \
                            (UT1 - UTC, up to 0.9 s, turns the states by up to 0.5 km in LEO and 2.8 km at GEO; polar motion \
                            adds about 10 m), which the operator does not have; use \"EME2000\" or \"GCRF\""
                    .to_string());
            }
            "TEME" => {
                return Err("`ref_frame` = \"TEME\" is not allowed: CCSDS 508.0-B-1 Table 3-3 allows REF_FRAME = GCRF, EME2000 \
                            or ITRF only; use \"EME2000\" or \"GCRF\" (TEME states are rotated, see `input_frame`)"
                    .to_string());
            }
            other => return Err(format!("`ref_frame` must be \"EME2000\" or \"GCRF\", not {other:?}")),
        };
        Ok(CdmWriter {
            syntax,
            originator: config_text("originator", &config.originator)?,
            message_for: config.message_for.as_deref().map(|m| config_text("message_for", m)).transpose()?,
            input_frame,
            ref_frame,
        })
    }

    /// The CDM for `alert`, or why it cannot have one.
    pub fn cdm(&self, alert: &Alert<'_>) -> Result<Cdm, Failure> {
        let id = &alert.alert_id;
        if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(Failure::validation(format!(
                "`alert_id` {id:?} cannot make a MESSAGE_ID: it must be 1 to 64 ASCII letters, digits, - or _"
            )));
        }
        let states = alert.states_at_tca.ok_or_else(|| {
            Failure::validation(format!(
                "alert {id} has no `states_at_tca`: a CDM carries both objects' states at TCA (CCSDS 508.0-B-1 Table 3-4, \
                 mandatory); run the correlator with `emit_states = true` so that its candidates, and the alerts, carry them"
            ))
        })?;
        let pc = alert.collision_probability.ok_or_else(|| {
            Failure::validation(format!(
                "alert {id} has no `collision_probability`, hence no covariances, which a CDM must carry (CCSDS 508.0-B-1 \
                 Table 3-4, mandatory); the classifier computes them whenever the candidate carries states: run the \
                 correlator with `emit_states = true`"
            ))
        })?;
        let finite = |name: &str, values: &[f64]| {
            if values.iter().all(|v| v.is_finite()) {
                Ok(())
            } else {
                Err(Failure::validation(format!("alert {id}: `{name}` has a value that is not a finite number")))
            }
        };
        finite("states_at_tca.primary", &[states.primary.position_km, states.primary.velocity_km_s].concat())?;
        finite("states_at_tca.secondary", &[states.secondary.position_km, states.secondary.velocity_km_s].concat())?;
        finite("collision_probability.primary_covariance_rtn", &pc.primary_covariance_rtn.0)?;
        finite("collision_probability.secondary_covariance_rtn", &pc.secondary_covariance_rtn.0)?;
        finite("miss_distance_km, relative_speed_km_s", &[alert.miss_distance_km, alert.relative_speed_km_s])?;
        finite("collision_probability.hard_body_radius_m", &[pc.hard_body_radius_m])?;
        if !(0.0..=1.0).contains(&pc.pc) {
            return Err(Failure::validation(format!("alert {id}: `collision_probability.pc` = {} is not from 0 to 1", pc.pc)));
        }
        let relative = relative_rtn(&states.primary, &states.secondary)
            .ok_or_else(|| Failure::validation(format!("alert {id}: the primary's state has no RTN frame (zero position or r x v)")))?;

        let rotation = frames::rotation(self.input_frame, self.ref_frame, alert.tca_ms);
        let covariance_method = match pc.covariance_source {
            CovarianceSource::Calculated => "CALCULATED",
            CovarianceSource::Default => "DEFAULT",
        };
        let object = |name: &str, object_id: u32, state: &StateVector, covariance: &sda_records::Covariance6| CdmObject {
            object: name.to_string(),
            object_designator: object_id.to_string(),
            catalog_name: "SATCAT".to_string(),
            object_name: "UNKNOWN".to_string(),
            international_designator: "UNKNOWN".to_string(),
            ephemeris_name: "NONE".to_string(),
            covariance_method: covariance_method.to_string(),
            maneuverable: "N/A".to_string(),
            ref_frame: frame_name(self.ref_frame).to_string(),
            state: {
                let p = frames::apply(&rotation, &state.position_km);
                let v = frames::apply(&rotation, &state.velocity_km_s);
                [p[0], p[1], p[2], v[0], v[1], v[2]]
            },
            covariance_rtn: covariance.0,
        };
        let method = match pc.method {
            PcMethod::Foster1992 => "FOSTER-1992",
        };
        Ok(Cdm {
            version: "1.0".to_string(),
            creation_date: ccsds_utc(alert.window_end_ms),
            originator: self.originator.clone(),
            message_for: self.message_for.clone(),
            message_id: message_id(id),
            relative_comments: vec![
                format!("Alert {id}, severity {}", alert.severity),
                "Relative position and velocity: object 2 minus object 1, in object 1's RTN frame".to_string(),
                format!("Hard-body radius of COLLISION_PROBABILITY: {} m", number::format_real(pc.hard_body_radius_m)),
                format!(
                    "States at TCA from {} written in {} (IAU-76/FK5 reduction, no EOP corrections)",
                    frame_name(self.input_frame),
                    frame_name(self.ref_frame)
                ),
            ],
            tca: ccsds_utc(alert.tca_ms),
            miss_distance_m: alert.miss_distance_km * 1000.0,
            relative_speed_m_s: alert.relative_speed_km_s * 1000.0,
            relative_state_rtn: relative,
            collision_probability: pc.pc,
            collision_probability_method: method.to_string(),
            objects: [
                object("OBJECT1", alert.primary_id, &states.primary, &pc.primary_covariance_rtn),
                object("OBJECT2", alert.secondary_id, &states.secondary, &pc.secondary_covariance_rtn),
            ],
        })
    }

    /// The CDM's text in the configured syntax.
    pub fn render(&self, cdm: &Cdm) -> String {
        match self.syntax {
            Syntax::Kvn => message::to_kvn(cdm),
            Syntax::Xml => message::to_xml(cdm),
        }
    }
}

pub fn frame_name(frame: Frame) -> &'static str {
    match frame {
        Frame::Teme => "TEME",
        Frame::Eme2000 => "EME2000",
        Frame::Gcrf => "GCRF",
    }
}

/// MESSAGE_ID: `SDA-` and the alert id, uppercased (a replayed alert gets the same id).
pub fn message_id(alert_id: &str) -> String {
    format!("SDA-{}", alert_id.to_ascii_uppercase())
}

/// Unix milliseconds as `YYYY-MM-DDThh:mm:ss.ddd` UTC, without a time zone letter, as the example CDM of CCSDS
/// 508.0-B-1 writes epochs (CCSDS 301.0 ASCII time code A; the NDM/XML pattern allows an optional `Z`).
pub fn ccsds_utc(unix_ms: i64) -> String {
    let rfc3339 = sda_records::rfc3339_utc(unix_ms);
    rfc3339.trim_end_matches('Z').to_string()
}

fn cross(a: &[f64; 3], b: &[f64; 3]) -> [f64; 3] {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}

fn unit(v: [f64; 3]) -> Option<[f64; 3]> {
    let norm = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
    (norm > 0.0).then(|| v.map(|x| x / norm))
}

fn dot(a: &[f64; 3], b: &[f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// Object 1's RTN axes: R along its position, N along r x v, T = N x R (CCSDS 508.0-B-1 Annex E's RTN).
pub fn rtn_axes(primary: &StateVector) -> Option<[[f64; 3]; 3]> {
    let r = unit(primary.position_km)?;
    let n = unit(cross(&primary.position_km, &primary.velocity_km_s))?;
    Some([r, cross(&n, &r), n])
}

/// Object 2's position and velocity minus object 1's, in object 1's RTN axes, in m and m/s. The velocity is the
/// difference of the inertial velocities, resolved on the RTN axes (not the rate seen in the rotating frame).
/// Both states are in the same inertial frame, and a rotation between inertial frames leaves these unchanged,
/// so they are computed in the input frame.
pub fn relative_rtn(primary: &StateVector, secondary: &StateVector) -> Option<[f64; 6]> {
    let axes = rtn_axes(primary)?;
    let dr = [0, 1, 2].map(|i| (secondary.position_km[i] - primary.position_km[i]) * 1000.0);
    let dv = [0, 1, 2].map(|i| (secondary.velocity_km_s[i] - primary.velocity_km_s[i]) * 1000.0);
    Some([dot(&axes[0], &dr), dot(&axes[1], &dr), dot(&axes[2], &dr), dot(&axes[0], &dv), dot(&axes[1], &dv), dot(&axes[2], &dv)])
}

impl Operator for CdmWriter {
    type Config = Config;

    fn init(config: Config) -> Result<Self, String> {
        CdmWriter::new(config)
    }

    fn process(&mut self, record: &Record<'_>, out: &mut Emitter) -> Result<(), Failure> {
        let alert: Alert<'_> = serde_json::from_slice(record.payload()).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => Failure::validation(format!("not an Alert v1 record: {e}")),
            _ => Failure::deserialization(format!("not valid JSON: {e}")),
        })?;
        let cdm = self.cdm(&alert)?;
        out.emit(cdm.message_id.as_bytes(), self.render(&cdm)).at(alert.tca_ms).push();
        Ok(())
    }
}

export_operator!(CdmWriter);
