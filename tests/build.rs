//! Builds the test components for wasm32-wasip2: `examples/std-echo` and
//! `examples/wstd-echo` (a user's own components, written with plain `std::net` and
//! with `wstd`), `tests/guests/limits` (a guest built to
//! exceed each limit), `tests/guests/p3-sockets` (the WASI 0.3 sockets conformance
//! set), `tests/guests/p2-poll` (the edges of sockbox's WASI 0.2 poll),
//! `tests/guests/both-entries` (a command exporting WASI 0.2's and 0.3's run) and the guest library's `dial` example (a user's component on
//! `sockbox_guest::net`), and tells the suite where they are.

#[path = "../build-support/guest_build.rs"]
mod guest_build;

fn main() {
    let dir = guest_build::build(
        "test-components",
        &[
            "-p",
            "std-echo",
            "-p",
            "wstd-echo",
            "-p",
            "p3-echo",
            "-p",
            "tokio-client",
            "-p",
            "limits-guest",
            "-p",
            "p3-sockets-guest",
            "-p",
            "p2-poll-guest",
            "-p",
            "both-entries-guest",
        ],
        &[
            "examples/std-echo",
            "examples/wstd-echo",
            "examples/p3-echo",
            "examples/tokio-client",
            ".cargo/config.toml",
            "tests/guests/limits",
            "tests/guests/p3-sockets",
            "tests/guests/p2-poll",
            "tests/guests/both-entries",
        ],
    );
    let library = guest_build::build(
        "guest-library",
        &["-p", "sockbox-guest", "--example", "dial"],
        &["guest/src", "guest/examples", "guest/Cargo.toml"],
    );
    let wasm = guest_build::built(&library, "examples/dial.wasm");
    println!("cargo:rustc-env=GUEST_DIAL_EXAMPLE_WASM={}", wasm.display());
    for (var, file) in [
        ("STD_ECHO_WASM", "std-echo.wasm"),
        ("WSTD_ECHO_WASM", "wstd-echo.wasm"),
        ("P3_ECHO_WASM", "p3-echo.wasm"),
        ("TOKIO_CLIENT_WASM", "tokio-client.wasm"),
        ("LIMITS_GUEST_WASM", "limits-guest.wasm"),
        ("P3_SOCKETS_WASM", "p3_sockets_guest.wasm"),
        ("P2_POLL_WASM", "p2-poll-guest.wasm"),
        ("BOTH_ENTRIES_WASM", "both-entries-guest.wasm"),
    ] {
        let wasm = guest_build::built(&dir, file);
        println!("cargo:rustc-env={var}={}", wasm.display());
    }
}
