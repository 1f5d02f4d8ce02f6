//! sockbox-host: run network programs in a WebAssembly sandbox and grant them exactly
//! the network a policy allows.
//!
//! # Layout
//!
//! - [`policy`]: pure decisions — rules (`tcp://10.0.0.0/8:443`,
//!   `tcp://*.example.com:443`) in four directions, policy files, the indexed matcher,
//!   [`Policy`] and its verdicts; no locks, no I/O.
//! - [`enforce`]: a policy at work for one instance — the
//!   [`Enforcer`](enforce::Enforcer), which decides every use and records it, with
//!   what a decision needs beyond the rules (name grants, published ports, UDP reply
//!   peers, self-connection sockets), the bounded denial log and the audit trail,
//!   reporting through the embedder's sinks and `tracing`.
//! - `wasi` (private): everything sockbox puts in the linker in place of
//!   wasmtime-wasi's, for WASI 0.2 and 0.3 — socket creation within the cap, binds
//!   judged on the address they get, self connections, name lookups the policy
//!   decides by name, a `wasi:io/poll` whose idle pollables cost nothing, and the one
//!   map from refusals to each version's error codes.
//! - [`runner`]: the wasmtime 48 embedding (async, tokio) — one engine and linker for
//!   every instance, components compiled (and cached) and linked once into
//!   [`Prepared`] ones, each instance's store with its [`Limits`], and the `plugin`
//!   world's typed exports generated from `wit/`.
//! - [`launch`]: the contract the `sockbox` CLI and the containerd shim share —
//!   settings from flags or pod annotations, exit statuses, the lines sockbox prints.
//! - [`sandbox`]: the embedding API — a [`Sandbox`] (policy, stdio, arguments,
//!   environment, limits) runs components as commands ([`Sandbox::run_command`]) or
//!   as [`Plugin`]s with typed calls; a tripped limit is a [`SandboxError::Limit`].
//! - [`output`]: where a guest's stdout and stderr go, including in-memory captures
//!   that can be waited on line by line.
//! - [`harness`]: for tests and CI — start a component as a server, await its
//!   `listening on` line, drive it with native sockets, assert on its exit and output;
//!   failures print what the guest printed.
//!
//! The `sockbox` command line and `sockbox bench` are the `sockbox` crate (`cli/`): this
//! library has no terminal, chart or argument-parsing dependencies.
//!
//! # Examples
//!
//! Run the built-in guest's `dial` as a command, allowed one address, with limits:
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//! use sockbox_host::{Policy, Runner, Sandbox, output::Stdio};
//!
//! # async fn example() -> anyhow::Result<()> {
//! let runner = Arc::new(Runner::new()?);
//! let guest = runner.prepare(&runner.builtin_guest()?)?;
//! let sandbox = Sandbox::builder(runner)
//!     .policy(Policy::deny_all().allow("tcp://127.0.0.1:8080")?)
//!     .stdout(Stdio::Inherit)
//!     .max_memory(64 << 20)
//!     .timeout(Duration::from_secs(30))
//!     .build();
//! let output = sandbox.run_command(&guest, ["dial", "127.0.0.1:8080"]).await?;
//! println!("guest ended with {}", output.status);
//! # Ok(())
//! # }
//! ```
//!
//! Load it as a plugin and call its typed `dial`: `host/examples/plugin_host.rs`,
//! compiled here as this doc's test (CI also runs it):
//!
#![doc = concat!("```no_run\n", include_str!("../examples/plugin_host.rs"), "```")]
//!
//! Test a component end to end from blocking test code: see [`harness`].

#![warn(missing_docs)]

pub mod enforce;
pub mod harness;
pub mod launch;
pub mod metrics;
pub mod output;
pub mod policy;
pub mod runner;
pub mod sandbox;
mod wasi;

pub use enforce::PolicyHandle;
pub use policy::{Policy, RuleError};
pub use runner::bindings::NetError;
pub use runner::{
    Exit, Limit, LimitExceeded, Limits, Prepared, Runner, WasiVersion, default_max_sockets,
};
pub use sandbox::{Output, Plugin, Sandbox, SandboxBuilder, SandboxError};

/// The built-in guest component (`sockbox-guest.wasm`), built from `guest/` by `build.rs`.
pub const GUEST_WASM: &[u8] = include_bytes!(env!("SOCKBOX_GUEST_WASM"));

/// The built-in guest's WASI 0.3 build (`sockbox-guest-p3.wasm`), built from
/// `guest-p3/` by `build.rs`: the same commands and output lines, async.
pub const GUEST_P3_WASM: &[u8] = include_bytes!(env!("SOCKBOX_GUEST_P3_WASM"));
