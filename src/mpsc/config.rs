//! How an MPSC ring is laid out: its configuration and the creator's initialisation.

use core::time::Duration;

use super::registry;
use crate::doorbell::Fences;
use crate::error::HeaderError;
use crate::header::{self, Geometry};
use crate::mem::Mem;
use crate::region::{Admits, Init, Mpsc, RegionConfig, SharedMemory};
use crate::sync::Ordering;
use crate::wire::{self, HEADER_SIZE, MPSC_LEN_MASK, RingKind};

/// Default number of producer registry slots: producers attached at once.
pub const DEFAULT_SLOTS: usize = 64;
/// Default stall timeout: how long a record may stay uncommitted before the consumer asks
/// whether its producer is dead.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_millis(100);

/// How to create an MPSC ring.
///
/// The frame cap defaults to `capacity / 8 - 8`, not the SPSC ring's `capacity / 2 - 8`:
/// several producers claim concurrently, and a frame near half the ring can only be claimed
/// once the ring is nearly drained, which holds up every producer behind it (the large-frame
/// reservation then makes the others wait for it). An eighth of the ring is Agrona's choice
/// for the same reason. [`frame_cap`](Self::frame_cap) raises it up to `capacity / 2 - 8`,
/// as for SPSC.
///
/// # Examples
///
/// ```
/// use ringbell::mpsc;
/// use ringbell::region::RegionConfig;
///
/// let cfg = mpsc::Config::new(1 << 16).frame_cap(4096).slots(128);
/// assert_eq!(cfg.region_size()?, 1024 + (1 << 16) + 128 * 32);
/// # Ok::<(), ringbell::HeaderError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    capacity: usize,
    frame_cap: Option<usize>,
    slots: usize,
    start_position: u64,
    fences: Option<Fences>,
}

impl Config {
    /// A ring of `capacity` bytes (a power of two), frame cap `capacity / 8 - 8`,
    /// [`DEFAULT_SLOTS`] producer slots.
    ///
    /// # Examples
    ///
    /// ```
    /// let (rx, _region) = ringbell::mpsc::channel_with(&ringbell::mpsc::Config::new(4096))?;
    /// assert_eq!(rx.max_frame(), 4096 / 8 - 8);
    /// # Ok::<(), ringbell::AttachError>(())
    /// ```
    pub const fn new(capacity: usize) -> Self {
        Self {
            capacity,
            frame_cap: None,
            slots: DEFAULT_SLOTS,
            start_position: 0,
            fences: None,
        }
    }

    /// Caps frames at `max` payload bytes (at most `capacity / 2 - 8`).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::mpsc;
    ///
    /// let (rx, _region) = mpsc::channel_with(&mpsc::Config::new(4096).frame_cap(2040))?;
    /// assert_eq!(rx.max_frame(), 2040);
    /// # Ok::<(), ringbell::AttachError>(())
    /// ```
    pub const fn frame_cap(mut self, max: usize) -> Self {
        self.frame_cap = Some(max);
        self
    }

    /// Room for `n` producers attached at once (1 to 65,536).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::{mpsc, AttachError};
    ///
    /// let (_rx, region) = mpsc::channel_with(&mpsc::Config::new(4096).slots(1))?;
    /// let _one = region.producer()?;
    /// assert_eq!(region.producer().map(drop), Err(AttachError::Limit { max: 1 }));
    /// # Ok::<(), AttachError>(())
    /// ```
    pub const fn slots(mut self, n: usize) -> Self {
        self.slots = n;
        self
    }

    /// The ring's fence mode ([`Fences`]); by default
    /// [`Fences::default_for_new_regions`]. `Fences::Symmetric` makes a ring that a peer
    /// unable to register for `membarrier` can attach; `Fences::Asymmetric` where this process
    /// cannot register is refused at create ([`HeaderError::FencesUnavailable`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::doorbell::Fences;
    /// use ringbell::mpsc;
    /// use ringbell::region::RegionConfig;
    ///
    /// let cfg = mpsc::Config::new(4096).fences(Fences::Symmetric);
    /// assert!(cfg.region_size().is_ok());
    /// ```
    pub const fn fences(mut self, fences: Fences) -> Self {
        self.fences = Some(fences);
        self
    }

    /// Starts the positions at `position` (a multiple of 8); for tests of counter wrap.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::mpsc;
    ///
    /// let cfg = mpsc::Config::new(256).start_position(u64::MAX - 63);
    /// let (mut rx, region) = mpsc::channel_with(&cfg)?;
    /// let mut tx = region.producer()?;
    /// for i in 0..50 {
    ///     tx.try_send(i, b"wrap")?;
    ///     assert_eq!(rx.try_recv()?.tag, i);
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const fn start_position(mut self, position: u64) -> Self {
        self.start_position = position;
        self
    }

    /// The data-area capacity requested.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(ringbell::mpsc::Config::new(4096).capacity(), 4096);
    /// ```
    pub const fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes of shared memory the ring needs (also [`RegionConfig::region_size`]).
    ///
    /// # Errors
    ///
    /// The [`HeaderError`] the configuration earns.
    ///
    /// # Examples
    ///
    /// ```
    /// let cfg = ringbell::mpsc::Config::new(1000);
    /// assert!(cfg.region_size().is_err()); // not a power of two
    /// ```
    pub fn region_size(&self) -> Result<usize, HeaderError> {
        self.geometry().map(|g| g.region_size())
    }

    /// Checks the configuration and returns the ring's geometry.
    pub(crate) fn geometry(&self) -> Result<Geometry, HeaderError> {
        if self.start_position % wire::ALIGN as u64 != 0 {
            return Err(HeaderError::BadStartPosition {
                position: self.start_position,
            });
        }
        if !(1..=wire::MAX_REGISTRY_SLOTS).contains(&self.slots) {
            return Err(HeaderError::BadRegistry {
                slots: self.slots as u64,
            });
        }
        let cap = self
            .frame_cap
            .unwrap_or((self.capacity / 8).saturating_sub(wire::RECORD_HEADER));
        // The MPSC length word also carries CLAIMED, so lengths must stay below it.
        let mpsc_max = MPSC_LEN_MASK as usize - wire::RECORD_HEADER;
        if cap > mpsc_max {
            return Err(HeaderError::BadFrameCap {
                frame_cap: cap as u64,
                max: mpsc_max as u64,
            });
        }
        let mut geo = header::geometry(RingKind::Mpsc, self.capacity, Some(cap))?;
        geo.slots = self.slots;
        geo.set_fences(self.fences)?;
        Ok(geo)
    }
}

impl RegionConfig for Config {
    type Kind = Mpsc;

    fn region_size(&self) -> Result<usize, HeaderError> {
        Config::region_size(self)
    }
}

impl Init for Config {
    /// Writes the header with the ready word clear, zeroes the registry and every possible
    /// record header (the memory may not be zero: a reused buffer), and only then publishes
    /// the ready word: an opener can never attach a producer to a slot that is wiped after.
    fn init(&self, mem: &Mem) -> Result<(), HeaderError> {
        let geo = self.geometry()?;
        header::write_fields(mem, &geo, self.start_position)?;
        registry::clear(mem, &geo);
        // Every possible record header starts zero ("claimed, not described").
        for off in (0..geo.capacity).step_by(wire::ALIGN) {
            mem.store_u32(HEADER_SIZE + off, 0, Ordering::Relaxed);
        }
        header::publish_ready(mem);
        Ok(())
    }
}

/// Writes a fresh MPSC ring into `shm` (exactly the configuration's region size), for memory
/// the caller maps itself. Regions the crate makes are initialised by `HeapRegion::new` and
/// `Region::create`.
/// The memory must be untyped or typed [`Mpsc`]: a region typed for another kind does not
/// compile.
///
/// # Errors
///
/// The configuration's errors, and [`HeaderError::SizeMismatch`].
///
/// # Examples
///
/// ```
/// use ringbell::region::{RawRegion, RegionConfig};
/// use ringbell::mpsc;
///
/// let cfg = mpsc::Config::new(256).slots(1);
/// let len = cfg.region_size()?;
/// let buf: &'static mut [u64] = Vec::leak(vec![0u64; len / 8]);
/// // SAFETY: leaked, so it lives forever; nothing else touches it.
/// let region = unsafe { RawRegion::new(buf.as_mut_ptr().cast(), len) }.unwrap();
/// mpsc::init(&region, &cfg)?;
/// # Ok::<(), ringbell::HeaderError>(())
/// ```
pub fn init<S>(shm: &S, cfg: &Config) -> Result<(), HeaderError>
where
    S: SharedMemory + ?Sized,
    S::Kind: Admits<Mpsc>,
{
    cfg.init(&shm.mem())
}
