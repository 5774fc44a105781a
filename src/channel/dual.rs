//! One reactor, both transports: shared-memory clients at one path, socket-transport
//! clients at another.

use std::boxed::Box;
use std::path::Path;
use std::time::Duration;
use std::vec::Vec;

use super::config::ServerConfig;
use super::error::{ChannelError, RecvRequestError, SendResponseError};
use super::message::{ClientInfo, ConnId, Incoming, RequestId, Status};
use super::server::Server;
use super::socket_server::{SocketServer, poll_slice};
use super::transport::Transport;
use crate::doorbell::Announced;
use rustix::event::{PollFd, PollFlags};

/// A server of both transports for one [`Reactor`](crate::reactor::Reactor): a
/// shared-memory [`Server`] and a [`SocketServer`], at two paths, with the same
/// configuration and the same handler. Connections of the two are told apart by their
/// [`ConnId`]'s slot (even: shared memory, odd: socket).
///
/// # How it waits
///
/// The two servers wake for different things: a shared-memory client rings the server's
/// futex doorbell, a socket client makes a socket readable. One thread cannot sleep on a
/// futex and on descriptors at once, so the dual server waits on descriptors only and has
/// the doorbell answered through one: the shared-memory server's *readiness set*, an epoll
/// descriptor over one socket pair per client, whose ringers' end the client received in
/// its greeting. The wait is
///
/// 1. the socket server's half: send what waits, drain its wake eventfd, look for work;
/// 2. the shared-memory server's async announcement on its doorbell (doorbell module docs,
///    "Async waits"): drain the readiness set, mark, fence, re-check the rings (requests,
///    room for blocked responses) and the reactor's `ready()`;
/// 3. one `poll(2)` over the wake eventfd, the readiness set and the connections'
///    sockets, for at most a slice.
///
/// A request published after the re-check finds the async mark and rings the readiness
/// set; a socket frame arriving after the look makes its socket readable; a worker's
/// completion after the look writes the wake eventfd (the waker writes it for both servers).
/// Nothing that happens after its look is slept through, and a shared-memory client rings
/// with a system call only when the server announced such a wait — while the reactor is
/// busy, its requests cost no system call, as with a shared-memory server alone.
///
/// # Examples
///
/// ```
/// use ringbell::channel::{Client, DualServer, ServerConfig};
/// use ringbell::reactor::{Reactor, Request, Responder};
///
/// let dir = std::env::temp_dir().join(format!("ringbell-doc-dual-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let server = DualServer::bind(dir.join("shm.sock"), dir.join("plain.sock"), ServerConfig::new())?;
/// let mut reactor = Reactor::new(server, |req: Request, res: Responder| {
///     let _ = res.respond(&req.body);
/// });
/// let stop = reactor.stop_handle();
/// let serving = std::thread::spawn(move || reactor.run());
///
/// let mut in_rings = Client::connect(dir.join("shm.sock"))?;
/// let mut on_socket = Client::connect(dir.join("plain.sock"))?;
/// assert!(!in_rings.is_socket_transport() && on_socket.is_socket_transport());
/// assert_eq!(in_rings.call(b"one")?, b"one");
/// assert_eq!(on_socket.call(b"two")?, b"two");
/// stop.stop();
/// serving.join().unwrap()?;
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct DualServer {
    shm: Server,
    socket: SocketServer,
    /// Which server the next receive tries first (they take turns).
    socket_first: bool,
}

/// Which server a connection is on, and its id there.
enum Side {
    Shm(ConnId),
    Socket(ConnId),
}

fn outer_shm(c: ConnId) -> ConnId {
    ConnId {
        slot: c.slot * 2,
        generation: c.generation,
    }
}

fn outer_socket(c: ConnId) -> ConnId {
    ConnId {
        slot: c.slot * 2 + 1,
        generation: c.generation,
    }
}

fn side(c: ConnId) -> Side {
    let inner = ConnId {
        slot: c.slot / 2,
        generation: c.generation,
    };
    match c.slot % 2 {
        0 => Side::Shm(inner),
        _ => Side::Socket(inner),
    }
}

impl DualServer {
    /// Listens for shared-memory clients at `shm_path` and for socket-transport clients at
    /// `socket_path` (both created `0600`); `cfg`'s transport choice is ignored, the rest
    /// applies to both (its client limits to each).
    ///
    /// # Errors
    ///
    /// As [`Server::bind`] and [`SocketServer::bind`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{DualServer, ServerConfig};
    ///
    /// let dir = std::env::temp_dir().join(format!("ringbell-doc-dualbind-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let server = DualServer::bind(dir.join("a.sock"), dir.join("b.sock"), ServerConfig::new())?;
    /// assert_eq!(server.shared_memory().path(), dir.join("a.sock"));
    /// # drop(server);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn bind(
        shm_path: impl AsRef<Path>,
        socket_path: impl AsRef<Path>,
        cfg: ServerConfig,
    ) -> Result<Self, ChannelError> {
        let shm = Server::bind(shm_path, cfg.clone())?;
        let socket = SocketServer::bind(socket_path, cfg)?;
        Ok(Self {
            shm,
            socket,
            socket_first: false,
        })
    }

    /// The shared-memory server. Its [`ConnId`]s are its own: the dual server's are
    /// `slot * 2` for these (use the dual server's [`Transport`] methods for its ids).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{DualServer, ServerConfig};
    ///
    /// let dir = std::env::temp_dir().join(format!("ringbell-doc-dualshm-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let server = DualServer::bind(dir.join("a.sock"), dir.join("b.sock"), ServerConfig::new())?;
    /// assert_eq!(server.shared_memory().clients(), 0);
    /// # drop(server);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn shared_memory(&self) -> &Server {
        &self.shm
    }

    /// The socket-transport server. Its [`ConnId`]s are its own: the dual server's are
    /// `slot * 2 + 1` for these.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{DualServer, ServerConfig};
    ///
    /// let dir = std::env::temp_dir().join(format!("ringbell-doc-dualsock-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let server = DualServer::bind(dir.join("a.sock"), dir.join("b.sock"), ServerConfig::new())?;
    /// assert_eq!(server.socket().clients(), 0);
    /// # drop(server);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn socket(&self) -> &SocketServer {
        &self.socket
    }

    fn try_shm(&mut self, buf: &mut [u8]) -> Result<Incoming, RecvRequestError> {
        outer(Transport::try_recv_request(&mut self.shm, buf), outer_shm)
    }

    fn try_socket(&mut self, buf: &mut [u8]) -> Result<Incoming, RecvRequestError> {
        outer(
            Transport::try_recv_request(&mut self.socket, buf),
            outer_socket,
        )
    }
}

/// A receive's result with every connection id in it made the dual server's own — the
/// errors' too: a `Detached` that named the inner id would detach another connection.
fn outer(
    r: Result<Incoming, RecvRequestError>,
    map: fn(ConnId) -> ConnId,
) -> Result<Incoming, RecvRequestError> {
    match r {
        Ok(mut i) => {
            i.conn = map(i.conn);
            Ok(i)
        }
        Err(RecvRequestError::Detached(c, why)) => Err(RecvRequestError::Detached(map(c), why)),
        Err(RecvRequestError::BufferTooSmall { conn, needed }) => {
            Err(RecvRequestError::BufferTooSmall {
                conn: map(conn),
                needed,
            })
        }
        Err(RecvRequestError::Empty) => Err(RecvRequestError::Empty),
    }
}

/// One server's receive, as the dual server's.
type Take = fn(&mut DualServer, &mut [u8]) -> Result<Incoming, RecvRequestError>;

/// Splits `blocked` between the two servers, in their own ids.
#[allow(clippy::type_complexity)]
fn split(blocked: &[(ConnId, usize)]) -> (Vec<(ConnId, usize)>, Vec<(ConnId, usize)>) {
    let mut shm = Vec::new();
    let mut socket = Vec::new();
    for &(c, len) in blocked {
        match side(c) {
            Side::Shm(c) => shm.push((c, len)),
            Side::Socket(c) => socket.push((c, len)),
        }
    }
    (shm, socket)
}

impl Transport for DualServer {
    fn max_request(&self) -> usize {
        Transport::max_request(&self.shm).min(Transport::max_request(&self.socket))
    }
    fn max_response(&self) -> usize {
        Transport::max_response(&self.shm).min(Transport::max_response(&self.socket))
    }
    fn limits(&self) -> (usize, usize) {
        Transport::limits(&self.shm)
    }
    fn try_recv_request(&mut self, buf: &mut [u8]) -> Result<Incoming, RecvRequestError> {
        // Turns, so that neither transport's clients wait behind the other's stream.
        self.socket_first = !self.socket_first;
        let (first, second): (Take, Take) = match self.socket_first {
            true => (Self::try_socket, Self::try_shm),
            false => (Self::try_shm, Self::try_socket),
        };
        match first(self, buf) {
            Err(RecvRequestError::Empty) => second(self, buf),
            done => done,
        }
    }
    fn has_request(&self) -> bool {
        Transport::has_request(&self.shm) || Transport::has_request(&self.socket)
    }
    fn try_send_response(
        &mut self,
        conn: ConnId,
        id: RequestId,
        status: Status,
        body: &[u8],
    ) -> Result<(), SendResponseError> {
        match side(conn) {
            Side::Shm(c) => Transport::try_send_response(&mut self.shm, c, id, status, body),
            Side::Socket(c) => Transport::try_send_response(&mut self.socket, c, id, status, body),
        }
    }
    fn wait(&mut self, blocked: &[(ConnId, usize)], ready: &dyn Fn() -> bool) -> bool {
        if self.socket.is_forked_copy() {
            std::thread::sleep(Transport::housekeeping_interval(self).unwrap_or_default());
            return false;
        }
        let (shm_blocked, socket_blocked) = split(blocked);
        if self.socket.prepare_wait(&socket_blocked, ready) {
            return true;
        }
        let slice = Transport::housekeeping_interval(self).unwrap_or(Duration::from_millis(50));
        let slice = match self.shm.announce_async(&shm_blocked, ready) {
            Announced::Ready => return true,
            Announced::Wait => slice,
            // No barrier: a ring may be missed, so look again soon.
            Announced::RetryAfter(d) => d.min(slice),
        };
        let mut fds = self.socket.poll_fds();
        fds.push(PollFd::new(self.shm.readiness(), PollFlags::IN));
        poll_slice(&mut fds, slice)
    }
    fn pause(&mut self, conn: ConnId, paused: bool) {
        match side(conn) {
            Side::Shm(c) => Transport::pause(&mut self.shm, c, paused),
            Side::Socket(c) => Transport::pause(&mut self.socket, c, paused),
        }
    }
    fn housekeeping(&mut self, accept: bool) -> Vec<ConnId> {
        let mut gone: Vec<ConnId> = Transport::housekeeping(&mut self.shm, accept)
            .into_iter()
            .map(outer_shm)
            .collect();
        gone.extend(
            Transport::housekeeping(&mut self.socket, accept)
                .into_iter()
                .map(outer_socket),
        );
        gone
    }
    fn shutdown(&mut self) {
        Transport::shutdown(&mut self.shm);
        Transport::shutdown(&mut self.socket);
    }
    fn housekeeping_interval(&self) -> Option<Duration> {
        match (
            Transport::housekeeping_interval(&self.shm),
            Transport::housekeeping_interval(&self.socket),
        ) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
    fn client(&self, conn: ConnId) -> Option<ClientInfo> {
        let (info, outer) = match side(conn) {
            Side::Shm(c) => (Transport::client(&self.shm, c), outer_shm as fn(_) -> _),
            Side::Socket(c) => (
                Transport::client(&self.socket, c),
                outer_socket as fn(_) -> _,
            ),
        };
        info.map(|mut i| {
            i.conn = outer(i.conn);
            i
        })
    }
    fn waker(&self) -> Box<dyn Fn() + Send + Sync> {
        // The socket server's eventfd is in every wait's poll; the shared-memory server's
        // waker answers the async mark through its readiness socket (also in the poll).
        let a = Transport::waker(&self.socket);
        let b = Transport::waker(&self.shm);
        Box::new(move || {
            a();
            b();
        })
    }
    fn connections(&self) -> usize {
        Transport::connections(&self.shm).saturating_add(Transport::connections(&self.socket))
    }
    fn wait_stats(&self) -> Option<crate::doorbell::WaitStats> {
        // The socket side waits in the same poll; the doorbell's counters are the shm side's.
        Transport::wait_stats(&self.shm)
    }
    fn connection_stats(&self) -> Vec<super::ConnectionStats> {
        let shm = Transport::connection_stats(&self.shm)
            .into_iter()
            .map(|mut c| {
                c.conn = outer_shm(c.conn);
                c
            });
        let socket = Transport::connection_stats(&self.socket)
            .into_iter()
            .map(|mut c| {
                c.conn = outer_socket(c.conn);
                c
            });
        let mut all: Vec<_> = shm.chain(socket).collect();
        all.sort_by_key(|c| c.conn.slot);
        all
    }
    fn inline_beside_others(&self) -> bool {
        // A socket client's requests have no doorbell to hand a slow inline run over with.
        false
    }
}
