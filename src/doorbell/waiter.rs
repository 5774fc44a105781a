//! One blocking side's way of waiting: its options, its adaptive spin state and its counters,
//! and the sliced wait every blocking call uses.
//!
//! The state sits in `Cell`s so that a side can wait while its condition borrows the side
//! itself (`waiter.wait(&line, || self.has_data(), ..)`): no copying the waiter out and back.
//! That makes each ring end `!Sync`, as rtrb's are: an end is used by one thread at a time.

use core::cell::Cell;

use super::line::Line;
use super::options::{TimedOut, WaitOptions, WaitStats};
use crate::clock::{Deadline, Instant};

/// How a sliced wait ended without its condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stop<E> {
    /// The caller's deadline passed.
    Timeout,
    /// The check between slices reported this.
    By(E),
}

/// What a blocking side keeps between waits.
#[derive(Debug)]
pub(crate) struct Waiter {
    opts: Cell<WaitOptions>,
    spinner: Cell<Spinner>,
    stats: Cell<WaitStats>,
    /// The peer's readiness signal, if its side waits asynchronously: this side's rings
    /// then answer its async waits ([`Line::ring_readiness`]).
    #[cfg(feature = "std")]
    readiness: Option<super::ReadinessSignal>,
}

impl Waiter {
    pub(crate) fn new(opts: WaitOptions) -> Self {
        Self {
            opts: Cell::new(opts),
            spinner: Cell::new(Spinner::new(&opts)),
            stats: Cell::new(WaitStats::default()),
            #[cfg(feature = "std")]
            readiness: None,
        }
    }

    /// Makes this side's rings answer the peer's async waits through `signal` (`None`: plain
    /// rings).
    #[cfg(feature = "std")]
    pub(crate) fn set_readiness(&mut self, signal: Option<super::ReadinessSignal>) {
        self.readiness = signal;
    }

    /// The peer's readiness signal this waiter rings with, for the test hooks.
    #[cfg(all(feature = "test-hooks", not(loom)))]
    pub(crate) fn readiness(&self) -> Option<&super::ReadinessSignal> {
        self.readiness.as_ref()
    }

    pub(crate) fn set_options(&self, opts: WaitOptions) {
        self.opts.set(opts);
        self.spinner.set(Spinner::new(&opts));
    }

    #[cfg_attr(not(feature = "alloc"), allow(dead_code))] // the fan-in asks
    pub(crate) fn options(&self) -> WaitOptions {
        self.opts.get()
    }

    pub(crate) fn stats(&self) -> WaitStats {
        self.stats.get()
    }

    /// Rings `line`, counting a wake system call if one is made.
    #[inline(always)]
    pub(crate) fn ring(&self, line: &Line) {
        #[cfg(feature = "std")]
        if let Some(signal) = &self.readiness {
            let calls = line.ring_readiness(signal);
            for _ in 0..calls {
                self.count(|s| s.wakes += 1);
            }
            return;
        }
        if line.ring() {
            self.count(|s| s.wakes += 1);
        }
    }

    /// Counts a wake system call made outside [`ring`](Self::ring).
    #[cfg(feature = "std")]
    pub(crate) fn count_wake(&self) {
        self.count(|s| s.wakes += 1);
    }

    /// Counts an announced wait made outside this waiter's own waits (an async one).
    #[cfg(feature = "std")]
    pub(crate) fn count_sleep(&self) {
        self.count(|s| s.sleeps += 1);
    }

    #[cold]
    fn count(&self, f: impl FnOnce(&mut WaitStats)) {
        let mut s = self.stats.get();
        f(&mut s);
        self.stats.set(s);
    }

    /// Waits on `line` until `ready()` or `deadline`: spins (adaptively), then sleeps in
    /// slices, re-checking `ready()` after each. `ready` must be cheap and free of side
    /// effects that matter if repeated.
    pub(crate) fn wait(
        &self,
        line: &Line,
        mut ready: impl FnMut() -> bool,
        deadline: Option<Instant>,
    ) -> Result<(), TimedOut> {
        if ready() {
            return Ok(());
        }
        let until = deadline.map_or(Deadline::NEVER, Deadline::until);
        self.spin_then(ready, until, Ok(()), |ready, opts, delta| {
            line.sleep_until(ready, deadline, opts.slice, delta)
        })
    }

    /// The spin phase (which may end at `deadline`), then — unless it ended the wait with
    /// `ready()` — `sleep`. The counters of both are kept locally and added to this waiter's
    /// at the end: `ready()` may ring through this same waiter, and its count must not be
    /// overwritten by ours.
    fn spin_then<R, F: FnMut() -> bool>(
        &self,
        mut ready: F,
        deadline: Deadline,
        spun: R,
        sleep: impl FnOnce(&mut F, &WaitOptions, &mut WaitStats) -> R,
    ) -> R {
        let opts = self.opts.get();
        let mut delta = WaitStats::default();
        let mut spinner = self.spinner.get();
        let done = spinner.spin(&mut ready, &opts, &mut delta, deadline);
        self.spinner.set(spinner);
        let r = match done {
            true => spun,
            false => sleep(&mut ready, &opts, &mut delta),
        };
        self.stats.set(self.stats.get() + delta);
        r
    }

    /// As [`wait`](Self::wait) until `timeout` after the spin phase: reads no clock unless
    /// it goes on to sleep. For waits whose length need not be exact (a server's housekeeping
    /// slice): it may last a spin phase longer than `timeout`.
    #[cfg_attr(any(loom, not(feature = "std")), allow(dead_code))] // the channel server's
    pub(crate) fn wait_within(
        &self,
        line: &Line,
        mut ready: impl FnMut() -> bool,
        timeout: core::time::Duration,
    ) -> Result<(), TimedOut> {
        if ready() {
            return Ok(());
        }
        self.spin_then(ready, Deadline::NEVER, Ok(()), |ready, opts, delta| {
            let until = Some(Instant::now().after(timeout));
            line.sleep_until(ready, until, opts.slice, delta)
        })
    }

    /// Waits until `ready()` or `deadline`, one slice at a time; after each slice that ends
    /// without `ready()`, asks `between` (a dead-peer check, say) whether to stop. It is asked
    /// once more when the deadline passes, before giving up with [`Stop::Timeout`]: a caller
    /// whose deadline is shorter than a slice still learns of a dead peer rather than timing
    /// out against it for ever.
    ///
    /// Spins once, first, without reading the clock when the deadline is never (a finite
    /// deadline is looked at every few hundred spins); only a wait that goes on to sleep
    /// reads it, for the end of its slice. `deadline` must be started (callers start it
    /// when they first have to wait, so that retries keep it).
    pub(crate) fn wait_sliced<E>(
        &self,
        line: &Line,
        mut ready: impl FnMut() -> bool,
        deadline: Deadline,
        mut between: impl FnMut() -> Option<E>,
    ) -> Result<(), Stop<E>> {
        debug_assert_eq!(deadline, deadline.start(), "a deadline not started");
        if ready() {
            return Ok(());
        }
        self.spin_then(ready, deadline, Ok(()), |ready, opts, delta| {
            loop {
                let slice_end = Instant::now().after(opts.slice);
                let until = Some(deadline.min(slice_end));
                if line
                    .sleep_until(&mut *ready, until, opts.slice, delta)
                    .is_ok()
                {
                    break Ok(());
                }
                if let Some(e) = between() {
                    break Err(Stop::By(e));
                }
                if deadline.passed() {
                    break Err(Stop::Timeout);
                }
            }
        })
    }
}

/// Adaptive spin state (see the module docs of [`doorbell`](super), "Spinning").
#[derive(Clone, Copy, Debug)]
struct Spinner {
    /// The current adaptive budget, at most the configured one.
    #[cfg_attr(loom, allow(dead_code))]
    budget: u32,
    /// Waits so far, to try the full budget every 16th.
    #[cfg_attr(loom, allow(dead_code))]
    waits: u32,
    /// For a thread that may run on one CPU only: whether another thread was found
    /// runnable on it (then spinning only keeps that thread off the CPU); probed by timing
    /// one yield after a spin that failed or yields nobody answered, and at the first wait
    /// and every 4096th (where it takes two slow probes in a row).
    #[cfg_attr(loom, allow(dead_code))]
    cpu_shared: bool,
    /// The last periodic probe found another thread on the CPU (a second in a row makes
    /// the CPU shared: one slow yield may be a hiccup of the machine).
    #[cfg_attr(loom, allow(dead_code))]
    slow_probe: bool,
    /// Whether the next wait probes `cpu_shared`.
    #[cfg_attr(loom, allow(dead_code))]
    probe_cpu: bool,
}

impl Spinner {
    fn new(opts: &WaitOptions) -> Self {
        Self {
            budget: opts.spin_budget,
            waits: 0,
            cpu_shared: false,
            slow_probe: false,
            probe_cpu: false,
        }
    }

    /// The spin phase, or the yield phase when spinning is no use; true if `ready()` came
    /// true in it (see the module docs of [`doorbell`](super), "Spinning" and "Yielding").
    #[cfg(not(loom))]
    fn spin(
        &mut self,
        ready: &mut impl FnMut() -> bool,
        opts: &WaitOptions,
        stats: &mut WaitStats,
        deadline: Deadline,
    ) -> bool {
        use core::sync::atomic::Ordering::Relaxed;
        /// Leaves the spinner count when dropped, even if `ready()` panics.
        struct Spinning;
        impl Drop for Spinning {
            fn drop(&mut self) {
                SPINNERS.fetch_sub(1, Relaxed);
            }
        }
        if opts.spin_budget == 0 {
            return false; // never spin, never yield
        }
        self.waits = self.waits.wrapping_add(1);
        let probe = self.waits % 16 == 0; // maybe the peer is fast again
        let budget = match probe {
            true => opts.spin_budget,
            false => self.budget.min(opts.spin_budget),
        };
        let floor = (opts.spin_budget / 64).max(1);
        let cpus = cpus();
        if cpus == 1 && (self.probe_cpu || self.waits % 4096 == 1) {
            // After a failed spin (or unanswered yields) one slow yield says shared: it
            // confirms what the wait already saw. A periodic probe needs two in a row.
            let slow = cpu_is_shared(stats);
            self.cpu_shared = match self.probe_cpu {
                true => slow,
                false => slow && (self.slow_probe || self.cpu_shared),
            };
            self.slow_probe = slow;
            self.probe_cpu = false;
            if ready() {
                return true;
            }
        }
        let spinning = SPINNERS.fetch_add(1, Relaxed);
        let guard = Spinning;
        let may_spin = match cpus {
            1 => !self.cpu_shared && spinning == 0,
            n => spinning < n - 1,
        };
        if may_spin {
            let mut done = false;
            let mut i = 0;
            // A finite deadline is looked at every `CLOCK_EVERY` spins (a clock read costs as
            // much as tens of them), so a spin never overruns it by more than that.
            const CLOCK_EVERY: u32 = 256;
            let finite = !deadline.is_never();
            while i < budget {
                crate::sync::spin_loop();
                i += 1;
                if ready() {
                    done = true;
                    break;
                }
                if finite && i % CLOCK_EVERY == 0 && deadline.passed() {
                    break;
                }
            }
            stats.spins += i as u64;
            self.budget = match done {
                true => budget.saturating_mul(2).clamp(floor, opts.spin_budget),
                false => (budget / 2).max(floor),
            };
            if !done && cpus == 1 {
                // Alone on its CPU yet nothing came: look again at the next wait.
                self.probe_cpu = true;
            }
            return done;
        }
        drop(guard);
        // The CPUs are taken (by spinners, or by another runnable thread on our one CPU): the
        // thread this wait is for may be waiting for one. Give ours away a few times.
        for _ in 0..YIELDS {
            rustix::thread::sched_yield();
            stats.yields += 1;
            if ready() {
                return true;
            }
        }
        if cpus == 1 && self.cpu_shared {
            // Yields nobody answered: maybe the CPU is ours after all; look again.
            self.probe_cpu = true;
        }
        false
    }

    /// Under loom the spin phase is skipped: the models explore the sleeping protocol.
    #[cfg(loom)]
    fn spin(
        &mut self,
        _ready: &mut impl FnMut() -> bool,
        _opts: &WaitOptions,
        _stats: &mut WaitStats,
        _deadline: Deadline,
    ) -> bool {
        false
    }
}

/// At most this many `sched_yield`s before a waiter that may not spin sleeps.
#[cfg(not(loom))]
const YIELDS: u32 = 4;

/// Whether another thread is runnable on this thread's CPU: one timed yield. A yield that
/// comes back within a few microseconds ran nobody else (a switch to another thread and back
/// takes at least a time slice of that thread or a sleep of it).
#[cfg(not(loom))]
#[cold]
fn cpu_is_shared(stats: &mut WaitStats) -> bool {
    use crate::clock::Instant;
    let before = Instant::now();
    rustix::thread::sched_yield();
    stats.yields += 1;
    Instant::now().since(before) > core::time::Duration::from_micros(5)
}

/// Threads of this process spinning in a wait right now. Written by every wait that spins,
/// so on 128 bytes of its own: it must not share a line with a word the rings read on every
/// call (the fork generation, which the linker put beside it).
#[cfg(not(loom))]
static SPINNERS: Spinners = Spinners(core::sync::atomic::AtomicU32::new(0));

#[cfg(not(loom))]
#[repr(align(128))]
struct Spinners(core::sync::atomic::AtomicU32);

#[cfg(not(loom))]
impl core::ops::Deref for Spinners {
    type Target = core::sync::atomic::AtomicU32;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// CPUs the calling thread may run on: its affinity, read once per thread (with `std`; once
/// per process without) — a thread pinned to one CPU does not spin, whatever the others may.
#[cfg(not(loom))]
fn cpus() -> u32 {
    fn read() -> u32 {
        rustix::thread::sched_getaffinity(None)
            .map(|set| set.count())
            .unwrap_or(1)
            .max(1)
    }
    #[cfg(feature = "std")]
    {
        extern crate std;
        std::thread_local! {
            static CPUS: Cell<u32> = const { Cell::new(0) };
        }
        CPUS.with(|c| match c.get() {
            0 => {
                let n = read();
                c.set(n);
                n
            }
            n => n,
        })
    }
    #[cfg(not(feature = "std"))]
    {
        use core::sync::atomic::{AtomicU32, Ordering::Relaxed};
        static CPUS: AtomicU32 = AtomicU32::new(0);
        match CPUS.load(Relaxed) {
            0 => {
                let n = read();
                CPUS.store(n, Relaxed);
                n
            }
            n => n,
        }
    }
}
