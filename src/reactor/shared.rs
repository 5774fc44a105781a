//! What a reactor shares with the responders and stop handles it gives out: the completion
//! queue, the stop flag, and the way to wake the reactor.
//!
//! A responder (1) pushes its answer onto the queue and raises the pending count, both under
//! the queue's lock, then (2) rings the server's doorbell. The reactor sleeps only through
//! the doorbell's wait, whose re-check reads the pending count: the doorbell argument of
//! [`crate::doorbell`] with "pending > 0" as the condition (mutant `reply_rings_first`).

use core::cell::{Cell, RefCell};
use std::boxed::Box;
use std::fmt;
use std::vec::Vec;

use super::access::Kind;
use crate::channel::{ConnId, RequestId, Status};
use crate::mutant::{self, Mutant};
use crate::sync::{Arc, AtomicBool, AtomicUsize, Mutex, Ordering};

/// A finished answer on its way to the reactor.
pub(super) struct Completion {
    pub(super) conn: ConnId,
    /// The request's sequence number on its connection.
    pub(super) seq: u64,
    /// The key its request held (per-key ordering), released when this is settled.
    pub(super) order: Option<(u64, Kind)>,
    pub(super) reply: Reply,
}

/// An answer: what goes out in a response frame.
pub(super) struct Reply {
    pub(super) id: RequestId,
    pub(super) status: Status,
    pub(super) body: Vec<u8>,
}

impl Reply {
    /// What a parked reply counts against the stash limit: its body and a fixed overhead,
    /// so that empty replies count too.
    pub(super) fn cost(&self) -> usize {
        self.body.len() + 64
    }
}

/// What the reactor and the responders share.
pub(super) struct Shared {
    done: Mutex<Vec<Completion>>,
    /// Completions in `done`; raised under its lock by responders, zeroed under it by the
    /// reactor; read without the lock as the sleep condition.
    pub(super) pending: AtomicUsize,
    /// Requests waiting in key queues (per-key ordering); written by the leader.
    pub(super) key_waiting: AtomicUsize,
    pub(super) stop: AtomicBool,
    wake: Box<dyn Fn() + Send + Sync>,
}

/// The inline run in progress on this thread, if any: its reactor's shared state and the
/// request's connection and sequence number.
#[derive(Clone, Copy)]
struct InlineKey {
    shared: *const Shared,
    conn: ConnId,
    seq: u64,
}

const NO_INLINE: InlineKey = InlineKey {
    shared: core::ptr::null(),
    conn: ConnId {
        slot: usize::MAX,
        generation: 0,
    },
    seq: 0,
};

#[cfg(not(loom))]
std::thread_local! {
    static INLINE: Cell<InlineKey> = const { Cell::new(NO_INLINE) };
    static INLINE_DONE: RefCell<Vec<Completion>> = const { RefCell::new(Vec::new()) };
}
#[cfg(loom)]
loom::thread_local! {
    static INLINE: Cell<InlineKey> = Cell::new(NO_INLINE);
    static INLINE_DONE: RefCell<Vec<Completion>> = RefCell::new(Vec::new());
}

impl Shared {
    pub(super) fn new(wake: Box<dyn Fn() + Send + Sync>) -> Arc<Self> {
        Arc::new(Self {
            done: Mutex::new(Vec::new()),
            pending: AtomicUsize::new(0),
            key_waiting: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            wake,
        })
    }

    /// Posts an answer and wakes the reactor (or, on the reactor's own thread while it runs
    /// a handler inline, keeps it for the reactor to collect when the handler returns).
    pub(super) fn post(&self, c: Completion) {
        // The inline request's own answer, given on the thread running it: kept for that
        // thread to settle when the handler returns (no lock, no ring). Any other answer —
        // another request's responder used from inside an inline handler — goes through the
        // queue, so that a leader can send it while the handler still runs.
        let key = INLINE.with(Cell::get);
        let own = core::ptr::eq(key.shared, self) && key.conn == c.conn && key.seq == c.seq;
        if own && c.order.is_none() {
            INLINE_DONE.with(|d| d.borrow_mut().push(c));
            return;
        }
        if own {
            // The inline request's answer releases a key (per-key ordering): through the
            // queue, so that a leader (the watcher) can settle it, and start what waits for
            // the key, while the handler still runs. It rings only if something waits for a
            // key: the leader raises `key_waiting` before it looks at `pending` again, and we
            // raise `pending` before we read `key_waiting` (SeqCst on both sides: the
            // store-buffering pair), so either the leader collects this answer or we wake it.
            {
                let mut done = self.done.lock().unwrap_or_else(|e| e.into_inner());
                done.push(c);
                self.pending.fetch_add(1, Ordering::SeqCst);
            }
            if self.key_waiting.load(Ordering::SeqCst) > 0 {
                (self.wake)();
            }
            return;
        }
        if mutant::active(Mutant::ReplyRingsFirst) {
            (self.wake)();
        }
        {
            let mut done = self.done.lock().unwrap_or_else(|e| e.into_inner());
            done.push(c);
            self.pending.fetch_add(1, Ordering::Release);
        }
        if mutant::keep(Mutant::ReplyRingsFirst) {
            (self.wake)();
        }
    }

    /// Moves every posted answer into `into` (which the caller passes empty).
    pub(super) fn take(&self, into: &mut Vec<Completion>) {
        let mut done = self.done.lock().unwrap_or_else(|e| e.into_inner());
        core::mem::swap(&mut *done, into);
        self.pending.store(0, Ordering::Relaxed);
    }

    /// Runs `handler` (an inline handler, which catches its own panics) on this thread, with
    /// the answers it gives for this reactor collected into `into`.
    pub(super) fn run_inline(
        &self,
        conn: ConnId,
        seq: u64,
        handler: impl FnOnce(),
        into: &mut Vec<Completion>,
    ) {
        /// Puts back the key of an inline run this one is nested in (a handler driving
        /// another reactor's `poll` on the same thread), however the handler ends.
        struct Restore(InlineKey);
        impl Drop for Restore {
            fn drop(&mut self) {
                INLINE.with(|f| f.set(self.0));
            }
        }
        let key = InlineKey {
            shared: self,
            conn,
            seq,
        };
        let restore = Restore(INLINE.with(|f| f.replace(key)));
        // This run's answers go to `into`'s buffer (reused: no allocation per run); a run this
        // one is nested in keeps its own.
        let outer =
            INLINE_DONE.with(|d| core::mem::replace(&mut *d.borrow_mut(), core::mem::take(into)));
        handler();
        drop(restore);
        INLINE_DONE.with(|d| *into = core::mem::replace(&mut *d.borrow_mut(), outer));
    }

    pub(super) fn wake(&self) {
        (self.wake)();
    }
}

/// Stops a running [`Reactor`](super::Reactor) from any thread: it stops running requests
/// (those it still takes from the rings are answered [`Status::ShuttingDown`]), finishes what
/// is in flight, sends what it can, detaches every client, and returns.
///
/// # Examples
///
/// ```
/// use ringbell::channel::{Server, ServerConfig};
/// use ringbell::reactor::{Reactor, Request, Responder};
///
/// let dir = std::env::temp_dir().join(format!("ringbell-doc-stop-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let server = Server::bind(dir.join("s.sock"), ServerConfig::new())?;
/// let mut reactor = Reactor::new(server, |_: Request, res: Responder| drop(res));
/// let stop = reactor.stop_handle();
/// let serving = std::thread::spawn(move || reactor.run());
/// stop.stop();
/// serving.join().unwrap()?;
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct StopHandle {
    pub(super) shared: Arc<Shared>,
}

impl StopHandle {
    /// Asks the reactor to stop, and wakes it. It returns once what is in flight is answered
    /// (for at most its drain timeout).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{Server, ServerConfig};
    /// use ringbell::reactor::{Reactor, Request, Responder};
    ///
    /// # let dir = std::env::temp_dir().join(format!("ringbell-doc-stop2-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let server = Server::bind(dir.join("s.sock"), ServerConfig::new())?;
    /// let mut reactor = Reactor::new(server, |_: Request, res: Responder| drop(res));
    /// let stop = reactor.stop_handle();
    /// std::thread::spawn(move || stop.stop()); // from any thread
    /// reactor.run()?;
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.wake();
    }
}

impl fmt::Debug for StopHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StopHandle").finish_non_exhaustive()
    }
}
