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

/// When a blocking call gives up: never, at an instant, or — not started yet — a timeout
/// from the moment the call first has to wait.
///
/// A `*_timeout` call makes a not-started deadline ([`within`](Self::within)), which reads no
/// clock: a call that succeeds at once (the common case) never needs one. The first wait
/// starts it ([`start`](Self::start)) and keeps the started one for every later wait and
/// retry, so that retries do not extend it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Deadline(When);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum When {
    Never,
    At(Instant),
    /// This long after the call first has to wait.
    Within(Duration),
}

impl Deadline {
    /// A call that waits as long as it takes.
    pub(crate) const NEVER: Self = Self(When::Never);

    /// A call that gives up `timeout` from now.
    #[inline]
    pub(crate) fn after(timeout: Duration) -> Self {
        Self(When::At(Instant::now().after(timeout)))
    }

    /// A call that gives up `timeout` after it first has to wait: no clock is read until
    /// [`start`](Self::start).
    #[inline]
    pub(crate) const fn within(timeout: Duration) -> Self {
        Self(When::Within(timeout))
    }

    /// A call that gives up at `t`.
    #[inline]
    pub(crate) fn until(t: Instant) -> Self {
        Self(When::At(t))
    }

    /// This deadline, started now if it was not: the same deadline for every later wait.
    #[inline]
    pub(crate) fn start(self) -> Self {
        match self.0 {
            When::Within(d) => Self::after(d),
            _ => self,
        }
    }

    /// Whether the call waits as long as it takes.
    #[inline]
    #[cfg_attr(loom, allow(dead_code))] // the spin phase asks
    pub(crate) fn is_never(self) -> bool {
        self.0 == When::Never
    }

    /// The instant, if any (a deadline not started yet starts now).
    #[inline]
    pub(crate) fn at(self) -> Option<Instant> {
        match self.start().0 {
            When::At(t) => Some(t),
            _ => None,
        }
    }

    /// The time left, or `None` if the deadline has passed. A deadline of never has a day
    /// left, always: enough for any one system call's timeout.
    #[inline]
    #[cfg_attr(any(loom, not(feature = "std")), allow(dead_code))] // the channel asks
    pub(crate) fn left(self) -> Option<Duration> {
        match self.0 {
            When::Never => Some(Duration::from_secs(86_400)),
            When::Within(d) => (!d.is_zero()).then_some(d),
            When::At(d) => {
                let now = Instant::now();
                (now < d).then(|| d.since(now))
            }
        }
    }

    /// Whether the deadline has passed.
    #[inline]
    pub(crate) fn passed(self) -> bool {
        match self.0 {
            When::Never => false,
            When::Within(d) => d.is_zero(),
            When::At(d) => Instant::now() >= d,
        }
    }

    /// The earlier of the deadline and `t`.
    #[inline]
    pub(crate) fn min(self, t: Instant) -> Instant {
        self.at().map_or(t, |d| d.min(t))
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_within_starts_once_and_then_keeps_its_instant() {
        let d = Deadline::within(Duration::from_secs(5));
        assert!(!d.passed() && !d.is_never());
        assert_eq!(d.left(), Some(Duration::from_secs(5)));
        let started = d.start();
        assert_eq!(started.start(), started, "a started deadline does not move");
        let at = started.at().unwrap();
        let now = Instant::now();
        assert!(at > now && at.since(now) <= Duration::from_secs(5));
    }

    #[test]
    fn a_started_deadline_passes_and_never_never_does() {
        assert!(Deadline::within(Duration::ZERO).passed());
        assert_eq!(Deadline::within(Duration::ZERO).left(), None);
        let d = Deadline::within(Duration::from_millis(2)).start();
        std::thread::sleep(Duration::from_millis(3));
        assert!(d.passed());
        assert_eq!(d.left(), None);
        assert!(!Deadline::NEVER.passed() && Deadline::NEVER.is_never());
        assert_eq!(Deadline::NEVER.start(), Deadline::NEVER);
        let t = Instant::now();
        assert_eq!(Deadline::NEVER.min(t), t);
    }
}
