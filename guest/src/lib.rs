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
//! - `exports`: the bindings for the component's exports, generated from `wit/`'s
//!   `plugin` world.
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
mod cmdline;
#[cfg(not(test))]
mod command;
#[cfg(not(test))]
mod echo;
#[cfg(not(test))]
#[allow(
    unsafe_code,
    reason = "wit-bindgen's generated export glue is the component ABI; no hand-written unsafe"
)]
mod exports;
#[cfg(not(test))]
mod flows;
pub mod net;
#[cfg(not(test))]
mod stdio;
mod sys;
