//! Planted bugs for the proof harness: each weakens one ordering or step the proofs rely on.
//!
//! Only in builds with `--cfg loom` or `--cfg ringbell_mutants` (miri); there the environment
//! variable `RINGBELL_MUTANT` selects at most one at run time, so one build runs them all
//! (`scripts/mutants.sh`, which fails unless every one is caught). In every other build
//! [`active`] is a constant `false` and the mutants compile away.
//!
//! A site that a mutant weakens reads as one line through the helpers at the end of this file
//! ([`keep`], [`weaken`], [`fence`], [`fetch_add_u32`], [`cas_u32`]): in a normal build each is
//! the plain operation.
//!
//! | mutant | what it breaks | caught by |
//! |---|---|---|
//! | `ringer_fence` | the ringer's `fence(SeqCst)` between publishing and reading the waiter mark is removed | loom (doorbell models: lost wake-up → deadlock) |
//! | `barrier_omitted` | a waiter on an asymmetric-fence doorbell sets the mark and re-checks without the `membarrier` that answers the ringer's compiler fence | `tests/fences.rs` (real processes, store-buffering litmus: both loads miss both stores) — loom cannot model `membarrier` |
//! | `waiter_fence` | the waiter's `fence(SeqCst)` between setting the mark and re-checking is removed | loom (lost wake-up) |
//! | `skip_recheck` | the waiter sleeps without re-checking its condition after setting the mark | loom (lost wake-up) |
//! | `skip_bump` | the ringer wakes without bumping the sequence | loom (the waiter sleeps on an unchanged word after the wake) |
//! | `bump_load_store` | the sequence bump is a load then a store instead of one `fetch_add` | loom (`two_waiters_three_rings`: a stale store puts the word back, a waiter sleeps through its ring) |
//! | `relaxed_publish` | the SPSC producer publishes its write position with Relaxed instead of Release | loom (payload cell race) and miri (data race) |
//! | `room_ignores_close` | a producer blocked on a full SPSC ring does not check the consumer's closed flag | loom (`consumer_close_wakes_blocked_producer`: the producer never returns) |
//! | `consumer_drop_no_ring` | a consumer's drop closes the role but does not ring the space doorbell | loom (`consumer_close_wakes_blocked_producer`) |
//! | `mpsc_claim_bound` | an MPSC producer claims without checking the consumer's released position | loom (an unread record overwritten: payload race / wrong frame) |
//! | `mpsc_commit_store` | an MPSC commit is a plain store, not a CAS from `CLAIMED` (it cannot see a skip) | loom (a skipped record's producer reports success) |
//! | `mpsc_no_zero` | the MPSC consumer releases space without zeroing its header words | loom (a stale header of the previous lap read as a new record) |
//! | `spsc_no_catch_up_ring` | the SPSC consumer rings the space doorbell only when it crosses a wake step, not when it catches up with the producer | loom (`has_data_is_honest_and_close_is_seen`: the producer sleeps through the release it waits for → deadlock) |
//! | `mpsc_no_catch_up_ring` | the MPSC consumer rings the space doorbell only when it crosses a wake step, not when it catches up with the claims | loom (`a_blocked_producer_wakes_when_the_consumer_catches_up`: the producer sleeps through the release it waits for → deadlock) |
//! | `reply_rings_first` | a reactor responder rings the server's doorbell *before* posting its answer | loom (`reactor`: the reactor re-checks between ring and post, sleeps through the answer → deadlock) |
//! | `send_out_of_order` | the reactor sends parked responses without waiting for the one due next | loom (`reactor`: a client sees responses out of request order) |
//! | `write_ignores_reads` | per-key ordering: a write starts while reads of its key run | loom (`reactor::two_keys_from_two_connections`: the write's handler starts before the earlier read ended) |
//! | `read_overtakes_write` | per-key ordering: a read starts past a write waiting on its key | loom (`two_keys_from_two_connections`: the second read starts before the write ended) |
//! | `early_release` | per-key ordering: a write releases its key as it starts, not when its responder is consumed | loom (`two_keys_from_two_connections`: a later request on the key starts while the write runs) |
//! | `odd_after_arm` | the reactor thread sets the doorbell's mark for an inline run *before* moving its inline counter to the run's odd value | loom (`reactor` hand-over model with a request at any moment: a ring between the two finds the mark, the watcher still reads "no inline run" and sleeps; the run never hands over → deadlock) |
//! | `async_skip_recheck` | an async waiter sets its mark and waits on its readiness descriptor without re-checking its condition | loom (`async_waiter_vs_ringer`: a ring between its first look and its mark is lost → deadlock) |
//! | `drain_after_recheck` | an async waiter drains its readiness descriptor after the re-check instead of before the mark | loom (`async_waiter_vs_ringer`: a ring between the re-check and the drain is eaten → deadlock) |
//! | `ringer_skips_readiness` | a ringer clears an async waiter's mark without writing its readiness descriptor | loom (`async_waiter_vs_ringer`, `async_and_futex_waiters_one_ring` → deadlock) |
//! | `sleeper_mark_swaps` | a futex sleeper sets its mark with `swap(1)` instead of `fetch_or(1)`, erasing an async waiter's bit on the same line | loom (`async_and_futex_waiters_one_ring`: the ringer sees only the sleeper → the async waiter's descriptor is never written → deadlock) |
//! | `control_to_handler` | the reactor takes a control request (a statistics request) as an ordinary one and gives it to the handler | `tests/channel.rs` (`server_stats_list_connections_and_never_reach_the_handler`: the echo handler answers and the client gets no statistics) |
//! | `back_rings_first` | the reactor thread, back from an overrunning inline handler, rings the doorbell *before* saying it wants the core back | loom (`reactor` hand-over model: the watcher re-checks between ring and store and sleeps holding the core → deadlock) |

use crate::mem::Mem;
use crate::sync::Ordering;

/// The planted bugs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(dead_code)]
pub(crate) enum Mutant {
    RingerFence,
    WaiterFence,
    BarrierOmitted,
    SkipRecheck,
    SkipBump,
    BumpLoadStore,
    RelaxedPublish,
    RoomIgnoresClose,
    ConsumerDropNoRing,
    MpscClaimBound,
    MpscCommitStore,
    MpscNoZero,
    MpscNoCatchUpRing,
    SpscNoCatchUpRing,
    ReplyRingsFirst,
    SendOutOfOrder,
    BackRingsFirst,
    OddAfterArm,
    WriteIgnoresReads,
    ReadOvertakesWrite,
    EarlyRelease,
    AsyncSkipRecheck,
    DrainAfterRecheck,
    RingerSkipsReadiness,
    SleeperMarkSwaps,
    MoreDrains,
    PlainRingClearsAsync,
    ControlToHandler,
}

#[cfg(any(loom, ringbell_mutants))]
impl Mutant {
    fn name(self) -> &'static str {
        match self {
            Self::RingerFence => "ringer_fence",
            Self::WaiterFence => "waiter_fence",
            Self::BarrierOmitted => "barrier_omitted",
            Self::SkipRecheck => "skip_recheck",
            Self::SkipBump => "skip_bump",
            Self::BumpLoadStore => "bump_load_store",
            Self::RelaxedPublish => "relaxed_publish",
            Self::RoomIgnoresClose => "room_ignores_close",
            Self::ConsumerDropNoRing => "consumer_drop_no_ring",
            Self::MpscClaimBound => "mpsc_claim_bound",
            Self::MpscCommitStore => "mpsc_commit_store",
            Self::MpscNoZero => "mpsc_no_zero",
            Self::MpscNoCatchUpRing => "mpsc_no_catch_up_ring",
            Self::SpscNoCatchUpRing => "spsc_no_catch_up_ring",
            Self::ReplyRingsFirst => "reply_rings_first",
            Self::SendOutOfOrder => "send_out_of_order",
            Self::BackRingsFirst => "back_rings_first",
            Self::OddAfterArm => "odd_after_arm",
            Self::WriteIgnoresReads => "write_ignores_reads",
            Self::ReadOvertakesWrite => "read_overtakes_write",
            Self::EarlyRelease => "early_release",
            Self::AsyncSkipRecheck => "async_skip_recheck",
            Self::DrainAfterRecheck => "drain_after_recheck",
            Self::RingerSkipsReadiness => "ringer_skips_readiness",
            Self::SleeperMarkSwaps => "sleeper_mark_swaps",
            Self::MoreDrains => "more_drains",
            Self::PlainRingClearsAsync => "plain_ring_clears_async",
            Self::ControlToHandler => "control_to_handler",
        }
    }
}

/// Whether `m` is the mutant selected for this run.
#[cfg(any(loom, ringbell_mutants))]
pub(crate) fn active(m: Mutant) -> bool {
    extern crate std;
    use std::sync::OnceLock;
    static SELECTED: OnceLock<Option<std::string::String>> = OnceLock::new();
    SELECTED
        .get_or_init(|| std::env::var("RINGBELL_MUTANT").ok())
        .as_deref()
        == Some(m.name())
}

/// Whether `m` is the mutant selected for this run: never, in this build.
#[cfg(not(any(loom, ringbell_mutants)))]
#[inline(always)]
pub(crate) const fn active(_m: Mutant) -> bool {
    false
}

/// Whether the step that mutant `m` removes is kept: true unless `m` is selected.
#[inline(always)]
pub(crate) fn keep(m: Mutant) -> bool {
    !active(m)
}

/// `order`, or `Relaxed` while mutant `m` is selected.
#[inline(always)]
pub(crate) fn weaken(m: Mutant, order: Ordering) -> Ordering {
    if active(m) { Ordering::Relaxed } else { order }
}

/// A `fence(order)`, left out while mutant `m` is selected.
#[inline(always)]
pub(crate) fn fence(m: Mutant, order: Ordering) {
    if keep(m) {
        crate::sync::fence(order);
    }
}

/// `fetch_add` on the `u32` at `off`; while mutant `m` is selected, a load then a store
/// instead (not atomic as a whole).
#[inline(always)]
#[allow(dead_code)] // used by the doorbell, absent from some cfg combinations
pub(crate) fn fetch_add_u32(m: Mutant, mem: &Mem, off: usize, val: u32, order: Ordering) {
    if active(m) {
        let v = mem.load_u32(off, Ordering::Relaxed);
        mem.store_u32(off, v.wrapping_add(val), order);
    } else {
        mem.fetch_add_u32(off, val, order);
    }
}

/// Compare-and-swap of the `u32` at `off` from `current` to `new`; while mutant `m` is
/// selected, a plain store of `new` that reports success (it cannot see another writer).
#[inline(always)]
pub(crate) fn cas_u32(
    m: Mutant,
    mem: &Mem,
    off: usize,
    current: u32,
    new: u32,
    success: Ordering,
) -> Result<u32, u32> {
    if active(m) {
        mem.store_u32(off, new, success);
        return Ok(current);
    }
    mem.cas_u32(off, current, new, success, Ordering::Relaxed)
}
