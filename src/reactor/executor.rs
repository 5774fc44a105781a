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

    /// Whether jobs run on other threads than the caller's, so that the reactor may hand its
    /// serve loop to its watcher while an inline handler overruns (see
    /// [`Reactor::inline_budget`](super::Reactor::inline_budget)). True unless the executor
    /// runs each job on the calling thread, as [`InlineExecutor`] does.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::reactor::{Executor, InlineExecutor, ThreadPool};
    ///
    /// assert!(ThreadPool::new(1).runs_concurrently());
    /// assert!(!InlineExecutor.runs_concurrently());
    /// ```
    fn runs_concurrently(&self) -> bool {
        true
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

    fn runs_concurrently(&self) -> bool {
        false
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
