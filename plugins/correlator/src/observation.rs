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
/// The earliest `epoch_ms`: 0000-01-01T00:00:00Z, the first instant RFC 3339 can write.
pub const MIN_EPOCH_MS: i64 = -62_167_219_200_000;
/// The latest `epoch_ms`: 9999-12-31T23:59:59.999Z, the last instant RFC 3339 can write.
pub const MAX_EPOCH_MS: i64 = 253_402_300_799_999;

/// A valid observation. `sensor_id` is checked to be a string but not kept: the correlator has no
/// use for it, and copying it out was an allocation per observation.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub observation_id: compact_str::CompactString,
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
    // Most payloads are plain: the six fields in whatever order the producer chose, perhaps with
    // members of its own, strings without escapes. Those are read by a scanner that gives up on
    // anything unusual (so on no JSON it would read differently from serde_json); every other
    // payload takes the general path below, 2-3x slower. Parsing is about half the correlator's
    // time otherwise.
    let fields = match fast::scan(payload) {
        Some(fields) => fields,
        None => general(payload)?,
    };
    validate(fields)
}

/// The general path alone, the scanner skipped: what [`parse`] does with a payload the scanner
/// leaves, and the parse bench's yardstick for what the scanner saves.
#[doc(hidden)]
pub fn parse_general(payload: &[u8]) -> Result<Observation, Failure> {
    validate(general(payload)?)
}

/// The fields, read but not yet checked against the rules of physics.
struct Fields<'a> {
    observation_id: compact_str::CompactString,
    object_id: u32,
    /// Borrowed from the payload when it holds no escapes.
    #[cfg_attr(not(test), expect(dead_code, reason = "read only to check that both paths read it alike"))]
    sensor_id: std::borrow::Cow<'a, str>,
    epoch_ms: i64,
    position_km: Vec3,
    velocity_km_s: Vec3,
}

fn validate(f: Fields<'_>) -> Result<Observation, Failure> {
    if !(MIN_EPOCH_MS..=MAX_EPOCH_MS).contains(&f.epoch_ms) {
        return Err(Failure::validation(format!(
            "`epoch_ms` must be from {MIN_EPOCH_MS} (0000-01-01T00:00:00Z) to {MAX_EPOCH_MS} (9999-12-31T23:59:59.999Z), not {}",
            f.epoch_ms
        )));
    }
    let radius = norm(f.position_km);
    if !(MIN_RADIUS_KM..=MAX_RADIUS_KM).contains(&radius) {
        return Err(Failure::validation(format!("|position_km| must be from {MIN_RADIUS_KM} to {MAX_RADIUS_KM} km, not {radius:.3} km")));
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
    let observation_id = string(raw.observation_id, "observation_id")?.into();
    let object_id = integer(raw.object_id, "object_id")?;
    let object_id = u32::try_from(object_id)
        .map_err(|_| Failure::validation(format!("`object_id` must be an integer from 0 to 4294967295, not {object_id}")))?;
    let sensor_id = string(raw.sensor_id, "sensor_id")?.into();
    let epoch_ms = integer(raw.epoch_ms, "epoch_ms")?;
    let epoch_ms = i64::try_from(epoch_ms)
        .map_err(|_| Failure::validation(format!("`epoch_ms` must fit in a signed 64-bit integer, not {epoch_ms}")))?;
    let position_km = vector(raw.position_km, "position_km")?;
    let velocity_km_s = vector(raw.velocity_km_s, "velocity_km_s")?;
    Ok(Fields { observation_id, object_id, sensor_id, epoch_ms, position_km, velocity_km_s })
}

/// The plain form: one JSON object holding the six fields in any order, each once or more (the
/// last one counts, as on the general path), among any other members; whitespace between tokens.
/// The six are read only where their value is plain: strings of ASCII without escapes or control bytes,
/// numbers as JSON writes them, integers in range and finite floats. Other members' values are
/// skipped and checked to be JSON on the way (escapes, nesting up to `MAX_DEPTH`, UTF-8), so
/// broken text still fails as broken text. What it accepts, the general path reads to the same
/// values; what it does not, it leaves to the general path (including every payload that fails a
/// rule, so messages stay the same).
mod fast {
    use super::Fields;

    /// Nesting the scanner follows inside a skipped member. It recurses, and a plugin's stack is
    /// small; deeper goes to the general path (serde_json skips any depth, without recursing).
    pub(super) const MAX_DEPTH: usize = 32;

    struct Cursor<'a> {
        bytes: &'a [u8],
        at: usize,
    }

    impl<'a> Cursor<'a> {
        fn token(&mut self, text: &[u8]) -> Option<()> {
            let end = self.at + text.len();
            (self.bytes.get(self.at..end)? == text).then(|| self.at = end)
        }

        /// Skips JSON's four whitespace bytes (what serde_json skips: nothing else). Called between
        /// every two tokens, where there is mostly none: one comparison then.
        #[inline(always)]
        fn whitespace(&mut self) {
            if self.bytes.get(self.at).is_some_and(|&b| b <= b' ') {
                while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.at) {
                    self.at += 1;
                }
            }
        }

        /// The next byte, taken.
        fn next(&mut self) -> Option<u8> {
            let b = *self.bytes.get(self.at)?;
            self.at += 1;
            Some(b)
        }

        /// A member's name, as its raw bytes: no escapes (`"object\u005fid"` is `object_id`, so a
        /// name with one goes to the general path), no control bytes, valid UTF-8.
        fn name(&mut self) -> Option<&'a [u8]> {
            self.token(b"\"")?;
            let start = self.at;
            self.at += plain_run(&self.bytes[start..], false);
            self.token(b"\"")?;
            let name = &self.bytes[start..self.at - 1];
            if !name.is_ascii() {
                std::str::from_utf8(name).ok()?;
            }
            Some(name)
        }

        /// Skips a string as serde_json skips an ignored one: escapes must be JSON's (any four hex
        /// digits after `\u`, as serde_json does not decode them there), no control bytes. Bytes past
        /// ASCII must be UTF-8 (serde_json does not check them when it ignores a string; the general
        /// path decides).
        fn skip_string(&mut self) -> Option<()> {
            self.token(b"\"")?;
            let start = self.at;
            loop {
                self.at += plain_run(&self.bytes[self.at..], false);
                match self.next()? {
                    b'"' => break,
                    b'\\' => match self.next()? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                        b'u' => {
                            let hex = self.bytes.get(self.at..self.at + 4)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return None;
                            }
                            self.at += 4;
                        }
                        _ => return None,
                    },
                    _ => return None, // a control byte
                }
            }
            let text = &self.bytes[start..self.at - 1];
            if !text.is_ascii() {
                std::str::from_utf8(text).ok()?;
            }
            Some(())
        }

        /// Skips any JSON value, `depth` levels inside a skipped member, checking its syntax.
        fn skip_value(&mut self, depth: usize) -> Option<()> {
            match *self.bytes.get(self.at)? {
                b'"' => self.skip_string(),
                b't' => self.token(b"true"),
                b'f' => self.token(b"false"),
                b'n' => self.token(b"null"),
                b'-' | b'0'..=b'9' => self.number(false).map(drop),
                open @ (b'[' | b'{') if depth < MAX_DEPTH => {
                    self.at += 1;
                    let close = if open == b'[' { b']' } else { b'}' };
                    self.whitespace();
                    if self.bytes.get(self.at) == Some(&close) {
                        self.at += 1;
                        return Some(());
                    }
                    loop {
                        self.whitespace();
                        if open == b'{' {
                            self.skip_string()?;
                            self.whitespace();
                            self.token(b":")?;
                            self.whitespace();
                        }
                        self.skip_value(depth + 1)?;
                        self.whitespace();
                        match self.next()? {
                            b',' => {}
                            b if b == close => return Some(()),
                            _ => return None,
                        }
                    }
                }
                _ => None,
            }
        }

        /// A string of ASCII without escapes or control bytes (what a field's value is read from).
        fn string(&mut self) -> Option<&'a str> {
            self.token(b"\"")?;
            let start = self.at;
            self.at += plain_run(&self.bytes[start..], true);
            self.token(b"\"")?;
            Some(ascii(&self.bytes[start..self.at - 1]))
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
        /// Inlined: once `skip_value` called it too, it was left out of line, and building the whole
        /// `Number` in memory for each float cost a fifth more on the generator's lines.
        #[inline(always)]
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
                self.whitespace();
                if i > 0 {
                    self.token(b",")?;
                    self.whitespace();
                }
                *slot = self.float()?;
            }
            self.whitespace();
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

    /// How many bytes of `bytes` come before the first that ends a run of plain string: `"`, `\`,
    /// a control byte (which JSON does not allow in strings), a byte past ASCII if `ascii_only`, or
    /// the end. Eight bytes at a time, as [`leading_digits`] (a byte loop was a fifth of a scan):
    /// each test below flags exactly the first byte it holds for (a borrow runs only upwards, from
    /// a byte that is flagged itself), so the lowest flag of all is the first stop.
    pub(super) fn plain_run(bytes: &[u8], ascii_only: bool) -> usize {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGH: u64 = ONES * 0x80;
        let mut at = 0;
        loop {
            let rest = &bytes[at..];
            let word = match rest.first_chunk::<8>() {
                Some(eight) => u64::from_le_bytes(*eight),
                None => {
                    let mut padded = [0u8; 8]; // past the end: zero bytes, a stop
                    padded[..rest.len()].copy_from_slice(rest);
                    u64::from_le_bytes(padded)
                }
            };
            let zero_byte = |w: u64| w.wrapping_sub(ONES) & !w & HIGH;
            let control = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
            let quote = zero_byte(word ^ (ONES * u64::from(b'"')));
            let backslash = zero_byte(word ^ (ONES * u64::from(b'\\')));
            let past_ascii = if ascii_only { word & HIGH } else { 0 };
            let stops = control | quote | backslash | past_ascii;
            if stops != 0 {
                return (at + (stops.trailing_zeros() / 8) as usize).min(bytes.len());
            }
            at += 8;
        }
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

    /// Text the scanner has checked to be ASCII (strings, by [`plain_run`]) or digits, signs,
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

    /// The six members' openings as the generator writes them, in its order. Each member is first
    /// tried as the one following the last field read: one comparison where producers keep an
    /// order, instead of finding the name's end and then matching it.
    const OPENINGS: [&[u8]; 6] =
        [b"\"observation_id\":", b"\"object_id\":", b"\"sensor_id\":", b"\"epoch_ms\":", b"\"position_km\":", b"\"velocity_km_s\":"];

    pub(super) fn scan(payload: &[u8]) -> Option<Fields<'_>> {
        let mut c = Cursor { bytes: payload, at: 0 };
        let (mut observation_id, mut object_id, mut sensor_id, mut epoch_ms, mut position_km, mut velocity_km_s) =
            (None, None, None, None, None, None);
        c.whitespace();
        c.token(b"{")?;
        c.whitespace();
        if c.bytes.get(c.at) == Some(&b'}') {
            return None; // no fields: the general path names the first missing one
        }
        let mut expected = 0;
        loop {
            c.whitespace();
            let field = if c.token(OPENINGS[expected]).is_some() {
                Some(expected)
            } else {
                let name = c.name()?;
                c.whitespace();
                c.token(b":")?;
                match name {
                    b"observation_id" => Some(0),
                    b"object_id" => Some(1),
                    b"sensor_id" => Some(2),
                    b"epoch_ms" => Some(3),
                    b"position_km" => Some(4),
                    b"velocity_km_s" => Some(5),
                    _ => None,
                }
            };
            c.whitespace();
            // A repeated field is read each time (so each must be plain) and the last one kept.
            match field {
                Some(0) => observation_id = Some(c.string()?),
                Some(1) => object_id = Some(c.integer::<u32>()?),
                Some(2) => sensor_id = Some(c.string()?),
                Some(3) => epoch_ms = Some(c.integer::<i64>()?),
                Some(4) => position_km = Some(c.vector()?),
                Some(_) => velocity_km_s = Some(c.vector()?),
                None => c.skip_value(0)?,
            }
            if let Some(field) = field {
                expected = (field + 1) % OPENINGS.len();
            }
            c.whitespace();
            match c.next()? {
                b',' => {}
                b'}' => break,
                _ => return None,
            }
        }
        c.whitespace();
        (c.at == payload.len()).then_some(Fields {
            observation_id: observation_id?.into(),
            object_id: object_id?,
            sensor_id: sensor_id?.into(),
            epoch_ms: epoch_ms?,
            position_km: position_km?,
            velocity_km_s: velocity_km_s?,
        })
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
    let is_integer_literal = !text.is_empty() && text.strip_prefix('-').unwrap_or(text).bytes().all(|b| b.is_ascii_digit()) && text != "-";
    if !is_integer_literal {
        return Err(Failure::validation(format!("`{field}` must be an integer, not {}", shorten(text))));
    }
    text.parse::<i128>().map_err(|_| Failure::validation(format!("`{field}` is out of range: {}", shorten(text))))
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
    use proptest::strategy::Strategy as _;
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
        (f.reason(), f.message().to_string())
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
            (with("epoch_ms", "9223372036854775807"), "`epoch_ms` must be from -62167219200000 (0000-01-01T00:00:00Z) to 253402300799999"),
            (with("epoch_ms", "253402300800000"), "not 253402300800000"),
            (with("epoch_ms", "-62167219200001"), "not -62167219200001"),
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

    /// The fast scanner reads exactly what the general path reads, or leaves the payload to it.
    fn same_as_general(payload: &[u8]) -> bool {
        checked_scan(payload).is_some()
    }

    /// What the fast scanner read, after checking that the general path reads the same.
    fn checked_scan(payload: &[u8]) -> Option<Fields<'_>> {
        let fast = fast::scan(payload)?;
        let slow = general(payload)
            .unwrap_or_else(|f| panic!("the scanner took {:?}, which the general path refuses: {f:?}", String::from_utf8_lossy(payload)));
        assert_eq!(
            (&fast.observation_id, fast.object_id, &fast.sensor_id, fast.epoch_ms, fast.position_km, fast.velocity_km_s),
            (&slow.observation_id, slow.object_id, &slow.sensor_id, slow.epoch_ms, slow.position_km, slow.velocity_km_s),
            "{}",
            String::from_utf8_lossy(payload)
        );
        Some(fast)
    }

    #[test]
    fn plain_observations_are_scanned_and_the_rest_left_to_the_general_path() {
        for plain in [
            GOOD.to_string(),
            GOOD.replace("25544", "-0").replace("1767225600000", "-0"), // -0 is 0 on both paths
            GOOD.replace(",\"", ", \""),                                // whitespace
            GOOD.replace("\"sensor_id\"", "\"snr\":1,\"sensor_id\""),   // another field
            format!(" {GOOD}\n"),
        ] {
            assert!(same_as_general(plain.as_bytes()), "{plain}");
        }
        for other in [
            GOOD.replace("obs-1", "obs-\\u0031"), // an escape
            GOOD.replace("obs-1", "obs-é"),       // not ASCII
            GOOD.replace("25544", "025544"),      // not JSON
            GOOD.replace("25544", "4294967296"),  // out of range
            GOOD.replace("25544", "-1"),
            GOOD.replace("1767225600000", "1767225600000.0"),
            GOOD.replace("6524.834", "1e400"), // not finite
            GOOD.replace("6524.834", "6524."),
            GOOD.replace("6524.834", ".5"),
            GOOD.replace("[1.2,7.3,-0.4]", "[1.2,7.3]"),
            GOOD.replace("[1.2,7.3,-0.4]", "[1.2,7.3,-0.4,1]"),
            GOOD.replace("\"object_id\"", "\"object\\u005fid\""), // an escaped name
            GOOD.replace(",\"sensor_id\":\"radar-3\"", ""),       // a field missing
            "{}".to_string(),
            format!("{GOOD}{{}}"),
            GOOD[..GOOD.len() - 1].to_string(),
        ] {
            assert!(fast::scan(other.as_bytes()).is_none(), "{other}");
        }
        // Still read by the general path where it is valid.
        let escaped_name = GOOD.replace("\"object_id\":25544", "\"object\\u005fid\":7");
        assert_eq!(parse(escaped_name.as_bytes()).unwrap().object_id, 7);
    }

    /// GOOD's members, to be written in other orders and among others.
    const MEMBERS: [&str; 6] = [
        r#""observation_id":"obs-1""#,
        r#""object_id":25544"#,
        r#""sensor_id":"radar-3""#,
        r#""epoch_ms":1767225600000"#,
        r#""position_km":[6524.834,-1284.21,1942.33]"#,
        r#""velocity_km_s":[1.2,7.3,-0.4]"#,
    ];

    /// `sensor_id` last, as one real feed writes it.
    fn sensor_id_last() -> Vec<&'static str> {
        let mut members = MEMBERS.to_vec();
        let sensor = members.remove(2);
        members.push(sensor);
        members
    }

    fn object_of(members: &[&str]) -> String {
        format!("{{{}}}", members.join(","))
    }

    fn permutations(items: &[&'static str]) -> Vec<Vec<&'static str>> {
        if items.is_empty() {
            return vec![Vec::new()];
        }
        let mut all = Vec::new();
        for (i, first) in items.iter().enumerate() {
            let mut rest = items.to_vec();
            rest.remove(i);
            for mut tail in permutations(&rest) {
                tail.insert(0, first);
                all.push(tail);
            }
        }
        all
    }

    #[test]
    fn every_order_of_the_fields_takes_the_fast_path() {
        let good = parse(GOOD.as_bytes()).unwrap();
        let orders = permutations(&MEMBERS);
        assert_eq!(orders.len(), 720);
        for order in orders {
            let text = object_of(&order);
            assert!(same_as_general(text.as_bytes()), "not scanned: {text}");
            assert_eq!(parse(text.as_bytes()).unwrap(), good, "{text}");
        }
    }

    /// Other members of every JSON kind, each skipped on the fast path wherever it stands.
    const EXTRAS: [&str; 14] = [
        r#""snr":12"#,
        r#""gain_db":-0.5e-3"#,
        r#""huge":1e400"#,
        r#""digits":123456789012345678901234567890.5"#,
        r#""calibrated":true"#,
        r#""retracted":false"#,
        r#""comment":null"#,
        r#""empty":"""#,
        r#""note":"a \"quoted\" \\ \/ \b\f\n\r\t \u00e9 \uD83D\uDE00 word""#,
        r#""lone":"\ud800""#,
        r#""site":"Kiruna, Sverige, 67.8° N 😀""#,
        r#""naïve name":1"#,
        r#""quality":{"snr_db":14.5,"flags":[true,false,null],"deep":[[[{}]],[],{"a":{"b":["c"]}}]}"#,
        r#""spaced" : [ 1 ,"x", { "a" : null } , [ ] , { } ]"#,
    ];

    #[test]
    fn other_members_of_every_kind_are_skipped_on_the_fast_path() {
        let good = parse(GOOD.as_bytes()).unwrap();
        for extra in EXTRAS {
            for at in 0..=6 {
                let mut members = sensor_id_last();
                members.insert(at, extra);
                let text = object_of(&members);
                assert!(same_as_general(text.as_bytes()), "not scanned: {text}");
                assert_eq!(parse(text.as_bytes()).unwrap(), good, "{text}");
            }
        }
        let mut all = sensor_id_last();
        all.extend(EXTRAS);
        all.rotate_left(3);
        let text = object_of(&all);
        assert!(same_as_general(text.as_bytes()), "not scanned: {text}");
        // And with whitespace between every token, inside the fields' values too.
        let spaced = format!(
            " \r\n{{ {} \t}}\n",
            all.iter().map(|m| m.replacen("\":", "\" :\n ", 1).replace(',', " , ").replace('[', "[ ")).collect::<Vec<_>>().join(" , ")
        );
        assert!(same_as_general(spaced.as_bytes()), "not scanned: {spaced}");
        assert_eq!(parse(spaced.as_bytes()).unwrap(), good);
    }

    #[test]
    fn the_last_of_a_repeated_field_wins_on_both_paths() {
        let good = parse(GOOD.as_bytes()).unwrap();
        let first_is_overridden =
            object_of(&[r#""object_id":7"#, r#""position_km":[7000,0,0]"#, r#""sensor_id":"x""#, GOOD.trim_matches(['{', '}'])]);
        assert!(same_as_general(first_is_overridden.as_bytes()), "not scanned: {first_is_overridden}");
        assert_eq!(parse(first_is_overridden.as_bytes()).unwrap(), good);
        let last_wins =
            object_of(&[GOOD.trim_matches(['{', '}']), r#""object_id":7"#, r#""observation_id":"obs-2""#, r#""velocity_km_s":[0,0,1]"#]);
        let fast = checked_scan(last_wins.as_bytes()).expect("scanned");
        assert_eq!((fast.object_id, fast.observation_id.as_str(), fast.velocity_km_s), (7, "obs-2", [0.0, 0.0, 1.0]));
        // An earlier occurrence that is not plain (or breaks a rule) goes to the general path,
        // which keeps the last one.
        for earlier in [r#""object_id":"x""#, r#""object_id":-1"#, r#""position_km":null"#, r#""observation_id":"\u0041""#] {
            let text = object_of(&[earlier, GOOD.trim_matches(['{', '}'])]);
            assert!(fast::scan(text.as_bytes()).is_none(), "{text}");
            assert_eq!(parse(text.as_bytes()).unwrap(), good, "{text}");
        }
        // A later one that breaks a rule fails as it did.
        let broken_last = object_of(&[GOOD.trim_matches(['{', '}']), r#""object_id":-1"#]);
        assert_eq!(
            reason_of(&broken_last),
            (FailureReason::Validation, "`object_id` must be an integer from 0 to 4294967295, not -1".into())
        );
    }

    #[test]
    fn broken_members_fail_as_broken_json_did() {
        let members = sensor_id_last();
        for broken in [
            r#""x":tru"#,
            r#""x":nul"#,
            r#""x":True"#,
            r#""x":01"#,
            r#""x":1."#,
            r#""x":-"#,
            r#""x":+1"#,
            r#""x":.5"#,
            r#""x":1e"#,
            r#""x":NaN"#,
            r#""x":[1,]"#,
            r#""x":[1 2]"#,
            r#""x":[1"#,
            r#""x":{"a"}"#,
            r#""x":{"a":1,}"#,
            r#""x":{1:2}"#,
            r#""x":{"a" 1}"#,
            r#""x":"\q""#,
            r#""x":"\u12g4""#,
            r#""x":"\u12""#,
            "\"x\":\"raw\ttab\"",
            "\"x\":\"raw\u{1}control\"",
            r#""x":'single'"#,
            r#""x""#,
            r#""x":"#,
            r#""x" 1"#,
            "\"x\u{0}\":1",
            r#"x:1"#,
            r#""#,
        ] {
            for at in [0, 3, 6] {
                let mut with_broken = members.clone();
                with_broken.insert(at, broken);
                let text = object_of(&with_broken);
                assert!(fast::scan(text.as_bytes()).is_none(), "scanned: {text}");
                assert_eq!(reason_of(&text).0, FailureReason::Deserialization, "{text}");
            }
        }
        for broken in [
            format!("{},}}", &GOOD[..GOOD.len() - 1]),
            GOOD.replacen(",", " ", 1),
            GOOD.replacen(":", "", 1),
            format!("{GOOD},"),
            format!("{GOOD}x"),
            format!("\u{c}{GOOD}"), // form feed: not JSON whitespace
        ] {
            assert!(fast::scan(broken.as_bytes()).is_none(), "scanned: {broken}");
            assert_eq!(reason_of(&broken).0, FailureReason::Deserialization, "{broken}");
        }
    }

    #[test]
    fn what_the_scanner_is_unsure_of_it_leaves_to_the_general_path() {
        let good = parse(GOOD.as_bytes()).unwrap();
        let with_extra = |extra: &[u8]| {
            let mut text = b"{\"extra\":".to_vec();
            text.extend_from_slice(extra);
            text.push(b',');
            text.extend_from_slice(&GOOD.as_bytes()[1..]);
            text
        };
        // Nesting past MAX_DEPTH: serde_json skips it at any depth.
        let nested = |depth: usize| with_extra(format!("{}{}", "[".repeat(depth), "]".repeat(depth)).as_bytes());
        assert!(same_as_general(&nested(fast::MAX_DEPTH)));
        for deep in [nested(fast::MAX_DEPTH + 1), nested(10_000)] {
            assert!(fast::scan(&deep).is_none());
            assert_eq!(parse(&deep).unwrap(), good);
        }
        // Bytes that are not UTF-8 in a skipped string or a name: the general path's to judge.
        let bad_name = [b"{\"\xc3(\":1,".as_slice(), &GOOD.as_bytes()[1..]].concat();
        for not_utf8 in [with_extra(b"\"\xff\""), with_extra(b"\"\xc3\""), bad_name.clone()] {
            assert!(fast::scan(&not_utf8).is_none(), "{}", String::from_utf8_lossy(&not_utf8));
        }
        assert_eq!(parse(&bad_name).unwrap_err().reason(), FailureReason::Deserialization);
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
            let plain = !id.contains(['"', '\\'])
                && numbers.iter().all(|v| v.is_finite())
                && n.iter().all(|t| !t.contains("inf") && !t.contains("NaN"));
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

    /// Whitespace as producers put it between tokens (mostly none).
    fn spacing() -> impl proptest::strategy::Strategy<Value = &'static str> {
        proptest::sample::select(vec!["", "", "", " ", "\n", "\t", " \r\n  "])
    }

    /// A JSON string's text: plain runs, every escape (surrogates, lone ones too, in `\u`), non-ASCII.
    fn json_string() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let piece = prop_oneof![
            "[a-zA-Z0-9 _.:/-]{1,6}",
            proptest::sample::select(vec!["\\\"", "\\\\", "\\/", "\\b", "\\f", "\\n", "\\r", "\\t", "é", "€", "😀", "\u{7f}"])
                .prop_map(str::to_string),
            any::<u16>().prop_map(|u| format!("\\u{u:04x}")),
            any::<u16>().prop_map(|u| format!("\\u{u:04X}")),
        ];
        proptest::collection::vec(piece, 0..5).prop_map(|pieces| format!("\"{}\"", pieces.concat()))
    }

    /// Any JSON value's text, nested a few levels, with whitespace inside.
    fn json_value() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            proptest::sample::select(vec![
                "null",
                "true",
                "false",
                "0",
                "-0",
                "1E+2",
                "-0.5e-3",
                "1e400",
                "123456789012345678901234567890"
            ])
            .prop_map(str::to_string),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<f64>().prop_filter("finite", |v| v.is_finite()).prop_map(|v| format!("{v:e}")),
            json_string(),
        ];
        leaf.prop_recursive(4, 24, 4, |inner| {
            prop_oneof![
                (proptest::collection::vec(inner.clone(), 0..4), spacing())
                    .prop_map(|(items, s)| format!("[{s}{}{s}]", items.join(&format!("{s},{s}")))),
                (proptest::collection::vec((json_string(), inner), 0..4), spacing()).prop_map(|(members, s)| {
                    let members: Vec<String> = members.iter().map(|(k, v)| format!("{k}{s}:{s}{v}")).collect();
                    format!("{{{s}{}{s}}}", members.join(&format!("{s},{s}")))
                }),
            ]
        })
    }

    /// The six field names, in GOOD's order.
    const NAMES: [&str; 6] = ["observation_id", "object_id", "sensor_id", "epoch_ms", "position_km", "velocity_km_s"];

    proptest::proptest! {
        /// Fields in any order, among other members of any kind, some given more than once, with
        /// whitespace between tokens: read on the fast path, as the general path reads them (the
        /// last occurrence of each field). With a byte inserted anywhere, still read alike or left
        /// to the general path.
        #[test]
        fn any_order_other_members_and_repeats_read_on_the_fast_path_as_the_general_path_reads(
            id in "[ -!#-\\[\\]-~]{0,12}",
            object in proptest::num::u32::ANY,
            epoch in proptest::num::i64::ANY,
            numbers in proptest::collection::vec(-1e6f64..1e6, 6),
            order in proptest::strategy::Just((0..6).collect::<Vec<usize>>()).prop_shuffle(),
            extras in proptest::collection::vec(("[a-zA-Zé _-]{0,14}", json_value(), proptest::num::usize::ANY), 0..4),
            repeats in proptest::collection::vec((0usize..6, proptest::num::usize::ANY, proptest::bool::ANY, json_value()), 0..3),
            spaces in proptest::collection::vec(spacing(), 16),
            cut in proptest::option::of((proptest::arbitrary::any::<proptest::sample::Index>(), proptest::sample::select(b" \
                \t{}[]:,\"\\u0-e.1nx\xc3\xff\x01".to_vec()))),
        ) {
            let n: Vec<String> = numbers.iter().map(|v| v.to_string()).collect();
            let values = [
                format!("\"{id}\""),
                object.to_string(),
                "\"radar-1\"".to_string(),
                epoch.to_string(),
                format!("[{},{},{}]", n[0], n[1], n[2]),
                format!("[{s}{}{s},{s}{}{s},{}]", n[3], n[4], n[5], s = spaces[0]),
            ];
            // (name, value) in order of writing; each field's last occurrence holds its value above.
            let mut members: Vec<(String, String)> = order.iter().map(|&f| (format!("\"{}\"", NAMES[f]), values[f].clone())).collect();
            for (name, value, at) in &extras {
                if !NAMES.contains(&name.as_str()) {
                    let at = at % (members.len() + 1);
                    members.insert(at, (format!("\"{name}\""), value.clone()));
                }
            }
            // Earlier occurrences of fields: plain ones (read on the fast path, then overridden) or
            // any JSON at all (perhaps left to the general path).
            let plain_values = ["\"other\"", "7", "\"sensor\"", "-5", "[7000,0,0]", "[ 0 , 1e-3 , 2.5 ]"];
            let mut all_plain = true;
            for (f, at, plain, value) in &repeats {
                let last = members.iter().rposition(|(name, _)| name.trim_matches('"') == NAMES[*f]).unwrap();
                let value = if *plain { plain_values[*f].to_string() } else { value.clone() };
                all_plain &= *plain;
                members.insert(at % (last + 1), (format!("\"{}\"", NAMES[*f]), value));
            }
            let space = |i: usize| spaces[i % spaces.len()];
            let body: Vec<String> = members.iter().enumerate().map(|(i, (k, v))| format!("{k}{}:{}{v}", space(i), space(i + 1))).collect();
            let fields = body.join(&format!("{},{}", space(7), space(2)));
            let mut text = format!("{}{{{}{}{}}}{}", space(3), space(5), fields, space(9), space(11)).into_bytes();

            let fast = checked_scan(&text);
            if all_plain {
                let fast = fast.unwrap_or_else(|| panic!("not scanned: {}", String::from_utf8_lossy(&text)));
                proptest::prop_assert_eq!(
                    (fast.observation_id.as_str(), fast.object_id, fast.epoch_ms, fast.position_km, fast.velocity_km_s),
                    (id.as_str(), object, epoch, [numbers[0], numbers[1], numbers[2]], [numbers[3], numbers[4], numbers[5]])
                );
            }
            if let Some((at, byte)) = cut {
                text.insert(at.index(text.len() + 1), byte);
                // Whatever the scanner takes, the general path reads the same (checked inside),
                // so the result, or the failure, is the same.
                checked_scan(&text);
                proptest::prop_assert_eq!(parse(&text), parse_general(&text));
            }
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
            proptest::prop_assert_eq!(fast::leading_digits(word), (count, value));
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
                assert_eq!(fast::leading_digits(u64::from_le_bytes(bytes)), expected, "byte {byte:#x} at {at}");
            }
        }
    }

    #[test]
    fn every_byte_value_ends_a_plain_run_where_a_json_string_would() {
        for byte in 0..=255u8 {
            for at in 0..12 {
                let mut bytes = *b"abcdefghijkl";
                bytes[at] = byte;
                for ascii_only in [false, true] {
                    let stops = byte < 0x20 || byte == b'"' || byte == b'\\' || (ascii_only && byte >= 0x80);
                    for len in 0..=bytes.len() {
                        let expected = if stops && at < len { at } else { len };
                        assert_eq!(fast::plain_run(&bytes[..len], ascii_only), expected, "byte {byte:#x} at {at} of {len}");
                    }
                }
            }
        }
    }

    #[test]
    fn floats_read_as_str_parse_reads_them_on_both_sides_of_the_fast_path() {
        for text in [
            "0",
            "-0",
            "0.0",
            "-0.0",
            "0.1",
            "0.3",
            "-6524.834",
            "6524.834000",
            "1.5e3",
            "2E-3",
            "9007199254740991",
            "9007199254740993",
            "123456789.123456789",
            "1.0000000000000000000000001",
            "0.1234567890123456789012",
            "0.12345678901234567890123",
            "1.7976931348623157",
            "4.9406564584124654",
            "99999999999999999999",
        ] {
            let value = fast::float_of(text).unwrap_or_else(|| panic!("{text} not read"));
            let expected: f64 = text.parse().unwrap();
            assert_eq!(value.to_bits(), expected.to_bits(), "{text}");
        }
        for not_json in ["01", "1.", ".5", "-", "1e", "+1", "1e400"] {
            assert_eq!(fast::float_of(not_json), None, "{not_json}");
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
