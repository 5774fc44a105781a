//! The writing end of an SPSC ring, and the grant that fills a frame in place.

use core::fmt;
use core::time::Duration;

use crate::clock::Deadline;
use crate::doorbell::{Line, Stop, WaitOptions, WaitStats, Waiter, bell_of};
use crate::error::{AttachError, Corruption, SendError};
use crate::fork;
use crate::header::{self, check_positions};
use crate::liveness::PeerWatch;
use crate::mem::Mem;
use crate::mutant::{self, Mutant};
use crate::region::{Admits, Bell, SharedMemory, Spsc};
use crate::role::{self, OwnerId};
use crate::sync::Ordering;
use crate::wire::{
    self, CONSUMER_OWNER_OFF, DATA_BELL_OFF, HEADER_SIZE, PRODUCER_OWNER_OFF, READ_POS_OFF,
    RingKind, SPACE_BELL_OFF, WRITE_POS_OFF, payload_off,
};

/// The writing end of an SPSC ring over memory `S`; `B` is the memory of a shared doorbell
/// (a fan-in's or a channel server's bell region) if the ring rings one, else unused.
///
/// Dropping it closes the producer role for good: the consumer drains what was sent, then
/// sees [`RecvError::Closed`](crate::RecvError::Closed). It is `Send` but not `Sync`: one
/// thread uses it at a time.
///
/// # Examples
///
/// ```
/// let (mut tx, mut rx) = ringbell::spsc::channel(4096)?;
/// tx.try_send(1, b"hello")?;
/// assert_eq!(rx.try_recv()?.data, b"hello");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Producer<S: SharedMemory, B: SharedMemory = S> {
    mem: Mem,
    /// Data-area capacity, from the geometry validated at attach; never re-read.
    capacity: usize,
    /// `capacity - 1`.
    mask: u64,
    /// Largest payload accepted.
    frame_cap: usize,
    /// Our position: one past the last byte we published. Only we write `WRITE_POS`.
    write: u64,
    /// Last validated value of the consumer's `READ_POS`; `write - cached_read <= capacity`.
    cached_read: u64,
    /// The position last stored to `WRITE_POS`: behind `write` only inside a batch (or after a
    /// batch whose frame iterator panicked, until the next publish or the drop).
    published: u64,
    owner: OwnerId,
    /// The fork generation it attached in: a copy inherited by a forked child neither acts
    /// nor closes the role.
    fork_gen: u32,
    /// Rung after each publish.
    data_bell: Line,
    /// Waited on while the ring is full.
    space_bell: Line,
    /// Notices a consumer whose process died without closing (checked between sleeps).
    peer: PeerWatch,
    /// Wait options, adaptive spin state, counters.
    waiter: Waiter,
    /// Keep shared doorbells (a fan-in's, a channel server's) alive.
    _bells: [Option<B>; 2],
    /// Keeps the memory behind `mem` alive.
    shm: S,
}

impl<S: SharedMemory> Producer<S>
where
    S::Kind: Admits<Spsc>,
{
    /// Claims the producer role of the ring in `shm` for `owner`.
    ///
    /// # Errors
    ///
    /// [`AttachError::Header`] if the header is invalid, [`AttachError::RoleTaken`] if another
    /// handle holds the role, [`AttachError::RoleClosed`] if a previous producer closed it,
    /// [`AttachError::Corrupt`] if the positions are inconsistent, [`AttachError::WrongBell`]
    /// for a ring made to ring a shared doorbell.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::region::HeapRegion;
    /// use ringbell::{spsc, AttachError, OwnerId};
    ///
    /// let region = HeapRegion::new(&spsc::Config::new(4096))?;
    /// let tx = spsc::Producer::attach(region.clone(), OwnerId::new(1).unwrap())?;
    /// let again = spsc::Producer::attach(region, OwnerId::new(2).unwrap());
    /// assert_eq!(again.map(drop), Err(AttachError::RoleTaken { owner: 1 }));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn attach(shm: S, owner: OwnerId) -> Result<Self, AttachError> {
        Self::attach_with(shm, None, None, owner)
    }

    /// Claims the producer role with a fresh [`OwnerId::unique`] (which carries this
    /// process's id, so that the consumer's blocking calls notice this process's death).
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
    /// let tx = region.producer()?;
    /// assert_eq!(tx.capacity(), 4096);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "std")]
    #[cfg_attr(loom, allow(dead_code))] // the regions that call it are not built under loom
    pub(crate) fn new(shm: S) -> Result<Self, AttachError> {
        Self::attach(shm, OwnerId::unique())
    }
}

impl<S: SharedMemory, B: SharedMemory> Producer<S, B>
where
    S::Kind: Admits<Spsc>,
    B::Kind: Admits<Bell>,
{
    /// Claims the producer role of a fan-in ring in `ring` (created with
    /// [`Config::shared_bell`](super::Config::shared_bell)); publishes ring the doorbell in
    /// the bell region `bell` (see [`crate::fanin`]) instead of the ring's own.
    ///
    /// # Errors
    ///
    /// As [`attach`](Producer::attach); [`AttachError::WrongBell`] if the ring is not a fan-in
    /// ring; [`AttachError::Header`] if `bell` is not a valid bell region.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::doorbell::BellConfig;
    /// use ringbell::fanin::FanIn;
    /// use ringbell::region::HeapRegion;
    /// use ringbell::{spsc, OwnerId};
    ///
    /// let bell = HeapRegion::new(&BellConfig)?;
    /// let ring = HeapRegion::new(&spsc::Config::new(1024).shared_bell())?;
    /// let mut fanin = FanIn::new(bell.clone(), 4)?;
    /// fanin.add(ring.clone(), OwnerId::unique())?;
    /// let mut tx = spsc::Producer::attach_shared_bell(ring, bell, OwnerId::unique())?;
    /// tx.try_send(3, b"to the fan-in")?;
    /// assert_eq!(fanin.try_recv()?.1.tag, 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn attach_shared_bell(ring: S, bell: B, owner: OwnerId) -> Result<Self, AttachError> {
        let bell = (bell_of(&bell)?, bell);
        Self::attach_with(ring, Some(bell), None, owner)
    }

    /// Claims the producer role of a ring created with
    /// [`Config::shared_space_bell`](super::Config::shared_space_bell): while the ring is
    /// full, blocking sends sleep on the doorbell in the bell region `bell`, which the
    /// consumer rings when it frees space (see the module docs, "Waking a producer").
    ///
    /// # Errors
    ///
    /// As [`attach`](Producer::attach); [`AttachError::WrongBell`] if the ring was not made
    /// so; [`AttachError::Header`] if `bell` is not a valid bell region.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::doorbell::BellConfig;
    /// use ringbell::region::HeapRegion;
    /// use ringbell::{spsc, AttachError, OwnerId};
    ///
    /// let bell = HeapRegion::new(&BellConfig)?;
    /// let plain = HeapRegion::new(&spsc::Config::new(1024))?;
    /// let wrong = spsc::Producer::attach_shared_space_bell(plain, bell, OwnerId::unique());
    /// assert_eq!(wrong.map(drop), Err(AttachError::WrongBell));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn attach_shared_space_bell(ring: S, bell: B, owner: OwnerId) -> Result<Self, AttachError> {
        let bell = (bell_of(&bell)?, bell);
        Self::attach_with(ring, None, Some(bell), owner)
    }
}

impl<S: SharedMemory, B: SharedMemory> Producer<S, B> {
    /// Attaches with shared doorbells already located (and their regions checked once, when
    /// they were created or opened): a hostile peer that rewrites a shared bell region's
    /// header later cannot stop new attaches.
    pub(crate) fn attach_with(
        shm: S,
        bell: Option<(Line, B)>,
        space: Option<(Line, B)>,
        owner: OwnerId,
    ) -> Result<Self, AttachError> {
        let mem = shm.mem();
        let geo = header::validate(&mem, RingKind::Spsc)?;
        let fences = geo.usable_fences()?;
        let shared = geo.flags & wire::FLAG_SHARED_BELL != 0;
        let shared_space = geo.flags & wire::FLAG_SHARED_SPACE_BELL != 0;
        if shared != bell.is_some() || shared_space != space.is_some() {
            return Err(AttachError::WrongBell);
        }
        let (data_bell, bell) = match bell {
            Some((line, b)) => (line, Some(b)),
            None => (Line::at(mem, DATA_BELL_OFF, fences), None),
        };
        let (space_bell, space) = match space {
            Some((line, b)) => (line, Some(b)),
            None => (Line::at(mem, SPACE_BELL_OFF, fences), None),
        };
        role::claim(&mem, PRODUCER_OWNER_OFF, owner)?;
        // Acquire on both: pairs with the Release stores of a previous holder of either role.
        let write = mem.load_u64(WRITE_POS_OFF, Ordering::Acquire);
        let read = mem.load_u64(READ_POS_OFF, Ordering::Acquire);
        if let Err(c) = check_positions(write, read, geo.capacity) {
            role::unclaim(&mem, PRODUCER_OWNER_OFF, owner);
            return Err(AttachError::Corrupt(c));
        }
        Ok(Self {
            mem,
            capacity: geo.capacity,
            mask: geo.mask(),
            frame_cap: geo.frame_cap,
            write,
            cached_read: read,
            published: write,
            owner,
            fork_gen: fork::generation(),
            data_bell,
            space_bell,
            peer: PeerWatch::new(&mem, CONSUMER_OWNER_OFF),
            waiter: Waiter::new(WaitOptions::default()),
            _bells: [bell, space],
            shm,
        })
    }

    /// The largest payload [`try_send`](Self::try_send) and [`reserve`](Self::reserve)
    /// accept, in bytes: the ring's frame cap.
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, _rx) = ringbell::spsc::channel(64)?;
    /// assert_eq!(tx.max_frame(), 24); // 64 / 2 - 8
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
    /// let (tx, _rx) = ringbell::spsc::channel(64)?;
    /// assert_eq!(tx.fences(), Fences::default_for_new_regions());
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
    /// let (tx, _rx) = ringbell::spsc::channel(4096)?;
    /// assert_eq!(tx.capacity(), 4096);
    /// # Ok::<(), ringbell::AttachError>(())
    /// ```
    #[inline]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes of the ring in use now — records not yet freed by the consumer, their 8-byte
    /// headers, slack and wrap padding included — at most [`capacity`](Self::capacity). A
    /// snapshot: it may shrink at any moment as the consumer receives.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, _rx) = ringbell::spsc::channel(4096)?;
    /// assert_eq!(tx.len(), 0);
    /// tx.try_send(0, &[0; 5])?;
    /// assert_eq!(tx.len(), 16); // 8-byte header + 5 bytes rounded up to 8
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn len(&self) -> usize {
        let read = self.mem.load_u64(READ_POS_OFF, Ordering::Relaxed);
        self.published.wrapping_sub(read).min(self.capacity as u64) as usize
    }

    /// Whether the consumer has freed everything sent ([`len`](Self::len) is 0). A snapshot:
    /// `true` stays true until this producer sends; `false` may go stale at any moment.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, mut rx) = ringbell::spsc::channel(4096)?;
    /// tx.try_send(0, b"x")?;
    /// assert!(!tx.is_empty());
    /// rx.try_recv()?;
    /// assert!(tx.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether not even an empty frame fits now. `false` stays false until this producer
    /// sends; `true` may go stale at any moment as the consumer frees space.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, _rx) = ringbell::spsc::channel(64)?;
    /// tx.try_send(0, &[0; 24])?;
    /// assert!(!tx.is_full()); // 32 of 64 bytes used
    /// tx.try_send(0, &[0; 24])?;
    /// assert!(tx.is_full());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_full(&self) -> bool {
        !self.can_send(0)
    }

    /// The memory this producer writes into.
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, _rx) = ringbell::spsc::channel(4096)?;
    /// assert_eq!(tx.shared_memory().len(), 1024 + 4096);
    /// # Ok::<(), ringbell::AttachError>(())
    /// ```
    pub fn shared_memory(&self) -> &S {
        &self.shm
    }

    /// Whether the consumer has closed its end. Once true it stays true.
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, rx) = ringbell::spsc::channel(4096)?;
    /// assert!(!tx.is_consumer_closed());
    /// drop(rx);
    /// assert!(tx.is_consumer_closed());
    /// # Ok::<(), ringbell::AttachError>(())
    /// ```
    pub fn is_consumer_closed(&self) -> bool {
        role::is_closed(&self.mem, CONSUMER_OWNER_OFF)
    }

    /// Re-reads the consumer's position. Possibly full → refresh → really full.
    #[cold]
    fn refresh_read(&mut self) -> Result<(), Corruption> {
        // Acquire: pairs with the Release store in `Consumer::release`; the consumer's reads of
        // the space it freed happen before we write into it.
        let read = self.mem.load_u64(READ_POS_OFF, Ordering::Acquire);
        // Valid iff on the grid and between the cached value and our write position.
        let moved = read.wrapping_sub(self.cached_read);
        if read % wire::ALIGN as u64 != 0 || moved > self.write.wrapping_sub(self.cached_read) {
            return Err(Corruption::ReadPosition { found: read });
        }
        self.cached_read = read;
        Ok(())
    }

    /// Reserves room for a frame of exactly `len` payload bytes and returns a [`Grant`] to
    /// fill it in place. Nothing is visible to the consumer until [`Grant::commit`];
    /// dropping the grant aborts.
    ///
    /// # Errors
    ///
    /// [`SendError::TooLarge`] at once if `len > max_frame()`; [`SendError::Closed`] if the
    /// consumer closed; [`SendError::Full`] if the free space is too small right now;
    /// [`SendError::Disconnected`] instead of `Full` once the consumer's process is seen dead;
    /// [`SendError::Forked`] in a forked child; [`SendError::Corrupt`] if the consumer's
    /// position is inconsistent.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::{spsc, SendError};
    ///
    /// let (mut tx, mut rx) = spsc::channel(64)?;
    /// assert_eq!(tx.max_frame(), 24);
    /// assert_eq!(tx.reserve(25).map(drop), Err(SendError::TooLarge { len: 25, max: 24 }));
    ///
    /// let mut grant = tx.reserve(3)?;
    /// grant.write_at(0, b"abc");
    /// grant.commit(9);
    /// assert_eq!(rx.try_recv()?.data, b"abc");
    ///
    /// drop(tx.reserve(3)?); // aborted: nothing is sent
    /// assert!(!rx.has_data());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn reserve(&mut self, len: usize) -> Result<Grant<'_, S, B>, SendError> {
        let (record, pad) = self.claim(len)?;
        Ok(Grant {
            producer: self,
            record,
            len,
            pad,
        })
    }

    /// Finds room for a record of `len` payload bytes: its data-area offset and the padding
    /// in front of it. Nothing is written. The copying sends use it directly (two words in
    /// registers) rather than through a [`Grant`].
    #[inline(always)]
    fn claim(&mut self, len: usize) -> Result<(usize, usize), SendError> {
        if len > self.frame_cap {
            return Err(SendError::TooLarge {
                len,
                max: self.frame_cap,
            });
        }
        if fork::forked(self.fork_gen) {
            return Err(SendError::Forked);
        }
        if self.is_consumer_closed() {
            return Err(SendError::Closed);
        }
        let (pad, need) = self.space_for(len);
        if need > self.capacity as u64 - self.write.wrapping_sub(self.cached_read) {
            self.refresh_read().map_err(SendError::Corrupt)?;
            if need > self.capacity as u64 - self.write.wrapping_sub(self.cached_read) {
                if self.peer.peer_dead_rate_limited(&self.mem) {
                    return Err(SendError::Disconnected);
                }
                return Err(SendError::Full);
            }
        }
        let record = if pad > 0 {
            0
        } else {
            (self.write & self.mask) as usize
        };
        Ok((record, pad))
    }

    /// Padding and total bytes a record of `len` payload bytes needs at our position.
    #[inline]
    fn space_for(&self, len: usize) -> (usize, u64) {
        let size = wire::record_size(len);
        let to_end = self.capacity - (self.write & self.mask) as usize;
        let pad = if size > to_end { to_end } else { 0 };
        (pad, (pad + size) as u64)
    }

    /// Sends one frame without waiting: `tag` travels untouched beside the payload `data`.
    ///
    /// # Errors
    ///
    /// As [`reserve`](Self::reserve); on error nothing was written.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::{spsc, SendError};
    ///
    /// let (mut tx, _rx) = spsc::channel(64)?;
    /// tx.try_send(1, &[0; 24])?; // 32 bytes with its header
    /// tx.try_send(2, &[0; 24])?;
    /// assert_eq!(tx.try_send(3, &[]), Err(SendError::Full));
    /// assert!(matches!(tx.try_send(4, &[0; 25]), Err(SendError::TooLarge { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn try_send(&mut self, tag: u32, data: &[u8]) -> Result<(), SendError> {
        let (record, pad) = self.claim(data.len())?;
        self.mem.copy_in(payload_off(record), data);
        self.publish(record, pad, data.len(), tag);
        Ok(())
    }

    /// Sends frames from `frames`, in order, while they fit, and publishes them together: one
    /// position store and one doorbell ring for the whole batch instead of one per frame, so
    /// the consumer sees all of them at once. Returns how many were sent: a prefix of
    /// `frames`. Sending the first frame not sent on its own tells why it stopped.
    ///
    /// If the `frames` iterator panics, the frames it had yielded are still sent: they are
    /// published by this producer's next send, or when it is dropped.
    ///
    /// # Errors
    ///
    /// Only when no frame was sent: as [`try_send`](Self::try_send) for the first frame.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::spsc;
    ///
    /// let (mut tx, mut rx) = spsc::channel(256)?;
    /// let frames = [(1, &b"a"[..]), (2, &b"bc"[..]), (3, &[0u8; 200][..])];
    /// assert_eq!(tx.try_send_batch(frames), Ok(2)); // the third does not fit now
    /// let mut buf = [0u8; 64];
    /// let mut tags = Vec::new();
    /// assert_eq!(rx.try_recv_batch_into(&mut buf, 16, |tag, _| tags.push(tag)), Ok(2));
    /// assert_eq!(tags, [1, 2]);
    /// # Ok::<(), ringbell::AttachError>(())
    /// ```
    pub fn try_send_batch<'a>(
        &mut self,
        frames: impl IntoIterator<Item = (u32, &'a [u8])>,
    ) -> Result<usize, SendError> {
        let mut sent = 0;
        for (tag, data) in frames {
            match self.claim(data.len()) {
                Ok((record, pad)) => {
                    self.mem.copy_in(payload_off(record), data);
                    self.write_headers(record, pad, data.len(), tag);
                    sent += 1;
                }
                Err(e) if sent == 0 => return Err(e),
                Err(_) => break,
            }
        }
        if sent > 0 {
            self.publish_position();
        }
        Ok(sent)
    }

    /// Sends one frame, waiting as long as it takes for room.
    ///
    /// Spins briefly, then sleeps on the ring's space doorbell in bounded slices, re-checking
    /// the consumer's closed flag after each wake and whether its process died after each
    /// slice.
    ///
    /// # Errors
    ///
    /// [`SendError::TooLarge`] at once; [`SendError::Closed`] if the consumer closes;
    /// [`SendError::Disconnected`] if its process dies; [`SendError::Forked`];
    /// [`SendError::Corrupt`]. Never `Full`.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, mut rx) = ringbell::spsc::channel(64)?;
    /// let consumer = std::thread::spawn(move || {
    ///     (0..100).map(|_| rx.recv().unwrap().tag).sum::<u32>()
    /// });
    /// for i in 0..100 {
    ///     tx.send(i, &[0; 24])?; // blocks while the tiny ring is full
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
    /// As [`send`](Self::send), and [`SendError::Timeout`] — with nothing written — if there
    /// was no room in time.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::SendError;
    /// use std::time::Duration;
    ///
    /// let (mut tx, _rx) = ringbell::spsc::channel(64)?;
    /// tx.send_timeout(0, &[0; 24], Duration::from_millis(10))?;
    /// tx.send_timeout(0, &[0; 24], Duration::from_millis(10))?;
    /// let full = tx.send_timeout(0, &[0; 24], Duration::from_millis(10));
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
        loop {
            match self.try_send(tag, data) {
                Err(SendError::Full) => {}
                done => return done,
            }
            deadline = deadline.start();
            let room = self.room_or_report(data.len());
            let waited = self
                .waiter
                .wait_sliced(&self.space_bell, room, deadline, || {
                    // Between slices: see whether the consumer's process died.
                    self.peer
                        .peer_dead(&self.mem)
                        .then_some(SendError::Disconnected)
                });
            match waited {
                Ok(()) => {}
                Err(Stop::Timeout) => return Err(SendError::Timeout),
                Err(Stop::By(e)) => return Err(e),
            }
        }
    }

    /// Whether a frame of `len` payload bytes would be accepted now: it is within the frame
    /// cap and fits the free space. A pure peek: it changes nothing, here or in shared memory.
    /// `false` may go stale at any moment as the consumer frees space; `true` stays true until
    /// this producer sends (unless the consumer closes).
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, _rx) = ringbell::spsc::channel(64)?;
    /// assert!(tx.can_send(24));
    /// assert!(!tx.can_send(25)); // above the frame cap: never
    /// tx.try_send(0, &[0; 24])?;
    /// tx.try_send(0, &[0; 24])?;
    /// assert!(!tx.can_send(0)); // full
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn can_send(&self, len: usize) -> bool {
        if len > self.frame_cap {
            return false;
        }
        let (_, need) = self.space_for(len);
        // Acquire: pairs with the Release in `Consumer::release`.
        let read = self.mem.load_u64(READ_POS_OFF, Ordering::Acquire);
        let used = self.write.wrapping_sub(read);
        used <= self.capacity as u64 && self.capacity as u64 - used >= need
    }

    /// The condition a blocked send waits for: a record of `len` bytes fits, or there is
    /// something to report (the consumer closed, its position looks corrupt: the next
    /// `try_send` reports those). Also what a channel server asks of a blocked response.
    pub(crate) fn room_or_report(&self, len: usize) -> impl Fn() -> bool + Copy + use<S, B> {
        let (_, need) = self.space_for(len);
        let (mem, write, capacity) = (self.mem, self.write, self.capacity as u64);
        let cached = self.cached_read;
        let watch_close = mutant::keep(Mutant::RoomIgnoresClose);
        move || {
            // Acquire: pairs with the Release in `Consumer::release`.
            let read = mem.load_u64(READ_POS_OFF, Ordering::Acquire);
            // The same validity rule as `refresh_read`: a position that is off the grid or
            // moved backwards makes the next `try_send` report corruption instead of waiting.
            let valid = read % wire::ALIGN as u64 == 0
                && read.wrapping_sub(cached) <= write.wrapping_sub(cached);
            !valid
                || capacity - write.wrapping_sub(read) >= need
                || (watch_close && role::is_closed(&mem, CONSUMER_OWNER_OFF))
        }
    }

    /// Makes this producer's rings of the data doorbell answer the consumer's async waits
    /// ([`Consumer::poll_ready`](super::Consumer::poll_ready)) through `signal`, the
    /// consumer's readiness (in another process: its descriptor,
    /// [`ReadinessSignal::from_fd`](crate::doorbell::ReadinessSignal::from_fd)). `None`:
    /// plain rings.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::doorbell::Readiness;
    ///
    /// let (mut tx, _rx) = ringbell::spsc::channel(4096)?;
    /// let consumers = Readiness::new()?;
    /// tx.set_peer_readiness(Some(consumers.signal()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "std")]
    pub fn set_peer_readiness(&mut self, signal: Option<crate::doorbell::ReadinessSignal>) {
        self.waiter.set_readiness(signal);
    }

    /// The async waiter's step on this ring's space doorbell: drains `readiness`,
    /// announces, re-checks for room for a frame of `len` bytes (or the consumer's close).
    /// The consumer must ring with this readiness's signal
    /// ([`Consumer::set_peer_readiness`](super::Consumer::set_peer_readiness)).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::doorbell::{Announced, Readiness};
    ///
    /// let (tx, _rx) = ringbell::spsc::channel(4096)?;
    /// let readiness = Readiness::new()?;
    /// assert_eq!(tx.poll_room(&readiness, 16), Announced::Ready); // an empty ring has room
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "std")]
    pub fn poll_room(
        &self,
        readiness: &crate::doorbell::Readiness,
        len: usize,
    ) -> crate::doorbell::Announced {
        self.waiter.count_sleep();
        let room = self.room_or_report(len);
        self.space_bell.announce_async(readiness, room)
    }

    /// As [`poll_room`](Self::poll_room) for a waiter that already announced on another line
    /// with the same readiness in this round (that announcement drained it; this one must
    /// not).
    #[cfg(feature = "tokio")]
    pub(crate) fn poll_room_more(
        &self,
        readiness: &crate::doorbell::Readiness,
        len: usize,
    ) -> crate::doorbell::Announced {
        let room = self.room_or_report(len);
        self.space_bell.announce_async_more(readiness, room)
    }

    /// The peer's readiness signal this producer rings with, for the test hooks.
    #[cfg(all(feature = "test-hooks", not(loom)))]
    pub(crate) fn peer_readiness(&self) -> Option<&crate::doorbell::ReadinessSignal> {
        self.waiter.readiness()
    }

    /// How blocking calls wait (for the async ends' slices).
    #[cfg(feature = "tokio")]
    pub(crate) fn wait_options(&self) -> crate::doorbell::WaitOptions {
        self.waiter.options()
    }

    /// Whether the consumer's process died without closing. System calls: the slow path.
    #[cfg(feature = "tokio")]
    pub(crate) fn consumer_died(&self) -> bool {
        self.peer.peer_dead(&self.mem)
    }

    /// How blocking calls wait (spin budget, sleep slice).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::doorbell::WaitOptions;
    ///
    /// let (mut tx, _rx) = ringbell::spsc::channel(4096)?;
    /// tx.set_wait_options(WaitOptions::new().spin_budget(0));
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
    /// let (mut tx, _rx) = ringbell::spsc::channel(4096)?;
    /// tx.try_send(0, b"x")?;
    /// assert_eq!(tx.stats().wakes, 0); // the consumer was not asleep
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stats(&self) -> WaitStats {
        self.waiter.stats()
    }

    /// Writes the headers of a filled grant and publishes it.
    #[inline(always)]
    fn publish(&mut self, record: usize, pad: usize, len: usize, tag: u32) {
        self.write_headers(record, pad, len, tag);
        self.publish_position();
    }

    /// Writes the headers of a filled grant and moves our position past it, without
    /// publishing: the consumer sees nothing until [`publish_position`](Self::publish_position).
    #[inline(always)]
    fn write_headers(&mut self, record: usize, pad: usize, len: usize, tag: u32) {
        let mem = &self.mem;
        if pad > 0 {
            let at = HEADER_SIZE + (self.write & self.mask) as usize;
            mem.store_u32(at, wire::padding_word(pad), Ordering::Relaxed);
        }
        let at = HEADER_SIZE + record;
        mem.store_u32(at + 4, tag, Ordering::Relaxed);
        mem.store_u32(at, wire::record_word(len), Ordering::Relaxed);
        self.write = self
            .write
            .wrapping_add((pad + wire::record_size(len)) as u64);
    }

    /// Publishes our position (every record written so far) and rings the data doorbell.
    #[inline(always)]
    fn publish_position(&mut self) {
        self.published = self.write;
        // Release: pairs with the Acquire loads of WRITE_POS in `Consumer::refresh_write` and
        // `Consumer::has_data`; the payload and headers above are visible before the position.
        let publish = mutant::weaken(Mutant::RelaxedPublish, Ordering::Release);
        self.mem.store_u64(WRITE_POS_OFF, self.write, publish);
        self.waiter.ring(&self.data_bell);
    }
}

impl<S: SharedMemory, B: SharedMemory> Drop for Producer<S, B> {
    fn drop(&mut self) {
        // A copy inherited across `fork` is not the holder: closing would end the parent's
        // stream behind its back.
        if !fork::forked(self.fork_gen) {
            // Records written by a batch whose frame iterator panicked go out before the close.
            if self.published != self.write {
                self.publish_position();
            }
            role::close(&self.mem, PRODUCER_OWNER_OFF, self.owner);
            // Wake a consumer asleep on an empty ring so it sees the close at once.
            self.waiter.ring(&self.data_bell);
        }
    }
}

impl<S: SharedMemory, B: SharedMemory> fmt::Debug for Producer<S, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("capacity", &self.capacity)
            .field("frame_cap", &self.frame_cap)
            .field("write", &self.write)
            .field("cached_read", &self.cached_read)
            .field("owner", &self.owner)
            .finish()
    }
}

/// Room for one frame, reserved by [`Producer::reserve`]. Fill it, then
/// [`commit`](Self::commit); dropping it aborts and sends nothing.
///
/// # Examples
///
/// ```
/// let (mut tx, mut rx) = ringbell::spsc::channel(4096)?;
/// let mut grant = tx.reserve(8)?;
/// grant.write_at(0, &7u64.to_le_bytes());
/// grant.commit(1);
/// assert_eq!(rx.try_recv()?.data, 7u64.to_le_bytes());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "a grant sends nothing until it is committed; dropping it aborts"]
pub struct Grant<'a, S: SharedMemory, B: SharedMemory = S> {
    producer: &'a mut Producer<S, B>,
    /// Data-area offset of the record header.
    record: usize,
    /// Payload bytes reserved.
    len: usize,
    /// Bytes of padding to write before the record (0 if it does not wrap).
    pad: usize,
}

impl<S: SharedMemory, B: SharedMemory> Grant<'_, S, B> {
    /// Payload bytes reserved.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, _rx) = ringbell::spsc::channel(4096)?;
    /// assert_eq!(tx.reserve(5)?.len(), 5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the grant is for a zero-length frame.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, _rx) = ringbell::spsc::channel(4096)?;
    /// assert!(tx.reserve(0)?.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies `src` into the grant at byte `offset`.
    ///
    /// # Panics
    ///
    /// If `offset + src.len()` exceeds [`len`](Self::len) — a bug in the caller, like an
    /// out-of-range slice index.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, mut rx) = ringbell::spsc::channel(4096)?;
    /// let mut grant = tx.reserve(4)?;
    /// grant.write_at(2, b"cd");
    /// grant.write_at(0, b"ab");
    /// grant.commit(0);
    /// assert_eq!(rx.try_recv()?.data, b"abcd");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn write_at(&mut self, offset: usize, src: &[u8]) {
        assert!(
            offset <= self.len && src.len() <= self.len - offset,
            "write of {} bytes at {offset} past a grant of {}",
            src.len(),
            self.len
        );
        self.producer
            .mem
            .copy_in(payload_off(self.record) + offset, src);
    }

    /// Copies `src`, which must be exactly [`len`](Self::len) bytes, into the grant.
    ///
    /// # Panics
    ///
    /// If `src.len() != self.len()`.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, mut rx) = ringbell::spsc::channel(4096)?;
    /// let mut grant = tx.reserve(3)?;
    /// grant.copy_from_slice(b"abc");
    /// grant.commit(0);
    /// assert_eq!(rx.try_recv()?.data, b"abc");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn copy_from_slice(&mut self, src: &[u8]) {
        assert_eq!(src.len(), self.len, "source length differs from the grant");
        self.producer.mem.copy_in(payload_off(self.record), src);
    }

    /// The reserved payload bytes as a slice, for writing in place.
    ///
    /// # Safety
    ///
    /// For trusted peers only: nothing else may read or write these bytes while the slice
    /// lives. A correct consumer never does (the bytes are not published yet); a buggy or
    /// hostile process that maps the same memory could, and that would be a data race.
    /// The bytes' initial contents are whatever the ring last held there.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, mut rx) = ringbell::spsc::channel(4096)?;
    /// let mut grant = tx.reserve(4)?;
    /// // SAFETY: the consumer is ours and correct; nobody else maps the ring.
    /// unsafe { grant.as_mut_slice() }.copy_from_slice(b"fast");
    /// grant.commit(0);
    /// assert_eq!(rx.try_recv()?.data, b"fast");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    #[cfg(not(loom))]
    pub unsafe fn as_mut_slice(&mut self) -> &mut [u8] {
        let ptr = self
            .producer
            .mem
            .bytes_ptr(payload_off(self.record), self.len);
        // SAFETY: `ptr` points at `len` bytes inside the mapping, which outlives `self`
        // (the producer borrows its keep-alive); the caller promises exclusive access, and the
        // `&mut self` borrow stops a second slice from this grant.
        unsafe { core::slice::from_raw_parts_mut(ptr, self.len) }
    }

    /// Publishes the frame with all [`len`](Self::len) bytes and `tag`.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, mut rx) = ringbell::spsc::channel(4096)?;
    /// let mut grant = tx.reserve(2)?;
    /// grant.copy_from_slice(b"ok");
    /// grant.commit(42);
    /// assert_eq!(rx.try_recv()?.tag, 42);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn commit(self, tag: u32) {
        let len = self.len;
        self.commit_len(tag, len);
    }

    /// Publishes the frame with only its first `used` bytes (clamped to
    /// [`len`](Self::len)) and `tag`: reserve for the largest, commit what you wrote.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, mut rx) = ringbell::spsc::channel(4096)?;
    /// let mut grant = tx.reserve(100)?;
    /// grant.write_at(0, b"short");
    /// grant.commit_len(0, 5);
    /// assert_eq!(rx.try_recv()?.data, b"short");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn commit_len(self, tag: u32, used: usize) {
        let used = used.min(self.len);
        // A grant has no `Drop`: aborting needs no work, as nothing was published.
        self.producer.publish(self.record, self.pad, used, tag);
    }
}

impl<S: SharedMemory, B: SharedMemory> fmt::Debug for Grant<'_, S, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Grant")
            .field("record", &self.record)
            .field("len", &self.len)
            .field("pad", &self.pad)
            .finish()
    }
}
