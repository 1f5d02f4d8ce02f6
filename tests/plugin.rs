//! The built-in guest as a plugin: its typed `sockbox:net/flows` exports (`dial`,
//! `serve`) called through `bindgen!`-generated bindings, guest ↔ native and
//! guest ↔ guest, with denials coming back as the typed `access-denied`.

use std::net::{SocketAddr, TcpListener};

use anyhow::Result;
use sockbox_host::output::{Capture, Stdio};
use sockbox_host::policy::UseKind;
use sockbox_host::{NetError, Plugin, Policy, SandboxError, harness};
use tokio::task::JoinHandle;

use crate::common::{
    GUEST, HARNESS, LIMITS_GUEST, TIMEOUT, answer_once, connect_to, echo_round_trip, loopbacks,
    serve_on,
};

/// Instantiates the built-in guest as a plugin under `policy`, its stdout captured.
fn plugin(policy: Policy) -> Result<Plugin> {
    let sandbox = HARNESS
        .sandbox()
        .policy(policy)
        .stdout(Stdio::capture())
        .build();
    Ok(HARNESS.block_on(sandbox.instantiate_plugin(&GUEST))?)
}

/// The capture a plugin's stdout goes to.
fn stdout_of(plugin: &Plugin) -> Result<Capture> {
    match plugin.stdout() {
        Stdio::Capture(capture) => Ok(capture.clone()),
        other => anyhow::bail!("the plugin's stdout is not captured: {other:?}"),
    }
}

/// A plugin's `serve` call running in the background, with the address it printed.
struct Serving {
    call: JoinHandle<Result<Result<u32, NetError>, SandboxError>>,
    addr: SocketAddr,
}

/// Starts `serve(HOST:0, max_conns)` on a plugin allowed to listen on `host`.
fn serve(host: &str, max_conns: u32) -> Result<Serving> {
    let mut server = plugin(serve_on(host))?;
    let stdout = stdout_of(&server)?;
    let addr = format!("{host}:0");
    let call = HARNESS
        .handle()
        .spawn(async move { server.serve(&addr, max_conns).await });
    let addr = harness::listening_addr(&stdout, TIMEOUT).map_err(anyhow::Error::msg)?;
    Ok(Serving { call, addr })
}

impl Serving {
    /// Waits for the call to return.
    fn finish(self) -> Result<Result<u32, NetError>, SandboxError> {
        HARNESS
            .block_on(async { tokio::time::timeout(TIMEOUT, self.call).await })
            .expect("serve returns within the timeout")
            .expect("the serve task does not panic")
    }
}

/// `dial` sends its payload to a native server and returns the whole reply.
#[test]
fn typed_dial_reaches_a_native_server() -> Result<()> {
    for host in loopbacks() {
        let listener = TcpListener::bind(format!("{host}:0"))?;
        let addr = listener.local_addr()?;
        let server = std::thread::spawn(move || answer_once(&listener, b"pong from native"));
        let mut client = plugin(connect_to(addr))?;
        let reply = HARNESS.block_on(client.dial(&addr.to_string(), b"ping from plugin"))?;
        assert_eq!(reply, Ok(b"pong from native".to_vec()), "{host}");
        assert_eq!(server.join().expect("server thread")?, b"ping from plugin");
    }
    Ok(())
}

/// `serve` echoes native clients, every byte, and returns how many it served.
#[test]
fn typed_serve_echoes_native_clients() -> Result<()> {
    for host in loopbacks() {
        let serving = serve(host, 2)?;
        let payload: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(echo_round_trip(serving.addr, &payload)?, payload, "{host}");
        assert_eq!(echo_round_trip(serving.addr, b"second")?, b"second");
        assert_eq!(serving.finish()?, Ok(2), "{host}");
    }
    Ok(())
}

/// One plugin's `dial` reaches another plugin's `serve`, each allowed only its part.
#[test]
fn typed_dial_reaches_a_plugin_serving() -> Result<()> {
    for host in loopbacks() {
        let serving = serve(host, 1)?;
        let mut client = plugin(connect_to(serving.addr))?;
        let reply = HARNESS.block_on(client.dial(&serving.addr.to_string(), b"guest to guest"))?;
        assert_eq!(reply, Ok(b"guest to guest".to_vec()), "{host}");
        assert_eq!(serving.finish()?, Ok(1));
    }
    Ok(())
}

/// An address the policy does not grant comes back as the typed `access-denied`, for
/// both calls, and the host records the denial; the plugin stays usable.
#[test]
fn denied_addresses_are_typed_access_denied() -> Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let allowed = listener.local_addr()?;
    let denied = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    // Self connections off: `serve` on a loopback port 0 would be a self listener.
    let policy = connect_to(allowed).without_self();
    let sandbox = HARNESS.sandbox().policy(policy).build();
    let mut client = HARNESS.block_on(sandbox.instantiate_plugin(&GUEST))?;

    let reply = HARNESS.block_on(client.dial(&denied.to_string(), b"x"))?;
    assert_eq!(reply, Err(NetError::AccessDenied));
    let served = HARNESS.block_on(client.serve("127.0.0.1:0", 1))?;
    assert_eq!(served, Err(NetError::AccessDenied));
    let refused: Vec<(UseKind, String)> = client
        .denials()
        .into_iter()
        .map(|decision| (decision.use_kind, decision.subject.to_string()))
        .collect();
    assert_eq!(
        refused,
        [
            (UseKind::TcpConnect, denied.to_string()),
            (UseKind::TcpBind, "127.0.0.1:0".to_owned()),
        ]
    );

    // The same instance still dials what it is allowed to.
    let server = std::thread::spawn(move || answer_once(&listener, b"still here"));
    let reply = HARNESS.block_on(client.dial(&allowed.to_string(), b"x"))?;
    assert_eq!(reply, Ok(b"still here".to_vec()));
    server.join().expect("server thread")?;
    Ok(())
}

/// Malformed addresses and refused connections are their own typed errors.
#[test]
fn bad_addresses_are_typed_errors() -> Result<()> {
    let closed = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let policy = Policy::deny_all().allow("tcp://127.0.0.1:*")?;
    let mut client = plugin(policy)?;
    match HARNESS.block_on(client.dial("127.0.0.1", b""))? {
        Err(NetError::InvalidAddress(why)) => {
            assert_eq!(why, "dial tcp: address 127.0.0.1: missing port in address");
        }
        other => panic!("expected invalid-address, got {other:?}"),
    }
    let refused = HARNESS.block_on(client.dial(&closed.to_string(), b""))?;
    assert_eq!(refused, Err(NetError::ConnectionRefused));
    Ok(())
}

/// A component without the `flows` export is refused as a plugin, with the reason.
#[test]
fn a_command_only_component_is_not_a_plugin() {
    let sandbox = HARNESS.sandbox().build();
    let err = HARNESS
        .block_on(sandbox.instantiate_plugin(&LIMITS_GUEST))
        .expect_err("the limits guest exports no flows");
    assert_eq!(
        err.to_string(),
        "the component exports no sockbox:net/flows: it is not a plugin"
    );
}
