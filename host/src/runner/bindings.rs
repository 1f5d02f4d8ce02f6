//! The `plugin` world's typed exports, generated from `wit/` by `bindgen!`.
//!
//! The world's imports are wasmtime-wasi's (and sockbox's name lookup, which shadows
//! wasmtime-wasi's in the linker), so only the exports are bound here: the guest's
//! `wasi:cli/run` and `sockbox:net/flows`.

mod generated {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "sockbox:net/plugin",
        exports: { default: async },
        with: {
            "wasi": wasmtime_wasi::p2::bindings,
        },
        require_store_data_send: true,
        additional_derives: [PartialEq, Eq],
    });
}

pub use generated::exports::sockbox::net::flows::NetError;
pub(crate) use generated::{Plugin as Bindings, PluginPre};
