//! Builds `guest/` for wasm32-wasip2 and tells the crate where the component is, so
//! the `sockbox` binary carries its guest inside it.

#[path = "../build-support/guest_build.rs"]
mod guest_build;

fn main() {
    let dir = guest_build::build(
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
}
