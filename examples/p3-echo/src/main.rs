//! A TCP and UDP echo server for WASI 0.3, written the way the WASI test suite writes
//! its 0.3 programs: Rust's `std` on `wasm32-wasip2`, with the program in an async
//! `wasi:cli/run@0.3.0` export made by wit-bindgen (through the `wasip3` crate) and
//! std's `main` left unreachable — so the component exports both entries, and a host
//! must run the 0.3 one. No sockbox code: a foreign component for sockbox's harness
//! and bench.
//!
//! - `p3-echo tcp ADDR [COUNT]`: listen on ADDR, print `listening on <bound addr>`,
//!   and send each connection back every byte it sends (its receive stream handed
//!   straight to its send), a task per connection; exit 0 once COUNT connections
//!   have been served (default: serve forever).
//! - `p3-echo udp ADDR [COUNT]`: bind ADDR, print `listening on <bound addr>`, and
//!   send each datagram back to its sender; exit 0 after COUNT (default: forever).
//!
//! Build it with `cargo build --release --target wasm32-wasip2 -p p3-echo`.

#![allow(
    unsafe_code,
    reason = "wasip3's export! expands to the component ABI's glue; no hand-written unsafe"
)]

use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::task::{Poll, Waker};

use wasip3::cli::environment;
use wasip3::sockets::types::{
    ErrorCode, IpAddressFamily, IpSocketAddress, Ipv4SocketAddress, Ipv6SocketAddress, TcpSocket,
    UdpSocket,
};

struct Echo;

impl wasip3::exports::cli::run::Guest for Echo {
    async fn run() -> Result<(), ()> {
        let args = environment::get_arguments();
        let args: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
        let (mode, addr, count) = match args.as_slice() {
            [mode, addr] => (*mode, *addr, None),
            [mode, addr, count] => match count.parse::<usize>() {
                Ok(count) => (*mode, *addr, Some(count)),
                Err(_) => return usage(&format!("`{count}` is not a count")),
            },
            _ => return usage("expected tcp|udp ADDR [COUNT]"),
        };
        let Ok(addr) = addr.parse::<SocketAddr>() else {
            return usage(&format!("`{addr}` is not an address (IP:PORT)"));
        };
        let served = match mode {
            "tcp" => tcp(addr, count).await,
            "udp" => udp(addr, count).await,
            _ => return usage(&format!("`{mode}` is not tcp or udp")),
        };
        served.map_err(|code| eprintln!("p3-echo: {mode} {addr}: {code:?}"))
    }
}

wasip3::cli::command::export!(Echo);

fn main() {
    unreachable!("p3-echo runs as wasi:cli/run@0.3.0");
}

fn usage(why: &str) -> Result<(), ()> {
    eprintln!("p3-echo: {why}\nusage: p3-echo tcp|udp ADDR [COUNT]");
    Err(())
}

async fn tcp(addr: SocketAddr, count: Option<usize>) -> Result<(), ErrorCode> {
    let listener = TcpSocket::create(family(addr))?;
    listener.bind(to_wasi(addr))?;
    let mut incoming = listener.listen()?;
    println!("listening on {}", from_wasi(listener.get_local_address()?));
    let running = Running::default();
    let mut accepted = 0;
    while count.is_none_or(|count| accepted < count) {
        let Some(conn) = incoming.next().await else {
            break;
        };
        accepted += 1;
        let done = running.start();
        wasip3::spawn(async move {
            // The peer's bytes go back as they come; each side ends on its own.
            let (data, received) = conn.receive();
            if let Err(code) = conn.send(data).await {
                eprintln!("p3-echo: connection: {code:?}");
            }
            let _ = received.await;
            drop(done);
        });
        // wit-bindgen's executor first polls a spawned task the next time it runs,
        // which is the next event for *this* component: with every other connection
        // idle that may never come. Yielding once runs it now.
        wasip3::wit_bindgen::yield_async().await;
    }
    running.all_done().await;
    Ok(())
}

async fn udp(addr: SocketAddr, count: Option<usize>) -> Result<(), ErrorCode> {
    let socket = UdpSocket::create(family(addr))?;
    socket.bind(to_wasi(addr))?;
    println!("listening on {}", from_wasi(socket.get_local_address()?));
    let mut echoed = 0;
    while count.is_none_or(|count| echoed < count) {
        let (data, from) = socket.receive().await?;
        socket.send(data, Some(from)).await?;
        echoed += 1;
    }
    Ok(())
}

/// The connections being served, to wait for before `run` returns (the host ends the
/// instance when it does).
#[derive(Default, Clone)]
struct Running(Rc<RefCell<(usize, Option<Waker>)>>);

/// One connection being served; dropped when it is done.
struct Serving(Running);

impl Running {
    fn start(&self) -> Serving {
        self.0.borrow_mut().0 += 1;
        Serving(self.clone())
    }

    async fn all_done(&self) {
        std::future::poll_fn(|cx| {
            let mut state = self.0.borrow_mut();
            if state.0 == 0 {
                return Poll::Ready(());
            }
            state.1 = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let mut state = (self.0).0.borrow_mut();
        state.0 -= 1;
        if let Some(waker) = state.1.take() {
            waker.wake();
        }
    }
}

fn family(addr: SocketAddr) -> IpAddressFamily {
    match addr {
        SocketAddr::V4(_) => IpAddressFamily::Ipv4,
        SocketAddr::V6(_) => IpAddressFamily::Ipv6,
    }
}

fn to_wasi(addr: SocketAddr) -> IpSocketAddress {
    match addr {
        SocketAddr::V4(v4) => {
            let [a, b, c, d] = v4.ip().octets();
            IpSocketAddress::Ipv4(Ipv4SocketAddress {
                port: v4.port(),
                address: (a, b, c, d),
            })
        }
        SocketAddr::V6(v6) => {
            let [a, b, c, d, e, f, g, h] = v6.ip().segments();
            IpSocketAddress::Ipv6(Ipv6SocketAddress {
                port: v6.port(),
                flow_info: v6.flowinfo(),
                address: (a, b, c, d, e, f, g, h),
                scope_id: v6.scope_id(),
            })
        }
    }
}

fn from_wasi(addr: IpSocketAddress) -> SocketAddr {
    match addr {
        IpSocketAddress::Ipv4(v4) => {
            let (a, b, c, d) = v4.address;
            SocketAddr::new(IpAddr::from([a, b, c, d]), v4.port)
        }
        IpSocketAddress::Ipv6(v6) => {
            let (a, b, c, d, e, f, g, h) = v6.address;
            SocketAddr::new(IpAddr::from([a, b, c, d, e, f, g, h]), v6.port)
        }
    }
}
