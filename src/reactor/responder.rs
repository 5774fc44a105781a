//! How a handler answers: the [`Responder`], from any thread, exactly once.

use std::fmt;
use std::vec::Vec;

use super::access::Kind;
use super::shared::{Completion, Reply, Shared};
use crate::channel::{ConnId, RequestId, Status};
use crate::sync::Arc;

/// A handler's way to answer one request, from any thread. Answer once with
/// [`respond`](Self::respond) or [`fail`](Self::fail); dropping it unanswered sends
/// [`Status::Dropped`] (or [`Status::Panicked`] while a panic unwinds).
///
/// # Examples
///
/// ```
/// use ringbell::reactor::{Request, Responder};
///
/// // Answer later, from another thread: the response still goes out in request order.
/// fn handler(req: Request, res: Responder) {
///     std::thread::spawn(move || {
///         let _ = res.respond(&req.body);
///     });
/// }
/// # let _ = handler;
/// ```
pub struct Responder {
    shared: Arc<Shared>,
    conn: ConnId,
    /// The request's sequence number on its connection.
    seq: u64,
    id: RequestId,
    max_response: usize,
    answered: bool,
    /// The key this request holds while it runs (per-key ordering): released when this
    /// responder is consumed, by the leader settling its completion.
    order: Option<(u64, Kind)>,
}

impl Responder {
    /// The request's sequence number on its connection.
    pub(super) fn seq(&self) -> u64 {
        self.seq
    }

    pub(super) fn new(
        shared: Arc<Shared>,
        conn: ConnId,
        seq: u64,
        id: RequestId,
        max_response: usize,
    ) -> Self {
        Self {
            shared,
            conn,
            seq,
            id,
            max_response,
            answered: false,
            order: None,
        }
    }

    /// Makes the answer release `key` (held as `kind`) when the leader settles it.
    pub(super) fn hold(&mut self, key: u64, kind: Kind) {
        self.order = Some((key, kind));
    }
}

/// The response is larger than the response frame cap; the client got
/// [`Status::TooLarge`] instead.
///
/// # Examples
///
/// ```
/// use ringbell::reactor::ResponseTooLarge;
///
/// let e = ResponseTooLarge { len: 100, max: 10 };
/// assert!(e.to_string().contains("100 bytes"));
/// ```
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
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::reactor::{Request, Responder};
    ///
    /// fn handler(req: Request, res: Responder) {
    ///     assert_eq!(res.id(), req.id);
    ///     drop(res); // the client gets `Status::Dropped`
    /// }
    /// # let _ = handler;
    /// ```
    pub fn id(&self) -> RequestId {
        self.id
    }

    /// The largest response that fits a response frame.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::reactor::{Request, Responder};
    ///
    /// fn handler(req: Request, res: Responder) {
    ///     let n = req.body.len().min(res.max_response());
    ///     let _ = res.respond(&req.body[..n]);
    /// }
    /// # let _ = handler;
    /// ```
    pub fn max_response(&self) -> usize {
        self.max_response
    }

    /// Answers with `body` ([`Status::Ok`]).
    ///
    /// # Errors
    ///
    /// [`ResponseTooLarge`] if `body` is above the cap: the client is answered
    /// [`Status::TooLarge`] instead, at once.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::reactor::{Request, Responder};
    ///
    /// fn echo(req: Request, res: Responder) {
    ///     if let Err(e) = res.respond(&req.body) {
    ///         eprintln!("{e}"); // the client got `Status::TooLarge`
    ///     }
    /// }
    /// # let _ = echo;
    /// ```
    pub fn respond(self, body: &[u8]) -> Result<(), ResponseTooLarge> {
        self.respond_vec(body.to_vec())
    }

    /// As [`respond`](Self::respond), taking an owned body (no copy).
    ///
    /// # Errors
    ///
    /// As [`respond`](Self::respond).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::reactor::{Request, Responder};
    ///
    /// fn upper(req: Request, res: Responder) {
    ///     let _ = res.respond_vec(req.body.to_ascii_uppercase());
    /// }
    /// # let _ = upper;
    /// ```
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
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::reactor::{Request, Responder};
    ///
    /// fn strict(req: Request, res: Responder) {
    ///     if req.body.is_empty() {
    ///         return res.fail(b"empty request");
    ///     }
    ///     let _ = res.respond(b"ok");
    /// }
    /// # let _ = strict;
    /// ```
    pub fn fail(mut self, message: &[u8]) {
        let n = message.len().min(self.max_response);
        self.finish(Status::Failed, message[..n].to_vec());
    }

    fn finish(&mut self, status: Status, body: Vec<u8>) {
        self.answered = true;
        self.shared.post(Completion {
            conn: self.conn,
            seq: self.seq,
            order: self.order,
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
