//! The main job: an IPC server and its clients, in separate processes, over ringbell
//! channels.
//!
//! `cargo run --release --example demo` (no flags) starts a server process and, for each
//! concurrency level 1, 2, 4, 8 and 16, that many client processes. Each client makes blocking
//! calls back to back for a fixed time; the handler does a small fixed amount of work (hashing
//! the request 32 times over). It prints calls per second and the p50/p99 round trip at every
//! level, three times: for a server running the serial loop (every request on the reactor
//! thread), for the reactor with a pool of worker threads (inline when idle, the pool when
//! busy), and for that reactor over the socket transport (frames on the Unix socket instead
//! of shared memory: same handler, same clients — they follow the server's choice).
//!
//! Everything uses default settings: clients and server spin briefly, then sleep on futex
//! doorbells. Every call has a deadline, so a failure ends the demo with an error, not a hang.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ringbell::channel::{AnyServer, Client, ServerConfig, TransportKind};
use ringbell::reactor::{Reactor, Request, Responder, ThreadPool};

#[path = "common/clients.rs"]
mod clients;

use clients::Error;

const LEVELS: [usize; 5] = [1, 2, 4, 8, 16];
const CALL_DEADLINE: Duration = Duration::from_secs(10);
const REQUEST: usize = 64;

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("server") => server(Path::new(&args[1]), &args[2]),
        Some("client") => client(Path::new(&args[1]), args[2].parse()?),
        _ => parent(),
    }
}

/// The handler's fixed work: FNV-1a over the request, 32 times (about a microsecond).
fn work(body: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for round in 0..32u64 {
        h ^= round;
        for &b in body {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

fn handler(req: Request, res: Responder) {
    let h = work(&req.body);
    // The response always fits (8 bytes); a failure would be reported to the client anyway.
    let _ = res.respond(&h.to_le_bytes());
}

/// Runs until killed by the parent.
fn server(path: &Path, mode: &str) -> Result<(), Error> {
    let kind = match mode {
        "socket" => TransportKind::Socket,
        _ => TransportKind::SharedMemory,
    };
    let server = AnyServer::bind(path, ServerConfig::default().transport(kind))?;
    let stats = match mode {
        "serial" => Reactor::new(server, handler).serial(true).run()?,
        _ => Reactor::new(server, handler)
            .with_executor(ThreadPool::new(2))
            .run()?,
    };
    eprintln!("server stopped: {stats:?}");
    Ok(())
}

/// Calls for `secs` seconds, then writes each round trip (ns, u32 little-endian) to stdout.
fn client(path: &Path, secs: f64) -> Result<(), Error> {
    let mut c = Client::connect(path)?;
    let mut req = [0u8; REQUEST];
    let pid = std::process::id();
    req[..4].copy_from_slice(&pid.to_le_bytes());
    let mut lat = Vec::with_capacity(1 << 20);
    let stop = Instant::now() + Duration::from_secs_f64(secs);
    let mut i = 0u32;
    while Instant::now() < stop {
        i = i.wrapping_add(1);
        req[4..8].copy_from_slice(&i.to_le_bytes());
        let t = Instant::now();
        let resp = c.call_timeout(&req, CALL_DEADLINE)?;
        let ns = t.elapsed().as_nanos().min(u128::from(u32::MAX)) as u32;
        if resp != work(&req).to_le_bytes() {
            return Err("wrong response".into());
        }
        lat.push(ns);
    }
    clients::report(&lat)
}

fn parent() -> Result<(), Error> {
    let exe = std::env::current_exe()?;
    let dir = std::env::temp_dir().join(format!("ringbell-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let secs = 0.5;
    println!(
        "ringbell demo: a server process and N client processes, blocking calls of {REQUEST} B,"
    );
    println!("a handler doing ~1 µs of hashing; default wait settings; {secs} s per point.");
    println!(
        "{} CPUs online.",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    println!(
        "{:<22} {:>7} {:>12} {:>10} {:>10}",
        "server", "clients", "calls/s", "p50 µs", "p99 µs"
    );
    for (mode, label) in [
        ("serial", "serial loop"),
        ("pool", "reactor + 2-thread pool"),
        ("socket", "same, socket transport"),
    ] {
        let path: PathBuf = dir.join(format!("{mode}.sock"));
        let sock = path.to_str().ok_or("path")?;
        clients::with_server(&exe, &["server", sock, mode], &path, || {
            for n in LEVELS {
                let p = clients::run_clients(&exe, &["client", sock, &secs.to_string()], n, secs)?;
                println!(
                    "{:<22} {:>7} {:>12.0} {:>10.2} {:>10.2}",
                    label, n, p.calls_per_s, p.p50_us, p.p99_us
                );
            }
            Ok(())
        })?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
