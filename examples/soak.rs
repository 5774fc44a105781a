//! A bounded soak: 4 producer processes stream random-size, checksummed frames for 60 s into
//! an MPSC ring and into a fan-in, and one consumer checks every frame.
//!
//! `cargo run --release --example soak` (or `-- SECONDS` for another duration). Prints frames
//! and bytes moved, errors (checksum, order, any error from a call), and peak memory (the
//! consumer's and the producers' `VmHWM`). Not run in CI.

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ringbell::OwnerId;
use ringbell::fanin::{FanIn, FanInError, RingId};
use ringbell::mpsc::PidfdLiveness;
use ringbell::mpsc::{self};
use ringbell::region::Region;
use ringbell::spsc::{self, Producer};

type Error = Box<dyn std::error::Error>;
const PRODUCERS: u32 = 4;

fn checksum(tag: u32, data: &[u8]) -> u32 {
    let mut h: u32 = 0x811C_9DC5 ^ tag;
    for &b in data {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    h
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn frame(rng: &mut Rng, k: u32, seq: u64, max: usize) -> Vec<u8> {
    let len = 12
        + if rng.next() % 100 == 0 {
            (rng.next() as usize) % (max - 12)
        } else {
            (rng.next() % 200) as usize
        };
    let mut f = vec![0u8; len];
    f[..8].copy_from_slice(&seq.to_le_bytes());
    for b in &mut f[8..len - 4] {
        *b = rng.next() as u8;
    }
    let c = checksum(k, &f[..len - 4]);
    f[len - 4..].copy_from_slice(&c.to_le_bytes());
    f
}

fn check(k: u32, f: &[u8]) -> Option<u64> {
    if f.len() < 12 {
        return None;
    }
    let (body, sum) = f.split_at(f.len() - 4);
    (checksum(k, body).to_le_bytes() == sum).then(|| u64::from_le_bytes(f[..8].try_into().unwrap()))
}

fn peak_kib(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// A producer process: MPSC frames and fan-in frames, alternately, until the deadline.
fn producer(
    k: u32,
    mpsc_fd: RawFd,
    ring_fd: RawFd,
    bell_fd: RawFd,
    secs: f64,
) -> Result<(), Error> {
    // SAFETY: the parent passed these fds by inheritance; nothing else here owns them.
    let (m, r, b) = unsafe {
        (
            OwnedFd::from_raw_fd(mpsc_fd),
            OwnedFd::from_raw_fd(ring_fd),
            OwnedFd::from_raw_fd(bell_fd),
        )
    };
    let mut mp = mpsc::Producer::attach(
        Region::<ringbell::region::Mpsc>::open(m)?,
        OwnerId::unique(),
    )?;
    let mut fp = Producer::attach_shared_bell(
        Region::<ringbell::region::Spsc>::open(r)?,
        Region::<ringbell::region::Bell>::open(b)?,
        OwnerId::unique(),
    )?;
    let mut rng = Rng(0x9E37_79B9 ^ u64::from(k) << 32 | 1);
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let (mut ms, mut fs) = (0u64, 0u64);
    while Instant::now() < end {
        for _ in 0..256 {
            let f = frame(&mut rng, k, ms, mp.max_frame());
            mp.send_timeout(k, &f, Duration::from_secs(10))?;
            ms += 1;
            let f = frame(&mut rng, k, fs, fp.max_frame());
            fp.send_timeout(k, &f, Duration::from_secs(10))?;
            fs += 1;
        }
    }
    println!("{ms} {fs} {}", peak_kib("self"));
    Ok(())
}

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("producer") {
        let n = |i: usize| args[i].parse::<i64>();
        return producer(
            n(1)? as u32,
            n(2)? as RawFd,
            n(3)? as RawFd,
            n(4)? as RawFd,
            args[5].parse()?,
        );
    }
    let secs: f64 = args.first().map_or(Ok(60.0), |s| s.parse())?;
    let mpsc_region = Region::create(&mpsc::Config::new(1 << 20).slots(8))?;
    let bell = Region::create(&ringbell::doorbell::BellConfig)?;
    let mut fanin = FanIn::new(bell.clone(), PRODUCERS as usize)?;
    let live = PidfdLiveness::new();
    let mut children = Vec::new();
    for k in 0..PRODUCERS {
        let ring = Region::create(&spsc::Config::new(1 << 18).shared_bell())?;
        fanin.add(ring.clone(), OwnerId::unique())?;
        let fds = [
            mpsc_region.fd().as_raw_fd(),
            ring.fd().as_raw_fd(),
            bell.fd().as_raw_fd(),
        ];
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.args(["producer", &k.to_string()])
            .args(fds.iter().map(i32::to_string))
            .arg(secs.to_string())
            .stdout(Stdio::piped());
        // SAFETY: between fork and exec the closure only clears close-on-exec on fds this
        // process keeps open until `spawn` returns (async-signal-safe fcntl calls).
        unsafe {
            cmd.pre_exec(move || {
                for fd in fds {
                    let fd = std::os::fd::BorrowedFd::borrow_raw(fd);
                    rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty())?;
                }
                Ok(())
            });
        }
        let child = cmd.spawn()?;
        live.watch(child.id())?;
        children.push(child);
    }
    let mut rx = mpsc::Consumer::attach(mpsc_region.clone(), OwnerId::unique(), live)?;
    let start = Instant::now();
    let (mut next_m, mut next_f) = ([0u64; 4], [0u64; 4]);
    let (mut frames, mut bytes, mut errors, mut closed) = (0u64, 0u64, 0u64, 0u32);
    let mut buf = vec![0u8; 1 << 17];
    let mut all_exited = false;
    loop {
        let mut got = false;
        for _ in 0..64 {
            match rx.try_recv() {
                Ok(f) => {
                    let k = f.tag as usize % 4;
                    match check(f.tag, &f.data) {
                        Some(seq) if seq == next_m[k] => next_m[k] += 1,
                        _ => errors += 1,
                    }
                    frames += 1;
                    bytes += f.data.len() as u64;
                    got = true;
                }
                Err(ringbell::RecvError::Empty) => break,
                Err(e) => {
                    eprintln!("mpsc: {e}");
                    errors += 1;
                    break;
                }
            }
        }
        for _ in 0..64 {
            match fanin.try_recv_into(&mut buf) {
                Ok((RingId(k), tag, len)) => {
                    match check(tag, &buf[..len]) {
                        Some(seq) if seq == next_f[k] && tag as usize == k => next_f[k] += 1,
                        _ => errors += 1,
                    }
                    frames += 1;
                    bytes += len as u64;
                    got = true;
                }
                Err(FanInError::Empty) => break,
                Err(FanInError::Closed(_)) => closed += 1,
                Err(e) => {
                    eprintln!("fan-in: {e}");
                    errors += 1;
                    closed += 1;
                }
            }
        }
        if got {
            continue;
        }
        // Idle: finished once every producer has exited and both are drained.
        if all_exited && closed == PRODUCERS && !rx.has_data() {
            break;
        }
        all_exited = children
            .iter_mut()
            .all(|c| matches!(c.try_wait(), Ok(Some(_))));
        std::thread::sleep(Duration::from_micros(50));
        if start.elapsed().as_secs_f64() > secs + 60.0 {
            eprintln!("the soak did not finish in time");
            errors += 1;
            break;
        }
    }
    let took = start.elapsed().as_secs_f64();
    let mut child_peak = 0;
    let mut sent = 0u64;
    for c in &mut children {
        let mut out = String::new();
        c.stdout.take().ok_or("stdout")?.read_to_string(&mut out)?;
        if !c.wait()?.success() {
            errors += 1;
        }
        let v: Vec<u64> = out
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        if let [m, f, peak] = v[..] {
            sent += m + f;
            child_peak = child_peak.max(peak);
        } else {
            errors += 1;
        }
    }
    println!(
        "soak: {PRODUCERS} producer processes, {secs} s, MPSC ring 1 MiB + fan-in of 256 KiB rings"
    );
    println!(
        "frames received {frames} of {sent} sent ({:.2} M/s), {:.1} MB, errors {errors}",
        frames as f64 / took / 1e6,
        bytes as f64 / 1e6
    );
    println!(
        "peak memory (VmHWM): consumer {} KiB, largest producer {} KiB; MPSC records skipped: {}",
        peak_kib("self"),
        child_peak,
        rx.skipped()
    );
    if errors > 0 || frames != sent {
        return Err("the soak saw errors or lost frames".into());
    }
    Ok(())
}
