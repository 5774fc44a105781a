//! The async SPSC ends (feature `tokio`); what they guarantee is in the
//! [`spsc`](super) module docs, "Async ends".

use std::io;

use tokio::io::unix::AsyncFd;

use super::{Consumer, Producer};
use crate::doorbell::Readiness;
use crate::doorbell::asynchronous::{Waited, register, wait};
use crate::error::{RecvError, SendError};
use crate::region::SharedMemory;

/// An SPSC consumer that awaits frames. See the [`spsc`](super) module docs, "Async ends".
///
/// # Examples
///
/// ```
/// use ringbell::doorbell::Readiness;
/// use ringbell::spsc::AsyncConsumer;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// let (mut tx, rx) = ringbell::spsc::channel(4096)?;
/// let readiness = Readiness::new()?;
/// tx.set_peer_readiness(Some(readiness.signal())); // the producer answers async waits
/// let mut rx = AsyncConsumer::new(rx, readiness)?;
/// std::thread::spawn(move || tx.send(7, b"hello").unwrap());
/// let frame = rx.recv().await?;
/// assert_eq!((frame.tag, &frame.data[..]), (7, &b"hello"[..]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct AsyncConsumer<S: SharedMemory, B: SharedMemory = S> {
    rx: Consumer<S, B>,
    ready: AsyncFd<Readiness>,
}

impl<S: SharedMemory, B: SharedMemory> AsyncConsumer<S, B> {
    /// Wraps `rx`, waiting on `readiness` (whose signal the producer rings with). Call it
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
    /// let (_tx, rx) = ringbell::spsc::channel(4096)?;
    /// let rx = ringbell::spsc::AsyncConsumer::new(rx, ringbell::doorbell::Readiness::new()?)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(rx: Consumer<S, B>, readiness: Readiness) -> io::Result<Self> {
        Ok(Self {
            rx,
            ready: register(readiness)?,
        })
    }

    /// Receives the next frame, awaiting one as long as it takes; a producer that closes, or
    /// whose process dies, ends the wait (within a slice) after every frame it published.
    ///
    /// # Errors
    ///
    /// As [`Consumer::recv`]: `Closed`, `Disconnected`, `Corrupt`, `Forked`.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::RecvError;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let (tx, rx) = ringbell::spsc::channel(4096)?;
    /// let mut rx = ringbell::spsc::AsyncConsumer::new(rx, ringbell::doorbell::Readiness::new()?)?;
    /// drop(tx);
    /// assert_eq!(rx.recv().await, Err(RecvError::Closed));
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
            let slice = self.rx.wait_options().slice;
            if let Waited::Slice = wait(&self.ready, announced, slice).await {
                if self.rx.producer_died() {
                    return Err(RecvError::Disconnected);
                }
            }
        }
    }

    /// The consumer inside (its non-blocking calls are the same).
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let (_tx, rx) = ringbell::spsc::channel(4096)?;
    /// let rx = ringbell::spsc::AsyncConsumer::new(rx, ringbell::doorbell::Readiness::new()?)?;
    /// assert!(!rx.get_ref().has_data());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_ref(&self) -> &Consumer<S, B> {
        &self.rx
    }

    /// The consumer inside, mutably.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let (_tx, rx) = ringbell::spsc::channel(4096)?;
    /// let mut rx = ringbell::spsc::AsyncConsumer::new(rx, ringbell::doorbell::Readiness::new()?)?;
    /// assert!(rx.get_mut().try_recv().is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_mut(&mut self) -> &mut Consumer<S, B> {
        &mut self.rx
    }
}

/// An SPSC producer that awaits room. See the [`spsc`](super) module docs, "Async ends".
///
/// # Examples
///
/// ```
/// use ringbell::doorbell::Readiness;
/// use ringbell::spsc::AsyncProducer;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// let (tx, mut rx) = ringbell::spsc::channel(4096)?;
/// let readiness = Readiness::new()?;
/// rx.set_peer_readiness(Some(readiness.signal())); // the consumer answers async waits
/// let mut tx = AsyncProducer::new(tx, readiness)?;
/// let reader = std::thread::spawn(move || (0..100).map(|_| rx.recv().unwrap().tag).sum::<u32>());
/// for i in 0..100 {
///     tx.send(i, &[0u8; 512]).await?; // waits for room when the 4 KiB ring is full
/// }
/// assert_eq!(reader.join().unwrap(), (0..100).sum());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct AsyncProducer<S: SharedMemory, B: SharedMemory = S> {
    tx: Producer<S, B>,
    ready: AsyncFd<Readiness>,
}

impl<S: SharedMemory, B: SharedMemory> AsyncProducer<S, B> {
    /// Wraps `tx`, waiting for room on `readiness` (whose signal the consumer rings with).
    /// Call it inside a tokio runtime with I/O and time enabled.
    ///
    /// # Errors
    ///
    /// If tokio's reactor cannot register the descriptor (no runtime).
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let (tx, _rx) = ringbell::spsc::channel(4096)?;
    /// let tx = ringbell::spsc::AsyncProducer::new(tx, ringbell::doorbell::Readiness::new()?)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(tx: Producer<S, B>, readiness: Readiness) -> io::Result<Self> {
        Ok(Self {
            tx,
            ready: register(readiness)?,
        })
    }

    /// Sends a frame, awaiting room as long as it takes; a consumer that closes, or whose
    /// process dies, ends the wait (within a slice).
    ///
    /// # Errors
    ///
    /// As [`Producer::send`]: `TooLarge` at once, `Closed`, `Disconnected`, `Corrupt`,
    /// `Forked`.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::SendError;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let (tx, rx) = ringbell::spsc::channel(4096)?;
    /// let mut tx = ringbell::spsc::AsyncProducer::new(tx, ringbell::doorbell::Readiness::new()?)?;
    /// tx.send(1, b"kept").await?;
    /// drop(rx);
    /// assert_eq!(tx.send(2, b"nobody reads").await, Err(SendError::Closed));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn send(&mut self, tag: u32, data: &[u8]) -> Result<(), SendError> {
        loop {
            match self.tx.try_send(tag, data) {
                Err(SendError::Full) => {}
                done => return done,
            }
            let announced = self.tx.poll_room(self.ready.get_ref(), data.len());
            let slice = self.tx.wait_options().slice;
            if let Waited::Slice = wait(&self.ready, announced, slice).await {
                if self.tx.consumer_died() {
                    return Err(SendError::Disconnected);
                }
            }
        }
    }

    /// The producer inside.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let (tx, _rx) = ringbell::spsc::channel(4096)?;
    /// let tx = ringbell::spsc::AsyncProducer::new(tx, ringbell::doorbell::Readiness::new()?)?;
    /// assert!(tx.get_ref().can_send(16));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_ref(&self) -> &Producer<S, B> {
        &self.tx
    }

    /// The producer inside, mutably.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let (tx, _rx) = ringbell::spsc::channel(4096)?;
    /// let mut tx = ringbell::spsc::AsyncProducer::new(tx, ringbell::doorbell::Readiness::new()?)?;
    /// tx.get_mut().try_send(1, b"now")?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_mut(&mut self) -> &mut Producer<S, B> {
        &mut self.tx
    }
}
