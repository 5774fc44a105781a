//! Lock-free shared-memory rings of variable-length byte frames for IPC on one machine.
//!
//! `ringbell` is a transport for IPC servers: a server process and its clients map the same
//! memory and exchange frames without a system call per message.
//!
//! | module | what it gives | `no_std` |
//! |---|---|---|
//! | [`spsc`] | a single-producer single-consumer ring: [`spsc::Producer`], [`spsc::Consumer`] | yes |
//! | [`fanin`] | one consumer over many SPSC rings sharing one doorbell: [`fanin::FanIn`] | yes, with `alloc` |
//! | [`mpsc`] | one shared ring for cooperating producers: [`mpsc::Producer`], [`mpsc::Consumer`] | yes |
//! | [`doorbell`] | sleeping and waking without lost wake-ups: [`doorbell::WaitOptions`], [`doorbell::WaitStats`] | yes |
//! | [`futex`] | futex wait/wake on a shared word, the monotonic clock | yes |
//! | [`region`] | sealed memfd regions and in-process heap regions | `std` |
//! | [`channel`] | request/response channels between processes: [`channel::Server`], [`channel::Client`] | `std` |
//! | [`reactor`] | the serve loop: inline when idle, an executor when busy, ordered responses | `std` |
//! | [`peer`] | pidfd liveness; the Unix-socket rendezvous (`0600`, `SCM_RIGHTS`, `SO_PEERCRED`) | `std` |
//! | [`mem`] | the shared-memory access layer every ring goes through | yes |
//! | [`layout`] | the shared header: offsets, identity checks | yes |
//! | [`frame`] | record encoding | yes |
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
//!
//! # Example
//!
//! ```
//! use ringbell::region::Region;
//! use ringbell::spsc::RingConfig;
//!
//! let region = Region::create_spsc(&RingConfig::new(1 << 16))?;
//! let (mut tx, mut rx) = (region.producer()?, region.consumer()?);
//! tx.try_send(42, b"hello")?;
//! let frame = rx.try_recv()?;
//! assert_eq!((frame.tag, frame.data.as_slice()), (42, &b"hello"[..]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![cfg_attr(not(feature = "std"), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, clippy::undocumented_unsafe_blocks)]

#[cfg(not(target_has_atomic = "64"))]
compile_error!("ringbell needs 64-bit atomics (its positions are u64 counters)");

#[cfg(not(any(target_os = "linux", target_os = "android")))]
compile_error!("ringbell supports Linux only for now (futexes and memfds)");

#[cfg(feature = "std")]
pub mod channel;
pub mod doorbell;
mod error;
#[cfg(feature = "alloc")]
pub mod fanin;
pub mod frame;
pub mod futex;
pub mod layout;
pub mod mem;
pub mod mpsc;
mod mutant;
#[cfg(all(feature = "std", not(loom)))]
pub mod peer;
#[cfg(feature = "std")]
pub mod reactor;
#[cfg(all(feature = "std", not(loom)))]
pub mod region;
mod role;
pub mod spsc;
mod sync;

pub use error::{AttachError, Corruption, HeaderError, RecvError, SendError};
pub use role::OwnerId;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// A frame received into owned memory.
#[cfg(feature = "std")]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The sender's tag, carried untouched.
    pub tag: u32,
    /// The payload.
    pub data: std::vec::Vec<u8>,
}
