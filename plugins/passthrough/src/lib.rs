//! Test plugin: emits every input record unchanged (key, payload, event time, headers).

use sda_guest::{Emitter, Failure, NoConfig, Operator, Record, export_operator};

pub struct Passthrough;

impl Operator for Passthrough {
    type Config = NoConfig;

    fn init(_: NoConfig) -> Result<Self, String> {
        Ok(Passthrough)
    }

    fn process(&mut self, record: &Record<'_>, out: &mut Emitter) -> Result<(), Failure> {
        out.emit(record.key(), record.payload()).headers(record.headers()).push();
        Ok(())
    }
}

export_operator!(Passthrough);
