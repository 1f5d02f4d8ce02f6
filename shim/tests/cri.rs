//! The shim as Kubernetes drives it: kubelet's calls, through CRI, to a private
//! containerd (its own root, state and socket in a temporary directory) whose CRI
//! plugin registers the runtime exactly as docs/kubernetes.md's stanza says. The test
//! is kubelet: it runs pod sandboxes with runtime handler `sockbox`, host network and
//! the pods' `sockbox.io/…` annotations, creates and starts containers of the built-in
//! guest in them, reads their logs where CRI put them, and stops and removes the pods.
//! The pod sandbox's pause image is built here: a static binary that waits to be
//! killed. Needs root and Debian's `containerd` (`.ci/run` installs it).

#[expect(
    dead_code,
    reason = "images with a wasm layer are the ctr test's alone"
)]
mod common;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use hyper_util::rt::TokioIo;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{
    ContainerConfig, ContainerMetadata, ContainerState, ContainerStatusRequest,
    CreateContainerRequest, ImageSpec, LinuxPodSandboxConfig, LinuxSandboxSecurityContext,
    ListContainersRequest, ListPodSandboxRequest, NamespaceMode, NamespaceOption, PodSandboxConfig,
    PodSandboxMetadata, RemovePodSandboxRequest, RunPodSandboxRequest, StartContainerRequest,
    StopPodSandboxRequest,
};
use tonic::transport::{Channel, Endpoint, Uri};

use common::{Containerd, Content, TIMEOUT, echo};

/// The pause image the CRI plugin runs each pod's sandbox from.
const PAUSE_IMAGE: &str = "sockbox.test/pause:1";
/// The built-in guest, its entrypoint a file of the image.
const GUEST_IMAGE: &str = "sockbox.test/guest:latest";
/// Two components of the examples' zoo, which sockbox did not write: WASI 0.2 with
/// `wstd`, and WASI 0.3.
const ZOO: [(&str, &str, &[u8]); 2] = [
    (
        "sockbox.test/wstd-echo:1",
        "wstd-echo.wasm",
        include_bytes!(env!("WSTD_ECHO_WASM")),
    ),
    (
        "sockbox.test/p3-echo:1",
        "p3-echo.wasm",
        include_bytes!(env!("P3_ECHO_WASM")),
    ),
];

/// containerd's CRI plugin, the runtime registered as docs/kubernetes.md says (and
/// runc, which the plugin wants as its default). No CNI: every pod here is on the
/// host's network, as the CRI plugin allows without one. `restrict_oom_score_adj`:
/// this machine withholds `CAP_SYS_RESOURCE` even from root, so the pause container's
/// OOM score (-998 by default) cannot go below containerd's own.
const CRI: &str = r#"[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "sockbox.test/pause:1"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.sockbox]
      runtime_type = "io.containerd.sockbox.v1"
      pod_annotations = ["sockbox.io/*"]
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{dir}/cni/bin"
    conf_dir = "{dir}/cni/conf"
"#;

/// A CRI client of the test's containerd, as kubelet's.
struct Cri {
    runtime: tokio::runtime::Runtime,
    client: RuntimeServiceClient<Channel>,
    /// Where pods' logs go.
    logs: PathBuf,
}

/// A pod the test ran: its id and the configuration containers are created with.
struct Pod {
    id: String,
    config: PodSandboxConfig,
}

impl Cri {
    fn connect(containerd: &Containerd) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let socket = containerd.dir.path().join("containerd.sock");
        let channel = runtime.block_on(async {
            // The URI is not used: every connection is to the Unix socket.
            Endpoint::try_from("http://[::]:0")?
                .connect_with_connector(tower::service_fn(move |_: Uri| {
                    let socket = socket.clone();
                    async move {
                        let stream = tokio::net::UnixStream::connect(socket).await?;
                        Ok::<_, std::io::Error>(TokioIo::new(stream))
                    }
                }))
                .await
        })?;
        let logs = containerd.dir.path().join("pods");
        std::fs::create_dir_all(&logs)?;
        Ok(Self {
            runtime,
            client: RuntimeServiceClient::new(channel),
            logs,
        })
    }

    /// `RunPodSandbox` of pod `name` on the host's network, runtime handler `sockbox`,
    /// with `annotations`.
    fn run_pod(&mut self, name: &str, annotations: &[(&str, &str)]) -> Result<Pod> {
        let log_directory = self.logs.join(name);
        std::fs::create_dir_all(&log_directory)?;
        let config = PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.into(),
                uid: format!("uid-{name}"),
                namespace: "sockbox-test".into(),
                attempt: 0,
            }),
            hostname: name.into(),
            log_directory: log_directory.display().to_string(),
            annotations: annotations
                .iter()
                .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
                .collect::<HashMap<_, _>>(),
            linux: Some(LinuxPodSandboxConfig {
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(NamespaceOption {
                        network: NamespaceMode::Node.into(),
                        ..NamespaceOption::default()
                    }),
                    ..LinuxSandboxSecurityContext::default()
                }),
                ..LinuxPodSandboxConfig::default()
            }),
            ..PodSandboxConfig::default()
        };
        let request = RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: "sockbox".into(),
        };
        let id = self
            .runtime
            .block_on(self.client.run_pod_sandbox(request))
            .with_context(|| format!("RunPodSandbox {name}"))?
            .into_inner()
            .pod_sandbox_id;
        Ok(Pod { id, config })
    }

    /// `CreateContainer` and `StartContainer` of the built-in guest, `args` its
    /// arguments, in `pod`; returns its id, or the error `StartContainer` gave.
    fn start_container(&mut self, pod: &Pod, name: &str, args: &[&str]) -> Result<String> {
        self.start_image(pod, name, GUEST_IMAGE, "/sockbox-guest.wasm", args)
    }

    /// `CreateContainer` and `StartContainer` of `image`, running `command` with
    /// `args`, in `pod`.
    fn start_image(
        &mut self,
        pod: &Pod,
        name: &str,
        image: &str,
        command: &str,
        args: &[&str],
    ) -> Result<String> {
        let config = ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: name.into(),
                attempt: 0,
            }),
            image: Some(ImageSpec {
                image: image.into(),
                ..ImageSpec::default()
            }),
            command: vec![command.into()],
            args: args.iter().map(|&arg| arg.to_owned()).collect(),
            log_path: format!("{name}.log"),
            ..ContainerConfig::default()
        };
        let request = CreateContainerRequest {
            pod_sandbox_id: pod.id.clone(),
            config: Some(config),
            sandbox_config: Some(pod.config.clone()),
        };
        let id = self
            .runtime
            .block_on(self.client.create_container(request))
            .with_context(|| format!("CreateContainer {name}"))?
            .into_inner()
            .container_id;
        let request = StartContainerRequest {
            container_id: id.clone(),
        };
        self.runtime
            .block_on(self.client.start_container(request))
            .with_context(|| format!("StartContainer {name}"))?;
        Ok(id)
    }

    /// Waits for container `id` to exit; returns its exit code.
    fn exit_code(&mut self, id: &str) -> Result<i32> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let request = ContainerStatusRequest {
                container_id: id.into(),
                verbose: false,
            };
            let status = self
                .runtime
                .block_on(self.client.container_status(request))?
                .into_inner()
                .status
                .context("no status")?;
            if status.state == i32::from(ContainerState::ContainerExited) {
                return Ok(status.exit_code);
            }
            ensure!(Instant::now() < deadline, "container {id} did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `StopPodSandbox` and `RemovePodSandbox` of `pod`.
    fn remove_pod(&mut self, pod: &Pod) -> Result<()> {
        let stop = StopPodSandboxRequest {
            pod_sandbox_id: pod.id.clone(),
        };
        self.runtime
            .block_on(self.client.stop_pod_sandbox(stop))
            .context("StopPodSandbox")?;
        let remove = RemovePodSandboxRequest {
            pod_sandbox_id: pod.id.clone(),
        };
        self.runtime
            .block_on(self.client.remove_pod_sandbox(remove))
            .context("RemovePodSandbox")?;
        Ok(())
    }

    /// How many pods and containers CRI knows.
    fn counts(&mut self) -> Result<(usize, usize)> {
        let pods = self
            .runtime
            .block_on(
                self.client
                    .list_pod_sandbox(ListPodSandboxRequest { filter: None }),
            )?
            .into_inner()
            .items
            .len();
        let containers = self
            .runtime
            .block_on(
                self.client
                    .list_containers(ListContainersRequest { filter: None }),
            )?
            .into_inner()
            .containers
            .len();
        Ok((pods, containers))
    }
}

/// The lines container `name` of `pod` wrote, from its CRI log (`TIME STREAM TAG
/// LINE` each).
fn log_lines(pod: &Pod, name: &str) -> Vec<String> {
    let path = Path::new(&pod.config.log_directory).join(format!("{name}.log"));
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| Some(line.splitn(4, ' ').nth(3)?.to_owned()))
        .collect()
}

/// Waits for `listening on ADDR` in the log of container `name`; returns ADDR.
fn listening_addr(pod: &Pod, name: &str) -> Result<SocketAddr> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(addr) = log_lines(pod, name)
            .iter()
            .find_map(|line| sockbox_host::harness::parse_listening(line))
        {
            return addr.map_err(anyhow::Error::msg);
        }
        ensure!(
            Instant::now() < deadline,
            "no `listening on` in {name}'s log: {:?}",
            log_lines(pod, name)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Builds the pause binary (a static executable) and writes the pause image's archive.
fn pause_archive(dir: &Path) -> Result<PathBuf> {
    let binary = dir.join("pause");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cri/pause.rs");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let output = Command::new(rustc)
        .args([
            "--edition",
            "2024",
            "-O",
            "-C",
            "target-feature=+crt-static",
        ])
        .args(["-C", "strip=symbols", "-o"])
        .arg(&binary)
        .arg(source)
        .output()?;
    ensure!(
        output.status.success(),
        "rustc pause.rs: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let pause = std::fs::read(&binary)?;
    common::image_archive(
        dir,
        PAUSE_IMAGE,
        &Content::Files(vec![("pause", &pause, 0o755)]),
        &["/pause"],
    )
}

/// A node: containerd with its CRI plugin, the pause image and the guest's imported.
fn node() -> Result<Containerd> {
    let containerd = Containerd::start(CRI, "k8s.io")?;
    let dir = containerd.dir.path();
    containerd.import(&pause_archive(dir)?)?;
    let guest = Content::Files(vec![(
        "sockbox-guest.wasm",
        sockbox_host::GUEST_WASM,
        0o644,
    )]);
    containerd.import(&common::image_archive(
        dir,
        GUEST_IMAGE,
        &guest,
        &["/sockbox-guest.wasm"],
    )?)?;
    for (image, file, wasm) in ZOO {
        let content = Content::Files(vec![(file, wasm, 0o644)]);
        let entrypoint = format!("/{file}");
        containerd.import(&common::image_archive(
            dir,
            image,
            &content,
            &[&entrypoint],
        )?)?;
    }
    Ok(containerd)
}

/// Pods as kubelet runs them: one whose annotations let its echo listen and serve,
/// and refuse its second container's dial; one with no annotations, whose container
/// has no network; one whose malformed annotation fails its container in one line; one
/// of two components of the examples' zoo, each serving.
/// Then every pod is stopped and removed, and nothing of them is left.
#[test]
fn kubelet_s_calls_run_pods_under_their_annotations() -> Result<()> {
    let containerd = node()?;
    let mut cri = Cri::connect(&containerd)?;
    let result = pods(&mut cri);
    result.with_context(|| format!("--- containerd ---\n{}", containerd.log()))
}

fn pods(cri: &mut Cri) -> Result<()> {
    // Nobody may reach this listener: any connection to it is a policy's failure.
    let bystander = TcpListener::bind("127.0.0.1:0")?;
    bystander.set_nonblocking(true)?;
    let forbidden = bystander.local_addr()?.to_string();

    // A pod allowed to listen on loopback and to dial one other port: its echo serves,
    // its second container's dial to the bystander is refused.
    let started = Instant::now();
    let pod = cri.run_pod(
        "served",
        &[
            ("sockbox.io/allow-listen", "tcp://127.0.0.1:*"),
            ("sockbox.io/allow", "tcp://127.0.0.1:1"),
            ("not-sockbox.io/ignored", "x"),
        ],
    )?;
    let echo_id = cri.start_container(&pod, "echo", &["echo", "127.0.0.1:0"])?;
    let addr = listening_addr(&pod, "echo")?;
    println!("RunPodSandbox to `listening on`: {:?}", started.elapsed());
    ensure!(echo(addr, b"through CRI")? == b"through CRI");
    let dial = cri.start_container(&pod, "dial", &["dial", &forbidden])?;
    let code = cri.exit_code(&dial)?;
    let lines = log_lines(&pod, "dial");
    ensure!(code == 1, "dial exited {code}: {lines:?}");
    ensure!(
        lines.iter().any(|line| line.contains("access denied")),
        "{lines:?}"
    );
    let denial = format!("sockbox: denied tcp connect to {forbidden}");
    ensure!(
        lines.iter().any(|line| line.starts_with(&denial)),
        "{lines:?}"
    );
    // The echo still serves, in the same shim.
    ensure!(echo(addr, b"still")? == b"still");
    let _ = echo_id;
    // The pod's pause, a Linux container the shim runs too, has no way into the node's
    // compile cache, which only sockbox's code in a component's container reaches.
    let cache = cri.logs.with_file_name("cache");
    let pauses = pause_descriptors()?;
    ensure!(
        pauses.iter().all(|target| !target.starts_with(&cache)),
        "a pause process holds {pauses:?}"
    );

    // A pod with no annotations: no network at all.
    let bare = cri.run_pod("bare", &[])?;
    let dial = cri.start_container(&bare, "dial", &["dial", &forbidden])?;
    let code = cri.exit_code(&dial)?;
    let lines = log_lines(&bare, "dial");
    ensure!(code == 1, "dial exited {code}: {lines:?}");
    ensure!(
        lines.iter().any(|line| line.starts_with(&denial)),
        "{lines:?}"
    );
    ensure!(
        bystander.accept().is_err(),
        "a denied dial reached the bystander"
    );

    // A malformed annotation: the container fails, its log one line saying why.
    let broken = cri.run_pod("broken", &[("sockbox.io/allow", "tcp://10.0.0.0/33:80")])?;
    let failed = match cri.start_container(&broken, "dial", &["dial", &forbidden]) {
        Ok(id) => format!("exit {}", cri.exit_code(&id)?),
        Err(err) => format!("{err:#}"),
    };
    let lines = log_lines(&broken, "dial");
    println!("malformed annotation: {failed}; log: {lines:?}");
    ensure!(
        lines.len() == 1
            && lines[0].starts_with("sockbox: annotation sockbox.io/allow: invalid rule"),
        "{failed}: {lines:?}"
    );

    // Components sockbox did not write, in one pod: a WASI 0.2 one with `wstd`, and a
    // WASI 0.3 one; each serves.
    let zoo = cri.run_pod("zoo", &[("sockbox.io/allow-listen", "tcp://127.0.0.1:*")])?;
    for ((image, file, _), args) in ZOO
        .iter()
        .zip([&["127.0.0.1:0"][..], &["tcp", "127.0.0.1:0"]])
    {
        let name = file.trim_end_matches(".wasm");
        cri.start_image(&zoo, name, image, &format!("/{file}"), args)?;
        let addr = listening_addr(&zoo, name)?;
        ensure!(echo(addr, b"zoo")? == b"zoo", "{name}");
    }

    // Stop and remove every pod: nothing of them is left.
    for pod in [&pod, &bare, &broken, &zoo] {
        cri.remove_pod(pod)?;
    }
    let counts = cri.counts()?;
    ensure!(counts == (0, 0), "pods and containers left: {counts:?}");
    ensure!(
        bystander.accept().is_err(),
        "a denied dial reached the bystander"
    );
    if let Some(left) = leftovers(cri)? {
        bail!("left behind: {left}");
    }
    Ok(())
}

/// A benchmark, run by hand (`cargo test --release --features
/// containerd-shim-sockbox/shim --test cri -- --ignored --nocapture`): 100 pods of one
/// echo container each, started one after another through CRI and each echoed through;
/// their start-up (`RunPodSandbox` to `listening on`), the memory of their processes,
/// and the node's; then all stopped and removed, and nothing left.
#[test]
#[ignore = "a benchmark, run by hand: docs/kubernetes.md's sizing figures"]
fn a_hundred_pods() -> Result<()> {
    const PODS: usize = 100;
    let containerd = node()?;
    let mut cri = Cri::connect(&containerd)?;
    let available_before = mem_available()?;
    let mut pods = Vec::new();
    let mut start_ups = Vec::new();
    for n in 0..PODS {
        let started = Instant::now();
        let pod = cri.run_pod(
            &format!("echo-{n}"),
            &[("sockbox.io/allow-listen", "tcp://127.0.0.1:*")],
        )?;
        cri.start_container(&pod, "echo", &["echo", "127.0.0.1:0"])?;
        let addr = listening_addr(&pod, "echo")?;
        start_ups.push(started.elapsed());
        ensure!(echo(addr, b"pod")? == b"pod", "pod {n}");
        pods.push((pod, addr));
    }
    // Every pod still serves once all are up.
    for (pod, addr) in &pods {
        ensure!(echo(*addr, b"again")? == b"again", "{}", pod.id);
    }
    let available_after = mem_available()?;
    let memory = processes_memory(containerd.dir.path())?;
    start_ups.sort();
    let percentile = |p: usize| start_ups[(start_ups.len() * p / 100).min(start_ups.len() - 1)];
    println!(
        "{PODS} pods: start-up p50 {:?}, p99 {:?}, max {:?}",
        percentile(50),
        percentile(99),
        start_ups[start_ups.len() - 1]
    );
    for (kind, (count, rss, pss)) in &memory {
        println!(
            "{kind}: {count} processes, RSS {:.1} MiB each, PSS {:.1} MiB each",
            *rss as f64 / f64::from(*count) / 1024.0,
            *pss as f64 / f64::from(*count) / 1024.0
        );
    }
    let (pss, processes) = memory.iter().fold((0, 0), |(pss, count), (_, kind)| {
        (pss + kind.2, count + kind.0)
    });
    println!(
        "a pod: {} processes, PSS {:.1} MiB together",
        processes as usize / PODS,
        pss as f64 / 1024.0 / PODS as f64
    );
    println!(
        "node: MemAvailable down {:.0} MiB for {PODS} pods ({:.1} MiB a pod)",
        (available_before - available_after) as f64 / 1024.0,
        (available_before - available_after) as f64 / 1024.0 / PODS as f64
    );
    let stopping = Instant::now();
    for (pod, _) in &pods {
        cri.remove_pod(pod)?;
    }
    println!(
        "stopped and removed {PODS} pods in {:?}",
        stopping.elapsed()
    );
    let counts = cri.counts()?;
    ensure!(counts == (0, 0), "pods and containers left: {counts:?}");
    if let Some(left) = leftovers(&cri)? {
        bail!("left behind: {left}");
    }
    Ok(())
}

/// The node's `MemAvailable`, in KiB.
fn mem_available() -> Result<i64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo")?;
    meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemAvailable:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .context("MemAvailable")
}

/// Processes, their total RSS and total PSS in KiB.
type Memory = (u32, i64, i64);

/// The memory of the shims of the containerd in `dir`, the processes forked from them
/// (runwasi's zygote, and each container's process, the component's running sockbox)
/// and the pods' pauses: by kind, how many, total RSS and total PSS in KiB.
fn processes_memory(dir: &Path) -> Result<Vec<(&'static str, Memory)>> {
    let dir = dir.display().to_string();
    let mut kinds: Vec<(&'static str, Memory)> = vec![
        ("shim", (0, 0, 0)),
        (
            "forked from a shim (its zygote, each container's process)",
            (0, 0, 0),
        ),
        ("pause", (0, 0, 0)),
    ];
    for process in std::fs::read_dir("/proc")?.filter_map(Result::ok) {
        let cmdline = std::fs::read(process.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let is_shim = |path: &Path| {
            std::fs::read_link(path.join("exe"))
                .is_ok_and(|exe| exe.ends_with("containerd-shim-sockbox-v1"))
        };
        // A component's container is forked from its shim (no exec): the shim's
        // program, its parent a shim too.
        let parent = std::fs::read_to_string(process.path().join("stat"))
            .ok()
            .and_then(|stat| Some(stat.rsplit_once(") ")?.1.split(' ').nth(1)?.to_owned()))
            .map(|ppid| PathBuf::from("/proc").join(ppid));
        let kind = if cmdline == "/pause " {
            2
        } else if is_shim(&process.path()) && cmdline.contains(&dir) {
            if parent.as_deref().is_some_and(is_shim) {
                1
            } else {
                0
            }
        } else {
            continue;
        };
        let rollup = std::fs::read_to_string(process.path().join("smaps_rollup"))?;
        let field = |name: &str| -> i64 {
            rollup
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0)
        };
        let entry = &mut kinds[kind].1;
        entry.0 += 1;
        entry.1 += field("Rss:");
        entry.2 += field("Pss:");
    }
    Ok(kinds)
}

/// What the descriptors of every pause process on the node name, one list for all.
fn pause_descriptors() -> Result<Vec<PathBuf>> {
    let mut targets = Vec::new();
    let mut pauses = 0;
    for process in std::fs::read_dir("/proc")?.filter_map(Result::ok) {
        let cmdline = std::fs::read(process.path().join("cmdline")).unwrap_or_default();
        if cmdline != b"/pause\0" {
            continue;
        }
        pauses += 1;
        for fd in std::fs::read_dir(process.path().join("fd"))?.filter_map(Result::ok) {
            targets.extend(std::fs::read_link(fd.path()));
        }
    }
    ensure!(pauses > 0, "no pause process");
    Ok(targets)
}

/// What the removed pods left on the node: shim processes of this containerd, mounts
/// under its directory, or state directories of tasks and sandboxes.
fn leftovers(cri: &Cri) -> Result<Option<String>> {
    let dir = cri.logs.parent().context("the test's directory")?;
    let state = dir.join("state");
    let mounted = common::mounts_under(&state);
    let shims = Command::new("pgrep")
        .args([
            "-f",
            &format!("containerd-shim-sockbox-v1 .*{}", dir.display()),
        ])
        .output()?;
    let shims = String::from_utf8_lossy(&shims.stdout).trim().to_owned();
    let directories: Vec<PathBuf> = [
        "io.containerd.runtime.v2.task/k8s.io",
        "io.containerd.grpc.v1.cri/sandboxes",
        "io.containerd.grpc.v1.cri/containers",
    ]
    .iter()
    .flat_map(|kind| std::fs::read_dir(state.join(kind)).into_iter().flatten())
    .filter_map(|entry| Some(entry.ok()?.path()))
    .collect();
    Ok(
        (!mounted.is_empty() || !shims.is_empty() || !directories.is_empty()).then(|| {
            format!("mounts {mounted:?}; shim processes {shims:?}; state {directories:?}")
        }),
    )
}
