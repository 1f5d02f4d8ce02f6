//! Builds the built-in guest for wasm32-wasip2 — `guest/` (WASI 0.2) and `guest-p3/`
//! (WASI 0.3) — and tells the crate where the components are, so the `sockbox` binary
//! carries both inside it.

#[path = "../build-support/guest_build.rs"]
mod guest_build;

fn main() {
    // Two builds, each in its own directory, not one: in one build the 0.3 guest's
    // `sockbox-guest` dependency would get the `component` feature too, and with it the
    // 0.2 command's exports; in one directory the 0.3 build's featureless
    // `sockbox-guest` would replace the 0.2 component.
    let dir = guest_build::build(
        "guest-p2",
        &[
            "-p",
            "sockbox-guest",
            "--features",
            "sockbox-guest/component",
        ],
        &["guest/src", "guest/Cargo.toml", "wit"],
    );
    let wasm = guest_build::built(&dir, "sockbox_guest.wasm");
    println!("cargo:rustc-env=SOCKBOX_GUEST_WASM={}", wasm.display());
    let dir = guest_build::build(
        "guest-p3",
        &["-p", "sockbox-guest-p3"],
        &["guest/src", "guest-p3/src", "guest-p3/Cargo.toml"],
    );
    let wasm = guest_build::built(&dir, "sockbox_guest_p3.wasm");
    println!("cargo:rustc-env=SOCKBOX_GUEST_P3_WASM={}", wasm.display());
}
