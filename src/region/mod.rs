//! Memory that holds a ring: sealed memfds shared between processes, heap memory for threads
//! of one process, and memory the caller maps itself.
//!
//! | type | what it is | `no_std` |
//! |---|---|---|
//! | [`Region`] | a sealed memfd mapped into this process; its fd goes to other processes | `std` |
//! | [`HeapRegion`] | zeroed heap memory, for threads of one process (and miri) | `std` |
//! | [`RawRegion`] | memory the caller maps and keeps alive | yes |
//!
//! Regions the crate lays out are typed by what they hold ([`Spsc`], [`Mpsc`], [`Bell`]): an
//! end of the wrong kind does not attach to them (see [`Admits`]). Every ring end is generic
//! over [`SharedMemory`], which all three implement.
//!
//! # Examples
//!
//! ```
//! use ringbell::region::{HeapRegion, Spsc};
//! use ringbell::spsc;
//!
//! let region: HeapRegion<Spsc> = HeapRegion::new(&spsc::Config::new(4096))?;
//! let (mut tx, mut rx) = (region.producer()?, region.consumer()?);
//! tx.try_send(1, b"hi")?;
//! assert_eq!(rx.try_recv()?.data, b"hi");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#[cfg(all(feature = "std", not(loom)))]
mod heap;
mod kind;
#[cfg(loom)]
mod loom;
#[cfg(all(feature = "std", not(loom)))]
mod memfd;
#[cfg(not(loom))]
mod raw;

#[cfg(all(feature = "std", not(loom)))]
pub use heap::HeapRegion;
#[allow(unused_imports)] // which of them a build uses depends on its features
pub(crate) use kind::sealed::{Init, KindOf};
pub use kind::{Admits, Bell, Kind, Mpsc, RegionConfig, Spsc, Untyped};
#[cfg(loom)]
pub use loom::LoomRegion;
#[cfg(all(feature = "std", not(loom)))]
pub use memfd::{DEFAULT_PREFAULT_THRESHOLD, REQUIRED_SEALS, Region, RegionError, RegionOptions};
#[cfg(not(loom))]
pub use raw::RawRegion;

use crate::mem::Mem;

pub(crate) mod sealed {
    use crate::mem::Mem;

    /// The crate-private half of [`SharedMemory`](super::SharedMemory).
    pub trait Memory {
        /// The raw view of the memory. `Mem` carries no lifetime, so it never leaves the crate:
        /// handing it out would let safe code use it after the memory is gone.
        fn mem(&self) -> Mem;
    }
}
#[allow(unused_imports)] // used where a concrete region calls `mem()`
pub(crate) use sealed::Memory;

/// Memory that can hold a ring, and keeps it alive: every ring end is generic over it and
/// holds one (a clone of the region, or a reference) for as long as it lives.
///
/// Sealed: it is implemented by [`Region`], [`HeapRegion`] and [`RawRegion`] (memory you map
/// yourself), and by references to them. The memory must stay valid at the same address for
/// as long as the value lives, and is only ever reached through the crate's atomic accessors
/// and byte copies.
///
/// # Examples
///
/// ```
/// use ringbell::region::{HeapRegion, SharedMemory};
/// use ringbell::spsc;
///
/// fn frames_waiting<S: SharedMemory>(rx: &spsc::Consumer<S>) -> bool {
///     rx.has_data()
/// }
/// let (_tx, rx) = spsc::channel(256)?;
/// assert!(!frames_waiting(&rx));
/// # Ok::<(), ringbell::AttachError>(())
/// ```
pub trait SharedMemory: sealed::Memory {
    /// What the memory holds: a typed region's kind, or [`Untyped`].
    type Kind: Kind;
}

impl<T: SharedMemory + ?Sized> sealed::Memory for &T {
    fn mem(&self) -> Mem {
        (**self).mem()
    }
}

impl<T: SharedMemory + ?Sized> SharedMemory for &T {
    type Kind = T::Kind;
}
