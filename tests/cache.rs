//! `sockbox run` keeps compiled components in its cache: one entry per component and
//! engine, reused on the next run, rebuilt when damaged, and none with `--no-cache`.

use std::fs::Permissions;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::Result;
use sockbox_host::runner::CACHE_DIR_ENV;

use crate::common::{Process, sockbox};

/// Runs `sockbox run [flags] -- help` with its cache in `dir`; returns its stderr.
fn run_help(dir: &Path, flags: &[&str]) -> Result<String> {
    let mut command = sockbox();
    command
        .env(CACHE_DIR_ENV, dir)
        .arg("run")
        .args(flags)
        .args(["--", "help"]);
    let finished = Process::run(command)?;
    assert_eq!(finished.status.code(), Some(0), "{finished}");
    assert!(
        finished.stdout.starts_with("usage: sockbox-guest"),
        "{finished}"
    );
    Ok(finished.stderr)
}

fn entries(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|entry| entry.map(|entry| entry.path()))
        .collect::<std::io::Result<_>>()?;
    found.sort();
    Ok(found)
}

/// The first run writes one entry, the second reuses it unchanged.
#[test]
fn a_compiled_component_is_cached_and_reused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let cache = dir.path().join("cache");
    run_help(&cache, &[])?;
    let written = entries(&cache)?;
    assert_eq!(written.len(), 1, "{written:?}");
    assert!(written[0].extension().is_some_and(|ext| ext == "cwasm"));
    let modified = std::fs::metadata(&written[0])?.modified()?;
    run_help(&cache, &[])?;
    assert_eq!(entries(&cache)?, written);
    assert_eq!(std::fs::metadata(&written[0])?.modified()?, modified);
    Ok(())
}

/// A damaged entry is not loaded: the component is compiled again and the entry
/// replaced.
#[test]
fn a_damaged_entry_is_rebuilt() -> Result<()> {
    let dir = tempfile::tempdir()?;
    run_help(dir.path(), &[])?;
    let entry = entries(dir.path())?.remove(0);
    std::fs::write(&entry, b"not a compiled component")?;
    run_help(dir.path(), &[])?;
    assert!(std::fs::metadata(&entry)?.len() > 100_000);
    Ok(())
}

/// `--no-cache` neither reads nor writes the cache.
#[test]
fn no_cache_writes_nothing() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let cache = dir.path().join("cache");
    run_help(&cache, &["--no-cache"])?;
    assert_eq!(entries(&cache)?, Vec::<PathBuf>::new());
    Ok(())
}

/// Loading an entry runs its code: a cache directory others may write is not used
/// (one warning line, nothing read or written there), and an entry others may write is
/// not loaded but replaced with one only the user can write.
#[test]
fn a_cache_others_can_write_is_not_trusted() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let open = dir.path().join("open");
    std::fs::create_dir(&open)?;
    std::fs::set_permissions(&open, Permissions::from_mode(0o777))?;
    let stderr = run_help(&open, &[])?;
    assert_eq!(
        stderr,
        format!(
            "sockbox: warning: not using the compile cache {}: its group or others may write it (mode 777); compiling instead\n",
            open.display()
        )
    );
    assert_eq!(entries(&open)?, Vec::<PathBuf>::new());

    let cache = dir.path().join("cache");
    assert_eq!(run_help(&cache, &[])?, "");
    let mode =
        |path: &Path| -> Result<u32> { Ok(std::fs::metadata(path)?.permissions().mode() & 0o777) };
    assert_eq!(mode(&cache)?, 0o700, "sockbox makes its cache private");
    let entry = entries(&cache)?.remove(0);
    assert_eq!(mode(&entry)?, 0o600);
    std::fs::set_permissions(&entry, Permissions::from_mode(0o666))?;
    assert_eq!(run_help(&cache, &[])?, "");
    assert_eq!(mode(&entry)?, 0o600, "replaced, not loaded");
    Ok(())
}
