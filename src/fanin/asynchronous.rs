//! The async fan-in (feature `tokio`).

use std::io;

use tokio::io::unix::AsyncFd;

use super::{FanIn, FanInError, RingId};
use crate::doorbell::Readiness;
use crate::doorbell::asynchronous::{Waited, register, wait};
use crate::region::{Admits, Bell, SharedMemory, Spsc};

/// A [`FanIn`] that awaits frames: one task serves every ring, waiting on one readiness
/// descriptor registered with tokio's reactor. Every producer rings with the readiness's
/// signal ([`Producer::set_peer_readiness`](crate::spsc::Producer::set_peer_readiness));
/// a [`Notifier`](crate::doorbell::Notifier) of the fan-in does not reach an async wait.
///
/// # Examples
///
/// ```
/// use ringbell::doorbell::{BellConfig, Readiness};
/// use ringbell::fanin::{AsyncFanIn, FanIn, FanInError};
/// use ringbell::region::HeapRegion;
/// use ringbell::{spsc, OwnerId};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// let bell = HeapRegion::new(&BellConfig)?;
/// let mut fanin = FanIn::new(bell.clone(), 4)?;
/// let readiness = Readiness::new()?;
/// let mut producers = Vec::new();
/// for _ in 0..3 {
///     let ring = HeapRegion::new(&spsc::Config::new(1024).shared_bell())?;
///     fanin.add(ring.clone(), OwnerId::unique())?;
///     let mut tx = spsc::Producer::attach_shared_bell(ring, bell.clone(), OwnerId::unique())?;
///     tx.set_peer_readiness(Some(readiness.signal()));
///     producers.push(tx);
/// }
/// let mut fanin = AsyncFanIn::new(fanin, readiness)?;
/// for (i, mut tx) in producers.into_iter().enumerate() {
///     std::thread::spawn(move || tx.send(i as u32, b"hello").unwrap());
/// }
/// let (mut tags, mut closed) = (Vec::new(), 0);
/// while closed < 3 {
///     match fanin.recv().await {
///         Ok((_, frame)) => tags.push(frame.tag),
///         Err(FanInError::Closed(_)) => closed += 1, // a producer finished
///         Err(e) => return Err(e.into()),
///     }
/// }
/// tags.sort();
/// assert_eq!(tags, [0, 1, 2]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct AsyncFanIn<R: SharedMemory, B: SharedMemory = R> {
    fanin: FanIn<R, B>,
    ready: AsyncFd<Readiness>,
}

impl<R: SharedMemory, B: SharedMemory> AsyncFanIn<R, B>
where
    R::Kind: Admits<Spsc>,
    B::Kind: Admits<Bell>,
{
    /// Wraps `fanin`, waiting on `readiness` (whose signal every producer rings with). Call
    /// it inside a tokio runtime with I/O and time enabled.
    ///
    /// # Errors
    ///
    /// If tokio's reactor cannot register the descriptor (no runtime).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::doorbell::{BellConfig, Readiness};
    /// use ringbell::fanin::{AsyncFanIn, FanIn};
    /// use ringbell::region::{HeapRegion, Spsc};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let fanin: FanIn<HeapRegion<Spsc>, _> = FanIn::new(HeapRegion::new(&BellConfig)?, 4)?;
    /// let fanin = AsyncFanIn::new(fanin, Readiness::new()?)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(fanin: FanIn<R, B>, readiness: Readiness) -> io::Result<Self> {
        Ok(Self {
            fanin,
            ready: register(readiness)?,
        })
    }

    /// Receives the next frame from any ring, round robin, awaiting one as long as it takes.
    /// A ring whose producer closed is reported and detached as by [`FanIn::recv`]; one
    /// whose producer process died is found within a slice (50 ms by default).
    ///
    /// Cancel-safe: a dropped future has taken nothing.
    ///
    /// # Errors
    ///
    /// As [`FanIn::recv`]: `Closed(id)`, `Disconnected(id)`, `Corrupt(id, _)`, `Forked`,
    /// `NoRings`.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::doorbell::{BellConfig, Readiness};
    /// use ringbell::fanin::{AsyncFanIn, FanIn, FanInError};
    /// use ringbell::region::{HeapRegion, Spsc};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let fanin: FanIn<HeapRegion<Spsc>, _> = FanIn::new(HeapRegion::new(&BellConfig)?, 4)?;
    /// let mut fanin = AsyncFanIn::new(fanin, Readiness::new()?)?;
    /// assert!(matches!(fanin.recv().await, Err(FanInError::NoRings)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn recv(&mut self) -> Result<(RingId, crate::Frame), FanInError> {
        loop {
            match self.fanin.try_recv() {
                Err(FanInError::Empty) => {}
                done => return done,
            }
            if self.fanin.ring_count() == 0 {
                return Err(FanInError::NoRings);
            }
            let announced = self.fanin.poll_ready(self.ready.get_ref());
            let slice = self.fanin.wait_options().slice;
            if let Waited::Slice = wait(&self.ready, announced, slice).await {
                if let Some(id) = self.fanin.reap_dead() {
                    return Err(FanInError::Disconnected(id));
                }
            }
        }
    }

    /// The fan-in inside (add and remove rings, pause them, peek).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::doorbell::{BellConfig, Readiness};
    /// use ringbell::fanin::{AsyncFanIn, FanIn};
    /// use ringbell::region::{HeapRegion, Spsc};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let fanin: FanIn<HeapRegion<Spsc>, _> = FanIn::new(HeapRegion::new(&BellConfig)?, 4)?;
    /// let fanin = AsyncFanIn::new(fanin, Readiness::new()?)?;
    /// assert_eq!(fanin.get_ref().ring_count(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_ref(&self) -> &FanIn<R, B> {
        &self.fanin
    }

    /// The fan-in inside, mutably.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::doorbell::{BellConfig, Readiness};
    /// use ringbell::fanin::{AsyncFanIn, FanIn};
    /// use ringbell::region::HeapRegion;
    /// use ringbell::{spsc, OwnerId};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let fanin = FanIn::new(HeapRegion::new(&BellConfig)?, 4)?;
    /// let mut fanin = AsyncFanIn::new(fanin, Readiness::new()?)?;
    /// let ring = HeapRegion::new(&spsc::Config::new(1024).shared_bell())?;
    /// fanin.get_mut().add(ring, OwnerId::unique())?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_mut(&mut self) -> &mut FanIn<R, B> {
        &mut self.fanin
    }
}
