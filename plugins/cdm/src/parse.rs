//! Reads a CDM this operator wrote (KVN or XML) back into a [`Cdm`], checking keyword order and units on the way.
//!
//! Not a general CDM reader: it accepts the keywords this operator writes, in the order of CCSDS 508.0-B-1's
//! tables (§6.2.1.13), and refuses anything else, naming it. The round-trip tests read every message back
//! through it and compare each value with the alert it came from.

use crate::message::{COVARIANCE_KEYWORDS, Cdm, CdmObject, RELATIVE_STATE_KEYWORDS, STATE_KEYWORDS};

/// A keyword, its value and its unit, as read.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadField {
    pub keyword: String,
    pub value: String,
    pub unit: Option<String>,
}

/// The assignments of a KVN CDM, in order (blank lines skipped; `COMMENT` lines as keyword `COMMENT`).
pub fn kvn_fields(kvn: &str) -> Result<Vec<ReadField>, String> {
    let mut fields = Vec::new();
    for (number, line) in kvn.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix("COMMENT") {
            fields.push(ReadField { keyword: "COMMENT".into(), value: comment.trim().to_string(), unit: None });
            continue;
        }
        let (keyword, rest) = line.split_once('=').ok_or_else(|| format!("line {}: no `=` in {line:?}", number + 1))?;
        let rest = rest.trim();
        let (value, unit) = match rest.strip_suffix(']').and_then(|r| r.rsplit_once('[')) {
            Some((value, unit)) => (value.trim(), Some(unit.to_string())),
            None => (rest, None),
        };
        fields.push(ReadField { keyword: keyword.trim().to_string(), value: value.to_string(), unit });
    }
    Ok(fields)
}

fn xml_unescape(text: &str) -> String {
    text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&apos;", "'").replace("&amp;", "&")
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let end = start + tag[start..].find('"')?;
    Some(xml_unescape(&tag[start..end]))
}

/// The leaf elements of an XML CDM, in document order, with the root's `version` first as `CCSDS_CDM_VERS`.
/// Checks that tags nest and that the root is `<cdm id="CCSDS_CDM_VERS">`; the structure itself is checked
/// against the schema by the tests (tests/validate_cdm.py).
pub fn xml_fields(xml: &str) -> Result<Vec<ReadField>, String> {
    let mut fields = Vec::new();
    let mut open: Vec<String> = Vec::new();
    let mut rest = xml.trim_start();
    if let Some(after) = rest.strip_prefix("<?xml") {
        rest = &after[after.find("?>").ok_or("unterminated XML declaration")? + 2..];
    }
    let mut pending_text = String::new();
    while let Some(start) = rest.find('<') {
        pending_text.push_str(&rest[..start]);
        let end = start + rest[start..].find('>').ok_or("unterminated tag")?;
        let tag = &rest[start + 1..end];
        rest = &rest[end + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            let expected = open.pop().ok_or_else(|| format!("`</{name}>` closes nothing"))?;
            if expected.split_whitespace().next() != Some(name) {
                return Err(format!("`</{name}>` closes `<{expected}>`"));
            }
            if !pending_text.trim().is_empty() || expected.contains("units=") {
                let unit = attribute(&format!(" {expected}"), "units");
                fields.push(ReadField { keyword: name.to_string(), value: xml_unescape(&pending_text), unit });
            }
        } else {
            if open.is_empty() {
                if tag.split_whitespace().next() != Some("cdm") || attribute(tag, "id").as_deref() != Some("CCSDS_CDM_VERS") {
                    return Err(format!("the root element is not <cdm id=\"CCSDS_CDM_VERS\">: <{tag}>"));
                }
                let version = attribute(tag, "version").ok_or("<cdm> has no version")?;
                fields.push(ReadField { keyword: "CCSDS_CDM_VERS".into(), value: version, unit: None });
            }
            open.push(tag.to_string());
        }
        pending_text.clear();
    }
    if !open.is_empty() {
        return Err(format!("unclosed elements: {open:?}"));
    }
    Ok(fields)
}

/// Walks the fields in the standard's order.
struct Reader {
    fields: std::vec::IntoIter<ReadField>,
    next: Option<ReadField>,
}

impl Reader {
    fn new(fields: Vec<ReadField>) -> Self {
        let mut fields = fields.into_iter();
        let next = fields.next();
        Reader { fields, next }
    }

    fn advance(&mut self) -> ReadField {
        let field = self.next.take().expect("advance follows a peek");
        self.next = self.fields.next();
        field
    }

    fn comments(&mut self) -> Vec<String> {
        let mut comments = Vec::new();
        while self.next.as_ref().is_some_and(|f| f.keyword == "COMMENT") {
            comments.push(self.advance().value);
        }
        comments
    }

    fn optional(&mut self, keyword: &str) -> Option<ReadField> {
        self.next.as_ref().is_some_and(|f| f.keyword == keyword).then(|| self.advance())
    }

    fn text(&mut self, keyword: &str) -> Result<String, String> {
        match self.optional(keyword) {
            Some(ReadField { unit: None, value, .. }) => Ok(value),
            Some(ReadField { unit: Some(unit), .. }) => Err(format!("{keyword} has a unit [{unit}]: it takes none")),
            None => Err(format!("expected {keyword}, found {:?}", self.next.as_ref().map(|f| &f.keyword))),
        }
    }

    fn real(&mut self, keyword: &str, unit: Option<&str>) -> Result<f64, String> {
        let field =
            self.optional(keyword).ok_or_else(|| format!("expected {keyword}, found {:?}", self.next.as_ref().map(|f| &f.keyword)))?;
        if field.unit.as_deref() != unit {
            return Err(format!("{keyword} has unit {:?}, the standard's is {unit:?}", field.unit));
        }
        field.value.parse().map_err(|e| format!("{keyword} = {:?} is not a number: {e}", field.value))
    }

    fn reals<const N: usize>(&mut self, keywords: &[(&str, &str); N]) -> Result<[f64; N], String> {
        let mut values = [0.0; N];
        for (value, (keyword, unit)) in values.iter_mut().zip(keywords) {
            *value = self.real(keyword, Some(unit))?;
        }
        Ok(values)
    }

    fn object(&mut self) -> Result<CdmObject, String> {
        Ok(CdmObject {
            object: self.text("OBJECT")?,
            object_designator: self.text("OBJECT_DESIGNATOR")?,
            catalog_name: self.text("CATALOG_NAME")?,
            object_name: self.text("OBJECT_NAME")?,
            international_designator: self.text("INTERNATIONAL_DESIGNATOR")?,
            ephemeris_name: self.text("EPHEMERIS_NAME")?,
            covariance_method: self.text("COVARIANCE_METHOD")?,
            maneuverable: self.text("MANEUVERABLE")?,
            ref_frame: self.text("REF_FRAME")?,
            state: self.reals(&STATE_KEYWORDS)?,
            covariance_rtn: self.reals(&COVARIANCE_KEYWORDS)?,
        })
    }
}

/// A CDM from its fields, in the order of Tables 3-1 to 3-4.
pub fn cdm_from_fields(fields: Vec<ReadField>) -> Result<Cdm, String> {
    let mut r = Reader::new(fields);
    let version = r.text("CCSDS_CDM_VERS")?;
    let creation_date = r.text("CREATION_DATE")?;
    let originator = r.text("ORIGINATOR")?;
    let message_for = r.optional("MESSAGE_FOR").map(|f| f.value);
    let message_id = r.text("MESSAGE_ID")?;
    let relative_comments = r.comments();
    let tca = r.text("TCA")?;
    let miss_distance_m = r.real("MISS_DISTANCE", Some("m"))?;
    let relative_speed_m_s = r.real("RELATIVE_SPEED", Some("m/s"))?;
    let relative_state_rtn = r.reals(&RELATIVE_STATE_KEYWORDS)?;
    let collision_probability = r.real("COLLISION_PROBABILITY", None)?;
    let collision_probability_method = r.text("COLLISION_PROBABILITY_METHOD")?;
    let objects = [r.object()?, r.object()?];
    if let Some(extra) = r.next {
        return Err(format!("unexpected {} after the second object", extra.keyword));
    }
    Ok(Cdm {
        version,
        creation_date,
        originator,
        message_for,
        message_id,
        relative_comments,
        tca,
        miss_distance_m,
        relative_speed_m_s,
        relative_state_rtn,
        collision_probability,
        collision_probability_method,
        objects,
    })
}

pub fn from_kvn(kvn: &str) -> Result<Cdm, String> {
    cdm_from_fields(kvn_fields(kvn)?)
}

pub fn from_xml(xml: &str) -> Result<Cdm, String> {
    cdm_from_fields(xml_fields(xml)?)
}
