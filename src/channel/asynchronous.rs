//! The async channel client (feature `tokio`): many tasks call at once on one connection.
//!
//! # How it waits
//!
//! There is no background task. The calls in flight share one [`Client`] behind a mutex
//! and a table of slots keyed by request id. A call sends its request, then looks for its
//! answer; when it must wait, it leaves its waker in its slot and, if no other call does it
//! already, becomes the connection's *driver*: the one task that takes responses off the
//! ring, files each in its slot and wakes that slot's task, and waits for more. The driver
//! waits the way the blocking client does, in three steps: it spins a bounded budget
//! (a response to a call in flight usually comes within microseconds, and a task that goes
//! to sleep pays a wake of tens of microseconds), then announces itself on the doorbell as
//! an async waiter (doorbell module docs, "Async waits": drain the readiness socket, mark,
//! fence, re-check), then awaits the readiness socket through tokio's reactor. The server
//! rings that socket only when it finds the async mark, so while the driver spins, and
//! while responses keep coming, nobody makes a system call.
//!
//! When the driver's own answer has come it hands the role on: it wakes one call that
//! still waits, which drives from its next poll. A dropped call hands the role on the same
//! way, and leaves its slot *abandoned*: the late answer is discarded when it comes, and
//! until then its id is not reused and it counts against the server's `max_in_flight`.
//! Calls beyond `max_in_flight`, and calls that find the request ring full, wait their
//! turn (queued) instead of drawing [`Status::Busy`](super::Status::Busy); the driver
//! wakes them when answers free places or when the server takes requests (it announces on
//! the request ring's room line as well, with the same readiness socket and one drain).
//!
//! Dead servers are noticed as the blocking client notices them: the readiness socket
//! reads end-of-file when the server's process ends (its end closes), and between slices
//! (50 ms by default) the driver polls the connection's socket and the server's pidfd.
//! Every call in flight then fails with the same error.
//!
//! On the socket transport the driver awaits the connection's socket itself.

use std::collections::HashMap;
use std::future::poll_fn;
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use std::vec::Vec;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::time::Sleep;

use super::client::{Client, Response};
use super::config::ClientOptions;
use super::error::{CallError, ChannelError};
use super::message::RequestId;
use crate::doorbell::{Announced, Readiness};

/// A channel client for async code: `call(&req).await` from many tasks at once on one
/// connection, pipelined and matched by request id. Cheap to clone (the clones share the
/// connection). See the [module docs](self) for how it waits.
///
/// # Examples
///
/// ```
/// use ringbell::channel::{AsyncClient, Server, ServerConfig};
/// use ringbell::reactor::{Reactor, Request, Responder};
///
/// let dir = std::env::temp_dir().join(format!("ringbell-doc-async-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let server = Server::bind(dir.join("echo.sock"), ServerConfig::new())?;
/// let mut reactor = Reactor::new(server, |req: Request, res: Responder| {
///     let _ = res.respond(&req.body);
/// });
/// let stop = reactor.stop_handle();
/// let serving = std::thread::spawn(move || reactor.run());
///
/// let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
/// rt.block_on(async {
///     let client = AsyncClient::connect(dir.join("echo.sock")).await?;
///     let tasks: Vec<_> = (0..8u32)
///         .map(|i| {
///             let client = client.clone();
///             tokio::spawn(async move { client.call(&i.to_le_bytes()).await })
///         })
///         .collect();
///     for (i, t) in tasks.into_iter().enumerate() {
///         assert_eq!(t.await??, (i as u32).to_le_bytes()); // each task its own answer
///     }
///     Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
/// })
/// .map_err(|e| e.to_string())?;
/// stop.stop();
/// serving.join().unwrap()?;
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct AsyncClient {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    /// What the driver awaits: the readiness socket, or the connection's socket.
    source: Source,
    max_in_flight: usize,
    spin_budget: u32,
    slice: Duration,
    next_ticket: AtomicU64,
}

/// Most requests in flight on one connection, whatever the server announces.
const MAX_IN_FLIGHT: usize = 1 << 16;

/// Rounds of one poll that end without waiting before the call yields to the scheduler (a
/// server that keeps answering, or a ring that keeps saying "look again", cannot hold the
/// worker).
const MAX_ROUNDS: u32 = 64;

/// Responses one dispatch files at most before the driver looks at its own answer again.
const MAX_DISPATCH: usize = 256;

/// Request ids are small distinct integers chosen by this side: they hash as themselves.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n);
    }
}

type Calls = HashMap<RequestId, Slot, BuildHasherDefault<IdHasher>>;

enum Source {
    Rings(AsyncFd<Readiness>),
    Socket(AsyncFd<OwnedFd>),
}

struct State {
    client: Client,
    /// The requests sent and not yet collected, by id: waiting, abandoned, or answered.
    calls: Calls,
    /// Requests sent and not yet answered (waiting or abandoned): what counts against the
    /// server's `max_in_flight`.
    outstanding: usize,
    /// Calls waiting to send (at the in-flight limit, or the request ring full).
    queued: Vec<(u64, Waker)>,
    /// The call that drives, by ticket, and its waker (to tell it of new work).
    driver: Option<u64>,
    driver_waker: Option<Waker>,
    /// The connection failed: every call fails with this.
    broken: Option<CallError>,
    /// A queued call's request size that found the request ring full: the driver waits for
    /// room for it too.
    room_for: Option<usize>,
    /// Whether the driver spun since the last progress (one spin per wait).
    spun: bool,
    /// The driver's slice: when it fires, look at the server's liveness.
    slice: Option<Pin<Box<Sleep>>>,
}

enum Slot {
    /// Sent; the waker of the call awaiting it.
    Waiting(Option<Waker>),
    /// Its answer, for the call to collect.
    Answered(Response),
    /// Its call was dropped: the answer is discarded when it comes.
    Abandoned,
}

impl AsyncClient {
    /// Connects to the server at `path` with default options. Call it inside a tokio
    /// runtime with I/O and time enabled; the handshake runs on the blocking pool.
    ///
    /// # Errors
    ///
    /// As [`Client::connect`], and [`ChannelError::Io`] if tokio cannot register the
    /// connection's descriptor.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{AsyncClient, ChannelError};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let r = AsyncClient::connect("/nonexistent.sock").await;
    /// assert!(matches!(r, Err(ChannelError::Io(_))));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn connect(path: impl AsRef<Path>) -> Result<Self, ChannelError> {
        Self::connect_with(path, ClientOptions::default()).await
    }

    /// Connects to the server at `path` with `opts` (its wait options set the driver's spin
    /// budget and slice).
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use ringbell::channel::{AsyncClient, ClientOptions};
    /// use std::time::Duration;
    ///
    /// # async fn f() -> Result<(), ringbell::channel::ChannelError> {
    /// let opts = ClientOptions::new().connect_timeout(Duration::from_secs(1));
    /// let client = AsyncClient::connect_with("/run/app.sock", opts).await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect_with(
        path: impl AsRef<Path>,
        opts: ClientOptions,
    ) -> Result<Self, ChannelError> {
        let path = path.as_ref().to_path_buf();
        let spin_budget = opts.wait.spin_budget;
        let client = tokio::task::spawn_blocking(move || Client::connect_with(path, opts))
            .await
            .map_err(|e| ChannelError::Io(io::Error::other(e)))??;
        Self::with_spin(client, spin_budget)
    }

    /// Makes a connected blocking client async. Call it inside a tokio runtime with I/O and
    /// time enabled.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Io`] if tokio cannot register the connection's descriptor, or
    /// [`ChannelError::Protocol`] if the server sent no readiness socket (an older server).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use ringbell::channel::{AsyncClient, Client};
    ///
    /// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
    /// let blocking = Client::connect("/run/app.sock")?;
    /// let client = AsyncClient::from_client(blocking)?;
    /// # Ok(()) }
    /// ```
    pub fn from_client(client: Client) -> Result<Self, ChannelError> {
        Self::with_spin(client, crate::doorbell::DEFAULT_SPIN_BUDGET)
    }

    fn with_spin(mut client: Client, spin_budget: u32) -> Result<Self, ChannelError> {
        let source = match client.rings().is_some() {
            true => {
                let fd = client.take_readiness().ok_or(ChannelError::Protocol(
                    "the server sent no readiness socket for async waits",
                ))?;
                let readiness = Readiness::from_socket(fd).map_err(|_| {
                    ChannelError::Protocol(
                        "the server's readiness descriptor is not a stream socket",
                    )
                })?;
                Source::Rings(crate::doorbell::asynchronous::register(readiness)?)
            }
            false => {
                let sock = client.socket().as_fd().try_clone_to_owned()?;
                // SAFETY: the `AsyncFd` owns the duplicate descriptor, which stays open as
                // long as it lives, and `as_raw_fd` of an `OwnedFd` is always that one.
                let fd = unsafe {
                    AsyncFd::register_with_interest(sock, Interest::READABLE | Interest::WRITABLE)
                }
                .map_err(|e| ChannelError::Io(io::Error::from(e)))?;
                Source::Socket(fd)
            }
        };
        // A server's word, capped: the slots of unanswered requests are kept until answered.
        let max_in_flight = client.max_in_flight().clamp(1, MAX_IN_FLIGHT);
        let slice = client.wait_slice();
        Ok(Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    client,
                    calls: Calls::default(),
                    outstanding: 0,
                    queued: Vec::new(),
                    driver: None,
                    driver_waker: None,
                    broken: None,
                    room_for: None,
                    spun: false,
                    slice: None,
                }),
                source,
                max_in_flight,
                spin_budget,
                slice,
                next_ticket: AtomicU64::new(1),
            }),
        })
    }

    /// Sends a request and awaits its response, as long as it takes (but see
    /// [`CallError::Disconnected`]). Many tasks may call at once; each gets its own answer.
    /// Waits, rather than drawing `Busy`, while the server's `max_in_flight` requests of
    /// this connection are unanswered.
    ///
    /// Cancel-safe: dropping the future before its answer leaves the connection usable (the
    /// late answer is discarded); dropping it before its request went out sends nothing.
    ///
    /// # Errors
    ///
    /// [`CallError::TooLarge`] at once; [`CallError::Server`] for an error status;
    /// [`CallError::Disconnected`] (or [`CallError::ServerExited`]) when the server is gone,
    /// for every call in flight; [`CallError::Corrupt`]; [`CallError::BadStatus`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(client: ringbell::channel::AsyncClient) -> Result<(), Box<dyn std::error::Error>> {
    /// let answer = client.call(b"GET key").await?;
    /// # Ok(()) }
    /// ```
    pub async fn call(&self, req: &[u8]) -> Result<Vec<u8>, CallError> {
        let ticket = self.shared.next_ticket.fetch_add(1, Ordering::Relaxed);
        let mut call = Call {
            shared: &self.shared,
            ticket,
            id: None,
            done: false,
        };
        poll_fn(|cx| call.poll(cx, req)).await
    }

    /// As [`call`](Self::call), giving up after `timeout` with [`CallError::Timeout`] (the
    /// answer, if it comes, is discarded).
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call), and [`CallError::Timeout`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// # async fn f(client: ringbell::channel::AsyncClient) -> Result<(), Box<dyn std::error::Error>> {
    /// let answer = client.call_timeout(b"GET key", Duration::from_secs(1)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn call_timeout(&self, req: &[u8], timeout: Duration) -> Result<Vec<u8>, CallError> {
        match tokio::time::timeout(timeout, self.call(req)).await {
            Ok(r) => r,
            Err(_elapsed) => Err(CallError::Timeout),
        }
    }

    /// Requests sent and not yet answered, abandoned ones included.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn f(client: ringbell::channel::AsyncClient) {
    /// assert!(client.in_flight() <= client.max_in_flight());
    /// # }
    /// ```
    pub fn in_flight(&self) -> usize {
        self.shared.lock().outstanding
    }

    /// The server's limit on this connection's requests in flight.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn f(client: ringbell::channel::AsyncClient) {
    /// println!("at most {} calls in flight", client.max_in_flight());
    /// # }
    /// ```
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight
    }

    /// Whether the server is gone (as [`Client::is_disconnected`]).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn f(client: ringbell::channel::AsyncClient) {
    /// if client.is_disconnected() {
    ///     eprintln!("the server went away");
    /// }
    /// # }
    /// ```
    pub fn is_disconnected(&self) -> bool {
        let st = self.shared.lock();
        st.broken.is_some() || st.client.is_disconnected()
    }
}

impl std::fmt::Debug for AsyncClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.shared.lock();
        f.debug_struct("AsyncClient")
            .field("client", &st.client)
            .field("in_flight", &st.outstanding)
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent at every unlock: a panic elsewhere leaves nothing half
        // done.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn try_lock(&self) -> Option<MutexGuard<'_, State>> {
        match self.state.try_lock() {
            Ok(g) => Some(g),
            Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    /// One round of the driver: `Ready` when it made progress (or something changed that
    /// the caller must look at), `Pending` when it waits on the runtime (its waker is
    /// registered with the reactor and the slice timer).
    fn drive<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        me: Option<RequestId>,
        cx: &mut Context<'_>,
    ) -> (MutexGuard<'a, State>, Poll<()>) {
        if st.dispatch(me) || st.broken.is_some() || st.room_ready() {
            return (st, Poll::Ready(()));
        }
        if !st.spun && matches!(self.source, Source::Rings(_)) {
            st.spun = true;
            // Spin with the lock released, so that other calls can send meanwhile; look at
            // the ring at every step (an answer usually comes within a microsecond), taking
            // the lock only if it is free.
            drop(st);
            for _ in 0..self.spin_budget {
                core::hint::spin_loop();
                if let Some(mut g) = self.try_lock() {
                    if g.arrived() || g.room_ready() {
                        g.dispatch(me);
                        return (g, Poll::Ready(()));
                    }
                }
            }
            st = self.lock();
        }
        match &self.source {
            Source::Rings(fd) => {
                let room_for = st.room_for;
                let Some((tx, rx)) = st.client.rings() else {
                    unreachable!("a rings source is made for a rings client")
                };
                let mut announced = rx.poll_ready(fd.get_ref());
                if let (Announced::Wait, Some(len)) = (announced, room_for) {
                    announced = tx.poll_room_more(fd.get_ref(), len);
                }
                match announced {
                    Announced::Ready => return (st, Poll::Ready(())),
                    Announced::RetryAfter(d) => {
                        // No barrier: a ring may be missed. Look again after `d`.
                        st.slice = Some(Box::pin(tokio::time::sleep(d)));
                    }
                    Announced::Wait => {}
                }
                if fd.get_ref().ended() {
                    // The server's end of the readiness socket closed: it is gone or detached
                    // this connection.
                    st.check_server(true);
                    return (st, Poll::Ready(()));
                }
                match fd.poll_read_ready(cx) {
                    Poll::Ready(Ok(mut guard)) => {
                        // Cleared before the next announcement drains the socket: a ring
                        // after that is a new event.
                        guard.clear_ready();
                        return (st, Poll::Ready(()));
                    }
                    // The reactor failed to wait: the slice bounds the next look.
                    Poll::Ready(Err(_)) | Poll::Pending => {}
                }
            }
            Source::Socket(fd) => {
                match fd.poll_read_ready(cx) {
                    Poll::Ready(Ok(mut guard)) => {
                        if !st.arrived() {
                            guard.clear_ready();
                        }
                        return (st, Poll::Ready(()));
                    }
                    Poll::Ready(Err(_)) | Poll::Pending => {}
                }
                if st.client.socket_output_pending() || st.room_for.is_some() {
                    match fd.poll_write_ready(cx) {
                        Poll::Ready(Ok(mut guard)) => {
                            guard.clear_ready();
                            // Room on the socket (a request sent in part goes on at the next
                            // read): queued calls try again.
                            st.wake_queued();
                            return (st, Poll::Ready(()));
                        }
                        Poll::Ready(Err(_)) | Poll::Pending => {}
                    }
                }
            }
        }
        let slice = self.slice;
        let timer = st
            .slice
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(slice)));
        if timer.as_mut().poll(cx).is_ready() {
            st.slice = None;
            st.check_server(false);
            return (st, Poll::Ready(()));
        }
        (st, Poll::Pending)
    }
}

impl State {
    /// Whether a response has arrived (or the ring says something else: closed, corrupt).
    fn arrived(&self) -> bool {
        match self.client.rings() {
            Some((_, rx)) => rx.has_data() || rx.is_producer_closed(),
            // The socket's reads are the look; the driver reads when its socket is readable.
            None => false,
        }
    }

    /// Whether a call queued for room in the request ring should try again: the room is
    /// there, or the ring has something to report (its consumer closed, a corrupt position)
    /// — the same test as the room line's announcement, so that the two never disagree.
    fn room_ready(&self) -> bool {
        match (self.room_for, self.client.rings()) {
            (Some(len), Some((tx, _))) => tx.room_or_report(len)(),
            _ => false,
        }
    }

    /// Files every response that has arrived in its slot and wakes its call (but not `me`,
    /// the driver's own, which looks at its slot next); wakes queued calls when places freed
    /// up. Whether anything was filed (or the connection broke).
    fn dispatch(&mut self, me: Option<RequestId>) -> bool {
        let before = self.outstanding;
        let mut progress = false;
        for _ in 0..MAX_DISPATCH {
            match self.client.try_recv_arrived() {
                Ok(r) => {
                    progress = true;
                    match self.calls.remove(&r.id) {
                        Some(Slot::Waiting(waker)) => {
                            self.outstanding -= 1;
                            let id = r.id;
                            self.calls.insert(id, Slot::Answered(r));
                            if let Some(w) = waker.filter(|_| Some(id) != me) {
                                w.wake();
                            }
                        }
                        // A dropped call's answer: discarded, its id free again.
                        Some(Slot::Abandoned) => self.outstanding -= 1,
                        // An answer for an id not in flight: dropped.
                        None => {}
                        Some(answered @ Slot::Answered(_)) => {
                            // A second answer for one id: the first stands.
                            self.calls.insert(r.id, answered);
                        }
                    }
                }
                Err(CallError::Empty) => break,
                Err(e) => {
                    self.fail(e);
                    return true;
                }
            }
        }
        if self.outstanding < before || self.room_ready() {
            self.wake_queued();
        }
        if progress {
            self.spun = false;
        }
        progress
    }

    fn wake_queued(&mut self) {
        for (_, w) in self.queued.drain(..) {
            w.wake();
        }
        self.room_for = None;
    }

    /// Looks at the server's liveness (system calls: the slow path); fails every call if it
    /// is gone — after filing what it answered before it went.
    fn check_server(&mut self, readiness_ended: bool) {
        if self.broken.is_none() && (self.client.server_gone() || readiness_ended) {
            self.dispatch(None);
            if self.broken.is_none() {
                let e = self.client.lost_error();
                self.fail(e);
            }
        }
    }

    /// Fails the connection: every call in flight, queued or to come gets `e`.
    fn fail(&mut self, e: CallError) {
        if self.broken.is_none() {
            self.broken = Some(e);
        }
        for slot in self.calls.values_mut() {
            if let Slot::Waiting(w) = slot {
                if let Some(w) = w.take() {
                    w.wake();
                }
            }
        }
        self.wake_queued();
    }

    /// The call `ticket` is done (or dropped): if it drove, or nobody drives (a successor
    /// woken to drive may be the call that is dropped now, before it ran), wakes one call
    /// that still waits, to drive next. Wakers stay in place, so a later hand-off can pick
    /// the same call again.
    fn resign(&mut self, ticket: u64) {
        match self.driver {
            Some(t) if t != ticket => return,
            _ => {}
        }
        self.driver = None;
        self.driver_waker = None;
        self.spun = false;
        for slot in self.calls.values() {
            if let Slot::Waiting(Some(w)) = slot {
                w.wake_by_ref();
                return;
            }
        }
        if let Some((_, w)) = self.queued.first() {
            w.wake_by_ref();
        }
    }

    /// Tells a parked driver that there is new work for it (room to wait for, a request sent
    /// in part on the socket).
    fn nudge_driver(&self, me: u64) {
        if self.driver.is_some_and(|t| t != me) {
            if let Some(w) = &self.driver_waker {
                w.wake_by_ref();
            }
        }
    }

    /// Sends `req` under a fresh id, skipping ids still in use.
    fn try_send(&mut self, req: &[u8]) -> Result<RequestId, CallError> {
        while self.calls.contains_key(&self.client.next_request_id()) {
            self.client.skip_request_id();
        }
        self.client.try_send_request(req)
    }
}

/// One call's progress; its drop abandons the answer and hands the driver role on.
struct Call<'a> {
    shared: &'a Shared,
    ticket: u64,
    /// Its request's id, once sent.
    id: Option<RequestId>,
    /// Its answer was taken (or it failed): nothing to abandon.
    done: bool,
}

impl Call<'_> {
    fn poll(&mut self, cx: &mut Context<'_>, req: &[u8]) -> Poll<Result<Vec<u8>, CallError>> {
        // Cooperate with tokio's scheduler: a call that is answered at once (the driver spins
        // for answers) would otherwise never yield, and a task calling in a loop would keep
        // its worker from every other task.
        let coop = std::task::ready!(tokio::task::coop::poll_proceed(cx));
        let r = self.poll_inner(cx, req);
        if r.is_ready() {
            coop.made_progress();
        }
        r
    }

    fn poll_inner(&mut self, cx: &mut Context<'_>, req: &[u8]) -> Poll<Result<Vec<u8>, CallError>> {
        let mut st = self.shared.lock();
        for _ in 0..MAX_ROUNDS {
            if let Some(id) = self.id {
                if let Some(Slot::Answered(_)) = st.calls.get(&id) {
                    let Some(Slot::Answered(r)) = st.calls.remove(&id) else {
                        unreachable!("looked at just now")
                    };
                    return Poll::Ready(self.finish(&mut st, r.into_result()));
                }
                if let Some(e) = st.broken.clone() {
                    st.calls.remove(&id);
                    return Poll::Ready(self.finish(&mut st, Err(e)));
                }
                if let Some(Slot::Waiting(w)) = st.calls.get_mut(&id) {
                    match w {
                        Some(w) if w.will_wake(cx.waker()) => {}
                        _ => *w = Some(cx.waker().clone()),
                    }
                }
            } else {
                if let Some(e) = st.broken.clone() {
                    return Poll::Ready(self.finish(&mut st, Err(e)));
                }
                let mut full = false;
                if st.outstanding < self.shared.max_in_flight {
                    match st.try_send(req) {
                        Ok(id) => {
                            st.calls.insert(id, Slot::Waiting(None));
                            st.outstanding += 1;
                            st.queued.retain(|(t, _)| *t != self.ticket);
                            self.id = Some(id);
                            if st.client.socket_output_pending() {
                                // Sent in part: the driver must wait for the socket's room.
                                st.nudge_driver(self.ticket);
                            }
                            continue;
                        }
                        Err(CallError::Full) => full = true,
                        Err(e @ (CallError::TooLarge { .. } | CallError::Forked)) => {
                            return Poll::Ready(self.finish(&mut st, Err(e)));
                        }
                        Err(e) => {
                            st.fail(e);
                            continue;
                        }
                    }
                }
                if full {
                    st.room_for = Some(req.len());
                    st.nudge_driver(self.ticket);
                }
                let waker = cx.waker();
                match st.queued.iter_mut().find(|(t, _)| *t == self.ticket) {
                    Some((_, w)) => w.clone_from(waker),
                    None => st.queued.push((self.ticket, waker.clone())),
                }
            }
            match st.driver {
                Some(t) if t != self.ticket => return Poll::Pending,
                _ => st.driver = Some(self.ticket),
            }
            match &mut st.driver_waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                w => *w = Some(cx.waker().clone()),
            }
            let (guard, progress) = self.shared.drive(st, self.id, cx);
            st = guard;
            if progress.is_pending() {
                return Poll::Pending;
            }
        }
        // Rounds without a wait, and without this call's answer: let other tasks run.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    fn finish(
        &mut self,
        st: &mut State,
        r: Result<Vec<u8>, CallError>,
    ) -> Result<Vec<u8>, CallError> {
        self.done = true;
        st.queued.retain(|(t, _)| *t != self.ticket);
        st.resign(self.ticket);
        r
    }
}

impl Drop for Call<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut st = self.shared.lock();
        if let Some(id) = self.id {
            match st.calls.get(&id) {
                // Answered, not collected: its answer goes with it.
                Some(Slot::Answered(_)) => {
                    st.calls.remove(&id);
                }
                Some(_) => {
                    st.calls.insert(id, Slot::Abandoned);
                }
                None => {}
            }
        }
        st.queued.retain(|(t, _)| *t != self.ticket);
        st.resign(self.ticket);
    }
}

static_assertions::assert_impl_all!(AsyncClient: Send, Sync);
