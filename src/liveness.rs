//! Whether a peer process died without closing its end: from pidfds, never from bare pids.
//!
//! A process id can be reused as soon as its process is reaped, so "is pid 1234 alive?" is a
//! race. A *pidfd* (`pidfd_open(2)`) names one process for good: it becomes readable when
//! that process exits, whatever happens to the number afterwards. Everything here that says
//! "dead" learned it from a pidfd taken while the process was known alive ([`pidfd_exited`],
//! a `poll(2)` with zero timeout — no signal, no `/proc` scan).
//!
//! Two users:
//!
//! * [`PeerWatch`] watches the holder of a ring's role word (an SPSC peer, an MPSC consumer),
//!   so that blocking calls notice a peer killed without closing.
//! * [`Liveness`] is what an MPSC consumer asks before it skips a stuck record;
//!   [`PidfdLiveness`] answers from pidfds, [`NeverDead`] never says dead.
//!
//! Man pages: pidfd_open(2), poll(2).

use core::cell::{Cell, RefCell};

use crate::mem::Mem;
use crate::role::OwnerId;
use crate::sync::Ordering;

/// Tells an MPSC consumer whether a producer is dead, from a race-free source.
///
/// "Dead" must be certain: a producer reported dead whose record is then skipped loses that
/// frame (it learns so from its commit). Report `false` whenever unsure. Under `std`,
/// [`PidfdLiveness`] answers from pidfds taken while the producers were known alive.
///
/// # Examples
///
/// ```
/// use ringbell::OwnerId;
/// use ringbell::mpsc::Liveness;
///
/// /// Producers are threads of this process: nobody ever dies mid-claim.
/// struct Threads;
/// impl Liveness for Threads {
///     fn is_dead(&self, _owner: OwnerId) -> bool {
///         false
///     }
/// }
/// assert!(!Threads.is_dead(OwnerId::new(1).unwrap()));
/// ```
pub trait Liveness {
    /// Whether `owner` is known dead: certain, never a guess.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::mpsc::{Liveness, PidfdLiveness};
    /// use ringbell::OwnerId;
    ///
    /// let live = PidfdLiveness::new();
    /// live.watch(std::process::id()).unwrap();
    /// assert!(!live.is_dead(OwnerId::unique()));
    /// ```
    fn is_dead(&self, owner: OwnerId) -> bool;
}

/// A liveness source that never reports anyone dead: stuck records are never skipped.
/// Right for producers that are threads of the consumer's own process (a thread that panics
/// mid-claim aborts its grant while unwinding).
///
/// # Examples
///
/// ```
/// use ringbell::OwnerId;
/// use ringbell::mpsc::{Liveness, NeverDead};
///
/// assert!(!NeverDead.is_dead(OwnerId::new(7).unwrap()));
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct NeverDead;

impl Liveness for NeverDead {
    fn is_dead(&self, _owner: OwnerId) -> bool {
        false
    }
}

impl<L: Liveness + ?Sized> Liveness for &L {
    fn is_dead(&self, owner: OwnerId) -> bool {
        (**self).is_dead(owner)
    }
}

/// Whether the process behind `pidfd` has exited: `poll(2)` for `POLLIN`, zero timeout.
///
/// A poll interrupted by a signal (`EINTR`) is asked again (at most 64 times in a row); a
/// poll that fails otherwise says nothing about the process, so it counts as alive: a signal
/// or a transient error must never make a live peer look dead.
#[cfg(not(loom))]
#[cfg_attr(all(miri, not(feature = "std")), allow(dead_code))]
pub(crate) fn pidfd_exited(pidfd: rustix::fd::BorrowedFd<'_>) -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let zero = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    for _ in 0..64 {
        let mut fds = [PollFd::new(&pidfd, PollFlags::IN)];
        match poll(&mut fds, Some(&zero)) {
            Ok(n) => return n > 0,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return false,
        }
    }
    false
}

/// [`Liveness`] from pidfds: an owner is dead once the process of its pid (as recorded by
/// [`OwnerId::unique`]) has exited. Owners of processes not [`watch`](Self::watch)ed are never
/// reported dead.
///
/// Limitation: answers are keyed by pid. If a watched process dies, is reaped, and a new
/// process reusing its pid attaches as a producer before the consumer has skipped the dead
/// one's records, the newcomer is reported dead too. Pid reuse within one stall timeout needs
/// the whole pid space to wrap; [`forget`](Self::forget) a pid once its records are dealt
/// with to close even that window.
///
/// # Examples
///
/// ```
/// use ringbell::OwnerId;
/// use ringbell::mpsc::{Liveness, PidfdLiveness};
///
/// let live = PidfdLiveness::new();
/// live.watch(std::process::id()).unwrap();
/// assert!(!live.is_dead(OwnerId::unique())); // this process is alive
/// assert!(!live.is_pid_dead(std::process::id()));
/// ```
#[cfg(all(feature = "std", not(loom)))]
#[derive(Debug, Default)]
pub struct PidfdLiveness {
    pidfds: std::sync::Mutex<std::collections::HashMap<u32, std::os::fd::OwnedFd>>,
}

#[cfg(all(feature = "std", not(loom)))]
impl PidfdLiveness {
    /// An empty set: nobody is reported dead.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::OwnerId;
    /// use ringbell::mpsc::{Liveness, PidfdLiveness};
    ///
    /// assert!(!PidfdLiveness::new().is_dead(OwnerId::unique()));
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts watching process `pid` (`pidfd_open(2)`). Call it while the process is known to
    /// be alive and not reaped — for a child, before waiting for it.
    ///
    /// # Errors
    ///
    /// The error of `pidfd_open` (e.g. `ESRCH` if there is no such process); `InvalidInput`
    /// for a pid above `i32::MAX`.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::mpsc::PidfdLiveness;
    ///
    /// let live = PidfdLiveness::new();
    /// let mut child = std::process::Command::new("true").spawn()?;
    /// live.watch(child.id())?; // before `wait`: the pid cannot be reused yet
    /// child.wait()?;
    /// assert!(live.is_pid_dead(child.id()));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn watch(&self, pid: u32) -> std::io::Result<()> {
        use rustix::process::{Pid, PidfdFlags};
        let invalid = || std::io::Error::from(std::io::ErrorKind::InvalidInput);
        let raw = i32::try_from(pid).map_err(|_| invalid())?;
        let pid = Pid::from_raw(raw).ok_or_else(invalid)?;
        let fd = rustix::process::pidfd_open(pid, PidfdFlags::empty())?;
        self.map().insert(pid.as_raw_nonzero().get() as u32, fd);
        Ok(())
    }

    /// Stops watching `pid`: its owners are never reported dead again.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::mpsc::PidfdLiveness;
    ///
    /// let live = PidfdLiveness::new();
    /// let mut child = std::process::Command::new("true").spawn()?;
    /// live.watch(child.id())?;
    /// child.wait()?;
    /// live.forget(child.id());
    /// assert!(!live.is_pid_dead(child.id())); // not watched any more
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn forget(&self, pid: u32) {
        self.map().remove(&pid);
    }

    /// Whether the watched process `pid` has exited (`poll(2)` on its pidfd, zero timeout).
    /// `false` for a process not watched.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::mpsc::PidfdLiveness;
    ///
    /// assert!(!PidfdLiveness::new().is_pid_dead(1)); // not watched: never dead
    /// ```
    pub fn is_pid_dead(&self, pid: u32) -> bool {
        use std::os::fd::AsFd;
        self.map()
            .get(&pid)
            .is_some_and(|fd| pidfd_exited(fd.as_fd()))
    }

    fn map(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<u32, std::os::fd::OwnedFd>> {
        self.pidfds.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(all(feature = "std", not(loom)))]
impl Liveness for PidfdLiveness {
    fn is_dead(&self, owner: OwnerId) -> bool {
        owner.pid().is_some_and(|pid| self.is_pid_dead(pid))
    }
}

/// How often, at most, a non-blocking call about to report `Full` or `Empty` asks whether
/// the peer died.
pub(crate) const LIVENESS_INTERVAL_MS: u64 = 10;

/// Watches the holder of a role word for death without a close: a process that was killed.
///
/// The first time it sees an owner id (made by [`OwnerId::unique`]) in the word, it takes a
/// pidfd of that process; from then on "dead" means [`pidfd_exited`] — even if its pid is
/// reused later. If the process is already gone when first seen (`ESRCH`), it is dead. Owners
/// without a pid, a free role and a cleanly closed role (which callers see through the closed
/// flag) are never reported dead. Meant for the slow path only: it makes system calls.
#[derive(Debug)]
pub(crate) struct PeerWatch {
    /// Offset of the watched role word.
    off: usize,
    /// The owner id the current `state` is about.
    seen: Cell<u64>,
    state: RefCell<Watch>,
    /// Calls of `peer_dead_rate_limited` so far (it reads the clock on every 16th).
    calls: Cell<u32>,
    /// Set once the peer is known dead: it stays dead (no further system call).
    dead: Cell<bool>,
    /// When `peer_dead_rate_limited` last asked the kernel (ms, monotonic clock).
    last_ms: Cell<u64>,
}

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
    /// A watch on the role word at `off`, primed at once: called at attach, so that a peer
    /// already attached is watched from a moment it was alive (its pid cannot have been reused
    /// yet).
    pub(crate) fn new(mem: &Mem, off: usize) -> Self {
        let w = Self {
            off,
            seen: Cell::new(0),
            state: RefCell::new(Watch::Unknown),
            calls: Cell::new(0),
            last_ms: Cell::new(0),
            dead: Cell::new(false),
        };
        let _ = w.peer_dead(mem);
        w
    }

    /// [`peer_dead`](Self::peer_dead) for non-blocking calls about to report `Full` or
    /// `Empty`: no system call on the hot path. Every 16th call reads the clock (vDSO), and
    /// the kernel is asked at most once per [`LIVENESS_INTERVAL_MS`].
    #[inline]
    pub(crate) fn peer_dead_rate_limited(&self, mem: &Mem) -> bool {
        if self.dead.get() {
            return true;
        }
        let calls = self.calls.get().wrapping_add(1);
        self.calls.set(calls);
        if calls % 16 != 1 {
            return false;
        }
        let now = crate::clock::Instant::now().as_millis();
        let last = self.last_ms.get();
        if last != 0 && now.wrapping_sub(last) < LIVENESS_INTERVAL_MS {
            return false;
        }
        self.last_ms.set(now.max(1));
        self.peer_dead(mem)
    }

    /// Whether the peer holding the role is known to have died without closing it.
    pub(crate) fn peer_dead(&self, mem: &Mem) -> bool {
        let id = mem.load_u64(self.off, Ordering::Acquire);
        let Some(owner) = OwnerId::new(id) else {
            return false; // free or closed
        };
        let mut state = self.state.borrow_mut();
        if id != self.seen.get() {
            self.dead.set(false);
            *state = Self::watch(owner);
            // A transient failure (EMFILE, ENOMEM) is retried next time; anything else is
            // settled for this owner.
            if !matches!(*state, Watch::Retry) {
                self.seen.set(id);
            }
        }
        let dead = match &*state {
            Watch::Unknown | Watch::Retry => false,
            Watch::Gone => true,
            #[cfg(not(any(loom, miri)))]
            Watch::Pidfd(fd) => pidfd_exited(rustix::fd::AsFd::as_fd(fd)),
        };
        self.dead.set(dead);
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
