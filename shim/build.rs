//! Builds the test components for the containerd and CRI tests, and tells them where
//! they are: one that exports both WASI 0.2's and 0.3's `wasi:cli/run`
//! (`tests/guests/both-entries`), and two of the examples' zoo, components sockbox did
//! not write (`examples/wstd-echo`, WASI 0.2 with `wstd`; `examples/p3-echo`, WASI 0.3).

#[path = "../build-support/guest_build.rs"]
mod guest_build;

fn main() {
    let dir = guest_build::build(
        "shim-test-components",
        &[
            "-p",
            "both-entries-guest",
            "-p",
            "wstd-echo",
            "-p",
            "p3-echo",
        ],
        &[
            "tests/guests/both-entries",
            "examples/wstd-echo",
            "examples/p3-echo",
            ".cargo/config.toml",
        ],
    );
    for (var, file) in [
        ("BOTH_ENTRIES_WASM", "both-entries-guest.wasm"),
        ("WSTD_ECHO_WASM", "wstd-echo.wasm"),
        ("P3_ECHO_WASM", "p3-echo.wasm"),
    ] {
        let wasm = guest_build::built(&dir, file);
        println!("cargo:rustc-env={var}={}", wasm.display());
    }
}
