//! Bell regions — a doorbell shared by several rings — and the [`Notifier`] that rings a
//! consumer's doorbell from another thread.
//!
//! A bell region is a region header of kind `Bell` whose data area is one doorbell line
//! ([`wire::BELL_REGION_SIZE`](crate::wire::BELL_REGION_SIZE) bytes in all). A fan-in's
//! producers ring it instead of their rings' own data doorbells, so that the fan-in's consumer
//! sleeps on one doorbell; a channel server's clients ring it when they free space in their
//! response rings.

use core::fmt;

use super::fences::Fences;
use super::line::Line;
use crate::error::{AttachError, HeaderError};
use crate::header::{self, Geometry};
use crate::mem::Mem;
use crate::region::{Admits, Bell, Init, RegionConfig, SharedMemory};
use crate::wire::{BELL_CAPACITY, BELL_REGION_SIZE, HEADER_SIZE, RingKind};

/// The configuration of a bell region (it has no settings): pass it to `HeapRegion::new` or
/// `Region::create` for a region typed `Bell`.
///
/// # Examples
///
/// ```
/// use ringbell::doorbell::BellConfig;
/// use ringbell::region::{Bell, HeapRegion, RegionConfig};
///
/// let bell: HeapRegion<Bell> = HeapRegion::new(&BellConfig)?;
/// assert_eq!(bell.len(), BellConfig.region_size()?);
/// # Ok::<(), ringbell::HeaderError>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BellConfig;

fn geometry() -> Geometry {
    // A valid configuration by construction (128 is a power of two within range).
    match header::geometry(RingKind::Bell, BELL_CAPACITY, Some(0)) {
        Ok(g) => g,
        Err(_) => unreachable!("the bell geometry is valid"),
    }
}

/// A bell region of a chosen fence mode (a channel server's, which follows its
/// configuration); [`BellConfig`] takes this process's default.
#[cfg_attr(any(loom, not(feature = "std")), allow(dead_code))]
#[derive(Clone, Copy, Debug)]
pub(crate) struct FencedBell(pub(crate) Fences);

impl RegionConfig for FencedBell {
    type Kind = Bell;

    fn region_size(&self) -> Result<usize, HeaderError> {
        self.0.usable()?;
        Ok(BELL_REGION_SIZE)
    }
}

impl Init for FencedBell {
    fn init(&self, mem: &Mem) -> Result<(), HeaderError> {
        let mut geo = geometry();
        geo.set_fences(Some(self.0))?;
        header::init(mem, &geo, 0)
    }
}

impl RegionConfig for BellConfig {
    type Kind = Bell;

    fn region_size(&self) -> Result<usize, HeaderError> {
        Ok(BELL_REGION_SIZE)
    }
}

impl Init for BellConfig {
    fn init(&self, mem: &Mem) -> Result<(), HeaderError> {
        let mut geo = geometry();
        geo.set_fences(None)?;
        header::init(mem, &geo, 0)
    }
}

/// Writes a fresh bell region header into `shm` (exactly
/// [`BELL_REGION_SIZE`](crate::wire::BELL_REGION_SIZE) bytes), for memory the caller maps
/// itself. Regions the crate makes are initialised by `HeapRegion::new(&BellConfig)` and
/// `Region::create(&BellConfig)`.
/// The memory must be untyped or typed [`Bell`]: a region typed for another kind does not
/// compile.
///
/// # Errors
///
/// [`HeaderError::SizeMismatch`] if `shm` is not `BELL_REGION_SIZE` bytes.
///
/// # Examples
///
/// ```
/// use ringbell::doorbell::init_bell;
/// use ringbell::region::RawRegion;
/// use ringbell::wire::BELL_REGION_SIZE;
///
/// #[repr(C, align(128))]
/// struct Buf([u8; BELL_REGION_SIZE]);
/// let buf: &'static mut Buf = Box::leak(Box::new(Buf([0; BELL_REGION_SIZE])));
/// // SAFETY: leaked, so it lives forever; nothing else touches it.
/// let region = unsafe { RawRegion::new(buf.0.as_mut_ptr(), BELL_REGION_SIZE) }.unwrap();
/// init_bell(&region)?;
/// # Ok::<(), ringbell::HeaderError>(())
/// ```
pub fn init_bell<S>(shm: &S) -> Result<(), HeaderError>
where
    S: SharedMemory + ?Sized,
    S::Kind: Admits<Bell>,
{
    BellConfig.init(&shm.mem())
}

/// The doorbell of a validated bell region.
pub(crate) fn bell_of<S: SharedMemory + ?Sized>(shm: &S) -> Result<Line, AttachError> {
    let mem = shm.mem();
    let geo = header::validate(&mem, RingKind::Bell)?;
    Ok(Line::at(mem, HEADER_SIZE, geo.usable_fences()?))
}

/// The doorbell of a bell region whose header is not checked (only its size): for a region
/// shared with peers who may have rewritten the header since it was made. Its line is read
/// and written through bounds-checked atomics only, so whatever is there is harmless.
#[cfg_attr(any(loom, not(feature = "std")), allow(dead_code))]
pub(crate) fn bell_of_unchecked<S: SharedMemory + ?Sized>(shm: &S) -> Result<Line, AttachError> {
    let mem = shm.mem();
    if mem.len() < BELL_REGION_SIZE {
        return Err(AttachError::Header(HeaderError::TooSmall {
            size: mem.len() as u64,
        }));
    }
    // Whatever mode the header names now (a peer may have rewritten it): ring with a full
    // fence, wait with the barrier too, which is right against a peer of either mode.
    Ok(Line::in_any_mode(mem, HEADER_SIZE))
}

/// Wakes a consumer blocked on its doorbell — an SPSC consumer in a wait, a fan-in, a channel
/// server — from another thread or process. The consumer's condition must read what the
/// notifying thread published before it called [`notify`](Self::notify). Cheap to clone; no
/// system call unless the consumer sleeps.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::Arc;
///
/// let (_tx, mut rx) = ringbell::spsc::channel(256)?;
/// let done = Arc::new(AtomicBool::new(false));
/// let notifier = rx.notifier();
/// let worker = {
///     let done = done.clone();
///     std::thread::spawn(move || {
///         done.store(true, Ordering::Release); // publish,
///         notifier.notify();                   // then notify
///     })
/// };
/// rx.wait_until(|rx| rx.has_data() || done.load(Ordering::Acquire));
/// worker.join().unwrap();
/// # Ok::<(), ringbell::AttachError>(())
/// ```
#[derive(Clone)]
pub struct Notifier<M: SharedMemory> {
    line: Line,
    /// Keeps the memory behind `line` alive.
    _shm: M,
    /// The waiter's readiness, if it may wait asynchronously.
    #[cfg(feature = "std")]
    readiness: Option<super::ReadinessSignal>,
}

impl<M: SharedMemory> Notifier<M> {
    pub(crate) fn new(line: Line, shm: M) -> Self {
        Self {
            line,
            _shm: shm,
            #[cfg(feature = "std")]
            readiness: None,
        }
    }

    /// Makes this notifier's rings answer the waiter's async waits too (its
    /// [`poll_ready`](crate::spsc::Consumer::poll_ready) announcements) through `signal`, the
    /// waiter's readiness. Without it a notify reaches only a waiter blocked on the futex.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::doorbell::{Announced, Readiness};
    /// use std::time::Duration;
    ///
    /// let (_tx, rx) = ringbell::spsc::channel(256)?;
    /// let readiness = Readiness::new()?;
    /// let notifier = rx.notifier().with_readiness(readiness.signal());
    /// assert_eq!(rx.poll_ready(&readiness), Announced::Wait);
    /// notifier.notify();
    /// assert!(readiness.wait_timeout(Duration::from_secs(1)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "std")]
    pub fn with_readiness(mut self, signal: super::ReadinessSignal) -> Self {
        self.readiness = Some(signal);
        self
    }

    /// Rings the consumer's doorbell. Publish what the consumer's condition reads first.
    ///
    /// # Examples
    ///
    /// ```
    /// let (_tx, rx) = ringbell::spsc::channel(256)?;
    /// rx.notifier().notify(); // nobody sleeps: no system call
    /// # Ok::<(), ringbell::AttachError>(())
    /// ```
    pub fn notify(&self) {
        #[cfg(feature = "std")]
        if let Some(signal) = &self.readiness {
            let _ = self.line.ring_readiness(signal);
            return;
        }
        let _ = self.line.ring();
    }
}

impl<M: SharedMemory> fmt::Debug for Notifier<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notifier").finish_non_exhaustive()
    }
}

/// A doorbell a reactor's watcher thread listens on while the reactor thread runs a handler
/// inline: see [`Transport::watch_bell`](crate::channel::Transport::watch_bell). Made by
/// [`FanIn::watch_bell`](crate::fanin::FanIn::watch_bell); it keeps the doorbell's memory
/// alive.
///
/// # Examples
///
/// ```
/// use ringbell::doorbell::BellConfig;
/// use ringbell::fanin::FanIn;
/// use ringbell::region::{HeapRegion, Spsc};
///
/// let fanin: FanIn<HeapRegion<Spsc>, _> = FanIn::new(HeapRegion::new(&BellConfig)?, 4)?;
/// let bell = fanin.watch_bell();
/// # let _ = bell;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg(feature = "std")]
pub struct WatchBell {
    pub(crate) line: Line,
    /// Keeps the memory behind `line` alive.
    _keep: std::boxed::Box<dyn Send + Sync>,
}

#[cfg(feature = "std")]
impl WatchBell {
    pub(crate) fn new<M: SharedMemory + Send + Sync + 'static>(line: Line, shm: M) -> Self {
        Self {
            line,
            _keep: std::boxed::Box::new(shm),
        }
    }
}

#[cfg(feature = "std")]
impl fmt::Debug for WatchBell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatchBell").finish_non_exhaustive()
    }
}
