//! `ringbell inspect PATH` on a server's socket: the statistics of the channel server
//! listening there.
//!
//! # What it does
//!
//! Connects as an ordinary client ([`Client::connect`]) and asks for the server's statistics
//! ([`Client::server_stats`]), which the server's reactor answers itself, without running a
//! handler, and only to a client of the server's own user. It prints the server's counters
//! and one row per connection — this command's own connection among them, marked `*`.
//!
//! # What it guarantees
//!
//! An answer or an error within [`BOUND`]: connecting (at most 5 s for the greeting) and the
//! statistics call (at most [`STATS_TIMEOUT`]) run on a helper thread, and if even the
//! kernel's `connect(2)` blocks (a server that stopped accepting with a full backlog) the
//! command gives up and exits, leaving that thread behind.
//!
//! ```text
//! $ ringbell inspect /tmp/echo.sock
//! server       /tmp/echo.sock
//! pid          17826
//! uid          1000
//! requests     3
//! inline       3
//! dispatched   0
//! busy         0
//! sent         4
//! panicked     0
//! detached     1
//! discarded    0
//! pauses       0
//! max stash    0 bytes
//! sleeps       7
//! handovers    0
//! key waits    0
//! in flight    0
//! stash        0 bytes
//! connections  2
//! waits        1212 spins, 0 yields, 7 sleeps (7 futex waits); 2 wakes rung
//!
//!   slot  gen     pid    uid  transport  connected (UTC)          request ring   response ring  in flight  stash  paused
//!      0    1   17826   1000  shm        2026-12-01 05:38:24.413  0/65536        0/65536                0      0  no
//! *    1    3   17834   1000  shm        2026-12-01 05:38:24.523  0/65536        0/65536                0      0  no
//! (* this command's own connection)
//! ```
//!
//! `--json` gives the same as one object: the counters as fields (the server's waits as
//! `wait_spins` … `wait_wakes`, `null` without a doorbell), and `connections` as an
//! array of flat objects (`slot`, `generation`, `pid`, `uid`, `gid`, `connected_ms`,
//! `connected_utc`, `transport`, `request_used`, `request_capacity`, `response_used`,
//! `response_capacity`, `in_flight`, `stash_bytes`, `paused`, `this_command`); what the
//! server does not know is `null`.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ringbell::channel::{Client, ConnectionStats, RingDepth, ServerStats, TransportKind};

use crate::{Failure, fail, json};

/// How long the statistics call may take once connected.
pub const STATS_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the whole command may take: the client's 5 s connect timeout, the statistics
/// call's, and a margin.
pub const BOUND: Duration = Duration::from_secs(12);

/// What the server said, and which connection was this command's.
struct Answer {
    /// The server's answer.
    stats: ServerStats,
    /// This command's connection slot.
    own_slot: u32,
}

/// `ringbell inspect PATH` for a socket: connects, asks, renders.
///
/// # Errors
///
/// A [`Failure`] if nobody serves at `path`, the handshake or the call fails or times out,
/// the server refuses (another user), or no answer comes within [`BOUND`].
pub fn run(path: &Path, json: bool) -> Result<String, Failure> {
    let answer = ask(path)?;
    Ok(if json {
        render_json(path, &answer)
    } else {
        render_text(path, &answer)
    })
}

/// Connects and asks on a helper thread; gives up after [`BOUND`].
fn ask(path: &Path) -> Result<Answer, Failure> {
    let (tx, rx) = mpsc::channel();
    let owned: PathBuf = path.to_owned();
    std::thread::Builder::new()
        .name("stats".into())
        .spawn(move || {
            let shown = owned.display();
            let answer = Client::connect(&owned)
                .map_err(|e| fail!("cannot connect to {shown}: {e}"))
                .and_then(|mut client| {
                    let stats = client
                        .server_stats(STATS_TIMEOUT)
                        .map_err(|e| fail!("{shown}: {e}"))?;
                    Ok(Answer {
                        stats,
                        own_slot: client.slot(),
                    })
                });
            // The receiver may have given up: nothing to do then.
            let _ = tx.send(answer);
        })
        .map_err(|e| fail!("cannot start a thread: {e}"))?;
    rx.recv_timeout(BOUND).unwrap_or_else(|_| {
        Err(fail!(
            "no answer from the server at {} within {BOUND:?}",
            path.display()
        ))
    })
}

/// The transport's name, as `AnyServer`'s settings spell it.
fn transport_name(t: Option<TransportKind>) -> &'static str {
    match t {
        Some(TransportKind::SharedMemory) => "shm",
        Some(TransportKind::Socket) => "socket",
        None => "unknown",
    }
}

/// Milliseconds since the Unix epoch, if `t` is after it.
fn unix_ms(t: Option<SystemTime>) -> Option<u64> {
    let since = t?.duration_since(UNIX_EPOCH).ok()?;
    u64::try_from(since.as_millis()).ok()
}

/// `YYYY-MM-DD hh:mm:ss.mmm` in UTC for milliseconds since the Unix epoch.
fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_date(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:03}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        ms % 1000
    )
}

/// The proleptic Gregorian date `days` days after 1970-01-01, by whole 400-year eras (each
/// 146 097 days) counted from 0000-03-01, so that the leap day ends a year.
fn civil_date(days: u64) -> (u64, u64, u64) {
    // Days since 0000-03-01.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    // Years into the era: a year is 365 days, less the leap days (every 4th year, not every
    // 100th, every 400th) counted so far.
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    // Months from March, of 153 days every five (31, 30, 31, 30, 31).
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year, month, day)
}

/// `used/capacity`, or `-` for a connection without that ring.
fn depth_text(d: Option<RingDepth>) -> String {
    d.map_or_else(|| "-".to_owned(), |d| format!("{}/{}", d.used, d.capacity))
}

/// Whether `c` is this command's own connection.
fn is_own(c: &ConnectionStats, a: &Answer) -> bool {
    c.conn.slot == a.own_slot as usize && c.pid == std::process::id()
}

/// The server's counters as a two-column table, then one row per connection.
fn render_text(path: &Path, a: &Answer) -> String {
    let s = &a.stats;
    let mut out = String::new();
    let rows: [(&str, String); 20] = [
        ("server", path.display().to_string()),
        ("pid", s.pid.to_string()),
        ("uid", s.uid.to_string()),
        ("requests", s.requests.to_string()),
        ("inline", s.inline.to_string()),
        ("dispatched", s.dispatched.to_string()),
        ("busy", s.busy.to_string()),
        ("sent", s.sent.to_string()),
        ("panicked", s.panicked.to_string()),
        ("detached", s.detached.to_string()),
        ("discarded", s.discarded.to_string()),
        ("pauses", s.pauses.to_string()),
        ("max stash", format!("{} bytes", s.max_stash_bytes)),
        ("sleeps", s.sleeps.to_string()),
        ("handovers", s.handovers.to_string()),
        ("key waits", s.key_waits.to_string()),
        ("in flight", s.in_flight.to_string()),
        ("stash", format!("{} bytes", s.stash_bytes)),
        ("connections", connections_text(s)),
        ("waits", waits_text(s)),
    ];
    for (name, value) in rows {
        out.push_str(&format!("{name:<12} {value}\n"));
    }
    out.push('\n');
    out.push_str(&format!(
        "  {:>4} {:>4} {:>7} {:>6}  {:<9}  {:<23}  {:<13}  {:<13}  {:>9} {:>6}  paused\n",
        "slot",
        "gen",
        "pid",
        "uid",
        "transport",
        "connected (UTC)",
        "request ring",
        "response ring",
        "in flight",
        "stash"
    ));
    for c in &s.connections {
        let connected = unix_ms(c.connected).map_or_else(|| "unknown".to_owned(), utc);
        out.push_str(&format!(
            "{} {:>4} {:>4} {:>7} {:>6}  {:<9}  {:<23}  {:<13}  {:<13}  {:>9} {:>6}  {}\n",
            if is_own(c, a) { "*" } else { " " },
            c.conn.slot,
            c.conn.generation,
            c.pid,
            c.uid,
            transport_name(c.transport),
            connected,
            depth_text(c.request_ring),
            depth_text(c.response_ring),
            c.in_flight,
            c.stash_bytes,
            if c.paused { "yes" } else { "no" },
        ));
    }
    out.push_str("(* this command's own connection)\n");
    out
}

/// How the server's waits for requests went, or that its transport has no doorbell.
fn waits_text(s: &ServerStats) -> String {
    match s.wait {
        Some(w) => format!(
            "{} spins, {} yields, {} sleeps ({} futex waits); {} wakes rung",
            w.spins, w.yields, w.sleeps, w.futex_waits, w.wakes
        ),
        None => "unknown (no doorbell: the socket transport)".to_owned(),
    }
}

/// How many connections there are, and how many the answer lists if fewer.
fn connections_text(s: &ServerStats) -> String {
    let listed = s.connections.len() as u64;
    if listed == s.total_connections {
        listed.to_string()
    } else {
        format!(
            "{} ({listed} listed: the answer stops at the response frame cap)",
            s.total_connections
        )
    }
}

/// The statistics as one JSON object: the counters, and `connections` as an array of flat
/// objects.
fn render_json(path: &Path, a: &Answer) -> String {
    let s = &a.stats;
    let mut o = json::Object::new();
    o.str("server", &path.display().to_string())
        .uint("pid", u64::from(s.pid))
        .uint("uid", u64::from(s.uid))
        .uint("requests", s.requests)
        .uint("inline", s.inline)
        .uint("dispatched", s.dispatched)
        .uint("busy", s.busy)
        .uint("sent", s.sent)
        .uint("panicked", s.panicked)
        .uint("detached", s.detached)
        .uint("discarded", s.discarded)
        .uint("pauses", s.pauses)
        .uint("max_stash_bytes", s.max_stash_bytes)
        .uint("sleeps", s.sleeps)
        .uint("handovers", s.handovers)
        .uint("key_waits", s.key_waits)
        .uint("in_flight", s.in_flight)
        .uint("stash_bytes", s.stash_bytes)
        .uint("total_connections", s.total_connections)
        .opt_uint("wait_spins", s.wait.map(|w| w.spins))
        .opt_uint("wait_yields", s.wait.map(|w| w.yields))
        .opt_uint("wait_sleeps", s.wait.map(|w| w.sleeps))
        .opt_uint("wait_futex_waits", s.wait.map(|w| w.futex_waits))
        .opt_uint("wait_wakes", s.wait.map(|w| w.wakes));
    let rows = s
        .connections
        .iter()
        .map(|c| {
            let mut r = json::Object::new();
            let ms = unix_ms(c.connected);
            r.uint("slot", c.conn.slot as u64)
                .uint("generation", c.conn.generation)
                .uint("pid", u64::from(c.pid))
                .uint("uid", u64::from(c.uid))
                .uint("gid", u64::from(c.gid))
                .opt_uint("connected_ms", ms)
                .opt_str("connected_utc", ms.map(utc).as_deref())
                .opt_str("transport", c.transport.map(|t| transport_name(Some(t))))
                .opt_uint("request_used", c.request_ring.map(|d| d.used))
                .opt_uint("request_capacity", c.request_ring.map(|d| d.capacity))
                .opt_uint("response_used", c.response_ring.map(|d| d.used))
                .opt_uint("response_capacity", c.response_ring.map(|d| d.capacity))
                .uint("in_flight", c.in_flight)
                .uint("stash_bytes", c.stash_bytes)
                .bool("paused", c.paused)
                .bool("this_command", is_own(c, a));
            r
        })
        .collect();
    o.objects("connections", rows);
    let mut text = o.finish();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_in_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00:00.000");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00.000");
        assert_eq!(utc(951_868_799_999), "2000-02-29 23:59:59.999");
        assert_eq!(utc(1_709_251_199_000), "2024-02-29 23:59:59.000");
        assert_eq!(utc(4_102_444_800_123), "2100-01-01 00:00:00.123");
        assert_eq!(utc(1_777_636_801_250), "2026-05-01 12:00:01.250");
    }
}
