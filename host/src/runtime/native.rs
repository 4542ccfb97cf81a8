//! Operators compiled into the host instead of loaded as plugins (`plugin = "native:NAME"`), so that benchmarks can measure what the sandbox costs.
//!
//! Only a build with the `native-operators` feature has any (the correlator and the classifier, the
//! same crates the plugins are built from). A native operator runs through the same host code as a
//! plugin: the same packed batches in and out, the same check of its output, the same checkpoints.
//! What it lacks is the sandbox: no memory cap, no call deadline, and a panic is caught as a fault
//! but the process shares its memory. It is for measuring, not for production.

use super::{InputScope, PluginFailure, Shard};

/// How a pipeline file names a native operator.
pub const PREFIX: &str = "native:";

/// The operator calls, as the host makes them on a plugin: packed outputs, and failures by input index.
pub trait NativeOperator: Send {
    fn process(&mut self, batch: &[u8]) -> (Vec<u8>, Vec<PluginFailure>);
    fn on_watermark(&mut self, event_time_ms: i64) -> Vec<u8>;
    fn state_version(&self) -> u32;
    fn snapshot(&mut self) -> Vec<u8>;
    fn restore(&mut self, version: u32, state: &[u8]) -> Result<(), String>;
}

/// The native operators this build has.
pub fn available() -> &'static [&'static str] {
    if cfg!(feature = "native-operators") { &["correlator", "classifier"] } else { &[] }
}

/// A fresh native operator `name`, initialised as `shard`; `Err` says why not (unknown name, or `init` refused the config).
pub fn build(name: &str, config_json: &str, shard: Shard) -> Result<Box<dyn NativeOperator>, String> {
    #[cfg(feature = "native-operators")]
    {
        let shard = sda_guest::Shard { index: shard.index, count: shard.count };
        match name {
            "correlator" => {
                return Ok(Box::new(Native(sda_guest::rt::build_shard::<correlator::Correlator>(config_json, shard)?)));
            }
            "classifier" => {
                return Ok(Box::new(Native(sda_guest::rt::build_shard::<classifier::Classifier>(config_json, shard)?)));
            }
            _ => {}
        }
    }
    let _ = (config_json, shard);
    Err(unknown(name))
}

/// Which records each instance of native operator `name` must see (keyed for a name this build lacks).
pub fn input_scope(name: &str) -> InputScope {
    #[cfg(feature = "native-operators")]
    {
        let scope = match name {
            "correlator" => <correlator::Correlator as sda_guest::Operator>::INPUT_SCOPE,
            "classifier" => <classifier::Classifier as sda_guest::Operator>::INPUT_SCOPE,
            _ => sda_guest::InputScope::Keyed,
        };
        if scope == sda_guest::InputScope::AllRecords {
            return InputScope::AllRecords;
        }
    }
    let _ = name;
    InputScope::Keyed
}

/// Why `native:NAME` cannot be used.
pub fn unknown(name: &str) -> String {
    match available() {
        [] => format!(
            "this build has no native operators (`native:{name}`): they exist for benchmarks, in a host built with `--features \
                native-operators`"
        ),
        names => format!("there is no native operator `{name}`; this build has {}", names.join(", ")),
    }
}

#[cfg(feature = "native-operators")]
struct Native<T>(T);

#[cfg(feature = "native-operators")]
impl<T: sda_guest::Operator + Send> NativeOperator for Native<T> {
    fn process(&mut self, batch: &[u8]) -> (Vec<u8>, Vec<PluginFailure>) {
        let (outputs, failures) = sda_guest::rt::process_batch(&mut self.0, batch);
        let failures = failures
            .into_iter()
            .map(|(index, f)| {
                let (kind, reason, message) = f.into_parts();
                PluginFailure { index, kind, reason, message }
            })
            .collect();
        (outputs, failures)
    }

    fn on_watermark(&mut self, event_time_ms: i64) -> Vec<u8> {
        sda_guest::rt::watermark(&mut self.0, event_time_ms)
    }

    fn state_version(&self) -> u32 {
        T::STATE_VERSION
    }

    fn snapshot(&mut self) -> Vec<u8> {
        self.0.snapshot()
    }

    fn restore(&mut self, version: u32, state: &[u8]) -> Result<(), String> {
        self.0.restore(version, state)
    }
}
