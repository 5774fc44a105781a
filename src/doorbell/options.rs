//! How blocking calls wait, and what their waiting did.

use core::ops::{Add, AddAssign};
use core::time::Duration;

/// Default sleep slice: the longest a single futex wait lasts.
pub const DEFAULT_SLICE: Duration = Duration::from_millis(50);
/// Default spin budget, in spin iterations (roughly 20–60 µs on current x86), chosen so a
/// peer that answers within a few microseconds is caught spinning while a quiet peer costs
/// little CPU before the waiter sleeps.
pub const DEFAULT_SPIN_BUDGET: u32 = 2_000;

/// How a blocking call waits: how long it spins before it sleeps, and how long one sleep
/// lasts at most.
///
/// # Examples
///
/// ```
/// use ringbell::doorbell::WaitOptions;
/// use std::time::Duration;
///
/// let (mut tx, _rx) = ringbell::spsc::channel(4096)?;
/// // Never spin: every wait that is not satisfied at once sleeps; notice a dead peer within
/// // 5 ms of its death.
/// tx.set_wait_options(WaitOptions::new().spin_budget(0).slice(Duration::from_millis(5)));
/// # Ok::<(), ringbell::AttachError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitOptions {
    /// Most spin iterations before announcing a sleep (0: never spin).
    pub(crate) spin_budget: u32,
    /// Longest single futex wait; at least 1 ms.
    pub(crate) slice: Duration,
}

impl Default for WaitOptions {
    fn default() -> Self {
        Self {
            spin_budget: DEFAULT_SPIN_BUDGET,
            slice: DEFAULT_SLICE,
        }
    }
}

impl WaitOptions {
    /// The defaults: [`DEFAULT_SPIN_BUDGET`] and [`DEFAULT_SLICE`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::doorbell::WaitOptions;
    ///
    /// assert_eq!(WaitOptions::new(), WaitOptions::default());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Spin at most `iterations` times before sleeping (0: never spin). The budget adapts
    /// below this ceiling (see the [module docs](crate::doorbell), "Spinning").
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::doorbell::WaitOptions;
    ///
    /// let sleepy = WaitOptions::new().spin_budget(0);
    /// assert_ne!(sleepy, WaitOptions::new());
    /// ```
    pub fn spin_budget(mut self, iterations: u32) -> Self {
        self.spin_budget = iterations;
        self
    }

    /// Sleep at most `slice` per futex wait (clamped to at least 1 ms). Between slices a
    /// blocked call checks whether the peer's process died, so the slice bounds how late a
    /// dead peer is noticed; it also bounds how late a producer blocked on a full ring sees
    /// space freed by a consumer that then stopped receiving with frames left (see
    /// [`spsc`](crate::spsc), "Waking a producer").
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::doorbell::WaitOptions;
    /// use std::time::Duration;
    ///
    /// // Below 1 ms is clamped.
    /// let a = WaitOptions::new().slice(Duration::ZERO);
    /// let b = WaitOptions::new().slice(Duration::from_millis(1));
    /// assert_eq!(a, b);
    /// ```
    pub fn slice(mut self, slice: Duration) -> Self {
        self.slice = slice.max(Duration::from_millis(1));
        self
    }
}

/// Counters of one side's waiting and waking, kept locally (no shared write). They add up:
/// a fan-in's are its own plus its rings'.
///
/// # Examples
///
/// ```
/// use ringbell::doorbell::WaitStats;
///
/// let (mut tx, mut rx) = ringbell::spsc::channel(4096)?;
/// tx.try_send(0, b"x")?;
/// rx.try_recv()?;
/// // Nobody slept, so nobody was woken: no system call either way.
/// let total = tx.stats() + rx.stats();
/// assert_eq!((total.wakes, total.sleeps), (0, 0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WaitStats {
    /// `FUTEX_WAKE` system calls this side made as a ringer.
    pub wakes: u64,
    /// Sleeps this side announced as a waiter (times it set the waiter mark).
    pub sleeps: u64,
    /// `FUTEX_WAIT` system calls this side made.
    pub futex_waits: u64,
    /// Spin iterations this side made while waiting.
    pub spins: u64,
    /// `sched_yield` system calls this side made while waiting: only when the CPUs are
    /// taken (see the [module docs](super), "Spinning").
    pub yields: u64,
}

impl AddAssign for WaitStats {
    fn add_assign(&mut self, rhs: Self) {
        self.wakes += rhs.wakes;
        self.sleeps += rhs.sleeps;
        self.futex_waits += rhs.futex_waits;
        self.spins += rhs.spins;
        self.yields += rhs.yields;
    }
}

impl Add for WaitStats {
    type Output = Self;

    fn add(mut self, rhs: Self) -> Self {
        self += rhs;
        self
    }
}

impl core::iter::Sum for WaitStats {
    fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
        iter.fold(Self::default(), Add::add)
    }
}

/// A wait ran out of time: its condition was still false at the deadline.
///
/// # Examples
///
/// ```
/// use ringbell::doorbell::{Doorbell, TimedOut};
/// use ringbell::region::HeapRegion;
/// use std::time::Duration;
///
/// let bell = Doorbell::new(HeapRegion::new(&ringbell::doorbell::BellConfig)?, 1024).unwrap();
/// assert_eq!(bell.wait_until_timeout(|| false, Duration::from_millis(1)), Err(TimedOut));
/// # Ok::<(), ringbell::HeaderError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimedOut;

impl core::fmt::Display for TimedOut {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("timed out waiting for the condition")
    }
}

impl core::error::Error for TimedOut {}
