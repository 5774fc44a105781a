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
//!
//! # The shared doorbell
//!
//! The doorbell lives in a *bell region* of its own ([`init_bell`](crate::doorbell::init_bell); under `std`,
//! `Region::create_bell`): a ring-style header of kind `Bell` whose data area is one doorbell
//! line. Every producer maps it (it is writable by all of them — a hostile producer can ring
//! it, or clear the waiter mark so that the consumer wakes late, by at most one sleep slice;
//! it can never reach another producer's ring). A fan-in ring is created with
//! [`RingConfig::shared_bell`](crate::spsc::RingConfig::shared_bell), which records in its
//! header that its producer rings a shared doorbell; plain attaches refuse such a ring, and a
//! fan-in refuses a plain one ([`AttachError::WrongBell`]), so no ring can end up rung on a
//! doorbell its consumer does not sleep on.
//!
//! # Examples
//!
//! ```
//! use ringbell::fanin::FanIn;
//! use ringbell::region::HeapRegion;
//! use ringbell::spsc::{Producer, RingConfig};
//! use ringbell::OwnerId;
//!
//! let bell = HeapRegion::new_bell().unwrap();
//! let mut fanin = FanIn::new(bell.clone(), 16).unwrap();
//! let mut producers = Vec::new();
//! for _ in 0..3 {
//!     let ring = HeapRegion::new_spsc(&RingConfig::new(1024).shared_bell()).unwrap();
//!     fanin.add(ring.clone(), OwnerId::unique()).unwrap();
//!     producers.push(Producer::attach_shared_bell(ring, bell.clone(), OwnerId::unique()).unwrap());
//! }
//! for (i, p) in producers.iter_mut().enumerate() {
//!     p.try_send(i as u32, b"hello").unwrap();
//! }
//! let mut buf = [0u8; 16];
//! let mut tags: Vec<u32> = (0..3).map(|_| fanin.try_recv_into(&mut buf).unwrap().1).collect();
//! tags.sort();
//! assert_eq!(tags, [0, 1, 2]);
//! assert!(!fanin.has_data());
//! ```

extern crate alloc;

use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use crate::doorbell::bell_of;
use crate::doorbell::{Doorbell, WaitOptions, WaitStats, Waiter};
use crate::error::{AttachError, Corruption, RecvError};
use crate::futex::Instant;
use crate::mem::SharedMemory;
use crate::role::OwnerId;
use crate::spsc::{Consumer, Notifier, Producer};

/// Identifies one ring of a fan-in: the slot it was added in. Slots are reused after a ring
/// is removed or detached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RingId(pub usize);

/// Receiving from a fan-in failed; no frame was consumed.
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
            Self::Forked => f.write_str("fan-in inherited across fork: not usable here"),
        }
    }
}

impl core::error::Error for FanInError {}

/// One consumer over many SPSC rings sharing one doorbell; see the [module docs](self).
pub struct FanIn<S: SharedMemory> {
    /// The shared doorbell (in `bell_shm`).
    bell: Doorbell,
    /// One slot per ring; `None` for a free slot.
    rings: Vec<Option<Consumer<S>>>,
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
    bell_shm: S,
}

impl<S: SharedMemory> FanIn<S> {
    /// A fan-in sleeping on the bell region `bell`, for at most `max_rings` rings.
    ///
    /// # Errors
    ///
    /// [`AttachError::Header`] if `bell` is not a valid bell region.
    pub fn new(bell: S, max_rings: usize) -> Result<Self, AttachError> {
        Ok(Self {
            bell: bell_of(&bell)?,
            rings: Vec::new(),
            paused: Vec::new(),
            live: 0,
            cursor: 0,
            max_rings,
            waiter: Waiter::new(WaitOptions::default()),
            bell_shm: bell,
        })
    }

    /// Makes the consumer of ring `id` ring its space doorbell after every release (a
    /// channel's request rings: see `spsc::Consumer::ring_every_release`).
    #[cfg_attr(not(feature = "std"), allow(dead_code))]
    pub(crate) fn ring_every_release(&mut self, id: RingId) {
        if let Some(Some(c)) = self.rings.get_mut(id.0) {
            c.ring_every_release();
        }
    }

    /// Attaches the consumer end of `ring` (created with `RingConfig::shared_bell`).
    ///
    /// # Errors
    ///
    /// [`AttachError::Limit`] at `max_rings`; [`AttachError::WrongBell`] for a ring not made
    /// for a fan-in; otherwise as [`Consumer::attach`].
    pub fn add(&mut self, ring: S, owner: OwnerId) -> Result<RingId, AttachError> {
        if self.live >= self.max_rings {
            return Err(AttachError::Limit {
                max: self.max_rings,
            });
        }
        let mut consumer = Consumer::attach_inner(ring, owner, true, None)?;
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

    /// Detaches a ring, closing its consumer role; its undelivered frames are dropped with it
    /// (the producer sees `Closed`). Returns false if there was no such ring.
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
    pub fn is_paused(&self, id: RingId) -> bool {
        self.paused.get(id.0).copied().unwrap_or(false)
    }

    /// The consumers of the rings that are attached and not paused.
    fn active(&self) -> impl Iterator<Item = &Consumer<S>> {
        self.rings
            .iter()
            .zip(&self.paused)
            .filter(|(_, p)| !**p)
            .filter_map(|(c, _)| c.as_ref())
    }

    /// Rings attached now.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether no ring is attached.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Whether any ring that is not paused has a frame (or something to report: a corrupt
    /// ring). A pure peek over every ring: it changes nothing.
    ///
    /// `true` stays true until this fan-in receives; `false` may go stale at any moment.
    pub fn has_data(&self) -> bool {
        self.active().any(Consumer::has_data)
    }

    /// Whether a receive would return something other than `Empty` now: a frame, or a ring
    /// whose producer closed, to report. A pure peek, like [`has_data`](Self::has_data).
    pub fn ready(&self) -> bool {
        self.active()
            .any(|c| c.has_data() || c.is_producer_closed())
    }

    /// Receives the next frame, taking rings in turn, into `buf`; returns the ring, the tag
    /// and the length.
    ///
    /// # Errors
    ///
    /// [`FanInError::Empty`] if no ring has a frame; [`FanInError::Closed`] or
    /// [`FanInError::Corrupt`] once for a ring that was just detached;
    /// [`FanInError::BufferTooSmall`] (the frame stays, and the next call starts at the same
    /// ring).
    pub fn try_recv_into(&mut self, buf: &mut [u8]) -> Result<(RingId, u32, usize), FanInError> {
        let n = self.rings.len();
        for k in 0..n {
            let i = (self.cursor + k) % n;
            if self.paused[i] {
                continue;
            }
            let Some(consumer) = self.rings[i].as_mut() else {
                continue;
            };
            match consumer.try_recv_into(buf) {
                Ok((tag, len)) => {
                    self.cursor = i + 1;
                    return Ok((RingId(i), tag, len));
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

    /// Receives the next frame into `buf`, waiting at most `timeout` (`None`: as long as it
    /// takes; the wait still sleeps in bounded slices).
    ///
    /// # Errors
    ///
    /// As [`try_recv_into`](Self::try_recv_into) without `Empty`, and
    /// [`FanInError::Timeout`].
    pub fn recv_into_timeout(
        &mut self,
        buf: &mut [u8],
        timeout: Option<Duration>,
    ) -> Result<(RingId, u32, usize), FanInError> {
        let deadline = timeout.map(|t| Instant::now().after(t));
        loop {
            match self.try_recv_into(buf) {
                Err(FanInError::Empty) => {}
                done => return done,
            }
            let this = &*self;
            // Sleep in slices; between them, look for rings whose producer process died.
            let slice_end = Instant::now().after(self.waiter.options().get_slice());
            let until = deadline.map_or(slice_end, |d| d.min(slice_end));
            let mut waiter = self.waiter;
            let r = waiter.wait(&self.bell, || this.ready(), Some(until));
            self.waiter = waiter;
            if r.is_ok() {
                continue;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(FanInError::Timeout);
            }
            let dead = self
                .rings
                .iter_mut()
                .position(|c| c.as_mut().is_some_and(Consumer::producer_died));
            if let Some(i) = dead {
                self.detach(i);
                return Err(FanInError::Disconnected(RingId(i)));
            }
        }
    }

    /// Waits until `ready(self)` holds or `timeout` passes; see
    /// [`Consumer::wait_until`](crate::spsc::Consumer::wait_until).
    ///
    /// # Errors
    ///
    /// [`FanInError::Timeout`].
    pub fn wait_until(
        &mut self,
        mut ready: impl FnMut(&Self) -> bool,
        timeout: Option<Duration>,
    ) -> Result<(), FanInError> {
        let deadline = timeout.map(|t| Instant::now().after(t));
        let this = &*self;
        let mut waiter = self.waiter;
        let r = waiter.wait(&self.bell, || ready(this), deadline);
        self.waiter = waiter;
        r.map_err(|_| FanInError::Timeout)
    }

    /// A handle other threads use to wake this fan-in.
    pub fn notifier(&self) -> Notifier<S>
    where
        S: Clone,
    {
        Notifier::new(self.bell, self.bell_shm.clone())
    }

    /// How blocking calls wait; applies to every ring's consumer too.
    pub fn set_wait_options(&mut self, opts: WaitOptions) {
        self.waiter.set_options(opts);
        for c in self.rings.iter_mut().flatten() {
            c.set_wait_options(opts);
        }
    }

    /// Wait counters: the fan-in's own (sleeps on the shared doorbell) plus every attached
    /// ring's (wakes of producers blocked on full).
    pub fn stats(&self) -> WaitStats {
        let mut s = self.waiter.stats();
        for c in self.rings.iter().flatten() {
            let r = c.stats();
            s.wakes += r.wakes;
            s.sleeps += r.sleeps;
            s.futex_waits += r.futex_waits;
            s.spins += r.spins;
        }
        s
    }
}

impl<S: SharedMemory> fmt::Debug for FanIn<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FanIn")
            .field("rings", &self.live)
            .field("max_rings", &self.max_rings)
            .field("cursor", &self.cursor)
            .finish_non_exhaustive()
    }
}

/// Attaches a producer to a fan-in ring; shorthand for
/// [`Producer::attach_shared_bell`].
///
/// # Errors
///
/// As [`Producer::attach_shared_bell`].
pub fn producer<S: SharedMemory>(
    ring: S,
    bell: S,
    owner: OwnerId,
) -> Result<Producer<S>, AttachError> {
    Producer::attach_shared_bell(ring, bell, owner)
}
