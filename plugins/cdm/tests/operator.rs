//! The CDM operator driven natively: golden KVN and XML, round trips, schema validation, determinism, failures, config.

use cdm::frames::{self, Frame};
use cdm::number::as_written;
use cdm::{CdmWriter, ccsds_utc, parse, relative_rtn};
use proptest::prelude::*;
use sda_guest::FailureReason;
use sda_guest::testing::Harness;
use sda_records::{Alert, CollisionProbability, Covariance6, CovarianceSource, PcMethod, StateVector, StatesAtTca};
use serde_json::Value;
use std::borrow::Cow;
use std::path::PathBuf;
use std::process::Command;

const PRIMARY_COVARIANCE: [f64; 21] = [
    41.42, -8.579, 2533.0, -23.13, 13.36, 70.98, 2.52e-3, -5.476, 8.626e-4, 5.744e-3, -1.006e-2, 4.041e-3, -1.359e-3, -1.502e-5, 1.049e-5,
    1.053e-3, -3.412e-3, 1.213e-2, -3.004e-6, -1.091e-6, 5.529e-5,
];

/// A fixed alert: the pair and window of SEMANTICS.md's example, with states and a probability.
fn alert() -> Alert<'static> {
    let primary = StateVector { position_km: [6524.834, -1284.21, 1942.33], velocity_km_s: [1.2, 7.3, -0.4] };
    let secondary = StateVector { position_km: [6525.134, -1283.71, 1941.73], velocity_km_s: [-6.1, 2.2, 8.4] };
    Alert {
        alert_id: Cow::Borrowed("494b1f0429d0530ab8d28d641a4284b3"),
        primary_id: 25544,
        secondary_id: 43013,
        window_start_ms: 1_767_225_600_000,
        window_end_ms: 1_767_225_660_000,
        tca_ms: 1_767_225_631_417,
        miss_distance_km: 0.8366600265340756,
        relative_speed_km_s: 12.519584657647,
        primary_observation_id: Cow::Borrowed("obs-000123"),
        secondary_observation_id: Cow::Borrowed("obs-000456"),
        states_at_tca: Some(StatesAtTca { primary, secondary }),
        severity: Cow::Borrowed("RED"),
        tca_utc: Cow::Borrowed("2026-01-01T00:00:31.417Z"),
        collision_probability: Some(CollisionProbability {
            pc: 4.835e-5,
            method: PcMethod::Foster1992,
            hard_body_radius_m: 20.0,
            covariance_source: CovarianceSource::Calculated,
            primary_covariance_rtn: Covariance6(PRIMARY_COVARIANCE),
            secondary_covariance_rtn: Covariance6(PRIMARY_COVARIANCE.map(|c| c * 3.0)),
        }),
    }
}

fn json(alert: &Alert<'_>) -> String {
    serde_json::to_string(alert).unwrap()
}

/// The one output of `config` for `payload`, or the failure's reason and message.
fn run(config: &str, payload: &str) -> Result<sda_guest::testing::Output, (FailureReason, String)> {
    let mut harness = Harness::<CdmWriter>::new(config).unwrap();
    let mut outcome = harness.process(&[("in-key", payload, 7)]);
    match outcome.failures.pop() {
        Some((_, failure)) => Err((failure.reason(), failure.message().to_string())),
        None => {
            assert_eq!(outcome.outputs.len(), 1);
            Ok(outcome.outputs.remove(0))
        }
    }
}

/// Checked by hand against CCSDS 508.0-B-1's example CDM (KVN; the ccsds-ndm package carries it as
/// `tests/data/kvn/cdm_example_section4.kvn`): the same keywords in the same order (header: CCSDS_CDM_VERS,
/// CREATION_DATE, ORIGINATOR, MESSAGE_ID; relative: COMMENTs first, TCA, MISS_DISTANCE, RELATIVE_SPEED,
/// RELATIVE_POSITION_R/T/N, RELATIVE_VELOCITY_R/T/N, then (no screening keywords, all optional)
/// COLLISION_PROBABILITY, COLLISION_PROBABILITY_METHOD; per object: OBJECT ... REF_FRAME without the optional
/// ones, X ... Z_DOT, CR_R ... CNDOT_NDOT), the same units in brackets ([m], [m/s], [km], [km/s], [m**2], [m**2/s],
/// [m**2/s**2]; none on COLLISION_PROBABILITY), and epochs written as the example writes them
/// (2010-03-13T22:37:52.618: no time zone letter, milliseconds).
const GOLDEN_KVN: &str = "\
CCSDS_CDM_VERS               = 1.0
CREATION_DATE                = 2026-01-01T00:01:00.000
ORIGINATOR                   = SDA-PIPELINE
MESSAGE_ID                   = SDA-494B1F0429D0530AB8D28D641A4284B3

COMMENT Alert 494b1f0429d0530ab8d28d641a4284b3, severity RED
COMMENT Relative position and velocity: object 2 minus object 1, in object 1's RTN frame
COMMENT Hard-body radius of COLLISION_PROBABILITY: 20 m
COMMENT States at TCA from TEME written in EME2000 (IAU-76/FK5 reduction, no EOP corrections)
TCA                          = 2026-01-01T00:00:31.417
MISS_DISTANCE                = 836.6600265340755 [m]
RELATIVE_SPEED               = 12519.584657647 [m/s]
RELATIVE_POSITION_R          = 21.64407378190523 [m]
RELATIVE_POSITION_T          = 575.2117664359268 [m]
RELATIVE_POSITION_N          = -607.1762164510269 [m]
RELATIVE_VELOCITY_R          = -3462.728646305578 [m/s]
RELATIVE_VELOCITY_T          = -6846.263929299887 [m/s]
RELATIVE_VELOCITY_N          = 9893.340211092613 [m/s]
COLLISION_PROBABILITY        = 4.835E-05
COLLISION_PROBABILITY_METHOD = FOSTER-1992

OBJECT                       = OBJECT1
OBJECT_DESIGNATOR            = 25544
CATALOG_NAME                 = SATCAT
OBJECT_NAME                  = UNKNOWN
INTERNATIONAL_DESIGNATOR     = UNKNOWN
EPHEMERIS_NAME               = NONE
COVARIANCE_METHOD            = CALCULATED
MANEUVERABLE                 = N/A
REF_FRAME                    = EME2000
X                            = 6522.163490326513 [km]
Y                            = -1322.065244127859 [km]
Z                            = 1925.831450640737 [km]
X_DOT                        = 1.241405977194612 [km/s]
Y_DOT                        = 7.292886564114155 [km/s]
Z_DOT                        = -0.4033816589146355 [km/s]
CR_R                         = 41.42 [m**2]
CT_R                         = -8.579 [m**2]
CT_T                         = 2533 [m**2]
CN_R                         = -23.13 [m**2]
CN_T                         = 13.36 [m**2]
CN_N                         = 70.98 [m**2]
CRDOT_R                      = 0.00252 [m**2/s]
CRDOT_T                      = -5.476 [m**2/s]
CRDOT_N                      = 8.626E-04 [m**2/s]
CRDOT_RDOT                   = 0.005744 [m**2/s**2]
CTDOT_R                      = -0.01006 [m**2/s]
CTDOT_T                      = 0.004041 [m**2/s]
CTDOT_N                      = -0.001359 [m**2/s]
CTDOT_RDOT                   = -1.502E-05 [m**2/s**2]
CTDOT_TDOT                   = 1.049E-05 [m**2/s**2]
CNDOT_R                      = 0.001053 [m**2/s]
CNDOT_T                      = -0.003412 [m**2/s]
CNDOT_N                      = 0.01213 [m**2/s]
CNDOT_RDOT                   = -3.004E-06 [m**2/s**2]
CNDOT_TDOT                   = -1.091E-06 [m**2/s**2]
CNDOT_NDOT                   = 5.529E-05 [m**2/s**2]

OBJECT                       = OBJECT2
OBJECT_DESIGNATOR            = 43013
CATALOG_NAME                 = SATCAT
OBJECT_NAME                  = UNKNOWN
INTERNATIONAL_DESIGNATOR     = UNKNOWN
EPHEMERIS_NAME               = NONE
COVARIANCE_METHOD            = CALCULATED
MANEUVERABLE                 = N/A
REF_FRAME                    = EME2000
X                            = 6522.464869286729 [km]
Y                            = -1321.567015921075 [km]
Z                            = 1925.23066833715 [km]
X_DOT                        = -6.065774988417324 [km/s]
Y_DOT                        = 2.2356970770924 [km/s]
Z_DOT                        = 8.41534505349432 [km/s]
CR_R                         = 124.26 [m**2]
CT_R                         = -25.737 [m**2]
CT_T                         = 7599 [m**2]
CN_R                         = -69.39 [m**2]
CN_T                         = 40.08 [m**2]
CN_N                         = 212.94 [m**2]
CRDOT_R                      = 0.007560000000000001 [m**2/s]
CRDOT_T                      = -16.428 [m**2/s]
CRDOT_N                      = 0.0025878 [m**2/s]
CRDOT_RDOT                   = 0.017232 [m**2/s**2]
CTDOT_R                      = -0.03018 [m**2/s]
CTDOT_T                      = 0.012123 [m**2/s]
CTDOT_N                      = -0.004077 [m**2/s]
CTDOT_RDOT                   = -4.506E-05 [m**2/s**2]
CTDOT_TDOT                   = 3.147E-05 [m**2/s**2]
CNDOT_R                      = 0.003158999999999999 [m**2/s]
CNDOT_T                      = -0.010236 [m**2/s]
CNDOT_N                      = 0.03639 [m**2/s]
CNDOT_RDOT                   = -9.012E-06 [m**2/s**2]
CNDOT_TDOT                   = -3.273E-06 [m**2/s**2]
CNDOT_NDOT                   = 1.6587E-04 [m**2/s**2]
";

#[test]
fn golden_kvn() {
    let output = run("{}", &json(&alert())).unwrap();
    assert_eq!(output.payload_str(), GOLDEN_KVN);
    assert_eq!(output.key, b"SDA-494B1F0429D0530AB8D28D641A4284B3", "the record key is MESSAGE_ID");
    assert_eq!(output.event_time_ms, 1_767_225_631_417, "the event time is the alert's tca_ms");
}

/// The same CDM in NDM/XML, with MESSAGE_FOR, checked by hand against the standard's XML example (ccsds-ndm's
/// `tests/data/xml/cdm_example_section4.xml`): root `<cdm id="CCSDS_CDM_VERS" version="1.0">`, `header`, `body` with
/// `relativeMetadataData` (COMMENTs first, the relative position and velocity grouped in `relativeStateVector`) and
/// two `segment`s of `metadata` and `data` (`stateVector`, `covarianceMatrix`), units as `units` attributes.
const GOLDEN_XML: &str = "\
<?xml version=\"1.0\" encoding=\"UTF-8\"?>
<cdm xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
xsi:noNamespaceSchemaLocation=\"https://sanaregistry.org/r/ndmxml/ndmxml-1.0-master.xsd\" id=\"CCSDS_CDM_VERS\" version=\"1.0\">
  <header>
    <CREATION_DATE>2026-01-01T00:01:00.000</CREATION_DATE>
    <ORIGINATOR>SDA-PIPELINE</ORIGINATOR>
    <MESSAGE_FOR>ISS OPERATOR</MESSAGE_FOR>
    <MESSAGE_ID>SDA-494B1F0429D0530AB8D28D641A4284B3</MESSAGE_ID>
  </header>
  <body>
    <relativeMetadataData>
      <COMMENT>Alert 494b1f0429d0530ab8d28d641a4284b3, severity RED</COMMENT>
      <COMMENT>Relative position and velocity: object 2 minus object 1, in object 1's RTN frame</COMMENT>
      <COMMENT>Hard-body radius of COLLISION_PROBABILITY: 20 m</COMMENT>
      <COMMENT>States at TCA from TEME written in EME2000 (IAU-76/FK5 reduction, no EOP corrections)</COMMENT>
      <TCA>2026-01-01T00:00:31.417</TCA>
      <MISS_DISTANCE units=\"m\">836.6600265340755</MISS_DISTANCE>
      <RELATIVE_SPEED units=\"m/s\">12519.584657647</RELATIVE_SPEED>
      <relativeStateVector>
        <RELATIVE_POSITION_R units=\"m\">21.64407378190523</RELATIVE_POSITION_R>
        <RELATIVE_POSITION_T units=\"m\">575.2117664359268</RELATIVE_POSITION_T>
        <RELATIVE_POSITION_N units=\"m\">-607.1762164510269</RELATIVE_POSITION_N>
        <RELATIVE_VELOCITY_R units=\"m/s\">-3462.728646305578</RELATIVE_VELOCITY_R>
        <RELATIVE_VELOCITY_T units=\"m/s\">-6846.263929299887</RELATIVE_VELOCITY_T>
        <RELATIVE_VELOCITY_N units=\"m/s\">9893.340211092613</RELATIVE_VELOCITY_N>
      </relativeStateVector>
      <COLLISION_PROBABILITY>4.835E-05</COLLISION_PROBABILITY>
      <COLLISION_PROBABILITY_METHOD>FOSTER-1992</COLLISION_PROBABILITY_METHOD>
    </relativeMetadataData>
    <segment>
      <metadata>
        <OBJECT>OBJECT1</OBJECT>
        <OBJECT_DESIGNATOR>25544</OBJECT_DESIGNATOR>
        <CATALOG_NAME>SATCAT</CATALOG_NAME>
        <OBJECT_NAME>UNKNOWN</OBJECT_NAME>
        <INTERNATIONAL_DESIGNATOR>UNKNOWN</INTERNATIONAL_DESIGNATOR>
        <EPHEMERIS_NAME>NONE</EPHEMERIS_NAME>
        <COVARIANCE_METHOD>CALCULATED</COVARIANCE_METHOD>
        <MANEUVERABLE>N/A</MANEUVERABLE>
        <REF_FRAME>EME2000</REF_FRAME>
      </metadata>
      <data>
        <stateVector>
          <X units=\"km\">6522.163490326513</X>
          <Y units=\"km\">-1322.065244127859</Y>
          <Z units=\"km\">1925.831450640737</Z>
          <X_DOT units=\"km/s\">1.241405977194612</X_DOT>
          <Y_DOT units=\"km/s\">7.292886564114155</Y_DOT>
          <Z_DOT units=\"km/s\">-0.4033816589146355</Z_DOT>
        </stateVector>
        <covarianceMatrix>
          <CR_R units=\"m**2\">41.42</CR_R>
          <CT_R units=\"m**2\">-8.579</CT_R>
          <CT_T units=\"m**2\">2533</CT_T>
          <CN_R units=\"m**2\">-23.13</CN_R>
          <CN_T units=\"m**2\">13.36</CN_T>
          <CN_N units=\"m**2\">70.98</CN_N>
          <CRDOT_R units=\"m**2/s\">0.00252</CRDOT_R>
          <CRDOT_T units=\"m**2/s\">-5.476</CRDOT_T>
          <CRDOT_N units=\"m**2/s\">8.626E-04</CRDOT_N>
          <CRDOT_RDOT units=\"m**2/s**2\">0.005744</CRDOT_RDOT>
          <CTDOT_R units=\"m**2/s\">-0.01006</CTDOT_R>
          <CTDOT_T units=\"m**2/s\">0.004041</CTDOT_T>
          <CTDOT_N units=\"m**2/s\">-0.001359</CTDOT_N>
          <CTDOT_RDOT units=\"m**2/s**2\">-1.502E-05</CTDOT_RDOT>
          <CTDOT_TDOT units=\"m**2/s**2\">1.049E-05</CTDOT_TDOT>
          <CNDOT_R units=\"m**2/s\">0.001053</CNDOT_R>
          <CNDOT_T units=\"m**2/s\">-0.003412</CNDOT_T>
          <CNDOT_N units=\"m**2/s\">0.01213</CNDOT_N>
          <CNDOT_RDOT units=\"m**2/s**2\">-3.004E-06</CNDOT_RDOT>
          <CNDOT_TDOT units=\"m**2/s**2\">-1.091E-06</CNDOT_TDOT>
          <CNDOT_NDOT units=\"m**2/s**2\">5.529E-05</CNDOT_NDOT>
        </covarianceMatrix>
      </data>
    </segment>
    <segment>
      <metadata>
        <OBJECT>OBJECT2</OBJECT>
        <OBJECT_DESIGNATOR>43013</OBJECT_DESIGNATOR>
        <CATALOG_NAME>SATCAT</CATALOG_NAME>
        <OBJECT_NAME>UNKNOWN</OBJECT_NAME>
        <INTERNATIONAL_DESIGNATOR>UNKNOWN</INTERNATIONAL_DESIGNATOR>
        <EPHEMERIS_NAME>NONE</EPHEMERIS_NAME>
        <COVARIANCE_METHOD>CALCULATED</COVARIANCE_METHOD>
        <MANEUVERABLE>N/A</MANEUVERABLE>
        <REF_FRAME>EME2000</REF_FRAME>
      </metadata>
      <data>
        <stateVector>
          <X units=\"km\">6522.464869286729</X>
          <Y units=\"km\">-1321.567015921075</Y>
          <Z units=\"km\">1925.23066833715</Z>
          <X_DOT units=\"km/s\">-6.065774988417324</X_DOT>
          <Y_DOT units=\"km/s\">2.2356970770924</Y_DOT>
          <Z_DOT units=\"km/s\">8.41534505349432</Z_DOT>
        </stateVector>
        <covarianceMatrix>
          <CR_R units=\"m**2\">124.26</CR_R>
          <CT_R units=\"m**2\">-25.737</CT_R>
          <CT_T units=\"m**2\">7599</CT_T>
          <CN_R units=\"m**2\">-69.39</CN_R>
          <CN_T units=\"m**2\">40.08</CN_T>
          <CN_N units=\"m**2\">212.94</CN_N>
          <CRDOT_R units=\"m**2/s\">0.007560000000000001</CRDOT_R>
          <CRDOT_T units=\"m**2/s\">-16.428</CRDOT_T>
          <CRDOT_N units=\"m**2/s\">0.0025878</CRDOT_N>
          <CRDOT_RDOT units=\"m**2/s**2\">0.017232</CRDOT_RDOT>
          <CTDOT_R units=\"m**2/s\">-0.03018</CTDOT_R>
          <CTDOT_T units=\"m**2/s\">0.012123</CTDOT_T>
          <CTDOT_N units=\"m**2/s\">-0.004077</CTDOT_N>
          <CTDOT_RDOT units=\"m**2/s**2\">-4.506E-05</CTDOT_RDOT>
          <CTDOT_TDOT units=\"m**2/s**2\">3.147E-05</CTDOT_TDOT>
          <CNDOT_R units=\"m**2/s\">0.003158999999999999</CNDOT_R>
          <CNDOT_T units=\"m**2/s\">-0.010236</CNDOT_T>
          <CNDOT_N units=\"m**2/s\">0.03639</CNDOT_N>
          <CNDOT_RDOT units=\"m**2/s**2\">-9.012E-06</CNDOT_RDOT>
          <CNDOT_TDOT units=\"m**2/s**2\">-3.273E-06</CNDOT_TDOT>
          <CNDOT_NDOT units=\"m**2/s**2\">1.6587E-04</CNDOT_NDOT>
        </covarianceMatrix>
      </data>
    </segment>
  </body>
</cdm>
";

#[test]
fn golden_xml() {
    let output = run(r#"{"format": "xml", "message_for": "Iss operator"}"#, &json(&alert())).unwrap();
    assert_eq!(output.payload_str(), GOLDEN_XML);
    // The XML carries exactly the KVN's values.
    let mut from_xml = parse::from_xml(GOLDEN_XML).unwrap();
    assert_eq!(from_xml.message_for.take().as_deref(), Some("ISS OPERATOR"));
    assert_eq!(from_xml, parse::from_kvn(GOLDEN_KVN).unwrap());
}

/// The interpreter of the test virtualenv, `$SDA_VENV` or `<repo>/.venv` (`make test` installs
/// tests/requirements.txt there).
fn python() -> PathBuf {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let venv = std::env::var_os("SDA_VENV").map(PathBuf::from).unwrap_or_else(|| repo.join(".venv"));
    let python = venv.join("bin/python");
    assert!(
        python.is_file(),
        "no Python at {}: the CDM schema check needs the test virtualenv; run `make test` (or `python3 -m venv DIR && \
         DIR/bin/pip install -r tests/requirements.txt` and set SDA_VENV=DIR)",
        python.display()
    );
    python
}

/// Runs tests/validate_cdm.py on `messages`: (whether all are valid, its report).
fn validate(messages: &[(&str, &str)]) -> (bool, String) {
    let dir = std::env::temp_dir().join(format!("cdm-validate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let paths: Vec<PathBuf> = messages
        .iter()
        .map(|(name, text)| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path
        })
        .collect();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/validate_cdm.py");
    let output = Command::new(python()).arg(script).args(&paths).output().expect("cannot run the test virtualenv's Python");
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(
        !report.contains("ModuleNotFoundError"),
        "the test virtualenv lacks ccsds-ndm: install tests/requirements.txt into it ({})\n{report}",
        python().display()
    );
    std::fs::remove_dir_all(&dir).unwrap();
    (output.status.success(), report)
}

#[test]
fn kvn_and_xml_pass_the_ndm_xml_schema_check_and_broken_ones_do_not() {
    let payload = json(&alert());
    let kvn = run(r#"{"message_for": "ISS"}"#, &payload).unwrap().payload_str().to_string();
    let xml = run(r#"{"format": "xml", "ref_frame": "GCRF"}"#, &payload).unwrap().payload_str().to_string();
    let (ok, report) = validate(&[("ours.kvn", &kvn), ("ours.xml", &xml)]);
    assert!(ok, "{report}");
    assert_eq!(report.matches("ok ").count(), 2, "{report}");

    // The check is not a formality: a missing mandatory keyword, a wrong unit, two keywords swapped, each fail it.
    let without_message_id = xml.lines().filter(|l| !l.contains("<MESSAGE_ID>")).collect::<Vec<_>>().join("\n");
    let wrong_unit = xml.replacen("<MISS_DISTANCE units=\"m\">", "<MISS_DISTANCE units=\"km\">", 1);
    let swapped = xml.replacen(
        "<OBJECT>OBJECT1</OBJECT>\n        <OBJECT_DESIGNATOR>25544</OBJECT_DESIGNATOR>",
        "<OBJECT_DESIGNATOR>25544</OBJECT_DESIGNATOR>\n        <OBJECT>OBJECT1</OBJECT>",
        1,
    );
    assert_ne!(swapped, xml);
    let kvn_without_x = kvn.lines().filter(|l| !l.starts_with("X  ")).collect::<Vec<_>>().join("\n");
    for (name, broken, expected) in [
        ("no-id.xml", without_message_id, "MESSAGE_ID occurs 0 times"),
        ("unit.xml", wrong_unit, "'km' is not one of ['m']"),
        ("order.xml", swapped, "OBJECT is out of the schema's order"),
        ("no-x.kvn", kvn_without_x, "X occurs 0 times"),
    ] {
        let (ok, report) = validate(&[(name, &broken)]);
        assert!(!ok && report.contains(expected), "{name}: expected {expected:?} in\n{report}");
    }
}

/// Parses `text` back and compares every field with `alert`: ids, TCA, states after the inverse rotation within
/// 1e-9 relative, covariances and the other numbers exactly as written (16 digits).
fn assert_round_trip(text: &str, alert: &Alert<'_>, input_frame: Frame, ref_frame: Frame) {
    let cdm = if text.starts_with('<') { parse::from_xml(text) } else { parse::from_kvn(text) }.unwrap();
    assert_eq!(cdm.version, "1.0");
    assert_eq!(cdm.message_id, format!("SDA-{}", alert.alert_id.to_uppercase()));
    assert_eq!(cdm.tca, ccsds_utc(alert.tca_ms));
    assert_eq!(cdm.creation_date, ccsds_utc(alert.window_end_ms));
    assert_eq!(cdm.miss_distance_m, as_written(alert.miss_distance_km * 1000.0));
    assert_eq!(cdm.relative_speed_m_s, as_written(alert.relative_speed_km_s * 1000.0));
    let states = alert.states_at_tca.unwrap();
    let pc = alert.collision_probability.unwrap();
    assert_eq!(cdm.relative_state_rtn, relative_rtn(&states.primary, &states.secondary).unwrap().map(as_written));
    assert_eq!(cdm.collision_probability, as_written(pc.pc));
    assert_eq!(cdm.collision_probability_method, "FOSTER-1992");
    let back = frames::rotation(ref_frame, input_frame, alert.tca_ms);
    let expected = [
        (alert.primary_id, &states.primary, &pc.primary_covariance_rtn),
        (alert.secondary_id, &states.secondary, &pc.secondary_covariance_rtn),
    ];
    for (object, (id, state, covariance)) in cdm.objects.iter().zip(expected) {
        assert_eq!(object.object_designator, id.to_string());
        assert_eq!(object.ref_frame, cdm::frame_name(ref_frame));
        let position = frames::apply(&back, &[object.state[0], object.state[1], object.state[2]]);
        let velocity = frames::apply(&back, &[object.state[3], object.state[4], object.state[5]]);
        for (got, want, scale) in [(position, state.position_km, 1.0), (velocity, state.velocity_km_s, 1.0)] {
            let norm = want.iter().map(|x| x * x).sum::<f64>().sqrt().max(scale);
            for i in 0..3 {
                assert!((got[i] - want[i]).abs() <= 1e-9 * norm, "{got:?} vs {want:?}");
            }
        }
        assert_eq!(object.covariance_rtn, covariance.0.map(as_written), "covariance exact to 16 digits");
    }
}

#[test]
fn every_frame_and_syntax_reads_back_as_the_alert() {
    let payload = json(&alert());
    for (input, input_frame) in [("TEME", Frame::Teme), ("EME2000", Frame::Eme2000), ("GCRF", Frame::Gcrf)] {
        for (reference, ref_frame) in [("EME2000", Frame::Eme2000), ("GCRF", Frame::Gcrf)] {
            for format in ["kvn", "xml"] {
                let config = format!(r#"{{"format": "{format}", "input_frame": "{input}", "ref_frame": "{reference}"}}"#);
                let output = run(&config, &payload).unwrap();
                assert_round_trip(output.payload_str(), &alert(), input_frame, ref_frame);
            }
        }
    }
}

#[test]
fn states_in_the_ref_frame_are_passed_through_unrotated() {
    let output = run(r#"{"input_frame": "EME2000"}"#, &json(&alert())).unwrap();
    let cdm = parse::from_kvn(output.payload_str()).unwrap();
    assert_eq!(cdm.objects[0].state[..3], [6524.834, -1284.21, 1942.33]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn random_alerts_read_back(
        r in prop::array::uniform3(-42_000.0f64..42_000.0),
        dv in prop::array::uniform3(-8.0f64..8.0),
        dr in prop::array::uniform3(-5.0f64..5.0),
        covariance in prop::array::uniform21(-1e6f64..1e6),
        pc in 0.0f64..=1.0,
        tca_ms in 0i64..4_102_444_800_000,
        xml in any::<bool>(),
    ) {
        prop_assume!(r.iter().map(|x| x * x).sum::<f64>() > 6378.0f64.powi(2));
        let mut a = alert();
        a.tca_ms = tca_ms;
        a.window_end_ms = tca_ms + 1;
        let v = [r[1] * 1e-3 + 1.0, -r[0] * 1e-3, 0.5];
        let states = StatesAtTca {
            primary: StateVector { position_km: r, velocity_km_s: v },
            secondary: StateVector { position_km: [0, 1, 2].map(|i| r[i] + dr[i]), velocity_km_s: [0, 1, 2].map(|i| v[i] + dv[i]) },
        };
        a.states_at_tca = Some(states);
        let mut probability = a.collision_probability.unwrap();
        probability.pc = pc;
        probability.primary_covariance_rtn = Covariance6(covariance);
        a.collision_probability = Some(probability);
        let config = if xml { r#"{"format": "xml", "ref_frame": "GCRF"}"# } else { "{}" };
        let text = json(&a);
        let output = run(config, &text).unwrap();
        // Compared with the alert as the operator read it: serde_json (without its `float_roundtrip` feature) may
        // read a number 1 ulp away from the one written, which the subtraction of two states then magnifies.
        let read: Alert<'_> = serde_json::from_str(&text).unwrap();
        assert_round_trip(output.payload_str(), &read, Frame::Teme, if xml { Frame::Gcrf } else { Frame::Eme2000 });
    }
}

#[test]
fn a_replayed_alert_gives_the_same_bytes() {
    let payload = json(&alert());
    for config in ["{}", r#"{"format": "xml"}"#] {
        let first = run(config, &payload).unwrap();
        // Another instance, another batch, another position in it and another input time: the same output.
        let mut harness = Harness::<CdmWriter>::new(config).unwrap();
        let other = json(&Alert { alert_id: Cow::Borrowed("other"), ..alert() });
        let outcome = harness.process(&[("x", &other, 1), ("y", &payload, 99)]);
        assert_eq!(outcome.outputs[1], sda_guest::testing::Output { origin: Some(1), ..first.clone() });
        assert_eq!(outcome.outputs[1].payload, first.payload);
    }
}

#[test]
fn an_alert_without_states_or_probability_or_json_fails_saying_why() {
    let without_states = json(&Alert { states_at_tca: None, ..alert() });
    let (reason, message) = run("{}", &without_states).unwrap_err();
    assert_eq!(reason, FailureReason::Validation);
    assert!(message.contains("no `states_at_tca`") && message.contains("emit_states = true"), "{message}");

    let without_pc = json(&Alert { collision_probability: None, ..alert() });
    let (reason, message) = run("{}", &without_pc).unwrap_err();
    assert_eq!(reason, FailureReason::Validation);
    assert!(message.contains("no `collision_probability`") && message.contains("covariances"), "{message}");
    assert!(message.contains("emit_states = true"), "{message}");

    let (reason, message) = run("{}", "{not json").unwrap_err();
    assert_eq!(reason, FailureReason::Deserialization);
    assert!(message.contains("not valid JSON"), "{message}");

    let mut value: Value = serde_json::from_str(&json(&alert())).unwrap();
    value.as_object_mut().unwrap().remove("tca_ms");
    let (reason, message) = run("{}", &value.to_string()).unwrap_err();
    assert_eq!(reason, FailureReason::Validation);
    assert!(message.contains("tca_ms"), "{message}");

    let bad_id = json(&Alert { alert_id: Cow::Borrowed("a b\n"), ..alert() });
    assert!(run("{}", &bad_id).unwrap_err().1.contains("`alert_id`"));

    let mut bad_pc = alert();
    bad_pc.collision_probability.as_mut().unwrap().pc = 1.5;
    assert!(run("{}", &json(&bad_pc)).unwrap_err().1.contains("is not from 0 to 1"));
}

#[test]
fn bad_configs_are_refused_naming_the_key() {
    let refused = |config: &str| Harness::<CdmWriter>::new(config).err().unwrap_or_else(|| panic!("{config} was accepted"));
    assert!(refused(r#"{"format": "json"}"#).contains("`format`"));
    assert!(refused(r#"{"input_frame": "ITRF"}"#).contains("`input_frame`"));
    let itrf = refused(r#"{"ref_frame": "ITRF"}"#);
    assert!(itrf.contains("`ref_frame`") && itrf.contains("Earth orientation"), "{itrf}");
    let teme = refused(r#"{"ref_frame": "TEME"}"#);
    assert!(teme.contains("`ref_frame`") && teme.contains("Table 3-3"), "{teme}");
    assert!(refused(r#"{"originator": "A<B"}"#).contains("`originator`"));
    assert!(refused(r#"{"originator": ""}"#).contains("`originator`"));
    assert!(refused(r#"{"message_for": "line\nbreak"}"#).contains("`message_for`"));
    assert!(refused(r#"{"orignator": "X"}"#).contains("unknown field `orignator`"));

    let writer = Harness::<CdmWriter>::new(r#"{"originator": "my agency", "message_for": "sat a"}"#).unwrap();
    assert_eq!(writer.operator().originator, "MY AGENCY", "text values are uppercased");
    assert_eq!(writer.operator().message_for.as_deref(), Some("SAT A"));
}
