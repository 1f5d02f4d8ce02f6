//! `sockbox bench`: the guest's `echo` against native servers, side by side, in one
//! run.
//!
//! It starts the servers it compares — two native Rust echo servers in this process (a
//! thread per connection; one event loop, tokio's current-thread runtime), the
//! built-in guest's `echo` under `sockbox run` (WASI 0.2: host-side splice, and
//! `--copy`; WASI 0.3: host-side forwarding, and `--copy`) and under stock `wasmtime
//! run` when found, and any `--target NAME=ADDR` (Go's echo server) — and drives each with the same native load client: ping-pong over
//! one and over many connections (round trips/s, p50 and p99), one busy connection
//! among many idle ones, a bulk stream (GB/s), the start-up of `sockbox run` (and
//! `wasmtime run`), and the memory each idle connection costs a `sockbox run` server. Every echoed byte is
//! checked: a server that corrupts, drops or adds one fails the run.

mod load;
mod pin;
mod report;
mod servers;
mod startup;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use report::{Figure, Report};
use servers::{GuestEcho, Server};

/// `sockbox bench`'s flags.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Which measurements to take (default: all but idle).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "LIST")]
    scenarios: Vec<Scenario>,
    /// An external echo server to compare, as NAME=ADDR (e.g. go=127.0.0.1:9000).
    #[arg(long = "target", value_name = "NAME=ADDR", value_parser = parse_target)]
    targets: Vec<(String, SocketAddr)>,
    /// Measure only these servers (native, native-loop, sockbox-splice, sockbox-copy,
    /// sockbox-p3-forward, sockbox-p3-copy, guest-stock, wasm, wasm-stock, or a
    /// target's NAME); default: all.
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    only: Vec<String>,
    /// How long each measurement runs, after its warm-up.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// How long each measurement warms up before it counts.
    #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Message size for ping-pong, in bytes.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Connections for the concurrent ping-pong.
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// Connections held open for the idle-memory measurement.
    #[arg(long, default_value_t = 10_000)]
    idle: usize,
    /// Bench your own echo server component too: FILE under `sockbox run` (as
    /// `wasm`) and, when the stock CLI is found (--wasmtime), under `wasmtime run`
    /// (as `wasm-stock`). It must print `listening on ADDR`.
    #[arg(long, value_name = "FILE")]
    wasm: Option<PathBuf>,
    /// The arguments --wasm's component gets (after its program name).
    #[arg(long, value_name = "ARGS", num_args = 1.., allow_hyphen_values = true, default_value = "127.0.0.1:0")]
    wasm_args: Vec<String>,
    /// Idle connections held open beside the one busy connection of `idle-busy`.
    #[arg(long, default_value_t = 999)]
    idle_beside: usize,
    /// Start-up runs to take the median of.
    #[arg(long, default_value_t = 20)]
    startup_runs: usize,
    /// The stock wasmtime CLI to compare start-up with (skipped if not found).
    #[arg(long, default_value = "wasmtime", value_name = "PATH")]
    wasmtime: PathBuf,
    /// Write the results as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Draw the ratios as an SVG chart into FILE.
    #[arg(long, value_name = "FILE")]
    chart: Option<PathBuf>,
    /// Run each `sockbox-*` server as N instances (`sockbox run --instances N`) on one
    /// port; their rows are named `sockbox-…×N`.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    instances: u16,
    /// Run every scenario but the concurrent one with the bench and its servers on
    /// this one CPU: `auto` (the last CPU the bench may use, when it may use at least
    /// 2), `none`, or a CPU's number.
    #[arg(long, value_name = "CPU", default_value = "auto", value_parser = pin::parse_pin)]
    pin: pin::PinArg,
}

/// One kind of measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// Ping-pong on one connection.
    Pingpong,
    /// Ping-pong on `--connections` connections at once.
    Concurrent,
    /// A bulk stream on one connection.
    Stream,
    /// `sockbox run` (and `wasmtime run`) to the guest's first output.
    Startup,
    /// Resident memory per idle connection of a `sockbox run` server.
    Idle,
    /// Ping-pong on one connection while `--idle-beside` others are held open, idle.
    IdleBusy,
}

fn parse_target(text: &str) -> Result<(String, SocketAddr), String> {
    let (name, addr) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not NAME=ADDR"))?;
    let addr = addr
        .parse()
        .map_err(|err| format!("`{addr}` is not an address: {err}"))?;
    if name.is_empty() {
        return Err(format!("`{text}` has no NAME"));
    }
    Ok((name.to_owned(), addr))
}

/// Runs the bench and prints the table; fails if any server failed a check.
pub fn run(args: BenchArgs) -> Result<()> {
    let scenarios = if args.scenarios.is_empty() {
        vec![
            Scenario::Pingpong,
            Scenario::Concurrent,
            Scenario::IdleBusy,
            Scenario::Stream,
            Scenario::Startup,
        ]
    } else {
        args.scenarios.clone()
    };
    let wanted = |name: &str| args.only.is_empty() || args.only.iter().any(|only| only == name);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("start the load client's runtime")?;

    let mut servers = Vec::new();
    if wanted("native") {
        servers.push(Server::native()?);
    }
    if wanted("native-loop") {
        servers.push(Server::native_loop()?);
    }
    for kind in GuestEcho::ALL {
        if wanted(kind.name()) {
            servers.push(Server::sockbox(kind, args.instances)?);
        }
    }
    if wanted("guest-stock") {
        match Server::guest_stock(&args.wasmtime) {
            Ok(server) => servers.push(server),
            Err(err) => progress_note(&format!("skipping guest-stock: {err:#}")),
        }
    }
    if let Some(wasm) = &args.wasm {
        if wanted("wasm") {
            servers.push(Server::component("wasm", wasm, &args.wasm_args, None)?);
        }
        if wanted("wasm-stock") {
            match Server::component("wasm-stock", wasm, &args.wasm_args, Some(&args.wasmtime)) {
                Ok(server) => servers.push(server),
                Err(err) => progress_note(&format!("skipping wasm-stock: {err:#}")),
            }
        }
    }
    for (name, addr) in &args.targets {
        if wanted(name) {
            servers.push(Server::external(name.clone(), *addr));
        }
    }
    if servers.is_empty() && !scenarios.contains(&Scenario::Startup) {
        bail!("no server to measure (see --only)");
    }

    let server_steps = scenarios
        .iter()
        .filter(|s| {
            matches!(
                s,
                Scenario::Pingpong | Scenario::Concurrent | Scenario::Stream | Scenario::IdleBusy
            )
        })
        .count()
        * servers.len();
    let idle_steps = if scenarios.contains(&Scenario::Idle) {
        servers
            .iter()
            .filter(|server| server.pid().is_some())
            .count()
    } else {
        0
    };
    let steps = server_steps + idle_steps + usize::from(scenarios.contains(&Scenario::Startup)) * 2;
    let progress = ProgressBar::new(steps as u64).with_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );

    let pids: Vec<u32> = servers.iter().filter_map(Server::pid).collect();
    let pinning = pin::Pinning::new(args.pin, pids)?;
    if let Some(pinning) = &pinning {
        progress_note(&format!(
            "every scenario but the concurrent one runs on CPU {} alone (--pin none: unpinned)",
            pinning.cpu()
        ));
    }
    let mut figures = Vec::new();
    let size_name = format!("{} B", args.size);
    for scenario in &scenarios {
        if let Some(pinning) = &pinning {
            pinning.pin(*scenario != Scenario::Concurrent)?;
        }
        for server in &servers {
            // Start-up is measured apart; idle memory only for a server process.
            let measurable = match scenario {
                Scenario::Startup => false,
                Scenario::Idle => server.pid().is_some(),
                _ => true,
            };
            if !measurable {
                continue;
            }
            let measured: Result<Figure> = (|| {
                Ok(match scenario {
                    Scenario::Pingpong | Scenario::Concurrent => {
                        let connections = if *scenario == Scenario::Pingpong {
                            1
                        } else {
                            args.connections
                        };
                        let label = format!("ping-pong {size_name} ×{connections}");
                        progress.set_message(format!("{label} on {}", server.name));
                        let measured = runtime
                            .block_on(load::ping_pong(
                                server.addr,
                                connections,
                                args.size,
                                args.warmup,
                                args.duration,
                            ))
                            .with_context(|| format!("{}: {label}", server.name))?;
                        round_trips(label, &server.name, &measured)
                    }
                    Scenario::IdleBusy => {
                        let label = format!("ping-pong {size_name} ×1 + {} idle", args.idle_beside);
                        progress.set_message(format!("{label} on {}", server.name));
                        let measured = runtime
                            .block_on(async {
                                let held = load::idle(server.addr, args.idle_beside).await?;
                                let measured = load::ping_pong(
                                    server.addr,
                                    1,
                                    args.size,
                                    args.warmup,
                                    args.duration,
                                )
                                .await;
                                drop(held);
                                measured
                            })
                            .with_context(|| format!("{}: {label}", server.name))?;
                        round_trips(label, &server.name, &measured)
                    }
                    Scenario::Stream => {
                        let label = "stream 64 KiB".to_owned();
                        progress.set_message(format!("{label} on {}", server.name));
                        let bytes_per_sec = runtime
                            .block_on(load::stream(server.addr, args.warmup, args.duration))
                            .with_context(|| format!("{}: {label}", server.name))?;
                        Figure {
                            scenario: label,
                            server: server.name.clone(),
                            value: bytes_per_sec / 1e9,
                            unit: "GB/s",
                            higher_is_better: true,
                            p50_us: None,
                            p99_us: None,
                        }
                    }
                    Scenario::Idle => {
                        let pid = server.pid().context("not a child process")?;
                        progress.set_message(format!(
                            "{} idle connections on {}",
                            args.idle, server.name
                        ));
                        let before = resident_kib(pid)?;
                        let held = runtime
                            .block_on(load::idle(server.addr, args.idle))
                            .with_context(|| format!("{}: idle connections", server.name))?;
                        let after = resident_kib(pid)?;
                        drop(held);
                        Figure {
                            scenario: format!("idle ×{}", args.idle),
                            server: server.name.clone(),
                            value: after.saturating_sub(before) as f64 / args.idle as f64,
                            unit: "KiB/conn",
                            higher_is_better: false,
                            p50_us: None,
                            p99_us: None,
                        }
                    }
                    Scenario::Startup => bail!("start-up is not a server's scenario"),
                })
            })();
            let figure = match measured {
                Ok(figure) => figure,
                // Stock wasmtime is compared, not under test: a scenario it fails is
                // left out, said so.
                Err(err) if !server.ours => {
                    progress_note(&format!("{}: not measured: {err:#}", server.name));
                    progress.inc(1);
                    continue;
                }
                Err(err) => return Err(err),
            };
            figures.push(figure);
            progress.inc(1);
        }
    }
    if scenarios.contains(&Scenario::Startup) {
        if let Some(pinning) = &pinning {
            pinning.pin(true)?;
        }
        figures.extend(startup_figures(&args, &progress)?);
    }
    if let Some(pinning) = &pinning {
        pinning.pin(false)?;
    }
    progress.finish_and_clear();
    drop(servers);

    let report = Report {
        cores: std::thread::available_parallelism().map_or(1, usize::from),
        settings: serde_json::json!({
            "duration_s": args.duration.as_secs_f64(),
            "warmup_s": args.warmup.as_secs_f64(),
            "size_bytes": args.size,
            "connections": args.connections,
            "idle_connections": args.idle,
            "idle_beside_busy": args.idle_beside,
            "stream_chunk_bytes": load::STREAM_CHUNK,
            "startup_runs": args.startup_runs,
            "pinned_cpu": pinning.as_ref().map(pin::Pinning::cpu),
            "instances": args.instances,
        }),
        figures,
    };
    print!("{}", report.table());
    if let Some(path) = &args.json {
        report.write_json(path)?;
    }
    if let Some(path) = &args.chart {
        report.write_chart(path)?;
    }
    Ok(())
}

/// `sockbox run -- help` and, when it is there, `wasmtime run GUEST help`, each to its
/// first byte of output.
fn startup_figures(args: &BenchArgs, progress: &ProgressBar) -> Result<Vec<Figure>> {
    let figure = |server: &str, took: Duration| Figure {
        scenario: "start-up".into(),
        server: server.into(),
        value: took.as_secs_f64() * 1000.0,
        unit: "ms",
        higher_is_better: false,
        p50_us: None,
        p99_us: None,
    };
    let mut figures = Vec::new();
    progress.set_message("start-up of sockbox run");
    let exe = std::env::current_exe().context("find the sockbox executable")?;
    let mut sockbox = Command::new(&exe);
    sockbox.args(["run", "--", "help"]);
    figures.push(figure(
        "sockbox run",
        startup::time_to_first_output(sockbox, args.startup_runs)?,
    ));
    progress.inc(1);

    progress.set_message("start-up of wasmtime run");
    let guest = tempfile::Builder::new().suffix(".wasm").tempfile()?;
    std::fs::write(guest.path(), sockbox_host::GUEST_WASM)?;
    let mut wasmtime = Command::new(&args.wasmtime);
    wasmtime.arg("run").arg(guest.path()).arg("help");
    match startup::time_to_first_output(wasmtime, args.startup_runs) {
        Ok(took) => figures.push(figure("wasmtime run", took)),
        Err(err) => progress.println(format!("skipping wasmtime run: {err:#}")),
    }
    progress.inc(1);
    Ok(figures)
}

/// A ping-pong measurement as a row: round trips/s, with its latencies.
fn round_trips(scenario: String, server: &str, measured: &load::PingPong) -> Figure {
    Figure {
        scenario,
        server: server.to_owned(),
        value: measured.round_trips_per_sec,
        unit: "round trips/s",
        higher_is_better: true,
        p50_us: Some(measured.p50_us),
        p99_us: Some(measured.p99_us),
    }
}

/// Says on stderr what the bench leaves out, and why.
fn progress_note(line: &str) {
    eprintln!("sockbox bench: {line}");
}

/// Returns a process's resident memory, in KiB (`VmRSS` in `/proc/PID/status`).
pub fn resident_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .context("VmRSS in /proc/PID/status")
}
