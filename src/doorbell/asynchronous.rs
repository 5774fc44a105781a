//! Awaiting a readiness descriptor with tokio (feature `tokio`): what the async ring ends
//! share. The announcement is the caller's (`poll_ready`, `poll_room`); this is the wait
//! that follows it.

use std::io;
use std::time::Duration;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::{Announced, Readiness};

/// Registers a readiness descriptor with the current runtime's reactor, for reading.
pub(crate) fn register(readiness: Readiness) -> io::Result<AsyncFd<Readiness>> {
    // SAFETY: a `Readiness` owns its descriptor for as long as it lives (the descriptor is
    // closed only when the last handle sharing it drops, and the `AsyncFd` owns this one), and
    // `as_raw_fd` always returns that same descriptor.
    unsafe { AsyncFd::register_with_interest(readiness, Interest::READABLE) }
        .map_err(io::Error::from)
}

/// How an async wait ended.
pub(crate) enum Waited {
    /// Look again: the announcement found the condition, a ring came, or a retry is due.
    Again,
    /// The slice passed without a ring: look at the peer's liveness, then again.
    Slice,
}

/// The wait after an announcement: nothing for `Ready`; a timer for `RetryAfter`; for
/// `Wait`, the descriptor's readability through tokio's reactor, for at most `slice`.
pub(crate) async fn wait(
    ready: &AsyncFd<Readiness>,
    announced: Announced,
    slice: Duration,
) -> Waited {
    match announced {
        Announced::Ready => Waited::Again,
        Announced::RetryAfter(d) => {
            tokio::time::sleep(d).await;
            Waited::Again
        }
        Announced::Wait => match tokio::time::timeout(slice, ready.readable()).await {
            // Cleared before the next announcement drains the descriptor: a ring after
            // that writes it again, which the reactor reports as a new event.
            Ok(Ok(mut guard)) => {
                guard.clear_ready();
                Waited::Again
            }
            // The reactor failed to wait: the slice bounds the next look.
            Ok(Err(_)) => {
                tokio::time::sleep(slice).await;
                Waited::Slice
            }
            Err(_elapsed) => Waited::Slice,
        },
    }
}
