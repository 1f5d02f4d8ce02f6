//! The library against real sockets on loopback, both families, under a host that
//! grants the network (`.ci/run` runs these with `wasmtime run -S inherit-network`).

use std::io::{ErrorKind, Read, Write};
use std::time::Duration;

use super::*;

/// The loopback addresses to test on: IPv4, and IPv6 when the machine has `::1`.
fn loopbacks() -> Vec<&'static str> {
    if listen("[::1]:0").is_ok() {
        vec!["127.0.0.1:0", "[::1]:0"]
    } else {
        eprintln!("skipping [::1]: this machine has no IPv6 loopback");
        vec!["127.0.0.1:0"]
    }
}

/// A listener and a connected pair: (client, server side).
fn pair(local: &str) -> (Listener, Conn, Conn) {
    let listener = listen(local).expect("listen");
    let client = dial(&listener.local_addr().to_string()).expect("dial");
    let server = listener.accept().expect("accept");
    (listener, client, server)
}

/// A read deadline fires on a silent peer with `i/o timeout`; after the deadline is
/// moved, the same connection reads what the peer sends next.
#[test]
fn read_deadline_fires_and_the_connection_stays_usable() {
    for local in loopbacks() {
        let (_listener, mut client, mut server) = pair(local);
        client.set_read_deadline(Some(Deadline::after(Duration::from_millis(50))));
        let mut buf = [0; 16];
        let err = client.read(&mut buf).expect_err("a silent peer");
        assert_eq!(err.kind(), ErrorKind::TimedOut, "{local}: {err}");
        assert!(err.to_string().ends_with(": i/o timeout"), "{err}");

        server.write_all(b"late").expect("write");
        server.flush().expect("flush");
        client.set_read_deadline(Some(Deadline::after(Duration::from_secs(10))));
        let n = client
            .read(&mut buf)
            .expect("read after the deadline moved");
        assert_eq!(&buf[..n], b"late", "{local}");
        client.set_read_deadline(None);
        server.close_write().expect("close_write");
        assert_eq!(client.read(&mut buf).expect("end of stream"), 0);
    }
}

/// An accept deadline fires when no one connects; the listener then still accepts.
#[test]
fn accept_deadline_fires_and_the_listener_stays_usable() {
    for local in loopbacks() {
        let mut listener = listen(local).expect("listen");
        listener.set_deadline(Some(Deadline::after(Duration::from_millis(50))));
        let err = listener.accept().expect_err("nobody connects");
        assert!(err.is_timeout(), "{local}: {err}");
        listener.set_deadline(None);
        let _client = dial(&listener.local_addr().to_string()).expect("dial");
        listener
            .accept()
            .expect("accept after the deadline was cleared");
    }
}

/// `dial` and a listener on [::1] talk as on 127.0.0.1, with the right addresses.
#[test]
fn tcp_on_both_families() {
    for local in loopbacks() {
        let (listener, mut client, mut server) = pair(local);
        assert_eq!(client.peer_addr(), listener.local_addr());
        assert_eq!(server.peer_addr(), client.local_addr());
        client.write_all(b"ping").expect("write");
        client.close_write().expect("close_write");
        let mut got = Vec::new();
        server.read_to_end(&mut got).expect("read");
        assert_eq!(got, b"ping", "{local}");
    }
}

/// IPv6 sockets are IPv6-only under wasi:sockets 0.2: a listener on [::] does not
/// take IPv4 connections, so serving both families takes two listeners.
#[test]
fn no_dual_stack() {
    if loopbacks().len() < 2 {
        return;
    }
    let listener = listen("[::]:0").expect("listen on [::]");
    let port = listener.local_addr().port();
    let err = dial(&format!("127.0.0.1:{port}")).expect_err("IPv4 to an IPv6-only listener");
    assert_eq!(*err.reason(), Reason::ConnectionRefused, "{err}");
}

/// UDP on both families: send to a `PacketConn`, get the reply on a `UdpConn`, with
/// boundaries and sender addresses kept.
#[test]
fn udp_on_both_families() {
    for local in loopbacks() {
        let server = listen_packet(local).expect("listen_packet");
        let client = dial_udp(&server.local_addr().to_string()).expect("dial_udp");
        client.send(b"one").expect("send");
        client.send(b"two").expect("send");
        let mut buf = [0; 64];
        for want in [&b"one"[..], b"two"] {
            let (n, from) = server.recv_from(&mut buf).expect("recv_from");
            assert_eq!(&buf[..n], want, "{local}");
            assert_eq!(from.port(), client.local_addr().port());
            server.send_to(want, from).expect("send_to");
        }
        for want in [&b"one"[..], b"two"] {
            let n = client.recv(&mut buf).expect("recv");
            assert_eq!(&buf[..n], want, "{local}");
        }
        assert_eq!(client.peer_addr(), server.local_addr());
    }
}

/// A UDP read deadline fires, and the socket still receives afterwards.
#[test]
fn udp_read_deadline() {
    let mut server = listen_packet("127.0.0.1:0").expect("listen_packet");
    server.set_read_deadline(Some(Deadline::after(Duration::from_millis(50))));
    let mut buf = [0; 8];
    let err = server.recv_from(&mut buf).expect_err("nobody sends");
    assert!(err.is_timeout(), "{err}");
    let client = dial_udp(&server.local_addr().to_string()).expect("dial_udp");
    client.send(b"hi").expect("send");
    server.set_read_deadline(None);
    let (n, _) = server.recv_from(&mut buf).expect("recv_from");
    assert_eq!(&buf[..n], b"hi");
}

/// Every option wasi:sockets offers can be set and read back (buffer sizes as the OS
/// rounds them: at least what was asked).
#[test]
fn socket_options() {
    let (listener, client, _server) = pair("127.0.0.1:0");
    let tcp = client.options();
    tcp.set_keep_alive(true).expect("keep-alive");
    assert!(tcp.keep_alive().expect("keep-alive"));
    tcp.set_keep_alive_idle(Duration::from_secs(30))
        .expect("idle");
    assert_eq!(
        tcp.keep_alive_idle().expect("idle"),
        Duration::from_secs(30)
    );
    tcp.set_keep_alive_interval(Duration::from_secs(5))
        .expect("interval");
    assert_eq!(
        tcp.keep_alive_interval().expect("interval"),
        Duration::from_secs(5)
    );
    tcp.set_keep_alive_count(4).expect("count");
    assert_eq!(tcp.keep_alive_count().expect("count"), 4);
    tcp.set_hop_limit(33).expect("hop limit");
    assert_eq!(tcp.hop_limit().expect("hop limit"), 33);
    tcp.set_read_buffer(64 * 1024).expect("read buffer");
    assert!(tcp.read_buffer().expect("read buffer") >= 64 * 1024);
    tcp.set_write_buffer(64 * 1024).expect("write buffer");
    assert!(tcp.write_buffer().expect("write buffer") >= 64 * 1024);
    listener.options().set_backlog(16).expect("backlog");
    let err = tcp.set_hop_limit(0).expect_err("hop limit 0");
    assert_eq!(*err.reason(), Reason::InvalidArgument, "{err}");

    let packets = listen_packet("127.0.0.1:0").expect("listen_packet");
    let udp = packets.options();
    udp.set_hop_limit(7).expect("hop limit");
    assert_eq!(udp.hop_limit().expect("hop limit"), 7);
    udp.set_read_buffer(128 * 1024).expect("read buffer");
    assert!(udp.read_buffer().expect("read buffer") >= 128 * 1024);
    udp.set_write_buffer(128 * 1024).expect("write buffer");
    assert!(udp.write_buffer().expect("write buffer") >= 128 * 1024);
}

/// A poller answers the tokens of the ready pollables only, in registration order:
/// a listener once a client is waiting, a connection once bytes arrived, an elapsed
/// timer; never a far timer or a silent connection. A round with nothing registered
/// returns no tokens instead of trapping.
#[test]
fn poller_answers_only_ready_tokens() {
    use wasi::clocks::monotonic_clock::subscribe_duration;

    let far = subscribe_duration(3_600_000_000_000);
    let now = subscribe_duration(0);
    let mut poller = Poller::new();
    assert!(poller.round().wait().is_empty());
    for local in loopbacks() {
        let listener = listen(local).expect("listen");
        let mut client = dial(&listener.local_addr().to_string()).expect("dial");
        let mut round = poller.round();
        round.register(&far, 'f');
        round.register(listener.acceptable(), 'l');
        assert_eq!(round.len(), 2);
        assert_eq!(round.wait(), ['l'], "{local}");

        let server = listener
            .try_accept()
            .expect("accept")
            .expect("a waiting client");
        let mut round = poller.round();
        round.register(server.readable(), 's');
        round.register(&now, 'n');
        assert_eq!(round.wait(), ['n'], "{local}: the server's input is silent");

        client.write_all(b"x").expect("write");
        client.flush().expect("flush");
        let mut round = poller.round();
        round.register(&far, 'f');
        round.register(server.readable(), 's');
        assert_eq!(round.wait(), ['s'], "{local}");
        // Still ready, beside the elapsed timer: both answered, in order.
        let mut round = poller.round();
        round.register(&far, 'f');
        round.register(server.readable(), 's');
        round.register(&now, 'n');
        assert_eq!(round.wait(), ['s', 'n'], "{local}");
    }
}
