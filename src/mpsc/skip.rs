//! Skipping the records of dead producers: the stall timer, the examination, the two kinds of
//! skip, and the registry sweep. The argument is in the [module docs](super) ("The
//! protocol", consumer side).

use super::consumer::Consumer;
use crate::clock::Instant;
use crate::liveness::Liveness;
use crate::region::SharedMemory;
use crate::role::OwnerId;
use crate::sync::Ordering;
use crate::wire::{self, CLAIMED, COMMITTED, HEADER_SIZE, MPSC_LEN_MASK, WRITE_POS_OFF};

impl<S: SharedMemory, L: Liveness> Consumer<S, L> {
    /// The record at our position is not committed: after the stall timeout, skip it if its
    /// producer is dead. True if the caller should look at the head again (something was
    /// skipped, or the record got committed meanwhile).
    pub(super) fn try_skip(&mut self) -> bool {
        let now = Instant::now();
        match self.stalled {
            Some((pos, since)) if pos == self.read => {
                if now.since(since) < self.stall_timeout {
                    return false;
                }
            }
            _ => {
                self.stalled = Some((self.read, now));
                return false;
            }
        }
        // Check again after another timeout unless something below moves us on.
        self.stalled = Some((self.read, now));
        self.sweep_registry();
        // The claim position first: a claim visible here has its producer's IN_CLAIM mark
        // visible to the scans below (the mark is stored before the Release claim CAS, and
        // every claim CAS continues the release sequence this Acquire reads).
        let claim = self.mem.load_u64(WRITE_POS_OFF, Ordering::Acquire);
        let avail = claim.wrapping_sub(self.read);
        if claim % 8 != 0 || avail == 0 || avail > self.geo.capacity as u64 {
            return false;
        }
        // A gap skipped below may reach this claim position: the head must accept it.
        self.seen_claim = claim;
        let at = HEADER_SIZE + (self.read & self.geo.mask()) as usize;
        let word = self.mem.load_u32(at, Ordering::Acquire);
        if word & COMMITTED != 0 {
            return true; // committed meanwhile: deliver it
        }
        let skipped = if word & !MPSC_LEN_MASK == CLAIMED {
            self.skip_claimed(at, word)
        } else if word == 0 {
            self.skip_gap(at, avail)
        } else {
            false // corrupt: the head reports it
        };
        if skipped {
            self.skipped += 1;
            self.stalled = None;
        }
        skipped
    }

    /// Whether the owner recorded in registry slot `slot` is known dead.
    fn slot_owner_dead(&self, slot: usize) -> bool {
        OwnerId::new(self.registry.owner(slot)).is_some_and(|o| self.liveness.is_dead(o))
    }

    /// Whether every producer marked in-claim is known dead (vacuously true if none is).
    fn all_in_claim_dead(&self) -> bool {
        (0..self.registry.len()).all(|s| !self.registry.in_claim(s) || self.slot_owner_dead(s))
    }

    /// Frees the registry slots of producers known dead, so that crashed producers do not use
    /// up the registry; returns how many were freed. The consumer also sweeps on every stall
    /// examination and, while idle, at most once per stall timeout.
    ///
    /// # Examples
    ///
    /// ```
    /// let (rx, _region) = ringbell::mpsc::channel(4096)?;
    /// assert_eq!(rx.sweep_registry(), 0); // `NeverDead`: nobody is ever freed
    /// # Ok::<(), ringbell::AttachError>(())
    /// ```
    pub fn sweep_registry(&self) -> usize {
        let mut freed = 0;
        for s in 0..self.registry.len() {
            let id = self.registry.owner(s);
            let Some(owner) = OwnerId::new(id) else {
                continue;
            };
            if self.liveness.is_dead(owner) && self.registry.free_dead(s, id) {
                freed += 1;
            }
        }
        freed
    }

    /// Skips a described, uncommitted record whose producer is dead: the one whose slot says
    /// it fills this position, or — if no slot says so (it was swept) — every producer still
    /// marked in-claim.
    fn skip_claimed(&mut self, at: usize, word: u32) -> bool {
        let len = (word & MPSC_LEN_MASK) as usize;
        if len > self.geo.frame_cap {
            return false; // corrupt: the head reports it
        }
        let read = self.read;
        let owner = (0..self.registry.len())
            .find(|&s| self.registry.in_claim(s) && self.registry.rec_pos(s) == read);
        let dead = match owner {
            Some(slot) => self.slot_owner_dead(slot),
            None => self.all_in_claim_dead(),
        };
        // Its late commit, if the producer was not dead after all, loses against this CAS.
        dead && self
            .mem
            .cas_u32(
                at,
                word,
                wire::padding_word(wire::record_size(len)),
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_ok()
    }

    /// Skips an undescribed gap (header 0) when every producer marked in-claim is dead: then no
    /// live producer holds undescribed space below the claim position read before, and the
    /// gap runs to the first described header, that claim position, or the end of the data
    /// area.
    fn skip_gap(&mut self, at: usize, avail: u64) -> bool {
        if !self.all_in_claim_dead() {
            return false;
        }
        let off = (self.read & self.geo.mask()) as usize;
        let limit = (self.geo.capacity - off).min(avail as usize);
        let mut gap = wire::RECORD_HEADER;
        while gap < limit && self.mem.load_u32(at + gap, Ordering::Acquire) == 0 {
            gap += wire::ALIGN;
        }
        let gap = gap.min(limit);
        gap >= wire::RECORD_HEADER
            && self
                .mem
                .cas_u32(
                    at,
                    0,
                    wire::padding_word(gap),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
    }
}
