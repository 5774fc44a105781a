//! The production backend: raw pointers into a mapping.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// A view of shared memory; see the [module docs](crate::mem).
///
/// `Mem` is a plain pointer and length: copying it does not copy memory. Whoever created it
/// (a [`SharedMemory`](crate::mem::SharedMemory) implementation) keeps the memory alive.
#[derive(Clone, Copy, Debug)]
pub struct Mem {
    /// Base of the view; 8-byte aligned; valid for `len` bytes (see `from_raw_parts`).
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: `Mem` only performs atomic accesses and byte copies through its pointer; the memory
// is designed to be shared between threads and processes.
unsafe impl Send for Mem {}
// SAFETY: as above; no method hands out a non-atomic reference.
unsafe impl Sync for Mem {}

impl Mem {
    /// Creates a view of `len` bytes at `ptr`; `None` if `ptr` is null or not 8-byte aligned.
    ///
    /// # Safety
    ///
    /// `ptr` must be valid for reads and writes of `len` bytes for as long as this `Mem`, or
    /// any copy of it, is used; the bytes may be accessed concurrently only through atomics or
    /// byte copies, never through Rust references.
    pub(crate) unsafe fn from_raw_parts(ptr: *mut u8, len: usize) -> Option<Self> {
        let ptr = NonNull::new(ptr)?;
        if (ptr.as_ptr() as usize) % 8 != 0 {
            return None;
        }
        Some(Self { ptr, len })
    }

    /// Length of the view in bytes.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether the view is empty.
    #[inline]
    #[cfg_attr(not(feature = "test-hooks"), allow(dead_code))]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Panics unless `[off, off + size)` lies inside the view and `off` is `align`-aligned.
    /// Offsets are derived from validated positions, so this fires only on a crate bug.
    #[inline(always)]
    fn check(&self, off: usize, size: usize, align: usize) {
        let in_bounds = off <= self.len && size <= self.len - off;
        assert!(
            in_bounds && off % align == 0,
            "ringbell: shared-memory access out of bounds (a bug in ringbell): \
             offset {off}, size {size}, view {}",
            self.len
        );
    }

    #[inline(always)]
    fn u32_at(&self, off: usize) -> &AtomicU32 {
        self.check(off, 4, 4);
        // SAFETY: `check` proved the word is inside the view and 4-byte aligned (the base is
        // 8-byte aligned); `from_raw_parts`' contract keeps it valid while `self` is used and
        // only atomic accesses or byte copies reach it, so an `&AtomicU32` is sound.
        unsafe { AtomicU32::from_ptr(self.ptr.as_ptr().add(off).cast()) }
    }

    #[inline(always)]
    fn u64_at(&self, off: usize) -> &AtomicU64 {
        self.check(off, 8, 8);
        // SAFETY: as in `u32_at`, for an 8-byte aligned word.
        unsafe { AtomicU64::from_ptr(self.ptr.as_ptr().add(off).cast()) }
    }

    /// The 32-bit word at `off` as an atomic, for the futex system calls.
    #[inline]
    #[allow(dead_code)]
    pub(crate) fn futex_word(&self, off: usize) -> &AtomicU32 {
        self.u32_at(off)
    }

    /// Atomic load of the `u32` at `off`.
    #[inline]
    pub(crate) fn load_u32(&self, off: usize, order: Ordering) -> u32 {
        self.u32_at(off).load(order)
    }

    /// Atomic store of the `u32` at `off`.
    #[inline]
    pub(crate) fn store_u32(&self, off: usize, val: u32, order: Ordering) {
        self.u32_at(off).store(val, order)
    }

    /// Atomic swap of the `u32` at `off`; returns the previous value.
    #[inline]
    pub(crate) fn swap_u32(&self, off: usize, val: u32, order: Ordering) -> u32 {
        self.u32_at(off).swap(val, order)
    }

    /// Atomic wrapping add to the `u32` at `off`; returns the previous value.
    #[inline]
    pub(crate) fn fetch_add_u32(&self, off: usize, val: u32, order: Ordering) -> u32 {
        self.u32_at(off).fetch_add(val, order)
    }

    /// Atomic compare-exchange of the `u32` at `off`.
    #[inline]
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
    #[inline]
    pub(crate) fn load_u64(&self, off: usize, order: Ordering) -> u64 {
        self.u64_at(off).load(order)
    }

    /// Atomic store of the `u64` at `off`.
    #[inline]
    pub(crate) fn store_u64(&self, off: usize, val: u64, order: Ordering) {
        self.u64_at(off).store(val, order)
    }

    /// Atomic compare-exchange of the `u64` at `off`.
    #[inline]
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

    /// Copies `src` into the view at `off`.
    #[inline]
    pub(crate) fn copy_in(&self, off: usize, src: &[u8]) {
        self.check(off, src.len(), 1);
        // SAFETY: the destination range is inside the view (checked) and valid by
        // `from_raw_parts`' contract; `src` is a Rust slice, so it cannot overlap memory that
        // no reference may point into. Concurrent foreign writes to the destination can only
        // change which bytes end up there (module docs).
        unsafe {
            core::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.as_ptr().add(off), src.len())
        }
    }

    /// Copies `dst.len()` bytes from the view at `off` into `dst`.
    #[inline]
    pub(crate) fn copy_out(&self, off: usize, dst: &mut [u8]) {
        self.check(off, dst.len(), 1);
        // SAFETY: the source range is inside the view (checked) and valid by
        // `from_raw_parts`' contract; `dst` is a unique Rust slice that cannot overlap it.
        unsafe {
            core::ptr::copy_nonoverlapping(self.ptr.as_ptr().add(off), dst.as_mut_ptr(), dst.len())
        }
    }

    /// Asks the CPU to start loading the cache line holding byte `off`, without waiting for
    /// it and without any effect on memory: a hint, ignored if `off` is outside the view.
    ///
    /// The consumer's next record header sits at an address computed from the current
    /// header's contents, so without a hint each record's cache miss waits for the previous
    /// one; prefetching published lines ahead lets the misses overlap.
    #[inline(always)]
    pub(crate) fn prefetch(&self, off: usize) {
        #[cfg(all(target_arch = "x86_64", not(miri)))]
        if off < self.len {
            // SAFETY: `off` is inside the view, so the pointer stays inside the allocation.
            // A prefetch reads nothing architecturally and cannot fault; SSE is part of the
            // x86_64 baseline.
            #[allow(unused_unsafe)]
            unsafe {
                use core::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
                _mm_prefetch::<_MM_HINT_T0>(self.ptr.as_ptr().add(off).cast::<i8>());
            }
        }
        #[cfg(not(all(target_arch = "x86_64", not(miri))))]
        let _ = off;
    }

    /// Raw pointer to `len` bytes at `off`, for the `unsafe` trusted-peer slice accessors.
    #[inline]
    pub(crate) fn bytes_ptr(&self, off: usize, len: usize) -> *mut u8 {
        self.check(off, len, 1);
        // SAFETY: in bounds (checked), so the offset pointer stays inside the allocation.
        unsafe { self.ptr.as_ptr().add(off) }
    }
}
