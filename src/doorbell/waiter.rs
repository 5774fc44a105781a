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
}

impl Waiter {
    pub(crate) fn new(opts: WaitOptions) -> Self {
        Self {
            opts: Cell::new(opts),
            spinner: Cell::new(Spinner::new(&opts)),
            stats: Cell::new(WaitStats::default()),
        }
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
        if line.ring() {
            self.count(|s| s.wakes += 1);
        }
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
        let opts = self.opts.get();
        // Counted locally and added at the end: `ready()` may ring through this same waiter,
        // and its count must not be overwritten by ours.
        let mut delta = WaitStats::default();
        let mut spinner = self.spinner.get();
        let spun = spinner.spin(&mut ready, &opts, &mut delta);
        self.spinner.set(spinner);
        let r = if spun {
            Ok(())
        } else {
            line.sleep_until(&mut ready, deadline, opts.slice, &mut delta)
        };
        self.stats.set(self.stats.get() + delta);
        r
    }

    /// Waits until `ready()` or `deadline`, one slice at a time; after each slice that ends
    /// without `ready()`, asks `between` (a dead-peer check, say) whether to stop. It is asked
    /// once more when the deadline passes, before giving up with [`Stop::Timeout`]: a caller
    /// whose deadline is shorter than a slice still learns of a dead peer rather than timing
    /// out against it for ever.
    pub(crate) fn wait_sliced<E>(
        &self,
        line: &Line,
        mut ready: impl FnMut() -> bool,
        deadline: Deadline,
        mut between: impl FnMut() -> Option<E>,
    ) -> Result<(), Stop<E>> {
        loop {
            let slice_end = Instant::now().after(self.opts.get().slice);
            if self
                .wait(line, &mut ready, Some(deadline.min(slice_end)))
                .is_ok()
            {
                return Ok(());
            }
            if let Some(e) = between() {
                return Err(Stop::By(e));
            }
            if deadline.passed() {
                return Err(Stop::Timeout);
            }
        }
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
}

impl Spinner {
    fn new(opts: &WaitOptions) -> Self {
        Self {
            budget: opts.spin_budget,
            waits: 0,
        }
    }

    /// The spin phase; true if `ready()` came true while spinning.
    #[cfg(not(loom))]
    fn spin(
        &mut self,
        ready: &mut impl FnMut() -> bool,
        opts: &WaitOptions,
        stats: &mut WaitStats,
    ) -> bool {
        use core::sync::atomic::Ordering::Relaxed;
        /// Leaves the spinner count when dropped, even if `ready()` panics.
        struct Spinning;
        impl Drop for Spinning {
            fn drop(&mut self) {
                SPINNERS.fetch_sub(1, Relaxed);
            }
        }
        self.waits = self.waits.wrapping_add(1);
        let budget = if self.waits % 16 == 0 {
            opts.spin_budget // probe: maybe the peer is fast again
        } else {
            self.budget.min(opts.spin_budget)
        };
        if budget == 0 {
            return false;
        }
        // As many spinners as CPUs but one: spinning would only steal the CPU of whoever we
        // wait for.
        let spinning = SPINNERS.fetch_add(1, Relaxed);
        let _guard = Spinning;
        if spinning >= cpus().saturating_sub(1).max(1) {
            return false;
        }
        let mut done = false;
        let mut i = 0;
        while i < budget {
            crate::sync::spin_loop();
            i += 1;
            if ready() {
                done = true;
                break;
            }
        }
        stats.spins += i as u64;
        let floor = (opts.spin_budget / 64).max(1);
        self.budget = if done {
            budget.saturating_mul(2).clamp(floor, opts.spin_budget)
        } else {
            (budget / 2).max(floor)
        };
        done
    }

    /// Under loom the spin phase is skipped: the models explore the sleeping protocol.
    #[cfg(loom)]
    fn spin(
        &mut self,
        _ready: &mut impl FnMut() -> bool,
        _opts: &WaitOptions,
        _stats: &mut WaitStats,
    ) -> bool {
        false
    }
}

/// Threads of this process spinning in a wait right now.
#[cfg(not(loom))]
static SPINNERS: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

/// CPUs this process may run on (cached; 0 until first asked).
#[cfg(not(loom))]
fn cpus() -> u32 {
    use core::sync::atomic::{AtomicU32, Ordering::Relaxed};
    static CPUS: AtomicU32 = AtomicU32::new(0);
    match CPUS.load(Relaxed) {
        0 => {
            let n = rustix::thread::sched_getaffinity(None)
                .map(|set| set.count())
                .unwrap_or(1)
                .max(1);
            CPUS.store(n, Relaxed);
            n
        }
        n => n,
    }
}
