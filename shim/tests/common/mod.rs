//! What the shim's tests under a real containerd share: a private containerd, OCI
//! image archives made here, an echo.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use sha2::{Digest as _, Sha256};
use wait_timeout::ChildExt as _;

/// How long any one step may take.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// The shim cargo built for this test.
pub const SHIM: &str = env!("CARGO_BIN_EXE_containerd-shim-sockbox-v1");

/// A containerd of the test's own, stopped (and its state removed) when dropped.
pub struct Containerd {
    child: Child,
    pub dir: tempfile::TempDir,
    pub namespace: String,
}

impl Containerd {
    /// Starts containerd with everything under a fresh temporary directory (the
    /// shim's compile cache too, `cache`), the shim's directory first on its PATH, and
    /// `plugins` (TOML: what to add to the configuration, `{dir}` standing for that
    /// directory), and waits for it to say it booted. `ctr` works in `namespace`.
    pub fn start(plugins: &str, namespace: &str) -> Result<Self> {
        Self::start_with_cache(plugins, namespace, "cache")
    }

    /// [`Containerd::start`], the shim's compile cache at `cache` in the directory.
    pub fn start_with_cache(plugins: &str, namespace: &str, cache: &str) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let path = dir.path();
        let config = path.join("config.toml");
        std::fs::write(
            &config,
            format!(
                "version = 2\n\
                 root = \"{root}\"\n\
                 state = \"{state}\"\n\
                 [grpc]\n  address = \"{sock}\"\n\
                 [ttrpc]\n  address = \"{sock}.ttrpc\"\n\
                 {plugins}",
                root = path.join("root").display(),
                state = path.join("state").display(),
                sock = path.join("containerd.sock").display(),
                plugins = plugins.replace("{dir}", &path.display().to_string()),
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
            // The shim's node-wide compile cache, in here rather than on the node.
            .env("SOCKBOX_SHIM_CACHE_DIR", path.join(cache))
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
            namespace: namespace.into(),
        };
        if wait.recv_timeout(TIMEOUT).is_err() {
            bail!("containerd did not boot:\n{}", containerd.log());
        }
        Ok(containerd)
    }

    /// The shim's compile cache's entries: names and inode numbers.
    pub fn cache_entries(&self) -> Vec<(String, u64)> {
        use std::os::unix::fs::MetadataExt as _;
        let mut entries: Vec<(String, u64)> = std::fs::read_dir(self.dir.path().join("cache"))
            .into_iter()
            .flatten()
            .filter_map(|entry| {
                let entry = entry.ok()?;
                let inode = entry.metadata().ok()?.ino();
                Some((entry.file_name().to_string_lossy().into_owned(), inode))
            })
            .collect();
        entries.sort();
        entries
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    /// `ctr` against this containerd, in the test's namespace.
    pub fn ctr(&self) -> Command {
        let mut command = Command::new("ctr");
        command
            .arg("--address")
            .arg(self.dir.path().join("containerd.sock"))
            .args(["--namespace", &self.namespace]);
        command
    }

    /// Runs `ctr ARGS` to its end and returns its output; fails on a non-zero exit.
    pub fn ctr_ok(&self, args: &[&str]) -> Result<String> {
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

    /// Imports the image archive at `archive` (`image_archive`'s).
    pub fn import(&self, archive: &Path) -> Result<()> {
        let archive = archive.to_str().context("a UTF-8 path")?;
        self.ctr_ok(&["image", "import", "--all-platforms", archive])?;
        Ok(())
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
        if let Ok(list) = self.ctr_ok(&["image", "list", "--quiet"]) {
            for image in list.lines() {
                let _ = self.ctr_ok(&["image", "remove", image]);
            }
        }
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        if let Ok(None) = self.child.wait_timeout(TIMEOUT) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // What a failed test left mounted (snapshots, a pod's shm) would keep the
        // directory from going: every mount under it goes, the deepest first.
        let mut under = mounts_under(self.dir.path());
        under.sort_by_key(|point| std::cmp::Reverse(point.len()));
        for point in under {
            let _ = Command::new("umount")
                .arg("--lazy")
                .arg(point)
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// The mount points under `dir`, from this process's mount table.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .filter(|point| Path::new(point).starts_with(dir))
        .map(str::to_owned)
        .collect()
}

/// A file in an OCI image archive: its digest and size.
struct Blob {
    digest: String,
    size: usize,
}

/// What an image holds.
pub enum Content<'a> {
    /// Files in one tar layer: path, bytes, mode.
    Files(Vec<(&'a str, &'a [u8], u32)>),
    /// A component as a layer of runwasi's media type, no files at all.
    WasmLayer(&'a [u8]),
}

/// runwasi's media type for a component layer.
pub const WASM_LAYER: &str = "application/vnd.bytecodealliance.wasm.component.layer.v0+wasm";

/// Writes an OCI image archive (`ctr image import` reads it) of the image `name`
/// holding `content`, run as `entrypoint`, into `dir`, and returns its path.
pub fn image_archive(
    dir: &Path,
    name: &str,
    content: &Content<'_>,
    entrypoint: &[&str],
) -> Result<PathBuf> {
    fn sha256(bytes: &[u8]) -> String {
        format!("sha256:{:x}", Sha256::digest(bytes))
    }
    let (layer, layer_type, diff_ids, platform) = match content {
        Content::WasmLayer(wasm) => {
            let none: [String; 0] = [];
            (wasm.to_vec(), WASM_LAYER, none.to_vec(), ("wasm", "wasip1"))
        }
        Content::Files(files) => {
            let mut layer = tar::Builder::new(Vec::new());
            for (path, bytes, mode) in files {
                let mut header = tar::Header::new_gnu();
                header.set_size(bytes.len() as u64);
                header.set_mode(*mode);
                header.set_mtime(0);
                header.set_cksum();
                layer.append_data(&mut header, path, *bytes)?;
            }
            let layer = layer.into_inner()?;
            let diff_id = sha256(&layer);
            (
                layer,
                "application/vnd.oci.image.layer.v1.tar",
                vec![diff_id],
                ("amd64", "linux"),
            )
        }
    };
    let config = serde_json::json!({
        "architecture": platform.0,
        "os": platform.1,
        "config": { "Entrypoint": entrypoint },
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
        "io.containerd.image.name": name,
        "org.opencontainers.image.ref.name": "latest",
    });
    manifest_desc["platform"] = serde_json::json!({ "architecture": platform.0, "os": platform.1 });
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [manifest_desc],
    })
    .to_string();
    let path = dir.join(format!("{}.tar", name.replace(['/', ':'], "_")));
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

/// One echo through `addr`.
pub fn echo(addr: SocketAddr, bytes: &[u8]) -> Result<Vec<u8>> {
    let mut conn = TcpStream::connect(addr)?;
    conn.set_read_timeout(Some(TIMEOUT))?;
    conn.write_all(bytes)?;
    conn.shutdown(Shutdown::Write)?;
    let mut echoed = Vec::new();
    conn.read_to_end(&mut echoed)?;
    Ok(echoed)
}
