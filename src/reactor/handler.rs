//! What the reactor serves requests with: a handler, and the request it is given.

use std::vec::Vec;

use super::responder::Responder;
use crate::channel::{ClientInfo, RequestId};

/// A request handed to a [`Handler`]: copied out of shared memory, its slot already released.
///
/// # Examples
///
/// ```
/// use ringbell::reactor::{Request, Responder};
///
/// let handler = |req: Request, res: Responder| {
///     let reply = format!("{} bytes from pid {}", req.body.len(), req.client.pid);
///     let _ = res.respond(reply.as_bytes());
/// };
/// # let _ = handler;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// Who sent it (from the kernel, at connect time).
    pub client: ClientInfo,
    /// Its id on the connection.
    pub id: RequestId,
    /// Its body.
    pub body: Vec<u8>,
}

/// Serves requests. Called on the reactor thread (inline) or by the
/// [`Executor`](super::Executor); answers through the [`Responder`], now or later, from any
/// thread. Closures `Fn(Request, Responder)` are handlers.
///
/// # Examples
///
/// ```
/// use ringbell::reactor::{Handler, Request, Responder};
///
/// struct Upper;
/// impl Handler for Upper {
///     fn handle(&self, req: Request, res: Responder) {
///         let _ = res.respond(&req.body.to_ascii_uppercase());
///     }
/// }
/// # fn is_handler<H: Handler>(_: H) {}
/// # is_handler(Upper);
/// ```
pub trait Handler: Send + Sync + 'static {
    /// Handles one request: answer through `res`, now or later, from any thread; dropping
    /// it unanswered answers `Dropped`.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::reactor::{Handler, Request, Responder};
    ///
    /// struct Len;
    /// impl Handler for Len {
    ///     fn handle(&self, req: Request, res: Responder) {
    ///         let _ = res.respond(&(req.body.len() as u64).to_le_bytes());
    ///     }
    /// }
    /// # fn is_handler<H: Handler>(_: H) {}
    /// # is_handler(Len);
    /// ```
    fn handle(&self, req: Request, res: Responder);
}

impl<F> Handler for F
where
    F: Fn(Request, Responder) + Send + Sync + 'static,
{
    fn handle(&self, req: Request, res: Responder) {
        self(req, res)
    }
}
