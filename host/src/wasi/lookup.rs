//! sockbox's own `wasi:sockets/ip-name-lookup`: lookups the policy decides by name.
//!
//! It replaces wasmtime-wasi's resolver in the linker. A name is normalized once
//! ([`normalize_name`]: lowercase, punycode, one final dot removed) before it is decided,
//! recorded and resolved; a name that is not a valid DNS name is `invalid-argument` and
//! never resolved. A name no rule covers fails with `name-unresolvable` — what a name
//! that does not exist gets, so a guest cannot tell a refused name from a missing one —
//! and is reported as a denied `lookup of NAME`; when no rule could allow any name,
//! lookups are off and every name gets `permanent-resolver-failure`, as under wasmtime
//! with name lookup off. The
//! addresses an allowed lookup returns are checked first ([`Enforcer::filter_answers`]:
//! deny rules and the special-address preset, against DNS rebinding); those refused
//! are dropped and recorded as `lookup-answer` denials, and when none remain the name
//! is `name-unresolvable`. The rest are granted to the rules covering the name
//! ([`Enforcer::grant`]) before the guest sees them. IP literals resolve to themselves
//! without asking the policy: they grant nothing.

use std::future::Future as _;
use std::net::{IpAddr, Ipv6Addr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use tokio::task::JoinHandle;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::p2::bindings::sockets::network::{self, ErrorCode, IpAddress, Network};
use wasmtime_wasi::p2::{DynPollable, Pollable, SocketError};
use wasmtime_wasi::sockets::WasiSocketsView as _;

use super::GuestState;
use crate::enforce::Enforcer;
use crate::policy::normalize_name;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        inline: "
            package sockbox:host;

            world name-lookup {
                import wasi:sockets/ip-name-lookup@0.2.12;
            }
        ",
        imports: { default: trappable },
        trappable_error_type: {
            "wasi:sockets/network.error-code" => wasmtime_wasi::p2::SocketError,
        },
        with: {
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:sockets/network": wasmtime_wasi::p2::bindings::sockets::network,
            "wasi:sockets/ip-name-lookup.resolve-address-stream": super::ResolveStream,
        },
        require_store_data_send: true,
    });
}

use bindings::wasi::sockets::ip_name_lookup::{self, Host, HostResolveAddressStream};

/// Replaces the linker's `wasi:sockets/ip-name-lookup` (0.2) with sockbox's.
pub(super) fn shadow(linker: &mut Linker<GuestState>) -> wasmtime::Result<()> {
    ip_name_lookup::add_to_linker::<_, wasmtime::component::HasSelf<GuestState>>(linker, |state| {
        state
    })
}

/// The addresses of one lookup, while it runs and once it is done.
pub struct ResolveStream {
    state: Resolving,
}

enum Resolving {
    Pending(JoinHandle<Result<Vec<IpAddr>, ErrorCode>>),
    Done(std::vec::IntoIter<IpAddr>),
    Failed(ErrorCode),
}

impl ResolveStream {
    fn done(result: Result<Vec<IpAddr>, ErrorCode>) -> Self {
        Self {
            state: match result {
                Ok(addrs) => Resolving::Done(addrs.into_iter()),
                Err(code) => Resolving::Failed(code),
            },
        }
    }

    /// Moves a finished lookup's result into the stream.
    fn finish(&mut self, result: Result<Result<Vec<IpAddr>, ErrorCode>, tokio::task::JoinError>) {
        *self = Self::done(answer_of(result));
    }
}

#[async_trait::async_trait]
impl Pollable for ResolveStream {
    async fn ready(&mut self) {
        if let Resolving::Pending(handle) = &mut self.state {
            let result = handle.await;
            self.finish(result);
        }
    }
}

/// What a lookup comes to once the policy has seen it: an answer at once (an IP
/// literal, a refused name), or a resolver task for a name the policy allowed, which
/// grants what it returns. Shared by the WASI 0.2 and 0.3 lookups.
pub(super) enum Started {
    Done(Result<Vec<IpAddr>, ErrorCode>),
    Pending(JoinHandle<Result<Vec<IpAddr>, ErrorCode>>),
}

/// Starts a lookup of `name` under `enforcer`'s policy.
pub(super) fn start(enforcer: &Arc<Enforcer>, name: &str) -> Result<Started, SocketError> {
    let literal = |ip: IpAddr| Ok(Started::Done(Ok(vec![ip])));
    match url::Host::parse(name) {
        Ok(url::Host::Ipv4(addr)) => literal(IpAddr::V4(addr)),
        Ok(url::Host::Ipv6(addr)) => literal(IpAddr::V6(addr)),
        // `url` wants IPv6 in brackets; wasi:sockets allows it bare.
        Err(_) if let Ok(addr) = name.parse::<Ipv6Addr>() => literal(IpAddr::V6(addr)),
        Err(_) => Err(ErrorCode::InvalidArgument.into()),
        Ok(url::Host::Domain(_)) => {
            // One normalization, before the name is decided, recorded and resolved.
            let Ok(domain) = normalize_name(name) else {
                return Err(ErrorCode::InvalidArgument.into());
            };
            Ok(if enforcer.check_lookup(&domain) {
                Started::Pending(resolve(Arc::clone(enforcer), domain)?)
            } else if enforcer.policy().uses_names() {
                // Refused looks like missing.
                Started::Done(Err(ErrorCode::NameUnresolvable))
            } else {
                // No rule could allow any name: lookups are off, and say so as
                // wasmtime does with lookups off.
                Started::Done(Err(ErrorCode::PermanentResolverFailure))
            })
        }
    }
}

/// Resolves a name the policy allowed on the runtime, granting what it returns.
fn resolve(
    enforcer: Arc<Enforcer>,
    name: String,
) -> Result<JoinHandle<Result<Vec<IpAddr>, ErrorCode>>, SocketError> {
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
        SocketError::trap(wasmtime::Error::msg("name lookups need a tokio runtime"))
    })?;
    Ok(runtime.spawn(async move {
        let addrs: Vec<IpAddr> = tokio::net::lookup_host((name.as_str(), 0))
            .await
            .map_err(|_| ErrorCode::NameUnresolvable)?
            .map(|addr| addr.ip().to_canonical())
            .collect();
        // What the policy refuses never reaches the guest, nor grants anything.
        let addrs = enforcer.filter_answers(&name, addrs);
        if addrs.is_empty() {
            return Err(ErrorCode::NameUnresolvable);
        }
        enforcer.grant(&name, &addrs);
        Ok(addrs)
    }))
}

/// A finished resolver task's answer (a task that failed to finish: permanent failure).
pub(super) fn answer_of(
    result: Result<Result<Vec<IpAddr>, ErrorCode>, tokio::task::JoinError>,
) -> Result<Vec<IpAddr>, ErrorCode> {
    result.unwrap_or(Err(ErrorCode::PermanentResolverFailure))
}

// The lookup interface's bindings ask for the network interface's host traits too; they
// are wasmtime-wasi's, as linked by `add_to_linker_async`.
impl network::Host for GuestState {
    fn convert_error_code(&mut self, error: SocketError) -> wasmtime::Result<ErrorCode> {
        network::Host::convert_error_code(&mut self.sockets(), error)
    }

    fn network_error_code(
        &mut self,
        err: Resource<wasmtime_wasi::p2::bindings::io::error::Error>,
    ) -> wasmtime::Result<Option<ErrorCode>> {
        network::Host::network_error_code(&mut self.sockets(), err)
    }
}

impl network::HostNetwork for GuestState {
    fn drop(&mut self, this: Resource<Network>) -> wasmtime::Result<()> {
        network::HostNetwork::drop(&mut self.sockets(), this)
    }
}

impl Host for GuestState {
    fn resolve_addresses(
        &mut self,
        network: Resource<Network>,
        name: String,
    ) -> Result<Resource<ResolveStream>, SocketError> {
        // The network resource is the capability to look up; it must be a live one.
        self.table.get(&network)?;
        let stream = match start(&self.enforcer, &name)? {
            Started::Done(result) => ResolveStream::done(result),
            Started::Pending(handle) => ResolveStream {
                state: Resolving::Pending(handle),
            },
        };
        Ok(self.table.push(stream)?)
    }
}

impl HostResolveAddressStream for GuestState {
    fn resolve_next_address(
        &mut self,
        stream: Resource<ResolveStream>,
    ) -> Result<Option<IpAddress>, SocketError> {
        let stream = self.table.get_mut(&stream)?;
        if let Resolving::Pending(handle) = &mut stream.state {
            match Pin::new(handle).poll(&mut Context::from_waker(Waker::noop())) {
                Poll::Pending => return Err(ErrorCode::WouldBlock.into()),
                Poll::Ready(result) => stream.finish(result),
            }
        }
        match &mut stream.state {
            Resolving::Done(addrs) => Ok(addrs.next().map(IpAddress::from)),
            Resolving::Failed(code) => Err((*code).into()),
            Resolving::Pending(_) => Err(ErrorCode::WouldBlock.into()),
        }
    }

    fn subscribe(
        &mut self,
        stream: Resource<ResolveStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        wasmtime_wasi::p2::subscribe(&mut self.table, stream)
    }

    fn drop(&mut self, stream: Resource<ResolveStream>) -> wasmtime::Result<()> {
        if let Resolving::Pending(handle) = self.table.delete(stream)?.state {
            handle.abort();
        }
        Ok(())
    }
}
