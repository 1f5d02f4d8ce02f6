//! sockbox-guest: Go's `net` package over `wasi:sockets`, and the classic TCP client
//! and server built on it, as a WASI 0.2 component.
//!
//! # Layout
//!
//! - [`net`]: the library a Go programmer expects — [`net::dial`], [`net::listen`],
//!   [`net::Listener::accept`], [`net::Conn`] as `Read + Write` — with every
//!   `wasi:sockets` error mapped, in one place, to Go's words.
//! - `sys`: thin blocking helpers over the raw bindings (the seed's `syscall`).
//! - `cmdline`: the one parser of a command's flags (in any position, `--flag value`
//!   or `--flag=value`), and [`invocation`]: the built-in command's line read with it,
//!   its usage text and checks — shared by the WASI 0.2 build here and the WASI 0.3
//!   build (`guest-p3/`).
//! - `command`: the command behind the component's `wasi:cli/run` — `dial`, `listen`,
//!   `echo` and the rest, whose output lines are a contract the host's tests and users
//!   parse.
//! - `echo`: the echo server's event loop over `wasi:io/poll`, serving every
//!   connection at once, by host-side splice or by copying.
//! - `flows`: the same flows as typed functions (`sockbox:net/flows`: `dial`,
//!   `serve`), for hosts that embed the guest as a plugin.
//! - `bindings`: the bindings of `wit/`'s `plugin` world, generated; the crate root
//!   exports the component through them (`wasi:cli/run` to `command`, `flows` to
//!   `flows`), so no module imports another in a circle.
//!
//! The `wasi` crate's bindings are used directly, not `std::net`: driving
//! `wasi:sockets` and its pollables explicitly is the point of this crate.
//!
//! # Use as a library
//!
//! Without its `component` feature (off by default; the host's build turns it on) the
//! crate is the `net` library alone, for other Rust guests built for `wasm32-wasip2`:
//! their own `main` stays their component's `wasi:cli/run`. This is
//! `examples/dial.rs`, the smallest client:
//!
#![doc = concat!("```no_run\n", include_str!("../examples/dial.rs"), "```")]

// The component's parts: only with the `component` feature, which the host's build
// turns on. Without it the crate is the `net` library alone, for other Rust guests whose
// own `main` (or libtest's) is their component's `run`.
#[cfg(feature = "component")]
// `allow`, not `expect`: whether the lint fires inside generated glue depends on the
// target (a test build expands none).
#[allow(
    unsafe_code,
    reason = "wit-bindgen's generated export glue is the component ABI; no hand-written unsafe"
)]
mod bindings;
mod cmdline;
#[cfg(feature = "component")]
mod command;
#[cfg(feature = "component")]
mod echo;
#[cfg(feature = "component")]
mod flows;
pub mod invocation;
pub mod net;
#[cfg(feature = "component")]
mod stdio;
mod sys;
#[cfg(feature = "component")]
mod udp_echo;
mod wasi_addr;

/// The component's exports: `wasi:cli/run` (the command) and `sockbox:net/flows` (the
/// same flows as typed functions).
#[cfg(feature = "component")]
// `allow`, not `expect`: whether the lint fires inside generated glue depends on the
// target (a test build expands none).
#[allow(
    unsafe_code,
    reason = "wit-bindgen's export! expands to the component ABI's glue; no hand-written unsafe"
)]
mod component {
    use crate::bindings::exports::sockbox::net::flows::{self, NetError};
    use crate::bindings::exports::wasi::cli::run;

    crate::bindings::export!(Component with_types_in crate::bindings);

    /// The component: its command and its flows.
    struct Component;

    impl run::Guest for Component {
        fn run() -> Result<(), ()> {
            crate::command::main()
        }
    }

    impl flows::Guest for Component {
        fn dial(addr: String, payload: Vec<u8>) -> Result<Vec<u8>, NetError> {
            crate::flows::dial(&addr, &payload)
        }

        fn serve(addr: String, max_conns: u32) -> Result<u32, NetError> {
            crate::flows::serve(&addr, max_conns)
        }
    }
}
