//! The reading end of an SPSC ring, the guard that reads a frame in place, and the
//! receiving iterators.

use core::fmt;
use core::time::Duration;

use crate::clock::Deadline;
use crate::doorbell::{Line, Notifier, Stop, WaitOptions, WaitStats, Waiter, bell_of};
use crate::error::{AttachError, Corruption, RecvError};
use crate::fork;
use crate::header::{self, check_positions};
use crate::liveness::PeerWatch;
use crate::mem::Mem;
use crate::mutant::{self, Mutant};
use crate::region::{Admits, Bell, SharedMemory, Spsc};
use crate::role::{self, OwnerId};
use crate::space::SpaceWaker;
use crate::sync::Ordering;
use crate::wire::{
    self, CONSUMER_OWNER_OFF, DATA_BELL_OFF, Decoded, HEADER_SIZE, PRODUCER_OWNER_OFF,
    READ_POS_OFF, RingKind, SPACE_BELL_OFF, WRITE_POS_OFF, payload_off,
};

/// A cache line, for the consumer's prefetches.
const LINE: u64 = 64;

/// How far past the record being read the consumer prefetches (see
/// `Consumer::prefetch_ahead`); measured best among 128 B–4 KiB for 64-byte frames.
const PREFETCH_AHEAD: usize = 1024;

/// Where the next record is, once validated.
#[derive(Clone, Copy, Debug)]
struct Rec {
    /// Data-area offset of the header.
    off: usize,
    len: usize,
    tag: u32,
}

/// The reading end of an SPSC ring over memory `S`; `B` is the memory of a shared space
/// doorbell (a channel server's bell region) if the ring rings one, else unused.
///
/// Dropping it closes the consumer role for good: the producer's later sends fail with
/// [`SendError::Closed`](crate::SendError::Closed). It is `Send` but not `Sync`: one thread
/// uses it at a time.
///
/// # Examples
///
/// ```
/// let (mut tx, mut rx) = ringbell::spsc::channel(4096)?;
/// tx.try_send(7, b"frame")?;
/// let frame = rx.try_recv()?;
/// assert_eq!((frame.tag, frame.data.as_slice()), (7, &b"frame"[..]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Consumer<S: SharedMemory, B: SharedMemory = S> {
    mem: Mem,
    /// Data-area capacity, from the geometry validated at attach; never re-read.
    capacity: usize,
    /// `capacity - 1`.
    mask: u64,
    /// Largest payload a valid record carries.
    frame_cap: usize,
    /// Our position: one past the last byte we released. Only we write `READ_POS`.
    read: u64,
    /// Last validated value of the producer's `WRITE_POS`; `cached_write - read <= capacity`.
    cached_write: u64,
    /// The position last stored to `READ_POS`: behind `read` only inside a batch (or after a
    /// batch whose callback panicked, until the ring next looks empty or a frame is freed).
    published: u64,
    /// When to ring the space doorbell (see [`crate::space`]).
    space: SpaceWaker,
    owner: OwnerId,
    /// The fork generation it attached in: a copy inherited by a forked child neither acts
    /// nor closes the role.
    fork_gen: u32,
    /// Waited on while the ring is empty.
    data_bell: Line,
    /// Rung when we free space (see `release`).
    space_bell: Line,
    /// Notices a producer whose process died without closing (checked between sleeps).
    peer: PeerWatch,
    /// Wait options, adaptive spin state, counters.
    waiter: Waiter,
    /// Keeps a shared space doorbell (a channel server's) alive.
    _bell: Option<B>,
    /// Keeps the memory behind `mem` alive.
    shm: S,
}

impl<S: SharedMemory> Consumer<S>
where
    S::Kind: Admits<Spsc>,
{
    /// Claims the consumer role of the ring in `shm` for `owner`.
    ///
    /// # Errors
    ///
    /// As [`Producer::attach`](super::Producer::attach).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::region::HeapRegion;
    /// use ringbell::{spsc, AttachError, OwnerId};
    ///
    /// let region = HeapRegion::new(&spsc::Config::new(4096))?;
    /// let rx = spsc::Consumer::attach(region.clone(), OwnerId::new(1).unwrap())?;
    /// drop(rx); // closes the role for good
    /// let again = spsc::Consumer::attach(region, OwnerId::new(2).unwrap());
    /// assert_eq!(again.map(drop), Err(AttachError::RoleClosed));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn attach(shm: S, owner: OwnerId) -> Result<Self, AttachError> {
        Self::attach_with(shm, owner, false, None)
    }

    /// Claims the consumer role with a fresh [`OwnerId::unique`] (which carries this
    /// process's id, so that the producer's blocking calls notice this process's death).
    ///
    /// # Errors
    ///
    /// As [`attach`](Self::attach).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::region::HeapRegion;
    /// use ringbell::spsc;
    ///
    /// let region = HeapRegion::new(&spsc::Config::new(4096))?;
    /// let rx = region.consumer()?;
    /// assert!(!rx.has_data());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "std")]
    #[cfg_attr(loom, allow(dead_code))] // the regions that call it are not built under loom
    pub(crate) fn new(shm: S) -> Result<Self, AttachError> {
        Self::attach(shm, OwnerId::unique())
    }
}

impl<S: SharedMemory, B: SharedMemory> Consumer<S, B>
where
    S::Kind: Admits<Spsc>,
    B::Kind: Admits<Bell>,
{
    /// Claims the consumer role of a ring created with
    /// [`Config::shared_space_bell`](super::Config::shared_space_bell): each release rings
    /// the doorbell in the bell region `bell` (the producer's) instead of the ring's own.
    ///
    /// # Errors
    ///
    /// As [`attach`](Consumer::attach); [`AttachError::WrongBell`] if the ring was not made
    /// so; [`AttachError::Header`] if `bell` is not a valid bell region.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::doorbell::BellConfig;
    /// use ringbell::region::HeapRegion;
    /// use ringbell::{spsc, OwnerId};
    ///
    /// let bell = HeapRegion::new(&BellConfig)?;
    /// let ring = HeapRegion::new(&spsc::Config::new(1024).shared_space_bell())?;
    /// let rx = spsc::Consumer::attach_shared_space_bell(ring, bell, OwnerId::unique())?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn attach_shared_space_bell(ring: S, bell: B, owner: OwnerId) -> Result<Self, AttachError> {
        let bell = (bell_of(&bell)?, bell);
        Self::attach_with(ring, owner, false, Some(bell))
    }
}

impl<S: SharedMemory, B: SharedMemory> Consumer<S, B> {
    /// Attaches the consumer end of a ring: of a fan-in ring (for
    /// [`FanIn`](crate::fanin::FanIn)) if `fanin`, ringing `space` after releases if given
    /// (its region checked once already, see [`Producer::attach_with`](super::Producer)).
    pub(crate) fn attach_with(
        shm: S,
        owner: OwnerId,
        fanin: bool,
        space: Option<(Line, B)>,
    ) -> Result<Self, AttachError> {
        let mem = shm.mem();
        let geo = header::validate(&mem, RingKind::Spsc)?;
        let fences = geo.usable_fences()?;
        if (geo.flags & wire::FLAG_SHARED_BELL != 0) != fanin
            || (geo.flags & wire::FLAG_SHARED_SPACE_BELL != 0) != space.is_some()
        {
            return Err(AttachError::WrongBell);
        }
        let (space_bell, bell) = match space {
            Some((line, b)) => (line, Some(b)),
            None => (Line::at(mem, SPACE_BELL_OFF, fences), None),
        };
        role::claim(&mem, CONSUMER_OWNER_OFF, owner)?;
        // Acquire on both: pairs with the Release stores of the producer and of a previous
        // consumer.
        let read = mem.load_u64(READ_POS_OFF, Ordering::Acquire);
        let write = mem.load_u64(WRITE_POS_OFF, Ordering::Acquire);
        if let Err(c) = check_positions(write, read, geo.capacity) {
            role::unclaim(&mem, CONSUMER_OWNER_OFF, owner);
            return Err(AttachError::Corrupt(c));
        }
        Ok(Self {
            mem,
            capacity: geo.capacity,
            mask: geo.mask(),
            frame_cap: geo.frame_cap,
            read,
            cached_write: write,
            published: read,
            space: SpaceWaker::new(geo.capacity, read),
            owner,
            fork_gen: fork::generation(),
            data_bell: Line::at(mem, DATA_BELL_OFF, fences),
            space_bell,
            peer: PeerWatch::new(&mem, PRODUCER_OWNER_OFF),
            waiter: Waiter::new(WaitOptions::default()),
            _bell: bell,
            shm,
        })
    }

    /// The ring's frame cap: no valid frame is longer, so a buffer of this size receives any.
    ///
    /// # Examples
    ///
    /// ```
    /// let (_tx, rx) = ringbell::spsc::channel(4096)?;
    /// let mut buf = vec![0u8; rx.max_frame()]; // holds any frame of this ring
    /// assert_eq!(buf.len(), 2040);
    /// # Ok::<(), ringbell::AttachError>(())
    /// ```
    #[inline]
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
    /// let (_tx, rx) = ringbell::spsc::channel(64)?;
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
    /// let (_tx, rx) = ringbell::spsc::channel(4096)?;
    /// assert_eq!(rx.capacity(), 4096);
    /// # Ok::<(), ringbell::AttachError>(())
    /// ```
    #[inline]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes of the ring published and not yet received — records, their 8-byte headers,
    /// slack and wrap padding included — at most [`capacity`](Self::capacity). A snapshot: it
    /// may grow at any moment as the producer sends.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, mut rx) = ringbell::spsc::channel(4096)?;
    /// tx.try_send(0, &[0; 5])?;
    /// assert_eq!(rx.len(), 16);
    /// rx.try_recv()?;
    /// assert_eq!(rx.len(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn len(&self) -> usize {
        let write = self.mem.load_u64(WRITE_POS_OFF, Ordering::Relaxed);
        write.wrapping_sub(self.read).min(self.capacity as u64) as usize
    }

    /// Whether nothing is published and unreceived ([`len`](Self::len) is 0). A snapshot:
    /// `false` stays false until this consumer receives; `true` may go stale at any moment.
    /// [`has_data`](Self::has_data) is the same question about frames (it looks through
    /// padding).
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, rx) = ringbell::spsc::channel(4096)?;
    /// assert!(rx.is_empty());
    /// tx.try_send(0, b"x")?;
    /// assert!(!rx.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The memory this consumer reads from.
    ///
    /// # Examples
    ///
    /// ```
    /// let (_tx, rx) = ringbell::spsc::channel(4096)?;
    /// assert_eq!(rx.shared_memory().len(), 1024 + 4096);
    /// # Ok::<(), ringbell::AttachError>(())
    /// ```
    pub fn shared_memory(&self) -> &S {
        &self.shm
    }

    /// Whether the producer has closed its end. Frames it sent before closing can still be
    /// received. Once true it stays true.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::RecvError;
    ///
    /// let (mut tx, mut rx) = ringbell::spsc::channel(4096)?;
    /// tx.try_send(0, b"last")?;
    /// drop(tx);
    /// assert!(rx.is_producer_closed());
    /// assert_eq!(rx.try_recv()?.data, b"last"); // still delivered
    /// assert_eq!(rx.try_recv(), Err(RecvError::Closed));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_producer_closed(&self) -> bool {
        role::is_closed(&self.mem, PRODUCER_OWNER_OFF)
    }

    /// Whether a frame can be received now. A pure peek: it changes nothing at all — no
    /// shared word, no cached position, no statistic.
    ///
    /// `true` stays true until this consumer receives (only it can take frames away), so the
    /// next [`try_read`](Self::try_read) succeeds — or reports corruption, which also counts as
    /// something to look at. `false` may go stale at any moment as the producer sends.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, mut rx) = ringbell::spsc::channel(256)?;
    /// assert!(!rx.has_data()); // may stop being true at any moment
    /// tx.try_send(0, b"x")?;
    /// assert!(rx.has_data()); // stays true until we receive
    /// assert!(rx.try_recv().is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn has_data(&self) -> bool {
        if fork::forked(self.fork_gen) {
            return true; // the next receive reports it
        }
        // Acquire: pairs with the Release in `Producer::publish_position`, so the header below
        // is the one published.
        let write = self.mem.load_u64(WRITE_POS_OFF, Ordering::Acquire);
        let avail = write.wrapping_sub(self.read);
        if avail == 0 {
            return false;
        }
        if avail > self.capacity as u64 {
            return true; // corrupt: the next receive reports it
        }
        let off = (self.read & self.mask) as usize;
        let word = self.mem.load_u32(HEADER_SIZE + off, Ordering::Relaxed);
        match wire::decode(word) {
            Decoded::Padding { size } if off != 0 && size == self.capacity - off => {
                avail > size as u64
            }
            _ => true,
        }
    }

    /// Re-reads the producer's position. Possibly empty → refresh → really empty.
    fn refresh_write(&mut self) -> Result<(), Corruption> {
        // Acquire: pairs with the Release in `Producer::publish_position`; every record before
        // the new position is fully written and visible.
        let write = self.mem.load_u64(WRITE_POS_OFF, Ordering::Acquire);
        let avail = write.wrapping_sub(self.read);
        if write % wire::ALIGN as u64 != 0
            || avail > self.capacity as u64
            || avail < self.cached_write.wrapping_sub(self.read)
        {
            return Err(Corruption::WritePosition { found: write });
        }
        self.cached_write = write;
        Ok(())
    }

    /// Frees `size` bytes at our position (and any a batch moved past without publishing),
    /// then rings the space doorbell as [`crate::space`] says.
    #[inline(always)]
    fn release(&mut self, size: usize) {
        self.read = self.read.wrapping_add(size as u64);
        self.published = self.read;
        // Release: pairs with the Acquire in `Producer::refresh_read`; our reads of the freed
        // bytes happen before the producer overwrites them.
        self.mem
            .store_u64(READ_POS_OFF, self.read, Ordering::Release);
        let caught_up = self.read == self.cached_write && mutant::keep(Mutant::SpscNoCatchUpRing);
        self.space
            .released(self.published, caught_up, &self.waiter, &self.space_bell);
    }

    /// Rings the space doorbell if space was freed since the last ring: for a consumer about
    /// to stop short of catching up (a frame its buffer cannot hold, a fan-in pausing the
    /// ring), so that a producer blocked on the ring is not left to its sleep slice.
    #[cold]
    pub(crate) fn announce_space(&mut self) {
        self.space
            .announce(self.published, &self.waiter, &self.space_bell);
    }

    /// Rings the space doorbell after every release, as a channel's request rings need.
    #[cfg_attr(any(loom, not(feature = "std")), allow(dead_code))]
    pub(crate) fn ring_every_release(&mut self) {
        self.space.ring_every_release();
    }

    /// Finds and validates the next record, skipping (and freeing) one padding record.
    // Always inlined: where it was not (a caller's loop in a large function), the call cost a
    // third of the batched stream's rate (the comparison, A/B: 24 vs 38 M/s).
    #[inline(always)]
    fn next_record(&mut self) -> Result<Rec, RecvError> {
        if fork::forked(self.fork_gen) {
            return Err(RecvError::Forked);
        }
        // At most two rounds: a padding record never starts at offset 0, and after one we
        // are at offset 0, so the second round finds a record or gives up.
        for _ in 0..2 {
            let mut avail = self.cached_write.wrapping_sub(self.read);
            if avail == 0 {
                self.refresh_write().map_err(RecvError::Corrupt)?;
                avail = self.cached_write.wrapping_sub(self.read);
                if avail == 0 {
                    return Err(self.empty_or_closed());
                }
                // Fresh data: a record usually spans the header's line and the next one. Ask
                // for the second line now, so that its miss overlaps the header's instead of
                // following it (a ping-pong's latency is a chain of such misses).
                let next_line = (self.read | (LINE - 1)).wrapping_add(1);
                if (self.cached_write.wrapping_sub(next_line) as i64) > 0 {
                    self.mem
                        .prefetch(HEADER_SIZE + (next_line & self.mask) as usize);
                }
            }
            let off = (self.read & self.mask) as usize;
            let word = self.mem.load_u32(HEADER_SIZE + off, Ordering::Relaxed);
            let corrupt = RecvError::Corrupt(Corruption::Record {
                position: self.read,
                word,
            });
            match wire::decode(word) {
                Decoded::Padding { size } => {
                    if off == 0 || size != self.capacity - off || size as u64 > avail {
                        return Err(corrupt);
                    }
                    self.release(size);
                }
                Decoded::Record { len } => {
                    if len > self.frame_cap {
                        return Err(corrupt);
                    }
                    let size = wire::record_size(len);
                    if size > self.capacity - off || size as u64 > avail {
                        return Err(corrupt);
                    }
                    let tag = self.mem.load_u32(HEADER_SIZE + off + 4, Ordering::Relaxed);
                    self.prefetch_ahead(size);
                    return Ok(Rec { off, len, tag });
                }
                Decoded::Invalid => return Err(corrupt),
            }
        }
        Err(RecvError::Corrupt(Corruption::Record {
            position: self.read,
            word: 0,
        }))
    }

    /// Hints the CPU to load two published cache lines `PREFETCH_AHEAD` bytes past the
    /// record of `size` bytes at our position.
    ///
    /// Each record header's address comes from the previous header's contents, so without a
    /// hint a stream of small records is a chain of cache misses, each waiting for the one
    /// before (measured: 64-byte frames through a 64 KiB ring ran at a third of rtrb's rate,
    /// whose slot addresses need no load). Two lines per record cover records up to 128
    /// bytes; longer payloads are copied sequentially, which the hardware prefetcher follows.
    /// Only lines starting below the published position are asked for; the last of them may
    /// also hold bytes the producer is still writing, and the hint then costs it a line
    /// transfer — a matter of speed only: a prefetch changes no memory.
    #[inline(always)]
    fn prefetch_ahead(&self, size: usize) {
        let ahead = self.read.wrapping_add((size + PREFETCH_AHEAD) as u64);
        for line in [ahead, ahead.wrapping_add(LINE)] {
            // `line` is published iff it lies before `cached_write` (wrapping compare).
            if (self.cached_write.wrapping_sub(line) as i64) > 0 {
                self.mem.prefetch(HEADER_SIZE + (line & self.mask) as usize);
            }
        }
    }

    /// The ring is empty: says whether it will stay so because the producer closed.
    #[cold]
    fn empty_or_closed(&mut self) -> RecvError {
        // Space a batch took but did not free (its callback panicked): free it now, or the
        // producer could wait for it for ever.
        if self.published != self.read {
            self.release(0);
        }
        if !self.is_producer_closed() {
            if !self.peer.peer_dead_rate_limited(&self.mem) {
                return RecvError::Empty;
            }
            // The producer died without closing: what it published before dying is
            // delivered first.
            return match self.refresh_write() {
                Err(c) => RecvError::Corrupt(c),
                Ok(()) if self.cached_write == self.read => RecvError::Disconnected,
                Ok(()) => RecvError::Empty,
            };
        }
        // The close was published after the producer's last position (Release/Acquire in
        // `role`), so one more refresh sees everything it sent.
        match self.refresh_write() {
            Err(c) => RecvError::Corrupt(c),
            Ok(()) if self.cached_write == self.read => RecvError::Closed,
            Ok(()) => RecvError::Empty, // more arrived: the caller's next call receives it
        }
    }

    /// Borrows the next frame in place. The frame is freed when the guard drops.
    ///
    /// # Errors
    ///
    /// [`RecvError::Empty`] if there is none; [`RecvError::Closed`] if there is none and the
    /// producer closed; [`RecvError::Disconnected`] if there is none and its process died;
    /// [`RecvError::Forked`]; [`RecvError::Corrupt`] if the producer wrote something invalid.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::RecvError;
    ///
    /// let (mut tx, mut rx) = ringbell::spsc::channel(256)?;
    /// tx.try_send(5, b"in place")?;
    /// {
    ///     let frame = rx.try_read()?;
    ///     assert_eq!((frame.tag(), frame.len()), (5, 8));
    ///     let mut head = [0u8; 2];
    ///     frame.read_at(0, &mut head);
    ///     assert_eq!(&head, b"in");
    /// } // freed here
    /// assert_eq!(rx.try_read().map(drop), Err(RecvError::Empty));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn try_read(&mut self) -> Result<ReadGuard<'_, S, B>, RecvError> {
        let rec = self.next_record()?;
        Ok(ReadGuard {
            consumer: self,
            rec,
        })
    }

    /// Copies the next frame into `buf` and frees it; returns its tag and length.
    ///
    /// # Errors
    ///
    /// As [`try_read`](Self::try_read), and [`RecvError::BufferTooSmall`] — leaving the frame
    /// in the ring — if `buf` is shorter than the frame.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::RecvError;
    ///
    /// let (mut tx, mut rx) = ringbell::spsc::channel(256)?;
    /// tx.try_send(3, b"four")?;
    /// let mut small = [0u8; 2];
    /// assert_eq!(rx.try_recv_into(&mut small), Err(RecvError::BufferTooSmall { needed: 4 }));
    /// let mut buf = [0u8; 16];
    /// assert_eq!(rx.try_recv_into(&mut buf), Ok((3, 4)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn try_recv_into(&mut self, buf: &mut [u8]) -> Result<(u32, usize), RecvError> {
        let rec = self.next_record()?;
        let Some(dst) = buf.get_mut(..rec.len) else {
            self.announce_space();
            return Err(RecvError::BufferTooSmall { needed: rec.len });
        };
        self.mem.copy_out(payload_off(rec.off), dst);
        self.release(wire::record_size(rec.len));
        Ok((rec.tag, rec.len))
    }

    /// Receives up to `max` frames, copying each into `buf` and handing it to `f` with its
    /// tag, then releases their space together: one position store and at most one doorbell
    /// ring for the batch instead of one per frame. Returns how many were received (0 if `max` is 0,
    /// whatever the ring holds). If `f` panics, the frames before it and the one it was given
    /// count as received; their space is freed when the ring next looks empty to this
    /// consumer, or when another frame is freed.
    ///
    /// # Errors
    ///
    /// Only when no frame was received: as [`try_recv_into`](Self::try_recv_into) for the
    /// first frame. A later frame that does not fit `buf`, or any other condition, ends the
    /// batch and stays for the next call.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, mut rx) = ringbell::spsc::channel(4096)?;
    /// for i in 0..5 {
    ///     tx.try_send(i, &[i as u8; 3])?;
    /// }
    /// let mut buf = [0u8; 16];
    /// let mut sum = 0;
    /// assert_eq!(rx.try_recv_batch_into(&mut buf, 3, |tag, data| sum += tag + data[0] as u32), Ok(3));
    /// assert_eq!(sum, 2 * (0 + 1 + 2));
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
            let rec = match self.next_record() {
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
            self.mem.copy_out(payload_off(rec.off), dst);
            // Move past the record locally (before `f`: a panicking `f` has still had it);
            // the shared position is stored once, below.
            self.read = self.read.wrapping_add(wire::record_size(rec.len) as u64);
            got += 1;
            f(rec.tag, dst);
        }
        // An empty ring met mid-batch has already published (`empty_or_closed`).
        if self.published != self.read {
            self.release(0);
        }
        if short {
            // Stopped short of catching up: a producer waiting for the space must not be
            // left to its sleep slice.
            self.announce_space();
        }
        Ok(got)
    }

    /// Receives the next frame into `buf`, waiting as long as it takes.
    ///
    /// # Errors
    ///
    /// [`RecvError::Closed`] once the producer closed and every frame was received;
    /// [`RecvError::Disconnected`] once its process died (seen within a sleep slice) and
    /// every frame it published was received; [`RecvError::BufferTooSmall`] (the frame
    /// stays); [`RecvError::Forked`]; [`RecvError::Corrupt`]. Never `Empty`.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, mut rx) = ringbell::spsc::channel(4096)?;
    /// std::thread::spawn(move || tx.send(9, b"later").unwrap());
    /// let mut buf = [0u8; 16];
    /// assert_eq!(rx.recv_into(&mut buf)?, (9, 5));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_into(&mut self, buf: &mut [u8]) -> Result<(u32, usize), RecvError> {
        self.recv_into_until(buf, Deadline::NEVER)
    }

    /// Receives the next frame into `buf`, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// As [`recv_into`](Self::recv_into), and [`RecvError::Timeout`] if nothing arrived in
    /// time.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::RecvError;
    /// use std::time::Duration;
    ///
    /// let (_tx, mut rx) = ringbell::spsc::channel(256)?;
    /// let mut buf = [0u8; 16];
    /// let got = rx.recv_into_timeout(&mut buf, Duration::from_millis(5));
    /// assert_eq!(got, Err(RecvError::Timeout));
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

    /// Waits until a frame may be there (or the producer closed); between sleep slices, sees
    /// whether the producer's process died. Frames it committed before dying are still
    /// delivered: the wait returns for them first.
    fn wait_for_data(&self, deadline: Deadline) -> Result<(), RecvError> {
        let ready = || self.has_data() || self.is_producer_closed();
        let between = || self.producer_died().then_some(RecvError::Disconnected);
        match self
            .waiter
            .wait_sliced(&self.data_bell, ready, deadline, between)
        {
            Ok(()) => Ok(()),
            Err(Stop::Timeout) => Err(RecvError::Timeout),
            Err(Stop::By(e)) => Err(e),
        }
    }

    /// The async waiter's step on this ring's data doorbell ([doorbell](crate::doorbell),
    /// "Async waits"): drains `readiness`, announces, re-checks for a frame or the
    /// producer's close. [`Announced::Wait`](crate::doorbell::Announced::Wait): wait until
    /// `readiness` is readable, then try again. The producer must ring with this
    /// readiness's signal ([`Producer::set_peer_readiness`](super::Producer::set_peer_readiness)),
    /// or its rings do not reach the wait. Try to receive first: this always pays the
    /// announcement.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::doorbell::{Announced, Readiness};
    /// use std::time::Duration;
    ///
    /// let (mut tx, mut rx) = ringbell::spsc::channel(4096)?;
    /// let readiness = Readiness::new()?;
    /// tx.set_peer_readiness(Some(readiness.signal()));
    /// assert_eq!(rx.poll_ready(&readiness), Announced::Wait); // empty: announced
    /// tx.send(1, b"hi")?;                                     // rings through the signal
    /// assert!(readiness.wait_timeout(Duration::from_secs(1)));
    /// assert_eq!(rx.poll_ready(&readiness), Announced::Ready);
    /// assert_eq!(rx.try_recv()?.data, b"hi");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "std")]
    pub fn poll_ready(&self, readiness: &crate::doorbell::Readiness) -> crate::doorbell::Announced {
        self.waiter.count_sleep();
        self.data_bell
            .announce_async(readiness, || self.has_data() || self.is_producer_closed())
    }

    /// Makes this consumer's rings of the space doorbell answer the producer's async waits
    /// for room ([`Producer::poll_room`](super::Producer::poll_room)) through `signal`, the
    /// producer's readiness (in another process: its descriptor,
    /// [`ReadinessSignal::from_fd`](crate::doorbell::ReadinessSignal::from_fd)). `None`:
    /// plain rings.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::doorbell::Readiness;
    ///
    /// let (_tx, mut rx) = ringbell::spsc::channel(4096)?;
    /// let producers = Readiness::new()?;
    /// rx.set_peer_readiness(Some(producers.signal()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "std")]
    pub fn set_peer_readiness(&mut self, signal: Option<crate::doorbell::ReadinessSignal>) {
        self.waiter.set_readiness(signal);
    }

    /// How blocking calls wait (for the async ends' slices).
    #[cfg(feature = "tokio")]
    pub(crate) fn wait_options(&self) -> crate::doorbell::WaitOptions {
        self.waiter.options()
    }

    /// Whether the producer's process died without closing, with nothing left to receive.
    /// Makes system calls: for the slow path.
    pub(crate) fn producer_died(&self) -> bool {
        !self.has_data() && self.peer.peer_dead(&self.mem)
    }

    /// Waits until `ready(self)` holds, as long as it takes.
    ///
    /// For a consumer that also waits for something else — work finished by another thread,
    /// say: that thread publishes its result and calls [`Notifier::notify`], and `ready`
    /// checks both the ring and the result. The check runs in the doorbell's latched window,
    /// so a notify is never slept through. It does not watch the producer's process: include
    /// [`is_producer_closed`](Self::is_producer_closed) in `ready` if that matters.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::sync::Arc;
    ///
    /// let (_tx, rx) = ringbell::spsc::channel(256)?;
    /// let done = Arc::new(AtomicBool::new(false));
    /// let notifier = rx.notifier();
    /// let worker = {
    ///     let done = done.clone();
    ///     std::thread::spawn(move || {
    ///         done.store(true, Ordering::Release);
    ///         notifier.notify();
    ///     })
    /// };
    /// rx.wait_until(|rx| rx.has_data() || rx.is_producer_closed() || done.load(Ordering::Acquire));
    /// assert!(done.load(Ordering::Acquire));
    /// worker.join().unwrap();
    /// # Ok::<(), ringbell::AttachError>(())
    /// ```
    pub fn wait_until(&self, mut ready: impl FnMut(&Self) -> bool) {
        let _ = self.waiter.wait(&self.data_bell, || ready(self), None);
    }

    /// Waits until `ready(self)` holds, or `timeout` passes; see
    /// [`wait_until`](Self::wait_until).
    ///
    /// # Errors
    ///
    /// [`RecvError::Timeout`] if `ready` is still false at the deadline.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::RecvError;
    /// use std::time::Duration;
    ///
    /// let (_tx, rx) = ringbell::spsc::channel(256)?;
    /// let r = rx.wait_until_timeout(|rx| rx.has_data(), Duration::from_millis(2));
    /// assert_eq!(r, Err(RecvError::Timeout));
    /// # Ok::<(), ringbell::AttachError>(())
    /// ```
    pub fn wait_until_timeout(
        &self,
        mut ready: impl FnMut(&Self) -> bool,
        timeout: Duration,
    ) -> Result<(), RecvError> {
        self.waiter
            .wait(
                &self.data_bell,
                || ready(self),
                Deadline::after(timeout).at(),
            )
            .map_err(|_| RecvError::Timeout)
    }

    /// Waits until `ready(self)` holds or `deadline` passes, one slice at a time; between
    /// slices, `between()` may end the wait with an error (a channel client's socket check).
    #[cfg(all(feature = "std", not(loom)))]
    pub(crate) fn wait_sliced<E>(
        &self,
        mut ready: impl FnMut(&Self) -> bool,
        deadline: Deadline,
        between: impl FnMut() -> Option<E>,
    ) -> Result<(), Stop<E>> {
        self.waiter
            .wait_sliced(&self.data_bell, || ready(self), deadline, between)
    }

    /// A handle other threads use to wake this consumer (see [`wait_until`](Self::wait_until)).
    ///
    /// # Examples
    ///
    /// ```
    /// let (_tx, rx) = ringbell::spsc::channel(256)?;
    /// let notifier = rx.notifier();
    /// std::thread::spawn(move || notifier.notify()).join().unwrap();
    /// # Ok::<(), ringbell::AttachError>(())
    /// ```
    pub fn notifier(&self) -> Notifier<S>
    where
        S: Clone,
    {
        Notifier::new(self.data_bell, self.shm.clone())
    }

    /// How blocking calls wait (spin budget, sleep slice).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::doorbell::WaitOptions;
    ///
    /// let (_tx, mut rx) = ringbell::spsc::channel(4096)?;
    /// rx.set_wait_options(WaitOptions::new().spin_budget(100));
    /// # Ok::<(), ringbell::AttachError>(())
    /// ```
    pub fn set_wait_options(&mut self, opts: WaitOptions) {
        self.waiter.set_options(opts);
    }

    /// This side's wake and sleep counters.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::doorbell::WaitOptions;
    /// use std::time::Duration;
    ///
    /// let (_tx, mut rx) = ringbell::spsc::channel(4096)?;
    /// rx.set_wait_options(WaitOptions::new().spin_budget(0));
    /// let _ = rx.recv_timeout(Duration::from_millis(1));
    /// assert!(rx.stats().sleeps >= 1);
    /// # Ok::<(), ringbell::AttachError>(())
    /// ```
    pub fn stats(&self) -> WaitStats {
        self.waiter.stats()
    }
}

#[cfg(feature = "std")]
impl<S: SharedMemory, B: SharedMemory> Consumer<S, B> {
    /// Receives the next frame into a new [`Frame`](crate::Frame).
    ///
    /// # Errors
    ///
    /// As [`try_read`](Self::try_read).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::RecvError;
    ///
    /// let (mut tx, mut rx) = ringbell::spsc::channel(4096)?;
    /// assert_eq!(rx.try_recv(), Err(RecvError::Empty));
    /// tx.try_send(1, b"owned")?;
    /// assert_eq!(rx.try_recv()?.data, b"owned");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_recv(&mut self) -> Result<crate::Frame, RecvError> {
        let guard = self.try_read()?;
        Ok(crate::Frame {
            tag: guard.tag(),
            data: guard.to_vec(),
        })
    }

    /// Receives the next frame, waiting as long as it takes.
    ///
    /// # Errors
    ///
    /// As [`recv_into`](Self::recv_into), without `BufferTooSmall`.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, mut rx) = ringbell::spsc::channel(4096)?;
    /// std::thread::spawn(move || tx.send(2, b"soon").unwrap());
    /// assert_eq!(rx.recv()?.data, b"soon");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv(&mut self) -> Result<crate::Frame, RecvError> {
        self.recv_until(Deadline::NEVER)
    }

    /// Receives the next frame, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// As [`recv_into_timeout`](Self::recv_into_timeout), without `BufferTooSmall`.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::RecvError;
    /// use std::time::Duration;
    ///
    /// let (_tx, mut rx) = ringbell::spsc::channel(4096)?;
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

    /// An iterator over the frames that can be received now, without waiting. It ends at
    /// [`RecvError::Empty`] or [`RecvError::Closed`]; any other error is yielded once, then
    /// the iterator ends (nothing is dropped silently).
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, mut rx) = ringbell::spsc::channel(4096)?;
    /// for i in 0..3 {
    ///     tx.try_send(i, b"x")?;
    /// }
    /// let tags: Result<Vec<u32>, _> = rx.try_iter().map(|f| f.map(|f| f.tag)).collect();
    /// assert_eq!(tags?, [0, 1, 2]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_iter(&mut self) -> TryIter<'_, S, B> {
        TryIter {
            consumer: self,
            done: false,
        }
    }

    /// An iterator that receives frames, waiting for each, until the producer closes and
    /// every frame was received. Any other error ([`RecvError::Disconnected`],
    /// [`RecvError::Corrupt`], …) is yielded once, then the iterator ends.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, mut rx) = ringbell::spsc::channel(4096)?;
    /// std::thread::spawn(move || {
    ///     for i in 0..10 {
    ///         tx.send(i, b"x").unwrap();
    ///     } // dropping `tx` closes the ring and ends the iteration
    /// });
    /// let sum: u32 = rx.iter().map(|f| f.unwrap().tag).sum();
    /// assert_eq!(sum, 45);
    /// # Ok::<(), ringbell::AttachError>(())
    /// ```
    pub fn iter(&mut self) -> Iter<'_, S, B> {
        Iter {
            consumer: self,
            done: false,
        }
    }
}

impl<S: SharedMemory, B: SharedMemory> Drop for Consumer<S, B> {
    fn drop(&mut self) {
        // See `Producer::drop` on `fork`.
        if !fork::forked(self.fork_gen) {
            role::close(&self.mem, CONSUMER_OWNER_OFF, self.owner);
            // Wake a producer asleep on a full ring so it sees the close at once.
            if mutant::keep(Mutant::ConsumerDropNoRing) {
                self.waiter.ring(&self.space_bell);
            }
        }
    }
}

impl<S: SharedMemory, B: SharedMemory> fmt::Debug for Consumer<S, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("capacity", &self.capacity)
            .field("frame_cap", &self.frame_cap)
            .field("read", &self.read)
            .field("cached_write", &self.cached_write)
            .field("owner", &self.owner)
            .finish()
    }
}

/// The frames that can be received now; see [`Consumer::try_iter`].
///
/// # Examples
///
/// ```
/// let (mut tx, mut rx) = ringbell::spsc::channel(4096)?;
/// tx.try_send(0, b"a")?;
/// let it: ringbell::spsc::TryIter<'_, _> = rx.try_iter();
/// assert_eq!(it.count(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg(feature = "std")]
#[derive(Debug)]
pub struct TryIter<'a, S: SharedMemory, B: SharedMemory = S> {
    consumer: &'a mut Consumer<S, B>,
    done: bool,
}

#[cfg(feature = "std")]
impl<S: SharedMemory, B: SharedMemory> Iterator for TryIter<'_, S, B> {
    type Item = Result<crate::Frame, RecvError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.consumer.try_recv() {
            Ok(f) => Some(Ok(f)),
            Err(RecvError::Empty | RecvError::Closed) => {
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
impl<S: SharedMemory, B: SharedMemory> core::iter::FusedIterator for TryIter<'_, S, B> {}

/// Frames as they arrive, until the producer closes; see [`Consumer::iter`].
///
/// # Examples
///
/// ```
/// let (mut tx, mut rx) = ringbell::spsc::channel(4096)?;
/// tx.try_send(0, b"a")?;
/// drop(tx);
/// let it: ringbell::spsc::Iter<'_, _> = rx.iter();
/// assert_eq!(it.count(), 1); // ends at the close
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg(feature = "std")]
#[derive(Debug)]
pub struct Iter<'a, S: SharedMemory, B: SharedMemory = S> {
    consumer: &'a mut Consumer<S, B>,
    done: bool,
}

#[cfg(feature = "std")]
impl<S: SharedMemory, B: SharedMemory> Iterator for Iter<'_, S, B> {
    type Item = Result<crate::Frame, RecvError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.consumer.recv() {
            Ok(f) => Some(Ok(f)),
            Err(RecvError::Closed) => {
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
impl<S: SharedMemory, B: SharedMemory> core::iter::FusedIterator for Iter<'_, S, B> {}

/// A received frame, still in the ring; freed when dropped.
///
/// # Examples
///
/// ```
/// let (mut tx, mut rx) = ringbell::spsc::channel(4096)?;
/// tx.try_send(1, b"in the ring")?;
/// let guard = rx.try_read()?;
/// assert_eq!(guard.to_vec(), b"in the ring");
/// drop(guard); // frees the frame
/// assert!(!rx.has_data());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "dropping a read guard frees the frame unread"]
pub struct ReadGuard<'a, S: SharedMemory, B: SharedMemory = S> {
    consumer: &'a mut Consumer<S, B>,
    rec: Rec,
}

impl<S: SharedMemory, B: SharedMemory> ReadGuard<'_, S, B> {
    /// The frame's tag.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, mut rx) = ringbell::spsc::channel(4096)?;
    /// tx.try_send(77, b"")?;
    /// assert_eq!(rx.try_read()?.tag(), 77);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn tag(&self) -> u32 {
        self.rec.tag
    }

    /// The frame's payload length.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, mut rx) = ringbell::spsc::channel(4096)?;
    /// tx.try_send(0, b"abc")?;
    /// assert_eq!(rx.try_read()?.len(), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn len(&self) -> usize {
        self.rec.len
    }

    /// Whether the payload is empty.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, mut rx) = ringbell::spsc::channel(4096)?;
    /// tx.try_send(0, b"")?;
    /// assert!(rx.try_read()?.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.rec.len == 0
    }

    /// Copies payload bytes starting at `offset` into `dst`.
    ///
    /// # Panics
    ///
    /// If `offset + dst.len()` exceeds [`len`](Self::len) — a bug in the caller.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, mut rx) = ringbell::spsc::channel(4096)?;
    /// tx.try_send(0, b"header+body")?;
    /// let guard = rx.try_read()?;
    /// let mut body = [0u8; 4];
    /// guard.read_at(7, &mut body);
    /// assert_eq!(&body, b"body");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn read_at(&self, offset: usize, dst: &mut [u8]) {
        assert!(
            offset <= self.rec.len && dst.len() <= self.rec.len - offset,
            "read of {} bytes at {offset} past a frame of {}",
            dst.len(),
            self.rec.len
        );
        self.consumer
            .mem
            .copy_out(payload_off(self.rec.off) + offset, dst);
    }

    /// Copies the payload into a new `Vec`.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, mut rx) = ringbell::spsc::channel(4096)?;
    /// tx.try_send(0, b"copy")?;
    /// assert_eq!(rx.try_read()?.to_vec(), b"copy");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "std")]
    pub fn to_vec(&self) -> std::vec::Vec<u8> {
        let mut v = std::vec![0u8; self.rec.len];
        self.consumer
            .mem
            .copy_out(payload_off(self.rec.off), &mut v);
        v
    }

    /// The payload as a slice into shared memory, without copying.
    ///
    /// # Safety
    ///
    /// For trusted peers only: nothing may write these bytes while the slice lives. A correct
    /// producer never does (they stay ours until the guard drops); a buggy or hostile process
    /// mapping the same memory could, and that would be a data race.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, mut rx) = ringbell::spsc::channel(4096)?;
    /// tx.try_send(0, b"zero copy")?;
    /// let guard = rx.try_read()?;
    /// // SAFETY: the producer is ours and correct; nobody else maps the ring.
    /// assert_eq!(unsafe { guard.as_slice() }, b"zero copy");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    #[cfg(not(loom))]
    pub unsafe fn as_slice(&self) -> &[u8] {
        let ptr = self
            .consumer
            .mem
            .bytes_ptr(payload_off(self.rec.off), self.rec.len);
        // SAFETY: `ptr` points at `len` bytes inside the mapping, which outlives the guard;
        // the caller promises nobody writes them while the slice lives.
        unsafe { core::slice::from_raw_parts(ptr, self.rec.len) }
    }
}

impl<S: SharedMemory, B: SharedMemory> Drop for ReadGuard<'_, S, B> {
    fn drop(&mut self) {
        self.consumer.release(wire::record_size(self.rec.len));
    }
}

impl<S: SharedMemory, B: SharedMemory> fmt::Debug for ReadGuard<'_, S, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadGuard")
            .field("tag", &self.rec.tag)
            .field("len", &self.rec.len)
            .finish()
    }
}
