//! A cache of compiled components on disk, so a component is compiled once per
//! machine, not once per run.
//!
//! An entry is the engine's own serialized form (`Engine::precompile_component`), named
//! by the SHA-256 of the component's bytes and by the engine's compatibility hash
//! (wasmtime's version and every setting that changes compiled code): a new component,
//! a new wasmtime or a new setting is a new entry. Entries are written to a temporary
//! file and renamed into place, so a reader never sees half of one; one that fails to
//! load is compiled again and replaced.
//!
//! Loading an entry runs its native code, so only what the user alone can write is
//! trusted: a cache directory, or an entry, not owned by the user running sockbox or
//! writable by its group or by others is not used (one `tracing` warning per
//! directory), and the component is compiled instead.

use std::fs;
use std::hash::{DefaultHasher, Hash as _, Hasher as _};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _};
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
        let trusted = self.trusted();
        if trusted
            && trust(&path).is_ok()
            && let Ok(component) = load(engine, &path)
        {
            return Ok(component);
        }
        let compiled = engine
            .precompile_component(bytes)
            .map_err(anyhow::Error::from)
            .context("compile component")?;
        // A failed write only costs the next run a compile.
        if trusted {
            let _ = self.store(&path, &compiled);
        }
        deserialize(engine, &compiled).context("load the component just compiled")
    }

    /// Reports whether the directory may hold entries to load: it does not exist yet
    /// (sockbox creates it, private), or the user alone can write it. Warns once per
    /// directory when not.
    fn trusted(&self) -> bool {
        match trust(&self.dir) {
            Ok(()) => true,
            Err(Untrusted::Missing) => true,
            Err(why) => {
                static WARNED: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
                let mut warned = WARNED
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if !warned.contains(&self.dir) {
                    warned.push(self.dir.clone());
                    tracing::warn!(
                        "not using the compile cache {}: {why}; compiling instead",
                        self.dir.display()
                    );
                }
                false
            }
        }
    }

    /// The entry's path: `<sha256 of bytes>-<engine compatibility hash>.cwasm`.
    fn entry(&self, engine: &Engine, bytes: &[u8]) -> PathBuf {
        let digest = Sha256::digest(bytes);
        let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
        self.dir
            .join(format!("{hex}-{:016x}.cwasm", compatibility_key(engine)))
    }

    fn store(&self, path: &Path, compiled: &[u8]) -> Result<()> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)?;
        trust(&self.dir)?;
        let mut file = tempfile::NamedTempFile::new_in(&self.dir)?;
        file.write_all(compiled)?;
        file.persist(path)?;
        Ok(())
    }
}

/// Why a cache directory or entry is not trusted.
#[derive(Debug)]
enum Untrusted {
    /// It does not exist.
    Missing,
    /// It could not be inspected.
    Unreadable(std::io::Error),
    /// Another user owns it.
    Owner(u32),
    /// Its group or others may write it.
    Writable(u32),
}

impl std::fmt::Display for Untrusted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Missing => f.write_str("it does not exist"),
            Self::Unreadable(err) => write!(f, "cannot inspect it ({err})"),
            Self::Owner(uid) => write!(f, "it is owned by uid {uid}, not this user"),
            Self::Writable(mode) => {
                write!(f, "its group or others may write it (mode {mode:o})")
            }
        }
    }
}

impl std::error::Error for Untrusted {}

/// Checks that the user running sockbox alone can write `path` (followed if a link).
fn trust(path: &Path) -> Result<(), Untrusted> {
    let meta = fs::metadata(path).map_err(|err| match err.kind() {
        std::io::ErrorKind::NotFound => Untrusted::Missing,
        _ => Untrusted::Unreadable(err),
    })?;
    let uid = rustix::process::geteuid().as_raw();
    if meta.uid() != uid {
        return Err(Untrusted::Owner(meta.uid()));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(Untrusted::Writable(meta.mode() & 0o7777));
    }
    Ok(())
}

/// `engine`'s compatibility hash (wasmtime's version and every setting that changes
/// compiled code) as a number: what names its compiled output, here and in the shim's
/// precompiled layers.
pub(super) fn compatibility_key(engine: &Engine) -> u64 {
    let mut hasher = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hasher.finish()
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
/// settings, and renamed into place whole. Both the directory and the entry are
/// checked to be the user's and writable by no one else ([`trust`]), so only someone
/// who can already run code as the user could have put it there. wasmtime also checks
/// the entry's header (its version and settings) and refuses one for another engine.
#[expect(
    unsafe_code,
    reason = "loading precompiled code; see the safety argument"
)]
fn deserialize(engine: &Engine, compiled: &[u8]) -> Result<Component> {
    // SAFETY: see the safety argument above.
    Ok(unsafe { Component::deserialize(engine, compiled) }?)
}
