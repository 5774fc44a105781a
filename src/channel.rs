//! Request/response channels between processes: a [`Server`] and its [`Client`]s.
//!
//! # Shape
//!
//! A server listens on a Unix-domain socket path (created `0600`, see
//! [`peer::bind_listener`](crate::peer::bind_listener)). A client connects; the server learns its pid, uid and gid from
//! the kernel (`SO_PEERCRED`), creates two sealed memfd rings for it — a *request* ring (the
//! client produces, the server consumes) and a *response* ring (the reverse) — and sends them,
//! with its doorbell region, over the socket (`SCM_RIGHTS`). From then on every request and
//! response is a frame in shared memory; the socket carries nothing more and stays open only
//! so that each side sees the other's death as a hang-up.
//!
//! ```text
//!  client 1 ──request ring──┐                       ┌──response ring──▶ client 1
//!  client 2 ──request ring──┼─▶ fan-in ─▶ server ───┼──response ring──▶ client 2
//!  client n ──request ring──┘   (one doorbell)      └──response ring──▶ client n
//! ```
//!
//! The server's intake is a [`FanIn`](crate::fanin::FanIn) of the request rings, so it sleeps on *one* doorbell.
//! That doorbell is rung by requests (the clients' producers), by [`Server::notifier`]
//! (worker threads with finished responses), and by freed space in response rings: response
//! rings are made with [`RingConfig::shared_space_bell`](crate::spsc::RingConfig::shared_space_bell), so a client's read wakes a server
//! that waits to send it more. The server never blocks on one client.
//!
//! # Wire format
//!
//! A request is a frame whose tag is its [`RequestId`] (29 bits, wrapping). A response is a
//! frame whose tag carries the same id and a [`Status`] in the top 3 bits. Responses on a
//! connection arrive in request order (the [reactor](crate::reactor) guarantees it).
//!
//! # Trust
//!
//! The server trusts nothing a client writes: a client can corrupt only its own two rings
//! (the server then detaches it, see [`RecvRequestError::Detached`]) and ring or disturb the
//! shared doorbell (which makes the server wake early, or late by at most one sleep slice).
//! The client's identity comes from the kernel. Clients of another user are refused unless
//! [`ServerConfig::allow_uid`] or [`ServerConfig::allow_any_uid`] says otherwise.
//!
//! # Examples
//!
//! ```
//! use ringbell::channel::{Client, Server, ServerConfig, Status};
//! use std::time::Duration;
//!
//! let dir = std::env::temp_dir().join(format!("ringbell-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let path = dir.join("echo.sock");
//! let mut server = Server::bind(&path, ServerConfig::default())?;
//!
//! let client = std::thread::spawn({
//!     let path = path.clone();
//!     move || {
//!         let mut client = Client::connect(&path).unwrap();
//!         client.call_timeout(b"ping", Duration::from_secs(5)).unwrap()
//!     }
//! });
//!
//! // A bare serial loop over the server's own API (the reactor does this and more).
//! let mut buf = vec![0u8; server.max_request()];
//! loop {
//!     server.accept_pending()?;
//!     match server.try_recv_request(&mut buf) {
//!         Ok(req) => {
//!             let body = &buf[..req.len];
//!             server.try_send_response(req.conn, req.id, Status::Ok, body).unwrap();
//!             break;
//!         }
//!         Err(_) => {
//!             server.wait(&[], || false, Some(Duration::from_millis(5)));
//!         }
//!     }
//! }
//! assert_eq!(client.join().unwrap(), b"ping");
//! # drop(server);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::vec::Vec;

use crate::error::Corruption;

#[cfg(not(loom))]
mod endpoint;
#[cfg(not(loom))]
pub use endpoint::{ChannelError, Client, ClientOptions, Server, ServerConfig};

/// Bits of a frame tag that carry the request id.
pub(crate) const ID_BITS: u32 = 29;
/// Mask of the request id in a tag.
pub(crate) const ID_MASK: u32 = (1 << ID_BITS) - 1;

/// A request's id on its connection: 29 bits, assigned by the client in sequence, wrapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u32);

impl RequestId {
    pub(crate) fn from_tag(tag: u32) -> Self {
        Self(tag & ID_MASK)
    }
}

/// How the server answered a request; carried in the top bits of a response's tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Status {
    /// The handler's answer; the body is the response.
    Ok,
    /// The connection had too many requests in flight; the request was not run.
    Busy,
    /// The handler panicked; the body is empty.
    Panicked,
    /// The handler dropped its responder without answering.
    Dropped,
    /// The handler's response was larger than the response frame cap.
    TooLarge,
    /// The handler reported a failure; the body is its message.
    Failed,
    /// The server was shutting down and did not run the request.
    ShuttingDown,
}

impl Status {
    fn code(self) -> u32 {
        match self {
            Self::Ok => 0,
            Self::Busy => 1,
            Self::Panicked => 2,
            Self::Dropped => 3,
            Self::TooLarge => 4,
            Self::Failed => 5,
            Self::ShuttingDown => 6,
        }
    }

    fn from_code(code: u32) -> Option<Self> {
        Some(match code {
            0 => Self::Ok,
            1 => Self::Busy,
            2 => Self::Panicked,
            3 => Self::Dropped,
            4 => Self::TooLarge,
            5 => Self::Failed,
            6 => Self::ShuttingDown,
            _ => return None,
        })
    }

    pub(crate) fn tag(self, id: RequestId) -> u32 {
        (self.code() << ID_BITS) | (id.0 & ID_MASK)
    }
}

/// Identifies one connection of a server: the slot it holds and a generation, so that an
/// id outlives its connection harmlessly (a late response for it is discarded).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    /// The slot (also the fan-in's [`RingId`](crate::fanin::RingId) of its request ring).
    pub slot: usize,
    /// Distinguishes successive connections in one slot.
    pub generation: u64,
}

/// Who a connected client is, as the kernel reported it at connect time (`SO_PEERCRED`),
/// never as the client described itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientInfo {
    /// The connection.
    pub conn: ConnId,
    /// The client's process id (of the process that connected).
    pub pid: u32,
    /// The client's effective user id.
    pub uid: u32,
    /// The client's effective group id.
    pub gid: u32,
}

/// Receiving a request failed; nothing was consumed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecvRequestError {
    /// No client has a request now.
    Empty,
    /// A connection was detached: its client closed, died or corrupted its request ring
    /// (the corruption, if any, is given). Reported once.
    Detached(ConnId, Option<Corruption>),
}

impl fmt::Display for RecvRequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("no request pending"),
            Self::Detached(c, None) => write!(f, "connection {} closed", c.slot),
            Self::Detached(c, Some(e)) => write!(f, "connection {} corrupt: {e}", c.slot),
        }
    }
}

impl std::error::Error for RecvRequestError {}

/// Sending a response failed.
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
}

impl fmt::Display for SendResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full => f.write_str("response ring full"),
            Self::TooLarge { len, max } => {
                write!(f, "response of {len} bytes above the cap of {max}")
            }
            Self::Gone => f.write_str("connection gone"),
        }
    }
}

impl std::error::Error for SendResponseError {}

/// A request taken by [`Server::try_recv_request`]; its body is in the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Incoming {
    /// The connection it came on.
    pub conn: ConnId,
    /// Its id, to answer with.
    pub id: RequestId,
    /// Its length in the buffer.
    pub len: usize,
}

/// A call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
    /// The server answered with an error status (not [`Status::Ok`]).
    Server(Status),
    /// The response ring is corrupt, or a response carried an unknown status.
    Corrupt,
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
            Self::Server(s) => write!(f, "the server answered {s:?}"),
            Self::Corrupt => f.write_str("corrupt response ring"),
        }
    }
}

impl std::error::Error for CallError {}

/// A response, matched to its request by id.
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
    pub fn into_result(self) -> Result<Vec<u8>, CallError> {
        match self.status {
            Status::Ok => Ok(self.body),
            s => Err(CallError::Server(s)),
        }
    }
}

pub(crate) fn parse(tag: u32, body: Vec<u8>) -> Result<Response, CallError> {
    let status = Status::from_code(tag >> ID_BITS).ok_or(CallError::Corrupt)?;
    Ok(Response {
        id: RequestId::from_tag(tag),
        status,
        body,
    })
}
