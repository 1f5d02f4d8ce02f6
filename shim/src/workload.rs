//! One container's component, run through sockbox's library.

use std::collections::HashMap;
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::os::unix::fs::DirBuilderExt as _;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use anyhow::{Context as _, Result};
use containerd_shim_wasm::sandbox::Sandbox;
use containerd_shim_wasm::sandbox::context::RuntimeContext;
use sockbox_host::launch::{Ending, Report, SETUP_STATUS, Settings, annotations};
use sockbox_host::output::Stdio;
use sockbox_host::runner::CompileCache;
use sockbox_host::{Runner, Sandbox as SockboxSandbox};

/// The node's compile cache: a directory only root can write, shared by every
/// container this node's shims run, so a component is compiled once per node.
pub const NODE_CACHE_DIR: &str = "/var/lib/sockbox/cache";

/// The environment variable (in containerd's environment, which its shims inherit)
/// that moves the node's compile cache.
pub const NODE_CACHE_ENV: &str = "SOCKBOX_SHIM_CACHE_DIR";

/// The node's compile cache, opened by the shim itself, in the node's file system: a
/// container's process (forked from the shim, in the container's own root) reaches it
/// through this descriptor, as `/proc/self/fd/N`. The descriptor is close-on-exec (and
/// youki marks every descriptor so, `close_range`, before a container's process goes
/// on), so a Linux container the shim runs (a pod's pause), which execs its program,
/// never has it: only sockbox's own code in a component's container, which does not
/// exec, does.
static NODE_CACHE: OnceLock<Result<OwnedFd, String>> = OnceLock::new();

/// Opens the node's compile cache (`$SOCKBOX_SHIM_CACHE_DIR`, or [`NODE_CACHE_DIR`]),
/// creating it private to root if missing. This runs before containerd's log is set
/// up: a failure is told when a container starts ([`node_cache`]).
pub fn open_node_cache() {
    let dir = std::env::var_os(NODE_CACHE_ENV)
        .filter(|dir| !dir.is_empty())
        .map_or_else(|| Path::new(NODE_CACHE_DIR).to_owned(), Into::into);
    let opened = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .and_then(|()| std::fs::File::open(&dir))
        .map(OwnedFd::from)
        .map_err(|err| format!("no compile cache at {}: {err}", dir.display()));
    let _ = NODE_CACHE.set(opened);
}

/// The node's compile cache, as a container's process reaches it; without it, the
/// container compiles its component (a warning in containerd's log).
fn node_cache() -> Option<CompileCache> {
    match NODE_CACHE.get()? {
        Ok(fd) => Some(CompileCache::new(format!(
            "/proc/self/fd/{}",
            fd.as_raw_fd()
        ))),
        Err(message) => {
            log::warn!("{message}; the component is compiled for this container");
            None
        }
    }
}

/// The annotations of the bundle the shim was started in, read once, before any
/// container process exists, so every container process inherits them.
static SETTINGS: OnceLock<Result<Settings, String>> = OnceLock::new();

/// Reads `config.json` in the working directory — the bundle containerd started the
/// shim in — and keeps its annotations' settings. Without a readable spec (the shim
/// run by hand), a workload gets no network.
pub fn read_bundle_annotations() {
    let settings = match std::fs::read("config.json") {
        Ok(bytes) => annotations_of(&bytes).and_then(|annotations| {
            annotations::parse(&annotations).map_err(|err| err.to_string())
        }),
        Err(_) => Ok(Settings::default()),
    };
    let _ = SETTINGS.set(settings);
}

/// The annotations of an OCI runtime spec.
fn annotations_of(spec: &[u8]) -> Result<HashMap<String, String>, String> {
    #[derive(serde::Deserialize)]
    struct Spec {
        #[serde(default)]
        annotations: HashMap<String, String>,
    }
    serde_json::from_slice::<Spec>(spec)
        .map(|spec| spec.annotations)
        .map_err(|err| format!("the bundle's config.json: {err}"))
}

fn settings() -> Result<&'static Settings, &'static str> {
    match SETTINGS.get_or_init(|| Ok(Settings::default())) {
        Ok(settings) => Ok(settings),
        Err(message) => Err(message),
    }
}

/// What containerd-shim-wasm runs for each container.
#[derive(Debug, Default, Clone)]
pub struct Workload;

impl Sandbox for Workload {
    async fn run_wasi(&self, ctx: &impl RuntimeContext) -> Result<i32> {
        let settings = match settings() {
            Ok(settings) => settings,
            Err(message) => {
                eprintln!("sockbox: {message}");
                return Ok(SETUP_STATUS);
            }
        };
        match run(ctx, settings).await {
            Ok(status) => Ok(status),
            Err(err) => {
                eprintln!("sockbox: {err:#}");
                Ok(SETUP_STATUS)
            }
        }
    }

    async fn can_handle(&self, ctx: &impl RuntimeContext) -> Result<()> {
        // A malformed annotation fails the container's start, in one line of its log.
        if let Err(message) = settings() {
            eprintln!("sockbox: {message}");
            anyhow::bail!("sockbox: {message}");
        }
        // The entrypoint must be there; what it is, compiling it tells (in one line).
        ctx.entrypoint().source.as_bytes()?;
        Ok(())
    }
}

/// Runs the container's component under `settings`; an `Err` is sockbox's own failure
/// before guest code ran.
async fn run(ctx: &impl RuntimeContext, settings: &Settings) -> Result<i32> {
    let entrypoint = ctx.entrypoint();
    let program = entrypoint.arg0.map_or_else(
        || "component.wasm".to_owned(),
        |path| path.display().to_string(),
    );
    let bytes = entrypoint.source.as_bytes()?;
    let runner = Arc::new(Runner::new()?.with_cache(node_cache()));
    let component = if entrypoint.source.is_precompiled()? {
        #[expect(unsafe_code, reason = "loading the precompile hook's output")]
        // SAFETY: a precompiled layer is what this shim's compiler (`compiler.rs`) put in
        // containerd's content store, which only root writes, under a label naming the
        // engine's compatibility key; wasmtime refuses another engine's.
        let loaded = unsafe { runner.load_precompiled(&bytes) };
        loaded.with_context(|| format!("load precompiled component {program}"))?
    } else {
        runner
            .compile(&bytes)
            .with_context(|| format!("compile component {program}"))?
    };
    let prepared = runner
        .prepare(&component)
        .with_context(|| format!("prepare component {program}"))?;
    anyhow::ensure!(
        prepared.is_command(),
        "component {program} exports no wasi:cli/run: it is not a command"
    );
    let report: Report = Arc::new(|line| eprintln!("{line}"));
    let mut sandbox = settings.apply(
        SockboxSandbox::builder(Arc::clone(&runner))
            .name(entrypoint.name.clone().unwrap_or_else(|| program.clone()))
            .program(program)
            .stdout(Stdio::Inherit)
            .stderr(Stdio::Inherit),
        &report,
    )?;
    for pair in ctx.envs() {
        if let Some((key, value)) = pair.split_once('=') {
            sandbox = sandbox.env(key, value);
        }
    }
    let args = ctx.args().iter().skip(1).cloned().collect::<Vec<_>>();
    let sandbox = sandbox.build();
    let metrics = settings.serve_metrics(&sandbox, &report).await?;
    let result = sandbox.run_command(&prepared, args).await;
    if let Some(task) = metrics {
        task.abort();
    }
    let ending = Ending::of(result, settings)?;
    for line in &ending.lines {
        eprintln!("{line}");
    }
    Ok(ending.status)
}
