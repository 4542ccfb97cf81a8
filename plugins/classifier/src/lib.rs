//! The risk classifier: conjunction candidates in, RED and YELLOW alerts out, repeats suppressed per pair.
//!
//! The exact contract (severity, suppression, escalation, expiry, `alert_id`)
//! is `plugins/SEMANTICS.md`; the logic is in `plugins/classifier-engine`, shared with the
//! classifier's other builds. This build keeps state version 1.

pub use classifier_engine::{Config, Severity, alert_id, rfc3339_utc};
use classifier_engine::{Engine, Remembered, State, delegate_to_engine};
use sda_guest::state::VersionedState;
use sda_guest::{Operator, export_operator};

pub struct Classifier(Engine<Remembered>);

impl Operator for Classifier {
    type Config = Config;
    const STATE_VERSION: u32 = State::<Remembered>::VERSION;

    delegate_to_engine!();
}

export_operator!(Classifier);
