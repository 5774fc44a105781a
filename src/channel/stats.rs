//! A running server's statistics, as a control request ([`CONTROL_STATS`]) returns them:
//! the serving process, the reactor's counters and, for each connection, who it is, how
//! deep its rings are and what the reactor holds for it.
//!
//! The answer's bytes are specified in [`wire`](crate::wire) ("channel") and `docs/wire.md`:
//! a 16-byte header that counts the fields, then `u64` fields by position, so that a reader
//! skips fields a newer server appends.

use std::string::String;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use std::vec::Vec;
use std::{error, fmt};

use super::config::TransportKind;
use super::error::CallError;
use super::message::ConnId;
use crate::doorbell::WaitStats;
use crate::wire::{
    CONTROL_STATS, STATS_CONNECTION_COUNT_OFF, STATS_CONNECTION_FIELDS, STATS_HEADER_LEN,
    STATS_MAGIC, STATS_RECORD_FIELDS_OFF, STATS_SERVER_COUNT_OFF, STATS_SERVER_FIELDS,
    STATS_UNKNOWN,
};

/// How much of a ring is published and not yet consumed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingDepth {
    /// Bytes published and not consumed (records, headers and padding included).
    pub used: u64,
    /// The ring's data area in bytes.
    pub capacity: u64,
}

/// One connection of a server, as its statistics show it.
///
/// What the transport cannot know is `None` (a socket connection has no rings); what the
/// reactor holds (`in_flight`, `stash_bytes`, `paused`) is filled in by the reactor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionStats {
    /// The connection.
    pub conn: ConnId,
    /// The client process, as the kernel gave it at connect (`SO_PEERCRED`).
    pub pid: u32,
    /// The client's user.
    pub uid: u32,
    /// The client's group.
    pub gid: u32,
    /// When the server accepted it.
    pub connected: Option<SystemTime>,
    /// Which transport carries its frames.
    pub transport: Option<TransportKind>,
    /// Its request ring (the client produces), on shared memory.
    pub request_ring: Option<RingDepth>,
    /// Its response ring (the server produces), on shared memory.
    pub response_ring: Option<RingDepth>,
    /// Its requests taken by the reactor and not yet answered.
    pub in_flight: u64,
    /// Bytes of answers the reactor holds for it, waiting for their turn or for room.
    pub stash_bytes: u64,
    /// Whether the reactor stopped taking its requests (its stash is full).
    pub paused: bool,
}

impl ConnectionStats {
    /// A connection's statistics with only its identity known.
    pub fn new(conn: ConnId, pid: u32, uid: u32, gid: u32) -> Self {
        Self {
            conn,
            pid,
            uid,
            gid,
            connected: None,
            transport: None,
            request_ring: None,
            response_ring: None,
            in_flight: 0,
            stash_bytes: 0,
            paused: false,
        }
    }
}

/// A server's statistics: [`Client::server_stats`](super::Client::server_stats) asks a
/// running server for them.
///
/// The counters are the reactor's since it started (see
/// [`ReactorStats`](crate::reactor::ReactorStats) for each); `in_flight`, `stash_bytes` and
/// the connections are what it holds now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerStats {
    /// The serving process.
    pub pid: u32,
    /// Its effective user.
    pub uid: u32,
    /// Requests taken from the rings.
    pub requests: u64,
    /// Requests run inline on the reactor's thread.
    pub inline: u64,
    /// Requests handed to the executor.
    pub dispatched: u64,
    /// Requests answered `Busy`.
    pub busy: u64,
    /// Responses sent.
    pub sent: u64,
    /// Handlers that panicked.
    pub panicked: u64,
    /// Connections detached.
    pub detached: u64,
    /// Answers discarded (their connection was gone).
    pub discarded: u64,
    /// Times a connection was paused.
    pub pauses: u64,
    /// The most bytes one connection's stash held.
    pub max_stash_bytes: u64,
    /// Times the reactor slept.
    pub sleeps: u64,
    /// Times the loop was handed to another thread while a handler ran long.
    pub handovers: u64,
    /// Requests that waited for their key.
    pub key_waits: u64,
    /// Requests taken and not yet answered, over all connections.
    pub in_flight: u64,
    /// Bytes of answers held in stashes, over all connections.
    pub stash_bytes: u64,
    /// Connections attached (there may be more than `connections` lists: the answer stops
    /// at the response frame cap).
    pub total_connections: u64,
    /// How the server's waits for requests went: spins, yields, sleeps, futex waits, and
    /// the wakes it rang; `None` if its transport has no doorbell (the socket transport).
    pub wait: Option<WaitStats>,
    /// The connections, by slot.
    pub connections: Vec<ConnectionStats>,
}

/// Why [`Client::server_stats`](super::Client::server_stats) failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum StatsError {
    /// The call itself failed: the server is gone, the deadline passed, …
    Call(CallError),
    /// The server refused; its message says why (statistics are only for the server's own
    /// user).
    Refused(String),
    /// The answer is not a statistics answer of this version.
    Malformed(&'static str),
}

impl fmt::Display for StatsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Call(e) => write!(f, "statistics request failed: {e}"),
            Self::Refused(why) => write!(f, "the server refused its statistics: {why}"),
            Self::Malformed(what) => write!(f, "malformed statistics answer: {what}"),
        }
    }
}

impl error::Error for StatsError {
    fn source(&self) -> Option<&(dyn error::Error + 'static)> {
        match self {
            Self::Call(e) => Some(e),
            _ => None,
        }
    }
}

impl From<CallError> for StatsError {
    fn from(e: CallError) -> Self {
        Self::Call(e)
    }
}

/// What a control request asks, from its body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Control {
    Stats,
    Unknown,
}

impl Control {
    pub(crate) fn parse(body: &[u8]) -> Self {
        match <[u8; 4]>::try_from(body).map(u32::from_ne_bytes) {
            Ok(CONTROL_STATS) => Self::Stats,
            _ => Self::Unknown,
        }
    }
}

/// The body of a statistics request.
#[cfg_attr(loom, allow(dead_code))] // the loom build has no client
pub(crate) fn stats_request() -> [u8; 4] {
    CONTROL_STATS.to_ne_bytes()
}

fn time_ms(t: Option<SystemTime>) -> u64 {
    t.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(STATS_UNKNOWN, |d| {
            u64::try_from(d.as_millis()).unwrap_or(STATS_UNKNOWN)
        })
}

fn depth_words(d: Option<RingDepth>) -> [u64; 2] {
    d.map_or([STATS_UNKNOWN; 2], |d| [d.used, d.capacity])
}

impl ServerStats {
    /// The shortest answer: its header and server fields (200 bytes). A server whose
    /// response cap is smaller answers a statistics request `Failed`.
    pub const MIN_LEN: usize = STATS_HEADER_LEN + 8 * STATS_SERVER_FIELDS.len();

    fn server_words(&self) -> [u64; STATS_SERVER_FIELDS.len()] {
        let w = self.wait.map_or([STATS_UNKNOWN; 5], |w| {
            [w.spins, w.yields, w.sleeps, w.futex_waits, w.wakes]
        });
        [
            self.pid.into(),
            self.uid.into(),
            self.requests,
            self.inline,
            self.dispatched,
            self.busy,
            self.sent,
            self.panicked,
            self.detached,
            self.discarded,
            self.pauses,
            self.max_stash_bytes,
            self.sleeps,
            self.handovers,
            self.key_waits,
            self.in_flight,
            self.stash_bytes,
            self.total_connections,
            w[0],
            w[1],
            w[2],
            w[3],
            w[4],
        ]
    }

    /// The answer's bytes, at most `max_len` of them: the connection records stop where the
    /// next would not fit (`total_connections` still counts them all).
    pub(crate) fn encode(&self, max_len: usize) -> Vec<u8> {
        let server = self.server_words();
        let record = STATS_CONNECTION_FIELDS.len() * 8;
        let head = STATS_HEADER_LEN + server.len() * 8;
        let fit = max_len.saturating_sub(head) / record;
        let listed = &self.connections[..self.connections.len().min(fit)];
        let mut out = Vec::with_capacity(head + listed.len() * record);
        out.extend_from_slice(&STATS_MAGIC);
        for n in [server.len(), listed.len(), STATS_CONNECTION_FIELDS.len()] {
            out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_ne_bytes());
        }
        for w in server {
            out.extend_from_slice(&w.to_ne_bytes());
        }
        for c in listed {
            let [req_used, req_cap] = depth_words(c.request_ring);
            let [res_used, res_cap] = depth_words(c.response_ring);
            let words: [u64; STATS_CONNECTION_FIELDS.len()] = [
                c.conn.slot as u64,
                c.conn.generation,
                c.pid.into(),
                c.uid.into(),
                c.gid.into(),
                time_ms(c.connected),
                match c.transport {
                    Some(TransportKind::SharedMemory) => 0,
                    Some(TransportKind::Socket) => 1,
                    None => STATS_UNKNOWN,
                },
                req_used,
                req_cap,
                res_used,
                res_cap,
                c.in_flight,
                c.stash_bytes,
                c.paused.into(),
            ];
            for w in words {
                out.extend_from_slice(&w.to_ne_bytes());
            }
        }
        out
    }

    /// Reads an answer: fields by position, extra fields skipped, missing ones an error.
    ///
    /// # Errors
    ///
    /// [`StatsError::Malformed`] if the bytes are not a statistics answer of this version.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::channel::ServerStats;
    ///
    /// assert!(ServerStats::decode(b"not statistics").is_err());
    /// ```
    pub fn decode(bytes: &[u8]) -> Result<Self, StatsError> {
        let u32_at = |at: usize| -> Result<usize, StatsError> {
            let b = bytes
                .get(at..at + 4)
                .ok_or(StatsError::Malformed("shorter than its header"))?;
            let w = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
            usize::try_from(w).map_err(|_| StatsError::Malformed("count out of range"))
        };
        if bytes.get(..4) != Some(&STATS_MAGIC[..]) {
            return Err(StatsError::Malformed("not a statistics answer"));
        }
        let s = u32_at(STATS_SERVER_COUNT_OFF)?;
        let c = u32_at(STATS_CONNECTION_COUNT_OFF)?;
        let f = u32_at(STATS_RECORD_FIELDS_OFF)?;
        if s < STATS_SERVER_FIELDS.len() || (c > 0 && f < STATS_CONNECTION_FIELDS.len()) {
            return Err(StatsError::Malformed("fewer fields than this version's"));
        }
        let words = bytes[STATS_HEADER_LEN..].chunks_exact(8);
        if !words.remainder().is_empty() {
            return Err(StatsError::Malformed("not a whole number of fields"));
        }
        let words: Vec<u64> = words
            .map(|w| u64::from_ne_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]))
            .collect();
        let want = c.checked_mul(f).and_then(|n| n.checked_add(s));
        if want != Some(words.len()) {
            return Err(StatsError::Malformed("length disagrees with its counts"));
        }
        let v = &words[..s];
        let id = |w: u64| u32::try_from(w).unwrap_or(u32::MAX);
        let mut connections = Vec::with_capacity(c);
        for r in words[s..].chunks_exact(f.max(1)).take(c) {
            let depth = |used: u64, capacity: u64| {
                (used != STATS_UNKNOWN && capacity != STATS_UNKNOWN)
                    .then_some(RingDepth { used, capacity })
            };
            connections.push(ConnectionStats {
                conn: ConnId {
                    slot: usize::try_from(r[0]).unwrap_or(usize::MAX),
                    generation: r[1],
                },
                pid: id(r[2]),
                uid: id(r[3]),
                gid: id(r[4]),
                connected: (r[5] != STATS_UNKNOWN)
                    .then(|| UNIX_EPOCH.checked_add(Duration::from_millis(r[5])))
                    .flatten(),
                transport: match r[6] {
                    0 => Some(TransportKind::SharedMemory),
                    1 => Some(TransportKind::Socket),
                    _ => None,
                },
                request_ring: depth(r[7], r[8]),
                response_ring: depth(r[9], r[10]),
                in_flight: r[11],
                stash_bytes: r[12],
                paused: r[13] != 0,
            });
        }
        Ok(Self {
            pid: id(v[0]),
            uid: id(v[1]),
            requests: v[2],
            inline: v[3],
            dispatched: v[4],
            busy: v[5],
            sent: v[6],
            panicked: v[7],
            detached: v[8],
            discarded: v[9],
            pauses: v[10],
            max_stash_bytes: v[11],
            sleeps: v[12],
            handovers: v[13],
            key_waits: v[14],
            in_flight: v[15],
            stash_bytes: v[16],
            total_connections: v[17],
            wait: (v[18..23] != [STATS_UNKNOWN; 5]).then(|| WaitStats {
                spins: v[18],
                yields: v[19],
                sleeps: v[20],
                futex_waits: v[21],
                wakes: v[22],
                ..WaitStats::default()
            }),
            connections,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(n: usize) -> ServerStats {
        let connections = (0..n)
            .map(|i| ConnectionStats {
                connected: Some(UNIX_EPOCH + Duration::from_millis(1_700_000_000_000 + i as u64)),
                transport: Some(if i % 2 == 0 {
                    TransportKind::SharedMemory
                } else {
                    TransportKind::Socket
                }),
                request_ring: (i % 2 == 0).then_some(RingDepth {
                    used: 16 * i as u64,
                    capacity: 65536,
                }),
                response_ring: None,
                in_flight: 3,
                stash_bytes: 7,
                paused: i == 1,
                ..ConnectionStats::new(
                    ConnId {
                        slot: i,
                        generation: 9,
                    },
                    100 + i as u32,
                    1000,
                    1001,
                )
            })
            .collect::<Vec<_>>();
        ServerStats {
            pid: 42,
            uid: 1000,
            requests: 1,
            inline: 2,
            dispatched: 3,
            busy: 4,
            sent: 5,
            panicked: 6,
            detached: 7,
            discarded: 8,
            pauses: 9,
            max_stash_bytes: 10,
            sleeps: 11,
            handovers: 12,
            key_waits: 13,
            in_flight: 14,
            stash_bytes: 15,
            total_connections: n as u64,
            wait: Some(WaitStats {
                spins: 16,
                yields: 17,
                sleeps: 18,
                futex_waits: 19,
                wakes: 20,
                ..WaitStats::default()
            }),
            connections,
        }
    }

    #[test]
    fn an_answer_round_trips_and_stops_at_the_cap() {
        let s = sample(5);
        assert_eq!(ServerStats::decode(&s.encode(usize::MAX)).unwrap(), s);
        let cap = STATS_HEADER_LEN + 8 * STATS_SERVER_FIELDS.len() + 2 * 8 * 14 + 5;
        let cut = ServerStats::decode(&s.encode(cap)).unwrap();
        assert_eq!(cut.connections, s.connections[..2]);
        assert_eq!(cut.total_connections, 5);
    }

    #[test]
    fn garbage_and_truncations_are_typed_errors() {
        let bytes = sample(3).encode(usize::MAX);
        for n in 0..bytes.len() {
            assert!(ServerStats::decode(&bytes[..n]).is_err(), "cut at {n}");
        }
        let mut lying = bytes.clone();
        lying[STATS_CONNECTION_COUNT_OFF..STATS_CONNECTION_COUNT_OFF + 4]
            .copy_from_slice(&u32::MAX.to_ne_bytes());
        assert!(ServerStats::decode(&lying).is_err());
        let mut few = bytes;
        few[STATS_RECORD_FIELDS_OFF..STATS_RECORD_FIELDS_OFF + 4]
            .copy_from_slice(&1u32.to_ne_bytes());
        assert!(ServerStats::decode(&few).is_err());
    }

    #[test]
    fn appended_fields_are_skipped() {
        let s = sample(2);
        let mut longer = Vec::new();
        longer.extend_from_slice(&STATS_MAGIC);
        let (ns, nf) = (
            STATS_SERVER_FIELDS.len() + 1,
            STATS_CONNECTION_FIELDS.len() + 2,
        );
        for n in [ns, 2, nf] {
            longer.extend_from_slice(&(n as u32).to_ne_bytes());
        }
        let plain = s.encode(usize::MAX);
        let server = &plain[STATS_HEADER_LEN..STATS_HEADER_LEN + 8 * (ns - 1)];
        longer.extend_from_slice(server);
        longer.extend_from_slice(&77u64.to_ne_bytes());
        for r in plain[STATS_HEADER_LEN + 8 * (ns - 1)..].chunks(8 * (nf - 2)) {
            longer.extend_from_slice(r);
            longer.extend_from_slice(&[0xee; 16]);
        }
        assert_eq!(ServerStats::decode(&longer).unwrap(), s);
    }
}
