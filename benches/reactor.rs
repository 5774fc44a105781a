//! The reactor's cost and its scaling, measured interleaved in one run (not a timed test).
//!
//! `cargo bench --bench reactor` (add `-- --quick` for a short run).
//!
//! 1. **One request in flight.** One client thread calls three servers in turn, in batches,
//!    round after round: a plain serial loop written over `Server`'s own API, the reactor in
//!    serial mode, and the reactor with a thread pool (whose inline fast path should make it
//!    cost what the plain loop costs). Handler: a few hundred nanoseconds of hashing. Reports
//!    p50/p99 per server and the ratios of the p50s (target: reactor ≤ 1.1× the plain loop).
//! 2. **Scaling with a blocking handler** (it sleeps 1 ms): one client keeps 1, 2, 4, 8
//!    requests in flight; the serial reactor against the reactor with an 8-thread pool.
//!
//! Prints `ratio reactor_c1_vs_serial VALUE` (reactor with pool, p50, over the plain loop).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ringbell::channel::{Client, SendResponseError, Server, ServerConfig, Status};
use ringbell::reactor::{Reactor, Request, Responder, StopHandle, ThreadPool};

const T: Duration = Duration::from_secs(30);

fn work(body: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for round in 0..8u64 {
        h ^= round;
        for &b in body {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

fn hashing(req: Request, res: Responder) {
    let _ = res.respond(&work(&req.body).to_le_bytes());
}

fn sleeping(req: Request, res: Responder) {
    std::thread::sleep(Duration::from_millis(1));
    let _ = res.respond(&req.body);
}

enum Stop {
    Flag(Arc<AtomicBool>, Box<dyn Fn() + Send>),
    Reactor(StopHandle),
}

struct Running {
    path: PathBuf,
    stop: Stop,
    thread: JoinHandle<()>,
}

impl Running {
    fn finish(self) {
        match self.stop {
            Stop::Flag(flag, wake) => {
                flag.store(true, Ordering::Release);
                wake();
            }
            Stop::Reactor(h) => h.stop(),
        }
        self.thread.join().unwrap();
    }
}

/// The plain serial loop: take a request, compute, send, over `Server`'s API.
fn plain(path: &Path) -> Running {
    let mut server = Server::bind(path, ServerConfig::default()).unwrap();
    let _ = server.accept_pending();
    let flag = Arc::new(AtomicBool::new(false));
    let notifier = server.notifier();
    let f = flag.clone();
    let thread = std::thread::spawn(move || {
        pin(1);
        let mut buf = vec![0u8; server.max_request()];
        let mut last_accept = Instant::now();
        while !f.load(Ordering::Acquire) {
            match server.try_recv_request(&mut buf) {
                Ok(req) => {
                    let h = work(&buf[..req.len]).to_le_bytes();
                    while let Err(SendResponseError::Full) =
                        server.try_send_response(req.conn, req.id, Status::Ok, &h)
                    {
                        server.wait(&[(req.conn, 8)], || false, Some(Duration::from_millis(50)));
                    }
                }
                Err(_) => {
                    // New connections, at most every 50 ms (a system call).
                    if last_accept.elapsed() >= Duration::from_millis(50) {
                        last_accept = Instant::now();
                        let _ = server.accept_pending();
                    }
                    server.wait(
                        &[],
                        || f.load(Ordering::Acquire),
                        Some(Duration::from_millis(50)),
                    );
                }
            }
        }
    });
    Running {
        path: path.to_path_buf(),
        stop: Stop::Flag(flag, Box::new(move || notifier.notify())),
        thread,
    }
}

fn reactor(path: &Path, pool: Option<usize>, sleepy: bool) -> Running {
    let server = Server::bind(path, ServerConfig::default()).unwrap();
    let handler: fn(Request, Responder) = if sleepy { sleeping } else { hashing };
    let (stop, thread) = match pool {
        None => {
            let mut r = Reactor::new(server, handler).serial(true);
            (
                r.stop_handle(),
                std::thread::spawn(move || {
                    pin(1);
                    drop(r.run())
                }),
            )
        }
        Some(n) => {
            let mut r = Reactor::new(server, handler).with_executor(ThreadPool::new(n));
            (
                r.stop_handle(),
                std::thread::spawn(move || {
                    pin(1);
                    drop(r.run())
                }),
            )
        }
    };
    Running {
        path: path.to_path_buf(),
        stop: Stop::Reactor(stop),
        thread,
    }
}

/// Pins the calling thread to one CPU (if there are at least two), so that the client and
/// the server under test run on different cores in every round.
fn pin(cpu: usize) {
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    if n < 2 {
        return;
    }
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu % n);
    let _ = rustix::thread::sched_setaffinity(None, &set);
}

fn pct(v: &mut [u32], p: f64) -> f64 {
    v.sort_unstable();
    f64::from(v[((v.len() - 1) as f64 * p) as usize]) / 1000.0
}

/// The client process of part 1: calls each server in turn, `batch` calls per round, and
/// writes every round trip (ns, u32 LE), server by server, to stdout.
fn client_process(args: &[String]) {
    pin(0);
    let rounds: usize = args[0].parse().unwrap();
    let batch: usize = args[1].parse().unwrap();
    let mut clients: Vec<Client> = args[2..]
        .iter()
        .map(|p| Client::connect(p).unwrap())
        .collect();
    let mut lat: Vec<Vec<u32>> = vec![Vec::with_capacity(rounds * batch); clients.len()];
    let req = [7u8; 64];
    for _ in 0..rounds {
        for (k, c) in clients.iter_mut().enumerate() {
            // Wake the server up and let it settle into spinning before measuring.
            for _ in 0..50 {
                c.call_timeout(&req, T).unwrap();
            }
            for _ in 0..batch {
                let t = Instant::now();
                c.call_timeout(&req, T).unwrap();
                lat[k].push(t.elapsed().as_nanos() as u32);
            }
        }
    }
    let mut out = Vec::new();
    for l in lat {
        for ns in l {
            out.extend_from_slice(&ns.to_le_bytes());
        }
    }
    std::io::Write::write_all(&mut std::io::stdout(), &out).unwrap();
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("client") {
        return client_process(&args[1..]);
    }
    let quick = args.iter().any(|a| a == "--quick");
    let dir = std::env::temp_dir().join(format!("ringbell-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (rounds, batch) = if quick { (10, 1000) } else { (40, 5000) };

    // 1. One request in flight, interleaved.
    let servers = [
        ("plain serial loop", plain(&dir.join("plain.sock"))),
        (
            "reactor, serial mode",
            reactor(&dir.join("serial.sock"), None, false),
        ),
        (
            "reactor + 2-thread pool",
            reactor(&dir.join("pool.sock"), Some(2), false),
        ),
    ];
    // The client is a separate process (as in real use; it also keeps its spinning apart from
    // the servers' in the doorbell's per-process spin accounting).
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .arg("client")
        .arg(rounds.to_string())
        .arg(batch.to_string())
        .args(servers.iter().map(|(_, s)| s.path.clone()))
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "the client process failed");
    let all: Vec<u32> = out
        .stdout
        .chunks_exact(4)
        .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
        .collect();
    let per = all.len() / servers.len();
    let mut lat: Vec<Vec<u32>> = all.chunks(per).map(<[u32]>::to_vec).collect();
    println!(
        "one request in flight: {rounds} rounds x {batch} calls per server, interleaved; \
         client on CPU 0, servers on CPU 1"
    );
    println!("{:<26} {:>9} {:>9}", "server", "p50 µs", "p99 µs");
    let mut p50 = Vec::new();
    for ((name, _), l) in servers.iter().zip(&mut lat) {
        let (a, b) = (pct(l, 0.5), pct(l, 0.99));
        p50.push(a);
        println!("{name:<26} {a:>9.3} {b:>9.3}");
    }
    for (_, s) in servers {
        s.finish();
    }

    // 2. Scaling with a handler that blocks for 1 ms.
    let secs = if quick { 0.3 } else { 1.0 };
    println!();
    println!("a handler that sleeps 1 ms; one client with N requests in flight; {secs} s each");
    println!("{:<26} {:>4} {:>10}", "server", "N", "calls/s");
    for (name, pool) in [
        ("reactor, serial mode", None),
        ("reactor + 8-thread pool", Some(8)),
    ] {
        let s = reactor(&dir.join("sleepy.sock"), pool, true);
        let mut c = Client::connect(&s.path).unwrap();
        for window in [1usize, 2, 4, 8] {
            let start = Instant::now();
            let mut done = 0u64;
            let mut out = 0usize;
            while start.elapsed().as_secs_f64() < secs {
                while out < window {
                    c.send_request_timeout(&[7u8; 64], T).unwrap();
                    out += 1;
                }
                c.recv_response_timeout(T).unwrap().into_result().unwrap();
                out -= 1;
                done += 1;
            }
            while out > 0 {
                c.recv_response_timeout(T).unwrap();
                out -= 1;
            }
            println!("{name:<26} {window:>4} {:>10.0}", done as f64 / secs);
        }
        drop(c);
        s.finish();
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!();
    println!("ratio reactor_c1_vs_serial {:.3}", p50[2] / p50[0]);
    println!(
        "ratio reactor_serial_mode_c1_vs_serial {:.3}",
        p50[1] / p50[0]
    );
}
