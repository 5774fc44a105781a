//! The reactor: a serve loop over a [`Server`](crate::channel::Server) that runs a request
//! inline when nothing else is going on and hands it to an executor otherwise, and sends every
//! connection's responses in request order.
//!
//! # What it does with a request
//!
//! 1. It copies the request out of its ring (releasing the slot at once, so the client can
//!    send the next one) and gives it the connection's next sequence number.
//! 2. If the connection already has [`max_in_flight`](crate::channel::ServerConfig::max_in_flight)
//!    requests with handlers, the request is answered [`Status::Busy`] without running.
//! 3. **Inline fast path**: if no request of any connection is in flight and no further
//!    request is pending ([`Server::has_request`](crate::channel::Server::has_request)), the
//!    handler runs on the reactor thread — no hand-off, no wake-up: a lone client pays what a
//!    serial loop pays. Otherwise the request goes to the [`Executor`].
//! 4. The handler answers through a [`Responder`] (from any thread, now or later). The answer
//!    goes to the reactor's completion queue, and the responder rings the server's doorbell
//!    ([`Server::notifier`](crate::channel::Server::notifier)).
//! 5. The reactor moves completions into the connection's *stash*, ordered by sequence
//!    number, and sends from the stash's head while the head is the next number due and the
//!    response ring has room. It is the only sender on every response ring.
//!
//! # Why nothing is lost, reordered or slept through
//!
//! * **Order.** Sequence numbers are given in the order requests leave the connection's ring
//!   (one reactor thread takes them), and a response is sent only when its number is the
//!   connection's next due; numbers are sent each exactly once. So responses go out in request
//!   order whatever order handlers finish in.
//! * **No completion slept through.** A responder (1) pushes its answer onto the queue and
//!   raises the queue's pending count, both under the queue's lock, then (2) rings the
//!   doorbell: bumps its sequence, `fence(SeqCst)`, loads the waiter mark, and wakes if it is
//!   set. The reactor sleeps only through the doorbell's wait, which (a) sets the mark,
//!   (b) `fence(SeqCst)`, (c) re-checks "pending > 0", and sleeps only if the doorbell's
//!   sequence is unchanged. By the two fences either the responder's load sees the mark (and
//!   wakes the reactor) or the reactor's re-check sees the count (and does not sleep) — the
//!   doorbell argument of [`crate::doorbell`], with the pending count as the condition. The
//!   same holds for requests (the clients' producers ring the same doorbell after publishing)
//!   and for response-ring space (the clients' consumers ring it after releasing).
//! * **Nothing dropped unanswered.** Every request that leaves a ring gets exactly one
//!   response: the handler's, `Busy`, or — if the [`Responder`] is dropped unanswered,
//!   including by a panic unwinding through the handler — [`Status::Dropped`] or
//!   [`Status::Panicked`]. Only a connection that is gone (its client closed or died) has its
//!   parked responses freed.
//! * **One slow client never stalls the others.** The reactor never blocks on a response
//!   ring: a response that does not fit waits in the stash, and the reactor goes on with the
//!   other connections. A connection whose stash passes
//!   [`stash_bytes`](crate::channel::ServerConfig::stash_bytes) is paused — the reactor stops
//!   taking its requests, so it soon blocks on its own full request ring — and resumed once
//!   the stash is below half of that. A stash holds at most `stash_bytes` plus the
//!   connection's in-flight responses.
//!
//! This protocol is checked by a loom model (`loom-tests/tests/reactor.rs`): workers
//! finishing in any order against the reactor's sleeps, with mutants (the responder ringing
//! *before* posting; the stash sent out of order) that loom catches.
//!
//! # Files
//!
//! `handler.rs` (handlers and requests), `responder.rs`, `shared.rs` (the completion queue
//! and the stop handle), `stash.rs` (a connection's order and reorder stash), `executor.rs`,
//! `pool.rs`, and the serve loop here. The reactor drives any
//! [`Transport`]; [`Server`](crate::channel::Server) is the one the
//! crate provides.
//!
//! # Panics in handlers
//!
//! A handler that panics (with `panic = "unwind"`, the default) becomes a
//! [`Status::Panicked`] response and the reactor goes on; the panic hook still prints the
//! message. Built with `panic = "abort"` the process aborts instead, and its clients see
//! [`CallError::Disconnected`](crate::channel::CallError::Disconnected).
//!
//! # Examples
//!
//! ```
//! use ringbell::channel::{Client, Server, ServerConfig};
//! use ringbell::reactor::{Reactor, ThreadPool};
//!
//! let dir = std::env::temp_dir().join(format!("ringbell-reactor-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let path = dir.join("upper.sock");
//! let server = Server::bind(&path, ServerConfig::new())?;
//! let mut reactor = Reactor::new(server, |req: ringbell::reactor::Request, res: ringbell::reactor::Responder| {
//!     let _ = res.respond(&req.body.to_ascii_uppercase());
//! })
//! .with_executor(ThreadPool::new(2));
//! let stop = reactor.stop_handle();
//! let serving = std::thread::spawn(move || reactor.run());
//!
//! let mut client = Client::connect(&path)?;
//! let ids: Vec<_> = (0..4).map(|_| client.send_request(b"hi").unwrap()).collect();
//! for id in ids {
//!     let r = client.recv_response()?;
//!     assert_eq!((r.id, r.into_result()?), (id, b"HI".to_vec()));
//! }
//! stop.stop();
//! let stats = serving.join().unwrap()?;
//! assert_eq!(stats.requests, 4);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::boxed::Box;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;
use std::vec::Vec;

mod executor;
mod handler;
#[cfg(not(loom))]
mod pool;
mod responder;
mod shared;
mod stash;

pub use executor::{Executor, InlineExecutor, Job};
pub use handler::{Handler, Request};
#[cfg(not(loom))]
pub use pool::ThreadPool;
pub use responder::{Responder, ResponseTooLarge};
pub use shared::StopHandle;

use crate::channel::{
    ClientInfo, ConnId, Incoming, RecvRequestError, SendResponseError, Status, Transport,
};
use crate::clock::Instant;
use crate::mutant::{self, Mutant};
use crate::sync::{Arc, Ordering};
use shared::{Completion, Reply, Shared};
use stash::ConnState;

/// What a reactor run did.
///
/// # Examples
///
/// ```
/// use ringbell::reactor::ReactorStats;
///
/// let s = ReactorStats::default();
/// assert_eq!(s.requests, s.inline + s.dispatched + s.busy);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReactorStats {
    /// Requests taken from the rings.
    pub requests: u64,
    /// Of them, run inline on the reactor thread.
    pub inline: u64,
    /// Of them, handed to the executor.
    pub dispatched: u64,
    /// Of them, answered `Busy` without running.
    pub busy: u64,
    /// Responses sent.
    pub sent: u64,
    /// Handler panics answered `Panicked`.
    pub panicked: u64,
    /// Connections detached (closed, died, corrupt).
    pub detached: u64,
    /// Responses discarded because their connection was gone, or because the drain at stop
    /// ran out of time.
    pub discarded: u64,
    /// Times a connection was paused for a full stash.
    pub paused: u64,
    /// Largest stash of one connection, in bytes (bodies plus 64 per response).
    pub max_stash_bytes: usize,
    /// Sleeps on the doorbell.
    pub sleeps: u64,
}

/// How long a stopping reactor waits for in-flight requests and unsent responses.
const DEFAULT_DRAIN: Duration = Duration::from_secs(5);

/// The serve loop; see the [module docs](self).
///
/// # Examples
///
/// ```
/// use ringbell::channel::{Client, Server, ServerConfig};
/// use ringbell::reactor::{Reactor, Request, Responder, ThreadPool};
///
/// # let dir = std::env::temp_dir().join(format!("ringbell-doc-reactor-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// let server = Server::bind(dir.join("s.sock"), ServerConfig::new())?;
/// let handler = |req: Request, res: Responder| {
///     let _ = res.respond(&req.body);
/// };
/// let mut reactor = Reactor::new(server, handler).with_executor(ThreadPool::new(2));
/// let stop = reactor.stop_handle();
/// let serving = std::thread::spawn(move || reactor.run());
/// let mut client = Client::connect(dir.join("s.sock"))?;
/// assert_eq!(client.call(b"echo")?, b"echo");
/// stop.stop();
/// assert_eq!(serving.join().unwrap()?.requests, 1);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Reactor<T: Transport, H: Handler, E: Executor = InlineExecutor> {
    transport: T,
    handler: Arc<H>,
    executor: E,
    serial: bool,
    shared: Arc<Shared>,
    conns: Vec<Option<ConnState>>,
    in_flight: usize,
    buf: Vec<u8>,
    completions: Vec<Completion>,
    /// Reused for the answers of inline handlers (see `Shared::run_inline`).
    inline_done: Vec<Completion>,
    /// Reused by `sleep`: connections whose due response did not fit.
    blocked: Vec<(ConnId, usize)>,
    drain: Duration,
    stats: ReactorStats,
    /// The fork generation when made: a copy in a forked child does not serve.
    fork_gen: u32,
}

impl<T: Transport, H: Handler> Reactor<T, H, InlineExecutor> {
    /// A reactor serving `transport` (a [`Server`](crate::channel::Server)) with `handler`,
    /// running every request on the reactor thread until given an executor
    /// ([`with_executor`](Self::with_executor)).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{Server, ServerConfig};
    /// use ringbell::reactor::{Reactor, Request, Responder};
    ///
    /// # let dir = std::env::temp_dir().join(format!("ringbell-doc-r{}-{}", line!(), std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let server = Server::bind(dir.join("s.sock"), ServerConfig::new())?;
    /// let reactor = Reactor::new(server, |req: Request, res: Responder| {
    ///     let _ = res.respond(&req.body);
    /// });
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(transport: T, handler: H) -> Self {
        let shared = Shared::new(transport.waker());
        let buf = std::vec![0u8; transport.max_request()];
        Self {
            transport,
            handler: Arc::new(handler),
            executor: InlineExecutor,
            serial: false,
            shared,
            conns: Vec::new(),
            in_flight: 0,
            buf,
            completions: Vec::new(),
            inline_done: Vec::new(),
            blocked: Vec::new(),
            drain: DEFAULT_DRAIN,
            stats: ReactorStats::default(),
            fork_gen: crate::fork::generation(),
        }
    }
}

impl<T: Transport, H: Handler, E: Executor> Reactor<T, H, E> {
    /// Hands requests that arrive while others are in flight to `executor`.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{Server, ServerConfig};
    /// use ringbell::reactor::{Reactor, Request, Responder, ThreadPool};
    ///
    /// # let dir = std::env::temp_dir().join(format!("ringbell-doc-r{}-{}", line!(), std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let server = Server::bind(dir.join("s.sock"), ServerConfig::new())?;
    /// let reactor = Reactor::new(server, |_: Request, res: Responder| drop(res))
    ///     .with_executor(ThreadPool::new(4));
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_executor<E2: Executor>(self, executor: E2) -> Reactor<T, H, E2> {
        Reactor {
            transport: self.transport,
            handler: self.handler,
            executor,
            serial: self.serial,
            shared: self.shared,
            conns: self.conns,
            in_flight: self.in_flight,
            buf: self.buf,
            completions: self.completions,
            inline_done: self.inline_done,
            blocked: self.blocked,
            drain: self.drain,
            stats: self.stats,
            fork_gen: self.fork_gen,
        }
    }

    /// Serial mode (`true`): every request runs inline on the reactor thread, one at a time,
    /// whatever the executor. Responses are still ordered and parked when a ring is full.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{Server, ServerConfig};
    /// use ringbell::reactor::{Reactor, Request, Responder};
    ///
    /// # let dir = std::env::temp_dir().join(format!("ringbell-doc-r{}-{}", line!(), std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let server = Server::bind(dir.join("s.sock"), ServerConfig::new())?;
    /// let reactor = Reactor::new(server, |_: Request, res: Responder| drop(res)).serial(true);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn serial(mut self, serial: bool) -> Self {
        self.serial = serial;
        self
    }

    /// How long a stopping reactor waits for in-flight requests and unsent responses (5 s
    /// by default); what is still unsent then is discarded and counted.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{Server, ServerConfig};
    /// use ringbell::reactor::{Reactor, Request, Responder};
    ///
    /// # let dir = std::env::temp_dir().join(format!("ringbell-doc-r{}-{}", line!(), std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let server = Server::bind(dir.join("s.sock"), ServerConfig::new())?;
    /// let reactor = Reactor::new(server, |_: Request, res: Responder| drop(res))
    ///     .drain_timeout(std::time::Duration::from_secs(1));
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn drain_timeout(mut self, t: Duration) -> Self {
        self.drain = t;
        self
    }

    /// A handle that stops [`run`](Self::run) from any thread.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{Server, ServerConfig};
    /// use ringbell::reactor::{Reactor, Request, Responder};
    ///
    /// # let dir = std::env::temp_dir().join(format!("ringbell-doc-r{}-{}", line!(), std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let server = Server::bind(dir.join("s.sock"), ServerConfig::new())?;
    /// let mut reactor = Reactor::new(server, |_: Request, res: Responder| drop(res));
    /// reactor.stop_handle().stop(); // stopped before it runs: `run` returns at once
    /// reactor.run()?;
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle {
            shared: self.shared.clone(),
        }
    }

    /// The transport (the server).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{Server, ServerConfig};
    /// use ringbell::reactor::{Reactor, Request, Responder};
    ///
    /// # let dir = std::env::temp_dir().join(format!("ringbell-doc-r{}-{}", line!(), std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let server = Server::bind(dir.join("s.sock"), ServerConfig::new())?;
    /// let reactor = Reactor::new(server, |_: Request, res: Responder| drop(res));
    /// assert_eq!(reactor.transport().clients(), 0);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// Counters so far.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{Server, ServerConfig};
    /// use ringbell::reactor::{Reactor, Request, Responder};
    ///
    /// # let dir = std::env::temp_dir().join(format!("ringbell-doc-r{}-{}", line!(), std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let server = Server::bind(dir.join("s.sock"), ServerConfig::new())?;
    /// let reactor = Reactor::new(server, |_: Request, res: Responder| drop(res));
    /// assert_eq!(reactor.stats().requests, 0);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stats(&self) -> ReactorStats {
        self.stats
    }

    /// Serves until stopped ([`StopHandle::stop`]); then finishes what is in flight (for at
    /// most the drain timeout), answering requests that still arrive
    /// [`Status::ShuttingDown`], shuts the server down (new clients are refused, connected
    /// ones see `Disconnected`) and returns the counters.
    ///
    /// # Errors
    ///
    /// An error of kind [`Other`](std::io::ErrorKind::Other) at once if the reactor was
    /// inherited across `fork(2)`: only the process that made it serves (its server, pool
    /// and clients' rings are the parent's).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{Server, ServerConfig};
    /// use ringbell::reactor::{Reactor, Request, Responder};
    ///
    /// # let dir = std::env::temp_dir().join(format!("ringbell-doc-r{}-{}", line!(), std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let server = Server::bind(dir.join("s.sock"), ServerConfig::new())?;
    /// let mut reactor = Reactor::new(server, |_: Request, res: Responder| drop(res));
    /// let stop = reactor.stop_handle();
    /// let serving = std::thread::spawn(move || reactor.run());
    /// stop.stop();
    /// let stats = serving.join().unwrap()?;
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn run(&mut self) -> std::io::Result<ReactorStats> {
        if crate::fork::forked(self.fork_gen) {
            return Err(std::io::Error::other(
                "the reactor was inherited across fork: only the process that made it serves",
            ));
        }
        let interval = self.transport.housekeeping_interval();
        let mut last_housekeeping = Instant::now();
        let mut drain_deadline: Option<Instant> = None;
        let mut since_clock = 0u32;
        self.housekeeping(true);
        loop {
            let stopping = self.shared.stop.load(Ordering::Acquire);
            let mut progress = self.collect();
            progress |= self.flush_all();
            if stopping {
                let deadline =
                    *drain_deadline.get_or_insert_with(|| Instant::now().after(self.drain));
                if self.in_flight == 0 && self.conns.iter().flatten().all(|c| c.stash.is_empty()) {
                    break;
                }
                if interval.is_some() && Instant::now() >= deadline {
                    for c in self.conns.iter_mut().flatten() {
                        self.stats.discarded += c.stash.len() as u64;
                        c.stash.clear();
                    }
                    break;
                }
            }
            progress |= self.intake(stopping);
            if let Some(every) = interval {
                since_clock += 1;
                if !progress || since_clock >= 256 {
                    since_clock = 0;
                    let now = Instant::now();
                    if now.since(last_housekeeping) >= every {
                        last_housekeeping = now;
                        self.housekeeping(!stopping);
                    }
                }
            }
            if progress {
                continue;
            }
            self.sleep(stopping);
        }
        self.transport.shutdown();
        Ok(self.stats)
    }

    /// One turn of the serve loop, without sleeping: moves answers in, sends what fits, takes
    /// at most one request (running it inline or dispatching it), then accepts new clients and
    /// detaches hung-up ones (system calls). Returns whether it did anything besides the
    /// housekeeping. For driving the reactor from a loop of one's own; [`run`](Self::run)
    /// does the same with sleeping, housekeeping once per slice, and the stop protocol.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{Server, ServerConfig};
    /// use ringbell::reactor::{Reactor, Request, Responder};
    ///
    /// # let dir = std::env::temp_dir().join(format!("ringbell-doc-r{}-{}", line!(), std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let server = Server::bind(dir.join("s.sock"), ServerConfig::new())?;
    /// let mut reactor = Reactor::new(server, |_: Request, res: Responder| drop(res));
    /// for _ in 0..3 {
    ///     let busy = reactor.poll(); // accepts, serves, sends; never sleeps
    ///     # let _ = busy;
    /// }
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn poll(&mut self) -> bool {
        let mut progress = self.collect();
        progress |= self.flush_all();
        progress |= self.intake(false);
        self.housekeeping(true);
        progress
    }

    /// Takes at most one request from the server (or notes a detached connection). Returns
    /// whether there was anything.
    fn intake(&mut self, stopping: bool) -> bool {
        match self.transport.try_recv_request(&mut self.buf) {
            Ok(inc) => {
                self.take(inc, stopping);
                true
            }
            Err(RecvRequestError::Detached(conn, _)) => {
                self.forget(conn);
                true
            }
            Err(_) => false,
        }
    }

    /// Sleeps until a request, a completion, room for a parked response, a stop, or (with a
    /// real server) the end of a slice.
    fn sleep(&mut self, stopping: bool) {
        let mut blocked = core::mem::take(&mut self.blocked);
        blocked.clear();
        blocked.extend(self.conns.iter().flatten().filter_map(
            |c| match c.stash.first_key_value() {
                Some((&seq, r)) if seq == c.next_send => Some((c.id, r.body.len())),
                _ => None,
            },
        ));
        let shared = &*self.shared;
        // Once stopping, the stop flag no longer ends a sleep (it stays set): the drain sleeps
        // until a completion or room, like any other wait.
        let ready = || {
            shared.pending.load(Ordering::Acquire) > 0
                || (!stopping && shared.stop.load(Ordering::Acquire))
        };
        self.stats.sleeps += 1;
        self.transport.wait(&blocked, &ready);
        self.blocked = blocked;
    }

    fn housekeeping(&mut self, accept: bool) {
        for conn in self.transport.housekeeping(accept) {
            self.forget(conn);
        }
    }

    /// Drops a gone connection's state: its parked responses and its in-flight count (late
    /// answers for it are discarded).
    fn forget(&mut self, conn: ConnId) {
        self.stats.detached += 1;
        if let Some(slot) = self.conns.get_mut(conn.slot) {
            if slot.as_ref().is_some_and(|c| c.id == conn) {
                let c = slot.take().expect("checked");
                self.in_flight -= c.in_flight;
                self.stats.discarded += c.stash.len() as u64;
            }
        }
    }

    fn state(&mut self, conn: ConnId) -> &mut ConnState {
        if self.conns.len() <= conn.slot {
            self.conns.resize_with(conn.slot + 1, || None);
        }
        let slot = &mut self.conns[conn.slot];
        if slot.as_ref().is_some_and(|c| c.id != conn) {
            // The slot's previous connection is gone (its detach was seen by the server
            // first); its answers are void.
            let old = slot.take().expect("checked");
            self.in_flight -= old.in_flight;
            self.stats.discarded += old.stash.len() as u64;
            self.stats.detached += 1;
        }
        self.conns[conn.slot].get_or_insert_with(|| ConnState::new(conn))
    }

    /// Takes one request: numbers it, then answers `Busy` (or `ShuttingDown`), runs it
    /// inline or dispatches it.
    fn take(&mut self, inc: Incoming, stopping: bool) {
        self.stats.requests += 1;
        let (max_in_flight, _) = self.transport.limits();
        let in_flight_before = self.in_flight;
        let st = self.state(inc.conn);
        let seq = st.next_seq;
        st.next_seq += 1;
        let refusal = if stopping {
            Some(Status::ShuttingDown)
        } else if st.in_flight >= max_in_flight {
            Some(Status::Busy)
        } else {
            None
        };
        if let Some(status) = refusal {
            if status == Status::Busy {
                self.stats.busy += 1;
            }
            self.park(
                inc.conn,
                seq,
                Reply {
                    id: inc.id,
                    status,
                    body: Vec::new(),
                },
            );
            return;
        }
        st.in_flight += 1;
        self.in_flight += 1;
        // A request always comes from an attached connection; should the lookup fail, claim
        // nobody's identity (not root's).
        let client = self.transport.client(inc.conn).unwrap_or(ClientInfo {
            conn: inc.conn,
            pid: 0,
            uid: u32::MAX,
            gid: u32::MAX,
        });
        let req = Request {
            client,
            id: inc.id,
            body: self.buf[..inc.len].to_vec(),
        };
        let res = Responder::new(
            self.shared.clone(),
            inc.conn,
            seq,
            inc.id,
            self.transport.max_response(),
        );
        // A panic drops `res` while unwinding, which answers `Panicked`.
        if self.serial || (in_flight_before == 0 && !self.transport.has_request()) {
            self.stats.inline += 1;
            let handler = &*self.handler;
            let mut mine = core::mem::take(&mut self.inline_done);
            let run = || {
                let _ = catch_unwind(AssertUnwindSafe(|| handler.handle(req, res)));
            };
            self.shared.run_inline(run, &mut mine);
            // The answer (if given) is in `mine`: send it now, not after a loop turn.
            self.settle(&mut mine);
            self.inline_done = mine;
            self.collect();
            self.flush(inc.conn.slot);
        } else {
            self.stats.dispatched += 1;
            let handler = self.handler.clone();
            self.executor.execute(Box::new(move || {
                let _ = catch_unwind(AssertUnwindSafe(|| handler.handle(req, res)));
            }));
        }
    }

    /// Moves completions from the queue into their connections' stashes.
    fn collect(&mut self) -> bool {
        if self.shared.pending.load(Ordering::Acquire) == 0 {
            return false;
        }
        let mut done = core::mem::take(&mut self.completions);
        self.shared.take(&mut done);
        let any = !done.is_empty();
        self.settle(&mut done);
        self.completions = done;
        any
    }

    /// Moves completions into their connections' stashes (or sends them), emptying `done`.
    fn settle(&mut self, done: &mut Vec<Completion>) {
        for c in done.drain(..) {
            let live = self
                .conns
                .get_mut(c.conn.slot)
                .and_then(Option::as_mut)
                .filter(|s| s.id == c.conn);
            let Some(st) = live else {
                self.stats.discarded += 1;
                continue;
            };
            st.in_flight -= 1;
            self.in_flight -= 1;
            if c.reply.status == Status::Panicked {
                self.stats.panicked += 1;
            }
            self.park(c.conn, c.seq, c.reply);
        }
    }

    /// Puts a reply in its connection's stash; pauses the connection past the stash limit.
    fn park(&mut self, conn: ConnId, seq: u64, reply: Reply) {
        let (_, limit) = self.transport.limits();
        let Some(st) = self.conns.get_mut(conn.slot).and_then(Option::as_mut) else {
            return;
        };
        if seq == st.next_send && st.stash.is_empty() {
            // The common case: the reply due next, nothing parked before it. Send it now.
            match self
                .transport
                .try_send_response(conn, reply.id, reply.status, &reply.body)
            {
                Ok(()) => {
                    st.next_send += 1;
                    self.stats.sent += 1;
                    return;
                }
                Err(SendResponseError::Gone | SendResponseError::Forked) => {
                    self.forget(conn);
                    return;
                }
                // Parked below; `flush` deals with it.
                Err(SendResponseError::Full | SendResponseError::TooLarge { .. }) => {}
            }
        }
        st.stash_bytes += reply.cost();
        st.stash.insert(seq, reply);
        self.stats.max_stash_bytes = self.stats.max_stash_bytes.max(st.stash_bytes);
        if !st.paused && st.stash_bytes >= limit {
            st.paused = true;
            self.stats.paused += 1;
            self.transport.pause(conn, true);
        }
    }

    fn flush_all(&mut self) -> bool {
        let mut any = false;
        for slot in 0..self.conns.len() {
            any |= self.flush(slot);
        }
        any
    }

    /// Sends a connection's due responses while they fit. Returns whether it sent any.
    fn flush(&mut self, slot: usize) -> bool {
        let (_, limit) = self.transport.limits();
        let mut sent = false;
        let Some(st) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            return false;
        };
        let mut gone = false;
        while let Some(entry) = st.stash.first_entry() {
            let in_order = *entry.key() == st.next_send;
            if !in_order && mutant::keep(Mutant::SendOutOfOrder) {
                break;
            }
            let r = entry.get();
            match self
                .transport
                .try_send_response(st.id, r.id, r.status, &r.body)
            {
                Ok(()) => {}
                Err(SendResponseError::Full) => break,
                Err(SendResponseError::TooLarge { .. }) => {
                    // A responder checks the cap; a reply past it cannot reach here. Should
                    // it, the client still gets an answer.
                    let r = entry.into_mut();
                    st.stash_bytes -= r.cost();
                    r.status = Status::TooLarge;
                    r.body = Vec::new();
                    st.stash_bytes += r.cost();
                    continue;
                }
                Err(SendResponseError::Gone | SendResponseError::Forked) => {
                    gone = true;
                    break;
                }
            }
            let r = entry.remove();
            st.stash_bytes -= r.cost();
            st.next_send += 1;
            self.stats.sent += 1;
            sent = true;
        }
        if gone {
            let id = st.id;
            self.forget(id);
            return true;
        }
        if st.paused && (st.stash.is_empty() || st.stash_bytes <= limit / 2) {
            st.paused = false;
            let id = st.id;
            self.transport.pause(id, false);
        }
        sent
    }
}

impl<T: Transport, H: Handler, E: Executor> fmt::Debug for Reactor<T, H, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reactor")
            .field("in_flight", &self.in_flight)
            .field("serial", &self.serial)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}
