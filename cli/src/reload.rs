//! `sockbox run --policy FILE`: FILE read again on `SIGHUP`, and on change with
//! `--watch-policy`. A file that parses replaces the policy for every decision from
//! then on; one that does not leaves the old policy and is one line on stderr. Both
//! are audit lines (`"use":"policy-reload"`, the file's sha256).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result};
use notify::{RecursiveMode, Watcher as _};
use sha2::{Digest as _, Sha256};
use sockbox_host::PolicyHandle;
use tokio::sync::mpsc;

use crate::one_line;
use crate::policy::PolicyArgs;

/// How long the file must be left alone before it is read.
const SETTLE: Duration = Duration::from_millis(100);

/// Why the file is read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    /// `SIGHUP`: read it whatever it holds.
    Signal,
    /// The watcher saw it change: read it if its bytes changed.
    Change,
}

/// What reloads the policy: the signal, and the file watcher if asked for.
pub(crate) struct Reloader {
    file: PathBuf,
    handle: PolicyHandle,
    /// Keeps the watcher alive; it sends on `changes`.
    _watcher: Option<notify::RecommendedWatcher>,
    changes: mpsc::UnboundedReceiver<Trigger>,
    /// The sha256 of the file in force, to skip the several events one save makes.
    in_force: String,
}

impl Reloader {
    /// Reloads `handle`'s policy from `args` (its `--policy` file and flags) on
    /// `SIGHUP`, and when `watch` on each change of the file. Call inside the runtime.
    pub(crate) fn start(args: &PolicyArgs, handle: PolicyHandle, watch: bool) -> Result<Self> {
        let file = args
            .file()
            .context("reloading needs --policy FILE")?
            .to_path_buf();
        let (send, changes) = mpsc::unbounded_channel();
        let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("listen for SIGHUP")?;
        let on_signal = send.clone();
        tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                if on_signal.send(Trigger::Signal).is_err() {
                    break;
                }
            }
        });
        let watcher = if watch {
            Some(watch_file(&file, send)?)
        } else {
            None
        };
        let in_force = std::fs::read(&file)
            .map(|bytes| sha256(&bytes))
            .unwrap_or_default();
        Ok(Self {
            file,
            handle,
            _watcher: watcher,
            changes,
            in_force,
        })
    }

    /// Reloads on every signal or change, until the run ends (the task is dropped).
    /// Events that come within [`SETTLE`] of each other are one reload: an editor's
    /// save is several, and a file written in place is read once it is whole.
    pub(crate) async fn serve(mut self, args: PolicyArgs) {
        while let Some(first) = self.changes.recv().await {
            let mut signalled = first == Trigger::Signal;
            while let Ok(Some(next)) = tokio::time::timeout(SETTLE, self.changes.recv()).await {
                signalled |= next == Trigger::Signal;
            }
            self.reload(&args, !signalled);
        }
    }

    /// Reads the file and puts its policy in force, or says in one line why not.
    /// `skip_same`: a file whose bytes are those in force is not reloaded again.
    fn reload(&mut self, args: &PolicyArgs, skip_same: bool) {
        let source = self.file.display().to_string();
        let bytes = match std::fs::read(&self.file) {
            Ok(bytes) => bytes,
            Err(err) => {
                let why = format!("cannot read {source}: {err}");
                eprintln!("sockbox: policy not reloaded: {why}; the old policy stays");
                self.handle.refuse(&source, "", &why);
                return;
            }
        };
        let digest = sha256(&bytes);
        if skip_same && digest == self.in_force {
            return;
        }
        let built = std::str::from_utf8(&bytes)
            .map_err(|_| anyhow::anyhow!("{source}: not UTF-8"))
            .and_then(|text| args.build_from_text(text, &source));
        match built.and_then(|policy| Ok(self.handle.reload(policy, &source, &digest)?)) {
            Ok(()) => {
                eprintln!("sockbox: policy reloaded from {source} (sha256 {digest})");
                self.in_force = digest;
            }
            Err(err) => {
                let why = one_line(&format!("{err:#}"));
                eprintln!("sockbox: policy not reloaded: {why}; the old policy stays");
                self.handle.refuse(&source, &digest, &why);
            }
        }
    }
}

/// Watches `file`'s directory (editors replace a file by renaming a new one over it)
/// and sends on `changes` for every event that names the file.
fn watch_file(
    file: &Path,
    changes: mpsc::UnboundedSender<Trigger>,
) -> Result<notify::RecommendedWatcher> {
    let name = file.file_name().map(ToOwned::to_owned);
    let dir = match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if event.kind.is_access() {
            return;
        }
        if event
            .paths
            .iter()
            .any(|path| path.file_name() == name.as_deref())
        {
            let _ = changes.send(Trigger::Change);
        }
    })
    .context("watch the policy file")?;
    watcher
        .watch(&dir, RecursiveMode::NonRecursive)
        .with_context(|| format!("watch {}", dir.display()))?;
    Ok(watcher)
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}
