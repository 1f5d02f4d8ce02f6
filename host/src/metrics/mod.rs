//! Prometheus metrics of a sandbox's runs: what its instances do on the network, what
//! the policy decided, and what stopped them. [`Metrics`] holds them; an embedder adds
//! them to a registry of its own ([`Metrics::register`]), or serves them alone
//! ([`serve`]: `GET /metrics` on an address of the host's, never subject to a guest's
//! policy).
//!
//! Every label value is bounded: transports, directions and verdicts are fixed words,
//! and a decision's `rule` is one of the policy's rules (at most the policy's, over its
//! reloads) or `default-deny`, `inherit-network`, `self`, `max-sockets`,
//! `max-name-grants`, `special:…`.

use std::net::SocketAddr;
use std::sync::Arc;

use std::fmt::Write as _;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::policy::{DecidedBy, Decision, UseKind};
use crate::runner::Limit;

mod closed;

pub(crate) use closed::Connections;

/// The metrics of one sandbox (and its clones), shared by its runs and instances.
#[derive(Debug, Default, Clone)]
pub struct Metrics {
    instances: Gauge,
    sockets: Family<SocketLabels, Gauge>,
    connections: Family<ConnectionLabel, Counter>,
    /// Labelled `use`, `verdict`, `rule`.
    decisions: Family<Vec<(&'static str, String)>, Counter>,
    lookups: Family<VerdictLabel, Counter>,
    limits: Family<LimitLabel, Counter>,
    reloads: Family<ReloadLabel, Counter>,
    bytes: Family<BytesLabels, Counter>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BytesLabels {
    transport: TransportValue,
    direction: BytesDirection,
}

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types, reason = "the label values Prometheus shows")]
enum BytesDirection {
    received,
    sent,
}

/// The byte counters of one transport, received and sent: cheap to clone, each add
/// one atomic operation.
#[derive(Debug, Clone)]
pub(crate) struct ByteCounters {
    pub received: Counter,
    pub sent: Counter,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SocketLabels {
    transport: TransportValue,
    kind: SocketKind,
}

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types, reason = "the label values Prometheus shows")]
enum TransportValue {
    tcp,
    udp,
}

/// What an open socket is, for `sockbox_sockets_open`'s `kind`.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub(crate) enum SocketKind {
    /// A TCP socket neither listening nor connected (yet).
    Unconnected,
    /// A TCP socket listening.
    Listener,
    /// A TCP connection, dialed or accepted.
    Connection,
    /// A UDP socket.
    Datagram,
}

impl EncodeLabelValue for SocketKind {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
        encoder.write_str(match self {
            Self::Unconnected => "unconnected",
            Self::Listener => "listener",
            Self::Connection => "connection",
            Self::Datagram => "datagram",
        })
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnectionLabel {
    direction: ConnectionDirection,
}

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types, reason = "the label values Prometheus shows")]
enum ConnectionDirection {
    accepted,
    dialed,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerdictLabel {
    verdict: VerdictValue,
}

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types, reason = "the label values Prometheus shows")]
enum VerdictValue {
    allow,
    deny,
    would_deny,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabel {
    limit: LimitValue,
}

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types, reason = "the label values Prometheus shows")]
enum LimitValue {
    memory,
    timeout,
    cpu_time,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabel {
    result: ReloadResult,
}

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types, reason = "the label values Prometheus shows")]
enum ReloadResult {
    applied,
    refused,
}

impl Metrics {
    /// Empty metrics, shared by every clone.
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Adds the metrics to `registry`, each name prefixed `sockbox_`.
    pub fn register(&self, registry: &mut Registry) {
        let registry = registry.sub_registry_with_prefix("sockbox");
        registry.register(
            "instances_running",
            "Guest instances running",
            self.instances.clone(),
        );
        registry.register(
            "sockets_open",
            "TCP and UDP sockets the guests hold open, by transport and kind",
            self.sockets.clone(),
        );
        registry.register(
            "connections",
            "TCP connections the guests accepted, and dialed as the policy allowed",
            self.connections.clone(),
        );
        registry.register(
            "decisions",
            "Policy decisions, by use, verdict and deciding rule",
            self.decisions.clone(),
        );
        registry.register(
            "lookups",
            "Name lookups the guests made, by verdict",
            self.lookups.clone(),
        );
        registry.register(
            "limit_stops",
            "Instances a limit stopped, by limit",
            self.limits.clone(),
        );
        registry.register(
            "bytes",
            "Bytes the guests received and sent over TCP connections (WASI 0.2) and UDP, by transport",
            self.bytes.clone(),
        );
        registry.register(
            "policy_reloads",
            "Policy reloads, applied or refused (the old policy stays)",
            self.reloads.clone(),
        );
    }

    /// The metrics in the Prometheus text format, alone in a registry.
    pub fn encode(&self) -> String {
        let mut registry = Registry::default();
        self.register(&mut registry);
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
        text
    }

    /// An instance started; the guard counts it until dropped.
    pub(crate) fn instance_running(self: &Arc<Self>) -> RunningInstance {
        self.instances.inc();
        RunningInstance(Arc::clone(self))
    }

    /// A socket of `kind` was made or became one (`true`), or was let go or became
    /// another (`false`).
    pub(crate) fn socket(&self, kind: SocketKind, open: bool) {
        let transport = match kind {
            SocketKind::Datagram => TransportValue::udp,
            _ => TransportValue::tcp,
        };
        let gauge = self
            .sockets
            .get_or_create(&SocketLabels { transport, kind });
        if open {
            gauge.inc();
        } else {
            gauge.dec();
        }
    }

    /// A decision was taken (and, if it let a connection through, counts it).
    pub(crate) fn decided(&self, decision: &Decision) {
        if decision.use_kind == UseKind::GrantEvicted {
            return;
        }
        let verdict = match (decision.allowed, decision.would_deny) {
            (_, true) => VerdictValue::would_deny,
            (true, false) => VerdictValue::allow,
            (false, false) => VerdictValue::deny,
        };
        let rule = match &decision.by {
            DecidedBy::Rule { rule, .. } => rule.clone(),
            DecidedBy::InheritNetwork => "inherit-network".to_owned(),
            DecidedBy::DefaultDeny => "default-deny".to_owned(),
            DecidedBy::MaxSockets(_) => "max-sockets".to_owned(),
            DecidedBy::MaxNameGrants(_) => "max-name-grants".to_owned(),
            DecidedBy::Special(special) => special.rule_name().to_owned(),
            DecidedBy::SelfConnection => "self".to_owned(),
        };
        let use_word = decision.use_kind.word().to_owned();
        let verdict_word = match verdict {
            VerdictValue::allow => "allow",
            VerdictValue::deny => "deny",
            VerdictValue::would_deny => "would-deny",
        };
        self.decisions
            .get_or_create(&vec![
                ("use", use_word),
                ("verdict", verdict_word.to_owned()),
                ("rule", rule),
            ])
            .inc();
        if decision.use_kind == UseKind::Lookup {
            self.lookups.get_or_create(&VerdictLabel { verdict }).inc();
        }
        if decision.allowed {
            let direction = match decision.use_kind {
                UseKind::TcpAccept => Some(ConnectionDirection::accepted),
                UseKind::TcpConnect => Some(ConnectionDirection::dialed),
                _ => None,
            };
            if let Some(direction) = direction {
                self.connections
                    .get_or_create(&ConnectionLabel { direction })
                    .inc();
            }
        }
    }

    /// The byte counters of `udp` (else TCP).
    pub(crate) fn bytes(&self, udp: bool) -> ByteCounters {
        let transport = if udp {
            TransportValue::udp
        } else {
            TransportValue::tcp
        };
        let counter = |direction| {
            self.bytes
                .get_or_create(&BytesLabels {
                    transport,
                    direction,
                })
                .clone()
        };
        ByteCounters {
            received: counter(BytesDirection::received),
            sent: counter(BytesDirection::sent),
        }
    }

    /// `bytes` of datagrams `sent` (else received).
    pub(crate) fn udp_bytes(&self, bytes: usize, sent: bool) {
        let counters = self.bytes(true);
        let counter = if sent {
            counters.sent
        } else {
            counters.received
        };
        counter.inc_by(u64::try_from(bytes).unwrap_or(u64::MAX));
    }

    /// A limit stopped an instance.
    pub(crate) fn limit_stopped(&self, limit: Limit) {
        let limit = match limit {
            Limit::Memory(_) => LimitValue::memory,
            Limit::Timeout(_) => LimitValue::timeout,
            Limit::CpuTime(_) => LimitValue::cpu_time,
        };
        self.limits.get_or_create(&LimitLabel { limit }).inc();
    }

    /// A policy reload was applied (`true`) or refused.
    pub(crate) fn reloaded(&self, applied: bool) {
        let result = if applied {
            ReloadResult::applied
        } else {
            ReloadResult::refused
        };
        self.reloads.get_or_create(&ReloadLabel { result }).inc();
    }
}

/// Counts an instance as running until dropped.
#[derive(Debug)]
pub(crate) struct RunningInstance(Arc<Metrics>);

impl Drop for RunningInstance {
    fn drop(&mut self) {
        self.0.instances.dec();
    }
}

/// Serves `metrics` at `http://ADDR/metrics` (any other path: 404) until the returned
/// task is dropped or aborted; returns the address it listens on (port 0 picks one).
/// A listener of the host's: the guests' policy does not apply to it.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    use hyper::body::Incoming;
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper::{Request, Response, StatusCode};
    use hyper_util::rt::TokioIo;

    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let task = tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(_) => {
                    // Out of descriptors, say: back off rather than spin.
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let metrics = Arc::clone(&metrics);
            let service = service_fn(move |request: Request<Incoming>| {
                let metrics = Arc::clone(&metrics);
                async move {
                    if request.uri().path() == "/metrics" {
                        Response::builder()
                            .header(
                                "content-type",
                                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            )
                            .body(metrics.encode())
                    } else {
                        Response::builder()
                            .status(StatusCode::NOT_FOUND)
                            .body("not found: sockbox serves /metrics\n".to_owned())
                    }
                }
            });
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok((local, task))
}

#[cfg(test)]
mod tests {
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::registry::Registry;

    use super::*;
    use crate::policy::{Decider, Policy, Subject, Verdict};

    /// An embedder's registry holds sockbox's metrics beside its own, prefixed.
    #[test]
    fn an_embedder_registers_them_beside_its_own() {
        let metrics = Metrics::new();
        let mut registry = Registry::default();
        let own = Counter::<u64>::default();
        registry.register("requests", "The embedder's own", own.clone());
        metrics.register(&mut registry);
        own.inc();
        let policy = Policy::deny_all();
        let addr = "10.0.0.1:80".parse().expect("an address");
        let denied = Decision::new(
            &policy,
            UseKind::TcpConnect,
            Subject::Addr(addr),
            Verdict {
                allowed: false,
                by: Decider::DefaultDeny,
            },
        );
        metrics.decided(&denied);
        metrics.socket(SocketKind::Datagram, true);
        metrics.limit_stopped(Limit::Memory(1 << 20));
        metrics.reloaded(false);
        let running = metrics.instance_running();
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encoded");
        for sample in [
            "requests_total 1",
            "sockbox_instances_running 1",
            r#"sockbox_sockets_open{transport="udp",kind="datagram"} 1"#,
            r#"sockbox_decisions_total{use="tcp-connect",verdict="deny",rule="default-deny"} 1"#,
            r#"sockbox_limit_stops_total{limit="memory"} 1"#,
            r#"sockbox_policy_reloads_total{result="refused"} 1"#,
        ] {
            assert!(text.lines().any(|line| line == sample), "{sample}\n{text}");
        }
        // A denied connect is no connection.
        assert!(!text.contains("sockbox_connections_total"), "{text}");
        drop(running);
        assert!(metrics.encode().contains("sockbox_instances_running 0"));
    }
}
