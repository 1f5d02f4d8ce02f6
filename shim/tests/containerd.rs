//! The shim under a real containerd: a private containerd (its own root, state and
//! socket in a temporary directory) imports an OCI image of the built-in guest made
//! here, and `ctr run --runtime io.containerd.sockbox.v1` runs it with annotations for
//! its policy. Needs root and Debian's `containerd` (`.ci/run` installs it). (Over 400
//! lines: the private containerd and the image are set up once for both tests.)

mod common;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use wait_timeout::ChildExt as _;

use common::{Containerd, Content, TIMEOUT, echo};

/// containerd's configuration for these tests: `ctr` needs no CRI.
const NO_CRI: &str = "disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n";

/// The images the test makes: the built-in guest's WASI 0.2 and 0.3 builds in ordinary
/// tar layers (the entrypoint `.wasm` among the image's files), and its 0.2 build as a
/// wasm layer (runwasi's media type, no files at all). containerd unpacks an image with
/// a wasm layer only from 1.6.25 and 1.7.7 on (before, `ctr image import` fails with
/// "mismatched image rootfs and manifest layers"): with an older containerd, as
/// Debian 12's 1.6.20, that image is left out, and the test says so.
const IMAGES: [Image; 3] = [
    Image {
        name: "sockbox.test/guest:latest",
        wasm: sockbox_host::GUEST_WASM,
        wasm_layer: false,
    },
    Image {
        name: "sockbox.test/guest-p3:latest",
        wasm: sockbox_host::GUEST_P3_WASM,
        wasm_layer: false,
    },
    Image {
        name: "sockbox.test/guest-layer:latest",
        wasm: sockbox_host::GUEST_WASM,
        wasm_layer: true,
    },
];

/// Reports whether this containerd unpacks images with wasm layers: 1.6.25 and later
/// 1.6 releases, 1.7.7 and later.
fn unpacks_wasm_layers() -> Result<bool> {
    let output = Command::new("containerd").arg("--version").output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    // `containerd github.com/containerd/containerd 1.6.20~ds1 …`
    let version = text
        .split_whitespace()
        .nth(2)
        .with_context(|| format!("containerd --version: `{text}`"))?;
    let numbers: Vec<u32> = version
        .trim_start_matches('v')
        .split(['.', '~', '-', '+'])
        .take(3)
        .map(|part| part.parse().unwrap_or(0))
        .collect();
    Ok(match numbers[..] {
        [1, 6, patch, ..] => patch >= 25,
        [1, 7, patch, ..] => patch >= 7,
        [1, minor, ..] => minor > 7,
        [major, ..] => major > 1,
        _ => false,
    })
}

/// An OCI image of a component.
struct Image {
    name: &'static str,
    wasm: &'static [u8],
    /// The component as a layer of its own media type, rather than a file in a tar layer.
    wasm_layer: bool,
}

impl Image {
    /// Writes this image's archive into `dir`, and returns its path.
    fn archive(&self, dir: &std::path::Path) -> Result<PathBuf> {
        let content = if self.wasm_layer {
            Content::WasmLayer(self.wasm)
        } else {
            Content::Files(vec![("sockbox-guest.wasm", self.wasm, 0o644)])
        };
        common::image_archive(dir, self.name, &content, &["/sockbox-guest.wasm"])
    }
}

/// `ctr run --rm --net-host` of `image` with the sockbox runtime, the annotations
/// given and the guest's `args`.
fn run(
    containerd: &Containerd,
    image: &Image,
    id: &str,
    annotations: &[&str],
    args: &[&str],
) -> Command {
    let mut command = containerd.ctr();
    command.args([
        "run",
        "--rm",
        "--net-host",
        "--runtime",
        "io.containerd.sockbox.v1",
    ]);
    for annotation in annotations {
        command.args(["--annotation", annotation]);
    }
    command
        .args([image.name, id, "/sockbox-guest.wasm"])
        .args(args);
    command
}

/// A `ctr run` in the background: its stdout's and stderr's lines as they come, all
/// of it at the end.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    err_lines: mpsc::Receiver<String>,
    stderr: std::thread::JoinHandle<String>,
}

impl Running {
    fn spawn(mut command: Command) -> Result<Self> {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().context("piped")?;
        let mut stderr = child.stderr.take().context("piped")?;
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = send.send(line);
            }
        });
        let (send_err, err_lines) = mpsc::channel();
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            for line in BufReader::new(&mut stderr).lines().map_while(Result::ok) {
                text.push_str(&line);
                text.push('\n');
                let _ = send_err.send(line);
            }
            text
        });
        Ok(Self {
            child,
            lines,
            err_lines,
            stderr,
        })
    }

    /// Waits for `listening on ADDR` and returns ADDR.
    fn listening_addr(&self) -> Result<SocketAddr> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .context("no `listening on` line")?;
            if let Some(addr) = sockbox_host::harness::parse_listening(&line) {
                return addr.map_err(anyhow::Error::msg);
            }
        }
    }

    /// Waits for a line on stderr starting with `prefix` and returns the rest of it.
    fn stderr_line(&self, prefix: &str) -> Result<String> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .err_lines
                .recv_timeout(left)
                .with_context(|| format!("no `{prefix}` line"))?;
            if let Some(rest) = line.strip_prefix(prefix) {
                return Ok(rest.to_owned());
            }
        }
    }

    /// Waits for the end; returns the exit code and everything printed.
    fn finish(mut self) -> Result<(i32, String)> {
        let status = match self.child.wait_timeout(TIMEOUT)? {
            Some(status) => status,
            None => {
                let _ = self.child.kill();
                bail!("ctr run did not end within {TIMEOUT:?}");
            }
        };
        let mut output: Vec<String> = self.lines.try_iter().collect();
        output.push(self.stderr.join().unwrap_or_default());
        Ok((status.code().unwrap_or(-1), output.join("\n")))
    }
}

/// The whole path, for real: containerd, the images, the shim, annotations as policy,
/// for the guest's WASI 0.2 build in a tar layer and its 0.3 build in a wasm layer.
#[test]
fn containerd_runs_the_guest_under_its_annotations() -> Result<()> {
    let containerd = Containerd::start(NO_CRI, "sockbox-test")?;
    let wasm_layers = unpacks_wasm_layers()?;
    for image in &IMAGES {
        if image.wasm_layer && !wasm_layers {
            println!(
                "{}: left out: this containerd cannot unpack an image with a wasm layer (1.6.25 or 1.7.7 and later can)",
                image.name
            );
            continue;
        }
        let archive = image.archive(containerd.dir.path())?;
        let size = std::fs::metadata(&archive)?.len();
        println!("{}: image archive of {size} bytes", image.name);
        containerd.import(&archive)?;
        serve_and_refuse(&containerd, image)
            .with_context(|| format!("{}\n--- containerd ---\n{}", image.name, containerd.log()))?;
    }
    Ok(())
}

/// The node's compile cache: the first container of a component compiles it and stores
/// one entry; the next loads that entry (it is not written again), and so does another
/// container of the same image started after it.
#[test]
fn containerd_compiles_a_component_once_per_node() -> Result<()> {
    let containerd = Containerd::start(NO_CRI, "sockbox-test")?;
    let image = &IMAGES[0];
    containerd.import(&image.archive(containerd.dir.path())?)?;
    ensure!(containerd.cache_entries().is_empty());
    let mut seen = Vec::new();
    for id in ["first", "second", "third"] {
        let (code, output) = Running::spawn(run(
            &containerd,
            image,
            id,
            &["sockbox.io/allow=tcp://localhost:*"],
            &["lookup", "127.0.0.1"],
        ))?
        .finish()?;
        ensure!(code == 0, "{id}: exit {code}\n{output}");
        seen.push(containerd.cache_entries());
    }
    ensure!(
        seen[0].len() == 1 && seen.iter().all(|entries| *entries == seen[0]),
        "one entry, written once (name and inode): {seen:?}"
    );
    ensure!(seen[0][0].0.ends_with(".cwasm"), "{seen:?}");
    Ok(())
}

/// A compile cache the shim cannot use (here a file where its directory should be):
/// containers still run, compiling their component, and containerd's log says why.
#[test]
fn containerd_runs_without_a_usable_compile_cache() -> Result<()> {
    let containerd = Containerd::start_with_cache(NO_CRI, "sockbox-test", "not-a-directory")?;
    std::fs::write(containerd.dir.path().join("not-a-directory"), b"a file")?;
    let image = &IMAGES[0];
    containerd.import(&image.archive(containerd.dir.path())?)?;
    let (code, output) = Running::spawn(run(
        &containerd,
        image,
        "uncached",
        &["sockbox.io/allow=tcp://localhost:*"],
        &["lookup", "127.0.0.1"],
    ))?
    .finish()?;
    ensure!(code == 0, "exit {code}\n{output}");
    ensure!(
        containerd.log().contains("no compile cache at ")
            && containerd
                .log()
                .contains("the component is compiled for this container"),
        "{}",
        containerd.log()
    );
    Ok(())
}

/// A benchmark, run by hand (`cargo test --release --features containerd-shim-sockbox/shim
/// --test containerd -- --ignored --nocapture`; needs `hyperfine`): `ctr run --rm` of a
/// container that looks up `127.0.0.1` and exits, with the node's compile cache empty
/// before each run (cold) and kept (warm), then one warm run's timeline from
/// containerd's log.
#[test]
#[ignore = "a benchmark, run by hand: docs/kubernetes.md's start-up figures"]
fn start_up_cold_and_warm() -> Result<()> {
    let containerd = Containerd::start(NO_CRI, "sockbox-test")?;
    let image = &IMAGES[0];
    containerd.import(&image.archive(containerd.dir.path())?)?;
    let command = run(
        &containerd,
        image,
        "bench",
        &["sockbox.io/allow=tcp://localhost:*"],
        &["lookup", "127.0.0.1"],
    );
    let line = std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|part| format!("'{}'", part.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ");
    let cache = containerd.dir.path().join("cache");
    let export = containerd.dir.path().join("start.json");
    let status = Command::new("hyperfine")
        .args(["--warmup", "3", "--runs", "30", "--export-json"])
        .arg(&export)
        .args(["--command-name", "cold", "--prepare"])
        .arg(format!("rm -f {}/*", cache.display()))
        .arg(&line)
        .args(["--command-name", "warm", "--prepare", "true"])
        .arg(&line)
        .status()
        .context("hyperfine (Debian's `hyperfine`)")?;
    ensure!(status.success(), "hyperfine: {status}");
    println!("{}", std::fs::read_to_string(&export)?);
    // One more warm run, and where its time went, as containerd logged it.
    let before = containerd.log().lines().count();
    let started = Instant::now();
    let (code, output) = Running::spawn(run(
        &containerd,
        image,
        "timeline",
        &["sockbox.io/allow=tcp://localhost:*"],
        &["lookup", "127.0.0.1"],
    ))?
    .finish()?;
    ensure!(code == 0, "{output}");
    println!(
        "one warm run: {:?}; containerd's log of it:",
        started.elapsed()
    );
    for line in containerd.log().lines().skip(before) {
        println!("{line}");
    }
    Ok(())
}

/// A command exporting both `wasi:cli/run@0.2` (std's `main`) and `@0.3.0`, as Rust's
/// toolchain builds WASI 0.3 programs today, runs its 0.3 entry under the shim, as under
/// `sockbox run` and the harness.
#[test]
fn containerd_runs_the_0_3_entry_of_a_command_exporting_both() -> Result<()> {
    let containerd = Containerd::start(NO_CRI, "sockbox-test")?;
    let image = Image {
        name: "sockbox.test/both-entries:latest",
        wasm: include_bytes!(env!("BOTH_ENTRIES_WASM")),
        wasm_layer: false,
    };
    containerd.import(&image.archive(containerd.dir.path())?)?;
    let (code, output) = Running::spawn(run(&containerd, &image, "both", &[], &[]))?.finish()?;
    ensure!(
        code == 0,
        "exit {code}\n{output}\n--- containerd ---\n{}",
        containerd.log()
    );
    ensure!(output.contains("ran wasi:cli/run@0.3.0"), "{output}");
    ensure!(!output.contains("ran wasi:cli/run@0.2"), "{output}");
    Ok(())
}

/// `image`'s echo served under an allow-listen annotation, then by two instances on a
/// published port, a dial refused by its annotation, the audit on the container's
/// stderr, and a malformed annotation.
fn serve_and_refuse(containerd: &Containerd, image: &Image) -> Result<()> {
    // A server allowed to listen on loopback: echo through it, from here.
    let started = Instant::now();
    let server = Running::spawn(run(
        containerd,
        image,
        "echo",
        &["sockbox.io/allow-listen=tcp://127.0.0.1:*"],
        &["echo", "127.0.0.1:0"],
    ))?;
    let addr = server.listening_addr();
    println!(
        "{}: `ctr run` to `listening on`: {:?}",
        image.name,
        started.elapsed()
    );
    let addr = match addr {
        Ok(addr) => addr,
        Err(err) => {
            let _ = containerd.ctr_ok(&["task", "kill", "--signal", "SIGKILL", "echo"]);
            let (_, output) = server.finish()?;
            bail!("{err}\n{output}");
        }
    };
    ensure!(echo(addr, b"through containerd")? == b"through containerd");
    containerd.ctr_ok(&["task", "kill", "--signal", "SIGKILL", "echo"])?;
    server.finish()?;

    // Two instances (`sockbox.io/instances`) on one published port: both serve.
    let server = Running::spawn(run(
        containerd,
        image,
        "instances",
        &[
            "sockbox.io/instances=2",
            "sockbox.io/allow-listen=tcp://127.0.0.1:8080",
            "sockbox.io/publish=0:8080",
            "sockbox.io/audit=stderr",
            "sockbox.io/metrics=127.0.0.1:0",
        ],
        &["echo", "127.0.0.1:8080"],
    ))?;
    let metrics = server.stderr_line("sockbox: metrics on http://");
    let published = server.stderr_line("sockbox: published tcp 127.0.0.1:8080 on ");
    let host: SocketAddr = match published.and_then(|host| Ok(host.parse()?)) {
        Ok(host) => host,
        Err(err) => {
            let _ = containerd.ctr_ok(&["task", "kill", "--signal", "SIGKILL", "instances"]);
            let (_, output) = server.finish()?;
            bail!("{err}\n{output}");
        }
    };
    server.listening_addr()?;
    for i in 0..20 {
        let message = format!("to one of two, {i}");
        ensure!(echo(host, message.as_bytes())? == message.as_bytes());
    }
    // The pod's metrics (`sockbox.io/metrics`): both instances, every connection.
    let scraped = metrics.and_then(|url| scrape(&url));
    let scraped = match scraped {
        Ok(text) => text,
        Err(err) => {
            let _ = containerd.ctr_ok(&["task", "kill", "--signal", "SIGKILL", "instances"]);
            let (_, output) = server.finish()?;
            bail!("{err}\n{output}");
        }
    };
    for sample in [
        "sockbox_instances_running 2",
        r#"sockbox_connections_total{direction="accepted"} 20"#,
    ] {
        ensure!(
            scraped.lines().any(|line| line == sample),
            "no {sample} in\n{scraped}"
        );
    }
    containerd.ctr_ok(&["task", "kill", "--signal", "SIGKILL", "instances"])?;
    let (_, output) = server.finish()?;
    for instance in ["/1", "/2"] {
        let accepted = format!(r#"{instance}","use":"tcp-accept""#);
        ensure!(output.contains(&accepted), "no {accepted} in\n{output}");
    }

    // A client whose annotation allows another port: refused, and nothing arrives.
    let listener = TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let target = listener.local_addr()?.to_string();
    let (code, output) = Running::spawn(run(
        containerd,
        image,
        "dial",
        &["sockbox.io/allow=tcp://127.0.0.1:1"],
        &["dial", &target],
    ))?
    .finish()?;
    ensure!(code == 1, "exit {code}\n{output}");
    ensure!(
        output.contains(&format!(
            "sockbox: denied tcp connect to {target} (no rule allows it)"
        )),
        "{output}"
    );
    ensure!(output.contains("access denied"), "{output}");
    ensure!(listener.accept().is_err(), "a connection arrived");

    // The audit on the container's stderr: a JSON line per decision.
    let (code, output) = Running::spawn(run(
        containerd,
        image,
        "audit",
        &[
            "sockbox.io/allow=tcp://127.0.0.1:1",
            "sockbox.io/audit=stderr",
        ],
        &["dial", &target],
    ))?
    .finish()?;
    ensure!(code == 1, "exit {code}\n{output}");
    let line = format!(
        r#""use":"tcp-connect","address":"{target}","verdict":"deny","rule":"default-deny"}}"#
    );
    ensure!(output.contains(&line), "no {line} in\n{output}");

    // A malformed annotation fails the start, in one line.
    let (code, output) = Running::spawn(run(
        containerd,
        image,
        "bad",
        &["sockbox.io/allow=tcp://10.0.0.0/33:80"],
        &["dial", &target],
    ))?
    .finish()?;
    ensure!(code != 0, "{output}");
    ensure!(
        output
            .contains("sockbox: annotation sockbox.io/allow: invalid rule `tcp://10.0.0.0/33:80`"),
        "{output}"
    );
    ensure!(listener.accept().is_err(), "a connection arrived");
    Ok(())
}

/// `GET /metrics` from `url` (`ADDR/metrics`, after `http://`) over plain HTTP/1.1;
/// the response's body.
fn scrape(url: &str) -> Result<String> {
    let (addr, path) = url.split_once('/').context("a path")?;
    let mut conn = TcpStream::connect(addr)?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        conn,
        "GET /{path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    conn.read_to_string(&mut response)?;
    ensure!(response.starts_with("HTTP/1.1 200"), "{response}");
    let (_, body) = response.split_once("\r\n\r\n").context("a body")?;
    Ok(body.to_owned())
}
