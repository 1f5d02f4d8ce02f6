//! `containerd-shim-sockbox-v1`: containerd's runtime `io.containerd.sockbox.v1`. It
//! runs a container's WebAssembly component — WASI 0.2 or 0.3 — through sockbox's
//! library (the same `Runner`, `Sandbox`, policy, limits and audit as `sockbox run`),
//! with the network the container's `sockbox.io/…` annotations grant and no other.
//!
//! The container lifecycle (create, start, kill, delete, the image's wasm layers or
//! entrypoint file) is runwasi's `containerd-shim-wasm`.

mod compiler;
mod workload;

use containerd_shim_wasm::shim::{Cli as _, Compiler, Config, Shim, Version, version};

/// The shim: its name, and what runs a workload.
struct SockboxShim;

impl Shim for SockboxShim {
    type Sandbox = workload::Workload;

    fn name() -> &'static str {
        "sockbox"
    }

    fn version() -> Version {
        version!()
    }

    /// Compiles an image's component layer once, into containerd's content store.
    async fn compiler() -> Option<impl Compiler> {
        compiler::SockboxCompiler::new()
            .map_err(|err| log::warn!("no precompiling: {err:#}"))
            .ok()
    }
}

fn main() {
    // containerd starts the shim in the bundle of the container it is created for; its
    // annotations are read here, before any container process is made, and every
    // container this shim runs inherits them (under Kubernetes: the pod's).
    workload::read_bundle_annotations();
    workload::open_node_cache();
    SockboxShim::run(Config {
        default_log_level: "info".into(),
        ..Config::default()
    });
}
