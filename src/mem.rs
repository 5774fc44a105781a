//! The shared-memory access layer: the only code that touches a raw pointer into a region.
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
pub use self::loom::{LoomRegion, Mem};

/// Memory that can hold a ring: anything that can hand out a [`Mem`] view which stays
/// valid for as long as `self` (or a clone of it) lives.
///
/// Implemented by [`Region`](crate::region::Region) (a mapped memfd) and
/// [`HeapRegion`](crate::region::HeapRegion) (in-process) under `std`, and by
/// [`RawRegion`] for `no_std` users who bring their own mapping.
///
/// # Safety
///
/// The [`Mem`] returned by [`mem`](Self::mem) must stay valid for reads and writes, at the
/// same address and length, for as long as `self` is alive. Every call must return a view of
/// the same memory.
pub unsafe trait SharedMemory {
    /// The raw view of the memory, for the crate's rings. Its accessors are crate-private: a
    /// `Mem` carries no lifetime, so handing it out with public accessors would let safe code
    /// use it after the memory is gone. Use [`view`](Self::view) to look at the memory.
    fn mem(&self) -> Mem;

    /// A borrowed view of the memory with public atomic and copy accessors — for tests,
    /// diagnostics, and playing a misbehaving peer. It cannot outlive `self`.
    fn view(&self) -> View<'_> {
        View {
            mem: self.mem(),
            _borrow: core::marker::PhantomData,
        }
    }
}

/// A view of shared memory borrowed from a [`SharedMemory`]: word-sized atomic access and byte
/// copies at byte offsets. Every access is bounds-checked (and panics out of bounds).
///
/// # Examples
///
/// ```
/// use ringbell::mem::SharedMemory;
/// use ringbell::region::HeapRegion;
/// use std::sync::atomic::Ordering;
///
/// let region = HeapRegion::zeroed(64);
/// let view = region.view();
/// view.store_u32(8, 7, Ordering::Relaxed);
/// assert_eq!(view.load_u32(8, Ordering::Relaxed), 7);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct View<'a> {
    mem: Mem,
    _borrow: core::marker::PhantomData<&'a ()>,
}

use crate::sync::Ordering;

impl View<'_> {
    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.mem.len()
    }

    /// Whether the view is empty.
    pub fn is_empty(&self) -> bool {
        self.mem.is_empty()
    }

    /// Atomic load of the `u32` at `off` (4-byte aligned).
    pub fn load_u32(&self, off: usize, order: Ordering) -> u32 {
        self.mem.load_u32(off, order)
    }

    /// Atomic store of the `u32` at `off`.
    pub fn store_u32(&self, off: usize, val: u32, order: Ordering) {
        self.mem.store_u32(off, val, order)
    }

    /// Atomic load of the `u64` at `off` (8-byte aligned).
    pub fn load_u64(&self, off: usize, order: Ordering) -> u64 {
        self.mem.load_u64(off, order)
    }

    /// Atomic store of the `u64` at `off`.
    pub fn store_u64(&self, off: usize, val: u64, order: Ordering) {
        self.mem.store_u64(off, val, order)
    }

    /// Copies `src` into the memory at `off`.
    pub fn copy_in(&self, off: usize, src: &[u8]) {
        self.mem.copy_in(off, src)
    }

    /// Copies bytes at `off` into `dst`.
    pub fn copy_out(&self, off: usize, dst: &mut [u8]) {
        self.mem.copy_out(off, dst)
    }
}

/// A `no_std` [`SharedMemory`] over memory the caller maps and keeps alive.
#[cfg(not(loom))]
///
/// # Examples
///
/// ```
/// use ringbell::mem::RawRegion;
/// use ringbell::spsc::{self, Consumer, Producer, RingConfig};
/// use ringbell::OwnerId;
///
/// // A static, 8-byte aligned buffer standing in for a shared mapping.
/// #[repr(C, align(128))]
/// struct Buf([u8; 1024 + 256]);
/// let buf: &'static mut Buf = Box::leak(Box::new(Buf([0; 1024 + 256])));
///
/// // SAFETY: the buffer is leaked, so it lives forever, and nothing else touches it.
/// let region = unsafe { RawRegion::new(buf.0.as_mut_ptr(), buf.0.len()) }.unwrap();
/// spsc::init(&region, &RingConfig::new(256)).unwrap();
/// let mut tx = Producer::attach(region, OwnerId::new(1).unwrap()).unwrap();
/// let mut rx = Consumer::attach(region, OwnerId::new(2).unwrap()).unwrap();
/// tx.try_send(7, b"hi").unwrap();
/// let mut out = [0u8; 8];
/// assert_eq!(rx.try_recv_into(&mut out).unwrap(), (7, 2));
/// ```
#[cfg(not(loom))]
#[derive(Clone, Copy, Debug)]
pub struct RawRegion {
    mem: Mem,
}

#[cfg(not(loom))]
impl RawRegion {
    /// Wraps `len` bytes at `ptr`. Returns `None` if `ptr` is not 8-byte aligned.
    ///
    /// # Safety
    ///
    /// `ptr` must be valid for reads and writes of `len` bytes for as long as this value or
    /// any copy of it, or any ring handle attached over it, is alive. Other threads and
    /// processes may access the memory concurrently, but only through this crate (or code
    /// following the same protocol); no Rust reference to the bytes may exist.
    pub unsafe fn new(ptr: *mut u8, len: usize) -> Option<Self> {
        // SAFETY: forwarded from this function's contract.
        unsafe { Mem::from_raw_parts(ptr, len) }.map(|mem| Self { mem })
    }
}

// SAFETY: `RawRegion::new`'s contract makes the caller keep the memory valid.
#[cfg(not(loom))]
unsafe impl SharedMemory for RawRegion {
    fn mem(&self) -> Mem {
        self.mem
    }
}

// SAFETY: a reference lives no longer than the value, which keeps its memory valid.
unsafe impl<T: SharedMemory + ?Sized> SharedMemory for &T {
    fn mem(&self) -> Mem {
        (**self).mem()
    }
}
