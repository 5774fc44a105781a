//! What a channel carries: request ids, statuses, responses, and the names of connections.

use crate::wire::{
    ID_BITS, ID_MASK, STATUS_BUSY, STATUS_DROPPED, STATUS_FAILED, STATUS_OK, STATUS_PANICKED,
    STATUS_SHUTTING_DOWN, STATUS_TOO_LARGE,
};

/// A request's id on its connection: 29 bits, assigned by the client in sequence, wrapping.
///
/// # Examples
///
/// ```
/// use ringbell::channel::RequestId;
///
/// assert!(RequestId(1) < RequestId(2));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u32);

#[cfg_attr(loom, allow(dead_code))] // the loom model builds its own tags
impl RequestId {
    pub(crate) fn from_tag(tag: u32) -> Self {
        Self(tag & ID_MASK)
    }
}

/// How the server answered a request; carried in the top bits of a response's tag.
///
/// # Examples
///
/// ```
/// use ringbell::channel::{Response, RequestId, Status, CallError};
///
/// let busy = Response { id: RequestId(0), status: Status::Busy, body: Vec::new() };
/// assert_eq!(busy.into_result(), Err(CallError::Server(Status::Busy)));
/// ```
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

#[cfg_attr(loom, allow(dead_code))]
impl Status {
    fn code(self) -> u32 {
        match self {
            Self::Ok => STATUS_OK,
            Self::Busy => STATUS_BUSY,
            Self::Panicked => STATUS_PANICKED,
            Self::Dropped => STATUS_DROPPED,
            Self::TooLarge => STATUS_TOO_LARGE,
            Self::Failed => STATUS_FAILED,
            Self::ShuttingDown => STATUS_SHUTTING_DOWN,
        }
    }

    pub(crate) fn from_code(code: u32) -> Option<Self> {
        Some(match code {
            STATUS_OK => Self::Ok,
            STATUS_BUSY => Self::Busy,
            STATUS_PANICKED => Self::Panicked,
            STATUS_DROPPED => Self::Dropped,
            STATUS_TOO_LARGE => Self::TooLarge,
            STATUS_FAILED => Self::Failed,
            STATUS_SHUTTING_DOWN => Self::ShuttingDown,
            _ => return None,
        })
    }

    /// The tag of a response with this status to request `id`.
    pub(crate) fn tag(self, id: RequestId) -> u32 {
        (self.code() << ID_BITS) | (id.0 & ID_MASK)
    }
}

/// Identifies one connection of a server: the slot it holds and a generation, so that an
/// id outlives its connection harmlessly (a late response for it is discarded).
///
/// # Examples
///
/// ```
/// use ringbell::channel::ConnId;
///
/// let old = ConnId { slot: 0, generation: 1 };
/// let new = ConnId { slot: 0, generation: 2 };
/// assert_ne!(old, new); // the same slot, another connection
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    /// The slot (also the fan-in's [`RingId`](crate::fanin::RingId) of its request ring).
    pub slot: usize,
    /// Distinguishes successive connections in one slot.
    pub generation: u64,
}

/// Who a connected client is, as the kernel reported it at connect time (`SO_PEERCRED`),
/// never as the client described itself.
///
/// # Examples
///
/// ```
/// use ringbell::channel::{ClientInfo, ConnId};
///
/// let me = ClientInfo { conn: ConnId { slot: 0, generation: 1 }, pid: 1, uid: 0, gid: 0 };
/// assert_eq!(me.uid, 0);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientInfo {
    /// The connection.
    pub conn: ConnId,
    /// The client's process id (of the process that connected; 0 if it is in a pid namespace
    /// the server cannot see).
    pub pid: u32,
    /// The client's effective user id.
    pub uid: u32,
    /// The client's effective group id.
    pub gid: u32,
}

/// A request taken by [`Server::try_recv_request`](super::Server::try_recv_request); its
/// body is in the caller's buffer.
///
/// # Examples
///
/// ```
/// use ringbell::channel::{ConnId, Incoming, RequestId};
///
/// let inc = Incoming { conn: ConnId { slot: 2, generation: 7 }, id: RequestId(5), len: 64, control: false };
/// assert_eq!(inc.len, 64);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Incoming {
    /// The connection it came on.
    pub conn: ConnId,
    /// Its id, to answer with.
    pub id: RequestId,
    /// Its length in the buffer.
    pub len: usize,
    /// A control request ([`REQUEST_CONTROL`](crate::wire::REQUEST_CONTROL) in its tag): for
    /// the server itself (the reactor answers it), never for a handler.
    pub control: bool,
}
