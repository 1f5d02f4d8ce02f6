//! The wasmtime embedding: one [`Runner`] holds the engine and the linker and compiles
//! components into [`Prepared`] ones; it makes each instance's store, with the
//! [`Enforcer`] deciding every socket use and name lookup and its [`Limits`]. What
//! sockbox puts in the linker in place of wasmtime-wasi's is the WASI layer's
//! (`host/src/wasi/`).

pub(crate) mod bindings;
mod cache;
mod cpu;
mod limits;

pub use cache::{CACHE_DIR_ENV, CompileCache};
pub(crate) use cpu::{CpuClock, Metered};
pub use limits::{
    Limit, LimitExceeded, Limits, default_max_sockets, parse_max_sockets, parse_size,
};

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, bail};
use wasmtime::component::{Component, Linker};
use wasmtime::error::Context as _;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p2::bindings::CommandPre;

use crate::enforce::Enforcer;
use crate::output::Stdio;
use crate::policy::Transport;
pub(crate) use crate::wasi::GuestState;
use bindings::PluginPre;
pub(crate) use limits::Meter;

/// How often running guests are given a chance to be interrupted (so a stopped instance
/// stops even inside a busy loop).
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Pool slots per component instance in [`Runner::pooled`]: a component built by
/// Rust's `wasm32-wasip2` target has a few core instances (its module and the
/// adapter's shims) and one or two memories; these leave room for other toolchains'.
const CORE_INSTANCES_PER_COMPONENT: u32 = 8;
const MEMORIES_PER_COMPONENT: u32 = 2;

/// The program name the built-in guest is given as `argv[0]`.
pub const GUEST_PROGRAM: &str = "sockbox-guest";

/// Compiles and links guest components; [`Sandbox`](crate::Sandbox)es run them. One
/// runner (one engine, one linker, one epoch ticker) serves any number of instances:
/// share it in an `Arc`.
pub struct Runner {
    engine: Engine,
    linker: Linker<GuestState>,
    /// Where compiled components are kept between runs, if anywhere.
    cache: Option<CompileCache>,
}

impl Runner {
    /// Creates the engine (async, component model) and a linker with WASI 0.2. Each
    /// instance's memory is allocated when it starts and freed when it ends: the best
    /// choice for a process that runs one or a few instances, as `sockbox run` does.
    pub fn new() -> Result<Self> {
        Self::with_config(Config::new())
    }

    /// Like [`Runner::new`], but instances come from a pool of `instances` slots that
    /// is reserved up front and reused: for a host that starts instances at a high
    /// rate (a plugin host, a test harness). On the machine the README describes, a
    /// command instance made, run and gone took 0.07–0.09 ms instead of 0.11–0.12 ms,
    /// while reserving the pool made a one-instance process start in 9.4 ms instead of
    /// 4.7 ms. More than `instances` live at once fail to instantiate.
    pub fn pooled(instances: u32) -> Result<Self> {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(instances)
            .total_core_instances(instances.saturating_mul(CORE_INSTANCES_PER_COMPONENT))
            .total_memories(instances.saturating_mul(MEMORIES_PER_COMPONENT))
            .total_tables(instances.saturating_mul(CORE_INSTANCES_PER_COMPONENT))
            .total_stacks(instances);
        let mut config = Config::new();
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        Self::with_config(config)
    }

    fn with_config(mut config: Config) -> Result<Self> {
        config.wasm_component_model(true);
        // WASI 0.3's async functions, streams and futures.
        config.wasm_component_model_async(true);
        config.epoch_interruption(true);
        let engine = Engine::new(&config).context("create wasmtime engine")?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .context("add WASI 0.2 to the linker")?;
        wasmtime_wasi::p3::add_to_linker(&mut linker).context("add WASI 0.3 to the linker")?;
        crate::wasi::add_to_linker(&mut linker)
            .context("add sockbox's WASI functions to the linker")?;

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
        Ok(Self {
            engine,
            linker,
            cache: None,
        })
    }

    /// Returns the engine, for compiling components elsewhere.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Keeps compiled components in `cache` between runs (default: compile every time).
    pub fn with_cache(mut self, cache: Option<CompileCache>) -> Self {
        self.cache = cache;
        self
    }

    /// Compiles a component from its bytes, or loads it from the compile cache.
    pub fn compile(&self, bytes: &[u8]) -> Result<Component> {
        match &self.cache {
            Some(cache) => cache.load_or_compile(&self.engine, bytes),
            None => Ok(Component::new(&self.engine, bytes)?),
        }
    }

    /// Compiles a component ahead of time, into the engine's serialized form, for
    /// [`Runner::load_precompiled`] of a runner with the same settings to load later
    /// (containerd's shim keeps it in containerd's content store).
    pub fn precompile(&self, bytes: &[u8]) -> Result<Vec<u8>> {
        Ok(self.engine.precompile_component(bytes)?)
    }

    /// A key naming everything that makes [`Runner::precompile`]'s output usable by
    /// this runner: wasmtime's version and every engine setting that changes compiled
    /// code.
    pub fn precompile_key(&self) -> u64 {
        cache::compatibility_key(&self.engine)
    }

    /// Loads a component [`Runner::precompile`] made. wasmtime refuses output of
    /// another version or other settings.
    ///
    /// # Safety
    ///
    /// The bytes are run as native code: they must be what `precompile` returned, kept
    /// where only whoever runs this process could change them.
    #[expect(unsafe_code, reason = "loading precompiled code: the caller's promise")]
    pub unsafe fn load_precompiled(&self, bytes: &[u8]) -> Result<Component> {
        // SAFETY: the caller promises the bytes are `precompile`'s, kept safe.
        Ok(unsafe { Component::deserialize(&self.engine, bytes) }?)
    }

    /// Compiles the guest component built into this crate (or loads it from the cache).
    pub fn builtin_guest(&self) -> Result<Component> {
        self.compile(crate::GUEST_WASM)
            .map_err(|err| err.context("compile the built-in guest"))
    }

    /// Compiles the WASI 0.3 build of the built-in guest (or loads it from the cache).
    pub fn builtin_guest_p3(&self) -> Result<Component> {
        self.compile(crate::GUEST_P3_WASM)
            .map_err(|err| err.context("compile the built-in guest's WASI 0.3 build"))
    }

    /// Links a component ahead of running it: fails if it imports something WASI 0.2
    /// and 0.3 do not provide, or exports none of `wasi:cli/run@0.2`,
    /// `wasi:cli/run@0.3.0` and `sockbox:net/flows`. A component runs by what it
    /// exports ([`Prepared::entry`] chooses the entry).
    pub fn prepare(&self, component: &Component) -> Result<Prepared> {
        let pre = self
            .linker
            .instantiate_pre(component)
            .context("link component")?;
        let p2 = CommandPre::new(pre.clone()).ok();
        let p3 = wasmtime_wasi::p3::bindings::CommandPre::new(pre.clone()).ok();
        let plugin = PluginPre::new(pre).ok();
        if p2.is_none() && p3.is_none() && plugin.is_none() {
            bail!("the component exports neither wasi:cli/run (0.2 or 0.3) nor sockbox:net/flows");
        }
        Ok(Prepared { p2, p3, plugin })
    }

    /// Creates a store for one instance: its WASI context (arguments, environment,
    /// stdio, and the network `enforcer` allows), its limits, and the epoch callback
    /// that yields to tokio and counts CPU time.
    pub(crate) fn store(&self, instance: Instance) -> Store<GuestState> {
        let Instance {
            args,
            env,
            stdout,
            stderr,
            enforcer,
            limits,
            tcp_nodelay,
            siblings,
        } = instance;
        let policy = enforcer.policy();
        let mut wasi = WasiCtxBuilder::new();
        wasi.args(&args)
            .envs(&env)
            .allow_tcp(policy.uses(Transport::Tcp) || enforcer.reloadable())
            .allow_udp(policy.uses(Transport::Udp) || enforcer.reloadable())
            // Lookups go through sockbox's resolver (`lookup`), which asks the policy.
            .allow_ip_name_lookup(false);
        let check = Arc::clone(&enforcer);
        wasi.socket_addr_check(move |addr, socket_use| {
            let allowed = check.check(addr, socket_use);
            Box::pin(std::future::ready(allowed))
        });
        match stdout {
            Stdio::Inherit => wasi.inherit_stdout(),
            Stdio::Null => &mut wasi,
            Stdio::Capture(capture) => wasi.stdout(capture),
            Stdio::Lines(lines) => wasi.stdout(lines),
        };
        match stderr {
            Stdio::Inherit => wasi.inherit_stderr(),
            Stdio::Null => &mut wasi,
            Stdio::Capture(capture) => wasi.stderr(capture),
            Stdio::Lines(lines) => wasi.stderr(lines),
        };
        let state = GuestState::new(wasi.build(), enforcer, limits, tcp_nodelay, siblings);
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| state.meter());
        store.epoch_deadline_callback(|mut store| store.data_mut().meter().on_epoch());
        store.set_epoch_deadline(1);
        store
    }
}

/// Everything one instance's store is made from.
pub(crate) struct Instance {
    /// Its arguments, `argv[0]` first.
    pub args: Vec<String>,
    /// Its environment variables.
    pub env: Vec<(String, String)>,
    pub stdout: Stdio,
    pub stderr: Stdio,
    /// The one place its socket uses are decided.
    pub enforcer: Arc<Enforcer>,
    pub limits: Limits,
    /// Whether its TCP sockets get `TCP_NODELAY` (see `wasi/sockopt.rs`).
    pub tcp_nodelay: bool,
    /// The other instances of its run, if any.
    pub siblings: crate::wasi::Siblings,
}

/// A command's `wasi:cli/run`, by the WASI version it exports.
pub(crate) enum Command<'a> {
    /// `wasi:cli/run@0.2.x`.
    P2(&'a CommandPre<GuestState>),
    /// `wasi:cli/run@0.3.0`: an async export, run on the store's event loop.
    P3(&'a wasmtime_wasi::p3::bindings::CommandPre<GuestState>),
}

/// A version of WASI whose `wasi:cli/run` a command exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WasiVersion {
    /// WASI 0.2: `wasi:cli/run@0.2.x`.
    P2,
    /// WASI 0.3: `wasi:cli/run@0.3.0`.
    P3,
}

impl WasiVersion {
    /// The entry's name: `wasi:cli/run@0.2` or `wasi:cli/run@0.3.0`.
    pub fn entry(self) -> &'static str {
        match self {
            Self::P2 => "wasi:cli/run@0.2",
            Self::P3 => "wasi:cli/run@0.3.0",
        }
    }
}

impl std::fmt::Display for WasiVersion {
    /// `0.2` or `0.3`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::P2 => "0.2",
            Self::P3 => "0.3",
        })
    }
}

impl std::str::FromStr for WasiVersion {
    type Err = String;

    /// `0.2` or `0.3` (`p2`, `p3` too).
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "0.2" | "p2" => Ok(Self::P2),
            "0.3" | "p3" => Ok(Self::P3),
            _ => Err(format!("`{text}` is not a WASI version: use 0.2 or 0.3")),
        }
    }
}

/// A component compiled, linked and ready to be instantiated, many times over: every
/// instance shares its compiled code and its resolved imports.
#[derive(Clone)]
pub struct Prepared {
    /// Set when it exports `wasi:cli/run@0.2.x`.
    p2: Option<CommandPre<GuestState>>,
    /// Set when it exports `wasi:cli/run@0.3.0`.
    p3: Option<wasmtime_wasi::p3::bindings::CommandPre<GuestState>>,
    /// Set when it exports `sockbox:net/flows`.
    pub(crate) plugin: Option<PluginPre<GuestState>>,
}

impl Prepared {
    /// Reports whether it exports `wasi:cli/run` (0.2 or 0.3), and so runs as a command.
    pub fn is_command(&self) -> bool {
        self.p2.is_some() || self.p3.is_some()
    }

    /// Reports whether it runs as a WASI 0.3 command by default: it exports
    /// `wasi:cli/run@0.3.0`.
    pub fn is_p3(&self) -> bool {
        self.p3.is_some()
    }

    /// Reports whether it exports `wasi:cli/run` of WASI `version`.
    pub fn exports(&self, version: WasiVersion) -> bool {
        match version {
            WasiVersion::P2 => self.p2.is_some(),
            WasiVersion::P3 => self.p3.is_some(),
        }
    }

    /// The one place an entry is chosen, as wasmtime's CLI chooses it: `version`'s
    /// when it is forced, else `wasi:cli/run@0.3.0` when the component exports it
    /// (a component built with today's Rust toolchain exports 0.2's too, as std's
    /// `main`), else `wasi:cli/run@0.2.x`. Returns the version chosen with it, or why
    /// there is none, in one line.
    pub fn entry(&self, version: Option<WasiVersion>) -> Result<WasiVersion, String> {
        match version {
            Some(version) if self.exports(version) => Ok(version),
            Some(version) => Err(format!(
                "the component does not export {} (it was asked to run as WASI {version})",
                version.entry()
            )),
            None if self.p3.is_some() => Ok(WasiVersion::P3),
            None if self.p2.is_some() => Ok(WasiVersion::P2),
            None => Err("the component exports no wasi:cli/run: it is not a command".into()),
        }
    }

    /// The command entry [`Prepared::entry`] chose.
    pub(crate) fn command(&self, version: Option<WasiVersion>) -> Result<Command<'_>, String> {
        let command = match self.entry(version)? {
            WasiVersion::P2 => self.p2.as_ref().map(Command::P2),
            WasiVersion::P3 => self.p3.as_ref().map(Command::P3),
        };
        command.ok_or_else(|| "the component exports no wasi:cli/run: it is not a command".into())
    }

    /// Reports whether it exports `sockbox:net/flows`, and so loads as a plugin.
    pub fn is_plugin(&self) -> bool {
        self.plugin.is_some()
    }
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

/// How a guest run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// It returned or called `exit` with this status.
    Code(i32),
    /// It trapped; the message says why.
    Trap(String),
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Code(code) => write!(f, "status {code}"),
            Self::Trap(message) => write!(f, "trap ({message})"),
        }
    }
}

impl Exit {
    /// Returns the status the guest exited with; `None` if it trapped.
    pub fn code(&self) -> Option<i32> {
        match self {
            Self::Code(code) => Some(*code),
            Self::Trap(_) => None,
        }
    }

    /// Reports whether the guest succeeded.
    pub fn success(&self) -> bool {
        *self == Self::Code(0)
    }
}
