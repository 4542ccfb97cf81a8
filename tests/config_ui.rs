//! Config UI tests: each `tests/ui/invalid/NAME.toml` beside the exact stderr (`NAME.stderr`) `sda-pipeline validate` must print.
//!
//! Every case runs in a fresh folder that holds what a pipeline file may point
//! at: `plugins/passthrough.wasm` and `plugins/counter.wasm` (real components),
//! `plugins/future.wasm` (built against an unknown WIT version),
//! `plugins/core.wasm` (a core module, not a component), `plugins/notes.txt`
//! (not wasm at all), and `data/obs.jsonl`. Cases in `tests/ui/valid/` must
//! validate cleanly.
//!
//! The case's folder appears as `$DIR` in expected output. To accept new
//! output after a deliberate change of wording, run with
//! `SDA_BLESS=1` and review the diff of the `.stderr` files.

use sda_testkit::plugins;
use std::path::{Path, PathBuf};
use std::process::Command;

fn cases(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/ui").join(kind);
    let mut cases: Vec<PathBuf> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "toml")).collect();
    cases.sort();
    cases
}

/// A folder with the files cases refer to; the case file is copied in by name.
fn workspace(case: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let plugin_dir = dir.path().join("plugins");
    std::fs::create_dir_all(&plugin_dir).unwrap();
    std::fs::copy(plugins::PASSTHROUGH, plugin_dir.join("passthrough.wasm")).unwrap();
    std::fs::copy(plugins::COUNTER, plugin_dir.join("counter.wasm")).unwrap();
    std::fs::copy(plugins::WIT_FUTURE, plugin_dir.join("future.wasm")).unwrap();
    std::fs::write(plugin_dir.join("core.wasm"), [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]).unwrap();
    std::fs::write(plugin_dir.join("notes.txt"), "not a plugin").unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data/obs.jsonl"), "{\"observation_id\":\"o1\"}\n").unwrap();
    std::fs::copy(case, dir.path().join(case.file_name().unwrap())).unwrap();
    dir
}

fn validate(case: &Path) -> (Option<i32>, String, String) {
    let dir = workspace(case);
    let output = Command::new(env!("CARGO_BIN_EXE_sda-pipeline"))
        .current_dir(dir.path())
        .arg("validate")
        .arg(case.file_name().unwrap())
        .env("SDA_CACHE_DIR", dir.path().join("cache"))
        .output()
        .unwrap();
    // Absolute paths in help lines differ per run: show the folder as `$DIR`.
    let mut stderr = String::from_utf8(output.stderr).unwrap();
    for dir in [dir.path().canonicalize().unwrap(), dir.path().to_path_buf()] {
        stderr = stderr.replace(&dir.display().to_string(), "$DIR");
    }
    (output.status.code(), String::from_utf8(output.stdout).unwrap(), stderr)
}

#[test]
fn every_invalid_case_prints_its_expected_errors_and_exits_2() {
    let bless = std::env::var_os("SDA_BLESS").is_some();
    let cases = cases("invalid");
    let mut failures = Vec::new();
    for case in &cases {
        let (code, stdout, stderr) = validate(case);
        let expected_path = case.with_extension("stderr");
        if bless {
            std::fs::write(&expected_path, &stderr).unwrap();
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        let name = case.file_name().unwrap().to_string_lossy();
        if code != Some(2) {
            failures.push(format!("{name}: exit code {code:?}, expected 2\nstderr:\n{stderr}"));
        } else if !stdout.is_empty() {
            failures.push(format!("{name}: printed to stdout:\n{stdout}"));
        } else if stderr != expected {
            failures.push(format!("{name}: stderr differs.\n--- expected\n{expected}\n--- actual\n{stderr}"));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n\n{}", failures.len(), cases.len(), failures.join("\n\n"));
    assert!(cases.len() >= 15, "expected at least 15 invalid cases, found {}", cases.len());
}

#[test]
fn every_valid_case_validates() {
    for case in cases("valid") {
        let (code, stdout, stderr) = validate(&case);
        assert_eq!(code, Some(0), "{}: {stderr}", case.display());
        assert!(stdout.contains("is valid"), "{stdout}");
    }
}
