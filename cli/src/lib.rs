//! The `sockbox` command line: `run`, `demo`, `guest`, `policy check`, `policy explain`,
//! `bench`.
//!
//! Exit status: the guest's own; 2 for sockbox's errors (bad flag, bad rule or policy
//! file, unreadable or invalid component), reported in one line before any guest code
//! runs; 134 when the guest traps; when a limit stops it, 137 (`--max-memory`), 124
//! (`--timeout`) or 152 (`--cpu-time`), with one line naming the limit.
//! `--max-sockets` is a cap, not a limit that stops the guest. `policy explain` exits 0
//! for allowed, 1 for denied.

pub mod bench;
mod demo;
mod policy;
mod reload;
mod run;
mod suggest;

pub use sockbox_host::runner::parse_size;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use sockbox_host::launch;
use sockbox_host::{GUEST_P3_WASM, GUEST_WASM};

/// sockbox's own error, before guest code runs ([`launch::SETUP_STATUS`]).
const SETUP_ERROR: u8 = launch::SETUP_STATUS as u8;

#[derive(Debug, Parser)]
#[command(
    name = "sockbox",
    version,
    about = "Run network programs in a WebAssembly sandbox, with exactly the network you grant",
    after_help = "Rules are SCHEME://HOST:PORTS: tcp://127.0.0.1:8080, udp://10.0.0.0/8:1000-2000, \
                  tcp://[::1]:*, tcp://*.example.com:443, *://{10.0.0.1,db.internal}:{80,443}"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log more on stderr: -v what sockbox does, -vv every decision. RUST_LOG (as
    /// `sockbox_host=debug`) overrides both.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the built-in guest (or --wasm FILE) with a network policy; no flag, no network.
    Run(run::RunArgs),
    /// Run the classic server and client as two sandboxed instances in this process.
    Demo,
    /// Write the built-in guest component to FILE (it also runs under `wasmtime run`).
    Guest {
        /// Where to write the component.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        /// Write the WASI 0.3 build (`wasi:cli/run@0.3.0`) instead of the 0.2 one.
        #[arg(long)]
        p3: bool,
    },
    /// Check a policy file, explain what a policy decides for one use, or suggest one
    /// from an audit.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Compare the guest's echo with native servers: ping-pong, stream, start-up, memory.
    Bench(bench::BenchArgs),
}

/// Runs the `sockbox` command line with the process's arguments.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) if !err.use_stderr() => {
            // --help and --version.
            let _ = err.print();
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            let rendered = err.render().to_string();
            let mut lines = rendered.lines();
            let first = lines.next().unwrap_or("invalid arguments");
            let mut first = first.strip_prefix("error: ").unwrap_or(first).to_owned();
            // "…were not provided:" names them on the indented lines after it.
            if first.ends_with(':') {
                let named: Vec<&str> = lines
                    .take_while(|line| line.starts_with(' '))
                    .map(str::trim)
                    .collect();
                first = format!("{} {}", first.trim_end_matches(':'), named.join(", "));
            }
            eprintln!("sockbox: {first} (see `sockbox --help`)");
            return ExitCode::from(SETUP_ERROR);
        }
    };
    // As Go does: a server may hold as many sockets as the hard limit allows.
    init_logs(cli.verbose);
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Demo => demo::demo(),
        Command::Guest { output, p3 } => {
            std::fs::write(&output, if p3 { GUEST_P3_WASM } else { GUEST_WASM })
                .with_context(|| format!("write the guest to {}", output.display()))
                .map(|()| ExitCode::SUCCESS)
                .map_err(Failure::Setup)
        }
        Command::Policy(command) => policy::main(command).map_err(Failure::Setup),
        Command::Bench(args) => bench::run(args)
            .map(|()| ExitCode::SUCCESS)
            .map_err(Failure::Bench),
    };
    match result {
        Ok(code) => code,
        Err(Failure::Setup(err)) => {
            eprintln!("sockbox: {}", one_line(&format!("{err:#}")));
            ExitCode::from(SETUP_ERROR)
        }
        Err(Failure::Demo(err)) => {
            eprintln!("sockbox: demo: {}", one_line(&format!("{err:#}")));
            ExitCode::FAILURE
        }
        Err(Failure::Bench(err)) => {
            eprintln!("sockbox: bench: {}", one_line(&format!("{err:#}")));
            ExitCode::FAILURE
        }
    }
}

/// Sends the library's `tracing` events to stderr: warnings by default, more with
/// `-v`/`-vv`, or what `RUST_LOG` says.
fn init_logs(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "warn,sockbox_host=info,sockbox_cli=info",
        _ => "warn,sockbox_host=debug,sockbox_cli=debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .event_format(Lines)
        .try_init();
}

/// Formats the library's events as sockbox's own lines: `sockbox: warning: MESSAGE`
/// (`error`, `info`, `debug`, `trace` likewise), after the spans the event is in
/// (`instance{name="…"}: `), then the event's fields.
struct Lines;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for Lines
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let level = match *event.metadata().level() {
            tracing::Level::ERROR => "error",
            tracing::Level::WARN => "warning",
            tracing::Level::INFO => "info",
            tracing::Level::DEBUG => "debug",
            tracing::Level::TRACE => "trace",
        };
        write!(writer, "sockbox: {level}: ")?;
        // The spans the event is in, outermost first: `instance{name="…"}: `.
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                write!(writer, "{}", span.name())?;
                let extensions = span.extensions();
                if let Some(fields) =
                    extensions.get::<tracing_subscriber::fmt::FormattedFields<N>>()
                    && !fields.is_empty()
                {
                    write!(writer, "{{{fields}}}")?;
                }
                write!(writer, ": ")?;
            }
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Text folded onto one line: an error and its causes read `compile component x.wasm:
/// failed to parse …`, however the layers below laid them out.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// sockbox's failures, by when they happen.
enum Failure {
    /// Before any guest code runs: exit 2.
    Setup(anyhow::Error),
    /// While the demo's guests run: exit 1.
    Demo(anyhow::Error),
    /// A server failed a check, or could not be measured: exit 1.
    Bench(anyhow::Error),
}
