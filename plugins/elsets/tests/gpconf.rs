//! The operator's reading of element sets against gpconf, a public conformance corpus of real and derived element sets.
//!
//! Provenance: gpconf 0.7.0 (PyPI `gpconf==0.7.0`, Apache-2.0, NEOGY LLC; "gpconf: a conformance corpus for
//! orbital-data parsers crossing the five-digit catalog-number boundary", https://doi.org/10.5281/zenodo.22867654).
//! Its NOTICE: the licence covers the corpus's vectors, derived files and expected values; the derived TLEs are
//! CelesTrak OMM records re-rendered with Alpha-5 catalogue fields (and synthetic-derived sets for every letter and
//! every two-digit year), the corrupt inputs real records with one stated edit each. The files are read from the
//! installed package (pinned in `tests/requirements.txt`), not copied into this repository:
//! - `gpconf/corpus/vectors/alpha5.json`, `norad-cat-id-text.json`, `ccsds-epoch-strings.json` (the vectors of
//!   fixture `alpha5-encoding-vectors`);
//! - `gpconf/corpus/derived/alpha5-tle/*.tle` with `fixtures/alpha5-tle-derived/expected.json`;
//! - `gpconf/corpus/derived/corrupt-input/*` with `fixtures/corrupt-input/expected.json`.
//!
//! The corpus's fixtures give no SGP4 positions, so none are compared here (Vallado's set does that: `vallado.rs`).
//! Not used: its KVN and XML variants (the operator reads TLE and OMM JSON only) and Alpha-5 encoding (it only decodes).

mod support;

use elsets::elements::{self, Refusal, decode_catalogue_field, parse_ccsds_epoch_us, parse_norad_cat_id_text};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn corpus() -> PathBuf {
    support::python_package_dir("gpconf").join("corpus")
}

fn json(dir: &Path, relative: &str) -> Value {
    serde_json::from_str(&support::read(dir, relative)).unwrap_or_else(|e| panic!("{relative} is not JSON: {e}"))
}

/// An ISO instant `YYYY-MM-DDThh:mm:ss.ffffff` (the corpus's expected form) as Unix microseconds.
fn iso_us(iso: &str) -> i64 {
    parse_ccsds_epoch_us(iso).unwrap_or_else(|e| panic!("the corpus's expected instant {iso:?}: {e}"))
}

/// The element sets of a TLE file as records: each from a name line to the next (a name line is one that is not
/// line 1 or 2), as a feeder splitting a 3LE file would cut it; CRLF kept.
fn records_of(file: &str) -> Vec<String> {
    let mut records: Vec<String> = Vec::new();
    for line in file.split_inclusive('\n') {
        if !(line.starts_with("1 ") || line.starts_with("2 ")) || records.is_empty() {
            records.push(String::new());
        }
        records.last_mut().expect("a record started").push_str(line);
    }
    records
}

#[test]
fn alpha5_fields_decode_as_the_corpus_vectors_say_and_invalid_ones_are_refused() {
    let vectors = json(&corpus(), "vectors/alpha5.json");
    let mut decoded = 0;
    for group in ["official_examples", "boundaries", "skip_boundaries", "below_100000"] {
        for vector in vectors[group].as_array().expect("a list of vectors") {
            let field = vector["field"].as_str().unwrap();
            let expected = vector["norad_cat_id"].as_u64().unwrap();
            assert_eq!(decode_catalogue_field(field).map(u64::from), Ok(expected), "{group}: {field}");
            decoded += 1;
        }
    }
    assert!(decoded >= 6 + 48 + 4 + 6, "every letter's boundaries, the skips and the examples: {decoded}");
    for vector in vectors["decode_invalid"].as_array().unwrap() {
        let field = vector["field"].as_str().unwrap();
        let refused = decode_catalogue_field(field).expect_err(field);
        println!("{field:?} refused: {refused} (corpus: {})", vector["reason"]);
    }
    assert_eq!(vectors["decode_invalid"].as_array().unwrap().len(), 6);
}

#[test]
fn norad_cat_id_text_and_ccsds_epochs_follow_the_corpus_vectors() {
    let dir = corpus();
    let ids = json(&dir, "vectors/norad-cat-id-text.json");
    for vector in ids["valid"].as_array().unwrap() {
        let text = vector["text"].as_str().unwrap();
        assert_eq!(parse_norad_cat_id_text(text), Ok(vector["value"].as_u64().unwrap()), "{text:?}");
        // The same through an OMM record's `NORAD_CAT_ID`, as a string and (without '+' or zeros) as a number.
        let as_string = elements::norad_cat_id(&Value::String(text.to_string())).unwrap();
        assert_eq!(u64::from(as_string), vector["value"].as_u64().unwrap());
    }
    for vector in ids["invalid_in_omm"].as_array().unwrap() {
        let text = vector["text"].as_str().unwrap();
        let refused = elements::norad_cat_id(&Value::String(text.to_string())).expect_err(text);
        assert!(matches!(refused, Refusal::CatalogueNumber(_)), "{text:?}: {refused:?}");
    }
    assert!(elements::norad_cat_id(&serde_json::json!(25544.0)).is_err(), "a decimal JSON number");

    let epochs = json(&dir, "vectors/ccsds-epoch-strings.json");
    for vector in epochs["valid"].as_array().unwrap() {
        let text = vector["text"].as_str().unwrap();
        let got = parse_ccsds_epoch_us(text).unwrap_or_else(|e| panic!("{e}"));
        let mut instants = vec![vector["iso"].as_str().unwrap()];
        instants.extend(vector["iso_alternatives"].as_array().into_iter().flatten().map(|v| v.as_str().unwrap()));
        assert!(instants.iter().any(|iso| (got - iso_us(iso)).abs() <= 2), "{text:?} read as {got} us, expected one of {instants:?}");
    }
    for vector in epochs["invalid"].as_array().unwrap() {
        let text = vector["text"].as_str().unwrap();
        assert!(parse_ccsds_epoch_us(text).is_err(), "{text:?} must be refused: {}", vector["reason"]);
    }
}

/// A decimal string of the corpus's expected values, as a number.
fn number(value: &Value) -> f64 {
    value.as_str().expect("the corpus writes values as strings").parse().expect("a decimal")
}

#[test]
fn every_alpha5_tle_of_the_corpus_is_read_to_its_expected_values_and_accepted() {
    let dir = corpus();
    let expected = json(&dir, "fixtures/alpha5-tle-derived/expected.json");
    let mut by_file_and_id: BTreeMap<(String, u64), &Value> = BTreeMap::new();
    for record in expected["records"].as_array().unwrap() {
        let key = (record["derived_file"].as_str().unwrap().to_string(), record["norad_cat_id"].as_u64().unwrap());
        assert!(by_file_and_id.insert(key.clone(), record).is_none(), "one expected record per file and object: {key:?}");
    }
    let mut sets_read = 0;
    for file in by_file_and_id.keys().map(|(file, _)| file.clone()).collect::<std::collections::BTreeSet<_>>() {
        let text = support::read(&dir, &format!("derived/alpha5-tle/{file}"));
        for record in records_of(&text) {
            let (set, _) = elsets::accept(record.as_bytes()).unwrap_or_else(|refusal| panic!("{file}: {refusal}\n{record}"));
            let expected = by_file_and_id
                .get(&(file.clone(), u64::from(set.object_id)))
                .unwrap_or_else(|| panic!("{file}: object {} read from a set the fixture does not list", set.object_id));
            // The TLE's own values: the OMM's, except where the fixture says the TLE rendering differs.
            let canonical = &expected["canonical"];
            let tle_value = |name: &str| number(expected["by_format"]["tle"]["differs_from_omm"].get(name).unwrap_or(&canonical[name]));
            let context = format!("{file}, object {}", set.object_id);
            assert_eq!(set.mean_motion_rev_per_day, tle_value("mean_motion"), "{context}");
            assert_eq!(set.eccentricity, tle_value("eccentricity"), "{context}");
            assert_eq!(set.inclination_deg, tle_value("inclination"), "{context}");
            assert_eq!(set.ra_of_asc_node_deg, tle_value("ra_of_asc_node"), "{context}");
            assert_eq!(set.arg_of_pericenter_deg, tle_value("arg_of_pericenter"), "{context}");
            assert_eq!(set.mean_anomaly_deg, tle_value("mean_anomaly"), "{context}");
            assert_eq!(set.bstar_per_earth_radius, tle_value("bstar"), "{context}");
            // A TLE epoch is the OMM's rounded to 1e-8 day (864 us): within half of that.
            let epoch_gap_us = (set.epoch_us - iso_us(canonical["epoch"].as_str().unwrap())).abs();
            assert!(epoch_gap_us <= 432, "{context}: epoch {epoch_gap_us} us from the expected");
            assert_eq!(expected["alpha5"]["decodes_to"].as_u64(), Some(u64::from(set.object_id)), "{context}");
            sets_read += 1;
        }
    }
    assert_eq!(sets_read, by_file_and_id.len(), "every expected record read once");
    assert_eq!(sets_read, 750, "604 derived from real records, 46 for every letter, 100 for every two-digit year");
}

/// Whether a refusal is for the defect a corrupt input was made with.
type IsTheDefect = fn(&Refusal) -> bool;

#[test]
fn each_corrupt_input_is_refused_for_its_defect_and_its_neighbours_read_as_unedited() {
    let dir = corpus();
    let unedited: Vec<String> = records_of(&support::read(&dir, "derived/corrupt-input/unedited-sets.tle"));
    let unedited_sets: Vec<_> = unedited.iter().map(|r| elsets::accept(r.as_bytes()).expect("an unedited set is accepted").0).collect();
    assert_eq!(unedited_sets.iter().map(|s| s.object_id).collect::<Vec<_>>(), [25544, 69999, 20453]);

    // Each file: the corrupt record's position among the records, and the check its refusal must be.
    let checks: [(&str, IsTheDefect); 4] = [
        ("c1-checksum-digit.tle", |r| matches!(r, Refusal::Checksum { line: 1, written: '1', computed: 6 })),
        ("c2-line-2-short.tle", |r| matches!(r, Refusal::Layout(m) if m.contains("line 2 is 68 characters long"))),
        ("c3-letter-in-epoch.tle", |r| matches!(r, Refusal::Field { field: "epoch", problem } if problem.contains("189.7O990935"))),
        ("c4-line-2-missing.tle", |r| matches!(r, Refusal::Layout(m) if m.contains("line 2 is missing"))),
    ];
    let expected = json(&dir, "fixtures/corrupt-input/expected.json");
    for (file, is_the_defect) in checks {
        let records = records_of(&support::read(&dir, &format!("derived/corrupt-input/{file}")));
        assert_eq!(records.len(), 3, "{file}: a corrupt set between two valid ones");
        let corrupt_position = expected["records"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["file"] == file && r["role"] == "corrupt")
            .and_then(|r| r["position"].as_u64())
            .unwrap_or_else(|| panic!("the fixture names {file}'s corrupt record")) as usize;
        for (index, record) in records.iter().enumerate() {
            match elsets::accept(record.as_bytes()) {
                Ok((set, _)) => {
                    assert_ne!(index + 1, corrupt_position, "{file}: the corrupt set was accepted as object {}", set.object_id);
                    assert_eq!(set, unedited_sets[index], "{file}: a neighbour reads as in the unedited file");
                }
                Err(refusal) => {
                    assert_eq!(index + 1, corrupt_position, "{file}: a valid neighbour refused: {refusal}");
                    assert!(is_the_defect(&refusal), "{file}: refused, but not for its defect: {refusal:?}");
                    // The host dead-letters it with this message.
                    println!("{file}: {}", refusal);
                }
            }
        }
    }

    // OMM JSON: CelesTrak serves an array; each object is a record. The unedited array's records are accepted and
    // describe the TLEs' objects at the TLEs' epochs (to 1e-8 day); the array cut before its bracket is not JSON.
    let array = json(&dir, "derived/corrupt-input/unedited-array.json");
    let omm_sets: Vec<_> =
        array.as_array().unwrap().iter().map(|o| elsets::accept(o.to_string().as_bytes()).expect("accepted").0).collect();
    assert_eq!(omm_sets.len(), unedited_sets.len());
    for omm in &omm_sets {
        let tle = unedited_sets.iter().find(|tle| tle.object_id == omm.object_id).expect("the same objects as the TLE file");
        assert!((omm.epoch_us - tle.epoch_us).abs() <= 432, "object {}", omm.object_id);
        assert_eq!(omm.mean_motion_rev_per_day, tle.mean_motion_rev_per_day);
    }
    let whole = support::read(&dir, "derived/corrupt-input/unedited-array.json");
    assert!(matches!(elsets::accept(whole.as_bytes()), Err(Refusal::NotAnObject(_))), "an array is not one element set");
    let cut = support::read(&dir, "derived/corrupt-input/c5-cut-closing-bracket.json");
    let refused = elsets::accept(cut.as_bytes()).unwrap_err();
    assert!(refused.is_deserialization() && refused.to_string().contains("not valid JSON"), "{refused}");
}
