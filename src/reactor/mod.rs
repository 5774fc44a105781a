//! The reactor: a serve loop over a [`Server`](crate::channel::Server) that runs a request
//! inline when nothing else is going on and hands it to an executor otherwise, and sends every
//! connection's responses in request order.
//!
//! # What it does with a request
//!
//! 1. It copies the request out of its ring (releasing the slot at once, so the client can
//!    send the next one) and gives it the connection's next sequence number.
//! 2. If the connection already has [`max_in_flight`](crate::channel::ServerConfig::max_in_flight)
//!    requests taken and not yet answered (running or waiting for their key), the request is
//!    answered [`Status::Busy`](crate::channel::Status::Busy) without running.
//! 3. With per-key ordering ([`Handler::access`], below) it may wait for its key, or be
//!    answered `Busy` if its key's queue is full.
//! 4. **Inline fast path**: if no request of any connection is in flight and no further
//!    request is pending ([`Server::has_request`](crate::channel::Server::has_request)), the
//!    handler runs on the reactor thread — no hand-off, no wake-up: a lone client pays what a
//!    serial loop pays. Otherwise the request goes to the [`Executor`].
//! 5. The handler answers through a [`Responder`] (from any thread, now or later). The answer
//!    goes to the reactor's completion queue, and the responder rings the server's doorbell
//!    ([`Server::notifier`](crate::channel::Server::notifier)).
//! 6. The reactor moves completions into the connection's *stash*, ordered by sequence
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
//!   including by a panic unwinding through the handler — [`Status::Dropped`](crate::channel::Status::Dropped) or
//!   [`Status::Panicked`](crate::channel::Status::Panicked). Only a connection that is gone (its client closed or died) has its
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
//! # Slow inline handlers
//!
//! Running a request inline is what makes a lone client as fast as a serial loop, but a
//! handler that takes long would hold up every request that arrives meanwhile. So when the
//! executor never runs jobs on the caller ([`Executor::runs_concurrently`], true for
//! [`ThreadPool`]) and the reactor is not [serial](Reactor::serial), [`run`](Reactor::run)
//! starts a *watcher* thread, and the serve state (the server, the executor, the stashes)
//! lives behind a lock that the reactor thread holds — releasing it only around an inline
//! handler. Work that arrives during an inline run waits at most about the
//! [inline budget](Reactor::inline_budget) (1 ms by default; twice that in the worst case):
//! then the watcher takes the lock and serves, dispatching everything, until the handler
//! returns.
//!
//! How the watcher learns, without a timer and without a system call on the fast path:
//!
//! 1. Before an inline run the reactor thread moves its inline counter to the run's odd
//!    value, then sets the waiter mark of the server's doorbell (the one every request,
//!    answer and freed response slot rings) — a swap and a `fence(SeqCst)`, no system
//!    call — then sends what now fits and re-checks for waiting work (a request pending, an
//!    answer queued). If there is some, the request is dispatched instead (the mark cleared,
//!    the counter made even). Otherwise it releases the lock.
//! 2. The watcher sleeps on the doorbell's sequence word *without* setting the mark, so a
//!    ring that finds no mark (the reactor thread awake and serving) costs the ringer nothing
//!    and wakes nobody. A ring during an inline run finds the mark, clears it, moves the
//!    sequence and wakes the watcher. By the doorbell's fence pair, work that arrived before
//!    the mark was set is seen by the re-check in step 1, and work after it rings through
//!    the mark: none is missed.
//! 3. Awake, the watcher reads the sequence, then the counter, then the mark. A ring that
//!    found the mark was made after the counter turned odd (the counter is stored before the
//!    mark's Release swap, which the ringer's swap reads, and the sequence move the watcher
//!    read comes after that) — so the watcher sees the odd counter with the mark cleared:
//!    something rang during that run (mutant `odd_after_arm`: with the mark set first, a
//!    ring in between is taken for one outside any run and missed). It waits out the budget;
//!    if the same run is still going, it takes the lock (the counter is re-read under it) and
//!    leads: collects answers, sends, takes and *dispatches* requests, does the housekeeping,
//!    and sleeps on the doorbell like the reactor thread — never running a handler itself.
//! 4. When the handler returns, the reactor thread takes the lock back (fast path: one
//!    compare-and-swap), moves the counter to even and clears the mark (a swap; nobody sleeps
//!    on the doorbell with its mark then). If the watcher holds the lock, the reactor thread
//!    sets `back`, then rings; the watcher checks `back` at every turn and in its sleep's
//!    re-check, so by the same fence pair it either sees `back` or is woken by the ring, and
//!    hands the lock back (mutant `back_rings_first`: ringing before setting `back` lets the
//!    watcher re-check in between and sleep holding the lock — loom finds the deadlock).
//! 5. Order: sequence numbers are given under the lock in ring order; the inline request's
//!    answer is settled by the reactor thread after it has the lock again, through the same
//!    stash as every other answer, so the answers of requests the watcher dispatched
//!    meanwhile wait for it. Only the inline request's own answer, given on its thread, takes
//!    the thread-local short cut; an answer to another request given from inside an inline
//!    handler goes through the queue, and a leading watcher sends it at once.
//!
//! Costs: an inline run pays the counter store, the mark swap, the fence, the re-check, one
//! lock release and one compare-and-swap, and the clearing swap — and the cache line of the
//! doorbell, which the clients read on every ring, moves to the reactor thread and back:
//! about 5 % of a round trip at one request in flight. So with a single client connected the
//! reactor neither arms nor releases the lock ([`Transport::connections`]): that client is
//! the only one that could send meanwhile, and the answers to its pipelined requests could
//! not pass the inline one's anyway (their execution waits too, which is the price). The
//! watcher wakes when the reactor thread is woken from a sleep (a ring wakes both; it finds
//! no inline run and sleeps again), when work arrives during an inline run, and at least once
//! per 50 ms slice otherwise, as every doorbell waiter does. A new connection and a client's
//! hang-up do not ring: they wait for the handler, or for other work to make the watcher
//! lead. The watcher ends when `run` returns or unwinds; a panic on it stops the hand-overs
//! and is re-raised by `run` at the end. A child forked inside an inline handler gets an
//! error from `run` and leaves the parent's state alone. [`poll`](Reactor::poll) has no
//! watcher. Checked by the loom models
//! `an_overrunning_inline_handler_hands_the_serve_loop_over_in_order` (a handler that
//! returns only once the request behind it has been handled — which only a hand-over
//! allows) and `a_request_at_any_moment_of_an_inline_run_is_not_missed`, and by
//! `tests/production.rs` with real processes.
//!
//! # Per-key ordering
//!
//! A handler may say, per request and before it runs, how the request is ordered
//! ([`Handler::access`], or [`ordered`] for two closures): [`Access::Read`]`(key)`,
//! [`Access::Write`]`(key)` or [`Access::Unordered`] (the default). Across all connections,
//! in the order requests leave the rings:
//!
//! - reads of a key run alongside each other; a write of a key runs alone on it, after every
//!   earlier request on the key, and every later request on the key runs after it;
//! - different keys never wait on each other, and `Unordered` never waits;
//! - a key with nothing running and nothing waiting has no entry in the table (the table
//!   keeps the capacity of its busiest moment); a key holds at most
//!   [`key_queue_limit`](Reactor::key_queue_limit) requests waiting, and past that a request
//!   on it is answered `Busy` at once;
//! - every request still gets exactly one answer, and responses still go out in each
//!   connection's request order (the stash).
//!
//! **How.** The leader (whoever holds the core) keeps a table: for each key with something
//! running or waiting, the number of reads running, whether a write runs, and a queue of the
//! requests that wait, in arrival order. When it takes a request it asks the handler for its
//! access (in arrival order: one leader at a time takes requests), and starts it only if the
//! key's queue is empty and the key is free for it — no write running, and for a write no
//! read running; else the request joins the queue. A started request's responder *holds* the
//! key; its completion (the answer, or `Dropped`, or `Panicked` from the responder's drop)
//! carries the key, and the leader releases it when it settles that completion — before it
//! looks at the connection (a detached connection's answer still frees its key) and before
//! it parks the answer, so the release never waits for room in a response ring. Releasing
//! starts the queue's head while the key is free for it: a run of reads, or one write, which
//! then stops the scan. The key is taken (or the request queued) *before* the inline-or-
//! dispatch decision, so an inline run holds its key like any other; the fast path itself is
//! unchanged. An inline request's answer that releases a key goes through the completion
//! queue, not the inline shortcut, so that the watcher, leading while the handler overruns,
//! can settle it and start what waits for the key while the handler still runs; it rings the
//! doorbell only if some request waits for a key (`Shared::post` argues the pair). In serial
//! mode a request whose key comes free runs inline at the loop's next turn. `access` runs on
//! whichever thread leads (the reactor thread or the watcher), under the core's lock; a panic
//! in it answers the request `Panicked`.
//!
//! **Why it holds.** Only the leader reads or writes the table, under the core's lock, so
//! its updates are sequential; workers touch it only through completions, which the leader
//! settles one at a time. *A write waits for every earlier request on its key*: an earlier
//! request is either running (then the key is not free for a write: readers > 0 or a write
//! runs) or waiting (then the queue is not empty) until its completion is settled; the write
//! starts only when neither holds. *A later request waits for a write*: while the write
//! runs the key is not free for anything; while it waits it is in the queue, and nothing
//! starts past a non-empty queue. *Reads run together*: a read starts when no write runs
//! and nothing waits, and release starts every read at the head up to the next write. *No
//! request waits forever* — provided every started request's responder is consumed: it is
//! when the handler answers, drops it, or panics, and each release re-scans the head. A
//! responder kept for ever (leaked, stored, or held in a forked child) holds its key for
//! every client, not only its own request.
//! A write's answer reaches the stash in the same settle that releases its key — never later
//! (the `early_release` mutant lets it go when it starts, which the model catches).
//!
//! The loom model `two_keys_from_two_connections` (`loom-tests/tests/reactor.rs`) runs the
//! real reactor over a transport of plain queues (the rings have models of their own) with
//! two connections sending reads and writes of two keys, two workers finishing in any order,
//! and checks at each handler's start that everything it must follow has ended; the mutants
//! `write_ignores_reads`, `read_overtakes_write` and `early_release` each fail it (preemption
//! bound 1: 2 s; bound 2 passes too, in 5½ minutes). The model's requests are all queued
//! before the reactor runs, so it does not take the inline path or the hand-over, and its
//! response rings never fill, so a release that waited for room would pass it: those are
//! argued above, not modelled. `tests/ordering.rs` checks the same
//! with client processes: a counter hammered by eight of them (which also catches the first
//! and the last mutant), reads of a key and writes of different keys that must be seen to
//! overlap, read-your-writes across clients, a panicking write, the queue bound.
//!
//! # Files
//!
//! `handler.rs` (handlers and requests), `responder.rs`, `shared.rs` (the completion queue
//! and the stop handle), `stash.rs` (a connection's order and reorder stash), `serve.rs` (the
//! serve state and one turn of the loop), `handover.rs` (the watcher), `access.rs` and `order.rs` (per-key ordering), `executor.rs`,
//! `pool.rs`, and `run` here. The reactor drives any
//! [`Transport`]; [`Server`](crate::channel::Server) is the one the
//! crate provides.
//!
//! # Panics in handlers
//!
//! A handler that panics (with `panic = "unwind"`, the default) becomes a
//! [`Status::Panicked`](crate::channel::Status::Panicked) response and the reactor goes on; the panic hook still prints the
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

use std::fmt;
use std::time::Duration;

mod access;
#[cfg(feature = "tokio")]
mod asynchronous;
mod executor;
mod handler;
mod handover;
mod order;
#[cfg(not(loom))]
mod pool;
mod responder;
mod serve;
mod shared;
mod stash;

pub use access::Access;
#[cfg(feature = "tokio")]
pub use asynchronous::TokioExecutor;
pub use executor::{Executor, InlineExecutor, Job};
pub use handler::{Handler, Ordered, Request, ordered};
#[cfg(not(loom))]
pub use pool::ThreadPool;
pub use responder::{Responder, ResponseTooLarge};
pub use shared::StopHandle;

use crate::channel::Transport;
use crate::clock::Instant;
use crate::sync::{Arc, Mutex, MutexGuard, Ordering};
use handover::{Handover, Served};
use serve::{Core, InlineRun};
use shared::Shared;

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
    /// Times the watcher took the serve loop over from an inline handler that overran its
    /// budget with work waiting.
    pub handovers: u64,
    /// Requests that waited for their key (per-key ordering, [`Handler::access`]) before
    /// they ran.
    pub key_waits: u64,
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
    /// The serve loop's state; `None` only while `run` has it behind its lock.
    core: Option<Core<T, H, E>>,
    handler: Arc<H>,
    shared: Arc<Shared>,
    drain: Duration,
    /// How long an inline handler may run with work waiting before the watcher takes over;
    /// `None`: never.
    budget: Option<Duration>,
    /// The fork generation when made: a copy in a forked child does not serve.
    fork_gen: u32,
}

/// The inline budget a reactor starts with.
pub const DEFAULT_INLINE_BUDGET: Duration = Duration::from_millis(1);

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
        let core = Core::new(transport, handler, InlineExecutor, shared.clone());
        Self {
            handler: core.handler.clone(),
            core: Some(core),
            shared,
            drain: DEFAULT_DRAIN,
            budget: Some(DEFAULT_INLINE_BUDGET),
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
            core: self.core.map(|c| c.with_executor(executor)),
            handler: self.handler,
            shared: self.shared,
            drain: self.drain,
            budget: self.budget,
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
        self.core_mut().serial = serial;
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

    /// How long work — a request, an answer to send — may wait behind a handler running
    /// inline on the reactor thread before the reactor hands the serve loop to its watcher
    /// thread, which dispatches to the executor until the handler returns (1 ms by default);
    /// `None` never hands over. Only a reactor with an executor that runs jobs concurrently
    /// ([`Executor::runs_concurrently`]), not in [serial](Self::serial) mode, and with more
    /// than one client connected hands over (see the [module docs](self), "Slow inline
    /// handlers").
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{Server, ServerConfig};
    /// use ringbell::reactor::{Reactor, Request, Responder, ThreadPool};
    /// use std::time::Duration;
    ///
    /// # let dir = std::env::temp_dir().join(format!("ringbell-doc-r{}-{}", line!(), std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let server = Server::bind(dir.join("s.sock"), ServerConfig::new())?;
    /// let reactor = Reactor::new(server, |_: Request, res: Responder| drop(res))
    ///     .with_executor(ThreadPool::new(4))
    ///     .inline_budget(Some(Duration::from_micros(500)));
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn inline_budget(mut self, budget: Option<Duration>) -> Self {
        self.budget = budget;
        self
    }

    /// Most requests one key may hold waiting (per-key ordering, [`Handler::access`]);
    /// past it a request on that key is answered [`Status::Busy`](crate::channel::Status)
    /// at once, never dropped. 1024 by default; at least 1.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{Server, ServerConfig};
    /// use ringbell::reactor::{ordered, Access, Reactor, Request, Responder, ThreadPool};
    ///
    /// # let dir = std::env::temp_dir().join(format!("ringbell-doc-r{}-{}", line!(), std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let server = Server::bind(dir.join("s.sock"), ServerConfig::new())?;
    /// let handler = ordered(|_: &Request| Access::Write(0), |_: Request, res: Responder| drop(res));
    /// let reactor = Reactor::new(server, handler)
    ///     .with_executor(ThreadPool::new(4))
    ///     .key_queue_limit(64);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn key_queue_limit(mut self, limit: usize) -> Self {
        self.core_mut().keys.limit = limit.max(1);
        self
    }

    fn core(&self) -> &Core<T, H, E> {
        self.core
            .as_ref()
            .expect("the reactor's state is back after `run`")
    }

    fn core_mut(&mut self) -> &mut Core<T, H, E> {
        self.core
            .as_mut()
            .expect("the reactor's state is back after `run`")
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
        &self.core().transport
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
        self.core().stats
    }

    /// Serves until stopped ([`StopHandle::stop`]); then finishes what is in flight (for at
    /// most the drain timeout), answering requests that still arrive
    /// [`Status::ShuttingDown`](crate::channel::Status::ShuttingDown), shuts the server down (new clients are refused, connected
    /// ones see `Disconnected`) and returns the counters.
    ///
    /// With an executor that runs jobs concurrently it starts a watcher thread for slow
    /// inline handlers (see the [module docs](self)) and joins it before returning; the
    /// transport and the executor are then used from that thread too, one thread at a time
    /// (hence `Send`). If the thread cannot be spawned, the reactor runs without it.
    ///
    /// # Errors
    ///
    /// An error of kind [`Other`](std::io::ErrorKind::Other) at once if the reactor was
    /// inherited across `fork(2)`, and in a child forked inside an inline handler: only the
    /// process that made it serves (its server, pool and clients' rings are the parent's).
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
    pub fn run(&mut self) -> std::io::Result<ReactorStats>
    where
        T: Send + 'static,
        E: Send + 'static,
    {
        if crate::fork::forked(self.fork_gen) {
            return Err(std::io::Error::other(
                "the reactor was inherited across fork: only the process that made it serves",
            ));
        }
        /// Puts the state back into the reactor however `run` ends (a panic included), so
        /// that `stats`, `transport` and another `run` still work.
        struct PutBack<'a, T: Transport, H: Handler, E: Executor> {
            core: Option<Arc<Mutex<Core<T, H, E>>>>,
            into: &'a mut Option<Core<T, H, E>>,
        }
        impl<T: Transport, H: Handler, E: Executor> Drop for PutBack<'_, T, H, E> {
            fn drop(&mut self) {
                // Only after the watcher was joined is the state ours alone; a forked child
                // took it away (`core` is `None`).
                if let Some(core) = self.core.take().and_then(|c| Arc::try_unwrap(c).ok()) {
                    *self.into = Some(core.into_inner().unwrap_or_else(|e| e.into_inner()));
                }
            }
        }
        let core = Arc::new(Mutex::new(
            self.core
                .take()
                .expect("the reactor's state is back after `run`"),
        ));
        let bell = {
            let c = handover::lock(&core);
            (!c.serial && c.executor.runs_concurrently())
                .then(|| c.transport.watch_bell())
                .flatten()
        };
        let (handler, shared, drain, fork_gen) =
            (&self.handler, &self.shared, self.drain, self.fork_gen);
        let mut put_back = PutBack {
            core: Some(core.clone()),
            into: &mut self.core,
        };
        let serve = |h: Option<&Handover>| serve(&**handler, shared, drain, fork_gen, &core, h);
        let mut watcher_panic = None;
        let served = match (self.budget, bell) {
            (Some(budget), Some(bell)) => {
                let handover = Arc::new(Handover::new(bell, budget));
                let served = handover::with_watcher(&core, &handover, serve);
                watcher_panic = handover.take_panic();
                served
            }
            _ => serve(None),
        };
        drop(core);
        if served == Served::Forked {
            // A child forked inside an inline handler: the state, the server and the pool
            // are the parent's. Touch none of it (its lock may be held by a thread that does
            // not exist here).
            core::mem::forget(put_back.core.take());
            return Err(std::io::Error::other(
                "the process forked inside an inline handler: only the parent serves",
            ));
        }
        drop(put_back);
        if let Some(panic) = watcher_panic {
            std::panic::resume_unwind(panic);
        }
        Ok(self.core().stats)
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
        let shared = self.shared.clone();
        let handler = self.handler.clone();
        let core = self.core_mut();
        let mut progress = core.collect();
        progress |= core.flush_all();
        let (took, inline) = core.intake(false, true);
        progress |= took;
        if let Some(run) = inline {
            let conn = run.conn;
            let mut mine = core::mem::take(&mut core.inline_done);
            run.run(&*handler, &shared, &mut mine);
            core.finish_inline(conn, &mut mine);
            core.inline_done = mine;
        }
        core.housekeeping(true);
        progress
    }
}

impl<T: Transport, H: Handler, E: Executor> fmt::Debug for Reactor<T, H, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Reactor");
        if let Some(c) = &self.core {
            d.field("in_flight", &c.in_flight)
                .field("serial", &c.serial)
                .field("stats", &c.stats);
        }
        d.field("inline_budget", &self.budget)
            .finish_non_exhaustive()
    }
}

/// The reactor thread's loop (see `run`), leading unless the watcher took over during an
/// inline handler.
fn serve<T: Transport, H: Handler, E: Executor>(
    handler: &H,
    shared: &Shared,
    drain: Duration,
    fork_gen: u32,
    lock: &Mutex<Core<T, H, E>>,
    handover: Option<&Handover>,
) -> Served {
    let mut core = handover::lock(lock);
    let interval = core.transport.housekeeping_interval();
    let mut drain_deadline: Option<Instant> = None;
    core.housekeeping(true);
    loop {
        let stopping = shared.stop.load(Ordering::Acquire);
        let mut progress = core.collect();
        progress |= core.flush_all();
        if stopping && core.stop_finished(&mut drain_deadline, drain, interval.is_some()) {
            break;
        }
        // A transport that cannot hand a slow inline run over keeps other clients off the
        // reactor thread's handler runs (`Transport::inline_beside_others`).
        let may_inline = core.serial
            || !core.executor.runs_concurrently()
            || core.transport.inline_beside_others()
            || core.transport.connections() <= 1;
        let (took, inline) = core.intake(stopping, may_inline);
        progress |= took;
        if let Some(run) = inline {
            match run_inline(handler, shared, fork_gen, core, lock, run, handover) {
                Some(c) => core = c,
                None => return Served::Forked,
            }
        }
        core.housekeeping_if_due(progress, stopping);
        if progress {
            continue;
        }
        core.sleep(stopping, None);
    }
    core.transport.shutdown();
    Served::Done
}

/// Runs one request inline on this thread and settles its answer here, holding the core, in
/// sequence order. With a watcher (and more than one client), the doorbell is armed and the
/// core released while the handler runs, so that the watcher can lead if work waits behind
/// it, and taken back after. `None` if the handler forked and this is the child.
fn run_inline<'a, T: Transport, H: Handler, E: Executor>(
    handler: &H,
    shared: &Shared,
    fork_gen: u32,
    mut core: MutexGuard<'a, Core<T, H, E>>,
    lock: &'a Mutex<Core<T, H, E>>,
    run: InlineRun,
    handover: Option<&Handover>,
) -> Option<MutexGuard<'a, Core<T, H, E>>> {
    let conn = run.conn;
    let mut mine = core::mem::take(&mut core.inline_done);
    // One client: nobody else can send meanwhile (see `Transport::connections`).
    let handover = handover.filter(|h| h.alive() && core.transport.connections() > 1);
    match handover {
        None => {
            run.run(handler, shared, &mut mine);
            if crate::fork::forked(fork_gen) {
                return None;
            }
        }
        Some(h) => {
            let ordered = h.begin_inline();
            // After the mark: a ring before it woke nobody, so what came before must be seen
            // here (the fence pair) — a request, an answer, or room for a parked answer
            // (`flush_all` sends what fits now; what does not will ring through the mark).
            core.flush_all();
            if !ordered || core.work_waiting() {
                h.abandon_inline();
                core.inline_done = mine;
                core.dispatch(run);
                return Some(core);
            }
            drop(core);
            run.run(handler, shared, &mut mine);
            if crate::fork::forked(fork_gen) {
                return None;
            }
            core = h.retake(lock, || shared.wake());
        }
    }
    core.finish_inline(conn, &mut mine);
    core.inline_done = mine;
    Some(core)
}
