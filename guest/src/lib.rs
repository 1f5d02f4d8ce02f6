//! sockbox-guest: Go's `net` package over `wasi:sockets`, and the classic TCP client
//! and server built on it, as a WASI 0.2 component.
//!
//! # Layout
//!
//! - [`net`]: the library a Go programmer expects — [`net::dial`], [`net::listen`],
//!   [`net::Listener::accept`], [`net::Conn`] as `Read + Write` — with every
//!   `wasi:sockets` error mapped, in one place, to Go's words.
//! - `sys`: thin blocking helpers over the raw bindings (the seed's `syscall`).
//! - `cmdline`: the one parser of the command's arguments (flags in any position,
//!   `--flag value` or `--flag=value`).
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
//! # Example
//!
//! ```no_run
//! use std::io::{Read, Write};
//!
//! let mut conn = sockbox_guest::net::dial("127.0.0.1:8080")?;
//! conn.write_all(b"Hello, World!")?;
//! conn.close_write()?;
//! let mut reply = String::new();
//! conn.read_to_string(&mut reply)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

// A unit-test build is itself a command (libtest's); it must not export a second `run`.
#[cfg(not(test))]
#[allow(
    unsafe_code,
    reason = "wit-bindgen's generated export glue is the component ABI; no hand-written unsafe"
)]
mod bindings;
#[cfg(not(test))]
mod cmdline;
#[cfg(not(test))]
mod command;
#[cfg(not(test))]
mod echo;
#[cfg(not(test))]
mod flows;
pub mod net;
#[cfg(not(test))]
mod stdio;
mod sys;

/// The component's exports: `wasi:cli/run` (the command) and `sockbox:net/flows` (the
/// same flows as typed functions).
#[cfg(not(test))]
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
