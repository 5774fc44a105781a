//! The client end of a channel: connect, call, pipeline.

use core::cell::Cell;
use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use std::vec::Vec;

use super::child::ChildWatch;
use super::config::ClientOptions;
use super::error::{CallError, ChannelError};
use super::handshake::{self, Welcome};
use super::message::{RequestId, Status};
use super::socket;
use super::stats::{ServerStats, StatsError};
use super::stream::{self, FrameIn, FrameOut, Next};
use crate::clock::{Deadline, Instant};
use crate::doorbell::{ReadinessSignal, Stop, WaitStats, bell_of_unchecked};
use crate::error::{Corruption, RecvError, SendError};
use crate::fork;
use crate::liveness::pidfd_exited;
use crate::region::{Bell, Region, Spsc};
use crate::role::OwnerId;
use crate::spsc::{Consumer, Producer};
use crate::wire::{ID_BITS, ID_MASK, REQUEST_CONTROL};

/// The client end of a channel. See the [module docs](crate::channel).
///
/// Requests can be pipelined ([`send_request`](Self::send_request) several, then
/// [`recv_response`](Self::recv_response) each; they come back in order, matched by id) or
/// made one at a time ([`call`](Self::call)). Every blocking call returns
/// [`CallError::Disconnected`] within one wait slice (50 ms by default) of the server's
/// death: between sleep slices it polls the connection's socket, never per call.
///
/// # Examples
///
/// ```
/// use ringbell::channel::{Client, Server, ServerConfig};
/// use ringbell::reactor::{Reactor, Request, Responder};
///
/// let dir = std::env::temp_dir().join(format!("ringbell-doc-client-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let server = Server::bind(dir.join("echo.sock"), ServerConfig::new())?;
/// let mut reactor = Reactor::new(server, |req: Request, res: Responder| {
///     let _ = res.respond(&req.body);
/// });
/// let stop = reactor.stop_handle();
/// let serving = std::thread::spawn(move || reactor.run());
///
/// let mut client = Client::connect(dir.join("echo.sock"))?;
/// assert_eq!(client.call(b"ping")?, b"ping");
/// stop.stop();
/// serving.join().unwrap()?;
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Client {
    server: ServerWatch,
    link: Link,
    next_id: u32,
    /// Ids of requests whose `call` timed out: their responses are discarded on arrival.
    abandoned: HashSet<RequestId>,
    /// Responses a `call` received for earlier pipelined requests, for `recv_response`.
    early: VecDeque<Response>,
    welcome: Welcome,
    slice: Duration,
}

impl Client {
    /// Connects to the server at `path` with default options.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Io`] if nobody listens there; [`ChannelError::ServerFull`],
    /// [`ChannelError::NotAdmitted`]; [`ChannelError::Timeout`]; [`ChannelError::Protocol`];
    /// [`ChannelError::Region`]/[`ChannelError::Attach`] if the rings do not check out.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{ChannelError, Client};
    ///
    /// assert!(matches!(Client::connect("/nonexistent.sock"), Err(ChannelError::Io(_))));
    /// ```
    pub fn connect(path: impl AsRef<Path>) -> Result<Self, ChannelError> {
        Self::connect_with(path, ClientOptions::default())
    }

    /// Connects to the server at `path`.
    ///
    /// The greeting is awaited for at most the connect timeout. The `connect(2)` itself
    /// returns at once unless the server's listen backlog (128) is full — a server that has
    /// stopped accepting without closing its socket — in which case it waits for room.
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{ChannelError, Client, ClientOptions};
    /// use std::time::Duration;
    ///
    /// let dir = std::env::temp_dir().join(format!("ringbell-doc-connto-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// // A listener that never greets: the connect times out.
    /// let _silent = std::os::unix::net::UnixListener::bind(dir.join("s.sock"))?;
    /// let opts = ClientOptions::new().connect_timeout(Duration::from_millis(20));
    /// let r = Client::connect_with(dir.join("s.sock"), opts);
    /// assert!(matches!(r, Err(ChannelError::Timeout)));
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn connect_with(path: impl AsRef<Path>, opts: ClientOptions) -> Result<Self, ChannelError> {
        let deadline = Deadline::after(opts.connect_timeout);
        let sock = socket::connect(path.as_ref(), deadline)?;
        handshake::hello(&sock)?;
        let admitted = handshake::receive(&sock, deadline)?;
        let welcome = admitted.welcome;
        let link = match admitted.rings {
            Some(fds) => Link::Rings(Rings::attach(
                fds,
                admitted.readiness,
                admitted.server_readiness,
                &opts,
            )?),
            None => Link::Socket(SocketLink::new(&welcome)),
        };
        Ok(Self {
            server: ServerWatch {
                sock,
                pidfd: admitted.server_pidfd,
                gone: Cell::new(false),
                child: None,
                fork_gen: fork::generation(),
            },
            link,
            next_id: 0,
            abandoned: HashSet::new(),
            early: VecDeque::new(),
            welcome,
            slice: opts.wait.slice,
        })
    }

    /// Ties this client to the supervised child that serves it: the child's end fails its
    /// calls with [`CallError::ServerExited`], and wakes a call waiting for a response.
    pub(crate) fn supervise(&mut self, child: Arc<ChildWatch>) {
        // On the socket transport the child's end closes the socket, which wakes the wait.
        let key = match &self.link {
            Link::Rings(r) => {
                let notifier = r.responses.notifier();
                child.on_exit(Box::new(move || notifier.notify()))
            }
            Link::Socket(_) => None,
        };
        self.server.child = Some((child, key));
    }

    /// Whether this client's frames travel on the socket (the server chose the socket
    /// transport) rather than in shared-memory rings.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # let client = ringbell::channel::Client::connect("/run/app.sock")?;
    /// if client.is_socket_transport() {
    ///     println!("served over the socket");
    /// }
    /// # Ok::<(), ringbell::channel::ChannelError>(())
    /// ```
    pub fn is_socket_transport(&self) -> bool {
        matches!(self.link, Link::Socket(_))
    }

    /// The error for a lost connection: [`CallError::ServerExited`] for a supervised server
    /// that ended, else `e` unchanged.
    #[cold]
    fn lost(&self, e: CallError) -> CallError {
        match e {
            CallError::Disconnected => self.server.lost(),
            e => e,
        }
    }

    /// The largest request the server accepts, in bytes.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # let client = ringbell::channel::Client::connect("/run/app.sock")?;
    /// let buf = vec![0u8; client.max_request()];
    /// # Ok::<(), ringbell::channel::ChannelError>(())
    /// ```
    pub fn max_request(&self) -> usize {
        match &self.link {
            Link::Rings(r) => r.requests.max_frame(),
            Link::Socket(s) => s.max_request,
        }
    }

    /// The largest response the server sends, in bytes.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # let client = ringbell::channel::Client::connect("/run/app.sock")?;
    /// println!("responses up to {} bytes", client.max_response());
    /// # Ok::<(), ringbell::channel::ChannelError>(())
    /// ```
    pub fn max_response(&self) -> usize {
        match &self.link {
            Link::Rings(r) => r.responses.max_frame(),
            Link::Socket(s) => s.max_response,
        }
    }

    /// The server's limit on this client's requests in flight (past it:
    /// [`Status::Busy`](super::Status::Busy)).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # let client = ringbell::channel::Client::connect("/run/app.sock")?;
    /// assert!(client.max_in_flight() >= 1);
    /// # Ok::<(), ringbell::channel::ChannelError>(())
    /// ```
    pub fn max_in_flight(&self) -> usize {
        self.welcome.max_in_flight as usize
    }

    /// The server's process id, as it announced it.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # let client = ringbell::channel::Client::connect("/run/app.sock")?;
    /// println!("served by pid {}", client.server_pid());
    /// # Ok::<(), ringbell::channel::ChannelError>(())
    /// ```
    pub fn server_pid(&self) -> u32 {
        self.welcome.server_pid
    }

    /// This connection's slot on the server.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # let client = ringbell::channel::Client::connect("/run/app.sock")?;
    /// println!("connection slot {}", client.slot());
    /// # Ok::<(), ringbell::channel::ChannelError>(())
    /// ```
    pub fn slot(&self) -> u32 {
        self.welcome.slot
    }

    /// Whether the server is gone (its end of the socket closed). One `poll(2)`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # let client = ringbell::channel::Client::connect("/run/app.sock")?;
    /// if client.is_disconnected() {
    ///     eprintln!("the server went away");
    /// }
    /// # Ok::<(), ringbell::channel::ChannelError>(())
    /// ```
    pub fn is_disconnected(&self) -> bool {
        self.server.gone()
    }

    /// Sends a request and waits for its response, as long as it takes (but see
    /// [`CallError::Disconnected`]).
    ///
    /// # Errors
    ///
    /// [`CallError::TooLarge`] at once; [`CallError::Server`] for an error status;
    /// [`CallError::Disconnected`]; [`CallError::Corrupt`]; [`CallError::BadStatus`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # let mut client = ringbell::channel::Client::connect("/run/app.sock")?;
    /// let answer = client.call(b"GET key")?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn call(&mut self, req: &[u8]) -> Result<Vec<u8>, CallError> {
        self.call_until(req, Deadline::NEVER)
    }

    /// Sends a request and waits at most `timeout` for its response.
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call), and [`CallError::Timeout`] (the response, if it comes, is
    /// discarded).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// # let mut client = ringbell::channel::Client::connect("/run/app.sock")?;
    /// let answer = client.call_timeout(b"GET key", Duration::from_secs(1))?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn call_timeout(&mut self, req: &[u8], timeout: Duration) -> Result<Vec<u8>, CallError> {
        self.call_until(req, Deadline::within(timeout))
    }

    /// Asks the server for its statistics: its counters, and each connection's identity,
    /// ring depths, requests in flight and stashed answers. The server's reactor answers
    /// without running a handler, in this connection's turn, and only to a client of its own
    /// effective user. This is what `ringbell inspect PATH` shows.
    ///
    /// # Errors
    ///
    /// [`StatsError::Refused`] if the server refuses (another user);
    /// [`StatsError::Malformed`] for an answer that is not statistics;
    /// [`StatsError::Call`] as [`call_timeout`](Self::call_timeout).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// # let mut client = ringbell::channel::Client::connect("/run/app.sock")?;
    /// let stats = client.server_stats(Duration::from_secs(1))?;
    /// for c in &stats.connections {
    ///     println!("pid {} in flight {}", c.pid, c.in_flight);
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn server_stats(&mut self, timeout: Duration) -> Result<ServerStats, StatsError> {
        // One deadline for the send and the answer together.
        let deadline = Deadline::within(timeout).start();
        let id = self.send_until(&super::stats::stats_request(), deadline, REQUEST_CONTROL)?;
        let r = loop {
            match self.next_response(deadline, false) {
                Ok(r) if r.id == id => break r,
                Ok(r) => self.early.push_back(r),
                Err(CallError::Timeout) => {
                    self.abandoned.insert(id);
                    return Err(CallError::Timeout.into());
                }
                Err(e) => return Err(self.lost(e).into()),
            }
        };
        match r.status {
            Status::Ok => ServerStats::decode(&r.body),
            Status::Failed => Err(StatsError::Refused(
                String::from_utf8_lossy(&r.body).into_owned(),
            )),
            s => Err(CallError::Server(s).into()),
        }
    }

    /// As [`call_timeout`](Self::call_timeout), giving the whole response whatever its
    /// status: a [`Status::Failed`] answer's message is its body.
    ///
    /// # Errors
    ///
    /// As [`call_timeout`](Self::call_timeout), but for [`CallError::Server`]: an error
    /// status is in the response.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use ringbell::channel::Status;
    ///
    /// # let mut client = ringbell::channel::Client::connect("/run/app.sock")?;
    /// let r = client.call_response_timeout(b"GET key", Duration::from_secs(1))?;
    /// if r.status == Status::Failed {
    ///     eprintln!("failed: {}", String::from_utf8_lossy(&r.body));
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn call_response_timeout(
        &mut self,
        req: &[u8],
        timeout: Duration,
    ) -> Result<Response, CallError> {
        self.call_inner(req, Deadline::within(timeout))
            .map_err(|e| self.lost(e))
    }

    /// As [`call_response_timeout`](Self::call_response_timeout) without a deadline (a dead
    /// server still ends the wait).
    ///
    /// # Errors
    ///
    /// As [`call_response_timeout`](Self::call_response_timeout).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # let mut client = ringbell::channel::Client::connect("/run/app.sock")?;
    /// let r = client.call_response(b"GET key")?;
    /// println!("{:?}: {} bytes", r.status, r.body.len());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn call_response(&mut self, req: &[u8]) -> Result<Response, CallError> {
        self.call_inner(req, Deadline::NEVER)
            .map_err(|e| self.lost(e))
    }

    fn call_until(&mut self, req: &[u8], deadline: Deadline) -> Result<Vec<u8>, CallError> {
        self.call_inner(req, deadline)
            .and_then(Response::into_result)
            .map_err(|e| self.lost(e))
    }

    fn call_inner(&mut self, req: &[u8], deadline: Deadline) -> Result<Response, CallError> {
        // Started now: one deadline for the send and the response together.
        let deadline = deadline.start();
        let id = self.send_until(req, deadline, 0)?;
        loop {
            // From the ring only: responses kept aside in `early` are not this call's.
            match self.next_response(deadline, false) {
                Ok(r) if r.id == id => return Ok(r),
                // An earlier pipelined request's response: keep it for `recv_response`.
                Ok(r) => self.early.push_back(r),
                Err(CallError::Timeout) => {
                    self.abandoned.insert(id);
                    return Err(CallError::Timeout);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends a request without waiting for its response, blocking while the request ring is
    /// full; returns its id.
    ///
    /// # Errors
    ///
    /// [`CallError::TooLarge`] at once; [`CallError::Disconnected`]; [`CallError::Corrupt`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # let mut client = ringbell::channel::Client::connect("/run/app.sock")?;
    /// let ids: Vec<_> = (0..4).map(|_| client.send_request(b"work")).collect::<Result<_, _>>()?;
    /// for id in ids {
    ///     assert_eq!(client.recv_response()?.id, id); // in order
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_request(&mut self, req: &[u8]) -> Result<RequestId, CallError> {
        self.send_until(req, Deadline::NEVER, 0)
    }

    /// As [`send_request`](Self::send_request), waiting at most `timeout` for room.
    ///
    /// # Errors
    ///
    /// As [`send_request`](Self::send_request), and [`CallError::Timeout`] (nothing sent).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// # let mut client = ringbell::channel::Client::connect("/run/app.sock")?;
    /// let id = client.send_request_timeout(b"work", Duration::from_millis(100))?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_request_timeout(
        &mut self,
        req: &[u8],
        timeout: Duration,
    ) -> Result<RequestId, CallError> {
        self.send_until(req, Deadline::within(timeout), 0)
    }

    /// Sends a request if the request ring has room now.
    ///
    /// # Errors
    ///
    /// [`CallError::Full`], and as [`send_request`](Self::send_request).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use ringbell::channel::CallError;
    ///
    /// # let mut client = ringbell::channel::Client::connect("/run/app.sock")?;
    /// match client.try_send_request(b"work") {
    ///     Ok(id) => println!("sent {id:?}"),
    ///     Err(CallError::Full) => println!("the server is behind; try later"),
    ///     Err(e) => return Err(e.into()),
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_send_request(&mut self, req: &[u8]) -> Result<RequestId, CallError> {
        self.try_send_tagged(req, 0)
    }

    /// As [`try_send_request`](Self::try_send_request), with `flags` in the tag's top bits
    /// ([`REQUEST_CONTROL`] for a control request, 0 otherwise).
    fn try_send_tagged(&mut self, req: &[u8], flags: u32) -> Result<RequestId, CallError> {
        if self.server.child_exited() {
            return Err(self.server.lost());
        }
        let id = RequestId(self.next_id & ID_MASK);
        let sent = match &mut self.link {
            Link::Rings(r) => r.requests.try_send(id.0 | flags, req).map_err(send_error),
            Link::Socket(s) => s.try_send(&self.server.sock, id.0 | flags, req),
        };
        match sent {
            Ok(()) => {
                self.next_id = self.next_id.wrapping_add(1);
                Ok(id)
            }
            Err(e) => Err(self.lost(e)),
        }
    }

    /// Sends with `flags` in the tag (0, or [`REQUEST_CONTROL`]), until `deadline`.
    fn send_until(
        &mut self,
        req: &[u8],
        deadline: Deadline,
        flags: u32,
    ) -> Result<RequestId, CallError> {
        self.send_inner(req, deadline, flags)
            .map_err(|e| self.lost(e))
    }

    fn send_inner(
        &mut self,
        req: &[u8],
        mut deadline: Deadline,
        flags: u32,
    ) -> Result<RequestId, CallError> {
        loop {
            match self.try_send_tagged(req, flags) {
                Err(CallError::Full) => {}
                done => return done,
            }
            // The server may have stopped taking our requests because we do not read our
            // responses (its stash for us is full): set arrived ones aside, so that it can go on.
            loop {
                match self.try_recv_from_ring() {
                    Ok(r) => self.early.push_back(r),
                    Err(CallError::Empty) => break,
                    // A corrupt response is not consumed: going on would spin on it.
                    Err(e) => return Err(e),
                }
            }
            deadline = deadline.start();
            let t = self.next_slice(deadline)?;
            let id = RequestId(self.next_id & ID_MASK);
            let r = match &mut self.link {
                Link::Rings(r) => r.requests.send_timeout(id.0 | flags, req, t),
                // Room on the socket: the next round's `try_send_request` takes it.
                Link::Socket(_) => {
                    stream::wait(&self.server.sock, true, &self.server.pidfds(), t);
                    continue;
                }
            };
            match r {
                Ok(()) => {
                    self.next_id = self.next_id.wrapping_add(1);
                    return Ok(id);
                }
                Err(SendError::Timeout) => {}
                Err(e) => return Err(send_error(e)),
            }
        }
    }

    /// The next wait of a blocked send: at most one slice, at most until `deadline`; first
    /// checks the deadline and the socket (the slow path: the request ring is full).
    fn next_slice(&self, deadline: Deadline) -> Result<Duration, CallError> {
        let now = Instant::now();
        if deadline.passed() {
            return Err(CallError::Timeout);
        }
        if self.server.gone() {
            return Err(CallError::Disconnected);
        }
        let slice_end = now.after(self.slice);
        Ok(deadline.min(slice_end).since(now))
    }

    /// Waits for the next response, as long as it takes (but see
    /// [`CallError::Disconnected`]).
    ///
    /// # Errors
    ///
    /// [`CallError::Disconnected`], [`CallError::Corrupt`], [`CallError::BadStatus`]. An
    /// error *status* is not an error here: it is in the [`Response`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # let mut client = ringbell::channel::Client::connect("/run/app.sock")?;
    /// let id = client.send_request(b"work")?;
    /// let response = client.recv_response()?;
    /// assert_eq!(response.id, id);
    /// let body = response.into_result()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_response(&mut self) -> Result<Response, CallError> {
        self.next_response(Deadline::NEVER, true)
            .map_err(|e| self.lost(e))
    }

    /// Waits at most `timeout` for the next response.
    ///
    /// # Errors
    ///
    /// As [`recv_response`](Self::recv_response), and [`CallError::Timeout`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// # let mut client = ringbell::channel::Client::connect("/run/app.sock")?;
    /// let response = client.recv_response_timeout(Duration::from_secs(1))?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_response_timeout(&mut self, timeout: Duration) -> Result<Response, CallError> {
        self.next_response(Deadline::within(timeout), true)
            .map_err(|e| self.lost(e))
    }

    /// Takes the next response if one is waiting.
    ///
    /// # Errors
    ///
    /// [`CallError::Empty`], and as [`recv_response`](Self::recv_response).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use ringbell::channel::CallError;
    ///
    /// # let mut client = ringbell::channel::Client::connect("/run/app.sock")?;
    /// while let Ok(response) = client.try_recv_response() {
    ///     println!("{:?} answered", response.id);
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_recv_response(&mut self) -> Result<Response, CallError> {
        match self.early.pop_front() {
            Some(r) => Ok(r),
            None => self.try_recv_from_ring().map_err(|e| self.lost(e)),
        }
    }

    /// The next response in the ring, skipping abandoned ones.
    fn try_recv_from_ring(&mut self) -> Result<Response, CallError> {
        loop {
            let (tag, data) = match &mut self.link {
                Link::Rings(r) => match r.responses.try_recv() {
                    Ok(f) => (f.tag, f.data),
                    Err(RecvError::Empty) => return Err(CallError::Empty),
                    Err(RecvError::Corrupt(c)) => return Err(CallError::Corrupt(c)),
                    Err(RecvError::Forked) => return Err(CallError::Forked),
                    Err(_) => return Err(CallError::Disconnected),
                },
                Link::Socket(s) => s.try_recv(&self.server.sock)?,
            };
            let r = Response::parse(tag, data)?;
            if !self.abandoned.is_empty() && self.abandoned.remove(&r.id) {
                continue;
            }
            return Ok(r);
        }
    }

    fn next_response(
        &mut self,
        mut deadline: Deadline,
        early: bool,
    ) -> Result<Response, CallError> {
        loop {
            let r = match early {
                true => self.try_recv_response(),
                false => self.try_recv_from_ring(),
            };
            match r {
                Err(CallError::Empty) => {}
                done => return done,
            }
            // A supervised server's end, recorded (and rung) by its supervisor thread.
            if self.server.child_exited() {
                return Err(CallError::Disconnected);
            }
            deadline = deadline.start();
            let server = &self.server;
            let ready = |c: &Consumer<_, _>| {
                c.has_data() || c.is_producer_closed() || server.child_exited()
            };
            let hung_up = || server.gone().then_some(());
            let waited = match &mut self.link {
                Link::Rings(r) => r.responses.wait_sliced(ready, deadline, hung_up),
                Link::Socket(s) => s.wait_response(
                    &server.sock,
                    &server.pidfds(),
                    deadline,
                    self.slice,
                    hung_up,
                ),
            };
            match waited {
                Ok(()) => {}
                Err(Stop::Timeout) => return Err(CallError::Timeout),
                // The server may have sent a response just before it died: deliver it first.
                Err(Stop::By(())) => {
                    let last = match early {
                        true => self.try_recv_response(),
                        false => self.try_recv_from_ring(),
                    };
                    return last.map_err(|e| match e {
                        CallError::Empty => CallError::Disconnected,
                        e => e,
                    });
                }
            }
        }
    }

    // What the async client (`channel::asynchronous`) drives this client with.

    /// This client's end of its readiness socket, taken (the async client owns it).
    #[cfg(feature = "tokio")]
    pub(super) fn take_readiness(&mut self) -> Option<OwnedFd> {
        match &mut self.link {
            Link::Rings(r) => r.readiness.take(),
            Link::Socket(_) => None,
        }
    }

    /// The request ring and the response ring (`None` on the socket transport).
    #[cfg(feature = "tokio")]
    #[allow(clippy::type_complexity)]
    pub(super) fn rings(
        &self,
    ) -> Option<(
        &Producer<Region<Spsc>, Region<Bell>>,
        &Consumer<Region<Spsc>, Region<Bell>>,
    )> {
        match &self.link {
            Link::Rings(r) => Some((&r.requests, &r.responses)),
            Link::Socket(_) => None,
        }
    }

    /// The connection's socket.
    #[cfg(feature = "tokio")]
    pub(super) fn socket(&self) -> &UnixStream {
        &self.server.sock
    }

    /// Whether a request sent in part waits for room on the socket.
    #[cfg(feature = "tokio")]
    pub(super) fn socket_output_pending(&self) -> bool {
        match &self.link {
            Link::Rings(_) => false,
            Link::Socket(s) => s.output.pending() > 0,
        }
    }

    /// The id the next request will get.
    #[cfg(feature = "tokio")]
    pub(super) fn next_request_id(&self) -> RequestId {
        RequestId(self.next_id & ID_MASK)
    }

    /// Skips the next id (one still in use by an unanswered request).
    #[cfg(feature = "tokio")]
    pub(super) fn skip_request_id(&mut self) {
        self.next_id = self.next_id.wrapping_add(1);
    }

    /// The next response that has arrived, as `try_recv_response` without the early queue.
    #[cfg(feature = "tokio")]
    pub(super) fn try_recv_arrived(&mut self) -> Result<Response, CallError> {
        self.try_recv_from_ring().map_err(|e| self.lost(e))
    }

    /// Whether the server is gone, its supervised child's end included (system calls).
    #[cfg(feature = "tokio")]
    pub(super) fn server_gone(&self) -> bool {
        self.server.child_exited() || self.server.gone()
    }

    /// The error for a connection found lost (`ServerExited` for a supervised server).
    #[cfg(feature = "tokio")]
    pub(super) fn lost_error(&self) -> CallError {
        self.server.lost()
    }

    /// How this client waits (the async client's spin and slices).
    #[cfg(feature = "tokio")]
    pub(super) fn wait_slice(&self) -> Duration {
        self.slice
    }

    /// The ringers' end of this client's pair in the server's readiness set, for the test
    /// hooks.
    #[cfg(feature = "test-hooks")]
    pub(crate) fn server_readiness_fd(&self) -> Option<BorrowedFd<'_>> {
        match &self.link {
            Link::Rings(r) => r.requests.peer_readiness().map(|s| s.fd()),
            Link::Socket(_) => None,
        }
    }

    /// The shared regions this client maps, for the test hooks.
    #[cfg_attr(not(feature = "test-hooks"), allow(dead_code))]
    pub(crate) fn regions(&self) -> Option<(&Region<Spsc>, &Region<Spsc>, &Region<Bell>)> {
        match &self.link {
            Link::Rings(r) => Some((
                r.requests.shared_memory(),
                r.responses.shared_memory(),
                &r.bell,
            )),
            Link::Socket(_) => None,
        }
    }

    /// This client's wait counters (request side and response side together).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # let client = ringbell::channel::Client::connect("/run/app.sock")?;
    /// let s = client.stats();
    /// println!("{} sleeps, {} wakes", s.sleeps, s.wakes);
    /// # Ok::<(), ringbell::channel::ChannelError>(())
    /// ```
    pub fn stats(&self) -> WaitStats {
        match &self.link {
            Link::Rings(r) => r.requests.stats() + r.responses.stats(),
            // Its waits are `poll(2)`s, not doorbell waits.
            Link::Socket(_) => WaitStats::default(),
        }
    }
}

/// How a client's frames travel.
// The rings are the common case and the hot path: boxing them would cost a pointer chase
// per call to save bytes in a value there is one of per connection.
#[allow(clippy::large_enum_variant)]
enum Link {
    /// In shared-memory rings (the default transport).
    Rings(Rings),
    /// On the connection's socket (the socket transport).
    Socket(SocketLink),
}

/// A connection's rings, attached from the greeting's descriptors.
struct Rings {
    /// The server's doorbell region (shared with every client of the server).
    bell: Region<Bell>,
    requests: Producer<Region<Spsc>, Region<Bell>>,
    responses: Consumer<Region<Spsc>, Region<Bell>>,
    /// This client's end of its readiness socket (for async waits), if the server sent one.
    /// A blocking client keeps it unused (rings write it only for an async waiter).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    readiness: Option<OwnedFd>,
}

impl Rings {
    fn attach(
        fds: [OwnedFd; 3],
        readiness: Option<OwnedFd>,
        server_readiness: Option<OwnedFd>,
        opts: &ClientOptions,
    ) -> Result<Self, ChannelError> {
        let [bell, requests, responses] = fds;
        let responses = Region::<Spsc>::open(responses)?;
        let requests = Region::<Spsc>::open(requests)?;
        // The doorbell region is shared with every other client: check the fd and its size,
        // not a header another client may have rewritten.
        let bell = Region::open_bell_lenient(bell)?;
        let door = bell_of_unchecked(&bell)?;
        // See `Server::bind_with` on owner ids.
        let owner = OwnerId::unique_without_pid();
        let mut req = Producer::attach_with(requests, Some((door, bell.clone())), None, owner)?;
        let mut resp = Consumer::attach_with(responses, owner, false, Some((door, bell.clone())))?;
        req.set_wait_options(opts.wait);
        resp.set_wait_options(opts.wait);
        if let Some(fd) = server_readiness {
            // The server's async waits (a reactor that waits on sockets too): a request
            // published, room released in the response ring. A ring is a `send` with
            // `MSG_DONTWAIT` on this end, made only when the server announced such a wait.
            let signal = ReadinessSignal::from_fd(fd);
            req.set_peer_readiness(Some(signal.clone()));
            resp.set_peer_readiness(Some(signal));
        }
        Ok(Self {
            bell,
            requests: req,
            responses: resp,
            readiness,
        })
    }
}

/// A connection of the socket transport: frames buffered both ways; the socket is the
/// [`ServerWatch`]'s.
struct SocketLink {
    input: FrameIn,
    output: FrameOut,
    max_request: usize,
    max_response: usize,
    /// The fork generation at connect: a copy in a forked child must not write into the
    /// parent's stream.
    fork_gen: u32,
}

impl SocketLink {
    fn new(w: &Welcome) -> Self {
        Self {
            input: FrameIn::default(),
            output: FrameOut::default(),
            max_request: w.max_request as usize,
            max_response: w.max_response as usize,
            fork_gen: fork::generation(),
        }
    }

    /// Queues and sends a request. A request the socket takes only in part is sent on by
    /// later calls (every receive flushes first); while one is outstanding the next is
    /// `Full`.
    fn try_send(&mut self, sock: &UnixStream, tag: u32, req: &[u8]) -> Result<(), CallError> {
        if fork::forked(self.fork_gen) {
            return Err(CallError::Forked);
        }
        if req.len() > self.max_request {
            return Err(CallError::TooLarge {
                len: req.len(),
                max: self.max_request,
            });
        }
        if self.output.pending() > 0 {
            self.output
                .flush(sock)
                .map_err(|_| CallError::Disconnected)?;
            if self.output.pending() > 0 {
                return Err(CallError::Full);
            }
        }
        self.output.push(tag, req);
        self.output.flush(sock).map_err(|_| CallError::Disconnected)
    }

    /// The next response frame, if one has come.
    fn try_recv(&mut self, sock: &UnixStream) -> Result<(u32, Vec<u8>), CallError> {
        if fork::forked(self.fork_gen) {
            return Err(CallError::Forked);
        }
        // A request the socket took only in part goes on (a failure shows in the read).
        let _ = self.output.flush(sock);
        loop {
            match self.input.next(self.max_response) {
                Next::Frame { tag, len } => return Ok((tag, self.input.take(len).to_vec())),
                Next::TooLong { len, position } => {
                    return Err(CallError::Corrupt(Corruption::Record {
                        position,
                        word: len,
                    }));
                }
                Next::Partial if self.input.ended() => return Err(CallError::Disconnected),
                Next::Partial => {
                    if !self.input.fill(sock) && !self.input.ended() {
                        return Err(CallError::Empty);
                    }
                }
            }
        }
    }

    /// Waits for the socket to have something (or to take a request sent in part), in
    /// slices until `deadline`, asking `hung_up` between slices.
    /// Waits for the socket to have something (or to take a request sent in part), or for
    /// one of `pidfds` (the server's, a supervised child's) to say its process ended, in
    /// slices until `deadline`, asking `hung_up` after each wake and each slice.
    fn wait_response(
        &mut self,
        sock: &UnixStream,
        pidfds: &[BorrowedFd<'_>],
        deadline: Deadline,
        slice: Duration,
        mut hung_up: impl FnMut() -> Option<()>,
    ) -> Result<(), Stop<()>> {
        loop {
            if deadline.passed() {
                return Err(Stop::Timeout);
            }
            let now = Instant::now();
            let t = deadline.min(now.after(slice)).since(now);
            let woke = stream::wait(sock, self.output.pending() > 0, pidfds, t);
            // The caller reads once more after a hang-up: what the server sent before it
            // ended is delivered first.
            if let Some(e) = hung_up() {
                return Err(Stop::By(e));
            }
            if woke {
                return Ok(());
            }
        }
    }
}

/// A send error as a call sees it.
fn send_error(e: SendError) -> CallError {
    match e {
        SendError::TooLarge { len, max } => CallError::TooLarge { len, max },
        SendError::Full => CallError::Full,
        SendError::Timeout => CallError::Timeout,
        SendError::Corrupt(c) => CallError::Corrupt(c),
        SendError::Forked => CallError::Forked,
        _ => CallError::Disconnected,
    }
}

/// How a client watches its server: the connection's socket (the server closed it, or its
/// process died and the kernel closed it) and, if the server sent one, a pidfd of the serving
/// process — which says it died even while a process it forked holds the socket open. Once
/// gone, gone for good.
///
/// A client a [`Supervisor`](super::Supervisor) connected watches the child it started too,
/// and reports the child's end with its exit status.
#[derive(Debug)]
struct ServerWatch {
    sock: UnixStream,
    pidfd: Option<OwnedFd>,
    gone: Cell<bool>,
    /// The supervised child serving this client, and the key of the wake-up registered
    /// with it.
    child: Option<(Arc<ChildWatch>, Option<u64>)>,
    /// The fork generation at connect: a copy in a forked child leaves the watch alone.
    fork_gen: u32,
}

impl ServerWatch {
    /// Whether the server is gone. One or two `poll(2)`s, each with zero timeout; an
    /// interrupted or failed poll never says gone.
    fn gone(&self) -> bool {
        if !self.gone.get()
            && (socket::is_hung_up(&self.sock)
                || self.pidfd.as_ref().is_some_and(|p| pidfd_exited(p.as_fd()))
                || self
                    .child
                    .as_ref()
                    .is_some_and(|(c, _)| c.pidfd_says_exited()))
        {
            self.gone.set(true);
        }
        self.gone.get()
    }

    /// The pidfds that say the server's process ended: the server's own (from the
    /// greeting) and a supervised child's.
    fn pidfds(&self) -> Vec<BorrowedFd<'_>> {
        let mut v: Vec<BorrowedFd<'_>> = self.pidfd.iter().map(AsFd::as_fd).collect();
        if let Some((child, _)) = &self.child {
            v.push(child.pidfd());
        }
        v
    }

    /// Whether a supervised server's end is recorded: one atomic load, and none for a
    /// server nobody supervises.
    #[inline]
    fn child_exited(&self) -> bool {
        self.child.as_ref().is_some_and(|(c, _)| c.has_exited())
    }

    /// The error for a lost connection: for a supervised server that ended, its end (the
    /// connection usually ends a moment before the supervisor thread has reaped the child;
    /// see `ChildWatch::lost`), else [`CallError::Disconnected`].
    fn lost(&self) -> CallError {
        match &self.child {
            Some((child, _)) if !fork::forked(self.fork_gen) => {
                child.lost().unwrap_or(CallError::Disconnected)
            }
            _ => CallError::Disconnected,
        }
    }
}

impl Drop for ServerWatch {
    fn drop(&mut self) {
        // In a forked child the watch's lock may have been held at the fork: leave it.
        if let Some((child, Some(key))) = &self.child {
            if !fork::forked(self.fork_gen) {
                child.forget(*key);
            }
        }
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("slot", &self.welcome.slot)
            .field("server_pid", &self.welcome.server_pid)
            .field("next_id", &self.next_id)
            .finish_non_exhaustive()
    }
}

static_assertions::assert_impl_all!(Client: Send);

/// A response, matched to its request by id.
///
/// # Examples
///
/// ```
/// use ringbell::channel::{Response, RequestId, Status};
///
/// let ok = Response { id: RequestId(3), status: Status::Ok, body: b"done".to_vec() };
/// assert_eq!(ok.into_result(), Ok(b"done".to_vec()));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The request it answers.
    pub id: RequestId,
    /// How the server answered.
    pub status: Status,
    /// The handler's response ([`Status::Ok`]), its message ([`Status::Failed`]), or empty.
    pub body: Vec<u8>,
}

impl Response {
    /// The body if the status is [`Status::Ok`].
    ///
    /// # Errors
    ///
    /// [`CallError::Server`] with the status otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{CallError, Response, RequestId, Status};
    ///
    /// let failed = Response { id: RequestId(0), status: Status::Failed, body: b"no".to_vec() };
    /// assert_eq!(failed.into_result(), Err(CallError::Server(Status::Failed)));
    /// ```
    pub fn into_result(self) -> Result<Vec<u8>, CallError> {
        match self.status {
            Status::Ok => Ok(self.body),
            s => Err(CallError::Server(s)),
        }
    }

    /// Decodes a response frame's tag.
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn parse(tag: u32, body: Vec<u8>) -> Result<Self, CallError> {
        let code = tag >> ID_BITS;
        let status = Status::from_code(code).ok_or(CallError::BadStatus { code })?;
        Ok(Self {
            id: RequestId::from_tag(tag),
            status,
            body,
        })
    }
}
