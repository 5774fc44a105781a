//! The MPSC producer registry and the large-frame reservation.
//!
//! An MPSC region is a header, the data area, then `registry_slots` (the header's
//! [`REGISTRY_SLOTS_OFF`](super::REGISTRY_SLOTS_OFF)) slots of [`REGISTRY_SLOT_SIZE`] bytes:
//!
//! ```text
//! +0   owner    u64  the registered producer's owner id; 0 when the slot is free
//! +8   state    u32  IN_CLAIM while the producer is between marking and finishing a claim
//! +16  rec_pos  u64  position of the record the producer is filling
//! ```
//!
//! The reservation word at [`RESERVATION_OFF`](super::RESERVATION_OFF) holds a pending large
//! claim: the claiming producer's slot + 1 in the low 32 bits, the record's size in bytes in
//! the high 32 bits ([`reservation_word`]); 0 if none. Its stamp, at
//! [`RESERVATION_STAMP_OFF`](super::RESERVATION_STAMP_OFF), is renewed at least every
//! half of [`RESERVATION_TTL_MS`]; an older reservation is ignored.

/// Bytes of one registry slot.
pub const REGISTRY_SLOT_SIZE: usize = 32;
/// Most registry slots an MPSC ring may have.
pub const MAX_REGISTRY_SLOTS: usize = 1 << 16;
/// Offset of the owner id within a registry slot (`u64`; 0 when free).
pub const SLOT_OWNER: usize = 0;
/// Offset of the state word within a registry slot (`u32`).
pub const SLOT_STATE: usize = 8;
/// Offset of the record position within a registry slot (`u64`).
pub const SLOT_REC_POS: usize = 16;
/// State bit: the slot's producer is between marking and finishing a claim.
pub const IN_CLAIM: u32 = 1;
/// A reservation whose stamp is older than this (in milliseconds) is ignored: its producer
/// died or gave up.
pub const RESERVATION_TTL_MS: u64 = 1000;

/// The reservation word of registry slot `slot` waiting for a record of `size` bytes.
///
/// # Examples
///
/// ```
/// use ringbell::wire::reservation_word;
///
/// assert_eq!(reservation_word(0, 4096), (4096 << 32) | 1);
/// ```
#[inline]
pub const fn reservation_word(slot: usize, size: u64) -> u64 {
    (size << 32) | (slot as u64 + 1)
}
