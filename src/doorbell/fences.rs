//! The two fence modes of a doorbell and the process registration the asymmetric one needs.
//! The argument is in the [module docs](super), "Asymmetric fences".

use crate::sync::Ordering;

/// How the two sides of a doorbell order their store-then-load pair (see the
/// [module docs](super), "Asymmetric fences"). Chosen when a region is created, recorded in
/// its header ([`wire::FLAG_ASYMMETRIC_FENCES`](crate::wire::FLAG_ASYMMETRIC_FENCES)), and
/// followed by every process that attaches it.
///
/// # Examples
///
/// ```
/// use ringbell::doorbell::{self, Fences};
/// use ringbell::spsc;
///
/// // A ring any peer can attach, also one that cannot register for `membarrier`.
/// let (tx, rx) = spsc::channel_with(&spsc::Config::new(4096).fences(Fences::Symmetric))?;
/// assert_eq!(tx.fences(), Fences::Symmetric);
/// // The default: asymmetric wherever this process can register.
/// let (tx, _rx) = spsc::channel(4096)?;
/// assert_eq!(tx.fences(), Fences::default_for_new_regions());
/// # Ok::<(), ringbell::AttachError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fences {
    /// Both sides fence: the ringer pays a `fence(SeqCst)` on every ring (on x86 an
    /// `mfence`, which waits for the store buffer to drain), the waiter one before it
    /// sleeps. Works everywhere, with any peer that follows the symmetric protocol.
    Symmetric,
    /// The ringer pays only a compiler fence; the waiter, before it sleeps, issues
    /// `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)`, a memory barrier on every CPU running a
    /// thread of a registered process. Every process that rings or waits on the region must
    /// be registered (`MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED`); attaching registers, and
    /// where that fails the attach is refused with
    /// [`HeaderError::FencesUnavailable`](crate::HeaderError::FencesUnavailable).
    Asymmetric,
}

impl Fences {
    /// The mode regions made by this process get unless their configuration says otherwise:
    /// [`Asymmetric`](Self::Asymmetric) if this process can register for `membarrier`
    /// (registering it, once), else [`Symmetric`](Self::Symmetric). The environment variable
    /// `RINGBELL_FENCES=symmetric`, read once, makes it `Symmetric` and keeps this process
    /// from registering at all: for a deployment whose peers run where `membarrier` is
    /// filtered (seccomp, gVisor), and to test that fallback.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::doorbell::Fences;
    ///
    /// let mode = Fences::default_for_new_regions();
    /// assert_eq!(mode == Fences::Asymmetric, Fences::asymmetric_available());
    /// ```
    pub fn default_for_new_regions() -> Self {
        if register() {
            Self::Asymmetric
        } else {
            Self::Symmetric
        }
    }

    /// Whether this process can take part in asymmetric-fence regions: it is registered for
    /// `MEMBARRIER_CMD_GLOBAL_EXPEDITED` (registering it now if it was not). Always `false`
    /// under loom and miri, on kernels before 4.16, where a seccomp filter or a sandbox such
    /// as gVisor refuses the call, and with `RINGBELL_FENCES=symmetric`.
    ///
    /// # Examples
    ///
    /// ```
    /// // Either way the crate works: asymmetric regions need it, symmetric ones do not.
    /// let _ = ringbell::doorbell::Fences::asymmetric_available();
    /// ```
    pub fn asymmetric_available() -> bool {
        register()
    }

    pub(crate) fn from_flags(flags: u32) -> Self {
        if flags & crate::wire::FLAG_ASYMMETRIC_FENCES != 0 {
            Self::Asymmetric
        } else {
            Self::Symmetric
        }
    }

    /// The header flags of this mode.
    pub(crate) fn flags(self) -> u32 {
        match self {
            Self::Symmetric => 0,
            Self::Asymmetric => crate::wire::FLAG_ASYMMETRIC_FENCES,
        }
    }

    /// `Ok` if this process may ring and wait in this mode (registering it if needed).
    pub(crate) fn usable(self) -> Result<(), crate::HeaderError> {
        match self {
            Self::Symmetric => Ok(()),
            Self::Asymmetric if register() => Ok(()),
            Self::Asymmetric => Err(crate::HeaderError::FencesUnavailable),
        }
    }
}

/// The ringer's half: between publishing and reading the waiter mark.
#[inline(always)]
pub(crate) fn ringer(asymmetric: bool) {
    if asymmetric {
        // Only the compiler must keep the load of the mark after the publishing stores; the
        // processor's reordering of the two is undone by the waiter's barrier (module docs).
        core::sync::atomic::compiler_fence(Ordering::SeqCst);
    } else {
        crate::mutant::fence(crate::mutant::Mutant::RingerFence, Ordering::SeqCst);
    }
}

/// The waiter's half: between setting the mark and re-checking. Returns `false` if an
/// asymmetric barrier could not be issued (the caller then sleeps briefly, not a whole slice:
/// a ring may have been missed).
#[inline]
pub(crate) fn waiter(asymmetric: bool) -> bool {
    crate::mutant::fence(crate::mutant::Mutant::WaiterFence, Ordering::SeqCst);
    if asymmetric && crate::mutant::keep(crate::mutant::Mutant::BarrierOmitted) {
        return global_barrier();
    }
    true
}

#[cfg(all(not(loom), not(miri), target_os = "linux"))]
fn global_barrier() -> bool {
    use rustix::thread::{MembarrierCommand, membarrier};
    membarrier(MembarrierCommand::GlobalExpedited).is_ok()
}

#[cfg(not(all(not(loom), not(miri), target_os = "linux")))]
fn global_barrier() -> bool {
    false
}

/// Registration state: not tried, registered, unavailable.
const UNKNOWN: u8 = 0;
const REGISTERED: u8 = 1;
const UNAVAILABLE: u8 = 2;

#[cfg(all(not(loom), not(miri), target_os = "linux"))]
static STATE: core::sync::atomic::AtomicU8 = core::sync::atomic::AtomicU8::new(UNKNOWN);

/// Registers this process for `MEMBARRIER_CMD_GLOBAL_EXPEDITED` once (a forked child is
/// registered again by the handler in `fork.rs`); whether it is registered.
#[cfg(all(not(loom), not(miri), target_os = "linux"))]
fn register() -> bool {
    use core::sync::atomic::Ordering::{Acquire, Release};
    match STATE.load(Acquire) {
        REGISTERED => return true,
        UNAVAILABLE => return false,
        _ => {}
    }
    // Install the fork handler first, so that a child forked after this registers again.
    let _ = crate::fork::generation();
    let ok = !opted_out() && {
        use rustix::thread::{MembarrierCommand, MembarrierQuery, membarrier, membarrier_query};
        let q = membarrier_query();
        q.contains(MembarrierQuery::GLOBAL_EXPEDITED | MembarrierQuery::REGISTER_GLOBAL_EXPEDITED)
            && membarrier(MembarrierCommand::RegisterGlobalExpedited).is_ok()
    };
    // Racing first callers both register (idempotent) and store the same answer.
    STATE.store(if ok { REGISTERED } else { UNAVAILABLE }, Release);
    ok
}

#[cfg(not(all(not(loom), not(miri), target_os = "linux")))]
fn register() -> bool {
    let _ = (UNKNOWN, REGISTERED, UNAVAILABLE);
    false
}

/// For the fork handler, in the child: if the parent was registered, registers the child
/// too. The kernel keeps the registration in the memory map, which `fork(2)` copies, so this
/// should find it already there; registering again costs one system call per fork and makes
/// the child's state certain, since a child may ring a line it got before the fork (a
/// `Notifier` made from an inherited handle) before it attaches anything. If it fails the
/// child is marked unavailable: its later attaches of asymmetric regions are refused.
/// Async-signal-safe: an atomic load and store and one raw system call.
#[cfg(all(feature = "std", not(loom), not(miri), target_os = "linux"))]
pub(crate) fn register_again_in_child() {
    use core::sync::atomic::Ordering::Relaxed;
    use rustix::thread::{MembarrierCommand, membarrier};
    if STATE.load(Relaxed) == REGISTERED
        && membarrier(MembarrierCommand::RegisterGlobalExpedited).is_err()
    {
        STATE.store(UNAVAILABLE, Relaxed);
    }
}

/// `RINGBELL_FENCES=symmetric` in the environment.
#[cfg(all(not(loom), not(miri), target_os = "linux"))]
fn opted_out() -> bool {
    #[cfg(feature = "std")]
    {
        std::env::var_os("RINGBELL_FENCES").is_some_and(|v| v == "symmetric")
    }
    #[cfg(not(feature = "std"))]
    {
        false
    }
}
