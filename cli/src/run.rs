//! `sockbox run`: one component, with exactly the network and limits its flags grant,
//! and the guest's end mapped to the process's exit status.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::Args;
use sockbox_host::enforce::AuditLog;
use sockbox_host::output::Stdio;
use sockbox_host::runner::{CompileCache, GUEST_PROGRAM, parse_max_sockets, parse_size};
use sockbox_host::{
    Exit, Limit, LimitExceeded, Limits, Prepared, Runner, Sandbox, SandboxBuilder, SandboxError,
    WasiVersion,
};

use crate::{Failure, one_line, policy};

/// The exit status a trap gives, as `wasmtime run` gives it on Unix (128 + SIGABRT).
const TRAP_STATUS: i32 = 134;

/// The exit status `sockbox run` gives when `limit` stops the guest: 137 for memory
/// (as for a process the OOM killer stops), 124 for the timeout (as `timeout(1)`
/// gives), 152 for CPU time (128 + SIGXCPU, as `RLIMIT_CPU` gives).
fn limit_status(limit: Limit) -> i32 {
    match limit {
        Limit::Memory(_) => 137,
        Limit::Timeout(_) => 124,
        Limit::CpuTime(_) => 152,
        // A limit this command line does not know yet.
        _ => 1,
    }
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Run this component instead of the built-in guest.
    #[arg(long, value_name = "FILE")]
    wasm: Option<PathBuf>,
    /// Run the built-in guest's WASI 0.3 build (async, `wasi:sockets@0.3.0`) instead of
    /// its 0.2 one. A component given with --wasm runs by what it exports, 0.2 or 0.3.
    #[arg(long, conflicts_with = "wasm")]
    p3: bool,
    /// Run the component's `wasi:cli/run` of this WASI version, 0.2 or 0.3 (default:
    /// 0.3's when it exports one, else 0.2's, as `wasmtime run` chooses).
    #[arg(long, value_name = "VERSION")]
    wasi: Option<WasiVersion>,
    #[command(flatten)]
    policy: policy::PolicyArgs,
    /// Write every decision (allowed or denied) to FILE as JSON Lines, instead of
    /// printing denials on stderr.
    #[arg(long, value_name = "FILE")]
    audit: Option<PathBuf>,
    /// The instance's name in audit lines (default: the component's file name, or
    /// sockbox-guest).
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Stop the guest (exit 137) if its linear memory would grow past SIZE: 64MiB,
    /// 512KiB, 1GiB, or bytes.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    max_memory: Option<u64>,
    /// Stop the guest (exit 124) if it runs longer than DURATION: 30s, 500ms, 2m. Holds
    /// whatever the guest is blocked on, a full stdout pipe included.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    timeout: Option<Duration>,
    /// Stop the guest (exit 152) once it has spent DURATION of CPU time running.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    cpu_time: Option<Duration>,
    /// Cap the TCP and UDP sockets the guest holds open at once at N (listeners and
    /// accepted connections count); `unlimited` (or 0) lifts the cap. A cap, not a
    /// stop: past it, opening a socket fails with `new-socket-limit` ("too many open
    /// files") and an arriving connection is closed by sockbox and recorded as a
    /// denial; the guest goes on. Default: half the process's open-file limit.
    #[arg(long, value_name = "N", value_parser = parse_max_sockets)]
    max_sockets: Option<usize>,
    /// Leave Nagle's algorithm on for the guest's TCP sockets. By default sockbox sets
    /// TCP_NODELAY on them, as Go's net does, so small writes go out at once.
    #[arg(long)]
    no_tcp_nodelay: bool,
    /// Compile the component on every run instead of keeping it compiled in the cache
    /// ($SOCKBOX_CACHE_DIR, or ~/.cache/sockbox).
    #[arg(long)]
    no_cache: bool,
    /// Arguments for the guest, after `--`: e.g. `-- dial 127.0.0.1:8080`.
    #[arg(last = true, value_name = "ARGS")]
    args: Vec<String>,
}

pub(crate) fn run(args: RunArgs) -> Result<ExitCode, Failure> {
    // One instance runs on one thread, so its I/O is driven on that thread too: with a
    // multi-thread runtime every socket event was a wake-up sent across threads, which
    // cost a quarter of single-connection ping-pong (docs/performance.md).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the tokio runtime")
        .map_err(Failure::Setup)?;
    let setup = prepare_run(&args).map_err(Failure::Setup)?;
    let RunSetup {
        sandbox,
        prepared,
        argv0,
    } = setup;
    let sandbox = sandbox
        .program(argv0)
        .stdout(Stdio::Inherit)
        .stderr(Stdio::Inherit)
        .build();
    // A guest blocked writing to a full stdout or stderr pipe blocks this thread, and
    // with it the runtime's timer: the watchdog holds the timeout from outside.
    let watchdog = args.timeout.map(Watchdog::start);
    let audit = args.audit.clone();
    let code = match runtime.block_on(sandbox.run_command(&prepared, args.args)) {
        Ok(output) => {
            if let Exit::Trap(message) = &output.status {
                eprintln!("sockbox: guest trapped: {}", one_line(message));
            }
            if output.would_deny > 0 {
                let uses = match output.would_deny {
                    1 => "1 use".to_owned(),
                    n => format!("{n} uses"),
                };
                match &audit {
                    Some(path) => eprintln!(
                        "sockbox: {uses} would have been denied; see {}",
                        path.display()
                    ),
                    None => eprintln!("sockbox: {uses} would have been denied (listed above)"),
                }
            }
            output.status.code().unwrap_or(TRAP_STATUS)
        }
        Err(SandboxError::Limit(limit)) => {
            eprintln!("sockbox: stopped the guest: {}", LimitExceeded(limit));
            limit_status(limit)
        }
        Err(err) => return Err(Failure::Setup(err.into())),
    };
    drop(watchdog);
    // Host-side writes still blocked on a pipe nobody reads must not hold the exit.
    runtime.shutdown_background();
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

/// Ends the process with the timeout's status and line if the guest is still running
/// a moment after its timeout: for when the guest blocks the runtime's only thread
/// (a blocking write to a pipe nobody reads), so the runtime's own timer cannot fire.
struct Watchdog {
    /// Dropped when the run ends, which wakes and ends the watchdog thread.
    _done: std::sync::mpsc::Sender<()>,
}

impl Watchdog {
    /// How long after the timeout the watchdog steps in, when the runtime has not.
    const GRACE: Duration = Duration::from_millis(250);

    fn start(timeout: Duration) -> Self {
        let (done, ended) = std::sync::mpsc::channel::<()>();
        let _ = std::thread::Builder::new()
            .name("sockbox-watchdog".into())
            .spawn(move || {
                if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    ended.recv_timeout(timeout.saturating_add(Self::GRACE))
                {
                    let limit = Limit::Timeout(timeout);
                    eprintln!("sockbox: stopped the guest: {}", LimitExceeded(limit));
                    std::process::exit(limit_status(limit));
                }
            });
        Self { _done: done }
    }
}

/// What `run` sets up before guest code runs.
struct RunSetup {
    sandbox: SandboxBuilder,
    prepared: Prepared,
    argv0: String,
}

/// Everything `run` does before guest code runs: any failure here is sockbox's (exit 2).
fn prepare_run(args: &RunArgs) -> Result<RunSetup> {
    let policy = args.policy.build()?;
    let cache = if args.no_cache {
        None
    } else {
        CompileCache::user()
    };
    let runner = Arc::new(Runner::new()?.with_cache(cache));
    let (component, argv0) = match &args.wasm {
        Some(path) => {
            let name = path.display().to_string();
            let bytes = std::fs::read(path).with_context(|| format!("read component {name}"))?;
            let component = runner
                .compile(&bytes)
                .with_context(|| format!("compile component {name}"))?;
            (component, name)
        }
        None if args.p3 => (runner.builtin_guest_p3()?, GUEST_PROGRAM.to_owned()),
        None => (runner.builtin_guest()?, GUEST_PROGRAM.to_owned()),
    };
    let prepared = runner
        .prepare(&component)
        .with_context(|| format!("prepare component {argv0}"))?;
    if !prepared.is_command() {
        bail!("component {argv0} exports no wasi:cli/run: it is not a command");
    }
    if let Err(why) = prepared.entry(args.wasi) {
        bail!("component {argv0}: {why}");
    }
    let name = match (&args.name, &args.wasm) {
        (Some(name), _) => name.clone(),
        (None, Some(path)) => path
            .file_name()
            .map_or_else(|| argv0.clone(), |name| name.to_string_lossy().into_owned()),
        (None, None) => GUEST_PROGRAM.to_owned(),
    };
    let mut limits = Limits::default();
    limits.max_memory = args.max_memory;
    limits.timeout = args.timeout;
    limits.cpu_time = args.cpu_time;
    limits.max_sockets = args.max_sockets;
    let mut sandbox = Sandbox::builder(runner)
        .policy(policy)
        .name(name)
        .limits(limits)
        .tcp_nodelay(!args.no_tcp_nodelay);
    if let Some(version) = args.wasi {
        sandbox = sandbox.wasi(version);
    }
    // With an audit file, denials go there; without, each is one line on stderr.
    sandbox = match &args.audit {
        Some(path) => sandbox
            .audit(Arc::new(AuditLog::create(path).with_context(|| {
                format!("create the audit file {}", path.display())
            })?)),
        None => sandbox.on_denial(|denial| eprintln!("sockbox: {denial}")),
    };
    sandbox = sandbox.on_publish(|published| eprintln!("sockbox: {published}"));
    Ok(RunSetup {
        sandbox,
        prepared,
        argv0,
    })
}
