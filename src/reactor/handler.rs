//! What the reactor serves requests with: a handler, and the request it is given.

use std::vec::Vec;

use super::access::Access;
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

    /// How `req` is ordered against other requests on its key (see [`Access`]): called by
    /// whichever thread leads the serve loop (the reactor thread, or its watcher while an
    /// inline handler overruns), under the serve loop's lock, in the order requests leave the
    /// rings, before the request runs. Keep it cheap — a look at the body's first bytes —
    /// and free of waits; a panic in it answers the request `Panicked`. The default:
    /// [`Access::Unordered`], every request runs as soon as it can.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::reactor::{Access, Handler, Request, Responder};
    ///
    /// /// `r<k>` reads account `k`, `w<k>` writes it.
    /// struct Accounts;
    /// impl Handler for Accounts {
    ///     fn handle(&self, req: Request, res: Responder) {
    ///         let _ = res.respond(b"ok");
    ///     }
    ///     fn access(&self, req: &Request) -> Access {
    ///         match req.body.as_slice() {
    ///             [b'r', k, ..] => Access::Read(u64::from(*k)),
    ///             [b'w', k, ..] => Access::Write(u64::from(*k)),
    ///             _ => Access::Unordered,
    ///         }
    ///     }
    /// }
    /// # fn is_handler<H: Handler>(_: H) {}
    /// # is_handler(Accounts);
    /// ```
    fn access(&self, req: &Request) -> Access {
        let _ = req;
        Access::Unordered
    }
}

/// A handler with per-key ordering made of two closures: `access` classifies each request
/// ([`Handler::access`]), `handle` serves it. Made by [`ordered`].
///
/// # Examples
///
/// ```
/// use ringbell::reactor::{ordered, Access, Request, Responder};
///
/// let handler = ordered(
///     |req: &Request| match req.body.first() {
///         Some(b'w') => Access::Write(0),
///         _ => Access::Read(0),
///     },
///     |req: Request, res: Responder| {
///         let _ = res.respond(&req.body);
///     },
/// );
/// # fn is_handler<H: ringbell::reactor::Handler>(_: H) {}
/// # is_handler(handler);
/// ```
pub struct Ordered<A, H> {
    access: A,
    handle: H,
}

/// A [`Handler`] from a classifying closure and a serving one (see [`Ordered`]).
///
/// # Examples
///
/// ```
/// use ringbell::reactor::{ordered, Access, Request, Responder};
///
/// let _ = ordered(|_: &Request| Access::Write(7), |_: Request, res: Responder| drop(res));
/// ```
pub fn ordered<A, H>(access: A, handle: H) -> Ordered<A, H>
where
    A: Fn(&Request) -> Access + Send + Sync + 'static,
    H: Fn(Request, Responder) + Send + Sync + 'static,
{
    Ordered { access, handle }
}

impl<A, H> Handler for Ordered<A, H>
where
    A: Fn(&Request) -> Access + Send + Sync + 'static,
    H: Fn(Request, Responder) + Send + Sync + 'static,
{
    fn handle(&self, req: Request, res: Responder) {
        (self.handle)(req, res)
    }
    fn access(&self, req: &Request) -> Access {
        (self.access)(req)
    }
}

impl<A, H> core::fmt::Debug for Ordered<A, H> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Ordered").finish_non_exhaustive()
    }
}

impl<F> Handler for F
where
    F: Fn(Request, Responder) + Send + Sync + 'static,
{
    fn handle(&self, req: Request, res: Responder) {
        self(req, res)
    }
}
