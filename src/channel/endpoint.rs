//! The operating-system side of a channel: the [`Server`] and [`Client`] endpoints.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::io;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{
    CallError, ClientInfo, ConnId, ID_MASK, Incoming, RecvRequestError, RequestId, Response,
    SendResponseError, Status, parse,
};
use crate::doorbell::{Doorbell, WaitOptions, bell_of, bell_of_unchecked};
use crate::error::{AttachError, Corruption, RecvError, SendError};
use crate::fanin::{FanIn, FanInError, RingId};
use crate::futex::Instant;
use crate::peer::{self, BindError, PeerCredentials, Stale};
use crate::region::{Region, RegionError};
use crate::role::OwnerId;
use crate::spsc::{Consumer, Notifier, Producer, RingConfig};

/// Handshake: first bytes of the server's greeting.
const HELLO_MAGIC: [u8; 4] = *b"RBC1";
/// Handshake length in bytes.
const HELLO_LEN: usize = 24;
/// Handshake verdicts.
const HELLO_OK: u32 = 0;
const HELLO_FULL: u32 = 1;
const HELLO_UID: u32 = 2;

/// Limits and sizes of a [`Server`].
#[derive(Clone, Debug)]
pub struct ServerConfig {
    max_clients: usize,
    request_ring: usize,
    response_ring: usize,
    max_request: Option<usize>,
    max_response: Option<usize>,
    max_in_flight: usize,
    stash_bytes: usize,
    allowed_uids: Option<Vec<u32>>,
    wait: WaitOptions,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_clients: 64,
            request_ring: 64 << 10,
            response_ring: 64 << 10,
            max_request: None,
            max_response: None,
            max_in_flight: 64,
            stash_bytes: 1 << 20,
            allowed_uids: Some(Vec::new()),
            wait: WaitOptions::default(),
        }
    }
}

impl ServerConfig {
    /// The defaults: 64 clients, 64 KiB rings each way, frame caps the largest the rings
    /// allow, 64 requests in flight and 1 MiB of parked responses per client, only this
    /// process's user admitted.
    pub fn new() -> Self {
        Self::default()
    }

    /// Most clients connected at once (a configurable limit, not a constant).
    pub fn max_clients(mut self, n: usize) -> Self {
        self.max_clients = n;
        self
    }

    /// Bytes in each client's request ring (a power of two, at least 64).
    pub fn request_ring(mut self, bytes: usize) -> Self {
        self.request_ring = bytes;
        self
    }

    /// Bytes in each client's response ring (a power of two, at least 64).
    pub fn response_ring(mut self, bytes: usize) -> Self {
        self.response_ring = bytes;
        self
    }

    /// Largest request accepted, in bytes (at most half the request ring less 8).
    pub fn max_request(mut self, bytes: usize) -> Self {
        self.max_request = Some(bytes);
        self
    }

    /// Largest response sent, in bytes (at most half the response ring less 8).
    pub fn max_response(mut self, bytes: usize) -> Self {
        self.max_response = Some(bytes);
        self
    }

    /// Requests of one client handed to handlers and not yet answered, at most; past them a
    /// request is answered [`Status::Busy`] at once. At least 1.
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.max(1);
        self
    }

    /// Bytes of answered responses the server parks for one client whose response ring is
    /// full (or which wait for an earlier response); past them the server stops reading that
    /// client's requests until it reads its responses.
    pub fn stash_bytes(mut self, bytes: usize) -> Self {
        self.stash_bytes = bytes;
        self
    }

    /// Also admits clients running as `uid` (by default only this process's effective uid;
    /// root's clients are admitted only if root runs the server or is allowed here).
    pub fn allow_uid(mut self, uid: u32) -> Self {
        if let Some(v) = &mut self.allowed_uids {
            v.push(uid);
        }
        self
    }

    /// Admits clients of every user who can open the socket file (whose mode is still
    /// `0600`: change it yourself to let others reach it).
    pub fn allow_any_uid(mut self) -> Self {
        self.allowed_uids = None;
        self
    }

    /// How the server and its rings wait (spin budget, sleep slice).
    pub fn wait_options(mut self, opts: WaitOptions) -> Self {
        self.wait = opts;
        self
    }

    /// The limit on requests in flight per client.
    pub fn get_max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    /// The limit on parked response bytes per client.
    pub fn get_stash_bytes(&self) -> usize {
        self.stash_bytes
    }

    /// The wait options.
    pub fn get_wait(&self) -> WaitOptions {
        self.wait
    }
}

/// Setting up a server or a client failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ChannelError {
    /// Binding the socket path failed (in use, stale, …).
    Bind(BindError),
    /// Creating, sending or opening a ring failed.
    Region(RegionError),
    /// Attaching to a ring failed.
    Attach(AttachError),
    /// The configuration cannot make rings.
    Config(crate::error::HeaderError),
    /// The server refused the connection: it is at its client limit.
    ServerFull,
    /// The server refused the connection: this user is not admitted.
    NotAdmitted,
    /// The server's greeting was malformed (not a ringbell server, or another version).
    Protocol(&'static str),
    /// The server did not greet within the connect timeout.
    Timeout,
    /// A socket system call failed.
    Io(io::Error),
}

impl fmt::Display for ChannelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bind(e) => write!(f, "binding the server socket: {e}"),
            Self::Region(e) => write!(f, "ring region: {e}"),
            Self::Attach(e) => write!(f, "attaching to a ring: {e}"),
            Self::Config(e) => write!(f, "server configuration: {e}"),
            Self::ServerFull => f.write_str("the server is at its client limit"),
            Self::NotAdmitted => f.write_str("the server does not admit this user"),
            Self::Protocol(what) => write!(f, "bad greeting from the server: {what}"),
            Self::Timeout => f.write_str("the server did not answer the connection in time"),
            Self::Io(e) => write!(f, "socket: {e}"),
        }
    }
}

impl std::error::Error for ChannelError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Bind(e) => Some(e),
            Self::Region(e) => Some(e),
            Self::Attach(e) => Some(e),
            Self::Config(e) => Some(e),
            Self::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<BindError> for ChannelError {
    fn from(e: BindError) -> Self {
        Self::Bind(e)
    }
}
impl From<RegionError> for ChannelError {
    fn from(e: RegionError) -> Self {
        Self::Region(e)
    }
}
impl From<AttachError> for ChannelError {
    fn from(e: AttachError) -> Self {
        Self::Attach(e)
    }
}
impl From<io::Error> for ChannelError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

struct Conn {
    id: ConnId,
    cred: PeerCredentials,
    sock: UnixStream,
    responses: Producer<Region>,
}

/// The server end of a channel: the rendezvous socket, the fan-in of request rings and the
/// response rings. See the [module docs](crate::channel). Most servers run it through a
/// [`Reactor`](crate::reactor::Reactor); its own API is the transport underneath.
///
/// Dropping it removes the socket file and closes every ring: clients see
/// [`CallError::Disconnected`].
pub struct Server {
    /// `None` once shut down.
    listener: Option<UnixListener>,
    path: PathBuf,
    /// The socket file's identity, to remove only our own file on drop.
    inode: (u64, u64),
    bell: Region,
    /// The doorbell in `bell`, located once when the region was made: clients share the
    /// region and could rewrite its header later.
    door: Doorbell,
    fanin: FanIn<Region>,
    conns: Vec<Option<Conn>>,
    cfg: ServerConfig,
    request_cfg: RingConfig,
    response_cfg: RingConfig,
    owner: OwnerId,
    generation: u64,
    uid: u32,
}

impl Server {
    /// Listens at `path` (created `0600`); refuses a stale socket file left by a crashed
    /// server ([`BindError::Stale`]).
    ///
    /// # Errors
    ///
    /// [`ChannelError::Bind`], [`ChannelError::Config`] for sizes that make no ring,
    /// [`ChannelError::Region`] if the doorbell region cannot be created.
    pub fn bind(path: impl AsRef<Path>, cfg: ServerConfig) -> Result<Self, ChannelError> {
        Self::bind_with(path.as_ref(), cfg, Stale::Refuse)
    }

    /// As [`bind`](Self::bind), but takes over a stale socket file — only if no server
    /// listens on it.
    ///
    /// # Errors
    ///
    /// As [`bind`](Self::bind); [`BindError::InUse`] if a server is alive there.
    pub fn bind_replacing(path: impl AsRef<Path>, cfg: ServerConfig) -> Result<Self, ChannelError> {
        Self::bind_with(path.as_ref(), cfg, Stale::Replace)
    }

    fn bind_with(path: &Path, cfg: ServerConfig, stale: Stale) -> Result<Self, ChannelError> {
        let mut request_cfg = RingConfig::new(cfg.request_ring).shared_bell();
        if let Some(m) = cfg.max_request {
            request_cfg = request_cfg.frame_cap(m);
        }
        let mut response_cfg = RingConfig::new(cfg.response_ring).shared_space_bell();
        if let Some(m) = cfg.max_response {
            response_cfg = response_cfg.frame_cap(m);
        }
        request_cfg.geometry().map_err(ChannelError::Config)?;
        response_cfg.geometry().map_err(ChannelError::Config)?;
        let bell = Region::create_bell()?;
        let door = bell_of(&bell)?;
        let mut fanin = FanIn::new(bell.clone(), cfg.max_clients)?;
        fanin.set_wait_options(cfg.wait);
        let listener = peer::bind_listener(path, stale)?;
        let meta = match std::fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) => {
                let _ = std::fs::remove_file(path);
                return Err(e.into());
            }
        };
        Ok(Self {
            listener: Some(listener),
            path: path.to_path_buf(),
            inode: (
                std::os::unix::fs::MetadataExt::dev(&meta),
                std::os::unix::fs::MetadataExt::ino(&meta),
            ),
            bell,
            door,
            fanin,
            conns: Vec::new(),
            cfg,
            request_cfg,
            response_cfg,
            // Liveness comes from the sockets, not from pids in the rings: a client in another
            // pid namespace must not be taken for dead.
            owner: OwnerId::unique_without_pid(),
            generation: 0,
            uid: rustix::process::geteuid().as_raw(),
        })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.cfg
    }

    /// The largest request a client can send, in bytes: the size a receive buffer needs.
    pub fn max_request(&self) -> usize {
        self.request_cfg.geometry().map_or(0, |g| g.frame_cap)
    }

    /// The largest response the server can send, in bytes.
    pub fn max_response(&self) -> usize {
        self.response_cfg.geometry().map_or(0, |g| g.frame_cap)
    }

    /// Clients connected now.
    pub fn clients(&self) -> usize {
        self.conns.iter().flatten().count()
    }

    /// Who is on connection `conn`, if it is still attached.
    pub fn client(&self, conn: ConnId) -> Option<ClientInfo> {
        self.conn(conn).map(|c| ClientInfo {
            conn: c.id,
            pid: c.cred.pid,
            uid: c.cred.uid,
            gid: c.cred.gid,
        })
    }

    /// The connections attached now.
    pub fn connections(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.conns.iter().flatten().map(|c| c.id)
    }

    fn conn(&self, id: ConnId) -> Option<&Conn> {
        self.conns
            .get(id.slot)
            .and_then(Option::as_ref)
            .filter(|c| c.id == id)
    }

    fn conn_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        self.conns
            .get_mut(id.slot)
            .and_then(Option::as_mut)
            .filter(|c| c.id == id)
    }

    /// Accepts every connection waiting on the socket, without blocking, and returns how
    /// many were set up. A connection that is refused (limit, user) or whose setup fails is
    /// told so, if possible, and closed; its client sees the error.
    ///
    /// # Errors
    ///
    /// An error of `accept(2)` other than "nothing waiting".
    pub fn accept_pending(&mut self) -> io::Result<usize> {
        let mut n = 0;
        loop {
            let Some(listener) = &self.listener else {
                return Ok(n);
            };
            let sock = match listener.accept() {
                Ok((sock, _)) => sock,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // A connection that died in the backlog: skip it.
                Err(e)
                    if e.raw_os_error() == Some(rustix::io::Errno::CONNABORTED.raw_os_error()) =>
                {
                    continue;
                }
                Err(e) => return Err(e),
            };
            if self.setup(sock).is_ok() {
                n += 1;
            }
        }
    }

    fn setup(&mut self, sock: UnixStream) -> Result<(), ChannelError> {
        let cred = peer::peer_credentials(&sock)?;
        let admitted = match &self.cfg.allowed_uids {
            None => true,
            Some(v) => cred.uid == self.uid || v.contains(&cred.uid),
        };
        let refuse = |sock: &UnixStream, why: u32| {
            let _ = peer::send_fds(sock, &hello(why, 0, 0, 0), &[]);
            ChannelError::NotAdmitted
        };
        if !admitted {
            return Err(refuse(&sock, HELLO_UID));
        }
        if self.fanin.len() >= self.cfg.max_clients {
            return Err(refuse(&sock, HELLO_FULL));
        }
        // Every fallible step before the greeting; after it, only the ring's removal on a
        // failed send.
        let requests = Region::create_spsc(&self.request_cfg)?;
        let responses_region = Region::create_spsc(&self.response_cfg)?;
        let mut responses = Producer::attach_with(
            responses_region.clone(),
            None,
            Some((self.door, self.bell.clone())),
            self.owner,
        )?;
        responses.set_wait_options(self.cfg.wait);
        let RingId(slot) = self.fanin.add(requests.clone(), self.owner)?;
        // A client blocked on a full request ring collects its responses when woken for
        // space: wake it for every request taken, not once per step of the ring.
        self.fanin.ring_every_release(RingId(slot));
        self.generation += 1;
        let id = ConnId {
            slot,
            generation: self.generation,
        };
        let msg = hello(
            HELLO_OK,
            slot as u32,
            std::process::id(),
            self.cfg.max_in_flight as u32,
        );
        let sent = peer::send_fds(
            &sock,
            &msg,
            &[self.bell.fd(), requests.fd(), responses_region.fd()],
        );
        if let Err(e) = sent {
            self.fanin.remove(RingId(slot));
            return Err(e.into());
        }
        if self.conns.len() <= slot {
            self.conns.resize_with(slot + 1, || None);
        }
        self.conns[slot] = Some(Conn {
            id,
            cred,
            sock,
            responses,
        });
        Ok(())
    }

    /// Detaches every connection whose client hung up (closed its socket or died) and
    /// returns them. One `poll(2)` per connection: call it between sleeps, not per request.
    pub fn reap_hung_up(&mut self) -> Vec<ConnId> {
        let dead: Vec<ConnId> = self
            .conns
            .iter()
            .flatten()
            .filter(|c| peer::is_hung_up(&c.sock))
            .map(|c| c.id)
            .collect();
        for &id in &dead {
            self.detach(id);
        }
        dead
    }

    /// Detaches a connection: closes its rings and socket; the client sees
    /// [`CallError::Disconnected`]. Returns false if it was not attached.
    pub fn detach(&mut self, conn: ConnId) -> bool {
        if self.conn(conn).is_none() {
            return false;
        }
        self.conns[conn.slot] = None;
        self.fanin.remove(RingId(conn.slot));
        true
    }

    /// Stops serving: closes the listening socket (new clients are refused; the socket file
    /// is removed) and detaches every connection (their clients see
    /// [`CallError::Disconnected`]). The reactor calls it when it stops.
    pub fn shutdown(&mut self) {
        self.listener = None;
        self.remove_socket_file();
        let all: Vec<ConnId> = self.connections().collect();
        for id in all {
            self.detach(id);
        }
    }

    /// Removes the socket file if it is still ours (not replaced by another server).
    fn remove_socket_file(&self) {
        if let Ok(meta) = std::fs::symlink_metadata(&self.path) {
            use std::os::unix::fs::MetadataExt;
            if (meta.dev(), meta.ino()) == self.inode {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }

    /// Stops (`true`) or resumes reading a connection's requests; see
    /// [`FanIn::set_paused`].
    pub fn pause(&mut self, conn: ConnId, paused: bool) {
        if self.conn(conn).is_some() {
            self.fanin.set_paused(RingId(conn.slot), paused);
        }
    }

    /// Whether any connection that is not paused has a request (or a close to report). A pure
    /// peek.
    pub fn has_request(&self) -> bool {
        self.fanin.ready()
    }

    /// Takes the next request, round robin over the clients, into `buf` (which must hold
    /// [`max_request`](Self::max_request) bytes).
    ///
    /// # Errors
    ///
    /// [`RecvRequestError::Empty`], or [`RecvRequestError::Detached`] once for a connection
    /// that closed or was found corrupt (a too-small `buf` counts as the latter: the caller's
    /// bug must not wedge the server).
    pub fn try_recv_request(&mut self, buf: &mut [u8]) -> Result<Incoming, RecvRequestError> {
        let (ring, err) = match self.fanin.try_recv_into(buf) {
            Ok((RingId(slot), tag, len)) => {
                if let Some(c) = self.conns.get(slot).and_then(Option::as_ref) {
                    return Ok(Incoming {
                        conn: c.id,
                        id: RequestId::from_tag(tag),
                        len,
                    });
                }
                // A ring without a connection cannot happen; drop it rather than serve it.
                self.fanin.remove(RingId(slot));
                return Err(RecvRequestError::Empty);
            }
            // A server inherited across fork serves nothing in the child.
            Err(FanInError::Empty | FanInError::Timeout | FanInError::Forked) => {
                return Err(RecvRequestError::Empty);
            }
            Err(FanInError::Closed(r) | FanInError::Disconnected(r)) => (r, None),
            Err(FanInError::Corrupt(r, c)) => (r, Some(c)),
            Err(FanInError::BufferTooSmall { ring, needed }) => (
                ring,
                Some(Corruption::Record {
                    position: 0,
                    word: needed as u32,
                }),
            ),
        };
        let id = match self.conns.get_mut(ring.0).and_then(Option::take) {
            Some(c) => c.id,
            None => ConnId {
                slot: ring.0,
                generation: 0,
            },
        };
        self.fanin.remove(ring);
        Err(RecvRequestError::Detached(id, err))
    }

    /// Sends a response on `conn` without blocking.
    ///
    /// # Errors
    ///
    /// See [`SendResponseError`]; on `Gone` for a ring that turned out closed or corrupt the
    /// connection is detached.
    pub fn try_send_response(
        &mut self,
        conn: ConnId,
        id: RequestId,
        status: Status,
        body: &[u8],
    ) -> Result<(), SendResponseError> {
        let c = self.conn_mut(conn).ok_or(SendResponseError::Gone)?;
        match c.responses.try_send(status.tag(id), body) {
            Ok(()) => Ok(()),
            Err(SendError::Full) => Err(SendResponseError::Full),
            Err(SendError::TooLarge { len, max }) => Err(SendResponseError::TooLarge { len, max }),
            Err(_) => {
                self.detach(conn);
                Err(SendResponseError::Gone)
            }
        }
    }

    /// Whether [`try_send_response`](Self::try_send_response) of `len` bytes on `conn` would
    /// return something other than `Full` now. A pure peek.
    pub fn can_send_response(&self, conn: ConnId, len: usize) -> bool {
        self.conn(conn).is_none_or(|c| c.responses.can_send(len))
    }

    /// Sleeps on the server's doorbell until a request is pending ([`has_request`]), one of
    /// `blocked` (connections and response lengths that did not fit) can be sent, `ready()`
    /// holds, or `timeout` passes. Whatever `ready` reads must be written before the
    /// [`notifier`](Self::notifier) rings. Returns whether it woke for a reason (not the
    /// timeout).
    ///
    /// New connections and hang-ups do not ring the doorbell: call
    /// [`accept_pending`](Self::accept_pending) and [`reap_hung_up`](Self::reap_hung_up)
    /// between waits of at most a slice.
    ///
    /// [`has_request`]: Self::has_request
    pub fn wait(
        &mut self,
        blocked: &[(ConnId, usize)],
        ready: impl Fn() -> bool,
        timeout: Option<Duration>,
    ) -> bool {
        let conns = &self.conns;
        let sendable = |&(id, len): &(ConnId, usize)| {
            conns
                .get(id.slot)
                .and_then(Option::as_ref)
                .filter(|c| c.id == id)
                .is_none_or(|c| c.responses.can_send(len))
        };
        self.fanin
            .wait_until(
                |f| f.ready() || ready() || blocked.iter().any(sendable),
                timeout,
            )
            .is_ok()
    }

    /// A handle that wakes this server's [`wait`](Self::wait) from any thread.
    pub fn notifier(&self) -> Notifier<Region> {
        self.fanin.notifier()
    }

    /// The server's sleep counters (its own waits, and wakes of clients blocked on full
    /// request rings).
    pub fn stats(&self) -> crate::doorbell::WaitStats {
        self.fanin.stats()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.listener.is_some() {
            self.remove_socket_file();
        }
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("path", &self.path)
            .field("clients", &self.clients())
            .finish_non_exhaustive()
    }
}

fn hello(verdict: u32, slot: u32, pid: u32, in_flight: u32) -> [u8; HELLO_LEN] {
    let mut m = [0u8; HELLO_LEN];
    m[0..4].copy_from_slice(&HELLO_MAGIC);
    m[4..8].copy_from_slice(&verdict.to_ne_bytes());
    m[8..12].copy_from_slice(&slot.to_ne_bytes());
    m[12..16].copy_from_slice(&pid.to_ne_bytes());
    m[16..20].copy_from_slice(&in_flight.to_ne_bytes());
    m
}

fn word(m: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&m[at..at + 4]);
    u32::from_ne_bytes(w)
}

/// Options of a [`Client`].
#[derive(Clone, Copy, Debug)]
pub struct ClientOptions {
    connect_timeout: Duration,
    wait: WaitOptions,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            wait: WaitOptions::default(),
        }
    }
}

impl ClientOptions {
    /// The defaults: 5 s to connect, default wait options.
    pub fn new() -> Self {
        Self::default()
    }

    /// How long [`Client::connect_with`] waits for the server's greeting.
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = t;
        self
    }

    /// How blocking calls wait (spin budget, sleep slice). Between slices the client checks
    /// for a dead server, so the slice bounds how late it notices.
    pub fn wait_options(mut self, opts: WaitOptions) -> Self {
        self.wait = opts;
        self
    }
}

/// The client end of a channel. See the [module docs](crate::channel).
///
/// Requests can be pipelined ([`send_request`](Self::send_request) several, then
/// [`recv_response`](Self::recv_response) each; they come back in order, matched by id) or
/// made one at a time ([`call`](Self::call)). Every blocking call returns
/// [`CallError::Disconnected`] within one wait slice (50 ms by default) of the server's
/// death.
pub struct Client {
    sock: UnixStream,
    /// The server's doorbell region (shared with every client of the server).
    bell: Region,
    requests: Producer<Region>,
    responses: Consumer<Region>,
    next_id: u32,
    /// Ids of requests whose `call` timed out: their responses are discarded on arrival.
    abandoned: HashSet<RequestId>,
    /// Responses a `call` received for earlier pipelined requests, for `recv_response`.
    early: VecDeque<Response>,
    slot: u32,
    server_pid: u32,
    max_in_flight: u32,
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
    pub fn connect_with(path: impl AsRef<Path>, opts: ClientOptions) -> Result<Self, ChannelError> {
        let sock = UnixStream::connect(path)?;
        sock.set_read_timeout(Some(opts.connect_timeout.max(Duration::from_millis(1))))?;
        let mut msg = [0u8; HELLO_LEN];
        let (n, mut fds) = match peer::recv_fds(&sock, &mut msg) {
            Ok(x) => x,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(ChannelError::Timeout),
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            return Err(ChannelError::Protocol(
                "connection closed before the greeting",
            ));
        }
        if n != HELLO_LEN || msg[0..4] != HELLO_MAGIC {
            return Err(ChannelError::Protocol("not a ringbell channel server"));
        }
        match word(&msg, 4) {
            HELLO_OK => {}
            HELLO_FULL => return Err(ChannelError::ServerFull),
            HELLO_UID => return Err(ChannelError::NotAdmitted),
            _ => return Err(ChannelError::Protocol("unknown verdict")),
        }
        if fds.len() != 3 {
            return Err(ChannelError::Protocol("expected three descriptors"));
        }
        let (Some(responses), Some(requests), Some(bell)) = (fds.pop(), fds.pop(), fds.pop())
        else {
            return Err(ChannelError::Protocol("expected three descriptors"));
        };
        let responses = Region::open_spsc(responses)?;
        let requests = Region::open_spsc(requests)?;
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
        sock.set_read_timeout(None)?;
        Ok(Self {
            sock,
            bell,
            requests: req,
            responses: resp,
            next_id: 0,
            abandoned: HashSet::new(),
            early: VecDeque::new(),
            slot: word(&msg, 8),
            server_pid: word(&msg, 12),
            max_in_flight: word(&msg, 16),
            slice: opts.wait.get_slice(),
        })
    }

    /// The largest request the server accepts, in bytes.
    pub fn max_request(&self) -> usize {
        self.requests.max_frame()
    }

    /// The largest response the server sends, in bytes.
    pub fn max_response(&self) -> usize {
        self.responses.max_frame()
    }

    /// The server's limit on this client's requests in flight (past it: [`Status::Busy`]).
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight as usize
    }

    /// The server's process id, as it announced it.
    pub fn server_pid(&self) -> u32 {
        self.server_pid
    }

    /// This connection's slot on the server.
    pub fn slot(&self) -> u32 {
        self.slot
    }

    /// Whether the server is gone (its end of the socket closed). One `poll(2)`.
    pub fn is_disconnected(&self) -> bool {
        peer::is_hung_up(&self.sock)
    }

    /// Sends a request and waits for its response, as long as it takes (but see
    /// [`CallError::Disconnected`]).
    ///
    /// # Errors
    ///
    /// [`CallError::TooLarge`] at once; [`CallError::Server`] for an error status;
    /// [`CallError::Disconnected`]; [`CallError::Corrupt`].
    pub fn call(&mut self, req: &[u8]) -> Result<Vec<u8>, CallError> {
        self.call_until(req, None)
    }

    /// Sends a request and waits at most `timeout` for its response.
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call), and [`CallError::Timeout`] (the response, if it comes, is
    /// discarded).
    pub fn call_timeout(&mut self, req: &[u8], timeout: Duration) -> Result<Vec<u8>, CallError> {
        self.call_until(req, Some(Instant::now().after(timeout)))
    }

    fn call_until(&mut self, req: &[u8], deadline: Option<Instant>) -> Result<Vec<u8>, CallError> {
        let id = self.send_until(req, deadline)?;
        loop {
            // From the ring only: responses kept aside in `early` are not this call's.
            match self.next_response(deadline, false) {
                Ok(r) if r.id == id => return r.into_result(),
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
    pub fn send_request(&mut self, req: &[u8]) -> Result<RequestId, CallError> {
        self.send_until(req, None)
    }

    /// As [`send_request`](Self::send_request), waiting at most `timeout` for room.
    ///
    /// # Errors
    ///
    /// As [`send_request`](Self::send_request), and [`CallError::Timeout`] (nothing sent).
    pub fn send_request_timeout(
        &mut self,
        req: &[u8],
        timeout: Duration,
    ) -> Result<RequestId, CallError> {
        self.send_until(req, Some(Instant::now().after(timeout)))
    }

    /// Sends a request if the request ring has room now.
    ///
    /// # Errors
    ///
    /// [`CallError::Full`], and as [`send_request`](Self::send_request).
    pub fn try_send_request(&mut self, req: &[u8]) -> Result<RequestId, CallError> {
        let id = RequestId(self.next_id & ID_MASK);
        match self.requests.try_send(id.0, req) {
            Ok(()) => {
                self.next_id = self.next_id.wrapping_add(1);
                Ok(id)
            }
            Err(e) => Err(self.send_error(e)),
        }
    }

    fn send_error(&self, e: SendError) -> CallError {
        match e {
            SendError::TooLarge { len, max } => CallError::TooLarge { len, max },
            SendError::Full => CallError::Full,
            SendError::Timeout => CallError::Timeout,
            SendError::Corrupt(_) => CallError::Corrupt,
            _ => CallError::Disconnected,
        }
    }

    fn send_until(
        &mut self,
        req: &[u8],
        deadline: Option<Instant>,
    ) -> Result<RequestId, CallError> {
        loop {
            match self.try_send_request(req) {
                Err(CallError::Full) => {}
                done => return done,
            }
            // The server may have stopped taking our requests because we do not read our
            // responses (its stash for us is full): set arrived ones aside, so that it can go on.
            while let Ok(r) = self.try_recv_from_ring() {
                self.early.push_back(r);
            }
            let t = self.next_slice(deadline)?;
            let id = RequestId(self.next_id & ID_MASK);
            match self.requests.send_timeout(id.0, req, t) {
                Ok(()) => {
                    self.next_id = self.next_id.wrapping_add(1);
                    return Ok(id);
                }
                Err(SendError::Timeout) => {}
                Err(e) => return Err(self.send_error(e)),
            }
        }
    }

    /// The next wait: at most one slice, at most until `deadline`; first checks the deadline
    /// and the socket.
    fn next_slice(&self, deadline: Option<Instant>) -> Result<Duration, CallError> {
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return Err(CallError::Timeout);
        }
        if peer::is_hung_up(&self.sock) {
            return Err(CallError::Disconnected);
        }
        Ok(match deadline {
            Some(d) => d.since(now).min(self.slice),
            None => self.slice,
        })
    }

    /// Waits for the next response, as long as it takes (but see
    /// [`CallError::Disconnected`]).
    ///
    /// # Errors
    ///
    /// [`CallError::Disconnected`], [`CallError::Corrupt`]. An error *status* is not an
    /// error here: it is in the [`Response`].
    pub fn recv_response(&mut self) -> Result<Response, CallError> {
        self.next_response(None, true)
    }

    /// Waits at most `timeout` for the next response.
    ///
    /// # Errors
    ///
    /// As [`recv_response`](Self::recv_response), and [`CallError::Timeout`].
    pub fn recv_response_timeout(&mut self, timeout: Duration) -> Result<Response, CallError> {
        self.next_response(Some(Instant::now().after(timeout)), true)
    }

    /// Takes the next response if one is waiting.
    ///
    /// # Errors
    ///
    /// [`CallError::Empty`], and as [`recv_response`](Self::recv_response).
    pub fn try_recv_response(&mut self) -> Result<Response, CallError> {
        match self.early.pop_front() {
            Some(r) => Ok(r),
            None => self.try_recv_from_ring(),
        }
    }

    /// The next response in the ring, skipping abandoned ones.
    fn try_recv_from_ring(&mut self) -> Result<Response, CallError> {
        loop {
            match self.responses.try_recv() {
                Ok(f) => {
                    let r = parse(f.tag, f.data)?;
                    if self.abandoned.remove(&r.id) {
                        continue;
                    }
                    return Ok(r);
                }
                Err(RecvError::Empty) => return Err(CallError::Empty),
                Err(RecvError::Corrupt(_) | RecvError::BufferTooSmall { .. }) => {
                    return Err(CallError::Corrupt);
                }
                Err(_) => return Err(CallError::Disconnected),
            }
        }
    }

    fn next_response(
        &mut self,
        deadline: Option<Instant>,
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
            let t = match self.next_slice(deadline) {
                Ok(t) => t,
                // The server may have sent a response just before it died: deliver it first.
                Err(CallError::Disconnected) => {
                    let last = match early {
                        true => self.try_recv_response(),
                        false => self.try_recv_from_ring(),
                    };
                    return last.map_err(|e| match e {
                        CallError::Empty => CallError::Disconnected,
                        e => e,
                    });
                }
                Err(e) => return Err(e),
            };
            match self
                .responses
                .wait_until(|c| c.has_data() || c.is_producer_closed(), Some(t))
            {
                Ok(()) | Err(RecvError::Timeout) => {}
                Err(_) => return Err(CallError::Disconnected),
            }
        }
    }

    /// Test hook: the shared regions this client maps — its request ring, its response ring
    /// and the server's doorbell — for tests and fuzzers that play a hostile client.
    #[doc(hidden)]
    pub fn regions_for_tests(&self) -> [&Region; 3] {
        [
            self.requests.shared_memory(),
            self.responses.shared_memory(),
            &self.bell,
        ]
    }

    /// Test hook: zeroes the header of the server's doorbell region, as a hostile client
    /// could (the region is writable by every client).
    #[doc(hidden)]
    pub fn scribble_on_bell_header_for_tests(&self) {
        use crate::mem::SharedMemory;
        let view = self.bell.view();
        for off in (0..crate::layout::HEADER_SIZE).step_by(8) {
            view.store_u64(off, 0, core::sync::atomic::Ordering::Relaxed);
        }
    }

    /// This client's wait counters (request side and response side together).
    pub fn stats(&self) -> crate::doorbell::WaitStats {
        let (a, b) = (self.requests.stats(), self.responses.stats());
        let mut s = a;
        s.wakes += b.wakes;
        s.sleeps += b.sleeps;
        s.futex_waits += b.futex_waits;
        s.spins += b.spins;
        s
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("slot", &self.slot)
            .field("server_pid", &self.server_pid)
            .field("next_id", &self.next_id)
            .finish_non_exhaustive()
    }
}

static_assertions::assert_impl_all!(Client: Send);
static_assertions::assert_impl_all!(Server: Send);
