//! Two processes exchanging frames through bare ringbell rings (no channel, no reactor).
//!
//! `cargo run --release --example rings` starts a child process (this same program), hands it
//! two sealed memfd regions by fd inheritance — a request ring and a response ring — and
//! measures, with default settings:
//!
//! * one-way streaming of 64-byte and 4 KiB frames (frames/s and MB/s), and
//! * 64-byte request/response round trips (p50, p99, p99.9).
//!
//! Both sides use the blocking calls with default settings: a short adaptive spin, then a
//! sleep on the ring's futex doorbell. Every call has a deadline and sees a peer's close, so a
//! failure ends the demo with an error rather than a hang.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use ringbell::region::{Region, Spsc};
use ringbell::spsc::{self, Consumer, Producer};

const TAG_STREAM: u32 = 1;
const TAG_PING: u32 = 2;
const TAG_DONE: u32 = 3;
const TAG_STOP: u32 = 4;
const DEADLINE: Duration = Duration::from_secs(60);

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() == Some("child") {
        let req: RawFd = args.next().ok_or("missing fd")?.parse()?;
        let resp: RawFd = args.next().ok_or("missing fd")?.parse()?;
        // SAFETY: the parent passed these two fds to us by inheritance; nothing else in this
        // process owns them.
        let (req, resp) = unsafe { (OwnedFd::from_raw_fd(req), OwnedFd::from_raw_fd(resp)) };
        return child(req, resp);
    }
    parent()
}

/// A blocking send with the default wait settings: spin briefly, then sleep on the doorbell.
fn send(tx: &mut Producer<Region<Spsc>>, tag: u32, data: &[u8]) -> Result<(), Error> {
    Ok(tx.send_timeout(tag, data, DEADLINE)?)
}

/// A blocking receive with the default wait settings.
fn recv(rx: &mut Consumer<Region<Spsc>>, buf: &mut [u8]) -> Result<(u32, usize), Error> {
    Ok(rx.recv_into_timeout(buf, DEADLINE)?)
}

fn child(req: OwnedFd, resp: OwnedFd) -> Result<(), Error> {
    let mut rx = Region::<ringbell::region::Spsc>::open(req)?.consumer()?;
    let mut tx = Region::<ringbell::region::Spsc>::open(resp)?.producer()?;
    let mut buf = vec![0u8; rx.max_frame()];
    let mut streamed = 0u64;
    loop {
        let (tag, len) = recv(&mut rx, &mut buf)?;
        match tag {
            TAG_STREAM => streamed += 1,
            TAG_PING => send(&mut tx, TAG_PING, &buf[..len])?,
            TAG_DONE => {
                send(&mut tx, TAG_DONE, &streamed.to_le_bytes())?;
                streamed = 0;
            }
            TAG_STOP => return Ok(()),
            other => return Err(format!("unexpected tag {other}").into()),
        }
    }
}

fn spawn_child(req: BorrowedFd<'_>, resp: BorrowedFd<'_>) -> Result<Child, Error> {
    let (req, resp) = (req.as_raw_fd(), resp.as_raw_fd());
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args(["child", &req.to_string(), &resp.to_string()]);
    // SAFETY: runs in the forked child before exec; it only clears close-on-exec on two fds
    // the parent keeps open until `spawn` returns (fcntl is async-signal-safe).
    unsafe {
        cmd.pre_exec(move || {
            for fd in [req, resp] {
                let fd = BorrowedFd::borrow_raw(fd);
                rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty())?;
            }
            Ok(())
        });
    }
    Ok(cmd.spawn()?)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn parent() -> Result<(), Error> {
    let ring = spsc::Config::new(1 << 20);
    let req = Region::create(&ring)?;
    let resp = Region::create(&ring)?;
    let mut tx = req.producer()?;
    let mut rx = resp.consumer()?;
    let mut child = spawn_child(req.fd(), resp.fd())?;
    let result = run(&mut tx, &mut rx);
    if result.is_ok() {
        send(&mut tx, TAG_STOP, &[])?;
        let status = child.wait()?;
        if !status.success() {
            return Err(format!("child failed: {status}").into());
        }
    } else {
        let _ = child.kill();
        let _ = child.wait();
    }
    result
}

fn run(tx: &mut Producer<Region<Spsc>>, rx: &mut Consumer<Region<Spsc>>) -> Result<(), Error> {
    println!("ringbell demo: two processes, 1 MiB SPSC rings over sealed memfds");
    println!(
        "cores: {}   (every figure below comes from this one run)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    let mut buf = vec![0u8; rx.max_frame()];
    for (size, frames) in [(64usize, 5_000_000u64), (4096, 500_000)] {
        let payload = vec![0xA5u8; size];
        let start = Instant::now();
        for _ in 0..frames {
            send(tx, TAG_STREAM, &payload)?;
        }
        send(tx, TAG_DONE, &[])?;
        let (_, len) = recv(rx, &mut buf)?;
        let secs = start.elapsed().as_secs_f64();
        let got = u64::from_le_bytes(buf[..len].try_into()?);
        if got != frames {
            return Err(format!("child counted {got} frames, sent {frames}").into());
        }
        println!(
            "stream {size:>5} B frames: {:>6.2} M frames/s  {:>7.1} MB/s  ({frames} frames, none lost)",
            frames as f64 / secs / 1e6,
            (frames * size as u64) as f64 / secs / 1e6
        );
    }
    let rounds = 200_000;
    let ping = [0x5Au8; 64];
    let mut rtts = Vec::with_capacity(rounds);
    for i in 0..rounds + 10_000 {
        let start = Instant::now();
        send(tx, TAG_PING, &ping)?;
        let (tag, len) = recv(rx, &mut buf)?;
        let rtt = start.elapsed();
        if tag != TAG_PING || buf[..len] != ping {
            return Err("echo mismatch".into());
        }
        if i >= 10_000 {
            rtts.push(rtt); // the first 10,000 warm up
        }
    }
    rtts.sort_unstable();
    println!(
        "ping-pong 64 B round trip: p50 {:?}  p99 {:?}  p99.9 {:?}  ({rounds} round trips)",
        percentile(&rtts, 0.50),
        percentile(&rtts, 0.99),
        percentile(&rtts, 0.999)
    );
    let (t, r) = (tx.stats(), rx.stats());
    println!(
        "parent's waits: {} sleeps announced, {} futex waits, {} spins; \
         wake system calls made: {}",
        t.sleeps + r.sleeps,
        t.futex_waits + r.futex_waits,
        t.spins + r.spins,
        t.wakes + r.wakes
    );
    Ok(())
}
