//! sockbox-guest: Go's `net` package over `wasi:sockets`, and the classic TCP client
//! and server built on it, as a WASI 0.2 component.
//!
//! # Layout
//!
//! - [`net`]: the library a Go programmer expects — [`net::dial`], [`net::listen`],
//!   [`net::Listener::accept`], [`net::Conn`] as `Read + Write` — with every
//!   `wasi:sockets` error mapped, in one place, to Go's words.
//! - `sys`: thin blocking helpers over the raw bindings (the seed's `syscall`).
//! - `command`: the component's `wasi:cli/run` export — `dial`, `listen` and `echo`,
//!   whose output lines are a contract the host's tests and users parse.
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
mod command;
pub mod net;
mod sys;
