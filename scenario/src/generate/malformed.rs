//! Malformed input lines: invalid JSON, and valid JSON breaking each Observation v1 rule.
//!
//! Every variant is built from a realistic observation so that only the intended defect is wrong.
//! The Validation variants are also accepted by the host's file source (which only needs valid
//! JSON, reading `object_id` as the key and an integer `epoch_ms` as the event time), so they reach
//! the correlator and exercise its validation, not the source's.

use super::rng::Rng;
use crate::observation::InvalidKind;

/// The fields of the observation a malformed line is derived from.
#[derive(Debug, Clone)]
pub struct Template {
    pub observation_id: String,
    pub object_id: u32,
    pub sensor_id: String,
    pub epoch_ms: i64,
    pub position_km: [f64; 3],
    pub velocity_km_s: [f64; 3],
}

/// One malformed line and what is wrong with it.
#[derive(Debug, Clone)]
pub struct Malformed {
    pub text: String,
    pub kind: InvalidKind,
    /// A short name of the defect, e.g. `object_id_negative`.
    pub defect: &'static str,
}

/// The raw JSON text of each field, so a variant can replace any of them with anything.
struct Fields {
    observation_id: String,
    object_id: String,
    sensor_id: String,
    epoch_ms: String,
    position_km: String,
    velocity_km_s: String,
}

impl Fields {
    fn from(template: &Template) -> Self {
        Fields {
            observation_id: format!("\"{}\"", template.observation_id),
            object_id: template.object_id.to_string(),
            sensor_id: format!("\"{}\"", template.sensor_id),
            epoch_ms: template.epoch_ms.to_string(),
            position_km: vector(template.position_km, 6),
            velocity_km_s: vector(template.velocity_km_s, 9),
        }
    }

    /// The object, leaving out the field named `omit` (if any).
    fn render(&self, omit: Option<&str>) -> String {
        let members = [
            ("observation_id", &self.observation_id),
            ("object_id", &self.object_id),
            ("sensor_id", &self.sensor_id),
            ("epoch_ms", &self.epoch_ms),
            ("position_km", &self.position_km),
            ("velocity_km_s", &self.velocity_km_s),
        ];
        let body: Vec<String> =
            members.iter().filter(|(name, _)| Some(*name) != omit).map(|(name, value)| format!("\"{name}\":{value}")).collect();
        format!("{{{}}}", body.join(","))
    }
}

fn vector(v: [f64; 3], decimals: usize) -> String {
    format!("[{:.*},{:.*},{:.*}]", decimals, v[0], decimals, v[1], decimals, v[2])
}

fn scaled(v: [f64; 3], length: f64) -> [f64; 3] {
    let norm = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
    [v[0] / norm * length, v[1] / norm * length, v[2] / norm * length]
}

const FIELD_NAMES: [&str; 6] = ["observation_id", "object_id", "sensor_id", "epoch_ms", "position_km", "velocity_km_s"];

/// How many variants [`malformed_line`] knows; variant `i % VARIANTS` is built.
pub const VARIANTS: usize = 32;

/// Malformed line number `variant` (taken modulo [`VARIANTS`]) derived from `template`.
pub fn malformed_line(template: &Template, variant: usize, rng: &mut Rng) -> Malformed {
    use InvalidKind::{Deserialization as D, Validation as V};
    let mut fields = Fields::from(template);
    let valid = fields.render(None);
    let (kind, defect, text) = match variant % VARIANTS {
        // Not JSON at all, or broken JSON.
        0 => {
            // Any proper prefix of an object's text is unbalanced, so never valid JSON.
            let cut = rng.int_between(valid.len() as i64 / 4, valid.len() as i64 - 2) as usize;
            (D, "truncated_line", valid[..cut].to_string())
        }
        1 => (D, "garbage", "#!~ sensor buffer overrun ~ 0xDEADBEEF".to_string()),
        2 => (D, "csv_instead_of_json", {
            let p = template.position_km;
            let v = template.velocity_km_s;
            format!(
                "{},{},{},{},{:.6},{:.6},{:.6},{:.9},{:.9},{:.9}",
                template.observation_id, template.object_id, template.sensor_id, template.epoch_ms, p[0], p[1], p[2], v[0], v[1], v[2]
            )
        }),
        3 => (D, "trailing_comma", format!("{},}}", &valid[..valid.len() - 1])),
        4 => (D, "single_quotes", valid.replace('"', "'")),
        5 => {
            fields.position_km = "[NaN,0.0,0.0]".to_string();
            (D, "nan_literal", fields.render(None))
        }
        6 => (D, "two_objects_on_one_line", format!("{valid}{valid}")),
        7 => {
            fields.object_id = format!("0{}", template.object_id);
            (D, "leading_zero", fields.render(None))
        }
        8 => (D, "unterminated_string", format!("{{\"observation_id\":\"{}", template.observation_id)),
        9 => (D, "missing_comma", valid.replacen(",\"sensor_id\"", " \"sensor_id\"", 1)),
        // Valid JSON breaking one rule.
        10 => {
            fields.position_km = vector(scaled(template.position_km, 6000.0), 6);
            (V, "position_inside_earth", fields.render(None))
        }
        11 => {
            fields.position_km = vector(scaled(template.position_km, 600_000.0), 6);
            (V, "position_too_far", fields.render(None))
        }
        12 => {
            fields.velocity_km_s = vector(scaled(template.velocity_km_s, 25.0), 9);
            (V, "velocity_too_fast", fields.render(None))
        }
        13 => {
            fields.object_id = "-1".to_string();
            (V, "object_id_negative", fields.render(None))
        }
        14 => {
            fields.object_id = "4294967296".to_string();
            (V, "object_id_too_large", fields.render(None))
        }
        15 => {
            fields.object_id = "12.5".to_string();
            (V, "object_id_fraction", fields.render(None))
        }
        16 => {
            fields.epoch_ms = "1.5e12".to_string();
            (V, "epoch_exponent", fields.render(None))
        }
        17 => {
            fields.epoch_ms = format!("{}.5", template.epoch_ms);
            (V, "epoch_fraction", fields.render(None))
        }
        18 => {
            fields.epoch_ms = "9223372036854775808".to_string();
            (V, "epoch_too_large", fields.render(None))
        }
        19 => {
            let omit = FIELD_NAMES[rng.index(FIELD_NAMES.len())];
            (V, "missing_field", fields.render(Some(omit)))
        }
        20 => {
            fields.object_id = format!("\"{}\"", template.object_id);
            (V, "object_id_string", fields.render(None))
        }
        21 => {
            fields.epoch_ms = format!("\"{}\"", template.epoch_ms);
            (V, "epoch_string", fields.render(None))
        }
        22 => {
            fields.sensor_id = "3".to_string();
            (V, "sensor_id_number", fields.render(None))
        }
        23 => {
            fields.observation_id = "null".to_string();
            (V, "observation_id_null", fields.render(None))
        }
        24 => {
            let p = template.position_km;
            fields.position_km = format!("[{:.6},{:.6}]", p[0], p[1]);
            (V, "position_two_numbers", fields.render(None))
        }
        25 => {
            let v = template.velocity_km_s;
            fields.velocity_km_s = format!("[{:.9},{:.9},{:.9},0.0]", v[0], v[1], v[2]);
            (V, "velocity_four_numbers", fields.render(None))
        }
        26 => {
            let p = template.position_km;
            fields.position_km = format!("[1e400,{:.6},{:.6}]", p[1], p[2]);
            (V, "position_overflows_f64", fields.render(None))
        }
        27 => {
            let v = template.velocity_km_s;
            fields.velocity_km_s = format!("[{:.9},-1e400,{:.9}]", v[0], v[2]);
            (V, "velocity_overflows_f64", fields.render(None))
        }
        28 => {
            (V, "array_not_object", format!("[{},{},{},{}]", fields.observation_id, fields.object_id, fields.epoch_ms, fields.position_km))
        }
        29 => {
            let p = template.position_km;
            fields.position_km = format!("[\"{:.6}\",{:.6},{:.6}]", p[0], p[1], p[2]);
            (V, "position_element_string", fields.render(None))
        }
        30 => {
            fields.object_id = "2.5544e4".to_string();
            (V, "object_id_exponent", fields.render(None))
        }
        _ => {
            fields.position_km = "{\"x\":1,\"y\":2,\"z\":3}".to_string();
            (V, "position_object", fields.render(None))
        }
    };
    Malformed { text, kind, defect }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observation::parse_observation;

    #[test]
    fn every_variant_fails_with_its_intended_kind_and_the_template_is_valid() {
        let template = Template {
            observation_id: "obs-bad-000001".into(),
            object_id: 25544,
            sensor_id: "radar-3".into(),
            epoch_ms: 1_767_225_600_000,
            position_km: [6524.834, -1284.21, 1942.33],
            velocity_km_s: [1.2, 7.3, -0.4],
        };
        assert!(parse_observation(&Fields::from(&template).render(None)).is_ok());
        let mut rng = Rng::stream(3, "malformed-test");
        for round in 0..5 {
            for variant in 0..VARIANTS {
                let line = malformed_line(&template, variant + round * VARIANTS, &mut rng);
                let rejection = parse_observation(&line.text).expect_err(line.defect);
                assert_eq!(rejection.kind, line.kind, "{}: {} ({})", line.defect, line.text, rejection.message);
                assert!(!line.text.contains('\n') && !line.text.trim().is_empty());
            }
        }
    }
}
