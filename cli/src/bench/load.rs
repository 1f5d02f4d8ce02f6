//! The native load client: ping-pong over N connections and a bulk stream, every
//! echoed byte checked against what was sent. A server that corrupts, drops or adds
//! a byte fails the run; it does not get a number.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// The stream's byte pattern repeats every this many bytes (a prime, so chunk
/// boundaries fall at a different place in it each time).
const PATTERN_LEN: usize = 65_521;

/// How long a connect, or one echo, may take before the server counts as stalled: a
/// stalled server fails the run instead of hanging it.
const STALL: Duration = Duration::from_secs(10);

/// How much the stream writes at once.
pub(super) const STREAM_CHUNK: usize = 64 * 1024;

/// What a ping-pong run measured.
#[derive(Debug, Clone)]
pub(super) struct PingPong {
    /// Round trips completed per second, over all connections.
    pub round_trips_per_sec: f64,
    /// Median round-trip time, in microseconds.
    pub p50_us: f64,
    /// 99th-percentile round-trip time, in microseconds.
    pub p99_us: f64,
}

/// When measuring starts and stops, shared by every connection's task.
#[derive(Debug)]
struct Window {
    measuring: AtomicBool,
    stopped: AtomicBool,
}

/// Connects `connections` clients to `addr`; each sends `size`-byte messages and waits
/// for each echo, for `warmup` and then `duration`, which alone is measured.
pub(super) async fn ping_pong(
    addr: SocketAddr,
    connections: usize,
    size: usize,
    warmup: Duration,
    duration: Duration,
) -> Result<PingPong> {
    let mut conns = Vec::with_capacity(connections);
    for i in 0..connections {
        let conn = connect(addr)
            .await
            .with_context(|| format!("connection {i}"))?;
        conn.set_nodelay(true)?;
        conns.push(conn);
    }
    let window = Arc::new(Window {
        measuring: AtomicBool::new(false),
        stopped: AtomicBool::new(false),
    });
    let tasks: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(id, conn)| tokio::spawn(ping_pong_one(conn, id, size, Arc::clone(&window))))
        .collect();
    tokio::time::sleep(warmup).await;
    window.measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(duration).await;
    window.measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed();
    window.stopped.store(true, Ordering::Relaxed);

    let mut latencies = new_histogram();
    let mut round_trips = 0u64;
    for task in tasks {
        let (count, histogram) = task.await.context("a ping-pong task panicked")??;
        round_trips += count;
        latencies.add(&histogram).context("merge latencies")?;
    }
    if round_trips == 0 {
        bail!("no round trip completed in {duration:?}");
    }
    Ok(PingPong {
        round_trips_per_sec: round_trips as f64 / elapsed.as_secs_f64(),
        p50_us: latencies.value_at_quantile(0.50) as f64 / 1000.0,
        p99_us: latencies.value_at_quantile(0.99) as f64 / 1000.0,
    })
}

/// One connection's round trips; returns how many fell in the window, and their times.
async fn ping_pong_one(
    mut conn: TcpStream,
    id: usize,
    size: usize,
    window: Arc<Window>,
) -> Result<(u64, Histogram<u64>)> {
    let mut sent = vec![0u8; size];
    let mut echoed = vec![0u8; size];
    let mut latencies = new_histogram();
    let mut count = 0;
    for round in 0u64.. {
        if window.stopped.load(Ordering::Relaxed) {
            break;
        }
        fill_message(&mut sent, id, round);
        let started = Instant::now();
        conn.write_all(&sent).await.context("send")?;
        match tokio::time::timeout(STALL, conn.read_exact(&mut echoed)).await {
            Ok(read) => read.with_context(|| {
                format!("connection {id}: the echo of round {round} is missing")
            })?,
            Err(_) => bail!("connection {id}: no echo of round {round} within {STALL:?}"),
        };
        let took = started.elapsed();
        if let Some(at) = sent.iter().zip(&echoed).position(|(a, b)| a != b) {
            bail!(
                "connection {id}, round {round}: echoed byte {at} is {:#04x}, sent {:#04x}",
                echoed[at],
                sent[at]
            );
        }
        if window.measuring.load(Ordering::Relaxed) {
            count += 1;
            let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
            latencies.saturating_record(nanos.max(1));
        }
    }
    Ok((count, latencies))
}

/// A message that differs by connection and by round: the round's number first, then
/// bytes from both.
fn fill_message(buf: &mut [u8], id: usize, round: u64) {
    let head = round.to_le_bytes();
    let n = head.len().min(buf.len());
    buf[..n].copy_from_slice(&head[..n]);
    for (i, byte) in buf.iter_mut().enumerate().skip(n) {
        *byte = (i as u64 ^ (id as u64).wrapping_mul(131) ^ round.wrapping_mul(7)) as u8;
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

/// Streams bytes through one connection for `warmup` and then `duration`, reading the
/// echo concurrently and checking each byte; returns echoed bytes per second in the
/// measured window.
pub(super) async fn stream(addr: SocketAddr, warmup: Duration, duration: Duration) -> Result<f64> {
    let conn = connect(addr).await?;
    conn.set_nodelay(true)?;
    let (mut reader, mut writer) = conn.into_split();
    let pattern: Arc<Vec<u8>> =
        Arc::new((0..PATTERN_LEN + STREAM_CHUNK).map(pattern_byte).collect());
    let stop = Arc::new(AtomicBool::new(false));

    let write_pattern = Arc::clone(&pattern);
    let write_stop = Arc::clone(&stop);
    let writer = tokio::spawn(async move {
        let mut offset = 0usize;
        while !write_stop.load(Ordering::Relaxed) {
            let start = offset % PATTERN_LEN;
            writer
                .write_all(&write_pattern[start..start + STREAM_CHUNK.min(PATTERN_LEN)])
                .await
                .context("send")?;
            offset += STREAM_CHUNK.min(PATTERN_LEN);
        }
        writer.shutdown().await.context("half-close")?;
        anyhow::Ok(offset as u64)
    });

    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; STREAM_CHUNK];
        let mut offset = 0usize;
        let measure_from = Instant::now() + warmup;
        let (mut window_start, mut window_bytes) = (None, 0u64);
        loop {
            let n = match tokio::time::timeout(STALL, reader.read(&mut buf)).await {
                Ok(read) => read.context("read the echo")?,
                Err(_) => bail!("no echo within {STALL:?} after byte {offset}"),
            };
            if n == 0 {
                break;
            }
            let start = offset % PATTERN_LEN;
            if let Some(at) = buf[..n]
                .iter()
                .zip(&pattern[start..start + n])
                .position(|(a, b)| a != b)
            {
                bail!(
                    "streamed byte {} is {:#04x}, sent {:#04x}",
                    offset + at,
                    buf[at],
                    pattern[start + at]
                );
            }
            offset += n;
            let now = Instant::now();
            if now >= measure_from {
                let start = *window_start.get_or_insert(now);
                if now.duration_since(start) <= duration {
                    window_bytes += n as u64;
                }
            }
        }
        anyhow::Ok((offset as u64, window_bytes, window_start))
    });

    tokio::time::sleep(warmup + duration).await;
    stop.store(true, Ordering::Relaxed);
    // The reader first: if it found a bad byte, the writer may be stuck on a server
    // that stopped reading, and is cut off.
    let read = reader.await.context("the reader panicked")?;
    let (echoed, measured, started) = match read {
        Ok(read) => read,
        Err(err) => {
            writer.abort();
            return Err(err);
        }
    };
    let sent = writer.await.context("the writer panicked")??;
    if echoed != sent {
        bail!("sent {sent} bytes, {echoed} came back");
    }
    if started.is_none() || measured == 0 {
        bail!("no bytes came back in the measured window");
    }
    Ok(measured as f64 / duration.as_secs_f64())
}

/// Connects to `addr`, failing if that takes longer than [`STALL`] (a server that
/// stopped accepting fills its backlog, and connects then hang).
async fn connect(addr: SocketAddr) -> Result<TcpStream> {
    match tokio::time::timeout(STALL, TcpStream::connect(addr)).await {
        Ok(conn) => conn.with_context(|| format!("connect to {addr}")),
        Err(_) => bail!("connect to {addr}: no answer within {STALL:?}"),
    }
}

fn pattern_byte(i: usize) -> u8 {
    let i = i % PATTERN_LEN;
    (i ^ (i >> 8) ^ (i >> 13).wrapping_mul(29)) as u8
}

/// Opens `count` connections to `addr` and does one small round trip on each, so the
/// server holds them all; returns them, to be held idle.
pub(super) async fn idle(addr: SocketAddr, count: usize) -> Result<Vec<TcpStream>> {
    let mut conns = Vec::with_capacity(count);
    for i in 0..count {
        let mut conn = connect(addr)
            .await
            .with_context(|| format!("open connection {i} of {count}"))?;
        conn.write_all(b"x").await?;
        let mut echoed = [0u8; 1];
        match tokio::time::timeout(STALL, conn.read_exact(&mut echoed)).await {
            Ok(read) => read.with_context(|| format!("connection {i}: no echo"))?,
            Err(_) => bail!("connection {i}: no echo within {STALL:?}"),
        };
        if echoed != *b"x" {
            bail!("connection {i}: echoed {echoed:?}");
        }
        conns.push(conn);
    }
    Ok(conns)
}
