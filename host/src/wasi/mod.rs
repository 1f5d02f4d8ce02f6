//! sockbox's WASI layer: everything it puts in the linker in place of wasmtime-wasi's,
//! for WASI 0.2 and 0.3 side by side.
//!
//! - `ops.rs`: the socket operations written once for both versions — creation within
//!   the socket cap, binds judged on the address they get, local addresses as the
//!   guest sees them, and the count of the sockets an instance holds;
//!   `own.rs`: self connections, on the connecting side.
//! - `p2.rs`, `p3.rs`: each version's linker entries, a few lines calling those, and
//!   what is the version's alone (0.2's accept, 0.3's listen stream).
//! - `lookup.rs`: name lookups the policy decides by name, for both versions.
//! - `errors.rs`: what a guest learns of a failure — the one map from sockbox's
//!   refusals and the host's errors to each version's error codes.
//! - `poll.rs`: sockbox's own `wasi:io/poll` (0.2 only).
//! - `sockopt.rs`: `TCP_NODELAY` and `SO_REUSEPORT` on the guest's new sockets.
//! - `state.rs`: [`GuestState`], what each instance's store holds.

mod errors;
mod lookup;
mod ops;
mod own;
mod p2;
mod p3;
mod poll;
mod sockopt;
mod state;

pub(crate) use state::{GuestState, Siblings};

use wasmtime::component::Linker;

/// Lists every function sockbox puts in the linker in place of wasmtime-wasi's, by
/// operation, with the end-to-end test (in `tests/`) that checks it under WASI 0.2
/// and the one that checks it under 0.3 (often one test over both builds): each row
/// is `$m!(operation, 0.2 entries, 0.3 entries, p2: test, p3: test)`. The suite
/// expands it with a macro that names each test function, so a shadow without both
/// tests fails to build (as wasmtime's `foreach_p2!(assert_test_exists)`). A shadow
/// of one version only names `none` for the other, with the reason.
#[doc(hidden)]
#[macro_export]
macro_rules! foreach_shadow {
    ($m:ident) => {
        $m!(create, "create-tcp-socket create-udp-socket", "[static]tcp-socket.create [static]udp-socket.create",
            p2: self_connections::the_socket_cap_counts_a_pair,
            p3: self_connections::the_socket_cap_counts_a_pair);
        $m!(bind, "[method]tcp-socket.start-bind [method]udp-socket.start-bind", "[method]tcp-socket.bind [method]udp-socket.bind",
            p2: hardening::bind_to_port_zero_is_judged_on_the_port_it_gets,
            p3: hardening::bind_to_port_zero_is_judged_on_the_port_it_gets);
        $m!(local_address, "[method]tcp-socket.local-address [method]udp-socket.local-address", "[method]tcp-socket.get-local-address [method]udp-socket.get-local-address",
            p2: production::published_ports_through_the_api,
            p3: production::published_ports_through_the_api);
        $m!(connect, "[method]tcp-socket.start-connect", "[method]tcp-socket.connect",
            p2: self_connections::only_the_instance_reaches_its_self_listener,
            p3: self_connections::only_the_instance_reaches_its_self_listener);
        $m!(accept, "[method]tcp-socket.accept", "[method]tcp-socket.listen",
            p2: hardening::max_sockets_is_a_cap_under_100_connections,
            p3: hardening::max_sockets_is_a_cap_under_100_connections);
        $m!(lookup, "resolve-addresses", "resolve-addresses",
            p2: lookup::unresolvable_and_refused_names,
            p3: p3::names_follow_the_policy);
        $m!(poll, "poll block ready, stream subscribe, tcp-socket.subscribe/finish-connect/shutdown", "none: 0.3 waits on futures and streams",
            p2: poll::every_edge_of_the_poll_reports_readiness,
            p3: none);
        $m!(errors, "to-debug-string network-error-code", "none: 0.3's error-code has no host text",
            p2: hardening::a_reset_is_named_without_host_internals,
            p3: none);
    };
}

/// Puts sockbox's functions in `linker` in place of wasmtime-wasi's of the same name
/// (WASI 0.2 and 0.3 both already added).
pub(crate) fn add_to_linker(linker: &mut Linker<GuestState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let result = shadow(linker);
    linker.allow_shadowing(false);
    result
}

fn shadow(linker: &mut Linker<GuestState>) -> wasmtime::Result<()> {
    p2::shadow(linker)?;
    p3::shadow(linker)?;
    lookup::shadow(linker)?;
    errors::shadow(linker)?;
    poll::shadow(linker)
}
