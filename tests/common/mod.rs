//! What every end-to-end test shares: one harness and compiled guest per test binary,
//! the `sockbox` binary, and child processes read line by line.
//!
//! Everything here uses real wasmtime and real sockets on loopback, binds port 0, and
//! waits for `listening on` lines rather than sleeping. (Over 400 lines: every suite's
//! helpers, kept in one place so that each is written once.)

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, LazyLock, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use sockbox_host::harness::{Guest, Harness, parse_listening};
use sockbox_host::{Policy, Prepared};
use wait_timeout::ChildExt as _;

/// How long any one step may take before a test fails instead of hanging.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// One harness (engine, tokio runtime) per test binary.
pub static HARNESS: LazyLock<Harness> =
    LazyLock::new(|| Harness::new().expect("start the test harness"));

/// The built-in guest, compiled once per test binary.
pub static GUEST: LazyLock<Prepared> =
    LazyLock::new(|| HARNESS.builtin_guest().expect("compile the built-in guest"));

/// The built-in guest's WASI 0.3 build, compiled once per test binary.
pub static GUEST_P3: LazyLock<Prepared> = LazyLock::new(|| {
    HARNESS
        .builtin_guest_p3()
        .expect("compile the built-in guest's WASI 0.3 build")
});

/// Which build of the built-in guest a test runs: the two keep one output contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Build {
    /// WASI 0.2 (`guest/`).
    P2,
    /// WASI 0.3 (`guest-p3/`).
    P3,
}

impl Build {
    /// The build's compiled guest.
    pub fn guest(self) -> &'static Prepared {
        match self {
            Self::P2 => &GUEST,
            Self::P3 => &GUEST_P3,
        }
    }
}

/// Starts `build`'s guest with `args` under `policy`.
pub fn start_build(build: Build, policy: Policy, args: &[&str]) -> Result<Guest> {
    HARNESS.start(build.guest(), policy, args.iter().copied())
}

/// A user's own component, written with plain `std::net` (`examples/std-echo`).
pub static STD_ECHO: LazyLock<Prepared> = LazyLock::new(|| {
    HARNESS
        .component(include_bytes!(env!("STD_ECHO_WASM")))
        .expect("compile examples/std-echo")
});

/// A user's concurrent server on `wstd`, no sockbox code (`examples/wstd-echo`).
pub static WSTD_ECHO: LazyLock<Prepared> = LazyLock::new(|| {
    HARNESS
        .component(include_bytes!(env!("WSTD_ECHO_WASM")))
        .expect("compile examples/wstd-echo")
});

/// A WASI 0.3 server written with wit-bindgen's async exports (`examples/p3-echo`).
pub static P3_ECHO: LazyLock<Prepared> = LazyLock::new(|| {
    HARNESS
        .component(include_bytes!(env!("P3_ECHO_WASM")))
        .expect("compile examples/p3-echo")
});

/// A TCP client on tokio (`examples/tokio-client`).
pub static TOKIO_CLIENT: LazyLock<Prepared> = LazyLock::new(|| {
    HARNESS
        .component(include_bytes!(env!("TOKIO_CLIENT_WASM")))
        .expect("compile examples/tokio-client")
});

/// A user's component on the guest library (`guest/examples/dial.rs`): its own `main`.
pub static GUEST_DIAL_EXAMPLE: LazyLock<Prepared> = LazyLock::new(|| {
    HARNESS
        .component(include_bytes!(env!("GUEST_DIAL_EXAMPLE_WASM")))
        .expect("compile guest/examples/dial.rs")
});

/// The guest built to exceed each limit (`tests/guests/limits`).
pub static LIMITS_GUEST: LazyLock<Prepared> = LazyLock::new(|| {
    HARNESS
        .component(include_bytes!(env!("LIMITS_GUEST_WASM")))
        .expect("compile tests/guests/limits")
});

/// Starts the built-in guest with `args` under `policy`.
pub fn start(policy: Policy, args: &[&str]) -> Result<Guest> {
    start_build(Build::P2, policy, args)
}

/// Starts `echo` on `host` (`127.0.0.1` or `[::1]`), port 0, for `count` connections,
/// and returns it with the address it printed.
pub fn echo_server(host: &str, count: u32) -> Result<(Guest, SocketAddr)> {
    echo_server_build(Build::P2, host, count, &[])
}

/// [`echo_server`] with `build`'s guest and `mode`'s flags (`--copy`).
pub fn echo_server_build(
    build: Build,
    host: &str,
    count: u32,
    mode: &[&str],
) -> Result<(Guest, SocketAddr)> {
    let listen = format!("{host}:0");
    let count = count.to_string();
    let mut args = vec!["echo", &listen, "--count", &count];
    args.extend_from_slice(mode);
    let server = start_build(build, serve_on(host), &args)?;
    let addr = server.listening_addr(TIMEOUT)?;
    Ok((server, addr))
}

/// A policy that lets a guest serve on `host` (`127.0.0.1` or `[::1]`), any port.
pub fn serve_on(host: &str) -> Policy {
    Policy::deny_all()
        .allow_listen(&format!("tcp://{host}:*"))
        .expect("a valid rule")
}

/// A policy that lets a guest connect to exactly `addr`.
pub fn connect_to(addr: SocketAddr) -> Policy {
    let host = match addr {
        SocketAddr::V4(v4) => v4.ip().to_string(),
        SocketAddr::V6(v6) => format!("[{}]", v6.ip()),
    };
    Policy::deny_all()
        .allow(&format!("tcp://{host}:{}", addr.port()))
        .expect("a valid rule")
}

/// The loopback hosts to run a flow on: IPv4 always, IPv6 when the machine has `::1`.
pub fn loopbacks() -> Vec<&'static str> {
    if TcpListener::bind("[::1]:0").is_ok() {
        vec!["127.0.0.1", "[::1]"]
    } else {
        eprintln!("skipping [::1]: this machine has no IPv6 loopback");
        vec!["127.0.0.1"]
    }
}

/// Reports whether this run is CI's, where a missing tool is a failure, not a skip.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|ci| !ci.is_empty() && ci != "false")
}

/// The `sockbox` binary of this build, as a command with the suite's compile cache.
///
/// Cargo builds a package's binary only for that package's own integration tests, so
/// `cli/tests/binary.rs` makes `cargo test` from the workspace root build it; no test
/// runs cargo.
pub fn sockbox() -> Command {
    static BIN: LazyLock<PathBuf> = LazyLock::new(|| {
        // The binary cargo built beside this test binary: `cargo test` from the
        // workspace root builds it for the `sockbox` crate's own tests.
        let exe = std::env::current_exe().expect("the test binary's path");
        let bin = exe
            .parent()
            .and_then(|deps| deps.parent())
            .expect("test binaries live in target/<profile>/deps")
            .join("sockbox");
        assert!(
            bin.is_file(),
            "{} is missing: run the tests with `cargo test --release` from the workspace \
             root (it builds the binary), or `cargo build --release` first",
            bin.display()
        );
        bin
    });
    let mut command = Command::new(&*BIN);
    // Compiled components go to the tests' own cache, not the user's.
    command.env(sockbox_host::runner::CACHE_DIR_ENV, cache_dir());
    command
}

/// The compile cache every `sockbox` process of the tests shares, kept in cargo's
/// target directory between runs (a temporary directory would outlive the test
/// binary's statics and stay behind, one per run).
pub fn cache_dir() -> PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("compile-cache")
}

/// A child process whose stdout is read line by line as it runs; killed when dropped.
pub struct Process {
    name: String,
    child: Child,
    lines: Receiver<String>,
    err_lines: Receiver<String>,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

/// How a child process ended, and what it printed.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// The exit code, or a failure naming the signal that killed it.
    pub fn code(&self) -> Result<i32> {
        self.status
            .code()
            .ok_or_else(|| anyhow!("killed by a signal: {:?}\n{self}", self.status))
    }
}

impl std::fmt::Display for Finished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}\n--- stdout ---\n{}--- stderr ---\n{}---",
            self.status, self.stdout, self.stderr
        )
    }
}

impl Process {
    /// Returns the process id, to look at it in `/proc`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts `command` with stdout and stderr piped to this test.
    pub fn spawn(mut command: Command) -> Result<Self> {
        let name = format!("{command:?}");
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("spawn {name}"))?;
        let (tx, lines) = mpsc::channel();
        let (err_tx, err_lines) = mpsc::channel();
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let out_pipe = child.stdout.take().context("stdout is piped")?;
        let err_pipe = child.stderr.take().context("stderr is piped")?;
        let out_text = Arc::clone(&stdout);
        let err_text = Arc::clone(&stderr);
        let readers = vec![
            std::thread::spawn(move || {
                for line in BufReader::new(out_pipe).lines().map_while(Result::ok) {
                    out_text
                        .lock()
                        .expect("not poisoned")
                        .push_str(&format!("{line}\n"));
                    let _ = tx.send(line);
                }
            }),
            std::thread::spawn(move || {
                for line in BufReader::new(err_pipe).lines().map_while(Result::ok) {
                    err_text
                        .lock()
                        .expect("not poisoned")
                        .push_str(&format!("{line}\n"));
                    let _ = err_tx.send(line);
                }
            }),
        ];
        Ok(Self {
            name,
            child,
            lines,
            err_lines,
            stdout,
            stderr,
            readers,
        })
    }

    /// Runs `command` to completion (at most [`TIMEOUT`]).
    pub fn run(command: Command) -> Result<Finished> {
        Self::spawn(command)?.wait()
    }

    /// Waits for a `listening on ADDR` line and returns ADDR.
    pub fn listening_addr(&self) -> Result<SocketAddr> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(addr) = parse_listening(&line) {
                        return addr.map_err(anyhow::Error::msg);
                    }
                }
                Err(_) => bail!(
                    "{} printed no `listening on` line\n--- stdout ---\n{}--- stderr ---\n{}",
                    self.name,
                    self.stdout.lock().expect("not poisoned"),
                    self.stderr.lock().expect("not poisoned")
                ),
            }
        }
    }

    /// Waits for a line on stderr starting with `prefix` and returns the rest of it.
    pub fn stderr_line(&self, prefix: &str) -> Result<String> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.err_lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return Ok(rest.to_owned());
                    }
                }
                Err(_) => bail!(
                    "{} printed no `{prefix}` line\n--- stdout ---\n{}--- stderr ---\n{}",
                    self.name,
                    self.stdout.lock().expect("not poisoned"),
                    self.stderr.lock().expect("not poisoned")
                ),
            }
        }
    }

    /// Waits for the process to exit (at most [`TIMEOUT`]) and returns its output.
    pub fn wait(mut self) -> Result<Finished> {
        let status = match self.child.wait_timeout(TIMEOUT)? {
            Some(status) => status,
            None => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!(
                    "{} did not exit within {TIMEOUT:?}\n--- stdout ---\n{}--- stderr ---\n{}",
                    self.name,
                    self.stdout.lock().expect("not poisoned"),
                    self.stderr.lock().expect("not poisoned")
                );
            }
        };
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        Ok(Finished {
            status,
            stdout: self.stdout.lock().expect("not poisoned").clone(),
            stderr: self.stderr.lock().expect("not poisoned").clone(),
        })
    }
}

impl Process {
    /// Kills the process (a server that serves until stopped) and returns its output.
    pub fn stop(mut self) -> Result<Finished> {
        let _ = self.child.kill();
        self.wait()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.readers.is_empty() {
            return;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `bytes` to an echo server at `addr`, half-closes, and returns everything echoed.
pub fn echo_round_trip(addr: SocketAddr, bytes: &[u8]) -> Result<Vec<u8>> {
    let mut conn = TcpStream::connect(addr)?;
    conn.set_read_timeout(Some(TIMEOUT))?;
    conn.write_all(bytes)?;
    conn.shutdown(Shutdown::Write)?;
    let mut echoed = Vec::new();
    conn.read_to_end(&mut echoed)?;
    Ok(echoed)
}

/// Accepts one connection on `listener`, reads until the peer half-closes, answers
/// `reply`, closes, and returns what the peer sent.
pub fn answer_once(listener: &TcpListener, reply: &[u8]) -> Result<Vec<u8>> {
    let mut conn = accept_within(listener, TIMEOUT)?;
    conn.set_read_timeout(Some(TIMEOUT))?;
    let mut got = Vec::new();
    conn.read_to_end(&mut got)?;
    conn.write_all(reply)?;
    Ok(got)
}

/// Accepts one connection on `listener`, failing instead of hanging if none comes
/// within `timeout` (the accepting thread is left blocked; the test has failed anyway).
pub fn accept_within(listener: &TcpListener, timeout: Duration) -> Result<TcpStream> {
    let listener = listener.try_clone()?;
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || sender.send(listener.accept()));
    match receiver.recv_timeout(timeout) {
        Ok(accepted) => Ok(accepted?.0),
        Err(_) => bail!("no connection arrived within {timeout:?}"),
    }
}

/// A nonblocking listener on `host` (`127.0.0.1`, `[::1]`), port 0, that must never see
/// a connection: checked by [`assert_untouched`].
pub fn watched_listener(host: &str) -> Result<TcpListener> {
    let listener = TcpListener::bind(format!("{host}:0"))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Fails if a connection reached `listener` (a [`watched_listener`]).
pub fn assert_untouched(listener: &TcpListener) -> Result<()> {
    let accepted = listener.accept();
    if !matches!(&accepted, Err(err) if err.kind() == std::io::ErrorKind::WouldBlock) {
        bail!(
            "a denied connect reached {:?}: {accepted:?}",
            listener.local_addr()
        );
    }
    Ok(())
}
