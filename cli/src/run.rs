//! `sockbox run`: one component, with exactly the network and limits its flags grant,
//! and the guest's end mapped to the process's exit status.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::Args;
use sockbox_host::launch::{AuditTo, Ending, Report, Settings, parse_instances};
use sockbox_host::output::Stdio;
use sockbox_host::runner::{CompileCache, GUEST_PROGRAM, parse_max_sockets, parse_size};
use sockbox_host::{Limit, Limits, Prepared, Runner, Sandbox, SandboxBuilder, WasiVersion};

use crate::reload::Reloader;
use crate::{Failure, policy};

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
    /// Read --policy's FILE again on every change too (it is always read again on
    /// SIGHUP): a file that parses takes effect for every decision from then on, one
    /// that does not leaves the policy as it was.
    #[arg(long, requires = "policy")]
    watch_policy: bool,
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
    /// Run the command as N instances, each on its own thread (`auto`: one per core
    /// this process may use), under one policy, audit and socket cap; their listeners
    /// on one port share it (SO_REUSEPORT), the kernel spreading connections over them.
    /// Each instance has its own memory and state.
    #[arg(long, value_name = "N", value_parser = parse_instances, default_value = "1")]
    instances: usize,
    /// Serve Prometheus metrics at http://ADDR/metrics while the guest runs (sockbox's
    /// own listener, not the guest's: the policy does not apply to it), e.g.
    /// 127.0.0.1:9464; port 0 picks one, printed as `sockbox: metrics on …`.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
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
        settings,
    } = setup;
    let sandbox = sandbox
        .program(argv0)
        .stdout(Stdio::Inherit)
        .stderr(Stdio::Inherit)
        .build();
    // A guest blocked writing to a full stdout or stderr pipe blocks this thread, and
    // with it the runtime's timer: the watchdog holds the timeout from outside.
    let watchdog = args.timeout.map(Watchdog::start);
    // With a policy file, SIGHUP (and --watch-policy's changes) reload it.
    let reload = args
        .policy
        .file()
        .is_some()
        .then(|| (args.policy.clone(), sandbox.policy_handle()));
    let report: Report = Arc::new(|line| eprintln!("{line}"));
    let result = runtime.block_on(async {
        let metrics = settings.serve_metrics(&sandbox, &report).await?;
        let reloader = match reload {
            Some((policy, handle)) => {
                let reloader = Reloader::start(&policy, handle, args.watch_policy)?;
                Some(tokio::spawn(reloader.serve(policy)))
            }
            None => None,
        };
        let result = sandbox.run_command(&prepared, args.args).await;
        for task in [reloader, metrics].into_iter().flatten() {
            task.abort();
        }
        Ok::<_, anyhow::Error>(result)
    });
    let result = result.map_err(Failure::Setup)?;
    let ending = Ending::of(result, &settings).map_err(|err| Failure::Setup(err.into()))?;
    for line in &ending.lines {
        eprintln!("{line}");
    }
    let code = ending.status;
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
                    let ending = Ending::limit(Limit::Timeout(timeout));
                    for line in &ending.lines {
                        eprintln!("{line}");
                    }
                    std::process::exit(ending.status);
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
    settings: Settings,
}

impl RunArgs {
    /// The run's settings, as `sockbox.io/…` annotations give the shim the same.
    pub(crate) fn settings(&self) -> Result<Settings> {
        let mut limits = Limits::default();
        limits.max_memory = self.max_memory;
        limits.timeout = self.timeout;
        limits.cpu_time = self.cpu_time;
        limits.max_sockets = self.max_sockets;
        Ok(Settings {
            policy: self.policy.build()?,
            limits,
            audit: self.audit.clone().map(AuditTo::File),
            no_tcp_nodelay: self.no_tcp_nodelay,
            instances: self.instances,
            metrics: self.metrics,
        })
    }
}

/// Everything `run` does before guest code runs: any failure here is sockbox's (exit 2).
fn prepare_run(args: &RunArgs) -> Result<RunSetup> {
    let settings = args.settings()?;
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
    let report: Report = Arc::new(|line| eprintln!("{line}"));
    let mut sandbox = settings.apply(Sandbox::builder(runner).name(name), &report)?;
    if let Some(version) = args.wasi {
        sandbox = sandbox.wasi(version);
    }
    Ok(RunSetup {
        sandbox,
        prepared,
        argv0,
        settings,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use clap::{CommandFactory as _, Parser as _};
    use sockbox_host::launch::annotations;

    use super::*;
    use crate::{Cli, Command};

    /// `sockbox run`'s flags that have no annotation, and why.
    const CLI_ONLY: [(&str, &str); 7] = [
        ("wasm", "the image gives the component"),
        ("p3", "the image gives the component"),
        ("wasi", "the image's component runs by what it exports"),
        ("name", "the container's name is the instance's"),
        ("no-cache", "the shim keeps no per-user cache"),
        (
            "watch-policy",
            "a pod's policy is its annotations: a new pod changes it",
        ),
        ("verbose", "containerd sets the shim's log level"),
    ];

    /// `sockbox run`'s flags, and the annotations that say the same.
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>);

    fn flags_settings(flags: &[&str]) -> Settings {
        let argv = ["sockbox", "run"].iter().chain(flags).chain(&["--"]);
        let cli = Cli::try_parse_from(argv).unwrap_or_else(|err| panic!("{flags:?}: {err}"));
        let Command::Run(args) = cli.command else {
            panic!("not run");
        };
        args.settings()
            .unwrap_or_else(|err| panic!("{flags:?}: {err:#}"))
    }

    /// Every `sockbox run` flag has its `sockbox.io/` annotation, and the two make the
    /// same settings (the audit goes to a file from flags, to the container's log from
    /// annotations).
    #[test]
    fn every_run_flag_has_its_annotation_and_both_make_the_same_settings() {
        let dir = tempfile::tempdir().expect("a directory");
        let file = dir.path().join("policy.toml");
        let toml = "allow = [\"tcp://10.0.0.0/8:443\"]\nmode = \"audit\"\n";
        std::fs::write(&file, toml).expect("write the policy file");
        let file = file.to_str().expect("UTF-8");
        let cases: Vec<Case<'_>> = vec![
            (vec!["--policy", file], vec![("sockbox.io/policy", toml)]),
            (
                vec![
                    "--allow",
                    "tcp://10.0.0.1:80",
                    "--allow",
                    "udp://10.0.0.53:53",
                ],
                vec![("sockbox.io/allow", "tcp://10.0.0.1:80, udp://10.0.0.53:53")],
            ),
            (
                vec!["--allow-listen", "tcp://127.0.0.1:*"],
                vec![("sockbox.io/allow-listen", "tcp://127.0.0.1:*")],
            ),
            (
                vec![
                    "--allow-listen",
                    "tcp://0.0.0.0:80",
                    "--allow-accept",
                    "tcp://10.0.0.0/8:*",
                ],
                vec![
                    ("sockbox.io/allow-listen", "tcp://0.0.0.0:80"),
                    ("sockbox.io/allow-accept", "tcp://10.0.0.0/8:*"),
                ],
            ),
            (
                vec!["--inherit-network", "--deny", "tcp://10.0.0.13:*"],
                vec![
                    ("sockbox.io/inherit-network", "true"),
                    ("sockbox.io/deny", "tcp://10.0.0.13:*"),
                ],
            ),
            (
                vec!["--allow-special"],
                vec![("sockbox.io/allow-special", "true")],
            ),
            (vec!["--no-self"], vec![("sockbox.io/no-self", "true")]),
            (
                vec!["--nat64-prefix", "64:ff9b:1::/48"],
                vec![("sockbox.io/nat64-prefixes", "64:ff9b:1::/48")],
            ),
            (
                vec!["--audit-only"],
                vec![("sockbox.io/audit-only", "true")],
            ),
            (
                vec!["--publish", "8080:80", "--publish", "0:53/udp"],
                vec![("sockbox.io/publish", "8080:80, 0:53/udp")],
            ),
            (
                vec!["--audit", "audit.jsonl"],
                vec![("sockbox.io/audit", "stderr")],
            ),
            (
                vec!["--max-memory", "64MiB"],
                vec![("sockbox.io/max-memory", "64MiB")],
            ),
            (
                vec!["--timeout", "30s"],
                vec![("sockbox.io/timeout", "30s")],
            ),
            (
                vec!["--cpu-time", "500ms"],
                vec![("sockbox.io/cpu-time", "500ms")],
            ),
            (
                vec!["--max-sockets", "100"],
                vec![("sockbox.io/max-sockets", "100")],
            ),
            (
                vec!["--max-sockets", "unlimited"],
                vec![("sockbox.io/max-sockets", "unlimited")],
            ),
            (
                vec!["--no-tcp-nodelay"],
                vec![("sockbox.io/no-tcp-nodelay", "true")],
            ),
            (
                vec!["--instances", "3"],
                vec![("sockbox.io/instances", "3")],
            ),
            (
                vec!["--metrics", "0.0.0.0:9464"],
                vec![("sockbox.io/metrics", "0.0.0.0:9464")],
            ),
        ];
        let mut covered = Vec::new();
        for (flags, pairs) in &cases {
            let from_flags = flags_settings(flags);
            let annotations: HashMap<String, String> = pairs
                .iter()
                .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
                .collect();
            let from_annotations =
                annotations::parse(&annotations).unwrap_or_else(|err| panic!("{pairs:?}: {err}"));
            assert_eq!(from_flags.policy, from_annotations.policy, "{flags:?}");
            assert_eq!(from_flags.limits, from_annotations.limits, "{flags:?}");
            assert_eq!(
                from_flags.no_tcp_nodelay, from_annotations.no_tcp_nodelay,
                "{flags:?}"
            );
            assert_eq!(
                from_flags.instances, from_annotations.instances,
                "{flags:?}"
            );
            assert_eq!(from_flags.metrics, from_annotations.metrics, "{flags:?}");
            assert_eq!(
                from_flags.audit.is_some(),
                from_annotations.audit.is_some(),
                "{flags:?}"
            );
            assert_ne!(
                from_flags,
                Settings::default(),
                "{flags:?} changes something"
            );
            covered.extend(flags.iter().filter_map(|flag| flag.strip_prefix("--")));
            for (key, _) in pairs {
                assert!(
                    annotations::KEYS.iter().any(|(known, _)| known == key),
                    "{key} is listed in KEYS"
                );
            }
        }
        let command = Cli::command();
        let run = command.find_subcommand("run").expect("a run subcommand");
        for arg in run.get_arguments() {
            let Some(long) = arg.get_long() else {
                continue;
            };
            assert!(
                covered.contains(&long) || CLI_ONLY.iter().any(|(flag, _)| *flag == long),
                "--{long} has no annotation in this table, and is not CLI-only"
            );
        }
        assert_eq!(
            annotations::KEYS.len(),
            cases
                .iter()
                .flat_map(|(_, pairs)| pairs.iter().map(|(key, _)| *key))
                .collect::<std::collections::HashSet<_>>()
                .len(),
            "every annotation has its flag"
        );
    }
}
