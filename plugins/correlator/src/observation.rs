//! Observation v1: parsing and validation, each failure naming the field and the rule it breaks.
//!
//! Fields are first captured as raw JSON text, then checked one by one, so
//! "not JSON at all" (`Deserialization`) is told apart from "JSON that breaks a
//! rule" (`Validation`), and numbers are read from their literal text: an
//! integer field must be an integer literal, and `1e400` is caught as a
//! non-finite number rather than rejected as unparsable.

use crate::orbit::{Vec3, norm};
use sda_guest::Failure;
use serde::Deserialize;
use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::fmt;

/// Earth's equatorial radius: no observed object is inside it.
pub const MIN_RADIUS_KM: f64 = 6378.137;
/// Beyond this an object is not an Earth orbiter of interest (or the data is wrong).
pub const MAX_RADIUS_KM: f64 = 500_000.0;
/// Faster than any Earth orbiter or escape trajectory from its surface.
pub const MAX_SPEED_KM_S: f64 = 20.0;

/// A valid observation.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub observation_id: String,
    pub object_id: u32,
    pub sensor_id: String,
    pub epoch_ms: i64,
    pub position_km: Vec3,
    pub velocity_km_s: Vec3,
}

/// The fields of interest as raw JSON text; the last occurrence of a field wins.
#[derive(Default)]
struct RawFields<'a> {
    observation_id: Option<&'a RawValue>,
    object_id: Option<&'a RawValue>,
    sensor_id: Option<&'a RawValue>,
    epoch_ms: Option<&'a RawValue>,
    position_km: Option<&'a RawValue>,
    velocity_km_s: Option<&'a RawValue>,
}

/// Marks a JSON value that is not an object (a `Validation`, not a syntax, failure).
const NOT_AN_OBJECT: &str = "an observation must be a JSON object";

impl<'de> Deserialize<'de> for RawFields<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawFields<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(NOT_AN_OBJECT)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut raw = RawFields::default();
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    let slot = match key.as_ref() {
                        "observation_id" => &mut raw.observation_id,
                        "object_id" => &mut raw.object_id,
                        "sensor_id" => &mut raw.sensor_id,
                        "epoch_ms" => &mut raw.epoch_ms,
                        "position_km" => &mut raw.position_km,
                        "velocity_km_s" => &mut raw.velocity_km_s,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                            continue;
                        }
                    };
                    *slot = Some(map.next_value::<&'de RawValue>()?);
                }
                Ok(raw)
            }
        }
        d.deserialize_map(V)
    }
}

/// Parses and validates one observation payload.
pub fn parse(payload: &[u8]) -> Result<Observation, Failure> {
    let raw: RawFields<'_> = serde_json::from_slice(payload).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => Failure::validation(NOT_AN_OBJECT),
        _ => Failure::deserialization(format!("not valid JSON: {e}")),
    })?;
    let observation_id = string(raw.observation_id, "observation_id")?;
    let object_id = integer(raw.object_id, "object_id")?;
    let object_id = u32::try_from(object_id).map_err(|_| {
        Failure::validation(format!("`object_id` must be an integer from 0 to 4294967295, not {object_id}"))
    })?;
    let sensor_id = string(raw.sensor_id, "sensor_id")?;
    let epoch_ms = integer(raw.epoch_ms, "epoch_ms")?;
    let epoch_ms = i64::try_from(epoch_ms)
        .map_err(|_| Failure::validation(format!("`epoch_ms` must fit in a signed 64-bit integer, not {epoch_ms}")))?;
    let position_km = vector(raw.position_km, "position_km")?;
    let velocity_km_s = vector(raw.velocity_km_s, "velocity_km_s")?;
    let radius = norm(position_km);
    if !(MIN_RADIUS_KM..=MAX_RADIUS_KM).contains(&radius) {
        return Err(Failure::validation(format!(
            "|position_km| must be from {MIN_RADIUS_KM} to {MAX_RADIUS_KM} km, not {radius:.3} km"
        )));
    }
    let speed = norm(velocity_km_s);
    if speed > MAX_SPEED_KM_S {
        return Err(Failure::validation(format!("|velocity_km_s| must be at most {MAX_SPEED_KM_S} km/s, not {speed:.3} km/s")));
    }
    Ok(Observation { observation_id, object_id, sensor_id, epoch_ms, position_km, velocity_km_s })
}

fn present<'a>(raw: Option<&'a RawValue>, field: &str) -> Result<&'a str, Failure> {
    raw.map(RawValue::get).ok_or_else(|| Failure::validation(format!("`{field}` is missing")))
}

fn string(raw: Option<&RawValue>, field: &str) -> Result<String, Failure> {
    let text = present(raw, field)?;
    if !text.starts_with('"') {
        return Err(Failure::validation(format!("`{field}` must be a string, not {}", shorten(text))));
    }
    // A string the scanner let through but that does not decode (a lone
    // surrogate escape) is broken JSON text, not a broken rule.
    serde_json::from_str(text).map_err(|e| Failure::deserialization(format!("`{field}` is not a valid JSON string: {e}")))
}

/// An integer literal (no fraction, no exponent), as i128 so range errors can quote it.
fn integer(raw: Option<&RawValue>, field: &str) -> Result<i128, Failure> {
    let text = present(raw, field)?;
    let is_integer_literal = !text.is_empty()
        && text.strip_prefix('-').unwrap_or(text).bytes().all(|b| b.is_ascii_digit())
        && text != "-";
    if !is_integer_literal {
        return Err(Failure::validation(format!("`{field}` must be an integer, not {}", shorten(text))));
    }
    text.parse::<i128>()
        .map_err(|_| Failure::validation(format!("`{field}` is out of range: {}", shorten(text))))
}

fn vector(raw: Option<&RawValue>, field: &str) -> Result<Vec3, Failure> {
    let text = present(raw, field)?;
    let elements: Vec<&RawValue> = if text.starts_with('[') {
        serde_json::from_str(text).map_err(|e| Failure::validation(format!("`{field}`: {e}")))?
    } else {
        return Err(Failure::validation(format!("`{field}` must be an array of 3 numbers, not {}", shorten(text))));
    };
    if elements.len() != 3 {
        return Err(Failure::validation(format!("`{field}` must have 3 numbers, not {}", elements.len())));
    }
    let mut out = [0.0; 3];
    for (slot, element) in out.iter_mut().zip(&elements) {
        let t = element.get();
        let is_number = t.starts_with('-') || t.starts_with(|c: char| c.is_ascii_digit());
        let value = if is_number { t.parse::<f64>().ok() } else { None };
        match value {
            Some(v) if v.is_finite() => *slot = v,
            Some(_) => return Err(Failure::validation(format!("`{field}` holds a number that is not finite: {}", shorten(t)))),
            None => return Err(Failure::validation(format!("`{field}` must hold numbers, not {}", shorten(t)))),
        }
    }
    Ok(out)
}

fn shorten(text: &str) -> String {
    if text.len() <= 40 {
        text.to_string()
    } else {
        let cut = (0..=40).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
        format!("{}...", &text[..cut])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sda_guest::FailureReason;

    const GOOD: &str = r#"{"observation_id":"obs-1","object_id":25544,"sensor_id":"radar-3","epoch_ms":1767225600000,"position_km":[6524.834,-1284.21,1942.33],"velocity_km_s":[1.2,7.3,-0.4]}"#;

    fn with(field: &str, value: &str) -> String {
        let mut v: serde_json::Map<String, serde_json::Value> = serde_json::from_str(GOOD).unwrap();
        v.remove(field);
        let mut text = serde_json::to_string(&v).unwrap();
        text.pop();
        format!("{text},\"{field}\":{value}}}")
    }

    fn reason_of(payload: &str) -> (FailureReason, String) {
        let f = parse(payload.as_bytes()).unwrap_err();
        (f.reason, f.message)
    }

    #[test]
    fn whitespace_and_escapes_read_as_json_says() {
        let spaced = GOOD.replace("[6524.834,-1284.21,1942.33]", "[ 6524.834 ,\n -1284.21,1942.33 ]");
        assert_eq!(parse(spaced.as_bytes()).unwrap().position_km, [6524.834, -1284.21, 1942.33]);
        let escaped = GOOD.replace("\"obs-1\"", r#""obs-\u0031\"x""#);
        assert_eq!(parse(escaped.as_bytes()).unwrap().observation_id, "obs-1\"x");
    }

    #[test]
    fn a_good_observation_parses() {
        let o = parse(GOOD.as_bytes()).unwrap();
        assert_eq!(o.object_id, 25544);
        assert_eq!(o.epoch_ms, 1767225600000);
        assert_eq!(o.position_km, [6524.834, -1284.21, 1942.33]);
        // Extra fields are ignored; the last of a repeated field wins.
        let extra = GOOD.replace("\"sensor_id\"", "\"snr\":12,\"sensor_id\"").replace("}", ",\"object_id\":7}");
        assert_eq!(parse(extra.as_bytes()).unwrap().object_id, 7);
    }

    #[test]
    fn syntax_errors_are_deserialization_failures() {
        // A lone surrogate escape is not valid JSON text (as serde_json and the reference agree).
        let lone_surrogate = GOOD.replace("obs-1", "obs-\\ud800");
        for bad in ["{\"observation_id\":", "not json", "", "{} {}", "\u{0}", &lone_surrogate] {
            assert_eq!(reason_of(bad).0, FailureReason::Deserialization, "{bad:?}");
        }
    }

    #[test]
    fn every_rule_is_a_validation_failure_naming_its_field() {
        let cases = [
            ("[1,2,3]".to_string(), "JSON object"),
            (with("observation_id", "17"), "`observation_id` must be a string"),
            (with("object_id", "-1"), "`object_id` must be an integer from 0 to 4294967295, not -1"),
            (with("object_id", "4294967296"), "not 4294967296"),
            (with("object_id", "12.5"), "`object_id` must be an integer, not 12.5"),
            (with("object_id", "\"25544\""), "`object_id` must be an integer"),
            (with("sensor_id", "null"), "`sensor_id` must be a string"),
            (with("epoch_ms", "1.5e12"), "`epoch_ms` must be an integer"),
            (with("epoch_ms", "1767225600000.5"), "`epoch_ms` must be an integer"),
            (with("epoch_ms", "99999999999999999999"), "`epoch_ms` must fit in a signed 64-bit integer"),
            (with("position_km", "[1,2]"), "`position_km` must have 3 numbers, not 2"),
            (with("position_km", "[7000, 0, 0, 1]"), "`position_km` must have 3 numbers, not 4"),
            (with("position_km", "[ ]"), "`position_km` must have 3 numbers, not 0"),
            (with("position_km", "[7000,[0],0]"), "`position_km` must hold numbers, not [0]"),
            (with("position_km", "[7000,{\"a\":[1,2]},0]"), "`position_km` must hold numbers, not {\"a\":[1,2]}"),
            (with("position_km", "[7000,true,0]"), "`position_km` must hold numbers, not true"),
            (with("position_km", "[7000,0,1e400]"), "not finite"),
            (with("position_km", "[7000,0,\"0\"]"), "must hold numbers"),
            (with("position_km", "{\"x\":1}"), "must be an array of 3 numbers"),
            (with("position_km", "[6000,0,0]"), "|position_km| must be from 6378.137"),
            (with("position_km", "[500001,0,0]"), "not 500001.000 km"),
            (with("velocity_km_s", "[20.1,0,0]"), "|velocity_km_s| must be at most 20"),
            (GOOD.replace("\"sensor_id\":\"radar-3\",", ""), "`sensor_id` is missing"),
        ];
        for (payload, expected) in cases {
            let (reason, message) = reason_of(&payload);
            assert_eq!(reason, FailureReason::Validation, "{payload}: {message}");
            assert!(message.contains(expected), "{payload}: `{message}` lacks `{expected}`");
        }
    }

    #[test]
    fn boundaries_are_inclusive() {
        assert!(parse(with("position_km", "[6378.137,0,0]").as_bytes()).is_ok());
        assert!(parse(with("position_km", "[500000,0,0]").as_bytes()).is_ok());
        assert!(parse(with("velocity_km_s", "[20,0,0]").as_bytes()).is_ok());
        assert!(parse(with("object_id", "4294967295").as_bytes()).is_ok());
        assert!(parse(with("object_id", "0").as_bytes()).is_ok());
    }
}
