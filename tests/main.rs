//! sockbox's end-to-end suite: real wasmtime, real sockets on loopback, real processes.
//!
//! One module per concern. Every server binds port 0 and is awaited through its
//! `listening on` line; every wait is bounded by [`common::TIMEOUT`].

mod bad_input;
mod bench;
mod cache;
mod common;
mod concurrency;
mod deadlines;
mod denials;
mod faults;
mod flows;
mod foreign_component;
mod go_interop;
mod hardening;
mod instances;
mod integrity;
mod limits;
mod lookup;
mod metrics;
mod nodelay;
mod p3;
mod parsers;
mod plugin;
mod policy;
mod poll;
mod production;
mod reload;
mod sandbox;
mod self_connections;
mod several_instances;
mod stock_wasmtime;
mod suggest;
mod udp;
mod wit_world;

/// Every shadow of wasmtime-wasi's functions sockbox links has a test under WASI 0.2
/// and one under 0.3 (`sockbox_host::foreach_shadow!`): a missing test fails the build.
mod shadows {
    macro_rules! assert_tests_exist {
        ($op:ident, $p2_entries:literal, $p3_entries:literal, p2: $($p2:ident)::+, p3: none) => {
            const _: fn() -> anyhow::Result<()> = crate::$($p2)::+;
        };
        ($op:ident, $p2_entries:literal, $p3_entries:literal, p2: $($p2:ident)::+, p3: $($p3:ident)::+) => {
            const _: fn() -> anyhow::Result<()> = crate::$($p2)::+;
            const _: fn() -> anyhow::Result<()> = crate::$($p3)::+;
        };
    }
    sockbox_host::foreach_shadow!(assert_tests_exist);
}
