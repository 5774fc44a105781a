//! A shared ring for cooperating producers: many producers, one consumer, one global order.
//!
//! # Progress
//!
//! A producer's claim is a compare-and-swap on the shared claim position, retried while other
//! producers win it: **lock-free**, not wait-free (some producer always makes progress; one
//! producer can in principle lose every race). Everything else a producer does, and every
//! non-blocking call of the consumer, finishes in a bounded number of steps. No call makes a
//! system call on its fast path.
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
//! Record headers are the 8-byte headers of the [wire format](crate::wire), with one more
//! state.
//! Their length word is:
//!
//! * `0` — claimed, not described yet (the consumer zeroes the first `u32` of every 8-byte
//!   chunk it releases — every place a header can start — so a freshly claimed header is
//!   never mistaken for stale bytes of the previous lap);
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
//!    and skipped the record: the producer learns it ([`SendError::Skipped`](crate::SendError::Skipped)) instead of
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
//! ring posts a *reservation*, so that a steady stream of small frames cannot starve it
//! (`mpsc/reservation.rs`).
//!
//! **Waking.** Producers ring the data doorbell after each commit (a batch, once). The
//! consumer rings the space doorbell as the SPSC consumer does (`src/space.rs`): per
//! sixteenth of the ring, on catching up with the claim position it last read, and when a
//! receive stops short — at a record still being written, or one its buffer cannot hold — so
//! that a producer claiming behind a preempted or dead one is not held up. (Model:
//! `a_blocked_producer_wakes_when_the_consumer_catches_up`; mutant `mpsc_no_catch_up_ring`.)
//!
//! # Files
//!
//! `config.rs` (the layout and its initialisation), `registry.rs` (the producer slots),
//! `producer.rs` (claim and commit), `reservation.rs` (large frames), `consumer.rs` (reading
//! and releasing), `skip.rs` (dead producers).
//!
//! # Examples
//!
//! ```
//! use ringbell::mpsc;
//!
//! let (mut rx, region) = mpsc::channel(1 << 16)?;
//! let producers: Vec<_> = (0..4u32)
//!     .map(|i| {
//!         let mut tx = region.producer().unwrap();
//!         std::thread::spawn(move || tx.send(i, b"hello").unwrap())
//!     })
//!     .collect();
//! let mut tags: Vec<u32> = (0..4).map(|_| rx.recv().unwrap().tag).collect();
//! tags.sort();
//! assert_eq!(tags, [0, 1, 2, 3]);
//! # for p in producers { p.join().unwrap(); }
//! # Ok::<(), ringbell::AttachError>(())
//! ```

#[cfg(feature = "tokio")]
mod asynchronous;
mod config;
mod consumer;
mod producer;
mod registry;
mod reservation;
mod skip;

#[cfg(all(feature = "std", not(loom)))]
pub use crate::liveness::PidfdLiveness;
pub use crate::liveness::{Liveness, NeverDead};
#[cfg(feature = "tokio")]
pub use asynchronous::AsyncConsumer;
pub use config::{Config, DEFAULT_SLOTS, DEFAULT_STALL_TIMEOUT, init};
pub use consumer::{Consumer, ReadGuard};
#[cfg(feature = "std")]
pub use consumer::{Iter, TryIter};
pub use producer::{Grant, Producer};

#[cfg(all(feature = "std", not(loom)))]
use crate::AttachError;
#[cfg(all(feature = "std", not(loom)))]
use crate::region::{HeapRegion, Mpsc, Region};

#[cfg(all(feature = "std", not(loom)))]
impl Region<Mpsc> {
    /// Registers a producer of the ring with a fresh [`OwnerId::unique`](crate::OwnerId::unique)
    /// (see [`Producer::attach`]).
    ///
    /// # Errors
    ///
    /// As [`Producer::attach`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::region::Region;
    /// use ringbell::mpsc;
    ///
    /// let region = Region::create(&mpsc::Config::new(4096))?;
    /// let mut rx = region.consumer(mpsc::PidfdLiveness::new())?;
    /// let mut tx = region.producer()?;
    /// tx.try_send(1, b"x")?;
    /// assert_eq!(rx.try_recv()?.tag, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn producer(&self) -> Result<Producer<Self>, AttachError> {
        Producer::new(self.clone())
    }

    /// Attaches the ring's consumer with a fresh [`OwnerId::unique`](crate::OwnerId::unique);
    /// stuck records are skipped when `liveness` says their producer is dead.
    ///
    /// # Errors
    ///
    /// As [`Consumer::attach`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::region::Region;
    /// use ringbell::mpsc;
    ///
    /// let region = Region::create(&mpsc::Config::new(4096))?;
    /// let rx = region.consumer(mpsc::NeverDead)?;
    /// assert!(region.consumer(mpsc::NeverDead).is_err()); // one consumer per ring
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn consumer<L: Liveness>(&self, liveness: L) -> Result<Consumer<Self, L>, AttachError> {
        Consumer::new(self.clone(), liveness)
    }
}

#[cfg(all(feature = "std", not(loom)))]
impl HeapRegion<Mpsc> {
    /// Registers a producer of the ring with a fresh [`OwnerId::unique`](crate::OwnerId::unique).
    ///
    /// # Errors
    ///
    /// As [`Producer::attach`].
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut rx, region) = ringbell::mpsc::channel(4096)?;
    /// let mut tx = region.producer()?;
    /// tx.try_send(2, b"y")?;
    /// assert_eq!(rx.try_recv()?.tag, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn producer(&self) -> Result<Producer<Self>, AttachError> {
        Producer::new(self.clone())
    }

    /// Attaches the ring's consumer with a fresh [`OwnerId::unique`](crate::OwnerId::unique).
    ///
    /// # Errors
    ///
    /// As [`Consumer::attach`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::region::HeapRegion;
    /// use ringbell::mpsc;
    ///
    /// let region = HeapRegion::new(&mpsc::Config::new(4096))?;
    /// let rx = region.consumer(mpsc::NeverDead)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn consumer<L: Liveness>(&self, liveness: L) -> Result<Consumer<Self, L>, AttachError> {
        Consumer::new(self.clone(), liveness)
    }
}

/// Creates an in-process MPSC ring of `capacity` bytes on the heap (frame cap
/// `capacity / 8 - 8`, see [`Config`]); returns its consumer — which never skips: producers
/// are threads — and the region to attach producers to ([`HeapRegion::producer`]).
///
/// # Errors
///
/// [`AttachError::Header`] with the configuration's error.
///
/// # Examples
///
/// ```
/// let (mut rx, region) = ringbell::mpsc::channel(4096)?;
/// let mut tx = region.producer()?;
/// tx.try_send(1, b"hi")?;
/// assert_eq!(rx.try_recv()?.data, b"hi");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg(all(feature = "std", not(loom)))]
pub fn channel(
    capacity: usize,
) -> Result<(Consumer<HeapRegion<Mpsc>>, HeapRegion<Mpsc>), AttachError> {
    channel_with(&Config::new(capacity))
}

/// As [`channel`], with a configuration (frame cap, registry slots, start position).
///
/// # Errors
///
/// [`AttachError::Header`] with the configuration's error.
///
/// # Examples
///
/// ```
/// use ringbell::mpsc;
///
/// let (rx, _region) = mpsc::channel_with(&mpsc::Config::new(4096).frame_cap(1024))?;
/// assert_eq!(rx.max_frame(), 1024);
/// # Ok::<(), ringbell::AttachError>(())
/// ```
#[cfg(all(feature = "std", not(loom)))]
pub fn channel_with(
    cfg: &Config,
) -> Result<(Consumer<HeapRegion<Mpsc>>, HeapRegion<Mpsc>), AttachError> {
    let region = HeapRegion::new(cfg)?;
    let rx = region.consumer(NeverDead)?;
    Ok((rx, region))
}
