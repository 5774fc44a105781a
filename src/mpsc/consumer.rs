//! The consumer of an MPSC ring: reading committed records in claim order, releasing (and
//! zeroing) their space, and the receiving calls. Skipping records of dead producers is in
//! `skip.rs`.

use core::fmt;
use core::time::Duration;

use super::config::DEFAULT_STALL_TIMEOUT;
use super::registry::Registry;
use crate::clock::{Deadline, Instant};
use crate::doorbell::{Line, WaitOptions, WaitStats, Waiter};
use crate::error::{AttachError, Corruption, RecvError};
use crate::fork;
use crate::header::{self, Geometry};
use crate::liveness::{Liveness, NeverDead};
use crate::mem::Mem;
use crate::mutant::{self, Mutant};
use crate::region::{Admits, Mpsc, SharedMemory};
use crate::role::{self, OwnerId};
use crate::space::SpaceWaker;
use crate::sync::Ordering;
use crate::wire::{
    self, CLAIMED, COMMITTED, CONSUMER_OWNER_OFF, DATA_BELL_OFF, HEADER_SIZE, LEN_MASK,
    MPSC_LEN_MASK, PADDING, READ_POS_OFF, RingKind, SPACE_BELL_OFF, WRITE_POS_OFF,
};

/// What the consumer found at its position.
enum Head {
    /// A committed record: payload offset (in the mapping), length, tag, record size.
    Record(Rec),
    /// Padding of `size` bytes to release.
    Padding(usize),
    /// Nothing published.
    Empty,
    /// A record claimed but not committed yet.
    Pending,
}

/// A committed record at the consumer's position.
#[derive(Clone, Copy, Debug)]
struct Rec {
    /// Offset of the payload in the mapping.
    off: usize,
    len: usize,
    tag: u32,
    /// Bytes the record occupies, header included.
    size: usize,
}

/// The consumer of an MPSC ring; `L` tells it which producers died (see
/// [`Liveness`](super::Liveness)), so that their stuck records can be skipped.
///
/// Dropping it closes the consumer role: producers' later sends fail with
/// [`SendError::Closed`](crate::SendError::Closed). `Send`, not `Sync`.
///
/// # Examples
///
/// ```
/// let (mut rx, region) = ringbell::mpsc::channel(4096)?;
/// let mut tx = region.producer()?;
/// tx.try_send(1, b"one")?;
/// assert_eq!(rx.try_recv()?.data, b"one");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Consumer<S: SharedMemory, L: Liveness = NeverDead> {
    pub(super) mem: Mem,
    pub(super) geo: Geometry,
    mask: u64,
    /// Our released position; only we write `READ_POS`. Ahead of `published` inside a batch.
    pub(super) read: u64,
    /// The position last stored to `READ_POS`.
    published: u64,
    owner: OwnerId,
    /// The fork generation it attached in: a copy inherited by a forked child neither acts
    /// nor closes the role.
    fork_gen: u32,
    pub(super) liveness: L,
    pub(super) registry: Registry,
    pub(super) stall_timeout: Duration,
    /// The position we are stuck at, and since when.
    pub(super) stalled: Option<(u64, Instant)>,
    /// The claim position we last read: never behind `read`, at most a capacity ahead.
    pub(super) seen_claim: u64,
    /// When to ring the space doorbell (see [`crate::space`]).
    space: SpaceWaker,
    /// When the registry was last swept for dead producers.
    last_sweep: Instant,
    pub(super) skipped: u64,
    data_bell: Line,
    space_bell: Line,
    /// Wait options, adaptive spin state, counters.
    waiter: Waiter,
    shm: S,
}

impl<S: SharedMemory, L: Liveness> Consumer<S, L>
where
    S::Kind: Admits<Mpsc>,
{
    /// Claims the consumer role of the MPSC ring in `shm` for `owner`; stuck records are
    /// skipped when `liveness` says their producer is dead.
    ///
    /// # Errors
    ///
    /// [`AttachError::Header`], [`AttachError::RoleTaken`], [`AttachError::RoleClosed`],
    /// [`AttachError::Corrupt`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::region::HeapRegion;
    /// use ringbell::{mpsc, AttachError, OwnerId};
    ///
    /// let region = HeapRegion::new(&mpsc::Config::new(4096))?;
    /// let rx = mpsc::Consumer::attach(region.clone(), OwnerId::new(1).unwrap(), mpsc::NeverDead)?;
    /// let again = mpsc::Consumer::attach(region, OwnerId::new(2).unwrap(), mpsc::NeverDead);
    /// assert_eq!(again.map(drop), Err(AttachError::RoleTaken { owner: 1 }));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn attach(shm: S, owner: OwnerId, liveness: L) -> Result<Self, AttachError> {
        let mem = shm.mem();
        let geo = header::validate(&mem, RingKind::Mpsc)?;
        let fences = geo.usable_fences()?;
        role::claim(&mem, CONSUMER_OWNER_OFF, owner)?;
        let read = mem.load_u64(READ_POS_OFF, Ordering::Acquire);
        let claim = mem.load_u64(WRITE_POS_OFF, Ordering::Acquire);
        if let Err(c) = header::check_positions(claim, read, geo.capacity) {
            role::unclaim(&mem, CONSUMER_OWNER_OFF, owner);
            return Err(AttachError::Corrupt(c));
        }
        Ok(Self {
            mem,
            geo,
            mask: geo.mask(),
            read,
            published: read,
            owner,
            fork_gen: fork::generation(),
            liveness,
            registry: Registry::new(mem, &geo),
            stall_timeout: DEFAULT_STALL_TIMEOUT,
            stalled: None,
            seen_claim: claim,
            space: SpaceWaker::new(geo.capacity, read),
            last_sweep: Instant::now(),
            skipped: 0,
            data_bell: Line::at(mem, DATA_BELL_OFF, fences),
            space_bell: Line::at(mem, SPACE_BELL_OFF, fences),
            waiter: Waiter::new(WaitOptions::default()),
            shm,
        })
    }

    /// Claims the consumer role with a fresh [`OwnerId::unique`].
    ///
    /// # Errors
    ///
    /// As [`attach`](Self::attach).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::region::HeapRegion;
    /// use ringbell::mpsc;
    ///
    /// let region = HeapRegion::new(&mpsc::Config::new(4096))?;
    /// let rx = region.consumer(mpsc::PidfdLiveness::new())?;
    /// assert_eq!(rx.skipped(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "std")]
    #[cfg_attr(loom, allow(dead_code))] // the regions that call it are not built under loom
    pub(crate) fn new(shm: S, liveness: L) -> Result<Self, AttachError> {
        Self::attach(shm, OwnerId::unique(), liveness)
    }
}

impl<S: SharedMemory, L: Liveness> Consumer<S, L> {
    /// How long a record may stay uncommitted before the consumer asks whether its producer
    /// is dead (default [`DEFAULT_STALL_TIMEOUT`](super::DEFAULT_STALL_TIMEOUT)).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let (mut rx, _region) = ringbell::mpsc::channel(4096)?;
    /// rx.set_stall_timeout(Duration::from_millis(20));
    /// # Ok::<(), ringbell::AttachError>(())
    /// ```
    pub fn set_stall_timeout(&mut self, timeout: Duration) {
        self.stall_timeout = timeout;
    }

    /// Records skipped because their producer died (each one a frame that was not
    /// delivered; its producer, if it comes back, learns it as
    /// [`SendError::Skipped`](crate::SendError::Skipped)). A dead claim that wrapped is two
    /// skipped regions and counts twice: the count errs high, never low.
    ///
    /// # Examples
    ///
    /// ```
    /// let (rx, _region) = ringbell::mpsc::channel(4096)?;
    /// assert_eq!(rx.skipped(), 0);
    /// # Ok::<(), ringbell::AttachError>(())
    /// ```
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// The ring's frame cap: no valid frame is longer.
    ///
    /// # Examples
    ///
    /// ```
    /// let (rx, _region) = ringbell::mpsc::channel(4096)?;
    /// assert_eq!(rx.max_frame(), 504);
    /// # Ok::<(), ringbell::AttachError>(())
    /// ```
    pub fn max_frame(&self) -> usize {
        self.geo.frame_cap
    }

    /// The fence mode of the ring's doorbells, as its header names it ([`Fences`](crate::doorbell::Fences)).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::doorbell::Fences;
    ///
    /// let (rx, _region) = ringbell::mpsc::channel(4096)?;
    /// assert_eq!(rx.fences(), Fences::default_for_new_regions());
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
    /// let (rx, _region) = ringbell::mpsc::channel(4096)?;
    /// assert_eq!(rx.capacity(), 4096);
    /// # Ok::<(), ringbell::AttachError>(())
    /// ```
    pub fn capacity(&self) -> usize {
        self.geo.capacity
    }

    /// Bytes claimed by producers and not yet received — records being written included —
    /// at most [`capacity`](Self::capacity). A snapshot.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut rx, region) = ringbell::mpsc::channel(4096)?;
    /// let mut tx = region.producer()?;
    /// tx.try_send(0, &[0; 8])?;
    /// assert_eq!(rx.len(), 16);
    /// rx.try_recv()?;
    /// assert_eq!(rx.len(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn len(&self) -> usize {
        let claim = self.mem.load_u64(WRITE_POS_OFF, Ordering::Relaxed);
        claim.wrapping_sub(self.read).min(self.geo.capacity as u64) as usize
    }

    /// Whether nothing is claimed and unreceived ([`len`](Self::len) is 0). A snapshot.
    ///
    /// # Examples
    ///
    /// ```
    /// let (rx, _region) = ringbell::mpsc::channel(4096)?;
    /// assert!(rx.is_empty());
    /// # Ok::<(), ringbell::AttachError>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The memory this consumer reads.
    ///
    /// # Examples
    ///
    /// ```
    /// let (rx, _region) = ringbell::mpsc::channel(4096)?;
    /// assert_eq!(rx.shared_memory().len(), 1024 + 4096 + 64 * 32);
    /// # Ok::<(), ringbell::AttachError>(())
    /// ```
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
            let size = len + wire::RECORD_HEADER;
            if len % wire::ALIGN != 0 || size > cap - off || size as u64 > avail {
                return Err(corrupt);
            }
            return Ok(Head::Padding(size));
        }
        if len > self.geo.frame_cap {
            return Err(corrupt);
        }
        let size = wire::record_size(len);
        if size > cap - off || size as u64 > avail {
            return Err(corrupt);
        }
        let tag = self.mem.load_u32(at + 4, Ordering::Relaxed);
        Ok(Head::Record(Rec {
            off: at + wire::RECORD_HEADER,
            len,
            tag,
            size,
        }))
    }

    /// Whether a frame can be received now: a pure peek, changing nothing.
    ///
    /// Padding ahead is looked through; a record still being written counts as no data.
    /// `true` stays true until this consumer receives (a committed record cannot go away);
    /// corruption also counts as `true`, so that the next receive reports it. `false` may go
    /// stale at any moment.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut rx, region) = ringbell::mpsc::channel(4096)?;
    /// let mut tx = region.producer()?;
    /// assert!(!rx.has_data());
    /// let grant = tx.reserve(4)?;
    /// assert!(!rx.has_data()); // claimed, not committed
    /// grant.commit(0)?;
    /// assert!(rx.has_data());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn has_data(&self) -> bool {
        if fork::forked(self.fork_gen) {
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
            let size = len + wire::RECORD_HEADER;
            if len % wire::ALIGN != 0 || size > cap - off || size as u64 > avail {
                return true;
            }
            pos = pos.wrapping_add(size as u64);
        }
    }

    /// Zeroes every possible header word of `size` bytes at our position and moves past
    /// them, without publishing: a batch publishes once, at its end.
    fn release_local(&mut self, size: usize) {
        let start = (self.read & self.mask) as usize;
        if mutant::keep(Mutant::MpscNoZero) {
            for off in (start..start + size).step_by(wire::ALIGN) {
                self.mem.store_u32(HEADER_SIZE + off, 0, Ordering::Relaxed);
            }
        }
        self.read = self.read.wrapping_add(size as u64);
        self.stalled = None;
    }

    /// Publishes the released position, then rings the space doorbell as [`crate::space`]
    /// says.
    fn publish_release(&mut self) {
        self.published = self.read;
        // Release: the zeroing and our reads happen before a producer reuses the space.
        self.mem
            .store_u64(READ_POS_OFF, self.read, Ordering::Release);
        let caught_up = self.read == self.seen_claim && mutant::keep(Mutant::MpscNoCatchUpRing);
        self.space
            .released(self.read, caught_up, &self.waiter, &self.space_bell);
    }

    /// Zeroes and releases `size` bytes at our position.
    pub(super) fn release(&mut self, size: usize) {
        self.release_local(size);
        self.publish_release();
    }

    /// Rings the space doorbell if space was freed since the last ring: for a receive about
    /// to stop short of catching up (a record still being written, a buffer too small).
    #[cold]
    fn announce_space(&mut self) {
        self.space
            .announce(self.published, &self.waiter, &self.space_bell);
    }

    /// Finds the next committed frame, releasing padding, or says why there is none.
    fn next(&mut self) -> Result<Rec, RecvError> {
        if fork::forked(self.fork_gen) {
            return Err(RecvError::Forked);
        }
        // Bounded: each round either returns or releases at least 8 bytes of padding, and
        // there are at most `capacity / 8` such bytes published.
        for _ in 0..=self.geo.capacity / 8 {
            match self.head().map_err(RecvError::Corrupt)? {
                Head::Record(rec) => return Ok(rec),
                Head::Padding(size) => self.release(size),
                Head::Empty => {
                    // Space a batch took but did not free (its callback panicked): free it.
                    if self.published != self.read {
                        self.publish_release();
                    }
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
                    // far must not wait for the record ahead to be committed. That includes
                    // space a batch (this one, or one whose callback panicked) has not yet
                    // published.
                    if self.published != self.read {
                        self.publish_release();
                    }
                    self.announce_space();
                    return Err(RecvError::Empty);
                }
            }
        }
        Err(RecvError::Empty)
    }

    /// Borrows the next frame in place; it is released (and its header zeroed) when the
    /// guard drops.
    ///
    /// # Errors
    ///
    /// [`RecvError::Empty`] (also while the next record is still being written);
    /// [`RecvError::Forked`]; [`RecvError::Corrupt`].
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut rx, region) = ringbell::mpsc::channel(4096)?;
    /// let mut tx = region.producer()?;
    /// tx.try_send(3, b"in place")?;
    /// let frame = rx.try_read()?;
    /// assert_eq!((frame.tag(), frame.len()), (3, 8));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_read(&mut self) -> Result<ReadGuard<'_, S, L>, RecvError> {
        let rec = self.next()?;
        Ok(ReadGuard {
            consumer: self,
            rec,
        })
    }

    /// Copies the next frame into `buf` and releases it; returns its tag and length.
    ///
    /// # Errors
    ///
    /// As [`try_read`](Self::try_read), and [`RecvError::BufferTooSmall`] (the frame stays).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::RecvError;
    ///
    /// let (mut rx, region) = ringbell::mpsc::channel(4096)?;
    /// let mut tx = region.producer()?;
    /// tx.try_send(2, b"abc")?;
    /// let mut small = [0u8; 2];
    /// assert_eq!(rx.try_recv_into(&mut small), Err(RecvError::BufferTooSmall { needed: 3 }));
    /// let mut buf = [0u8; 8];
    /// assert_eq!(rx.try_recv_into(&mut buf), Ok((2, 3)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_recv_into(&mut self, buf: &mut [u8]) -> Result<(u32, usize), RecvError> {
        let rec = self.next()?;
        let Some(dst) = buf.get_mut(..rec.len) else {
            self.announce_space();
            return Err(RecvError::BufferTooSmall { needed: rec.len });
        };
        self.mem.copy_out(rec.off, dst);
        self.release(rec.size);
        Ok((rec.tag, rec.len))
    }

    /// Receives up to `max` frames, copying each into `buf` and handing it to `f` with its
    /// tag, then publishes their release together: one position store and at most one
    /// doorbell ring for the batch. If `f` panics, the frames before it and the one it was
    /// given count as received; their space is freed when the ring next looks empty.
    ///
    /// # Errors
    ///
    /// Only when no frame was received: as [`try_recv_into`](Self::try_recv_into).
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut rx, region) = ringbell::mpsc::channel(4096)?;
    /// let mut tx = region.producer()?;
    /// for i in 0..4 {
    ///     tx.try_send(i, b"x")?;
    /// }
    /// let mut buf = [0u8; 8];
    /// let mut tags = Vec::new();
    /// assert_eq!(rx.try_recv_batch_into(&mut buf, 10, |tag, _| tags.push(tag)), Ok(4));
    /// assert_eq!(tags, [0, 1, 2, 3]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_recv_batch_into(
        &mut self,
        buf: &mut [u8],
        max: usize,
        mut f: impl FnMut(u32, &[u8]),
    ) -> Result<usize, RecvError> {
        let mut got = 0;
        let mut short = false;
        while got < max {
            let rec = match self.next() {
                Ok(rec) => rec,
                Err(e) if got == 0 => return Err(e),
                Err(_) => break,
            };
            let Some(dst) = buf.get_mut(..rec.len) else {
                if got == 0 {
                    self.announce_space();
                    return Err(RecvError::BufferTooSmall { needed: rec.len });
                }
                short = true;
                break;
            };
            self.mem.copy_out(rec.off, dst);
            // Past the record locally (before `f`: a panicking `f` has still had it); the
            // shared position is stored once, below.
            self.release_local(rec.size);
            got += 1;
            f(rec.tag, dst);
        }
        // An empty ring or a record still being written, met mid-batch, has already
        // published (`next`).
        if self.published != self.read {
            self.publish_release();
        }
        if short {
            // Stopped short of catching up: a producer waiting for the space must not be
            // left to its sleep slice.
            self.announce_space();
        }
        Ok(got)
    }

    /// Receives the next frame into `buf`, waiting as long as it takes. While a record is
    /// stuck, the wait wakes when its stall timeout expires to examine it.
    ///
    /// # Errors
    ///
    /// As [`try_recv_into`](Self::try_recv_into), never `Empty`.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut rx, region) = ringbell::mpsc::channel(4096)?;
    /// let mut tx = region.producer()?;
    /// std::thread::spawn(move || tx.send(4, b"soon").unwrap());
    /// let mut buf = [0u8; 8];
    /// assert_eq!(rx.recv_into(&mut buf)?, (4, 4));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_into(&mut self, buf: &mut [u8]) -> Result<(u32, usize), RecvError> {
        self.recv_into_until(buf, Deadline::NEVER)
    }

    /// Receives the next frame into `buf`, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// As [`recv_into`](Self::recv_into), and [`RecvError::Timeout`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::RecvError;
    /// use std::time::Duration;
    ///
    /// let (mut rx, _region) = ringbell::mpsc::channel(4096)?;
    /// let mut buf = [0u8; 8];
    /// assert_eq!(rx.recv_into_timeout(&mut buf, Duration::from_millis(2)), Err(RecvError::Timeout));
    /// # Ok::<(), ringbell::AttachError>(())
    /// ```
    pub fn recv_into_timeout(
        &mut self,
        buf: &mut [u8],
        timeout: Duration,
    ) -> Result<(u32, usize), RecvError> {
        self.recv_into_until(buf, Deadline::within(timeout))
    }

    fn recv_into_until(
        &mut self,
        buf: &mut [u8],
        mut deadline: Deadline,
    ) -> Result<(u32, usize), RecvError> {
        loop {
            match self.try_recv_into(buf) {
                Err(RecvError::Empty) => {
                    deadline = deadline.start();
                    self.wait_for_data(deadline)?;
                }
                done => return done,
            }
        }
    }

    /// The async waiter's step on the consumer's data doorbell ([doorbell](crate::doorbell),
    /// "Async waits"): drains `readiness`, announces, re-checks for a frame (or a stall to
    /// start timing or to examine). [`Announced::Wait`](crate::doorbell::Announced::Wait):
    /// wait until `readiness` is readable — but while a record stalls, no longer than its
    /// stall timeout — then try again. Every producer must ring with this readiness's signal
    /// ([`Producer::set_peer_readiness`](super::Producer::set_peer_readiness)), or its rings
    /// do not reach the wait. Try to receive first: this always pays the announcement.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::doorbell::{Announced, Readiness};
    /// use std::time::Duration;
    ///
    /// let (mut rx, region) = ringbell::mpsc::channel(4096)?;
    /// let mut tx = region.producer()?;
    /// let readiness = Readiness::new()?;
    /// tx.set_peer_readiness(Some(readiness.signal()));
    /// assert_eq!(rx.poll_ready(&readiness), Announced::Wait);
    /// tx.send(3, b"hi")?;
    /// assert!(readiness.wait_timeout(Duration::from_secs(1)));
    /// assert_eq!(rx.try_recv()?.tag, 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "std")]
    pub fn poll_ready(&self, readiness: &crate::doorbell::Readiness) -> crate::doorbell::Announced {
        self.waiter.count_sleep();
        self.data_bell.announce_async(readiness, || self.ready())
    }

    /// How long until the record the consumer waits on counts as stalled (the async end
    /// wakes then to examine it); `None` if none is being timed.
    #[cfg(feature = "tokio")]
    pub(crate) fn stall_left(&self) -> Option<Duration> {
        self.stalled
            .filter(|(pos, _)| *pos == self.read)
            .map(|(_, since)| {
                let now = Instant::now();
                since.after(self.stall_timeout).since(now)
            })
    }

    /// How blocking calls wait (for the async end's slices).
    #[cfg(feature = "tokio")]
    pub(crate) fn wait_options(&self) -> WaitOptions {
        self.waiter.options()
    }

    /// Waits until the next receive has something to do — a frame, or a stall to start
    /// timing or to examine — or `deadline` passes.
    fn wait_for_data(&self, deadline: Deadline) -> Result<(), RecvError> {
        let stall_at = self
            .stalled
            .filter(|(pos, _)| *pos == self.read)
            .map(|(_, since)| since.after(self.stall_timeout));
        let wake_at = match (deadline.at(), stall_at) {
            (Some(d), Some(s)) => Some(d.min(s)),
            (d, s) => d.or(s),
        };
        let r = self.waiter.wait(&self.data_bell, || self.ready(), wake_at);
        if r.is_err() && deadline.passed() {
            return Err(RecvError::Timeout);
        }
        Ok(())
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

    /// How blocking calls wait.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::doorbell::WaitOptions;
    ///
    /// let (mut rx, _region) = ringbell::mpsc::channel(4096)?;
    /// rx.set_wait_options(WaitOptions::new().spin_budget(0));
    /// # Ok::<(), ringbell::AttachError>(())
    /// ```
    pub fn set_wait_options(&mut self, opts: WaitOptions) {
        self.waiter.set_options(opts);
    }

    /// This consumer's wake and sleep counters.
    ///
    /// # Examples
    ///
    /// ```
    /// let (rx, _region) = ringbell::mpsc::channel(4096)?;
    /// assert_eq!(rx.stats().sleeps, 0);
    /// # Ok::<(), ringbell::AttachError>(())
    /// ```
    pub fn stats(&self) -> WaitStats {
        self.waiter.stats()
    }
}

#[cfg(feature = "std")]
impl<S: SharedMemory, L: Liveness> Consumer<S, L> {
    /// Receives the next frame into a new [`Frame`](crate::Frame) sized to it.
    ///
    /// # Errors
    ///
    /// As [`try_recv_into`](Self::try_recv_into), without `BufferTooSmall`.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::RecvError;
    ///
    /// let (mut rx, region) = ringbell::mpsc::channel(4096)?;
    /// let mut tx = region.producer()?;
    /// assert_eq!(rx.try_recv(), Err(RecvError::Empty));
    /// tx.try_send(1, b"x")?;
    /// assert_eq!(rx.try_recv()?.data, b"x");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_recv(&mut self) -> Result<crate::Frame, RecvError> {
        let rec = self.next()?;
        let mut data = std::vec![0u8; rec.len];
        self.mem.copy_out(rec.off, &mut data);
        self.release(rec.size);
        Ok(crate::Frame { tag: rec.tag, data })
    }

    /// Receives the next frame, waiting as long as it takes (a stuck record is examined at
    /// each stall timeout). The frame's buffer is sized to the frame.
    ///
    /// # Errors
    ///
    /// [`RecvError::Forked`]; [`RecvError::Corrupt`].
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut rx, region) = ringbell::mpsc::channel(4096)?;
    /// let mut tx = region.producer()?;
    /// std::thread::spawn(move || tx.send(1, b"later").unwrap());
    /// assert_eq!(rx.recv()?.data, b"later");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv(&mut self) -> Result<crate::Frame, RecvError> {
        self.recv_until(Deadline::NEVER)
    }

    /// Receives the next frame, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`RecvError::Timeout`]; as [`recv`](Self::recv).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::RecvError;
    /// use std::time::Duration;
    ///
    /// let (mut rx, _region) = ringbell::mpsc::channel(4096)?;
    /// assert_eq!(rx.recv_timeout(Duration::from_millis(2)), Err(RecvError::Timeout));
    /// # Ok::<(), ringbell::AttachError>(())
    /// ```
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<crate::Frame, RecvError> {
        self.recv_until(Deadline::within(timeout))
    }

    fn recv_until(&mut self, mut deadline: Deadline) -> Result<crate::Frame, RecvError> {
        loop {
            match self.try_recv() {
                Err(RecvError::Empty) => {
                    deadline = deadline.start();
                    self.wait_for_data(deadline)?;
                }
                done => return done,
            }
        }
    }

    /// An iterator over the frames that can be received now, without waiting: it ends at
    /// [`RecvError::Empty`]; any other error is yielded once, then it ends.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut rx, region) = ringbell::mpsc::channel(4096)?;
    /// let mut tx = region.producer()?;
    /// tx.try_send(1, b"a")?;
    /// tx.try_send(2, b"b")?;
    /// assert_eq!(rx.try_iter().count(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_iter(&mut self) -> TryIter<'_, S, L> {
        TryIter {
            consumer: self,
            done: false,
        }
    }

    /// An iterator that receives frames, waiting for each. MPSC producers never close the
    /// ring, so it ends only with an error (yielded once) — [`RecvError::Corrupt`], say;
    /// stop it yourself (`take`, `take_while`).
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut rx, region) = ringbell::mpsc::channel(4096)?;
    /// let mut tx = region.producer()?;
    /// std::thread::spawn(move || for i in 0..5 { tx.send(i, b"x").unwrap() });
    /// let tags: Vec<u32> = rx.iter().take(5).map(|f| f.unwrap().tag).collect();
    /// assert_eq!(tags, [0, 1, 2, 3, 4]);
    /// # Ok::<(), ringbell::AttachError>(())
    /// ```
    pub fn iter(&mut self) -> Iter<'_, S, L> {
        Iter {
            consumer: self,
            done: false,
        }
    }
}

impl<S: SharedMemory, L: Liveness> Drop for Consumer<S, L> {
    fn drop(&mut self) {
        if !fork::forked(self.fork_gen) {
            if self.published != self.read {
                self.publish_release();
            }
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

/// A received frame, still in the ring; released (and its header zeroed) when dropped.
///
/// # Examples
///
/// ```
/// let (mut rx, region) = ringbell::mpsc::channel(4096)?;
/// let mut tx = region.producer()?;
/// tx.try_send(0, b"guarded")?;
/// let guard = rx.try_read()?;
/// assert_eq!(guard.to_vec(), b"guarded");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "dropping a read guard frees the frame unread"]
pub struct ReadGuard<'a, S: SharedMemory, L: Liveness = NeverDead> {
    consumer: &'a mut Consumer<S, L>,
    rec: Rec,
}

impl<S: SharedMemory, L: Liveness> ReadGuard<'_, S, L> {
    /// The frame's tag.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut rx, region) = ringbell::mpsc::channel(4096)?;
    /// let mut tx = region.producer()?;
    /// tx.try_send(11, b"")?;
    /// assert_eq!(rx.try_read()?.tag(), 11);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn tag(&self) -> u32 {
        self.rec.tag
    }

    /// The frame's payload length.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut rx, region) = ringbell::mpsc::channel(4096)?;
    /// let mut tx = region.producer()?;
    /// tx.try_send(0, b"four")?;
    /// assert_eq!(rx.try_read()?.len(), 4);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn len(&self) -> usize {
        self.rec.len
    }

    /// Whether the payload is empty.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut rx, region) = ringbell::mpsc::channel(4096)?;
    /// let mut tx = region.producer()?;
    /// tx.try_send(0, b"")?;
    /// assert!(rx.try_read()?.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.rec.len == 0
    }

    /// Copies payload bytes starting at `offset` into `dst`.
    ///
    /// # Panics
    ///
    /// If `offset + dst.len()` exceeds [`len`](Self::len).
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut rx, region) = ringbell::mpsc::channel(4096)?;
    /// let mut tx = region.producer()?;
    /// tx.try_send(0, b"abcdef")?;
    /// let guard = rx.try_read()?;
    /// let mut tail = [0u8; 2];
    /// guard.read_at(4, &mut tail);
    /// assert_eq!(&tail, b"ef");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn read_at(&self, offset: usize, dst: &mut [u8]) {
        assert!(
            offset <= self.rec.len && dst.len() <= self.rec.len - offset,
            "read of {} bytes at {offset} past a frame of {}",
            dst.len(),
            self.rec.len
        );
        self.consumer.mem.copy_out(self.rec.off + offset, dst);
    }

    /// Copies the payload into a new `Vec`.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut rx, region) = ringbell::mpsc::channel(4096)?;
    /// let mut tx = region.producer()?;
    /// tx.try_send(0, b"vec")?;
    /// assert_eq!(rx.try_read()?.to_vec(), b"vec");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "std")]
    pub fn to_vec(&self) -> std::vec::Vec<u8> {
        let mut v = std::vec![0u8; self.rec.len];
        self.consumer.mem.copy_out(self.rec.off, &mut v);
        v
    }
}

impl<S: SharedMemory, L: Liveness> Drop for ReadGuard<'_, S, L> {
    fn drop(&mut self) {
        self.consumer.release(self.rec.size);
    }
}

impl<S: SharedMemory, L: Liveness> fmt::Debug for ReadGuard<'_, S, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("mpsc::ReadGuard")
            .field("tag", &self.rec.tag)
            .field("len", &self.rec.len)
            .finish()
    }
}

/// The frames that can be received now; see [`Consumer::try_iter`].
///
/// # Examples
///
/// ```
/// let (mut rx, region) = ringbell::mpsc::channel(4096)?;
/// region.producer()?.try_send(0, b"a")?;
/// let it: ringbell::mpsc::TryIter<'_, _> = rx.try_iter();
/// assert_eq!(it.count(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg(feature = "std")]
pub struct TryIter<'a, S: SharedMemory, L: Liveness = NeverDead> {
    consumer: &'a mut Consumer<S, L>,
    done: bool,
}

#[cfg(feature = "std")]
impl<S: SharedMemory, L: Liveness> Iterator for TryIter<'_, S, L> {
    type Item = Result<crate::Frame, RecvError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.consumer.try_recv() {
            Ok(f) => Some(Ok(f)),
            Err(RecvError::Empty) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(feature = "std")]
impl<S: SharedMemory, L: Liveness> core::iter::FusedIterator for TryIter<'_, S, L> {}

#[cfg(feature = "std")]
impl<S: SharedMemory, L: Liveness> fmt::Debug for TryIter<'_, S, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("mpsc::TryIter").finish_non_exhaustive()
    }
}

/// Frames as they arrive; see [`Consumer::iter`].
///
/// # Examples
///
/// ```
/// let (mut rx, region) = ringbell::mpsc::channel(4096)?;
/// region.producer()?.try_send(0, b"a")?;
/// let mut it: ringbell::mpsc::Iter<'_, _> = rx.iter();
/// assert_eq!(it.next().unwrap()?.data, b"a");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg(feature = "std")]
pub struct Iter<'a, S: SharedMemory, L: Liveness = NeverDead> {
    consumer: &'a mut Consumer<S, L>,
    done: bool,
}

#[cfg(feature = "std")]
impl<S: SharedMemory, L: Liveness> Iterator for Iter<'_, S, L> {
    type Item = Result<crate::Frame, RecvError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.consumer.recv() {
            Ok(f) => Some(Ok(f)),
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(feature = "std")]
impl<S: SharedMemory, L: Liveness> core::iter::FusedIterator for Iter<'_, S, L> {}

#[cfg(feature = "std")]
impl<S: SharedMemory, L: Liveness> fmt::Debug for Iter<'_, S, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("mpsc::Iter").finish_non_exhaustive()
    }
}
