//! What can go wrong on a channel: setting one up, serving, calling.

use std::fmt;
#[cfg(not(loom))]
use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::Arc;

use super::message::{ConnId, Status};
use crate::error::Corruption;
#[cfg(not(loom))]
use crate::error::{AttachError, HeaderError};
#[cfg(not(loom))]
use crate::region::RegionError;

#[cfg(not(loom))]
/// Binding the rendezvous socket failed.
///
/// # Examples
///
/// ```
/// use ringbell::channel::{BindError, ChannelError, Server, ServerConfig};
///
/// let dir = std::env::temp_dir().join(format!("ringbell-doc-bind-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("s.sock");
/// let server = Server::bind(&path, ServerConfig::new())?;
/// let again = Server::bind(&path, ServerConfig::new());
/// assert!(matches!(again, Err(ChannelError::Bind(BindError::InUse))));
/// # drop(server);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum BindError {
    /// A server is listening at the path.
    InUse,
    /// A socket file is at the path but nobody listens on it: a server crashed without
    /// removing it. Bind with [`Server::bind_replacing`](super::Server::bind_replacing) to
    /// take it over.
    Stale,
    /// Something that is not a socket is at the path; it is left alone.
    NotASocket,
    /// The path is longer than [`MAX_SOCKET_PATH`](super::MAX_SOCKET_PATH) bytes: Linux
    /// would bind it, but no client could connect to it.
    PathTooLong {
        /// The path's length in bytes.
        len: usize,
        /// The longest path allowed.
        max: usize,
    },
    /// The path is empty or holds a NUL byte.
    InvalidPath,
    /// Any other system error.
    Io(io::Error),
}

#[cfg(not(loom))]
impl fmt::Display for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InUse => f.write_str("a server is listening at the socket path"),
            Self::Stale => f.write_str(
                "a stale socket file (nobody listening) is at the path; bind with bind_replacing",
            ),
            Self::NotASocket => f.write_str("the path exists and is not a socket"),
            Self::PathTooLong { len, max } => {
                write!(f, "the socket path is {len} bytes, longer than {max}")
            }
            Self::InvalidPath => f.write_str("the socket path is empty or holds a NUL byte"),
            Self::Io(e) => write!(f, "binding the socket: {e}"),
        }
    }
}

#[cfg(not(loom))]
impl std::error::Error for BindError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(not(loom))]
impl From<io::Error> for BindError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

#[cfg(not(loom))]
impl From<rustix::io::Errno> for ChannelError {
    fn from(e: rustix::io::Errno) -> Self {
        Self::Io(e.into())
    }
}

#[cfg(not(loom))]
impl From<rustix::io::Errno> for BindError {
    fn from(e: rustix::io::Errno) -> Self {
        Self::Io(e.into())
    }
}

#[cfg(not(loom))]
/// Setting up a server or a client failed.
///
/// # Examples
///
/// ```
/// use ringbell::channel::{ChannelError, Client};
///
/// let r = Client::connect("/nonexistent/ringbell.sock");
/// assert!(matches!(r, Err(ChannelError::Io(_))));
/// ```
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
    Config(HeaderError),
    /// The server refused the connection: it is at its client limit.
    ServerFull,
    /// The server refused the connection: this user is not admitted.
    NotAdmitted,
    /// The server refused the connection: this user or this process already holds as many
    /// connections as the server allows one
    /// ([`ServerConfig::max_clients_per_uid`](super::ServerConfig::max_clients_per_uid),
    /// [`max_clients_per_process`](super::ServerConfig::max_clients_per_process)).
    LimitReached,
    /// The server refused the connection: it has no file descriptors (its `RLIMIT_NOFILE`)
    /// or memory for another one. Retry later.
    ServerOutOfResources,
    /// The handle was inherited across `fork(2)`: only the process that made it may use it.
    Forked,
    /// The server's greeting was malformed (not a ringbell server, or another version).
    Protocol(&'static str),
    /// The server did not take the connection, or did not greet, within the connect
    /// timeout.
    Timeout,
    /// The socket path is longer than [`MAX_SOCKET_PATH`](super::MAX_SOCKET_PATH) bytes.
    PathTooLong {
        /// The path's length in bytes.
        len: usize,
        /// The longest path allowed.
        max: usize,
    },
    /// The socket path is empty or holds a NUL byte.
    InvalidPath,
    /// A socket system call failed.
    Io(io::Error),
}

#[cfg(not(loom))]
impl fmt::Display for ChannelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bind(e) => write!(f, "binding the server socket: {e}"),
            Self::Region(e) => write!(f, "ring region: {e}"),
            Self::Attach(e) => write!(f, "attaching to a ring: {e}"),
            Self::Config(e) => write!(f, "server configuration: {e}"),
            Self::ServerFull => f.write_str("the server is at its client limit"),
            Self::NotAdmitted => f.write_str("the server does not admit this user"),
            Self::LimitReached => {
                f.write_str("this user or process holds as many connections as the server allows")
            }
            Self::ServerOutOfResources => {
                f.write_str("the server has no descriptors or memory for another connection")
            }
            Self::Forked => f.write_str("the handle was inherited across fork"),
            Self::Protocol(what) => write!(f, "bad greeting from the server: {what}"),
            Self::Timeout => f.write_str("the server did not answer the connection in time"),
            Self::PathTooLong { len, max } => {
                write!(f, "the socket path is {len} bytes, longer than {max}")
            }
            Self::InvalidPath => f.write_str("the socket path is empty or holds a NUL byte"),
            Self::Io(e) => write!(f, "socket: {e}"),
        }
    }
}

#[cfg(not(loom))]
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

#[cfg(not(loom))]
impl From<BindError> for ChannelError {
    fn from(e: BindError) -> Self {
        Self::Bind(e)
    }
}
#[cfg(not(loom))]
impl From<RegionError> for ChannelError {
    fn from(e: RegionError) -> Self {
        Self::Region(e)
    }
}
#[cfg(not(loom))]
impl From<AttachError> for ChannelError {
    fn from(e: AttachError) -> Self {
        Self::Attach(e)
    }
}
#[cfg(not(loom))]
impl From<io::Error> for ChannelError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// Receiving a request failed; nothing was consumed.
///
/// # Examples
///
/// ```
/// use ringbell::channel::{ConnId, RecvRequestError};
///
/// let e = RecvRequestError::BufferTooSmall { conn: ConnId { slot: 0, generation: 1 }, needed: 100 };
/// assert_eq!(e.to_string(), "buffer too small: connection 0's next request is 100 bytes");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecvRequestError {
    /// No client has a request now.
    Empty,
    /// A connection was detached: its client closed, died or corrupted its request ring
    /// (the corruption, if any, is given). Reported once.
    Detached(ConnId, Option<Corruption>),
    /// The caller's buffer is shorter than this connection's next request, which stays in
    /// its ring (the connection stays attached). A buffer of
    /// [`Server::max_request`](super::Server::max_request) bytes never is.
    BufferTooSmall {
        /// The connection.
        conn: ConnId,
        /// The request's length.
        needed: usize,
    },
}

impl fmt::Display for RecvRequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("no request pending"),
            Self::Detached(c, None) => write!(f, "connection {} closed", c.slot),
            Self::Detached(c, Some(e)) => write!(f, "connection {} corrupt: {e}", c.slot),
            Self::BufferTooSmall { conn, needed } => write!(
                f,
                "buffer too small: connection {}'s next request is {needed} bytes",
                conn.slot
            ),
        }
    }
}

impl std::error::Error for RecvRequestError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Detached(_, Some(c)) => Some(c),
            _ => None,
        }
    }
}

/// Sending a response failed.
///
/// # Examples
///
/// ```
/// use ringbell::channel::SendResponseError;
///
/// assert_eq!(SendResponseError::Full.to_string(), "response ring full");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendResponseError {
    /// The response ring has no room now; nothing was written.
    Full,
    /// The body is larger than the response frame cap; nothing was written.
    TooLarge {
        /// The body's length.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// The connection is gone (detached, or its client closed its response ring or corrupted
    /// it — the connection is detached now).
    Gone,
    /// The server was inherited across `fork(2)`: only the process that bound it may serve.
    Forked,
}

impl fmt::Display for SendResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full => f.write_str("response ring full"),
            Self::TooLarge { len, max } => {
                write!(f, "response of {len} bytes above the cap of {max}")
            }
            Self::Gone => f.write_str("connection gone"),
            Self::Forked => f.write_str("the server was inherited across fork"),
        }
    }
}

impl std::error::Error for SendResponseError {}

/// How a child ended, as a [`Supervisor`](super::Supervisor) saw it.
///
/// # Examples
///
/// ```
/// use ringbell::channel::ServerExit;
///
/// let exit = ServerExit { pid: 42, status: None, log: "/tmp/server.log".into(), stopped: false };
/// assert!(exit.to_string().contains("/tmp/server.log"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerExit {
    /// The child's process id (it may name another process by now).
    pub pid: u32,
    /// How it ended; `None` if that cannot be known: this process ignores `SIGCHLD` (the
    /// kernel reaped the child), or other code reaped it first.
    pub status: Option<ExitStatus>,
    /// The file that holds what the child printed.
    pub log: PathBuf,
    /// Whether it ended because [`Supervisor::stop`](super::Supervisor::stop) (or dropping the supervisor) asked it
    /// to.
    pub stopped: bool,
}

impl fmt::Display for ServerExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the server (pid {}) ", self.pid)?;
        match self.status {
            Some(s) => write!(f, "ended ({s})")?,
            None => f.write_str(
                "ended with an unknown status (SIGCHLD is ignored in this process, or it was \
                 reaped elsewhere)",
            )?,
        }
        if self.stopped {
            f.write_str(" when stopped")?;
        }
        write!(f, "; its output is in {}", self.log.display())
    }
}

/// A call failed.
///
/// # Examples
///
/// ```
/// use ringbell::channel::{CallError, Status};
///
/// assert_eq!(CallError::Server(Status::Busy).to_string(), "the server answered Busy");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallError {
    /// The request is larger than the server accepts; nothing was sent.
    TooLarge {
        /// The request's length.
        len: usize,
        /// The server's cap.
        max: usize,
    },
    /// The deadline passed. For `call`, the request may still be served; its response is
    /// discarded when it arrives.
    Timeout,
    /// The request ring is full (only from `try_send_request`).
    Full,
    /// No response is waiting (only from `try_recv_response`).
    Empty,
    /// The server is gone: it closed the connection, exited or was killed. Responses it sent
    /// before were delivered first.
    Disconnected,
    /// The client was inherited across `fork(2)`: only the process that connected may call.
    Forked,
    /// The server is gone, and it was a child a [`Supervisor`](super::Supervisor) started:
    /// how it ended and where its output is. Responses it sent before were delivered first.
    ServerExited(Arc<ServerExit>),
    /// The server answered with an error status (not [`Status::Ok`]).
    Server(Status),
    /// A ring of the connection is corrupt.
    Corrupt(Corruption),
    /// A response carried a status code this build does not know.
    BadStatus {
        /// The code (the tag's top three bits).
        code: u32,
    },
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { len, max } => {
                write!(f, "request of {len} bytes above the server's cap of {max}")
            }
            Self::Timeout => f.write_str("timed out"),
            Self::Full => f.write_str("request ring full"),
            Self::Empty => f.write_str("no response waiting"),
            Self::Disconnected => f.write_str("the server is gone"),
            Self::Forked => f.write_str("the client was inherited across fork"),
            Self::ServerExited(e) => fmt::Display::fmt(e, f),
            Self::Server(s) => write!(f, "the server answered {s:?}"),
            Self::Corrupt(c) => write!(f, "corrupt ring: {c}"),
            Self::BadStatus { code } => write!(f, "response with unknown status code {code}"),
        }
    }
}

impl std::error::Error for CallError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Corrupt(c) => Some(c),
            _ => None,
        }
    }
}
