//! The fork generation: how a handle learns it was inherited by a forked child.
//!
//! After `fork(2)` the child has copies of every handle its parent held, over the same shared
//! memory. A copy must neither act (a second producer would corrupt the ring) nor close (that
//! would end the parent's stream behind its back). Each handle records the process's fork
//! generation when it attaches; the generation is 0 in a process that was not forked from one
//! using ringbell and goes up by one in each child of `fork(2)` (a `pthread_atfork` child
//! handler, registered by the first call). A handle whose recorded generation differs from the
//! current one is an inherited copy ([`forked`]): one relaxed load of a process-global word on
//! each call, no system call.
//!
//! Without `std` (no `pthread_atfork`), under loom and under miri the generation is always 0.
//! Man page: pthread_atfork(3).

/// This process's fork generation (see the module docs).
pub(crate) fn generation() -> u32 {
    #[cfg(all(feature = "std", not(loom), not(miri)))]
    {
        use core::sync::atomic::{AtomicBool, Ordering};
        // Not a `Once`: a fork while another thread is inside `call_once` would leave the
        // child's `Once` running for ever. (A thread that finds the flag set while another is
        // still registering goes on; a fork in that instant is not detected.)
        static INSTALLED: AtomicBool = AtomicBool::new(false);
        extern "C" fn child() {
            // Async-signal-safe: one atomic add; the registration is an atomic load, perhaps a
            // system call and a store.
            GENERATION.fetch_add(1, Ordering::Relaxed);
            #[cfg(target_os = "linux")]
            crate::doorbell::register_again_in_child();
        }
        if !INSTALLED.swap(true, Ordering::AcqRel) {
            // SAFETY: registers a child handler that only performs an atomic add; it is
            // never unregistered, and the function lives for the whole program.
            let rc = unsafe { libc::pthread_atfork(None, None, Some(child)) };
            // On failure (ENOMEM) inherited handles are not detected: say so by retrying next
            // time rather than pretending.
            if rc != 0 {
                INSTALLED.store(false, Ordering::Release);
            }
        }
        GENERATION.load(Ordering::Relaxed)
    }
    #[cfg(not(all(feature = "std", not(loom), not(miri))))]
    {
        0
    }
}

/// The generation, alone on its cache lines: every ring operation reads it, and a writable
/// static the linker put beside it (the doorbell's spinner count, bumped by every spinning
/// wait) would make those reads cache misses.
#[cfg(all(feature = "std", not(loom), not(miri)))]
static GENERATION: OwnLines = OwnLines(core::sync::atomic::AtomicU32::new(0));

/// A word on 128 bytes of its own (two cache lines: adjacent-line prefetchers pair them).
#[cfg(all(feature = "std", not(loom), not(miri)))]
#[repr(align(128))]
struct OwnLines(core::sync::atomic::AtomicU32);

#[cfg(all(feature = "std", not(loom), not(miri)))]
impl core::ops::Deref for OwnLines {
    type Target = core::sync::atomic::AtomicU32;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// Whether this process is a forked child of the one where `generation` was recorded.
#[inline]
pub(crate) fn forked(generation: u32) -> bool {
    #[cfg(all(feature = "std", not(loom), not(miri)))]
    {
        GENERATION.load(core::sync::atomic::Ordering::Relaxed) != generation
    }
    #[cfg(not(all(feature = "std", not(loom), not(miri))))]
    {
        let _ = generation;
        false
    }
}
