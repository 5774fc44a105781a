//! The shared-memory access layer: the only code that touches a raw pointer into a region.
//!
//! Crate-private: rings, doorbells and regions reach shared memory through [`Mem`]; users
//! see regions ([`crate::region`]) and, with the `test-hooks` feature, a borrowed
//! [`View`](crate::testing::View) for playing a misbehaving peer.
//!
//! A [`Mem`] is a view of `len` bytes that other threads and processes may read and write
//! at any time. It offers exactly two kinds of access:
//!
//! * **atomic words** — 32- and 64-bit loads, stores, swaps, compare-exchanges and
//!   fetch-adds at a byte offset. Every header word, position, role word, doorbell word and
//!   record header is reached this way, so a concurrent write by a peer is never a data race
//!   in the Rust memory model.
//! * **byte copies** in and out, for payload. A payload byte is never used to decide
//!   anything: it is copied out once and handed to the user. The protocol guarantees that a
//!   well-behaved peer never touches bytes while we copy them (the positions, published with
//!   Release and read with Acquire, hand each byte range from one side to the other). A
//!   hostile peer that writes while we copy can only change which bytes we copy.
//!
//! No Rust reference (`&[u8]`, `&Header`) is ever created over the mapping: words are reached
//! through raw pointers turned into `&AtomicU32`/`&AtomicU64`, which permit concurrent
//! mutation.
//!
//! # Bounds
//!
//! Every access checks its offset against the view's length and the word's alignment. The
//! offsets come from positions that were validated against the ring's geometry first, so a
//! failing check means a bug in this crate, never bad input: it panics rather than touch
//! memory outside the mapping. The fuzz targets exercise this claim.
//!
//! # Loom
//!
//! Under `--cfg loom` the same API is backed by loom atomics and `loom::cell::UnsafeCell`
//! chunks instead of raw memory (see `mem/loom.rs`); callers do not change.

#[cfg(not(loom))]
mod raw;
#[cfg(not(loom))]
pub use raw::Mem;

#[cfg(loom)]
mod loom;
#[cfg(loom)]
pub(crate) use self::loom::LoomMemory;
#[cfg(loom)]
pub use self::loom::Mem;

#[cfg(feature = "test-hooks")]
mod view;
#[cfg(feature = "test-hooks")]
pub use view::View;
