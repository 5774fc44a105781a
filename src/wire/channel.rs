//! A channel's greeting and its request/response tags.
//!
//! A client connects to the server's Unix-domain socket. The server answers with one message
//! of [`HELLO_LEN`] bytes (native byte order):
//!
//! ```text
//! +0   magic         HELLO_MAGIC, "RBC1"
//! +4   verdict       HELLO_OK, HELLO_FULL or HELLO_UID
//! +8   slot          the connection's slot on the server
//! +12  server pid    the serving process, as the server sees itself
//! +16  in flight     the server's limit on this client's requests in flight
//! +20  reserved      zero
//! ```
//!
//! With `HELLO_OK` the message carries three descriptors (`SCM_RIGHTS`), in this order: the
//! server's bell region, the client's request ring (the client produces), and its response
//! ring (the client consumes). With any other verdict it carries none and the server closes
//! the connection.
//!
//! A request is a frame whose tag is its request id ([`ID_BITS`] bits, wrapping). A response
//! is a frame whose tag carries the same id in the low bits and a status code
//! ([`STATUS_OK`] …) in the top three.

/// First bytes of the server's greeting.
pub const HELLO_MAGIC: [u8; 4] = *b"RBC1";
/// Length of the greeting in bytes.
pub const HELLO_LEN: usize = 24;
/// Greeting verdict: admitted; the rings follow.
pub const HELLO_OK: u32 = 0;
/// Greeting verdict: refused, the server is at its client limit.
pub const HELLO_FULL: u32 = 1;
/// Greeting verdict: refused, the client's user is not admitted.
pub const HELLO_UID: u32 = 2;
/// Offset of the verdict in the greeting (`u32`).
pub const HELLO_VERDICT_OFF: usize = 4;
/// Offset of the connection's slot in the greeting (`u32`).
pub const HELLO_SLOT_OFF: usize = 8;
/// Offset of the server's pid in the greeting (`u32`).
pub const HELLO_PID_OFF: usize = 12;
/// Offset of the in-flight limit in the greeting (`u32`).
pub const HELLO_IN_FLIGHT_OFF: usize = 16;
/// Descriptors a greeting with [`HELLO_OK`] carries: bell region, request ring, response ring.
pub const HELLO_FDS: usize = 3;

/// Bits of a frame tag that carry the request id.
pub const ID_BITS: u32 = 29;
/// Mask of the request id in a tag.
pub const ID_MASK: u32 = (1 << ID_BITS) - 1;
/// Status code: the handler's answer.
pub const STATUS_OK: u32 = 0;
/// Status code: too many requests in flight; not run.
pub const STATUS_BUSY: u32 = 1;
/// Status code: the handler panicked.
pub const STATUS_PANICKED: u32 = 2;
/// Status code: the handler dropped its responder unanswered.
pub const STATUS_DROPPED: u32 = 3;
/// Status code: the answer exceeded the response frame cap.
pub const STATUS_TOO_LARGE: u32 = 4;
/// Status code: the handler reported a failure; the body is its message.
pub const STATUS_FAILED: u32 = 5;
/// Status code: the server was shutting down; not run.
pub const STATUS_SHUTTING_DOWN: u32 = 6;
