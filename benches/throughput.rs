//! criterion benchmarks: SPSC streaming by frame size, fan-in and MPSC streaming by producer
//! count, cross-process ping-pong (spinning, sleeping, default settings).
//!
//! `cargo bench --bench throughput` (`-- --quick` for a short run). The side-by-side comparison
//! with peer crates is `benches/compare`; the reactor's cost is `benches/reactor.rs`.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use ringbell::doorbell::WaitOptions;
use ringbell::fanin::FanIn;
use ringbell::region::{HeapRegion, Region};
use ringbell::spsc::{self, Producer};
use ringbell::{OwnerId, RecvError, SendError};

const DEADLINE: Duration = Duration::from_secs(30);

/// Streams `iters` frames of `len` bytes through an in-process SPSC ring (spinning on
/// `Full`/`Empty`) and returns the consumer's time.
fn spsc_stream(iters: u64, len: usize) -> Duration {
    let cap = (len * 16).next_power_of_two().max(1 << 16);
    let (mut tx, mut rx) = spsc::channel(cap).unwrap();
    let t = std::thread::spawn(move || {
        let data = vec![1u8; len];
        for i in 0..iters {
            while let Err(SendError::Full) = tx.try_send(i as u32, &data) {
                std::hint::spin_loop();
            }
        }
    });
    let mut buf = vec![0u8; len];
    let start = Instant::now();
    for _ in 0..iters {
        loop {
            match rx.try_recv_into(&mut buf) {
                Ok(_) => break,
                Err(RecvError::Empty) => std::hint::spin_loop(),
                Err(e) => panic!("{e}"),
            }
        }
    }
    let d = start.elapsed();
    t.join().unwrap();
    d
}

fn spsc_sizes(c: &mut Criterion) {
    let mut g = c.benchmark_group("spsc_stream");
    for len in [8usize, 64, 1024, 64 << 10] {
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_with_input(BenchmarkId::from_parameter(len), &len, |b, &len| {
            b.iter_custom(|iters| spsc_stream(iters, len));
        });
    }
    g.finish();
}

/// `producers` threads each send `iters / producers` 64-byte frames into a fan-in.
fn fanin_stream(iters: u64, producers: usize) -> Duration {
    let bell = HeapRegion::new(&ringbell::doorbell::BellConfig).unwrap();
    let mut fanin = FanIn::new(bell.clone(), producers).unwrap();
    let per = iters / producers as u64 + 1;
    let threads: Vec<_> = (0..producers)
        .map(|_| {
            let ring = HeapRegion::new(&spsc::Config::new(1 << 16).shared_bell()).unwrap();
            fanin.add(ring.clone(), OwnerId::unique()).unwrap();
            let mut p =
                Producer::attach_shared_bell(ring, bell.clone(), OwnerId::unique()).unwrap();
            std::thread::spawn(move || {
                for i in 0..per {
                    while let Err(SendError::Full) = p.try_send(i as u32, &[1u8; 64]) {
                        std::hint::spin_loop();
                    }
                }
            })
        })
        .collect();
    let mut buf = [0u8; 64];
    let start = Instant::now();
    for _ in 0..per * producers as u64 {
        while fanin.try_recv_into(&mut buf).is_err() {
            std::hint::spin_loop();
        }
    }
    let d = start.elapsed();
    for t in threads {
        t.join().unwrap();
    }
    d.mul_f64(iters as f64 / (per * producers as u64) as f64)
}

/// The same into one MPSC ring.
fn mpsc_stream(iters: u64, producers: usize) -> Duration {
    let (mut rx, region) = ringbell::mpsc::channel(1 << 16).unwrap();
    let txs: Vec<_> = (0..producers)
        .map(|_| ringbell::mpsc::Producer::attach(region.clone(), OwnerId::unique()).unwrap())
        .collect();
    let per = iters / producers as u64 + 1;
    let threads: Vec<_> = txs
        .into_iter()
        .map(|mut p| {
            std::thread::spawn(move || {
                for i in 0..per {
                    while let Err(SendError::Full) = p.try_send(i as u32, &[1u8; 64]) {
                        std::hint::spin_loop();
                    }
                }
            })
        })
        .collect();
    let mut buf = [0u8; 64];
    let start = Instant::now();
    for _ in 0..per * producers as u64 {
        loop {
            match rx.try_recv_into(&mut buf) {
                Ok(_) => break,
                Err(RecvError::Empty) => std::hint::spin_loop(),
                Err(e) => panic!("{e}"),
            }
        }
    }
    let d = start.elapsed();
    for t in threads {
        t.join().unwrap();
    }
    d.mul_f64(iters as f64 / (per * producers as u64) as f64)
}

fn many_producers(c: &mut Criterion) {
    for (name, f) in [
        (
            "fanin_stream_64B",
            fanin_stream as fn(u64, usize) -> Duration,
        ),
        ("mpsc_stream_64B", mpsc_stream),
    ] {
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Elements(1));
        for producers in [1usize, 2, 4] {
            g.bench_with_input(
                BenchmarkId::new("producers", producers),
                &producers,
                |b, &n| {
                    b.iter_custom(|iters| f(iters, n));
                },
            );
        }
        g.finish();
    }
}

/// Round trips of 64 bytes with a child process (this benchmark, re-executed) echoing them.
fn pingpong(iters: u64, mode: &str) -> Duration {
    let a = Region::create(&spsc::Config::new(1 << 16)).unwrap();
    let b = Region::create(&spsc::Config::new(1 << 16)).unwrap();
    let mut tx = a.producer().unwrap();
    let mut rx = b.consumer().unwrap();
    let opts = wait_options(mode);
    tx.set_wait_options(opts);
    rx.set_wait_options(opts);
    let fds = [a.fd().as_raw_fd(), b.fd().as_raw_fd()];
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.env(
        "RINGBELL_BENCH_ECHO",
        format!("{} {} {mode}", fds[0], fds[1]),
    );
    // SAFETY: between fork and exec the closure only clears close-on-exec on two fds this
    // process keeps open until `spawn` returns (async-signal-safe fcntl calls).
    unsafe {
        cmd.pre_exec(move || {
            for fd in fds {
                rustix::io::fcntl_setfd(BorrowedFd::borrow_raw(fd), rustix::io::FdFlags::empty())?;
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let mut msg = [7u8; 64];
    let mut one = |msg: &mut [u8; 64]| {
        if mode == "spin" {
            while let Err(SendError::Full) = tx.try_send(1, msg) {}
            while rx.try_recv_into(msg).is_err() {
                std::hint::spin_loop();
            }
        } else {
            tx.send_timeout(1, msg, DEADLINE).unwrap();
            rx.recv_into_timeout(msg, DEADLINE).unwrap();
        }
    };
    for _ in 0..100 {
        one(&mut msg);
    }
    let start = Instant::now();
    for _ in 0..iters {
        one(&mut msg);
    }
    let d = start.elapsed();
    drop(tx);
    let _ = child.wait();
    d
}

fn wait_options(mode: &str) -> WaitOptions {
    match mode {
        "sleep" => WaitOptions::new().spin_budget(0),
        _ => WaitOptions::new(),
    }
}

/// The child of `pingpong`: echoes until the parent closes.
fn echo(spec: &str) {
    let v: Vec<&str> = spec.split(' ').collect();
    // SAFETY: the parent passed these fds by inheritance; nothing else here owns them.
    let (a, b) = unsafe {
        (
            OwnedFd::from_raw_fd(v[0].parse().unwrap()),
            OwnedFd::from_raw_fd(v[1].parse().unwrap()),
        )
    };
    let mut rx = Region::<ringbell::region::Spsc>::open(a)
        .unwrap()
        .consumer()
        .unwrap();
    let mut tx = Region::<ringbell::region::Spsc>::open(b)
        .unwrap()
        .producer()
        .unwrap();
    let opts = wait_options(v[2]);
    rx.set_wait_options(opts);
    tx.set_wait_options(opts);
    let mut buf = [0u8; 64];
    loop {
        let got = if v[2] == "spin" {
            loop {
                match rx.try_recv_into(&mut buf) {
                    Err(RecvError::Empty) => std::hint::spin_loop(),
                    r => break r,
                }
            }
        } else {
            rx.recv_into_timeout(&mut buf, DEADLINE)
        };
        let Ok((tag, _)) = got else { return };
        if tx.send_timeout(tag, &buf, DEADLINE).is_err() {
            return;
        }
    }
}

fn pingpongs(c: &mut Criterion) {
    let mut g = c.benchmark_group("pingpong_64B_cross_process");
    for mode in ["spin", "sleep", "default"] {
        if mode == "sleep" {
            // Every message sleeps (~40 µs here): fewer samples.
            g.sample_size(10);
        }
        g.bench_function(mode, |b| b.iter_custom(|iters| pingpong(iters, mode)));
    }
    g.finish();
}

criterion::criterion_group!(benches, spsc_sizes, many_producers, pingpongs);

fn main() {
    if let Ok(spec) = std::env::var("RINGBELL_BENCH_ECHO") {
        return echo(&spec);
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
