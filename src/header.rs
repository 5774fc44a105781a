//! The region header as this crate reads and writes it: the creator's initialisation, the
//! identity checks an opener makes, and the ring's shape kept locally from then on.
//!
//! The offsets and values are the [wire format](crate::wire); this module is the code that
//! applies them.
//!
//! # Trust
//!
//! [`validate`] reads each identity field exactly once, after the ready word (Acquire), and
//! returns a [`Geometry`] that callers keep locally: capacity and mask are never re-read from
//! shared memory, so a peer that rewrites them later changes nothing.

use crate::doorbell::Fences;
use crate::error::{Corruption, HeaderError};
use crate::mem::Mem;
use crate::sync::Ordering;
use crate::wire::{
    self, CAPACITY_OFF, CONSUMER_OWNER_OFF, DATA_BELL_OFF, ENDIAN_MARKER, ENDIAN_OFF, FLAGS_OFF,
    FRAME_CAP_OFF, HEADER_SIZE, HEADER_SIZE_OFF, KIND_OFF, KNOWN_FLAGS, LAYOUT_VERSION, MAGIC,
    MAGIC_OFF, MASK_OFF, MAX_CAPACITY, MAX_REGISTRY_SLOTS, MIN_CAPACITY, PRODUCER_OWNER_OFF,
    READ_POS_OFF, READY, READY_OFF, REGISTRY_SLOT_SIZE, REGISTRY_SLOTS_OFF, RESERVATION_OFF,
    RESERVATION_STAMP_OFF, ROLE_FREE, RingKind, SPACE_BELL_OFF, VERSION_OFF, WRITE_POS_OFF,
};

/// A ring's shape, validated once at open and kept locally from then on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geometry {
    /// Data-area size in bytes (a power of two).
    pub(crate) capacity: usize,
    /// Largest payload a producer may send.
    pub(crate) frame_cap: usize,
    /// The kind of ring.
    pub(crate) kind: RingKind,
    /// Header flags ([`wire::FLAG_SHARED_BELL`], [`wire::FLAG_SHARED_SPACE_BELL`],
    /// [`wire::FLAG_ASYMMETRIC_FENCES`]).
    pub(crate) flags: u32,
    /// MPSC producer registry slots (0 for other kinds).
    pub(crate) slots: usize,
}

impl Geometry {
    /// `capacity - 1`.
    #[inline]
    pub(crate) fn mask(&self) -> u64 {
        self.capacity as u64 - 1
    }

    /// Total bytes of a region holding this ring.
    #[inline]
    pub(crate) fn region_size(&self) -> usize {
        HEADER_SIZE + self.capacity + self.slots * REGISTRY_SLOT_SIZE
    }

    /// Offset of the MPSC producer registry (just past the data area).
    #[inline]
    pub(crate) fn registry_off(&self) -> usize {
        HEADER_SIZE + self.capacity
    }

    /// Sets the fence mode a creator asked for (`None`: this process's default, which
    /// registers it for `membarrier` if it can; a creator that names `Symmetric` does not).
    pub(crate) fn set_fences(&mut self, fences: Option<Fences>) -> Result<(), HeaderError> {
        let f = fences.unwrap_or_else(Fences::default_for_new_regions);
        f.usable()?;
        self.flags = (self.flags & !wire::FLAG_ASYMMETRIC_FENCES) | f.flags();
        Ok(())
    }

    /// The fence mode the header names, once this process may use it: an attach of an
    /// asymmetric region registers the process for `membarrier` here, or is refused.
    pub(crate) fn usable_fences(&self) -> Result<Fences, HeaderError> {
        let f = Fences::from_flags(self.flags);
        f.usable()?;
        Ok(f)
    }

    /// The largest frame cap a ring of `capacity` bytes allows: a record of half the
    /// capacity, header included, so that it always fits once the ring is empty.
    #[inline]
    pub(crate) const fn max_frame_cap(capacity: usize) -> usize {
        (capacity / 2).saturating_sub(wire::RECORD_HEADER)
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
/// `start`, and publishes it: the ready word last.
///
/// The caller guarantees nobody uses the ring yet (the region was just created).
pub(crate) fn init(mem: &Mem, geo: &Geometry, start: u64) -> Result<(), HeaderError> {
    write_fields(mem, geo, start)?;
    publish_ready(mem);
    Ok(())
}

/// Writes every header field of a fresh region except the ready word, which it clears: an
/// opener refuses the region until [`publish_ready`]. A creator that has more to initialise
/// (an MPSC ring's registry and record headers) does it in between.
pub(crate) fn write_fields(mem: &Mem, geo: &Geometry, start: u64) -> Result<(), HeaderError> {
    if mem.len() != geo.region_size() {
        return Err(HeaderError::SizeMismatch {
            size: mem.len() as u64,
            expected: geo.region_size() as u64,
        });
    }
    if start % wire::ALIGN as u64 != 0 {
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
    for off in (DATA_BELL_OFF..SPACE_BELL_OFF + wire::DOORBELL_SIZE).step_by(4) {
        mem.store_u32(off, 0, r);
    }
    Ok(())
}

/// Publishes a region initialised by [`write_fields`] (and whatever the creator added).
pub(crate) fn publish_ready(mem: &Mem) {
    // Release: pairs with the Acquire load of the ready word in `validate`; every field and
    // every byte initialised before is visible to an opener that sees READY.
    mem.store_u32(READY_OFF, READY, Ordering::Release);
}

/// Validates a position pair read at attach time: both on the 8-byte grid, and
/// `write - read <= capacity` in wrapping arithmetic.
pub(crate) fn check_positions(write: u64, read: u64, capacity: usize) -> Result<(), Corruption> {
    if write % wire::ALIGN as u64 != 0 {
        return Err(Corruption::WritePosition { found: write });
    }
    if read % wire::ALIGN as u64 != 0 || write.wrapping_sub(read) > capacity as u64 {
        return Err(Corruption::ReadPosition { found: read });
    }
    Ok(())
}

/// Validates the header of `mem` as a ring of `kind`, reading each field once.
///
/// # Errors
///
/// One distinct [`HeaderError`] per failed check, in this order: too small for a header, magic
/// (a byte-swapped magic is reported as wrong endianness), not ready, version, endianness,
/// header size, kind, flags, capacity, mask, registry, region size, frame cap.
pub(crate) fn validate(mem: &Mem, kind: RingKind) -> Result<Geometry, HeaderError> {
    validate_kind(mem, Some(kind))
}

/// As [`validate`], for a region of any kind when `kind` is `None`.
pub(crate) fn validate_kind(mem: &Mem, kind: Option<RingKind>) -> Result<Geometry, HeaderError> {
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
    let kind = match (RingKind::from_u32(found_kind), kind) {
        (Some(k), None) => k,
        (Some(k), Some(want)) if k == want => k,
        (_, want) => {
            return Err(HeaderError::WrongKind {
                found: found_kind,
                expected: want.map_or(0, |k| k as u32),
            });
        }
    };
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
    let mut max = Geometry::max_frame_cap(capacity);
    if kind == RingKind::Mpsc {
        // The MPSC length word also carries CLAIMED: lengths must stay below it, as the
        // creator's check (mpsc::Config) makes them. A forged header must not pass either.
        max = max.min(wire::MPSC_LEN_MASK as usize - wire::RECORD_HEADER);
    }
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
