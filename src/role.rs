//! Owner ids and the role words a producer or consumer claims in a ring header.
//!
//! A role word holds [`ROLE_FREE`](crate::layout::ROLE_FREE), the owner id of the handle that
//! claimed it, or [`ROLE_CLOSED`](crate::layout::ROLE_CLOSED) once that handle was dropped.
//! Claiming is a compare-and-swap from free, so two handles — in two processes, or opened
//! twice in one — can never both hold a role. A closed role stays closed: its peer reads the
//! word to learn the other side left, and a ring is never silently reused by a newcomer.

use core::fmt;
use core::num::NonZeroU64;

use crate::error::AttachError;
use crate::layout::{ROLE_CLOSED, ROLE_FREE};
use crate::mem::Mem;
use crate::sync::Ordering;

/// Bit of an owner id saying its low 32 bits are the holder's process id.
const PID_BIT: u64 = 1 << 62;

/// Who holds a role: any value except 0 (free) and `u64::MAX` (closed).
///
/// Under `std`, [`OwnerId::unique`] builds one from the process id and a per-process counter,
/// so every handle in every process gets its own.
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

/// This process's *fork generation*: 0 in a process that was not forked from one using
/// ringbell, one more in each child of `fork(2)` (a `pthread_atfork` child handler, installed
/// by the first call, bumps it). A handle records it when it attaches; a copy of the handle
/// inherited by a forked child sees a different value and refuses to act
/// ([`forked`]). Without `std` (no `pthread_atfork`), under loom and under miri: always 0.
pub(crate) fn fork_generation() -> u32 {
    #[cfg(all(feature = "std", not(loom), not(miri)))]
    {
        // Not a `Once`: a fork while another thread is inside `call_once` would leave the
        // child's `Once` running for ever. (A thread that finds the flag set while another is
        // still registering goes on; a fork in that instant is not detected.)
        static INSTALLED: core::sync::atomic::AtomicBool =
            core::sync::atomic::AtomicBool::new(false);
        extern "C" fn child() {
            // Async-signal-safe: one atomic add.
            FORK_GEN.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        }
        if !INSTALLED.swap(true, core::sync::atomic::Ordering::AcqRel) {
            // SAFETY: registers a child handler that only performs an atomic add; it is
            // never unregistered, and the function lives for the whole program.
            let rc = unsafe { libc::pthread_atfork(None, None, Some(child)) };
            // On failure (ENOMEM) inherited handles are not detected: say so by retrying next
            // time rather than pretending.
            if rc != 0 {
                INSTALLED.store(false, core::sync::atomic::Ordering::Release);
            }
        }
        FORK_GEN.load(core::sync::atomic::Ordering::Relaxed)
    }
    #[cfg(not(all(feature = "std", not(loom), not(miri))))]
    {
        0
    }
}

#[cfg(all(feature = "std", not(loom), not(miri)))]
static FORK_GEN: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

/// Whether this process is a forked child of the one where `generation` was recorded: one
/// relaxed load of a process-global word, no system call.
#[inline]
pub(crate) fn forked(generation: u32) -> bool {
    #[cfg(all(feature = "std", not(loom), not(miri)))]
    {
        FORK_GEN.load(core::sync::atomic::Ordering::Relaxed) != generation
    }
    #[cfg(not(all(feature = "std", not(loom), not(miri))))]
    {
        let _ = generation;
        false
    }
}

/// Watches the holder of a role word for death without a close: a process that was killed.
///
/// The first time it sees an owner id (made by [`OwnerId::unique`]) in the word, it takes a
/// pidfd of that process (`pidfd_open(2)`); from then on "dead" means the pidfd is readable
/// (`poll(2)`, zero timeout) — the process exited — even if its pid is reused later. If the
/// process is already gone when first seen (`ESRCH`), it is dead. Owners without a pid, a free
/// role and a cleanly closed role (which callers see through the closed flag) are never
/// reported dead. Meant for the slow path only: it makes system calls.
#[derive(Debug)]
pub(crate) struct PeerWatch {
    off: usize,
    seen: u64,
    state: Watch,
    /// Calls of `peer_dead_rate_limited` so far (it reads the clock on every 16th).
    calls: u32,
    /// Set once the peer is known dead: it stays dead (no further system call).
    dead: bool,
    /// When `peer_dead_rate_limited` last asked the kernel (ms, monotonic clock).
    last_ms: u64,
}

/// How often, at most, a non-blocking call about to report `Full` or `Empty` asks whether
/// the peer died.
pub(crate) const LIVENESS_INTERVAL_MS: u64 = 10;

#[derive(Debug)]
enum Watch {
    Unknown,
    /// `pidfd_open` failed for want of resources: try again on the next check.
    Retry,
    Gone,
    #[cfg(not(any(loom, miri)))]
    Pidfd(rustix::fd::OwnedFd),
}

impl PeerWatch {
    /// A watch on the role word at `off`.
    pub(crate) fn new(off: usize) -> Self {
        Self {
            off,
            seen: 0,
            state: Watch::Unknown,
            calls: 0,
            last_ms: 0,
            dead: false,
        }
    }

    /// Starts watching the role's current holder now, if there is one: called at attach, so
    /// that a peer already attached is watched from a moment it was alive (its pid cannot
    /// have been reused yet).
    pub(crate) fn primed(mut self, mem: &Mem) -> Self {
        let _ = self.peer_dead(mem);
        self
    }

    /// [`peer_dead`](Self::peer_dead) for non-blocking calls about to report `Full` or
    /// `Empty`: no system call on the hot path. Every 16th call reads the clock (vDSO), and
    /// the kernel is asked at most once per [`LIVENESS_INTERVAL_MS`].
    #[inline]
    pub(crate) fn peer_dead_rate_limited(&mut self, mem: &Mem) -> bool {
        if self.dead {
            return true;
        }
        self.calls = self.calls.wrapping_add(1);
        if self.calls % 16 != 1 {
            return false;
        }
        let now = crate::futex::Instant::now().as_millis();
        if self.last_ms != 0 && now.wrapping_sub(self.last_ms) < LIVENESS_INTERVAL_MS {
            return false;
        }
        self.last_ms = now.max(1);
        self.peer_dead(mem)
    }

    /// Whether the peer holding the role is known to have died without closing it.
    pub(crate) fn peer_dead(&mut self, mem: &Mem) -> bool {
        let id = mem.load_u64(self.off, Ordering::Acquire);
        let Some(owner) = OwnerId::new(id) else {
            return false; // free or closed
        };
        if id != self.seen {
            self.dead = false;
            self.state = Self::watch(owner);
            // A transient failure (EMFILE, ENOMEM) is retried next time; anything else is
            // settled for this owner.
            if !matches!(self.state, Watch::Retry) {
                self.seen = id;
            }
        }
        let dead = match &self.state {
            Watch::Unknown | Watch::Retry => false,
            Watch::Gone => true,
            #[cfg(not(any(loom, miri)))]
            Watch::Pidfd(fd) => {
                use rustix::event::{PollFd, PollFlags, Timespec, poll};
                let mut fds = [PollFd::new(fd, PollFlags::IN)];
                let zero = Timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                };
                matches!(poll(&mut fds, Some(&zero)), Ok(n) if n > 0)
            }
        };
        self.dead = dead;
        dead
    }

    #[cfg(not(any(loom, miri)))]
    fn watch(owner: OwnerId) -> Watch {
        use rustix::process::{Pid, PidfdFlags, pidfd_open};
        // The owner id comes from shared memory: a pid above `i32::MAX` (no such process)
        // must not reach `Pid::from_raw`, which asserts it is non-negative.
        let pid = owner
            .pid()
            .and_then(|p| i32::try_from(p).ok())
            .and_then(Pid::from_raw);
        let Some(pid) = pid else {
            return Watch::Unknown;
        };
        match pidfd_open(pid, PidfdFlags::empty()) {
            Ok(fd) => Watch::Pidfd(fd),
            Err(rustix::io::Errno::SRCH) => Watch::Gone,
            Err(rustix::io::Errno::MFILE | rustix::io::Errno::NFILE | rustix::io::Errno::NOMEM) => {
                Watch::Retry
            }
            Err(_) => Watch::Unknown,
        }
    }

    /// Under loom and miri there are no processes to watch.
    #[cfg(any(loom, miri))]
    fn watch(_owner: OwnerId) -> Watch {
        let _ = (Watch::Gone, Watch::Retry);
        Watch::Unknown
    }
}
