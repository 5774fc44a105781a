//! The async MPSC consumer (feature `tokio`).

use std::io;

use tokio::io::unix::AsyncFd;

use super::Consumer;
use crate::doorbell::Readiness;
use crate::doorbell::asynchronous::{register, wait};
use crate::error::RecvError;
use crate::liveness::{Liveness, NeverDead};
use crate::region::SharedMemory;

/// An MPSC [`Consumer`] that awaits frames, waiting on a readiness descriptor registered
/// with tokio's reactor. Every producer rings with the readiness's signal
/// ([`Producer::set_peer_readiness`](super::Producer::set_peer_readiness)). A record a
/// producer claimed and never committed is skipped after the stall timeout, as by
/// [`Consumer::recv`]: the await wakes for it on its own timer.
///
/// # Examples
///
/// ```
/// use ringbell::doorbell::Readiness;
/// use ringbell::mpsc::AsyncConsumer;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// let (rx, region) = ringbell::mpsc::channel(4096)?;
/// let readiness = Readiness::new()?;
/// let mut rx = AsyncConsumer::new(rx, readiness)?;
/// for i in 0..4u32 {
///     let mut tx = region.producer()?;
///     tx.set_peer_readiness(Some(rx.signal()));
///     std::thread::spawn(move || tx.send(i, b"hello").unwrap());
/// }
/// let mut tags = Vec::new();
/// for _ in 0..4 {
///     tags.push(rx.recv().await?.tag);
/// }
/// tags.sort();
/// assert_eq!(tags, [0, 1, 2, 3]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct AsyncConsumer<S: SharedMemory, L: Liveness = NeverDead> {
    rx: Consumer<S, L>,
    ready: AsyncFd<Readiness>,
}

impl<S: SharedMemory, L: Liveness> AsyncConsumer<S, L> {
    /// Wraps `rx`, waiting on `readiness` (whose signal every producer rings with). Call it
    /// inside a tokio runtime with I/O and time enabled.
    ///
    /// # Errors
    ///
    /// If tokio's reactor cannot register the descriptor (no runtime).
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let (rx, _region) = ringbell::mpsc::channel(4096)?;
    /// let rx = ringbell::mpsc::AsyncConsumer::new(rx, ringbell::doorbell::Readiness::new()?)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(rx: Consumer<S, L>, readiness: Readiness) -> io::Result<Self> {
        Ok(Self {
            rx,
            ready: register(readiness)?,
        })
    }

    /// A signal for a producer of this process to ring with
    /// ([`Producer::set_peer_readiness`](super::Producer::set_peer_readiness)).
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let (rx, region) = ringbell::mpsc::channel(4096)?;
    /// let rx = ringbell::mpsc::AsyncConsumer::new(rx, ringbell::doorbell::Readiness::new()?)?;
    /// let mut tx = region.producer()?;
    /// tx.set_peer_readiness(Some(rx.signal()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn signal(&self) -> crate::doorbell::ReadinessSignal {
        self.ready.get_ref().signal()
    }

    /// Receives the next frame, awaiting one as long as it takes. Cancel-safe: a dropped
    /// future has taken nothing.
    ///
    /// # Errors
    ///
    /// As [`Consumer::recv`]: `Corrupt`, `Forked`.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let (rx, region) = ringbell::mpsc::channel(4096)?;
    /// let mut rx = ringbell::mpsc::AsyncConsumer::new(rx, ringbell::doorbell::Readiness::new()?)?;
    /// region.producer()?.try_send(9, b"now")?;
    /// assert_eq!(rx.recv().await?.data, b"now");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn recv(&mut self) -> Result<crate::Frame, RecvError> {
        loop {
            match self.rx.try_recv() {
                Err(RecvError::Empty) => {}
                done => return done,
            }
            let announced = self.rx.poll_ready(self.ready.get_ref());
            // A stalled record is examined when its timeout runs out; nothing else bounds
            // the wait (producers come and go: there is no peer to watch).
            let slice = self.rx.wait_options().slice;
            let bound = self.rx.stall_left().map_or(slice, |left| left.min(slice));
            let _ = wait(&self.ready, announced, bound).await;
        }
    }

    /// The consumer inside.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let (rx, _region) = ringbell::mpsc::channel(4096)?;
    /// let rx = ringbell::mpsc::AsyncConsumer::new(rx, ringbell::doorbell::Readiness::new()?)?;
    /// assert!(rx.get_ref().is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_ref(&self) -> &Consumer<S, L> {
        &self.rx
    }

    /// The consumer inside, mutably.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let (rx, _region) = ringbell::mpsc::channel(4096)?;
    /// let mut rx = ringbell::mpsc::AsyncConsumer::new(rx, ringbell::doorbell::Readiness::new()?)?;
    /// rx.get_mut().set_stall_timeout(std::time::Duration::from_millis(100));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_mut(&mut self) -> &mut Consumer<S, L> {
        &mut self.rx
    }
}
