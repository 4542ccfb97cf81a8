//! The risk classifier: conjunction candidates in, RED and YELLOW alerts out, repeats suppressed per pair.
//!
//! The exact contract (severity, suppression, escalation, expiry, `alert_id`)
//! is `plugins/SEMANTICS.md`; the logic is in `engine.rs`, shared with the
//! classifier's other builds. This build keeps state version 1.

#[macro_use]
mod engine;

pub use engine::{Config, Severity, alert_id, rfc3339_utc};
use engine::{Engine, Remembered, State};
use sda_guest::state::{self, VersionedState};
use sda_guest::{Emitter, Failure, Operator, Record, export_operator};

/// State version 1, the first: nothing older to migrate.
impl VersionedState for State<Remembered> {
    const VERSION: u32 = 1;
}

pub struct Classifier(Engine<Remembered>);

impl Operator for Classifier {
    type Config = Config;
    const STATE_VERSION: u32 = State::<Remembered>::VERSION;

    delegate_to_engine!();
}

export_operator!(Classifier);
