//! Builds the test components for wasm32-wasip2: `examples/std-echo` (a user's own
//! component, written with plain `std::net`) and `tests/guests/limits` (a guest built
//! to exceed each limit), and tells the suite where they are.

#[path = "../build-support/guest_build.rs"]
mod guest_build;

fn main() {
    let dir = guest_build::build(
        &["std-echo", "limits-guest"],
        &["examples/std-echo", "tests/guests/limits"],
    );
    for (var, file) in [
        ("STD_ECHO_WASM", "std-echo.wasm"),
        ("LIMITS_GUEST_WASM", "limits-guest.wasm"),
    ] {
        let wasm = guest_build::built(&dir, file);
        println!("cargo:rustc-env={var}={}", wasm.display());
    }
}
