//! The built-in command's line, parsed once for every build of the guest (WASI 0.2
//! and 0.3): which command, its arguments checked, its flags read. Usage errors are
//! found here, before any network use, with the words both builds print.

use std::time::Duration;

use crate::cmdline::{Flags, Line};
use crate::net;

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation<'a> {
    /// `dial ADDR [MESSAGE] [--timeout D]`.
    Dial {
        addr: &'a str,
        message: &'a [u8],
        timeout: Option<Duration>,
    },
    /// `lookup NAME`.
    Lookup { name: &'a str },
    /// `listen ADDR`.
    Listen { addr: &'a str },
    /// `echo ADDR [--count N] [--copy | --forward]`.
    Echo {
        addr: &'a str,
        count: Option<u64>,
        /// Who moves the bytes; `None`: the build's default.
        mover: Option<Mover>,
    },
    /// `udp-echo ADDR [--count N]`.
    UdpEcho { addr: &'a str, count: Option<u64> },
    /// `udp-send ADDR MESSAGE [--timeout D]`.
    UdpSend {
        addr: &'a str,
        message: &'a [u8],
        timeout: Option<Duration>,
    },
    /// `pair ADDR [--wait W]`.
    Pair {
        addr: &'a str,
        wait: Option<&'a str>,
    },
    /// `help`: print [`USAGE`].
    Help,
}

/// The usage text, printed after a usage error and by `help`.
pub const USAGE: &str = "\
usage: sockbox-guest <command> [arguments]

commands:
  dial ADDR [MESSAGE] [--timeout D]
                         connect to ADDR, send MESSAGE (default \"Hello, World!\"),
                         half-close, print the reply as `Received: <reply>`; D (500ms,
                         2s) bounds the connect, then the wait for the reply
  lookup NAME            print NAME's addresses, one per line
  listen ADDR            accept one connection on ADDR, print its first message as
                         `Received: <msg>`, reply \"Hello, World!\", close
  echo ADDR [--count N] [--copy | --forward]
                         send every connection's bytes back until it half-closes,
                         serving all connections at once; exit after N connections
                         (default: serve forever); with --copy the guest reads and
                         writes the bytes, with --forward the host moves them (0.2:
                         splice; 0.3: the receive stream is the send stream); by
                         default the faster way: 0.2 forwards, 0.3 copies
  udp-echo ADDR [--count N]
                         send every UDP datagram back to its sender; exit after N
                         datagrams (default: serve forever)
  udp-send ADDR MESSAGE [--timeout D]
                         send MESSAGE as one datagram, print the first datagram back
                         as `Received: <reply>`; D like 500ms or 2s (default: wait)
  pair ADDR [--wait W]   make a socket pair as Python's socket.socketpair() does on
                         WASI: listen on ADDR (127.0.0.1:0), connect to it, accept
                         that connection, send a byte each way, print
                         `pair <client> -> <listener>`; with W, first dial W and wait
                         until it closes

ADDR is 1.2.3.4:80, [::1]:80 or name:80; port 0 picks a free port, and servers print
`listening on <addr>` with the real one before they accept.
exit status: 0 done, 1 network error, 2 bad usage";

/// Who moves an echoed connection's bytes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mover {
    /// The guest reads them and writes them back (`--copy`).
    Guest,
    /// The host moves them without the guest seeing them (`--forward`): 0.2's splice,
    /// 0.3's receive stream handed back as the send stream.
    Host,
}

/// The classic programs' message, sent by `dial` and replied by `listen`.
pub const HELLO: &[u8] = b"Hello, World!";

/// The most `dial` reads of a reply.
pub const MAX_REPLY: u64 = 64 * 1024;

/// The most `listen` reads of the one message it prints.
pub const MAX_MESSAGE: usize = 1024;

/// Parses the arguments after the program name; a usage error comes back in the words
/// to print after `Error: `.
pub fn parse<'a>(args: &[&'a str]) -> Result<Invocation<'a>, String> {
    let Some((&command, rest)) = args.split_first() else {
        return Err("no command given".into());
    };
    let flags = match command {
        "dial" | "udp-send" => &TIMEOUT,
        "echo" => &ECHO,
        "udp-echo" => &COUNT,
        "pair" => &WAIT,
        "lookup" | "listen" | "help" | "--help" | "-h" => &NONE,
        _ => return Err(format!("unknown command {command:?}")),
    };
    let line = Line::parse(command, rest, flags)?;
    let timeout = line.value("timeout").map(parse_duration).transpose()?;
    let count = line.value("count").map(parse_count).transpose()?;
    let invocation = match (command, line.words.as_slice()) {
        ("dial", [addr]) => Invocation::Dial {
            addr,
            message: HELLO,
            timeout,
        },
        ("dial", [addr, message]) => Invocation::Dial {
            addr,
            message: message.as_bytes(),
            timeout,
        },
        ("lookup", [name]) => Invocation::Lookup { name },
        ("listen", [addr]) => Invocation::Listen { addr },
        ("echo", [addr]) => Invocation::Echo {
            addr,
            count,
            mover: match (line.has("copy"), line.has("forward")) {
                (true, true) => return Err("--copy and --forward exclude each other".into()),
                (true, false) => Some(Mover::Guest),
                (false, true) => Some(Mover::Host),
                (false, false) => None,
            },
        },
        ("udp-echo", [addr]) => Invocation::UdpEcho { addr, count },
        ("udp-send", [addr, message]) => Invocation::UdpSend {
            addr,
            message: message.as_bytes(),
            timeout,
        },
        ("pair", [addr]) => Invocation::Pair {
            addr,
            wait: line.value("wait"),
        },
        ("help" | "--help" | "-h", []) => Invocation::Help,
        _ => return Err(format!("wrong arguments for {command}")),
    };
    invocation.check_addr()?;
    Ok(invocation)
}

impl Invocation<'_> {
    /// Rejects an address that cannot be parsed, before any network use: that is bad
    /// usage, worded as Go words the operation (`dial tcp: address …: missing port in
    /// address`).
    fn check_addr(&self) -> Result<(), String> {
        let (op, network, addr) = match *self {
            Self::Dial { addr, .. } => ("dial", "tcp", addr),
            Self::Listen { addr } => ("listen", "tcp", addr),
            Self::Echo { addr, .. } => ("echo", "tcp", addr),
            Self::UdpEcho { addr, .. } => ("listen", "udp", addr),
            Self::UdpSend { addr, .. } => ("dial", "udp", addr),
            // The address to wait on is dialled after the listen: checked second.
            Self::Pair { addr, wait } => match wait {
                Some(wait) if net::split_host_port(addr).is_ok() => ("dial", "tcp", wait),
                _ => ("listen", "tcp", addr),
            },
            Self::Lookup { .. } | Self::Help => return Ok(()),
        };
        net::split_host_port(addr)
            .map(drop)
            .map_err(|reason| format!("{op} {network}: {reason}"))
    }
}

/// The flags each command takes.
const TIMEOUT: Flags = Flags {
    with_value: &["timeout"],
    switches: &[],
};
const ECHO: Flags = Flags {
    with_value: &["count"],
    switches: &["copy", "forward"],
};
const WAIT: Flags = Flags {
    with_value: &["wait"],
    switches: &[],
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
fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("--timeout wants a duration like 500ms or 2s, not {text:?}");
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
    Duration::try_from_secs_f64(seconds).map_err(|_| bad())
}

fn parse_count(n: &str) -> Result<u64, String> {
    n.parse()
        .map_err(|_| format!("--count wants a whole number, not {n:?}"))
}
