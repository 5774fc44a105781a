//! When a consumer rings the space doorbell: the release policy the SPSC and MPSC consumers
//! share.
//!
//! A consumer stores its released position after every record (or batch), but rings the space
//! doorbell only when the position crosses a multiple of a *wake step* (a sixteenth of the
//! ring) since the last ring, or when it has caught up with every record it knows of. Ringing
//! per record turned a producer that outruns its consumer into a futex wake per frame once
//! both shared a CPU (MPSC, two producers: 580,000 wakes for 4,000,000 frames before, 36,000
//! after).
//!
//! Why no producer sleeps for ever: a producer sleeps only after announcing it and then
//! re-reading the released position (the doorbell's fence pair). If that re-read missed a
//! release, the consumer, as long as it keeps receiving, rings at the next step or when it
//! catches up — and a producer that sleeps publishes nothing, so the consumer does catch up.
//! A receive that stops short of catching up (a frame its buffer cannot hold, an MPSC record
//! still being written, a fan-in pausing the ring) rings for the space freed since the last
//! ring ([`SpaceWaker::announce`]). What is left: a consumer that simply stops calling with
//! records left lets a producer see the space freed since the last ring at the end of its
//! sleep slice (50 ms by default).
//!
//! Proof: loom models `spsc::has_data_is_honest_and_close_is_seen` and
//! `mpsc::a_blocked_producer_wakes_when_the_consumer_catches_up`, with mutants
//! `spsc_no_catch_up_ring` and `mpsc_no_catch_up_ring` (no ring on catching up: deadlock).
//! Under loom the step is the whole ring, so the models meet releases that do not ring.

use crate::doorbell::{Line, Waiter};
use crate::wire;

/// A consumer's record of when it last rang the space doorbell.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SpaceWaker {
    /// The doorbell is rung when the released position crosses a multiple of this (a power
    /// of two) since the last ring.
    step: u64,
    /// The released position when the doorbell was last rung.
    rung: u64,
}

impl SpaceWaker {
    /// The waker of a consumer of a `capacity`-byte ring whose released position is `start`.
    pub(crate) fn new(capacity: usize, start: u64) -> Self {
        #[cfg(not(loom))]
        let step = capacity / 16;
        #[cfg(loom)]
        let step = capacity;
        Self {
            step: step.max(wire::ALIGN) as u64,
            rung: start,
        }
    }

    /// Called after storing the released position `released` (Release): rings `line` if a
    /// step was crossed since the last ring, or if the consumer has `caught_up`.
    #[inline(always)]
    pub(crate) fn released(
        &mut self,
        released: u64,
        caught_up: bool,
        waiter: &Waiter,
        line: &Line,
    ) {
        // A multiple of the (power-of-two) step lies in `(rung, released]` iff they differ in
        // a bit at or above it.
        if (self.rung ^ released) >= self.step || caught_up {
            self.rung = released;
            waiter.ring(line);
        }
    }

    /// Rings `line` if space was freed since the last ring: for a consumer about to stop
    /// short of catching up.
    #[cold]
    pub(crate) fn announce(&mut self, released: u64, waiter: &Waiter, line: &Line) {
        if self.rung != released {
            self.rung = released;
            waiter.ring(line);
        }
    }

    /// Rings after every release from now on: a channel's request rings need it, because a
    /// client blocked on a full request ring collects its responses when woken for space.
    #[cfg_attr(any(loom, not(feature = "std")), allow(dead_code))]
    pub(crate) fn ring_every_release(&mut self) {
        self.step = wire::ALIGN as u64;
    }
}
