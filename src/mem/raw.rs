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
        if !(in_bounds && off % align == 0) {
            out_of_bounds(off, size, self.len);
        }
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

    /// Atomic bitwise or into the `u32` at `off`; returns the previous value.
    #[cfg_attr(not(feature = "std"), allow(dead_code))]
    #[inline]
    pub(crate) fn fetch_or_u32(&self, off: usize, val: u32, order: Ordering) -> u32 {
        self.u32_at(off).fetch_or(val, order)
    }

    /// Atomic bitwise and into the `u32` at `off`; returns the previous value.
    #[cfg_attr(any(loom, not(feature = "std")), allow(dead_code))]
    #[inline]
    pub(crate) fn fetch_and_u32(&self, off: usize, val: u32, order: Ordering) -> u32 {
        self.u32_at(off).fetch_and(val, order)
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
        unsafe { copy_bytes(src.as_ptr(), self.ptr.as_ptr().add(off), src.len()) }
    }

    /// Copies `dst.len()` bytes from the view at `off` into `dst`.
    #[inline]
    pub(crate) fn copy_out(&self, off: usize, dst: &mut [u8]) {
        self.check(off, dst.len(), 1);
        // SAFETY: the source range is inside the view (checked) and valid by
        // `from_raw_parts`' contract; `dst` is a unique Rust slice that cannot overlap it.
        unsafe { copy_bytes(self.ptr.as_ptr().add(off), dst.as_mut_ptr(), dst.len()) }
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

/// Frames up to this many bytes are copied inline ([`copy_bytes`]), longer ones by `memcpy`.
/// Inline moves of up to 64 bytes measured faster one frame per call (+5 % at 64 B) but a
/// third slower in batches of 64-byte frames than `memcpy`, whose wide moves this baseline
/// target cannot emit; up to 32 bytes they win in both.
const INLINE_COPY_MAX: usize = 32;

/// Copies `len` bytes from `src` to `dst`. Small copies — the frames of a stream of small
/// messages — are done inline with a few unaligned word moves instead of a call into
/// `memcpy`, whose call and length dispatch cost as much as the copy itself at these sizes
/// (measured: a quarter of the one-frame-per-call stream's time at 8 bytes). Bytes may be written more
/// than once (overlapping word moves), always with the same value.
///
/// # Safety
///
/// `src` must be valid for reads and `dst` for writes of `len` bytes, and the two ranges must
/// not overlap.
#[inline(always)]
unsafe fn copy_bytes(src: *const u8, dst: *mut u8, len: usize) {
    /// Copies the first `N` bytes and the last `N` bytes (overlapping when `len < 2 * N`):
    /// every byte when `N <= len <= 2 * N`.
    ///
    /// # Safety
    ///
    /// As [`copy_bytes`], and `N <= len`.
    #[inline(always)]
    unsafe fn ends<const N: usize>(src: *const u8, dst: *mut u8, len: usize) {
        // SAFETY: `N <= len` by the callers, so both moves stay inside the ranges the caller
        // vouched for; unaligned reads and writes of plain bytes.
        unsafe {
            let head = src.cast::<[u8; N]>().read_unaligned();
            let tail = src.add(len - N).cast::<[u8; N]>().read_unaligned();
            dst.cast::<[u8; N]>().write_unaligned(head);
            dst.add(len - N).cast::<[u8; N]>().write_unaligned(tail);
        }
    }
    // SAFETY: each branch reads and writes only inside `[0, len)` of `src` and `dst` (see
    // `ends`), which the caller vouched for; the ranges do not overlap.
    unsafe {
        match len {
            0 => {}
            1..4 => {
                for i in 0..len {
                    dst.add(i).write(src.add(i).read());
                }
            }
            4..8 => ends::<4>(src, dst, len),
            8..16 => ends::<8>(src, dst, len),
            16..=INLINE_COPY_MAX => ends::<16>(src, dst, len),
            _ => core::ptr::copy_nonoverlapping(src, dst, len),
        }
    }
}

/// The panic of a failed [`Mem::check`], out of line: the hot path then passes its three
/// words in registers only when it fails. With the message formatted inline the compiler
/// stored them on the stack before every access (two stores per access, ahead of the branch),
/// and in a one-frame-per-call stream those stores queued behind the ring's cache misses.
#[cold]
#[inline(never)]
#[track_caller]
fn out_of_bounds(off: usize, size: usize, len: usize) -> ! {
    panic!(
        "ringbell: shared-memory access out of bounds (a bug in ringbell): offset {off}, \
         size {size}, view {len}"
    )
}

#[cfg(test)]
mod tests {
    use super::copy_bytes;

    /// Every length around the inline sizes copies exactly its bytes: none missed, none past
    /// the end.
    #[test]
    fn small_copies_copy_exactly_their_bytes() {
        for len in 0..=200usize {
            let src: [u8; 256] = core::array::from_fn(|i| i as u8 ^ 0xA5);
            let mut dst = [0u8; 256];
            // SAFETY: both buffers hold 256 bytes, more than `len`; distinct arrays.
            unsafe { copy_bytes(src.as_ptr(), dst.as_mut_ptr(), len) };
            assert_eq!(dst[..len], src[..len], "len {len}");
            assert!(
                dst[len..].iter().all(|&b| b == 0),
                "len {len}: wrote past the end"
            );
        }
    }
}
