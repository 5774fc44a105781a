//! A shared ring for cooperating producers: many producers, one consumer, one global order.
//!
//! # Trust
//!
//! Producers share one writable ring, so **they must trust each other**: any producer can
//! overwrite another's records. The ring protects the consumer from producers that *crash*
//! (a producer killed between claiming space and committing it never blocks the ring for
//! good), not from producers that *lie*. For mutually distrustful producers use a
//! [fan-in](crate::fanin), which gives each its own ring. The consumer still validates every
//! header it reads, so even a lying producer cannot make it panic, read out of bounds or loop
//! forever — it can only corrupt the stream.
//!
//! # Layout
//!
//! The region is a ring header (kind `Mpsc`), the data area, then a *producer registry* of
//! `slots` entries of 32 bytes: `owner: u64` (0 when free) and `state: u32` with an
//! `IN_CLAIM` bit, and `rec_pos: u64`, the position of the record the producer is filling.
//! The header's write position is the shared **claim** position; its read position is the
//! consumer's **released** position.
//!
//! Record headers are the 8-byte headers of [`frame`], with one more state.
//! Their length word is:
//!
//! * `0` — claimed, not described yet (the consumer zeroes every header word it releases, so
//!   a freshly claimed header is never mistaken for stale bytes of the previous lap);
//! * `CLAIMED | len` — described, being filled;
//! * `COMMITTED | len` — complete;
//! * `PADDING | COMMITTED | len` — skip `len + 8` bytes (wrap padding, an aborted grant, or a
//!   record the consumer skipped because its producer died).
//!
//! # The protocol
//!
//! **Producer** (`reserve` → fill → `commit`):
//!
//! 1. check the bound: the claim's end must not pass `released + capacity`. The claim and the
//!    released position are read in that order, both Acquire: whoever made the claim read saw
//!    a released position no later than ours, so the pair is consistent (re-read if the
//!    consumer moved past our claim snapshot meanwhile). The consumer zeroed the released
//!    space before releasing it;
//! 2. mark the registry slot `IN_CLAIM`, then claim `pad + size` bytes with a CAS on the claim
//!    position (AcqRel: anyone who sees the claim sees the mark);
//! 3. record `rec_pos` in the slot, write the padding header if the claim wraps (Release),
//!    then store `CLAIMED | len` in the record header (Release);
//! 4. fill the payload, write the tag, CAS the length word `CLAIMED | len` →
//!    `COMMITTED | len` (Release). If the CAS fails, the consumer declared the producer dead
//!    and skipped the record: the producer learns it ([`SendError::Skipped`]) instead of
//!    writing into space that may already be reused;
//! 5. clear `IN_CLAIM`.
//!
//! Dropping a grant aborts it by the same CAS, `CLAIMED | len` → padding.
//!
//! **Consumer**: at its released position `r`, with the claim position loaded (Acquire), a
//! committed record is read, its header words zeroed and its space released (Release); padding
//! is released the same way; a header that is `0` or `CLAIMED` means the record is still being
//! written — the consumer waits, and starts a stall timer. When the same position has been
//! stuck longer than the *stall timeout*, the consumer reads the claim position (Acquire:
//! every producer whose claim it covers has its `IN_CLAIM` mark visible from here on), then:
//!
//! * a `CLAIMED` header is skipped if its owner — the slot `IN_CLAIM` with `rec_pos == r` — is
//!   dead, or, if no slot says it owns the record (its slot was swept), if every producer
//!   marked `IN_CLAIM` is dead: CAS `CLAIMED | len` → padding, which a late commit of the
//!   owner (were it not dead after all) loses against;
//! * a `0` header (the owner died between its claim and its first write, or before writing the
//!   padding of a wrapping claim) is skipped only if every producer marked `IN_CLAIM` is dead.
//!   Then no live producer holds undescribed space below the claim position read, so the gap
//!   runs from `r` to the first non-zero header word, that claim position, or the end of the
//!   data area, whichever comes first; the consumer CASes a padding header over it.
//!
//! Every skip is counted ([`Consumer::skipped`]) — nothing disappears silently. A dead claim
//! that wrapped is two skipped regions (its padding and its record) and counts twice: the
//! count errs high, never low. The consumer frees the registry slots of producers known dead
//! on every stall examination and, while idle, at most once per stall timeout
//! ([`Consumer::sweep_registry`]), so crashed producers do not fill the registry; a slot is
//! freed only after its owner is known dead.
//!
//! **Large frames.** A producer waiting for room for a frame larger than a quarter of the
//! ring posts a *reservation* (its slot and size, with a time stamp written first and renewed
//! at least every half second while it waits); other producers then claim only if the room
//! left after their claim still fits the reserved frame, and wait for exactly that, so a
//! steady stream of small frames cannot starve a large one. A reservation not renewed for a
//! second is ignored (its producer died or gave up); clearing one rings the space doorbell.
//!
//! **Waking.** Producers ring the data doorbell after each commit. The consumer stores its
//! released position after each record, but rings the space doorbell only when the position
//! crosses a multiple of a sixteenth of the ring, or when it has caught up with the claim
//! position it last read. Ringing per record made every record a futex wake while producers
//! outran the consumer (580,000 wakes for 4,000,000 frames, two producers); this way a
//! sleeping producer is woken once per sixteenth of the ring. The argument: a producer
//! sleeps only after announcing it and re-reading the released position (the doorbell's
//! fence pair); a release it missed is followed, while the consumer keeps receiving, by a
//! ring at the next step or at the catch-up — and with every producer asleep, no new claims
//! come, so the consumer does catch up. A receive that stops short — at a record still being
//! written, or one its buffer cannot hold — rings for the space freed since the last ring, so
//! a producer claiming behind a preempted or dead one is not held up. If the consumer simply
//! stops calling with records left, a producer sees space freed since the last ring at the
//! end of its sleep slice (50 ms by default). As for SPSC, no system call is made while
//! nobody sleeps. (Model: `a_blocked_producer_wakes_when_the_consumer_catches_up`; mutant
//! `mpsc_no_catch_up_ring`.)

use core::fmt;
use core::time::Duration;

use crate::doorbell::{Doorbell, WaitOptions, WaitStats, Waiter};
use crate::error::{AttachError, Corruption, HeaderError, RecvError, SendError};
use crate::frame::{self, COMMITTED, LEN_MASK, PADDING};
use crate::futex::Instant;
use crate::layout::{
    self, CONSUMER_OWNER_OFF, DATA_BELL_OFF, Geometry, HEADER_SIZE, READ_POS_OFF,
    REGISTRY_SLOT_SIZE, RESERVATION_OFF, RESERVATION_STAMP_OFF, RingKind, SPACE_BELL_OFF,
    WRITE_POS_OFF,
};
use crate::mem::{Mem, SharedMemory};
use crate::mutant::{self, Mutant};
use crate::role::{self, OwnerId, PeerWatch};
use crate::sync::Ordering;

/// Length-word flag: described but not committed.
pub const CLAIMED: u32 = 1 << 29;
/// Payload bits of an MPSC length word (below `CLAIMED`).
const MPSC_LEN_MASK: u32 = CLAIMED - 1;
/// Registry state bit: the producer is between marking and finishing a claim.
const IN_CLAIM: u32 = 1;
/// Registry slot field offsets.
const SLOT_OWNER: usize = 0;
const SLOT_STATE: usize = 8;
const SLOT_REC_POS: usize = 16;
/// Default number of registry slots.
pub const DEFAULT_SLOTS: usize = 64;
/// Default stall timeout: how long a record may stay uncommitted before the consumer asks
/// whether its producer is dead.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_millis(100);
/// A reservation not renewed for this long is ignored.
const RESERVATION_TTL_MS: u64 = 1000;

/// Tells the consumer whether a producer is dead, from a race-free source.
///
/// "Dead" must be certain: a producer reported dead whose record is then skipped loses that
/// frame (it learns so from its commit). Report `false` whenever unsure. Under `std`,
/// [`PidfdLiveness`](crate::peer::PidfdLiveness) answers from pidfds taken while the
/// producers were known alive.
pub trait Liveness {
    /// Whether `owner` is known dead.
    fn is_dead(&self, owner: OwnerId) -> bool;
}

/// A liveness source that never reports anyone dead: stuck records are never skipped.
/// Right for producers that are threads of the consumer's own process (a thread that panics
/// mid-claim aborts its grant while unwinding).
#[derive(Clone, Copy, Debug, Default)]
pub struct NeverDead;

impl Liveness for NeverDead {
    fn is_dead(&self, _owner: OwnerId) -> bool {
        false
    }
}

impl<L: Liveness + ?Sized> Liveness for &L {
    fn is_dead(&self, owner: OwnerId) -> bool {
        (**self).is_dead(owner)
    }
}

/// How to create an MPSC ring.
///
/// # Examples
///
/// ```
/// use ringbell::mpsc::MpscConfig;
///
/// let cfg = MpscConfig::new(1 << 16).frame_cap(4096).slots(128);
/// assert!(cfg.region_size().unwrap() > (1 << 16));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MpscConfig {
    capacity: usize,
    frame_cap: Option<usize>,
    slots: usize,
    start_position: u64,
}

impl MpscConfig {
    /// A ring of `capacity` bytes (a power of two), frame cap `capacity / 8` (as Agrona's),
    /// [`DEFAULT_SLOTS`] producer slots.
    pub const fn new(capacity: usize) -> Self {
        Self {
            capacity,
            frame_cap: None,
            slots: DEFAULT_SLOTS,
            start_position: 0,
        }
    }

    /// Caps frames at `max` payload bytes (at most `capacity / 2 - 8`).
    pub const fn frame_cap(mut self, max: usize) -> Self {
        self.frame_cap = Some(max);
        self
    }

    /// Room for `n` producers at once (1 to 65,536).
    pub const fn slots(mut self, n: usize) -> Self {
        self.slots = n;
        self
    }

    /// Starts the positions at `position` (a multiple of 8); for tests of counter wrap.
    pub const fn start_position(mut self, position: u64) -> Self {
        self.start_position = position;
        self
    }

    /// Checks the configuration and returns the ring's geometry.
    ///
    /// # Errors
    ///
    /// [`HeaderError::BadCapacity`], [`HeaderError::BadFrameCap`],
    /// [`HeaderError::BadRegistry`] or [`HeaderError::BadStartPosition`].
    pub fn geometry(&self) -> Result<Geometry, HeaderError> {
        if self.start_position % frame::ALIGN as u64 != 0 {
            return Err(HeaderError::BadStartPosition {
                position: self.start_position,
            });
        }
        if !(1..=layout::MAX_REGISTRY_SLOTS).contains(&self.slots) {
            return Err(HeaderError::BadRegistry {
                slots: self.slots as u64,
            });
        }
        let cap = self
            .frame_cap
            .unwrap_or((self.capacity / 8).saturating_sub(frame::RECORD_HEADER));
        // The MPSC length word also carries CLAIMED, so lengths must stay below it.
        let mpsc_max = MPSC_LEN_MASK as usize - frame::RECORD_HEADER;
        if cap > mpsc_max {
            return Err(HeaderError::BadFrameCap {
                frame_cap: cap as u64,
                max: mpsc_max as u64,
            });
        }
        let mut geo = layout::geometry(RingKind::Mpsc, self.capacity, Some(cap))?;
        geo.slots = self.slots;
        Ok(geo)
    }

    /// Bytes of shared memory the ring needs.
    ///
    /// # Errors
    ///
    /// As [`geometry`](Self::geometry).
    pub fn region_size(&self) -> Result<usize, HeaderError> {
        self.geometry().map(|g| g.region_size())
    }
}

/// Writes a fresh MPSC ring into `shm` (exactly [`MpscConfig::region_size`] bytes).
///
/// # Errors
///
/// As [`MpscConfig::geometry`], and [`HeaderError::SizeMismatch`].
pub fn init<S: SharedMemory + ?Sized>(shm: &S, cfg: &MpscConfig) -> Result<Geometry, HeaderError> {
    let geo = cfg.geometry()?;
    let mem = shm.mem();
    layout::init(&mem, &geo, cfg.start_position)?;
    // Registry slots start free (the memory may not be zero, e.g. a reused heap buffer).
    for i in 0..geo.slots {
        let at = geo.registry_off() + i * REGISTRY_SLOT_SIZE;
        mem.store_u64(at + SLOT_OWNER, 0, Ordering::Relaxed);
        mem.store_u32(at + SLOT_STATE, 0, Ordering::Relaxed);
        mem.store_u64(at + SLOT_REC_POS, 0, Ordering::Relaxed);
    }
    // Every possible record header starts zero ("claimed, not described").
    for off in (0..geo.capacity).step_by(frame::ALIGN) {
        mem.store_u32(HEADER_SIZE + off, 0, Ordering::Relaxed);
    }
    // Release: the initialisation above is visible before anyone sees the ring ready again.
    mem.store_u32(layout::READY_OFF, layout::READY, Ordering::Release);
    Ok(geo)
}

/// Milliseconds on the system-wide monotonic clock (comparable across processes).
fn now_ms() -> u64 {
    Instant::now().as_millis()
}

/// A producer of an MPSC ring. Many may be attached at once, in any processes.
pub struct Producer<S: SharedMemory> {
    mem: Mem,
    capacity: usize,
    mask: u64,
    frame_cap: usize,
    /// Offset of our registry slot.
    slot_off: usize,
    /// Our slot index.
    slot: usize,
    owner: OwnerId,
    /// The fork generation it attached in: a copy inherited by a forked child neither acts
    /// nor releases its slot or role.
    fork_gen: u32,
    /// Last validated released position (only grows).
    cached_released: u64,
    data_bell: Doorbell,
    space_bell: Doorbell,
    /// Notices a consumer whose process died without closing (checked between sleeps).
    peer: PeerWatch,
    /// Wait options, adaptive spin state, counters.
    waiter: Waiter,
    shm: S,
}

impl<S: SharedMemory> Producer<S> {
    /// Registers a producer of the MPSC ring in `shm` in a free registry slot.
    ///
    /// # Errors
    ///
    /// [`AttachError::Header`]; [`AttachError::Limit`] if every slot is taken.
    pub fn attach(shm: S, owner: OwnerId) -> Result<Self, AttachError> {
        let mem = shm.mem();
        let geo = layout::validate(&mem, RingKind::Mpsc)?;
        let mut slot = None;
        for i in 0..geo.slots {
            let at = geo.registry_off() + i * REGISTRY_SLOT_SIZE;
            if mem
                .cas_u64(
                    at + SLOT_OWNER,
                    0,
                    owner.get(),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
            {
                mem.store_u32(at + SLOT_STATE, 0, Ordering::Release);
                slot = Some(i);
                break;
            }
        }
        let slot = slot.ok_or(AttachError::Limit { max: geo.slots })?;
        let released = mem.load_u64(READ_POS_OFF, Ordering::Acquire);
        Ok(Self {
            mem,
            capacity: geo.capacity,
            mask: geo.mask(),
            frame_cap: geo.frame_cap,
            slot_off: geo.registry_off() + slot * REGISTRY_SLOT_SIZE,
            slot,
            owner,
            fork_gen: role::fork_generation(),
            cached_released: released,
            data_bell: Doorbell::at(mem, DATA_BELL_OFF),
            space_bell: Doorbell::at(mem, SPACE_BELL_OFF),
            peer: PeerWatch::new(CONSUMER_OWNER_OFF).primed(&mem),
            waiter: Waiter::new(WaitOptions::default()),
            shm,
        })
    }

    /// The largest payload accepted.
    pub fn max_frame(&self) -> usize {
        self.frame_cap
    }

    /// This producer's registry slot.
    pub fn slot(&self) -> usize {
        self.slot
    }

    /// The memory this producer writes into.
    pub fn shared_memory(&self) -> &S {
        &self.shm
    }

    /// Whether the consumer closed its end.
    pub fn is_consumer_closed(&self) -> bool {
        role::is_closed(&self.mem, CONSUMER_OWNER_OFF)
    }

    /// The reservation of another producer to respect, as a record size, if live.
    fn foreign_reservation(&self) -> u64 {
        let r = self.mem.load_u64(RESERVATION_OFF, Ordering::Acquire);
        if r == 0 || (r & 0xffff_ffff) as usize == self.slot + 1 {
            return 0;
        }
        let stamp = self.mem.load_u64(RESERVATION_STAMP_OFF, Ordering::Relaxed);
        if now_ms().saturating_sub(stamp) > RESERVATION_TTL_MS {
            return 0;
        }
        (r >> 32).min(self.capacity as u64)
    }

    /// Tries to claim room for `len` payload bytes; returns (claim start, padding).
    fn claim(&mut self, len: usize, respect: bool) -> Result<(u64, usize), SendError> {
        if role::forked(self.fork_gen) {
            return Err(SendError::Forked);
        }
        let size = frame::record_size(len) as u64;
        let cap = self.capacity as u64;
        let reserve = if respect {
            self.foreign_reservation()
        } else {
            0
        };
        let bounded = !mutant::active(Mutant::MpscClaimBound);
        let mut claim = self.mem.load_u64(WRITE_POS_OFF, Ordering::Relaxed);
        let (mut refreshed, mut marked) = (false, false);
        loop {
            if claim % frame::ALIGN as u64 != 0 {
                // Off the grid: a crashed or buggy writer; never claim there.
                if marked {
                    self.unmark();
                }
                return Err(SendError::Corrupt(Corruption::WritePosition {
                    found: claim,
                }));
            }
            let to_end = cap - (claim & self.mask);
            let pad = if size > to_end { to_end } else { 0 };
            let need = pad + size;
            let used = claim.wrapping_sub(self.cached_released);
            if bounded && (used > cap || need + reserve > cap - used) {
                if refreshed && used <= cap {
                    if marked {
                        self.unmark();
                    }
                    if self.peer.peer_dead_rate_limited(&self.mem) {
                        return Err(SendError::Disconnected);
                    }
                    return Err(SendError::Full);
                }
                // Possibly full, or our cached released position is older than the claim:
                // refresh both. The claim first (Acquire): whoever made that claim had seen a
                // released position no later than the one we read next (Acquire), so the pair
                // is consistent unless the consumer moved past our claim snapshot meanwhile —
                // then read again. Only a consumer writing garbage keeps it inconsistent.
                let mut consistent = None;
                for _ in 0..64 {
                    let c = self.mem.load_u64(WRITE_POS_OFF, Ordering::Acquire);
                    let r = self.mem.load_u64(READ_POS_OFF, Ordering::Acquire);
                    if r % 8 == 0 && c.wrapping_sub(r) <= cap {
                        consistent = Some((c, r));
                        break;
                    }
                    crate::sync::spin_loop();
                }
                let Some((c, released)) = consistent else {
                    if marked {
                        self.unmark();
                    }
                    let found = self.mem.load_u64(READ_POS_OFF, Ordering::Relaxed);
                    return Err(SendError::Corrupt(Corruption::ReadPosition { found }));
                };
                claim = c;
                self.cached_released = released;
                refreshed = true;
                continue;
            }
            if !marked {
                // 1. Mark the slot before claiming; the claim CAS below is Release, so anyone
                // who sees the claim sees the mark.
                self.mem
                    .store_u32(self.slot_off + SLOT_STATE, IN_CLAIM, Ordering::Relaxed);
                marked = true;
            }
            // 2. Claim.
            match self.mem.cas_u64(
                WRITE_POS_OFF,
                claim,
                claim.wrapping_add(need),
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok((claim, pad as usize)),
                Err(now) => {
                    claim = now;
                    crate::sync::spin_loop();
                }
            }
        }
    }

    fn unmark(&self) {
        // Release: everything this claim wrote happens before a consumer sees the slot idle.
        self.mem
            .store_u32(self.slot_off + SLOT_STATE, 0, Ordering::Release);
    }

    fn reserve_inner(&mut self, len: usize, respect: bool) -> Result<Grant<'_, S>, SendError> {
        if len > self.frame_cap {
            return Err(SendError::TooLarge {
                len,
                max: self.frame_cap,
            });
        }
        if self.is_consumer_closed() {
            return Err(SendError::Closed);
        }
        let (claim, pad) = self.claim(len, respect)?;
        let rec_pos = claim.wrapping_add(pad as u64);
        // 3. Say which record is ours, write the padding, describe the record.
        self.mem
            .store_u64(self.slot_off + SLOT_REC_POS, rec_pos, Ordering::Relaxed);
        if pad > 0 {
            let at = HEADER_SIZE + (claim & self.mask) as usize;
            // Release: pairs with the consumer's Acquire load of the header.
            self.mem
                .store_u32(at, frame::padding_word(pad), Ordering::Release);
        }
        let record = HEADER_SIZE + (rec_pos & self.mask) as usize;
        self.mem
            .store_u32(record, CLAIMED | len as u32, Ordering::Release);
        Ok(Grant {
            producer: self,
            record,
            len,
            done: false,
        })
    }

    /// Test hook: claims room for `len` bytes and stops there, as if the process died right
    /// after its claim succeeded (the header stays 0, the slot stays `IN_CLAIM`).
    #[doc(hidden)]
    pub fn claim_and_stop_for_tests(&mut self, len: usize) -> Result<(), SendError> {
        self.claim(len, false).map(drop)
    }

    /// Claims room for a frame of `len` payload bytes. Dropping the grant aborts it (the
    /// room becomes padding the consumer skips).
    ///
    /// # Errors
    ///
    /// [`SendError::TooLarge`] at once; [`SendError::Closed`]; [`SendError::Full`].
    pub fn reserve(&mut self, len: usize) -> Result<Grant<'_, S>, SendError> {
        self.reserve_inner(len, true)
    }

    /// Sends one frame.
    ///
    /// # Errors
    ///
    /// As [`reserve`](Self::reserve), and [`SendError::Skipped`] if the consumer skipped the
    /// record because it took this producer for dead.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::mpsc;
    ///
    /// let (mut rx, region) = mpsc::channel(4096).unwrap();
    /// let mut a = mpsc::Producer::attach(region.clone(), ringbell::OwnerId::unique()).unwrap();
    /// let mut b = mpsc::Producer::attach(region, ringbell::OwnerId::unique()).unwrap();
    /// a.try_send(1, b"from a").unwrap();
    /// b.try_send(2, b"from b").unwrap();
    /// assert_eq!(rx.try_recv().unwrap().tag, 1);
    /// assert_eq!(rx.try_recv().unwrap().tag, 2);
    /// ```
    pub fn try_send(&mut self, tag: u32, data: &[u8]) -> Result<(), SendError> {
        let mut g = self.reserve(data.len())?;
        g.copy_from_slice(data);
        g.commit(tag)
    }

    /// Sends one frame, waiting as long as it takes for room — or until the consumer closes
    /// (`Closed`) or its process dies (`Disconnected`, seen within a sleep slice).
    ///
    /// # Errors
    ///
    /// As [`try_send`](Self::try_send), never `Full`; [`SendError::Disconnected`].
    pub fn send(&mut self, tag: u32, data: &[u8]) -> Result<(), SendError> {
        self.send_deadline(tag, data, None)
    }

    /// Sends one frame, waiting at most `timeout` for room.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send), and [`SendError::Timeout`].
    pub fn send_timeout(
        &mut self,
        tag: u32,
        data: &[u8],
        timeout: Duration,
    ) -> Result<(), SendError> {
        self.send_deadline(tag, data, Some(Instant::now().after(timeout)))
    }

    fn send_deadline(
        &mut self,
        tag: u32,
        data: &[u8],
        deadline: Option<Instant>,
    ) -> Result<(), SendError> {
        let size = frame::record_size(data.len()) as u64;
        let large = size > self.capacity as u64 / 4;
        let mut reserved = false;
        let result = loop {
            match self.reserve_inner(data.len(), !reserved) {
                Ok(mut g) => {
                    g.copy_from_slice(data);
                    break g.commit(tag);
                }
                Err(SendError::Full) => {}
                Err(e) => break Err(e),
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                break Err(SendError::Timeout);
            }
            if large {
                reserved |= self.post_reservation(size);
            }
            // Sleep at most a slice (then see whether the consumer's process died), and renew a
            // posted reservation at least every half of its lifetime.
            let mut wake = now.after(self.waiter.options().get_slice());
            if reserved {
                wake = wake.min(now.after(Duration::from_millis(RESERVATION_TTL_MS / 2)));
            }
            let wait_until = deadline.map_or(wake, |d| d.min(wake));
            match self.wait_for_space(data.len(), !reserved, Some(wait_until)) {
                Ok(()) => {}
                Err(SendError::Timeout) if self.peer.peer_dead(&self.mem) => {
                    break Err(SendError::Disconnected);
                }
                Err(SendError::Timeout) => {}
                Err(e) => break Err(e),
            }
        };
        if reserved {
            let mine = (size << 32) | (self.slot as u64 + 1);
            let _ = self.mem.cas_u64(
                RESERVATION_OFF,
                mine,
                0,
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
            // Producers that held back for the reservation may go now.
            self.waiter.ring(&self.space_bell);
        }
        result
    }

    /// Posts (or renews) a reservation for a record of `size` bytes; true if it is ours.
    fn post_reservation(&mut self, size: u64) -> bool {
        let mine = (size << 32) | (self.slot as u64 + 1);
        let cur = self.mem.load_u64(RESERVATION_OFF, Ordering::Acquire);
        let stale = now_ms()
            .saturating_sub(self.mem.load_u64(RESERVATION_STAMP_OFF, Ordering::Relaxed))
            > RESERVATION_TTL_MS;
        if cur == mine {
            self.mem
                .store_u64(RESERVATION_STAMP_OFF, now_ms(), Ordering::Release);
            return true;
        }
        if cur != 0 && !stale {
            return false;
        }
        // Stamp first, so that no reader sees our reservation with an old stamp.
        self.mem
            .store_u64(RESERVATION_STAMP_OFF, now_ms(), Ordering::Release);
        self.mem
            .cas_u64(
                RESERVATION_OFF,
                cur,
                mine,
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_ok()
    }

    /// Waits until a record of `len` bytes could be claimed (respecting another producer's
    /// reservation if `respect`), the consumer closes, or `deadline` passes.
    fn wait_for_space(
        &mut self,
        len: usize,
        respect: bool,
        deadline: Option<Instant>,
    ) -> Result<(), SendError> {
        let size = frame::record_size(len) as u64;
        let cap = self.capacity as u64;
        let mask = self.mask;
        let this = &*self;
        let room = || {
            let claim = this.mem.load_u64(WRITE_POS_OFF, Ordering::Relaxed);
            // Acquire: pairs with the consumer's Release of the released position.
            let released = this.mem.load_u64(READ_POS_OFF, Ordering::Acquire);
            let used = claim.wrapping_sub(released);
            let to_end = cap - (claim & mask);
            let pad = if size > to_end { to_end } else { 0 };
            let reserve = if respect {
                this.foreign_reservation()
            } else {
                0
            };
            // An inconsistent snapshot (used > cap) makes the caller retry, and the claim
            // reports real corruption.
            used > cap || pad + size + reserve <= cap - used || this.is_consumer_closed()
        };
        let mut waiter = self.waiter;
        let r = waiter.wait(&self.space_bell, room, deadline);
        self.waiter = waiter;
        r.map_err(|_| SendError::Timeout)
    }

    /// How blocking calls wait.
    pub fn set_wait_options(&mut self, opts: WaitOptions) {
        self.waiter.set_options(opts);
    }

    /// This producer's wake and sleep counters.
    pub fn stats(&self) -> WaitStats {
        self.waiter.stats()
    }
}

impl<S: SharedMemory> Drop for Producer<S> {
    fn drop(&mut self) {
        if !role::forked(self.fork_gen) {
            // Free the slot for another producer.
            self.mem
                .store_u32(self.slot_off + SLOT_STATE, 0, Ordering::Release);
            let _ = self.mem.cas_u64(
                self.slot_off + SLOT_OWNER,
                self.owner.get(),
                0,
                Ordering::Release,
                Ordering::Relaxed,
            );
        }
    }
}

impl<S: SharedMemory> fmt::Debug for Producer<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("mpsc::Producer")
            .field("slot", &self.slot)
            .field("owner", &self.owner)
            .field("frame_cap", &self.frame_cap)
            .finish_non_exhaustive()
    }
}

/// Room for one frame in an MPSC ring. Commit it, or drop it to abort.
#[must_use = "a grant sends nothing until it is committed; dropping it aborts"]
pub struct Grant<'a, S: SharedMemory> {
    producer: &'a mut Producer<S>,
    /// Offset (in the mapping) of the record header.
    record: usize,
    len: usize,
    done: bool,
}

impl<S: SharedMemory> Grant<'_, S> {
    /// Payload bytes reserved.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the grant is for a zero-length frame.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies `src` into the grant at `offset`.
    ///
    /// # Panics
    ///
    /// If `offset + src.len()` exceeds [`len`](Self::len).
    pub fn write_at(&mut self, offset: usize, src: &[u8]) {
        assert!(
            offset <= self.len && src.len() <= self.len - offset,
            "write past the grant"
        );
        self.producer
            .mem
            .copy_in(self.record + frame::RECORD_HEADER + offset, src);
    }

    /// Copies `src`, exactly [`len`](Self::len) bytes, into the grant.
    ///
    /// # Panics
    ///
    /// If `src.len() != self.len()`.
    pub fn copy_from_slice(&mut self, src: &[u8]) {
        assert_eq!(src.len(), self.len, "source length differs from the grant");
        self.producer
            .mem
            .copy_in(self.record + frame::RECORD_HEADER, src);
    }

    /// Publishes the frame with `tag`.
    ///
    /// # Errors
    ///
    /// [`SendError::Skipped`] if the consumer skipped this record, having found this producer
    /// dead: the frame was not delivered.
    pub fn commit(mut self, tag: u32) -> Result<(), SendError> {
        self.done = true;
        let p = &mut *self.producer;
        p.mem.store_u32(self.record + 4, tag, Ordering::Relaxed);
        let claimed = CLAIMED | self.len as u32;
        let committed = COMMITTED | self.len as u32;
        // Release: pairs with the consumer's Acquire load of the header; payload and tag are
        // visible before the record is seen committed.
        let r = if mutant::active(Mutant::MpscCommitStore) {
            p.mem.store_u32(self.record, committed, Ordering::Release);
            Ok(claimed)
        } else {
            p.mem.cas_u32(
                self.record,
                claimed,
                committed,
                Ordering::Release,
                Ordering::Relaxed,
            )
        };
        p.unmark();
        p.waiter.ring(&p.data_bell);
        r.map(drop).map_err(|_| SendError::Skipped)
    }
}

impl<S: SharedMemory> Drop for Grant<'_, S> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // Abort: the claimed room becomes padding the consumer skips.
        let p = &mut *self.producer;
        let size = frame::record_size(self.len);
        let _ = p.mem.cas_u32(
            self.record,
            CLAIMED | self.len as u32,
            frame::padding_word(size),
            Ordering::Release,
            Ordering::Relaxed,
        );
        p.unmark();
        p.waiter.ring(&p.data_bell);
    }
}

impl<S: SharedMemory> fmt::Debug for Grant<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("mpsc::Grant")
            .field("len", &self.len)
            .finish()
    }
}

/// What the consumer found at its position.
enum Head {
    /// A committed record: payload offset (in the mapping), length, tag, record size.
    Record {
        off: usize,
        len: usize,
        tag: u32,
        size: usize,
    },
    /// Nothing published.
    Empty,
    /// A record claimed but not committed yet.
    Pending,
}

/// The consumer of an MPSC ring.
pub struct Consumer<S: SharedMemory, L: Liveness = NeverDead> {
    mem: Mem,
    geo: Geometry,
    mask: u64,
    /// Our released position; only we write `READ_POS`.
    read: u64,
    owner: OwnerId,
    /// The fork generation it attached in: a copy inherited by a forked child neither acts
    /// nor releases its slot or role.
    fork_gen: u32,
    liveness: L,
    stall_timeout: Duration,
    /// The position we are stuck at, and since when.
    stalled: Option<(u64, Instant)>,
    /// The claim position we last read: never behind `read`, at most a capacity ahead.
    seen_claim: u64,
    /// Our released position when the space doorbell was last rung.
    rung: u64,
    /// The space doorbell is rung whenever the released position crosses a multiple of this
    /// (a power of two), and whenever we catch up with `seen_claim`.
    wake_step: u64,
    /// When the registry was last swept for dead producers.
    last_sweep: Instant,
    skipped: u64,
    data_bell: Doorbell,
    space_bell: Doorbell,
    /// Wait options, adaptive spin state, counters.
    waiter: Waiter,
    shm: S,
}

impl<S: SharedMemory, L: Liveness> Consumer<S, L> {
    /// Claims the consumer role of the MPSC ring in `shm`; stuck records are skipped when
    /// `liveness` says their producer is dead.
    ///
    /// # Errors
    ///
    /// [`AttachError::Header`], [`AttachError::RoleTaken`], [`AttachError::RoleClosed`],
    /// [`AttachError::Corrupt`].
    pub fn attach(shm: S, owner: OwnerId, liveness: L) -> Result<Self, AttachError> {
        let mem = shm.mem();
        let geo = layout::validate(&mem, RingKind::Mpsc)?;
        role::claim(&mem, CONSUMER_OWNER_OFF, owner)?;
        let read = mem.load_u64(READ_POS_OFF, Ordering::Acquire);
        let claim = mem.load_u64(WRITE_POS_OFF, Ordering::Acquire);
        if read % 8 != 0 || claim.wrapping_sub(read) > geo.capacity as u64 {
            role::unclaim(&mem, CONSUMER_OWNER_OFF, owner);
            return Err(AttachError::Corrupt(Corruption::ReadPosition {
                found: read,
            }));
        }
        Ok(Self {
            mem,
            geo,
            mask: geo.mask(),
            read,
            owner,
            fork_gen: role::fork_generation(),
            liveness,
            stall_timeout: DEFAULT_STALL_TIMEOUT,
            stalled: None,
            seen_claim: claim,
            rung: read,
            wake_step: crate::spsc::wake_step(geo.capacity),
            last_sweep: Instant::now(),
            skipped: 0,
            data_bell: Doorbell::at(mem, DATA_BELL_OFF),
            space_bell: Doorbell::at(mem, SPACE_BELL_OFF),
            waiter: Waiter::new(WaitOptions::default()),
            shm,
        })
    }

    /// How long a record may stay uncommitted before the consumer asks whether its producer
    /// is dead (default [`DEFAULT_STALL_TIMEOUT`]).
    pub fn set_stall_timeout(&mut self, timeout: Duration) {
        self.stall_timeout = timeout;
    }

    /// Records skipped because their producer died (each one a frame that was not delivered).
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// The ring's frame cap.
    pub fn max_frame(&self) -> usize {
        self.geo.frame_cap
    }

    /// The memory this consumer reads.
    pub fn shared_memory(&self) -> &S {
        &self.shm
    }

    /// Looks at the header at our position; consumes nothing.
    ///
    /// The claim position is re-read only when we have caught up with the one we saw last: a
    /// record starting below a claim position we saw lies wholly below it (claims are
    /// contiguous), so the older bound still validates it, and its header tells whether it is
    /// committed. This keeps the consumer off the claim word the producers fight over.
    fn head(&mut self) -> Result<Head, Corruption> {
        let cap = self.geo.capacity;
        let mut avail = self.seen_claim.wrapping_sub(self.read);
        if avail == 0 {
            // Acquire: pairs with the producers' Release claim CAS.
            let claim = self.mem.load_u64(WRITE_POS_OFF, Ordering::Acquire);
            avail = claim.wrapping_sub(self.read);
            if avail == 0 {
                return Ok(Head::Empty);
            }
            if avail > cap as u64 || claim % 8 != 0 {
                return Err(Corruption::WritePosition { found: claim });
            }
            self.seen_claim = claim;
        }
        let off = (self.read & self.mask) as usize;
        let at = HEADER_SIZE + off;
        // Acquire: pairs with the Release commit CAS / padding store of the producer.
        let word = self.mem.load_u32(at, Ordering::Acquire);
        let corrupt = Corruption::Record {
            position: self.read,
            word,
        };
        if word & COMMITTED == 0 {
            // 0 or CLAIMED: being written.
            if word != 0 && (word & !MPSC_LEN_MASK != CLAIMED) {
                return Err(corrupt);
            }
            // We will wait here: check the claim word afresh (we may have used an older
            // value above), so that a corrupt one is reported rather than waited on.
            // Acquire: as above.
            let claim = self.mem.load_u64(WRITE_POS_OFF, Ordering::Acquire);
            let fresh = claim.wrapping_sub(self.read);
            // Claims only grow: one behind the value we saw moved backwards.
            if claim % 8 != 0 || fresh > cap as u64 || fresh < avail {
                return Err(Corruption::WritePosition { found: claim });
            }
            self.seen_claim = claim;
            return Ok(Head::Pending);
        }
        let len = (word & LEN_MASK) as usize;
        if word & PADDING != 0 {
            let size = len + frame::RECORD_HEADER;
            if len % frame::ALIGN != 0 || size > cap - off || size as u64 > avail {
                return Err(corrupt);
            }
            return Ok(Head::Record {
                off: at,
                len: usize::MAX,
                tag: 0,
                size,
            });
        }
        if len > self.geo.frame_cap {
            return Err(corrupt);
        }
        let size = frame::record_size(len);
        if size > cap - off || size as u64 > avail {
            return Err(corrupt);
        }
        let tag = self.mem.load_u32(at + 4, Ordering::Relaxed);
        Ok(Head::Record {
            off: at + frame::RECORD_HEADER,
            len,
            tag,
            size,
        })
    }

    /// Whether a frame can be received now: a pure peek, changing nothing.
    ///
    /// Padding ahead is looked through; a record still being written counts as no data.
    /// `true` stays true until this consumer receives (a committed record cannot go away);
    /// corruption also counts as `true`, so that the next receive reports it.
    pub fn has_data(&self) -> bool {
        if role::forked(self.fork_gen) {
            return true; // the next receive reports it
        }
        // Acquire: pairs with the producers' Release claim CAS.
        let claim = self.mem.load_u64(WRITE_POS_OFF, Ordering::Acquire);
        let cap = self.geo.capacity;
        let mut pos = self.read;
        // Bounded: every round moves `pos` forward by at least 8 bytes towards `claim`.
        loop {
            let avail = claim.wrapping_sub(pos);
            if avail == 0 {
                return false;
            }
            if avail > cap as u64 {
                return true;
            }
            let off = (pos & self.mask) as usize;
            // Acquire: pairs with the producers' Release header writes.
            let word = self.mem.load_u32(HEADER_SIZE + off, Ordering::Acquire);
            if word & COMMITTED == 0 {
                return word != 0 && word & !MPSC_LEN_MASK != CLAIMED; // pending, or corrupt
            }
            if word & PADDING == 0 {
                return true;
            }
            let len = (word & LEN_MASK) as usize;
            let size = len + frame::RECORD_HEADER;
            if len % frame::ALIGN != 0 || size > cap - off || size as u64 > avail {
                return true;
            }
            pos = pos.wrapping_add(size as u64);
        }
    }

    /// Zeroes every possible header word of `size` bytes at our position, then releases them.
    fn release(&mut self, size: usize) {
        let start = (self.read & self.mask) as usize;
        if !mutant::active(Mutant::MpscNoZero) {
            for off in (start..start + size).step_by(frame::ALIGN) {
                self.mem.store_u32(HEADER_SIZE + off, 0, Ordering::Relaxed);
            }
        }
        self.read = self.read.wrapping_add(size as u64);
        self.stalled = None;
        // Release: the zeroing and our reads happen before a producer reuses the space.
        self.mem
            .store_u64(READ_POS_OFF, self.read, Ordering::Release);
        // Ring when a wake step's worth of space was freed since the last ring, or when we
        // have caught up with every claim we saw (see "Waking" in the module docs).
        let crossed = (self.rung ^ self.read) >= self.wake_step;
        let caught_up = self.read == self.seen_claim && !mutant::active(Mutant::MpscNoCatchUpRing);
        if crossed || caught_up {
            self.ring_space();
        }
    }

    fn ring_space(&mut self) {
        self.rung = self.read;
        self.waiter.ring(&self.space_bell);
    }

    /// Rings the space doorbell if space was freed since the last ring: for a receive about
    /// to stop short of catching up (a record still being written, a buffer too small).
    #[cold]
    fn announce_space(&mut self) {
        if self.rung != self.read {
            self.ring_space();
        }
    }

    /// Finds the next committed frame, releasing padding, or says why there is none.
    fn next(&mut self) -> Result<(usize, usize, u32, usize), RecvError> {
        if role::forked(self.fork_gen) {
            return Err(RecvError::Forked);
        }
        // Bounded: each round either returns or releases at least 8 bytes of padding, and
        // there are at most `capacity / 8` such bytes published.
        for _ in 0..=self.geo.capacity / 8 {
            match self.head().map_err(RecvError::Corrupt)? {
                Head::Record {
                    off,
                    len,
                    tag,
                    size,
                } => {
                    if len == usize::MAX {
                        self.release(size);
                        continue;
                    }
                    return Ok((off, len, tag, size));
                }
                Head::Empty => {
                    // While idle, free the slots of dead producers now and then (at most once
                    // a stall timeout), so crashed producers do not fill the registry.
                    let now = Instant::now();
                    if now.since(self.last_sweep) >= self.stall_timeout {
                        self.last_sweep = now;
                        self.sweep_registry();
                    }
                    return Err(RecvError::Empty);
                }
                Head::Pending => {
                    if self.try_skip() {
                        continue;
                    }
                    // We stop short of the claims: a producer blocked on the space freed so
                    // far must not wait for the record ahead to be committed.
                    self.announce_space();
                    return Err(RecvError::Empty);
                }
            }
        }
        Err(RecvError::Empty)
    }

    /// The record at our position is not committed: after the stall timeout, skip it if its
    /// producer is dead. True if the caller should look at the head again (something was
    /// skipped, or the record got committed meanwhile).
    fn try_skip(&mut self) -> bool {
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
        let at = HEADER_SIZE + (self.read & self.mask) as usize;
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

    /// Registry slot offsets, in order.
    fn slots(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.geo.slots).map(|i| self.geo.registry_off() + i * REGISTRY_SLOT_SIZE)
    }

    /// Whether the owner recorded in `slot` is known dead.
    fn slot_owner_dead(&self, slot: usize) -> bool {
        let id = self.mem.load_u64(slot + SLOT_OWNER, Ordering::Acquire);
        OwnerId::new(id).is_some_and(|o| self.liveness.is_dead(o))
    }

    /// Whether every producer marked in-claim is known dead (vacuously true if none is).
    fn all_in_claim_dead(&self) -> bool {
        self.slots().all(|s| {
            self.mem.load_u32(s + SLOT_STATE, Ordering::Acquire) & IN_CLAIM == 0
                || self.slot_owner_dead(s)
        })
    }

    /// Frees the registry slots of producers known dead, so that crashed producers do not use
    /// up the registry. Returns how many were freed. Also runs on every stall examination.
    pub fn sweep_registry(&self) -> usize {
        let mut freed = 0;
        for s in self.slots() {
            let id = self.mem.load_u64(s + SLOT_OWNER, Ordering::Acquire);
            let Some(owner) = OwnerId::new(id) else {
                continue;
            };
            if self.liveness.is_dead(owner) {
                self.mem.store_u32(s + SLOT_STATE, 0, Ordering::Release);
                if self
                    .mem
                    .cas_u64(s + SLOT_OWNER, id, 0, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
                {
                    freed += 1;
                }
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
        let owner = self.slots().find(|&s| {
            self.mem.load_u32(s + SLOT_STATE, Ordering::Acquire) & IN_CLAIM != 0
                && self.mem.load_u64(s + SLOT_REC_POS, Ordering::Relaxed) == read
        });
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
                frame::padding_word(frame::record_size(len)),
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
        let off = (self.read & self.mask) as usize;
        let limit = (self.geo.capacity - off).min(avail as usize);
        let mut gap = frame::RECORD_HEADER;
        while gap < limit && self.mem.load_u32(at + gap, Ordering::Acquire) == 0 {
            gap += frame::ALIGN;
        }
        let gap = gap.min(limit);
        gap >= frame::RECORD_HEADER
            && self
                .mem
                .cas_u32(
                    at,
                    0,
                    frame::padding_word(gap),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
    }

    /// Copies the next frame into `buf` and releases it; returns its tag and length.
    ///
    /// # Errors
    ///
    /// [`RecvError::Empty`] (also while the next record is still being written);
    /// [`RecvError::BufferTooSmall`] (the frame stays); [`RecvError::Corrupt`].
    pub fn try_recv_into(&mut self, buf: &mut [u8]) -> Result<(u32, usize), RecvError> {
        let (off, len, tag, size) = self.next()?;
        let Some(dst) = buf.get_mut(..len) else {
            self.announce_space();
            return Err(RecvError::BufferTooSmall { needed: len });
        };
        self.mem.copy_out(off, dst);
        self.release(size);
        Ok((tag, len))
    }

    /// Receives the next frame into a new [`Frame`](crate::Frame).
    ///
    /// # Errors
    ///
    /// As [`try_recv_into`](Self::try_recv_into), without `BufferTooSmall`.
    #[cfg(feature = "std")]
    pub fn try_recv(&mut self) -> Result<crate::Frame, RecvError> {
        let (off, len, tag, size) = self.next()?;
        let mut data = std::vec![0u8; len];
        self.mem.copy_out(off, &mut data);
        self.release(size);
        Ok(crate::Frame { tag, data })
    }

    /// Receives the next frame into a new [`Frame`](crate::Frame), waiting as long as it
    /// takes (a stuck record is examined at each stall timeout).
    ///
    /// # Errors
    ///
    /// [`RecvError::Corrupt`].
    #[cfg(feature = "std")]
    pub fn recv(&mut self) -> Result<crate::Frame, RecvError> {
        self.recv_deadline(None)
    }

    /// Receives the next frame into a new [`Frame`](crate::Frame), waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`RecvError::Timeout`]; [`RecvError::Corrupt`].
    #[cfg(feature = "std")]
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<crate::Frame, RecvError> {
        self.recv_deadline(Some(timeout))
    }

    #[cfg(feature = "std")]
    fn recv_deadline(&mut self, timeout: Option<Duration>) -> Result<crate::Frame, RecvError> {
        let mut buf = std::vec![0u8; self.geo.frame_cap];
        let (tag, len) = self.recv_into_timeout(&mut buf, timeout)?;
        buf.truncate(len);
        Ok(crate::Frame { tag, data: buf })
    }

    /// Whether the next receive has something to do: a frame, or a stall to start timing or
    /// to examine.
    fn ready(&self) -> bool {
        if self.has_data() {
            return true;
        }
        let claim = self.mem.load_u64(WRITE_POS_OFF, Ordering::Acquire);
        if claim == self.read {
            return false;
        }
        match self.stalled {
            Some((pos, since)) if pos == self.read => {
                Instant::now().since(since) >= self.stall_timeout
            }
            _ => true,
        }
    }

    /// Receives the next frame into `buf`, waiting at most `timeout` (`None`: no deadline).
    /// While a record is stuck, the wait wakes when its stall timeout expires to examine it.
    ///
    /// # Errors
    ///
    /// As [`try_recv_into`](Self::try_recv_into) without `Empty`, and [`RecvError::Timeout`].
    pub fn recv_into_timeout(
        &mut self,
        buf: &mut [u8],
        timeout: Option<Duration>,
    ) -> Result<(u32, usize), RecvError> {
        let deadline = timeout.map(|t| Instant::now().after(t));
        loop {
            match self.try_recv_into(buf) {
                Err(RecvError::Empty) => {}
                done => return done,
            }
            let stall_at = self
                .stalled
                .filter(|(pos, _)| *pos == self.read)
                .map(|(_, since)| since.after(self.stall_timeout));
            let wake_at = match (deadline, stall_at) {
                (Some(d), Some(s)) => Some(d.min(s)),
                (d, s) => d.or(s),
            };
            let this = &*self;
            let mut waiter = self.waiter;
            let r = waiter.wait(&self.data_bell, || this.ready(), wake_at);
            self.waiter = waiter;
            if r.is_err() && deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(RecvError::Timeout);
            }
        }
    }

    /// How blocking calls wait.
    pub fn set_wait_options(&mut self, opts: WaitOptions) {
        self.waiter.set_options(opts);
    }

    /// This consumer's wake and sleep counters.
    pub fn stats(&self) -> WaitStats {
        self.waiter.stats()
    }
}

impl<S: SharedMemory, L: Liveness> Drop for Consumer<S, L> {
    fn drop(&mut self) {
        if !role::forked(self.fork_gen) {
            role::close(&self.mem, CONSUMER_OWNER_OFF, self.owner);
            self.waiter.ring(&self.space_bell);
        }
    }
}

impl<S: SharedMemory, L: Liveness> fmt::Debug for Consumer<S, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("mpsc::Consumer")
            .field("read", &self.read)
            .field("skipped", &self.skipped)
            .field("stalled", &self.stalled.map(|(p, _)| p))
            .finish_non_exhaustive()
    }
}

/// Creates an in-process MPSC ring of `capacity` bytes on the heap; returns its consumer
/// (which never skips: producers are threads) and the region to attach producers to.
///
/// # Errors
///
/// As [`MpscConfig::geometry`].
#[cfg(all(feature = "std", not(loom)))]
pub fn channel(
    capacity: usize,
) -> Result<
    (
        Consumer<crate::region::HeapRegion>,
        crate::region::HeapRegion,
    ),
    HeaderError,
> {
    let cfg = MpscConfig::new(capacity);
    let region = crate::region::HeapRegion::zeroed(cfg.region_size()?);
    init(&region, &cfg)?;
    let rx = Consumer::attach(region.clone(), OwnerId::unique(), NeverDead)
        .map_err(|_| HeaderError::NotReady)?;
    Ok((rx, region))
}
