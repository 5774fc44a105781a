//! Peer liveness from race-free sources.
//!
//! A process id can be reused as soon as its process is reaped, so "is pid 1234 alive?" is a
//! race. A *pidfd* (`pidfd_open(2)`) names one process for good: it becomes readable when that
//! process exits, whatever happens to the number afterwards. [`PidfdLiveness`] keeps a pidfd
//! per producer process, taken while the process was known alive (for a child: right after
//! spawning it, before it can be reaped; for a peer on a Unix socket: from `SO_PEERCRED` /
//! `SO_PEERPIDFD` while the connection is open), and answers [`Liveness`] queries with a
//! `poll(2)` of zero timeout — no signal, no `/proc` scan.

use std::collections::HashMap;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::Mutex;

use rustix::event::{PollFd, PollFlags};
use rustix::process::{Pid, PidfdFlags};

use crate::mpsc::Liveness;
use crate::role::OwnerId;

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
/// use ringbell::mpsc::Liveness;
/// use ringbell::peer::PidfdLiveness;
/// use ringbell::OwnerId;
///
/// let live = PidfdLiveness::new();
/// live.watch(std::process::id()).unwrap();
/// assert!(!live.is_dead(OwnerId::unique())); // this process is alive
/// ```
#[derive(Debug, Default)]
pub struct PidfdLiveness {
    pidfds: Mutex<HashMap<u32, OwnedFd>>,
}

impl PidfdLiveness {
    /// An empty set: nobody is reported dead.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts watching process `pid` (`pidfd_open(2)`). Call it while the process is known to
    /// be alive and not reaped — for a child, before waiting for it.
    ///
    /// # Errors
    ///
    /// The error of `pidfd_open` (e.g. `ESRCH` if there is no such process).
    pub fn watch(&self, pid: u32) -> io::Result<()> {
        let raw = i32::try_from(pid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let pid = Pid::from_raw(raw).ok_or(io::ErrorKind::InvalidInput)?;
        let fd = rustix::process::pidfd_open(pid, PidfdFlags::empty())?;
        self.pidfds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(pid.as_raw_nonzero().get() as u32, fd);
        Ok(())
    }

    /// Stops watching `pid`: its owners are never reported dead again.
    pub fn forget(&self, pid: u32) {
        self.pidfds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&pid);
    }

    /// Whether the watched process `pid` has exited (`poll(2)` on its pidfd, zero timeout).
    /// `false` for a process not watched.
    pub fn is_pid_dead(&self, pid: u32) -> bool {
        let map = self.pidfds.lock().unwrap_or_else(|e| e.into_inner());
        let Some(fd) = map.get(&pid) else {
            return false;
        };
        let mut fds = [PollFd::new(fd, PollFlags::IN)];
        let zero = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        matches!(rustix::event::poll(&mut fds, Some(&zero)), Ok(n) if n > 0)
    }
}

impl Liveness for PidfdLiveness {
    fn is_dead(&self, owner: OwnerId) -> bool {
        owner.pid().is_some_and(|pid| self.is_pid_dead(pid))
    }
}
