//! The reactor at one request in flight against a plain serial loop, interleaved, with the
//! client in a process of its own. Shared by `benches/reactor.rs` and the comparison program
//! (`benches/compare`), which include this file.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ringbell::channel::{
    AnyServer, Client, SendResponseError, Server, ServerConfig, Status, TransportKind,
};
use ringbell::reactor::{Reactor, Request, Responder, StopHandle, ThreadPool};

pub const T: Duration = Duration::from_secs(30);

pub fn work(body: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for round in 0..8u64 {
        h ^= round;
        for &b in body {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

pub fn hashing(req: Request, res: Responder) {
    let _ = res.respond(&work(&req.body).to_le_bytes());
}

/// Answers with the request's own bytes: the channel's cost alone.
pub fn echo(req: Request, res: Responder) {
    let _ = res.respond(&req.body);
}

pub fn sleeping(req: Request, res: Responder) {
    std::thread::sleep(Duration::from_millis(1));
    let _ = res.respond(&req.body);
}

enum Stop {
    Flag(Arc<AtomicBool>, Box<dyn Fn() + Send>),
    Reactor(StopHandle),
}

pub struct Running {
    pub path: PathBuf,
    stop: Stop,
    thread: JoinHandle<()>,
}

impl Running {
    pub fn finish(self) {
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
pub fn plain(path: &Path) -> Running {
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

pub fn reactor(path: &Path, pool: Option<usize>, sleepy: bool) -> Running {
    reactor_with(path, pool, if sleepy { sleeping } else { hashing }, Some(1))
}

/// A reactor serving `handler`, serial (`pool: None`) or with a pool of that many threads,
/// its thread on CPU `cpu` (or wherever the scheduler puts it).
pub fn reactor_with(
    path: &Path,
    pool: Option<usize>,
    handler: fn(Request, Responder),
    cpu: Option<usize>,
) -> Running {
    reactor_on(TransportKind::SharedMemory, path, pool, handler, cpu)
}

/// As [`reactor_with`], over the transport `kind`.
pub fn reactor_on(
    kind: TransportKind,
    path: &Path,
    pool: Option<usize>,
    handler: fn(Request, Responder),
    cpu: Option<usize>,
) -> Running {
    let server = AnyServer::bind(path, ServerConfig::default().transport(kind)).unwrap();
    let (stop, thread) = match pool {
        None => {
            let mut r = Reactor::new(server, handler).serial(true);
            (
                r.stop_handle(),
                std::thread::spawn(move || {
                    if let Some(cpu) = cpu {
                        pin(cpu);
                    }
                    drop(r.run())
                }),
            )
        }
        Some(n) => {
            let mut r = Reactor::new(server, handler).with_executor(ThreadPool::new(n));
            (
                r.stop_handle(),
                std::thread::spawn(move || {
                    if let Some(cpu) = cpu {
                        pin(cpu);
                    }
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
pub fn pin(cpu: usize) {
    // Online CPUs, not this thread's affinity (which an earlier pin, or a pinned parent, narrows).
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as usize;
    if n >= 2 {
        let mut set = rustix::thread::CpuSet::new();
        set.set(cpu % n);
        let _ = rustix::thread::sched_setaffinity(None, &set);
    }
}

pub fn pct(v: &mut [u32], p: f64) -> f64 {
    v.sort_unstable();
    f64::from(v[((v.len() - 1) as f64 * p) as usize]) / 1000.0
}

/// The client process of part 1: calls each server in turn, `batch` calls per round, and
/// writes every round trip (ns, u32 LE), server by server, to stdout.
pub fn client_process(args: &[String]) {
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

/// One request in flight against five servers in turn — a plain serial loop over `Server`'s
/// API, the reactor in serial mode, the reactor with a 2-thread pool (these three hash the
/// request), and the reactor with a 2-thread pool answering with the request's own bytes (the
/// channel's cost alone), over shared memory and over the socket transport — `rounds` rounds of
/// `batch` calls each, interleaved. The servers' reactor threads run on CPU 1; the client is
/// the process `client` starts (it must end up in [`client_process`] with the arguments
/// appended here), pinned to CPU 0. Returns each server's name, p50 and p99 in µs.
pub fn one_in_flight(
    dir: &Path,
    rounds: usize,
    batch: usize,
    mut client: std::process::Command,
) -> Vec<(&'static str, f64, f64)> {
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
        (
            "reactor + 2-thread pool, echo",
            reactor_with(&dir.join("echo.sock"), Some(2), echo, Some(1)),
        ),
        (
            "reactor + 2-thread pool, echo, socket transport",
            reactor_on(
                TransportKind::Socket,
                &dir.join("echo-socket.sock"),
                Some(2),
                echo,
                Some(1),
            ),
        ),
    ];
    // The client is a separate process (as in real use; it also keeps its spinning apart from
    // the servers' in the doorbell's per-process spin accounting).
    let out = client
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
    let res = servers
        .iter()
        .zip(&mut lat)
        .map(|((name, _), l)| (*name, pct(l, 0.5), pct(l, 0.99)))
        .collect();
    for (_, s) in servers {
        s.finish();
    }
    res
}

/// CLOCK_MONOTONIC in nanoseconds: one clock for every process of the machine.
pub fn mono_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// A client of [`many_in_flight`], unpinned: connects to `args[2]`, waits until the instant
/// `args[0]` (CLOCK_MONOTONIC ns), calls until `args[1]`, and writes every round trip (ns,
/// u32 LE) to stdout.
pub fn timed_client_process(args: &[String]) {
    let start: u64 = args[0].parse().unwrap();
    let end: u64 = args[1].parse().unwrap();
    let mut c = Client::connect(&args[2]).unwrap();
    let req = [7u8; 64];
    // Connected and warmed: then everyone starts together.
    for _ in 0..50 {
        c.call_timeout(&req, T).unwrap();
    }
    let now = mono_ns();
    if start > now {
        std::thread::sleep(Duration::from_nanos(start - now));
    }
    let mut lat = Vec::with_capacity(1 << 20);
    while mono_ns() < end {
        let t = Instant::now();
        c.call_timeout(&req, T).unwrap();
        lat.push(t.elapsed().as_nanos() as u32);
    }
    let out: Vec<u8> = lat.iter().flat_map(|ns| ns.to_le_bytes()).collect();
    std::io::Write::write_all(&mut std::io::stdout(), &out).unwrap();
}

/// `clients` client processes at once, each with one request in flight, against an echo
/// reactor (2-thread pool, threads unpinned) over shared memory and over the socket
/// transport, alternating: `rounds` rounds of `secs` seconds on each, every client calling
/// from one shared start instant to one shared end. `client()` makes the command of one
/// client process (it must end up in [`timed_client_process`]). Returns each transport's
/// name, median calls/s over the rounds (all clients' calls over the window), and p50/p99
/// round trip in µs over all calls.
pub fn many_in_flight(
    dir: &Path,
    clients: usize,
    rounds: usize,
    secs: f64,
    client: impl Fn() -> std::process::Command,
) -> Vec<(&'static str, f64, f64, f64)> {
    let servers = [
        (
            "shared memory",
            reactor_on(
                TransportKind::SharedMemory,
                &dir.join("many-shm.sock"),
                Some(2),
                echo,
                None,
            ),
        ),
        (
            "socket",
            reactor_on(
                TransportKind::Socket,
                &dir.join("many-socket.sock"),
                Some(2),
                echo,
                None,
            ),
        ),
    ];
    let window = Duration::from_secs_f64(secs).as_nanos() as u64;
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); servers.len()];
    let mut lat: Vec<Vec<u32>> = vec![Vec::new(); servers.len()];
    for _ in 0..rounds {
        for (k, (_, s)) in servers.iter().enumerate() {
            // Time enough to start every client process and warm it up.
            let start = mono_ns() + 300_000_000;
            let children: Vec<_> = (0..clients)
                .map(|_| {
                    client()
                        .arg(start.to_string())
                        .arg((start + window).to_string())
                        .arg(&s.path)
                        .stdout(std::process::Stdio::piped())
                        .stderr(std::process::Stdio::inherit())
                        .spawn()
                        .unwrap()
                })
                .collect();
            let mut calls = 0usize;
            for ch in children {
                let out = ch.wait_with_output().unwrap();
                assert!(out.status.success(), "a client process failed");
                let l: Vec<u32> = out
                    .stdout
                    .chunks_exact(4)
                    .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
                    .collect();
                calls += l.len();
                lat[k].extend(l);
            }
            rates[k].push(calls as f64 / secs);
        }
    }
    let res = servers
        .iter()
        .zip(rates.iter_mut().zip(&mut lat))
        .map(|((name, _), (r, l))| {
            r.sort_by(f64::total_cmp);
            (*name, r[r.len() / 2], pct(l, 0.5), pct(l, 0.99))
        })
        .collect();
    for (_, s) in servers {
        s.finish();
    }
    res
}
