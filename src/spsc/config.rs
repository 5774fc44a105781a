//! How an SPSC ring is laid out: its configuration and the creator's initialisation.

use crate::doorbell::Fences;
use crate::error::HeaderError;
use crate::header::{self, Geometry};
use crate::mem::Mem;
use crate::region::{Admits, Init, RegionConfig, SharedMemory, Spsc};
use crate::wire::{self, RingKind};

/// How to create an SPSC ring.
///
/// # Examples
///
/// ```
/// use ringbell::spsc;
/// use ringbell::region::RegionConfig;
///
/// let cfg = spsc::Config::new(1 << 16).frame_cap(1024);
/// assert_eq!(cfg.region_size()?, 1024 + (1 << 16));
/// assert!(spsc::Config::new(1000).region_size().is_err()); // not a power of two
/// # Ok::<(), ringbell::HeaderError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    capacity: usize,
    frame_cap: Option<usize>,
    start_position: u64,
    fences: Option<Fences>,
    shared_bell: bool,
    shared_space_bell: bool,
}

impl Config {
    /// A ring whose data area holds `capacity` bytes: a power of two from
    /// [`MIN_CAPACITY`](wire::MIN_CAPACITY) to [`MAX_CAPACITY`](wire::MAX_CAPACITY). The frame
    /// cap defaults to the largest allowed, `capacity / 2 - 8`: a record of half the ring,
    /// header included, always fits once the ring is empty.
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, _rx) = ringbell::spsc::channel_with(&ringbell::spsc::Config::new(4096))?;
    /// assert_eq!(tx.max_frame(), 4096 / 2 - 8);
    /// # Ok::<(), ringbell::AttachError>(())
    /// ```
    pub const fn new(capacity: usize) -> Self {
        Self {
            capacity,
            frame_cap: None,
            start_position: 0,
            fences: None,
            shared_bell: false,
            shared_space_bell: false,
        }
    }

    /// Makes the ring part of a fan-in: its producer rings the fan-in's shared doorbell
    /// ([`Producer::attach_shared_bell`](super::Producer::attach_shared_bell)) and its
    /// consumer is a [`FanIn`](crate::fanin::FanIn). Recorded in the header, so that both
    /// ends agree on where the doorbell is.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::region::HeapRegion;
    /// use ringbell::{spsc, AttachError};
    ///
    /// let ring = HeapRegion::new(&spsc::Config::new(1024).shared_bell())?;
    /// // A plain attach refuses it: its producer must ring the fan-in's doorbell.
    /// assert_eq!(ring.producer().map(drop), Err(AttachError::WrongBell));
    /// # Ok::<(), ringbell::HeaderError>(())
    /// ```
    pub const fn shared_bell(mut self) -> Self {
        self.shared_bell = true;
        self
    }

    /// Makes the ring's consumer ring a shared doorbell (a bell region) when it frees space,
    /// and its producer sleep on that doorbell while the ring is full
    /// ([`Consumer::attach_shared_space_bell`](super::Consumer::attach_shared_space_bell),
    /// [`Producer::attach_shared_space_bell`](super::Producer::attach_shared_space_bell)). A
    /// channel server's response rings are made so: the clients' reads wake the one server
    /// thread that writes to all of them.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::doorbell::BellConfig;
    /// use ringbell::region::HeapRegion;
    /// use ringbell::{spsc, OwnerId};
    ///
    /// let bell = HeapRegion::new(&BellConfig)?;
    /// let ring = HeapRegion::new(&spsc::Config::new(1024).shared_space_bell())?;
    /// let tx = spsc::Producer::attach_shared_space_bell(ring.clone(), bell.clone(), OwnerId::unique())?;
    /// let rx = spsc::Consumer::attach_shared_space_bell(ring, bell, OwnerId::unique())?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const fn shared_space_bell(mut self) -> Self {
        self.shared_space_bell = true;
        self
    }

    /// Caps frames at `max` payload bytes (at most `capacity / 2 - 8`).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::spsc;
    ///
    /// let (tx, _rx) = spsc::channel_with(&spsc::Config::new(4096).frame_cap(100))?;
    /// assert_eq!(tx.max_frame(), 100);
    /// # Ok::<(), ringbell::AttachError>(())
    /// ```
    pub const fn frame_cap(mut self, max: usize) -> Self {
        self.frame_cap = Some(max);
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
    /// use ringbell::spsc;
    /// use ringbell::region::RegionConfig;
    ///
    /// let cfg = spsc::Config::new(4096).fences(Fences::Symmetric);
    /// assert!(cfg.region_size().is_ok());
    /// ```
    pub const fn fences(mut self, fences: Fences) -> Self {
        self.fences = Some(fences);
        self
    }

    /// Starts both positions at `position` (a multiple of 8) instead of 0. Positions are
    /// wrapping `u64` counters; starting near `u64::MAX` exercises their wrap in tests.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::spsc;
    ///
    /// let cfg = spsc::Config::new(256).start_position(u64::MAX - 63);
    /// let (mut tx, mut rx) = spsc::channel_with(&cfg)?;
    /// for i in 0..100 {
    ///     tx.try_send(i, b"across the wrap")?;
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
    /// assert_eq!(ringbell::spsc::Config::new(4096).capacity(), 4096);
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
    /// let cfg = ringbell::spsc::Config::new(1000);
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
        let mut geo = header::geometry(RingKind::Spsc, self.capacity, self.frame_cap)?;
        if self.shared_bell {
            geo.flags |= wire::FLAG_SHARED_BELL;
        }
        if self.shared_space_bell {
            geo.flags |= wire::FLAG_SHARED_SPACE_BELL;
        }
        geo.set_fences(self.fences)?;
        Ok(geo)
    }
}

impl RegionConfig for Config {
    type Kind = Spsc;

    fn region_size(&self) -> Result<usize, HeaderError> {
        Config::region_size(self)
    }
}

impl Init for Config {
    fn init(&self, mem: &Mem) -> Result<(), HeaderError> {
        header::init(mem, &self.geometry()?, self.start_position)
    }
}

/// Writes a fresh SPSC ring header into `shm`, making it ready to attach: for memory the
/// caller maps itself ([`RawRegion`](crate::region::RawRegion)). Regions the crate makes are
/// initialised by `HeapRegion::new` and `Region::create`.
///
/// Call it once, on memory nobody uses yet: re-initialising a live ring loses its frames.
/// The memory must be untyped or typed [`Spsc`]: laying an SPSC ring over a region typed for
/// another kind does not compile.
///
/// ```compile_fail
/// use ringbell::region::{HeapRegion, Mpsc};
///
/// let region = HeapRegion::<Mpsc>::new(&ringbell::mpsc::Config::new(4096)).unwrap();
/// ringbell::spsc::init(&region, &ringbell::spsc::Config::new(4096)); // an MPSC region
/// ```
///
/// # Errors
///
/// The configuration's errors (see [`RegionConfig::region_size`]), or
/// [`HeaderError::SizeMismatch`] if `shm` is not exactly the region size.
///
/// # Examples
///
/// ```
/// use ringbell::region::RawRegion;
/// use ringbell::{spsc, HeaderError};
///
/// #[repr(C, align(128))]
/// struct Buf([u8; 1024 + 256]);
/// let buf: &'static mut Buf = Box::leak(Box::new(Buf([0; 1024 + 256])));
/// // SAFETY: leaked, so it lives forever; nothing else touches it.
/// let region = unsafe { RawRegion::new(buf.0.as_mut_ptr(), buf.0.len()) }.unwrap();
/// spsc::init(&region, &spsc::Config::new(256))?;
/// let too_big = spsc::init(&region, &spsc::Config::new(512));
/// assert!(matches!(too_big, Err(HeaderError::SizeMismatch { .. })));
/// # Ok::<(), HeaderError>(())
/// ```
pub fn init<S>(shm: &S, cfg: &Config) -> Result<(), HeaderError>
where
    S: SharedMemory + ?Sized,
    S::Kind: Admits<Spsc>,
{
    cfg.init(&shm.mem())
}
