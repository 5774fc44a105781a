//! A read-only look at a region: its header, positions, roles, closed flags and doorbell
//! words, read without writing anything — for diagnostics and inspection tools.
//!
//! [`RegionSnapshot::read`] loads each word once (atomically; Acquire for the ready word, the
//! positions and the role words) and never stores, swaps or compare-exchanges: taking a
//! snapshot cannot disturb the peers using the region. The words are read at slightly
//! different moments, so a snapshot of a busy ring is a blur of them; [`RegionSnapshot::check`]
//! tells whether the header is valid and the positions consistent at the moments they were
//! read.

use crate::error::{Corruption, HeaderError};
use crate::header::{self, check_positions};
use crate::region::SharedMemory;
use crate::role::OwnerId;
use crate::sync::Ordering;
use crate::wire::{
    self, BELL_SEQ, BELL_WAITERS, CAPACITY_OFF, CONSUMER_OWNER_OFF, DATA_BELL_OFF, FLAGS_OFF,
    FRAME_CAP_OFF, HEADER_SIZE, KIND_OFF, MAGIC, MAGIC_OFF, PRODUCER_OWNER_OFF, READ_POS_OFF,
    READY, READY_OFF, REGISTRY_SLOTS_OFF, RESERVATION_OFF, RingKind, SPACE_BELL_OFF, VERSION_OFF,
    WRITE_POS_OFF,
};

/// Who holds a role, as its role word says.
///
/// # Examples
///
/// ```
/// use ringbell::inspect::{RegionSnapshot, Role};
///
/// let (tx, rx) = ringbell::spsc::channel(4096)?;
/// let snap = RegionSnapshot::read(tx.shared_memory());
/// assert!(matches!(snap.producer, Role::Held(_)));
/// drop(rx);
/// assert_eq!(RegionSnapshot::read(tx.shared_memory()).consumer, Role::Closed);
/// # Ok::<(), ringbell::AttachError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Nobody has claimed it.
    Free,
    /// Held by this owner.
    Held(OwnerId),
    /// Its holder closed it for good.
    Closed,
}

impl Role {
    fn from_word(word: u64) -> Self {
        match word {
            wire::ROLE_FREE => Self::Free,
            wire::ROLE_CLOSED => Self::Closed,
            id => OwnerId::new(id).map_or(Self::Free, Self::Held),
        }
    }
}

/// The two words of a doorbell.
///
/// # Examples
///
/// ```
/// use ringbell::inspect::RegionSnapshot;
///
/// let (tx, _rx) = ringbell::spsc::channel(4096)?;
/// let bell = RegionSnapshot::read(tx.shared_memory()).data_bell;
/// assert_eq!((bell.sequence, bell.waiters), (0, 0)); // nobody ever slept
/// # Ok::<(), ringbell::AttachError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BellWords {
    /// The futex word: how many wakes were rung (wrapping).
    pub sequence: u32,
    /// The waiter mark: nonzero while a waiter has announced a sleep not yet rung.
    pub waiters: u32,
}

/// Every shared word of a region's header, read once each, without writing. Fields hold the
/// raw values: a region that is corrupt, not ready or of a newer version still gives a
/// snapshot; [`check`](Self::check) says what is wrong with it.
///
/// # Examples
///
/// ```
/// use ringbell::inspect::RegionSnapshot;
/// use ringbell::wire::RingKind;
///
/// let (mut tx, _rx) = ringbell::spsc::channel(4096)?;
/// tx.try_send(0, &[0; 8])?;
/// let snap = RegionSnapshot::read(tx.shared_memory());
/// assert_eq!(snap.kind, Some(RingKind::Spsc));
/// assert_eq!(snap.write_pos - snap.read_pos, 16);
/// assert_eq!(snap.check(), Ok(()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RegionSnapshot {
    /// Bytes of the region.
    pub len: usize,
    /// Whether the magic says `RINGBELL` in this machine's byte order.
    pub magic_ok: bool,
    /// Whether the ready word is set.
    pub ready: bool,
    /// The layout version.
    pub version: u32,
    /// The kind, if it is one this build knows.
    pub kind: Option<RingKind>,
    /// The data-area capacity in bytes.
    pub capacity: u64,
    /// The frame cap.
    pub frame_cap: u32,
    /// The header flags ([`wire::FLAG_SHARED_BELL`], [`wire::FLAG_SHARED_SPACE_BELL`],
    /// [`wire::FLAG_ASYMMETRIC_FENCES`]).
    pub flags: u32,
    /// MPSC: producer registry slots (0 for other kinds).
    pub registry_slots: u32,
    /// The producer role (unused by MPSC rings).
    pub producer: Role,
    /// The consumer role.
    pub consumer: Role,
    /// The write (SPSC) or claim (MPSC) position.
    pub write_pos: u64,
    /// The read (released) position.
    pub read_pos: u64,
    /// The data doorbell.
    pub data_bell: BellWords,
    /// The space doorbell.
    pub space_bell: BellWords,
    /// The bell region's doorbell (kind `Bell` only).
    pub bell: Option<BellWords>,
    /// MPSC: the pending large-frame reservation word (0 if none).
    pub reservation: u64,
    /// What [`check`](Self::check) reports.
    check: Result<(), SnapshotError>,
}

/// What is wrong with a region, as [`RegionSnapshot::check`] found it.
///
/// # Examples
///
/// ```
/// use ringbell::inspect::{RegionSnapshot, SnapshotError};
///
/// let (tx, _rx) = ringbell::spsc::channel(4096)?;
/// assert!(RegionSnapshot::read(tx.shared_memory()).check().is_ok());
/// # let _: Option<SnapshotError> = None;
/// # Ok::<(), ringbell::AttachError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The header fails an opener's checks.
    Header(HeaderError),
    /// The positions are inconsistent.
    Positions(Corruption),
}

impl core::fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Header(e) => write!(f, "invalid header: {e}"),
            Self::Positions(c) => write!(f, "inconsistent positions: {c}"),
        }
    }
}

impl core::error::Error for SnapshotError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Header(e) => Some(e),
            Self::Positions(c) => Some(c),
        }
    }
}

impl RegionSnapshot {
    /// Reads every header word of the region in `shm` once, writing nothing. A region smaller
    /// than a header gives a snapshot of zeros whose check reports
    /// [`HeaderError::TooSmall`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::inspect::RegionSnapshot;
    ///
    /// let (rx, region) = ringbell::mpsc::channel(4096)?;
    /// let snap = RegionSnapshot::read(&region);
    /// assert_eq!((snap.capacity, snap.registry_slots), (4096, 64));
    /// # Ok::<(), ringbell::AttachError>(())
    /// ```
    pub fn read<S: SharedMemory + ?Sized>(shm: &S) -> Self {
        let mem = shm.mem();
        let len = mem.len();
        let mut snap = Self {
            len,
            magic_ok: false,
            ready: false,
            version: 0,
            kind: None,
            capacity: 0,
            frame_cap: 0,
            flags: 0,
            registry_slots: 0,
            producer: Role::Free,
            consumer: Role::Free,
            write_pos: 0,
            read_pos: 0,
            data_bell: BellWords {
                sequence: 0,
                waiters: 0,
            },
            space_bell: BellWords {
                sequence: 0,
                waiters: 0,
            },
            bell: None,
            reservation: 0,
            check: Err(SnapshotError::Header(HeaderError::TooSmall {
                size: len as u64,
            })),
        };
        if len < HEADER_SIZE {
            return snap;
        }
        let r = Ordering::Relaxed;
        let bell = |off: usize| BellWords {
            sequence: mem.load_u32(off + BELL_SEQ, r),
            waiters: mem.load_u32(off + BELL_WAITERS, r),
        };
        // Acquire: pairs with the creator's Release of the ready word.
        snap.ready = mem.load_u32(READY_OFF, Ordering::Acquire) == READY;
        snap.magic_ok = mem.load_u64(MAGIC_OFF, r) == MAGIC;
        snap.version = mem.load_u32(VERSION_OFF, r);
        snap.kind = RingKind::from_u32(mem.load_u32(KIND_OFF, r));
        snap.capacity = mem.load_u64(CAPACITY_OFF, r);
        snap.frame_cap = mem.load_u32(FRAME_CAP_OFF, r);
        snap.flags = mem.load_u32(FLAGS_OFF, r);
        snap.registry_slots = mem.load_u32(REGISTRY_SLOTS_OFF, r);
        // Acquire: pairs with the Release of the role words and positions by their writers.
        snap.producer = Role::from_word(mem.load_u64(PRODUCER_OWNER_OFF, Ordering::Acquire));
        snap.consumer = Role::from_word(mem.load_u64(CONSUMER_OWNER_OFF, Ordering::Acquire));
        // The read position first: it never passes the write position, so a write position
        // loaded after it is at least as far on, and a busy but healthy ring reads
        // consistent (the other order can see the consumer pass the write position read).
        snap.read_pos = mem.load_u64(READ_POS_OFF, Ordering::Acquire);
        snap.write_pos = mem.load_u64(WRITE_POS_OFF, Ordering::Acquire);
        snap.data_bell = bell(DATA_BELL_OFF);
        snap.space_bell = bell(SPACE_BELL_OFF);
        snap.reservation = mem.load_u64(RESERVATION_OFF, r);
        if snap.kind == Some(RingKind::Bell) && len >= wire::BELL_REGION_SIZE {
            snap.bell = Some(bell(HEADER_SIZE));
        }
        snap.check = match header::validate_kind(&mem, None) {
            Err(e) => Err(SnapshotError::Header(e)),
            Ok(geo) if geo.kind == RingKind::Bell => Ok(()),
            Ok(geo) => check_positions(snap.write_pos, snap.read_pos, geo.capacity)
                .map_err(SnapshotError::Positions),
        };
        snap
    }

    /// Whether the header passes an opener's checks and the positions were consistent.
    ///
    /// # Errors
    ///
    /// [`SnapshotError::Header`] with the first failed header check (validating reads the
    /// header words again, without writing); [`SnapshotError::Positions`] for positions off
    /// the 8-byte grid or more than a capacity apart.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::inspect::{RegionSnapshot, SnapshotError};
    /// use ringbell::HeaderError;
    ///
    /// let (tx, _rx) = ringbell::spsc::channel(4096)?;
    /// assert_eq!(RegionSnapshot::read(tx.shared_memory()).check(), Ok(()));
    /// # Ok::<(), ringbell::AttachError>(())
    /// ```
    pub fn check(&self) -> Result<(), SnapshotError> {
        self.check
    }

    /// Bytes published (SPSC) or claimed (MPSC) and not yet released, if the positions are
    /// consistent.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::inspect::RegionSnapshot;
    ///
    /// let (mut tx, _rx) = ringbell::spsc::channel(4096)?;
    /// tx.try_send(0, &[0; 16])?;
    /// assert_eq!(RegionSnapshot::read(tx.shared_memory()).used(), Some(24));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn used(&self) -> Option<u64> {
        let used = self.write_pos.wrapping_sub(self.read_pos);
        (self.check.is_ok() && self.kind != Some(RingKind::Bell)).then_some(used)
    }
}
