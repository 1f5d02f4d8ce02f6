//! `sockbox`: run a WebAssembly component with exactly the network a policy grants.

/// The binary's allocator: mimalloc. wasmtime-wasi's `wasi:io/poll` allocates and frees
/// a future per pollable on every call, and glibc's allocator was a third of the time
/// of a WASI 0.2 server with many idle connections (docs/performance.md). The
/// library leaves the choice to embedders.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    sockbox_cli::main()
}
