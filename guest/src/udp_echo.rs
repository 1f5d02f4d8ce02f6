//! The UDP echo server: one event loop over the socket's pollables, so datagrams keep
//! arriving while replies wait for room, and a burst from many peers is received and
//! answered in the order it came.

use std::collections::VecDeque;
use std::net::SocketAddr;

use wasi::io::poll::Pollable;

use crate::net::{self, Backoff, PacketConn, Poller};
use crate::stdio;

/// The most replies waiting for room; past it the server stops receiving until some
/// are sent, and the socket's own buffer holds what arrives meanwhile.
const MAX_WAITING: usize = 64;

/// The largest datagram received whole (UDP's own limit).
const MAX_DATAGRAM: usize = 64 * 1024;

/// What a ready token names.
#[derive(Debug, Clone, Copy)]
enum Token {
    /// Datagrams have arrived.
    Readable,
    /// The host takes datagrams to send.
    Writable,
    /// The rest after a temporary failure is over: receive again.
    Rested,
}

/// Sends every datagram on `conn` back to its sender until `count` of them have been
/// answered (or forever), and returns how many were. One datagram's failure to go out
/// is reported on stderr and counts as answered; a peer refusing an earlier reply
/// (ICMP) is reported and the server goes on; only the socket failing ends the loop.
pub(crate) fn serve(conn: &PacketConn, count: Option<u64>) -> Result<u64, net::Error> {
    let mut waiting: VecDeque<(Vec<u8>, SocketAddr)> = VecDeque::new();
    let mut buf = vec![0; MAX_DATAGRAM];
    let (mut received, mut answered) = (0u64, 0u64);
    let mut poller = Poller::new();
    // After a temporary receive failure (out of buffers), receiving rests until this
    // timer fires, while waiting replies go on being sent.
    let mut backoff = Backoff::new();
    let mut resting: Option<Pollable> = None;
    while count.is_none_or(|count| answered < count) {
        let wanted = |received: u64| count.is_none_or(|count| received < count);
        let mut round = poller.round();
        if wanted(received) && waiting.len() < MAX_WAITING {
            match &resting {
                Some(timer) => round.register(timer, Token::Rested),
                None => round.register(conn.readable(), Token::Readable),
            }
        }
        if !waiting.is_empty() {
            round.register(conn.writable(), Token::Writable);
        }
        for &token in round.wait() {
            match token {
                Token::Rested => resting = None,
                // Sending is tried after every round, below.
                Token::Writable => {}
                Token::Readable => {
                    while wanted(received) && waiting.len() < MAX_WAITING {
                        match conn.try_recv_from(&mut buf) {
                            Ok(Some((n, peer))) => {
                                waiting.push_back((buf[..n].to_vec(), peer));
                                received += 1;
                                backoff.reset();
                            }
                            Ok(None) => break,
                            Err(err) if err.is_temporary() => {
                                resting = Some(stdio::rest_after(&err, &mut backoff));
                                break;
                            }
                            // An earlier reply's peer refused it: that peer's failure.
                            Err(err) if err.is_peer_failure() => {
                                stdio::err_line(&format!("Error: {err}"));
                            }
                            Err(err) => return Err(err),
                        }
                    }
                }
            }
        }
        // Send what the host takes now: usually all of it, without another poll.
        while let Some((datagram, peer)) = waiting.front() {
            match conn.try_send_to(datagram, *peer) {
                Ok(false) => break,
                Ok(true) => {}
                Err(err) => stdio::err_line(&format!("Error: {err}")),
            }
            waiting.pop_front();
            answered += 1;
        }
    }
    Ok(answered)
}
