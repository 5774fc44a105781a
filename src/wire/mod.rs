//! The wire format: every offset, bit and tag that crosses shared memory or a channel's
//! socket, in one place.
//!
//! This module is the contract a compatible peer implements. Everything else in the crate
//! reads and writes shared memory only through the names defined here; nothing else defines a
//! shared offset, a flag bit or a tag layout.
//!
//! | part | what it names |
//! |---|---|
//! | region header | the 1024-byte header every region starts with: identity fields, the positions, the two doorbells, the MPSC reservation ([`MAGIC_OFF`] … [`RESERVATION_STAMP_OFF`]) |
//! | records | the 8-byte record header of every frame, padding, the MPSC claim state ([`RECORD_HEADER`], [`COMMITTED`], [`PADDING`], [`CLAIMED`]) |
//! | doorbells | the sequence and waiter words of a doorbell line ([`BELL_SEQ`], [`BELL_WAITERS`]) and the bell region ([`BELL_REGION_SIZE`]) |
//! | MPSC registry | the producer slots after an MPSC ring's data area ([`REGISTRY_SLOT_SIZE`], [`SLOT_OWNER`], [`IN_CLAIM`]) and the large-frame reservation word |
//! | channel | the handshake on its socket (a client's hello, [`CLIENT_HELLO_MAGIC`]; the server's greeting, [`HELLO_MAGIC`], [`HELLO_LEN`]), the request/response tags ([`ID_BITS`], [`STATUS_OK`] …) and control requests ([`REQUEST_CONTROL`], [`STATS_MAGIC`]) |
//!
//! Every multi-byte word is in the creator's native byte order (the header's endianness
//! marker lets an opener refuse the other order) and is accessed atomically with its natural
//! alignment; payload bytes are copied.
//!
//! # Versions
//!
//! Two numbers version this format, and a peer checks both:
//!
//! - [`LAYOUT_VERSION`], written in every region header and checked by every opener, names
//!   the shared-memory layout: header, records, doorbell words, MPSC registry and their
//!   protocols. An opener refuses any other version
//!   ([`HeaderError::UnsupportedVersion`](crate::HeaderError::UnsupportedVersion)).
//! - The digit in [`HELLO_MAGIC`] names the channel's handshake and tags: the hello, the
//!   greeting and its descriptors, the request and response tags, control requests. A
//!   client refuses a greeting of any other version.
//!
//! Any change that a peer of the old version would misread — an offset, a bit, a tag
//! layout, a protocol step, a descriptor added to a greeting — bumps the version it belongs
//! to; adding a header flag that an old peer refuses anyway (unknown flags are refused) does
//! not. `docs/wire.md` is the whole specification, checked against these constants by a
//! test.
//!
//! # Examples
//!
//! The offsets are the ones the rings use, so a test or a tool can read a ring's words
//! directly:
//!
//! ```
//! use ringbell::wire::{HEADER_SIZE, READ_POS_OFF, WRITE_POS_OFF};
//!
//! assert_eq!(HEADER_SIZE, 1024);
//! assert_eq!(READ_POS_OFF - WRITE_POS_OFF, 128); // each position on its own 128-byte line
//! ```

mod bell;
mod channel;
mod header;
mod mpsc;
mod record;

pub use bell::*;
pub use channel::*;
pub use header::*;
pub use mpsc::*;
pub use record::*;
