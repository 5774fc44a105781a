//! A borrowed, public view of shared memory, for tests and fuzzers that play a misbehaving
//! peer (feature `test-hooks`).

use core::marker::PhantomData;

use super::Mem;
use crate::sync::Ordering;

/// A view of a region's memory borrowed from it: word-sized atomic access and byte copies at
/// byte offsets, for playing a buggy or hostile peer in tests. Every access is
/// bounds-checked and panics out of bounds. Only with the `test-hooks` feature; obtain one
/// with [`testing::view`](crate::testing::view).
///
/// # Examples
///
/// ```
/// use ringbell::testing;
/// use ringbell::region::HeapRegion;
/// use std::sync::atomic::Ordering;
///
/// let region = testing::zeroed_heap_region(64);
/// let view = testing::view(&region);
/// view.store_u32(8, 7, Ordering::Relaxed);
/// assert_eq!(view.load_u32(8, Ordering::Relaxed), 7);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct View<'a> {
    mem: Mem,
    _borrow: PhantomData<&'a ()>,
}

impl View<'_> {
    /// A view of `mem`, which the caller keeps alive for the view's lifetime.
    pub(crate) fn new(mem: Mem) -> Self {
        Self {
            mem,
            _borrow: PhantomData,
        }
    }

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
