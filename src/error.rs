//! Error types. Each names its cause; none carries a payload the caller already owns.

use core::fmt;

/// A ring header failed validation (at open) or a ring configuration was refused (at create).///
/// # Examples
///
/// ```
/// use ringbell::{spsc, AttachError, HeaderError};
///
/// // At create: a configuration no ring can have.
/// assert_eq!(
///     spsc::channel(1000).map(drop),
///     Err(AttachError::Header(HeaderError::BadCapacity { capacity: 1000 }))
/// );
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderError {
    /// The memory is smaller than a header.
    TooSmall {
        /// Bytes available.
        size: u64,
    },
    /// The creator has not finished initialising the ring (its ready word is not set).
    NotReady,
    /// The magic is not `RINGBELL`: this is not a ringbell region.
    BadMagic {
        /// The value found.
        found: u64,
    },
    /// The region was written by a build using another layout version.
    UnsupportedVersion {
        /// The version found.
        found: u32,
    },
    /// The region was written by a machine of the other byte order.
    WrongEndianness,
    /// The header-size field is not this build's header size.
    BadHeaderSize {
        /// The value found.
        found: u32,
    },
    /// The region holds another kind of ring.
    WrongKind {
        /// The kind found.
        found: u32,
        /// The kind expected.
        expected: u32,
    },
    /// The flags word has bits this build does not understand.
    UnsupportedFlags {
        /// The flags found.
        flags: u32,
    },
    /// The region uses asymmetric fences ([`Fences::Asymmetric`](crate::doorbell::Fences)),
    /// and this process cannot register for `membarrier` (an old kernel, a seccomp filter, a
    /// sandbox, or `RINGBELL_FENCES=symmetric`): have the creator make it with
    /// `Fences::Symmetric`.
    FencesUnavailable,
    /// The capacity is not a power of two within `MIN_CAPACITY..=MAX_CAPACITY`.
    BadCapacity {
        /// The capacity found or requested.
        capacity: u64,
    },
    /// The stored mask is not `capacity - 1`.
    BadMask {
        /// The mask found.
        mask: u64,
        /// The capacity found.
        capacity: u64,
    },
    /// The memory's size is not header plus capacity (plus, for MPSC, the registry).
    SizeMismatch {
        /// Bytes available.
        size: u64,
        /// Bytes the header implies.
        expected: u64,
    },
    /// The frame cap exceeds half the capacity (less a record header).
    BadFrameCap {
        /// The frame cap found or requested.
        frame_cap: u64,
        /// The largest allowed.
        max: u64,
    },
    /// An MPSC registry size outside `1..=MAX_REGISTRY_SLOTS`, or a registry on another kind.
    BadRegistry {
        /// The slot count found or requested.
        slots: u64,
    },
    /// A starting position that is not a multiple of 8.
    BadStartPosition {
        /// The position requested.
        position: u64,
    },
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::TooSmall { size } => write!(f, "region of {size} bytes is smaller than a header"),
            Self::NotReady => f.write_str("region is not ready (its creator has not finished)"),
            Self::BadMagic { found } => write!(f, "not a ringbell region (magic {found:#018x})"),
            Self::UnsupportedVersion { found } => write!(
                f,
                "unsupported layout version {found} (this build reads {})",
                crate::wire::LAYOUT_VERSION
            ),
            Self::WrongEndianness => f.write_str("region was written with the other byte order"),
            Self::BadHeaderSize { found } => write!(f, "unexpected header size {found}"),
            Self::WrongKind { found, expected } => {
                write!(f, "region holds ring kind {found}, expected {expected}")
            }
            Self::UnsupportedFlags { flags } => write!(f, "unsupported header flags {flags:#x}"),
            Self::FencesUnavailable => f.write_str(
                "the region uses asymmetric fences and this process cannot register for membarrier",
            ),
            Self::BadCapacity { capacity } => write!(
                f,
                "capacity {capacity} is not a power of two between {} and {}",
                crate::wire::MIN_CAPACITY,
                crate::wire::MAX_CAPACITY
            ),
            Self::BadMask { mask, capacity } => {
                write!(f, "mask {mask:#x} does not match capacity {capacity}")
            }
            Self::SizeMismatch { size, expected } => {
                write!(f, "region is {size} bytes, its header implies {expected}")
            }
            Self::BadFrameCap { frame_cap, max } => {
                write!(f, "frame cap {frame_cap} exceeds the maximum {max}")
            }
            Self::BadRegistry { slots } => write!(f, "invalid producer registry of {slots} slots"),
            Self::BadStartPosition { position } => {
                write!(f, "start position {position} is not a multiple of 8")
            }
        }
    }
}

impl core::error::Error for HeaderError {}

/// Shared state of a live ring that no correct peer could have written.
///
/// Seeing one means the peer is buggy or hostile, or the memory was overwritten. The ring is
/// not repaired: every later call on the same side reports corruption again or returns what
/// it can prove valid.
///
/// # Examples
///
/// ```
/// use ringbell::wire::WRITE_POS_OFF;
/// use ringbell::{testing, Corruption, RecvError};
/// use std::sync::atomic::Ordering::Relaxed;
///
/// let (tx, mut rx) = ringbell::spsc::channel(4096)?;
/// // A hostile producer moves its position off the 8-byte grid.
/// testing::view(tx.shared_memory()).store_u64(WRITE_POS_OFF, 3, Relaxed);
/// let err = rx.try_recv();
/// assert_eq!(err, Err(RecvError::Corrupt(Corruption::WritePosition { found: 3 })));
/// # Ok::<(), ringbell::AttachError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Corruption {
    /// The write position moved backwards, past the read position plus capacity, or off
    /// the 8-byte grid.
    WritePosition {
        /// The value read.
        found: u64,
    },
    /// The read position moved backwards, past the write position, or off the 8-byte grid.
    ReadPosition {
        /// The value read.
        found: u64,
    },
    /// A record header that is not committed, runs past the end of the data area or the
    /// published data, or exceeds the frame cap.
    Record {
        /// Position of the header.
        position: u64,
        /// The length word read.
        word: u32,
    },
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::WritePosition { found } => write!(f, "corrupt write position {found}"),
            Self::ReadPosition { found } => write!(f, "corrupt read position {found}"),
            Self::Record { position, word } => {
                write!(
                    f,
                    "corrupt record header {word:#010x} at position {position}"
                )
            }
        }
    }
}

impl core::error::Error for Corruption {}

/// Attaching a producer or consumer to a ring failed.///
/// # Examples
///
/// ```
/// use ringbell::{spsc, AttachError, OwnerId};
/// use ringbell::region::HeapRegion;
///
/// let region = HeapRegion::new(&spsc::Config::new(4096))?;
/// let _tx = spsc::Producer::attach(region.clone(), OwnerId::new(1).unwrap())?;
/// let second = spsc::Producer::attach(region, OwnerId::new(2).unwrap());
/// assert_eq!(second.map(drop), Err(AttachError::RoleTaken { owner: 1 }));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttachError {
    /// The header is invalid.
    Header(HeaderError),
    /// Another handle holds the role (in this process or another).
    RoleTaken {
        /// The owner id in the role word.
        owner: u64,
    },
    /// The role's previous holder closed it; a ring role is never reused after a clean close.
    RoleClosed,
    /// The ring's positions are inconsistent.
    Corrupt(Corruption),
    /// The ring belongs to a fan-in (its header says its producer rings a shared doorbell):
    /// attach it with `Producer::attach_shared_bell` or `FanIn::add`. Or the other way round:
    /// a plain ring was given where a fan-in ring was expected.
    WrongBell,
    /// A configured limit (such as a fan-in's ring count) is reached.
    Limit {
        /// The limit.
        max: usize,
    },
}

impl fmt::Display for AttachError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Header(e) => write!(f, "invalid ring header: {e}"),
            Self::RoleTaken { owner } => write!(f, "role already held by owner {owner:#x}"),
            Self::RoleClosed => f.write_str("role was closed by its previous holder"),
            Self::Corrupt(c) => write!(f, "ring is corrupt: {c}"),
            Self::WrongBell => {
                f.write_str("the ring's doorbell arrangement (shared or its own) does not match")
            }
            Self::Limit { max } => write!(f, "limit of {max} reached"),
        }
    }
}

impl core::error::Error for AttachError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Header(e) => Some(e),
            Self::Corrupt(c) => Some(c),
            _ => None,
        }
    }
}

impl From<HeaderError> for AttachError {
    fn from(e: HeaderError) -> Self {
        Self::Header(e)
    }
}

/// Sending a frame failed; nothing was written.///
/// # Examples
///
/// ```
/// use ringbell::SendError;
///
/// let (mut tx, rx) = ringbell::spsc::channel(64)?;
/// assert_eq!(tx.try_send(0, &[0; 25]), Err(SendError::TooLarge { len: 25, max: 24 }));
/// drop(rx);
/// assert_eq!(tx.try_send(0, b"x"), Err(SendError::Closed));
/// # Ok::<(), ringbell::AttachError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// The frame exceeds the ring's frame cap. Refused at once, whatever the ring holds:
    /// waiting would never help.
    TooLarge {
        /// The frame's length.
        len: usize,
        /// The ring's frame cap.
        max: usize,
    },
    /// Not enough free space right now; retry after the consumer releases some.
    Full,
    /// The consumer closed its end: nothing sent now could ever be read.
    Closed,
    /// A blocking send's deadline passed before there was room; nothing was written.
    Timeout,
    /// MPSC: the consumer took this producer for dead and skipped its record; the frame was
    /// not delivered.
    Skipped,
    /// The consumer's process died without closing its end; nothing sent now could ever be
    /// read. Seen by a blocking send between sleep slices, and by a non-blocking one that
    /// would otherwise return `Full` (asking the kernel at most every 10 ms).
    Disconnected,
    /// This handle was inherited across `fork(2)`: only the process that attached it may use
    /// it (attach a handle of the child's own instead). Nothing was written.
    Forked,
    /// The consumer's position is inconsistent.
    Corrupt(Corruption),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { len, max } => {
                write!(f, "frame of {len} bytes exceeds the frame cap of {max}")
            }
            Self::Full => f.write_str("ring is full"),
            Self::Closed => f.write_str("the consumer closed the ring"),
            Self::Timeout => f.write_str("timed out waiting for room in the ring"),
            Self::Skipped => {
                f.write_str("the consumer skipped this frame, taking its producer for dead")
            }
            Self::Disconnected => f.write_str("the consumer's process died"),
            Self::Forked => f.write_str("handle inherited across fork: not usable here"),
            Self::Corrupt(c) => write!(f, "ring is corrupt: {c}"),
        }
    }
}

impl core::error::Error for SendError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Corrupt(c) => Some(c),
            _ => None,
        }
    }
}

/// Receiving a frame failed; no frame was consumed (a padding record in front of the next
/// frame may have been skipped).///
/// # Examples
///
/// ```
/// use ringbell::RecvError;
///
/// let (tx, mut rx) = ringbell::spsc::channel(64)?;
/// assert_eq!(rx.try_recv(), Err(RecvError::Empty));
/// drop(tx);
/// assert_eq!(rx.try_recv(), Err(RecvError::Closed));
/// # Ok::<(), ringbell::AttachError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecvError {
    /// No frame is available right now.
    Empty,
    /// The producer closed its end and every frame it sent has been received.
    Closed,
    /// A blocking receive's deadline passed before a frame arrived.
    Timeout,
    /// The caller's buffer is shorter than the next frame; the frame stays in the ring.
    BufferTooSmall {
        /// The next frame's length.
        needed: usize,
    },
    /// The producer's process died without closing its end, and every frame it committed has
    /// been received. Seen by a blocking receive between sleep slices, and by a non-blocking
    /// one that would otherwise return `Empty` (asking the kernel at most every 10 ms).
    Disconnected,
    /// This handle was inherited across `fork(2)`: only the process that attached it may use
    /// it. Nothing was read.
    Forked,
    /// The producer wrote something no correct producer writes.
    Corrupt(Corruption),
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("ring is empty"),
            Self::Closed => f.write_str("the producer closed the ring and it is drained"),
            Self::Timeout => f.write_str("timed out waiting for a frame"),
            Self::Disconnected => {
                f.write_str("the producer's process died and the ring is drained")
            }
            Self::Forked => f.write_str("handle inherited across fork: not usable here"),
            Self::BufferTooSmall { needed } => {
                write!(f, "buffer too small: the next frame is {needed} bytes")
            }
            Self::Corrupt(c) => write!(f, "ring is corrupt: {c}"),
        }
    }
}

impl core::error::Error for RecvError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Corrupt(c) => Some(c),
            _ => None,
        }
    }
}
