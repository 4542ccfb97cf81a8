//! The risk classifier: conjunction candidates in, RED and YELLOW alerts out, repeats suppressed per pair.
//!
//! The exact contract (severity, suppression, escalation, expiry, `alert_id`)
//! is `plugins/SEMANTICS.md`; the logic is in `engine.rs`, shared with the
//! classifier's other builds. This build keeps state version 1.

#[macro_use]
mod engine;

pub use engine::{Config, Severity, alert_id, rfc3339_utc};
use engine::{Engine, Remembered};
use sda_guest::{Emitter, Failure, Operator, Record, export_operator, state};

pub struct Classifier(Engine<Remembered>);

impl Operator for Classifier {
    type Config = Config;

    delegate_to_engine!();

    fn restore(&mut self, version: u32, bytes: &[u8]) -> Result<(), String> {
        match version {
            1 => {
                self.0.set_state(state::decode(bytes)?);
                Ok(())
            }
            v => Err(format!("unknown state version {v}; this build reads version 1")),
        }
    }
}

export_operator!(Classifier);
