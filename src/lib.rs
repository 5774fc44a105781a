//! Lock-free shared-memory rings of variable-length byte frames for IPC on one machine,
//! futex doorbells that never lose a wake-up, and a request/response channel with a reactor
//! for servers.
//!
//! `ringbell` is a transport for IPC servers: a server process and its clients map the same
//! memory and exchange frames (a `u32` tag and bytes) without a system call per message.
//!
//! | module | what it gives | `no_std` |
//! |---|---|---|
//! | [`spsc`] | one producer, one consumer: [`spsc::channel`], [`spsc::Producer`], [`spsc::Consumer`] | yes |
//! | [`mpsc`] | one shared ring for cooperating producers: [`mpsc::Producer`], [`mpsc::Consumer`] | yes |
//! | [`fanin`] | one consumer over many SPSC rings sharing one doorbell: [`fanin::FanIn`] | with `alloc` |
//! | [`region`] | memory that holds a ring: sealed memfds ([`region::Region`]), heap and raw memory | partly |
//! | [`doorbell`] | how blocking calls wait ([`doorbell::WaitOptions`]), notifiers, doorbells of one's own | yes |
//! | [`channel`] | request/response between processes: [`channel::Server`], [`channel::Client`] | `std` |
//! | [`reactor`] | the serve loop: inline when idle, an executor when busy, ordered responses | `std` |
//! | [`inspect`] | a read-only snapshot of any region's shared words | yes |
//! | [`wire`] | the versioned wire format: every shared offset, bit and tag | yes |
//!
//! # Guarantees
//!
//! * Frames arrive in order, exactly once; a frame above the frame cap is refused at once
//!   with a typed error ([`SendError::TooLarge`]), never left to hang.
//! * Shared memory is untrusted input: a corrupt header, position or record from a buggy or
//!   hostile peer yields a typed error ([`HeaderError`], [`Corruption`]) — never a panic, an
//!   out-of-bounds access, a `SIGBUS` or an endless loop.
//! * Roles are exclusive: a second producer or consumer, from any process, is refused
//!   ([`AttachError::RoleTaken`]).
//! * Every blocking call has a `_timeout` form, and notices a peer that closed at once and a
//!   peer process that died within one sleep slice (50 ms by default).
//!
//! # Example
//!
//! ```
//! use ringbell::region::Region;
//! use ringbell::spsc;
//!
//! // A sealed memfd; another process would receive `region.fd()` and open it.
//! let region = Region::create(&spsc::Config::new(1 << 16))?;
//! let (mut tx, mut rx) = (region.producer()?, region.consumer()?);
//! tx.try_send(42, b"hello")?;
//! let frame = rx.try_recv()?;
//! assert_eq!((frame.tag, frame.data.as_slice()), (42, &b"hello"[..]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Features
//!
//! * `std` (default): regions, channels, the reactor, owned frames. Without it the crate is
//!   `#![no_std]` and needs no allocator.
//! * `alloc`: the fan-in without `std`.
//! * `test-hooks`: `ringbell::testing`, hooks for tests and fuzzers that play a hostile peer. Not for
//!   production builds.
#![cfg_attr(not(feature = "std"), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, clippy::undocumented_unsafe_blocks)]

#[cfg(not(target_has_atomic = "64"))]
compile_error!("ringbell needs 64-bit atomics (its positions are u64 counters)");

#[cfg(not(any(target_os = "linux", target_os = "android")))]
compile_error!("ringbell supports Linux only for now (futexes and memfds)");

#[cfg(feature = "std")]
pub mod channel;
mod clock;
pub mod doorbell;
mod error;
#[cfg(feature = "alloc")]
pub mod fanin;
mod fork;
mod futex;
mod header;
pub mod inspect;
mod liveness;
mod mem;
pub mod mpsc;
mod mutant;
#[cfg(feature = "std")]
pub mod reactor;
pub mod region;
mod role;
mod space;
pub mod spsc;
mod sync;
#[cfg(all(feature = "test-hooks", not(loom)))]
pub mod testing;
pub mod wire;

pub use error::{AttachError, Corruption, HeaderError, RecvError, SendError};
pub use role::OwnerId;

/// The README's and the guides' examples, compiled and run as doctests.
#[cfg(doctest)]
mod docs {
    #[doc = include_str!("../README.md")]
    struct Readme;
    #[doc = include_str!("../docs/api.md")]
    struct Api;
}

/// A frame received into owned memory.
///
/// # Examples
///
/// ```
/// let (mut tx, mut rx) = ringbell::spsc::channel(4096)?;
/// tx.try_send(7, b"owned")?;
/// let ringbell::Frame { tag, data } = rx.try_recv()?;
/// assert_eq!((tag, data), (7, b"owned".to_vec()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg(feature = "std")]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The sender's tag, carried untouched.
    pub tag: u32,
    /// The payload.
    pub data: std::vec::Vec<u8>,
}
