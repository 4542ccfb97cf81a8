//! Observation v1: reading one input line and applying the validation rules of SEMANTICS.md.
//!
//! Choices where the contract leaves room (each the most literal reading):
//! - An integer literal is checked on its text: no `.`, `e` or `E`. Its value is then exact, so
//!   `-0` is the integer 0 (a valid `object_id` and `epoch_ms`), and a literal with more digits
//!   than any 64-bit type holds is simply out of range (a `Validation` failure).
//! - A number is "finite when read as a 64-bit float" when its literal, rounded to the nearest
//!   f64, is finite: `1e400` is valid JSON that fails `Validation`.
//! - A vector's length is `sqrt(x*x + y*y + z*z)` evaluated in f64; components whose squares
//!   overflow have an infinite length and fail the "at most" rule.
//! - Fields are checked in the order of the table, and the first broken rule is reported.

use crate::json::{self, Json};
use serde::{Deserialize, Serialize};

/// Smallest allowed `|position_km|`: the Earth's equatorial radius.
pub const MIN_POSITION_NORM_KM: f64 = 6378.137;
/// Largest allowed `|position_km|`.
pub const MAX_POSITION_NORM_KM: f64 = 500_000.0;
/// Largest allowed `|velocity_km_s|`.
pub const MAX_VELOCITY_NORM_KM_S: f64 = 20.0;

/// A valid Observation v1.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub observation_id: String,
    pub object_id: u32,
    pub sensor_id: String,
    pub epoch_ms: i64,
    pub position_km: [f64; 3],
    pub velocity_km_s: [f64; 3],
}

/// The two permanent failure kinds of an input line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum InvalidKind {
    /// The line is not valid JSON.
    Deserialization,
    /// Valid JSON that breaks a rule of the Observation v1 table (or is not an object).
    Validation,
}

/// Why a line is not a valid observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub kind: InvalidKind,
    /// Names the field and the rule (or the JSON syntax error).
    pub message: String,
}

impl Rejection {
    fn validation(message: String) -> Self {
        Rejection { kind: InvalidKind::Validation, message }
    }
}

/// Reads one line as an Observation v1, or says why it is not one.
pub fn parse_observation(line: &str) -> Result<Observation, Rejection> {
    let value = json::parse(line)
        .map_err(|error| Rejection { kind: InvalidKind::Deserialization, message: format!("line is not valid JSON: {error}") })?;
    if !matches!(value, Json::Object(_)) {
        return Err(Rejection::validation(format!("the observation must be a JSON object, not {}", value.type_name())));
    }
    let observation_id = string_field(&value, "observation_id")?;
    let object_id_value = integer_field(&value, "object_id")?;
    let object_id = u32::try_from(object_id_value)
        .map_err(|_| Rejection::validation(format!("`object_id` must be from 0 to 4294967295, not {object_id_value}")))?;
    let sensor_id = string_field(&value, "sensor_id")?;
    let epoch_value = integer_field(&value, "epoch_ms")?;
    let epoch_ms = i64::try_from(epoch_value)
        .map_err(|_| Rejection::validation(format!("`epoch_ms` must fit in a signed 64-bit integer, not {epoch_value}")))?;
    // The instants RFC 3339 can write: years 0000 to 9999.
    if !(-62_167_219_200_000..=253_402_300_799_999).contains(&epoch_ms) {
        return Err(Rejection::validation(format!("`epoch_ms` must be from year 0000 to year 9999, not {epoch_ms}")));
    }
    let position_km = vector_field(&value, "position_km")?;
    // Finite components give a finite or infinite norm, never NaN, so plain comparisons suffice.
    let position_norm = norm(position_km);
    if position_norm < MIN_POSITION_NORM_KM {
        return Err(Rejection::validation(format!(
            "`position_km` must have a length of at least {MIN_POSITION_NORM_KM} km, not {position_norm} km"
        )));
    }
    if position_norm > MAX_POSITION_NORM_KM {
        return Err(Rejection::validation(format!(
            "`position_km` must have a length of at most {MAX_POSITION_NORM_KM} km, not {position_norm} km"
        )));
    }
    let velocity_km_s = vector_field(&value, "velocity_km_s")?;
    let velocity_norm = norm(velocity_km_s);
    if velocity_norm > MAX_VELOCITY_NORM_KM_S {
        return Err(Rejection::validation(format!(
            "`velocity_km_s` must have a length of at most {MAX_VELOCITY_NORM_KM_S} km/s, not {velocity_norm} km/s"
        )));
    }
    Ok(Observation { observation_id, object_id, sensor_id, epoch_ms, position_km, velocity_km_s })
}

fn norm(v: [f64; 3]) -> f64 {
    (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt()
}

fn required<'a>(object: &'a Json, name: &str) -> Result<&'a Json, Rejection> {
    object.member(name).ok_or_else(|| Rejection::validation(format!("`{name}` is missing")))
}

fn string_field(object: &Json, name: &str) -> Result<String, Rejection> {
    match required(object, name)? {
        Json::String(text) => Ok(text.clone()),
        other => Err(Rejection::validation(format!("`{name}` must be a JSON string, not {}", other.type_name()))),
    }
}

/// An integer literal's exact value. `i128` holds every value either field accepts and more, so
/// range checks are done by the caller on an exact number; longer literals are out of range here.
fn integer_field(object: &Json, name: &str) -> Result<i128, Rejection> {
    let literal = match required(object, name)? {
        Json::Number(literal) => literal,
        other => return Err(Rejection::validation(format!("`{name}` must be a JSON integer, not {}", other.type_name()))),
    };
    if literal.contains(['.', 'e', 'E']) {
        return Err(Rejection::validation(format!("`{name}` must be a JSON integer literal (no `.`, `e` or `E`), not {literal}")));
    }
    literal.parse::<i128>().map_err(|_| Rejection::validation(format!("`{name}` is out of range: {literal}")))
}

fn vector_field(object: &Json, name: &str) -> Result<[f64; 3], Rejection> {
    let items = match required(object, name)? {
        Json::Array(items) => items,
        other => {
            return Err(Rejection::validation(format!("`{name}` must be an array of 3 numbers, not {}", other.type_name())));
        }
    };
    if items.len() != 3 {
        return Err(Rejection::validation(format!("`{name}` must have exactly 3 elements, not {}", items.len())));
    }
    let mut vector = [0.0; 3];
    for (slot, item) in vector.iter_mut().zip(items) {
        let Json::Number(literal) = item else {
            return Err(Rejection::validation(format!("`{name}` elements must be numbers, not {}", item.type_name())));
        };
        // Rust's float parser rounds correctly and accepts every JSON number literal.
        let number: f64 = literal.parse().expect("a JSON number literal parses as f64");
        if !number.is_finite() {
            return Err(Rejection::validation(format!("`{name}` elements must be finite as 64-bit floats, not {literal}")));
        }
        *slot = number;
    }
    Ok(vector)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"observation_id":"obs-1","object_id":25544,"sensor_id":"radar-3","epoch_ms":1767225600000,"position_km":[6524.834,-1284.21,1942.33],"velocity_km_s":[1.2,7.3,-0.4]}"#;

    #[test]
    fn reads_a_valid_observation() {
        let observation = parse_observation(GOOD).unwrap();
        assert_eq!(observation.object_id, 25544);
        assert_eq!(observation.epoch_ms, 1_767_225_600_000);
        assert_eq!(observation.position_km, [6524.834, -1284.21, 1942.33]);
        assert_eq!(observation.velocity_km_s, [1.2, 7.3, -0.4]);
    }

    #[test]
    fn minus_zero_is_an_integer_literal() {
        let line = GOOD.replace("25544", "-0").replace("1767225600000", "-0");
        let observation = parse_observation(&line).unwrap();
        assert_eq!((observation.object_id, observation.epoch_ms), (0, 0));
    }

    #[test]
    fn extremes_of_the_ranges_are_accepted() {
        let line = GOOD.replace("25544", "4294967295").replace("1767225600000", "-62167219200000");
        let observation = parse_observation(&line).unwrap();
        assert_eq!((observation.object_id, observation.epoch_ms), (u32::MAX, -62_167_219_200_000));
        let line = GOOD.replace("1767225600000", "253402300799999");
        assert_eq!(parse_observation(&line).unwrap().epoch_ms, 253_402_300_799_999);
    }

    #[test]
    fn epochs_rfc_3339_cannot_write_are_rejected() {
        for epoch in ["9223372036854775807", "-9223372036854775808", "253402300800000", "-62167219200001"] {
            let rejection = parse_observation(&GOOD.replace("1767225600000", epoch)).unwrap_err();
            assert_eq!(rejection.kind, InvalidKind::Validation, "{epoch}");
            assert!(rejection.message.contains("year 0000 to year 9999"), "{}", rejection.message);
        }
    }
}
