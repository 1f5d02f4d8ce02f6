//! Builds the test component that exports both WASI 0.2's and 0.3's `wasi:cli/run`
//! (`tests/guests/both-entries`) for the containerd test, and tells it where it is.

#[path = "../build-support/guest_build.rs"]
mod guest_build;

fn main() {
    let dir = guest_build::build(
        "shim-test-components",
        &["-p", "both-entries-guest"],
        &["tests/guests/both-entries"],
    );
    let wasm = guest_build::built(&dir, "both-entries-guest.wasm");
    println!("cargo:rustc-env=BOTH_ENTRIES_WASM={}", wasm.display());
}
