//! The shared header of a ring region: named offsets, the identity checks an opener makes,
//! and the creator's initialisation.
//!
//! A ring region is `HEADER_SIZE` bytes of header followed by `capacity` bytes of data
//! (a power of two). Every field has a fixed width and a named offset below; the
//! `RingHeader` struct exists only so the compiler can check those offsets
//! (`memoffset` + `static_assertions`) — no value of it is ever created over shared memory.
//!
//! ```text
//! line 0 (0..128)    identity: magic, version, header size, capacity, mask, endianness,
//!                    kind, frame cap, flags, ready, role owners    (written once, then read-only)
//! line 1 (128..256)  write position  (producer writes, consumer reads)
//! line 2 (256..384)  read position   (consumer writes, producer reads)
//! line 3 (384..512)  data doorbell   (consumer sleeps on it, producer rings it)
//! line 4 (512..640)  space doorbell  (producer sleeps on it, consumer rings it)
//! 640..1024          reserved, zero
//! 1024..             data area, `capacity` bytes
//! ```
//!
//! Hot words sit on their own 128-byte lines: 128 rather than 64 because Intel's adjacent-line
//! prefetcher pulls cache lines in pairs, so two 64-byte lines still false-share.
//!
//! # Trust
//!
//! [`validate`] reads each identity field exactly once, after the ready word (Acquire), and
//! returns a [`Geometry`] that callers keep locally: capacity and mask are never re-read from
//! shared memory, so a peer that rewrites them later changes nothing.

use memoffset::offset_of;
use static_assertions::const_assert_eq;

use crate::error::HeaderError;
use crate::frame;
use crate::mem::Mem;
use crate::sync::Ordering;

/// `b"RINGBELL"` read as a native-endian `u64`.
pub const MAGIC: u64 = u64::from_ne_bytes(*b"RINGBELL");
/// The layout version this build reads and writes. Any other version is refused.
pub const LAYOUT_VERSION: u32 = 1;
/// A marker written in native byte order; read back swapped on a foreign-endian machine.
pub const ENDIAN_MARKER: u32 = 0x0102_0304;
/// The value of the ready word once the creator has finished initialising.
pub const READY: u32 = 0x5244_5952;
/// Size of the header in bytes; the data area starts here.
pub const HEADER_SIZE: usize = 1024;
/// Smallest capacity: one 8-byte record header in each half.
pub const MIN_CAPACITY: usize = 16;
/// Largest capacity: 2 GiB, so every record length fits the length word's 30 bits.
pub const MAX_CAPACITY: usize = 1 << 31;

/// Role word value for a role nobody holds yet.
pub const ROLE_FREE: u64 = 0;
/// Role word value for a role whose holder closed it cleanly; it can never be claimed again.
pub const ROLE_CLOSED: u64 = u64::MAX;

/// Header flag: the ring's producer rings a doorbell shared with other rings (a fan-in's)
/// instead of the ring's own data doorbell.
pub const FLAG_SHARED_BELL: u32 = 1;
/// Header flag: the ring's consumer rings a doorbell shared with other rings (a channel
/// server's) when it frees space, instead of the ring's own space doorbell, and its producer
/// sleeps on that shared doorbell while the ring is full.
pub const FLAG_SHARED_SPACE_BELL: u32 = 2;
/// Every flag this version understands.
pub const KNOWN_FLAGS: u32 = FLAG_SHARED_BELL | FLAG_SHARED_SPACE_BELL;

/// What a region holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum RingKind {
    /// One producer, one consumer.
    Spsc = 1,
    /// Many cooperating producers, one consumer, one shared ring.
    Mpsc = 2,
    /// A doorbell shared by several rings (a fan-in's): the data area is one doorbell line.
    Bell = 3,
}

impl RingKind {
    fn from_u32(v: u32) -> Option<Self> {
        match v {
            1 => Some(Self::Spsc),
            2 => Some(Self::Mpsc),
            3 => Some(Self::Bell),
            _ => None,
        }
    }
}

/// The header as a struct, for compile-time offset checks only. Field docs state the
/// invariants; see the constants of the same names for the offsets code uses.
#[repr(C, align(128))]
#[allow(dead_code)]
pub(crate) struct RingHeader {
    /// [`MAGIC`]. Written once by the creator.
    magic: u64,
    /// [`LAYOUT_VERSION`].
    version: u32,
    /// [`HEADER_SIZE`].
    header_size: u32,
    /// Data-area size in bytes: a power of two in `MIN_CAPACITY..=MAX_CAPACITY`.
    capacity: u64,
    /// `capacity - 1`, stored so an opener can cross-check it.
    mask: u64,
    /// [`ENDIAN_MARKER`] in the creator's byte order.
    endian: u32,
    /// A [`RingKind`].
    kind: u32,
    /// Largest payload in bytes a producer may send; `<= capacity / 2 - 8`.
    frame_cap: u32,
    /// Feature flags: [`FLAG_SHARED_BELL`], [`FLAG_SHARED_SPACE_BELL`] or 0; any other bit is
    /// refused.
    flags: u32,
    /// [`READY`] once every other field is written; stored last with Release, loaded first
    /// with Acquire by openers.
    ready: u32,
    /// MPSC only: slots in the producer registry, which follows the data area. 0 otherwise.
    registry_slots: u32,
    /// Owner id of the producer role: [`ROLE_FREE`], an owner id, or [`ROLE_CLOSED`].
    /// Claimed by compare-and-swap from `ROLE_FREE`.
    producer_owner: u64,
    /// Owner id of the consumer role, as for `producer_owner`.
    consumer_owner: u64,
    _pad1: [u8; 56],
    /// Position one past the last published byte. Written only by the producer (Release after
    /// the records it covers), read by the consumer (Acquire). Only grows (wrapping `u64`).
    write_pos: u64,
    _pad2: [u8; 120],
    /// Position one past the last released byte. Written only by the consumer (Release after
    /// it finished reading), read by the producer (Acquire). Only grows.
    read_pos: u64,
    _pad3: [u8; 120],
    /// Doorbell the consumer sleeps on while the ring is empty.
    data_bell: [u8; 128],
    /// Doorbell the producer sleeps on while the ring is full.
    space_bell: [u8; 128],
    /// MPSC only: the pending large claim (see `mpsc`): slot + 1 in the low half, record
    /// size in the high half; 0 if none.
    reservation: u64,
    /// MPSC only: monotonic milliseconds at which the reservation was last renewed.
    reservation_stamp: u64,
    _pad4: [u8; 112],
    _reserved: [u8; 256],
}

/// Offset of the magic.
pub const MAGIC_OFF: usize = 0;
/// Offset of the layout version.
pub const VERSION_OFF: usize = 8;
/// Offset of the header size.
pub const HEADER_SIZE_OFF: usize = 12;
/// Offset of the capacity.
pub const CAPACITY_OFF: usize = 16;
/// Offset of the mask.
pub const MASK_OFF: usize = 24;
/// Offset of the endianness marker.
pub const ENDIAN_OFF: usize = 32;
/// Offset of the kind.
pub const KIND_OFF: usize = 36;
/// Offset of the frame cap.
pub const FRAME_CAP_OFF: usize = 40;
/// Offset of the flags.
pub const FLAGS_OFF: usize = 44;
/// Offset of the ready word.
pub const READY_OFF: usize = 48;
/// Offset of the producer role word.
pub const PRODUCER_OWNER_OFF: usize = 56;
/// Offset of the consumer role word.
pub const CONSUMER_OWNER_OFF: usize = 64;
/// Offset of the write position.
pub const WRITE_POS_OFF: usize = 128;
/// Offset of the read position.
pub const READ_POS_OFF: usize = 256;
/// Offset of the data doorbell.
pub const DATA_BELL_OFF: usize = 384;
/// Offset of the space doorbell.
pub const SPACE_BELL_OFF: usize = 512;
/// Offset of the MPSC registry size.
pub const REGISTRY_SLOTS_OFF: usize = 52;
/// Offset of the MPSC reservation word.
pub const RESERVATION_OFF: usize = 640;
/// Offset of the MPSC reservation stamp.
pub const RESERVATION_STAMP_OFF: usize = 648;
/// Bytes of one MPSC registry slot.
pub const REGISTRY_SLOT_SIZE: usize = 32;
/// Most MPSC registry slots.
pub const MAX_REGISTRY_SLOTS: usize = 1 << 16;

const_assert_eq!(core::mem::size_of::<RingHeader>(), HEADER_SIZE);
const_assert_eq!(offset_of!(RingHeader, magic), MAGIC_OFF);
const_assert_eq!(offset_of!(RingHeader, version), VERSION_OFF);
const_assert_eq!(offset_of!(RingHeader, header_size), HEADER_SIZE_OFF);
const_assert_eq!(offset_of!(RingHeader, capacity), CAPACITY_OFF);
const_assert_eq!(offset_of!(RingHeader, mask), MASK_OFF);
const_assert_eq!(offset_of!(RingHeader, endian), ENDIAN_OFF);
const_assert_eq!(offset_of!(RingHeader, kind), KIND_OFF);
const_assert_eq!(offset_of!(RingHeader, frame_cap), FRAME_CAP_OFF);
const_assert_eq!(offset_of!(RingHeader, flags), FLAGS_OFF);
const_assert_eq!(offset_of!(RingHeader, ready), READY_OFF);
const_assert_eq!(offset_of!(RingHeader, producer_owner), PRODUCER_OWNER_OFF);
const_assert_eq!(offset_of!(RingHeader, consumer_owner), CONSUMER_OWNER_OFF);
const_assert_eq!(offset_of!(RingHeader, write_pos), WRITE_POS_OFF);
const_assert_eq!(offset_of!(RingHeader, read_pos), READ_POS_OFF);
const_assert_eq!(offset_of!(RingHeader, data_bell), DATA_BELL_OFF);
const_assert_eq!(offset_of!(RingHeader, space_bell), SPACE_BELL_OFF);
const_assert_eq!(offset_of!(RingHeader, registry_slots), REGISTRY_SLOTS_OFF);
const_assert_eq!(offset_of!(RingHeader, reservation), RESERVATION_OFF);
const_assert_eq!(
    offset_of!(RingHeader, reservation_stamp),
    RESERVATION_STAMP_OFF
);
// Producer-written, consumer-written and doorbell words never share a 128-byte line.
const_assert_eq!(WRITE_POS_OFF % 128, 0);
const_assert_eq!(READ_POS_OFF - WRITE_POS_OFF, 128);
const_assert_eq!(DATA_BELL_OFF - READ_POS_OFF, 128);
const_assert_eq!(SPACE_BELL_OFF - DATA_BELL_OFF, 128);
const_assert_eq!(HEADER_SIZE % 128, 0);

/// A ring's shape, validated once at open and kept locally from then on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Data-area size in bytes (a power of two).
    pub capacity: usize,
    /// Largest payload a producer may send.
    pub frame_cap: usize,
    /// The kind of ring.
    pub kind: RingKind,
    /// Header flags ([`FLAG_SHARED_BELL`]).
    pub flags: u32,
    /// MPSC producer registry slots (0 for other kinds).
    pub slots: usize,
}

impl Geometry {
    /// `capacity - 1`.
    #[inline]
    pub fn mask(&self) -> u64 {
        self.capacity as u64 - 1
    }

    /// Total bytes of a region holding this ring.
    #[inline]
    pub fn region_size(&self) -> usize {
        HEADER_SIZE + self.capacity + self.slots * REGISTRY_SLOT_SIZE
    }

    /// Offset of the MPSC producer registry (just past the data area).
    #[inline]
    pub fn registry_off(&self) -> usize {
        HEADER_SIZE + self.capacity
    }

    /// The largest frame cap a ring of `capacity` bytes allows: a record of half the
    /// capacity, header included, so that it always fits once the ring is empty.
    #[inline]
    pub const fn max_frame_cap(capacity: usize) -> usize {
        (capacity / 2).saturating_sub(frame::RECORD_HEADER)
    }
}

/// Checks `capacity` and `frame_cap` and builds a geometry.
pub(crate) fn geometry(
    kind: RingKind,
    capacity: usize,
    frame_cap: Option<usize>,
) -> Result<Geometry, HeaderError> {
    if !capacity.is_power_of_two() || !(MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity) {
        return Err(HeaderError::BadCapacity {
            capacity: capacity as u64,
        });
    }
    let max = Geometry::max_frame_cap(capacity);
    let frame_cap = frame_cap.unwrap_or(max);
    if frame_cap > max {
        return Err(HeaderError::BadFrameCap {
            frame_cap: frame_cap as u64,
            max: max as u64,
        });
    }
    Ok(Geometry {
        capacity,
        frame_cap,
        kind,
        flags: 0,
        slots: 0,
    })
}

/// Writes a fresh header into `mem` (exactly `geo.region_size()` bytes), positions at
/// `start`, the ready word last.
///
/// The caller guarantees nobody uses the ring yet (the region was just created).
pub(crate) fn init(mem: &Mem, geo: &Geometry, start: u64) -> Result<(), HeaderError> {
    if mem.len() != geo.region_size() {
        return Err(HeaderError::SizeMismatch {
            size: mem.len() as u64,
            expected: geo.region_size() as u64,
        });
    }
    if start % frame::ALIGN as u64 != 0 {
        return Err(HeaderError::BadStartPosition { position: start });
    }
    let r = Ordering::Relaxed;
    mem.store_u32(READY_OFF, 0, r);
    mem.store_u64(MAGIC_OFF, MAGIC, r);
    mem.store_u32(VERSION_OFF, LAYOUT_VERSION, r);
    mem.store_u32(HEADER_SIZE_OFF, HEADER_SIZE as u32, r);
    mem.store_u64(CAPACITY_OFF, geo.capacity as u64, r);
    mem.store_u64(MASK_OFF, geo.mask(), r);
    mem.store_u32(ENDIAN_OFF, ENDIAN_MARKER, r);
    mem.store_u32(KIND_OFF, geo.kind as u32, r);
    mem.store_u32(FRAME_CAP_OFF, geo.frame_cap as u32, r);
    mem.store_u32(FLAGS_OFF, geo.flags, r);
    mem.store_u32(REGISTRY_SLOTS_OFF, geo.slots as u32, r);
    mem.store_u64(RESERVATION_OFF, 0, r);
    mem.store_u64(RESERVATION_STAMP_OFF, 0, r);
    mem.store_u64(PRODUCER_OWNER_OFF, ROLE_FREE, r);
    mem.store_u64(CONSUMER_OWNER_OFF, ROLE_FREE, r);
    mem.store_u64(WRITE_POS_OFF, start, r);
    mem.store_u64(READ_POS_OFF, start, r);
    for off in (DATA_BELL_OFF..SPACE_BELL_OFF + 128).step_by(4) {
        mem.store_u32(off, 0, r);
    }
    // Release: pairs with the Acquire load of the ready word in `validate`; every field above
    // is visible to an opener that sees READY.
    mem.store_u32(READY_OFF, READY, Ordering::Release);
    Ok(())
}

/// Validates the header of `mem` as a ring of `kind`, reading each field once.
///
/// # Errors
///
/// One distinct [`HeaderError`] per failed check, in this order: too small for a header, magic
/// (a byte-swapped magic is reported as wrong endianness), not ready, version, endianness,
/// header size, kind, flags, capacity, mask, region size, frame cap.
pub fn validate(mem: &Mem, kind: RingKind) -> Result<Geometry, HeaderError> {
    if mem.len() < HEADER_SIZE {
        return Err(HeaderError::TooSmall {
            size: mem.len() as u64,
        });
    }
    // Acquire: pairs with the Release store of READY in `init`.
    let ready = mem.load_u32(READY_OFF, Ordering::Acquire);
    let r = Ordering::Relaxed;
    let magic = mem.load_u64(MAGIC_OFF, r);
    if magic != MAGIC {
        if magic == MAGIC.swap_bytes() {
            return Err(HeaderError::WrongEndianness);
        }
        return Err(HeaderError::BadMagic { found: magic });
    }
    if ready != READY {
        return Err(HeaderError::NotReady);
    }
    let version = mem.load_u32(VERSION_OFF, r);
    if version != LAYOUT_VERSION {
        return Err(HeaderError::UnsupportedVersion { found: version });
    }
    if mem.load_u32(ENDIAN_OFF, r) != ENDIAN_MARKER {
        return Err(HeaderError::WrongEndianness);
    }
    let header_size = mem.load_u32(HEADER_SIZE_OFF, r);
    if header_size as usize != HEADER_SIZE {
        return Err(HeaderError::BadHeaderSize { found: header_size });
    }
    let found_kind = mem.load_u32(KIND_OFF, r);
    match RingKind::from_u32(found_kind) {
        Some(k) if k == kind => {}
        _ => {
            return Err(HeaderError::WrongKind {
                found: found_kind,
                expected: kind as u32,
            });
        }
    }
    let flags = mem.load_u32(FLAGS_OFF, r);
    if flags & !KNOWN_FLAGS != 0 {
        return Err(HeaderError::UnsupportedFlags { flags });
    }
    let capacity = mem.load_u64(CAPACITY_OFF, r);
    if !capacity.is_power_of_two()
        || capacity < MIN_CAPACITY as u64
        || capacity > MAX_CAPACITY as u64
    {
        return Err(HeaderError::BadCapacity { capacity });
    }
    let mask = mem.load_u64(MASK_OFF, r);
    if mask != capacity - 1 {
        return Err(HeaderError::BadMask { mask, capacity });
    }
    let slots = mem.load_u32(REGISTRY_SLOTS_OFF, r) as u64;
    let slots_ok = match kind {
        RingKind::Mpsc => (1..=MAX_REGISTRY_SLOTS as u64).contains(&slots),
        _ => slots == 0,
    };
    if !slots_ok {
        return Err(HeaderError::BadRegistry { slots });
    }
    let expected = HEADER_SIZE as u64 + capacity + slots * REGISTRY_SLOT_SIZE as u64;
    if mem.len() as u64 != expected {
        return Err(HeaderError::SizeMismatch {
            size: mem.len() as u64,
            expected,
        });
    }
    let frame_cap = mem.load_u32(FRAME_CAP_OFF, r);
    // `capacity <= MAX_CAPACITY` fits usize on every supported target (checked above).
    let capacity = capacity as usize;
    let max = Geometry::max_frame_cap(capacity);
    if frame_cap as usize > max {
        return Err(HeaderError::BadFrameCap {
            frame_cap: frame_cap as u64,
            max: max as u64,
        });
    }
    Ok(Geometry {
        capacity,
        frame_cap: frame_cap as usize,
        kind,
        flags,
        slots: slots as usize,
    })
}
