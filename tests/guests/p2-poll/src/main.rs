//! The edges of sockbox's `wasi:io/poll` (WASI 0.2), one scenario each, on loopback.
//!
//! sockbox skips a watched pollable until its waker fires or a call may have replaced
//! its registration. Each scenario first lets `poll` register a pollable that is not
//! ready (a short timer wins), then does what could leave that registration stale — a
//! read that finds nothing, `ready`, a second pollable on the same stream, an accept
//! that finds nothing, a shutdown — then makes the pollable ready and checks that
//! `poll` says so before a long timer. Prints `ok NAME` for each; a failure panics.
//!
//! With `refused-bind-then-dial BIND DIAL` it does only that (see the function).

use wasi::clocks::monotonic_clock::subscribe_duration;
use wasi::io::poll::{Pollable, poll};
use wasi::io::streams::{InputStream, OutputStream, StreamError};
use wasi::sockets::instance_network::instance_network;
use wasi::sockets::network::{IpAddressFamily, IpSocketAddress, Ipv4SocketAddress, Network};
use wasi::sockets::tcp::{ShutdownType, TcpSocket};
use wasi::sockets::tcp_create_socket::create_tcp_socket;

/// How long a pollable that is not ready is given (it must lose to this timer).
const SHORT_NS: u64 = 20_000_000;
/// How long a pollable that is ready may take to say so.
const LONG_NS: u64 = 5_000_000_000;

/// A named scenario.
type Scenario = (&'static str, fn(&Network));

fn main() {
    let scenarios: [Scenario; 8] = [
        ("read-that-finds-nothing", read_that_finds_nothing),
        ("ready-on-the-pollable", ready_on_the_pollable),
        ("two-pollables-one-stream", two_pollables_one_stream),
        ("accept-that-finds-nothing", accept_that_finds_nothing),
        ("shutdown-makes-ready", shutdown_makes_ready),
        ("peer-close-makes-ready", peer_close_makes_ready),
        ("write-then-room", write_then_room),
        ("busy-among-idle", busy_among_idle),
    ];
    let net = instance_network();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [mode, bind, dial] = args.as_slice()
        && mode == "refused-bind-then-dial"
    {
        refused_bind_then_dial(&net, parse(bind), parse(dial));
        return;
    }
    for (name, scenario) in scenarios {
        scenario(&net);
        println!("ok {name}");
    }
}

/// Reports whether `pollable` is ready before a timer of `ns` fires.
fn ready_within(pollable: &Pollable, ns: u64) -> bool {
    let timer = subscribe_duration(ns);
    let ready = poll(&[pollable, &timer]);
    ready.contains(&0)
}

/// Asserts `pollable` is not ready now, letting `poll` register it.
fn assert_idle(pollable: &Pollable, what: &str) {
    assert!(!ready_within(pollable, SHORT_NS), "{what}: ready too early");
}

/// Asserts `pollable` becomes ready.
fn assert_ready(pollable: &Pollable, what: &str) {
    assert!(
        ready_within(pollable, LONG_NS),
        "{what}: never reported ready"
    );
}

/// `refused-bind-then-dial BIND DIAL`: a bind the policy refuses on the port it got,
/// then a connect on the same socket (the one sockbox put in its place); prints
/// `connected` and waits for the peer to close.
fn refused_bind_then_dial(net: &Network, bind: IpSocketAddress, dial: IpSocketAddress) {
    let socket = create_tcp_socket(IpAddressFamily::Ipv4).expect("create");
    let refused = socket.start_bind(net, bind);
    assert_eq!(
        refused,
        Err(wasi::sockets::network::ErrorCode::AccessDenied),
        "the bind is refused on the port it got"
    );
    socket.start_connect(net, dial).expect("connect");
    let pollable = wait(&socket);
    let (input, _output) = loop {
        match socket.finish_connect() {
            Ok(streams) => break streams,
            Err(wasi::sockets::network::ErrorCode::WouldBlock) => {
                assert_ready(&pollable, "connect");
            }
            Err(err) => panic!("connect: {err:?}"),
        }
    };
    println!("connected");
    let readable = input.subscribe();
    loop {
        match input.read(64) {
            Ok(_) => readable.block(),
            Err(StreamError::Closed) => return,
            Err(err) => panic!("read: {err:?}"),
        }
    }
}

/// An IPv4 `ADDR:PORT` argument.
fn parse(text: &str) -> IpSocketAddress {
    let addr: std::net::SocketAddrV4 = text.parse().expect("an IPv4 ADDR:PORT");
    let [a, b, c, d] = addr.ip().octets();
    IpSocketAddress::Ipv4(Ipv4SocketAddress {
        port: addr.port(),
        address: (a, b, c, d),
    })
}

fn loopback(port: u16) -> IpSocketAddress {
    IpSocketAddress::Ipv4(Ipv4SocketAddress {
        port,
        address: (127, 0, 0, 1),
    })
}

fn wait(socket: &TcpSocket) -> Pollable {
    socket.subscribe()
}

fn listener(net: &Network) -> (TcpSocket, IpSocketAddress) {
    let socket = create_tcp_socket(IpAddressFamily::Ipv4).expect("create listener");
    socket.start_bind(net, loopback(0)).expect("bind");
    socket.finish_bind().expect("finish bind");
    socket.start_listen().expect("listen");
    socket.finish_listen().expect("finish listen");
    let addr = socket.local_address().expect("local address");
    (socket, addr)
}

/// One end of a connection.
struct End {
    input: InputStream,
    output: OutputStream,
    socket: TcpSocket,
}

fn connect(net: &Network, addr: IpSocketAddress) -> End {
    let socket = create_tcp_socket(IpAddressFamily::Ipv4).expect("create client");
    socket.start_connect(net, addr).expect("connect");
    let pollable = wait(&socket);
    loop {
        match socket.finish_connect() {
            Ok((input, output)) => {
                return End {
                    input,
                    output,
                    socket,
                };
            }
            Err(wasi::sockets::network::ErrorCode::WouldBlock) => {
                assert_ready(&pollable, "connect");
            }
            Err(err) => panic!("connect: {err:?}"),
        }
    }
}

fn accept(listener: &TcpSocket) -> End {
    let pollable = wait(listener);
    loop {
        match listener.accept() {
            Ok((socket, input, output)) => {
                return End {
                    input,
                    output,
                    socket,
                };
            }
            Err(wasi::sockets::network::ErrorCode::WouldBlock) => {
                assert_ready(&pollable, "accept");
            }
            Err(err) => panic!("accept: {err:?}"),
        }
    }
}

/// A connected pair on loopback: (server's end, client's end).
fn pair(net: &Network) -> (End, End) {
    let (listener, addr) = listener(net);
    let client = connect(net, addr);
    let server = accept(&listener);
    (server, client)
}

fn send(end: &End, bytes: &[u8]) {
    end.output
        .blocking_write_and_flush(bytes)
        .expect("write and flush");
}

fn read_that_finds_nothing(net: &Network) {
    let (server, client) = pair(net);
    let input = client.input.subscribe();
    assert_idle(&input, "input");
    assert_eq!(client.input.read(16).expect("read"), Vec::<u8>::new());
    send(&server, b"ping");
    assert_ready(&input, "input after a read that found nothing");
    assert_eq!(client.input.read(16).expect("read"), b"ping");
}

fn ready_on_the_pollable(net: &Network) {
    let (server, client) = pair(net);
    let input = client.input.subscribe();
    assert_idle(&input, "input");
    assert!(!input.ready(), "ready with nothing sent");
    send(&server, b"ping");
    assert_ready(&input, "input after ready()");
}

fn two_pollables_one_stream(net: &Network) {
    let (server, client) = pair(net);
    let first = client.input.subscribe();
    let second = client.input.subscribe();
    assert_idle(&first, "first");
    assert_idle(&second, "second");
    send(&server, b"ping");
    assert_ready(&first, "first pollable");
    assert_ready(&second, "second pollable");
    drop(second);
    assert_ready(&first, "first pollable, the second dropped");
}

fn accept_that_finds_nothing(net: &Network) {
    let (listener, addr) = listener(net);
    let pollable = wait(&listener);
    assert_idle(&pollable, "listener");
    assert!(
        matches!(
            listener.accept(),
            Err(wasi::sockets::network::ErrorCode::WouldBlock)
        ),
        "accept with nothing pending"
    );
    let _client = connect(net, addr);
    assert_ready(&pollable, "listener after an accept that found nothing");
    let _server = accept(&listener);
}

fn shutdown_makes_ready(net: &Network) {
    let (_server, client) = pair(net);
    let input = client.input.subscribe();
    assert_idle(&input, "input");
    client
        .socket
        .shutdown(ShutdownType::Receive)
        .expect("shutdown");
    assert_ready(&input, "input after shutdown");
    assert!(matches!(client.input.read(1), Err(StreamError::Closed)));
}

fn peer_close_makes_ready(net: &Network) {
    let (server, client) = pair(net);
    let input = client.input.subscribe();
    assert_idle(&input, "input");
    drop(server);
    assert_ready(&input, "input after the peer closed");
    assert!(matches!(client.input.read(1), Err(StreamError::Closed)));
}

fn write_then_room(net: &Network) {
    let (server, client) = pair(net);
    let output = client.output.subscribe();
    assert_ready(&output, "output");
    // More than the socket takes at once: the host finishes it in the background.
    let big = vec![7u8; 8 << 20];
    let mut sent = 0;
    let input = server.input.subscribe();
    let mut received = 0;
    while received < big.len() {
        if sent < big.len() {
            let room = usize::try_from(client.output.check_write().expect("check")).unwrap_or(0);
            let n = room.min(big.len() - sent);
            if n > 0 {
                client.output.write(&big[sent..sent + n]).expect("write");
                sent += n;
            }
        }
        let ready = poll(&[&output, &input]);
        assert!(!ready.is_empty());
        if ready.contains(&1) {
            received += server.input.read(1 << 16).expect("read").len();
        }
    }
    assert_eq!(received, big.len());
}

fn busy_among_idle(net: &Network) {
    let (listener, addr) = listener(net);
    let mut idle = Vec::new();
    for _ in 0..200 {
        let client = connect(net, addr);
        let server = accept(&listener);
        idle.push((server, client));
    }
    let (server, client) = pair(net);
    let pollables: Vec<Pollable> = idle.iter().map(|(s, _)| s.input.subscribe()).collect();
    let busy = server.input.subscribe();
    // A connection just accepted may say it is readable once with nothing to read
    // (under wasmtime-wasi 48, on the host's current-thread runtime): a read clears it.
    for (server, _) in &idle {
        assert_eq!(server.input.read(16).expect("read"), Vec::<u8>::new());
    }
    for round in 0..100u32 {
        send(&client, &round.to_le_bytes());
        let mut list: Vec<&Pollable> = pollables.iter().collect();
        list.push(&busy);
        let timer = subscribe_duration(LONG_NS);
        list.push(&timer);
        let ready = poll(&list);
        assert_eq!(ready, [200], "round {round}: only the busy one is ready");
        let mut got = Vec::new();
        while got.len() < 4 {
            got.extend(server.input.read(4 - got.len() as u64).expect("read"));
            if got.len() < 4 {
                assert_ready(&busy, "busy");
            }
        }
        assert_eq!(got, round.to_le_bytes());
    }
}
