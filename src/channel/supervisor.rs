//! A server binary started as a child process and watched: [`Supervisor`].
//!
//! # What it guarantees
//!
//! * **The child's output goes to a file**, opened for appending, as its stdout and stderr
//!   (stdin is `/dev/null`). Not a pipe: a child writing to a pipe nobody drains blocks when
//!   the pipe's 64 KiB fill up, and a blocked server looks exactly like a hung one.
//! * **The child dies with its parent.** `PR_SET_PDEATHSIG(SIGKILL)` is set in the child
//!   before `exec`. The kernel sends that signal when the *thread* that forked exits, not the
//!   process — a child forked from a short-lived thread would be killed when that thread
//!   ends. So a supervisor forks from a thread of its own that lives exactly as long as the
//!   child does. After the `prctl` the child compares `getppid()` with the parent's pid,
//!   recorded before the fork: a parent that died between the fork and the `prctl` would
//!   never send the signal, and the child exits instead of running on as an orphan.
//! * **An exit is noticed at once and reported with its status.** The supervisor thread
//!   sleeps in `poll(2)` on a *pidfd* of the child (readable when it exits, whatever pid
//!   reuse does afterwards) and on an eventfd through which [`Supervisor::stop`] reaches it.
//!   When the child exits it reaps it, records a [`ServerExit`] (pid, exit status, log path),
//!   and wakes every [`Client`] it connected that is waiting for a response: their calls in
//!   flight, and every later call, fail with [`CallError::ServerExited`] carrying that
//!   record. A call blocked on a full request ring notices within its sleep slice (50 ms by
//!   default). A client notices the end of the connection's socket too, and its pidfd of the
//!   serving process. A wrapper script should `exec` the server: `stop` and the parent-death
//!   signal reach the direct child only, and a server the script forks would outlive them.
//! * **Stopping is orderly, then certain.** [`Supervisor::stop`] sends `SIGTERM` through the
//!   pidfd (never to a bare pid, which may have been reused), waits the configured grace for
//!   the child to exit, then sends `SIGKILL`. Dropping a supervisor stops its child the same
//!   way.
//! * **A process whose `SIGCHLD` is `SIG_IGN`** has its children reaped by the kernel, so no
//!   exit status can be had. The exit is still noticed (through the pidfd); its status is
//!   reported as unknown (`status: None`), never invented. The same holds when some other
//!   code of the process reaps the child first (`waitpid(-1, …)`).
//!
//! # Fork
//!
//! A supervisor inherited by a forked child does nothing there: the supervisor thread does
//! not exist in the child, and dropping the copy neither signals nor waits.
//!
//! Man pages: prctl(2) (`PR_SET_PDEATHSIG`), pidfd_open(2), pidfd_send_signal(2),
//! eventfd(2), poll(2), waitpid(2) (`SIGCHLD` and `SIG_IGN`).

use std::fmt;
use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;
use std::vec::Vec;

use rustix::event::{EventfdFlags, PollFd, PollFlags, Timespec, eventfd, poll};
use rustix::process::{Pid, PidfdFlags, Signal, getpid, getppid, pidfd_open, pidfd_send_signal};

use super::client::Client;
use super::config::ClientOptions;
use super::error::{CallError, ChannelError, ServerExit};
use crate::clock::{Deadline, Instant};
use crate::liveness::pidfd_exited;

/// Starting or connecting to a supervised server failed.
///
/// # Examples
///
/// ```
/// use ringbell::channel::{SpawnError, Supervisor, SupervisorOptions};
///
/// let r = Supervisor::spawn(
///     std::process::Command::new("/nonexistent/server"),
///     SupervisorOptions::new().log(std::env::temp_dir().join("ringbell-doc-nonexistent.log")),
/// );
/// assert!(matches!(r, Err(SpawnError::Io(_))));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum SpawnError {
    /// Opening the log, starting the child, or setting up its watch failed.
    Io(io::Error),
    /// The child exited before a client could connect.
    Exited(ServerExit),
    /// The child did not accept a connection within the ready timeout
    /// ([`SupervisorOptions::ready_timeout`]); it is still running.
    NotReady,
    /// Connecting failed for another reason than the server not listening yet.
    Channel(ChannelError),
    /// The supervisor was inherited across `fork(2)`: only the process that made it may use
    /// it.
    Forked,
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "starting the server failed: {e}"),
            Self::Exited(e) => write!(f, "{e}, before a client could connect"),
            Self::NotReady => f.write_str("the server did not accept a connection in time"),
            Self::Channel(e) => write!(f, "connecting to the server failed: {e}"),
            Self::Forked => f.write_str("the supervisor was inherited across fork"),
        }
    }
}

impl std::error::Error for SpawnError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            Self::Channel(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for SpawnError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// Settings of a [`Supervisor`].
///
/// # Examples
///
/// ```
/// use ringbell::channel::SupervisorOptions;
/// use std::time::Duration;
///
/// let opts = SupervisorOptions::new()
///     .log("/tmp/my-server.log")
///     .grace(Duration::from_secs(1))
///     .ready_timeout(Duration::from_secs(5));
/// ```
#[derive(Clone, Debug)]
pub struct SupervisorOptions {
    log: Option<PathBuf>,
    grace: Duration,
    ready_timeout: Duration,
}

impl Default for SupervisorOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl SupervisorOptions {
    /// The defaults: a log in the temporary directory named after this process and the
    /// child's number, a grace of 2 s, a ready timeout of 10 s.
    ///
    /// # Examples
    ///
    /// ```
    /// let opts = ringbell::channel::SupervisorOptions::new();
    /// ```
    pub fn new() -> Self {
        Self {
            log: None,
            grace: Duration::from_secs(2),
            ready_timeout: Duration::from_secs(10),
        }
    }

    /// The file the child's stdout and stderr are appended to (created `0644` if missing).
    ///
    /// # Examples
    ///
    /// ```
    /// let opts = ringbell::channel::SupervisorOptions::new().log("/var/log/my-server.log");
    /// ```
    pub fn log(mut self, path: impl Into<PathBuf>) -> Self {
        self.log = Some(path.into());
        self
    }

    /// How long [`Supervisor::stop`] waits after `SIGTERM` before it sends `SIGKILL`.
    ///
    /// # Examples
    ///
    /// ```
    /// let opts = ringbell::channel::SupervisorOptions::new()
    ///     .grace(std::time::Duration::from_millis(500));
    /// ```
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// How long [`Supervisor::connect`] retries while the server does not listen yet.
    ///
    /// # Examples
    ///
    /// ```
    /// let opts = ringbell::channel::SupervisorOptions::new()
    ///     .ready_timeout(std::time::Duration::from_secs(30));
    /// ```
    pub fn ready_timeout(mut self, t: Duration) -> Self {
        self.ready_timeout = t;
        self
    }
}

/// A server process this process started, watched from a thread of its own. See the
/// [module docs](self) for what it guarantees.
///
/// # Examples
///
/// ```no_run
/// use ringbell::channel::{CallError, Supervisor, SupervisorOptions};
/// use std::process::Command;
///
/// let mut server = Command::new("/usr/local/bin/my-server");
/// server.arg("--socket").arg("/run/my-server.sock");
/// let supervisor = Supervisor::spawn(server, SupervisorOptions::new().log("/tmp/my-server.log"))?;
/// let mut client = supervisor.connect("/run/my-server.sock")?;
/// match client.call(b"work") {
///     Ok(answer) => println!("{} bytes back", answer.len()),
///     Err(CallError::ServerExited(exit)) => eprintln!("{exit}"), // status and log path
///     Err(e) => eprintln!("call failed: {e}"),
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Supervisor {
    watch: Arc<ChildWatch>,
    thread: Option<JoinHandle<()>>,
    ready_timeout: Duration,
    /// The process that made it; a forked copy does nothing.
    owner: Pid,
}

/// What a supervisor, its thread and the clients it connected share about the child.
pub(crate) struct ChildWatch {
    pid: u32,
    pidfd: OwnedFd,
    log: PathBuf,
    /// `SIGTERM` to `SIGKILL`.
    grace: Duration,
    /// Readable once [`Supervisor::stop`] asks the thread to stop the child.
    stop_fd: OwnedFd,
    /// Set (Release) after `state.exit` is recorded.
    exited: AtomicBool,
    state: Mutex<WatchState>,
    changed: Condvar,
}

struct WatchState {
    exit: Option<Arc<ServerExit>>,
    /// Set when a stop is asked for.
    stopping: bool,
    /// Wake-ups of connected clients' response waits, by client.
    wakers: Vec<(u64, Box<dyn Fn() + Send + Sync>)>,
}

/// Numbers children whose log path is the default one.
static CHILDREN: AtomicU64 = AtomicU64::new(0);

impl Supervisor {
    /// Starts `command` as a supervised child (see the [module docs](self)). The command's
    /// own stdio settings are replaced: stdin is `/dev/null`, stdout and stderr the log.
    ///
    /// # Errors
    ///
    /// [`SpawnError::Io`]: the log cannot be opened, the command cannot be started (not
    /// found, not executable), or the kernel gives no pidfd (Linux older than 5.3) — in
    /// which case the child is killed and reaped before the error returns.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::{Supervisor, SupervisorOptions};
    /// use std::process::Command;
    ///
    /// let log = std::env::temp_dir().join(format!("ringbell-doc-sup-{}.log", std::process::id()));
    /// let mut cmd = Command::new("sh");
    /// cmd.args(["-c", "echo hello from the child; exit 3"]);
    /// let supervisor = Supervisor::spawn(cmd, SupervisorOptions::new().log(&log))?;
    /// let exit = supervisor.wait_timeout(std::time::Duration::from_secs(10)).unwrap();
    /// assert_eq!(exit.status.and_then(|s| s.code()), Some(3));
    /// assert!(std::fs::read_to_string(&log)?.contains("hello from the child"));
    /// # std::fs::remove_file(&log)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn spawn(mut command: Command, opts: SupervisorOptions) -> Result<Self, SpawnError> {
        let log = match opts.log {
            Some(p) => p,
            None => std::env::temp_dir().join(format!(
                "ringbell-server-{}-{}.log",
                std::process::id(),
                CHILDREN.fetch_add(1, Ordering::Relaxed)
            )),
        };
        let out = {
            use std::os::unix::fs::OpenOptionsExt;
            OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&log)?
        };
        let err = out.try_clone()?;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        let parent = getpid();
        // SAFETY: the closure runs in the forked child before `exec`, where only async-signal-
        // safe calls are allowed: `sigaction` (async-signal-safe by POSIX, on a zeroed
        // `sigaction` whose handler is SIG_DFL), two system calls (`prctl`, `getppid`)
        // through rustix, which neither allocates nor takes locks, and `io::Error`s built
        // from raw codes, which do not allocate either.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut command, move || {
                // Dispositions a server expects, whatever this process ignores: an inherited
                // SIG_IGN of SIGTERM would make every stop wait out the grace.
                for sig in [libc::SIGTERM, libc::SIGCHLD] {
                    let mut act: libc::sigaction = core::mem::zeroed();
                    act.sa_sigaction = libc::SIG_DFL;
                    if libc::sigaction(sig, &act, core::ptr::null_mut()) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
                if getppid() != Some(parent) {
                    // The parent died before the `prctl`: nobody would send the signal.
                    return Err(io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
        let stop_fd =
            eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK).map_err(io::Error::from)?;
        let (started_tx, started_rx) = mpsc::sync_channel::<io::Result<Arc<ChildWatch>>>(1);
        let thread = std::thread::Builder::new()
            .name("ringbell-supervisor".into())
            .spawn(move || supervise(command, log, opts.grace, stop_fd, started_tx))?;
        match started_rx.recv() {
            Ok(Ok(watch)) => Ok(Self {
                watch,
                thread: Some(thread),
                ready_timeout: opts.ready_timeout,
                owner: parent,
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(SpawnError::Io(e))
            }
            Err(_) => {
                let _ = thread.join();
                Err(SpawnError::Io(io::Error::other(
                    "the supervisor thread failed",
                )))
            }
        }
    }

    /// The child's process id.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ringbell::channel::{Supervisor, SupervisorOptions};
    /// # let mut cmd = std::process::Command::new("true");
    /// let supervisor = Supervisor::spawn(cmd, SupervisorOptions::new())?;
    /// assert!(supervisor.pid() > 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pid(&self) -> u32 {
        self.watch.pid
    }

    /// The file the child's output goes to.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ringbell::channel::{Supervisor, SupervisorOptions};
    /// # let cmd = std::process::Command::new("true");
    /// let supervisor = Supervisor::spawn(cmd, SupervisorOptions::new())?;
    /// println!("the server logs to {}", supervisor.log().display());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn log(&self) -> &Path {
        &self.watch.log
    }

    /// How the child ended, if it has: never blocks.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ringbell::channel::{Supervisor, SupervisorOptions};
    /// let mut sleeper = std::process::Command::new("sleep");
    /// sleeper.arg("5");
    /// let supervisor = Supervisor::spawn(sleeper, SupervisorOptions::new())?;
    /// assert!(supervisor.exit().is_none()); // still running
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn exit(&self) -> Option<ServerExit> {
        if getpid() != self.owner {
            return None;
        }
        self.watch.exit_now().map(|e| (*e).clone())
    }

    /// Waits at most `timeout` for the child to end by itself; `None` if it still runs.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ringbell::channel::{Supervisor, SupervisorOptions};
    /// use std::time::Duration;
    ///
    /// let supervisor = Supervisor::spawn(std::process::Command::new("true"), SupervisorOptions::new())?;
    /// let exit = supervisor.wait_timeout(Duration::from_secs(10)).expect("`true` ends at once");
    /// assert!(exit.status.unwrap().success());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> Option<ServerExit> {
        if getpid() != self.owner {
            return None;
        }
        self.watch.wait_exit(timeout).map(|e| (*e).clone())
    }

    /// Connects a [`Client`] to the child's server at `path`, retrying while nothing listens
    /// there yet (for at most the ready timeout). The client reports the child's end as
    /// [`CallError::ServerExited`].
    ///
    /// # Errors
    ///
    /// [`SpawnError::Exited`] if the child ends first; [`SpawnError::NotReady`];
    /// [`SpawnError::Channel`] if the server refuses or the handshake fails;
    /// [`SpawnError::Forked`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use ringbell::channel::{Supervisor, SupervisorOptions};
    /// # let supervisor = Supervisor::spawn(std::process::Command::new("my-server"), SupervisorOptions::new())?;
    /// let mut client = supervisor.connect("/run/my-server.sock")?;
    /// let answer = client.call(b"ping")?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn connect(&self, path: impl AsRef<Path>) -> Result<Client, SpawnError> {
        self.connect_with(path, ClientOptions::new())
    }

    /// As [`connect`](Self::connect), with client options (the connect timeout bounds each
    /// attempt's handshake).
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use ringbell::channel::{ClientOptions, Supervisor, SupervisorOptions};
    /// # let supervisor = Supervisor::spawn(std::process::Command::new("my-server"), SupervisorOptions::new())?;
    /// let opts = ClientOptions::new().connect_timeout(std::time::Duration::from_secs(1));
    /// let client = supervisor.connect_with("/run/my-server.sock", opts)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn connect_with(
        &self,
        path: impl AsRef<Path>,
        opts: ClientOptions,
    ) -> Result<Client, SpawnError> {
        if getpid() != self.owner {
            return Err(SpawnError::Forked);
        }
        let deadline = Instant::now().after(self.ready_timeout);
        let mut pause = Duration::from_millis(1);
        loop {
            if let Some(exit) = self.watch.exit_now() {
                return Err(SpawnError::Exited((*exit).clone()));
            }
            match Client::connect_with(path.as_ref(), opts) {
                Ok(mut client) => {
                    client.supervise(self.watch.clone());
                    return Ok(client);
                }
                Err(ChannelError::Io(e))
                    if matches!(
                        e.kind(),
                        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
                    ) => {}
                Err(e) => return Err(SpawnError::Channel(e)),
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(SpawnError::NotReady);
            }
            // Sleeps on the child's pidfd: an exit ends the pause at once.
            let _ = wait_readable(&self.watch.pidfd, Some(pause.min(deadline.since(now))));
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    /// Stops the child: `SIGTERM`, then at most the grace for it to exit, then `SIGKILL`;
    /// returns how it ended (at once if it had already). Clients it connected then fail their
    /// calls with [`CallError::ServerExited`].
    ///
    /// # Errors
    ///
    /// `TimedOut` if the child has not been reaped 10 s after `SIGKILL` (a process stuck in
    /// the kernel); `Other` if the supervisor was inherited across `fork(2)`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ringbell::channel::{Supervisor, SupervisorOptions};
    /// use std::time::Duration;
    ///
    /// let opts = SupervisorOptions::new().grace(Duration::from_millis(200));
    /// let mut sleeper = std::process::Command::new("sleep");
    /// sleeper.arg("60");
    /// let mut supervisor = Supervisor::spawn(sleeper, opts)?;
    /// let exit = supervisor.stop()?;
    /// assert!(exit.stopped);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stop(&mut self) -> io::Result<ServerExit> {
        if getpid() != self.owner {
            return Err(io::Error::other("the supervisor was inherited across fork"));
        }
        {
            let mut st = self.watch.lock();
            st.stopping = true;
        }
        // Wakes the supervisor thread (an eventfd write of 1 cannot block or fail short of a
        // closed descriptor).
        let _ = rustix::io::write(&self.watch.stop_fd, &1u64.to_ne_bytes());
        match self
            .watch
            .wait_exit(self.watch.grace.saturating_add(Duration::from_secs(10)))
        {
            Some(e) => {
                if let Some(t) = self.thread.take() {
                    let _ = t.join();
                }
                Ok((*e).clone())
            }
            None => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the server was not reaped 10 s after SIGKILL",
            )),
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        if getpid() != self.owner {
            return;
        }
        if self.watch.exit_now().is_none() {
            let _ = self.stop();
        } else if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Supervisor")
            .field("pid", &self.watch.pid)
            .field("log", &self.watch.log)
            .field("exit", &self.watch.exit_now())
            .finish_non_exhaustive()
    }
}

static_assertions::assert_impl_all!(Supervisor: Send, Sync);

/// The supervisor thread: forks the child (so that `PR_SET_PDEATHSIG` is tied to this
/// thread, which outlives the child), reports it started, then waits for its end or a stop.
fn supervise(
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
fn wait_readable(fd: &OwnedFd, timeout: Option<Duration>) -> bool {
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
    fn lock(&self) -> MutexGuard<'_, WatchState> {
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

    /// Whether the child's end is recorded: one atomic load.
    pub(crate) fn has_exited(&self) -> bool {
        self.exited.load(Ordering::Acquire)
    }

    fn exit_now(&self) -> Option<Arc<ServerExit>> {
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
