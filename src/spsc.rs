//! A single-producer single-consumer ring of variable-length frames in shared memory.
//!
//! # What it guarantees
//!
//! * **Lock-free and wait-free.** [`Producer::try_send`], [`Producer::reserve`],
//!   [`Consumer::try_recv_into`] and [`Consumer::try_read`] finish in a bounded number of
//!   steps whatever the peer does; they never block, and make no system call except, when
//!   about to report `Full` or `Empty`, a dead-peer check at most once per 10 ms.
//! * **Order.** Frames arrive in the order they were committed, each exactly once.
//! * **No silent drop.** A frame above the [frame cap](Producer::max_frame) is refused at
//!   once with [`SendError::TooLarge`]; a full ring returns [`SendError::Full`]; a consumer
//!   that closed its end returns [`SendError::Closed`].
//! * **Untrusted peer.** Every word read from shared memory is read once, validated, and
//!   used from the local copy. A peer that writes garbage produces
//!   [`Corrupt`](crate::Corruption) errors — never a panic, an out-of-bounds access or an
//!   endless loop. The default read path copies the payload out.
//!
//! The `try_` calls never block. The blocking calls — [`Producer::send`],
//! [`Producer::send_timeout`], [`Consumer::recv_into`], [`Consumer::recv_into_timeout`],
//! [`Consumer::recv`], [`Consumer::recv_timeout`], [`Consumer::wait_until`] — spin briefly,
//! then sleep on the ring's [doorbells](crate::doorbell): the producer rings the *data* bell
//! after each publish and the consumer rings the *space* bell as described under "Waking a
//! producer" below; a ring costs a fence and a load, and a system call only when the other
//! side announced a sleep. A
//! blocking call returns when it can proceed, when its deadline passes (`Timeout`), when the
//! peer closed its end (`Closed`, seen at once), or when the peer's process died without
//! closing (`Disconnected`, seen within one sleep slice, 50 ms by default: between slices the
//! call polls a pidfd of the peer's process, taken when it first saw the peer; this needs
//! owner ids from [`OwnerId::unique`], which carry the process id). Frames a dead producer
//! committed are still delivered first. [`Consumer::wait_until`] waits for the caller's own
//! condition and does not watch the peer.
//!
//! # The protocol
//!
//! Two `u64` positions count bytes since the ring was created and only grow (wrapping):
//! `write` (the producer's, on its own cache line) and `read` (the consumer's). A byte
//! position `p` lives at data offset `p & mask`. The bytes in `read..write` hold published
//! records; the rest is free. Each side keeps a private copy of its own position (it is the
//! only writer) and a cached copy of the other's, which it refreshes only when the cache says
//! full or empty.
//!
//! * The producer writes a record — payload bytes, then its header words, and a padding
//!   record first if it must wrap — into free space, then stores `write` with **Release**.
//! * The consumer loads `write` with **Acquire**, so every byte of every record before it is
//!   visible; it reads a record, then stores `read` with **Release** to free it.
//! * The producer loads `read` with **Acquire** before reusing space, so the consumer's
//!   reads of that space happened before the producer's new writes.
//!
//! No byte range is ever accessed by both sides at once: ownership passes with each
//! Release/Acquire pair. A record up to half the capacity (header included) always fits once
//! the ring is empty, because the padding in front of it is shorter than the record.
//!
//! # Waking a producer
//!
//! The consumer stores its position after every record (or batch), but rings the space
//! doorbell only when the position crosses a multiple of a sixteenth of the ring, or when it
//! has caught up with every record it knows of (`read == cached_write`). Ringing per record
//! turned a producer that outruns its consumer into a futex wake per frame once both shared a
//! CPU. The argument that no producer sleeps for ever: a producer sleeps only after
//! announcing it and then re-reading `read` (the doorbell's fence pair); if that re-read
//! missed a release, the consumer, as long as it keeps receiving, rings at the next step or
//! when it catches up — and a producer that sleeps publishes nothing, so the consumer does
//! catch up. A receive that stops short of catching up — a frame its buffer cannot hold
//! (`BufferTooSmall`), a fan-in pausing the ring — rings for the space freed since the last
//! ring. What is left: a consumer that simply stops calling with frames left in a full ring
//! lets the producer see the space freed since the last ring at the end of its sleep slice
//! (50 ms by default). A channel's request rings ring after every release instead: a client
//! blocked on a full request ring collects its responses when woken for space. The loom
//! models run with the step set to the whole ring; mutant `spsc_no_catch_up_ring` (no ring on
//! catching up) deadlocks `has_data_is_honest_and_close_is_seen`; test
//! `a_consumer_stopping_short_wakes_a_blocked_producer` covers the stop short.
//!
//! # Validation
//!
//! A position read from the peer is accepted only if it stays on the 8-byte grid, did not move
//! backwards, and keeps `write - read <= capacity` (all in wrapping arithmetic, so values near
//! `u64::MAX` are fine). A record header is accepted only if it is committed, within the frame
//! cap, inside the data area and inside the published bytes; padding only if it reaches the
//! end of the data area exactly and does not start at offset 0.
//!
//! # Zero copy
//!
//! [`Grant`] (producer side) and [`ReadGuard`] (consumer side) expose the record in place
//! through copying methods that are sound whatever the peer does. Their `as_mut_slice` and
//! `as_slice` methods hand out Rust slices into shared memory; they are `unsafe fn`s for
//! trusted peers only, because a peer writing those bytes at the same time is a data race.
//!
//! # Examples
//!
//! ```
//! use ringbell::spsc;
//!
//! let (mut tx, mut rx) = spsc::channel(4096).unwrap();
//! tx.try_send(1, b"hello").unwrap();
//! let mut grant = tx.reserve(5).unwrap();
//! grant.copy_from_slice(b"world");
//! grant.commit(2);
//!
//! let mut buf = [0u8; 64];
//! assert_eq!(rx.try_recv_into(&mut buf).unwrap(), (1, 5));
//! assert_eq!(&buf[..5], b"hello");
//! let frame = rx.try_recv().unwrap();
//! assert_eq!((frame.tag, &frame.data[..]), (2, &b"world"[..]));
//! assert!(!rx.has_data());
//! ```

use core::fmt;
use core::time::Duration;

use crate::doorbell::{Doorbell, WaitOptions, WaitStats, Waiter};
use crate::error::{AttachError, Corruption, HeaderError, RecvError, SendError};
use crate::frame::{self, Decoded};
use crate::futex::Instant;
use crate::layout::{
    self, CONSUMER_OWNER_OFF, DATA_BELL_OFF, Geometry, HEADER_SIZE, PRODUCER_OWNER_OFF,
    READ_POS_OFF, RingKind, SPACE_BELL_OFF, WRITE_POS_OFF,
};
use crate::mem::{Mem, SharedMemory};
use crate::mutant::{self, Mutant};
use crate::role::{self, OwnerId, PeerWatch};
use crate::sync::Ordering;

/// How to create an SPSC ring.
///
/// # Examples
///
/// ```
/// use ringbell::spsc::RingConfig;
///
/// let cfg = RingConfig::new(1 << 16).frame_cap(1024);
/// assert_eq!(cfg.region_size().unwrap(), 1024 + (1 << 16));
/// assert!(RingConfig::new(1000).region_size().is_err()); // not a power of two
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingConfig {
    capacity: usize,
    frame_cap: Option<usize>,
    start_position: u64,
    shared_bell: bool,
    shared_space_bell: bool,
}

impl RingConfig {
    /// A ring whose data area holds `capacity` bytes: a power of two from
    /// [`MIN_CAPACITY`](layout::MIN_CAPACITY) to [`MAX_CAPACITY`](layout::MAX_CAPACITY).
    /// The frame cap defaults to the largest allowed, `capacity / 2 - 8`.
    pub const fn new(capacity: usize) -> Self {
        Self {
            capacity,
            frame_cap: None,
            start_position: 0,
            shared_bell: false,
            shared_space_bell: false,
        }
    }

    /// Makes the ring part of a fan-in: its producer rings the fan-in's shared doorbell
    /// ([`Producer::attach_shared_bell`]) and its consumer is a [`FanIn`](crate::fanin::FanIn).
    pub const fn shared_bell(mut self) -> Self {
        self.shared_bell = true;
        self
    }

    /// Makes the ring's consumer ring a shared doorbell (a bell region) when it frees space,
    /// and its producer sleep on that doorbell while the ring is full
    /// ([`Consumer::attach_shared_space_bell`], [`Producer::attach_shared_space_bell`]). A
    /// channel server's response rings are made so: the clients' reads wake the one server
    /// thread that writes to all of them.
    pub const fn shared_space_bell(mut self) -> Self {
        self.shared_space_bell = true;
        self
    }

    /// Caps frames at `max` payload bytes (at most `capacity / 2 - 8`).
    pub const fn frame_cap(mut self, max: usize) -> Self {
        self.frame_cap = Some(max);
        self
    }

    /// Starts both positions at `position` (a multiple of 8) instead of 0. Positions are
    /// wrapping `u64` counters; starting near `u64::MAX` exercises their wrap in tests.
    pub const fn start_position(mut self, position: u64) -> Self {
        self.start_position = position;
        self
    }

    /// The data-area capacity requested.
    pub const fn capacity(&self) -> usize {
        self.capacity
    }

    /// Checks the configuration and returns the ring's geometry.
    ///
    /// # Errors
    ///
    /// [`HeaderError::BadCapacity`], [`HeaderError::BadFrameCap`] or
    /// [`HeaderError::BadStartPosition`].
    pub fn geometry(&self) -> Result<Geometry, HeaderError> {
        if self.start_position % frame::ALIGN as u64 != 0 {
            return Err(HeaderError::BadStartPosition {
                position: self.start_position,
            });
        }
        let mut geo = layout::geometry(RingKind::Spsc, self.capacity, self.frame_cap)?;
        if self.shared_bell {
            geo.flags |= layout::FLAG_SHARED_BELL;
        }
        if self.shared_space_bell {
            geo.flags |= layout::FLAG_SHARED_SPACE_BELL;
        }
        Ok(geo)
    }

    /// Bytes of shared memory the ring needs: header plus capacity.
    ///
    /// # Errors
    ///
    /// As [`geometry`](Self::geometry).
    pub fn region_size(&self) -> Result<usize, HeaderError> {
        self.geometry().map(|g| g.region_size())
    }
}

/// Writes a fresh SPSC ring header into `shm`, making it ready to attach.
///
/// Call it once, on memory nobody uses yet: re-initialising a live ring loses its frames.
/// Under `std`, [`Region::create_spsc`](crate::region::Region::create_spsc) and
/// [`HeapRegion::new_spsc`](crate::region::HeapRegion::new_spsc) call it for you.
///
/// # Errors
///
/// The configuration's errors (see [`RingConfig::geometry`]), or
/// [`HeaderError::SizeMismatch`] if `shm` is smaller than
/// [`RingConfig::region_size`].
pub fn init<S: SharedMemory + ?Sized>(shm: &S, cfg: &RingConfig) -> Result<Geometry, HeaderError> {
    let geo = cfg.geometry()?;
    layout::init(&shm.mem(), &geo, cfg.start_position)?;
    Ok(geo)
}

/// Validates a position pair read at attach time.
fn check_positions(write: u64, read: u64, capacity: usize) -> Result<(), Corruption> {
    if write % frame::ALIGN as u64 != 0 {
        return Err(Corruption::WritePosition { found: write });
    }
    if read % frame::ALIGN as u64 != 0 || write.wrapping_sub(read) > capacity as u64 {
        return Err(Corruption::ReadPosition { found: read });
    }
    Ok(())
}

/// How much space a consumer that is behind frees between two rings of the space doorbell: a
/// sixteenth of the ring. Loom models use 32-byte rings; there the step is the whole ring, so
/// the models meet releases that do not ring.
pub(crate) fn wake_step(capacity: usize) -> u64 {
    #[cfg(not(loom))]
    let step = capacity / 16;
    #[cfg(loom)]
    let step = capacity;
    step.max(frame::ALIGN) as u64
}

/// Byte offset in the region of the payload of the record at data-area offset `record`.
#[inline(always)]
fn payload_off(record: usize) -> usize {
    HEADER_SIZE + record + frame::RECORD_HEADER
}

/// A cache line, for the consumer's prefetches.
const LINE: u64 = 64;

/// How far past the record being read the consumer prefetches (see
/// `Consumer::prefetch_ahead`); measured best among 128 B–4 KiB for 64-byte frames.
const PREFETCH_AHEAD: usize = 1024;

/// The writing end of an SPSC ring.
///
/// Dropping it closes the producer role for good: the consumer drains what was sent, then
/// sees [`RecvError::Closed`].
pub struct Producer<S: SharedMemory> {
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
    /// The fork generation it attached in (see `role::fork_generation`): a copy inherited by
    /// a forked child neither acts nor closes the role.
    fork_gen: u32,
    /// Rung after each publish.
    data_bell: Doorbell,
    /// Waited on while the ring is full.
    space_bell: Doorbell,
    /// Notices a consumer whose process died without closing (checked between sleeps).
    peer: PeerWatch,
    /// Wait options, adaptive spin state, counters.
    waiter: Waiter,
    /// Keep shared doorbells (a fan-in's, a channel server's) alive.
    _bell_shm: [Option<S>; 2],
    /// Keeps the memory behind `mem` alive.
    shm: S,
}

impl<S: SharedMemory> Producer<S> {
    /// Claims the producer role of the ring in `shm` for `owner`.
    ///
    /// # Errors
    ///
    /// [`AttachError::Header`] if the header is invalid, [`AttachError::RoleTaken`] if another
    /// handle holds the role, [`AttachError::RoleClosed`] if a previous producer closed it,
    /// [`AttachError::Corrupt`] if the positions are inconsistent.
    pub fn attach(shm: S, owner: OwnerId) -> Result<Self, AttachError> {
        Self::attach_inner(shm, None, None, owner)
    }

    /// Claims the producer role of a fan-in ring in `ring` (created with
    /// [`RingConfig::shared_bell`]); publishes ring the doorbell in the bell region `bell`
    /// (see [`crate::fanin`]) instead of the ring's own.
    ///
    /// # Errors
    ///
    /// As [`attach`](Self::attach); [`AttachError::WrongBell`] if the ring is not a fan-in
    /// ring; [`AttachError::Header`] if `bell` is not a valid bell region.
    pub fn attach_shared_bell(ring: S, bell: S, owner: OwnerId) -> Result<Self, AttachError> {
        Self::attach_inner(ring, Some(bell), None, owner)
    }

    /// Claims the producer role of a ring created with [`RingConfig::shared_space_bell`]:
    /// while the ring is full, blocking sends sleep on the doorbell in the bell region `bell`,
    /// which the consumer rings when it frees space (see the module docs, "Waking a producer").
    ///
    /// # Errors
    ///
    /// As [`attach`](Self::attach); [`AttachError::WrongBell`] if the ring was not made so;
    /// [`AttachError::Header`] if `bell` is not a valid bell region.
    pub fn attach_shared_space_bell(ring: S, bell: S, owner: OwnerId) -> Result<Self, AttachError> {
        Self::attach_inner(ring, None, Some(bell), owner)
    }

    fn attach_inner(
        shm: S,
        bell: Option<S>,
        space: Option<S>,
        owner: OwnerId,
    ) -> Result<Self, AttachError> {
        let bell = match bell {
            Some(b) => Some((crate::doorbell::bell_of(&b)?, b)),
            None => None,
        };
        let space = match space {
            Some(b) => Some((crate::doorbell::bell_of(&b)?, b)),
            None => None,
        };
        Self::attach_with(shm, bell, space, owner)
    }

    /// Attaches with shared doorbells already located (and their regions checked once, when
    /// they were created or opened): a hostile peer that rewrites a shared bell region's
    /// header later cannot stop new attaches.
    pub(crate) fn attach_with(
        shm: S,
        bell: Option<(Doorbell, S)>,
        space: Option<(Doorbell, S)>,
        owner: OwnerId,
    ) -> Result<Self, AttachError> {
        let mem = shm.mem();
        let geo = layout::validate(&mem, RingKind::Spsc)?;
        let shared = geo.flags & layout::FLAG_SHARED_BELL != 0;
        let shared_space = geo.flags & layout::FLAG_SHARED_SPACE_BELL != 0;
        if shared != bell.is_some() || shared_space != space.is_some() {
            return Err(AttachError::WrongBell);
        }
        let (data_bell, bell) = match bell {
            Some((d, b)) => (d, Some(b)),
            None => (Doorbell::at(mem, DATA_BELL_OFF), None),
        };
        let (space_bell, space) = match space {
            Some((d, b)) => (d, Some(b)),
            None => (Doorbell::at(mem, SPACE_BELL_OFF), None),
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
            fork_gen: role::fork_generation(),
            data_bell,
            space_bell,
            peer: PeerWatch::new(CONSUMER_OWNER_OFF).primed(&mem),
            waiter: Waiter::new(WaitOptions::default()),
            _bell_shm: [bell, space],
            shm,
        })
    }

    /// The largest payload [`try_send`](Self::try_send) and [`reserve`](Self::reserve)
    /// accept, in bytes.
    #[inline]
    pub fn max_frame(&self) -> usize {
        self.frame_cap
    }

    /// The ring's data-area capacity in bytes.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The memory this producer writes into.
    pub fn shared_memory(&self) -> &S {
        &self.shm
    }

    /// Whether the consumer has closed its end. Once true it stays true.
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
        if read % frame::ALIGN as u64 != 0 || moved > self.write.wrapping_sub(self.cached_read) {
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
    /// [`SendError::Forked`] in a forked child;
    /// [`SendError::Corrupt`] if the consumer's position is inconsistent.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::spsc;
    /// use ringbell::SendError;
    ///
    /// let (mut tx, mut rx) = spsc::channel(64).unwrap();
    /// assert_eq!(tx.max_frame(), 24);
    /// assert_eq!(tx.reserve(25).unwrap_err(), SendError::TooLarge { len: 25, max: 24 });
    ///
    /// let mut grant = tx.reserve(3).unwrap();
    /// grant.write_at(0, b"abc");
    /// grant.commit(9);
    /// assert_eq!(rx.try_recv().unwrap().data, b"abc");
    ///
    /// drop(tx.reserve(3).unwrap()); // aborted: nothing is sent
    /// assert!(!rx.has_data());
    /// ```
    #[inline]
    pub fn reserve(&mut self, len: usize) -> Result<Grant<'_, S>, SendError> {
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
        if role::forked(self.fork_gen) {
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
        let size = frame::record_size(len);
        let to_end = self.capacity - (self.write & self.mask) as usize;
        let pad = if size > to_end { to_end } else { 0 };
        (pad, (pad + size) as u64)
    }

    /// Sends one frame: `tag` travels untouched beside the payload `data`.
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
    /// let (mut tx, _rx) = spsc::channel(64).unwrap();
    /// tx.try_send(1, &[0; 24]).unwrap(); // 32 bytes with its header
    /// tx.try_send(2, &[0; 24]).unwrap();
    /// assert_eq!(tx.try_send(3, &[]), Err(SendError::Full));
    /// assert!(matches!(tx.try_send(4, &[0; 25]), Err(SendError::TooLarge { .. })));
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
    /// let (mut tx, mut rx) = spsc::channel(256).unwrap();
    /// let frames = [(1, &b"a"[..]), (2, &b"bc"[..]), (3, &[0u8; 200][..])];
    /// assert_eq!(tx.try_send_batch(frames), Ok(2)); // the third does not fit now
    /// let mut buf = [0u8; 64];
    /// let mut tags = Vec::new();
    /// assert_eq!(rx.try_recv_batch_into(&mut buf, 16, |tag, _| tags.push(tag)), Ok(2));
    /// assert_eq!(tags, [1, 2]);
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
    /// the consumer's closed flag after each.
    ///
    /// # Errors
    ///
    /// [`SendError::TooLarge`] at once; [`SendError::Closed`] if the consumer closes;
    /// [`SendError::Corrupt`]. Never `Full`.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, mut rx) = ringbell::spsc::channel(64).unwrap();
    /// let consumer = std::thread::spawn(move || {
    ///     (0..100).map(|_| rx.recv().unwrap().tag).sum::<u32>()
    /// });
    /// for i in 0..100 {
    ///     tx.send(i, &[0; 24]).unwrap(); // blocks while the tiny ring is full
    /// }
    /// assert_eq!(consumer.join().unwrap(), (0..100).sum());
    /// ```
    pub fn send(&mut self, tag: u32, data: &[u8]) -> Result<(), SendError> {
        self.send_deadline(tag, data, None)
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
    /// let (mut tx, _rx) = ringbell::spsc::channel(64).unwrap();
    /// tx.send_timeout(0, &[0; 24], Duration::from_millis(10)).unwrap();
    /// tx.send_timeout(0, &[0; 24], Duration::from_millis(10)).unwrap();
    /// let full = tx.send_timeout(0, &[0; 24], Duration::from_millis(10));
    /// assert_eq!(full, Err(SendError::Timeout));
    /// ```
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
        loop {
            match self.try_send(tag, data) {
                Err(SendError::Full) => {}
                done => return done,
            }
            self.wait_for_space(data.len(), deadline)?;
        }
    }

    /// Whether a [`try_send`](Self::try_send) of `len` bytes would return something other
    /// than [`SendError::Full`] now: the frame fits, or there is something to report (too
    /// large, consumer closed, a corrupt position). A pure peek: it changes nothing, here or
    /// in shared memory. `true` stays true until this producer sends; `false` may go stale at
    /// any moment.
    pub fn can_send(&self, len: usize) -> bool {
        len > self.frame_cap || self.room_for(len)()
    }

    /// Waits until a record of `len` bytes fits (or the consumer closed, or its position
    /// looks corrupt: the next `try_send` reports those).
    fn wait_for_space(&mut self, len: usize, deadline: Option<Instant>) -> Result<(), SendError> {
        let room = self.room_for(len);
        // Sleep in slices; between them, see whether the consumer's process died.
        loop {
            let slice_end = Instant::now().after(self.waiter.options().get_slice());
            let until = deadline.map_or(slice_end, |d| d.min(slice_end));
            if self
                .waiter
                .wait(&self.space_bell, room, Some(until))
                .is_ok()
            {
                return Ok(());
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(SendError::Timeout);
            }
            if self.peer.peer_dead(&self.mem) {
                return Err(SendError::Disconnected);
            }
        }
    }

    /// The condition "a record of `len` bytes fits, or there is something to report", as a
    /// closure over copies (usable while `self` is borrowed mutably).
    fn room_for(&self, len: usize) -> impl Fn() -> bool + Copy + use<S> {
        let (_, need) = self.space_for(len);
        let (mem, write, capacity) = (self.mem, self.write, self.capacity as u64);
        let cached = self.cached_read;
        let watch_close = !mutant::active(Mutant::RoomIgnoresClose);
        move || {
            // Acquire: pairs with the Release in `Consumer::release`.
            let read = mem.load_u64(READ_POS_OFF, Ordering::Acquire);
            // The same validity rule as `refresh_read`: a position that is off the grid or
            // moved backwards makes the next `try_send` report corruption instead of waiting.
            let valid = read % frame::ALIGN as u64 == 0
                && read.wrapping_sub(cached) <= write.wrapping_sub(cached);
            !valid
                || capacity - write.wrapping_sub(read) >= need
                || (watch_close && role::is_closed(&mem, CONSUMER_OWNER_OFF))
        }
    }

    /// How blocking calls wait (spin budget, sleep slice).
    pub fn set_wait_options(&mut self, opts: WaitOptions) {
        self.waiter.set_options(opts);
    }

    /// This side's wake and sleep counters.
    pub fn stats(&self) -> WaitStats {
        self.waiter.stats()
    }

    /// Writes the headers of a filled grant and publishes it.
    #[inline]
    fn publish(&mut self, record: usize, pad: usize, len: usize, tag: u32) {
        self.write_headers(record, pad, len, tag);
        self.publish_position();
    }

    /// Writes the headers of a filled grant and moves our position past it, without
    /// publishing: the consumer sees nothing until [`publish_position`](Self::publish_position).
    #[inline]
    fn write_headers(&mut self, record: usize, pad: usize, len: usize, tag: u32) {
        let mem = &self.mem;
        if pad > 0 {
            let at = HEADER_SIZE + (self.write & self.mask) as usize;
            mem.store_u32(at, frame::padding_word(pad), Ordering::Relaxed);
        }
        let at = HEADER_SIZE + record;
        mem.store_u32(at + 4, tag, Ordering::Relaxed);
        mem.store_u32(at, frame::record_word(len), Ordering::Relaxed);
        self.write = self
            .write
            .wrapping_add((pad + frame::record_size(len)) as u64);
    }

    /// Publishes our position (every record written so far) and rings the data doorbell.
    #[inline]
    fn publish_position(&mut self) {
        self.published = self.write;
        let mem = &self.mem;
        // Release: pairs with the Acquire loads of WRITE_POS in `Consumer::refresh_write` and
        // `Consumer::has_data`; the payload and headers above are visible before the position.
        let publish = if mutant::active(Mutant::RelaxedPublish) {
            Ordering::Relaxed
        } else {
            Ordering::Release
        };
        mem.store_u64(WRITE_POS_OFF, self.write, publish);
        self.waiter.ring(&self.data_bell);
    }
}

impl<S: SharedMemory> Drop for Producer<S> {
    fn drop(&mut self) {
        // A copy inherited across `fork` is not the holder: closing would end the parent's
        // stream behind its back.
        if !role::forked(self.fork_gen) {
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

impl<S: SharedMemory> fmt::Debug for Producer<S> {
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
#[must_use = "a grant sends nothing until it is committed; dropping it aborts"]
pub struct Grant<'a, S: SharedMemory> {
    producer: &'a mut Producer<S>,
    /// Data-area offset of the record header.
    record: usize,
    /// Payload bytes reserved.
    len: usize,
    /// Bytes of padding to write before the record (0 if it does not wrap).
    pad: usize,
}

impl<S: SharedMemory> Grant<'_, S> {
    /// Payload bytes reserved.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the grant is for a zero-length frame.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    fn payload_off(&self) -> usize {
        payload_off(self.record)
    }

    /// Copies `src` into the grant at byte `offset`.
    ///
    /// # Panics
    ///
    /// If `offset + src.len()` exceeds [`len`](Self::len) — a bug in the caller, like an
    /// out-of-range slice index.
    #[inline]
    pub fn write_at(&mut self, offset: usize, src: &[u8]) {
        assert!(
            offset <= self.len && src.len() <= self.len - offset,
            "write of {} bytes at {offset} past a grant of {}",
            src.len(),
            self.len
        );
        self.producer.mem.copy_in(self.payload_off() + offset, src);
    }

    /// Copies `src`, which must be exactly [`len`](Self::len) bytes, into the grant.
    ///
    /// # Panics
    ///
    /// If `src.len() != self.len()`.
    #[inline]
    pub fn copy_from_slice(&mut self, src: &[u8]) {
        assert_eq!(src.len(), self.len, "source length differs from the grant");
        self.producer.mem.copy_in(self.payload_off(), src);
    }

    /// The reserved payload bytes as a slice, for writing in place.
    ///
    /// # Safety
    ///
    /// For trusted peers only: nothing else may read or write these bytes while the slice
    /// lives. A correct consumer never does (the bytes are not published yet); a buggy or
    /// hostile process that maps the same memory could, and that would be a data race.
    /// The bytes' initial contents are whatever the ring last held there.
    #[inline]
    #[cfg(not(loom))]
    pub unsafe fn as_mut_slice(&mut self) -> &mut [u8] {
        let ptr = self.producer.mem.bytes_ptr(self.payload_off(), self.len);
        // SAFETY: `ptr` points at `len` bytes inside the mapping, which outlives `self`
        // (the producer borrows its keep-alive); the caller promises exclusive access, and the
        // `&mut self` borrow stops a second slice from this grant.
        unsafe { core::slice::from_raw_parts_mut(ptr, self.len) }
    }

    /// Publishes the frame with all [`len`](Self::len) bytes and `tag`.
    #[inline]
    pub fn commit(self, tag: u32) {
        let len = self.len;
        self.commit_len(tag, len);
    }

    /// Publishes the frame with only its first `used` bytes (clamped to
    /// [`len`](Self::len)) and `tag`.
    #[inline]
    pub fn commit_len(self, tag: u32, used: usize) {
        let used = used.min(self.len);
        // A grant has no `Drop`: aborting needs no work, as nothing was published.
        self.producer.publish(self.record, self.pad, used, tag);
    }
}

impl<S: SharedMemory> fmt::Debug for Grant<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Grant")
            .field("record", &self.record)
            .field("len", &self.len)
            .field("pad", &self.pad)
            .finish()
    }
}

/// Where the next record is, once validated.
#[derive(Clone, Copy, Debug)]
struct Rec {
    /// Data-area offset of the header.
    off: usize,
    len: usize,
    tag: u32,
}

/// The reading end of an SPSC ring.
///
/// Dropping it closes the consumer role for good: the producer's later sends fail with
/// [`SendError::Closed`].
pub struct Consumer<S: SharedMemory> {
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
    /// The space doorbell is rung when the published position crosses a multiple of this (a
    /// power of two) since the last ring, and whenever we catch up with `cached_write`.
    wake_step: u64,
    /// The published position when the space doorbell was last rung.
    rung: u64,
    owner: OwnerId,
    /// The fork generation it attached in (see `role::fork_generation`): a copy inherited by
    /// a forked child neither acts nor closes the role.
    fork_gen: u32,
    /// Waited on while the ring is empty.
    data_bell: Doorbell,
    /// Rung when we free space (see `release`).
    space_bell: Doorbell,
    /// Notices a producer whose process died without closing (checked between sleeps).
    peer: PeerWatch,
    /// Wait options, adaptive spin state, counters.
    waiter: Waiter,
    /// Keeps a shared space doorbell (a channel server's) alive.
    _bell_shm: Option<S>,
    /// Keeps the memory behind `mem` alive.
    shm: S,
}

impl<S: SharedMemory> Consumer<S> {
    /// Claims the consumer role of the ring in `shm` for `owner`.
    ///
    /// # Errors
    ///
    /// As [`Producer::attach`].
    pub fn attach(shm: S, owner: OwnerId) -> Result<Self, AttachError> {
        Self::attach_inner(shm, owner, false, None)
    }

    /// Claims the consumer role of a ring created with [`RingConfig::shared_space_bell`]:
    /// each release rings the doorbell in the bell region `bell` (the producer's) instead of
    /// the ring's own.
    ///
    /// # Errors
    ///
    /// As [`attach`](Self::attach); [`AttachError::WrongBell`] if the ring was not made so;
    /// [`AttachError::Header`] if `bell` is not a valid bell region.
    pub fn attach_shared_space_bell(ring: S, bell: S, owner: OwnerId) -> Result<Self, AttachError> {
        Self::attach_inner(ring, owner, false, Some(bell))
    }

    /// Attaches the consumer end of a ring: of a fan-in ring (for
    /// [`FanIn`](crate::fanin::FanIn)) if `fanin`, ringing `space` after releases if given.
    pub(crate) fn attach_inner(
        shm: S,
        owner: OwnerId,
        fanin: bool,
        space: Option<S>,
    ) -> Result<Self, AttachError> {
        let space = match space {
            Some(b) => Some((crate::doorbell::bell_of(&b)?, b)),
            None => None,
        };
        Self::attach_with(shm, owner, fanin, space)
    }

    /// As [`attach_inner`](Self::attach_inner) with the shared space doorbell already
    /// located (see [`Producer::attach_with`]).
    pub(crate) fn attach_with(
        shm: S,
        owner: OwnerId,
        fanin: bool,
        space: Option<(Doorbell, S)>,
    ) -> Result<Self, AttachError> {
        let mem = shm.mem();
        let geo = layout::validate(&mem, RingKind::Spsc)?;
        if (geo.flags & layout::FLAG_SHARED_BELL != 0) != fanin
            || (geo.flags & layout::FLAG_SHARED_SPACE_BELL != 0) != space.is_some()
        {
            return Err(AttachError::WrongBell);
        }
        let (space_bell, space) = match space {
            Some((d, b)) => (d, Some(b)),
            None => (Doorbell::at(mem, SPACE_BELL_OFF), None),
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
            wake_step: wake_step(geo.capacity),
            rung: read,
            owner,
            fork_gen: role::fork_generation(),
            data_bell: Doorbell::at(mem, DATA_BELL_OFF),
            space_bell,
            peer: PeerWatch::new(PRODUCER_OWNER_OFF).primed(&mem),
            waiter: Waiter::new(WaitOptions::default()),
            _bell_shm: space,
            shm,
        })
    }

    /// The ring's frame cap: no valid frame is longer.
    #[inline]
    pub fn max_frame(&self) -> usize {
        self.frame_cap
    }

    /// The ring's data-area capacity in bytes.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The memory this consumer reads from.
    pub fn shared_memory(&self) -> &S {
        &self.shm
    }

    /// Whether the producer has closed its end. Frames it sent before closing can still be
    /// received. Once true it stays true.
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
    /// use ringbell::spsc;
    ///
    /// let (mut tx, mut rx) = spsc::channel(256).unwrap();
    /// assert!(!rx.has_data()); // may stop being true at any moment
    /// tx.try_send(0, b"x").unwrap();
    /// assert!(rx.has_data()); // stays true until we receive
    /// assert!(rx.try_recv().is_ok());
    /// ```
    pub fn has_data(&self) -> bool {
        if role::forked(self.fork_gen) {
            return true; // the next receive reports it
        }
        // Acquire: pairs with the Release in `Producer::publish`, so the header below is the
        // one published.
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
        match frame::decode(word) {
            Decoded::Padding { size } if off != 0 && size == self.capacity - off => {
                avail > size as u64
            }
            _ => true,
        }
    }

    /// Re-reads the producer's position. Possibly empty → refresh → really empty.
    fn refresh_write(&mut self) -> Result<(), Corruption> {
        // Acquire: pairs with the Release in `Producer::publish`; every record before the new
        // position is fully written and visible.
        let write = self.mem.load_u64(WRITE_POS_OFF, Ordering::Acquire);
        let avail = write.wrapping_sub(self.read);
        if write % frame::ALIGN as u64 != 0
            || avail > self.capacity as u64
            || avail < self.cached_write.wrapping_sub(self.read)
        {
            return Err(Corruption::WritePosition { found: write });
        }
        self.cached_write = write;
        Ok(())
    }

    /// Frees `size` bytes at our position (and any a batch moved past without publishing).
    ///
    /// Rings the space doorbell only when the published position crosses a multiple of
    /// `wake_step`, or when we have caught up with every record we know of: see "Waking a
    /// producer" in the module docs.
    #[inline]
    fn release(&mut self, size: usize) {
        self.read = self.read.wrapping_add(size as u64);
        self.published = self.read;
        // Release: pairs with the Acquire in `Producer::refresh_read`; our reads of the freed
        // bytes happen before the producer overwrites them.
        self.mem
            .store_u64(READ_POS_OFF, self.read, Ordering::Release);
        // A multiple of the (power-of-two) step lies in `(rung, read]` iff they differ in a
        // bit at or above it.
        let crossed = (self.rung ^ self.read) >= self.wake_step;
        let caught_up =
            self.read == self.cached_write && !mutant::active(Mutant::SpscNoCatchUpRing);
        if crossed || caught_up {
            self.ring_space();
        }
    }

    /// Rings the space doorbell for everything published so far.
    #[inline]
    fn ring_space(&mut self) {
        self.rung = self.published;
        self.waiter.ring(&self.space_bell);
    }

    /// Rings the space doorbell if space was freed since the last ring: for a consumer about
    /// to stop short of catching up (a frame its buffer cannot hold, a fan-in pausing the
    /// ring), so that a producer blocked on the ring is not left to its sleep slice.
    #[cold]
    pub(crate) fn announce_space(&mut self) {
        if self.rung != self.published {
            self.ring_space();
        }
    }

    /// Rings the space doorbell after every release, as a channel's request rings need: there
    /// a blocked client also collects its responses when woken for space.
    #[cfg_attr(not(feature = "std"), allow(dead_code))]
    pub(crate) fn ring_every_release(&mut self) {
        self.wake_step = frame::ALIGN as u64;
    }

    /// Finds and validates the next record, skipping (and freeing) one padding record.
    #[inline]
    fn next_record(&mut self) -> Result<Rec, RecvError> {
        if role::forked(self.fork_gen) {
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
            match frame::decode(word) {
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
                    let size = frame::record_size(len);
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
    /// producer closed; [`RecvError::Corrupt`] if the producer wrote something invalid.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::{spsc, RecvError};
    ///
    /// let (mut tx, mut rx) = spsc::channel(256).unwrap();
    /// tx.try_send(5, b"in place").unwrap();
    /// {
    ///     let frame = rx.try_read().unwrap();
    ///     assert_eq!((frame.tag(), frame.len()), (5, 8));
    ///     let mut head = [0u8; 2];
    ///     frame.read_at(0, &mut head);
    ///     assert_eq!(&head, b"in");
    /// } // freed here
    /// assert_eq!(rx.try_read().unwrap_err(), RecvError::Empty);
    /// ```
    #[inline]
    pub fn try_read(&mut self) -> Result<ReadGuard<'_, S>, RecvError> {
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
    /// use ringbell::{spsc, RecvError};
    ///
    /// let (mut tx, mut rx) = spsc::channel(256).unwrap();
    /// tx.try_send(3, b"four").unwrap();
    /// let mut small = [0u8; 2];
    /// assert_eq!(rx.try_recv_into(&mut small), Err(RecvError::BufferTooSmall { needed: 4 }));
    /// let mut buf = [0u8; 16];
    /// assert_eq!(rx.try_recv_into(&mut buf), Ok((3, 4)));
    /// ```
    #[inline]
    pub fn try_recv_into(&mut self, buf: &mut [u8]) -> Result<(u32, usize), RecvError> {
        let rec = self.next_record()?;
        let Some(dst) = buf.get_mut(..rec.len) else {
            self.announce_space();
            return Err(RecvError::BufferTooSmall { needed: rec.len });
        };
        self.mem.copy_out(payload_off(rec.off), dst);
        self.release(frame::record_size(rec.len));
        Ok((rec.tag, rec.len))
    }

    /// Receives up to `max` frames, copying each into `buf` and handing it to `f` with its
    /// tag, then releases their space together: one position store and one doorbell ring for
    /// the batch instead of one per frame. Returns how many were received (0 if `max` is 0,
    /// whatever the ring holds). If `f` panics, the frames before it and the one it was given
    /// count as received; their space is freed when the ring next looks empty to this
    /// consumer, or when another frame is freed.
    ///
    /// # Errors
    ///
    /// Only when no frame was received: as [`try_recv_into`](Self::try_recv_into) for the
    /// first frame. A later frame that does not fit `buf`, or any other condition, ends the
    /// batch and stays for the next call.
    pub fn try_recv_batch_into(
        &mut self,
        buf: &mut [u8],
        max: usize,
        mut f: impl FnMut(u32, &[u8]),
    ) -> Result<usize, RecvError> {
        let mut got = 0;
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
                break;
            };
            self.mem.copy_out(payload_off(rec.off), dst);
            // Move past the record locally (before `f`: a panicking `f` has still had it);
            // the shared position is stored once, below.
            self.read = self.read.wrapping_add(frame::record_size(rec.len) as u64);
            got += 1;
            f(rec.tag, dst);
        }
        if got > 0 {
            self.release(0);
        }
        Ok(got)
    }

    /// Receives the next frame into `buf`, waiting as long as it takes.
    ///
    /// # Errors
    ///
    /// [`RecvError::Closed`] once the producer closed and every frame was received;
    /// [`RecvError::BufferTooSmall`] (the frame stays); [`RecvError::Corrupt`]. Never `Empty`.
    pub fn recv_into(&mut self, buf: &mut [u8]) -> Result<(u32, usize), RecvError> {
        self.recv_into_deadline(buf, None)
    }

    /// Receives the next frame into `buf`, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// As [`recv_into`](Self::recv_into), and [`RecvError::Timeout`] if nothing arrived in time.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::RecvError;
    /// use std::time::Duration;
    ///
    /// let (_tx, mut rx) = ringbell::spsc::channel(256).unwrap();
    /// let mut buf = [0u8; 16];
    /// let got = rx.recv_into_timeout(&mut buf, Duration::from_millis(5));
    /// assert_eq!(got, Err(RecvError::Timeout));
    /// ```
    pub fn recv_into_timeout(
        &mut self,
        buf: &mut [u8],
        timeout: Duration,
    ) -> Result<(u32, usize), RecvError> {
        self.recv_into_deadline(buf, Some(Instant::now().after(timeout)))
    }

    fn recv_into_deadline(
        &mut self,
        buf: &mut [u8],
        deadline: Option<Instant>,
    ) -> Result<(u32, usize), RecvError> {
        loop {
            match self.try_recv_into(buf) {
                Err(RecvError::Empty) => self.wait_for_data(deadline)?,
                done => return done,
            }
        }
    }

    /// Waits until a frame may be there (or the producer closed).
    fn wait_for_data(&mut self, deadline: Option<Instant>) -> Result<(), RecvError> {
        // Sleep in slices; between them, see whether the producer's process died. Frames it
        // committed before dying are still delivered: the wait returns for them first.
        loop {
            let slice_end = Instant::now().after(self.waiter.options().get_slice());
            let until = deadline.map_or(slice_end, |d| d.min(slice_end));
            let this = &*self;
            let ready = || this.has_data() || this.is_producer_closed();
            let mut waiter = self.waiter;
            let r = waiter.wait(&self.data_bell, ready, Some(until));
            self.waiter = waiter;
            if r.is_ok() {
                return Ok(());
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(RecvError::Timeout);
            }
            if self.producer_died() {
                return Err(RecvError::Disconnected);
            }
        }
    }

    /// Whether the producer's process died without closing, with nothing left to receive.
    /// Makes system calls: for the slow path.
    pub(crate) fn producer_died(&mut self) -> bool {
        !self.has_data() && self.peer.peer_dead(&self.mem)
    }

    /// Waits until `ready(self)` holds, or `timeout` passes (`None`: no deadline).
    ///
    /// For a consumer that also waits for something else — work finished by another thread,
    /// say: that thread publishes its result and calls [`Notifier::notify`], and `ready`
    /// checks both the ring and the result. The check runs in the doorbell's latched window,
    /// so a notify is never slept through.
    ///
    /// # Errors
    ///
    /// [`RecvError::Timeout`] if `ready` is still false at the deadline.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::sync::Arc;
    ///
    /// let (_tx, mut rx) = ringbell::spsc::channel(256).unwrap();
    /// let done = Arc::new(AtomicBool::new(false));
    /// let notifier = rx.notifier();
    /// let worker = {
    ///     let done = done.clone();
    ///     std::thread::spawn(move || {
    ///         done.store(true, Ordering::Release);
    ///         notifier.notify();
    ///     })
    /// };
    /// let ready = |rx: &ringbell::spsc::Consumer<_>| {
    ///     rx.has_data() || rx.is_producer_closed() || done.load(Ordering::Acquire)
    /// };
    /// rx.wait_until(ready, None).unwrap();
    /// assert!(done.load(Ordering::Acquire));
    /// worker.join().unwrap();
    /// ```
    pub fn wait_until(
        &mut self,
        mut ready: impl FnMut(&Self) -> bool,
        timeout: Option<Duration>,
    ) -> Result<(), RecvError> {
        let deadline = timeout.map(|t| Instant::now().after(t));
        let this = &*self;
        let mut waiter = self.waiter;
        let r = waiter.wait(&self.data_bell, || ready(this), deadline);
        self.waiter = waiter;
        r.map_err(|_| RecvError::Timeout)
    }

    /// A handle other threads use to wake this consumer (see [`wait_until`](Self::wait_until)).
    pub fn notifier(&self) -> Notifier<S>
    where
        S: Clone,
    {
        Notifier {
            bell: self.data_bell,
            _shm: self.shm.clone(),
        }
    }

    /// How blocking calls wait (spin budget, sleep slice).
    pub fn set_wait_options(&mut self, opts: WaitOptions) {
        self.waiter.set_options(opts);
    }

    /// This side's wake and sleep counters.
    pub fn stats(&self) -> WaitStats {
        self.waiter.stats()
    }

    /// Receives the next frame, waiting as long as it takes.
    ///
    /// # Errors
    ///
    /// As [`recv_into`](Self::recv_into), without `BufferTooSmall`.
    #[cfg(feature = "std")]
    pub fn recv(&mut self) -> Result<crate::Frame, RecvError> {
        self.recv_deadline(None)
    }

    /// Receives the next frame, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// As [`recv_into_timeout`](Self::recv_into_timeout), without `BufferTooSmall`.
    #[cfg(feature = "std")]
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<crate::Frame, RecvError> {
        self.recv_deadline(Some(Instant::now().after(timeout)))
    }

    #[cfg(feature = "std")]
    fn recv_deadline(&mut self, deadline: Option<Instant>) -> Result<crate::Frame, RecvError> {
        loop {
            match self.try_recv() {
                Err(RecvError::Empty) => self.wait_for_data(deadline)?,
                done => return done,
            }
        }
    }

    /// Receives the next frame into a new [`Frame`](crate::Frame).
    ///
    /// # Errors
    ///
    /// As [`try_read`](Self::try_read).
    #[cfg(feature = "std")]
    pub fn try_recv(&mut self) -> Result<crate::Frame, RecvError> {
        let guard = self.try_read()?;
        Ok(crate::Frame {
            tag: guard.tag(),
            data: guard.to_vec(),
        })
    }
}

impl<S: SharedMemory> Drop for Consumer<S> {
    fn drop(&mut self) {
        // See `Producer::drop` on `fork`.
        if !role::forked(self.fork_gen) {
            role::close(&self.mem, CONSUMER_OWNER_OFF, self.owner);
            // Wake a producer asleep on a full ring so it sees the close at once.
            if !mutant::active(Mutant::ConsumerDropNoRing) {
                self.waiter.ring(&self.space_bell);
            }
        }
    }
}

impl<S: SharedMemory> fmt::Debug for Consumer<S> {
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

/// A received frame, still in the ring; freed when dropped.
#[must_use = "dropping a read guard frees the frame unread"]
pub struct ReadGuard<'a, S: SharedMemory> {
    consumer: &'a mut Consumer<S>,
    rec: Rec,
}

impl<S: SharedMemory> ReadGuard<'_, S> {
    /// The frame's tag.
    #[inline]
    pub fn tag(&self) -> u32 {
        self.rec.tag
    }

    /// The frame's payload length.
    #[inline]
    pub fn len(&self) -> usize {
        self.rec.len
    }

    /// Whether the payload is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.rec.len == 0
    }

    #[inline]
    fn payload_off(&self) -> usize {
        payload_off(self.rec.off)
    }

    /// Copies payload bytes starting at `offset` into `dst`.
    ///
    /// # Panics
    ///
    /// If `offset + dst.len()` exceeds [`len`](Self::len) — a bug in the caller.
    #[inline]
    pub fn read_at(&self, offset: usize, dst: &mut [u8]) {
        assert!(
            offset <= self.rec.len && dst.len() <= self.rec.len - offset,
            "read of {} bytes at {offset} past a frame of {}",
            dst.len(),
            self.rec.len
        );
        self.consumer.mem.copy_out(self.payload_off() + offset, dst);
    }

    /// Copies the payload into a new `Vec`.
    #[cfg(feature = "std")]
    pub fn to_vec(&self) -> std::vec::Vec<u8> {
        let mut v = std::vec![0u8; self.rec.len];
        self.consumer.mem.copy_out(self.payload_off(), &mut v);
        v
    }

    /// The payload as a slice into shared memory, without copying.
    ///
    /// # Safety
    ///
    /// For trusted peers only: nothing may write these bytes while the slice lives. A correct
    /// producer never does (they stay ours until the guard drops); a buggy or hostile process
    /// mapping the same memory could, and that would be a data race.
    #[inline]
    #[cfg(not(loom))]
    pub unsafe fn as_slice(&self) -> &[u8] {
        let ptr = self
            .consumer
            .mem
            .bytes_ptr(self.payload_off(), self.rec.len);
        // SAFETY: `ptr` points at `len` bytes inside the mapping, which outlives the guard;
        // the caller promises nobody writes them while the slice lives.
        unsafe { core::slice::from_raw_parts(ptr, self.rec.len) }
    }
}

impl<S: SharedMemory> Drop for ReadGuard<'_, S> {
    fn drop(&mut self) {
        self.consumer.release(frame::record_size(self.rec.len));
    }
}

impl<S: SharedMemory> fmt::Debug for ReadGuard<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadGuard")
            .field("tag", &self.rec.tag)
            .field("len", &self.rec.len)
            .finish()
    }
}

/// Wakes a [`Consumer`] blocked in [`Consumer::wait_until`] (or a blocking receive) from
/// another thread or process. Cheap to clone; no system call unless the consumer sleeps.
#[derive(Clone)]
pub struct Notifier<S: SharedMemory> {
    bell: Doorbell,
    /// Keeps the memory behind `bell` alive.
    _shm: S,
}

impl<S: SharedMemory> Notifier<S> {
    #[cfg_attr(not(feature = "alloc"), allow(dead_code))]
    pub(crate) fn new(bell: Doorbell, shm: S) -> Self {
        Self { bell, _shm: shm }
    }

    /// Rings the consumer's doorbell. Publish what the consumer's condition reads first.
    pub fn notify(&self) {
        let mut stats = WaitStats::default();
        self.bell.ring(&mut stats);
    }
}

impl<S: SharedMemory> fmt::Debug for Notifier<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notifier").finish_non_exhaustive()
    }
}

/// Creates an in-process SPSC ring of `capacity` bytes on the heap and attaches both ends.
///
/// # Errors
///
/// As [`RingConfig::geometry`].
///
/// # Examples
///
/// ```
/// let (mut tx, mut rx) = ringbell::spsc::channel(1024).unwrap();
/// std::thread::spawn(move || tx.try_send(0, b"ping").unwrap()).join().unwrap();
/// assert_eq!(rx.try_recv().unwrap().data, b"ping");
/// ```
#[cfg(all(feature = "std", not(loom)))]
pub fn channel(
    capacity: usize,
) -> Result<
    (
        Producer<crate::region::HeapRegion>,
        Consumer<crate::region::HeapRegion>,
    ),
    HeaderError,
> {
    let region = crate::region::HeapRegion::new_spsc(&RingConfig::new(capacity))?;
    let tx = Producer::attach(region.clone(), OwnerId::unique()).map_err(attach_to_header)?;
    let rx = Consumer::attach(region, OwnerId::unique()).map_err(attach_to_header)?;
    Ok((tx, rx))
}

/// A fresh ring cannot fail to attach except through its header.
#[cfg(all(feature = "std", not(loom)))]
fn attach_to_header(e: AttachError) -> HeaderError {
    match e {
        AttachError::Header(h) => h,
        _ => HeaderError::NotReady,
    }
}
