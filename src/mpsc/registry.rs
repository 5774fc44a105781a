//! The producer registry of an MPSC ring: who is attached, and who is in the middle of a
//! claim. Layout in [`wire`](crate::wire) ("MPSC registry").

use crate::header::Geometry;
use crate::mem::Mem;
use crate::role::OwnerId;
use crate::sync::Ordering;
use crate::wire::{IN_CLAIM, REGISTRY_SLOT_SIZE, SLOT_OWNER, SLOT_REC_POS, SLOT_STATE};

/// The registry slots of one MPSC region. The accessors a send makes are `#[inline]`: they
/// are not generic, so without it a caller in another crate pays a call for each store.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Registry {
    mem: Mem,
    /// Offset of slot 0.
    off: usize,
    slots: usize,
}

/// Frees every slot of a region being created.
pub(crate) fn clear(mem: &Mem, geo: &Geometry) {
    for i in 0..geo.slots {
        let at = geo.registry_off() + i * REGISTRY_SLOT_SIZE;
        mem.store_u64(at + SLOT_OWNER, 0, Ordering::Relaxed);
        mem.store_u32(at + SLOT_STATE, 0, Ordering::Relaxed);
        mem.store_u64(at + SLOT_REC_POS, 0, Ordering::Relaxed);
    }
}

impl Registry {
    pub(crate) fn new(mem: Mem, geo: &Geometry) -> Self {
        Self {
            mem,
            off: geo.registry_off(),
            slots: geo.slots,
        }
    }

    #[inline]
    fn at(&self, slot: usize) -> usize {
        self.off + slot * REGISTRY_SLOT_SIZE
    }

    /// Slot count.
    pub(crate) fn len(&self) -> usize {
        self.slots
    }

    /// Takes a free slot for `owner`; `None` if every slot is taken.
    pub(crate) fn register(&self, owner: OwnerId) -> Option<usize> {
        (0..self.slots).find(|&i| {
            let at = self.at(i);
            // AcqRel: the Acquire half pairs with the Release of the slot's previous holder
            // (its `unregister`, or the consumer's sweep).
            let won = self
                .mem
                .cas_u64(
                    at + SLOT_OWNER,
                    0,
                    owner.get(),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok();
            if won {
                self.mem.store_u32(at + SLOT_STATE, 0, Ordering::Release);
            }
            won
        })
    }

    /// Gives `slot` back, if `owner` still holds it.
    pub(crate) fn unregister(&self, slot: usize, owner: OwnerId) {
        let at = self.at(slot);
        self.mem.store_u32(at + SLOT_STATE, 0, Ordering::Release);
        let _ = self.mem.cas_u64(
            at + SLOT_OWNER,
            owner.get(),
            0,
            Ordering::Release,
            Ordering::Relaxed,
        );
    }

    /// Marks `slot` in-claim, before its producer's claim CAS (which is Release, so anyone
    /// who sees the claim sees the mark).
    #[inline]
    pub(crate) fn mark(&self, slot: usize) {
        self.mem
            .store_u32(self.at(slot) + SLOT_STATE, IN_CLAIM, Ordering::Relaxed);
    }

    /// Records the position of the record `slot`'s producer is filling.
    #[inline]
    pub(crate) fn set_rec_pos(&self, slot: usize, pos: u64) {
        self.mem
            .store_u64(self.at(slot) + SLOT_REC_POS, pos, Ordering::Relaxed);
    }

    /// Clears `slot`'s in-claim mark. Release: everything the claim wrote happens before a
    /// consumer sees the slot idle.
    #[inline]
    pub(crate) fn unmark(&self, slot: usize) {
        self.mem
            .store_u32(self.at(slot) + SLOT_STATE, 0, Ordering::Release);
    }

    /// The owner id in `slot` (0: free).
    #[inline]
    pub(crate) fn owner(&self, slot: usize) -> u64 {
        self.mem
            .load_u64(self.at(slot) + SLOT_OWNER, Ordering::Acquire)
    }

    /// Whether `slot` is marked in-claim.
    #[inline]
    pub(crate) fn in_claim(&self, slot: usize) -> bool {
        self.mem
            .load_u32(self.at(slot) + SLOT_STATE, Ordering::Acquire)
            & IN_CLAIM
            != 0
    }

    /// The record position `slot` last recorded.
    #[inline]
    pub(crate) fn rec_pos(&self, slot: usize) -> u64 {
        self.mem
            .load_u64(self.at(slot) + SLOT_REC_POS, Ordering::Relaxed)
    }

    /// Frees `slot` if it still holds owner id `id` (its owner is known dead); true if freed.
    pub(crate) fn free_dead(&self, slot: usize, id: u64) -> bool {
        let at = self.at(slot);
        self.mem.store_u32(at + SLOT_STATE, 0, Ordering::Release);
        self.mem
            .cas_u64(at + SLOT_OWNER, id, 0, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }
}
