//! Where handed-off requests run: the executor trait and the inline executor.

use std::boxed::Box;

use crate::sync::Arc;

/// A unit of work for an [`Executor`].
///
/// # Examples
///
/// ```
/// use ringbell::reactor::Job;
///
/// let job: Job = Box::new(|| println!("handled"));
/// job();
/// ```
pub type Job = Box<dyn FnOnce() + Send + 'static>;

/// Runs the jobs the reactor hands off: requests that arrive while others are in flight.
///
/// [`InlineExecutor`] runs each job at once on the reactor thread;
/// [`ThreadPool`](super::ThreadPool) is a small pool that spawns its threads when created.
/// Size a pool by your own budget, never by the host's core count. With an executor that runs
/// jobs concurrently, [`Reactor::run`](super::Reactor::run) also starts one watcher thread
/// (see "Slow inline handlers" in the [module docs](super)); otherwise the crate spawns no
/// thread.
///
/// # Examples
///
/// ```
/// use ringbell::reactor::{Executor, Job};
///
/// /// A thread per job (a sketch; a real server bounds its threads).
/// struct Spawner;
/// impl Executor for Spawner {
///     fn execute(&self, job: Job) {
///         std::thread::spawn(job);
///     }
/// }
/// # let _ = Spawner;
/// ```
pub trait Executor {
    /// Runs `job`, now or later, on any thread. A job must run exactly once; a job never run
    /// leaves its request in flight (its client then waits for its deadline).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::reactor::{Executor, ThreadPool};
    ///
    /// let pool = ThreadPool::new(1);
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// pool.execute(Box::new(move || tx.send(()).unwrap()));
    /// rx.recv().unwrap();
    /// ```
    fn execute(&self, job: Job);

    /// Whether `execute` never runs a job on the calling thread, so that the reactor may hand
    /// its serve loop to its watcher thread while an inline handler keeps work waiting (see
    /// [`Reactor::inline_budget`](super::Reactor::inline_budget)): the watcher dispatches
    /// while it leads, and must not end up running a handler itself. False by default —
    /// an executor that runs jobs on the caller, always or when it is saturated, must not
    /// say true; [`ThreadPool`](super::ThreadPool) says true.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::reactor::{Executor, InlineExecutor, Job, ThreadPool};
    ///
    /// assert!(ThreadPool::new(1).runs_concurrently());
    /// assert!(!InlineExecutor.runs_concurrently());
    ///
    /// /// A thread per job: never on the caller.
    /// struct Spawner;
    /// impl Executor for Spawner {
    ///     fn execute(&self, job: Job) {
    ///         std::thread::spawn(job);
    ///     }
    ///     fn runs_concurrently(&self) -> bool {
    ///         true
    ///     }
    /// }
    /// assert!(Spawner.runs_concurrently());
    /// ```
    fn runs_concurrently(&self) -> bool {
        false
    }
}

/// Runs every job at once on the calling thread (the reactor's): a serial server.
///
/// # Examples
///
/// ```
/// use ringbell::reactor::{Executor, InlineExecutor};
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::Arc;
///
/// let ran = Arc::new(AtomicBool::new(false));
/// let r = ran.clone();
/// InlineExecutor.execute(Box::new(move || r.store(true, Ordering::Relaxed)));
/// assert!(ran.load(Ordering::Relaxed)); // ran before `execute` returned
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct InlineExecutor;

impl Executor for InlineExecutor {
    fn execute(&self, job: Job) {
        job();
    }
}

impl<E: Executor + ?Sized> Executor for Arc<E> {
    fn execute(&self, job: Job) {
        (**self).execute(job);
    }

    fn runs_concurrently(&self) -> bool {
        (**self).runs_concurrently()
    }
}
