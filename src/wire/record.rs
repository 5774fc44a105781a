//! Record encoding: the 8-byte record header, alignment, padding, and the MPSC claim state.
//!
//! Every record starts at an 8-byte aligned offset of the data area with an 8-byte header:
//!
//! ```text
//! offset 0: u32 length word   bit 31: PADDING  bit 30: COMMITTED  bit 29: CLAIMED (MPSC)
//!                             bits 0..29: payload length
//! offset 4: u32 tag           the user's, carried untouched
//! offset 8: payload           `length` bytes, then zero to seven bytes of slack to the next
//!                             8-byte boundary
//! ```
//!
//! A record that does not fit before the end of the data area is preceded by a *padding
//! record*: its length word has PADDING set and its length covers the rest of the data area,
//! and the real record goes to offset 0. Every valid header has COMMITTED set, so an all-zero
//! word (fresh memory) is never mistaken for a zero-length record.
//!
//! In an MPSC ring a length word also has two transient states: `0` (claimed, not described
//! yet: the consumer zeroes the first `u32` of every 8-byte chunk it releases, so every
//! place a later header can start reads 0) and `CLAIMED | len` (described,
//! being filled). A commit turns `CLAIMED | len` into `COMMITTED | len` by compare-and-swap.
//! Header words are only ever accessed atomically.

use super::header::HEADER_SIZE;

/// Size of a record header in bytes.
pub const RECORD_HEADER: usize = 8;
/// Alignment of every record, in bytes.
pub const ALIGN: usize = 8;
/// Length-word flag: this record is padding: skip `length + 8` bytes.
pub const PADDING: u32 = 1 << 31;
/// Length-word flag: the header is complete. Set on every valid record.
pub const COMMITTED: u32 = 1 << 30;
/// Length-word flag (MPSC only): described but not committed yet.
pub const CLAIMED: u32 = 1 << 29;
/// Bits of a committed length word that hold the payload length.
pub const LEN_MASK: u32 = COMMITTED - 1;
/// Bits of an MPSC length word that hold the payload length (below [`CLAIMED`]).
pub const MPSC_LEN_MASK: u32 = CLAIMED - 1;

/// Bytes a record with `len` payload bytes occupies, header and slack included.
///
/// `len` must not exceed [`LEN_MASK`] (callers check it against the frame cap first), so the
/// result cannot overflow.
///
/// # Examples
///
/// ```
/// use ringbell::wire::record_size;
///
/// assert_eq!(record_size(0), 8);
/// assert_eq!(record_size(1), 16);
/// assert_eq!(record_size(64), 72);
/// ```
#[inline]
pub const fn record_size(len: usize) -> usize {
    RECORD_HEADER + ((len + ALIGN - 1) & !(ALIGN - 1))
}

/// Length word of a committed record of `len` bytes.
#[inline]
pub(crate) const fn record_word(len: usize) -> u32 {
    COMMITTED | len as u32
}

/// Length word of a padding record covering `size` bytes, header included.
#[inline]
pub(crate) const fn padding_word(size: usize) -> u32 {
    PADDING | COMMITTED | (size - RECORD_HEADER) as u32
}

/// Byte offset, in the region, of the payload of the record whose header is at data-area
/// offset `record`.
#[inline(always)]
pub(crate) const fn payload_off(record: usize) -> usize {
    HEADER_SIZE + record + RECORD_HEADER
}

/// What a committed-or-not length word says, before it is checked against the ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decoded {
    /// A committed record carrying `len` payload bytes.
    Record { len: usize },
    /// Padding covering `size` bytes, header included.
    Padding { size: usize },
    /// Not a valid committed header.
    Invalid,
}

/// Decodes a length word.
#[inline]
pub(crate) fn decode(word: u32) -> Decoded {
    if word & COMMITTED == 0 {
        return Decoded::Invalid;
    }
    let len = (word & LEN_MASK) as usize;
    if word & PADDING != 0 {
        Decoded::Padding {
            size: len + RECORD_HEADER,
        }
    } else {
        Decoded::Record { len }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_aligned() {
        assert_eq!(record_size(0), 8);
        assert_eq!(record_size(1), 16);
        assert_eq!(record_size(8), 16);
        assert_eq!(record_size(9), 24);
    }

    #[test]
    fn words_round_trip() {
        assert_eq!(decode(record_word(0)), Decoded::Record { len: 0 });
        assert_eq!(decode(record_word(77)), Decoded::Record { len: 77 });
        assert_eq!(decode(padding_word(8)), Decoded::Padding { size: 8 });
        assert_eq!(decode(padding_word(4096)), Decoded::Padding { size: 4096 });
        assert_eq!(decode(0), Decoded::Invalid);
        assert_eq!(decode(PADDING | 8), Decoded::Invalid);
        assert_eq!(decode(CLAIMED | 8), Decoded::Invalid);
    }
}
