//! The large-frame reservation: how a producer waiting for room for a large frame keeps a
//! steady stream of small frames from starving it.
//!
//! A producer waiting for room for a frame larger than a quarter of the ring posts a
//! *reservation* (its slot and the record's size, with a time stamp written first and renewed
//! at least every half of [`RESERVATION_TTL_MS`] while it waits). Other producers then claim
//! only if the room left after their claim still fits the reserved record, and wait for
//! exactly that. A reservation not renewed for [`RESERVATION_TTL_MS`] is ignored (its producer
//! died or gave up); clearing one rings the space doorbell, so that producers that held back
//! go on.

use crate::clock::Instant;
use crate::mem::Mem;
use crate::sync::Ordering;
use crate::wire::{RESERVATION_OFF, RESERVATION_STAMP_OFF, RESERVATION_TTL_MS, reservation_word};

/// Milliseconds on the system-wide monotonic clock (comparable across processes).
fn now_ms() -> u64 {
    Instant::now().as_millis()
}

/// Whether a record of `size` bytes in a ring of `capacity` bytes is large enough to reserve.
#[inline]
pub(crate) fn is_large(size: u64, capacity: usize) -> bool {
    size > capacity as u64 / 4
}

/// The size of the live reservation of a producer other than `slot`'s, to leave room for; 0
/// if there is none.
#[inline]
pub(crate) fn foreign(mem: &Mem, slot: usize, capacity: usize) -> u64 {
    let r = mem.load_u64(RESERVATION_OFF, Ordering::Acquire);
    if r == 0 || (r & 0xffff_ffff) as usize == slot + 1 {
        return 0;
    }
    posted(mem, r, capacity)
}

/// The size of the posted reservation `r` if it is still live.
#[cold]
fn posted(mem: &Mem, r: u64, capacity: usize) -> u64 {
    let stamp = mem.load_u64(RESERVATION_STAMP_OFF, Ordering::Relaxed);
    if now_ms().saturating_sub(stamp) > RESERVATION_TTL_MS {
        return 0;
    }
    (r >> 32).min(capacity as u64)
}

/// Posts (or renews) `slot`'s reservation for a record of `size` bytes; true if it is ours.
pub(crate) fn post(mem: &Mem, slot: usize, size: u64) -> bool {
    let mine = reservation_word(slot, size);
    let cur = mem.load_u64(RESERVATION_OFF, Ordering::Acquire);
    let stale = now_ms().saturating_sub(mem.load_u64(RESERVATION_STAMP_OFF, Ordering::Relaxed))
        > RESERVATION_TTL_MS;
    if cur == mine {
        mem.store_u64(RESERVATION_STAMP_OFF, now_ms(), Ordering::Release);
        return true;
    }
    if cur != 0 && !stale {
        return false;
    }
    // Stamp first, so that no reader sees our reservation with an old stamp.
    mem.store_u64(RESERVATION_STAMP_OFF, now_ms(), Ordering::Release);
    mem.cas_u64(
        RESERVATION_OFF,
        cur,
        mine,
        Ordering::AcqRel,
        Ordering::Relaxed,
    )
    .is_ok()
}

/// Withdraws `slot`'s reservation for a record of `size` bytes, if it is still posted.
pub(crate) fn clear(mem: &Mem, slot: usize, size: u64) {
    let mine = reservation_word(slot, size);
    let _ = mem.cas_u64(
        RESERVATION_OFF,
        mine,
        0,
        Ordering::AcqRel,
        Ordering::Relaxed,
    );
}
