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
    build_python_client();
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

/// Builds `examples/py-client` (Python, asyncio) with componentize-py into `OUT_DIR`
/// and names it in `PY_CLIENT_WASM`; when componentize-py is not installed the name is
/// empty, and the tests that need the component fail saying how to install it.
fn build_python_client() {
    use std::path::PathBuf;
    use std::process::Command;

    let root = guest_build::workspace_root();
    let example = root.join("examples/py-client");
    for path in ["app.py", "wit/world.wit"] {
        println!("cargo:rerun-if-changed={}", example.join(path).display());
    }
    println!("cargo:rerun-if-changed={}", root.join("wit/deps").display());
    println!("cargo:rerun-if-env-changed=PATH");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo")).join("py-client");
    let wit = out.join("wit");
    let deps = wit.join("deps");
    std::fs::create_dir_all(&wit).expect("create the py-client build directory");
    std::fs::copy(example.join("wit/world.wit"), wit.join("world.wit")).expect("copy world.wit");
    let _ = std::fs::remove_file(&deps);
    #[cfg(unix)]
    std::os::unix::fs::symlink(root.join("wit/deps"), &deps).expect("link wit/deps");
    let wasm = out.join("py-client.wasm");
    let built = Command::new("componentize-py")
        .arg("-d")
        .arg(&wit)
        .args(["-w", "client", "componentize", "app", "-p"])
        .arg(&example)
        .arg("-o")
        .arg(&wasm)
        .output();
    match built {
        Ok(done) if done.status.success() => {
            println!("cargo:rustc-env=PY_CLIENT_WASM={}", wasm.display());
        }
        Ok(done) => panic!(
            "componentize-py could not build examples/py-client:\n{}",
            String::from_utf8_lossy(&done.stderr)
        ),
        Err(_) => {
            println!(
                "cargo:warning=componentize-py is not installed: examples/py-client is not built (pip install componentize-py==0.25.1)"
            );
            println!("cargo:rustc-env=PY_CLIENT_WASM=");
        }
    }
}
