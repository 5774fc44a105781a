//! A channel's handshake and its request/response tags.
//!
//! A client connects to the server's Unix-domain socket and at once sends its hello, one
//! message of [`CLIENT_HELLO_LEN`] bytes (native byte order):
//!
//! ```text
//! +0   magic         CLIENT_HELLO_MAGIC, "RBH2"
//! +4   client pid    the client process, as it sees itself
//! +8   flags         CLIENT_HELLO_PIDFD if a descriptor comes with it
//! +12  reserved      zero
//! ```
//!
//! carrying, if the client could make one, a pidfd of its own process (`SCM_RIGHTS`). The
//! server answers with one message of [`HELLO_LEN`] bytes:
//!
//! ```text
//! +0   magic         HELLO_MAGIC, "RBC5"
//! +4   verdict       HELLO_OK, HELLO_FULL, HELLO_UID, HELLO_LIMIT or HELLO_RESOURCES
//! +8   slot          the connection's slot on the server
//! +12  server pid    the serving process, as the server sees itself
//! +16  in flight     the server's limit on this client's requests in flight
//! +20  flags         HELLO_FLAG_PIDFD if the server's pidfd comes with it,
//!                    HELLO_FLAG_SOCKET if frames travel on this socket (no rings),
//!                    HELLO_FLAG_READINESS if the client's readiness socket comes with it,
//!                    HELLO_FLAG_SERVER_READINESS if the server's readiness socket comes
//! +24  max request   the largest request body the server takes, in bytes
//! +28  max response  the largest response body it sends, in bytes
//! ```
//!
//! With `HELLO_OK` and without `HELLO_FLAG_SOCKET` the message carries three descriptors
//! (`SCM_RIGHTS`), in this order: the server's bell region, the client's request ring (the
//! client produces), and its response ring (the client consumes) — then, if
//! `HELLO_FLAG_READINESS` says so, the client's end of the connection's readiness socket (a
//! stream socket pair: the server sends one byte on its end when it answers an async wait of
//! the client on the response ring's data line or the request ring's room line, and never
//! reads; the client only reads), then, if `HELLO_FLAG_SERVER_READINESS` says so, the
//! ringers' end of this client's pair in the server's readiness set (a client sends one
//! byte on it, with `MSG_DONTWAIT`, when it answers an async wait of the server on its
//! doorbell line — a request published, room released in a response ring; a client that
//! closes or shuts it down is detached), and last a pidfd of the serving process, if the
//! flag says so. With `HELLO_FLAG_SOCKET` it carries only the
//! pidfd (if flagged), and from then on requests and responses are frames on the socket
//! itself, each an 8-byte header — body length (`u32`), tag (`u32`), native byte order —
//! followed by the body; a body longer than the greeting's maximum is a protocol violation
//! that ends the connection. With any other verdict it carries none and the server closes
//! the connection.
//!
//! The pidfds are how each side learns that the other *process* died even while a process it
//! forked keeps a copy of the connection's socket (the socket then never hangs up). Either
//! pidfd may be missing (a kernel without `pidfd_open`, a sandbox that forbids it): that side
//! is then watched through the socket only. A server reads the client's hello without
//! waiting for it: on shared memory a client that never sends one is served, watched
//! through its socket only; on the socket transport the hello is required (the server
//! reads no frame before it, and the first 16 bytes are taken as one).
//!
//! A request is a frame whose tag is its request id ([`ID_BITS`] bits, wrapping) and, in
//! its top bit, [`REQUEST_CONTROL`] for a control request; the two bits between are zero. A
//! response is a frame whose tag carries the same id in the low bits and a status code
//! ([`STATUS_OK`] …) in the top three.
//!
//! A control request is answered by the server itself, never by its handler, in its turn
//! among the connection's responses. Its body is a `u32` control code; the only one is
//! [`CONTROL_STATS`], whose answer is the server's statistics (below), given only to a
//! client of the server's own effective user — any other gets [`STATUS_FAILED`] with a
//! message. An unknown code gets [`STATUS_FAILED`] too.
//!
//! The statistics answer (all words `u64` but the header's, native byte order):
//!
//! ```text
//! +0   magic              STATS_MAGIC, "RBS1"
//! +4   server fields S    how many u64 server fields follow the header
//! +8   connections C      how many connection records follow them
//! +12  record fields F    how many u64 fields each connection record has
//! +16  S server fields    in the order of STATS_SERVER_FIELDS
//!      C records          F fields each, in the order of STATS_CONNECTION_FIELDS
//! ```
//!
//! A reader takes the fields it knows by position and skips the rest (a later server may
//! append fields; it never reorders them). A field a server cannot know is
//! [`STATS_UNKNOWN`]. The records stop where the response frame cap would be passed;
//! the server field `connections` says how many there are in all.

/// First bytes of a client's hello.
pub const CLIENT_HELLO_MAGIC: [u8; 4] = *b"RBH2";
/// Length of a client's hello in bytes.
pub const CLIENT_HELLO_LEN: usize = 16;
/// Offset of the client's pid in its hello (`u32`).
pub const CLIENT_HELLO_PID_OFF: usize = 4;
/// Offset of the flags in a client's hello (`u32`).
pub const CLIENT_HELLO_FLAGS_OFF: usize = 8;
/// Client hello flag: a pidfd of the client process comes with it.
pub const CLIENT_HELLO_PIDFD: u32 = 1;
/// First bytes of the server's greeting. The digit is the handshake's version: versions 1
/// (no hellos, no pidfds), 2 (no socket transport, no frame limits), 3 (no readiness
/// socket: a fifth descriptor would be cut off by a version-3 client's receive) and 4 (no
/// control requests: a version-4 server gives one to its handler) are not spoken any more.
pub const HELLO_MAGIC: [u8; 4] = *b"RBC5";
/// Length of the greeting in bytes.
pub const HELLO_LEN: usize = 32;
/// Greeting verdict: admitted; the rings follow.
pub const HELLO_OK: u32 = 0;
/// Greeting verdict: refused, the server is at its client limit.
pub const HELLO_FULL: u32 = 1;
/// Greeting verdict: refused, the client's user is not admitted.
pub const HELLO_UID: u32 = 2;
/// Greeting verdict: refused, the client's user or process holds as many connections as the
/// server allows one.
pub const HELLO_LIMIT: u32 = 3;
/// Greeting verdict: refused, the server has no file descriptors or memory for another
/// connection.
pub const HELLO_RESOURCES: u32 = 4;
/// Offset of the verdict in the greeting (`u32`).
pub const HELLO_VERDICT_OFF: usize = 4;
/// Offset of the connection's slot in the greeting (`u32`).
pub const HELLO_SLOT_OFF: usize = 8;
/// Offset of the server's pid in the greeting (`u32`).
pub const HELLO_PID_OFF: usize = 12;
/// Offset of the in-flight limit in the greeting (`u32`).
pub const HELLO_IN_FLIGHT_OFF: usize = 16;
/// Offset of the flags in the greeting (`u32`).
pub const HELLO_FLAGS_OFF: usize = 20;
/// Greeting flag: a pidfd of the serving process comes with the greeting (after the rings,
/// if any).
pub const HELLO_FLAG_PIDFD: u32 = 1;
/// Greeting flag: the connection carries its frames on the socket itself (the socket
/// transport); no ring descriptors come.
pub const HELLO_FLAG_SOCKET: u32 = 2;
/// Greeting flag: the client's end of the connection's readiness socket comes with the
/// greeting (after the rings, before the pidfd); the server rings it when it answers the
/// client's async waits.
pub const HELLO_FLAG_READINESS: u32 = 4;
/// Greeting flag: the ringers' end of the client's pair in the server's readiness set comes
/// with the greeting
/// (after the client's readiness, before the pidfd); the client rings it when it answers the
/// server's async waits (a server that waits on sockets and rings at once).
pub const HELLO_FLAG_SERVER_READINESS: u32 = 8;
/// Offset of the largest request body in the greeting (`u32`).
pub const HELLO_MAX_REQUEST_OFF: usize = 24;
/// Offset of the largest response body in the greeting (`u32`).
pub const HELLO_MAX_RESPONSE_OFF: usize = 28;
/// Bytes of a frame header on the socket transport: body length and tag, `u32` each.
pub const SOCKET_FRAME_HEADER: usize = 8;
/// Descriptors a greeting with [`HELLO_OK`] carries: bell region, request ring, response ring
/// (and the server's pidfd, with [`HELLO_FLAG_PIDFD`]).
pub const HELLO_FDS: usize = 3;

/// Request tag flag: a control request, answered by the server and never given to its
/// handler (handshake version 5 and later).
pub const REQUEST_CONTROL: u32 = 1 << 31;
/// Control code (a control request's body, `u32`): the server's statistics.
pub const CONTROL_STATS: u32 = 1;
/// First bytes of a statistics answer.
pub const STATS_MAGIC: [u8; 4] = *b"RBS1";
/// Bytes of a statistics answer's header.
pub const STATS_HEADER_LEN: usize = 16;
/// Offset of the server field count in a statistics answer (`u32`).
pub const STATS_SERVER_COUNT_OFF: usize = 4;
/// Offset of the connection record count in a statistics answer (`u32`).
pub const STATS_CONNECTION_COUNT_OFF: usize = 8;
/// Offset of the fields-per-record count in a statistics answer (`u32`).
pub const STATS_RECORD_FIELDS_OFF: usize = 12;
/// A statistics field the server cannot know.
pub const STATS_UNKNOWN: u64 = u64::MAX;
/// The server fields of a statistics answer, in order: the serving process and user, the
/// reactor's counters since it started, what is held now, and how the server's waits for
/// requests went (its doorbell's [`WaitStats`](crate::doorbell::WaitStats); unknown on the
/// socket transport).
pub const STATS_SERVER_FIELDS: [&str; 23] = [
    "pid",
    "uid",
    "requests",
    "inline",
    "dispatched",
    "busy",
    "sent",
    "panicked",
    "detached",
    "discarded",
    "pauses",
    "max_stash_bytes",
    "sleeps",
    "handovers",
    "key_waits",
    "in_flight",
    "stash_bytes",
    "connections",
    "wait_spins",
    "wait_yields",
    "wait_sleeps",
    "wait_futex_waits",
    "wait_wakes",
];
/// The fields of a statistics answer's connection record, in order. `transport` is 0 for
/// shared memory, 1 for the socket transport; `connected_ms` is the Unix time of the
/// connection in milliseconds; ring depths are bytes published and not yet consumed.
pub const STATS_CONNECTION_FIELDS: [&str; 14] = [
    "slot",
    "generation",
    "pid",
    "uid",
    "gid",
    "connected_ms",
    "transport",
    "request_used",
    "request_capacity",
    "response_used",
    "response_capacity",
    "in_flight",
    "stash_bytes",
    "paused",
];

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
