//! A soak of the server layer under faults: a server process (reactor + 4-thread pool) and
//! client processes calling it back to back, through five phases in turn — calm, clients
//! SIGKILLed and restarted, a signal storm, a connect storm, a slow handler.
//!
//! `cargo run --release --example server_soak` runs 60 s with 4 clients (`-- SECONDS
//! CLIENTS` for others). Every call carries a unique body that the handler echoes; a client
//! checks each answer is its own. Prints, per phase, the calls answered, errors by kind and
//! the p50/p99 call latency, and in total the lost answers (a call that timed out), the
//! wrong or duplicated ones (an answer with another call's body) and the false
//! `Disconnected`s (the server never dies here) — all three must be 0. Not run in CI.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ringbell::channel::{CallError, Client, ClientOptions, Server, ServerConfig};
use ringbell::reactor::{Reactor, Request, Responder, ThreadPool};

type Error = Box<dyn std::error::Error>;

const PHASES: [&str; 5] = [
    "calm",
    "clients killed",
    "signal storm",
    "connect storm",
    "slow handler",
];

/// Latency histogram buckets: bucket `b` holds calls of about `2^(b/8)` µs (9 % wide).
const BUCKETS: usize = 8 * 28;

fn bucket(d: Duration) -> usize {
    let us = d.as_secs_f64() * 1e6;
    ((us.max(1.0).log2() * 8.0) as usize).min(BUCKETS - 1)
}

fn bucket_us(b: usize) -> f64 {
    2f64.powf((b as f64 + 0.5) / 8.0)
}

/// Nanoseconds on the system-wide monotonic clock: every process reads the same one.
fn mono_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// The phase at `now`, given the soak's start and the phase length (both in ns).
fn phase(start: u64, len: u64) -> usize {
    ((mono_ns().saturating_sub(start) / len) as usize).min(PHASES.len() - 1)
}

extern "C" fn on_signal(_: libc::c_int) {}

/// A do-nothing `SIGUSR1` handler without `SA_RESTART`: interrupted calls see `EINTR`.
fn handle_sigusr1() {
    // SAFETY: a zeroed `sigaction` with a valid do-nothing (async-signal-safe) handler.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut());
    }
}

/// The server: echoes, and in the slow phase sleeps 100 ms on one request in 50.
fn server(path: &Path, start: u64, len: u64) -> Result<(), Error> {
    handle_sigusr1();
    let server = Server::bind_replacing(path, ServerConfig::new().max_clients(256))?;
    let handler = move |req: Request, res: Responder| {
        if phase(start, len) == 4 && req.body.first().is_some_and(|b| b % 50 == 0) {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = res.respond(&req.body);
    };
    let mut reactor = Reactor::new(server, handler).with_executor(ThreadPool::new(4));
    let stop = reactor.stop_handle();
    std::thread::spawn(move || {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        stop.stop();
    });
    let stats = reactor.run()?;
    println!(
        "server: {} requests ({} inline, {} dispatched, {} hand-overs), {} detached",
        stats.requests, stats.inline, stats.dispatched, stats.handovers, stats.detached
    );
    Ok(())
}

/// Per phase: calls answered, errors by kind, wrong answers, latencies.
#[derive(Clone)]
struct Tally {
    ok: u64,
    /// Of `ok`, the slow handler's own requests.
    slow: u64,
    timeout: u64,
    disconnected: u64,
    other: u64,
    wrong: u64,
    hist: Vec<u64>,
}

impl Default for Tally {
    fn default() -> Self {
        Self {
            ok: 0,
            slow: 0,
            timeout: 0,
            disconnected: 0,
            other: 0,
            wrong: 0,
            hist: vec![0; BUCKETS],
        }
    }
}

/// A client: calls back to back until `end`, then prints its tallies, one line a phase.
fn client(path: &Path, id: u32, start: u64, len: u64, end: u64) -> Result<(), Error> {
    handle_sigusr1();
    let opts = ClientOptions::new().connect_timeout(Duration::from_secs(10));
    let mut c = Client::connect_with(path, opts)?;
    let mut tallies = vec![Tally::default(); PHASES.len()];
    let mut n = 0u64;
    while mono_ns() < end {
        let mut body = [0u8; 32];
        body[0] = (n % 251) as u8;
        body[1..5].copy_from_slice(&id.to_le_bytes());
        body[8..16].copy_from_slice(&n.to_le_bytes());
        body[16..24].copy_from_slice(&std::process::id().to_le_bytes().repeat(2));
        let t = Instant::now();
        let r = c.call_timeout(&body, Duration::from_secs(10));
        let tally = &mut tallies[phase(start, len)];
        match r {
            // The slow requests themselves (one in 50 in the slow phase) are counted but kept
            // out of the latencies: those show what the others paid.
            Ok(answer) if answer == body && body[0] % 50 == 0 && phase(start, len) == 4 => {
                tally.ok += 1;
                tally.slow += 1;
            }
            Ok(answer) if answer == body => {
                tally.ok += 1;
                tally.hist[bucket(t.elapsed())] += 1;
            }
            Ok(_) => tally.wrong += 1,
            Err(CallError::Timeout) => tally.timeout += 1,
            Err(CallError::Disconnected) => tally.disconnected += 1,
            Err(_) => tally.other += 1,
        }
        n += 1;
    }
    for (p, t) in tallies.iter().enumerate() {
        let hist: Vec<String> = t.hist.iter().map(u64::to_string).collect();
        println!(
            "tally {p} {} {} {} {} {} {} {}",
            t.ok,
            t.slow,
            t.timeout,
            t.disconnected,
            t.other,
            t.wrong,
            hist.join(",")
        );
    }
    Ok(())
}

fn spawn(role: &str, args: &[String]) -> Result<Child, Error> {
    Ok(Command::new(std::env::current_exe()?)
        .arg(role)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?)
}

/// Reads a finished client's tallies into `into`.
fn collect(child: Child, into: &mut [Tally]) -> Result<(), Error> {
    let out = child.wait_with_output()?;
    for line in BufReader::new(&out.stdout[..]).lines() {
        let line = line?;
        let Some(rest) = line.strip_prefix("tally ") else {
            continue;
        };
        let f: Vec<&str> = rest.split(' ').collect();
        let p: usize = f[0].parse()?;
        let t = &mut into[p];
        t.ok += f[1].parse::<u64>()?;
        t.slow += f[2].parse::<u64>()?;
        t.timeout += f[3].parse::<u64>()?;
        t.disconnected += f[4].parse::<u64>()?;
        t.other += f[5].parse::<u64>()?;
        t.wrong += f[6].parse::<u64>()?;
        for (b, v) in f[7].split(',').enumerate() {
            t.hist[b] += v.parse::<u64>()?;
        }
    }
    Ok(())
}

fn percentile(hist: &[u64], q: f64) -> f64 {
    let total: u64 = hist.iter().sum();
    let want = (total as f64 * q).ceil() as u64;
    let mut seen = 0;
    for (b, &n) in hist.iter().enumerate() {
        seen += n;
        if seen >= want.max(1) {
            return bucket_us(b);
        }
    }
    0.0
}

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize| -> Result<u64, Error> { Ok(args[i].parse()?) };
    match args.first().map(String::as_str) {
        Some("server") => return server(Path::new(&args[1]), num(2)?, num(3)?),
        Some("client") => {
            return client(
                Path::new(&args[1]),
                num(2)? as u32,
                num(3)?,
                num(4)?,
                num(5)?,
            );
        }
        _ => {}
    }
    let secs: u64 = args.first().map_or(Ok(60), |s| s.parse())?;
    let clients: u32 = args.get(1).map_or(Ok(4), |s| s.parse())?;
    let dir = std::env::temp_dir().join(format!("ringbell-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path: PathBuf = dir.join("s.sock");
    let len = secs * 1_000_000_000 / PHASES.len() as u64;
    let start = mono_ns() + 1_000_000_000; // a second to start everything
    let end = start + len * PHASES.len() as u64;
    let p = path.display().to_string();
    let mut srv = spawn("server", &[p.clone(), start.to_string(), len.to_string()])?;
    std::thread::sleep(Duration::from_millis(300));
    let client_args = |id: u32| {
        vec![
            p.clone(),
            id.to_string(),
            start.to_string(),
            len.to_string(),
            end.to_string(),
        ]
    };
    let mut live: Vec<Child> = (0..clients)
        .map(|id| spawn("client", &client_args(id)))
        .collect::<Result<_, _>>()?;
    let mut tallies = vec![Tally::default(); PHASES.len()];
    let (mut killed, mut next_id) = (0u32, clients);
    let storm = Arc::new(AtomicBool::new(false));
    let connects = Arc::new(AtomicU64::new(0));
    let stormers: Vec<_> = (0..3)
        .map(|_| {
            let (storm, connects, path) = (storm.clone(), connects.clone(), path.clone());
            std::thread::spawn(move || {
                while mono_ns() < end {
                    if storm.load(Ordering::Relaxed) {
                        drop(std::os::unix::net::UnixStream::connect(&path));
                        connects.fetch_add(1, Ordering::Relaxed);
                    } else {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            })
        })
        .collect();
    let mut signals = 0u64;
    while mono_ns() < end {
        let now_phase = if mono_ns() < start {
            0
        } else {
            phase(start, len)
        };
        storm.store(now_phase == 3, Ordering::Relaxed);
        match now_phase {
            1 if live.len() > 1 => {
                // Kill one client every 50 ms and start a new one in its place; the first
                // client lives throughout, so that every phase has a client reporting on it.
                let i = 1 + (killed as usize) % (live.len() - 1);
                let mut old =
                    std::mem::replace(&mut live[i], spawn("client", &client_args(next_id))?);
                let _ = old.kill();
                old.wait()?;
                killed += 1;
                next_id += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            2 => {
                // A handled signal to the server and every client, every ~100 µs.
                for pid in std::iter::once(srv.id()).chain(live.iter().map(Child::id)) {
                    // SAFETY: signals our own children; the handler is installed in each.
                    unsafe { libc::kill(pid as i32, libc::SIGUSR1) };
                    signals += 1;
                }
                std::thread::sleep(Duration::from_micros(100));
            }
            _ => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    storm.store(false, Ordering::Relaxed);
    for s in stormers {
        let _ = s.join();
    }
    for c in live {
        collect(c, &mut tallies)?;
    }
    drop(srv.stdin.take());
    let out = srv.wait_with_output()?;
    let server_line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let _ = std::fs::remove_dir_all(&dir);

    println!(
        "ringbell server soak: {secs} s, {clients} client processes, a reactor with a 4-thread pool"
    );
    println!(
        "{killed} clients killed and restarted, {signals} signals sent, {} storm connects",
        connects.load(Ordering::Relaxed)
    );
    println!();
    println!(
        "{:<16} {:>10} {:>8} {:>8} {:>8} {:>8} {:>10} {:>10}",
        "phase", "answered", "timeout", "discon", "other", "wrong", "p50 µs", "p99 µs"
    );
    let slow = tallies[4].slow;
    let mut total = Tally::default();
    for (name, t) in PHASES.iter().zip(&tallies) {
        println!(
            "{:<16} {:>10} {:>8} {:>8} {:>8} {:>8} {:>10.1} {:>10.1}",
            name,
            t.ok,
            t.timeout,
            t.disconnected,
            t.other,
            t.wrong,
            percentile(&t.hist, 0.5),
            percentile(&t.hist, 0.99)
        );
        total.ok += t.ok;
        total.timeout += t.timeout;
        total.disconnected += t.disconnected;
        total.other += t.other;
        total.wrong += t.wrong;
    }
    println!(
        "(slow handler: {slow} of the answered calls were the 100 ms requests themselves, kept out of p50/p99)"
    );
    println!();
    println!("{server_line}");
    println!(
        "lost answers (timeouts): {}, wrong or duplicated answers: {}, false Disconnected: {}",
        total.timeout, total.wrong, total.disconnected
    );
    println!(
        "(answered counts only clients that lived to the end: a killed client's calls die with it)"
    );
    if total.timeout + total.wrong + total.disconnected + total.other > 0 {
        return Err("the soak saw lost, wrong or failed calls".into());
    }
    Ok(())
}
