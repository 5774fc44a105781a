//! The server end of a channel: the listening socket, the fan-in of request rings, the
//! response rings, and its [`Transport`] for the reactor.

use std::fmt;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;
use std::vec::Vec;

use super::config::ServerConfig;
use super::error::{ChannelError, RecvRequestError, SendResponseError};
use super::handshake::{self, Refusal, Welcome};
use super::listen::{Listening, Peer};
use super::message::{ClientInfo, ConnId, Incoming, RequestId, Status};
use super::socket::{self, AcceptPace, PeerCredentials, Stale};
use super::transport::Transport;
use crate::doorbell::{
    FencedBell, Fences, Line, Notifier, Readiness, ReadinessSignal, WaitStats, bell_of,
};
use crate::error::SendError;
use crate::fanin::{FanIn, FanInError, RingId};
use crate::fork;
use crate::region::{Bell, Region, RegionError, Spsc};
use crate::role::OwnerId;
use crate::spsc::{self, Producer};
use crate::wire::REQUEST_CONTROL;

/// Connections accepted per call of [`Server::accept_pending`]: a connect storm must leave
/// the serve loop time for the clients already connected.
pub(crate) const ACCEPTS_PER_CALL: usize = 8;

/// Descriptors one connection costs the server: its socket, its two ring regions, its end of
/// the client's readiness socket, its end of the client's pair in the server's readiness
/// set, and the client's pidfd.
const FDS_PER_CLIENT: usize = 6;

/// Whether a wait for room for a blocked answer (`conn`, `len`) is over: the answer fits
/// now, or can never be sent (too large, the ring closed or corrupt, the connection gone) and
/// the reactor must see to it.
fn sendable(conns: &[Option<Conn>], &(id, len): &(ConnId, usize)) -> bool {
    conns
        .get(id.slot)
        .and_then(Option::as_ref)
        .filter(|c| c.id == id)
        .is_none_or(|c| len > c.responses.max_frame() || c.responses.room_or_report(len)())
}

/// The readiness set's key for this process's own ringer (clients' keys are their slots).
const OWN_RINGER: u64 = u64::MAX;

/// Descriptors left to the rest of the process when budgeting connections.
const FD_RESERVE: usize = 16;

/// One connected client.
struct Conn {
    id: ConnId,
    peer: Peer,
    responses: Producer<Region<Spsc>, Region<Bell>>,
}

/// The server end of a channel: the rendezvous socket, the fan-in of request rings and the
/// response rings. See the [module docs](crate::channel). Most servers run it through a
/// [`Reactor`](crate::reactor::Reactor); its own API is the transport underneath.
///
/// Dropping it removes the socket file and closes every ring: clients see
/// [`CallError::Disconnected`](super::CallError::Disconnected).
///
/// # Examples
///
/// ```
/// use ringbell::channel::{Server, ServerConfig};
///
/// let dir = std::env::temp_dir().join(format!("ringbell-doc-server-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let server = Server::bind(dir.join("s.sock"), ServerConfig::new())?;
/// assert_eq!(server.clients(), 0);
/// # drop(server);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Server {
    /// The socket and its file.
    listening: Listening,
    bell: Region<Bell>,
    /// The doorbell in `bell`, located once when the region was made: clients share the
    /// region and could rewrite its header later.
    door: Line,
    fanin: FanIn<Region<Spsc>, Region<Bell>>,
    conns: Vec<Option<Conn>>,
    cfg: ServerConfig,
    request_cfg: spsc::Config,
    response_cfg: spsc::Config,
    owner: OwnerId,
    generation: u64,
    uid: u32,
    /// The fork generation when bound: a copy inherited by a forked child neither serves nor
    /// removes the socket file.
    fork_gen: u32,
    /// A pidfd of this process, handed to every client.
    pidfd: Option<OwnedFd>,
    /// The server's readiness, for async waits on its doorbell (a reactor that also waits on
    /// sockets, [`DualServer`](super::DualServer); a reactor that is a task,
    /// `Reactor::run_async`): a set of socket pairs, one per client (keyed by slot; the
    /// client gets the ringers' end in its greeting) and one for this process's own ringer.
    /// Clients ring only when the server announced such a wait; a client can close or flood
    /// only its own pair, and one that closes it is detached.
    readiness: Readiness,
    /// This process's own ringer of `readiness` (the reactor's waker: a worker's finished
    /// answer wakes an async wait too).
    own_signal: ReadinessSignal,
    /// Descriptors open in this process when it bound.
    base_fds: usize,
    /// Accepting, paused while `accept` runs out of descriptors.
    pace: AcceptPace,
}

impl Server {
    /// Listens at `path` (created `0600`); refuses a stale socket file left by a crashed
    /// server ([`BindError::Stale`](super::BindError::Stale)).
    ///
    /// # Errors
    ///
    /// [`ChannelError::Bind`], [`ChannelError::Config`] for sizes that make no ring,
    /// [`ChannelError::Region`] if the doorbell region cannot be created.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{ChannelError, Server, ServerConfig};
    ///
    /// let dir = std::env::temp_dir().join(format!("ringbell-doc-bind2-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let bad = Server::bind(dir.join("s.sock"), ServerConfig::new().request_ring(1000));
    /// assert!(matches!(bad, Err(ChannelError::Config(_)))); // not a power of two
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn bind(path: impl AsRef<Path>, cfg: ServerConfig) -> Result<Self, ChannelError> {
        Self::bind_with(path.as_ref(), cfg, Stale::Refuse)
    }

    /// As [`bind`](Self::bind), but takes over a stale socket file — only if no server
    /// listens on it.
    ///
    /// # Errors
    ///
    /// As [`bind`](Self::bind); [`BindError::InUse`](super::BindError::InUse) if a server is
    /// alive there.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{Server, ServerConfig};
    ///
    /// let dir = std::env::temp_dir().join(format!("ringbell-doc-replace-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let path = dir.join("s.sock");
    /// // A socket file nobody listens on, as a crashed server leaves behind.
    /// drop(std::os::unix::net::UnixListener::bind(&path)?);
    /// let server = Server::bind_replacing(&path, ServerConfig::new())?;
    /// # drop(server);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn bind_replacing(path: impl AsRef<Path>, cfg: ServerConfig) -> Result<Self, ChannelError> {
        Self::bind_with(path.as_ref(), cfg, Stale::Replace)
    }

    fn bind_with(path: &Path, cfg: ServerConfig, stale: Stale) -> Result<Self, ChannelError> {
        let fork_gen = fork::generation();
        let fences = cfg.fences.unwrap_or_else(Fences::default_for_new_regions);
        let mut request_cfg = spsc::Config::new(cfg.request_ring)
            .shared_bell()
            .fences(fences);
        if let Some(m) = cfg.max_request {
            request_cfg = request_cfg.frame_cap(m);
        }
        let mut response_cfg = spsc::Config::new(cfg.response_ring)
            .shared_space_bell()
            .fences(fences);
        if let Some(m) = cfg.max_response {
            response_cfg = response_cfg.frame_cap(m);
        }
        request_cfg.geometry().map_err(ChannelError::Config)?;
        response_cfg.geometry().map_err(ChannelError::Config)?;
        // The shared doorbell stays symmetric whatever the rings' mode: the reactor sets its
        // mark for every inline run, and an asymmetric mark costs a `membarrier` each time.
        let bell = Region::create(&FencedBell(Fences::Symmetric))?;
        let door = bell_of(&bell)?;
        let mut fanin = FanIn::with_line(door, bell.clone(), cfg.max_clients);
        fanin.set_wait_options(cfg.wait);
        let readiness = Readiness::set()?;
        let own_signal = ReadinessSignal::from_fd(readiness.add_member(OWN_RINGER)?);
        let listening = Listening::bind(path, stale)?;
        Ok(Self {
            listening,
            bell,
            door,
            readiness,
            own_signal,
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
            fork_gen,
            pidfd: handshake::own_pidfd(),
            base_fds: open_fds(),
            pace: AcceptPace::new(),
        })
    }

    /// Whether this is a copy inherited by a forked child.
    fn forked(&self) -> bool {
        fork::forked(self.fork_gen)
    }

    /// The socket path.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{Server, ServerConfig};
    ///
    /// let dir = std::env::temp_dir().join(format!("ringbell-doc-path-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let server = Server::bind(dir.join("s.sock"), ServerConfig::new())?;
    /// assert_eq!(server.path(), dir.join("s.sock"));
    /// # drop(server);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn path(&self) -> &Path {
        self.listening.path()
    }

    /// The largest request a client can send, in bytes: the size a receive buffer needs.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{Server, ServerConfig};
    ///
    /// let dir = std::env::temp_dir().join(format!("ringbell-doc-maxreq-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let server = Server::bind(dir.join("s.sock"), ServerConfig::new().max_request(100))?;
    /// assert_eq!(server.max_request(), 100);
    /// # drop(server);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn max_request(&self) -> usize {
        self.request_cfg.geometry().map_or(0, |g| g.frame_cap)
    }

    /// The largest response the server can send, in bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{Server, ServerConfig};
    ///
    /// let dir = std::env::temp_dir().join(format!("ringbell-doc-maxres-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let server = Server::bind(dir.join("s.sock"), ServerConfig::new())?;
    /// assert_eq!(server.max_response(), (64 << 10) / 2 - 8);
    /// # drop(server);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn max_response(&self) -> usize {
        self.response_cfg.geometry().map_or(0, |g| g.frame_cap)
    }

    /// Clients connected now.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{Client, Server, ServerConfig};
    ///
    /// let dir = std::env::temp_dir().join(format!("ringbell-doc-clients-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let mut server = Server::bind(dir.join("s.sock"), ServerConfig::new())?;
    /// let path = server.path().to_path_buf();
    /// let client = std::thread::spawn(move || Client::connect(path).map(drop));
    /// while server.clients() == 0 {
    ///     server.accept_pending()?;
    /// }
    /// client.join().unwrap()?;
    /// # drop(server);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn clients(&self) -> usize {
        self.conns.iter().flatten().count()
    }

    /// Who is on connection `conn`, if it is still attached.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{Client, Server, ServerConfig};
    ///
    /// let dir = std::env::temp_dir().join(format!("ringbell-doc-client-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let mut server = Server::bind(dir.join("s.sock"), ServerConfig::new())?;
    /// let path = server.path().to_path_buf();
    /// let client = std::thread::spawn(move || Client::connect(path).map(drop));
    /// while server.accept_pending()? == 0 {}
    /// let conn = server.connections().next().unwrap();
    /// assert_eq!(server.client(conn).unwrap().pid, std::process::id());
    /// client.join().unwrap()?;
    /// # drop(server);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn client(&self, conn: ConnId) -> Option<ClientInfo> {
        self.conn(conn).map(|c| c.peer.info(c.id))
    }

    /// The connections attached now.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{Server, ServerConfig};
    ///
    /// let dir = std::env::temp_dir().join(format!("ringbell-doc-conns-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let server = Server::bind(dir.join("s.sock"), ServerConfig::new())?;
    /// assert_eq!(server.connections().count(), 0);
    /// # drop(server);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
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

    /// Accepts connections waiting on the socket, without blocking — at most eight per call,
    /// so that a storm of connecting clients cannot keep a serve loop from the clients it
    /// already has — and returns how many were set up. A connection that is refused (limits,
    /// user, descriptors) or whose setup fails is told so, if possible, and closed; its
    /// client sees the error.
    ///
    /// When `accept` itself runs out of descriptors (`EMFILE`, `ENFILE`) the error is
    /// returned and accepting pauses — 10 ms, doubling to a second while it goes on — rather
    /// than spinning on a backlog it cannot take; the waiting clients wait (see
    /// [`ClientOptions::connect_timeout`](super::ClientOptions::connect_timeout)).
    ///
    /// # Errors
    ///
    /// [`ChannelError::Forked`] in a child that inherited the server; [`ChannelError::Io`]
    /// for an error of `accept(2)` other than "nothing waiting" or an interruption.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{Server, ServerConfig};
    ///
    /// let dir = std::env::temp_dir().join(format!("ringbell-doc-accept-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let mut server = Server::bind(dir.join("s.sock"), ServerConfig::new())?;
    /// assert_eq!(server.accept_pending()?, 0); // nobody is connecting
    /// # drop(server);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn accept_pending(&mut self) -> Result<usize, ChannelError> {
        if self.forked() {
            return Err(ChannelError::Forked);
        }
        let mut n = 0;
        for _ in 0..ACCEPTS_PER_CALL {
            let Some(listener) = self.listening.listener() else {
                break;
            };
            match self.pace.next(listener)? {
                Some(sock) => n += usize::from(self.setup(sock).is_ok()),
                None => break,
            }
        }
        Ok(n)
    }

    fn setup(&mut self, sock: UnixStream) -> Result<(), ChannelError> {
        let cred = socket::peer_credentials(&sock)?;
        if let Some(why) = self.refusal(&cred) {
            handshake::refuse(&sock, why);
            return Err(match why {
                Refusal::User => ChannelError::NotAdmitted,
                Refusal::Full => ChannelError::ServerFull,
                Refusal::Limit => ChannelError::LimitReached,
                Refusal::Resources => ChannelError::ServerOutOfResources,
            });
        }
        // Every fallible step before the greeting; after it, only the ring's removal on a
        // failed send. Running out of descriptors or memory here is told as such.
        let made = Region::create(&self.request_cfg)
            .and_then(|req| Ok((req, Region::create(&self.response_cfg)?)))
            .and_then(|(req, resp)| {
                let pair = Readiness::socket_pair().map_err(|source| RegionError::Io {
                    op: "socketpair",
                    source,
                })?;
                Ok((req, resp, pair))
            });
        let (requests, responses_region, (readiness, clients_readiness)) = match made {
            Ok(r) => r,
            Err(e) => {
                if region_out_of_resources(&e) {
                    handshake::refuse(&sock, Refusal::Resources);
                }
                return Err(e.into());
            }
        };
        let mut responses = Producer::attach_with(
            responses_region.clone(),
            None,
            Some((self.door, self.bell.clone())),
            self.owner,
        )?;
        responses.set_wait_options(self.cfg.wait);
        // The client's async waits (its response ring's data, its request ring's room) are
        // answered through its readiness socket; its blocking waits through the futex.
        responses.set_peer_readiness(Some(readiness.clone()));
        let RingId(slot) = self.fanin.add(requests.clone(), self.owner)?;
        self.fanin.set_peer_readiness(RingId(slot), Some(readiness));
        // The ringers' end of this client's pair in the server's readiness set.
        let servers_readiness = match self.readiness.add_member(slot as u64) {
            Ok(fd) => fd,
            Err(e) => {
                self.fanin.remove(RingId(slot));
                if socket::errno_in(
                    &e,
                    &[
                        rustix::io::Errno::MFILE,
                        rustix::io::Errno::NFILE,
                        rustix::io::Errno::NOMEM,
                    ],
                ) {
                    handshake::refuse(&sock, Refusal::Resources);
                }
                return Err(e.into());
            }
        };
        // A client blocked on a full request ring collects its responses when woken for
        // space: wake it for every request taken, not once per step of the ring.
        self.fanin.ring_every_release(RingId(slot));
        self.generation += 1;
        let id = ConnId {
            slot,
            generation: self.generation,
        };
        let welcome = Welcome {
            slot: slot as u32,
            server_pid: std::process::id(),
            max_in_flight: self.cfg.max_in_flight as u32,
            max_request: self.max_request() as u32,
            max_response: self.max_response() as u32,
        };
        let fds = [self.bell.fd(), requests.fd(), responses_region.fd()];
        let pidfd = self.pidfd.as_ref().map(AsFd::as_fd);
        if let Err(e) = handshake::welcome(
            &sock,
            welcome,
            fds,
            Some(clients_readiness.as_fd()),
            Some(servers_readiness.as_fd()),
            pidfd,
        ) {
            self.remove_ring(RingId(slot));
            return Err(e.into());
        }
        if self.conns.len() <= slot {
            self.conns.resize_with(slot + 1, || None);
        }
        // The client sends its hello as soon as it has connected: it is usually here already.
        self.conns[slot] = Some(Conn {
            id,
            peer: Peer::new(sock, cred),
            responses,
        });
        Ok(())
    }

    /// Why a client with these credentials is turned away, if it is.
    fn refusal(&self, cred: &PeerCredentials) -> Option<Refusal> {
        let held = self.conns.iter().flatten().map(|c| c.peer.cred);
        refusal(
            &self.cfg,
            self.uid,
            cred,
            held,
            self.fanin.ring_count(),
            || fd_budget_allows_one_more(self.base_fds, FDS_PER_CLIENT, self.clients()),
        )
    }

    /// Detaches every connection whose client hung up (closed its socket) or whose process
    /// died (its pidfd says so, even while a process it forked keeps the socket open) and
    /// returns them. A `poll(2)` or two per connection: call it between sleeps, not per
    /// request. An interrupted or failed poll never counts as a hang-up.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{Server, ServerConfig};
    ///
    /// let dir = std::env::temp_dir().join(format!("ringbell-doc-reap-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let mut server = Server::bind(dir.join("s.sock"), ServerConfig::new())?;
    /// assert!(server.reap_hung_up().is_empty());
    /// # drop(server);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reap_hung_up(&mut self) -> Vec<ConnId> {
        if self.forked() {
            return Vec::new();
        }
        // A client whose pair in the readiness set read end-of-file closed or shut down its
        // ringers' end: it is gone, or it is breaking the protocol; either way, detached.
        let ended = self.readiness.take_ended();
        let dead: Vec<ConnId> = self
            .conns
            .iter_mut()
            .flatten()
            .filter_map(|c| {
                (ended.contains(&(c.id.slot as u64)) || c.peer.is_gone()).then_some(c.id)
            })
            .collect();
        for &id in &dead {
            self.detach(id);
        }
        dead
    }

    /// Detaches a connection: closes its rings and socket; the client sees
    /// [`CallError::Disconnected`](super::CallError::Disconnected). Returns false if it was
    /// not attached.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{ConnId, Server, ServerConfig};
    ///
    /// let dir = std::env::temp_dir().join(format!("ringbell-doc-detach-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let mut server = Server::bind(dir.join("s.sock"), ServerConfig::new())?;
    /// assert!(!server.detach(ConnId { slot: 0, generation: 1 })); // no such connection
    /// # drop(server);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn detach(&mut self, conn: ConnId) -> bool {
        if self.forked() || self.conn(conn).is_none() {
            return false;
        }
        self.conns[conn.slot] = None;
        self.remove_ring(RingId(conn.slot));
        true
    }

    /// Stops serving: closes the listening socket (new clients are refused; the socket file
    /// is removed) and detaches every connection (their clients see
    /// [`CallError::Disconnected`](super::CallError::Disconnected)). The reactor calls it when
    /// it stops.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{Server, ServerConfig};
    ///
    /// let dir = std::env::temp_dir().join(format!("ringbell-doc-shut-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let mut server = Server::bind(dir.join("s.sock"), ServerConfig::new())?;
    /// server.shutdown();
    /// assert!(!dir.join("s.sock").exists());
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn shutdown(&mut self) {
        // A copy inherited across fork closes its listening socket but leaves the parent's
        // file (see `Listening`) and connections alone.
        self.listening.close();
        if self.forked() {
            return;
        }
        let all: Vec<ConnId> = self.connections().collect();
        for id in all {
            self.detach(id);
        }
    }

    /// Stops (`true`) or resumes reading a connection's requests; see
    /// [`FanIn::set_paused`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{ConnId, Server, ServerConfig};
    ///
    /// let dir = std::env::temp_dir().join(format!("ringbell-doc-pause-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let mut server = Server::bind(dir.join("s.sock"), ServerConfig::new())?;
    /// server.pause(ConnId { slot: 0, generation: 1 }, true); // no such connection: nothing
    /// # drop(server);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pause(&mut self, conn: ConnId, paused: bool) {
        if self.conn(conn).is_some() {
            self.fanin.set_paused(RingId(conn.slot), paused);
        }
    }

    /// Whether any connection that is not paused has a request (or a close to report). A pure
    /// peek.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{Server, ServerConfig};
    ///
    /// let dir = std::env::temp_dir().join(format!("ringbell-doc-hasreq-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let server = Server::bind(dir.join("s.sock"), ServerConfig::new())?;
    /// assert!(!server.has_request());
    /// # drop(server);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn has_request(&self) -> bool {
        self.fanin.ready()
    }

    /// Takes the next request, round robin over the clients, into `buf` (which should hold
    /// [`max_request`](Self::max_request) bytes).
    ///
    /// # Errors
    ///
    /// [`RecvRequestError::Empty`]; [`RecvRequestError::Detached`] once for a connection
    /// that closed or was found corrupt; [`RecvRequestError::BufferTooSmall`] if `buf` is
    /// shorter than the next request (which stays; the connection stays attached).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{RecvRequestError, Server, ServerConfig};
    ///
    /// let dir = std::env::temp_dir().join(format!("ringbell-doc-recvreq-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let mut server = Server::bind(dir.join("s.sock"), ServerConfig::new())?;
    /// let mut buf = vec![0u8; server.max_request()];
    /// assert_eq!(server.try_recv_request(&mut buf), Err(RecvRequestError::Empty));
    /// # drop(server);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_recv_request(&mut self, buf: &mut [u8]) -> Result<Incoming, RecvRequestError> {
        let (ring, err) = match self.fanin.try_recv_into(buf) {
            Ok((RingId(slot), tag, len)) => {
                if let Some(c) = self.conns.get(slot).and_then(Option::as_ref) {
                    return Ok(Incoming {
                        conn: c.id,
                        id: RequestId::from_tag(tag),
                        len,
                        control: tag & REQUEST_CONTROL != 0,
                    });
                }
                // A ring without a connection cannot happen; drop it rather than serve it.
                self.remove_ring(RingId(slot));
                return Err(RecvRequestError::Empty);
            }
            // A server inherited across fork serves nothing in the child.
            Err(FanInError::Empty | FanInError::Timeout | FanInError::Forked) => {
                return Err(RecvRequestError::Empty);
            }
            Err(FanInError::BufferTooSmall { ring, needed }) => {
                return match self.conns.get(ring.0).and_then(Option::as_ref) {
                    Some(c) => Err(RecvRequestError::BufferTooSmall { conn: c.id, needed }),
                    None => {
                        self.remove_ring(ring);
                        Err(RecvRequestError::Empty)
                    }
                };
            }
            Err(FanInError::Closed(r) | FanInError::Disconnected(r)) => (r, None),
            Err(FanInError::Corrupt(r, c)) => (r, Some(c)),
            Err(FanInError::NoRings) => return Err(RecvRequestError::Empty),
        };
        let id = match self.conns.get_mut(ring.0).and_then(Option::take) {
            Some(c) => c.id,
            None => ConnId {
                slot: ring.0,
                generation: 0,
            },
        };
        self.remove_ring(ring);
        Err(RecvRequestError::Detached(id, err))
    }

    /// Sends a response on `conn` without blocking.
    ///
    /// # Errors
    ///
    /// See [`SendResponseError`]; on `Gone` for a ring that turned out closed or corrupt the
    /// connection is detached.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{ConnId, RequestId, SendResponseError, Server, ServerConfig, Status};
    ///
    /// let dir = std::env::temp_dir().join(format!("ringbell-doc-sendres-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let mut server = Server::bind(dir.join("s.sock"), ServerConfig::new())?;
    /// let nobody = ConnId { slot: 0, generation: 1 };
    /// let r = server.try_send_response(nobody, RequestId(0), Status::Ok, b"x");
    /// assert_eq!(r, Err(SendResponseError::Gone));
    /// # drop(server);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_send_response(
        &mut self,
        conn: ConnId,
        id: RequestId,
        status: Status,
        body: &[u8],
    ) -> Result<(), SendResponseError> {
        if self.forked() {
            return Err(SendResponseError::Forked);
        }
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

    /// Whether a response of `len` bytes on `conn` would be accepted now (it fits the frame
    /// cap and the ring's free space). A pure peek; `false` may go stale as the client reads.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{ConnId, Server, ServerConfig};
    ///
    /// let dir = std::env::temp_dir().join(format!("ringbell-doc-cansend-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let server = Server::bind(dir.join("s.sock"), ServerConfig::new())?;
    /// assert!(!server.can_send_response(ConnId { slot: 0, generation: 1 }, 8)); // no such connection
    /// # drop(server);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn can_send_response(&self, conn: ConnId, len: usize) -> bool {
        self.conn(conn).is_some_and(|c| c.responses.can_send(len))
    }

    /// Sleeps on the server's doorbell until a request is pending ([`has_request`]), one of
    /// `blocked` (connections and response lengths that did not fit) can be sent (or its
    /// connection is gone), `ready()` holds, or `timeout` passes. Whatever `ready` reads must
    /// be written before the [`notifier`](Self::notifier) rings. Returns whether it woke for a
    /// reason (not the timeout).
    ///
    /// New connections and hang-ups do not ring the doorbell: call
    /// [`accept_pending`](Self::accept_pending) and [`reap_hung_up`](Self::reap_hung_up)
    /// between waits of at most a slice.
    ///
    /// [`has_request`]: Self::has_request
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{Server, ServerConfig};
    /// use std::time::Duration;
    ///
    /// let dir = std::env::temp_dir().join(format!("ringbell-doc-wait-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let mut server = Server::bind(dir.join("s.sock"), ServerConfig::new())?;
    /// assert!(!server.wait(&[], || false, Some(Duration::from_millis(2)))); // timed out
    /// assert!(server.wait(&[], || true, None)); // `ready` held
    /// # drop(server);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait(
        &mut self,
        blocked: &[(ConnId, usize)],
        ready: impl Fn() -> bool,
        timeout: Option<Duration>,
    ) -> bool {
        let how = timeout.map_or(Wait::Forever, Wait::Exactly);
        self.wait_inner(blocked, ready, how)
    }

    fn wait_inner(
        &mut self,
        blocked: &[(ConnId, usize)],
        ready: impl Fn() -> bool,
        how: Wait,
    ) -> bool {
        let conns = &self.conns;
        let ready =
            |f: &FanIn<_, _>| f.ready() || ready() || blocked.iter().any(|b| sendable(conns, b));
        match how {
            Wait::Forever => {
                self.fanin.wait_until(ready);
                true
            }
            Wait::Exactly(t) => self.fanin.wait_until_timeout(ready, t).is_ok(),
            Wait::Within(t) => self.fanin.wait_until_within(ready, t),
        }
    }

    /// Removes a connection's request ring from the fan-in and its pair from the readiness
    /// set.
    fn remove_ring(&mut self, ring: RingId) {
        self.fanin.remove(ring);
        self.readiness.remove_member(ring.0 as u64);
    }

    /// The async waiter's step on the server's doorbell, for a reactor that waits on
    /// descriptors ([`DualServer`](super::DualServer)): drains the server's readiness
    /// socket, announces, re-checks what [`wait`](Self::wait) would wake for. `Wait`: the
    /// readiness socket ([`readiness`](Self::readiness)) becomes readable at the next ring.
    pub(crate) fn announce_async(
        &self,
        blocked: &[(ConnId, usize)],
        ready: &dyn Fn() -> bool,
    ) -> crate::doorbell::Announced {
        if self.forked() {
            // The parent's readiness set: not ours to drain. Look again after a slice.
            return crate::doorbell::Announced::RetryAfter(self.cfg.wait.slice);
        }
        let conns = &self.conns;
        self.fanin.poll_ready_with(&self.readiness, |f| {
            f.ready() || ready() || blocked.iter().any(|b| sendable(conns, b))
        })
    }

    /// The server's readiness set (readable when a client or its own waker answered an async
    /// wait).
    pub(crate) fn readiness(&self) -> &Readiness {
        &self.readiness
    }

    /// A handle that wakes this server's [`wait`](Self::wait) from any thread.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{Server, ServerConfig};
    ///
    /// let dir = std::env::temp_dir().join(format!("ringbell-doc-notify-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let server = Server::bind(dir.join("s.sock"), ServerConfig::new())?;
    /// let notifier = server.notifier();
    /// std::thread::spawn(move || notifier.notify()).join().unwrap();
    /// # drop(server);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn notifier(&self) -> Notifier<Region<Bell>> {
        // Wakes a blocked wait through the futex and an announced async one (a reactor that
        // is a task, a dual server's poll) through the readiness set.
        self.fanin
            .notifier()
            .with_readiness(self.own_signal.clone())
    }

    /// The server's sleep counters (its own waits, and wakes of clients blocked on full
    /// request rings).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{Server, ServerConfig};
    ///
    /// let dir = std::env::temp_dir().join(format!("ringbell-doc-sstats-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let server = Server::bind(dir.join("s.sock"), ServerConfig::new())?;
    /// assert_eq!(server.stats().wakes, 0);
    /// # drop(server);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stats(&self) -> WaitStats {
        self.fanin.stats()
    }
}

/// Why a client with credentials `cred` is turned away, if it is: a user not admitted, the
/// server full, the user's or process's own limit reached (`held`: the credentials of the
/// connections attached), or no descriptors left (`room` says whether there are).
pub(super) fn refusal(
    cfg: &ServerConfig,
    server_uid: u32,
    cred: &PeerCredentials,
    held: impl Iterator<Item = PeerCredentials> + Clone,
    clients: usize,
    room: impl FnOnce() -> bool,
) -> Option<Refusal> {
    let admitted = match &cfg.allowed_uids {
        None => true,
        Some(v) => cred.uid == server_uid || v.contains(&cred.uid),
    };
    if !admitted {
        return Some(Refusal::User);
    }
    if clients >= cfg.max_clients {
        return Some(Refusal::Full);
    }
    let holding =
        |same: &dyn Fn(&PeerCredentials) -> bool| held.clone().filter(|c| same(c)).count();
    if let Some(n) = cfg.max_per_uid {
        if holding(&|c| c.uid == cred.uid) >= n {
            return Some(Refusal::Limit);
        }
    }
    if let Some(n) = cfg.max_per_process {
        if cred.pid != 0 && holding(&|c| c.pid == cred.pid) >= n {
            return Some(Refusal::Limit);
        }
    }
    if !room() {
        return Some(Refusal::Resources);
    }
    None
}

/// Whether the descriptor limit leaves room for one more connection: the descriptors open
/// at bind (`base`), a reserve for the rest of the process, and `per_client` for each of
/// `clients` + 1, against the soft `RLIMIT_NOFILE` now.
pub(super) fn fd_budget_allows_one_more(base: usize, per_client: usize, clients: usize) -> bool {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
    base + FD_RESERVE + per_client * (clients + 1) <= limit
}

/// Whether making a region failed for want of descriptors or memory.
fn region_out_of_resources(e: &crate::region::RegionError) -> bool {
    use rustix::io::Errno;
    match e {
        crate::region::RegionError::Io { source, .. } => socket::errno_in(
            source,
            &[Errno::MFILE, Errno::NFILE, Errno::NOMEM, Errno::NOSPC],
        ),
        _ => false,
    }
}

/// How many descriptors this process has open (`/proc/self/fd`; 64 if it cannot be read).
pub(super) fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(64, Iterator::count)
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("path", &self.listening.path())
            .field("clients", &self.clients())
            .finish_non_exhaustive()
    }
}

impl Transport for Server {
    fn max_request(&self) -> usize {
        self.max_request()
    }
    fn max_response(&self) -> usize {
        self.max_response()
    }
    fn limits(&self) -> (usize, usize) {
        (self.cfg.max_in_flight, self.cfg.stash_bytes)
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
        let slice = self.cfg.wait.slice;
        self.wait_inner(blocked, ready, Wait::Within(slice))
    }
    fn pause(&mut self, conn: ConnId, paused: bool) {
        self.pause(conn, paused);
    }
    fn housekeeping(&mut self, accept: bool) -> Vec<ConnId> {
        // Reap first: a client reconnecting right after its old connection died finds the
        // old one's slot free.
        let gone = self.reap_hung_up();
        if accept {
            // A failing accept (e.g. EMFILE) must not stop the server: existing clients go on.
            let _ = self.accept_pending();
        }
        gone
    }
    fn shutdown(&mut self) {
        self.shutdown();
    }
    fn housekeeping_interval(&self) -> Option<Duration> {
        Some(self.cfg.wait.slice)
    }
    fn client(&self, conn: ConnId) -> Option<ClientInfo> {
        self.client(conn)
    }
    fn waker(&self) -> std::boxed::Box<dyn Fn() + Send + Sync> {
        // A blocked wait is woken through the futex, an async one (`announce`) through the
        // readiness socket; a ring makes a system call only for the kind announced.
        let n = self.notifier();
        std::boxed::Box::new(move || n.notify())
    }
    fn wait_descriptor(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        Some(self.readiness.as_fd())
    }
    fn announce(
        &mut self,
        blocked: &[(ConnId, usize)],
        ready: &dyn Fn() -> bool,
    ) -> crate::doorbell::Announced {
        self.announce_async(blocked, ready)
    }
    fn watch_bell(&self) -> Option<crate::doorbell::WatchBell> {
        Some(self.fanin.watch_bell())
    }
    fn connections(&self) -> usize {
        self.fanin.ring_count()
    }
    fn wait_stats(&self) -> Option<WaitStats> {
        Some(self.stats())
    }
    fn connection_stats(&self) -> Vec<super::ConnectionStats> {
        let depth = |(used, capacity): (usize, usize)| super::RingDepth {
            used: used as u64,
            capacity: capacity as u64,
        };
        self.conns
            .iter()
            .flatten()
            .map(|c| super::ConnectionStats {
                request_ring: self.fanin.ring_depth(RingId(c.id.slot)).map(depth),
                response_ring: Some(depth((c.responses.len(), c.responses.capacity()))),
                ..c.peer.stats(c.id, super::TransportKind::SharedMemory)
            })
            .collect()
    }
}

static_assertions::assert_impl_all!(Server: Send);

/// How long a server wait may last.
#[derive(Clone, Copy, Debug)]
enum Wait {
    Forever,
    /// At most this long from the call.
    Exactly(Duration),
    /// About this long: counted from the end of the spin phase (no clock read for a wait
    /// that ends while spinning).
    Within(Duration),
}
