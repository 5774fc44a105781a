//! The hand-over: when a handler the reactor thread runs inline keeps work waiting for longer
//! than its budget, a watcher thread takes over the serve loop so that the work is dispatched
//! instead of waiting. The argument is in the [module docs](super) ("Slow inline handlers").

use core::time::Duration;

use super::executor::Executor;
use super::handler::Handler;
use super::serve::Core;
use crate::channel::Transport;
use crate::doorbell::WatchBell;
use crate::mutant::{self, Mutant};
use crate::sync::{Arc, AtomicBool, AtomicU64, Condvar, Mutex, MutexGuard, Ordering, TryLockError};

/// What the reactor thread and its watcher share besides the core.
pub(super) struct Handover {
    /// Written only by the reactor thread: odd while it runs an inline handler with the core
    /// released, even otherwise; one more at each edge.
    inline: AtomicU64,
    /// The reactor thread is back from an inline handler and wants the core the watcher took.
    back: AtomicBool,
    /// The run is over (or unwinding): the watcher ends.
    quit: AtomicBool,
    /// The transport's doorbell: armed by the reactor thread for each inline run, so that a
    /// ring meanwhile wakes the watcher.
    bell: WatchBell,
    /// How long work may wait behind an inline handler before the watcher takes over.
    budget: Duration,
    /// The watcher's budget wait (a condvar, so that quitting cuts it short).
    nap: Mutex<()>,
    nap_bell: Condvar,
    /// The watcher panicked: no more hand-overs this run; its panic waits in `panic`.
    dead: AtomicBool,
    panic: Mutex<Option<std::boxed::Box<dyn core::any::Any + Send>>>,
}

/// Locks `m`, taking the data of a poisoned lock as it is: a panic elsewhere must not stop the
/// serve loop, and the core's state is consistent between turns.
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The longest a watcher waits for a ring before it looks again: anything that could clear
/// the mark without waking it (a hostile client ringing, a case this argument missed) costs
/// at most this, as a sleep slice bounds the doorbell's other waiters.
const LOOK_AGAIN: Duration = crate::doorbell::DEFAULT_SLICE;

impl Handover {
    pub(super) fn new(bell: WatchBell, budget: Duration) -> Self {
        Self {
            inline: AtomicU64::new(0),
            back: AtomicBool::new(false),
            quit: AtomicBool::new(false),
            bell,
            budget,
            nap: Mutex::new(()),
            nap_bell: Condvar::new(),
            dead: AtomicBool::new(false),
            panic: Mutex::new(None),
        }
    }

    /// The watcher's panic, if it had one.
    pub(super) fn take_panic(&self) -> Option<std::boxed::Box<dyn core::any::Any + Send>> {
        lock(&self.panic).take()
    }

    // ------------------------------------------------------------------ the reactor thread

    /// Before an inline run: moves the counter to the run's odd value, then sets the
    /// doorbell's waiter mark (a swap and a fence, no system call), so that from now on a
    /// ring — a request, an answer, freed room — wakes the watcher. The counter first: a
    /// watcher that sees a ring which found this mark (through the ringer's swap and its
    /// sequence bump, both after the Release of the mark's swap) then reads the odd value;
    /// the other order lets a ring between the two find the mark while the watcher still
    /// reads "no inline run", sleep, and miss it (mutant `odd_after_arm`). The caller must
    /// then re-check for waiting work and, if there is any, `abandon_inline`: a ring before
    /// the mark found no mark and woke nobody.
    /// Returns `false` if the mark could not be ordered before the re-check (an asymmetric
    /// doorbell whose `membarrier` failed): the caller then treats work as waiting.
    #[inline]
    #[must_use]
    pub(super) fn begin_inline(&self) -> bool {
        let n = self.inline.load(Ordering::Relaxed);
        if mutant::keep(Mutant::OddAfterArm) {
            self.inline.store(n + 1, Ordering::Relaxed);
        }
        let ordered = self.bell.line.arm();
        if mutant::active(Mutant::OddAfterArm) {
            self.inline.store(n + 1, Ordering::Relaxed);
        }
        ordered
    }

    /// The re-check after `begin_inline` found work: no inline run after all.
    #[cold]
    pub(super) fn abandon_inline(&self) {
        self.bell.line.disarm();
        let n = self.inline.load(Ordering::Relaxed);
        self.inline.store(n + 1, Ordering::Release);
    }

    /// Whether the watcher is there to hand over to (it has not panicked).
    #[inline]
    pub(super) fn alive(&self) -> bool {
        !self.dead.load(Ordering::Relaxed)
    }

    /// Takes the core back after an inline handler, then clears the mark. Fast path: the lock
    /// is free (one CAS). If the watcher holds it, says so (`back`) and rings the doorbell the
    /// watcher may be sleeping on, then waits for the lock: the watcher's sleep re-checks
    /// `back` after announcing itself, so either it sees `back` or this ring wakes it (the
    /// doorbell's fence pair; `back` is stored before the ring).
    #[inline]
    pub(super) fn retake<'a, T>(&self, core: &'a Mutex<T>, ring: impl Fn()) -> MutexGuard<'a, T> {
        let guard = match core.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => self.wait_for_core(core, ring),
        };
        let n = self.inline.load(Ordering::Relaxed);
        self.inline.store(n + 1, Ordering::Release);
        // Nobody sleeps on the bell with its mark now (the watcher is not leading, this
        // thread is awake; a watcher in `wait_for_ring` needs no mark): rings are free again.
        self.bell.line.disarm();
        guard
    }

    #[cold]
    #[inline(never)]
    fn wait_for_core<'a, T>(&self, core: &'a Mutex<T>, ring: impl Fn()) -> MutexGuard<'a, T> {
        if mutant::active(Mutant::BackRingsFirst) {
            ring();
        }
        // SeqCst: the store half of the doorbell's fence pair (see `retake`).
        self.back.store(true, Ordering::SeqCst);
        if mutant::keep(Mutant::BackRingsFirst) {
            ring();
        }
        let guard = lock(core);
        // Under the lock: the watcher reads `back` only while it holds the core.
        self.back.store(false, Ordering::Relaxed);
        guard
    }

    /// Ends the watcher: it stops leading at its next turn and leaves its waits.
    pub(super) fn quit(&self) {
        self.quit.store(true, Ordering::SeqCst);
        self.bell.line.wake_everyone();
        drop(lock(&self.nap));
        self.nap_bell.notify_all();
    }

    // ------------------------------------------------------------------ the watcher

    /// The watcher's loop. It sleeps on the doorbell without setting its mark: only a ring
    /// made while the mark is set wakes it — while the reactor thread sleeps (then it finds
    /// no inline run and sleeps again) or runs a handler inline. A ring during inline run `s`
    /// shows as the mark cleared while `inline` still reads `s`; then work waits behind the
    /// handler, and if after the budget the same run is still going, the watcher takes the
    /// core and leads until the reactor thread is back.
    pub(super) fn watch<T, H, E>(&self, core: &Mutex<Core<T, H, E>>)
    where
        T: Transport,
        H: Handler,
        E: Executor,
    {
        // A panic here (in the transport or the executor, while leading) must not leave the
        // reactor thread handing over to nobody: it stops arming, and `run` re-raises the
        // panic once it has put its state back.
        let watched = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.watch_until_quit(core);
        }));
        if let Err(panic) = watched {
            *lock(&self.panic) = Some(panic);
            self.dead.store(true, Ordering::Relaxed);
        }
    }

    fn watch_until_quit<T, H, E>(&self, core: &Mutex<Core<T, H, E>>)
    where
        T: Transport,
        H: Handler,
        E: Executor,
    {
        // The inline run last led through: its handler is over, the reactor thread is taking
        // the core back, and it is not taken again.
        let mut led: Option<u64> = None;
        loop {
            // The sequence first: a ring after this read ends the wait below at once. `quit`
            // after it: `quit` is stored before the sequence is moved on (`Handover::quit`),
            // so a sequence read that sees the move sees `quit` too.
            let seen = self.bell.line.sequence();
            if self.quit.load(Ordering::SeqCst) {
                return;
            }
            let run = self.inline.load(Ordering::Acquire);
            let rung_during_run = run % 2 == 1
                && led != Some(run)
                && !self.bell.line.armed()
                && self.inline.load(Ordering::Acquire) == run;
            if !rung_during_run {
                self.bell.line.wait_for_ring(seen, LOOK_AGAIN);
                continue;
            }
            self.nap();
            if self.quit.load(Ordering::SeqCst) || self.inline.load(Ordering::Acquire) != run {
                continue;
            }
            let guard = match core.try_lock() {
                Ok(g) => g,
                Err(TryLockError::Poisoned(e)) => e.into_inner(),
                Err(TryLockError::WouldBlock) => {
                    // The reactor thread still holds the core (between marking the run and
                    // releasing it): with a zero budget this would spin, so let it go on.
                    yield_now();
                    continue;
                }
            };
            // Holding the lock, re-read: the reactor thread stores the next odd value before
            // it releases the core, so this is the inline run it is in now.
            if self.inline.load(Ordering::Acquire) != run || self.back.load(Ordering::SeqCst) {
                continue;
            }
            led = Some(run);
            self.lead(guard);
        }
    }

    /// Waits out the budget (cut short by `quit`). Under loom there is no time: a zero-budget
    /// model goes on at once.
    fn nap(&self) {
        if self.budget.is_zero() {
            return;
        }
        let guard = lock(&self.nap);
        if !self.quit.load(Ordering::SeqCst) {
            drop(self.nap_bell.wait_timeout(guard, self.budget));
        }
    }

    /// Serves while the reactor thread's inline handler runs: every request is dispatched
    /// (the inline one is in flight, and this thread must not block serving), and the
    /// watcher leaves as soon as the reactor thread is back or the run ends.
    fn lead<T, H, E>(&self, mut core: MutexGuard<'_, Core<T, H, E>>)
    where
        T: Transport,
        H: Handler,
        E: Executor,
    {
        core.stats.handovers += 1;
        let leave = || self.back.load(Ordering::SeqCst) || self.quit.load(Ordering::SeqCst);
        loop {
            // SeqCst: the load half of the fence pair with `wait_for_core`'s store (the sleep
            // below re-checks it after announcing itself).
            if leave() {
                return;
            }
            let stopping = core.shared.stop.load(Ordering::Acquire);
            let mut progress = core.collect();
            progress |= core.flush_all();
            let (took, inline) = core.intake(stopping, false);
            debug_assert!(inline.is_none());
            progress |= took;
            core.housekeeping_if_due(progress, stopping);
            if !progress {
                core.sleep(stopping, Some(&leave));
            }
        }
    }
}

/// Runs `f` with a watcher thread for `core` (`f` gets the hand-over if the thread could be
/// spawned, `None` if not); the watcher ends, and is joined, before this returns or unwinds —
/// unless `f` says the process is a forked child, where the watcher thread does not exist.
pub(super) fn with_watcher<T, H, E>(
    core: &Arc<Mutex<Core<T, H, E>>>,
    handover: &Arc<Handover>,
    f: impl FnOnce(Option<&Handover>) -> Served,
) -> Served
where
    T: Transport + Send + 'static,
    H: Handler,
    E: Executor + Send + 'static,
{
    /// Quits and joins the watcher however `f` ends, so that a panic on the reactor thread
    /// does not leave it running.
    struct Joined<'a, J: Joinable> {
        handover: &'a Handover,
        watcher: Option<J>,
    }
    impl<J: Joinable> Drop for Joined<'_, J> {
        fn drop(&mut self) {
            if let Some(w) = self.watcher.take() {
                self.handover.quit();
                // The watcher catches its own panics (`Handover::watch`).
                let _ = w.join();
            }
        }
    }
    let (c, h) = (core.clone(), handover.clone());
    let mut joined = Joined {
        handover,
        watcher: spawn(move || h.watch(&c)),
    };
    let served = f(joined.watcher.is_some().then_some(&**handover));
    if served == Served::Forked {
        // The watcher is the parent's: nothing to quit or join here.
        core::mem::forget(joined.watcher.take());
    }
    served
}

/// How the reactor thread's loop ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Served {
    /// Stopped and drained.
    Done,
    /// The process is a child forked inside an inline handler: the reactor is the parent's.
    Forked,
}

/// A joinable thread handle (std's or loom's).
pub(super) trait Joinable {
    fn join(self) -> std::thread::Result<()>;
}

#[cfg(not(loom))]
impl Joinable for std::thread::JoinHandle<()> {
    fn join(self) -> std::thread::Result<()> {
        std::thread::JoinHandle::join(self)
    }
}

#[cfg(loom)]
impl Joinable for loom::thread::JoinHandle<()> {
    fn join(self) -> std::thread::Result<()> {
        loom::thread::JoinHandle::join(self)
    }
}

#[cfg(not(loom))]
fn yield_now() {
    std::thread::yield_now();
}

#[cfg(loom)]
fn yield_now() {
    loom::thread::yield_now();
}

#[cfg(not(loom))]
fn spawn(f: impl FnOnce() + Send + 'static) -> Option<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("ringbell-reactor-watch".into())
        .spawn(f)
        .ok()
}

#[cfg(loom)]
fn spawn(f: impl FnOnce() + Send + 'static) -> Option<loom::thread::JoinHandle<()>> {
    Some(loom::thread::spawn(f))
}
