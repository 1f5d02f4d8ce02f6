//! How fast a policy decides: checks per second against 1,000 rules.
//!
//! `cargo run --release --example policy_bench`. wasmtime-wasi asks the policy on every
//! connect, accept and datagram, so a check must cost far less than the socket call.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use fixtures::thousand_rules;
use sockbox_host::enforce::NameGrants;
use sockbox_host::policy::{Policy, SocketAddrUse};

#[path = "fixtures/thousand_rules.rs"]
mod fixtures;

fn measure(
    name: &str,
    policy: &Policy,
    grants: &NameGrants,
    addr: &str,
    socket_use: SocketAddrUse,
) {
    let addr: SocketAddr = addr.parse().expect("an address");
    let verdict = policy.decide_with(addr, socket_use, grants.read().rules_for(addr.ip()));
    let mut checks = 0u64;
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(500) {
        for _ in 0..1000 {
            black_box(policy.decide_with(
                black_box(addr),
                socket_use,
                grants.read().rules_for(addr.ip()),
            ));
        }
        checks += 1000;
    }
    let elapsed = start.elapsed();
    let per_second = checks as f64 / elapsed.as_secs_f64();
    println!(
        "{name:<44} {:>6} {:>12.0} checks/s {:>8.1} ns/check  ({})",
        if verdict.allowed { "allow" } else { "deny" },
        per_second,
        elapsed.as_nanos() as f64 / checks as f64,
        policy.describe(verdict.by),
    );
}

fn main() {
    let policy = thousand_rules();
    let grants = NameGrants::new();
    grants.record(
        &policy,
        "host998.example.com",
        &["203.0.113.7".parse().expect("an address")],
    );
    println!(
        "1,000 rules ({} deny), one check at a time, one thread:",
        10
    );
    let cases = [
        ("the first rule", "10.0.0.1:443", SocketAddrUse::TcpConnect),
        (
            "a network near the end",
            "172.20.228.9:8050",
            SocketAddrUse::TcpConnect,
        ),
        (
            "a name's address, granted by a lookup",
            "203.0.113.7:443",
            SocketAddrUse::TcpConnect,
        ),
        ("IPv6, UDP send", "[fd00::3e5]:53", SocketAddrUse::UdpSend),
        ("a deny rule", "[fd00::38b]:53", SocketAddrUse::UdpSend),
        (
            "IPv4-mapped, in the last rule",
            "[::ffff:192.168.231.1]:9",
            SocketAddrUse::TcpConnect,
        ),
        ("no rule matches", "8.8.8.8:53", SocketAddrUse::UdpSend),
        (
            "a reply from an unlisted peer",
            "8.8.4.4:53",
            SocketAddrUse::UdpReceive,
        ),
    ];
    for (name, addr, socket_use) in cases {
        measure(name, &policy, &grants, addr, socket_use);
    }
}
