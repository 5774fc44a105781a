//! The doorbell protocol on one line of shared memory: the ringer's steps and the announced
//! sleep. The argument that no wake-up is lost is in the [module docs](super).

use core::time::Duration;

use super::fences::{self, Fences};
use super::options::{TimedOut, WaitStats};
#[cfg(feature = "std")]
use super::readiness::{Readiness, ReadinessSignal};
use crate::clock::Instant;
use crate::futex;
use crate::mem::Mem;
use crate::mutant::{self, Mutant};
use crate::sync::Ordering;
use crate::wire::{BELL_SEQ, BELL_WAITERS, DOORBELL_SIZE, WAIT_ASYNC, WAIT_SLEEPER};

/// A doorbell: the line at `off` in `mem`, and the fence mode its region's header named.
/// Copyable: it is two words' address and a flag. Whoever holds one also holds what keeps
/// `mem` alive.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Line {
    mem: Mem,
    off: usize,
    /// Rings pay only a compiler fence ([`Fences::Asymmetric`]): only ever true in a process
    /// registered for `membarrier` (the attach that made this line checked,
    /// `Fences::usable`), on a line whose region names that mode.
    light_ring: bool,
    /// Waits pay `membarrier` after the mark: true on an asymmetric line, and on a line of
    /// unknown mode ([`in_any_mode`](Self::in_any_mode)) wherever `membarrier` works.
    heavy_wait: bool,
}

impl Line {
    /// The doorbell whose line starts at `off`, rung and waited on in mode `fences`, which
    /// the caller has checked this process may use ([`Fences::usable`]).
    pub(crate) fn at(mem: Mem, off: usize, fences: Fences) -> Self {
        debug_assert_eq!(off % DOORBELL_SIZE, 0);
        let asymmetric = fences == Fences::Asymmetric;
        Self {
            mem,
            off,
            light_ring: asymmetric,
            heavy_wait: asymmetric,
        }
    }

    /// A doorbell whose mode nothing records (a [`Doorbell`](super::Doorbell) in the
    /// caller's memory) or may have been rewritten (a channel server's shared bell, seen by a
    /// client): rung with a full fence, which a waiter of either mode answers, and waited on
    /// with the barrier as well wherever `membarrier` works, which answers a ringer of either
    /// mode. Costs a sleep the barrier; costs a ring what the symmetric mode does.
    pub(crate) fn in_any_mode(mem: Mem, off: usize) -> Self {
        debug_assert_eq!(off % DOORBELL_SIZE, 0);
        Self {
            mem,
            off,
            light_ring: false,
            heavy_wait: Fences::asymmetric_available(),
        }
    }

    /// The fence mode of this doorbell's rings.
    #[cfg_attr(not(feature = "std"), allow(dead_code))]
    pub(crate) fn fences(&self) -> Fences {
        if self.light_ring {
            Fences::Asymmetric
        } else {
            Fences::Symmetric
        }
    }

    /// Rings after the caller published something a waiter may be waiting for; returns
    /// whether it made a wake system call (only if a waiter announced a sleep).
    #[inline(always)]
    pub(crate) fn ring(&self) -> bool {
        // Pairs with the waiter's half in `sleep_until` (a SeqCst fence, or in the asymmetric
        // mode a membarrier): either the waiter's re-check sees what we published, or we see
        // its mark below.
        fences::ringer(self.light_ring);
        if self
            .mem
            .load_u32(self.off + BELL_WAITERS, Ordering::Relaxed)
            != 0
        {
            return self.wake(None) > 0;
        }
        false
    }

    /// As [`ring`](Self::ring), and answers an async waiter's mark by writing `readiness`
    /// (module docs, "Async waits"); returns the wake system calls made.
    #[cfg(feature = "std")]
    pub(crate) fn ring_readiness(&self, readiness: &ReadinessSignal) -> u32 {
        fences::ringer(self.light_ring);
        if self
            .mem
            .load_u32(self.off + BELL_WAITERS, Ordering::Relaxed)
            != 0
        {
            return self.wake(Some(readiness));
        }
        0
    }

    #[cold]
    #[inline(never)]
    fn wake(
        &self,
        #[cfg(feature = "std")] readiness: Option<&ReadinessSignal>,
        #[cfg(not(feature = "std"))] _readiness: Option<()>,
    ) -> u32 {
        // One ringer clears the mark and wakes for everyone who set it. AcqRel: the Acquire
        // half pairs with the waiters' Release RMWs of the mark. A ringer that cannot write an
        // async waiter's descriptor (a plain ring) leaves the async bit for one that can:
        // clearing it would make every later ring skip the async waiter until its slice ends.
        #[cfg(feature = "std")]
        let can_answer_async = readiness.is_some();
        #[cfg(not(feature = "std"))]
        let can_answer_async = false;
        let old = if can_answer_async || mutant::active(Mutant::PlainRingClearsAsync) {
            self.mem
                .swap_u32(self.off + BELL_WAITERS, 0, Ordering::AcqRel)
        } else {
            self.mem
                .fetch_and_u32(self.off + BELL_WAITERS, WAIT_ASYNC, Ordering::AcqRel)
        };
        if old & !WAIT_ASYNC == 0 && !(can_answer_async && old & WAIT_ASYNC != 0) {
            return 0;
        }
        let seq = self.off + BELL_SEQ;
        if mutant::keep(Mutant::SkipBump) {
            // Release: pairs with the waiter's Acquire load of the sequence; a waiter that
            // reads this value has seen everything before the bump. One RMW (module docs).
            mutant::fetch_add_u32(Mutant::BumpLoadStore, &self.mem, seq, 1, Ordering::Release);
        }
        let mut calls = 0;
        // Any bit but the async one (a sleeper's mark is 1, as in older builds; anything else
        // is a peer's garbage, answered as if a sleeper): the futex wake.
        if old & !WAIT_ASYNC != 0 {
            futex::wake_all(&self.mem, seq);
            calls += 1;
        }
        #[cfg(feature = "std")]
        if old & WAIT_ASYNC != 0 && mutant::keep(Mutant::RingerSkipsReadiness) {
            if let Some(r) = readiness {
                r.write();
                calls += 1;
            }
        }
        calls
    }

    /// The async waiter's announcement (module docs, "Async waits"): drains `readiness`,
    /// sets the async bit of the mark, issues the waiter's fence, re-checks `ready()`.
    /// `Ready` if it holds; otherwise the caller waits until `readiness` is readable (a ring
    /// after this writes it) — briefly only, with `WaitBriefly`, when the barrier failed.
    #[cfg(feature = "std")]
    pub(crate) fn announce_async(
        &self,
        readiness: &Readiness,
        mut ready: impl FnMut() -> bool,
    ) -> Announced {
        if mutant::keep(Mutant::DrainAfterRecheck) {
            // Before the mark: a ring after the mark writes the descriptor again.
            readiness.drain();
        }
        // Release, an RMW: as a sleeper's mark (module docs); through the release sequence
        // the drain above happens-before the write of the ringer that clears this bit.
        self.mem
            .fetch_or_u32(self.off + BELL_WAITERS, WAIT_ASYNC, Ordering::Release);
        let barrier = fences::waiter(self.heavy_wait);
        if mutant::keep(Mutant::AsyncSkipRecheck) && ready() {
            return Announced::Ready;
        }
        if !mutant::keep(Mutant::DrainAfterRecheck) {
            readiness.drain();
        }
        match barrier {
            true => Announced::Wait,
            false => Announced::RetryAfter(Duration::from_millis(1)),
        }
    }

    /// A further line's announcement for the same async waiter and readiness, made after
    /// [`announce_async`](Self::announce_async) on a first line drained the descriptor: the
    /// mark, the fence and the re-check, without a second drain (a drain here could swallow
    /// a ring of the first line that came after its re-check). The argument is the first
    /// line's: the one drain precedes every mark, so a ring after any mark is still in the
    /// descriptor when the waiter waits.
    #[cfg(feature = "std")]
    pub(crate) fn announce_async_more(
        &self,
        readiness: &Readiness,
        mut ready: impl FnMut() -> bool,
    ) -> Announced {
        if mutant::active(Mutant::MoreDrains) {
            // The bug this step must not have: a second drain.
            readiness.drain();
        }
        self.mem
            .fetch_or_u32(self.off + BELL_WAITERS, WAIT_ASYNC, Ordering::Release);
        let barrier = fences::waiter(self.heavy_wait);
        if ready() {
            return Announced::Ready;
        }
        match barrier {
            true => Announced::Wait,
            false => Announced::RetryAfter(Duration::from_millis(1)),
        }
    }

    /// Sets the waiter mark without sleeping: from now on a ringer makes the wake system call,
    /// waking whoever waits on the sequence with [`wait_for_ring`](Self::wait_for_ring). For
    /// a thread that will be busy but wants a watcher woken by the next ring. The caller must
    /// re-check its condition after this (the fence makes it the waiter's half of the fence
    /// pair, as in `sleep_until`).
    /// Returns `false` if the barrier could not be issued (an asymmetric line whose
    /// `membarrier` failed): then a ring may have been missed, and the caller must not count
    /// on one.
    #[cfg_attr(any(loom, not(feature = "std")), allow(dead_code))]
    #[must_use]
    pub(crate) fn arm(&self) -> bool {
        // An RMW, as a waiter's mark is (module docs, "Why an RMW for the mark"): a plain
        // store would do in C++, but loom 0.7 mis-models a plain store racing a ringer's swap.
        self.mem
            .fetch_or_u32(self.off + BELL_WAITERS, WAIT_SLEEPER, Ordering::Release);
        fences::waiter(self.heavy_wait)
    }

    /// Clears the waiter mark: rings no longer make the wake system call. Only for the one
    /// thread that may sleep on this line, when it is not sleeping (else it could sleep
    /// through a ring).
    #[cfg_attr(any(loom, not(feature = "std")), allow(dead_code))]
    pub(crate) fn disarm(&self) {
        // An RMW for the same reason as `arm`; Release so that a watcher reading the cleared
        // mark also reads what this thread wrote before (the counter moved on).
        self.mem
            .fetch_and_u32(self.off + BELL_WAITERS, !WAIT_SLEEPER, Ordering::Release);
    }

    /// Whether the waiter mark is set (no ring since it was set).
    #[cfg_attr(any(loom, not(feature = "std")), allow(dead_code))]
    pub(crate) fn armed(&self) -> bool {
        // The sleeper bit only: an async waiter's bit or a peer's garbage is not this arm.
        self.mem
            .load_u32(self.off + BELL_WAITERS, Ordering::Acquire)
            & WAIT_SLEEPER
            != 0
    }

    /// The ring sequence now. Acquire: a ring's mark swap is seen by loads after this.
    #[cfg_attr(any(loom, not(feature = "std")), allow(dead_code))]
    pub(crate) fn sequence(&self) -> u32 {
        self.mem.load_u32(self.off + BELL_SEQ, Ordering::Acquire)
    }

    /// Sleeps until a ring (one made while the mark was set) moves the sequence past `seen`,
    /// or `timeout`, or spuriously — without setting the mark itself, so rings that find no
    /// mark stay free. The caller loops and re-checks.
    #[cfg_attr(any(loom, not(feature = "std")), allow(dead_code))]
    pub(crate) fn wait_for_ring(&self, seen: u32, timeout: Duration) {
        futex::wait(&self.mem, self.off + BELL_SEQ, seen, timeout);
    }

    /// Moves the sequence on and wakes every sleeper, mark or not: to end a watcher's wait.
    #[cfg_attr(any(loom, not(feature = "std")), allow(dead_code))]
    pub(crate) fn wake_everyone(&self) {
        self.mem
            .fetch_add_u32(self.off + BELL_SEQ, 1, Ordering::Release);
        futex::wake_all(&self.mem, self.off + BELL_SEQ);
    }

    /// The sleeping half of a wait, after any spinning: announce, re-check, sleep a slice of
    /// at most `slice`; until `ready()` or `deadline`.
    pub(crate) fn sleep_until(
        &self,
        mut ready: impl FnMut() -> bool,
        deadline: Option<Instant>,
        slice: Duration,
        stats: &mut WaitStats,
    ) -> Result<(), TimedOut> {
        let seq_off = self.off + BELL_SEQ;
        loop {
            let timeout = match deadline {
                None => slice,
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Err(TimedOut);
                    }
                    d.since(now).min(slice)
                }
            };
            // Acquire: the bump that answers our mark cannot be read here (module docs).
            let seq = self.mem.load_u32(seq_off, Ordering::Acquire);
            // Release (an RMW, see the module docs): joins the release sequence the ringer's
            // swap reads.
            // An RMW that keeps an async waiter's bit (module docs, "Async waits").
            if mutant::keep(Mutant::SleeperMarkSwaps) {
                self.mem
                    .fetch_or_u32(self.off + BELL_WAITERS, WAIT_SLEEPER, Ordering::Release);
            } else {
                self.mem
                    .swap_u32(self.off + BELL_WAITERS, WAIT_SLEEPER, Ordering::Release);
            }
            stats.sleeps += 1;
            // Pairs with the ringer's half in `ring` (module docs).
            let timeout = match fences::waiter(self.heavy_wait) {
                true => timeout,
                // No barrier (cannot happen once registered): a ring may be missed, so sleep
                // briefly rather than a whole slice.
                false => timeout.min(Duration::from_millis(1)),
            };
            if mutant::keep(Mutant::SkipRecheck) && ready() {
                return Ok(());
            }
            stats.futex_waits += 1;
            futex::wait(&self.mem, seq_off, seq, timeout);
            if ready() {
                return Ok(());
            }
        }
    }
}

/// What an async waiter's announcement ([`Doorbell::poll_ready`](super::Doorbell::poll_ready))
/// found.
///
/// # Examples
///
/// ```
/// use ringbell::doorbell::Announced;
///
/// let a = Announced::Ready;
/// assert_eq!(a, Announced::Ready);
/// ```
#[cfg(feature = "std")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Announced {
    /// The condition holds: nothing to wait for.
    Ready,
    /// Wait until the [`Readiness`] descriptor is readable, then look and announce again.
    Wait,
    /// The announcement could not be made safe (an asymmetric-fence line whose `membarrier`
    /// failed): a ring may be missed. Wait at most this long (a timer of the event loop),
    /// then look and announce again.
    RetryAfter(Duration),
}
