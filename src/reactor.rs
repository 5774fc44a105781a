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
//! finishing in any order against the reactor's sleeps, with a mutant (the responder ringing
//! *before* posting) that loom catches as a lost wake-up.
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
//! let server = Server::bind(&path, ServerConfig::default())?;
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
use std::collections::BTreeMap;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;
use std::vec::Vec;

use crate::channel::{
    ClientInfo, ConnId, Incoming, RecvRequestError, RequestId, SendResponseError, Status,
};
use crate::futex::Instant;
use crate::mutant::{self, Mutant};
use crate::sync::{Arc, AtomicBool, AtomicUsize, Mutex, Ordering};

/// A request handed to a [`Handler`]: copied out of shared memory, its slot already released.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// Who sent it (from the kernel, at connect time).
    pub client: ClientInfo,
    /// Its id on the connection.
    pub id: RequestId,
    /// Its body.
    pub body: Vec<u8>,
}

/// Serves requests. Called on the reactor thread (inline) or by the [`Executor`]; answers
/// through the [`Responder`], now or later, from any thread.
pub trait Handler: Send + Sync + 'static {
    /// Handles one request.
    fn handle(&self, req: Request, res: Responder);
}

impl<F> Handler for F
where
    F: Fn(Request, Responder) + Send + Sync + 'static,
{
    fn handle(&self, req: Request, res: Responder) {
        self(req, res)
    }
}

/// A unit of work for an [`Executor`].
pub type Job = Box<dyn FnOnce() + Send + 'static>;

/// Runs the jobs the reactor hands off: requests that arrive while others are in flight.
///
/// The crate spawns no threads unless asked: [`InlineExecutor`] runs each job at once on the
/// reactor thread; [`ThreadPool`] is a small pool that spawns its threads when created.
pub trait Executor {
    /// Runs `job`, now or later, on any thread. A job must run exactly once; a job never run
    /// leaves its request in flight (its client then waits for its deadline).
    fn execute(&self, job: Job);
}

/// Runs every job at once on the calling thread (the reactor's): a serial server.
#[derive(Clone, Copy, Debug, Default)]
pub struct InlineExecutor;

impl Executor for InlineExecutor {
    fn execute(&self, job: Job) {
        job();
    }
}

impl<E: Executor + ?Sized> Executor for Arc<E> {
    fn execute(&self, job: Job) {
        (**self).execute(job);
    }
}

/// A finished answer on its way to the reactor.
struct Completion {
    conn: ConnId,
    seq: u64,
    reply: Reply,
}

struct Reply {
    id: RequestId,
    status: Status,
    body: Vec<u8>,
}

impl Reply {
    /// What a parked reply counts against the stash limit: its body and a fixed overhead,
    /// so that empty replies count too.
    fn cost(&self) -> usize {
        self.body.len() + 64
    }
}

/// What the reactor and the responders share.
struct Shared {
    done: Mutex<Vec<Completion>>,
    /// Completions in `done`; raised under its lock by responders, zeroed under it by the
    /// reactor; read without the lock as the sleep condition.
    pending: AtomicUsize,
    stop: AtomicBool,
    wake: Box<dyn Fn() + Send + Sync>,
}

#[cfg(not(loom))]
std::thread_local! {
    /// Set, on the reactor thread while it runs a handler inline, to that reactor's `Shared`:
    /// answers given for it on this thread go to `INLINE_DONE` — no lock, no doorbell ring —
    /// because the reactor collects them as soon as the handler returns. Answers from any
    /// other thread, or for another reactor, take the shared queue and ring as usual.
    static INLINE: core::cell::Cell<*const Shared> = const { core::cell::Cell::new(core::ptr::null()) };
    /// Answers given inline (see `INLINE`).
    static INLINE_DONE: core::cell::RefCell<Vec<Completion>> = const { core::cell::RefCell::new(Vec::new()) };
}
#[cfg(loom)]
loom::thread_local! {
    static INLINE: core::cell::Cell<*const Shared> = core::cell::Cell::new(core::ptr::null());
    static INLINE_DONE: core::cell::RefCell<Vec<Completion>> = core::cell::RefCell::new(Vec::new());
}

impl Shared {
    fn post(&self, c: Completion) {
        // The reactor collects right after an inline handler returns, on this thread.
        if core::ptr::eq(INLINE.with(core::cell::Cell::get), self) {
            INLINE_DONE.with(|d| d.borrow_mut().push(c));
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
        if !mutant::active(Mutant::ReplyRingsFirst) {
            (self.wake)();
        }
    }

    fn take(&self, into: &mut Vec<Completion>) {
        let mut done = self.done.lock().unwrap_or_else(|e| e.into_inner());
        core::mem::swap(&mut *done, into);
        self.pending.store(0, Ordering::Relaxed);
    }
}

/// A handler's way to answer one request, from any thread. Answer once with
/// [`respond`](Self::respond) or [`fail`](Self::fail); dropping it unanswered sends
/// [`Status::Dropped`] (or [`Status::Panicked`] while a panic unwinds).
pub struct Responder {
    shared: Arc<Shared>,
    conn: ConnId,
    seq: u64,
    id: RequestId,
    max_response: usize,
    answered: bool,
}

/// The response is larger than the response frame cap; the client got
/// [`Status::TooLarge`] instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponseTooLarge {
    /// The response's length.
    pub len: usize,
    /// The cap.
    pub max: usize,
}

impl fmt::Display for ResponseTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "response of {} bytes above the cap of {}; the client got TooLarge",
            self.len, self.max
        )
    }
}

impl std::error::Error for ResponseTooLarge {}

impl Responder {
    /// The request this answers.
    pub fn id(&self) -> RequestId {
        self.id
    }

    /// The largest response that fits a response frame.
    pub fn max_response(&self) -> usize {
        self.max_response
    }

    /// Answers with `body` ([`Status::Ok`]).
    ///
    /// # Errors
    ///
    /// [`ResponseTooLarge`] if `body` is above the cap: the client is answered
    /// [`Status::TooLarge`] instead, at once.
    pub fn respond(self, body: &[u8]) -> Result<(), ResponseTooLarge> {
        self.respond_vec(body.to_vec())
    }

    /// As [`respond`](Self::respond), taking an owned body (no copy).
    ///
    /// # Errors
    ///
    /// As [`respond`](Self::respond).
    pub fn respond_vec(mut self, body: Vec<u8>) -> Result<(), ResponseTooLarge> {
        if body.len() > self.max_response {
            let err = ResponseTooLarge {
                len: body.len(),
                max: self.max_response,
            };
            self.finish(Status::TooLarge, Vec::new());
            return Err(err);
        }
        self.finish(Status::Ok, body);
        Ok(())
    }

    /// Answers [`Status::Failed`] with `message` as the body (truncated to the cap).
    pub fn fail(mut self, message: &[u8]) {
        let n = message.len().min(self.max_response);
        self.finish(Status::Failed, message[..n].to_vec());
    }

    fn finish(&mut self, status: Status, body: Vec<u8>) {
        self.answered = true;
        self.shared.post(Completion {
            conn: self.conn,
            seq: self.seq,
            reply: Reply {
                id: self.id,
                status,
                body,
            },
        });
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if !self.answered {
            let status = if std::thread::panicking() {
                Status::Panicked
            } else {
                Status::Dropped
            };
            self.finish(status, Vec::new());
        }
    }
}

impl fmt::Debug for Responder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Responder")
            .field("conn", &self.conn)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Stops a running [`Reactor`] from any thread: it stops running requests (those it still
/// takes from the rings are answered [`Status::ShuttingDown`]), finishes what is in flight,
/// sends what it can, detaches every client, and returns.
#[derive(Clone)]
pub struct StopHandle {
    shared: Arc<Shared>,
}

impl StopHandle {
    /// Asks the reactor to stop, and wakes it.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Release);
        (self.shared.wake)();
    }
}

impl fmt::Debug for StopHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StopHandle").finish_non_exhaustive()
    }
}

/// What a reactor run did.
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

/// What the reactor needs from a server. [`Server`](crate::channel::Server) implements it;
/// the loom model implements it over in-process rings.
#[doc(hidden)]
pub trait Transport {
    /// Largest request body.
    fn max_request(&self) -> usize;
    /// Largest response body.
    fn max_response(&self) -> usize;
    /// Per-connection limits: requests in flight, stash bytes.
    fn limits(&self) -> (usize, usize);
    /// See `Server::try_recv_request`.
    fn try_recv_request(&mut self, buf: &mut [u8]) -> Result<Incoming, RecvRequestError>;
    /// See `Server::has_request`.
    fn has_request(&self) -> bool;
    /// See `Server::try_send_response`.
    fn try_send_response(
        &mut self,
        conn: ConnId,
        id: RequestId,
        status: Status,
        body: &[u8],
    ) -> Result<(), SendResponseError>;
    /// See `Server::wait`; `None` for the slice means unbounded.
    fn wait(&mut self, blocked: &[(ConnId, usize)], ready: &dyn Fn() -> bool) -> bool;
    /// See `Server::pause`.
    fn pause(&mut self, conn: ConnId, paused: bool);
    /// Accepts new connections (if `accept`) and detaches hung-up ones, which it returns.
    fn housekeeping(&mut self, accept: bool) -> Vec<ConnId>;
    /// Stops serving: refuses new connections and detaches every connection.
    fn shutdown(&mut self);
    /// How often housekeeping is due; `None`: never by time (loom).
    fn housekeeping_interval(&self) -> Option<Duration>;
    /// See `Server::client`.
    fn client(&self, conn: ConnId) -> Option<ClientInfo>;
    /// Rings the server's doorbell.
    fn waker(&self) -> Box<dyn Fn() + Send + Sync>;
}

#[cfg(not(loom))]
impl Transport for crate::channel::Server {
    fn max_request(&self) -> usize {
        self.max_request()
    }
    fn max_response(&self) -> usize {
        self.max_response()
    }
    fn limits(&self) -> (usize, usize) {
        (
            self.config().get_max_in_flight(),
            self.config().get_stash_bytes(),
        )
    }
    fn try_recv_request(&mut self, buf: &mut [u8]) -> Result<Incoming, RecvRequestError> {
        self.try_recv_request(buf)
    }
    fn has_request(&self) -> bool {
        self.has_request()
    }
    fn try_send_response(
        &mut self,
        conn: ConnId,
        id: RequestId,
        status: Status,
        body: &[u8],
    ) -> Result<(), SendResponseError> {
        self.try_send_response(conn, id, status, body)
    }
    fn wait(&mut self, blocked: &[(ConnId, usize)], ready: &dyn Fn() -> bool) -> bool {
        let slice = self.config().get_wait().get_slice();
        self.wait(blocked, ready, Some(slice))
    }
    fn pause(&mut self, conn: ConnId, paused: bool) {
        self.pause(conn, paused);
    }
    fn housekeeping(&mut self, accept: bool) -> Vec<ConnId> {
        if accept {
            // A failing accept (e.g. EMFILE) must not stop the server: existing clients go on.
            let _ = self.accept_pending();
        }
        self.reap_hung_up()
    }
    fn shutdown(&mut self) {
        self.shutdown();
    }
    fn housekeeping_interval(&self) -> Option<Duration> {
        Some(self.config().get_wait().get_slice())
    }
    fn client(&self, conn: ConnId) -> Option<ClientInfo> {
        self.client(conn)
    }
    fn waker(&self) -> Box<dyn Fn() + Send + Sync> {
        let n = self.notifier();
        Box::new(move || n.notify())
    }
}

/// Per-connection state of the reactor.
struct ConnState {
    id: ConnId,
    /// Sequence number of the next request taken.
    next_seq: u64,
    /// Sequence number of the next response due.
    next_send: u64,
    /// Requests with handlers, not answered.
    in_flight: usize,
    /// Answered, not sent, by sequence number.
    stash: BTreeMap<u64, Reply>,
    stash_bytes: usize,
    paused: bool,
}

impl ConnState {
    fn new(id: ConnId) -> Self {
        Self {
            id,
            next_seq: 0,
            next_send: 0,
            in_flight: 0,
            stash: BTreeMap::new(),
            stash_bytes: 0,
            paused: false,
        }
    }
}

/// How long a stopping reactor waits for in-flight requests and unsent responses.
const DEFAULT_DRAIN: Duration = Duration::from_secs(5);

/// The serve loop; see the [module docs](self).
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
    /// Reused for the answers of inline handlers (see `INLINE`).
    inline_done: Vec<Completion>,
    /// Reused by `sleep`: connections whose due response did not fit.
    blocked: Vec<(ConnId, usize)>,
    drain: Duration,
    stats: ReactorStats,
}

impl<T: Transport, H: Handler> Reactor<T, H, InlineExecutor> {
    /// A reactor serving `transport` (a [`Server`](crate::channel::Server)) with `handler`,
    /// running every request on the reactor thread until given an executor
    /// ([`with_executor`](Self::with_executor)).
    pub fn new(transport: T, handler: H) -> Self {
        let shared = Arc::new(Shared {
            done: Mutex::new(Vec::new()),
            pending: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            wake: transport.waker(),
        });
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
        }
    }
}

impl<T: Transport, H: Handler, E: Executor> Reactor<T, H, E> {
    /// Hands requests that arrive while others are in flight to `executor`.
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
        }
    }

    /// Serial mode (`true`): every request runs inline on the reactor thread, one at a time,
    /// whatever the executor. Responses are still ordered and parked when a ring is full.
    pub fn serial(mut self, serial: bool) -> Self {
        self.serial = serial;
        self
    }

    /// How long a stopping reactor waits for in-flight requests and unsent responses (5 s
    /// by default); what is still unsent then is discarded and counted.
    pub fn drain_timeout(mut self, t: Duration) -> Self {
        self.drain = t;
        self
    }

    /// A handle that stops [`run`](Self::run) from any thread.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle {
            shared: self.shared.clone(),
        }
    }

    /// The transport (the server).
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// Counters so far.
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
    /// None at present; the `Result` leaves room for transport failures.
    pub fn run(&mut self) -> std::io::Result<ReactorStats> {
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
        let res = Responder {
            shared: self.shared.clone(),
            conn: inc.conn,
            seq,
            id: inc.id,
            max_response: self.transport.max_response(),
            answered: false,
        };
        // A panic drops `res` while unwinding, which answers `Panicked`.
        if self.serial || (in_flight_before == 0 && !self.transport.has_request()) {
            self.stats.inline += 1;
            INLINE.with(|f| f.set(Arc::as_ptr(&self.shared)));
            let handler = &*self.handler;
            let _ = catch_unwind(AssertUnwindSafe(|| handler.handle(req, res)));
            INLINE.with(|f| f.set(core::ptr::null()));
            // The answer (if given) is in `INLINE_DONE`: send it now, not after a loop turn.
            let mut mine = core::mem::take(&mut self.inline_done);
            INLINE_DONE.with(|d| core::mem::swap(&mut *d.borrow_mut(), &mut mine));
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
                Err(SendResponseError::Gone) => {
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
            if !in_order && !mutant::active(Mutant::SendOutOfOrder) {
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
                Err(SendResponseError::Gone) => {
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

#[cfg(not(loom))]
pub use pool::ThreadPool;

#[cfg(not(loom))]
mod pool {
    use super::{Executor, Job};
    use std::collections::VecDeque;
    use std::sync::{Arc, Condvar, Mutex};
    use std::thread::JoinHandle;

    /// A small fixed pool of worker threads, spawned when it is created and joined when it is
    /// dropped (after the jobs already queued have run).
    pub struct ThreadPool {
        inner: Arc<Inner>,
        threads: Vec<JoinHandle<()>>,
    }

    struct Inner {
        queue: Mutex<(VecDeque<Job>, bool)>,
        ready: Condvar,
    }

    impl ThreadPool {
        /// Spawns `threads` workers (at least one).
        ///
        /// # Panics
        ///
        /// If the operating system refuses to spawn a thread.
        pub fn new(threads: usize) -> Self {
            let inner = Arc::new(Inner {
                queue: Mutex::new((VecDeque::new(), false)),
                ready: Condvar::new(),
            });
            let threads = (0..threads.max(1))
                .map(|i| {
                    let inner = inner.clone();
                    std::thread::Builder::new()
                        .name(format!("ringbell-worker-{i}"))
                        .spawn(move || inner.work())
                        .expect("spawning a worker thread")
                })
                .collect();
            Self { inner, threads }
        }

        /// Worker threads.
        pub fn threads(&self) -> usize {
            self.threads.len()
        }
    }

    impl Inner {
        fn work(&self) {
            loop {
                let job = {
                    let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
                    loop {
                        if let Some(job) = q.0.pop_front() {
                            break job;
                        }
                        if q.1 {
                            return;
                        }
                        q = self.ready.wait(q).unwrap_or_else(|e| e.into_inner());
                    }
                };
                // Jobs from the reactor catch their own panics; a foreign job's panic must not
                // kill the worker.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            }
        }
    }

    impl Executor for ThreadPool {
        fn execute(&self, job: Job) {
            let mut q = self.inner.queue.lock().unwrap_or_else(|e| e.into_inner());
            q.0.push_back(job);
            drop(q);
            self.inner.ready.notify_one();
        }
    }

    impl Drop for ThreadPool {
        fn drop(&mut self) {
            self.inner.queue.lock().unwrap_or_else(|e| e.into_inner()).1 = true;
            self.inner.ready.notify_all();
            for t in self.threads.drain(..) {
                let _ = t.join();
            }
        }
    }

    impl std::fmt::Debug for ThreadPool {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("ThreadPool")
                .field("threads", &self.threads.len())
                .finish()
        }
    }
}
