//! sockbox-host: run network programs in a WebAssembly sandbox and grant them exactly
//! the network a policy allows.
//!
//! # Layout
//!
//! - [`policy`]: rules (`tcp://10.0.0.0/8:443`, `tcp://*.example.com:443`) in four
//!   directions, policy files, the indexed matcher, name grants, and the
//!   [`Enforcer`](policy::Enforcer) — the one place a verdict becomes `access-denied` —
//!   with its denial log and audit trail.
//! - [`runner`]: the wasmtime 48 embedding (async, tokio) — engine, linker, store and
//!   instance lifecycle for `wasi:cli/run` components, and sockbox's own
//!   `wasi:sockets/ip-name-lookup`, which asks the policy before resolving.
//! - [`output`]: where a guest's stdout and stderr go, including in-memory captures
//!   that can be waited on line by line.
//! - [`harness`]: start a guest, await its `listening on` line, drive it with native
//!   sockets, collect its exit status and output — for tests, CI and `sockbox demo`.
//! - [`cli`]: the `sockbox` command line (`run`, `demo`, `guest`, `policy check`,
//!   `policy explain`); `main.rs` only calls it.
//!
//! # Example
//!
//! ```no_run
//! use sockbox_host::{Policy, RunOptions, Runner, output::Stdio};
//!
//! # async fn example() -> anyhow::Result<()> {
//! let runner = Runner::new()?;
//! let guest = runner.prepare(&runner.builtin_guest()?)?;
//! let options = RunOptions {
//!     args: vec!["sockbox-guest".into(), "dial".into(), "127.0.0.1:8080".into()],
//!     policy: Policy::deny_all().allow("tcp://127.0.0.1:8080")?,
//!     stdout: Stdio::Inherit,
//!     stderr: Stdio::Inherit,
//!     ..RunOptions::default()
//! };
//! let exit = runner.run(&guest, options).await?;
//! println!("guest exited with {}", exit.code());
//! # Ok(())
//! # }
//! ```

pub mod cli;
pub mod harness;
pub mod output;
pub mod policy;
pub mod runner;

pub use policy::{Policy, RuleError};
pub use runner::{Exit, Prepared, RunOptions, Runner};

/// The built-in guest component (`sockbox-guest.wasm`), built from `guest/` by `build.rs`.
pub const GUEST_WASM: &[u8] = include_bytes!(env!("SOCKBOX_GUEST_WASM"));
