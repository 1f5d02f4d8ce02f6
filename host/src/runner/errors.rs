//! What a guest can learn from a failed stream operation: the error's name, never
//! host text.
//!
//! wasmtime-wasi's `error.to-debug-string` formats the host's error with `{:?}`, which
//! carries the host's error chain and, with `RUST_BACKTRACE` set, a backtrace of the
//! host (source paths, crate versions); symbolizing it also costs the host over
//! 100 MiB. Its `network-error-code` only recognizes `std::io::Error`, while socket
//! streams fail with wasmtime-wasi's own error codes, so a guest never got a code for
//! a reset connection. sockbox shadows both: `network-error-code` answers for every
//! socket error, and `to-debug-string` is the error code's name (`connection-reset`),
//! an I/O error's kind (`broken pipe`), or `error`.

use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::p2::bindings::io::error::Error as IoError;
use wasmtime_wasi::p2::bindings::sockets::network::ErrorCode;

use super::GuestState;

/// Shadows `wasi:io/error.to-debug-string` and `wasi:sockets/network.network-error-code`.
pub(super) fn add_to_linker(linker: &mut Linker<GuestState>) -> wasmtime::Result<()> {
    super::shadowing(linker, shadow)
}

fn shadow(linker: &mut Linker<GuestState>) -> wasmtime::Result<()> {
    linker.instance("wasi:io/error@0.2.12")?.func_wrap(
        "[method]error.to-debug-string",
        |store: StoreContextMut<'_, GuestState>, (err,): (Resource<IoError>,)| {
            let err = store.data().table.get(&err)?;
            Ok((describe(err),))
        },
    )?;
    linker.instance("wasi:sockets/network@0.2.12")?.func_wrap(
        "network-error-code",
        |store: StoreContextMut<'_, GuestState>, (err,): (Resource<IoError>,)| {
            let err = store.data().table.get(&err)?;
            Ok((error_code(err),))
        },
    )?;
    Ok(())
}

/// The `wasi:sockets` error code a host error stands for, if it is a network error.
pub(crate) fn error_code(err: &wasmtime::Error) -> Option<ErrorCode> {
    if let Some(code) = err.downcast_ref::<ErrorCode>() {
        Some(*code)
    } else if let Some(code) = err.downcast_ref::<wasmtime_wasi::sockets::ErrorCode>() {
        Some(ErrorCode::from(*code))
    } else {
        err.downcast_ref::<std::io::Error>()
            .map(ErrorCode::from)
            .filter(|code| *code != ErrorCode::Unknown)
    }
}

/// A host error as a guest may see it: its name, nothing of the host's.
pub(crate) fn describe(err: &wasmtime::Error) -> String {
    if let Some(code) = error_code(err) {
        code.name().to_owned()
    } else if let Some(io) = err.downcast_ref::<std::io::Error>() {
        io.kind().to_string()
    } else {
        "error".to_owned()
    }
}
