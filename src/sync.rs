//! The one switch between `core` atomics and loom's.
//!
//! Every other module imports orderings, fences and the spin hint from here, so a
//! `--cfg loom` build swaps all of them at once and nothing else needs a `cfg`.

#[cfg(loom)]
#[allow(unused_imports)]
pub(crate) use loom::sync::atomic::{Ordering, fence};

#[cfg(not(loom))]
#[allow(unused_imports)]
pub(crate) use core::sync::atomic::{Ordering, fence};

/// Tells the processor (or loom's scheduler) that this thread is spinning.
#[inline]
#[allow(dead_code)]
pub(crate) fn spin_loop() {
    #[cfg(loom)]
    loom::hint::spin_loop();
    #[cfg(not(loom))]
    core::hint::spin_loop();
}

#[cfg(all(loom, feature = "std"))]
#[allow(unused_imports)]
pub(crate) use loom::sync::{
    Arc, Condvar, Mutex, MutexGuard,
    atomic::{AtomicBool, AtomicU64, AtomicUsize},
};

#[cfg(all(not(loom), feature = "std"))]
#[allow(unused_imports)]
pub(crate) use std::sync::{
    Arc, Condvar, Mutex, MutexGuard,
    atomic::{AtomicBool, AtomicU64, AtomicUsize},
};

#[cfg(feature = "std")]
#[allow(unused_imports)]
pub(crate) use std::sync::TryLockError;
