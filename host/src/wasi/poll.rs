//! sockbox's own `wasi:io/poll` for WASI 0.2: a call over N pollables costs a few
//! nanoseconds for each idle one, not a future made, polled and dropped. (Over 400
//! lines: the poll, its readiness slots and the watched-stream wrapper are one
//! mechanism, each part written against the others' invariants.)
//!
//! wasmtime-wasi-io's `poll` makes a future for every pollable on every call, polls
//! them all, and drops them: with 999 idle connections, each message pays for 1,000
//! futures (a boxed future, a lock and a waker registration each). WASI 0.2's `poll`
//! takes the whole list every time, so a guest cannot avoid it.
//!
//! Here the pollables of TCP connections' streams and of listening sockets are
//! *watched*: each has a [`Slot`] whose own waker is registered with the reactor the
//! first time the pollable is polled. A watched pollable is polled again only after its
//! waker fired (the reactor saw an event), or after something may have replaced its
//! waker registration: any call on its stream (a read, a write, a `check-write`, a
//! blocking call, a `block` or `ready` on the pollable, an accept on the listener)
//! marks it, as does a `shutdown` (every slot). Until then it is skipped: idle costs
//! one table look-up and two atomic loads. A pollable that reported ready is polled
//! again on the next call too, so readiness stays level-triggered as WASI defines it.
//!
//! Every other pollable (clocks, UDP, stdio, name lookups, a connecting socket) is
//! left to wasmtime-wasi-io's `poll` as it is, alongside.
//!
//! What makes this sound: wasmtime-wasi's TCP readiness keeps the waker it was last
//! polled with (tokio's `poll_read_ready`/`poll_write_ready`, a background write's
//! join handle, the listener's pending accept), so a registration outlives the future
//! that made it; and every way a guest can replace that registration goes through a
//! call sockbox sees — the streams are wrapped in [`Watched`], and
//! `block`, `ready`, `accept` and `shutdown` are sockbox's.

use std::collections::HashMap;
use std::future::{Future as _, poll_fn};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use atomic_waker::AtomicWaker;
use bytes::Bytes;
use prometheus_client::metrics::counter::Counter;
use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource, ResourceTable, ResourceType};
use wasmtime_wasi::p2::bindings::io::poll::{Host as _, HostPollable};
use wasmtime_wasi::p2::bindings::io::streams::{HostInputStream, HostOutputStream};
use wasmtime_wasi::p2::{
    DynInputStream, DynOutputStream, DynPollable, InputStream, OutputStream, Pollable, StreamResult,
};

use super::GuestState;

const POLL: &str = "wasi:io/poll@0.2.12";
const STREAMS: &str = "wasi:io/streams@0.2.12";

/// What one instance's `poll` knows about its pollables.
#[derive(Default)]
pub(crate) struct Readiness {
    /// Wakes the instance's waiting `poll` when any slot's waker fires.
    task: Arc<Task>,
    /// The slot watching each pollable, by the pollable's handle (`None`: not watched).
    pollables: Vec<Option<Arc<Slot>>>,
    /// Watched streams' slots, by the stream's handle, for their pollables.
    streams: HashMap<u32, Arc<Slot>>,
    /// Listening sockets' slots, by the socket's handle, for accept to mark.
    listeners: HashMap<u32, Arc<Slot>>,
    /// Raised when a call may have changed readiness without an event (a shutdown):
    /// a slot armed before the current epoch is polled again.
    epoch: u64,
}

/// The waiting `poll` of one instance.
#[derive(Default)]
struct Task {
    waker: AtomicWaker,
    /// Set by any slot's waker since the last scan.
    woken: AtomicBool,
    /// The handles of watched streams dropped since [`Readiness::prune`] last ran.
    dropped: Mutex<Vec<u32>>,
}

/// One watched pollable's readiness (shared by every pollable on the same stream).
struct Slot {
    task: Arc<Task>,
    /// Its waker fired, or a call may have replaced its registration: poll it again.
    dirty: AtomicBool,
    /// The epoch in which its waker was registered.
    armed: AtomicU64,
    /// `poll` itself is polling it (so the registration is the slot's own).
    polling: AtomicBool,
    /// Its stream was dropped.
    closed: AtomicBool,
    /// Its stream's handle, once it has one.
    rep: AtomicU32,
}

impl Slot {
    fn new(task: &Arc<Task>) -> Arc<Self> {
        Arc::new(Self {
            task: Arc::clone(task),
            dirty: AtomicBool::new(true),
            armed: AtomicU64::new(0),
            polling: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            rep: AtomicU32::new(u32::MAX),
        })
    }

    /// Marks it to be polled again: something may have replaced its registration.
    fn touch(&self) {
        self.dirty.store(true, Ordering::Release);
    }

    /// Reports whether its registration may be stale, or it was ready last time.
    fn needs_poll(&self, epoch: u64) -> bool {
        self.dirty.load(Ordering::Acquire) || self.armed.load(Ordering::Relaxed) != epoch
    }
}

impl Wake for Slot {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.dirty.store(true, Ordering::Release);
        self.task.woken.store(true, Ordering::Release);
        self.task.waker.wake();
    }
}

impl Readiness {
    /// The slot watching pollable `rep`, if it is watched.
    fn slot(&self, rep: u32) -> Option<&Arc<Slot>> {
        self.pollables.get(rep as usize).and_then(Option::as_ref)
    }

    /// Records what watches the pollable just made as `rep`.
    fn made(&mut self, rep: u32, slot: Option<Arc<Slot>>) {
        let index = rep as usize;
        if self.pollables.len() <= index {
            self.pollables.resize(index + 1, None);
        }
        if let Some(slot) = &slot {
            slot.touch();
        }
        self.pollables[index] = slot;
    }

    /// A call on pollable `rep` may have replaced its registration.
    fn touch_pollable(&self, rep: u32) {
        if let Some(slot) = self.slot(rep) {
            slot.touch();
        }
    }

    /// Records pollable `pollable`, just made on stream `stream`: watched when the
    /// stream is.
    fn subscribed(&mut self, stream: u32, pollable: u32) {
        let slot = self.stream(stream);
        self.made(pollable, slot);
    }

    /// A new slot for a stream about to be wrapped in [`Watched`].
    fn stream_slot(&self) -> Arc<Slot> {
        Slot::new(&self.task)
    }

    /// The slot of watched stream `rep`, if it is one and still open.
    fn stream(&self, rep: u32) -> Option<Arc<Slot>> {
        self.streams
            .get(&rep)
            .filter(|slot| !slot.closed.load(Ordering::Relaxed))
            .cloned()
    }

    /// The slot of listening socket `rep`, made on first use ([`Readiness::made`]
    /// marks it for its new pollable).
    fn listener(&mut self, rep: u32) -> Arc<Slot> {
        let slot = self
            .listeners
            .entry(rep)
            .or_insert_with(|| Slot::new(&self.task));
        Arc::clone(slot)
    }

    /// An accept on socket `rep` replaced its listener's registration.
    pub(super) fn accepted_on(&self, rep: u32) {
        if let Some(slot) = self.listeners.get(&rep) {
            slot.touch();
        }
    }

    /// Records watched stream `rep`'s slot.
    fn watching(&mut self, rep: u32, slot: Arc<Slot>) {
        self.prune();
        slot.rep.store(rep, Ordering::Relaxed);
        self.streams.insert(rep, slot);
    }

    /// Forgets the slots of watched streams dropped since the last call (a handle
    /// reused by a newer stream keeps that stream's slot): the map holds the streams
    /// alive, not every stream there ever was.
    fn prune(&mut self) {
        let dropped = std::mem::take(
            &mut *self
                .task
                .dropped
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for rep in dropped {
            if self
                .streams
                .get(&rep)
                .is_some_and(|slot| slot.closed.load(Ordering::Relaxed))
            {
                self.streams.remove(&rep);
            }
        }
    }

    /// Something changed readiness without an event: poll every watched pollable again.
    pub(super) fn invalidate(&mut self) {
        self.epoch += 1;
    }
}

/// Puts this file's functions in the linker.
pub(super) fn shadow(linker: &mut Linker<GuestState>) -> wasmtime::Result<()> {
    let mut poll = linker.instance(POLL)?;
    poll.resource(
        "pollable",
        ResourceType::host::<DynPollable>(),
        |mut store: StoreContextMut<'_, GuestState>, rep| {
            let state = store.data_mut();
            if let Some(entry) = state.readiness.pollables.get_mut(rep as usize) {
                *entry = None;
            }
            HostPollable::drop(&mut state.table, Resource::new_own(rep))
        },
    )?;
    poll.func_wrap_async(
        "poll",
        |mut store: StoreContextMut<'_, GuestState>,
         (pollables,): (Vec<Resource<DynPollable>>,)| {
            Box::new(async move { Ok((poll_list(store.data_mut(), pollables).await?,)) })
        },
    )?;
    poll.func_wrap_async(
        "[method]pollable.block",
        |mut store: StoreContextMut<'_, GuestState>, (this,): (Resource<DynPollable>,)| {
            Box::new(async move {
                let state = store.data_mut();
                state.readiness.touch_pollable(this.rep());
                HostPollable::block(&mut state.table, this).await?;
                Ok(())
            })
        },
    )?;
    poll.func_wrap_async(
        "[method]pollable.ready",
        |mut store: StoreContextMut<'_, GuestState>, (this,): (Resource<DynPollable>,)| {
            Box::new(async move {
                let state = store.data_mut();
                state.readiness.touch_pollable(this.rep());
                Ok((HostPollable::ready(&mut state.table, this).await?,))
            })
        },
    )?;
    let mut streams = linker.instance(STREAMS)?;
    streams.func_wrap(
        "[method]input-stream.subscribe",
        |mut store: StoreContextMut<'_, GuestState>, (this,): (Resource<DynInputStream>,)| {
            let state = store.data_mut();
            let stream = this.rep();
            let pollable = HostInputStream::subscribe(&mut state.table, this)?;
            state.readiness.subscribed(stream, pollable.rep());
            Ok((pollable,))
        },
    )?;
    streams.func_wrap(
        "[method]output-stream.subscribe",
        |mut store: StoreContextMut<'_, GuestState>, (this,): (Resource<DynOutputStream>,)| {
            let state = store.data_mut();
            let stream = this.rep();
            let pollable = HostOutputStream::subscribe(&mut state.table, this)?;
            state.readiness.subscribed(stream, pollable.rep());
            Ok((pollable,))
        },
    )?;
    Ok(())
}

/// Records the pollable sockbox's `tcp-socket.subscribe` made: watched when the socket
/// listens (a listener's readiness is its pending accept, which keeps its waker).
pub(super) fn made_socket_pollable(
    state: &mut GuestState,
    socket: u32,
    listening: bool,
    pollable: u32,
) {
    let slot = listening.then(|| state.readiness.listener(socket));
    state.readiness.made(pollable, slot);
}

/// Wraps the streams of a connection just accepted or connected, so their pollables
/// are watched; returns the handles the guest gets in their place.
pub(super) fn watch_streams(
    state: &mut GuestState,
    socket: &Resource<wasmtime_wasi::p2::TcpSocket>,
    input: Resource<DynInputStream>,
    output: Resource<DynOutputStream>,
) -> wasmtime::Result<(Resource<DynInputStream>, Resource<DynOutputStream>)> {
    let bytes = state.enforcer.metrics().map(|metrics| metrics.bytes(false));
    let slot = state.readiness.stream_slot();
    let inner = state.table.delete(input)?;
    let mut input = Watched::new(inner, &slot);
    input.bytes = bytes.as_ref().map(|bytes| bytes.received.clone());
    let input: DynInputStream = Box::new(input);
    let input = state.table.push_child(input, socket)?;
    state.readiness.watching(input.rep(), slot);

    let slot = state.readiness.stream_slot();
    let inner = state.table.delete(output)?;
    let mut output = Watched::new(inner, &slot);
    output.bytes = bytes.map(|bytes| bytes.sent);
    let output: DynOutputStream = Box::new(output);
    let output = state.table.push_child(output, socket)?;
    state.readiness.watching(output.rep(), slot);
    Ok((input, output))
}

/// `wasi:io/poll#poll`: the indexes of the pollables that are ready, waiting until at
/// least one is.
async fn poll_list(
    state: &mut GuestState,
    pollables: Vec<Resource<DynPollable>>,
) -> wasmtime::Result<Vec<u32>> {
    if pollables.is_empty() {
        return Err(wasmtime::Error::msg("empty poll list"));
    }
    let mut others: Vec<u32> = Vec::new();
    loop {
        let GuestState {
            table, readiness, ..
        } = &mut *state;
        readiness.task.woken.store(false, Ordering::Release);
        let epoch = readiness.epoch;
        let mut ready: Vec<u32> = Vec::new();
        others.clear();
        for (index, pollable) in (0u32..).zip(&pollables) {
            let Some(slot) = readiness.slot(pollable.rep()) else {
                others.push(index);
                continue;
            };
            if !slot.needs_poll(epoch) {
                continue;
            }
            slot.dirty.store(false, Ordering::Release);
            slot.armed.store(epoch, Ordering::Relaxed);
            if poll_watched(table, pollable.rep(), slot)? {
                // Ready now, and so worth asking again next time (level-triggered).
                slot.touch();
                ready.push(index);
            }
        }
        if others.is_empty() {
            if !ready.is_empty() {
                return Ok(ready);
            }
            woken(&readiness.task).await;
            continue;
        }
        if !ready.is_empty() {
            for &index in &others {
                let pollable = Resource::new_borrow(pollables[index as usize].rep());
                if HostPollable::ready(&mut *table, pollable).await? {
                    ready.push(index);
                }
            }
            ready.sort_unstable();
            return Ok(ready);
        }
        // Wait on the others through wasmtime-wasi-io's poll, and on the slots' wakers.
        let list = others
            .iter()
            .map(|&index| Resource::new_borrow(pollables[index as usize].rep()))
            .collect();
        let task = Arc::clone(&readiness.task);
        let mut stock = pin!(table.poll(list));
        let answered = poll_fn(|cx| {
            task.waker.register(cx.waker());
            if task.woken.load(Ordering::Acquire) {
                return Poll::Ready(None);
            }
            stock.as_mut().poll(cx).map(Some)
        })
        .await;
        if let Some(indexes) = answered {
            return Ok(indexes?
                .into_iter()
                .map(|index| others[index as usize])
                .collect());
        }
    }
}

/// Resolves once some slot's waker fired since the last scan.
async fn woken(task: &Task) {
    poll_fn(|cx| {
        task.waker.register(cx.waker());
        if task.woken.load(Ordering::Acquire) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
}

/// Polls watched pollable `rep` once with its slot's waker, which the reactor keeps.
fn poll_watched(table: &mut ResourceTable, rep: u32, slot: &Arc<Slot>) -> wasmtime::Result<bool> {
    let waker = Waker::from(Arc::clone(slot));
    let mut cx = Context::from_waker(&waker);
    slot.polling.store(true, Ordering::Relaxed);
    // wasmtime-wasi-io's `ready` polls the pollable's future once and never waits.
    let answer = pin!(HostPollable::ready(table, Resource::new_borrow(rep))).poll(&mut cx);
    slot.polling.store(false, Ordering::Relaxed);
    match answer {
        Poll::Ready(ready) => ready,
        Poll::Pending => Ok(false),
    }
}

/// A TCP connection's input or output stream, watched: every call on it marks its
/// slot, except `poll`'s own readiness check.
struct Watched<S> {
    inner: S,
    slot: Arc<Slot>,
    /// Where the bytes it moves are counted, if anywhere (received for an input
    /// stream, sent for an output stream).
    bytes: Option<Counter>,
}

impl<S> Watched<S> {
    fn new(inner: S, slot: &Arc<Slot>) -> Self {
        Self {
            inner,
            slot: Arc::clone(slot),
            bytes: None,
        }
    }

    /// Counts `n` bytes moved.
    fn moved(&self, n: usize) {
        if let Some(bytes) = &self.bytes {
            bytes.inc_by(u64::try_from(n).unwrap_or(u64::MAX));
        }
    }
}

#[async_trait::async_trait]
impl InputStream for Watched<DynInputStream> {
    fn read(&mut self, size: usize) -> StreamResult<Bytes> {
        self.slot.touch();
        let read = self.inner.read(size);
        if let Ok(bytes) = &read {
            self.moved(bytes.len());
        }
        read
    }

    async fn blocking_read(&mut self, size: usize) -> StreamResult<Bytes> {
        self.slot.touch();
        let read = self.inner.blocking_read(size).await;
        if let Ok(bytes) = &read {
            self.moved(bytes.len());
        }
        read
    }

    fn skip(&mut self, nelem: usize) -> StreamResult<usize> {
        self.slot.touch();
        let skipped = self.inner.skip(nelem);
        if let Ok(n) = &skipped {
            self.moved(*n);
        }
        skipped
    }

    async fn blocking_skip(&mut self, nelem: usize) -> StreamResult<usize> {
        self.slot.touch();
        let skipped = self.inner.blocking_skip(nelem).await;
        if let Ok(n) = &skipped {
            self.moved(*n);
        }
        skipped
    }

    async fn cancel(&mut self) {
        self.slot.touch();
        self.inner.cancel().await;
    }
}

#[async_trait::async_trait]
impl OutputStream for Watched<DynOutputStream> {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.slot.touch();
        let n = bytes.len();
        let written = self.inner.write(bytes);
        if written.is_ok() {
            self.moved(n);
        }
        written
    }

    fn flush(&mut self) -> StreamResult<()> {
        self.slot.touch();
        self.inner.flush()
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        self.slot.touch();
        self.inner.check_write()
    }

    async fn blocking_write_and_flush(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.slot.touch();
        let n = bytes.len();
        let written = self.inner.blocking_write_and_flush(bytes).await;
        if written.is_ok() {
            self.moved(n);
        }
        written
    }

    fn write_zeroes(&mut self, nelem: usize) -> StreamResult<()> {
        self.slot.touch();
        let written = self.inner.write_zeroes(nelem);
        if written.is_ok() {
            self.moved(nelem);
        }
        written
    }

    async fn write_ready(&mut self) -> StreamResult<usize> {
        self.slot.touch();
        self.inner.write_ready().await
    }

    async fn cancel(&mut self) {
        self.slot.touch();
        self.inner.cancel().await;
    }
}

#[async_trait::async_trait]
impl<S: Pollable> Pollable for Watched<S> {
    async fn ready(&mut self) {
        if !self.slot.polling.load(Ordering::Relaxed) {
            self.slot.touch();
        }
        self.inner.ready().await;
    }
}

impl<S> Drop for Watched<S> {
    fn drop(&mut self) {
        self.slot.closed.store(true, Ordering::Relaxed);
        let rep = self.slot.rep.load(Ordering::Relaxed);
        if rep != u32::MAX {
            self.slot
                .task
                .dropped
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(rep);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dropped stream's slot is forgotten once another stream is watched; a handle
    /// reused by a newer stream keeps the newer one's slot.
    #[test]
    fn dropped_streams_are_forgotten() {
        let mut readiness = Readiness::default();
        let watch = |readiness: &mut Readiness, rep: u32| {
            let slot = readiness.stream_slot();
            let stream = Watched::new((), &slot);
            readiness.watching(rep, slot);
            stream
        };
        let first = watch(&mut readiness, 3);
        let kept = watch(&mut readiness, 4);
        drop(first);
        let reused = watch(&mut readiness, 7);
        assert_eq!(readiness.streams.len(), 2, "3 is forgotten");
        assert!(readiness.stream(4).is_some() && readiness.stream(7).is_some());
        drop(reused);
        let newer = watch(&mut readiness, 7);
        assert!(
            readiness.stream(7).is_some(),
            "the newer stream on a reused handle"
        );
        drop((kept, newer));
        let _last = watch(&mut readiness, 9);
        assert_eq!(readiness.streams.len(), 1);
    }
}
