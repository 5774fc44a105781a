//! The one switch between `core` atomics and loom's.
//!
//! Every other module imports orderings, fences and the spin hint from here, so a
//! `--cfg loom` build swaps all of them at once and nothing else needs a `cfg`.

#[cfg(loom)]
#[allow(unused_imports)]
pub(crate) use loom::sync::atomic::Ordering;

/// Under loom, `fence(SeqCst)` is an AcqRel read-modify-write of one global word.
///
/// Loom's own `fence(SeqCst)` is weaker than C++'s: it can let a load after the fence return a
/// value older than a store another thread made before an earlier `SeqCst` fence (seen here
/// when the loading thread had itself written the location before). That yields deadlocks in
/// the doorbell models that no C++ execution — and no hardware — allows. An RMW chain on one
/// word totally orders the fences and, through Acquire/Release, makes everything before an
/// earlier fence visible after a later one: the guarantee the doorbell relies on (for the
/// store-buffering pattern it is exactly C++'s fence-fence rule). Removing a fence (the
/// mutants) removes its RMW, so the models still fail without it.
#[cfg(loom)]
pub(crate) fn fence(order: Ordering) {
    loom::lazy_static! {
        static ref SC_FENCE: loom::sync::atomic::AtomicUsize = loom::sync::atomic::AtomicUsize::new(0);
    }
    if order == Ordering::SeqCst {
        SC_FENCE.fetch_add(0, Ordering::AcqRel);
    } else {
        loom::sync::atomic::fence(order);
    }
}

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
