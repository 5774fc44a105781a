//! What a region holds, as a type: typed regions, and the configurations that lay them out.
//!
//! A region made by this crate knows what it holds — `Region<Spsc>`, `HeapRegion<Mpsc>`,
//! `Region<Bell>` — so attaching the wrong kind of end does not compile:
//!
//! ```compile_fail
//! use ringbell::{mpsc, spsc};
//! use ringbell::region::HeapRegion;
//!
//! let region = HeapRegion::new(&mpsc::Config::new(4096)).unwrap(); // HeapRegion<Mpsc>
//! let tx = spsc::Producer::new(region); // error: `Mpsc: Admits<Spsc>` is not satisfied
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
pub trait Kind: sealed::KindOf + 'static {}

/// Holds one SPSC ring (see [`spsc`](crate::spsc)).
#[derive(Debug)]
pub enum Spsc {}
/// Holds one MPSC ring (see [`mpsc`](crate::mpsc)).
#[derive(Debug)]
pub enum Mpsc {}
/// Holds one doorbell shared by several rings: a fan-in's, a channel server's (see
/// [`doorbell`](crate::doorbell)).
#[derive(Debug)]
pub enum Bell {}
/// Memory the crate did not lay out: it may hold any kind, checked when an end attaches.
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
pub trait Admits<K: Kind>: Kind {}

impl Admits<Spsc> for Spsc {}
impl Admits<Mpsc> for Mpsc {}
impl Admits<Bell> for Bell {}
impl<K: Kind> Admits<K> for Untyped {}

/// A configuration that lays out a region of one kind: [`spsc::Config`](crate::spsc::Config),
/// [`mpsc::Config`](crate::mpsc::Config) or [`BellConfig`](crate::doorbell::BellConfig).
/// [`HeapRegion::new`](super::HeapRegion::new) and `Region::create` take any of them and
/// return a region typed by its kind. Sealed.
pub trait RegionConfig: sealed::Init {
    /// The kind of region it lays out.
    type Kind: Kind;

    /// Bytes of shared memory the region needs.
    ///
    /// # Errors
    ///
    /// The [`HeaderError`] the configuration earns (a capacity that is not a power of two, a
    /// frame cap above the maximum, …).
    fn region_size(&self) -> Result<usize, HeaderError>;
}
