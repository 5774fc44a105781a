//! A small thread pool: the executor most servers hand work to.

use super::executor::{Executor, Job};
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

/// A small fixed pool of worker threads, spawned when it is created and joined when it is
/// dropped (after the jobs already queued have run). Size it by your own budget: the crate
/// never sizes anything by the host's core count.
///
/// A child forked from the process that made the pool has none of its workers: there
/// `execute` runs each job on the calling thread, and dropping the pool joins nothing.
///
/// # Examples
///
/// ```
/// use ringbell::reactor::{Executor, ThreadPool};
/// use std::sync::mpsc;
///
/// let pool = ThreadPool::new(2);
/// let (tx, rx) = mpsc::channel();
/// pool.execute(Box::new(move || tx.send(6 * 7).unwrap()));
/// assert_eq!(rx.recv().unwrap(), 42);
/// ```
pub struct ThreadPool {
    inner: Arc<Inner>,
    threads: Vec<JoinHandle<()>>,
    /// The fork generation when made: a forked child has none of the workers.
    fork_gen: u32,
}

struct Inner {
    queue: Mutex<(VecDeque<Job>, bool)>,
    ready: Condvar,
}

impl ThreadPool {
    /// Spawns `threads` workers (at least one).
    ///
    /// # Panics
    ///
    /// If the operating system refuses to spawn a thread.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = ringbell::reactor::ThreadPool::new(0);
    /// assert_eq!(pool.threads(), 1); // at least one
    /// ```
    pub fn new(threads: usize) -> Self {
        let inner = Arc::new(Inner {
            queue: Mutex::new((VecDeque::new(), false)),
            ready: Condvar::new(),
        });
        let threads = (0..threads.max(1))
            .map(|i| {
                let inner = inner.clone();
                std::thread::Builder::new()
                    .name(format!("ringbell-worker-{i}"))
                    .spawn(move || inner.work())
                    .expect("spawning a worker thread")
            })
            .collect();
        Self {
            inner,
            threads,
            fork_gen: crate::fork::generation(),
        }
    }

    /// Worker threads.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(ringbell::reactor::ThreadPool::new(3).threads(), 3);
    /// ```
    pub fn threads(&self) -> usize {
        self.threads.len()
    }
}

impl Inner {
    fn work(&self) {
        loop {
            let job = {
                let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    if let Some(job) = q.0.pop_front() {
                        break job;
                    }
                    if q.1 {
                        return;
                    }
                    q = self.ready.wait(q).unwrap_or_else(|e| e.into_inner());
                }
            };
            // Jobs from the reactor catch their own panics; a foreign job's panic must not
            // kill the worker.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
        }
    }
}

impl Executor for ThreadPool {
    fn execute(&self, job: Job) {
        if crate::fork::forked(self.fork_gen) {
            // A forked child has none of the workers, and the queue's lock may have been
            // held by one of them at the fork: run the job here.
            job();
            return;
        }
        let mut q = self.inner.queue.lock().unwrap_or_else(|e| e.into_inner());
        q.0.push_back(job);
        drop(q);
        self.inner.ready.notify_one();
    }

    /// True, except in a forked child (which has none of the workers and runs jobs on the
    /// caller).
    fn runs_concurrently(&self) -> bool {
        !crate::fork::forked(self.fork_gen)
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        if crate::fork::forked(self.fork_gen) {
            // The workers are the parent's: there is nothing to join here, and the queue (its
            // lock possibly held at the fork, its jobs the parent's) is left untouched.
            core::mem::forget(core::mem::take(&mut self.threads));
            core::mem::forget(self.inner.clone());
            return;
        }
        self.inner.queue.lock().unwrap_or_else(|e| e.into_inner()).1 = true;
        self.inner.ready.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl std::fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadPool")
            .field("threads", &self.threads.len())
            .finish()
    }
}
