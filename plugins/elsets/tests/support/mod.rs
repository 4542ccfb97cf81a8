//! Finds the Python packages the reference-data tests read from (`sgp4`, `gpconf`), in the project's virtualenv.
//!
//! `make test` installs `tests/requirements.txt` into `$SDA_VENV`, or `.venv` at the repository root when it is
//! unset; the tests ask that virtualenv's Python where a package lives. Missing data fails the test, saying how to
//! install it: a test that skips without its data would pass having checked nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The directory of Python package `package` (where its `__init__.py` is), as the virtualenv's Python sees it.
pub fn python_package_dir(package: &str) -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let venv = std::env::var_os("SDA_VENV").map(PathBuf::from).unwrap_or_else(|| repo.join(".venv"));
    let python = venv.join("bin/python");
    let script = format!("import {package}, os; print(os.path.dirname({package}.__file__))");
    let output = Command::new(&python).args(["-c", &script]).output();
    match output {
        Ok(output) if output.status.success() => {
            let dir = PathBuf::from(String::from_utf8(output.stdout).expect("a path printed by Python is UTF-8").trim());
            assert!(dir.is_dir(), "{} says package `{package}` is in {}, which is not a directory", python.display(), dir.display());
            dir
        }
        failed => panic!(
            "this test reads reference data from the Python package `{package}` (pinned in tests/requirements.txt), which {} \
             cannot import ({}). Run `make test`, which installs tests/requirements.txt into $SDA_VENV (or .venv at the \
             repository root), or install it by hand: python3 -m venv .venv && .venv/bin/pip install -r tests/requirements.txt",
            python.display(),
            match failed {
                Ok(output) => String::from_utf8_lossy(&output.stderr).trim().to_string(),
                Err(e) => e.to_string(),
            }
        ),
    }
}

/// The text of `dir/relative`, or a failure naming the file.
pub fn read(dir: &Path, relative: &str) -> String {
    let path = dir.join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}
