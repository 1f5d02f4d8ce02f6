//! The servers `sockbox bench` compares: two native Rust echo servers in this process
//! (a thread per connection, and one event loop: tokio's current-thread runtime, a
//! task per connection), the guest's `echo` under `sockbox run` (WASI 0.2 splicing and
//! copying, WASI 0.3 forwarding and copying) and under stock `wasmtime run`, a user's
//! own component under both, and any external server given by address.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use sockbox_host::harness::parse_listening;

/// How long a server may take to print its `listening on` line.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The built-in guest's echo servers the bench compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum GuestEcho {
    /// WASI 0.2, `--forward`: the host splices (the build's default).
    Splice,
    /// WASI 0.2, `--copy`.
    Copy,
    /// WASI 0.3, `--forward`: the host forwards the receive stream to the send stream.
    P3Forward,
    /// WASI 0.3, `--copy` (the build's default).
    P3Copy,
}

impl GuestEcho {
    pub const ALL: [Self; 4] = [Self::Splice, Self::Copy, Self::P3Forward, Self::P3Copy];

    /// Its name in the table and in `--only`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Splice => "sockbox-splice",
            Self::Copy => "sockbox-copy",
            Self::P3Forward => "sockbox-p3-forward",
            Self::P3Copy => "sockbox-p3-copy",
        }
    }

    fn p3(self) -> bool {
        matches!(self, Self::P3Forward | Self::P3Copy)
    }

    fn copy(self) -> bool {
        matches!(self, Self::Copy | Self::P3Copy)
    }
}

/// One server under test.
#[derive(Debug)]
pub(super) struct Server {
    /// Its name in the table: `native`, `sockbox-splice`, `sockbox-copy`, or the user's.
    pub name: String,
    /// Where it listens.
    pub addr: SocketAddr,
    /// The `sockbox run` process serving, if it is one.
    child: Option<Child>,
    /// Where the component it runs was written, kept while it runs.
    _dir: Option<tempfile::TempDir>,
    /// Whether a scenario it fails fails the run (every echo is checked); a stock
    /// `wasmtime run` row that fails one is left out of it, said so: it is compared,
    /// not under test.
    pub ours: bool,
}

impl Server {
    /// Returns the serving process's id, if the server is a child process.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Starts the native baseline: a `std::net` echo server in this process, a thread
    /// per connection, as a Rust programmer writes one.
    pub fn native() -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").context("bind the native server")?;
        let addr = listener.local_addr()?;
        std::thread::Builder::new()
            .name("bench-native-accept".into())
            .spawn(move || {
                for conn in listener.incoming().flatten() {
                    let _ = std::thread::Builder::new()
                        .stack_size(64 * 1024)
                        .spawn(move || echo(conn));
                }
            })?;
        Ok(Self {
            name: "native".into(),
            addr,
            child: None,
            _dir: None,
            ours: true,
        })
    }

    /// Starts the native event loop: tokio's current-thread runtime on one thread of
    /// this process, a task per connection, as a Rust programmer writes an async
    /// server — what a guest instance is, one thread serving every connection.
    pub fn native_loop() -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").context("bind the native loop")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("start the native loop's runtime")?;
        std::thread::Builder::new()
            .name("bench-native-loop".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    loop {
                        match listener.accept().await {
                            Ok((conn, _)) => drop(tokio::spawn(echo_task(conn))),
                            // Out of descriptors: back off, as servers do.
                            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                        }
                    }
                });
            })?;
        Ok(Self {
            name: "native-loop".into(),
            addr,
            child: None,
            _dir: None,
            ours: true,
        })
    }

    /// Starts the built-in guest's `echo` (WASI 0.2, splicing) under the stock CLI at
    /// `wasmtime`: the same component, without sockbox.
    pub fn guest_stock(wasmtime: &Path) -> Result<Self> {
        let dir = tempfile::tempdir().context("make a directory for the guest")?;
        let wasm = dir.path().join("sockbox-guest.wasm");
        std::fs::write(&wasm, sockbox_host::GUEST_WASM).context("write the guest")?;
        let args = ["echo".to_owned(), "127.0.0.1:0".to_owned()];
        let mut server = Self::component("guest-stock", &wasm, &args, Some(wasmtime))?;
        server._dir = Some(dir);
        Ok(server)
    }

    /// Starts the built-in guest's `echo` under `sockbox run` (this executable), in
    /// `kind`'s build and mode, as `instances` instances. Several share one port,
    /// which the bench picks (the instances' binds to port 0 would each get their own).
    pub fn sockbox(kind: GuestEcho, instances: u16) -> Result<Self> {
        let exe = std::env::current_exe().context("find the sockbox executable")?;
        let addr = if instances > 1 {
            let free = TcpListener::bind("127.0.0.1:0").context("pick a port")?;
            free.local_addr()?.to_string()
        } else {
            "127.0.0.1:0".to_owned()
        };
        let mut command = Command::new(exe);
        command
            .arg("run")
            .args(kind.p3().then_some("--p3"))
            .args(["--instances", &instances.to_string()])
            .args([
                "--allow-listen",
                "tcp://127.0.0.1:*",
                // The idle scenario holds more connections than the default cap (half
                // the open-file limit) allows.
                "--max-sockets",
                "unlimited",
                "--",
                "echo",
                &addr,
            ])
            .arg(if kind.copy() { "--copy" } else { "--forward" });
        let name = match instances {
            1 => kind.name().to_owned(),
            n => format!("{}×{n}", kind.name()),
        };
        Self::child(&name, command)
    }

    /// Starts a user's component, `wasm` with arguments `args`, under `sockbox run`
    /// (`stock` unset) or under the stock CLI at `stock` (`wasmtime run -S
    /// inherit-network`; a WASI 0.3 component needs a CLI built with
    /// `component-model-async`). It must print `listening on ADDR`.
    pub fn component(
        name: &str,
        wasm: &Path,
        args: &[String],
        stock: Option<&Path>,
    ) -> Result<Self> {
        let mut command = match stock {
            None => {
                let exe = std::env::current_exe().context("find the sockbox executable")?;
                let mut command = Command::new(exe);
                command
                    .args(["run", "--allow-listen", "tcp://127.0.0.1:*"])
                    .args(["--max-sockets", "unlimited", "--wasm"])
                    .arg(wasm)
                    .arg("--");
                command
            }
            Some(wasmtime) => {
                let mut command = Command::new(wasmtime);
                command.args(["run", "-S", "inherit-network"]).arg(wasm);
                command
            }
        };
        command.args(args);
        Self::child(name, command)
    }

    /// Starts `command` as the server `name`, reading its `listening on` line.
    fn child(name: &str, mut command: Command) -> Result<Self> {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = command.spawn().with_context(|| format!("start {name}"))?;
        let stdout = child.stdout.take().context("piped stdout")?;
        let addr = listening_line(stdout).with_context(|| format!("start {name}"));
        let addr = match addr {
            Ok(addr) => addr,
            Err(err) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(err);
            }
        };
        Ok(Self {
            name: name.into(),
            addr,
            child: Some(child),
            _dir: None,
            ours: !name.ends_with("-stock"),
        })
    }

    /// A server someone else started, at `addr`.
    pub fn external(name: String, addr: SocketAddr) -> Self {
        Self {
            name,
            addr,
            child: None,
            _dir: None,
            ours: true,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Reads a child's stdout until its `listening on ADDR` line, within the start timeout.
fn listening_line(stdout: impl std::io::Read + Send + 'static) -> Result<SocketAddr> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let found = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|line| parse_listening(&line));
        let _ = tx.send(found);
        // Keep draining, so the server never blocks on a full pipe.
        for _ in lines {}
    });
    match rx.recv_timeout(START_TIMEOUT) {
        Ok(Some(addr)) => addr.map_err(anyhow::Error::msg),
        Ok(None) => bail!("the server exited before printing `listening on`"),
        Err(_) => bail!("no `listening on` line within {START_TIMEOUT:?}"),
    }
}

/// Sends back every byte until the peer half-closes, on the native loop.
async fn echo_task(mut conn: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut buf = vec![0; 64 * 1024];
    loop {
        match conn.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if conn.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = conn.shutdown().await;
}

/// Sends back every byte until the peer half-closes.
fn echo(mut conn: TcpStream) {
    // No TCP_NODELAY: std's default, and wasi:sockets 0.2 cannot set it for the guest.
    let mut buf = vec![0; 64 * 1024];
    loop {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if conn.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = conn.shutdown(std::net::Shutdown::Write);
}
