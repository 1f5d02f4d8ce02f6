//! Builds `guest/` for wasm32-wasip2 and tells the crate where the component is, so
//! the `sockbox` binary carries its guest inside it.
//!
//! The guest gets its own target directory under `OUT_DIR` (a nested cargo must not
//! wait on the outer one's lock), and none of the outer build's compiler flags or
//! wrappers: those are for the host target, not for wasm.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir
        .parent()
        .expect("host/ sits in the workspace root");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));

    for path in [
        "guest/src",
        "guest/Cargo.toml",
        "wit",
        "Cargo.lock",
        "Cargo.toml",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(path).display());
    }

    ensure_target();

    let target_dir = out_dir.join("guest-target");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .current_dir(root)
        .args(["build", "--release", "--locked", "-p", "sockbox-guest"])
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
        .unwrap_or_else(|err| panic!("run cargo to build the guest: {err}"));
    assert!(
        status.success(),
        "building the guest for {TARGET} failed (see the errors above)"
    );

    let wasm = target_dir
        .join(TARGET)
        .join("release")
        .join("sockbox_guest.wasm");
    assert!(wasm.is_file(), "the guest build made no {}", wasm.display());
    println!("cargo:rustc-env=SOCKBOX_GUEST_WASM={}", wasm.display());
}

/// Adds the wasm32-wasip2 target with rustup when it is missing, or says how to.
fn ensure_target() {
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
