//! The socket transport's server, [`SocketServer`], and [`AnyServer`], a server of either
//! transport.
//!
//! The details are in the type docs.

use std::fmt;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use std::vec::Vec;

use rustix::event::{EventfdFlags, PollFd, PollFlags, Timespec, eventfd, poll};

use super::config::{ServerConfig, TransportKind};
use super::error::{ChannelError, RecvRequestError, SendResponseError};
use super::handshake::{self, Welcome};
use super::listen::{Listening, Peer};
use super::message::{ClientInfo, ConnId, Incoming, RequestId, Status};
use super::server::{self, ACCEPTS_PER_CALL, Server};
use super::socket::{self, AcceptPace, Stale};
use super::stream::{FrameIn, FrameOut, Next};
use super::transport::Transport;
use crate::error::Corruption;
use crate::fork;
use crate::wire::{REQUEST_CONTROL, SOCKET_FRAME_HEADER};

/// Descriptors one connection costs: its socket and the client's pidfd.
const FDS_PER_CLIENT: usize = 2;

/// How long a shutdown goes on sending answers already queued.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(1);

/// One connected client of the socket transport.
struct Conn {
    id: ConnId,
    peer: Peer,
    input: FrameIn,
    output: FrameOut,
    paused: bool,
}

/// A server of the socket transport: the same handshake, limits, admission and
/// [`Transport`] as [`Server`], with every request and response a
/// length-prefixed frame on the connection's socket instead of a record in shared memory.
///
/// # When to use it
///
/// Where the processes cannot share memory: a sandbox without shared mappings (seccomp
/// filters that refuse `memfd_create` or `mmap` of a passed descriptor), a container policy,
/// a peer that must not be trusted with a mapping. It costs a system call or more per frame
/// each way and a copy through the kernel; shared memory costs neither (see the README's
/// figures). [`ServerConfig::transport`](super::ServerConfig::transport) and [`AnyServer`]
/// let one program choose per deployment; a [`Client`](super::Client) learns the choice from
/// the greeting and needs no setting.
///
/// # How it waits
///
/// [`Transport::wait`] is one `poll(2)` over the connections' sockets (readable, or writable
/// where a response waits for room) and an eventfd that the [`waker`](Transport::waker)
/// writes. The eventfd is drained *before* `ready()` is checked and the poll starts, so a
/// wake between the check and the poll leaves it readable and the poll returns at once: no
/// wake-up is lost. A handled signal ends the poll early (`EINTR`); the reactor then looks
/// again, which is never wrong.
///
/// # Limits
///
/// A connection's unsent responses are bounded by the response ring size of the
/// configuration (64 KiB by default): past it `try_send_response` answers `Full` and the
/// reactor parks the response, as with a full ring. A request is read only while no whole
/// one is buffered for its connection, so a client that floods is held by its socket's
/// buffer. A frame announcing a body longer than the largest request ends the connection
/// ([`RecvRequestError::Detached`] with a corruption).
///
/// No hand-over of slow inline handlers ([`Transport::watch_bell`] is `None`): bytes
/// arriving on a socket do not ring a doorbell. So with a thread-pool executor and more than
/// one client connected, the reactor runs nothing inline
/// ([`Transport::inline_beside_others`] is `false`): a slow handler holds up only its own
/// client. With one client connected requests still run inline when nothing is in flight.
///
/// A client that half-closes its socket (shuts down its write side) is detached at the next
/// housekeeping, as a client that closed: its queued requests and unsent answers are dropped.
///
/// # Examples
///
/// ```
/// use ringbell::channel::{Client, ServerConfig, SocketServer};
/// use ringbell::reactor::{Reactor, Request, Responder};
///
/// let dir = std::env::temp_dir().join(format!("ringbell-doc-sockserver-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let server = SocketServer::bind(dir.join("echo.sock"), ServerConfig::new())?;
/// let mut reactor = Reactor::new(server, |req: Request, res: Responder| {
///    let _ = res.respond(&req.body);
/// });
/// let stop = reactor.stop_handle();
/// let serving = std::thread::spawn(move || reactor.run());
///
/// let mut client = Client::connect(dir.join("echo.sock"))?;
/// assert!(client.is_socket_transport());
/// assert_eq!(client.call(b"ping")?, b"ping");
/// stop.stop();
/// serving.join().unwrap()?;
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SocketServer {
    /// The socket and its file.
    listening: Listening,
    conns: Vec<Option<Conn>>,
    /// Where the next round-robin look starts.
    cursor: usize,
    cfg: ServerConfig,
    max_request: usize,
    max_response: usize,
    generation: u64,
    uid: u32,
    fork_gen: u32,
    pidfd: Option<OwnedFd>,
    base_fds: usize,
    pace: AcceptPace,
    /// Written by the waker; polled by `wait`.
    wake: Arc<OwnedFd>,
    /// Some connection has output the socket did not take yet.
    unsent: bool,
    /// Requests taken from the buffers since the sockets were last read: past one per
    /// client the sockets are read again, so that one client's buffered flood cannot keep
    /// another's request waiting.
    taken_since_fill: usize,
    /// Connections whose socket failed while sending, for the next housekeeping to report.
    broken: Vec<ConnId>,
}

impl SocketServer {
    /// Listens at `path` (created `0600`); refuses a stale socket file.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Bind`]; [`ChannelError::Config`] for sizes that would make no ring
    /// (the frame limits are those the shared-memory server would have); `Io` if no eventfd
    /// can be made.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{ServerConfig, SocketServer, Transport};
    ///
    /// let dir = std::env::temp_dir().join(format!("ringbell-doc-sockbind-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let server = SocketServer::bind(dir.join("s.sock"), ServerConfig::new())?;
    /// assert_eq!(server.max_request(), (64 << 10) / 2 - 8); // as the 64 KiB ring allows
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn bind(path: impl AsRef<Path>, cfg: ServerConfig) -> Result<Self, ChannelError> {
        Self::bind_with(path.as_ref(), cfg, Stale::Refuse)
    }

    /// As [`bind`](Self::bind), taking over a stale socket file nobody listens on.
    ///
    /// # Errors
    ///
    /// As [`bind`](Self::bind).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{ServerConfig, SocketServer};
    ///
    /// let dir = std::env::temp_dir().join(format!("ringbell-doc-sockrepl-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// drop(std::os::unix::net::UnixListener::bind(dir.join("s.sock"))?);
    /// let server = SocketServer::bind_replacing(dir.join("s.sock"), ServerConfig::new())?;
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn bind_replacing(path: impl AsRef<Path>, cfg: ServerConfig) -> Result<Self, ChannelError> {
        Self::bind_with(path.as_ref(), cfg, Stale::Replace)
    }

    fn bind_with(path: &Path, cfg: ServerConfig, stale: Stale) -> Result<Self, ChannelError> {
        let fork_gen = fork::generation();
        let (max_request, max_response) = frame_limits(&cfg)?;
        let wake = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
            .map_err(|e| ChannelError::Io(e.into()))?;
        let listening = Listening::bind(path, stale)?;
        Ok(Self {
            listening,
            conns: Vec::new(),
            cursor: 0,
            cfg,
            max_request,
            max_response,
            generation: 0,
            uid: rustix::process::geteuid().as_raw(),
            fork_gen,
            pidfd: handshake::own_pidfd(),
            base_fds: server::open_fds(),
            pace: AcceptPace::new(),
            wake: Arc::new(wake),
            unsent: false,
            taken_since_fill: 0,
            broken: Vec::new(),
        })
    }

    /// The socket path.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{ServerConfig, SocketServer};
    ///
    /// let dir = std::env::temp_dir().join(format!("ringbell-doc-sockpath-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let server = SocketServer::bind(dir.join("s.sock"), ServerConfig::new())?;
    /// assert_eq!(server.path(), dir.join("s.sock"));
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn path(&self) -> &Path {
        self.listening.path()
    }

    /// How many clients are connected.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{ServerConfig, SocketServer};
    ///
    /// let dir = std::env::temp_dir().join(format!("ringbell-doc-sockclients-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let server = SocketServer::bind(dir.join("s.sock"), ServerConfig::new())?;
    /// assert_eq!(server.clients(), 0);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn clients(&self) -> usize {
        self.conns.iter().flatten().count()
    }

    fn forked(&self) -> bool {
        fork::forked(self.fork_gen)
    }

    fn conn_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        self.conns
            .get_mut(id.slot)
            .and_then(Option::as_mut)
            .filter(|c| c.id == id)
    }

    fn accept_pending(&mut self) {
        if self.forked() {
            return;
        }
        for _ in 0..ACCEPTS_PER_CALL {
            let Some(listener) = self.listening.listener() else {
                return;
            };
            match self.pace.next(listener) {
                Ok(Some(sock)) => self.setup(sock),
                _ => return,
            }
        }
    }

    fn setup(&mut self, sock: UnixStream) {
        let Ok(cred) = socket::peer_credentials(&sock) else {
            return;
        };
        let held = self.conns.iter().flatten().map(|c| c.peer.cred);
        let why = server::refusal(&self.cfg, self.uid, &cred, held, self.clients(), || {
            server::fd_budget_allows_one_more(self.base_fds, FDS_PER_CLIENT, self.clients())
        });
        if let Some(why) = why {
            handshake::refuse(&sock, why);
            return;
        }
        let slot = match self.conns.iter().position(Option::is_none) {
            Some(s) => s,
            None => {
                self.conns.push(None);
                self.conns.len() - 1
            }
        };
        self.generation += 1;
        let id = ConnId {
            slot,
            generation: self.generation,
        };
        let welcome = Welcome {
            slot: slot as u32,
            server_pid: std::process::id(),
            max_in_flight: self.cfg.max_in_flight as u32,
            max_request: self.max_request as u32,
            max_response: self.max_response as u32,
        };
        let pidfd = self.pidfd.as_ref().map(AsFd::as_fd);
        if handshake::welcome_socket(&sock, welcome, pidfd).is_err() {
            return;
        }
        self.conns[slot] = Some(Conn {
            id,
            peer: Peer::new(sock, cred),
            input: FrameIn::default(),
            output: FrameOut::default(),
            paused: false,
        });
    }

    fn detach(&mut self, id: ConnId) -> bool {
        match self.conn_mut(id) {
            Some(_) => {
                self.conns[id.slot] = None;
                true
            }
            None => false,
        }
    }

    /// Reads whatever the readable connections have (one `poll(2)` with zero timeout, one
    /// read per readable connection that has no whole request buffered); whether any came.
    fn fill(&mut self) -> bool {
        let max = self.max_request;
        let mut idx = Vec::new();
        let mut fds = Vec::new();
        for (i, c) in self.conns.iter().enumerate() {
            if let Some(c) = c {
                if c.listening(max) {
                    idx.push(i);
                    fds.push(PollFd::new(&c.peer.sock, PollFlags::IN | PollFlags::RDHUP));
                }
            }
        }
        if fds.is_empty() || !poll_now(&mut fds) {
            return false;
        }
        let readable: Vec<usize> = idx
            .iter()
            .zip(&fds)
            .filter(|(_, f)| !f.revents().is_empty())
            .map(|(&i, _)| i)
            .collect();
        drop(fds);
        let mut any = false;
        for i in readable {
            if let Some(c) = self.conns[i].as_mut() {
                any |= c.input.fill(&c.peer.sock) || c.input.ended();
            }
        }
        any
    }

    /// The next buffered request (round robin), a violation or an end to report.
    fn take_buffered(&mut self, buf: &mut [u8]) -> Option<Result<Incoming, RecvRequestError>> {
        let n = self.conns.len();
        for k in 0..n {
            let i = (self.cursor + k) % n;
            let Some(c) = self.conns[i].as_mut() else {
                continue;
            };
            if c.paused || c.peer.hello_pending() {
                continue;
            }
            match c.input.next(self.max_request) {
                Next::Frame { tag, len } => {
                    if buf.len() < len {
                        return Some(Err(RecvRequestError::BufferTooSmall {
                            conn: c.id,
                            needed: len,
                        }));
                    }
                    buf[..len].copy_from_slice(c.input.take(len));
                    self.cursor = i + 1;
                    self.taken_since_fill += 1;
                    return Some(Ok(Incoming {
                        conn: c.id,
                        id: RequestId::from_tag(tag),
                        len,
                        control: tag & REQUEST_CONTROL != 0,
                    }));
                }
                Next::TooLong { len, position } => {
                    let id = c.id;
                    self.conns[i] = None;
                    let bad = Corruption::Record {
                        position,
                        word: len,
                    };
                    return Some(Err(RecvRequestError::Detached(id, Some(bad))));
                }
                Next::Partial if c.input.ended() => {
                    let id = c.id;
                    self.conns[i] = None;
                    return Some(Err(RecvRequestError::Detached(id, None)));
                }
                Next::Partial => {}
            }
        }
        None
    }

    /// Sends what each connection's socket takes of its queued responses.
    /// Sends what each connection's socket takes of its queued responses; a connection
    /// whose socket failed is detached and reported by the next housekeeping.
    fn flush_all(&mut self) {
        if !self.unsent {
            return;
        }
        let mut unsent = false;
        let mut failed = Vec::new();
        for c in self.conns.iter_mut().flatten() {
            if c.output.pending() > 0 {
                if c.output.flush(&c.peer.sock).is_err() {
                    failed.push(c.id);
                } else {
                    unsent |= c.output.pending() > 0;
                }
            }
        }
        self.unsent = unsent;
        for id in failed {
            self.detach(id);
            self.broken.push(id);
        }
    }

    /// A wait's first half (also a [`DualServer`](super::DualServer)'s): sends what waits,
    /// reads late hellos, drains the wake eventfd — before the look, so that a wake after the
    /// look is still in it — and looks: whether there is work already.
    pub(crate) fn prepare_wait(
        &mut self,
        blocked: &[(ConnId, usize)],
        ready: &dyn Fn() -> bool,
    ) -> bool {
        self.flush_all();
        self.read_hellos();
        let mut word = [0u8; 8];
        let _ = rustix::io::read(&*self.wake, &mut word);
        let cap = self.cfg.response_ring;
        let sendable = |&(id, len): &(ConnId, usize)| {
            self.conns
                .get(id.slot)
                .and_then(Option::as_ref)
                .filter(|c| c.id == id)
                .is_none_or(|c| c.output.pending() + SOCKET_FRAME_HEADER + len <= cap)
        };
        ready() || self.has_buffered() || blocked.iter().any(sendable)
    }

    /// A wait's second half: what to `poll(2)` — the wake eventfd, and each connection's
    /// socket for reading (room in its input, or its hello awaited) or for writing (output
    /// waiting).
    pub(crate) fn poll_fds(&self) -> Vec<PollFd<'_>> {
        let max = self.max_request;
        let mut fds = std::vec![PollFd::new(&*self.wake, PollFlags::IN)];
        for c in self.conns.iter().flatten() {
            let mut events = PollFlags::empty();
            if c.listening(max) || c.peer.hello_pending() {
                events |= PollFlags::IN | PollFlags::RDHUP;
            }
            if c.output.pending() > 0 {
                events |= PollFlags::OUT;
            }
            if !events.is_empty() {
                fds.push(PollFd::new(&c.peer.sock, events));
            }
        }
        fds
    }

    /// Whether this is a copy inherited by a forked child (for a dual server's wait).
    pub(crate) fn is_forked_copy(&self) -> bool {
        self.forked()
    }

    /// Reads the hellos that have come (a client's hello precedes its frames).
    fn read_hellos(&mut self) {
        for c in self.conns.iter_mut().flatten() {
            if c.peer.hello_pending() {
                c.peer.read_hello();
            }
        }
    }

    fn has_buffered(&self) -> bool {
        self.conns
            .iter()
            .flatten()
            .any(|c| !c.paused && !c.peer.hello_pending() && c.input.ready(self.max_request))
    }
}

/// The frame limits a shared-memory server with `cfg` would have: both transports take and
/// send the same requests.
fn frame_limits(cfg: &ServerConfig) -> Result<(usize, usize), ChannelError> {
    let check = |ring: usize, cap: Option<usize>| {
        crate::header::geometry(crate::wire::RingKind::Spsc, ring, cap)
            .map(|g| g.frame_cap)
            .map_err(ChannelError::Config)
    };
    Ok((
        check(cfg.request_ring, cfg.max_request)?,
        check(cfg.response_ring, cfg.max_response)?,
    ))
}

/// One `poll(2)` of `fds` for at most `slice`; whether any has events (an interrupted or
/// failed poll says no: the caller looks again after its slice anyway).
pub(crate) fn poll_slice(fds: &mut [PollFd<'_>], slice: Duration) -> bool {
    let ts = Timespec {
        tv_sec: slice.as_secs() as i64,
        tv_nsec: i64::from(slice.subsec_nanos()),
    };
    matches!(poll(fds, Some(&ts)), Ok(n) if n > 0)
}

/// A `poll(2)` of `fds` with zero timeout; whether any has events. `EINTR` is asked again
/// (a bounded number of times).
fn poll_now(fds: &mut [PollFd<'_>]) -> bool {
    let zero = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    for _ in 0..64 {
        match poll(fds, Some(&zero)) {
            Ok(n) => return n > 0,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return false,
        }
    }
    false
}

impl Conn {
    /// Whether to read from this connection now: not paused, hello read, input open, and
    /// no whole request buffered already.
    fn listening(&self, max: usize) -> bool {
        !self.paused && !self.peer.hello_pending() && !self.input.ready(max)
    }
}

impl Transport for SocketServer {
    fn max_request(&self) -> usize {
        self.max_request
    }
    fn max_response(&self) -> usize {
        self.max_response
    }
    fn limits(&self) -> (usize, usize) {
        (self.cfg.max_in_flight, self.cfg.stash_bytes)
    }
    fn try_recv_request(&mut self, buf: &mut [u8]) -> Result<Incoming, RecvRequestError> {
        if self.forked() {
            return Err(RecvRequestError::Empty);
        }
        // Answers the socket did not take before go on now, not only when the reactor sleeps.
        self.flush_all();
        if self.taken_since_fill >= self.clients().max(1) {
            self.read_hellos();
            self.fill();
            self.taken_since_fill = 0;
        }
        if let Some(r) = self.take_buffered(buf) {
            return r;
        }
        self.read_hellos();
        if self.fill() {
            self.taken_since_fill = 0;
            if let Some(r) = self.take_buffered(buf) {
                return r;
            }
        }
        Err(RecvRequestError::Empty)
    }
    fn has_request(&self) -> bool {
        if self.has_buffered() {
            return true;
        }
        let max = self.max_request;
        let mut fds: Vec<PollFd<'_>> = self
            .conns
            .iter()
            .flatten()
            .filter(|c| c.listening(max))
            .map(|c| PollFd::new(&c.peer.sock, PollFlags::IN | PollFlags::RDHUP))
            .collect();
        !fds.is_empty() && poll_now(&mut fds)
    }
    fn try_send_response(
        &mut self,
        conn: ConnId,
        id: RequestId,
        status: Status,
        body: &[u8],
    ) -> Result<(), SendResponseError> {
        if self.forked() {
            return Err(SendResponseError::Forked);
        }
        let (max, cap) = (self.max_response, self.cfg.response_ring);
        let c = self.conn_mut(conn).ok_or(SendResponseError::Gone)?;
        if body.len() > max {
            return Err(SendResponseError::TooLarge {
                len: body.len(),
                max,
            });
        }
        let fits = |c: &Conn| c.output.pending() + SOCKET_FRAME_HEADER + body.len() <= cap;
        if !fits(c) {
            if c.output.flush(&c.peer.sock).is_err() {
                self.detach(conn);
                return Err(SendResponseError::Gone);
            }
            // An empty queue takes any frame within the limit.
            if c.output.pending() > 0 && !fits(c) {
                return Err(SendResponseError::Full);
            }
        }
        c.output.push(status.tag(id), body);
        if c.output.flush(&c.peer.sock).is_err() {
            self.detach(conn);
            return Err(SendResponseError::Gone);
        }
        self.unsent |= c.output.pending() > 0;
        Ok(())
    }
    fn wait(&mut self, blocked: &[(ConnId, usize)], ready: &dyn Fn() -> bool) -> bool {
        if self.forked() {
            // The parent's streams and eventfd: not ours to write or drain.
            std::thread::sleep(self.cfg.wait.slice);
            return false;
        }
        if self.prepare_wait(blocked, ready) {
            return true;
        }
        let mut fds = self.poll_fds();
        poll_slice(&mut fds, self.cfg.wait.slice)
    }
    fn pause(&mut self, conn: ConnId, paused: bool) {
        if let Some(c) = self.conn_mut(conn) {
            c.paused = paused;
        }
    }
    fn housekeeping(&mut self, accept: bool) -> Vec<ConnId> {
        if self.forked() {
            return Vec::new();
        }
        self.flush_all();
        let mut gone: Vec<ConnId> = core::mem::take(&mut self.broken);
        gone.extend(
            self.conns
                .iter_mut()
                .flatten()
                .filter_map(|c| c.peer.is_gone().then_some(c.id)),
        );
        for &id in &gone {
            self.detach(id);
        }
        if accept {
            self.accept_pending();
        }
        gone
    }
    fn shutdown(&mut self) {
        self.listening.close();
        if self.forked() {
            return;
        }
        // Answers the reactor counted as sent are still in user space: send them, for at
        // most a second, before closing (a client that does not read loses them).
        let deadline = crate::clock::Instant::now().after(SHUTDOWN_FLUSH);
        while self.unsent && crate::clock::Instant::now() < deadline {
            self.flush_all();
            let fds: Vec<PollFd<'_>> = self
                .conns
                .iter()
                .flatten()
                .filter(|c| c.output.pending() > 0)
                .map(|c| PollFd::new(&c.peer.sock, PollFlags::OUT))
                .collect();
            let mut fds = fds;
            if fds.is_empty() {
                break;
            }
            let ten_ms = Timespec {
                tv_sec: 0,
                tv_nsec: 10_000_000,
            };
            let _ = poll(&mut fds, Some(&ten_ms));
        }
        self.conns.clear();
    }
    fn housekeeping_interval(&self) -> Option<Duration> {
        Some(self.cfg.wait.slice)
    }
    fn client(&self, conn: ConnId) -> Option<ClientInfo> {
        self.conns
            .get(conn.slot)
            .and_then(Option::as_ref)
            .filter(|c| c.id == conn)
            .map(|c| c.peer.info(c.id))
    }
    fn waker(&self) -> std::boxed::Box<dyn Fn() + Send + Sync> {
        let fd = self.wake.clone();
        std::boxed::Box::new(move || {
            // A full eventfd counter (2^64 - 2 wakes unread) is still readable: nothing lost.
            let _ = rustix::io::write(&*fd, &1u64.to_ne_bytes());
        })
    }
    fn connections(&self) -> usize {
        self.clients()
    }
    fn connection_stats(&self) -> Vec<super::ConnectionStats> {
        self.conns
            .iter()
            .flatten()
            .map(|c| c.peer.stats(c.id, super::TransportKind::Socket))
            .collect()
    }
    fn inline_beside_others(&self) -> bool {
        // No doorbell to hand a slow inline run over with: with other clients connected,
        // requests go to the executor.
        false
    }
}

impl fmt::Debug for SocketServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SocketServer")
            .field("path", &self.listening.path())
            .field("clients", &self.clients())
            .finish_non_exhaustive()
    }
}

static_assertions::assert_impl_all!(SocketServer: Send);

/// A server of either transport, chosen at bind by
/// [`ServerConfig::transport`](super::ServerConfig::transport): what a program binds when
/// the deployment decides. A reactor serves it like either.
///
/// # Examples
///
/// ```
/// use ringbell::channel::{AnyServer, Client, ServerConfig, TransportKind};
/// use ringbell::reactor::{Reactor, Request, Responder};
///
/// let dir = std::env::temp_dir().join(format!("ringbell-doc-any-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// // For example from the deployment's settings: "socket" or "shm".
/// let kind: TransportKind = "socket".parse()?;
/// let server = AnyServer::bind(dir.join("s.sock"), ServerConfig::new().transport(kind))?;
/// let mut reactor = Reactor::new(server, |req: Request, res: Responder| {
///     let _ = res.respond(&req.body);
/// });
/// let stop = reactor.stop_handle();
/// let serving = std::thread::spawn(move || reactor.run());
/// let mut client = Client::connect(dir.join("s.sock"))?;
/// assert_eq!(client.call(b"hi")?, b"hi");
/// stop.stop();
/// serving.join().unwrap()?;
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
// One per server, held by value by its reactor: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum AnyServer {
    /// Shared-memory rings.
    SharedMemory(Server),
    /// Frames on the sockets.
    Socket(SocketServer),
}

impl AnyServer {
    /// Binds a server of the transport `cfg` names.
    ///
    /// # Errors
    ///
    /// As [`Server::bind`] or [`SocketServer::bind`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{AnyServer, ServerConfig, TransportKind};
    ///
    /// let dir = std::env::temp_dir().join(format!("ringbell-doc-anybind-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let server = AnyServer::bind(dir.join("s.sock"), ServerConfig::new())?;
    /// assert_eq!(server.kind(), TransportKind::SharedMemory); // the default
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn bind(path: impl AsRef<Path>, cfg: ServerConfig) -> Result<Self, ChannelError> {
        Ok(match cfg.transport {
            TransportKind::SharedMemory => Self::SharedMemory(Server::bind(path, cfg)?),
            TransportKind::Socket => Self::Socket(SocketServer::bind(path, cfg)?),
        })
    }

    /// Which transport it serves.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{AnyServer, ServerConfig, TransportKind};
    ///
    /// let dir = std::env::temp_dir().join(format!("ringbell-doc-anykind-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let cfg = ServerConfig::new().transport(TransportKind::Socket);
    /// assert_eq!(AnyServer::bind(dir.join("s.sock"), cfg)?.kind(), TransportKind::Socket);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn kind(&self) -> TransportKind {
        match self {
            Self::SharedMemory(_) => TransportKind::SharedMemory,
            Self::Socket(_) => TransportKind::Socket,
        }
    }

    fn inner(&self) -> &dyn Transport {
        match self {
            Self::SharedMemory(s) => s,
            Self::Socket(s) => s,
        }
    }

    fn inner_mut(&mut self) -> &mut dyn Transport {
        match self {
            Self::SharedMemory(s) => s,
            Self::Socket(s) => s,
        }
    }
}

impl Transport for AnyServer {
    fn max_request(&self) -> usize {
        self.inner().max_request()
    }
    fn max_response(&self) -> usize {
        self.inner().max_response()
    }
    fn limits(&self) -> (usize, usize) {
        self.inner().limits()
    }
    fn try_recv_request(&mut self, buf: &mut [u8]) -> Result<Incoming, RecvRequestError> {
        self.inner_mut().try_recv_request(buf)
    }
    fn has_request(&self) -> bool {
        self.inner().has_request()
    }
    fn try_send_response(
        &mut self,
        conn: ConnId,
        id: RequestId,
        status: Status,
        body: &[u8],
    ) -> Result<(), SendResponseError> {
        self.inner_mut().try_send_response(conn, id, status, body)
    }
    fn wait(&mut self, blocked: &[(ConnId, usize)], ready: &dyn Fn() -> bool) -> bool {
        self.inner_mut().wait(blocked, ready)
    }
    fn pause(&mut self, conn: ConnId, paused: bool) {
        self.inner_mut().pause(conn, paused);
    }
    fn housekeeping(&mut self, accept: bool) -> Vec<ConnId> {
        self.inner_mut().housekeeping(accept)
    }
    fn shutdown(&mut self) {
        self.inner_mut().shutdown();
    }
    fn housekeeping_interval(&self) -> Option<Duration> {
        self.inner().housekeeping_interval()
    }
    fn client(&self, conn: ConnId) -> Option<ClientInfo> {
        self.inner().client(conn)
    }
    fn waker(&self) -> std::boxed::Box<dyn Fn() + Send + Sync> {
        self.inner().waker()
    }
    fn watch_bell(&self) -> Option<crate::doorbell::WatchBell> {
        self.inner().watch_bell()
    }
    fn connections(&self) -> usize {
        self.inner().connections()
    }
    fn connection_stats(&self) -> Vec<super::ConnectionStats> {
        self.inner().connection_stats()
    }
    fn wait_stats(&self) -> Option<crate::doorbell::WaitStats> {
        self.inner().wait_stats()
    }
    fn inline_beside_others(&self) -> bool {
        self.inner().inline_beside_others()
    }
    fn wait_descriptor(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.inner().wait_descriptor()
    }
    fn announce(
        &mut self,
        blocked: &[(ConnId, usize)],
        ready: &dyn Fn() -> bool,
    ) -> crate::doorbell::Announced {
        self.inner_mut().announce(blocked, ready)
    }
}
