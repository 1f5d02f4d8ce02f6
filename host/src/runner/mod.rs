//! The wasmtime embedding: one [`Runner`] holds the engine and the linker, compiles
//! components, and runs `wasi:cli/run` instances with a [`Policy`] deciding each
//! socket use and name lookup.

mod lookup;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::error::Context as _;
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi::{I32Exit, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::output::Stdio;
use crate::policy::{AuditLog, DenialLog, Enforcer, Policy, Transport};

/// How often running guests are given a chance to be interrupted (so a stopped instance
/// stops even inside a busy loop).
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The program name the built-in guest is given as `argv[0]`.
pub const GUEST_PROGRAM: &str = "sockbox-guest";

/// The exit status a trap gives, as `wasmtime run` gives it on Unix (128 + SIGABRT).
pub const TRAP_EXIT_CODE: i32 = 134;

/// Compiles and runs guest components. Cheap to share: clone the `Arc` it lives in.
pub struct Runner {
    engine: Engine,
    linker: Linker<GuestState>,
}

impl Runner {
    /// Creates the engine (async, component model) and a linker with WASI 0.2.
    pub fn new() -> Result<Self> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        let engine = Engine::new(&config).context("create wasmtime engine")?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).context("add WASI to the linker")?;
        lookup::add_to_linker(&mut linker).context("add sockbox's name lookup to the linker")?;

        let ticker = engine.weak();
        std::thread::Builder::new()
            .name("sockbox-epoch".into())
            .spawn(move || {
                while let Some(engine) = ticker.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .map_err(|err| anyhow::anyhow!("start the epoch ticker: {err}"))?;
        Ok(Self { engine, linker })
    }

    /// Returns the engine, for compiling components elsewhere.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Compiles a component from its bytes.
    pub fn compile(&self, bytes: &[u8]) -> Result<Component> {
        Ok(Component::new(&self.engine, bytes)?)
    }

    /// Compiles the guest component built into this crate.
    pub fn builtin_guest(&self) -> Result<Component> {
        Ok(
            Component::new(&self.engine, crate::GUEST_WASM)
                .context("compile the built-in guest")?,
        )
    }

    /// Links a component ahead of running it: fails if it imports something WASI 0.2
    /// does not provide or does not export `wasi:cli/run`.
    pub fn prepare(&self, component: &Component) -> Result<Prepared> {
        let pre = self
            .linker
            .instantiate_pre(component)
            .context("link component")?;
        let pre = CommandPre::new(pre).context("find the component's wasi:cli/run export")?;
        Ok(Prepared { pre })
    }

    /// Runs a prepared component to completion and returns how it ended.
    pub async fn run(&self, prepared: &Prepared, options: RunOptions) -> Result<Exit> {
        let RunOptions {
            name,
            args,
            policy,
            stdout,
            stderr,
            denials,
            audit,
        } = options;

        let mut wasi = WasiCtxBuilder::new();
        wasi.args(&args)
            .allow_tcp(policy.uses(Transport::Tcp))
            .allow_udp(policy.uses(Transport::Udp))
            // Lookups go through sockbox's resolver (`lookup`), which asks the policy.
            .allow_ip_name_lookup(false);
        let name = if name.is_empty() {
            args.first().cloned().unwrap_or_default()
        } else {
            name
        };
        let enforcer = Arc::new(Enforcer::new(name, Arc::new(policy), denials, audit));
        let check = Arc::clone(&enforcer);
        wasi.socket_addr_check(move |addr, socket_use| {
            let allowed = check.check(addr, socket_use);
            Box::pin(std::future::ready(allowed))
        });
        match &stdout {
            Stdio::Inherit => wasi.inherit_stdout(),
            Stdio::Null => &mut wasi,
            Stdio::Capture(capture) => wasi.stdout(capture.clone()),
        };
        match &stderr {
            Stdio::Inherit => wasi.inherit_stderr(),
            Stdio::Null => &mut wasi,
            Stdio::Capture(capture) => wasi.stderr(capture.clone()),
        };

        let state = GuestState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            enforcer,
        };
        let mut store = Store::new(&self.engine, state);
        store.epoch_deadline_async_yield_and_update(1);

        let outcome = async {
            let command = prepared
                .pre
                .instantiate_async(&mut store)
                .await
                .context("instantiate component")?;
            command.wasi_cli_run().call_run(&mut store).await
        }
        .await;
        for stdio in [&stdout, &stderr] {
            if let Stdio::Capture(capture) = stdio {
                capture.close();
            }
        }
        Ok(match outcome {
            Ok(Ok(())) => Exit::Code(0),
            Ok(Err(())) => Exit::Code(1),
            Err(err) => match err.downcast_ref::<I32Exit>() {
                Some(I32Exit(code)) => Exit::Code(*code),
                // The root cause names the trap (`wasm trap: wasm `unreachable` instruction
                // executed`); the outer layers are only a backtrace.
                None => Exit::Trap(err.root_cause().to_string()),
            },
        })
    }
}

/// A component linked and ready to be instantiated, many times over.
#[derive(Clone)]
pub struct Prepared {
    pre: CommandPre<GuestState>,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner").finish_non_exhaustive()
    }
}

/// Everything one run of a guest needs besides the component.
#[derive(Debug, Default)]
pub struct RunOptions {
    /// The instance's name in audit lines; empty: its program name (`argv[0]`).
    pub name: String,
    /// The guest's arguments, starting with its program name (`argv[0]`).
    pub args: Vec<String>,
    /// The network the guest may use.
    pub policy: Policy,
    /// Where the guest's stdout goes.
    pub stdout: Stdio,
    /// Where the guest's stderr goes.
    pub stderr: Stdio,
    /// Where refused socket uses and lookups are recorded.
    pub denials: Arc<DenialLog>,
    /// Where every decision is written, if anywhere.
    pub audit: Option<Arc<AuditLog>>,
}

/// How a guest run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// It returned or called `exit` with this status.
    Code(i32),
    /// It trapped; the message says why.
    Trap(String),
}

impl Exit {
    /// Returns the process exit status this stands for ([`TRAP_EXIT_CODE`] for a trap).
    pub fn code(&self) -> i32 {
        match self {
            Self::Code(code) => *code,
            Self::Trap(_) => TRAP_EXIT_CODE,
        }
    }

    /// Reports whether the guest succeeded.
    pub fn success(&self) -> bool {
        *self == Self::Code(0)
    }
}

/// What each guest's `Store` holds.
struct GuestState {
    wasi: WasiCtx,
    table: ResourceTable,
    enforcer: Arc<Enforcer>,
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
