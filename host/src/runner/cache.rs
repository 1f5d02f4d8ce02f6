//! A cache of compiled components on disk, so a component is compiled once per
//! machine, not once per run.
//!
//! An entry is the engine's own serialized form (`Engine::precompile_component`), named
//! by the SHA-256 of the component's bytes and by the engine's compatibility hash
//! (wasmtime's version and every setting that changes compiled code): a new component,
//! a new wasmtime or a new setting is a new entry. Entries are written to a temporary
//! file and renamed into place, so a reader never sees half of one; one that fails to
//! load is compiled again and replaced.

use std::fs;
use std::hash::{DefaultHasher, Hash as _, Hasher as _};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use sha2::{Digest as _, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// The environment variable that moves the cache (default: the user's cache directory,
/// `$XDG_CACHE_HOME/sockbox` or `~/.cache/sockbox` on Linux).
pub const CACHE_DIR_ENV: &str = "SOCKBOX_CACHE_DIR";

/// Compiled components on disk, in one directory.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: PathBuf,
}

impl CompileCache {
    /// Uses `dir`, creating it when the first entry is written.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The cache in `$SOCKBOX_CACHE_DIR`, or else in the user's cache directory; `None`
    /// when the user has none.
    pub fn user() -> Option<Self> {
        match std::env::var_os(CACHE_DIR_ENV) {
            Some(dir) if !dir.is_empty() => Some(Self::new(dir)),
            _ => dirs::cache_dir().map(|dir| Self::new(dir.join("sockbox"))),
        }
    }

    /// Returns the directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Loads `bytes`' compiled form for `engine`, compiling and storing it on a miss.
    /// A cache that cannot be written is not an error: the component is compiled.
    pub fn load_or_compile(&self, engine: &Engine, bytes: &[u8]) -> Result<Component> {
        let path = self.entry(engine, bytes);
        if let Ok(component) = load(engine, &path) {
            return Ok(component);
        }
        let compiled = engine
            .precompile_component(bytes)
            .map_err(anyhow::Error::from)
            .context("compile component")?;
        // A failed write only costs the next run a compile.
        let _ = self.store(&path, &compiled);
        deserialize(engine, &compiled).context("load the component just compiled")
    }

    /// The entry's path: `<sha256 of bytes>-<engine compatibility hash>.cwasm`.
    fn entry(&self, engine: &Engine, bytes: &[u8]) -> PathBuf {
        let mut compatibility = DefaultHasher::new();
        engine
            .precompile_compatibility_hash()
            .hash(&mut compatibility);
        let digest = Sha256::digest(bytes);
        let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
        self.dir
            .join(format!("{hex}-{:016x}.cwasm", compatibility.finish()))
    }

    fn store(&self, path: &Path, compiled: &[u8]) -> Result<()> {
        fs::create_dir_all(&self.dir)?;
        let mut file = tempfile::NamedTempFile::new_in(&self.dir)?;
        file.write_all(compiled)?;
        file.persist(path)?;
        Ok(())
    }
}

fn load(engine: &Engine, path: &Path) -> Result<Component> {
    let compiled = fs::read(path)?;
    deserialize(engine, &compiled)
}

/// Turns an engine's serialized component back into a component.
///
/// # Safety argument
///
/// wasmtime trusts serialized code, so it must come from `precompile_component`: here
/// it is either what this process just compiled, or an entry sockbox wrote into the
/// user's own cache directory, named by the hash of the component and of the engine's
/// settings, and renamed into place whole. wasmtime also checks the entry's header
/// (its version and settings) and refuses one for another engine. Anyone who can
/// write that directory can already run code as the user.
#[allow(
    unsafe_code,
    reason = "loading precompiled code; see the safety argument"
)]
fn deserialize(engine: &Engine, compiled: &[u8]) -> Result<Component> {
    // SAFETY: see the safety argument above.
    Ok(unsafe { Component::deserialize(engine, compiled) }?)
}
