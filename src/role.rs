//! Owner ids and the role words a producer or consumer claims in a ring header.
//!
//! A role word holds [`ROLE_FREE`](crate::wire::ROLE_FREE), the owner id of the handle that
//! claimed it, or [`ROLE_CLOSED`](crate::wire::ROLE_CLOSED) once that handle was dropped.
//! Claiming is a compare-and-swap from free, so two handles — in two processes, or opened
//! twice in one — can never both hold a role. A closed role stays closed: its peer reads the
//! word to learn the other side left, and a ring is never silently reused by a newcomer.

use core::fmt;
use core::num::NonZeroU64;

use crate::error::AttachError;
use crate::mem::Mem;
use crate::sync::Ordering;
use crate::wire::{ROLE_CLOSED, ROLE_FREE};

/// Bit of an owner id saying its low 32 bits are the holder's process id.
const PID_BIT: u64 = 1 << 62;

/// Who holds a role: any value except 0 (free) and `u64::MAX` (closed).
///
/// Under `std`, [`OwnerId::unique`] builds one from the process id and a per-process counter,
/// so every handle in every process gets its own.
///
/// # Examples
///
/// ```
/// use ringbell::{spsc, OwnerId};
/// use ringbell::region::HeapRegion;
///
/// let region = HeapRegion::new(&spsc::Config::new(4096))?;
/// let tx = spsc::Producer::attach(region, OwnerId::unique())?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct OwnerId(NonZeroU64);

impl OwnerId {
    /// Wraps `id`; `None` for 0 and `u64::MAX`, which the role words reserve.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::OwnerId;
    /// assert!(OwnerId::new(42).is_some());
    /// assert!(OwnerId::new(0).is_none());
    /// assert!(OwnerId::new(u64::MAX).is_none());
    /// ```
    pub const fn new(id: u64) -> Option<Self> {
        if id == ROLE_CLOSED {
            return None;
        }
        match NonZeroU64::new(id) {
            Some(v) => Some(Self(v)),
            None => None,
        }
    }

    /// The raw value stored in the role word.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(ringbell::OwnerId::new(42).unwrap().get(), 42);
    /// ```
    pub const fn get(self) -> u64 {
        self.0.get()
    }

    /// A fresh id for a handle of this process: the process id in the low 32 bits, a
    /// per-process counter in the high 32 bits.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::OwnerId;
    /// let a = OwnerId::unique();
    /// let b = OwnerId::unique();
    /// assert_ne!(a, b);
    /// assert_eq!(a.pid(), Some(std::process::id()));
    /// assert_eq!(OwnerId::new(7).unwrap().pid(), None);
    /// ```
    #[cfg(feature = "std")]
    pub fn unique() -> Self {
        use core::sync::atomic::AtomicU32;
        static NEXT: AtomicU32 = AtomicU32::new(1);
        // A 30-bit counter that skips 0 when it wraps; with PID_BIT set the id is never 0, and
        // never `u64::MAX` (bit 63 stays clear).
        let n = loop {
            let n = NEXT.fetch_add(1, core::sync::atomic::Ordering::Relaxed) & ((1 << 30) - 1);
            if n != 0 {
                break n as u64;
            }
        };
        let pid = rustix::process::getpid().as_raw_nonzero().get() as u32 as u64;
        Self::new(PID_BIT | (n << 32) | pid).unwrap_or(Self(NonZeroU64::MIN))
    }

    /// A fresh id that names no process ([`pid`](Self::pid) is `None`), so a peer holding it
    /// is never taken for dead through a pidfd. For handles whose liveness comes from
    /// elsewhere (a channel's socket), and for peers in different pid namespaces, where a pid
    /// means nothing to the other side (a dead-peer check would find no such process and
    /// report the live peer dead).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::OwnerId;
    /// let a = OwnerId::unique_without_pid();
    /// assert_ne!(a, OwnerId::unique_without_pid());
    /// assert_eq!(a.pid(), None);
    /// ```
    #[cfg(feature = "std")]
    pub fn unique_without_pid() -> Self {
        // The same counter as `unique`, under this process's id in bits 30..62, PID_BIT clear.
        let n = Self::unique().get() >> 32 & ((1 << 30) - 1);
        let pid = rustix::process::getpid().as_raw_nonzero().get() as u32 as u64;
        Self::new((pid << 30) | n).unwrap_or(Self(NonZeroU64::MIN))
    }

    /// The process that holds this id, for ids made by [`OwnerId::unique`] (which mark it);
    /// `None` for ids made by [`OwnerId::new`], which say nothing about a process.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::OwnerId;
    ///
    /// assert_eq!(OwnerId::unique().pid(), Some(std::process::id()));
    /// assert_eq!(OwnerId::new(42).unwrap().pid(), None);
    /// ```
    pub const fn pid(self) -> Option<u32> {
        if self.0.get() & PID_BIT != 0 {
            Some(self.0.get() as u32)
        } else {
            None
        }
    }
}

impl fmt::Debug for OwnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OwnerId({:#x})", self.0)
    }
}

/// Claims the role word at `off` for `owner`.
pub(crate) fn claim(mem: &Mem, off: usize, owner: OwnerId) -> Result<(), AttachError> {
    // AcqRel: the Acquire half pairs with the Release in `close` of an earlier holder; the
    // Release half is harmless and keeps the claim ordered before our first access.
    match mem.cas_u64(
        off,
        ROLE_FREE,
        owner.get(),
        Ordering::AcqRel,
        Ordering::Acquire,
    ) {
        Ok(_) => Ok(()),
        Err(ROLE_CLOSED) => Err(AttachError::RoleClosed),
        Err(other) => Err(AttachError::RoleTaken { owner: other }),
    }
}

/// Gives a claimed role back without closing it (an attach that failed half way).
pub(crate) fn unclaim(mem: &Mem, off: usize, owner: OwnerId) {
    let _ = mem.cas_u64(
        off,
        owner.get(),
        ROLE_FREE,
        Ordering::Release,
        Ordering::Relaxed,
    );
}

/// Marks the role held by `owner` closed for good.
pub(crate) fn close(mem: &Mem, off: usize, owner: OwnerId) {
    // Release: pairs with the Acquire in `is_closed`; everything this side published before
    // closing is visible to a peer that sees the role closed.
    let _ = mem.cas_u64(
        off,
        owner.get(),
        ROLE_CLOSED,
        Ordering::Release,
        Ordering::Relaxed,
    );
}

/// Whether the role word at `off` says its holder closed it.
#[inline]
pub(crate) fn is_closed(mem: &Mem, off: usize) -> bool {
    // Acquire: pairs with the Release in `close`.
    mem.load_u64(off, Ordering::Acquire) == ROLE_CLOSED
}
