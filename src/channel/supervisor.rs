//! A server binary started as a child process and watched: [`Supervisor`].
//!
//! The details are in the type docs.

use std::fmt;
use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use rustix::event::{EventfdFlags, eventfd};
use rustix::process::{Pid, Signal, getpid, getppid};

use super::child::{ChildWatch, supervise, wait_readable};
use super::client::Client;
use super::config::ClientOptions;
use super::error::{ChannelError, ServerExit};
use crate::clock::Instant;

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

/// A server process this process started, watched from a thread of its own.
///
/// # What it guarantees
///
/// * **The child's output goes to a file**, opened for appending, as its stdout and stderr
///   (stdin is `/dev/null`). Not a pipe: a child writing to a pipe nobody drains blocks when
///   the pipe's 64 KiB fill up, and a blocked server looks exactly like a hung one.
/// * **The child dies with its parent.** `PR_SET_PDEATHSIG(SIGKILL)` is set in the child
///   before `exec`. The kernel sends that signal when the *thread* that forked exits, not the
///   process — a child forked from a short-lived thread would be killed when that thread
///   ends. So a supervisor forks from a thread of its own that lives exactly as long as the
///   child does. After the `prctl` the child compares `getppid()` with the parent's pid,
///   recorded before the fork: a parent that died between the fork and the `prctl` would
///   never send the signal, and the child exits instead of running on as an orphan.
/// * **An exit is noticed at once and reported with its status.** The supervisor thread
///   sleeps in `poll(2)` on a *pidfd* of the child (readable when it exits, whatever pid
///   reuse does afterwards) and on an eventfd through which [`Supervisor::stop`] reaches it.
///   When the child exits it reaps it, records a [`ServerExit`] (pid, exit status, log path),
///   and wakes every [`Client`] it connected that is waiting for a response: their calls in
///   flight, and every later call, fail with [`CallError::ServerExited`](super::CallError::ServerExited) carrying that
///   record. A call blocked on a full request ring notices within its sleep slice (50 ms by
///   default). A client notices the end of the connection's socket too, and its pidfd of the
///   serving process. A wrapper script should `exec` the server: `stop` and the parent-death
///   signal reach the direct child only, and a server the script forks would outlive them.
/// * **Stopping is orderly, then certain.** [`Supervisor::stop`] sends `SIGTERM` through the
///   pidfd (never to a bare pid, which may have been reused), waits the configured grace for
///   the child to exit, then sends `SIGKILL`. Dropping a supervisor stops its child the same
///   way.
/// * **A process whose `SIGCHLD` is `SIG_IGN`** has its children reaped by the kernel, so no
///   exit status can be had. The exit is still noticed (through the pidfd); its status is
///   reported as unknown (`status: None`), never invented. The same holds when some other
///   code of the process reaps the child first (`waitpid(-1, …)`).
///
/// # Fork
///
/// A supervisor inherited by a forked child does nothing there: the supervisor thread does
/// not exist in the child, and dropping the copy neither signals nor waits.
///
/// Man pages: prctl(2) (`PR_SET_PDEATHSIG`), pidfd_open(2), pidfd_send_signal(2),
/// eventfd(2), poll(2), waitpid(2) (`SIGCHLD` and `SIG_IGN`).
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
///    Ok(answer) => println!("{} bytes back", answer.len()),
///    Err(CallError::ServerExited(exit)) => eprintln!("{exit}"), // status and log path
///    Err(e) => eprintln!("call failed: {e}"),
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

/// Numbers children whose log path is the default one.
static CHILDREN: AtomicU64 = AtomicU64::new(0);

impl Supervisor {
    /// Starts `command` as a supervised child (see the [type docs](Self)). The command's
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
    /// [`CallError::ServerExited`](super::CallError::ServerExited).
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
    /// calls with [`CallError::ServerExited`](super::CallError::ServerExited).
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
