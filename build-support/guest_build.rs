//! Building guest crates for wasm32-wasip2 from a build script: shared by `host/`'s
//! build script (the built-in guest) and `tests/`'s (the test components).
//!
//! Each build gets its own target directory under `OUT_DIR` (a nested cargo must not
//! wait on the outer one's lock), and none of the outer build's compiler flags or
//! wrappers: those are for the host target, not for wasm.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const TARGET: &str = "wasm32-wasip2";

/// Names a rustup toolchain to build the guests with instead of the outer build's.
const TOOLCHAIN_ENV: &str = "SOCKBOX_GUEST_TOOLCHAIN";

/// The workspace root, one level above the crate whose build script this is.
pub fn workspace_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    manifest_dir
        .parent()
        .expect("the crate sits in the workspace root")
        .to_path_buf()
}

/// Builds what `selection` names (cargo's `-p`, `--features`, `--example` arguments) in
/// release for wasm32-wasip2, in target directory `name` under `OUT_DIR`, reruns the
/// build script when any of `sources` (relative to the workspace root) changes, and
/// returns the directory the `.wasm` files are in (examples in its `examples/`).
///
/// Builds whose features differ need their own `name`: a crate built again with other
/// features replaces its `.wasm` in a shared directory.
pub fn build(name: &str, selection: &[&str], sources: &[&str]) -> PathBuf {
    let root = workspace_root();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    for path in sources.iter().chain(&["Cargo.lock", "Cargo.toml"]) {
        println!("cargo:rerun-if-changed={}", root.join(path).display());
    }
    ensure_target();

    let target_dir = out_dir.join(name);
    // `SOCKBOX_GUEST_TOOLCHAIN` builds the guests with another rustup toolchain than the
    // outer build's: a nightly build for cargo-fuzz (`fuzz/`) whose toolchain lacks the
    // wasm32-wasip2 target.
    println!("cargo:rerun-if-env-changed={TOOLCHAIN_ENV}");
    let mut build = match env::var(TOOLCHAIN_ENV) {
        Ok(toolchain) => {
            let mut rustup = Command::new("rustup");
            rustup.args(["run", &toolchain, "cargo"]);
            rustup.env_remove("RUSTUP_TOOLCHAIN").env_remove("RUSTC");
            rustup
        }
        Err(_) => Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into())),
    };
    build
        .current_dir(&root)
        .args(["build", "--release", "--locked"])
        .args(selection)
        .args(["--target", TARGET])
        .arg("--target-dir")
        .arg(&target_dir);
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CLIPPY_ARGS",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        build.env_remove(var);
    }
    let status = build
        .status()
        .unwrap_or_else(|err| panic!("run cargo to build {selection:?}: {err}"));
    assert!(
        status.success(),
        "building {selection:?} for {TARGET} failed (see the errors above)"
    );
    target_dir.join(TARGET).join("release")
}

/// Returns the path of `file` in `dir`, which a build must have made.
pub fn built(dir: &Path, file: &str) -> PathBuf {
    let wasm = dir.join(file);
    assert!(wasm.is_file(), "the guest build made no {}", wasm.display());
    wasm
}

/// Adds the wasm32-wasip2 target with rustup when it is missing, or says how to.
fn ensure_target() {
    if env::var_os(TOOLCHAIN_ENV).is_some() {
        // That toolchain is the one to have the target; its build says so if not.
        return;
    }
    let sysroot = Command::new(env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()))
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    let installed = |root: &Path| root.join("lib/rustlib").join(TARGET).join("lib").is_dir();
    if sysroot.as_deref().is_some_and(installed) {
        return;
    }
    println!("cargo:warning=the {TARGET} target is missing; adding it with rustup");
    let added = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()
        .is_ok_and(|status| status.success());
    assert!(
        added,
        "the {TARGET} target is missing and rustup could not add it; run: rustup target add {TARGET}"
    );
}
