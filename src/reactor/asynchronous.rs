//! The reactor inside a tokio runtime (feature `tokio`): [`Reactor::run_async`] and
//! [`TokioExecutor`].
//!
//! `run_async` is the serve loop of [`Reactor::run`] as a task: it takes requests, runs them
//! inline or hands them to the executor, sends answers, and when there is nothing to do it
//! announces its wait on the transport's *wait descriptor* (for the shared-memory
//! [`Server`](crate::channel::Server): its readiness socket, which clients ring only when
//! such a wait is announced — doorbell module docs, "Async waits") and awaits it through
//! tokio's reactor, for at most a housekeeping slice. Nothing blocks the runtime's thread
//! but the handlers it runs inline. With no watcher thread there is no hand-over of a slow
//! inline run: while more than one client is connected and the executor runs jobs
//! elsewhere, requests go to the executor (as on the socket transport).

use std::io;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::runtime::Handle;

use super::{Executor, Handler, Job, Reactor, ReactorStats};
use crate::channel::Transport;
use crate::clock::Instant;
use crate::doorbell::Announced;

impl<T: Transport, H: Handler, E: Executor> Reactor<T, H, E> {
    /// Serves until stopped, as a task of the current tokio runtime instead of a thread of
    /// its own. It is the serve loop of [`run`](Self::run) as a task: when there is nothing
    /// to do it announces its wait on the transport's wait descriptor
    /// ([`Transport::announce`]; for the shared-memory server its readiness socket, which
    /// clients ring only when such a wait is announced) and awaits it through tokio's
    /// reactor, for at most a housekeeping slice. Nothing blocks the runtime's thread but
    /// the handlers it runs inline; with no watcher thread there is no hand-over of a slow
    /// inline run, so while more than one client is connected and the executor runs jobs
    /// elsewhere, requests go to the executor. Dropping the future stops serving where it
    /// is, without the drain: the reactor stays usable (call `run_async` again to go on),
    /// and its clients wait, as for a reactor not running, until it runs or is dropped. A
    /// handler may answer from a task it spawns (its
    /// [`Responder`](super::Responder) moves into the task). Stopping, draining and the
    /// statistics are those of [`run`](Self::run).
    ///
    /// # Errors
    ///
    /// [`Unsupported`](io::ErrorKind::Unsupported) if the transport has no wait descriptor
    /// ([`Transport::wait_descriptor`]: the socket transport and the
    /// [`DualServer`](crate::channel::DualServer) wait on many descriptors; serve them with
    /// [`run`](Self::run) on a blocking thread); as [`run`](Self::run) after a fork; an I/O
    /// error if tokio cannot register the descriptor.
    ///
    /// # Examples
    ///
    /// A server and its clients on one thread: a current-thread runtime serves, and the
    /// handler answers from a task.
    ///
    /// ```
    /// use ringbell::channel::{AsyncClient, Server, ServerConfig};
    /// use ringbell::reactor::{Reactor, Request, Responder, TokioExecutor};
    ///
    /// let dir = std::env::temp_dir().join(format!("ringbell-doc-runasync-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    /// rt.block_on(async {
    ///     let server = Server::bind(dir.join("s.sock"), ServerConfig::new())?;
    ///     let mut reactor = Reactor::new(server, |req: Request, res: Responder| {
    ///         tokio::spawn(async move {
    ///             tokio::time::sleep(std::time::Duration::from_millis(1)).await; // async work
    ///             let _ = res.respond(&req.body);
    ///         });
    ///     })
    ///     .with_executor(TokioExecutor::current());
    ///     let stop = reactor.stop_handle();
    ///     let serving = tokio::spawn(async move { reactor.run_async().await });
    ///     let client = AsyncClient::connect(dir.join("s.sock")).await?;
    ///     assert_eq!(client.call(b"hello").await?, b"hello");
    ///     stop.stop();
    ///     serving.await??;
    ///     Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// })
    /// .map_err(|e| e.to_string())?;
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn run_async(&mut self) -> io::Result<ReactorStats> {
        if crate::fork::forked(self.fork_gen) {
            return Err(io::Error::other(
                "the reactor was inherited across fork: only the process that made it serves",
            ));
        }
        let fd = match self.core().transport.wait_descriptor() {
            Some(fd) => fd.try_clone_to_owned()?,
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "this transport waits on many descriptors: serve it with `run`",
                ));
            }
        };
        // SAFETY: the `AsyncFd` owns the duplicate descriptor, open for as long as it lives,
        // and `as_raw_fd` of an `OwnedFd` is always that one.
        let ready = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
            .map_err(io::Error::from)?;
        let slice = self
            .core()
            .transport
            .housekeeping_interval()
            .unwrap_or(Duration::from_millis(50));
        let (handler, shared, drain) = (self.handler.clone(), self.shared.clone(), self.drain);
        let mut drain_deadline: Option<Instant> = None;
        self.core_mut().housekeeping(true);
        let mut busy_turns = 0u32;
        loop {
            let core = self.core_mut();
            let stopping = shared.stop.load(Ordering::Acquire);
            let mut progress = core.collect();
            progress |= core.flush_all();
            if stopping && core.stop_finished(&mut drain_deadline, drain, true) {
                break;
            }
            // No watcher to hand a slow inline run over to: beside other clients, requests
            // go to an executor that runs them elsewhere.
            let may_inline = core.serial
                || !core.executor.runs_concurrently()
                || core.transport.connections() <= 1;
            let (took, inline) = core.intake(stopping, may_inline);
            progress |= took;
            if let Some(run) = inline {
                let conn = run.conn;
                let mut mine = core::mem::take(&mut core.inline_done);
                run.run(&*handler, &shared, &mut mine);
                if crate::fork::forked(self.fork_gen) {
                    return Err(io::Error::other(
                        "the process forked inside an inline handler: only the parent serves",
                    ));
                }
                let core = self.core_mut();
                core.finish_inline(conn, &mut mine);
                core.inline_done = mine;
            }
            let core = self.core_mut();
            core.housekeeping_if_due(progress, stopping);
            if progress {
                // A busy reactor still lets the runtime's other tasks run now and then.
                busy_turns += 1;
                if busy_turns % 64 == 0 {
                    tokio::task::yield_now().await;
                }
                continue;
            }
            match core.announce_wait(stopping) {
                Announced::Ready => continue,
                Announced::RetryAfter(d) => {
                    tokio::time::sleep(d).await;
                    continue;
                }
                Announced::Wait => {}
            }
            match tokio::time::timeout(slice, ready.readable()).await {
                // Cleared before the next announcement drains the socket: a ring after that
                // is a new event.
                Ok(Ok(mut guard)) => guard.clear_ready(),
                Ok(Err(_)) => tokio::time::sleep(slice).await,
                // The slice: housekeeping is due.
                Err(_elapsed) => {}
            }
        }
        self.core_mut().transport.shutdown();
        Ok(self.core().stats)
    }
}

/// An [`Executor`] that runs jobs on a tokio runtime: as tasks ([`new`](Self::new),
/// [`current`](Self::current)), for handlers that do little before they hand their
/// [`Responder`](super::Responder) to async work, or on its blocking pool
/// ([`blocking`](Self::blocking)), for handlers that block. Never on the caller's thread.
///
/// # Examples
///
/// ```
/// use ringbell::reactor::{Executor, TokioExecutor};
///
/// let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
/// let exec = TokioExecutor::blocking(rt.handle().clone());
/// assert!(exec.runs_concurrently());
/// let (tx, rx) = std::sync::mpsc::channel();
/// exec.execute(Box::new(move || tx.send(7).unwrap()));
/// assert_eq!(rx.recv()?, 7);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct TokioExecutor {
    handle: Handle,
    blocking: bool,
}

impl TokioExecutor {
    /// Jobs as tasks on the runtime of `handle`.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = tokio::runtime::Builder::new_current_thread().build()?;
    /// let exec = ringbell::reactor::TokioExecutor::new(rt.handle().clone());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new(handle: Handle) -> Self {
        Self {
            handle,
            blocking: false,
        }
    }

    /// Jobs as tasks on the current runtime.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (as [`Handle::current`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = tokio::runtime::Builder::new_current_thread().build()?;
    /// let exec = rt.block_on(async { ringbell::reactor::TokioExecutor::current() });
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn current() -> Self {
        Self::new(Handle::current())
    }

    /// Jobs on the blocking pool of the runtime of `handle` (`spawn_blocking`).
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = tokio::runtime::Builder::new_current_thread().build()?;
    /// let exec = ringbell::reactor::TokioExecutor::blocking(rt.handle().clone());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn blocking(handle: Handle) -> Self {
        Self {
            handle,
            blocking: true,
        }
    }
}

impl Executor for TokioExecutor {
    fn execute(&self, job: Job) {
        // A job that panics is answered `Panicked` by its responder's drop; the task's
        // join handle is not needed.
        match self.blocking {
            true => drop(self.handle.spawn_blocking(job)),
            false => drop(self.handle.spawn(async move { job() })),
        }
    }

    fn runs_concurrently(&self) -> bool {
        true
    }
}
