//! Builds every plugin under `plugins/` for wasm32-wasip2, so tests and benches
//! find real components without a manual step (as wasmtime's test-programs do).
//!
//! The nested cargo uses its own target directory beside the outer one, so it
//! never waits on the outer build's lock, and survives `cargo clean -p`.

use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest_dir.join("../..").canonicalize().unwrap();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out.
    let target_root = out_dir.ancestors().nth(4).expect("OUT_DIR is inside a target directory").to_path_buf();
    let wasm_target_dir = target_root.join("wasm-plugins");

    // Every crate under plugins/ can change a component (libraries the plugins share too); the plugins are those
    // that build one (a cdylib).
    let crates = plugin_crates(&workspace.join("plugins"));
    let plugins: Vec<&(String, PathBuf, bool)> = crates.iter().filter(|(_, _, component)| *component).collect();
    for rerun in [
        "Cargo.toml",
        "Cargo.lock",
        "guest-sdk/src",
        "guest-sdk/wit",
        "guest-sdk/Cargo.toml",
        "guest-sdk/wire/src",
        "guest-sdk/wire/Cargo.toml",
    ] {
        println!("cargo:rerun-if-changed={}", workspace.join(rerun).display());
    }
    for (_, dir, _) in &crates {
        for part in ["src", "Cargo.toml", "wit"] {
            println!("cargo:rerun-if-changed={}", dir.join(part).display());
        }
    }

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&workspace).args(["build", "--release", "--locked", "--target", "wasm32-wasip2", "--target-dir"]).arg(&wasm_target_dir);
    for (name, _, _) in &plugins {
        cmd.args(["-p", name]);
    }
    // Flags meant for the host build must not leak into the wasm build.
    for var in ["CARGO_ENCODED_RUSTFLAGS", "RUSTFLAGS", "CARGO_BUILD_TARGET", "CARGO_TARGET_DIR", "CARGO_BUILD_RUSTFLAGS"] {
        cmd.env_remove(var);
    }
    let output = cmd.output().expect("cannot run cargo to build the plugins");
    if !output.status.success() {
        panic!(
            "building the plugins for wasm32-wasip2 failed (is the target installed? `rustup target add wasm32-wasip2`):\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    let wasm_dir = wasm_target_dir.join("wasm32-wasip2/release");
    let mut generated = String::from("// Paths of the plugins built by build.rs.\n");
    let mut all = String::from("/// Every plugin: (crate name, path of its component).\npub const ALL: &[(&str, &str)] = &[\n");
    for (name, _, _) in &plugins {
        let file = wasm_dir.join(format!("{}.wasm", name.replace('-', "_")));
        assert!(file.is_file(), "cargo built no component at {}", file.display());
        let ident = name.replace('-', "_").to_uppercase();
        writeln!(generated, "/// The `{name}` plugin component.\npub const {ident}: &str = {:?};", file.display().to_string()).unwrap();
        writeln!(all, "    ({name:?}, {ident}),").unwrap();
    }
    all.push_str("];\n");
    generated.push_str(&all);
    std::fs::write(out_dir.join("plugins.rs"), generated).unwrap();
}

/// `(package name, directory, whether it builds a component)` of every crate directly under `plugins/`.
fn plugin_crates(dir: &Path) -> Vec<(String, PathBuf, bool)> {
    let mut crates: Vec<(String, PathBuf, bool)> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let path = e.ok()?.path();
            let manifest = std::fs::read_to_string(path.join("Cargo.toml")).ok()?;
            let name = manifest.lines().find_map(|l| l.trim().strip_prefix("name = \"").and_then(|r| r.strip_suffix('"')))?.to_string();
            let component = manifest.lines().any(|l| l.trim().starts_with("crate-type") && l.contains("cdylib"));
            Some((name, path, component))
        })
        .collect();
    crates.sort();
    crates
}
