//! Fan-in: one consumer over many SPSC rings, one per producer, sharing one doorbell.
//!
//! # What it guarantees
//!
//! * **Isolation.** Each producer has its own SPSC ring, so a producer can only ever damage
//!   its own ring. A ring that turns out corrupt is detached (its consumer role closed, so its
//!   producer sees `Closed`) and reported once as [`FanInError::Corrupt`]; every other ring
//!   goes on. A ring whose producer closed is drained, then detached and reported once as
//!   [`FanInError::Closed`].
//! * **Fairness.** Receives take one frame per ring in turn (round robin from a cursor), so a
//!   busy producer cannot starve a quiet one.
//! * **A pure peek.** [`FanIn::has_data`] looks at every ring and changes nothing: no cursor,
//!   no spin state, no shared word.
//! * **One doorbell, no system call while awake.** Producers attached with
//!   [`Producer::attach_shared_bell`] ring the fan-in's doorbell; the consumer sleeps on it
//!   when every ring is empty. Ringing costs a fence and a load, and a wake system call only
//!   when the consumer announced a sleep.
//! * **No endless wait.** A blocking receive with no ring left to receive from (every ring
//!   reported closed and detached, or every ring paused) returns [`FanInError::NoRings`]
//!   instead of sleeping for ever: nothing can add a ring while it blocks.
//!
//! # The shared doorbell
//!
//! The doorbell lives in a *bell region* of its own ([`BellConfig`](crate::doorbell::BellConfig)):
//! a region header of kind `Bell` whose data area is one doorbell line. Every producer maps it
//! (it is writable by all of them — a hostile producer can ring it, or clear the waiter mark so
//! that the consumer wakes late, by at most one sleep slice; it can never reach another
//! producer's ring).
//!
//! A fan-in ring is created with [`Config::shared_bell`](crate::spsc::Config::shared_bell),
//! which records in its header that its producer rings a shared doorbell; plain attaches refuse
//! such a ring, and a fan-in refuses a plain one ([`AttachError::WrongBell`]). That is why a
//! fan-in cannot take a ring made without `shared_bell()`: its producer would ring the ring's
//! own doorbell, which the fan-in does not sleep on, and the fan-in would wake only at the end
//! of each sleep slice. Which doorbell a producer rings is fixed when the ring is created, in
//! the header both ends read.
//!
//! # Examples
//!
//! ```
//! use ringbell::doorbell::BellConfig;
//! use ringbell::fanin::FanIn;
//! use ringbell::region::HeapRegion;
//! use ringbell::{spsc, OwnerId};
//!
//! let bell = HeapRegion::new(&BellConfig)?;
//! let mut fanin = FanIn::new(bell.clone(), 16)?;
//! let mut producers = Vec::new();
//! for _ in 0..3 {
//!     let ring = HeapRegion::new(&spsc::Config::new(1024).shared_bell())?;
//!     fanin.add(ring.clone(), OwnerId::unique())?;
//!     producers.push(spsc::Producer::attach_shared_bell(ring, bell.clone(), OwnerId::unique())?);
//! }
//! for (i, p) in producers.iter_mut().enumerate() {
//!     p.try_send(i as u32, b"hello")?;
//! }
//! let mut tags: Vec<u32> = (0..3).map(|_| fanin.try_recv().unwrap().1.tag).collect();
//! tags.sort();
//! assert_eq!(tags, [0, 1, 2]);
//! assert!(!fanin.has_data());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

extern crate alloc;

use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use crate::clock::Deadline;
use crate::doorbell::{Line, Notifier, Stop, WaitOptions, WaitStats, Waiter, bell_of};
use crate::error::{AttachError, Corruption, RecvError};
use crate::region::{Admits, Bell, SharedMemory, Spsc};
use crate::role::OwnerId;
use crate::spsc::Consumer;
#[cfg(doc)]
use crate::spsc::Producer;

#[cfg(feature = "tokio")]
mod asynchronous;
#[cfg(feature = "tokio")]
pub use asynchronous::AsyncFanIn;

/// Identifies one ring of a fan-in: the slot it was added in. Slots are reused after a ring
/// is removed or detached.
///
/// # Examples
///
/// ```
/// use ringbell::fanin::RingId;
///
/// assert!(RingId(0) < RingId(1));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RingId(pub usize);

/// Receiving from a fan-in failed; no frame was consumed.
///
/// # Examples
///
/// ```
/// use ringbell::doorbell::BellConfig;
/// use ringbell::fanin::{FanIn, FanInError};
/// use ringbell::region::{HeapRegion, Spsc};
///
/// let mut fanin: FanIn<HeapRegion<Spsc>, _> = FanIn::new(HeapRegion::new(&BellConfig)?, 4)?;
/// assert_eq!(fanin.try_recv().map(drop), Err(FanInError::Empty));
/// assert_eq!(fanin.recv().map(drop), Err(FanInError::NoRings)); // would wait for ever
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FanInError {
    /// No ring has a frame right now.
    Empty,
    /// This ring's producer closed and every frame it sent was received; the ring has been
    /// detached. Reported once.
    Closed(RingId),
    /// This ring's producer wrote something invalid; the ring has been detached (its producer
    /// sees its consumer closed). Reported once. The other rings are untouched.
    Corrupt(RingId, Corruption),
    /// The caller's buffer is shorter than this ring's next frame, which stays in the ring.
    BufferTooSmall {
        /// The ring.
        ring: RingId,
        /// The frame's length.
        needed: usize,
    },
    /// This ring's producer process died without closing, every frame it committed was
    /// received, and the ring has been detached. Seen by a blocking receive between sleep
    /// slices, and by a non-blocking one that finds the ring empty (asking the kernel at most
    /// every 10 ms per ring). Reported once.
    Disconnected(RingId),
    /// A blocking receive's deadline passed.
    Timeout,
    /// A blocking receive has no ring to receive from: none is attached, or every one is
    /// paused. Nothing could ever arrive, so it does not wait.
    NoRings,
    /// This fan-in was inherited across `fork(2)`: only the process that made it may use it.
    Forked,
}

impl fmt::Display for FanInError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("every ring is empty"),
            Self::Closed(r) => write!(f, "ring {} closed by its producer and drained", r.0),
            Self::Corrupt(r, c) => write!(f, "ring {} is corrupt and was detached: {c}", r.0),
            Self::BufferTooSmall { ring, needed } => write!(
                f,
                "buffer too small: ring {}'s next frame is {needed} bytes",
                ring.0
            ),
            Self::Disconnected(r) => write!(f, "ring {}'s producer died and it was drained", r.0),
            Self::Timeout => f.write_str("timed out waiting for a frame"),
            Self::NoRings => f.write_str("no ring to receive from (none attached, or all paused)"),
            Self::Forked => f.write_str("fan-in inherited across fork: not usable here"),
        }
    }
}

impl core::error::Error for FanInError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Corrupt(_, c) => Some(c),
            _ => None,
        }
    }
}

/// One consumer over many SPSC rings in memory `R` sharing one doorbell in memory `B`; see
/// the [module docs](self). `Send`, not `Sync`.
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
/// let mut fanin = FanIn::new(bell.clone(), 4)?;
/// let ring = HeapRegion::new(&spsc::Config::new(1024).shared_bell())?;
/// fanin.add(ring.clone(), OwnerId::unique())?;
/// let mut tx = spsc::Producer::attach_shared_bell(ring, bell, OwnerId::unique())?;
/// tx.try_send(0, b"a")?;
/// let (ring_id, frame) = fanin.recv()?;
/// assert_eq!(frame.data, b"a");
/// # let _ = ring_id;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct FanIn<R: SharedMemory, B: SharedMemory = R> {
    /// The shared doorbell (in `bell_shm`).
    bell: Line,
    /// One slot per ring; `None` for a free slot.
    rings: Vec<Option<Consumer<R>>>,
    /// Per slot: whether receives skip the ring for now ([`FanIn::set_paused`]).
    paused: Vec<bool>,
    /// Rings attached (`Some` slots).
    live: usize,
    /// Where the next receive starts looking.
    cursor: usize,
    /// Most rings at once.
    max_rings: usize,
    /// Wait options, adaptive spin state, counters.
    waiter: Waiter,
    /// Keeps the doorbell's memory alive.
    bell_shm: B,
}

impl<R: SharedMemory, B: SharedMemory> FanIn<R, B>
where
    R::Kind: Admits<Spsc>,
    B::Kind: Admits<Bell>,
{
    /// A fan-in sleeping on the bell region `bell`, for at most `max_rings` rings.
    ///
    /// # Errors
    ///
    /// [`AttachError::Header`] if `bell` is not a valid bell region.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::doorbell::BellConfig;
    /// use ringbell::fanin::FanIn;
    /// use ringbell::region::{HeapRegion, Spsc};
    ///
    /// let fanin: FanIn<HeapRegion<Spsc>, _> = FanIn::new(HeapRegion::new(&BellConfig)?, 8)?;
    /// assert_eq!(fanin.ring_count(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(bell: B, max_rings: usize) -> Result<Self, AttachError> {
        Ok(Self::with_line(bell_of(&bell)?, bell, max_rings))
    }

    /// Attaches the consumer end of `ring` (created with
    /// [`Config::shared_bell`](crate::spsc::Config::shared_bell)) as `owner`.
    ///
    /// # Errors
    ///
    /// [`AttachError::Limit`] at `max_rings`; [`AttachError::WrongBell`] for a ring not made
    /// for a fan-in; otherwise as [`Consumer::attach`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::doorbell::BellConfig;
    /// use ringbell::fanin::{FanIn, RingId};
    /// use ringbell::region::HeapRegion;
    /// use ringbell::{spsc, AttachError, OwnerId};
    ///
    /// let mut fanin = FanIn::new(HeapRegion::new(&BellConfig)?, 1)?;
    /// let ring = || HeapRegion::new(&spsc::Config::new(1024).shared_bell());
    /// assert_eq!(fanin.add(ring()?, OwnerId::unique())?, RingId(0));
    /// assert_eq!(fanin.add(ring()?, OwnerId::unique()), Err(AttachError::Limit { max: 1 }));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn add(&mut self, ring: R, owner: OwnerId) -> Result<RingId, AttachError> {
        if self.live >= self.max_rings {
            return Err(AttachError::Limit {
                max: self.max_rings,
            });
        }
        let mut consumer = Consumer::attach_with(ring, owner, true, None)?;
        consumer.set_wait_options(self.waiter.options());
        let slot = match self.rings.iter().position(Option::is_none) {
            Some(i) => {
                self.rings[i] = Some(consumer);
                self.paused[i] = false;
                i
            }
            None => {
                self.rings.push(Some(consumer));
                self.paused.push(false);
                self.rings.len() - 1
            }
        };
        self.live += 1;
        Ok(RingId(slot))
    }
}

impl<R: SharedMemory, B: SharedMemory> FanIn<R, B> {
    /// A fan-in on a doorbell already located (a channel server's, whose bell region was
    /// checked once when it was made).
    pub(crate) fn with_line(bell: Line, bell_shm: B, max_rings: usize) -> Self {
        Self {
            bell,
            rings: Vec::new(),
            paused: Vec::new(),
            live: 0,
            cursor: 0,
            max_rings,
            waiter: Waiter::new(WaitOptions::default()),
            bell_shm,
        }
    }

    /// Makes the consumer of ring `id` answer its producer's async waits for room through
    /// `signal` ([`Consumer::set_peer_readiness`](crate::spsc::Consumer::set_peer_readiness)).
    #[cfg(feature = "std")]
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn set_peer_readiness(
        &mut self,
        id: RingId,
        signal: Option<crate::doorbell::ReadinessSignal>,
    ) {
        if let Some(Some(c)) = self.rings.get_mut(id.0) {
            c.set_peer_readiness(signal);
        }
    }

    /// Makes the consumer of ring `id` ring its space doorbell after every release (a
    /// channel's request rings: see [`crate::space`]).
    #[cfg_attr(any(loom, not(feature = "std")), allow(dead_code))]
    pub(crate) fn ring_every_release(&mut self, id: RingId) {
        if let Some(Some(c)) = self.rings.get_mut(id.0) {
            c.ring_every_release();
        }
    }

    /// Detaches a ring, closing its consumer role; its undelivered frames are dropped with it
    /// (the producer sees `Closed`). Returns false if there was no such ring.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::doorbell::BellConfig;
    /// use ringbell::fanin::FanIn;
    /// use ringbell::region::HeapRegion;
    /// use ringbell::{spsc, OwnerId};
    ///
    /// let mut fanin = FanIn::new(HeapRegion::new(&BellConfig)?, 4)?;
    /// let id = fanin.add(HeapRegion::new(&spsc::Config::new(1024).shared_bell())?, OwnerId::unique())?;
    /// assert!(fanin.remove(id));
    /// assert!(!fanin.remove(id));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn remove(&mut self, id: RingId) -> bool {
        match self.rings.get_mut(id.0).and_then(Option::take) {
            Some(_) => {
                self.live -= 1;
                true
            }
            None => false,
        }
    }

    /// Pauses (`true`) or resumes a ring: receives, [`has_data`](Self::has_data) and waits
    /// skip a paused ring, whose frames stay in it, so its producer soon blocks on a full
    /// ring. A consumer that cannot take a producer's frames for now (a channel server whose
    /// client does not read its responses) pauses that producer alone. Returns false if
    /// there is no such ring.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::doorbell::BellConfig;
    /// use ringbell::fanin::{FanIn, FanInError};
    /// use ringbell::region::HeapRegion;
    /// use ringbell::{spsc, OwnerId};
    ///
    /// let bell = HeapRegion::new(&BellConfig)?;
    /// let mut fanin = FanIn::new(bell.clone(), 4)?;
    /// let ring = HeapRegion::new(&spsc::Config::new(1024).shared_bell())?;
    /// let id = fanin.add(ring.clone(), OwnerId::unique())?;
    /// let mut tx = spsc::Producer::attach_shared_bell(ring, bell, OwnerId::unique())?;
    /// tx.try_send(0, b"held")?;
    /// fanin.set_paused(id, true);
    /// assert_eq!(fanin.try_recv().map(drop), Err(FanInError::Empty));
    /// fanin.set_paused(id, false);
    /// assert_eq!(fanin.try_recv()?.1.data, b"held");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_paused(&mut self, id: RingId, paused: bool) -> bool {
        match (self.rings.get_mut(id.0), self.paused.get_mut(id.0)) {
            (Some(Some(consumer)), Some(p)) => {
                if paused {
                    // Space freed since the last ring would otherwise wait for the producer's
                    // sleep slice: the paused ring's records stay, so we do not catch up.
                    consumer.announce_space();
                }
                *p = paused;
                true
            }
            _ => false,
        }
    }

    /// Whether a ring is paused.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::doorbell::BellConfig;
    /// use ringbell::fanin::FanIn;
    /// use ringbell::region::HeapRegion;
    /// use ringbell::{spsc, OwnerId};
    ///
    /// let mut fanin = FanIn::new(HeapRegion::new(&BellConfig)?, 4)?;
    /// let id = fanin.add(HeapRegion::new(&spsc::Config::new(1024).shared_bell())?, OwnerId::unique())?;
    /// fanin.set_paused(id, true);
    /// assert!(fanin.is_paused(id));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_paused(&self, id: RingId) -> bool {
        self.paused.get(id.0).copied().unwrap_or(false)
    }

    /// Bytes published and not consumed in ring `id`, and its capacity; `None` if no ring
    /// is attached there.
    #[cfg(feature = "std")]
    #[cfg_attr(loom, allow(dead_code))] // the loom build has no server
    pub(crate) fn ring_depth(&self, id: RingId) -> Option<(usize, usize)> {
        let c = self.rings.get(id.0)?.as_ref()?;
        Some((c.len(), c.capacity()))
    }

    /// The consumers of the rings that are attached and not paused.
    fn active(&self) -> impl Iterator<Item = &Consumer<R>> {
        self.rings
            .iter()
            .zip(&self.paused)
            .filter(|(_, p)| !**p)
            .filter_map(|(c, _)| c.as_ref())
    }

    /// Rings attached now.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::doorbell::BellConfig;
    /// use ringbell::fanin::FanIn;
    /// use ringbell::region::HeapRegion;
    /// use ringbell::{spsc, OwnerId};
    ///
    /// let mut fanin = FanIn::new(HeapRegion::new(&BellConfig)?, 4)?;
    /// assert_eq!(fanin.ring_count(), 0);
    /// fanin.add(HeapRegion::new(&spsc::Config::new(1024).shared_bell())?, OwnerId::unique())?;
    /// assert_eq!(fanin.ring_count(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn ring_count(&self) -> usize {
        self.live
    }

    /// Bytes published and not yet received, over every attached ring (see
    /// [`Consumer::len`]). A snapshot.
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
    /// let mut fanin = FanIn::new(bell.clone(), 4)?;
    /// let ring = HeapRegion::new(&spsc::Config::new(1024).shared_bell())?;
    /// fanin.add(ring.clone(), OwnerId::unique())?;
    /// let mut tx = spsc::Producer::attach_shared_bell(ring, bell, OwnerId::unique())?;
    /// tx.try_send(0, &[0; 8])?;
    /// assert_eq!(fanin.len(), 16);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn len(&self) -> usize {
        self.rings.iter().flatten().map(Consumer::len).sum()
    }

    /// Whether no attached ring holds anything ([`len`](Self::len) is 0). A snapshot.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::doorbell::BellConfig;
    /// use ringbell::fanin::FanIn;
    /// use ringbell::region::{HeapRegion, Spsc};
    ///
    /// let fanin: FanIn<HeapRegion<Spsc>, _> = FanIn::new(HeapRegion::new(&BellConfig)?, 4)?;
    /// assert!(fanin.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether any ring that is not paused has a frame (or something to report: a corrupt
    /// ring). A pure peek over every ring: it changes nothing.
    ///
    /// `true` stays true until this fan-in receives; `false` may go stale at any moment.
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
    /// let mut fanin = FanIn::new(bell.clone(), 4)?;
    /// let ring = HeapRegion::new(&spsc::Config::new(1024).shared_bell())?;
    /// fanin.add(ring.clone(), OwnerId::unique())?;
    /// let mut tx = spsc::Producer::attach_shared_bell(ring, bell, OwnerId::unique())?;
    /// assert!(!fanin.has_data()); // may go stale at any moment
    /// tx.try_send(0, b"x")?;
    /// assert!(fanin.has_data()); // stays true until we receive
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn has_data(&self) -> bool {
        self.active().any(Consumer::has_data)
    }

    /// Whether a receive would return something other than `Empty` now: a frame, or a ring
    /// whose producer closed, to report. A pure peek, like [`has_data`](Self::has_data).
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
    /// let mut fanin = FanIn::new(bell.clone(), 4)?;
    /// let ring = HeapRegion::new(&spsc::Config::new(1024).shared_bell())?;
    /// fanin.add(ring.clone(), OwnerId::unique())?;
    /// drop(spsc::Producer::attach_shared_bell(ring, bell, OwnerId::unique())?);
    /// assert!(!fanin.has_data());
    /// assert!(fanin.ready()); // a close to report
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn ready(&self) -> bool {
        self.active()
            .any(|c| c.has_data() || c.is_producer_closed())
    }

    /// Receives from the next ring, round robin, with `take`; detaches and reports a ring
    /// that closed, died or turned out corrupt.
    fn take_next<T>(
        &mut self,
        mut take: impl FnMut(&mut Consumer<R>) -> Result<T, RecvError>,
    ) -> Result<(RingId, T), FanInError> {
        let n = self.rings.len();
        for k in 0..n {
            let i = (self.cursor + k) % n;
            if self.paused[i] {
                continue;
            }
            let Some(consumer) = self.rings[i].as_mut() else {
                continue;
            };
            match take(consumer) {
                Ok(t) => {
                    self.cursor = i + 1;
                    return Ok((RingId(i), t));
                }
                Err(RecvError::Empty | RecvError::Timeout) => {}
                Err(RecvError::BufferTooSmall { needed }) => {
                    self.cursor = i;
                    return Err(FanInError::BufferTooSmall {
                        ring: RingId(i),
                        needed,
                    });
                }
                Err(RecvError::Forked) => return Err(FanInError::Forked),
                Err(RecvError::Closed) => {
                    self.detach(i);
                    return Err(FanInError::Closed(RingId(i)));
                }
                Err(RecvError::Disconnected) => {
                    self.detach(i);
                    return Err(FanInError::Disconnected(RingId(i)));
                }
                Err(RecvError::Corrupt(c)) => {
                    self.detach(i);
                    return Err(FanInError::Corrupt(RingId(i), c));
                }
            }
        }
        Err(FanInError::Empty)
    }

    fn detach(&mut self, i: usize) {
        self.rings[i] = None;
        self.live -= 1;
        self.cursor = i + 1;
    }

    /// Receives the next frame, taking rings in turn, into `buf`; returns the ring, the tag
    /// and the length.
    ///
    /// # Errors
    ///
    /// [`FanInError::Empty`] if no ring has a frame; [`FanInError::Closed`],
    /// [`FanInError::Disconnected`] or [`FanInError::Corrupt`] once for a ring that was just
    /// detached; [`FanInError::BufferTooSmall`] (the frame stays, and the next call starts at
    /// the same ring); [`FanInError::Forked`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::doorbell::BellConfig;
    /// use ringbell::fanin::{FanIn, FanInError};
    /// use ringbell::region::HeapRegion;
    /// use ringbell::{spsc, OwnerId};
    ///
    /// let bell = HeapRegion::new(&BellConfig)?;
    /// let mut fanin = FanIn::new(bell.clone(), 4)?;
    /// let ring = HeapRegion::new(&spsc::Config::new(1024).shared_bell())?;
    /// let id = fanin.add(ring.clone(), OwnerId::unique())?;
    /// let mut tx = spsc::Producer::attach_shared_bell(ring, bell, OwnerId::unique())?;
    /// tx.try_send(4, b"abc")?;
    /// drop(tx);
    /// let mut buf = [0u8; 8];
    /// assert_eq!(fanin.try_recv_into(&mut buf), Ok((id, 4, 3)));
    /// assert_eq!(fanin.try_recv_into(&mut buf), Err(FanInError::Closed(id)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_recv_into(&mut self, buf: &mut [u8]) -> Result<(RingId, u32, usize), FanInError> {
        self.take_next(|c| c.try_recv_into(buf))
            .map(|(ring, (tag, len))| (ring, tag, len))
    }

    /// Receives the next frame into `buf`, waiting as long as it takes (in bounded sleep
    /// slices; between them, rings whose producer process died are detached and reported).
    ///
    /// # Errors
    ///
    /// As [`try_recv_into`](Self::try_recv_into) without `Empty`, and
    /// [`FanInError::NoRings`] when no ring is left to receive from.
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
    /// let mut fanin = FanIn::new(bell.clone(), 4)?;
    /// let ring = HeapRegion::new(&spsc::Config::new(1024).shared_bell())?;
    /// fanin.add(ring.clone(), OwnerId::unique())?;
    /// let mut tx = spsc::Producer::attach_shared_bell(ring, bell, OwnerId::unique())?;
    /// std::thread::spawn(move || tx.send(8, b"later").unwrap());
    /// let mut buf = [0u8; 8];
    /// assert_eq!(fanin.recv_into(&mut buf)?.1, 8);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_into(&mut self, buf: &mut [u8]) -> Result<(RingId, u32, usize), FanInError> {
        self.recv_until(Deadline::NEVER, |c| c.try_recv_into(&mut *buf))
            .map(|(ring, (tag, len))| (ring, tag, len))
    }

    /// Receives the next frame into `buf`, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// As [`recv_into`](Self::recv_into), and [`FanInError::Timeout`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::doorbell::BellConfig;
    /// use ringbell::fanin::{FanIn, FanInError};
    /// use ringbell::region::HeapRegion;
    /// use ringbell::{spsc, OwnerId};
    /// use std::time::Duration;
    ///
    /// let mut fanin = FanIn::new(HeapRegion::new(&BellConfig)?, 4)?;
    /// fanin.add(HeapRegion::new(&spsc::Config::new(1024).shared_bell())?, OwnerId::unique())?;
    /// let mut buf = [0u8; 8];
    /// let r = fanin.recv_into_timeout(&mut buf, Duration::from_millis(2));
    /// assert_eq!(r, Err(FanInError::Timeout));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_into_timeout(
        &mut self,
        buf: &mut [u8],
        timeout: Duration,
    ) -> Result<(RingId, u32, usize), FanInError> {
        self.recv_until(Deadline::within(timeout), |c| c.try_recv_into(&mut *buf))
            .map(|(ring, (tag, len))| (ring, tag, len))
    }

    fn recv_until<T>(
        &mut self,
        mut deadline: Deadline,
        mut take: impl FnMut(&mut Consumer<R>) -> Result<T, RecvError>,
    ) -> Result<(RingId, T), FanInError> {
        loop {
            match self.take_next(&mut take) {
                Err(FanInError::Empty) => {}
                done => return done,
            }
            if self.active().next().is_none() {
                return Err(FanInError::NoRings);
            }
            deadline = deadline.start();
            // Sleep in slices; between them, look for rings whose producer process died.
            let ready = || self.ready();
            let between = || {
                self.rings
                    .iter()
                    .position(|c| c.as_ref().is_some_and(Consumer::producer_died))
            };
            match self
                .waiter
                .wait_sliced(&self.bell, ready, deadline, between)
            {
                Ok(()) => {}
                Err(Stop::Timeout) => return Err(FanInError::Timeout),
                Err(Stop::By(i)) => {
                    self.detach(i);
                    return Err(FanInError::Disconnected(RingId(i)));
                }
            }
        }
    }

    /// Waits until `ready(self)` holds, as long as it takes; see
    /// [`Consumer::wait_until`](crate::spsc::Consumer::wait_until). Anyone with a
    /// [`notifier`](Self::notifier) can wake it.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::doorbell::BellConfig;
    /// use ringbell::fanin::FanIn;
    /// use ringbell::region::{HeapRegion, Spsc};
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::sync::Arc;
    ///
    /// let fanin: FanIn<HeapRegion<Spsc>, _> = FanIn::new(HeapRegion::new(&BellConfig)?, 4)?;
    /// let flag = Arc::new(AtomicBool::new(false));
    /// let (f, n) = (flag.clone(), fanin.notifier());
    /// std::thread::spawn(move || {
    ///     f.store(true, Ordering::Release);
    ///     n.notify();
    /// });
    /// fanin.wait_until(|_| flag.load(Ordering::Acquire));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait_until(&self, mut ready: impl FnMut(&Self) -> bool) {
        let _ = self.waiter.wait(&self.bell, || ready(self), None);
    }

    /// Waits until `ready(self)` holds or `timeout` passes.
    ///
    /// # Errors
    ///
    /// [`FanInError::Timeout`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::doorbell::BellConfig;
    /// use ringbell::fanin::{FanIn, FanInError};
    /// use ringbell::region::{HeapRegion, Spsc};
    /// use std::time::Duration;
    ///
    /// let fanin: FanIn<HeapRegion<Spsc>, _> = FanIn::new(HeapRegion::new(&BellConfig)?, 4)?;
    /// let r = fanin.wait_until_timeout(|f| f.ready(), Duration::from_millis(2));
    /// assert_eq!(r, Err(FanInError::Timeout));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait_until_timeout(
        &self,
        mut ready: impl FnMut(&Self) -> bool,
        timeout: Duration,
    ) -> Result<(), FanInError> {
        self.waiter
            .wait(&self.bell, || ready(self), Deadline::after(timeout).at())
            .map_err(|_| FanInError::Timeout)
    }

    /// As [`wait_until_timeout`](Self::wait_until_timeout), with the timeout counted from
    /// the end of the spin phase: no clock is read unless the wait goes on to sleep. For the
    /// channel server's housekeeping slice.
    #[cfg(all(feature = "std", not(loom)))]
    pub(crate) fn wait_until_within(
        &self,
        mut ready: impl FnMut(&Self) -> bool,
        timeout: Duration,
    ) -> bool {
        self.waiter
            .wait_within(&self.bell, || ready(self), timeout)
            .is_ok()
    }

    /// A handle other threads use to wake this fan-in.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::doorbell::BellConfig;
    /// use ringbell::fanin::FanIn;
    /// use ringbell::region::{HeapRegion, Spsc};
    ///
    /// let fanin: FanIn<HeapRegion<Spsc>, _> = FanIn::new(HeapRegion::new(&BellConfig)?, 4)?;
    /// fanin.notifier().notify();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn notifier(&self) -> Notifier<B>
    where
        B: Clone,
    {
        Notifier::new(self.bell, self.bell_shm.clone())
    }

    /// The fan-in's doorbell for a reactor's watcher thread: what a
    /// [`Transport`](crate::channel::Transport) built on a fan-in returns from
    /// [`watch_bell`](crate::channel::Transport::watch_bell).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::doorbell::BellConfig;
    /// use ringbell::fanin::FanIn;
    /// use ringbell::region::{HeapRegion, Spsc};
    ///
    /// let fanin: FanIn<HeapRegion<Spsc>, _> = FanIn::new(HeapRegion::new(&BellConfig)?, 4)?;
    /// let _bell = fanin.watch_bell();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "std")]
    pub fn watch_bell(&self) -> crate::doorbell::WatchBell
    where
        B: Clone + Send + Sync + 'static,
    {
        crate::doorbell::WatchBell::new(self.bell, self.bell_shm.clone())
    }

    /// How blocking calls wait; applies to every ring's consumer too.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::doorbell::{BellConfig, WaitOptions};
    /// use ringbell::fanin::FanIn;
    /// use ringbell::region::{HeapRegion, Spsc};
    ///
    /// let mut fanin: FanIn<HeapRegion<Spsc>, _> = FanIn::new(HeapRegion::new(&BellConfig)?, 4)?;
    /// fanin.set_wait_options(WaitOptions::new().spin_budget(0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_wait_options(&mut self, opts: WaitOptions) {
        self.waiter.set_options(opts);
        for c in self.rings.iter_mut().flatten() {
            c.set_wait_options(opts);
        }
    }

    /// Wait counters: the fan-in's own (sleeps on the shared doorbell) plus every attached
    /// ring's (wakes of producers blocked on full).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::doorbell::BellConfig;
    /// use ringbell::fanin::FanIn;
    /// use ringbell::region::{HeapRegion, Spsc};
    ///
    /// let fanin: FanIn<HeapRegion<Spsc>, _> = FanIn::new(HeapRegion::new(&BellConfig)?, 4)?;
    /// assert_eq!(fanin.stats().wakes, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stats(&self) -> WaitStats {
        self.waiter.stats() + self.rings.iter().flatten().map(Consumer::stats).sum()
    }
}

#[cfg(feature = "std")]
impl<R: SharedMemory, B: SharedMemory> FanIn<R, B> {
    /// The async waiter's step on the fan-in's doorbell ([doorbell](crate::doorbell), "Async
    /// waits"): drains `readiness`, announces, re-checks every ring for a frame or a close.
    /// [`Announced::Wait`](crate::doorbell::Announced::Wait): wait until `readiness` is
    /// readable, then try again. Every producer must ring with this readiness's signal
    /// ([`Producer::set_peer_readiness`](crate::spsc::Producer::set_peer_readiness)), or its
    /// rings do not reach the wait. Try to receive first: this always pays the announcement.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::doorbell::{Announced, BellConfig, Readiness};
    /// use ringbell::fanin::FanIn;
    /// use ringbell::region::HeapRegion;
    /// use ringbell::{spsc, OwnerId};
    /// use std::time::Duration;
    ///
    /// let bell = HeapRegion::new(&BellConfig)?;
    /// let mut fanin = FanIn::new(bell.clone(), 4)?;
    /// let ring = HeapRegion::new(&spsc::Config::new(1024).shared_bell())?;
    /// fanin.add(ring.clone(), OwnerId::unique())?;
    /// let mut tx = spsc::Producer::attach_shared_bell(ring, bell, OwnerId::unique())?;
    /// let readiness = Readiness::new()?;
    /// tx.set_peer_readiness(Some(readiness.signal()));
    /// assert_eq!(fanin.poll_ready(&readiness), Announced::Wait);
    /// tx.send(5, b"hi")?;
    /// assert!(readiness.wait_timeout(Duration::from_secs(1)));
    /// assert_eq!(fanin.try_recv()?.1.tag, 5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn poll_ready(&self, readiness: &crate::doorbell::Readiness) -> crate::doorbell::Announced {
        self.waiter.count_sleep();
        self.bell.announce_async(readiness, || self.ready())
    }

    /// As [`poll_ready`](Self::poll_ready), re-checking `ready(self)` instead (for a caller
    /// that waits for more than the rings).
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn poll_ready_with(
        &self,
        readiness: &crate::doorbell::Readiness,
        mut ready: impl FnMut(&Self) -> bool,
    ) -> crate::doorbell::Announced {
        self.waiter.count_sleep();
        self.bell.announce_async(readiness, || ready(self))
    }

    /// Detaches the first ring whose producer process died without closing (with nothing
    /// left to receive) and returns it. System calls: for the slow path.
    #[cfg(feature = "tokio")]
    pub(crate) fn reap_dead(&mut self) -> Option<RingId> {
        let i = self
            .rings
            .iter()
            .position(|c| c.as_ref().is_some_and(Consumer::producer_died))?;
        self.detach(i);
        Some(RingId(i))
    }

    /// How blocking calls wait (for the async end's slices).
    #[cfg(feature = "tokio")]
    pub(crate) fn wait_options(&self) -> WaitOptions {
        self.waiter.options()
    }

    /// Receives the next frame, taking rings in turn, into a new [`Frame`](crate::Frame).
    ///
    /// # Errors
    ///
    /// As [`try_recv_into`](Self::try_recv_into), without `BufferTooSmall`.
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
    /// let mut fanin = FanIn::new(bell.clone(), 4)?;
    /// let ring = HeapRegion::new(&spsc::Config::new(1024).shared_bell())?;
    /// let id = fanin.add(ring.clone(), OwnerId::unique())?;
    /// let mut tx = spsc::Producer::attach_shared_bell(ring, bell, OwnerId::unique())?;
    /// tx.try_send(1, b"owned")?;
    /// let (from, frame) = fanin.try_recv()?;
    /// assert_eq!((from, frame.data.as_slice()), (id, &b"owned"[..]));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_recv(&mut self) -> Result<(RingId, crate::Frame), FanInError> {
        self.take_next(Consumer::try_recv)
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
    /// use ringbell::doorbell::BellConfig;
    /// use ringbell::fanin::FanIn;
    /// use ringbell::region::HeapRegion;
    /// use ringbell::{spsc, OwnerId};
    ///
    /// let bell = HeapRegion::new(&BellConfig)?;
    /// let mut fanin = FanIn::new(bell.clone(), 4)?;
    /// let ring = HeapRegion::new(&spsc::Config::new(1024).shared_bell())?;
    /// fanin.add(ring.clone(), OwnerId::unique())?;
    /// let mut tx = spsc::Producer::attach_shared_bell(ring, bell, OwnerId::unique())?;
    /// std::thread::spawn(move || tx.send(2, b"later").unwrap());
    /// assert_eq!(fanin.recv()?.1.tag, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv(&mut self) -> Result<(RingId, crate::Frame), FanInError> {
        self.recv_until(Deadline::NEVER, Consumer::try_recv)
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
    /// use ringbell::doorbell::BellConfig;
    /// use ringbell::fanin::{FanIn, FanInError};
    /// use ringbell::region::HeapRegion;
    /// use ringbell::{spsc, OwnerId};
    /// use std::time::Duration;
    ///
    /// let mut fanin = FanIn::new(HeapRegion::new(&BellConfig)?, 4)?;
    /// fanin.add(HeapRegion::new(&spsc::Config::new(1024).shared_bell())?, OwnerId::unique())?;
    /// assert_eq!(fanin.recv_timeout(Duration::from_millis(2)).map(drop), Err(FanInError::Timeout));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<(RingId, crate::Frame), FanInError> {
        self.recv_until(Deadline::within(timeout), Consumer::try_recv)
    }

    /// An iterator over what can be received now, without waiting: frames, and once each,
    /// the rings that closed, died or turned out corrupt (as `Err` items; the iteration goes
    /// on). It ends when every ring is empty.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::doorbell::BellConfig;
    /// use ringbell::fanin::{FanIn, FanInError};
    /// use ringbell::region::HeapRegion;
    /// use ringbell::{spsc, OwnerId};
    ///
    /// let bell = HeapRegion::new(&BellConfig)?;
    /// let mut fanin = FanIn::new(bell.clone(), 4)?;
    /// let ring = HeapRegion::new(&spsc::Config::new(1024).shared_bell())?;
    /// let id = fanin.add(ring.clone(), OwnerId::unique())?;
    /// let mut tx = spsc::Producer::attach_shared_bell(ring, bell, OwnerId::unique())?;
    /// tx.try_send(1, b"a")?;
    /// drop(tx);
    /// let items: Vec<_> = fanin.try_iter().map(|r| r.map(|(_, f)| f.tag)).collect();
    /// assert_eq!(items, [Ok(1), Err(FanInError::Closed(id))]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_iter(&mut self) -> TryIter<'_, R, B> {
        TryIter {
            fanin: self,
            done: false,
        }
    }

    /// An iterator that receives, waiting for each frame: frames, and once each, the rings
    /// that closed, died or turned out corrupt (as `Err` items; the iteration goes on). It
    /// ends when no ring is left to receive from ([`FanInError::NoRings`]).
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
    /// let mut fanin = FanIn::new(bell.clone(), 4)?;
    /// for i in 0..2u32 {
    ///     let ring = HeapRegion::new(&spsc::Config::new(1024).shared_bell())?;
    ///     fanin.add(ring.clone(), OwnerId::unique())?;
    ///     let mut tx = spsc::Producer::attach_shared_bell(ring, bell.clone(), OwnerId::unique())?;
    ///     std::thread::spawn(move || tx.send(i, b"x").unwrap()); // then drops: closes
    /// }
    /// let frames = fanin.iter().filter_map(Result::ok).count();
    /// assert_eq!(frames, 2); // and it ended when both rings were closed
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn iter(&mut self) -> Iter<'_, R, B> {
        Iter {
            fanin: self,
            done: false,
        }
    }
}

impl<R: SharedMemory, B: SharedMemory> fmt::Debug for FanIn<R, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FanIn")
            .field("rings", &self.live)
            .field("max_rings", &self.max_rings)
            .field("cursor", &self.cursor)
            .finish_non_exhaustive()
    }
}

/// What a fan-in can receive now; see [`FanIn::try_iter`].
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
/// let mut fanin = FanIn::new(bell.clone(), 4)?;
/// let ring = HeapRegion::new(&spsc::Config::new(1024).shared_bell())?;
/// fanin.add(ring.clone(), OwnerId::unique())?;
/// let mut tx = spsc::Producer::attach_shared_bell(ring, bell, OwnerId::unique())?;
/// tx.try_send(0, b"a")?;
/// let it: ringbell::fanin::TryIter<'_, _, _> = fanin.try_iter();
/// assert_eq!(it.count(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg(feature = "std")]
pub struct TryIter<'a, R: SharedMemory, B: SharedMemory = R> {
    fanin: &'a mut FanIn<R, B>,
    done: bool,
}

#[cfg(feature = "std")]
impl<R: SharedMemory, B: SharedMemory> Iterator for TryIter<'_, R, B> {
    type Item = Result<(RingId, crate::Frame), FanInError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.fanin.try_recv() {
            Err(FanInError::Empty) => {
                self.done = true;
                None
            }
            Err(FanInError::Forked) => {
                self.done = true;
                Some(Err(FanInError::Forked))
            }
            other => Some(other),
        }
    }
}

#[cfg(feature = "std")]
impl<R: SharedMemory, B: SharedMemory> core::iter::FusedIterator for TryIter<'_, R, B> {}

#[cfg(feature = "std")]
impl<R: SharedMemory, B: SharedMemory> fmt::Debug for TryIter<'_, R, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("fanin::TryIter").finish_non_exhaustive()
    }
}

/// What a fan-in receives, waiting for each; see [`FanIn::iter`].
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
/// let mut fanin = FanIn::new(bell.clone(), 4)?;
/// let ring = HeapRegion::new(&spsc::Config::new(1024).shared_bell())?;
/// fanin.add(ring.clone(), OwnerId::unique())?;
/// let mut tx = spsc::Producer::attach_shared_bell(ring, bell, OwnerId::unique())?;
/// tx.try_send(0, b"a")?;
/// drop(tx);
/// let it: ringbell::fanin::Iter<'_, _, _> = fanin.iter();
/// assert_eq!(it.count(), 2); // the frame, then the close; then no ring is left
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg(feature = "std")]
pub struct Iter<'a, R: SharedMemory, B: SharedMemory = R> {
    fanin: &'a mut FanIn<R, B>,
    done: bool,
}

#[cfg(feature = "std")]
impl<R: SharedMemory, B: SharedMemory> Iterator for Iter<'_, R, B> {
    type Item = Result<(RingId, crate::Frame), FanInError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.fanin.recv() {
            Err(FanInError::NoRings) => {
                self.done = true;
                None
            }
            Err(FanInError::Forked) => {
                self.done = true;
                Some(Err(FanInError::Forked))
            }
            other => Some(other),
        }
    }
}

#[cfg(feature = "std")]
impl<R: SharedMemory, B: SharedMemory> core::iter::FusedIterator for Iter<'_, R, B> {}

#[cfg(feature = "std")]
impl<R: SharedMemory, B: SharedMemory> fmt::Debug for Iter<'_, R, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("fanin::Iter").finish_non_exhaustive()
    }
}
