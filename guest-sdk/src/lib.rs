//! Write sda-pipeline operators in Rust: implement [`Operator`], call [`export_operator!`].
//!
//! An operator is a WebAssembly component the host loads from `pipeline.toml`. It
//! sees records one at a time, emits records, reports per-record failures, and
//! hands its state to the host for checkpoints. Everything about the ABI (the WIT
//! interface `sda:operator@0.2.0`, the packed batch framing, the canonical ABI) is
//! hidden here: authors never see generated bindings.
//!
//! ```
//! use sda_guest::{export_operator, Emitter, Failure, NoConfig, Operator, Record};
//!
//! struct Upper;
//!
//! impl Operator for Upper {
//!     type Config = NoConfig;
//!     fn init(_: NoConfig) -> Result<Self, String> { Ok(Upper) }
//!     fn process(&mut self, record: &Record<'_>, out: &mut Emitter) -> Result<(), Failure> {
//!         let text = record.payload_str()?;
//!         out.emit(record.key(), text.to_uppercase()).push();
//!         Ok(())
//!     }
//! }
//!
//! export_operator!(Upper);
//! # let mut h = sda_guest::testing::Harness::<Upper>::new("{}").unwrap();
//! # assert_eq!(h.process(&[("k", "abc", 1)]).outputs[0].payload_str(), "ABC");
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2`; the `.wasm` file
//! in `target/wasm32-wasip2/release/` is the plugin.
//!
//! # Layout
//! - [`Operator`]: the trait an author implements.
//! - [`Record`]: a borrowed, typed view of one input record.
//! - [`Emitter`]: where outputs go, each built as an [`Emit`] and pushed ([`OrderKey`]: an output's place
//!   in the merged order).
//! - [`Shard`], [`InputScope`]: how an operator runs as several instances (`parallelism = N`).
//! - [`Failure`]: what to say about an input that cannot be handled.
//! - [`state`]: postcard helpers for `snapshot` and `restore`; [`state::VersionedState`] does `restore`'s
//!   version check.
//! - [`testing`]: drive an operator natively, through the same packing, in unit tests.

// Generated bindings name this crate by its path, from inside it too.
extern crate self as sda_guest;

mod emit;
mod failure;
mod record;
#[doc(hidden)]
pub mod rt;
pub mod state;
pub mod testing;

pub use emit::{Emit, Emitter};
pub use failure::{Failure, FailureKind, FailureReason};
pub use record::Record;
pub use serde;

pub use sda_wire::{NO_WATERMARK, ORDER_HEADER, OrderKey};

/// Which of the host's instances of an operator this one is (`parallelism = N` in `pipeline.toml`
/// runs N instances, `index` 0 to N-1). Every instance sees every record; each emits the outputs
/// of its own share of the work, so that together they emit each output exactly once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shard {
    /// 0-based, less than `count`.
    pub index: u32,
    /// At least 1.
    pub count: u32,
}

impl Shard {
    /// One instance doing all the work: shard 0 of 1.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };
}

/// Which records each instance of an operator must see, when the host runs several.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InputScope {
    /// Records may be split by key between instances. The host does not split by key yet, so a
    /// keyed operator runs as one instance (the host refuses `parallelism` > 1 for it).
    Keyed,
    /// Every instance sees every record and does its own share ([`Operator::init_shard`]): an
    /// all-pairs operator, which splitting by key would make lose the pairs across two parts.
    AllRecords,
}

/// Config type for operators that take no configuration: accepts only an empty table.
#[derive(Debug, Default, Clone, Copy, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoConfig {}

/// An operator: what a plugin author implements.
///
/// The host calls `init` once, then `process` for every input record in order,
/// `on_watermark` after every batch and as event time advances, and `snapshot`/`restore` around
/// checkpoints, recoveries and hot swaps. Output must depend only on the input
/// records, the watermarks and the restored state: the host replays input after
/// a crash and relies on getting the same outputs again.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an sda-pipeline operator",
    label = "export_operator! needs a type that implements `sda_guest::Operator`",
    note = "implement `sda_guest::Operator` for `{Self}`: `type Config`, `init` and `process` are required"
)]
pub trait Operator: Sized + 'static {
    /// The operator's `config` table from `pipeline.toml`. Use
    /// `#[serde(deny_unknown_fields)]` so a misspelt key is an error, not a
    /// silently ignored setting; [`NoConfig`] accepts only an empty table.
    type Config: serde::de::DeserializeOwned;

    /// Version of the format [`Operator::snapshot`] writes. Bump it when the
    /// state's shape changes, and teach [`Operator::restore`] to read the old one.
    /// With a [`state::VersionedState`], it is that type's `VERSION`.
    const STATE_VERSION: u32 = 1;

    /// Which records each instance must see when the host runs several ([`InputScope`]).
    const INPUT_SCOPE: InputScope = InputScope::Keyed;

    /// Builds the operator from its configuration. An `Err` rejects the
    /// configuration; say which setting is wrong and why.
    fn init(config: Self::Config) -> Result<Self, String>;

    /// Builds instance `shard` of the operator: the host calls this, not [`Operator::init`].
    /// An [`InputScope::AllRecords`] operator that can run as several instances implements it:
    /// the instance must then emit only its share of the outputs (and emit them with an
    /// [`OrderKey`] so the host merges the shares into one order), and keep a state that does not
    /// depend on the shard. The default builds the whole operator with `init` and refuses any
    /// other shard.
    fn init_shard(config: Self::Config, shard: Shard) -> Result<Self, String> {
        if shard == Shard::WHOLE {
            Self::init(config)
        } else {
            Err(format!(
                "this operator does not implement `init_shard`, so it cannot run as shard {} of {}; run it with `parallelism = 1`",
                shard.index, shard.count
            ))
        }
    }

    /// Handles one input record. Outputs go to `out`; an `Err` reports this
    /// record as failed (and discards nothing already emitted for it).
    fn process(&mut self, record: &Record<'_>, out: &mut Emitter) -> Result<(), Failure>;

    /// Event time has reached `event_time_ms` (inclusive): close what can be
    /// closed. At end of input this is `i64::MAX`.
    ///
    /// The host calls it after every batch, with its own watermark or [`NO_WATERMARK`] when it has
    /// none. This is the place for work that grows with the state rather than with the batch
    /// (closing a window, screening a catalogue): it runs under the operator's
    /// `watermark_timeout_ms`, not the per-batch `call_timeout_ms`, and a fault here is never
    /// blamed on an input record. A `process` that closes a window should only mark it closed
    /// and leave the work to this call.
    fn on_watermark(&mut self, event_time_ms: i64, out: &mut Emitter) {
        let _ = (event_time_ms, out);
    }

    /// The whole state, in format [`Operator::STATE_VERSION`]. Stateless
    /// operators keep the default (empty).
    fn snapshot(&self) -> Vec<u8> {
        Vec::new()
    }

    /// Replaces the state with one written by `snapshot`, perhaps by an older
    /// build whose format was `version`. Refuse with a reason what you cannot
    /// read: the host then keeps the running plugin. The default accepts only
    /// the empty state of a stateless operator. [`state::restore_versioned`] does
    /// the version check for a [`state::VersionedState`].
    fn restore(&mut self, version: u32, state: &[u8]) -> Result<(), String> {
        if state.is_empty() {
            Ok(())
        } else {
            Err(format!("this operator keeps no state, but was given {} bytes of state version {version}", state.len()))
        }
    }
}

/// Exports a type implementing [`Operator`] as the plugin's operator.
///
/// Call it once per plugin crate, at the top level. On targets other than
/// `wasm32` it expands to a signature check only, so the crate can also be built
/// natively for tests and benches.
#[macro_export]
macro_rules! export_operator {
    ($operator:ty) => {
        const _: () = {
            fn __sda_check_operator<T: $crate::Operator>() {}
            let _ = __sda_check_operator::<$operator>;
        };

        #[cfg(target_arch = "wasm32")]
        const _: () = {
            static __SDA_INSTANCE: $crate::rt::Slot<$operator> = $crate::rt::Slot::new();

            struct __SdaExport;

            impl $crate::rt::bindings::exports::sda::operator::operator::Guest for __SdaExport {
                fn describe() -> $crate::rt::OperatorInfo {
                    $crate::rt::describe::<$operator>()
                }
                fn init(config: ::std::string::String, shard: $crate::rt::WitShard) -> ::std::result::Result<(), ::std::string::String> {
                    $crate::rt::init(&__SDA_INSTANCE, &config, shard)
                }
                fn process(batch: ::std::vec::Vec<u8>) -> $crate::rt::BatchResult {
                    $crate::rt::process(&__SDA_INSTANCE, &batch)
                }
                fn on_watermark(event_time_ms: i64) -> $crate::rt::BatchResult {
                    $crate::rt::on_watermark(&__SDA_INSTANCE, event_time_ms)
                }
                fn snapshot() -> ::std::vec::Vec<u8> {
                    $crate::rt::snapshot(&__SDA_INSTANCE)
                }
                fn state_version() -> u32 {
                    <$operator as $crate::Operator>::STATE_VERSION
                }
                fn restore(version: u32, state: ::std::vec::Vec<u8>) -> ::std::result::Result<(), ::std::string::String> {
                    $crate::rt::restore(&__SDA_INSTANCE, version, &state)
                }
            }

    $crate::rt::bindings::__export_plugin_world!(__SdaExport with_types_in $crate::rt::bindings);
        };
    };
}
