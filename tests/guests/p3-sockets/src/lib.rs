//! sockbox's own conformance set for `wasi:sockets@0.3.0`: each function of
//! `tcp-socket`, `udp-socket` and `ip-name-lookup`, on its success path and its error
//! paths, against real sockets on loopback. Modelled on the scenario lists of
//! wasi-testsuite's and wasmtime's p3 socket tests (bind, connect, listen/accept,
//! streams, options, states; UDP bind, connect, send/receive; names), written for
//! sockbox. (Over 400 lines: one function per scenario, the set meant to be read whole.)
//!
//! Prints `ok NAME` or `FAIL NAME: why` per scenario and fails (exit 1) if any failed.
//! Run it with the network granted on loopback and `localhost` resolvable.

// `allow`, not `expect`: whether the lint fires inside generated glue depends on the
// target (a test build expands none).
#![allow(
    unsafe_code,
    reason = "wasip3's export! expands to the component ABI's glue; no hand-written unsafe"
)]

use std::future::Future;
use std::pin::Pin;

use wasip3::cli::stdout;
use wasip3::sockets::ip_name_lookup::{self, ErrorCode as LookupError};
use wasip3::sockets::types::{
    ErrorCode, IpAddress, IpAddressFamily, IpSocketAddress, Ipv4SocketAddress, Ipv6SocketAddress,
    TcpSocket, UdpSocket,
};
use wasip3::wit_stream;

type Outcome = Result<(), String>;
type Scenario = fn() -> Pin<Box<dyn Future<Output = Outcome>>>;

/// Fails the scenario unless `$value` matches `$pattern`.
macro_rules! expect {
    ($value:expr, $pattern:pat $(if $guard:expr)?) => {
        match $value {
            $pattern $(if $guard)? => {}
            other => {
                return Err(format!(
                    "{}: expected {}, got {:?}",
                    stringify!($value),
                    stringify!($pattern),
                    other
                ))
            }
        }
    };
}

/// Unwraps `$value`, or fails the scenario naming it.
macro_rules! ok {
    ($value:expr) => {
        match $value {
            Ok(value) => value,
            Err(err) => return Err(format!("{}: {:?}", stringify!($value), err)),
        }
    };
}

struct Component;

impl wasip3::exports::cli::run::Guest for Component {
    async fn run() -> Result<(), ()> {
        let scenarios: [(&str, Scenario); 16] = [
            ("tcp-create", || Box::pin(tcp_create())),
            ("tcp-bind", || Box::pin(tcp_bind())),
            ("tcp-bind-errors", || Box::pin(tcp_bind_errors())),
            ("tcp-connect-errors", || Box::pin(tcp_connect_errors())),
            ("tcp-listen-accept", || Box::pin(tcp_listen_accept())),
            ("tcp-states", || Box::pin(tcp_states())),
            ("tcp-streams", || Box::pin(tcp_streams())),
            ("tcp-receive-twice", || Box::pin(tcp_receive_twice())),
            ("tcp-sockopts", || Box::pin(tcp_sockopts())),
            ("tcp-ipv6", || Box::pin(tcp_ipv6())),
            ("udp-bind", || Box::pin(udp_bind())),
            ("udp-send-receive", || Box::pin(udp_send_receive())),
            ("udp-connect", || Box::pin(udp_connect())),
            ("udp-errors", || Box::pin(udp_errors())),
            ("udp-sockopts", || Box::pin(udp_sockopts())),
            ("ip-name-lookup", || Box::pin(name_lookup())),
        ];
        let mut failed = false;
        for (name, scenario) in scenarios {
            let line = match scenario().await {
                Ok(()) => format!("ok {name}\n"),
                Err(why) => {
                    failed = true;
                    format!("FAIL {name}: {why}\n")
                }
            };
            print(line).await;
        }
        if failed { Err(()) } else { Ok(()) }
    }
}

wasip3::cli::command::export!(Component);

async fn print(line: String) {
    let (mut writer, reader) = wit_stream::new::<u8>();
    let done = stdout::write_via_stream(reader);
    writer.write_all(line.into_bytes()).await;
    drop(writer);
    let _ = done.await;
}

fn v4(a: u8, b: u8, c: u8, d: u8, port: u16) -> IpSocketAddress {
    IpSocketAddress::Ipv4(Ipv4SocketAddress {
        port,
        address: (a, b, c, d),
    })
}

fn loopback4(port: u16) -> IpSocketAddress {
    v4(127, 0, 0, 1, port)
}

fn loopback6(port: u16) -> IpSocketAddress {
    IpSocketAddress::Ipv6(Ipv6SocketAddress {
        port,
        flow_info: 0,
        address: (0, 0, 0, 0, 0, 0, 0, 1),
        scope_id: 0,
    })
}

fn port(addr: IpSocketAddress) -> u16 {
    match addr {
        IpSocketAddress::Ipv4(v4) => v4.port,
        IpSocketAddress::Ipv6(v6) => v6.port,
    }
}

/// A TCP listener on 127.0.0.1 (port 0) and its port.
fn listener4() -> Result<(TcpSocket, wasip3::wit_bindgen::StreamReader<TcpSocket>, u16), String> {
    let socket = ok!(TcpSocket::create(IpAddressFamily::Ipv4));
    ok!(socket.bind(loopback4(0)));
    let incoming = ok!(socket.listen());
    let port = port(ok!(socket.get_local_address()));
    Ok((socket, incoming, port))
}

/// A port nobody listens on: bound once, then freed.
fn free_port() -> Result<u16, String> {
    let socket = ok!(TcpSocket::create(IpAddressFamily::Ipv4));
    ok!(socket.bind(loopback4(0)));
    Ok(port(ok!(socket.get_local_address())))
}

async fn tcp_create() -> Outcome {
    for family in [IpAddressFamily::Ipv4, IpAddressFamily::Ipv6] {
        let socket = ok!(TcpSocket::create(family));
        expect!(
            (socket.get_address_family(), family),
            (IpAddressFamily::Ipv4, IpAddressFamily::Ipv4)
                | (IpAddressFamily::Ipv6, IpAddressFamily::Ipv6)
        );
        expect!(socket.get_is_listening(), false);
    }
    Ok(())
}

async fn tcp_bind() -> Outcome {
    // Port 0 on loopback and on the unspecified address gets a port.
    for addr in [loopback4(0), v4(0, 0, 0, 0, 0)] {
        let socket = ok!(TcpSocket::create(IpAddressFamily::Ipv4));
        ok!(socket.bind(addr));
        if port(ok!(socket.get_local_address())) == 0 {
            return Err(format!("{addr:?}: port 0 stayed 0 after bind"));
        }
    }
    // A listener's port is free again for a new listener once it is gone, even with a
    // connection of it closed and in TIME_WAIT (the host sets SO_REUSEADDR).
    let (listener, mut incoming, port) = listener4()?;
    let client = ok!(TcpSocket::create(IpAddressFamily::Ipv4));
    ok!(client.connect(loopback4(port)).await);
    let Some(accepted) = incoming.next().await else {
        return Err("the listener's stream ended".into());
    };
    let (mut tx, data) = wit_stream::new::<u8>();
    let sent = accepted.send(data);
    let _ = tx.write_all(vec![0; 10]).await;
    drop(tx);
    ok!(sent.await);
    drop((accepted, incoming, listener));
    let again = ok!(TcpSocket::create(IpAddressFamily::Ipv4));
    ok!(again.bind(loopback4(port)));
    let _incoming = ok!(again.listen());
    Ok(())
}

async fn tcp_bind_errors() -> Outcome {
    let socket = ok!(TcpSocket::create(IpAddressFamily::Ipv4));
    // Unbound: no local address.
    expect!(socket.get_local_address(), Err(ErrorCode::InvalidState));
    // The other family's address.
    expect!(socket.bind(loopback6(0)), Err(ErrorCode::InvalidArgument));
    ok!(socket.bind(loopback4(0)));
    // Bound twice.
    expect!(socket.bind(loopback4(0)), Err(ErrorCode::InvalidState));
    // A port a listener holds.
    let (_listener, _incoming, taken) = listener4()?;
    let other = ok!(TcpSocket::create(IpAddressFamily::Ipv4));
    expect!(other.bind(loopback4(taken)), Err(ErrorCode::AddressInUse));
    // An address that is not this machine's.
    let foreign = ok!(TcpSocket::create(IpAddressFamily::Ipv4));
    expect!(
        foreign.bind(v4(192, 0, 2, 1, 0)),
        Err(ErrorCode::AddressNotBindable)
    );
    // Not unicast: broadcast and multicast.
    for addr in [v4(255, 255, 255, 255, 0), v4(224, 254, 0, 0, 0)] {
        let socket = ok!(TcpSocket::create(IpAddressFamily::Ipv4));
        expect!(socket.bind(addr), Err(ErrorCode::InvalidArgument));
    }
    // An IPv4-mapped address on an IPv6 socket (IPv6-only).
    let v6 = ok!(TcpSocket::create(IpAddressFamily::Ipv6));
    let mapped = IpSocketAddress::Ipv6(Ipv6SocketAddress {
        port: 0,
        flow_info: 0,
        address: (0, 0, 0, 0, 0, 0xffff, 0x7f00, 1),
        scope_id: 0,
    });
    expect!(v6.bind(mapped), Err(ErrorCode::InvalidArgument));
    // Listening, or after a connect that failed: no bind.
    let (listening, _incoming, _) = listener4()?;
    expect!(listening.bind(loopback4(0)), Err(ErrorCode::InvalidState));
    let closed = free_port()?;
    let failed = ok!(TcpSocket::create(IpAddressFamily::Ipv4));
    ok!(failed.bind(loopback4(0)));
    if failed.connect(loopback4(closed)).await.is_ok() {
        return Err("a connect to a closed port succeeded".into());
    }
    expect!(failed.bind(loopback4(0)), Err(ErrorCode::InvalidState));
    Ok(())
}

async fn tcp_connect_errors() -> Outcome {
    let closed = free_port()?;
    let socket = ok!(TcpSocket::create(IpAddressFamily::Ipv4));
    expect!(
        socket.connect(loopback4(closed)).await,
        Err(ErrorCode::ConnectionRefused)
    );
    let socket = ok!(TcpSocket::create(IpAddressFamily::Ipv4));
    expect!(
        socket.connect(v4(0, 0, 0, 0, closed)).await,
        Err(ErrorCode::InvalidArgument)
    );
    let socket = ok!(TcpSocket::create(IpAddressFamily::Ipv4));
    expect!(
        socket.connect(loopback4(0)).await,
        Err(ErrorCode::InvalidArgument)
    );
    let socket = ok!(TcpSocket::create(IpAddressFamily::Ipv4));
    expect!(
        socket.connect(loopback6(closed)).await,
        Err(ErrorCode::InvalidArgument)
    );
    Ok(())
}

async fn tcp_listen_accept() -> Outcome {
    let (listener, mut incoming, port) = listener4()?;
    expect!(listener.get_is_listening(), true);
    let client = ok!(TcpSocket::create(IpAddressFamily::Ipv4));
    ok!(client.connect(loopback4(port)).await);
    let Some(accepted) = incoming.next().await else {
        return Err("the listener's stream ended".into());
    };
    let client_local = ok!(client.get_local_address());
    let accepted_remote = ok!(accepted.get_remote_address());
    if port_of(client_local) != port_of(accepted_remote) {
        return Err(format!(
            "accepted peer {accepted_remote:?} is not the client {client_local:?}"
        ));
    }
    expect!(accepted.get_is_listening(), false);
    if crate::port(ok!(accepted.get_local_address())) != port {
        return Err("the accepted socket's local port is not the listener's".into());
    }
    Ok(())
}

fn port_of(addr: IpSocketAddress) -> u16 {
    port(addr)
}

async fn tcp_states() -> Outcome {
    // Listening without a bind binds implicitly.
    let implicit = ok!(TcpSocket::create(IpAddressFamily::Ipv4));
    let _incoming = ok!(implicit.listen());
    if port(ok!(implicit.get_local_address())) == 0 {
        return Err("an implicit bind for listen got port 0".into());
    }
    // A listener cannot connect, nor listen again.
    let (listener, _incoming, port) = listener4()?;
    expect!(
        listener.connect(loopback4(port)).await,
        Err(ErrorCode::InvalidState)
    );
    expect!(listener.listen(), Err(ErrorCode::InvalidState));
    // A connected socket cannot listen, connect again, or bind.
    let client = ok!(TcpSocket::create(IpAddressFamily::Ipv4));
    ok!(client.connect(loopback4(port)).await);
    expect!(client.listen(), Err(ErrorCode::InvalidState));
    expect!(
        client.connect(loopback4(port)).await,
        Err(ErrorCode::InvalidState)
    );
    expect!(client.bind(loopback4(0)), Err(ErrorCode::InvalidState));
    // An unconnected socket has no remote address.
    let fresh = ok!(TcpSocket::create(IpAddressFamily::Ipv4));
    expect!(fresh.get_remote_address(), Err(ErrorCode::InvalidState));
    Ok(())
}

async fn tcp_streams() -> Outcome {
    let (_listener, mut incoming, port) = listener4()?;
    let client = ok!(TcpSocket::create(IpAddressFamily::Ipv4));
    ok!(client.connect(loopback4(port)).await);
    let Some(server) = incoming.next().await else {
        return Err("the listener's stream ended".into());
    };
    let (from_client, client_done) = server.receive();
    // Client → server, then the client's side ends: the server reads end of stream.
    let (mut to_server, data) = wit_stream::new::<u8>();
    let sent = client.send(data);
    let rest = to_server.write_all(b"hello, server".to_vec()).await;
    if !rest.is_empty() {
        return Err("the send stream stopped taking bytes".into());
    }
    drop(to_server);
    ok!(sent.await);
    let got = from_client.collect().await;
    if got != b"hello, server" {
        return Err(format!("the server read {got:?}"));
    }
    ok!(client_done.await);
    // Server → client on the half-closed connection.
    let (from_server, server_done) = client.receive();
    let (mut to_client, data) = wit_stream::new::<u8>();
    let sent = server.send(data);
    let _ = to_client.write_all(b"hello, client".to_vec()).await;
    drop(to_client);
    ok!(sent.await);
    let got = from_server.collect().await;
    if got != b"hello, client" {
        return Err(format!("the client read {got:?}"));
    }
    ok!(server_done.await);
    // Sending again after the stream ended fails.
    let (_, data) = wit_stream::new::<u8>();
    expect!(client.send(data).await, Err(ErrorCode::InvalidState));
    Ok(())
}

async fn tcp_receive_twice() -> Outcome {
    let (_listener, _incoming, port) = listener4()?;
    let client = ok!(TcpSocket::create(IpAddressFamily::Ipv4));
    // Not connected yet: nothing to receive.
    let (_, done) = client.receive();
    expect!(done.await, Err(ErrorCode::InvalidState));
    let client = ok!(TcpSocket::create(IpAddressFamily::Ipv4));
    ok!(client.connect(loopback4(port)).await);
    let (_first, _) = client.receive();
    let (_, done) = client.receive();
    expect!(done.await, Err(ErrorCode::InvalidState));
    Ok(())
}

async fn tcp_sockopts() -> Outcome {
    let socket = ok!(TcpSocket::create(IpAddressFamily::Ipv4));
    ok!(socket.set_keep_alive_enabled(true));
    expect!(socket.get_keep_alive_enabled(), Ok(true));
    ok!(socket.set_keep_alive_enabled(false));
    expect!(socket.get_keep_alive_enabled(), Ok(false));
    let second = 1_000_000_000;
    ok!(socket.set_keep_alive_idle_time(10 * second));
    expect!(socket.get_keep_alive_idle_time(), Ok(idle) if idle >= second);
    expect!(
        socket.set_keep_alive_idle_time(0),
        Err(ErrorCode::InvalidArgument)
    );
    ok!(socket.set_keep_alive_interval(5 * second));
    expect!(socket.get_keep_alive_interval(), Ok(interval) if interval >= second);
    expect!(
        socket.set_keep_alive_interval(0),
        Err(ErrorCode::InvalidArgument)
    );
    ok!(socket.set_keep_alive_count(3));
    expect!(socket.get_keep_alive_count(), Ok(3));
    expect!(
        socket.set_keep_alive_count(0),
        Err(ErrorCode::InvalidArgument)
    );
    ok!(socket.set_hop_limit(42));
    expect!(socket.get_hop_limit(), Ok(42));
    expect!(socket.set_hop_limit(0), Err(ErrorCode::InvalidArgument));
    ok!(socket.set_receive_buffer_size(64 * 1024));
    expect!(socket.get_receive_buffer_size(), Ok(size) if size > 0);
    expect!(
        socket.set_receive_buffer_size(0),
        Err(ErrorCode::InvalidArgument)
    );
    ok!(socket.set_send_buffer_size(64 * 1024));
    expect!(socket.get_send_buffer_size(), Ok(size) if size > 0);
    expect!(
        socket.set_send_buffer_size(0),
        Err(ErrorCode::InvalidArgument)
    );
    ok!(socket.set_listen_backlog_size(16));
    expect!(
        socket.set_listen_backlog_size(0),
        Err(ErrorCode::InvalidArgument)
    );
    Ok(())
}

async fn tcp_ipv6() -> Outcome {
    let listener = ok!(TcpSocket::create(IpAddressFamily::Ipv6));
    match listener.bind(loopback6(0)) {
        Ok(()) => {}
        // A machine without ::1 has nothing to test here.
        Err(ErrorCode::AddressNotBindable) => return Ok(()),
        Err(err) => return Err(format!("bind [::1]:0: {err:?}")),
    }
    let mut incoming = ok!(listener.listen());
    let port = port(ok!(listener.get_local_address()));
    let client = ok!(TcpSocket::create(IpAddressFamily::Ipv6));
    // IPv6 sockets are IPv6-only: an IPv4-mapped address is refused.
    let mapped = IpSocketAddress::Ipv6(Ipv6SocketAddress {
        port,
        flow_info: 0,
        address: (0, 0, 0, 0, 0, 0xffff, 0x7f00, 1),
        scope_id: 0,
    });
    expect!(
        client.connect(mapped).await,
        Err(ErrorCode::InvalidArgument)
    );
    let client = ok!(TcpSocket::create(IpAddressFamily::Ipv6));
    ok!(client.connect(loopback6(port)).await);
    if incoming.next().await.is_none() {
        return Err("no IPv6 connection arrived".into());
    }
    Ok(())
}

async fn udp_bind() -> Outcome {
    let socket = ok!(UdpSocket::create(IpAddressFamily::Ipv4));
    expect!(socket.get_local_address(), Err(ErrorCode::InvalidState));
    expect!(socket.bind(loopback6(0)), Err(ErrorCode::InvalidArgument));
    ok!(socket.bind(loopback4(0)));
    let bound = ok!(socket.get_local_address());
    if port(bound) == 0 {
        return Err("port 0 stayed 0 after bind".into());
    }
    expect!(socket.bind(loopback4(0)), Err(ErrorCode::InvalidState));
    let other = ok!(UdpSocket::create(IpAddressFamily::Ipv4));
    expect!(other.bind(bound), Err(ErrorCode::AddressInUse));
    Ok(())
}

async fn udp_pair() -> Result<(UdpSocket, IpSocketAddress, UdpSocket, IpSocketAddress), String> {
    let a = ok!(UdpSocket::create(IpAddressFamily::Ipv4));
    ok!(a.bind(loopback4(0)));
    let a_addr = ok!(a.get_local_address());
    let b = ok!(UdpSocket::create(IpAddressFamily::Ipv4));
    ok!(b.bind(loopback4(0)));
    let b_addr = ok!(b.get_local_address());
    Ok((a, a_addr, b, b_addr))
}

async fn udp_send_receive() -> Outcome {
    let (a, a_addr, b, b_addr) = udp_pair().await?;
    ok!(a.send(b"one".to_vec(), Some(b_addr)).await);
    let (data, from) = ok!(b.receive().await);
    if data != b"one" || port(from) != port(a_addr) {
        return Err(format!("received {data:?} from {from:?}"));
    }
    // An empty datagram is a datagram.
    ok!(b.send(Vec::new(), Some(a_addr)).await);
    let (data, _) = ok!(a.receive().await);
    if !data.is_empty() {
        return Err(format!("the empty datagram came as {data:?}"));
    }
    // Sending from an unbound socket binds it.
    let unbound = ok!(UdpSocket::create(IpAddressFamily::Ipv4));
    ok!(unbound.send(b"two".to_vec(), Some(b_addr)).await);
    if port(ok!(unbound.get_local_address())) == 0 {
        return Err("an implicit bind for send got port 0".into());
    }
    let (data, _) = ok!(b.receive().await);
    if data != b"two" {
        return Err(format!("received {data:?}"));
    }
    Ok(())
}

async fn udp_connect() -> Outcome {
    let (a, a_addr, b, b_addr) = udp_pair().await?;
    expect!(a.get_remote_address(), Err(ErrorCode::InvalidState));
    expect!(a.disconnect(), Err(ErrorCode::InvalidState));
    ok!(a.connect(b_addr));
    if port(ok!(a.get_remote_address())) != port(b_addr) {
        return Err("the remote address is not the peer".into());
    }
    // Connected: sending needs no address, and another address is refused.
    ok!(a.send(b"to the peer".to_vec(), None).await);
    let (data, from) = ok!(b.receive().await);
    if data != b"to the peer" || port(from) != port(a_addr) {
        return Err(format!("received {data:?} from {from:?}"));
    }
    let elsewhere = loopback4(free_port()?);
    expect!(
        a.send(b"x".to_vec(), Some(elsewhere)).await,
        Err(ErrorCode::InvalidArgument)
    );
    ok!(a.disconnect());
    expect!(a.get_remote_address(), Err(ErrorCode::InvalidState));
    expect!(
        a.send(b"x".to_vec(), None).await,
        Err(ErrorCode::InvalidArgument)
    );
    expect!(
        a.connect(v4(0, 0, 0, 0, 9)),
        Err(ErrorCode::InvalidArgument)
    );
    expect!(a.connect(loopback4(0)), Err(ErrorCode::InvalidArgument));
    Ok(())
}

async fn udp_errors() -> Outcome {
    let (a, _, _b, b_addr) = udp_pair().await?;
    // One byte over what IPv4 carries.
    expect!(
        a.send(vec![0; 65_508], Some(b_addr)).await,
        Err(ErrorCode::DatagramTooLarge)
    );
    expect!(
        a.send(b"x".to_vec(), Some(v4(0, 0, 0, 0, 9))).await,
        Err(ErrorCode::InvalidArgument)
    );
    expect!(
        a.send(b"x".to_vec(), Some(loopback4(0))).await,
        Err(ErrorCode::InvalidArgument)
    );
    expect!(
        a.send(b"x".to_vec(), Some(loopback6(9))).await,
        Err(ErrorCode::InvalidArgument)
    );
    // Unbound: nothing to receive.
    let unbound = ok!(UdpSocket::create(IpAddressFamily::Ipv4));
    expect!(unbound.receive().await, Err(ErrorCode::InvalidState));
    Ok(())
}

async fn udp_sockopts() -> Outcome {
    let socket = ok!(UdpSocket::create(IpAddressFamily::Ipv4));
    expect!(socket.get_address_family(), IpAddressFamily::Ipv4);
    ok!(socket.set_unicast_hop_limit(42));
    expect!(socket.get_unicast_hop_limit(), Ok(42));
    expect!(
        socket.set_unicast_hop_limit(0),
        Err(ErrorCode::InvalidArgument)
    );
    ok!(socket.set_receive_buffer_size(64 * 1024));
    expect!(socket.get_receive_buffer_size(), Ok(size) if size > 0);
    expect!(
        socket.set_receive_buffer_size(0),
        Err(ErrorCode::InvalidArgument)
    );
    ok!(socket.set_send_buffer_size(64 * 1024));
    expect!(socket.get_send_buffer_size(), Ok(size) if size > 0);
    expect!(
        socket.set_send_buffer_size(0),
        Err(ErrorCode::InvalidArgument)
    );
    Ok(())
}

async fn name_lookup() -> Outcome {
    let ips = ok!(ip_name_lookup::resolve_addresses("localhost".into()).await);
    if !ips
        .iter()
        .any(|ip| matches!(ip, IpAddress::Ipv4((127, 0, 0, 1))))
    {
        return Err(format!("localhost resolved to {ips:?}"));
    }
    // An IP literal resolves to itself.
    let ips = ok!(ip_name_lookup::resolve_addresses("127.0.0.1".into()).await);
    expect!(ips.as_slice(), [IpAddress::Ipv4((127, 0, 0, 1))]);
    // Not a name at all.
    expect!(
        ip_name_lookup::resolve_addresses("not a name".into()).await,
        Err(LookupError::InvalidArgument)
    );
    expect!(
        ip_name_lookup::resolve_addresses(String::new()).await,
        Err(LookupError::InvalidArgument)
    );
    Ok(())
}
