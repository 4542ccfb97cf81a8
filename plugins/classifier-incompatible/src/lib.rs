//! A classifier build that cannot take over from older ones: state version 3, and its `restore` refuses versions 1 and 2.
//!
//! It exists to test that a hot swap whose `restore` refuses leaves the running
//! plugin in place. It classifies exactly like version 1 when started fresh.

#[path = "../../classifier/src/engine.rs"]
#[macro_use]
mod engine;

pub use engine::Config;
use engine::{Engine, Remembered};
use sda_guest::{Emitter, Failure, Operator, Record, export_operator, state};

pub struct IncompatibleClassifier(Engine<Remembered>);

impl Operator for IncompatibleClassifier {
    type Config = Config;
    const STATE_VERSION: u32 = 3;

    delegate_to_engine!();

    fn restore(&mut self, version: u32, bytes: &[u8]) -> Result<(), String> {
        match version {
            3 => {
                self.0.set_state(state::decode(bytes)?);
                Ok(())
            }
            v => Err(format!(
                "cannot migrate state version {v}: this build keeps per-pair encounter history that versions before 3 never recorded"
            )),
        }
    }
}

export_operator!(IncompatibleClassifier);
