//! The region header: 1024 bytes at the start of every region, in fixed-width fields at
//! named offsets.
//!
//! ```text
//! line 0 (0..128)    identity: magic, version, header size, capacity, mask, endianness,
//!                    kind, frame cap, flags, ready, registry slots, role owners
//!                    (written once by the creator, then read-only — except the role words)
//! line 1 (128..256)  write position  (SPSC: the producer's; MPSC: the shared claim position)
//! line 2 (256..384)  read position   (the consumer's released position)
//! line 3 (384..512)  data doorbell   (the consumer sleeps on it, producers ring it)
//! line 4 (512..640)  space doorbell  (producers sleep on it, the consumer rings it)
//! line 5 (640..768)  MPSC reservation word and its time stamp; zero for other kinds
//! 768..1024          reserved, zero
//! 1024..             data area, `capacity` bytes (an MPSC ring's producer registry follows it)
//! ```
//!
//! Words written by different sides sit on different 128-byte lines: 128 rather than 64
//! because Intel's adjacent-line prefetcher pulls cache lines in pairs, so two 64-byte lines
//! still false-share. The `RingHeader` struct exists only so that the compiler checks the
//! offsets (`memoffset` + `static_assertions`): no value of it is ever created over shared
//! memory.

use memoffset::offset_of;
use static_assertions::const_assert_eq;

/// `b"RINGBELL"` read as a native-endian `u64`: the first word of every region.
pub const MAGIC: u64 = u64::from_ne_bytes(*b"RINGBELL");
/// The version of the shared-memory layout: header, records, doorbell words, MPSC registry
/// and their protocols (the channel's handshake has its own, in
/// [`HELLO_MAGIC`](crate::wire::HELLO_MAGIC)). Any other version is refused (see the
/// [module docs](crate::wire), "Versions").
pub const LAYOUT_VERSION: u32 = 1;
/// A marker written in native byte order; read back swapped on a machine of the other order.
pub const ENDIAN_MARKER: u32 = 0x0102_0304;
/// The value of the ready word once the creator has finished initialising. It is stored last,
/// with Release; an opener loads it first, with Acquire, and refuses a region without it.
pub const READY: u32 = 0x5244_5952;
/// Size of the header in bytes; the data area starts here.
pub const HEADER_SIZE: usize = 1024;
/// Smallest data-area capacity: one 8-byte record header in each half.
pub const MIN_CAPACITY: usize = 16;
/// Largest data-area capacity: 2 GiB, so that every record length fits the length word.
pub const MAX_CAPACITY: usize = 1 << 31;

/// Role word value: nobody holds the role yet.
pub const ROLE_FREE: u64 = 0;
/// Role word value: the holder closed the role cleanly; it can never be claimed again.
pub const ROLE_CLOSED: u64 = u64::MAX;

/// Header flag: the ring's producer rings a doorbell shared with other rings (a fan-in's bell
/// region) instead of the ring's own data doorbell.
pub const FLAG_SHARED_BELL: u32 = 1;
/// Header flag: the ring's consumer rings a doorbell shared with other rings (a channel
/// server's bell region) when it frees space, and its producer sleeps on that doorbell while
/// the ring is full.
pub const FLAG_SHARED_SPACE_BELL: u32 = 2;
/// Header flag: the region's doorbells use asymmetric fences (the
/// [doorbell docs](crate::doorbell), "Asymmetric fences"): a ringer orders its publishing
/// stores before its read of the waiter mark with a compiler fence only, and a waiter, after
/// setting the mark, issues `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)` before it re-checks.
/// Every process that attaches the region registers with
/// `MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED` first, or refuses it. A peer that does not know
/// this flag refuses the region (unknown flags are refused), so the two modes never meet.
pub const FLAG_ASYMMETRIC_FENCES: u32 = 4;
/// Every flag this version understands; an opener refuses any other bit.
pub const KNOWN_FLAGS: u32 = FLAG_SHARED_BELL | FLAG_SHARED_SPACE_BELL | FLAG_ASYMMETRIC_FENCES;

/// What a region holds: the header's kind word.
///
/// # Examples
///
/// ```
/// use ringbell::wire::RingKind;
///
/// assert_eq!(RingKind::from_u32(2), Some(RingKind::Mpsc));
/// assert_eq!(RingKind::from_u32(9), None);
/// assert_eq!(RingKind::Spsc as u32, 1);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum RingKind {
    /// One producer, one consumer.
    Spsc = 1,
    /// Many cooperating producers, one consumer, one shared ring.
    Mpsc = 2,
    /// A doorbell shared by several rings: the data area is one doorbell line.
    Bell = 3,
}

impl RingKind {
    /// The kind with this wire value, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::wire::RingKind;
    ///
    /// assert_eq!(RingKind::from_u32(3), Some(RingKind::Bell));
    /// assert_eq!(RingKind::from_u32(0), None);
    /// ```
    pub const fn from_u32(v: u32) -> Option<Self> {
        match v {
            1 => Some(Self::Spsc),
            2 => Some(Self::Mpsc),
            3 => Some(Self::Bell),
            _ => None,
        }
    }
}

/// The header as a struct, for compile-time offset checks only. Field docs state the
/// invariants; the constants of the same names are the offsets code uses.
#[repr(C, align(128))]
#[allow(dead_code)]
struct RingHeader {
    /// [`MAGIC`]. Written once by the creator.
    magic: u64,
    /// [`LAYOUT_VERSION`].
    version: u32,
    /// [`HEADER_SIZE`].
    header_size: u32,
    /// Data-area size in bytes: a power of two in `MIN_CAPACITY..=MAX_CAPACITY`.
    capacity: u64,
    /// `capacity - 1`, stored so that an opener can cross-check it.
    mask: u64,
    /// [`ENDIAN_MARKER`] in the creator's byte order.
    endian: u32,
    /// A [`RingKind`].
    kind: u32,
    /// Largest payload in bytes a producer may send; at most `capacity / 2 - 8`.
    frame_cap: u32,
    /// [`FLAG_SHARED_BELL`], [`FLAG_SHARED_SPACE_BELL`], [`FLAG_ASYMMETRIC_FENCES`], or 0;
    /// any other bit is refused.
    flags: u32,
    /// [`READY`] once every other field is written (stored last, Release).
    ready: u32,
    /// MPSC only: slots in the producer registry, which follows the data area. 0 otherwise.
    registry_slots: u32,
    /// Owner id of the producer role: [`ROLE_FREE`], an owner id, or [`ROLE_CLOSED`].
    /// Claimed by compare-and-swap from `ROLE_FREE`. Unused by MPSC rings.
    producer_owner: u64,
    /// Owner id of the consumer role, as for `producer_owner`.
    consumer_owner: u64,
    _pad1: [u8; 56],
    /// Position one past the last published byte (SPSC; written only by the producer,
    /// Release after the records it covers) or one past the last claimed byte (MPSC; moved by
    /// producers with compare-and-swap). Only grows, wrapping.
    write_pos: u64,
    _pad2: [u8; 120],
    /// Position one past the last released byte. Written only by the consumer (Release after
    /// it finished reading, and for MPSC after zeroing the released headers). Only grows.
    read_pos: u64,
    _pad3: [u8; 120],
    /// Doorbell the consumer sleeps on while the ring is empty.
    data_bell: [u8; 128],
    /// Doorbell producers sleep on while the ring is full.
    space_bell: [u8; 128],
    /// MPSC only: the pending large claim (see [`reservation_word`](super::reservation_word)),
    /// 0 if none.
    reservation: u64,
    /// MPSC only: monotonic milliseconds at which the reservation was last renewed.
    reservation_stamp: u64,
    _pad4: [u8; 112],
    _reserved: [u8; 256],
}

/// Offset of the magic (`u64`).
pub const MAGIC_OFF: usize = 0;
/// Offset of the layout version (`u32`).
pub const VERSION_OFF: usize = 8;
/// Offset of the header size (`u32`).
pub const HEADER_SIZE_OFF: usize = 12;
/// Offset of the capacity (`u64`).
pub const CAPACITY_OFF: usize = 16;
/// Offset of the mask (`u64`).
pub const MASK_OFF: usize = 24;
/// Offset of the endianness marker (`u32`).
pub const ENDIAN_OFF: usize = 32;
/// Offset of the kind (`u32`).
pub const KIND_OFF: usize = 36;
/// Offset of the frame cap (`u32`).
pub const FRAME_CAP_OFF: usize = 40;
/// Offset of the flags (`u32`).
pub const FLAGS_OFF: usize = 44;
/// Offset of the ready word (`u32`).
pub const READY_OFF: usize = 48;
/// Offset of the MPSC registry size (`u32`).
pub const REGISTRY_SLOTS_OFF: usize = 52;
/// Offset of the producer role word (`u64`).
pub const PRODUCER_OWNER_OFF: usize = 56;
/// Offset of the consumer role word (`u64`).
pub const CONSUMER_OWNER_OFF: usize = 64;
/// Offset of the write (SPSC) or claim (MPSC) position (`u64`).
pub const WRITE_POS_OFF: usize = 128;
/// Offset of the read (released) position (`u64`).
pub const READ_POS_OFF: usize = 256;
/// Offset of the data doorbell's line.
pub const DATA_BELL_OFF: usize = 384;
/// Offset of the space doorbell's line.
pub const SPACE_BELL_OFF: usize = 512;
/// Offset of the MPSC reservation word (`u64`).
pub const RESERVATION_OFF: usize = 640;
/// Offset of the MPSC reservation stamp (`u64`, monotonic milliseconds).
pub const RESERVATION_STAMP_OFF: usize = 648;

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
const_assert_eq!(offset_of!(RingHeader, registry_slots), REGISTRY_SLOTS_OFF);
const_assert_eq!(offset_of!(RingHeader, producer_owner), PRODUCER_OWNER_OFF);
const_assert_eq!(offset_of!(RingHeader, consumer_owner), CONSUMER_OWNER_OFF);
const_assert_eq!(offset_of!(RingHeader, write_pos), WRITE_POS_OFF);
const_assert_eq!(offset_of!(RingHeader, read_pos), READ_POS_OFF);
const_assert_eq!(offset_of!(RingHeader, data_bell), DATA_BELL_OFF);
const_assert_eq!(offset_of!(RingHeader, space_bell), SPACE_BELL_OFF);
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
const_assert_eq!(RESERVATION_OFF - SPACE_BELL_OFF, 128);
const_assert_eq!(HEADER_SIZE % 128, 0);
