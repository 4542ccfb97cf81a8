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

/// A valid observation. `sensor_id` is checked to be a string but not kept: the correlator has no
/// use for it, and copying it out was an allocation per observation.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub observation_id: String,
    pub object_id: u32,
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
    // Most payloads are exactly what producers write: the six fields in order, no whitespace, no
    // escapes. Those are read by a scanner that accepts nothing else (no JSON it would read
    // differently from serde_json); every other payload takes the general path below. The scan is
    // about half the correlator's time otherwise.
    let fields = match canonical::scan(payload) {
        Some(fields) => fields,
        None => general(payload)?,
    };
    validate(fields)
}

/// The fields, read but not yet checked against the rules of physics.
struct Fields<'a> {
    observation_id: String,
    object_id: u32,
    /// Borrowed from the payload when it holds no escapes.
    #[cfg_attr(not(test), expect(dead_code, reason = "read only to check that both paths read it alike"))]
    sensor_id: std::borrow::Cow<'a, str>,
    epoch_ms: i64,
    position_km: Vec3,
    velocity_km_s: Vec3,
}

fn validate(f: Fields<'_>) -> Result<Observation, Failure> {
    let radius = norm(f.position_km);
    if !(MIN_RADIUS_KM..=MAX_RADIUS_KM).contains(&radius) {
        return Err(Failure::validation(format!(
            "|position_km| must be from {MIN_RADIUS_KM} to {MAX_RADIUS_KM} km, not {radius:.3} km"
        )));
    }
    let speed = norm(f.velocity_km_s);
    if speed > MAX_SPEED_KM_S {
        return Err(Failure::validation(format!("|velocity_km_s| must be at most {MAX_SPEED_KM_S} km/s, not {speed:.3} km/s")));
    }
    Ok(Observation {
        observation_id: f.observation_id,
        object_id: f.object_id,
        epoch_ms: f.epoch_ms,
        position_km: f.position_km,
        velocity_km_s: f.velocity_km_s,
    })
}

/// Any JSON: fields captured raw, then each read with its own rule and message.
fn general(payload: &[u8]) -> Result<Fields<'_>, Failure> {
    let raw: RawFields<'_> = serde_json::from_slice(payload).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => Failure::validation(NOT_AN_OBJECT),
        _ => Failure::deserialization(format!("not valid JSON: {e}")),
    })?;
    let observation_id = string(raw.observation_id, "observation_id")?;
    let object_id = integer(raw.object_id, "object_id")?;
    let object_id = u32::try_from(object_id).map_err(|_| {
        Failure::validation(format!("`object_id` must be an integer from 0 to 4294967295, not {object_id}"))
    })?;
    let sensor_id = string(raw.sensor_id, "sensor_id")?.into();
    let epoch_ms = integer(raw.epoch_ms, "epoch_ms")?;
    let epoch_ms = i64::try_from(epoch_ms)
        .map_err(|_| Failure::validation(format!("`epoch_ms` must fit in a signed 64-bit integer, not {epoch_ms}")))?;
    let position_km = vector(raw.position_km, "position_km")?;
    let velocity_km_s = vector(raw.velocity_km_s, "velocity_km_s")?;
    Ok(Fields { observation_id, object_id, sensor_id, epoch_ms, position_km, velocity_km_s })
}

/// The canonical form: `{"observation_id":"..","object_id":N,"sensor_id":"..","epoch_ms":N,
/// "position_km":[x,y,z],"velocity_km_s":[x,y,z]}` with nothing between the tokens, strings of
/// printable ASCII without escapes, numbers as JSON writes them, integers in range and finite
/// floats. What it accepts, the general path reads to the same values; what it does not, it leaves
/// to the general path (including every payload that fails a rule, so messages stay the same).
mod canonical {
    use super::Fields;

    struct Cursor<'a> {
        bytes: &'a [u8],
        at: usize,
    }

    impl<'a> Cursor<'a> {
        fn token(&mut self, text: &[u8]) -> Option<()> {
            let end = self.at + text.len();
            (self.bytes.get(self.at..end)? == text).then(|| self.at = end)
        }

        fn string(&mut self) -> Option<&'a str> {
            self.token(b"\"")?;
            let start = self.at;
            let len = self.bytes[start..].iter().position(|&b| !(0x20..0x7f).contains(&b) || b == b'"' || b == b'\\')?;
            self.at = start + len;
            self.token(b"\"")?;
            Some(ascii(&self.bytes[start..start + len]))
        }

        /// Skips ASCII digits, folding them into `value` (wrapping: only 19 digits or fewer are
        /// used); how many there were. Eight bytes at a time (see [`leading_digits`]).
        fn digits(&mut self, value: &mut u64) -> usize {
            let start = self.at;
            loop {
                let rest = &self.bytes[self.at..];
                let word = match rest.first_chunk::<8>() {
                    Some(eight) => u64::from_le_bytes(*eight),
                    None => {
                        let mut padded = [0u8; 8]; // past the end: zero bytes, not digits
                        padded[..rest.len()].copy_from_slice(rest);
                        u64::from_le_bytes(padded)
                    }
                };
                let (count, digits) = leading_digits(word);
                *value = value.wrapping_mul(POWERS_OF_TEN_U64[count]).wrapping_add(digits);
                self.at += count;
                if count < 8 {
                    return self.at - start;
                }
            }
        }

        /// A JSON number: `-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?`; `integer` allows no fraction or exponent.
        fn number(&mut self, integer: bool) -> Option<Number<'a>> {
            let start = self.at;
            let negative = self.bytes.get(self.at) == Some(&b'-');
            if negative {
                self.at += 1;
            }
            let first = *self.bytes.get(self.at)?;
            let mut value = 0u64;
            let whole = self.digits(&mut value);
            if whole == 0 || (first == b'0' && whole > 1) {
                return None;
            }
            let (mut fraction_digits, mut exponent) = (0, false);
            if !integer {
                if self.bytes.get(self.at) == Some(&b'.') {
                    self.at += 1;
                    fraction_digits = self.digits(&mut value);
                    if fraction_digits == 0 {
                        return None;
                    }
                }
                if matches!(self.bytes.get(self.at), Some(b'e' | b'E')) {
                    exponent = true;
                    self.at += 1;
                    if matches!(self.bytes.get(self.at), Some(b'+' | b'-')) {
                        self.at += 1;
                    }
                    if self.digits(&mut 0) == 0 {
                        return None;
                    }
                }
            } else if matches!(self.bytes.get(self.at), Some(b'.' | b'e' | b'E')) {
                return None;
            }
            Some(Number {
                text: ascii(&self.bytes[start..self.at]),
                negative,
                digits: (whole + fraction_digits <= 19).then_some(value),
                fraction_digits,
                exponent,
            })
        }

        /// An integer in `T`'s range (`-0` is 0, as the general path reads it).
        fn integer<T: TryFrom<i128>>(&mut self) -> Option<T> {
            let n = self.number(true)?;
            let magnitude = i128::from(n.digits?);
            T::try_from(if n.negative { -magnitude } else { magnitude }).ok()
        }

        /// A finite float. Clinger's fast path where it is exact: digits that fit in 53 bits
        /// divided by a power of ten up to 10^22 are two exact doubles, and one IEEE division
        /// rounds correctly, as `str::parse` does (observations as sensors write them: 10 or so
        /// digits, none of it exponents). Anything else goes to `str::parse`.
        fn float(&mut self) -> Option<f64> {
            let n = self.number(false)?;
            if let Some(digits) = n.digits
                && !n.exponent
                && digits < 1 << 53
                && let Some(&scale) = POWERS_OF_TEN.get(n.fraction_digits)
            {
                let value = digits as f64 / scale;
                return Some(if n.negative { -value } else { value });
            }
            n.text.parse::<f64>().ok().filter(|v| v.is_finite())
        }

        fn vector(&mut self) -> Option<[f64; 3]> {
            let mut out = [0.0; 3];
            self.token(b"[")?;
            for (i, slot) in out.iter_mut().enumerate() {
                if i > 0 {
                    self.token(b",")?;
                }
                *slot = self.float()?;
            }
            self.token(b"]")?;
            Some(out)
        }
    }

    /// 10^0 to 10^8.
    const POWERS_OF_TEN_U64: [u64; 9] = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000];

    /// How many of the eight bytes of `word` (first byte lowest) are ASCII digits before the first
    /// that is not, and their value. SWAR: a byte-at-a-time loop was most of a plugin's parse, for
    /// which wasm code is slower still than native.
    pub(super) fn leading_digits(word: u64) -> (usize, u64) {
        const ONES: u64 = 0x0101_0101_0101_0101;
        // Digits become 0..=9 and keep a zero high nibble, also after adding 6; any other byte
        // shows a high bit in one of the two. (A carry out of a non-digit byte only touches bytes
        // after it, which do not count.)
        let t = word ^ (ONES * b'0' as u64);
        let not_digit = (t | t.wrapping_add(ONES * 6)) & (ONES * 0xF0);
        let count = (not_digit.trailing_zeros() / 8) as usize;
        if count == 0 {
            return (0, 0);
        }
        // The digits to the top bytes, zeros (leading zero digits) below, then the eight digits'
        // value by three multiplications (pairs, quads, all eight).
        let v = t << (8 * (8 - count));
        let v = v.wrapping_mul(10).wrapping_add(v >> 8);
        let v = (v & 0x0000_00FF_0000_00FF)
            .wrapping_mul(100 + (1_000_000 << 32))
            .wrapping_add(((v >> 16) & 0x0000_00FF_0000_00FF).wrapping_mul(1 + (10_000 << 32)))
            >> 32;
        (count, v)
    }

    /// A number the scanner read: its text, and its digits as one integer where they fit.
    struct Number<'a> {
        text: &'a str,
        negative: bool,
        /// Every digit before the exponent, point left out; `None` past 19 digits.
        digits: Option<u64>,
        fraction_digits: usize,
        exponent: bool,
    }

    /// 10^0 to 10^22: every one an exact double.
    const POWERS_OF_TEN: [f64; 23] =
        [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22];

    /// Text the scanner has checked byte by byte to be printable ASCII (strings) or digits, signs,
    /// points and exponents (numbers). Validating it as UTF-8 again was a sixth of the parse.
    fn ascii(checked: &[u8]) -> &str {
        debug_assert!(checked.is_ascii());
        // SAFETY: every byte was checked to be ASCII by the caller, and ASCII is UTF-8.
        unsafe { std::str::from_utf8_unchecked(checked) }
    }

    /// The whole of `text` as the scanner reads a float, for tests.
    #[cfg(test)]
    pub(super) fn float_of(text: &str) -> Option<f64> {
        let mut c = Cursor { bytes: text.as_bytes(), at: 0 };
        c.float().filter(|_| c.at == text.len())
    }

    pub(super) fn scan(payload: &[u8]) -> Option<Fields<'_>> {
        let mut c = Cursor { bytes: payload, at: 0 };
        c.token(b"{\"observation_id\":")?;
        let observation_id = c.string()?.to_string();
        c.token(b",\"object_id\":")?;
        let object_id = c.integer::<u32>()?;
        c.token(b",\"sensor_id\":")?;
        let sensor_id = c.string()?.into();
        c.token(b",\"epoch_ms\":")?;
        let epoch_ms = c.integer::<i64>()?;
        c.token(b",\"position_km\":")?;
        let position_km = c.vector()?;
        c.token(b",\"velocity_km_s\":")?;
        let velocity_km_s = c.vector()?;
        c.token(b"}")?;
        (c.at == payload.len()).then_some(Fields { observation_id, object_id, sensor_id, epoch_ms, position_km, velocity_km_s })
    }
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

    /// The canonical scanner reads exactly what the general path reads, or leaves the payload to it.
    fn same_as_general(payload: &[u8]) -> bool {
        match canonical::scan(payload) {
            None => false,
            Some(fast) => {
                let slow = general(payload).unwrap_or_else(|f| panic!("the scanner took {:?}, which the general path refuses: {f:?}", String::from_utf8_lossy(payload)));
                assert_eq!(
                    (&fast.observation_id, fast.object_id, &fast.sensor_id, fast.epoch_ms, fast.position_km, fast.velocity_km_s),
                    (&slow.observation_id, slow.object_id, &slow.sensor_id, slow.epoch_ms, slow.position_km, slow.velocity_km_s),
                    "{}",
                    String::from_utf8_lossy(payload)
                );
                true
            }
        }
    }

    #[test]
    fn the_canonical_form_is_scanned_and_the_rest_left_to_the_general_path() {
        assert!(same_as_general(GOOD.as_bytes()));
        assert!(same_as_general(GOOD.replace("25544", "-0").replace("1767225600000", "-0").as_bytes()), "-0 is 0 on both paths");
        for other in [
            GOOD.replace(",\"", ", \""),                          // whitespace
            GOOD.replace("obs-1", "obs-\\u0031"),                 // an escape
            GOOD.replace("obs-1", "obs-é"),                        // not ASCII
            GOOD.replace("25544", "025544"),                       // not JSON
            GOOD.replace("25544", "4294967296"),                   // out of range
            GOOD.replace("25544", "-1"),
            GOOD.replace("1767225600000", "1767225600000.0"),
            GOOD.replace("6524.834", "1e400"),                     // not finite
            GOOD.replace("6524.834", "6524."),
            GOOD.replace("6524.834", ".5"),
            GOOD.replace("[1.2,7.3,-0.4]", "[1.2,7.3]"),
            GOOD.replace("[1.2,7.3,-0.4]", "[1.2,7.3,-0.4,1]"),
            GOOD.replace("\"sensor_id\"", "\"snr\":1,\"sensor_id\""), // another field
            format!("{GOOD} "),
            format!("{GOOD}{{}}"),
            GOOD[..GOOD.len() - 1].to_string(),
        ] {
            assert!(canonical::scan(other.as_bytes()).is_none(), "{other}");
        }
        // Still read by the general path where it is valid.
        assert_eq!(parse(GOOD.replace(",\"", ", \"").as_bytes()).unwrap(), parse(GOOD.as_bytes()).unwrap());
    }

    proptest::proptest! {
        #[test]
        fn what_the_scanner_reads_the_general_path_reads_alike(
            id in "[ -~]{0,12}",
            object in proptest::num::u32::ANY,
            epoch in proptest::num::i64::ANY,
            numbers in proptest::collection::vec(proptest::num::f64::ANY, 6),
            style in 0u8..4,
            decimals in 0usize..12,
            cut in proptest::option::of((0usize..400, proptest::sample::select(b"0 .e-+\"\\,}]1\xc3x".to_vec()))),
        ) {
            // The last style writes as sensors do (a few thousand km to many decimals): the fast float path.
            let number = |v: f64| match style {
                0 => format!("{v}"),
                1 => format!("{v:e}"),
                2 => format!("{v:.6}"),
                _ => format!("{:.decimals$}", v % 1e5),
            };
            let n: Vec<String> = numbers.iter().map(|&v| number(v)).collect();
            let id_json = serde_json::to_string(&id).unwrap();
            let mut text = format!(
                r#"{{"observation_id":{id_json},"object_id":{object},"sensor_id":"radar-1","epoch_ms":{epoch},"position_km":[{},{},{}],"velocity_km_s":[{},{},{}]}}"#,
                n[0], n[1], n[2], n[3], n[4], n[5]
            ).into_bytes();
            let plain = !id.contains(['"', '\\']) && numbers.iter().all(|v| v.is_finite()) && n.iter().all(|t| !t.contains("inf") && !t.contains("NaN"));
            if cut.is_none() && plain {
                proptest::prop_assert!(same_as_general(&text), "{}", String::from_utf8_lossy(&text));
            }
            if let Some((at, byte)) = cut {
                let at = at.min(text.len());
                text.insert(at, byte);
            }
            // Whatever the scanner takes, the general path reads the same (checked inside).
            same_as_general(&text);
        }
    }

    proptest::proptest! {
        /// Eight bytes at a time, the leading digits are counted and read as a byte loop reads them.
        #[test]
        fn leading_digits_reads_as_a_byte_loop_does(
            bytes in proptest::collection::vec(proptest::prop_oneof![b'0'..=b'9', proptest::num::u8::ANY], 8),
        ) {
            let count = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
            let value = bytes[..count].iter().fold(0u64, |v, b| v * 10 + u64::from(b - b'0'));
            let word = u64::from_le_bytes(bytes.as_slice().try_into().unwrap());
            proptest::prop_assert_eq!(canonical::leading_digits(word), (count, value));
        }
    }

    #[test]
    fn every_byte_value_stops_the_digits_unless_it_is_one() {
        let value_of = |digits: &[u8]| digits.iter().fold(0, |v, b| v * 10 + u64::from(b - b'0'));
        for byte in 0..=255u8 {
            for at in 0..8 {
                let mut bytes = *b"12345678";
                bytes[at] = byte;
                let expected = if byte.is_ascii_digit() { (8, value_of(&bytes)) } else { (at, value_of(&bytes[..at])) };
                assert_eq!(canonical::leading_digits(u64::from_le_bytes(bytes)), expected, "byte {byte:#x} at {at}");
            }
        }
    }

    #[test]
    fn floats_read_as_str_parse_reads_them_on_both_sides_of_the_fast_path() {
        for text in [
            "0", "-0", "0.0", "-0.0", "0.1", "0.3", "-6524.834", "6524.834000", "1.5e3", "2E-3", "9007199254740991",
            "9007199254740993", "123456789.123456789", "1.0000000000000000000000001", "0.1234567890123456789012",
            "0.12345678901234567890123", "1.7976931348623157", "4.9406564584124654", "99999999999999999999",
        ] {
            let value = canonical::float_of(text).unwrap_or_else(|| panic!("{text} not read"));
            let expected: f64 = text.parse().unwrap();
            assert_eq!(value.to_bits(), expected.to_bits(), "{text}");
        }
        for not_json in ["01", "1.", ".5", "-", "1e", "+1", "1e400"] {
            assert_eq!(canonical::float_of(not_json), None, "{not_json}");
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
