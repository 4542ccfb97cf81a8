//! The WebAssembly runtime: one wasmtime engine, compiled plugins, sandboxed operator instances.
//!
//! The sandbox grants nothing: no files, no network, no environment or arguments;
//! stdout and stderr go to `tracing`. Each instance has its own `Store` with a
//! memory cap, and every call a deadline enforced by epoch interruption (a ticker
//! thread advances the epoch every [`EPOCH_TICK`]). This module does not decide
//! what to do about a fault; it reports it ([`PluginFault`]) and refuses further
//! calls on that instance.

mod bindings;
pub mod cache;
pub mod inspect;
mod instance;
pub mod limits;
pub mod native;
mod stdio;

pub use cache::{CompileSource, ComponentCache};
pub use instance::{CallOutput, FaultKind, OperatorInstance, PluginFailure, PluginFault};

use crate::graph::{Limits, PluginFile};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, OptLevel};

/// How often the epoch advances: the granularity of call deadlines.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

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
        let (component, source, compile_time) =
            self.cache.load(&self.engine, &plugin.bytes, &plugin.digest).map_err(|e| RuntimeError::Compile {
                operator: operator.to_string(),
                path: plugin.path.clone(),
                message: format!("{e:#}"),
            })?;
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

    /// A fresh, initialised instance of `plugin` for operator `operator`.
    pub fn instantiate(
        &self,
        operator: &str,
        plugin: &LoadedPlugin,
        limits: Limits,
        config_json: &str,
    ) -> Result<OperatorInstance, RuntimeError> {
        match &plugin.code {
            Code::Wasm(component) => OperatorInstance::new(&self.engine, &self.linker, operator, plugin, component, limits, config_json),
            Code::Native(name) => OperatorInstance::new_native(operator, name, plugin, config_json),
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}
