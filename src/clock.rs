//! The monotonic clock every deadline, sleep slice and stall timer is measured on.
//!
//! `CLOCK_MONOTONIC` is one clock for every process on the machine, so a time stamp written
//! to shared memory by one process (the MPSC reservation's) means the same to another. Reading
//! it is a vDSO call, not a system call. Under loom time does not pass: every reading is 0,
//! and the models use unbounded waits.
//!
//! Man page: clock_gettime(2).

use core::time::Duration;

/// A point on the monotonic clock, in nanoseconds since an arbitrary origin shared by every
/// process on the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Instant(u64);

impl Instant {
    /// Now, from `clock_gettime(CLOCK_MONOTONIC)` (a vDSO call: no system call).
    #[cfg(not(loom))]
    pub(crate) fn now() -> Self {
        let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        Self((ts.tv_sec as u64).saturating_mul(1_000_000_000) + ts.tv_nsec as u64)
    }

    /// Under loom time does not pass.
    #[cfg(loom)]
    pub(crate) fn now() -> Self {
        Self(0)
    }

    /// `self + d`, saturating.
    #[inline]
    pub(crate) fn after(self, d: Duration) -> Self {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Self(self.0.saturating_add(ns))
    }

    /// Whole milliseconds since the clock's origin (the same in every process).
    #[inline]
    pub(crate) fn as_millis(self) -> u64 {
        self.0 / 1_000_000
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    #[inline]
    pub(crate) fn since(self, earlier: Self) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

/// When a blocking call gives up: never, or at an instant. Every `*_timeout` call turns its
/// `Duration` into one of these once, at the start, so that retries do not extend it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Deadline(Option<Instant>);

impl Deadline {
    /// A call that waits as long as it takes.
    pub(crate) const NEVER: Self = Self(None);

    /// A call that gives up `timeout` from now.
    #[inline]
    pub(crate) fn after(timeout: Duration) -> Self {
        Self(Some(Instant::now().after(timeout)))
    }

    /// A call that gives up at `t`.
    #[inline]
    pub(crate) fn until(t: Instant) -> Self {
        Self(Some(t))
    }

    /// The instant, if any.
    #[inline]
    pub(crate) fn at(self) -> Option<Instant> {
        self.0
    }

    /// The time left, or `None` if the deadline has passed. A deadline of never has a day
    /// left, always: enough for any one system call's timeout.
    #[inline]
    #[cfg_attr(any(loom, not(feature = "std")), allow(dead_code))] // the channel asks
    pub(crate) fn left(self) -> Option<Duration> {
        match self.0 {
            None => Some(Duration::from_secs(86_400)),
            Some(d) => {
                let now = Instant::now();
                (now < d).then(|| d.since(now))
            }
        }
    }

    /// Whether the deadline has passed.
    #[inline]
    pub(crate) fn passed(self) -> bool {
        self.0.is_some_and(|d| Instant::now() >= d)
    }

    /// The earlier of the deadline and `t`.
    #[inline]
    pub(crate) fn min(self, t: Instant) -> Instant {
        self.0.map_or(t, |d| d.min(t))
    }
}
