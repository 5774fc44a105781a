//! `ringbell bench`: round trips and throughput between two processes over SPSC rings.
//!
//! # What it measures
//!
//! This process creates two SPSC rings, each in its own sealed memfd (`--ring` bytes, 64 KiB
//! by default): requests and responses. It starts a child — this same executable, as the
//! hidden subcommand `ringbell __bench-peer REQ RESP` — that inherits duplicates of the two
//! memfds (duplicates without `FD_CLOEXEC`, made just for the spawn) and opens them. Then,
//! each phase `--seconds` long (1 s by default), with frames of `--size` bytes (64 by
//! default), one frame per call:
//!
//! 1. **Round trip**: send a frame, wait for the child's echo; p50, p99, minimum and maximum
//!    from a [histogram](crate::histogram) of 1.6 % resolution. Every echo is checked (its
//!    tag, length and round number) outside the timed interval. The first
//!    [`WARM_UP_ROUNDS`] are not timed.
//! 2. **Throughput**: send frames back to back, then ask the child how many it received; the
//!    count must match. Frames/s and MB/s (10⁶ bytes) over the whole phase, the final
//!    count's round trip included.
//!
//! Both sides use the blocking calls with default wait settings (a short spin, then a sleep
//! on the ring's futex doorbell), the way an application would.
//!
//! # What it guarantees
//!
//! No hang: every call has a deadline ([`CALL_TIMEOUT`]), and a blocked call sees a dead
//! peer's process between sleep slices (50 ms), so a child that dies or is killed ends the
//! bench with an error naming its exit status (and the child's own error line, if it wrote
//! one). The child is killed and reaped if the bench fails, and waited for at most
//! [`EXIT_TIMEOUT`] if it succeeds. A parent that dies leaves the child to see it the same way
//! and exit.

use std::fs::OpenOptions;
use std::io::Read as _;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use ringbell::region::{Region, Spsc};
use ringbell::spsc::{self, Consumer, Producer};

use crate::args::BenchArgs;
use crate::histogram::Histogram;
use crate::{Failure, fail, json};

/// The longest any one send or receive may wait, on either side.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the bench waits for its child to exit after asking it to.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(5);

/// Round trips made before timing starts.
const WARM_UP_ROUNDS: u64 = 1000;

/// Frames sent between two looks at the clock in the throughput phase.
const STREAM_BATCH: u64 = 256;

/// Tag of a frame the child echoes.
const TAG_PING: u32 = 1;
/// Tag of a frame the child only counts.
const TAG_STREAM: u32 = 2;
/// Tag asking the child for its count (frames and bytes since the last count, 16 bytes LE).
const TAG_COUNT: u32 = 3;
/// Tag asking the child to exit.
const TAG_STOP: u32 = 4;
/// Bytes of the child's answer to [`TAG_COUNT`].
const COUNT_LEN: usize = 16;

/// For tests only: if set to a number `N` in the child's environment, the child exits
/// abruptly (without closing its rings) after receiving `N` frames, as a crash would.
pub const PEER_EXIT_AFTER_ENV: &str = "RINGBELL_BENCH_PEER_EXIT_AFTER";

/// What the two phases measured.
#[derive(Clone, Debug)]
pub struct Results {
    /// This process.
    pub parent_pid: u32,
    /// The child.
    pub peer_pid: u32,
    /// Data-area bytes of each ring.
    pub ring: usize,
    /// Payload bytes of every frame.
    pub size: usize,
    /// Round trips timed.
    pub round_trips: u64,
    /// Seconds from the first timed round trip's start to the last one's end.
    pub round_trip_seconds: f64,
    /// Round-trip times, nanoseconds.
    pub rtt: Histogram,
    /// Frames the child received in the throughput phase.
    pub frames: u64,
    /// Seconds of the throughput phase.
    pub stream_seconds: f64,
}

impl Results {
    /// Frames per second in the throughput phase.
    pub fn frames_per_second(&self) -> f64 {
        self.frames as f64 / self.stream_seconds
    }

    /// Megabytes (10⁶ bytes) of payload per second in the throughput phase.
    pub fn megabytes_per_second(&self) -> f64 {
        self.frames_per_second() * self.size as f64 / 1e6
    }
}

/// `ringbell bench`: runs both phases against a child process and renders the results.
///
/// # Errors
///
/// A [`Failure`] if the rings cannot be made (a ring size that is not a power of two, a
/// frame above the ring's frame cap), the child cannot be started, a call times out, an echo
/// or count is wrong, or the child dies or fails.
pub fn run(opts: &BenchArgs) -> Result<String, Failure> {
    let results = measure(opts)?;
    Ok(if opts.json {
        render_json(&results)
    } else {
        render_text(&results)
    })
}

/// Sets up the rings and the child, runs the phases, and stops the child.
fn measure(opts: &BenchArgs) -> Result<Results, Failure> {
    let cfg = spsc::Config::new(opts.ring);
    let create = || {
        Region::<Spsc>::create(&cfg)
            .map_err(|e| fail!("cannot create a {}-byte ring: {e}", opts.ring))
    };
    let (requests, responses) = (create()?, create()?);
    let mut tx = requests
        .producer()
        .map_err(|e| fail!("cannot attach the request ring: {e}"))?;
    let mut rx = responses
        .consumer()
        .map_err(|e| fail!("cannot attach the response ring: {e}"))?;
    if tx.max_frame() < COUNT_LEN {
        return Err(fail!(
            "a {}-byte ring is too small for the bench: its frame cap is {} bytes",
            opts.ring,
            tx.max_frame()
        ));
    }
    if opts.size > tx.max_frame() {
        return Err(fail!(
            "a {}-byte frame is above the frame cap of a {}-byte ring ({} bytes)",
            opts.size,
            opts.ring,
            tx.max_frame()
        ));
    }
    let mut peer = Peer::spawn(&requests, &responses)?;
    let phases = Phases {
        tx: &mut tx,
        rx: &mut rx,
        buf: vec![0; opts.size.max(COUNT_LEN)],
        payload: vec![0xA5; opts.size],
        duration: Duration::from_secs_f64(opts.seconds),
    };
    match phases.run_both() {
        Ok((rtt, round_trip_seconds, frames, stream_seconds)) => {
            peer.stop(&mut tx)?;
            Ok(Results {
                parent_pid: std::process::id(),
                peer_pid: peer.child.id(),
                ring: opts.ring,
                size: opts.size,
                round_trips: rtt.count(),
                round_trip_seconds,
                rtt,
                frames,
                stream_seconds,
            })
        }
        Err(e) => Err(peer.explain(e)),
    }
}

/// What went wrong in a phase, before the child's fate is known.
struct PhaseError(String);

/// The parent's ends and buffers for the two phases.
struct Phases<'a> {
    /// The request ring's producer.
    tx: &'a mut Producer<Region<Spsc>>,
    /// The response ring's consumer.
    rx: &'a mut Consumer<Region<Spsc>>,
    /// Receives echoes and counts: at least the frame size and 16 bytes.
    buf: Vec<u8>,
    /// The frame sent; its first 8 bytes carry the round number.
    payload: Vec<u8>,
    /// How long each phase runs.
    duration: Duration,
}

impl Phases<'_> {
    /// Round trips, then throughput: (round trips, their total seconds, frames, seconds).
    fn run_both(mut self) -> Result<(Histogram, f64, u64, f64), PhaseError> {
        let (rtt, rtt_seconds) = self.round_trips()?;
        let (frames, stream_seconds) = self.stream()?;
        Ok((rtt, rtt_seconds, frames, stream_seconds))
    }

    /// Sends the payload with `tag`, waiting at most [`CALL_TIMEOUT`]; `what` names it in
    /// an error.
    fn send(&mut self, tag: u32, what: &str) -> Result<(), PhaseError> {
        self.tx
            .send_timeout(tag, &self.payload, CALL_TIMEOUT)
            .map_err(|e| PhaseError(format!("sending {what}: {e}")))
    }

    /// Receives the next frame into `buf`, waiting at most [`CALL_TIMEOUT`].
    fn recv(&mut self, what: &str) -> Result<(u32, usize), PhaseError> {
        self.rx
            .recv_into_timeout(&mut self.buf, CALL_TIMEOUT)
            .map_err(|e| PhaseError(format!("receiving {what}: {e}")))
    }

    /// Marks the payload with round `n` (in as many of its first 8 bytes as it has).
    fn mark(&mut self, n: u64) {
        let k = self.payload.len().min(8);
        self.payload[..k].copy_from_slice(&n.to_le_bytes()[..k]);
    }

    /// Phase 1: [`WARM_UP_ROUNDS`] untimed round trips, then timed ones for `duration`;
    /// their histogram and the timed part's seconds.
    fn round_trips(&mut self) -> Result<(Histogram, f64), PhaseError> {
        let mut hist = Histogram::new();
        let mut started = None;
        let mut seconds = 0.0;
        for round in 0u64.. {
            self.mark(round);
            let t0 = Instant::now();
            self.send(TAG_PING, "a round trip's frame")?;
            let (tag, len) = self.recv("a round trip's echo")?;
            let t1 = Instant::now();
            if tag != TAG_PING || self.buf[..len] != self.payload[..] {
                return Err(PhaseError(format!(
                    "round {round}: the echo (tag {tag}, {len} bytes) is not the frame sent"
                )));
            }
            if round < WARM_UP_ROUNDS {
                continue;
            }
            let start = *started.get_or_insert(t0);
            hist.record(u64::try_from((t1 - t0).as_nanos()).unwrap_or(u64::MAX));
            if t1 - start >= self.duration {
                seconds = (t1 - start).as_secs_f64();
                break;
            }
        }
        Ok((hist, seconds))
    }

    /// Phase 2: frames back to back for `duration`, then the child's count, which must
    /// match; the frames and the seconds until the count arrived.
    fn stream(&mut self) -> Result<(u64, f64), PhaseError> {
        self.payload.fill(0x5A);
        let start = Instant::now();
        let mut sent = 0u64;
        while start.elapsed() < self.duration {
            for _ in 0..STREAM_BATCH {
                self.send(TAG_STREAM, "a stream frame")?;
            }
            sent += STREAM_BATCH;
        }
        self.tx
            .send_timeout(TAG_COUNT, &[], CALL_TIMEOUT)
            .map_err(|e| PhaseError(format!("asking for the count: {e}")))?;
        let (tag, len) = self.recv("the count")?;
        let seconds = start.elapsed().as_secs_f64();
        let count = (tag == TAG_COUNT && len == COUNT_LEN).then(|| {
            let word = |at: usize| {
                let mut b = [0u8; 8];
                b.copy_from_slice(&self.buf[at..at + 8]);
                u64::from_le_bytes(b)
            };
            (word(0), word(8))
        });
        let bytes = sent * self.payload.len() as u64;
        match count {
            Some((frames, got)) if frames == sent && got == bytes => Ok((sent, seconds)),
            Some((frames, got)) => Err(PhaseError(format!(
                "the child counted {frames} frames and {got} bytes, {sent} and {bytes} were sent"
            ))),
            None => Err(PhaseError(format!(
                "the count came back as tag {tag} with {len} bytes"
            ))),
        }
    }
}

/// The child process, killed and reaped on drop unless it was stopped.
struct Peer {
    /// The child process.
    child: Child,
    /// Whether it was waited for (then there is nothing to kill).
    reaped: bool,
}

impl Peer {
    /// Starts `ringbell __bench-peer REQ RESP` with duplicates of the two memfds inherited.
    fn spawn(requests: &Region<Spsc>, responses: &Region<Spsc>) -> Result<Self, Failure> {
        // Copies numbered 3 or above (so that the child's standard streams, set up before the
        // exec, cannot land on them), with FD_CLOEXEC cleared: exactly these two are
        // inherited. No other thread spawns meanwhile (this command has one thread), and
        // both copies are closed right after the spawn.
        let pass = |fd| inheritable_copy(fd).map_err(|e| fail!("cannot pass a memfd: {e}"));
        let inherited: [OwnedFd; 2] = [pass(requests.fd())?, pass(responses.fd())?];
        let exe = std::env::current_exe()
            .map_err(|e| fail!("cannot find this executable to start the peer: {e}"))?;
        let child = Command::new(exe)
            .arg("__bench-peer")
            .args(inherited.iter().map(|fd| fd.as_raw_fd().to_string()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            // Its error line, if any, is read once it has exited and joins the parent's.
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| fail!("cannot start the peer process: {e}"))?;
        drop(inherited);
        Ok(Self {
            child,
            reaped: false,
        })
    }

    /// Asks the child to exit and waits for it, at most [`EXIT_TIMEOUT`].
    fn stop(&mut self, tx: &mut Producer<Region<Spsc>>) -> Result<(), Failure> {
        let pid = self.child.id();
        tx.send_timeout(TAG_STOP, &[], CALL_TIMEOUT)
            .map_err(|e| fail!("cannot stop the peer (pid {pid}): {e}"))?;
        match self.wait(EXIT_TIMEOUT) {
            Some(status) if status.success() => Ok(()),
            Some(status) => Err(fail!(
                "the peer (pid {pid}) failed: {status}{}",
                self.said()
            )),
            None => Err(fail!(
                "the peer (pid {pid}) did not exit within {EXIT_TIMEOUT:?} of being asked to"
            )),
        }
    }

    /// The failure for a phase that went wrong, with the child's exit status if it ended
    /// (it is given a moment to, since a dead peer is the usual cause).
    fn explain(&mut self, e: PhaseError) -> Failure {
        let pid = self.child.id();
        match self.wait(Duration::from_millis(500)) {
            Some(status) => fail!(
                "{}; the peer (pid {pid}) ended: {status}{}",
                e.0,
                self.said()
            ),
            None => fail!(
                "{}; the peer (pid {pid}) was still running, and is killed",
                e.0
            ),
        }
    }

    /// What the child wrote on stderr, as `"; it said: …"`, or nothing. Only called once
    /// it has exited, so the read ends at once.
    fn said(&mut self) -> String {
        let mut text = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            let _ = pipe.read_to_string(&mut text);
        }
        let text = text.trim().trim_start_matches("ringbell: ");
        if text.is_empty() {
            String::new()
        } else {
            format!("; it said: {}", text.replace('\n', " "))
        }
    }

    /// Waits up to `bound` for the child to exit; its status, if it did.
    fn wait(&mut self, bound: Duration) -> Option<ExitStatus> {
        let until = Instant::now() + bound;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    self.reaped = true;
                    return Some(status);
                }
                Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(5)),
                Ok(None) | Err(_) => return None,
            }
        }
    }
}

/// A copy of `fd` numbered 3 or above, without `FD_CLOEXEC` (`fcntl(F_DUPFD_CLOEXEC)`, then
/// `fcntl(F_SETFD, 0)`).
fn inheritable_copy(fd: BorrowedFd<'_>) -> rustix::io::Result<OwnedFd> {
    let copy = rustix::io::fcntl_dupfd_cloexec(fd, 3)?;
    rustix::io::fcntl_setfd(&copy, rustix::io::FdFlags::empty())?;
    Ok(copy)
}

impl Drop for Peer {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The child side (`ringbell __bench-peer REQ RESP`): echoes pings, counts stream frames,
/// answers counts, exits on stop.
///
/// The inherited descriptors are reopened through `/proc/self/fd/N` rather than adopted, so
/// a wrong number on the command line is an error, never a descriptor taken from someone
/// else; the inherited copies stay open until the process exits.
///
/// # Errors
///
/// A [`Failure`] if a descriptor is not a ringbell SPSC memfd, a call times out or the
/// parent's process dies, or an unknown tag arrives.
pub fn peer(requests: i32, responses: i32) -> Result<(), Failure> {
    let open = |fd: i32| -> Result<Region<Spsc>, Failure> {
        let path = format!("/proc/self/fd/{fd}");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| fail!("bench peer: cannot open {path}: {e}"))?;
        Region::<Spsc>::open(file.into()).map_err(|e| fail!("bench peer: descriptor {fd}: {e}"))
    };
    let mut rx = open(requests)?
        .consumer()
        .map_err(|e| fail!("bench peer: cannot attach the request ring: {e}"))?;
    let mut tx = open(responses)?
        .producer()
        .map_err(|e| fail!("bench peer: cannot attach the response ring: {e}"))?;
    let exit_after: Option<u64> = std::env::var(PEER_EXIT_AFTER_ENV)
        .ok()
        .and_then(|v| v.parse().ok());
    let mut buf = vec![0u8; rx.max_frame().max(COUNT_LEN)];
    let (mut frames, mut bytes, mut received) = (0u64, 0u64, 0u64);
    loop {
        let (tag, len) = rx
            .recv_into_timeout(&mut buf, CALL_TIMEOUT)
            .map_err(|e| fail!("bench peer: {e}"))?;
        received += 1;
        if exit_after == Some(received) {
            // A crash, as far as the parent can tell: the rings stay open.
            std::process::exit(3);
        }
        let reply = match tag {
            TAG_PING => Some((TAG_PING, &buf[..len])),
            TAG_STREAM => {
                frames += 1;
                bytes += len as u64;
                None
            }
            TAG_COUNT => {
                buf[..8].copy_from_slice(&frames.to_le_bytes());
                buf[8..16].copy_from_slice(&bytes.to_le_bytes());
                (frames, bytes) = (0, 0);
                Some((TAG_COUNT, &buf[..COUNT_LEN]))
            }
            TAG_STOP => return Ok(()),
            other => return Err(fail!("bench peer: unexpected tag {other}")),
        };
        if let Some((tag, data)) = reply {
            tx.send_timeout(tag, data, CALL_TIMEOUT)
                .map_err(|e| fail!("bench peer: {e}"))?;
        }
    }
}

/// Nanoseconds as microseconds, two decimals.
fn micros(ns: u64) -> String {
    format!("{:.2} µs", ns as f64 / 1e3)
}

/// A ring size in MiB or KiB when it is a whole number of them.
fn ring_text(bytes: usize) -> String {
    if bytes % (1 << 20) == 0 {
        format!("{} MiB", bytes >> 20)
    } else if bytes % (1 << 10) == 0 {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes}-byte")
    }
}

/// The results as a short table.
fn render_text(r: &Results) -> String {
    let mut out = format!(
        "ringbell bench: 2 processes (pids {} and {}), two {} SPSC rings in sealed memfds, \
         {}-byte frames\n",
        r.parent_pid,
        r.peer_pid,
        ring_text(r.ring),
        r.size
    );
    out.push_str(&format!(
        "{:<10} {:>11} {:>9}  result\n",
        "phase", "count", "seconds"
    ));
    out.push_str(&format!(
        "{:<10} {:>11} {:>9.3}  p50 {}  p99 {}  (min {}, max {})\n",
        "round trip",
        r.round_trips,
        r.round_trip_seconds,
        micros(r.rtt.quantile(0.50)),
        micros(r.rtt.quantile(0.99)),
        micros(r.rtt.min()),
        micros(r.rtt.max()),
    ));
    out.push_str(&format!(
        "{:<10} {:>11} {:>9.3}  {:.2} M frames/s  {:.1} MB/s\n",
        "throughput",
        r.frames,
        r.stream_seconds,
        r.frames_per_second() / 1e6,
        r.megabytes_per_second(),
    ));
    out
}

/// The results as one flat JSON object.
fn render_json(r: &Results) -> String {
    let mut o = json::Object::new();
    o.uint("parent_pid", u64::from(r.parent_pid))
        .uint("peer_pid", u64::from(r.peer_pid))
        .uint("ring_bytes", r.ring as u64)
        .uint("frame_bytes", r.size as u64)
        .uint("round_trips", r.round_trips)
        .float("round_trip_seconds", r.round_trip_seconds)
        .uint("rtt_p50_ns", r.rtt.quantile(0.50))
        .uint("rtt_p99_ns", r.rtt.quantile(0.99))
        .uint("rtt_min_ns", r.rtt.min())
        .uint("rtt_max_ns", r.rtt.max())
        .uint("frames", r.frames)
        .float("stream_seconds", r.stream_seconds)
        .float("frames_per_second", r.frames_per_second())
        .float("megabytes_per_second", r.megabytes_per_second());
    let mut text = o.finish();
    text.push('\n');
    text
}
