//! sockbox-guest-p3: the built-in guest's commands as a WASI 0.3 component
//! (`wasi:cli/run@0.3.0`, `wasi:sockets@0.3.0`): `dial`, `listen`, `echo` [`--copy` |
//! `--forward`], `udp-echo`, `udp-send`, `lookup`, `pair`, with the WASI 0.2 build's
//! output lines, error words and exit statuses.
//!
//! Where the WASI 0.2 build polls every connection from one loop, this one is async:
//! one task per connection, each waiting on its own streams, so a wake costs only the
//! connections that are ready. The command line, its usage text, address parsing and
//! Go's error words come from `sockbox_guest` (the library, without its `component`
//! feature); the network calls are its own ([`net`]).

// `allow`, not `expect`: whether the lint fires inside generated glue depends on the
// target (a test build expands none).
#![allow(
    unsafe_code,
    reason = "wasip3's export! expands to the component ABI's glue; no hand-written unsafe"
)]

mod command;
mod echo;
pub mod net;
mod stdio;

/// The component: its `wasi:cli/run@0.3.0`.
struct Component;

impl wasip3::exports::cli::run::Guest for Component {
    async fn run() -> Result<(), ()> {
        command::main().await
    }
}

wasip3::cli::command::export!(Component);
