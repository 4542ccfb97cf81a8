//! A classifier build that cannot take over from older ones: state version 3, and its `restore` refuses versions 1 and 2.
//!
//! It exists to test that a hot swap whose `restore` refuses leaves the running
//! plugin in place. It classifies exactly like version 1 when started fresh.

#[path = "../../classifier/src/engine.rs"]
#[macro_use]
mod engine;

pub use engine::Config;
use engine::{Engine, Remembered, State};
use sda_guest::state::{self, VersionedState};
use sda_guest::{Emitter, Failure, Operator, Record, export_operator};

/// State version 3, which migrates nothing older.
impl VersionedState for State<Remembered> {
    const VERSION: u32 = 3;

    fn migrate(_version: u32, _bytes: &[u8]) -> Result<Self, String> {
        Err("this build keeps per-pair encounter history that versions before 3 never recorded".to_string())
    }
}

pub struct IncompatibleClassifier(Engine<Remembered>);

impl Operator for IncompatibleClassifier {
    type Config = Config;
    const STATE_VERSION: u32 = State::<Remembered>::VERSION;

    delegate_to_engine!();
}

export_operator!(IncompatibleClassifier);
