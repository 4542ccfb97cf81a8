//! Element sets as they arrive, read strictly into one [`ElementSet`]: a classic TLE (2 or 3 lines) or a CCSDS OMM
//! JSON object as CelesTrak and Space-Track serve it, each refusal naming what is wrong ([`Refusal`]).
//!
//! Strict on purpose: a TLE is fixed columns, so a line one character short or a letter in a number shifts or
//! corrupts every value after it, and a reader that guesses builds an orbit from garbage. Every line's length and
//! checksum are checked, and every field is read from its own columns with only the characters it may hold.

use crate::propagation::Sgp4Error;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;

/// The mean elements SGP4 needs, with the object they describe. The first and second derivatives of the mean
/// motion are read and checked but not kept: SGP4 does not use them (only the older SGP model did).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ElementSet {
    /// NORAD catalogue number (TLE: five digits or Alpha-5; OMM: up to nine digits).
    pub object_id: u32,
    /// The epoch (UTC), Unix microseconds: exact for a TLE, whose day fraction steps by 1e-8 day = 864 us, and
    /// rounded to the nearest microsecond for an OMM epoch written with more digits.
    pub epoch_us: i64,
    pub mean_motion_rev_per_day: f64,
    pub eccentricity: f64,
    pub inclination_deg: f64,
    pub ra_of_asc_node_deg: f64,
    pub arg_of_pericenter_deg: f64,
    pub mean_anomaly_deg: f64,
    /// B*, per Earth radius.
    pub bstar_per_earth_radius: f64,
}

/// Why an element set was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// The payload is not laid out as a TLE (line count, line numbers, line length, characters) nor is it JSON:
    /// dead-lettered as `Deserialization`.
    Layout(String),
    /// Valid JSON that is not one OMM object: `Validation`.
    NotAnObject(String),
    /// A TLE line's checksum digit (column 69) is not the modulo-10 sum of the line: `Validation`.
    Checksum { line: u8, written: char, computed: u8 },
    /// A catalogue number that is not one: a bad Alpha-5 field, lines 1 and 2 naming different objects, an OMM
    /// `NORAD_CAT_ID` that is not an integer of up to nine digits: `Validation`.
    CatalogueNumber(String),
    /// A mandatory field is absent: `Validation`.
    MissingField(&'static str),
    /// A field holds what it may not: `Validation`.
    Field { field: &'static str, problem: String },
    /// SGP4 refuses the elements, at initialisation or when propagating to the epoch: `Validation`.
    Sgp4(Sgp4Error),
    /// SGP4's state at the epoch is not a valid Observation v1 state: `Validation`.
    StateAtEpoch(String),
}

impl Refusal {
    /// Whether the host dead-letters it as `Deserialization` (the payload cannot be read) rather than `Validation`.
    pub fn is_deserialization(&self) -> bool {
        matches!(self, Refusal::Layout(_))
    }

    fn field(field: &'static str, problem: impl Into<String>) -> Refusal {
        Refusal::Field { field, problem: problem.into() }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Layout(problem) => write!(f, "not an element set: {problem}"),
            Refusal::NotAnObject(what) => write!(f, "an OMM element set is one JSON object, not {what}"),
            Refusal::Checksum { line, written, computed } => write!(
                f,
                "TLE line {line} fails its checksum: column 69 says {written:?}, the line's digits (and '-' as 1) sum to {computed} \
                 modulo 10"
            ),
            Refusal::CatalogueNumber(problem) => write!(f, "bad catalogue number: {problem}"),
            Refusal::MissingField(field) => write!(f, "missing field `{field}`"),
            Refusal::Field { field, problem } => write!(f, "field `{field}`: {problem}"),
            Refusal::Sgp4(error) => write!(f, "SGP4 refuses the element set: {error}"),
            Refusal::StateAtEpoch(problem) => write!(f, "SGP4's state at the element set's epoch is not a valid observation: {problem}"),
        }
    }
}

/// Reads one element set: a JSON object (OMM) if the payload starts with `{` or `[`, else a TLE.
pub fn parse(payload: &[u8]) -> Result<ElementSet, Refusal> {
    let text = std::str::from_utf8(payload).map_err(|e| Refusal::Layout(format!("the payload is not UTF-8 ({e})")))?;
    match text.trim_start().as_bytes().first() {
        Some(b'{' | b'[') => parse_omm_json(text),
        Some(_) => parse_tle(text),
        None => Err(Refusal::Layout("the payload is empty".to_string())),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// TLE

/// The length of TLE lines 1 and 2, checksum included.
const TLE_LINE_LEN: usize = 69;

/// Reads a TLE: lines 1 and 2, after an optional name line (which may start with "0 "), LF or CRLF.
pub fn parse_tle(text: &str) -> Result<ElementSet, Refusal> {
    let mut lines: Vec<&str> = text.split('\n').map(|line| line.strip_suffix('\r').unwrap_or(line)).collect();
    // A final newline (or several) leaves empty lines behind, which are no part of the set.
    while lines.last().is_some_and(|line| line.trim().is_empty()) {
        lines.pop();
    }
    let (line1, line2) = match lines.as_slice() {
        [line1, line2] if !line1.starts_with("1 ") && line2.starts_with("1 ") => {
            return Err(Refusal::Layout("line 2 is missing: a name line is followed by line 1 only".to_string()));
        }
        [line1, line2] => (*line1, *line2),
        [_name, line1, line2] => (*line1, *line2),
        [only] if only.starts_with("1 ") => return Err(Refusal::Layout("line 2 is missing: the text is line 1 only".to_string())),
        other => {
            return Err(Refusal::Layout(format!(
                "a TLE is 2 lines, or 3 with a name line first; the payload has {} non-empty-terminated lines",
                other.len()
            )));
        }
    };
    parse_tle_lines(line1, line2)
}

/// Reads TLE lines 1 and 2 (each exactly 69 characters).
pub fn parse_tle_lines(line1: &str, line2: &str) -> Result<ElementSet, Refusal> {
    check_line(1, line1)?;
    check_line(2, line2)?;
    let l1 = line1.as_bytes();
    let l2 = line2.as_bytes();
    // Columns are 1-based and inclusive, as the format's documentation counts them.
    let col = |line: &[u8], from: usize, to: usize| -> String { String::from_utf8_lossy(&line[from - 1..to]).into_owned() };

    let object_id = decode_catalogue_field(&col(l1, 3, 7)).map_err(|e| Refusal::CatalogueNumber(format!("line 1 columns 3-7: {e}")))?;
    let on_line2 = decode_catalogue_field(&col(l2, 3, 7)).map_err(|e| Refusal::CatalogueNumber(format!("line 2 columns 3-7: {e}")))?;
    if object_id != on_line2 {
        return Err(Refusal::CatalogueNumber(format!("line 1 names object {object_id}, line 2 object {on_line2}")));
    }
    match l1[7] {
        b'U' | b'C' | b'S' | b' ' => {}
        other => return Err(Refusal::field("classification", format!("column 8 holds {:?}, not U, C, S or blank", other as char))),
    }
    let epoch_us = tle_epoch_us(&col(l1, 19, 20), &col(l1, 21, 32))?;
    tle_decimal("mean motion first derivative", &col(l1, 34, 43))?;
    assumed_decimal("mean motion second derivative", &col(l1, 45, 52))?;
    let bstar_per_earth_radius = assumed_decimal("B*", &col(l1, 54, 61))?;
    match l1[62] {
        b'0' | b' ' => {}
        other => {
            return Err(Refusal::field(
                "ephemeris type",
                format!("column 63 holds {:?}: SGP4 propagates ephemeris type 0 only (type 4 is SGP4-XP)", other as char),
            ));
        }
    }
    tle_integer("element set number", &col(l1, 65, 68))?;

    let inclination_deg = tle_decimal("inclination", &col(l2, 9, 16))?;
    let ra_of_asc_node_deg = tle_decimal("right ascension of the ascending node", &col(l2, 18, 25))?;
    let eccentricity_digits = col(l2, 27, 33);
    if !eccentricity_digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Refusal::field("eccentricity", format!("columns 27-33 hold {eccentricity_digits:?}, not 7 digits")));
    }
    let eccentricity = format!("0.{eccentricity_digits}").parse::<f64>().expect("seven digits after `0.` are a number");
    let arg_of_pericenter_deg = tle_decimal("argument of perigee", &col(l2, 35, 42))?;
    let mean_anomaly_deg = tle_decimal("mean anomaly", &col(l2, 44, 51))?;
    let mean_motion_rev_per_day = tle_decimal("mean motion", &col(l2, 53, 63))?;
    tle_integer("revolution number at epoch", &col(l2, 64, 68))?;

    let set = ElementSet {
        object_id,
        epoch_us,
        mean_motion_rev_per_day,
        eccentricity,
        inclination_deg,
        ra_of_asc_node_deg,
        arg_of_pericenter_deg,
        mean_anomaly_deg,
        bstar_per_earth_radius,
    };
    check_angles(&set)?;
    Ok(set)
}

/// Length, line number, blanks between fields and checksum of TLE line `number`.
fn check_line(number: u8, line: &str) -> Result<(), Refusal> {
    if !line.is_ascii() {
        return Err(Refusal::Layout(format!("TLE line {number} holds characters that are not ASCII")));
    }
    if line.len() != TLE_LINE_LEN {
        return Err(Refusal::Layout(format!(
            "TLE line {number} is {} characters long; lines 1 and 2 are {TLE_LINE_LEN} (a character lost or added shifts the \
             columns after it)",
            line.len()
        )));
    }
    let bytes = line.as_bytes();
    if bytes[0] != b'0' + number || bytes[1] != b' ' {
        return Err(Refusal::Layout(format!("TLE line {number} must start with \"{number} \", not {:?}", &line[..2])));
    }
    // The blank columns between fields: a field that runs into one has been shifted or mistyped.
    let blanks: &[usize] = if number == 1 { &[9, 18, 33, 44, 53, 62, 64] } else { &[8, 17, 26, 34, 43, 52] };
    if let Some(&column) = blanks.iter().find(|&&column| bytes[column - 1] != b' ') {
        return Err(Refusal::Layout(format!("TLE line {number} column {column} must be blank (between two fields)")));
    }
    let computed = tle_checksum(line);
    let written = bytes[TLE_LINE_LEN - 1] as char;
    if written.to_digit(10) != Some(u32::from(computed)) {
        return Err(Refusal::Checksum { line: number, written, computed });
    }
    Ok(())
}

/// The modulo-10 checksum of a TLE line's first 68 characters: digits count their value, '-' counts 1, anything
/// else (letters, including an Alpha-5 letter, blanks, '.', '+') counts 0.
pub fn tle_checksum(line: &str) -> u8 {
    let sum: u32 =
        line.bytes().take(TLE_LINE_LEN - 1).map(|b| if b.is_ascii_digit() { u32::from(b - b'0') } else { u32::from(b == b'-') }).sum();
    (sum % 10) as u8
}

/// Decodes a TLE catalogue-number field: five digits (leading zeros kept), or Alpha-5, a letter A-Z other than
/// I and O worth 10 to 33 followed by four digits (A0000 = 100000 ... Z9999 = 339999).
pub fn decode_catalogue_field(field: &str) -> Result<u32, String> {
    let bytes = field.as_bytes();
    if bytes.len() != 5 {
        return Err(format!("{field:?} is not 5 characters"));
    }
    if !bytes[1..].iter().all(u8::is_ascii_digit) {
        return Err(format!("{field:?}: only the first character may be other than a digit"));
    }
    let first = match bytes[0] {
        digit @ b'0'..=b'9' => u32::from(digit - b'0'),
        b'I' | b'O' => return Err(format!("{field:?}: Alpha-5 never uses the letters I and O")),
        letter @ b'A'..=b'Z' => {
            // A = 10, ..., H = 17, J = 18 (I skipped), ..., N = 22, P = 23 (O skipped), ..., Z = 33.
            let skipped = u32::from(letter > b'I') + u32::from(letter > b'O');
            u32::from(letter - b'A') + 10 - skipped
        }
        _ => return Err(format!("{field:?}: the first character must be a digit or an upper-case Alpha-5 letter")),
    };
    let rest: u32 = field[1..].parse().expect("four ASCII digits are a number");
    Ok(first * 10_000 + rest)
}

/// A TLE's epoch: two-digit year (57-99: 1957-1999, 00-56: 2000-2056) and day of the year with its fraction (day 1 is
/// 1 January), as Unix microseconds; exact, since 8 decimals of a day are whole multiples of 864 us.
fn tle_epoch_us(year_field: &str, day_field: &str) -> Result<i64, Refusal> {
    let epoch = |problem: String| Refusal::field("epoch", problem);
    if !year_field.bytes().all(|b| b.is_ascii_digit()) {
        return Err(epoch(format!("the year (columns 19-20) is {year_field:?}, not two digits")));
    }
    let yy: i64 = year_field.parse().expect("two ASCII digits are a number");
    let year = if yy < 57 { 2000 + yy } else { 1900 + yy };
    let day = day_field.trim_start_matches(' ');
    let (whole, fraction) = day.split_once('.').unwrap_or((day, ""));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !(fraction.is_empty() || digits(fraction)) {
        return Err(epoch(format!("the day of the year (columns 21-32) is {day_field:?}, not a decimal number")));
    }
    let day_of_year: i64 = whole.parse().map_err(|_| epoch(format!("day of the year {whole:?} is out of range")))?;
    let days_in_year = if is_leap(year) { 366 } else { 365 };
    if !(1..=days_in_year).contains(&day_of_year) {
        return Err(epoch(format!("day of the year {day_of_year} is not within 1-{days_in_year} of {year}")));
    }
    let fraction_us = fraction_of(fraction, 86_400_000_000);
    Ok((days_from_civil(year, 1, 1) + day_of_year - 1) * 86_400_000_000 + fraction_us)
}

/// A decimal fraction given by its digits (after the point) times `unit`, rounded to the nearest integer.
fn fraction_of(digits: &str, unit: i64) -> i64 {
    // Digits past the 18th cannot change a microsecond of a day.
    let kept = &digits[..digits.len().min(18)];
    if kept.is_empty() {
        return 0;
    }
    let numerator = kept.parse::<i128>().expect("ASCII digits are a number") * i128::from(unit);
    let denominator = 10i128.pow(kept.len() as u32);
    ((numerator + denominator / 2) / denominator) as i64
}

/// A TLE decimal field: optional sign, digits with at most one point; blanks around it.
fn tle_decimal(field: &'static str, text: &str) -> Result<f64, Refusal> {
    strict_decimal(text.trim(), false).ok_or_else(|| Refusal::field(field, format!("{text:?} is not a decimal number")))
}

/// A TLE integer field: digits, blank-padded (all blank reads 0).
fn tle_integer(field: &'static str, text: &str) -> Result<u32, Refusal> {
    let digits = text.trim();
    if digits.is_empty() {
        return Ok(0);
    }
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Refusal::field(field, format!("{text:?} is not a whole number")));
    }
    digits.parse().map_err(|_| Refusal::field(field, format!("{text:?} is out of range")))
}

/// A TLE field with an assumed decimal point, 8 columns: sign (blank, '+' or '-'), five digits, exponent sign and
/// digit; " 22159-3" is 0.22159e-3.
fn assumed_decimal(field: &'static str, text: &str) -> Result<f64, Refusal> {
    let b = text.as_bytes();
    let well_formed = b.len() == 8
        && matches!(b[0], b' ' | b'+' | b'-')
        && b[1..6].iter().all(u8::is_ascii_digit)
        && matches!(b[6], b'+' | b'-')
        && b[7].is_ascii_digit();
    if !well_formed {
        return Err(Refusal::field(field, format!("{text:?} is not of the form ±NNNNN±N (a mantissa with an assumed leading point)")));
    }
    let sign = if b[0] == b'-' { "-" } else { "" };
    let value = format!("{sign}0.{}e{}{}", &text[1..6], b[6] as char, b[7] as char);
    Ok(value.parse().expect("a well-formed decimal with exponent is a number"))
}

/// A decimal number with only the characters it needs: optional sign, digits and at most one point, and (when
/// `exponent`) an exponent; `None` otherwise. Rust's own parser also takes "inf", "NaN" and "1_0"-free oddities
/// that no element set should carry.
fn strict_decimal(text: &str, exponent: bool) -> Option<f64> {
    let (mantissa, power) = match text.find(['e', 'E']) {
        Some(at) if exponent => (&text[..at], Some(&text[at + 1..])),
        Some(_) => return None,
        None => (text, None),
    };
    let unsigned = mantissa.strip_prefix(['+', '-']).unwrap_or(mantissa);
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.len() + fraction.len() == 0 || !all_digits(whole) || !all_digits(fraction) {
        return None;
    }
    if let Some(power) = power {
        let digits = power.strip_prefix(['+', '-']).unwrap_or(power);
        if digits.is_empty() || !all_digits(digits) {
            return None;
        }
    }
    text.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Angles in their ranges, and no value that is not a number (an OMM can carry anything).
fn check_angles(set: &ElementSet) -> Result<(), Refusal> {
    if !(0.0..=180.0).contains(&set.inclination_deg) {
        return Err(Refusal::field("inclination", format!("{} degrees is not within 0-180", set.inclination_deg)));
    }
    for (field, value) in [
        ("right ascension of the ascending node", set.ra_of_asc_node_deg),
        ("argument of perigee", set.arg_of_pericenter_deg),
        ("mean anomaly", set.mean_anomaly_deg),
    ] {
        if !(-360.0..=360.0).contains(&value) {
            return Err(Refusal::field(field, format!("{value} degrees is not within -360 to 360")));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// OMM in JSON

/// The largest `NORAD_CAT_ID`: CCSDS 502.0 allows up to nine digits.
pub const MAX_NORAD_CAT_ID: u32 = 999_999_999;

/// Reads one OMM element set as a JSON object with CCSDS keyword names; numbers may be JSON numbers or strings
/// (Space-Track sends strings). With `TLE_LINE1` and `TLE_LINE2` (Space-Track's gp class) the lines are read instead.
pub fn parse_omm_json(text: &str) -> Result<ElementSet, Refusal> {
    let value: Value = serde_json::from_str(text).map_err(|e| Refusal::Layout(format!("the payload is not valid JSON: {e}")))?;
    let object = match value {
        Value::Object(object) => object,
        Value::Array(items) => {
            return Err(Refusal::NotAnObject(format!("an array of {} items (send each element set as its own record)", items.len())));
        }
        other => return Err(Refusal::NotAnObject(format!("a JSON {}", json_kind(&other)))),
    };
    let present = |key: &str| object.get(key).filter(|v| !v.is_null());
    match (present("TLE_LINE1"), present("TLE_LINE2")) {
        (Some(line1), Some(line2)) => {
            let (Some(line1), Some(line2)) = (line1.as_str(), line2.as_str()) else {
                return Err(Refusal::field("TLE_LINE1", "`TLE_LINE1` and `TLE_LINE2` must be strings"));
            };
            return parse_tle_lines(line1.trim_end(), line2.trim_end());
        }
        (Some(_), None) => return Err(Refusal::MissingField("TLE_LINE2")),
        (None, Some(_)) => return Err(Refusal::MissingField("TLE_LINE1")),
        (None, None) => {}
    }
    let object_id = norad_cat_id(required(&object, "NORAD_CAT_ID")?)?;
    let epoch_text = required(&object, "EPOCH")?.as_str().ok_or_else(|| Refusal::field("EPOCH", "must be a string"))?;
    let epoch_us = parse_ccsds_epoch_us(epoch_text).map_err(|problem| Refusal::field("EPOCH", problem))?;
    if let Some(kind) = present("EPHEMERIS_TYPE") {
        let kind_number = number(kind, "EPHEMERIS_TYPE")?;
        if kind_number != 0.0 {
            return Err(Refusal::field(
                "EPHEMERIS_TYPE",
                format!("{kind}: SGP4 propagates ephemeris type 0 only (type 4 is SGP4-XP, whose elements SGP4 misreads)"),
            ));
        }
    }
    for optional in ["MEAN_MOTION_DOT", "MEAN_MOTION_DDOT"] {
        if let Some(value) = present(optional) {
            number(value, optional)?;
        }
    }
    let field = |name: &'static str| required(&object, name).and_then(|v| number(v, name));
    let set = ElementSet {
        object_id,
        epoch_us,
        mean_motion_rev_per_day: field("MEAN_MOTION")?,
        eccentricity: field("ECCENTRICITY")?,
        inclination_deg: field("INCLINATION")?,
        ra_of_asc_node_deg: field("RA_OF_ASC_NODE")?,
        arg_of_pericenter_deg: field("ARG_OF_PERICENTER")?,
        mean_anomaly_deg: field("MEAN_ANOMALY")?,
        bstar_per_earth_radius: field("BSTAR")?,
    };
    check_angles(&set)?;
    Ok(set)
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn required<'a>(object: &'a Map<String, Value>, field: &'static str) -> Result<&'a Value, Refusal> {
    object.get(field).filter(|v| !v.is_null()).ok_or(Refusal::MissingField(field))
}

/// A JSON number, or a string holding a decimal number (Space-Track's form).
fn number(value: &Value, field: &'static str) -> Result<f64, Refusal> {
    let parsed = match value {
        Value::Number(n) => n.as_f64().filter(|v| v.is_finite()),
        Value::String(s) => strict_decimal(s.trim(), true),
        _ => None,
    };
    parsed.ok_or_else(|| Refusal::field(field, format!("{value} is not a finite number (or a string holding one)")))
}

/// `NORAD_CAT_ID`: an integer of up to nine digits, as a JSON number or a string (leading zeros and '+' allowed);
/// not an Alpha-5 field, which only TLEs use.
pub fn norad_cat_id(value: &Value) -> Result<u32, Refusal> {
    let bad = |problem: String| Refusal::CatalogueNumber(format!("`NORAD_CAT_ID` {value}: {problem}"));
    let parsed = match value {
        Value::Number(n) => n.as_u64().ok_or_else(|| bad("not a non-negative integer".to_string()))?,
        Value::String(s) => parse_norad_cat_id_text(s).map_err(bad)?,
        _ => return Err(bad("must be an integer or a string holding one".to_string())),
    };
    u32::try_from(parsed).ok().filter(|&id| id <= MAX_NORAD_CAT_ID).ok_or_else(|| bad(format!("above {MAX_NORAD_CAT_ID} (nine digits)")))
}

/// `NORAD_CAT_ID` text: optional '+', then digits (at most nine once leading zeros are dropped).
pub fn parse_norad_cat_id_text(text: &str) -> Result<u64, String> {
    let digits = text.strip_prefix('+').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{text:?} is not an integer (an Alpha-5 field belongs in a TLE, not in an OMM)"));
    }
    let significant = digits.trim_start_matches('0');
    if significant.len() > 9 {
        return Err(format!("{text:?} has more than nine digits"));
    }
    Ok(significant.parse().unwrap_or(0))
}

/// A CCSDS 502.0 epoch (7.5.10): `YYYY-MM-DDThh:mm:ss[.d...][Z]` or `YYYY-DDDThh:mm:ss[.d...][Z]`, UTC, as Unix
/// microseconds (rounded to the nearest). Second 60 (a leap second) reads as the next minute's first instant.
pub fn parse_ccsds_epoch_us(text: &str) -> Result<i64, String> {
    let bad = |why: &str| format!("{text:?} is not a CCSDS epoch (YYYY-MM-DDThh:mm:ss[.d][Z] or YYYY-DDDThh:mm:ss[.d][Z]): {why}");
    let body = text.strip_suffix('Z').unwrap_or(text);
    let (date, time) = body.split_once('T').ok_or_else(|| bad("no 'T' between date and time"))?;
    let digits =
        |s: &str, n: usize| -> Option<i64> { (s.len() == n && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok()).flatten() };
    let (year_text, rest) = date.split_once('-').ok_or_else(|| bad("no '-' after the year"))?;
    let year = digits(year_text, 4).ok_or_else(|| bad("the year is not four digits"))?;
    let day_index = match rest.split_once('-') {
        Some((month_text, day_text)) => {
            let month = digits(month_text, 2).filter(|m| (1..=12).contains(m)).ok_or_else(|| bad("the month is not 01-12"))?;
            let day = digits(day_text, 2)
                .filter(|&d| d >= 1 && d <= days_in_month(year, month))
                .ok_or_else(|| bad("no such day in the month"))?;
            days_from_civil(year, month, day)
        }
        None => {
            let day_of_year = digits(rest, 3)
                .filter(|&d| d >= 1 && d <= if is_leap(year) { 366 } else { 365 })
                .ok_or_else(|| bad("the day of the year is not 001-365 (366)"))?;
            days_from_civil(year, 1, 1) + day_of_year - 1
        }
    };
    let (clock, fraction) = time.split_once('.').unwrap_or((time, ""));
    let mut parts = clock.split(':');
    let (Some(h), Some(m), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(bad("the time is not hh:mm:ss"));
    };
    let hour = digits(h, 2).filter(|h| (0..24).contains(h)).ok_or_else(|| bad("the hour is not 00-23"))?;
    let minute = digits(m, 2).filter(|m| (0..60).contains(m)).ok_or_else(|| bad("the minute is not 00-59"))?;
    let second = digits(s, 2).filter(|s| (0..=60).contains(s)).ok_or_else(|| bad("the second is not 00-60"))?;
    if time.contains('.') && (fraction.is_empty() || !fraction.bytes().all(|b| b.is_ascii_digit())) {
        return Err(bad("the fraction of a second is not digits"));
    }
    let seconds_of_day = hour * 3600 + minute * 60 + second;
    Ok((day_index * 86_400 + seconds_of_day) * 1_000_000 + fraction_of(fraction, 1_000_000))
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the given proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISS_1: &str = "1 25544U 98067A   20194.88612269 -.00002218  00000-0 -31515-4 0  9992";
    const ISS_2: &str = "2 25544  51.6461 221.2784 0001413  89.1723 280.4612 15.49507896236008";

    #[test]
    fn a_tle_reads_field_by_field() {
        let set = parse(format!("ISS (ZARYA)\r\n{ISS_1}\r\n{ISS_2}\r\n").as_bytes()).unwrap();
        assert_eq!(set.object_id, 25544);
        assert_eq!(set.inclination_deg, 51.6461);
        assert_eq!(set.eccentricity, 0.0001413);
        assert_eq!(set.bstar_per_earth_radius, -0.31515e-4);
        assert_eq!(set.mean_motion_rev_per_day, 15.49507896);
        // 2020 day 194.88612269: 2020-07-12 (day 194) plus 88612269 * 864 us.
        assert_eq!(set.epoch_us, days_from_civil(2020, 7, 12) * 86_400_000_000 + 88_612_269 * 864);
        assert_eq!(parse(format!("0 ISS\n{ISS_1}\n{ISS_2}").as_bytes()).unwrap(), set, "a 3LE name line with \"0 \"");
        assert_eq!(parse(format!("{ISS_1}\n{ISS_2}\n").as_bytes()).unwrap(), set, "two lines");
    }

    #[test]
    fn civil_days_match_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        assert_eq!(parse_ccsds_epoch_us("2026-01-01T00:00:00Z").unwrap(), 1_767_225_600_000_000);
        assert_eq!(parse_ccsds_epoch_us("2026-001T00:00:00.0000005").unwrap(), 1_767_225_600_000_001, "rounded to the nearest us");
    }

    #[test]
    fn strict_numbers_refuse_what_rust_would_take() {
        for text in ["inf", "NaN", "1e5", "", "-", ".", "1.2.3", "+-1", "1 2"] {
            assert_eq!(strict_decimal(text, false), None, "{text:?}");
        }
        assert_eq!(strict_decimal("-.00003657", false), Some(-0.00003657));
        assert_eq!(strict_decimal("1.5E-4", true), Some(1.5e-4));
        assert_eq!(strict_decimal("1.5E-", true), None);
    }
}
