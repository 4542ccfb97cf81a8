//! The CDM as a value ([`Cdm`]), built from an alert, and written in KVN or XML in the keyword order of CCSDS 508.0-B-1.
//!
//! The order of every keyword is the order of the standard's tables in section 3 (Table 3-1 header, 3-2 relative
//! metadata/data, 3-3 object metadata, 3-4 object data), which KVN must keep (§6.2.1.13: "the order of occurrence
//! of obligatory and optional KVN assignments shall be fixed as shown in the tables in section 3") and the
//! NDM/XML schema (`ndmxml-1.0-cdm-1.0.xsd`) makes a sequence. Both syntaxes are written from the same lists below,
//! so they cannot disagree.

use crate::number::format_real;

/// One `KEYWORD = value [unit]` (or `<KEYWORD units="unit">value</KEYWORD>`).
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub keyword: &'static str,
    pub value: String,
    pub unit: Option<&'static str>,
}

fn text(keyword: &'static str, value: impl Into<String>) -> Field {
    Field { keyword, value: value.into(), unit: None }
}

fn real(keyword: &'static str, value: f64, unit: &'static str) -> Field {
    Field { keyword, value: format_real(value), unit: Some(unit) }
}

/// The covariance keywords in the order of Table 3-4 (the lower triangle, row by row), with their units.
pub const COVARIANCE_KEYWORDS: [(&str, &str); 21] = [
    ("CR_R", "m**2"),
    ("CT_R", "m**2"),
    ("CT_T", "m**2"),
    ("CN_R", "m**2"),
    ("CN_T", "m**2"),
    ("CN_N", "m**2"),
    ("CRDOT_R", "m**2/s"),
    ("CRDOT_T", "m**2/s"),
    ("CRDOT_N", "m**2/s"),
    ("CRDOT_RDOT", "m**2/s**2"),
    ("CTDOT_R", "m**2/s"),
    ("CTDOT_T", "m**2/s"),
    ("CTDOT_N", "m**2/s"),
    ("CTDOT_RDOT", "m**2/s**2"),
    ("CTDOT_TDOT", "m**2/s**2"),
    ("CNDOT_R", "m**2/s"),
    ("CNDOT_T", "m**2/s"),
    ("CNDOT_N", "m**2/s"),
    ("CNDOT_RDOT", "m**2/s**2"),
    ("CNDOT_TDOT", "m**2/s**2"),
    ("CNDOT_NDOT", "m**2/s**2"),
];

pub const STATE_KEYWORDS: [(&str, &str); 6] =
    [("X", "km"), ("Y", "km"), ("Z", "km"), ("X_DOT", "km/s"), ("Y_DOT", "km/s"), ("Z_DOT", "km/s")];

pub const RELATIVE_STATE_KEYWORDS: [(&str, &str); 6] = [
    ("RELATIVE_POSITION_R", "m"),
    ("RELATIVE_POSITION_T", "m"),
    ("RELATIVE_POSITION_N", "m"),
    ("RELATIVE_VELOCITY_R", "m/s"),
    ("RELATIVE_VELOCITY_T", "m/s"),
    ("RELATIVE_VELOCITY_N", "m/s"),
];

/// One object's segment (Tables 3-3 and 3-4).
#[derive(Debug, Clone, PartialEq)]
pub struct CdmObject {
    /// `OBJECT1` or `OBJECT2`.
    pub object: String,
    pub object_designator: String,
    pub catalog_name: String,
    pub object_name: String,
    pub international_designator: String,
    pub ephemeris_name: String,
    /// `CALCULATED` or `DEFAULT`.
    pub covariance_method: String,
    /// `YES`, `NO` or `N/A`.
    pub maneuverable: String,
    pub ref_frame: String,
    /// X, Y, Z [km] then X_DOT, Y_DOT, Z_DOT [km/s], in `ref_frame`.
    pub state: [f64; 6],
    /// The 21 covariance values in the order of [`COVARIANCE_KEYWORDS`].
    pub covariance_rtn: [f64; 21],
}

/// A whole CDM: what the operator writes and what [`crate::parse`] reads back.
#[derive(Debug, Clone, PartialEq)]
pub struct Cdm {
    pub version: String,
    pub creation_date: String,
    pub originator: String,
    pub message_for: Option<String>,
    pub message_id: String,
    pub relative_comments: Vec<String>,
    pub tca: String,
    pub miss_distance_m: f64,
    pub relative_speed_m_s: f64,
    /// R, T, N [m] then R, T, N [m/s]: object 2 relative to object 1, in object 1's RTN frame.
    pub relative_state_rtn: [f64; 6],
    pub collision_probability: f64,
    pub collision_probability_method: String,
    pub objects: [CdmObject; 2],
}

impl Cdm {
    pub fn header_fields(&self) -> Vec<Field> {
        let mut fields = vec![text("CREATION_DATE", &self.creation_date), text("ORIGINATOR", &self.originator)];
        fields.extend(self.message_for.iter().map(|m| text("MESSAGE_FOR", m)));
        fields.push(text("MESSAGE_ID", &self.message_id));
        fields
    }

    /// Table 3-2 up to the relative state vector (which XML groups in `relativeStateVector`).
    pub fn relative_head_fields(&self) -> Vec<Field> {
        vec![
            text("TCA", &self.tca),
            real("MISS_DISTANCE", self.miss_distance_m, "m"),
            real("RELATIVE_SPEED", self.relative_speed_m_s, "m/s"),
        ]
    }

    pub fn relative_state_fields(&self) -> Vec<Field> {
        RELATIVE_STATE_KEYWORDS.iter().zip(self.relative_state_rtn).map(|((k, u), v)| real(k, v, u)).collect()
    }

    /// Table 3-2 after the relative state vector: the screening keywords (none written) and the probability.
    pub fn relative_tail_fields(&self) -> Vec<Field> {
        vec![
            Field { keyword: "COLLISION_PROBABILITY", value: format_real(self.collision_probability), unit: None },
            text("COLLISION_PROBABILITY_METHOD", &self.collision_probability_method),
        ]
    }
}

impl CdmObject {
    pub fn metadata_fields(&self) -> Vec<Field> {
        vec![
            text("OBJECT", &self.object),
            text("OBJECT_DESIGNATOR", &self.object_designator),
            text("CATALOG_NAME", &self.catalog_name),
            text("OBJECT_NAME", &self.object_name),
            text("INTERNATIONAL_DESIGNATOR", &self.international_designator),
            text("EPHEMERIS_NAME", &self.ephemeris_name),
            text("COVARIANCE_METHOD", &self.covariance_method),
            text("MANEUVERABLE", &self.maneuverable),
            text("REF_FRAME", &self.ref_frame),
        ]
    }

    pub fn state_fields(&self) -> Vec<Field> {
        STATE_KEYWORDS.iter().zip(self.state).map(|((k, u), v)| real(k, v, u)).collect()
    }

    pub fn covariance_fields(&self) -> Vec<Field> {
        COVARIANCE_KEYWORDS.iter().zip(self.covariance_rtn).map(|((k, u), v)| real(k, v, u)).collect()
    }
}

/// Keywords are padded to this width in KVN, as in the standard's example (white space around `=` is not
/// significant, §6.2.1.10-11).
const KVN_KEYWORD_WIDTH: usize = 28;

fn kvn_line(out: &mut String, field: &Field) {
    out.push_str(&format!("{:<KVN_KEYWORD_WIDTH$} = {}", field.keyword, field.value));
    if let Some(unit) = field.unit {
        out.push_str(&format!(" [{unit}]"));
    }
    out.push('\n');
}

fn kvn_comment(out: &mut String, comment: &str) {
    out.push_str("COMMENT ");
    out.push_str(comment);
    out.push('\n');
}

/// The CDM in KVN (CCSDS 508.0-B-1 section 6): one assignment a line, units in brackets, a blank line between
/// the header, the relative metadata/data and each object (blank lines are allowed anywhere).
pub fn to_kvn(cdm: &Cdm) -> String {
    let mut out = String::new();
    kvn_line(&mut out, &text("CCSDS_CDM_VERS", &cdm.version));
    cdm.header_fields().iter().for_each(|f| kvn_line(&mut out, f));
    out.push('\n');
    cdm.relative_comments.iter().for_each(|c| kvn_comment(&mut out, c));
    for field in cdm.relative_head_fields().iter().chain(&cdm.relative_state_fields()).chain(&cdm.relative_tail_fields()) {
        kvn_line(&mut out, field);
    }
    for object in &cdm.objects {
        out.push('\n');
        for field in object.metadata_fields().iter().chain(&object.state_fields()).chain(&object.covariance_fields()) {
            kvn_line(&mut out, field);
        }
    }
    out
}

pub fn xml_escape(value: &str) -> String {
    value.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn xml_element(out: &mut String, depth: usize, field: &Field) {
    let indent = "  ".repeat(depth);
    let units = field.unit.map(|u| format!(" units=\"{u}\"")).unwrap_or_default();
    out.push_str(&format!("{indent}<{k}{units}>{v}</{k}>\n", k = field.keyword, v = xml_escape(&field.value)));
}

fn xml_group(out: &mut String, depth: usize, name: &str, fields: &[Field]) {
    let indent = "  ".repeat(depth);
    out.push_str(&format!("{indent}<{name}>\n"));
    fields.iter().for_each(|f| xml_element(out, depth + 1, f));
    out.push_str(&format!("{indent}</{name}>\n"));
}

/// The schema the XML names, as the standard's XML example does (a name only: nothing is fetched).
pub const XML_SCHEMA_LOCATION: &str = "https://sanaregistry.org/r/ndmxml/ndmxml-1.0-master.xsd";

/// The CDM in NDM/XML (`ndmxml-1.0-cdm-1.0.xsd`): `cdm` / `header`, `body` / `relativeMetadataData` (with
/// `relativeStateVector`) and two `segment`s of `metadata` and `data` (`stateVector`, `covarianceMatrix`).
pub fn to_xml(cdm: &Cdm) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&format!(
        "<cdm xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:noNamespaceSchemaLocation=\"{XML_SCHEMA_LOCATION}\" \
         id=\"CCSDS_CDM_VERS\" version=\"{}\">\n",
        xml_escape(&cdm.version)
    ));
    xml_group(&mut out, 1, "header", &cdm.header_fields());
    out.push_str("  <body>\n    <relativeMetadataData>\n");
    for comment in &cdm.relative_comments {
        xml_element(&mut out, 3, &text("COMMENT", comment.as_str()));
    }
    cdm.relative_head_fields().iter().for_each(|f| xml_element(&mut out, 3, f));
    xml_group(&mut out, 3, "relativeStateVector", &cdm.relative_state_fields());
    cdm.relative_tail_fields().iter().for_each(|f| xml_element(&mut out, 3, f));
    out.push_str("    </relativeMetadataData>\n");
    for object in &cdm.objects {
        out.push_str("    <segment>\n");
        xml_group(&mut out, 3, "metadata", &object.metadata_fields());
        out.push_str("      <data>\n");
        xml_group(&mut out, 4, "stateVector", &object.state_fields());
        xml_group(&mut out, 4, "covarianceMatrix", &object.covariance_fields());
        out.push_str("      </data>\n    </segment>\n");
    }
    out.push_str("  </body>\n</cdm>\n");
    out
}
