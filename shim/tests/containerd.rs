//! The shim under a real containerd: a private containerd (its own root, state and
//! socket in a temporary directory) imports an OCI image of the built-in guest made
//! here, and `ctr run --runtime io.containerd.sockbox.v1` runs it with annotations for
//! its policy. Needs root and Debian's `containerd` (`.ci/run` installs it). (Over 400
//! lines: the private containerd and the image are set up once for both tests.)

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use sha2::{Digest as _, Sha256};
use wait_timeout::ChildExt as _;

/// How long any one step may take.
const TIMEOUT: Duration = Duration::from_secs(60);

/// The shim cargo built for this test.
const SHIM: &str = env!("CARGO_BIN_EXE_containerd-shim-sockbox-v1");

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

/// runwasi's media type for a component layer.
const WASM_LAYER: &str = "application/vnd.bytecodealliance.wasm.component.layer.v0+wasm";

/// A containerd of the test's own, stopped (and its state removed) when dropped.
struct Containerd {
    child: Child,
    dir: tempfile::TempDir,
    namespace: String,
}

impl Containerd {
    /// Starts containerd with everything under a fresh temporary directory, the
    /// shim's directory first on its PATH, and waits for it to say it booted.
    fn start() -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let path = dir.path();
        let config = path.join("config.toml");
        std::fs::write(
            &config,
            format!(
                "version = 2\n\
                 root = \"{root}\"\n\
                 state = \"{state}\"\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n  address = \"{sock}\"\n\
                 [ttrpc]\n  address = \"{sock}.ttrpc\"\n",
                root = path.join("root").display(),
                state = path.join("state").display(),
                sock = path.join("containerd.sock").display(),
            ),
        )?;
        let shim_dir = Path::new(SHIM).parent().context("the shim's directory")?;
        let search = format!(
            "{}:{}",
            shim_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut child = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .env("PATH", search)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("start containerd (Debian's `containerd` package; the test needs root)")?;
        let stderr = child.stderr.take().context("piped")?;
        let (booted, wait) = mpsc::channel();
        let log = path.join("containerd.log");
        std::thread::spawn(move || {
            let mut file = std::fs::File::create(log).ok();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(file) = &mut file {
                    let _ = writeln!(file, "{line}");
                }
                if line.contains("containerd successfully booted") {
                    let _ = booted.send(());
                }
            }
        });
        let containerd = Self {
            child,
            dir,
            namespace: "sockbox-test".into(),
        };
        if wait.recv_timeout(TIMEOUT).is_err() {
            bail!("containerd did not boot:\n{}", containerd.log());
        }
        Ok(containerd)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    /// `ctr` against this containerd, in the test's namespace.
    fn ctr(&self) -> Command {
        let mut command = Command::new("ctr");
        command
            .arg("--address")
            .arg(self.dir.path().join("containerd.sock"))
            .args(["--namespace", &self.namespace]);
        command
    }

    /// Runs `ctr ARGS` to its end and returns its output; fails on a non-zero exit.
    fn ctr_ok(&self, args: &[&str]) -> Result<String> {
        let output = self.ctr().args(args).output()?;
        ensure!(
            output.status.success(),
            "ctr {args:?}: {}\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// `ctr run --rm --net-host` of `image` with the sockbox runtime, the annotations
    /// given and the guest's `args`.
    fn run(&self, image: &Image, id: &str, annotations: &[&str], args: &[&str]) -> Command {
        let mut command = self.ctr();
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
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // Whatever a failed test left running goes first, then containerd.
        if let Ok(list) = self.ctr_ok(&["task", "list", "--quiet"]) {
            for id in list.lines() {
                let _ = self.ctr_ok(&["task", "kill", "--signal", "SIGKILL", id]);
                let _ = self.ctr_ok(&["task", "delete", "--force", id]);
                let _ = self.ctr_ok(&["container", "delete", id]);
            }
        }
        for image in IMAGES {
            let _ = self.ctr_ok(&["image", "remove", image.name]);
        }
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        if let Ok(None) = self.child.wait_timeout(TIMEOUT) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // Snapshots containerd left mounted would keep the directory from going.
        let _ = Command::new("umount")
            .args(["--recursive", "--lazy"])
            .arg(self.dir.path().join("root"))
            .stderr(Stdio::null())
            .status();
    }
}

/// A file in an OCI image archive: its digest and size.
struct Blob {
    digest: String,
    size: usize,
}

/// Writes an OCI image archive (`ctr image import` reads it) of `image`, and returns
/// its path.
fn image_archive(dir: &Path, image: &Image) -> Result<PathBuf> {
    fn sha256(bytes: &[u8]) -> String {
        format!("sha256:{:x}", Sha256::digest(bytes))
    }
    let (layer, layer_type, diff_ids, platform) = if image.wasm_layer {
        let none: [String; 0] = [];
        (
            image.wasm.to_vec(),
            WASM_LAYER,
            none.to_vec(),
            ("wasm", "wasip1"),
        )
    } else {
        let mut layer = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(image.wasm.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        layer.append_data(&mut header, "sockbox-guest.wasm", image.wasm)?;
        let layer = layer.into_inner()?;
        let diff_id = sha256(&layer);
        (
            layer,
            "application/vnd.oci.image.layer.v1.tar",
            vec![diff_id],
            ("amd64", "linux"),
        )
    };
    let config = serde_json::json!({
        "architecture": platform.0,
        "os": platform.1,
        "config": { "Entrypoint": ["/sockbox-guest.wasm"] },
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    })
    .to_string();
    let mut blobs: Vec<(Blob, Vec<u8>)> = Vec::new();
    let mut add = |bytes: Vec<u8>| {
        let blob = Blob {
            digest: sha256(&bytes),
            size: bytes.len(),
        };
        let described = serde_json::json!({ "digest": blob.digest, "size": blob.size });
        blobs.push((blob, bytes));
        described
    };
    let mut layer_desc = add(layer);
    layer_desc["mediaType"] = layer_type.into();
    let mut config_desc = add(config.into_bytes());
    config_desc["mediaType"] = "application/vnd.oci.image.config.v1+json".into();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config_desc,
        "layers": [layer_desc],
    })
    .to_string();
    let mut manifest_desc = add(manifest.into_bytes());
    manifest_desc["mediaType"] = "application/vnd.oci.image.manifest.v1+json".into();
    manifest_desc["annotations"] = serde_json::json!({
        "io.containerd.image.name": image.name,
        "org.opencontainers.image.ref.name": "latest",
    });
    manifest_desc["platform"] = serde_json::json!({ "architecture": platform.0, "os": platform.1 });
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [manifest_desc],
    })
    .to_string();
    let path = dir.join(format!("{}.tar", image.name.replace(['/', ':'], "_")));
    let mut files = vec![
        (
            "oci-layout".to_owned(),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        ),
        ("index.json".to_owned(), index.into_bytes()),
    ];
    for (blob, bytes) in blobs {
        let hex = blob.digest.trim_start_matches("sha256:").to_owned();
        files.push((format!("blobs/sha256/{hex}"), bytes));
    }
    let mut archive = tar::Builder::new(std::fs::File::create(&path)?);
    for (name, bytes) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o444);
        header.set_mtime(0);
        header.set_cksum();
        archive.append_data(&mut header, name, bytes.as_slice())?;
    }
    archive.into_inner()?.sync_all()?;
    Ok(path)
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

/// One echo through `addr`.
fn echo(addr: SocketAddr, bytes: &[u8]) -> Result<Vec<u8>> {
    let mut conn = TcpStream::connect(addr)?;
    conn.set_read_timeout(Some(TIMEOUT))?;
    conn.write_all(bytes)?;
    conn.shutdown(Shutdown::Write)?;
    let mut echoed = Vec::new();
    conn.read_to_end(&mut echoed)?;
    Ok(echoed)
}

/// The whole path, for real: containerd, the images, the shim, annotations as policy,
/// for the guest's WASI 0.2 build in a tar layer and its 0.3 build in a wasm layer.
#[test]
fn containerd_runs_the_guest_under_its_annotations() -> Result<()> {
    let containerd = Containerd::start()?;
    let wasm_layers = unpacks_wasm_layers()?;
    for image in &IMAGES {
        if image.wasm_layer && !wasm_layers {
            println!(
                "{}: left out: this containerd cannot unpack an image with a wasm layer (1.6.25 or 1.7.7 and later can)",
                image.name
            );
            continue;
        }
        let archive = image_archive(containerd.dir.path(), image)?;
        let size = std::fs::metadata(&archive)?.len();
        println!("{}: image archive of {size} bytes", image.name);
        let archive = archive.to_str().context("a UTF-8 path")?;
        containerd.ctr_ok(&["image", "import", "--all-platforms", archive])?;
        serve_and_refuse(&containerd, image)
            .with_context(|| format!("{}\n--- containerd ---\n{}", image.name, containerd.log()))?;
    }
    Ok(())
}

/// A command exporting both `wasi:cli/run@0.2` (std's `main`) and `@0.3.0`, as Rust's
/// toolchain builds WASI 0.3 programs today, runs its 0.3 entry under the shim, as under
/// `sockbox run` and the harness.
#[test]
fn containerd_runs_the_0_3_entry_of_a_command_exporting_both() -> Result<()> {
    let containerd = Containerd::start()?;
    let image = Image {
        name: "sockbox.test/both-entries:latest",
        wasm: include_bytes!(env!("BOTH_ENTRIES_WASM")),
        wasm_layer: false,
    };
    let archive = image_archive(containerd.dir.path(), &image)?;
    let archive = archive.to_str().context("a UTF-8 path")?;
    containerd.ctr_ok(&["image", "import", "--all-platforms", archive])?;
    let (code, output) = Running::spawn(containerd.run(&image, "both", &[], &[]))?.finish()?;
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
    let server = Running::spawn(containerd.run(
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
    let server = Running::spawn(containerd.run(
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
    let (code, output) = Running::spawn(containerd.run(
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
    let (code, output) = Running::spawn(containerd.run(
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
    let (code, output) = Running::spawn(containerd.run(
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
