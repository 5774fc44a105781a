//! How a handler says a request is ordered ([`Access`]), and the two kinds a key is held
//! in. A leaf: the table that acts on them is in `order.rs`.

/// How a request is ordered against the others on its key, in the order requests leave the
/// rings (across all connections). Returned by [`Handler::access`](super::Handler::access),
/// which the reactor calls before it runs the request.
///
/// - `Read(k)`: runs alongside other reads of `k`; waits for every earlier write of `k`.
/// - `Write(k)`: waits for every earlier request on `k`, and every later one waits for it —
///   until its [`Responder`](super::Responder) has answered (or was dropped, or its handler panicked).
/// - `Unordered`: never waits, and nobody waits for it.
///
/// Different keys never wait on each other.
///
/// # Examples
///
/// ```
/// use ringbell::reactor::{Access, Request};
///
/// // A key-value store: `g<key>` reads, `p<key>=<value>` writes, one key per account id.
/// fn access(req: &Request) -> Access {
///     let key = req.body.get(1).copied().unwrap_or(0) as u64;
///     match req.body.first() {
///         Some(b'g') => Access::Read(key),
///         Some(b'p') => Access::Write(key),
///         _ => Access::Unordered,
///     }
/// }
/// # let _ = access;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// A read of the key: concurrent with other reads, after earlier writes.
    Read(u64),
    /// A write of the key: alone, after everything earlier on the key, before everything
    /// later.
    Write(u64),
    /// No ordering.
    Unordered,
}

/// Read or write, once the key is taken out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Read,
    Write,
}

/// The key and kind of an ordered access, `None` for `Unordered`.
pub(super) fn split(a: Access) -> Option<(u64, Kind)> {
    match a {
        Access::Read(k) => Some((k, Kind::Read)),
        Access::Write(k) => Some((k, Kind::Write)),
        Access::Unordered => None,
    }
}
