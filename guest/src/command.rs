//! The command, exported as `wasi:cli/run`: the classic TCP client and server, an
//! echo server, and their UDP counterparts.
//!
//! Output lines are a contract: `listening on ADDR` (printed and flushed before the
//! first accept), `Received: <bytes>`, and on failure one `Error: <op> tcp <addr>:
//! <reason>` line on stderr. Exit status: 0 done, 1 a network error, 2 bad usage.

use std::io::{self, Read, Write};

use crate::echo::{self, Mode};
use crate::invocation::{self, HELLO, Invocation, MAX_MESSAGE, MAX_REPLY, Mover, USAGE};
use crate::net;
use crate::stdio::{announce, err_line, out};
use crate::udp_echo;
use wasi::cli::{environment, exit};

/// Runs the command its arguments name: the component's `wasi:cli/run`.
pub(crate) fn main() -> Result<(), ()> {
    let args = environment::get_arguments();
    let args: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
    match run(&args) {
        Ok(()) => Ok(()),
        Err(Failure::Usage(why)) => {
            err_line(&format!("Error: {why}\n\n{USAGE}"));
            exit::exit_with_code(2);
            Err(())
        }
        Err(Failure::Net(err)) => {
            err_line(&format!("Error: {err}"));
            Err(())
        }
    }
}

/// What went wrong, and so which exit status to give.
enum Failure {
    Usage(String),
    Net(io::Error),
}

impl From<io::Error> for Failure {
    fn from(err: io::Error) -> Self {
        Self::Net(err)
    }
}

impl From<net::Error> for Failure {
    fn from(err: net::Error) -> Self {
        Self::Net(err.into())
    }
}

fn run(args: &[&str]) -> Result<(), Failure> {
    match invocation::parse(args).map_err(Failure::Usage)? {
        Invocation::Dial {
            addr,
            message,
            timeout,
        } => dial(addr, message, timeout),
        Invocation::Lookup { name } => lookup(name),
        Invocation::Listen { addr } => listen(addr),
        Invocation::Echo { addr, count, mover } => {
            // Splicing is this build's faster way: `docs/performance.md`.
            let mode = match mover.unwrap_or(Mover::Host) {
                Mover::Guest => Mode::Copy,
                Mover::Host => Mode::Splice,
            };
            echo(addr, count, mode)
        }
        Invocation::UdpEcho { addr, count } => udp_echo(addr, count),
        Invocation::UdpSend {
            addr,
            message,
            timeout,
        } => udp_send(addr, message, timeout),
        Invocation::Pair { addr, wait } => pair(addr, wait),
        Invocation::Help => Ok(out(format!("{USAGE}\n").as_bytes())?),
    }
}

/// A socket pair over loopback, as Python's `socket.socketpair()` makes one on WASI.
fn pair(addr: &str, wait: Option<&str>) -> Result<(), Failure> {
    let listener = net::listen(addr)?;
    let at = listener.local_addr();
    announce(at)?;
    if let Some(wait) = wait {
        io::copy(&mut net::dial(wait)?, &mut io::sink())?;
    }
    let mut client = net::dial(&at.to_string())?;
    let mut server = listener.accept()?;
    let mut byte = [b'p'];
    client.write_all(&byte)?;
    server.read_exact(&mut byte)?;
    server.write_all(&byte)?;
    client.read_exact(&mut byte)?;
    out(format!("pair {} -> {}\n", client.local_addr(), server.local_addr()).as_bytes())?;
    Ok(())
}

/// Prints each address of `name`, one per line.
fn lookup(name: &str) -> Result<(), Failure> {
    let ips = net::lookup_host(name).map_err(|reason| io::Error::other(reason.to_string()))?;
    let lines: String = ips.iter().map(|ip| format!("{ip}\n")).collect();
    Ok(out(lines.as_bytes())?)
}

/// The classic client: send a message, half-close, print the reply. With a timeout,
/// the connect and then the wait for the reply each get that long.
fn dial(addr: &str, message: &[u8], timeout: Option<std::time::Duration>) -> Result<(), Failure> {
    let mut conn = match timeout {
        Some(timeout) => net::dial_timeout(addr, timeout)?,
        None => net::dial(addr)?,
    };
    conn.set_read_deadline(timeout.map(net::Deadline::after));
    conn.write_all(message)?;
    conn.close_write()?;
    let mut reply = Vec::new();
    (&mut conn).take(MAX_REPLY).read_to_end(&mut reply)?;
    received(&reply)?;
    Ok(conn.close()?)
}

/// The classic server: accept one connection, print its message, reply, close.
fn listen(addr: &str) -> Result<(), Failure> {
    let listener = net::listen(addr)?;
    announce(listener.local_addr())?;
    let mut backoff = net::Backoff::new();
    let mut conn = loop {
        match listener.accept() {
            Ok(conn) => break conn,
            Err(err) if err.is_temporary() => {
                let delay = backoff.next_delay();
                err_line(&format!("Error: {err}; retrying in {delay:?}"));
                net::Backoff::sleep(delay);
            }
            Err(err) => return Err(err.into()),
        }
    };
    let mut buf = [0; MAX_MESSAGE];
    let n = conn.read(&mut buf)?;
    received(&buf[..n])?;
    conn.write_all(HELLO)?;
    Ok(conn.close()?)
}

/// Serves connections all at once, sending back every byte each one sends.
fn echo(addr: &str, count: Option<u64>, mode: Mode) -> Result<(), Failure> {
    let listener = net::listen(addr)?;
    announce(listener.local_addr())?;
    echo::serve(&listener, count, mode)?;
    Ok(())
}

/// Sends every datagram back to its sender, serving all peers at once.
fn udp_echo(addr: &str, count: Option<u64>) -> Result<(), Failure> {
    let conn = net::listen_packet(addr)?;
    announce(conn.local_addr())?;
    udp_echo::serve(&conn, count)?;
    Ok(())
}

/// Sends one datagram and prints the first datagram that comes back.
fn udp_send(
    addr: &str,
    message: &[u8],
    timeout: Option<std::time::Duration>,
) -> Result<(), Failure> {
    let mut conn = net::dial_udp(addr)?;
    conn.set_read_deadline(timeout.map(net::Deadline::after));
    conn.send(message)?;
    let mut reply = vec![0; 64 * 1024];
    let n = conn.recv(&mut reply)?;
    Ok(received(&reply[..n])?)
}

fn received(bytes: &[u8]) -> io::Result<()> {
    let mut line = Vec::with_capacity(bytes.len() + 11);
    line.extend_from_slice(b"Received: ");
    line.extend_from_slice(bytes);
    line.push(b'\n');
    out(&line)
}
