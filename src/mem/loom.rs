//! The loom backend: the same API as the raw backend, over loom atomics and cells, so the
//! models in `loom-tests/` run the crate's real protocol code.
//!
//! Memory is a run of 8-byte slots. Each slot has a loom `AtomicU64` (for 64-bit words), two
//! loom `AtomicU32`s (for 32-bit words at offsets 0 and 4) and a `loom::cell::UnsafeCell` for
//! payload bytes. It lets loom see a payload copy that races with a payload write as the data
//! race it is.
//!
//! What it loses: in the data area a location is a record header in one lap and payload in
//! another, and here the two live in different objects, so a race between a header word of
//! one lap and a payload copy of another is not seen (a Relaxed `refresh_read` passes the
//! models whose records overlay old headers with payload). Those orderings are covered by the
//! uniform-size models, where payload overlays payload, and by miri, which sees real memory.

extern crate std;

use core::ptr::NonNull;
use std::boxed::Box;
use std::sync::Arc;
use std::vec::Vec;

use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use loom::sync::{Condvar, Mutex};

struct Slot {
    w64: AtomicU64,
    w32: [AtomicU32; 2],
    bytes: UnsafeCell<[u8; 8]>,
}

struct Slots {
    slots: Box<[Slot]>,
    len: usize,
    /// The futex model: one mutex + condvar per 128-byte line (doorbells own whole lines).
    futexes: Box<[(Mutex<()>, Condvar)]>,
    /// Whether modelled futex waits on this region return at once (spurious wake-ups).
    spurious: std::sync::atomic::AtomicBool,
}

// SAFETY: the cells are only reached through loom's `with`/`with_mut`, which check every
// access for races; the atomics and mutexes are loom's own, which are Send + Sync.
unsafe impl Send for Slots {}
// SAFETY: as above.
unsafe impl Sync for Slots {}

/// A view of loom-modelled memory; see the raw backend for the contract.
#[derive(Clone, Copy, Debug)]
pub struct Mem {
    slots: NonNull<Slots>,
    len: usize,
}

// SAFETY: loom objects are themselves Send + Sync; `Mem` only reaches them by shared reference.
unsafe impl Send for Mem {}
// SAFETY: as above.
unsafe impl Sync for Mem {}

impl core::fmt::Debug for Slots {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Slots({})", self.len)
    }
}

impl Mem {
    fn slots(&self) -> &Slots {
        // SAFETY: `LoomRegion` keeps the slots alive while any view is used (the
        // `SharedMemory` contract).
        unsafe { self.slots.as_ref() }
    }

    fn check(&self, off: usize, size: usize, align: usize) {
        let in_bounds = off <= self.len && size <= self.len - off;
        assert!(
            in_bounds && off % align == 0,
            "ringbell: shared-memory access out of bounds (a bug in ringbell): \
             offset {off}, size {size}, view {}",
            self.len
        );
    }

    fn u32_at(&self, off: usize) -> &AtomicU32 {
        self.check(off, 4, 4);
        &self.slots().slots[off / 8].w32[(off % 8) / 4]
    }

    fn u64_at(&self, off: usize) -> &AtomicU64 {
        self.check(off, 8, 8);
        &self.slots().slots[off / 8].w64
    }

    /// The futex model's mutex and condvar for the word at `off`.
    pub(crate) fn futex_model(&self, off: usize) -> &(Mutex<()>, Condvar) {
        self.check(off, 4, 4);
        assert_eq!(off % 128, 0, "a futex word starts a 128-byte line");
        &self.slots().futexes[off / 128]
    }

    /// Whether modelled futex waits return at once.
    pub(crate) fn spurious_wakeups(&self) -> bool {
        self.slots()
            .spurious
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Length of the view in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether the view is empty.
    #[allow(dead_code)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Atomic load of the `u32` at `off`.
    pub(crate) fn load_u32(&self, off: usize, order: Ordering) -> u32 {
        self.u32_at(off).load(order)
    }

    /// Atomic store of the `u32` at `off`.
    pub(crate) fn store_u32(&self, off: usize, val: u32, order: Ordering) {
        self.u32_at(off).store(val, order)
    }

    /// Atomic swap of the `u32` at `off`.
    pub(crate) fn swap_u32(&self, off: usize, val: u32, order: Ordering) -> u32 {
        self.u32_at(off).swap(val, order)
    }

    /// Atomic bitwise or into the `u32` at `off`; returns the previous value.
    #[cfg_attr(not(feature = "std"), allow(dead_code))]
    pub(crate) fn fetch_or_u32(&self, off: usize, val: u32, order: Ordering) -> u32 {
        self.u32_at(off).fetch_or(val, order)
    }

    /// Atomic bitwise and into the `u32` at `off`; returns the previous value.
    #[cfg_attr(any(loom, not(feature = "std")), allow(dead_code))]
    pub(crate) fn fetch_and_u32(&self, off: usize, val: u32, order: Ordering) -> u32 {
        self.u32_at(off).fetch_and(val, order)
    }

    /// Atomic wrapping add to the `u32` at `off`.
    pub(crate) fn fetch_add_u32(&self, off: usize, val: u32, order: Ordering) -> u32 {
        self.u32_at(off).fetch_add(val, order)
    }

    /// Atomic compare-exchange of the `u32` at `off`.
    pub(crate) fn cas_u32(
        &self,
        off: usize,
        current: u32,
        new: u32,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u32, u32> {
        self.u32_at(off)
            .compare_exchange(current, new, success, failure)
    }

    /// Atomic load of the `u64` at `off`.
    pub(crate) fn load_u64(&self, off: usize, order: Ordering) -> u64 {
        self.u64_at(off).load(order)
    }

    /// Atomic store of the `u64` at `off`.
    pub(crate) fn store_u64(&self, off: usize, val: u64, order: Ordering) {
        self.u64_at(off).store(val, order)
    }

    /// Atomic compare-exchange of the `u64` at `off`.
    pub(crate) fn cas_u64(
        &self,
        off: usize,
        current: u64,
        new: u64,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u64, u64> {
        self.u64_at(off)
            .compare_exchange(current, new, success, failure)
    }

    /// Copies `src` into the view at `off`, slot by slot through loom cells.
    pub(crate) fn copy_in(&self, off: usize, src: &[u8]) {
        self.check(off, src.len(), 1);
        let mut done = 0;
        while done < src.len() {
            let at = off + done;
            let (slot, start) = (at / 8, at % 8);
            let n = (8 - start).min(src.len() - done);
            self.slots().slots[slot].bytes.with_mut(|p| {
                // SAFETY: loom checks that no other thread accesses this cell concurrently;
                // `p` points at the slot's 8 bytes and `start + n <= 8`.
                let cell = unsafe { &mut *p };
                cell[start..start + n].copy_from_slice(&src[done..done + n]);
            });
            done += n;
        }
    }

    /// Copies bytes from the view at `off` into `dst`, slot by slot through loom cells.
    pub(crate) fn prefetch(&self, _off: usize) {}

    pub(crate) fn copy_out(&self, off: usize, dst: &mut [u8]) {
        self.check(off, dst.len(), 1);
        let mut done = 0;
        while done < dst.len() {
            let at = off + done;
            let (slot, start) = (at / 8, at % 8);
            let n = (8 - start).min(dst.len() - done);
            self.slots().slots[slot].bytes.with(|p| {
                // SAFETY: loom checks that no other thread writes this cell concurrently.
                let cell = unsafe { &*p };
                dst[done..done + n].copy_from_slice(&cell[start..start + n]);
            });
            done += n;
        }
    }
}

/// Loom-modelled memory, zeroed; [`LoomRegion`](crate::region::LoomRegion) wraps it. Cheap
/// to clone.
#[derive(Clone)]
pub(crate) struct LoomMemory {
    slots: Arc<Slots>,
}

impl LoomMemory {
    /// A zeroed region of `len` bytes (rounded up to a multiple of 8).
    pub(crate) fn zeroed(len: usize) -> Self {
        let slots: Vec<Slot> = (0..len.div_ceil(8))
            .map(|_| Slot {
                w64: AtomicU64::new(0),
                w32: [AtomicU32::new(0), AtomicU32::new(0)],
                bytes: UnsafeCell::new([0; 8]),
            })
            .collect();
        let futexes: Vec<(Mutex<()>, Condvar)> = (0..len.div_ceil(128))
            .map(|_| (Mutex::new(()), Condvar::new()))
            .collect();
        Self {
            slots: Arc::new(Slots {
                slots: slots.into_boxed_slice(),
                len,
                futexes: futexes.into_boxed_slice(),
                spurious: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    /// Makes every modelled futex wait on this memory return at once: spurious wake-ups.
    pub(crate) fn set_spurious_wakeups(&self, on: bool) {
        self.slots
            .spurious
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.slots.len
    }

    /// The view; valid while `self` (or a clone) lives.
    pub(crate) fn mem(&self) -> Mem {
        Mem {
            slots: NonNull::from(&*self.slots),
            len: self.slots.len,
        }
    }
}
