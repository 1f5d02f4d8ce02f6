//! One container's component, run through sockbox's library.

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::AsFd as _;
use std::sync::{Arc, OnceLock};

use anyhow::{Context as _, Result};
use containerd_shim_wasm::sandbox::Sandbox;
use containerd_shim_wasm::sandbox::context::RuntimeContext;
use sockbox_host::enforce::AuditLog;
use sockbox_host::output::Stdio;
use sockbox_host::{Exit, Limit, LimitExceeded, Runner, Sandbox as SockboxSandbox, SandboxError};

use crate::annotations::{self, Settings};

/// The exit status of a workload sockbox refused to start (a malformed annotation, a
/// component that is not a command), as `sockbox run` exits 2 for its own errors.
const SETUP_STATUS: i32 = 2;

/// The exit status a trap gives (128 + SIGABRT), as `sockbox run` and `wasmtime run`.
const TRAP_STATUS: i32 = 134;

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
    let runner = Arc::new(Runner::new()?);
    let component = runner
        .compile(&bytes)
        .with_context(|| format!("compile component {program}"))?;
    let prepared = runner
        .prepare(&component)
        .with_context(|| format!("prepare component {program}"))?;
    anyhow::ensure!(
        prepared.is_command(),
        "component {program} exports no wasi:cli/run: it is not a command"
    );
    let mut sandbox = SockboxSandbox::builder(Arc::clone(&runner))
        .policy(settings.policy.clone())
        .limits(settings.limits)
        .tcp_nodelay(!settings.no_tcp_nodelay)
        .name(entrypoint.name.clone().unwrap_or_else(|| program.clone()))
        .program(program)
        .stdout(Stdio::Inherit)
        .stderr(Stdio::Inherit)
        .on_publish(|published| eprintln!("sockbox: {published}"));
    for pair in ctx.envs() {
        if let Some((key, value)) = pair.split_once('=') {
            sandbox = sandbox.env(key, value);
        }
    }
    sandbox = if settings.audit {
        let stderr = std::io::stderr().as_fd().try_clone_to_owned()?;
        sandbox.audit(Arc::new(AuditLog::to_file(File::from(stderr))))
    } else {
        sandbox.on_denial(|denial| eprintln!("sockbox: {denial}"))
    };
    let args = ctx.args().iter().skip(1).cloned().collect::<Vec<_>>();
    Ok(match sandbox.build().run_command(&prepared, args).await {
        Ok(output) => {
            if let Exit::Trap(message) = &output.status {
                let line = message.split_whitespace().collect::<Vec<_>>().join(" ");
                eprintln!("sockbox: guest trapped: {line}");
            }
            if output.would_deny > 0 {
                eprintln!(
                    "sockbox: {} use(s) would have been denied (audit only)",
                    output.would_deny
                );
            }
            output.status.code().unwrap_or(TRAP_STATUS)
        }
        Err(SandboxError::Limit(limit)) => {
            eprintln!("sockbox: stopped the guest: {}", LimitExceeded(limit));
            limit_status(limit)
        }
        Err(err) => return Err(err.into()),
    })
}

/// The exit status when `limit` stops the guest: `sockbox run`'s (137 memory, 124
/// timeout, 152 CPU time).
fn limit_status(limit: Limit) -> i32 {
    match limit {
        Limit::Memory(_) => 137,
        Limit::Timeout(_) => 124,
        Limit::CpuTime(_) => 152,
        _ => 1,
    }
}
