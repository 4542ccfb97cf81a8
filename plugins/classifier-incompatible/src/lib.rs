//! A classifier build that cannot take over from older ones: state version 3, and its `restore` refuses versions 1 and 2.
//!
//! It exists to test that a hot swap whose `restore` refuses leaves the running
//! plugin in place. It classifies exactly like version 1 when started fresh.

pub use classifier_engine::Config;
use classifier_engine::{Candidate, Engine, Memory, Remembered, Severity, State, delegate_to_engine};
use sda_guest::state::VersionedState;
use sda_guest::{Operator, export_operator};
use serde::{Deserialize, Serialize};

/// What version 1 remembers, kept as state version 3, which migrates nothing older.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RememberedV3(Remembered);

impl Memory for RememberedV3 {
    const STATE_VERSION: u32 = 3;

    fn migrate(_version: u32, _bytes: &[u8]) -> Result<State<Self>, String> {
        Err("this build keeps per-pair encounter history that versions before 3 never recorded".to_string())
    }

    fn remember(candidate: &Candidate<'_>, severity: Severity) -> Self {
        RememberedV3(Remembered::remember(candidate, severity))
    }
    fn window_start_ms(&self) -> i64 {
        self.0.window_start_ms
    }
    fn severity(&self) -> Severity {
        self.0.severity
    }
}

pub struct IncompatibleClassifier(Engine<RememberedV3>);

impl Operator for IncompatibleClassifier {
    type Config = Config;
    const STATE_VERSION: u32 = State::<RememberedV3>::VERSION;

    delegate_to_engine!();
}

export_operator!(IncompatibleClassifier);
