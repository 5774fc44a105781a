//! Hooks for tests and fuzzers that play a misbehaving peer (feature `test-hooks`).
//!
//! Nothing here is for production code: it hands out write access to shared memory past
//! every protocol, and stops protocols half way. The crate's own integration tests, fuzz
//! targets and benchmarks enable the feature; a user's build never needs it.

use crate::doorbell::Fences;
use crate::error::SendError;
use crate::region::{HeapRegion, SharedMemory, Untyped};

pub use crate::mem::View;

/// A borrowed view of a region's memory, with atomic word access and byte copies at any
/// offset: to write what a buggy or hostile peer would.
///
/// # Examples
///
/// ```
/// use ringbell::testing;
/// use ringbell::wire::WRITE_POS_OFF;
/// use std::sync::atomic::Ordering::Relaxed;
///
/// let (tx, mut rx) = ringbell::spsc::channel(4096)?;
/// testing::view(tx.shared_memory()).store_u64(WRITE_POS_OFF, 3, Relaxed); // off the grid
/// assert!(matches!(rx.try_recv(), Err(ringbell::RecvError::Corrupt(_))));
/// # Ok::<(), ringbell::AttachError>(())
/// ```
pub fn view<S: SharedMemory + ?Sized>(shm: &S) -> View<'_> {
    View::new(shm.mem())
}

/// A zeroed, uninitialised heap region of `len` bytes, for a header of the test's own.
///
/// # Panics
///
/// If `len` is 0 or cannot be allocated as one block.
///
/// # Examples
///
/// ```
/// use ringbell::{testing, spsc, AttachError, HeaderError, OwnerId};
///
/// let region = testing::zeroed_heap_region(1024 + 256);
/// let r = spsc::Producer::attach(region, OwnerId::unique()).map(drop);
/// assert!(matches!(r, Err(AttachError::Header(HeaderError::BadMagic { .. }))));
/// ```
pub fn zeroed_heap_region(len: usize) -> HeapRegion<Untyped> {
    HeapRegion::zeroed(len).expect("a heap region needs 1 to isize::MAX - 127 bytes")
}

/// Claims room for `len` bytes in an MPSC ring and stops there, as if the process died right
/// after its claim succeeded: the record's header stays 0 and the slot stays in-claim.
///
/// # Errors
///
/// As [`mpsc::Producer::reserve`](crate::mpsc::Producer::reserve).
///
/// # Examples
///
/// ```
/// let (mut rx, region) = ringbell::mpsc::channel(4096)?;
/// let mut tx = region.producer()?;
/// ringbell::testing::mpsc_claim_and_stop(&mut tx, 8)?;
/// assert!(!rx.has_data()); // stuck behind a claim nobody will commit
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn mpsc_claim_and_stop<S: SharedMemory>(
    producer: &mut crate::mpsc::Producer<S>,
    len: usize,
) -> Result<(), SendError> {
    producer.claim_and_stop(len)
}

/// The shared regions a channel client maps — its request ring, its response ring and the
/// server's bell region — for playing a hostile client.
///
/// # Panics
///
/// If the client is on the socket transport (it has no regions).
///
/// # Examples
///
/// ```no_run
/// # fn f(client: &ringbell::channel::Client) {
/// let (requests, responses, bell) = ringbell::testing::client_regions(client);
/// # }
/// ```
pub fn client_regions(
    client: &crate::channel::Client,
) -> (
    &crate::region::Region<crate::region::Spsc>,
    &crate::region::Region<crate::region::Spsc>,
    &crate::region::Region<crate::region::Bell>,
) {
    client
        .regions()
        .expect("a client of the shared-memory transport")
}

/// Zeroes the header of a client's server bell region, as a hostile client could (the region
/// is writable by every client).
///
/// # Examples
///
/// ```no_run
/// # fn f(client: &ringbell::channel::Client) {
/// ringbell::testing::scribble_on_bell_header(client);
/// # }
/// ```
pub fn scribble_on_bell_header(client: &crate::channel::Client) {
    let view = view(client_regions(client).2);
    for off in (0..crate::wire::HEADER_SIZE).step_by(8) {
        view.store_u64(off, 0, core::sync::atomic::Ordering::Relaxed);
    }
}

/// Shuts down (both ways) the client's end of its pair in the server's readiness set, as
/// a hostile client could: the server's end then reads end-of-file for good.
///
/// # Examples
///
/// ```no_run
/// # fn f(client: &ringbell::channel::Client) {
/// ringbell::testing::shut_down_server_readiness(client);
/// # }
/// ```
pub fn shut_down_server_readiness(client: &crate::channel::Client) {
    let fd = client
        .server_readiness_fd()
        .expect("a client of the shared-memory transport, greeted with the server's readiness");
    let _ = rustix::net::shutdown(fd, rustix::net::Shutdown::Both);
}

/// The ringer's half of a doorbell's fence pair in mode `fences`, alone: what a ring does
/// between publishing and reading the waiter mark (a `fence(SeqCst)`, or in the asymmetric
/// mode a compiler fence only). For the store-buffering test of the pair across processes.
///
/// # Examples
///
/// ```
/// use ringbell::doorbell::Fences;
///
/// ringbell::testing::ringer_fence(Fences::Symmetric);
/// ```
pub fn ringer_fence(fences: Fences) {
    crate::doorbell::ringer_half(fences == Fences::Asymmetric);
}

/// The waiter's half of a doorbell's fence pair in mode `fences`, alone: what a waiter does
/// between setting the mark and re-checking (a `fence(SeqCst)`, and in the asymmetric mode
/// then `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)`). Returns `false` if the barrier
/// could not be issued. Asymmetric needs this process registered
/// ([`Fences::asymmetric_available`]).
///
/// # Examples
///
/// ```
/// use ringbell::doorbell::Fences;
///
/// assert!(ringbell::testing::waiter_barrier(Fences::Symmetric));
/// ```
pub fn waiter_barrier(fences: Fences) -> bool {
    crate::doorbell::waiter_half(fences == Fences::Asymmetric)
}
