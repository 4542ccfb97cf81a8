//! Reads which operator ABI a plugin file implements, without compiling it.
//!
//! `validate` and `plan` must say "built against an unknown WIT version" in
//! milliseconds, so this walks the component's top-level export names with
//! `wasmparser` instead of asking wasmtime to compile it.

use wasmparser::{Encoding, Parser, Payload};

/// Interface name every operator exports, before `@version`.
pub const OPERATOR_INTERFACE: &str = "sda:operator/operator";

/// WIT versions of `sda:operator` this host can run, oldest first.
pub const SUPPORTED_WIT_VERSIONS: &[&str] = &["0.1.0", "0.2.0"];

/// Whether a plugin of this supported WIT version can be told its shard (`parallelism` > 1):
/// `init` takes a shard from 0.2.0 on.
pub fn knows_shards(wit_version: &str) -> bool {
    wit_version != "0.1.0"
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InspectError {
    #[error("is not a WebAssembly file ({0})")]
    NotWasm(String),
    #[error("is a core WebAssembly module, not a component")]
    CoreModule,
    #[error("exports no `{OPERATOR_INTERFACE}` interface (its exports: {exports})")]
    NoOperatorExport { exports: String },
    #[error("is built against WIT `sda:operator@{found}`, which this host does not support (it supports {supported})")]
    UnsupportedWit { found: String, supported: String },
}

impl InspectError {
    /// A sentence on how to fix it, for config problems.
    pub fn help(&self) -> Option<String> {
        match self {
            InspectError::CoreModule => Some("build the plugin with `cargo build --release --target wasm32-wasip2`".into()),
            InspectError::NoOperatorExport { .. } => {
                Some("a plugin implements `sda_guest::Operator` and calls `sda_guest::export_operator!`".into())
            }
            InspectError::UnsupportedWit { .. } => Some("rebuild the plugin against a supported `sda-guest`, or upgrade the host".into()),
            InspectError::NotWasm(_) => {
                Some("point `plugin` at the .wasm component built with `cargo build --release --target wasm32-wasip2`".into())
            }
        }
    }
}

/// The operator ABI version (`"0.1.0"`) a component exports, checked against
/// the versions this host supports.
pub fn operator_wit_version(wasm: &[u8]) -> Result<String, InspectError> {
    if !wasm.starts_with(b"\0asm") {
        return Err(InspectError::NotWasm("it does not start with the `\\0asm` magic bytes".into()));
    }
    let mut depth = 0usize;
    let mut exports = Vec::new();
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(|e| InspectError::NotWasm(first_line(e.message())))? {
            Payload::Version { encoding, .. } => {
                if depth == 0 && encoding == Encoding::Module {
                    return Err(InspectError::CoreModule);
                }
                depth += 1;
            }
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentExportSection(reader) if depth == 1 => {
                for export in reader {
                    let export = export.map_err(|e| InspectError::NotWasm(first_line(e.message())))?;
                    exports.push(export.name.name.to_string());
                }
            }
            _ => {}
        }
    }
    let prefix = format!("{OPERATOR_INTERFACE}@");
    let Some(found) = exports.iter().find_map(|e| e.strip_prefix(&prefix)) else {
        let exports = if exports.is_empty() { "none".to_string() } else { exports.join(", ") };
        return Err(InspectError::NoOperatorExport { exports });
    };
    if SUPPORTED_WIT_VERSIONS.contains(&found) {
        Ok(found.to_string())
    } else {
        Err(InspectError::UnsupportedWit {
            found: found.to_string(),
            supported: SUPPORTED_WIT_VERSIONS.iter().map(|v| format!("`{v}`")).collect::<Vec<_>>().join(", "),
        })
    }
}

fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or(message).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_non_wasm_and_core_modules() {
        assert!(matches!(operator_wit_version(b"hello"), Err(InspectError::NotWasm(_))));
        // The smallest core module: magic and version 1.
        let core = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
        assert_eq!(operator_wit_version(&core), Err(InspectError::CoreModule));
    }

    #[test]
    fn empty_component_exports_no_operator() {
        // The smallest component: magic, version 0x0d, layer 1.
        let component = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];
        assert_eq!(operator_wit_version(&component), Err(InspectError::NoOperatorExport { exports: "none".into() }));
    }
}
