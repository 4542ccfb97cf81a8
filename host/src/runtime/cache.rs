//! Compiled plugins cached on disk, keyed by the plugin's content digest and the engine's settings.
//!
//! Compiling a component takes seconds; loading a compiled one, milliseconds.
//! An entry is `<digest>-<engine>.cwasm`: a SHA-256 of the rest, then wasmtime's
//! serialized component. Entries are written to a temp file and renamed, so
//! concurrent hosts never see half an entry; one that fails its checksum or
//! wasmtime's own checks is recompiled and replaced. Loading native code from
//! disk trusts the directory: it is created owner-only.

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Where a component came from, for logs, `plan` and a swap's report (`compiled`, `cache`, `native`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CompileSource {
    /// Loaded from the on-disk cache.
    Cache,
    /// Compiled now (and stored, if there is a cache).
    Compiled,
    /// Built into the host (`native:NAME`): nothing to compile.
    Native,
}

#[derive(Debug, Clone)]
pub struct ComponentCache {
    dir: Option<PathBuf>,
    /// Identifies the engine's compilation settings and wasmtime's version.
    engine_key: String,
}

impl ComponentCache {
    /// A cache in `dir`, or none (every load compiles).
    pub fn new(engine: &Engine, dir: Option<PathBuf>) -> Self {
        let mut hasher = std::hash::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        ComponentCache { dir, engine_key: format!("{:016x}", hasher.finish()) }
    }

    /// The default cache folder: `$SDA_CACHE_DIR`, else
    /// `$XDG_CACHE_HOME/sda-pipeline/components`, else `~/.cache/sda-pipeline/components`.
    pub fn default_dir() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("SDA_CACHE_DIR") {
            return Some(PathBuf::from(dir));
        }
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
        Some(base.join("sda-pipeline").join("components"))
    }

    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    fn entry_path(&self, digest: &str) -> Option<PathBuf> {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.dir.as_ref().map(|d| d.join(format!("{hex}-{}.cwasm", self.engine_key)))
    }

    /// The compiled component for `wasm`, from the cache or compiled now.
    pub fn load(&self, engine: &Engine, wasm: &[u8], digest: &str) -> wasmtime::Result<(Component, CompileSource, Duration)> {
        let started = Instant::now();
        if let Some(path) = self.entry_path(digest) {
            match read_entry(engine, &path) {
                Ok(Some(component)) => return Ok((component, CompileSource::Cache, started.elapsed())),
                Ok(None) => {}
                Err(reason) => tracing::warn!(entry = %path.display(), %reason, "compiled-plugin cache entry is unusable; recompiling"),
            }
        }
        let component = Component::new(engine, wasm)?;
        let elapsed = started.elapsed();
        if let Some(path) = self.entry_path(digest)
            && let Err(e) = write_entry(&component, &path)
        {
            tracing::warn!(entry = %path.display(), error = %e, "could not store the compiled plugin in the cache");
        }
        Ok((component, CompileSource::Compiled, elapsed))
    }
}

fn read_entry(engine: &Engine, path: &Path) -> Result<Option<Component>, String> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    if bytes.len() < 32 {
        return Err("shorter than its checksum".into());
    }
    let (sum, body) = bytes.split_at(32);
    if Sha256::digest(body).as_slice() != sum {
        return Err("checksum mismatch".into());
    }
    // SAFETY: `body` is what `Component::serialize` wrote (its checksum matches),
    // in a directory only this user can write; wasmtime checks its own header
    // and engine compatibility before using it.
    unsafe { Component::deserialize(engine, body) }.map(Some).map_err(|e| e.to_string())
}

fn write_entry(component: &Component, path: &Path) -> std::io::Result<()> {
    let dir = path.parent().expect("cache entries live in a directory");
    create_private_dir(dir)?;
    let body = component.serialize().map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut entry = Vec::with_capacity(32 + body.len());
    entry.extend_from_slice(&Sha256::digest(&body));
    entry.extend_from_slice(&body);
    crate::durable::Replace::default().private().write(path, &entry)
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}
