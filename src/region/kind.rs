//! What a region holds, as a type: typed regions, and the configurations that lay them out.
//!
//! A region made by this crate knows what it holds — `Region<Spsc>`, `HeapRegion<Mpsc>`,
//! `Region<Bell>` — so attaching the wrong kind of end does not compile:
//!
//! ```compile_fail,E0277
//! use ringbell::{mpsc, spsc, OwnerId};
//! use ringbell::region::HeapRegion;
//!
//! let region = HeapRegion::new(&mpsc::Config::new(4096)).unwrap(); // HeapRegion<Mpsc>
//! let tx = spsc::Producer::attach(region, OwnerId::unique()); // error: `Mpsc: Admits<Spsc>`
//! ```
//!
//! Memory the crate did not lay out ([`RawRegion`](super::RawRegion)) is [`Untyped`]: it
//! admits every kind, and attaching checks the header's kind at run time.

use crate::error::HeaderError;
use crate::mem::Mem;
use crate::wire::RingKind;

pub(crate) mod sealed {
    use super::{HeaderError, Mem, RingKind};

    /// The crate-private half of [`Kind`](super::Kind).
    pub trait KindOf {
        /// The header kind this marker stands for; `None` for untyped memory.
        const RING: Option<RingKind>;
    }

    /// The crate-private half of [`RegionConfig`](super::RegionConfig).
    pub trait Init {
        /// Writes a fresh region of this configuration into `mem` (exactly
        /// `region_size()` bytes) and publishes it.
        fn init(&self, mem: &Mem) -> Result<(), HeaderError>;
    }
}

/// A kind of region: [`Spsc`], [`Mpsc`], [`Bell`] or [`Untyped`]. Sealed.
///
/// # Examples
///
/// ```
/// use ringbell::region::{HeapRegion, Kind, SharedMemory};
///
/// fn kind_name<S: SharedMemory>(_: &S) -> &'static str {
///     std::any::type_name::<S::Kind>()
/// }
/// let (tx, _rx) = ringbell::spsc::channel(4096)?;
/// assert!(kind_name(tx.shared_memory()).ends_with("Spsc"));
/// # fn is_kind<K: Kind>() {}
/// # is_kind::<ringbell::region::Spsc>();
/// # Ok::<(), ringbell::AttachError>(())
/// ```
pub trait Kind: sealed::KindOf + 'static {}

/// Holds one SPSC ring (see [`spsc`](crate::spsc)).
///
/// # Examples
///
/// ```
/// use ringbell::region::{HeapRegion, Spsc};
///
/// let ring: HeapRegion<Spsc> = HeapRegion::new(&ringbell::spsc::Config::new(4096))?;
/// let tx = ring.producer()?; // an SPSC producer: the only kind it offers
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub enum Spsc {}
/// Holds one MPSC ring (see [`mpsc`](crate::mpsc)).
///
/// # Examples
///
/// ```
/// use ringbell::region::{HeapRegion, Mpsc};
///
/// let ring: HeapRegion<Mpsc> = HeapRegion::new(&ringbell::mpsc::Config::new(4096))?;
/// let tx = ring.producer()?; // an MPSC producer
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub enum Mpsc {}
/// Holds one doorbell shared by several rings: a fan-in's, a channel server's (see
/// [`doorbell`](crate::doorbell)).
///
/// # Examples
///
/// ```
/// use ringbell::doorbell::BellConfig;
/// use ringbell::region::{Bell, HeapRegion};
///
/// let bell: HeapRegion<Bell> = HeapRegion::new(&BellConfig)?;
/// # Ok::<(), ringbell::HeaderError>(())
/// ```
#[derive(Debug)]
pub enum Bell {}
/// Memory the crate did not lay out: it may hold any kind, checked when an end attaches.
///
/// # Examples
///
/// ```
/// use ringbell::region::{RawRegion, SharedMemory, Untyped};
///
/// fn untyped<S: SharedMemory<Kind = Untyped>>(_: &S) {}
/// let buf: &'static mut [u64; 8] = Box::leak(Box::new([0u64; 8]));
/// // SAFETY: leaked, so it lives forever; nothing else touches it.
/// untyped(&unsafe { RawRegion::new(buf.as_mut_ptr().cast(), 64) }.unwrap());
/// ```
#[derive(Debug)]
pub enum Untyped {}

impl Kind for Spsc {}
impl Kind for Mpsc {}
impl Kind for Bell {}
impl Kind for Untyped {}

impl sealed::KindOf for Spsc {
    const RING: Option<RingKind> = Some(RingKind::Spsc);
}
impl sealed::KindOf for Mpsc {
    const RING: Option<RingKind> = Some(RingKind::Mpsc);
}
impl sealed::KindOf for Bell {
    const RING: Option<RingKind> = Some(RingKind::Bell);
}
impl sealed::KindOf for Untyped {
    const RING: Option<RingKind> = None;
}

/// Memory of this kind may hold a ring of kind `K`: the same kind, or [`Untyped`] memory.
/// The bound on every attach, so that the wrong pairing does not compile.
///
/// # Examples
///
/// Generic code that attaches an SPSC end forwards the bound:
///
/// ```
/// use ringbell::region::{Admits, SharedMemory, Spsc};
/// use ringbell::{spsc, AttachError, OwnerId};
///
/// fn attach_consumer<S: SharedMemory>(shm: S) -> Result<spsc::Consumer<S>, AttachError>
/// where
///     S::Kind: Admits<Spsc>,
/// {
///     spsc::Consumer::attach(shm, OwnerId::unique())
/// }
/// let region = ringbell::region::HeapRegion::new(&spsc::Config::new(4096))?;
/// let rx = attach_consumer(region)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Admits<K: Kind>: Kind {}

impl Admits<Spsc> for Spsc {}
impl Admits<Mpsc> for Mpsc {}
impl Admits<Bell> for Bell {}
impl<K: Kind> Admits<K> for Untyped {}

/// A configuration that lays out a region of one kind: [`spsc::Config`](crate::spsc::Config),
/// [`mpsc::Config`](crate::mpsc::Config) or [`BellConfig`](crate::doorbell::BellConfig).
/// [`HeapRegion::new`](super::HeapRegion::new) and `Region::create` take any of them and
/// return a region typed by its kind. Sealed.
///
/// # Examples
///
/// ```
/// use ringbell::region::{HeapRegion, RegionConfig};
/// use ringbell::{mpsc, spsc};
///
/// fn bytes_needed(cfg: &impl RegionConfig) -> usize {
///     cfg.region_size().unwrap()
/// }
/// assert_eq!(bytes_needed(&spsc::Config::new(4096)), 1024 + 4096);
/// assert!(bytes_needed(&mpsc::Config::new(4096)) > 1024 + 4096); // and the registry
/// ```
pub trait RegionConfig: sealed::Init {
    /// The kind of region it lays out.
    type Kind: Kind;

    /// Bytes of shared memory the region needs.
    ///
    /// # Errors
    ///
    /// The [`HeaderError`] the configuration earns (a capacity that is not a power of two, a
    /// frame cap above the maximum, …).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::doorbell::BellConfig;
    /// use ringbell::region::RegionConfig;
    ///
    /// assert_eq!(BellConfig.region_size(), Ok(ringbell::wire::BELL_REGION_SIZE));
    /// ```
    fn region_size(&self) -> Result<usize, HeaderError>;
}
