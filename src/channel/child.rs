//! The watch on a supervised child, shared by its [`Supervisor`](super::Supervisor), the
//! supervisor thread and the clients it connected: the thread's body, which forks the child,
//! waits on its pidfd and records its end, and what the clients ask of it. A leaf of the
//! channel module: it knows neither the supervisor nor the client.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, mpsc};
use std::time::Duration;
use std::vec::Vec;

use rustix::event::{EventfdFlags, PollFd, PollFlags, Timespec, eventfd, poll};
use rustix::process::{Pid, PidfdFlags, Signal, pidfd_open, pidfd_send_signal};

use super::error::{CallError, ServerExit};
use crate::clock::Deadline;
use crate::liveness::pidfd_exited;

/// What a supervisor, its thread and the clients it connected share about the child.
pub(crate) struct ChildWatch {
    pub(super) pid: u32,
    pub(super) pidfd: OwnedFd,
    pub(super) log: PathBuf,
    /// `SIGTERM` to `SIGKILL`.
    pub(super) grace: Duration,
    /// Readable once [`Supervisor::stop`](super::Supervisor::stop) asks the thread to stop the child.
    pub(super) stop_fd: OwnedFd,
    /// Set (Release) after `state.exit` is recorded.
    pub(super) exited: AtomicBool,
    pub(super) state: Mutex<WatchState>,
    pub(super) changed: Condvar,
}

pub(super) struct WatchState {
    pub(super) exit: Option<Arc<ServerExit>>,
    /// Set when a stop is asked for.
    pub(super) stopping: bool,
    /// Wake-ups of connected clients' response waits, by client.
    pub(super) wakers: Vec<(u64, Box<dyn Fn() + Send + Sync>)>,
}

/// The supervisor thread: forks the child (so that `PR_SET_PDEATHSIG` is tied to this
/// thread, which outlives the child), reports it started, then waits for its end or a stop.
pub(super) fn supervise(
    mut command: Command,
    log: PathBuf,
    grace: Duration,
    stop_fd: OwnedFd,
    started: mpsc::SyncSender<io::Result<Arc<ChildWatch>>>,
) {
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => {
            let _ = started.send(Err(e));
            return;
        }
    };
    drop(command); // closes the parent's copies of the log descriptors
    let pid = child.id();
    // This thread reaps the child only through the pidfd, so the pid cannot be reused
    // before this `pidfd_open` — unless the kernel reaps it first, which it does when this
    // process ignores `SIGCHLD` and the child ends within microseconds of its `exec`; then
    // the open fails (`ESRCH`), or (had the pid space wrapped in those microseconds) names
    // another process: a window the kernel closes only with `clone3(CLONE_PIDFD)`, which
    // `std::process` does not offer on stable Rust. (Wrapping the pid space in microseconds
    // takes tens of thousands of process creations in between: not a practical case.)
    let pidfd = match Pid::from_raw(pid as i32)
        .ok_or(rustix::io::Errno::SRCH)
        .and_then(|p| pidfd_open(p, PidfdFlags::empty()))
    {
        Ok(fd) => fd,
        // Already reaped by the kernel: it ended, with a status nobody can have. A
        // descriptor that is always readable stands in for its pidfd, so that every watcher
        // sees "exited" at once (and signals or `waitid` on it fail harmlessly).
        Err(rustix::io::Errno::SRCH) => match eventfd(1, EventfdFlags::CLOEXEC) {
            Ok(fd) => fd,
            Err(e) => {
                let _ = started.send(Err(e.into()));
                return;
            }
        },
        Err(e) => {
            // No pidfds on this kernel: the child is ours and unreaped, so its pid is.
            let _ = child.kill();
            let _ = child.wait();
            let _ = started.send(Err(e.into()));
            return;
        }
    };
    let watch = Arc::new(ChildWatch {
        pid,
        pidfd,
        log,
        grace,
        stop_fd,
        exited: AtomicBool::new(false),
        state: Mutex::new(WatchState {
            exit: None,
            stopping: false,
            wakers: Vec::new(),
        }),
        changed: Condvar::new(),
    });
    if started.send(Ok(watch.clone())).is_err() {
        return;
    }
    let mut stopped = false;
    loop {
        let mut fds = [
            PollFd::new(&watch.pidfd, PollFlags::IN),
            PollFd::new(&watch.stop_fd, PollFlags::IN),
        ];
        match poll(&mut fds, None) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            // Cannot happen with two valid descriptors; do not spin if it does.
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
        if fds[0].revents().contains(PollFlags::IN) {
            break;
        }
        if fds[1].revents().contains(PollFlags::IN) && watch.lock().stopping {
            // A natural exit that raced the stop is reported as natural.
            stopped = !pidfd_exited(watch.pidfd.as_fd());
            if stopped {
                terminate(&watch);
            }
            break;
        }
    }
    let status = reap(&watch.pidfd);
    // `std`'s handle must not wait again (its pid may be another process's by now).
    core::mem::forget(child);
    watch.record(ServerExit {
        pid,
        status,
        log: watch.log.clone(),
        stopped,
    });
}

/// `SIGTERM`, the grace, `SIGKILL` — all through the pidfd.
fn terminate(watch: &ChildWatch) {
    let _ = pidfd_send_signal(&watch.pidfd, Signal::TERM);
    if !wait_readable(&watch.pidfd, Some(watch.grace)) {
        let _ = pidfd_send_signal(&watch.pidfd, Signal::KILL);
    }
}

/// Reaps the child; its exit status, or `None` when it cannot be had (`ECHILD`: the kernel
/// reaped it because `SIGCHLD` is ignored, or other code did).
fn reap(pidfd: &OwnedFd) -> Option<ExitStatus> {
    use std::os::unix::process::ExitStatusExt;
    loop {
        // On the pidfd, never on the bare pid: if the child was reaped elsewhere and its pid
        // reused by another child of this process, `waitpid(pid)` would take that one's status.
        match rustix::process::waitid(
            rustix::process::WaitId::PidFd(pidfd.as_fd()),
            rustix::process::WaitIdOptions::EXITED,
        ) {
            Ok(Some(st)) => {
                // Rebuilt in `waitpid`'s encoding, which `ExitStatus` wraps.
                return match (st.exit_status(), st.terminating_signal()) {
                    (Some(code), _) if st.exited() => {
                        Some(ExitStatus::from_raw((code & 0xff) << 8))
                    }
                    (_, Some(sig)) => Some(ExitStatus::from_raw(sig & 0x7f)),
                    _ => None,
                };
            }
            Ok(None) => return None,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return None,
        }
    }
}

/// Waits until `fd` is readable or `timeout` passes (`None`: forever); whether it became
/// readable. `EINTR` is asked again with the time left.
pub(super) fn wait_readable(fd: &OwnedFd, timeout: Option<Duration>) -> bool {
    let deadline = timeout.map(Deadline::after);
    loop {
        let left = match deadline {
            None => None,
            Some(d) => match d.left() {
                Some(l) => Some(l),
                None => return pidfd_exited(fd.as_fd()),
            },
        };
        let ts = left.map(|l| Timespec {
            tv_sec: l.as_secs() as i64,
            tv_nsec: i64::from(l.subsec_nanos()),
        });
        let mut fds = [PollFd::new(fd, PollFlags::IN)];
        match poll(&mut fds, ts.as_ref()) {
            Ok(0) => return false,
            Ok(_) => return true,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return false,
        }
    }
}

impl ChildWatch {
    pub(super) fn lock(&self) -> MutexGuard<'_, WatchState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, exit: ServerExit) {
        let wakers = {
            let mut st = self.lock();
            st.exit = Some(Arc::new(exit));
            self.exited.store(true, Ordering::Release);
            core::mem::take(&mut st.wakers)
        };
        self.changed.notify_all();
        for (_, wake) in wakers {
            wake();
        }
    }

    /// The child's pidfd (readable once it ended).
    pub(crate) fn pidfd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.pidfd.as_fd()
    }

    /// Whether the child's end is recorded: one atomic load.
    pub(crate) fn has_exited(&self) -> bool {
        self.exited.load(Ordering::Acquire)
    }

    pub(super) fn exit_now(&self) -> Option<Arc<ServerExit>> {
        self.lock().exit.clone()
    }

    /// Waits at most `timeout` for the child's end to be recorded.
    pub(crate) fn wait_exit(&self, timeout: Duration) -> Option<Arc<ServerExit>> {
        let st = self.lock();
        let (st, _) = self
            .changed
            .wait_timeout_while(st, timeout, |s| s.exit.is_none())
            .unwrap_or_else(|e| e.into_inner());
        st.exit.clone()
    }

    /// Whether the child has exited, from its pidfd (one `poll(2)`), even before the
    /// supervisor thread has recorded it.
    pub(crate) fn pidfd_says_exited(&self) -> bool {
        self.has_exited() || pidfd_exited(self.pidfd.as_fd())
    }

    /// Registers a wake-up for the child's end; returns its key, or `None` if the end is
    /// recorded already (then nothing is registered).
    pub(crate) fn on_exit(&self, wake: Box<dyn Fn() + Send + Sync>) -> Option<u64> {
        static KEYS: AtomicU64 = AtomicU64::new(0);
        let mut st = self.lock();
        if st.exit.is_some() {
            return None;
        }
        let key = KEYS.fetch_add(1, Ordering::Relaxed);
        st.wakers.push((key, wake));
        Some(key)
    }

    /// Removes a wake-up registered by [`on_exit`](Self::on_exit).
    pub(crate) fn forget(&self, key: u64) {
        self.lock().wakers.retain(|(k, _)| *k != key);
    }

    /// The error a client reports once its connection is lost: the child's end if it
    /// exited, otherwise `None`. A child whose pidfd says it exited is recorded by the
    /// supervisor thread within moments: that is waited for (at most a second, for a
    /// loaded machine); a child still running costs no wait.
    pub(crate) fn lost(&self) -> Option<CallError> {
        let exit = match self.exit_now() {
            Some(e) => Some(e),
            None if pidfd_exited(self.pidfd.as_fd()) => self.wait_exit(Duration::from_secs(1)),
            None => None,
        };
        exit.map(CallError::ServerExited)
    }
}

impl fmt::Debug for ChildWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildWatch")
            .field("pid", &self.pid)
            .finish_non_exhaustive()
    }
}
