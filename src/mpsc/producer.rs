//! A producer of an MPSC ring: the claim, the grant, the commit.

use core::fmt;
use core::time::Duration;

use super::registry::Registry;
use super::reservation;
use crate::clock::{Deadline, Instant};
use crate::doorbell::{Line, Stop, WaitOptions, WaitStats, Waiter};
use crate::error::{AttachError, Corruption, SendError};
use crate::fork;
use crate::header;
use crate::liveness::PeerWatch;
use crate::mem::Mem;
use crate::mutant::{self, Mutant};
use crate::region::{Admits, Mpsc, SharedMemory};
use crate::role::{self, OwnerId};
use crate::sync::Ordering;
use crate::wire::{
    self, CLAIMED, COMMITTED, CONSUMER_OWNER_OFF, DATA_BELL_OFF, HEADER_SIZE, READ_POS_OFF,
    RESERVATION_TTL_MS, RingKind, SPACE_BELL_OFF, WRITE_POS_OFF,
};

/// A producer of an MPSC ring. Many may be attached at once, in any processes, each in a
/// registry slot of its own ([`try_clone`](Self::try_clone) takes another).
///
/// Dropping it frees its slot. It is `Send` but not `Sync`: one thread uses it at a time;
/// give each thread a producer of its own.
///
/// # Examples
///
/// ```
/// let (mut rx, region) = ringbell::mpsc::channel(4096)?;
/// let mut a = region.producer()?;
/// let mut b = a.try_clone()?;
/// a.try_send(1, b"from a")?;
/// b.try_send(2, b"from b")?;
/// assert_eq!(rx.try_recv()?.tag, 1);
/// assert_eq!(rx.try_recv()?.tag, 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Producer<S: SharedMemory> {
    mem: Mem,
    capacity: usize,
    mask: u64,
    frame_cap: usize,
    registry: Registry,
    /// Our slot index.
    slot: usize,
    owner: OwnerId,
    /// The fork generation it attached in: a copy inherited by a forked child neither acts
    /// nor releases its slot.
    fork_gen: u32,
    /// Last validated released position (only grows).
    cached_released: u64,
    data_bell: Line,
    space_bell: Line,
    /// Notices a consumer whose process died without closing (checked between sleeps).
    peer: PeerWatch,
    /// Wait options, adaptive spin state, counters.
    waiter: Waiter,
    shm: S,
}

impl<S: SharedMemory> Producer<S>
where
    S::Kind: Admits<Mpsc>,
{
    /// Registers a producer of the MPSC ring in `shm` in a free registry slot, as `owner`.
    ///
    /// # Errors
    ///
    /// [`AttachError::Header`]; [`AttachError::Limit`] if every slot is taken.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::{mpsc, OwnerId};
    ///
    /// let (_rx, region) = mpsc::channel(4096)?;
    /// let tx = mpsc::Producer::attach(region, OwnerId::new(5).unwrap())?;
    /// assert_eq!(tx.slot(), 0);
    /// # Ok::<(), ringbell::AttachError>(())
    /// ```
    pub fn attach(shm: S, owner: OwnerId) -> Result<Self, AttachError> {
        let mem = shm.mem();
        let geo = header::validate(&mem, RingKind::Mpsc)?;
        let fences = geo.usable_fences()?;
        let registry = Registry::new(mem, &geo);
        let slot = registry.register(owner).ok_or(AttachError::Limit {
            max: registry.len(),
        })?;
        let released = mem.load_u64(READ_POS_OFF, Ordering::Acquire);
        Ok(Self {
            mem,
            capacity: geo.capacity,
            mask: geo.mask(),
            frame_cap: geo.frame_cap,
            registry,
            slot,
            owner,
            fork_gen: fork::generation(),
            cached_released: released,
            data_bell: Line::at(mem, DATA_BELL_OFF, fences),
            space_bell: Line::at(mem, SPACE_BELL_OFF, fences),
            peer: PeerWatch::new(&mem, CONSUMER_OWNER_OFF),
            waiter: Waiter::new(WaitOptions::default()),
            shm,
        })
    }

    /// Registers a producer with a fresh [`OwnerId::unique`] (which carries this process's
    /// id, so that a consumer with [`PidfdLiveness`](super::PidfdLiveness) can skip its stuck
    /// records if this process dies mid-claim).
    ///
    /// # Errors
    ///
    /// As [`attach`](Self::attach).
    ///
    /// # Examples
    ///
    /// ```
    /// let (_rx, region) = ringbell::mpsc::channel(4096)?;
    /// let tx = region.producer()?;
    /// assert_eq!(tx.max_frame(), 4096 / 8 - 8);
    /// # Ok::<(), ringbell::AttachError>(())
    /// ```
    #[cfg(feature = "std")]
    #[cfg_attr(loom, allow(dead_code))] // the regions that call it are not built under loom
    pub(crate) fn new(shm: S) -> Result<Self, AttachError> {
        Self::attach(shm, OwnerId::unique())
    }

    /// Registers another producer of the same ring, in a slot of its own, with a fresh owner
    /// id of the same sort as this one's (with a process id if this one has one). Not `Clone`:
    /// it takes a registry slot, which can run out.
    ///
    /// # Errors
    ///
    /// [`AttachError::Limit`] if every slot is taken.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::{mpsc, AttachError};
    ///
    /// let (_rx, region) = mpsc::channel_with(&mpsc::Config::new(4096).slots(2))?;
    /// let a = region.producer()?;
    /// let b = a.try_clone()?;
    /// assert_ne!(a.slot(), b.slot());
    /// assert_eq!(a.try_clone().map(drop), Err(AttachError::Limit { max: 2 }));
    /// # Ok::<(), AttachError>(())
    /// ```
    #[cfg(feature = "std")]
    pub fn try_clone(&self) -> Result<Self, AttachError>
    where
        S: Clone,
    {
        let owner = match self.owner.pid() {
            Some(_) => OwnerId::unique(),
            None => OwnerId::unique_without_pid(),
        };
        Self::attach(self.shm.clone(), owner)
    }
}

impl<S: SharedMemory> Producer<S> {
    /// The largest payload accepted: the ring's frame cap.
    ///
    /// # Examples
    ///
    /// ```
    /// let (_rx, region) = ringbell::mpsc::channel(4096)?;
    /// assert_eq!(region.producer()?.max_frame(), 504);
    /// # Ok::<(), ringbell::AttachError>(())
    /// ```
    pub fn max_frame(&self) -> usize {
        self.frame_cap
    }

    /// The fence mode of the ring's doorbells, as its header names it ([`Fences`](crate::doorbell::Fences)).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::doorbell::Fences;
    ///
    /// let (_rx, region) = ringbell::mpsc::channel(4096)?;
    /// assert_eq!(region.producer()?.fences(), Fences::default_for_new_regions());
    /// # Ok::<(), ringbell::AttachError>(())
    /// ```
    pub fn fences(&self) -> crate::doorbell::Fences {
        self.data_bell.fences()
    }

    /// The ring's data-area capacity in bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// let (_rx, region) = ringbell::mpsc::channel(4096)?;
    /// assert_eq!(region.producer()?.capacity(), 4096);
    /// # Ok::<(), ringbell::AttachError>(())
    /// ```
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes of the ring claimed and not yet released by the consumer — every producer's
    /// records, headers and padding included — at most [`capacity`](Self::capacity). A
    /// snapshot: other producers and the consumer change it at any moment.
    ///
    /// # Examples
    ///
    /// ```
    /// let (_rx, region) = ringbell::mpsc::channel(4096)?;
    /// let mut tx = region.producer()?;
    /// tx.try_send(0, &[0; 5])?;
    /// assert_eq!(tx.len(), 16);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn len(&self) -> usize {
        let claim = self.mem.load_u64(WRITE_POS_OFF, Ordering::Relaxed);
        let released = self.mem.load_u64(READ_POS_OFF, Ordering::Relaxed);
        claim.wrapping_sub(released).min(self.capacity as u64) as usize
    }

    /// Whether nothing is claimed and unreleased ([`len`](Self::len) is 0). A snapshot.
    ///
    /// # Examples
    ///
    /// ```
    /// let (_rx, region) = ringbell::mpsc::channel(4096)?;
    /// assert!(region.producer()?.is_empty());
    /// # Ok::<(), ringbell::AttachError>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether not even an empty frame could be claimed now. A snapshot.
    ///
    /// # Examples
    ///
    /// ```
    /// let (_rx, region) = ringbell::mpsc::channel_with(&ringbell::mpsc::Config::new(64).frame_cap(24))?;
    /// let mut tx = region.producer()?;
    /// tx.try_send(0, &[0; 24])?;
    /// tx.try_send(0, &[0; 24])?;
    /// assert!(tx.is_full());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_full(&self) -> bool {
        !self.can_send(0)
    }

    /// Whether a frame of `len` payload bytes could be claimed now: within the frame cap,
    /// and room for it (wrap padding included) without eating into another producer's
    /// pending large-frame reservation. A pure peek; it may go stale at any moment, either
    /// way, as other producers claim and the consumer releases.
    ///
    /// # Examples
    ///
    /// ```
    /// let (_rx, region) = ringbell::mpsc::channel(4096)?;
    /// let tx = region.producer()?;
    /// assert!(tx.can_send(504));
    /// assert!(!tx.can_send(505)); // above the frame cap
    /// # Ok::<(), ringbell::AttachError>(())
    /// ```
    pub fn can_send(&self, len: usize) -> bool {
        len <= self.frame_cap && self.room(len, true)
    }

    /// Whether a record of `len` bytes fits now, respecting another producer's reservation
    /// if `respect` (an inconsistent snapshot counts as room: the claim then reports it).
    fn room(&self, len: usize, respect: bool) -> bool {
        let size = wire::record_size(len) as u64;
        let cap = self.capacity as u64;
        let claim = self.mem.load_u64(WRITE_POS_OFF, Ordering::Relaxed);
        // Acquire: pairs with the consumer's Release of the released position.
        let released = self.mem.load_u64(READ_POS_OFF, Ordering::Acquire);
        let used = claim.wrapping_sub(released);
        let to_end = cap - (claim & self.mask);
        let pad = if size > to_end { to_end } else { 0 };
        let reserve = if respect {
            reservation::foreign(&self.mem, self.slot, self.capacity)
        } else {
            0
        };
        used > cap || pad + size + reserve <= cap - used
    }

    /// This producer's registry slot.
    ///
    /// # Examples
    ///
    /// ```
    /// let (_rx, region) = ringbell::mpsc::channel(4096)?;
    /// let a = region.producer()?;
    /// let b = region.producer()?;
    /// assert_eq!((a.slot(), b.slot()), (0, 1));
    /// # Ok::<(), ringbell::AttachError>(())
    /// ```
    pub fn slot(&self) -> usize {
        self.slot
    }

    /// The memory this producer writes into.
    ///
    /// # Examples
    ///
    /// ```
    /// let (_rx, region) = ringbell::mpsc::channel(4096)?;
    /// let tx = region.producer()?;
    /// assert_eq!(tx.shared_memory().len(), 1024 + 4096 + 64 * 32);
    /// # Ok::<(), ringbell::AttachError>(())
    /// ```
    pub fn shared_memory(&self) -> &S {
        &self.shm
    }

    /// Whether the consumer closed its end. Once true it stays true.
    ///
    /// # Examples
    ///
    /// ```
    /// let (rx, region) = ringbell::mpsc::channel(4096)?;
    /// let tx = region.producer()?;
    /// drop(rx);
    /// assert!(tx.is_consumer_closed());
    /// # Ok::<(), ringbell::AttachError>(())
    /// ```
    pub fn is_consumer_closed(&self) -> bool {
        role::is_closed(&self.mem, CONSUMER_OWNER_OFF)
    }

    /// Tries to claim room for `len` payload bytes; returns (claim start, padding).
    fn claim(&mut self, len: usize, respect: bool) -> Result<(u64, usize), SendError> {
        if fork::forked(self.fork_gen) {
            return Err(SendError::Forked);
        }
        let size = wire::record_size(len) as u64;
        let cap = self.capacity as u64;
        let reserve = if respect {
            reservation::foreign(&self.mem, self.slot, self.capacity)
        } else {
            0
        };
        let bounded = mutant::keep(Mutant::MpscClaimBound);
        let mut claim = self.mem.load_u64(WRITE_POS_OFF, Ordering::Relaxed);
        let (mut refreshed, mut marked) = (false, false);
        loop {
            if claim % wire::ALIGN as u64 != 0 {
                // Off the grid: a crashed or buggy writer; never claim there.
                if marked {
                    self.registry.unmark(self.slot);
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
                        self.registry.unmark(self.slot);
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
                        self.registry.unmark(self.slot);
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
                self.registry.mark(self.slot);
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
        self.registry.set_rec_pos(self.slot, rec_pos);
        if pad > 0 {
            let at = HEADER_SIZE + (claim & self.mask) as usize;
            // Release: pairs with the consumer's Acquire load of the header.
            self.mem
                .store_u32(at, wire::padding_word(pad), Ordering::Release);
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

    /// Claims room for `len` bytes and stops there, as if the process died right after its
    /// claim succeeded (the header stays 0, the slot stays in-claim): for tests.
    #[cfg_attr(not(feature = "test-hooks"), allow(dead_code))]
    pub(crate) fn claim_and_stop(&mut self, len: usize) -> Result<(), SendError> {
        self.claim(len, false).map(drop)
    }

    /// Claims room for a frame of `len` payload bytes and returns a [`Grant`] to fill in
    /// place. Dropping the grant aborts it (the room becomes padding the consumer skips).
    ///
    /// # Errors
    ///
    /// [`SendError::TooLarge`] at once; [`SendError::Closed`]; [`SendError::Full`];
    /// [`SendError::Disconnected`] instead of `Full` once the consumer's process is seen dead;
    /// [`SendError::Forked`]; [`SendError::Corrupt`].
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut rx, region) = ringbell::mpsc::channel(4096)?;
    /// let mut tx = region.producer()?;
    /// let mut grant = tx.reserve(4)?;
    /// grant.write_at(0, b"abcd");
    /// grant.commit(7)?;
    /// assert_eq!(rx.try_recv()?.data, b"abcd");
    /// drop(tx.reserve(4)?); // aborted: the consumer skips it
    /// assert!(!rx.has_data());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reserve(&mut self, len: usize) -> Result<Grant<'_, S>, SendError> {
        self.reserve_inner(len, true)
    }

    /// Sends one frame without waiting.
    ///
    /// # Errors
    ///
    /// As [`reserve`](Self::reserve), and [`SendError::Skipped`] if the consumer skipped the
    /// record because it took this producer for dead.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::{mpsc, SendError};
    ///
    /// let (mut rx, region) = mpsc::channel(4096)?;
    /// let mut tx = region.producer()?;
    /// tx.try_send(1, b"hello")?;
    /// assert!(matches!(tx.try_send(2, &[0; 505]), Err(SendError::TooLarge { .. })));
    /// assert_eq!(rx.try_recv()?.tag, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_send(&mut self, tag: u32, data: &[u8]) -> Result<(), SendError> {
        let mut g = self.reserve(data.len())?;
        g.copy_from_slice(data);
        g.commit(tag)
    }

    /// Sends frames from `frames`, in order, while they can be claimed, and rings the
    /// consumer's doorbell once for the batch instead of once per frame. Each frame is its
    /// own claim and commit (other producers' frames may fall between them). Returns how many
    /// were sent: a prefix of `frames`. Sending the first frame not sent on its own tells why
    /// it stopped.
    ///
    /// Each frame is visible to a consumer that polls as soon as it is committed, but a
    /// consumer asleep on the doorbell is woken only when the batch ends — after the iterator
    /// has returned `None` (or a frame could not be sent). An iterator that is slow to yield
    /// delays that wake-up: hand in frames that are ready.
    ///
    /// # Errors
    ///
    /// Only when no frame was sent: as [`try_send`](Self::try_send) for the first frame.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut rx, region) = ringbell::mpsc::channel(4096)?;
    /// let mut tx = region.producer()?;
    /// let frames = [(1, &b"a"[..]), (2, &b"b"[..])];
    /// assert_eq!(tx.try_send_batch(frames), Ok(2));
    /// assert_eq!(rx.try_recv()?.tag, 1);
    /// assert_eq!(rx.try_recv()?.tag, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_send_batch<'a>(
        &mut self,
        frames: impl IntoIterator<Item = (u32, &'a [u8])>,
    ) -> Result<usize, SendError> {
        /// Rings once for whatever was committed, even if the iterator panics.
        struct RingOnDrop<'p, S: SharedMemory> {
            producer: &'p mut Producer<S>,
            sent: usize,
        }
        impl<S: SharedMemory> Drop for RingOnDrop<'_, S> {
            fn drop(&mut self) {
                if self.sent > 0 {
                    let p = &*self.producer;
                    p.waiter.ring(&p.data_bell);
                }
            }
        }
        let mut batch = RingOnDrop {
            producer: self,
            sent: 0,
        };
        for (tag, data) in frames {
            let sent = match batch.producer.reserve_inner(data.len(), true) {
                Ok(mut g) => {
                    g.copy_from_slice(data);
                    g.finish(tag, false)
                }
                Err(e) => Err(e),
            };
            match sent {
                Ok(()) => batch.sent += 1,
                Err(e) if batch.sent == 0 => return Err(e),
                Err(_) => break,
            }
        }
        Ok(batch.sent)
    }

    /// Sends one frame, waiting as long as it takes for room — or until the consumer closes
    /// (`Closed`) or its process dies (`Disconnected`, seen within a sleep slice). A frame
    /// larger than a quarter of the ring posts a reservation while it waits, so that smaller
    /// frames cannot starve it (see the [module docs](super)).
    ///
    /// # Errors
    ///
    /// As [`try_send`](Self::try_send), never `Full`; [`SendError::Disconnected`].
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut rx, region) = ringbell::mpsc::channel(256)?;
    /// let mut tx = region.producer()?;
    /// let consumer = std::thread::spawn(move || {
    ///     (0..100).map(|_| rx.recv().unwrap().tag).sum::<u32>()
    /// });
    /// for i in 0..100 {
    ///     tx.send(i, &[0; 24])?; // blocks while the small ring is full
    /// }
    /// assert_eq!(consumer.join().unwrap(), (0..100).sum());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send(&mut self, tag: u32, data: &[u8]) -> Result<(), SendError> {
        self.send_until(tag, data, Deadline::NEVER)
    }

    /// Sends one frame, waiting at most `timeout` for room.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send), and [`SendError::Timeout`] (nothing was written).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::{mpsc, SendError};
    /// use std::time::Duration;
    ///
    /// let (_rx, region) = mpsc::channel_with(&mpsc::Config::new(64).frame_cap(24))?;
    /// let mut tx = region.producer()?;
    /// tx.try_send(0, &[0; 24])?;
    /// tx.try_send(0, &[0; 24])?;
    /// let full = tx.send_timeout(0, &[0; 24], Duration::from_millis(5));
    /// assert_eq!(full, Err(SendError::Timeout));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_timeout(
        &mut self,
        tag: u32,
        data: &[u8],
        timeout: Duration,
    ) -> Result<(), SendError> {
        self.send_until(tag, data, Deadline::within(timeout))
    }

    fn send_until(
        &mut self,
        tag: u32,
        data: &[u8],
        mut deadline: Deadline,
    ) -> Result<(), SendError> {
        let size = wire::record_size(data.len()) as u64;
        let large = reservation::is_large(size, self.capacity);
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
            deadline = deadline.start();
            if deadline.passed() {
                break Err(SendError::Timeout);
            }
            if large {
                reserved |= reservation::post(&self.mem, self.slot, size);
            }
            // A posted reservation is renewed at least every half of its lifetime: this wait
            // ends by then, and the loop renews it.
            let until = match reserved {
                true => Deadline::until(
                    deadline
                        .min(Instant::now().after(Duration::from_millis(RESERVATION_TTL_MS / 2))),
                ),
                false => deadline,
            };
            let room = || self.room(data.len(), !reserved) || self.is_consumer_closed();
            let between = || {
                self.peer
                    .peer_dead(&self.mem)
                    .then_some(SendError::Disconnected)
            };
            match self
                .waiter
                .wait_sliced(&self.space_bell, room, until, between)
            {
                Ok(()) | Err(Stop::Timeout) => {}
                Err(Stop::By(e)) => break Err(e),
            }
        };
        if reserved {
            reservation::clear(&self.mem, self.slot, size);
            // Producers that held back for the reservation may go now.
            self.waiter.ring(&self.space_bell);
        }
        result
    }

    /// How blocking calls wait.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::doorbell::WaitOptions;
    ///
    /// let (_rx, region) = ringbell::mpsc::channel(4096)?;
    /// let mut tx = region.producer()?;
    /// tx.set_wait_options(WaitOptions::new().spin_budget(0));
    /// # Ok::<(), ringbell::AttachError>(())
    /// ```
    pub fn set_wait_options(&mut self, opts: WaitOptions) {
        self.waiter.set_options(opts);
    }

    /// Makes this producer's rings of the consumer's data doorbell answer its async waits
    /// ([`Consumer::poll_ready`](super::Consumer::poll_ready)) through `signal`, the
    /// consumer's readiness (in another process: its descriptor,
    /// [`ReadinessSignal::from_fd`](crate::doorbell::ReadinessSignal::from_fd)). Every
    /// producer of an async consumer needs it. `None`: plain rings.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::doorbell::Readiness;
    ///
    /// let (_rx, region) = ringbell::mpsc::channel(4096)?;
    /// let mut tx = region.producer()?;
    /// let consumers = Readiness::new()?;
    /// tx.set_peer_readiness(Some(consumers.signal()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "std")]
    pub fn set_peer_readiness(&mut self, signal: Option<crate::doorbell::ReadinessSignal>) {
        self.waiter.set_readiness(signal);
    }

    /// This producer's wake and sleep counters.
    ///
    /// # Examples
    ///
    /// ```
    /// let (_rx, region) = ringbell::mpsc::channel(4096)?;
    /// let mut tx = region.producer()?;
    /// tx.try_send(0, b"x")?;
    /// assert_eq!(tx.stats().wakes, 0); // the consumer was not asleep
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stats(&self) -> WaitStats {
        self.waiter.stats()
    }
}

impl<S: SharedMemory> Drop for Producer<S> {
    fn drop(&mut self) {
        if !fork::forked(self.fork_gen) {
            // Free the slot for another producer.
            self.registry.unregister(self.slot, self.owner);
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

/// Room for one frame in an MPSC ring, claimed by [`Producer::reserve`]. Fill it, then
/// [`commit`](Self::commit); dropping it aborts (the room becomes padding the consumer skips).
///
/// There is no `commit_len` (the SPSC grant has one): other producers' records follow this
/// one, so its size is fixed at the claim; a shorter commit would leave a hole that needs a
/// padding record written after the commit — into bytes the grant let the caller write, at a
/// moment when the commit's compare-and-swap may already have found the record skipped and
/// its space reused. Reserve the exact length (serialise first, or reserve the largest and
/// send the length inside the payload).
///
/// # Examples
///
/// ```
/// let (mut rx, region) = ringbell::mpsc::channel(4096)?;
/// let mut tx = region.producer()?;
/// let mut grant = tx.reserve(8)?;
/// grant.copy_from_slice(&42u64.to_le_bytes());
/// grant.commit(0)?;
/// assert_eq!(rx.try_recv()?.data, 42u64.to_le_bytes());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
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
    ///
    /// # Examples
    ///
    /// ```
    /// let (_rx, region) = ringbell::mpsc::channel(4096)?;
    /// let mut tx = region.producer()?;
    /// assert_eq!(tx.reserve(9)?.len(), 9);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the grant is for a zero-length frame.
    ///
    /// # Examples
    ///
    /// ```
    /// let (_rx, region) = ringbell::mpsc::channel(4096)?;
    /// let mut tx = region.producer()?;
    /// assert!(tx.reserve(0)?.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies `src` into the grant at `offset`.
    ///
    /// # Panics
    ///
    /// If `offset + src.len()` exceeds [`len`](Self::len).
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut rx, region) = ringbell::mpsc::channel(4096)?;
    /// let mut tx = region.producer()?;
    /// let mut grant = tx.reserve(4)?;
    /// grant.write_at(2, b"zz");
    /// grant.write_at(0, b"aa");
    /// grant.commit(0)?;
    /// assert_eq!(rx.try_recv()?.data, b"aazz");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn write_at(&mut self, offset: usize, src: &[u8]) {
        assert!(
            offset <= self.len && src.len() <= self.len - offset,
            "write of {} bytes at {offset} past a grant of {}",
            src.len(),
            self.len
        );
        self.producer
            .mem
            .copy_in(self.record + wire::RECORD_HEADER + offset, src);
    }

    /// Copies `src`, exactly [`len`](Self::len) bytes, into the grant.
    ///
    /// # Panics
    ///
    /// If `src.len() != self.len()`.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut rx, region) = ringbell::mpsc::channel(4096)?;
    /// let mut tx = region.producer()?;
    /// let mut grant = tx.reserve(2)?;
    /// grant.copy_from_slice(b"ok");
    /// grant.commit(0)?;
    /// assert_eq!(rx.try_recv()?.data, b"ok");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn copy_from_slice(&mut self, src: &[u8]) {
        assert_eq!(src.len(), self.len, "source length differs from the grant");
        self.producer
            .mem
            .copy_in(self.record + wire::RECORD_HEADER, src);
    }

    /// Publishes the frame with `tag`.
    ///
    /// # Errors
    ///
    /// [`SendError::Skipped`] if the consumer skipped this record, having found this producer
    /// dead: the frame was not delivered.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut rx, region) = ringbell::mpsc::channel(4096)?;
    /// let mut tx = region.producer()?;
    /// let grant = tx.reserve(0)?;
    /// grant.commit(5)?;
    /// assert_eq!(rx.try_recv()?.tag, 5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn commit(self, tag: u32) -> Result<(), SendError> {
        self.finish(tag, true)
    }

    /// Commits, then rings the data doorbell if `ring` (a batch rings once at its end).
    fn finish(mut self, tag: u32, ring: bool) -> Result<(), SendError> {
        self.done = true;
        let p = &mut *self.producer;
        p.mem.store_u32(self.record + 4, tag, Ordering::Relaxed);
        let claimed = CLAIMED | self.len as u32;
        let committed = COMMITTED | self.len as u32;
        // Release: pairs with the consumer's Acquire load of the header; payload and tag are
        // visible before the record is seen committed. A CAS, so that a record the consumer
        // skipped (taking us for dead) stays skipped and we learn it.
        let r = mutant::cas_u32(
            Mutant::MpscCommitStore,
            &p.mem,
            self.record,
            claimed,
            committed,
            Ordering::Release,
        );
        p.registry.unmark(p.slot);
        if ring {
            p.waiter.ring(&p.data_bell);
        }
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
        let size = wire::record_size(self.len);
        let _ = p.mem.cas_u32(
            self.record,
            CLAIMED | self.len as u32,
            wire::padding_word(size),
            Ordering::Release,
            Ordering::Relaxed,
        );
        p.registry.unmark(p.slot);
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
