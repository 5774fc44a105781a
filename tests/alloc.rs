//! What receiving allocates, counted by a global allocator (its own test binary, so that no
//! other test's allocations are counted).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

/// Counts the bytes allocated on each thread.
struct Counting;

std::thread_local! {
    static ALLOCATED: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards every call to the system allocator unchanged; the counter is a
// const-initialised thread-local (no allocation, no reentrancy).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.with(|a| a.set(a.get() + layout.size()));
        // SAFETY: as the caller's contract for `GlobalAlloc::alloc`.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.with(|a| a.set(a.get() + layout.size()));
        // SAFETY: as the caller's contract for `GlobalAlloc::alloc_zeroed`.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as the caller's contract for `GlobalAlloc::dealloc`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Bytes this thread allocates while `f` runs.
fn allocated_by<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = ALLOCATED.with(Cell::get);
    let t = f();
    (t, ALLOCATED.with(Cell::get) - before)
}

/// An MPSC consumer's owned receive allocates the frame, not the frame cap: it used to zero a
/// `frame_cap`-sized buffer for every frame (128 KiB per frame on a 1 MiB ring).
#[test]
fn mpsc_recv_allocates_the_frame_not_the_frame_cap() {
    let _watchdog = common::watchdog();
    let (mut rx, region) = ringbell::mpsc::channel(1 << 20).unwrap();
    assert!(rx.max_frame() > 100_000);
    let mut tx = region.producer().unwrap();
    for _ in 0..3 {
        tx.try_send(1, b"small").unwrap();
    }
    let (f, bytes) = allocated_by(|| rx.recv().unwrap());
    assert_eq!(f.data, b"small");
    assert!(
        bytes < 1024,
        "recv allocated {bytes} bytes for a 5-byte frame"
    );
    let (f, bytes) = allocated_by(|| rx.recv_timeout(Duration::from_secs(5)).unwrap());
    assert_eq!(f.data, b"small");
    assert!(
        bytes < 1024,
        "recv_timeout allocated {bytes} bytes for a 5-byte frame"
    );
    let (f, bytes) = allocated_by(|| rx.try_recv().unwrap());
    assert_eq!(f.data, b"small");
    assert!(
        bytes < 1024,
        "try_recv allocated {bytes} bytes for a 5-byte frame"
    );
}

/// The SPSC consumer's owned receives allocate the frame only.
#[test]
fn spsc_recv_allocates_the_frame_only() {
    let _watchdog = common::watchdog();
    let (mut tx, mut rx) = ringbell::spsc::channel(1 << 20).unwrap();
    tx.try_send(1, b"small").unwrap();
    tx.try_send(2, b"small").unwrap();
    let (_, bytes) = allocated_by(|| rx.recv().unwrap());
    assert!(
        bytes < 1024,
        "recv allocated {bytes} bytes for a 5-byte frame"
    );
    let (_, bytes) = allocated_by(|| rx.try_recv().unwrap());
    assert!(
        bytes < 1024,
        "try_recv allocated {bytes} bytes for a 5-byte frame"
    );
}
