//! The WebAssembly runtime: one wasmtime engine, compiled plugins, sandboxed operator instances.
//!
//! The sandbox grants nothing: no files, no network, no environment or arguments;
//! stdout and stderr go to `tracing`. Each instance has its own `Store` with a
//! memory cap, and every call a deadline enforced by epoch interruption (a ticker
//! thread advances the epoch every [`EPOCH_TICK`]). This module does not decide
//! what to do about a fault; it reports it ([`PluginFault`]) and refuses further
//! calls on that instance. An operator runs as one instance or as several
//! shards of one plugin (`parallelism`, see [`parallel`]).
//!
//! # Layout
//! - `bindings`: the generated bindings, one module per WIT version (private).
//! - `instance`: one sandboxed instance (one shard) and its faults.
//! - [`parallel`]: an operator's shards called together ([`OperatorInstance`]).
//! - `order`: the merge of the shards' outputs by their `sda-order` header.
//! - [`cache`], [`inspect`], [`limits`], [`native`]: compiled plugins, reading a file's
//!   WIT version, memory caps, operators built into the host.

mod bindings;
pub mod cache;
pub mod inspect;
mod instance;
pub mod limits;
pub mod native;
mod order;
pub mod parallel;
mod stdio;

pub use cache::{CompileSource, ComponentCache};
pub use instance::{CallOutput, FaultKind, PluginFailure, PluginFault};
pub use parallel::OperatorInstance;

use crate::graph::{Limits, PluginFile};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, OptLevel};

/// How often the epoch advances: the granularity of call deadlines.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Which of an operator's instances one is: `index` of `count` (`parallelism`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

/// Which records each instance of an operator must see (what its `describe` says).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputScope {
    /// Partitioned by key: each instance may see only some keys' records (a task per input
    /// partition is fine); not partitioned by the host within a task yet, so such an operator runs as one instance.
    Keyed,
    /// Every instance sees every record and emits its own share.
    AllRecords,
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot set up the WebAssembly engine: {0}")]
    Engine(String),
    #[error("operator `{operator}`: cannot compile plugin `{path}`: {message}")]
    Compile { operator: String, path: PathBuf, message: String },
    #[error("operator `{operator}`: cannot instantiate plugin `{path}`: {message}")]
    Instantiate { operator: String, path: PathBuf, message: String },
    #[error("operator `{operator}`: `init` rejected the configuration: {message}")]
    InitRejected { operator: String, message: String },
    #[error(
        "operator `{operator}`: `parallelism = {parallelism}` needs a plugin built against WIT `sda:operator@0.2.0` or later, \
         but plugin `{path}` is built against `sda:operator@{wit_version}`, which cannot tell an instance its shard; \
         rebuild it with the current `sda-guest`, or set `parallelism = 1`"
    )]
    ShardsUnsupported { operator: String, path: PathBuf, wit_version: String, parallelism: u32 },
    #[error(
        "operator `{operator}`: `parallelism = {parallelism}` needs an all-records operator, but plugin `{path}` describes itself \
         as keyed; running keyed operators as several instances (partitioned by key) is not implemented: set `parallelism = 1`"
    )]
    KeyedParallelism { operator: String, path: PathBuf, parallelism: u32 },
    #[error("operator `{operator}`: cannot start a thread for its shards: {message}")]
    Thread { operator: String, message: String },
    #[error("{0}")]
    Fault(#[from] PluginFault),
}

/// A compiled plugin, ready to instantiate any number of times.
#[derive(Clone)]
pub struct LoadedPlugin {
    pub path: PathBuf,
    pub digest: String,
    pub wit_version: String,
    pub source: CompileSource,
    pub compile_time: Duration,
    code: Code,
}

/// What an instance of a loaded plugin runs.
#[derive(Clone)]
pub(crate) enum Code {
    Wasm(Component),
    /// An operator compiled into the host, by name (see [`native`]).
    Native(String),
}

/// The engine, the WASI linker and the compiled-plugin cache; shared by all tasks.
pub struct Runtime {
    engine: Engine,
    linker: Arc<Linker<instance::PluginState>>,
    cache: ComponentCache,
    ticker_stop: Arc<AtomicBool>,
}

impl Runtime {
    /// A runtime caching compiled plugins in `cache_dir` (`None`: the default
    /// folder, see [`ComponentCache::default_dir`]).
    pub fn new(cache_dir: Option<PathBuf>) -> Result<Runtime, RuntimeError> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        config.cranelift_opt_level(OptLevel::Speed);
        if std::env::var_os("SDA_PERFMAP").is_some_and(|v| v == "1") {
            // `perf` then names plugin functions (from /tmp/perf-<pid>.map) instead of bare addresses.
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&config).map_err(|e| RuntimeError::Engine(e.to_string()))?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(|e| RuntimeError::Engine(e.to_string()))?;

        let ticker_stop = Arc::new(AtomicBool::new(false));
        let weak_engine = engine.weak();
        let stop = ticker_stop.clone();
        std::thread::Builder::new()
            .name("sda-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match weak_engine.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(|e| RuntimeError::Engine(format!("cannot start the epoch ticker: {e}")))?;

        let cache = ComponentCache::new(&engine, cache_dir.or_else(ComponentCache::default_dir));
        Ok(Runtime { engine, linker: Arc::new(linker), cache, ticker_stop })
    }

    pub fn cache(&self) -> &ComponentCache {
        &self.cache
    }

    /// Compiles a plugin (or loads it from the cache).
    pub fn load(&self, operator: &str, plugin: &PluginFile) -> Result<LoadedPlugin, RuntimeError> {
        if let Some(name) = plugin.native_name() {
            return Ok(LoadedPlugin {
                path: plugin.path.clone(),
                digest: plugin.digest.clone(),
                wit_version: plugin.wit_version.clone(),
                source: CompileSource::Native,
                compile_time: Duration::ZERO,
                code: Code::Native(name.to_string()),
            });
        }
        let (component, source, compile_time) = self
            .cache
            .load(&self.engine, &plugin.bytes, &plugin.digest)
            .map_err(|e| RuntimeError::Compile { operator: operator.to_string(), path: plugin.path.clone(), message: format!("{e:#}") })?;
        tracing::debug!(operator, digest = %plugin.digest, ?source, ?compile_time, "plugin ready");
        Ok(LoadedPlugin {
            path: plugin.path.clone(),
            digest: plugin.digest.clone(),
            wit_version: plugin.wit_version.clone(),
            source,
            compile_time,
            code: Code::Wasm(component),
        })
    }

    /// Which records each instance of `plugin` must see, as its `describe` says (a WIT 0.1.0 plugin
    /// cannot say: keyed). Asked of an instance that is never initialised, so no config is needed.
    pub fn input_scope(&self, operator: &str, plugin: &LoadedPlugin) -> Result<InputScope, RuntimeError> {
        match &plugin.code {
            Code::Wasm(component) => instance::ShardInstance::describe_input_scope(&self.engine, &self.linker, operator, plugin, component),
            Code::Native(name) => Ok(native::input_scope(name)),
        }
    }

    /// A fresh, initialised instance of `plugin` for operator `operator`, the whole of it.
    pub fn instantiate(
        &self,
        operator: &str,
        plugin: &LoadedPlugin,
        limits: Limits,
        config_json: &str,
    ) -> Result<OperatorInstance, RuntimeError> {
        self.instantiate_parallel(operator, plugin, limits, config_json, 1, None)
    }

    /// `parallelism` fresh, initialised instances of `plugin` for operator `operator`, one per shard.
    /// More than one needs a plugin that knows shards (WIT 0.2.0 or later) and says its input
    /// scope is all-records.
    ///
    /// `lease`: the task runs shard `index` of `count` leased across processes (see
    /// `pipeline::group`). An all-records operator then runs shards `index * parallelism ..` of
    /// `count * parallelism`, its share of the pair space; any other operator runs whole, as its
    /// input is the same in every shard task.
    pub fn instantiate_parallel(
        &self,
        operator: &str,
        plugin: &LoadedPlugin,
        limits: Limits,
        config_json: &str,
        parallelism: u32,
        lease: Option<Shard>,
    ) -> Result<OperatorInstance, RuntimeError> {
        let local = parallelism.max(1);
        let lease = match lease {
            Some(lease) if lease.count > 1 && self.input_scope(operator, plugin)? == InputScope::AllRecords => lease,
            _ => Shard { index: 0, count: 1 },
        };
        let count = local * lease.count;
        if count > 1 && !inspect::knows_shards(&plugin.wit_version) {
            return Err(RuntimeError::ShardsUnsupported {
                operator: operator.to_string(),
                path: plugin.path.clone(),
                wit_version: plugin.wit_version.clone(),
                parallelism: count,
            });
        }
        let mut shards = Vec::with_capacity(local as usize);
        for index in lease.index * local..(lease.index + 1) * local {
            let shard = Shard { index, count };
            shards.push(match &plugin.code {
                Code::Wasm(component) => {
                    instance::ShardInstance::new(&self.engine, &self.linker, operator, plugin, component, limits, config_json, shard)?
                }
                Code::Native(name) => instance::ShardInstance::new_native(operator, name, plugin, config_json, shard)?,
            });
        }
        OperatorInstance::new(operator, &plugin.digest, shards)
            .map_err(|e| RuntimeError::Thread { operator: operator.to_string(), message: e.to_string() })
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}
