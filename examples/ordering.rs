//! What per-key ordering costs and buys: N client processes (1, 2, 4, 8, 16), one request in
//! flight each, against three servers — the serial loop, the reactor with a pool, and the
//! reactor with a pool and per-key ordering (reads of a key together, writes alone) — for
//! all-read, 90/10 and 50/50 read/write mixes over 1 and over 16 keys.
//!
//! `cargo run --release --example ordering` (about a minute). The handler blocks for a fixed
//! 100 µs (a stand-in for a disk or a lock), so a pool of 16 threads can serve more at once
//! than the machine has CPUs; `-- --work N` makes it hash for about N µs instead. Every
//! call has a deadline: a failure ends the run with an error, not a hang. A benchmark, not a
//! test: the figures are printed, not judged.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ringbell::channel::{Client, Server, ServerConfig};
use ringbell::reactor::{Access, Handler, Reactor, Request, Responder, ThreadPool};

#[path = "common/clients.rs"]
mod clients;

use clients::Error;

const LEVELS: [usize; 5] = [1, 2, 4, 8, 16];
const CALL_DEADLINE: Duration = Duration::from_secs(10);
const SECS: f64 = 0.3;

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("server") => server(Path::new(&args[1]), &args[2], args[3].parse()?),
        Some("client") => client(Path::new(&args[1]), args[2].parse()?, args[3].parse()?),
        _ => {
            let work = match args.iter().position(|a| a == "--work") {
                Some(i) => args.get(i + 1).ok_or("--work N")?.parse()?,
                None => 0,
            };
            parent(work)
        }
    }
}

/// A request: `[op, key, ...]`, op `r` or `w`.
struct Work {
    /// µs of hashing per request; 0: block 100 µs instead.
    micros: u64,
    ordered: bool,
}

impl Handler for Work {
    fn handle(&self, req: Request, res: Responder) {
        if self.micros == 0 {
            std::thread::sleep(Duration::from_micros(100));
        } else {
            let until = Instant::now() + Duration::from_micros(self.micros);
            let mut h = 0u64;
            while Instant::now() < until {
                for &b in &req.body {
                    h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
                }
            }
            std::hint::black_box(h);
        }
        let _ = res.respond(&req.body[..2]);
    }

    fn access(&self, req: &Request) -> Access {
        if !self.ordered {
            return Access::Unordered;
        }
        let key = u64::from(req.body[1]);
        match req.body[0] {
            b'w' => Access::Write(key),
            _ => Access::Read(key),
        }
    }
}

/// Runs until killed by the parent.
fn server(path: &Path, mode: &str, micros: u64) -> Result<(), Error> {
    let server = Server::bind(path, ServerConfig::default().max_clients(64))?;
    let work = Work {
        micros,
        ordered: mode == "ordered",
    };
    let stats = match mode {
        "serial" => Reactor::new(server, work).serial(true).run()?,
        _ => Reactor::new(server, work)
            .with_executor(ThreadPool::new(16))
            .run()?,
    };
    eprintln!("server stopped: {stats:?}");
    Ok(())
}

/// Calls for `SECS` seconds with `writes` percent writes over `keys` keys, then writes each
/// round trip (ns, u32 little-endian) to stdout.
fn client(path: &Path, writes: u32, keys: u32) -> Result<(), Error> {
    let mut c = Client::connect(path)?;
    let mut rng = u64::from(std::process::id()) | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut lat = Vec::with_capacity(1 << 16);
    let stop = Instant::now() + Duration::from_secs_f64(SECS);
    let mut req = [0u8; 16];
    while Instant::now() < stop {
        let r = next();
        req[0] = if (r % 100) < u64::from(writes) {
            b'w'
        } else {
            b'r'
        };
        req[1] = ((r >> 8) % u64::from(keys)) as u8;
        let t = Instant::now();
        let resp = c.call_timeout(&req, CALL_DEADLINE)?;
        let ns = t.elapsed().as_nanos().min(u128::from(u32::MAX)) as u32;
        if resp != req[..2] {
            return Err("wrong response".into());
        }
        lat.push(ns);
    }
    clients::report(&lat)
}

fn parent(work: u64) -> Result<(), Error> {
    let exe = std::env::current_exe()?;
    let dir = std::env::temp_dir().join(format!("ringbell-ordering-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let handler = match work {
        0 => "blocks 100 µs".to_string(),
        n => format!("hashes for {n} µs"),
    };
    println!(
        "ringbell ordering: N client processes, one call in flight each; the handler {handler};"
    );
    println!(
        "pool of 16 threads; {SECS} s per point; {} CPUs online.",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    println!(
        "{:<34} {:>7} {:>10} {:>9} {:>9}",
        "server (mix, keys)", "clients", "calls/s", "p50 µs", "p99 µs"
    );
    // (server mode, label, write %, keys): the serial loop and the unordered pool do not
    // look at the mix, so they run once.
    let mut cases = vec![
        ("serial", "serial loop".to_string(), 0, 1),
        ("pool", "reactor + pool".to_string(), 0, 1),
    ];
    for keys in [1u32, 16] {
        for writes in [0u32, 10, 50] {
            cases.push((
                "ordered",
                format!(
                    "+ ordering, {}/{} r/w, {keys} key{}",
                    100 - writes,
                    writes,
                    if keys > 1 { "s" } else { "" }
                ),
                writes,
                keys,
            ));
        }
    }
    for (mode, label, writes, keys) in cases {
        let path: PathBuf = dir.join(format!("{mode}.sock"));
        let sock = path.to_str().ok_or("path")?;
        let (w, k) = (writes.to_string(), keys.to_string());
        clients::with_server(
            &exe,
            &["server", sock, mode, &work.to_string()],
            &path,
            || {
                for n in LEVELS {
                    let p = clients::run_clients(&exe, &["client", sock, &w, &k], n, SECS)?;
                    println!(
                        "{:<34} {:>7} {:>10.0} {:>9.1} {:>9.1}",
                        label, n, p.calls_per_s, p.p50_us, p.p99_us
                    );
                }
                Ok(())
            },
        )?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
