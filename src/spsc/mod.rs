//! A single-producer single-consumer ring of variable-length frames in shared memory.
//!
//! # What it guarantees
//!
//! * **Wait-free.** [`Producer::try_send`], [`Producer::reserve`],
//!   [`Consumer::try_recv_into`] and [`Consumer::try_read`] finish in a bounded number of
//!   steps whatever the peer does (no loop waits for the peer); they never block, and make no
//!   system call except, when about to report `Full` or `Empty`, a dead-peer check at most
//!   once per 10 ms.
//! * **Order.** Frames arrive in the order they were committed, each exactly once.
//! * **No silent drop.** A frame above the [frame cap](Producer::max_frame) is refused at
//!   once with [`SendError::TooLarge`](crate::SendError::TooLarge); a full ring returns [`SendError::Full`](crate::SendError::Full); a consumer
//!   that closed its end returns [`SendError::Closed`](crate::SendError::Closed).
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
//! owner ids from [`OwnerId::unique`](crate::OwnerId::unique), which carry the process id). Frames a dead producer
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
//! doorbell only when the position crosses a sixteenth of the ring since the last ring, or
//! when it has caught up with every record it knows of; the argument that no producer sleeps
//! for ever is in `src/space.rs`, which the MPSC consumer shares. A receive that stops short
//! of catching up — a frame its buffer cannot hold (`BufferTooSmall`), a fan-in pausing the
//! ring — rings for the space freed since the last ring. What is left: a consumer that simply
//! stops calling with frames left in a full ring lets the producer see the space freed since
//! the last ring at the end of its sleep slice (50 ms by default). A channel's request rings
//! ring after every release instead: a client blocked on a full request ring collects its
//! responses when woken for space.
//!
//! # Async ends
//!
//! With the `tokio` feature, `AsyncConsumer` awaits frames and `AsyncProducer` awaits room,
//! without a thread per waiter and without a system call while the other side is awake.
//! Each end owns a [`Readiness`](crate::doorbell::Readiness) registered with tokio's
//! reactor; the other end rings through its
//! [`ReadinessSignal`](crate::doorbell::ReadinessSignal) (`set_peer_readiness`; in another
//! process: the descriptor, passed over a socket or inherited, and
//! [`ReadinessSignal::from_fd`](crate::doorbell::ReadinessSignal::from_fd)). The wait is the
//! doorbell's async step ([doorbell](crate::doorbell), "Async waits"): drain, announce,
//! re-check, then await readability — in slices of the wait options' slice (50 ms), between
//! which a dead peer is noticed, as in the blocking calls. Both futures are cancel-safe:
//! dropped while waiting, they have taken nothing and sent nothing. Without tokio, the same
//! steps serve any event loop: [`Consumer::poll_ready`], [`Producer::poll_room`] and the
//! readiness's descriptor (`AsFd`).
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
//! let (mut tx, mut rx) = spsc::channel(4096)?;
//! tx.try_send(1, b"hello")?;
//! let mut grant = tx.reserve(5)?;
//! grant.copy_from_slice(b"world");
//! grant.commit(2);
//!
//! let mut buf = [0u8; 64];
//! assert_eq!(rx.try_recv_into(&mut buf)?, (1, 5));
//! assert_eq!(&buf[..5], b"hello");
//! let frame = rx.try_recv()?;
//! assert_eq!((frame.tag, &frame.data[..]), (2, &b"world"[..]));
//! assert!(!rx.has_data());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Between processes, the ring lives in a sealed memfd ([`region::Region`](crate::region::Region))
//! whose fd the other process receives; each side attaches its end
//! ([`Region::producer`](crate::region::Region::producer),
//! [`Region::consumer`](crate::region::Region::consumer)).

#[cfg(all(feature = "tokio", not(loom)))]
mod asynchronous;
mod config;
mod consumer;
mod producer;

#[cfg(all(feature = "tokio", not(loom)))]
pub use asynchronous::{AsyncConsumer, AsyncProducer};
pub use config::{Config, init};
pub use consumer::{Consumer, ReadGuard};
#[cfg(feature = "std")]
pub use consumer::{Iter, TryIter};
pub use producer::{Grant, Producer};

#[cfg(all(feature = "std", not(loom)))]
use crate::AttachError;
#[cfg(all(feature = "std", not(loom)))]
use crate::region::{HeapRegion, Region, Spsc};

#[cfg(all(feature = "std", not(loom)))]
impl Region<Spsc> {
    /// Attaches the ring's producer end with a fresh [`OwnerId::unique`](crate::OwnerId::unique)(crate::OwnerId::unique)
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
    /// use ringbell::spsc;
    ///
    /// let region = Region::create(&spsc::Config::new(4096))?;
    /// let (mut tx, mut rx) = (region.producer()?, region.consumer()?);
    /// tx.try_send(1, b"x")?;
    /// assert_eq!(rx.try_recv()?.tag, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn producer(&self) -> Result<Producer<Self>, AttachError> {
        Producer::new(self.clone())
    }

    /// Attaches the ring's consumer end with a fresh [`OwnerId::unique`](crate::OwnerId::unique)(crate::OwnerId::unique)
    /// (see [`Consumer::attach`]).
    ///
    /// # Errors
    ///
    /// As [`Consumer::attach`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::region::Region;
    /// use ringbell::spsc;
    ///
    /// let region = Region::create(&spsc::Config::new(4096))?;
    /// let rx = region.consumer()?;
    /// assert!(region.consumer().is_err()); // one consumer per ring
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn consumer(&self) -> Result<Consumer<Self>, AttachError> {
        Consumer::new(self.clone())
    }
}

#[cfg(all(feature = "std", not(loom)))]
impl HeapRegion<Spsc> {
    /// Attaches the ring's producer end with a fresh [`OwnerId::unique`](crate::OwnerId::unique)(crate::OwnerId::unique).
    ///
    /// # Errors
    ///
    /// As [`Producer::attach`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::region::HeapRegion;
    /// use ringbell::spsc;
    ///
    /// let region = HeapRegion::new(&spsc::Config::new(4096))?;
    /// let tx = region.producer()?;
    /// assert!(region.producer().is_err()); // one producer per ring
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn producer(&self) -> Result<Producer<Self>, AttachError> {
        Producer::new(self.clone())
    }

    /// Attaches the ring's consumer end with a fresh [`OwnerId::unique`](crate::OwnerId::unique)(crate::OwnerId::unique).
    ///
    /// # Errors
    ///
    /// As [`Consumer::attach`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::region::HeapRegion;
    /// use ringbell::spsc;
    ///
    /// let region = HeapRegion::new(&spsc::Config::new(4096))?;
    /// let (mut tx, mut rx) = (region.producer()?, region.consumer()?);
    /// tx.try_send(0, b"heap")?;
    /// assert_eq!(rx.try_recv()?.data, b"heap");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn consumer(&self) -> Result<Consumer<Self>, AttachError> {
        Consumer::new(self.clone())
    }
}

/// Creates an in-process SPSC ring of `capacity` bytes on the heap, frame cap
/// `capacity / 2 - 8`, and attaches both ends.
///
/// # Errors
///
/// [`AttachError::Header`] with the configuration's error (a capacity that is not a power
/// of two between 16 bytes and 2 GiB).
///
/// # Examples
///
/// ```
/// let (mut tx, mut rx) = ringbell::spsc::channel(1024)?;
/// std::thread::spawn(move || tx.try_send(0, b"ping").unwrap()).join().unwrap();
/// assert_eq!(rx.try_recv()?.data, b"ping");
/// assert!(ringbell::spsc::channel(1000).is_err()); // not a power of two
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg(all(feature = "std", not(loom)))]
#[allow(clippy::type_complexity)]
pub fn channel(
    capacity: usize,
) -> Result<(Producer<HeapRegion<Spsc>>, Consumer<HeapRegion<Spsc>>), AttachError> {
    channel_with(&Config::new(capacity))
}

/// As [`channel`], with a configuration (a smaller frame cap, a start position).
///
/// # Errors
///
/// [`AttachError::Header`] with the configuration's error.
///
/// # Examples
///
/// ```
/// use ringbell::spsc;
///
/// let (tx, _rx) = spsc::channel_with(&spsc::Config::new(4096).frame_cap(64))?;
/// assert_eq!(tx.max_frame(), 64);
/// # Ok::<(), ringbell::AttachError>(())
/// ```
#[cfg(all(feature = "std", not(loom)))]
#[allow(clippy::type_complexity)]
pub fn channel_with(
    cfg: &Config,
) -> Result<(Producer<HeapRegion<Spsc>>, Consumer<HeapRegion<Spsc>>), AttachError> {
    let region = HeapRegion::new(cfg)?;
    Ok((region.producer()?, region.consumer()?))
}
