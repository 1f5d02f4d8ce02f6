//! The command, exported as `wasi:cli/run`: the classic TCP client and server, an
//! echo server, and their UDP counterparts.
//!
//! Output lines are a contract: `listening on ADDR` (printed and flushed before the
//! first accept), `Received: <bytes>`, and on failure one `Error: <op> tcp <addr>:
//! <reason>` line on stderr. Exit status: 0 done, 1 a network error, 2 bad usage.

use std::io::{self, Read, Write};

use crate::cmdline::{Flags, Line};
use crate::echo::{self, Mode};
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

const USAGE: &str = "\
usage: sockbox-guest <command> [arguments]

commands:
  dial ADDR [MESSAGE] [--timeout D]
                         connect to ADDR, send MESSAGE (default \"Hello, World!\"),
                         half-close, print the reply as `Received: <reply>`; D (500ms,
                         2s) bounds the connect, then the wait for the reply
  lookup NAME            print NAME's addresses, one per line
  listen ADDR            accept one connection on ADDR, print its first message as
                         `Received: <msg>`, reply \"Hello, World!\", close
  echo ADDR [--count N] [--copy]
                         send every connection's bytes back until it half-closes,
                         serving all connections at once; exit after N connections
                         (default: serve forever); the host splices the bytes, or
                         with --copy the guest reads and writes them
  udp-echo ADDR [--count N]
                         send every UDP datagram back to its sender; exit after N
                         datagrams (default: serve forever)
  udp-send ADDR MESSAGE [--timeout D]
                         send MESSAGE as one datagram, print the first datagram back
                         as `Received: <reply>`; D like 500ms or 2s (default: wait)

ADDR is 1.2.3.4:80, [::1]:80 or name:80; port 0 picks a free port, and servers print
`listening on <addr>` with the real one before they accept.
exit status: 0 done, 1 network error, 2 bad usage";

/// The classic programs' message, sent by `dial` and replied by `listen`.
const HELLO: &[u8] = b"Hello, World!";

/// The most `dial` reads of a reply.
const MAX_REPLY: u64 = 64 * 1024;

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
    let Some((&command, rest)) = args.split_first() else {
        return Err(Failure::Usage("no command given".into()));
    };
    let flags = match command {
        "dial" | "udp-send" => &TIMEOUT,
        "echo" => &ECHO,
        "udp-echo" => &COUNT,
        "lookup" | "listen" | "help" | "--help" | "-h" => &NONE,
        _ => return Err(Failure::Usage(format!("unknown command {command:?}"))),
    };
    let line = Line::parse(command, rest, flags).map_err(Failure::Usage)?;
    let timeout = line.value("timeout").map(parse_duration).transpose()?;
    let count = line.value("count").map(parse_count).transpose()?;
    let mode = if line.has("copy") {
        Mode::Copy
    } else {
        Mode::Splice
    };
    match (command, line.words.as_slice()) {
        ("dial", [addr]) => dial(addr, HELLO, timeout),
        ("dial", [addr, message]) => dial(addr, message.as_bytes(), timeout),
        ("lookup", [name]) => lookup(name),
        ("listen", [addr]) => listen(addr),
        ("echo", [addr]) => echo(addr, count, mode),
        ("udp-echo", [addr]) => udp_echo(addr, count),
        ("udp-send", [addr, message]) => udp_send(addr, message.as_bytes(), timeout),
        ("help" | "--help" | "-h", []) => Ok(out(format!("{USAGE}\n").as_bytes())?),
        _ => Err(Failure::Usage(format!("wrong arguments for {command}"))),
    }
}

/// The flags each command takes.
const TIMEOUT: Flags = Flags {
    with_value: &["timeout"],
    switches: &[],
};
const ECHO: Flags = Flags {
    with_value: &["count"],
    switches: &["copy"],
};
const COUNT: Flags = Flags {
    with_value: &["count"],
    switches: &[],
};
const NONE: Flags = Flags {
    with_value: &[],
    switches: &[],
};

/// Parses a duration as Go writes one: `500ms`, `2s`, `1.5s`, `1m`.
fn parse_duration(text: &str) -> Result<std::time::Duration, Failure> {
    let bad = || {
        Failure::Usage(format!(
            "--timeout wants a duration like 500ms or 2s, not {text:?}"
        ))
    };
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "ns" => number / 1e9,
        "us" | "µs" => number / 1e6,
        "ms" => number / 1e3,
        "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => return Err(bad()),
    };
    std::time::Duration::try_from_secs_f64(seconds).map_err(|_| bad())
}

fn parse_count(n: &str) -> Result<u64, Failure> {
    n.parse()
        .map_err(|_| Failure::Usage(format!("--count wants a whole number, not {n:?}")))
}

/// Rejects an address that cannot be parsed before any network use: that is bad usage.
fn check_addr(op: &str, network: &str, addr: &str) -> Result<(), Failure> {
    match net::split_host_port(addr) {
        Ok(_) => Ok(()),
        Err(reason) => Err(Failure::Usage(format!("{op} {network}: {reason}"))),
    }
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
    check_addr("dial", "tcp", addr)?;
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
    check_addr("listen", "tcp", addr)?;
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
    let mut buf = [0; 1024];
    let n = conn.read(&mut buf)?;
    received(&buf[..n])?;
    conn.write_all(HELLO)?;
    Ok(conn.close()?)
}

/// Serves connections all at once, sending back every byte each one sends.
fn echo(addr: &str, count: Option<u64>, mode: Mode) -> Result<(), Failure> {
    check_addr("echo", "tcp", addr)?;
    let listener = net::listen(addr)?;
    announce(listener.local_addr())?;
    echo::serve(&listener, count, mode)?;
    Ok(())
}

/// Sends every datagram back to its sender, serving all peers at once.
fn udp_echo(addr: &str, count: Option<u64>) -> Result<(), Failure> {
    check_addr("listen", "udp", addr)?;
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
    check_addr("dial", "udp", addr)?;
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
