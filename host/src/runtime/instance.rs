//! One sandboxed instance of an operator (one shard of it): its own `Store`, typed calls over whichever WIT version the plugin exports, and fault classification.
//!
//! Every call gets a fresh deadline; a trap, a refused memory growth or an
//! expired deadline becomes a [`PluginFault`] naming the operator and the kind.
//! After a fault the instance is discarded: every later call returns the same
//! fault, because wasm state after a trap cannot be trusted. Running several
//! instances of one operator, and merging what they return, is `parallel`'s job.

use super::bindings::{v0_1, v0_2};
use super::limits::MemoryLimiter;
use super::native::{self, NativeOperator};
use super::stdio::{PluginOutput, StderrTail};
use super::{EPOCH_TICK, InputScope, LoadedPlugin, RuntimeError, Shard};
use crate::graph::Limits;
use sda_wire::{BatchReader, FailureKind, FailureReason};
use std::sync::Arc;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Engine, Store, Trap};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// What a store holds for one instance.
pub(super) struct PluginState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemoryLimiter,
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// How a plugin call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// A trap: a panic, an out-of-bounds access, a malformed result.
    Trap,
    /// The call outlived its deadline.
    Timeout,
    /// The plugin asked for more memory than its cap.
    Memory,
}

impl FaultKind {
    /// The dead-letter `error_kind` for this fault.
    pub fn error_kind(self) -> &'static str {
        match self {
            FaultKind::Trap => "PluginTrap",
            FaultKind::Timeout => "PluginTimeout",
            FaultKind::Memory => "PluginMemory",
        }
    }
}

/// A plugin call that failed; the instance is unusable afterwards.
#[derive(Debug, Clone, thiserror::Error)]
#[error("operator `{operator}` faulted ({}) in `{call}`: {message}", kind.error_kind())]
pub struct PluginFault {
    pub operator: String,
    pub kind: FaultKind,
    /// The exported function that was running.
    pub call: &'static str,
    pub message: String,
}

/// A record the plugin reported as failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginFailure {
    /// Index in the input batch.
    pub index: u32,
    pub kind: FailureKind,
    pub reason: FailureReason,
    pub message: String,
}

/// What one `process` or `on-watermark` call produced, checked.
#[derive(Debug, Clone, Default)]
pub struct CallOutput {
    /// Packed output records; the framing has been verified.
    pub outputs: Vec<u8>,
    pub output_count: u32,
    pub failures: Vec<PluginFailure>,
}

/// One instance of an operator: the whole of it, or one shard of several.
pub(super) struct ShardInstance {
    operator: Arc<str>,
    backend: Backend,
    deadlines: Deadlines,
    stderr: StderrTail,
    fault: Option<PluginFault>,
}

/// Each call's deadline, in epoch ticks, by the budget it runs under.
#[derive(Debug, Clone, Copy, Default)]
struct Deadlines {
    call: u64,
    watermark: u64,
    state: u64,
}

impl Deadlines {
    fn new(limits: &Limits) -> Deadlines {
        // One tick more than the budget: the first tick may come at once.
        let ticks = |d: std::time::Duration| d.as_millis().div_ceil(EPOCH_TICK.as_millis()) as u64 + 1;
        Deadlines { call: ticks(limits.call_timeout), watermark: ticks(limits.watermark_timeout), state: ticks(limits.state_timeout) }
    }

    /// The deadline of `call`, in ticks, and the setting that sets it.
    fn of(&self, call: &str) -> (u64, &'static str) {
        match call {
            "on-watermark" => (self.watermark, "watermark_timeout_ms"),
            "snapshot" | "restore" => (self.state, "state_timeout_ms"),
            _ => (self.call, "call_timeout_ms"),
        }
    }
}

/// A plugin's exports, by the WIT version it was built against.
enum WasmPlugin {
    V0_1(v0_1::Plugin),
    V0_2(v0_2::Plugin),
}

/// Runs `$body` with `$op` bound to the plugin's `operator` interface, whatever its version: the
/// calls that did not change between versions have the same names and shapes in every binding.
macro_rules! with_operator {
    ($plugin:expr, |$op:ident| $body:expr) => {
        match $plugin {
            WasmPlugin::V0_1(plugin) => {
                let $op = plugin.sda_operator_operator();
                $body
            }
            WasmPlugin::V0_2(plugin) => {
                let $op = plugin.sda_operator_operator();
                $body
            }
        }
    };
}

/// What runs the operator's code.
enum Backend {
    /// A plugin in its own store: the normal case.
    Wasm { store: Store<PluginState>, plugin: WasmPlugin },
    /// An operator compiled into the host (`native:NAME`, bench builds only).
    Native(Box<dyn NativeOperator>),
}

impl ShardInstance {
    /// A native operator (`plugin = "native:NAME"`), built and initialised as `shard`.
    pub(super) fn new_native(
        operator: &str,
        name: &str,
        loaded: &LoadedPlugin,
        config_json: &str,
        shard: Shard,
    ) -> Result<ShardInstance, RuntimeError> {
        if shard.count > 1 {
            refuse_keyed(operator, loaded, native::input_scope(name), shard)?;
        }
        let built = std::panic::catch_unwind(|| native::build(name, config_json, shard)).unwrap_or_else(|panic| Err(panic_message(&panic)));
        let native = built.map_err(|message| RuntimeError::InitRejected { operator: operator.to_string(), message })?;
        Ok(ShardInstance {
            operator: operator.into(),
            backend: Backend::Native(native),
            deadlines: Deadlines::default(),
            stderr: StderrTail::default(),
            fault: None,
        })
    }

    // One argument per thing an instance is made of; a struct to carry them would only be unpacked here.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        engine: &Engine,
        linker: &Linker<PluginState>,
        operator: &str,
        loaded: &LoadedPlugin,
        component: &wasmtime::component::Component,
        limits: Limits,
        config_json: &str,
        shard: Shard,
    ) -> Result<ShardInstance, RuntimeError> {
        let mut instance = ShardInstance::uninitialised(engine, linker, operator, loaded, component, limits)?;
        let wit_shard = v0_2::exports::sda::operator::operator::Shard { index: shard.index, count: shard.count };
        if shard.count > 1 {
            // Before `init`: a keyed operator is refused whatever its config.
            refuse_keyed(operator, loaded, instance.input_scope()?, shard)?;
        }
        let result = instance.call(
            "init",
            |p, s| match p {
                WasmPlugin::V0_1(p) => p.sda_operator_operator().call_init(s, config_json),
                WasmPlugin::V0_2(p) => p.sda_operator_operator().call_init(s, config_json, wit_shard),
            },
            |_| Ok(()),
        )?;
        match result {
            Ok(()) => Ok(instance),
            Err(message) => Err(RuntimeError::InitRejected { operator: operator.to_string(), message }),
        }
    }

    /// What a plugin's `describe` says of its input, from an instance that is never initialised.
    pub(super) fn describe_input_scope(
        engine: &Engine,
        linker: &Linker<PluginState>,
        operator: &str,
        loaded: &LoadedPlugin,
        component: &wasmtime::component::Component,
    ) -> Result<InputScope, RuntimeError> {
        let mut instance = ShardInstance::uninitialised(engine, linker, operator, loaded, component, Limits::default())?;
        Ok(instance.input_scope()?)
    }

    /// An instance of a compiled plugin before `init`.
    fn uninitialised(
        engine: &Engine,
        linker: &Linker<PluginState>,
        operator: &str,
        loaded: &LoadedPlugin,
        component: &wasmtime::component::Component,
        limits: Limits,
    ) -> Result<ShardInstance, RuntimeError> {
        let name: Arc<str> = operator.into();
        let stderr = StderrTail::default();
        // Nothing is granted: no preopened directories, environment, arguments,
        // network addresses or name lookups.
        let wasi = WasiCtxBuilder::new()
            .stdout(PluginOutput::stdout(name.clone()))
            .stderr(PluginOutput::stderr(name.clone(), stderr.clone()))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let state = PluginState { wasi, table: ResourceTable::new(), limiter: MemoryLimiter::new(limits.max_memory_bytes) };
        let mut store = Store::new(engine, state);
        store.limiter(|s| &mut s.limiter);
        // wasmtime bounds what one call may copy out of a guest (128 MiB by default), against a guest that makes the
        // host allocate without limit. Here the guest's memory is bounded already (`max_memory_bytes`) and a call's
        // outputs live in it, so that bound is the one that counts: a second, hidden and smaller one turned a valid
        // window of heavy output (10^5 objects' states for 13 ticks, 250 MB) into a fault.
        store.set_hostcall_fuel(usize::try_from(limits.max_memory_bytes).unwrap_or(usize::MAX));
        store.epoch_deadline_trap();
        let deadlines = Deadlines::new(&limits);
        store.set_epoch_deadline(deadlines.call);

        // The version was read from the file when it was loaded; an unsupported one never gets here.
        let instantiated = if loaded.wit_version == "0.1.0" {
            v0_1::Plugin::instantiate(&mut store, component, linker).map(WasmPlugin::V0_1)
        } else {
            v0_2::Plugin::instantiate(&mut store, component, linker).map(WasmPlugin::V0_2)
        };
        let plugin = instantiated.map_err(|e| RuntimeError::Instantiate {
            operator: operator.to_string(),
            path: loaded.path.clone(),
            message: describe_instantiate_error(&e, store.data().limiter.refusal()),
        })?;
        Ok(ShardInstance { operator: name, backend: Backend::Wasm { store, plugin }, deadlines, stderr, fault: None })
    }

    /// Which records each instance must see (`describe`; a WIT 0.1.0 plugin cannot say: keyed).
    fn input_scope(&mut self) -> Result<InputScope, PluginFault> {
        use v0_2::exports::sda::operator::operator::InputScope as Wit;
        self.call(
            "describe",
            |p, s| match p {
                WasmPlugin::V0_1(_) => Ok(InputScope::Keyed),
                WasmPlugin::V0_2(p) => p.sda_operator_operator().call_describe(s).map(|info| match info.input_scope {
                    Wit::Keyed => InputScope::Keyed,
                    Wit::AllRecords => InputScope::AllRecords,
                }),
            },
            |_| InputScope::Keyed,
        )
    }

    /// Runs `process` over a packed batch of `input_count` records.
    pub(super) fn process(&mut self, batch: &[u8]) -> Result<CallOutput, PluginFault> {
        let input_count = BatchReader::declared_count(batch).unwrap_or(0);
        let (outputs, failures) =
            self.call("process", |p, s| with_operator!(p, |op| op.call_process(s, batch).map(IntoHost::into_host)), |n| n.process(batch))?;
        self.check_output("process", outputs, failures, input_count)
    }

    /// Runs `on-watermark`.
    pub(super) fn on_watermark(&mut self, event_time_ms: i64) -> Result<CallOutput, PluginFault> {
        let (outputs, failures) = self.call(
            "on-watermark",
            |p, s| with_operator!(p, |op| op.call_on_watermark(s, event_time_ms).map(IntoHost::into_host)),
            |n| (n.on_watermark(event_time_ms), Vec::new()),
        )?;
        self.check_output("on-watermark", outputs, failures, 0)
    }

    /// The version of the state format this build's `snapshot` writes.
    pub(super) fn state_version(&mut self) -> Result<u32, PluginFault> {
        self.call("state-version", |p, s| with_operator!(p, |op| op.call_state_version(s)), |n| n.state_version())
    }

    /// `(state_version, bytes)` of the operator's whole state.
    pub(super) fn snapshot(&mut self) -> Result<(u32, Vec<u8>), PluginFault> {
        let version = self.state_version()?;
        let bytes = self.call("snapshot", |p, s| with_operator!(p, |op| op.call_snapshot(s)), |n| n.snapshot())?;
        Ok((version, bytes))
    }

    /// Restores state; `Ok(Err(reason))` when the plugin refuses it.
    pub(super) fn restore(&mut self, version: u32, state: &[u8]) -> Result<Result<(), String>, PluginFault> {
        self.call("restore", |p, s| with_operator!(p, |op| op.call_restore(s, version, state)), |n| n.restore(version, state))
    }

    /// Linear memory the instance holds now, in bytes.
    pub(super) fn memory_bytes(&self) -> usize {
        match &self.backend {
            Backend::Wasm { store, .. } => store.data().limiter.used_bytes(),
            // Native operators share the host's heap; nothing measures their part.
            Backend::Native(_) => 0,
        }
    }

    /// One call: `wasm` on a plugin (with a fresh deadline), `native` on a native operator
    /// (a panic caught as a trap). Any failure discards the instance.
    fn call<T>(
        &mut self,
        call: &'static str,
        wasm: impl FnOnce(&WasmPlugin, &mut Store<PluginState>) -> wasmtime::Result<T>,
        native: impl FnOnce(&mut dyn NativeOperator) -> T,
    ) -> Result<T, PluginFault> {
        if let Some(fault) = &self.fault {
            return Err(PluginFault {
                message: format!("the instance was discarded after an earlier fault in `{}`: {}", fault.call, fault.message),
                call,
                ..fault.clone()
            });
        }
        let result = match &mut self.backend {
            Backend::Wasm { store, plugin } => {
                store.data_mut().limiter.clear_refusal();
                store.set_epoch_deadline(self.deadlines.of(call).0);
                wasm(plugin, store)
            }
            Backend::Native(operator) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| native(operator.as_mut())))
                .map_err(|panic| wasmtime::Error::msg(format!("the native operator panicked: {}", panic_message(&panic)))),
        };
        self.end_call(call, result)
    }

    fn end_call<T>(&mut self, call: &'static str, result: wasmtime::Result<T>) -> Result<T, PluginFault> {
        result.map_err(|e| {
            let fault = self.classify(call, &e);
            tracing::warn!(operator = %self.operator, kind = fault.kind.error_kind(), call, message = %fault.message, "plugin faulted; \
                instance discarded");
            self.fault = Some(fault.clone());
            fault
        })
    }

    fn classify(&self, call: &'static str, e: &wasmtime::Error) -> PluginFault {
        let refusal = match &self.backend {
            Backend::Wasm { store, .. } => store.data().limiter.refusal(),
            Backend::Native(_) => None,
        };
        let trap = e.downcast_ref::<Trap>().copied();
        let (kind, mut message) = match (refusal, trap) {
            (Some(r), _) => (
                FaultKind::Memory,
                format!(
                    "memory cap exceeded: asked for {} bytes in total, the cap is {} bytes (`max_memory_bytes`)",
                    r.requested_bytes, r.max_bytes
                ),
            ),
            (None, Some(Trap::Interrupt)) => {
                let (ticks, setting) = self.deadlines.of(call);
                (
                    FaultKind::Timeout,
                    format!(
                        "the call ran past its deadline of {} ms (`{setting}`; raise it in the operator's table if the work is valid)",
                        (ticks - 1) * EPOCH_TICK.as_millis() as u64
                    ),
                )
            }
            (None, _) => (FaultKind::Trap, format!("{}", e.root_cause())),
        };
        let stderr = self.stderr.take();
        if !stderr.is_empty() {
            message.push_str("; plugin stderr: ");
            message.push_str(&stderr.join(" | "));
        }
        PluginFault { operator: self.operator.to_string(), kind, call, message }
    }

    /// Checks a call's result: well-formed output framing, origins and failure
    /// indices within the input. A plugin that breaks the ABI is faulted.
    fn check_output(
        &mut self,
        call: &'static str,
        outputs: Vec<u8>,
        failures: Vec<PluginFailure>,
        input_count: u32,
    ) -> Result<CallOutput, PluginFault> {
        let mut output_count = 0u32;
        let problem = match BatchReader::new(&outputs) {
            Err(e) => Some(format!("returned a malformed output batch: {e}")),
            Ok(reader) => reader.into_iter().find_map(|r| match r {
                Err(e) => Some(format!("returned a malformed output batch: {e}")),
                Ok(r) => {
                    output_count += 1;
                    r.origin
                        .filter(|&o| o >= input_count)
                        .map(|o| format!("returned an output whose origin {o} is not an input index (the batch had {input_count})"))
                }
            }),
        }
        .or_else(|| {
            failures
                .iter()
                .find(|f| call == "process" && f.index >= input_count)
                .map(|f| format!("reported a failure for input {} of a batch of {input_count}", f.index))
        });
        if let Some(message) = problem {
            let fault = PluginFault { operator: self.operator.to_string(), kind: FaultKind::Trap, call, message };
            tracing::warn!(operator = %self.operator, call, message = %fault.message, "plugin broke the operator ABI; instance discarded");
            self.fault = Some(fault.clone());
            return Err(fault);
        }
        Ok(CallOutput { outputs, output_count, failures })
    }
}

/// `parallelism` > 1 needs an operator whose every instance sees every record.
fn refuse_keyed(operator: &str, loaded: &LoadedPlugin, scope: InputScope, shard: Shard) -> Result<(), RuntimeError> {
    match scope {
        InputScope::AllRecords => Ok(()),
        InputScope::Keyed => {
            Err(RuntimeError::KeyedParallelism { operator: operator.to_string(), path: loaded.path.clone(), parallelism: shard.count })
        }
    }
}

/// A plugin's batch result in the host's terms.
trait IntoHost {
    fn into_host(self) -> (Vec<u8>, Vec<PluginFailure>);
}

/// [`IntoHost`] for the batch result of one WIT version's bindings (the types are the same in every version, but distinct).
macro_rules! batch_result_into_host {
    ($version:ident) => {
        impl IntoHost for $version::exports::sda::operator::operator::BatchResult {
            fn into_host(self) -> (Vec<u8>, Vec<PluginFailure>) {
                use $version::exports::sda::operator::operator as wit;
                let failures = self
                    .failures
                    .into_iter()
                    .map(|f| PluginFailure {
                        index: f.index,
                        kind: match f.kind {
                            wit::FailureKind::Transient => FailureKind::Transient,
                            wit::FailureKind::Permanent => FailureKind::Permanent,
                            wit::FailureKind::Discard => FailureKind::Discard,
                        },
                        reason: match f.reason {
                            wit::FailureReason::Deserialization => FailureReason::Deserialization,
                            wit::FailureReason::Validation => FailureReason::Validation,
                            wit::FailureReason::Late => FailureReason::Late,
                            wit::FailureReason::Duplicate => FailureReason::Duplicate,
                            wit::FailureReason::Suppressed => FailureReason::Suppressed,
                            wit::FailureReason::Operator => FailureReason::Operator,
                        },
                        message: f.message,
                    })
                    .collect();
                (self.outputs, failures)
            }
        }
    };
}

batch_result_into_host!(v0_1);
batch_result_into_host!(v0_2);

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into())
}

fn describe_instantiate_error(e: &wasmtime::Error, refusal: Option<super::limits::MemoryRefusal>) -> String {
    if let Some(r) = refusal {
        return format!("its initial memory ({} bytes) is over the cap of {} bytes (`max_memory_bytes`)", r.requested_bytes, r.max_bytes);
    }
    let text = format!("{e:#}");
    if text.contains("matching implementation was not found in the linker") || text.contains("import") {
        format!(
            "{text} (plugins may import only WASI 0.2 interfaces; a plugin built for wasm32-wasip2 with `sda-guest` needs nothing else)"
        )
    } else {
        text
    }
}
