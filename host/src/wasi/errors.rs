//! What a guest learns of a failure: the one map from sockbox's refusals and the
//! host's errors to each WASI version's error codes.
//!
//! - A refusal by the policy is `access-denied`.
//! - A socket past the cap is `new-socket-limit` (WASI 0.3.0 has no such code:
//!   `other("new-socket-limit")`). wasmtime-wasi 48 reports a creation or accept that
//!   failed with `EMFILE`/`ENFILE` as `unknown` (0.3: `other`); when the process
//!   cannot open a descriptor at that moment, sockbox reports the cap's code (Go's
//!   `too many open files`), an error servers treat as temporary.
//! - A name lookup's failure is decided once (`lookup.rs`, in 0.2's words) and
//!   spoken in 0.3's words here.
//! - A failed stream operation (0.2) is named, never described with host text:
//!
//! wasmtime-wasi's `error.to-debug-string` formats the host's error with `{:?}`, which
//! carries the host's error chain and, with `RUST_BACKTRACE` set, a backtrace of the
//! host (source paths, crate versions); symbolizing it also costs the host over
//! 100 MiB. Its `network-error-code` only recognizes `std::io::Error`, while socket
//! streams fail with wasmtime-wasi's own error codes, so a guest never got a code for
//! a reset connection. sockbox shadows both: `network-error-code` answers for every
//! socket error, and `to-debug-string` is the error code's name (`connection-reset`),
//! an I/O error's kind (`broken pipe`), or `error`.

use std::fmt::Debug;

use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::TrappableError;
use wasmtime_wasi::p2::bindings::io::error::Error as IoError;
use wasmtime_wasi::p2::bindings::sockets::network::ErrorCode;
use wasmtime_wasi::p3::bindings::sockets::ip_name_lookup::ErrorCode as P3LookupCode;
use wasmtime_wasi::p3::bindings::sockets::types::ErrorCode as P3Code;

use super::GuestState;
use super::ops::GuestResult;

/// What the guest reads when the socket cap refuses a socket under WASI 0.3.
const NEW_SOCKET_LIMIT: &str = "new-socket-limit";

/// A WASI version's `error-code`, as sockbox answers with it.
pub(super) trait GuestCode: Debug + Send + Sized {
    /// `access-denied`.
    fn access_denied() -> Self;
    /// The code for a socket past the cap.
    fn new_socket_limit() -> Self;
    /// Whether this is what wasmtime-wasi reports for a creation that failed for lack
    /// of descriptors (and for other reasons it has no name for).
    fn is_unnamed(&self) -> bool;
}

impl GuestCode for ErrorCode {
    fn access_denied() -> Self {
        Self::AccessDenied
    }

    fn new_socket_limit() -> Self {
        Self::NewSocketLimit
    }

    fn is_unnamed(&self) -> bool {
        *self == Self::Unknown
    }
}

impl GuestCode for P3Code {
    fn access_denied() -> Self {
        Self::AccessDenied
    }

    fn new_socket_limit() -> Self {
        Self::Other(Some(NEW_SOCKET_LIMIT.to_owned()))
    }

    fn is_unnamed(&self) -> bool {
        matches!(self, Self::Other(_))
    }
}

/// Splits wasmtime-wasi's result, for either version, into the guest's `error-code`
/// and a trap.
pub(super) fn error_code<T, C>(result: Result<T, TrappableError<C>>) -> GuestResult<T, C>
where
    C: std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(value) => Ok(Ok(value)),
        Err(err) => Ok(Err(err.downcast()?)),
    }
}

/// `code` for a failed creation or accept, or the cap's own code when the process
/// is out of descriptors.
pub(super) fn or_socket_limit<C: GuestCode>(code: C) -> C {
    if code.is_unnamed() && out_of_descriptors() {
        C::new_socket_limit()
    } else {
        code
    }
}

/// Reports whether this process cannot open another descriptor right now.
fn out_of_descriptors() -> bool {
    match std::fs::File::open("/dev/null") {
        Ok(_) => false,
        Err(err) => matches!(err.raw_os_error(), Some(code) if code == EMFILE || code == ENFILE),
    }
}

/// `EMFILE` and `ENFILE` on Linux (and every other Unix sockbox builds on).
const EMFILE: i32 = 24;
const ENFILE: i32 = 23;

/// A lookup's failure, decided in 0.2's words, in 0.3's.
pub(super) fn lookup_code(code: ErrorCode) -> P3LookupCode {
    match code {
        ErrorCode::AccessDenied => P3LookupCode::AccessDenied,
        ErrorCode::InvalidArgument => P3LookupCode::InvalidArgument,
        ErrorCode::NameUnresolvable => P3LookupCode::NameUnresolvable,
        ErrorCode::TemporaryResolverFailure => P3LookupCode::TemporaryResolverFailure,
        ErrorCode::PermanentResolverFailure => P3LookupCode::PermanentResolverFailure,
        _ => P3LookupCode::Other(None),
    }
}

/// Puts this file's functions in the linker.
pub(super) fn shadow(linker: &mut Linker<GuestState>) -> wasmtime::Result<()> {
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
            Ok((network_code(err),))
        },
    )?;
    Ok(())
}

/// The `wasi:sockets` error code a host error stands for, if it is a network error.
fn network_code(err: &wasmtime::Error) -> Option<ErrorCode> {
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
fn describe(err: &wasmtime::Error) -> String {
    if let Some(code) = network_code(err) {
        code.name().to_owned()
    } else if let Some(io) = err.downcast_ref::<std::io::Error>() {
        io.kind().to_string()
    } else {
        "error".to_owned()
    }
}
