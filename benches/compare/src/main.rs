//! ringbell side by side with what its users would pick instead, every case in this one run.
//!
//! `cargo run --release --manifest-path benches/compare/Cargo.toml` (add `-- --quick` for a
//! run under a minute). Prints a table (medians and p99s), then one `ratio NAME VALUE` line per
//! comparison (this crate's figure over the other's; throughput as a rate, latency as a time)
//! and `figure NAME VALUE` lines.
//!
//! Cross-process cases start a child process (this program, re-executed) that gets its shared
//! memory, pipes or socket by fd inheritance. The parent is pinned to CPU 0 and the child to
//! CPU 1 when there are two CPUs.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ringbell::doorbell::WaitOptions;
use ringbell::region::Region;
use ringbell::spsc;
use ringbell::{RecvError, SendError};

const DEADLINE: Duration = Duration::from_secs(30);

#[path = "../../common/reactor_c1.rs"]
mod reactor_c1;

mod asyncbench;

mod cbench;

/// Run sizes: `--quick` keeps the whole run under a minute.
#[derive(Clone, Copy)]
struct Sizes {
    reps: usize,
    stream: u64,
    big: u64,
    trips: usize,
    sleepy_trips: usize,
    idle: Duration,
}

fn sizes(quick: bool) -> Sizes {
    if quick {
        Sizes {
            reps: 3,
            stream: 300_000,
            big: 2_000,
            trips: 10_000,
            sleepy_trips: 500,
            idle: Duration::from_secs(1),
        }
    } else {
        Sizes {
            reps: 9,
            stream: 2_000_000,
            big: 20_000,
            trips: 100_000,
            sleepy_trips: 4_000,
            idle: Duration::from_secs(5),
        }
    }
}

// ---------------------------------------------------------------- statistics

/// Median and p99 of samples (ns).
#[derive(Clone, Copy, Debug)]
struct Stat {
    p50: f64,
    p99: f64,
}

fn stat(mut v: Vec<f64>) -> Stat {
    v.sort_by(f64::total_cmp);
    let at = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    Stat {
        p50: at(0.5),
        p99: at(0.99),
    }
}

/// Throughput repetitions: ns per item of each repetition. p50 is the median repetition, p99
/// the slowest (with few repetitions).
/// Runs every case once per repetition, in turn, so that a change of the machine's speed
/// during the run (these VMs switch for minutes at a time) falls on every case alike.
fn interleaved(reps: usize, items: u64, runs: &mut [&mut dyn FnMut() -> Duration]) -> Vec<Stat> {
    let mut v: Vec<Vec<f64>> = runs.iter().map(|_| Vec::with_capacity(reps)).collect();
    for _ in 0..reps {
        for (k, run) in runs.iter_mut().enumerate() {
            v[k].push(run().as_nanos() as f64 / items as f64);
        }
    }
    v.into_iter().map(stat).collect()
}

// ---------------------------------------------------------------- placement and processes

fn pin(cpu: usize) {
    // Online CPUs, not this thread's affinity (which an earlier pin, or a pinned parent, narrows).
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as usize;
    if n >= 2 {
        let mut set = rustix::thread::CpuSet::new();
        set.set(cpu % n);
        let _ = rustix::thread::sched_setaffinity(None, &set);
    }
}

/// Re-executes this program as `child KIND` with `fds` inherited.
fn spawn_child(kind: &str, fds: &[RawFd], extra: &[String]) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.arg("child")
        .arg(kind)
        .args(fds.iter().map(|f| f.to_string()))
        .args(extra);
    let fds = fds.to_vec();
    // SAFETY: between fork and exec the closure only clears close-on-exec on fds the parent
    // keeps open until `spawn` returns (async-signal-safe fcntl calls).
    unsafe {
        cmd.pre_exec(move || {
            for &fd in &fds {
                rustix::io::fcntl_setfd(BorrowedFd::borrow_raw(fd), rustix::io::FdFlags::empty())?;
            }
            Ok(())
        });
    }
    cmd.spawn().unwrap()
}

fn take_fd(s: &str) -> OwnedFd {
    // SAFETY: the parent passed this fd by inheritance; nothing else here owns it.
    unsafe { OwnedFd::from_raw_fd(s.parse().unwrap()) }
}

/// A 4 KiB shared page for the floors, as a memfd mapped here.
struct Page {
    fd: OwnedFd,
    ptr: *mut u8,
}

impl Page {
    fn new() -> Self {
        let fd = rustix::fs::memfd_create("floor", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        rustix::fs::ftruncate(&fd, 4096).unwrap();
        Self::map(fd)
    }
    fn map(fd: OwnedFd) -> Self {
        use rustix::mm::{MapFlags, ProtFlags, mmap};
        // SAFETY: a fresh shared mapping of a 4 KiB memfd nobody truncates.
        let ptr = unsafe {
            mmap(
                std::ptr::null_mut(),
                4096,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                &fd,
                0,
            )
        }
        .unwrap()
        .cast::<u8>();
        Self { fd, ptr }
    }
    fn word64(&self, off: usize) -> &AtomicU64 {
        // SAFETY: in bounds, 8-aligned, shared memory only accessed atomically here.
        unsafe { &*self.ptr.add(off).cast::<AtomicU64>() }
    }
    fn word32(&self, off: usize) -> &AtomicU32 {
        // SAFETY: as above, 4-aligned.
        unsafe { &*self.ptr.add(off).cast::<AtomicU32>() }
    }
    /// Copies 64 bytes in at `off` (volatile: the peer reads them after the flag).
    fn put(&self, off: usize, src: &[u8; 64]) {
        // SAFETY: in bounds; the protocol gives this side exclusive use of the slot until it
        // publishes the flag with Release.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.add(off), 64) }
    }
    fn get(&self, off: usize, dst: &mut [u8; 64]) {
        // SAFETY: as above, after the Acquire of the peer's flag.
        unsafe { std::ptr::copy_nonoverlapping(self.ptr.add(off), dst.as_mut_ptr(), 64) }
    }
}

// Offsets in the floor page.
const PING: usize = 0;
const PONG: usize = 128;
const PING_DATA: usize = 256;
const PONG_DATA: usize = 512;

// ---------------------------------------------------------------- children

fn child(args: &[String]) {
    pin(1);
    match args[0].as_str() {
        "atomic" => {
            let page = Page::map(take_fd(&args[1]));
            let mut buf = [0u8; 64];
            for i in 1.. {
                while page.word64(PING).load(Ordering::Acquire) != i {
                    if page.word64(PING).load(Ordering::Relaxed) == u64::MAX {
                        return;
                    }
                    std::hint::spin_loop();
                }
                page.get(PING_DATA, &mut buf);
                page.put(PONG_DATA, &buf);
                page.word64(PONG).store(i, Ordering::Release);
            }
        }
        "futex" => {
            let page = Page::map(take_fd(&args[1]));
            let mut buf = [0u8; 64];
            for i in 1u32.. {
                loop {
                    let v = page.word32(PING).load(Ordering::Acquire);
                    if v == i {
                        break;
                    }
                    if v == u32::MAX {
                        return;
                    }
                    let _ = rustix::thread::futex::wait(
                        page.word32(PING),
                        rustix::thread::futex::Flags::empty(),
                        v,
                        None,
                    );
                }
                page.get(PING_DATA, &mut buf);
                page.put(PONG_DATA, &buf);
                page.word32(PONG).store(i, Ordering::Release);
                let _ = rustix::thread::futex::wake(
                    page.word32(PONG),
                    rustix::thread::futex::Flags::empty(),
                    1,
                );
            }
        }
        "ringbell" => {
            let mut rx = Region::<ringbell::region::Spsc>::open(take_fd(&args[1]))
                .unwrap()
                .consumer()
                .unwrap();
            let mut tx = Region::<ringbell::region::Spsc>::open(take_fd(&args[2]))
                .unwrap()
                .producer()
                .unwrap();
            let mode = args[3].as_str();
            let opts = match mode {
                "sleep" => WaitOptions::new().spin_budget(0),
                _ => WaitOptions::new(),
            };
            rx.set_wait_options(opts);
            tx.set_wait_options(opts);
            let mut buf = [0u8; 64];
            loop {
                let (tag, _) = if mode == "spin" {
                    loop {
                        match rx.try_recv_into(&mut buf) {
                            Ok(x) => break x,
                            Err(RecvError::Empty) => std::hint::spin_loop(),
                            Err(_) => return,
                        }
                    }
                } else {
                    match rx.recv_into_timeout(&mut buf, DEADLINE) {
                        Ok(x) => x,
                        Err(_) => return,
                    }
                };
                if mode == "spin" {
                    while let Err(SendError::Full) = tx.try_send(tag, &buf) {}
                } else if tx.send_timeout(tag, &buf, DEADLINE).is_err() {
                    return;
                }
            }
        }
        "stream" => {
            // Reads and writes 64-byte messages back (UDS or pipe).
            let mut r = std::fs::File::from(take_fd(&args[1]));
            let mut w = std::fs::File::from(take_fd(&args[2]));
            let mut buf = [0u8; 64];
            while r.read_exact(&mut buf).is_ok() {
                if w.write_all(&buf).is_err() {
                    return;
                }
            }
        }
        "iceoryx2" => iox::pong(&args[1]),
        "reactor-client" => reactor_c1::client_process(&args[1..]),
        "async" => asyncbench::child(&args[1..]),
        "timed-client" => reactor_c1::timed_client_process(&args[1..]),
        "syscalls-server" => syscalls_server(
            args[1].parse().unwrap(),
            args[2] == "pinned",
            args.get(3).map_or("blocking", String::as_str),
        ),
        "syscalls-client" => {
            match args[3].as_str() {
                "pinned" => pin(0),
                _ => unpin(),
            }
            let calls: u64 = args[2].parse().unwrap();
            let req = [7u8; 64];
            if args.get(4).map(String::as_str) == Some("async") {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    let c = ringbell::channel::AsyncClient::connect(&args[1])
                        .await
                        .unwrap();
                    for _ in 0..calls {
                        std::hint::black_box(c.call_timeout(&req, DEADLINE).await.unwrap());
                    }
                });
                return;
            }
            let mut c = ringbell::channel::Client::connect(&args[1]).unwrap();
            for _ in 0..calls {
                std::hint::black_box(c.call_timeout(&req, DEADLINE).unwrap());
            }
        }
        other => panic!("unknown child {other}"),
    }
}

// ---------------------------------------------------------------- ping-pong cases

fn trips(n: usize, mut one: impl FnMut(&mut [u8; 64])) -> Stat {
    let mut msg = [7u8; 64];
    for _ in 0..n / 10 {
        one(&mut msg); // warm-up
    }
    let mut v = Vec::with_capacity(n);
    for i in 0..n {
        msg[0] = i as u8;
        let t = Instant::now();
        one(&mut msg);
        v.push(t.elapsed().as_nanos() as f64);
    }
    stat(v)
}

fn pingpong_atomic(n: usize) -> Stat {
    let page = Page::new();
    let mut child = spawn_child("atomic", &[page.fd.as_raw_fd()], &[]);
    let mut i = 0u64;
    let s = trips(n, |msg| {
        i += 1;
        page.put(PING_DATA, msg);
        page.word64(PING).store(i, Ordering::Release);
        while page.word64(PONG).load(Ordering::Acquire) != i {
            std::hint::spin_loop();
        }
        page.get(PONG_DATA, msg);
    });
    page.word64(PING).store(u64::MAX, Ordering::Release);
    let _ = child.wait();
    s
}

fn pingpong_futex(n: usize) -> Stat {
    let page = Page::new();
    let mut child = spawn_child("futex", &[page.fd.as_raw_fd()], &[]);
    let mut i = 0u32;
    let s = trips(n, |msg| {
        i += 1;
        page.put(PING_DATA, msg);
        page.word32(PING).store(i, Ordering::Release);
        let _ = rustix::thread::futex::wake(
            page.word32(PING),
            rustix::thread::futex::Flags::empty(),
            1,
        );
        loop {
            let v = page.word32(PONG).load(Ordering::Acquire);
            if v == i {
                break;
            }
            let _ = rustix::thread::futex::wait(
                page.word32(PONG),
                rustix::thread::futex::Flags::empty(),
                v,
                None,
            );
        }
        page.get(PONG_DATA, msg);
    });
    page.word32(PING).store(u32::MAX, Ordering::Release);
    let _ =
        rustix::thread::futex::wake(page.word32(PING), rustix::thread::futex::Flags::empty(), 1);
    let _ = child.wait();
    s
}

/// ringbell ping-pong over two SPSC rings; `mode`: spin (try_ calls in a loop), sleep (spin
/// budget 0: every message sleeps), default (the blocking calls with default settings).
fn pingpong_ringbell(n: usize, mode: &str) -> (Stat, ringbell::doorbell::WaitStats) {
    let a = Region::create(&spsc::Config::new(1 << 16)).unwrap();
    let b = Region::create(&spsc::Config::new(1 << 16)).unwrap();
    let mut tx = a.producer().unwrap();
    let mut rx = b.consumer().unwrap();
    let opts = if mode == "sleep" {
        WaitOptions::new().spin_budget(0)
    } else {
        WaitOptions::new()
    };
    tx.set_wait_options(opts);
    rx.set_wait_options(opts);
    let mut child = spawn_child(
        "ringbell",
        &[a.fd().as_raw_fd(), b.fd().as_raw_fd()],
        &[mode.to_string()],
    );
    let s = trips(n, |msg| {
        if mode == "spin" {
            while let Err(SendError::Full) = tx.try_send(1, msg) {}
            loop {
                match rx.try_recv_into(msg) {
                    Ok(_) => break,
                    Err(RecvError::Empty) => std::hint::spin_loop(),
                    Err(e) => panic!("{e}"),
                }
            }
        } else {
            tx.send_timeout(1, msg, DEADLINE).unwrap();
            rx.recv_into_timeout(msg, DEADLINE).unwrap();
        }
    });
    let stats = rx.stats();
    drop(tx);
    let _ = child.wait();
    (s, stats)
}

fn pingpong_stream(n: usize, uds: bool) -> Stat {
    let (mut w, r_child, w_child, mut r): (std::fs::File, OwnedFd, OwnedFd, std::fs::File);
    if uds {
        let (p, c) = UnixStream::pair().unwrap();
        let c2 = c.try_clone().unwrap();
        let p2 = p.try_clone().unwrap();
        w = std::fs::File::from(OwnedFd::from(p));
        r = std::fs::File::from(OwnedFd::from(p2));
        r_child = OwnedFd::from(c);
        w_child = OwnedFd::from(c2);
    } else {
        let (r1, w1) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
        let (r2, w2) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
        w = std::fs::File::from(w1);
        r = std::fs::File::from(r2);
        r_child = r1;
        w_child = w2;
    }
    let mut child = spawn_child("stream", &[r_child.as_raw_fd(), w_child.as_raw_fd()], &[]);
    drop((r_child, w_child));
    let s = trips(n, |msg| {
        w.write_all(msg).unwrap();
        r.read_exact(msg).unwrap();
    });
    drop((w, r)); // EOF for the child
    let _ = child.wait();
    s
}

// ---------------------------------------------------------------- in-process streaming

/// ringbell SPSC streaming of `len`-byte frames; returns the time for `n` frames.
fn stream_ringbell(n: u64, len: usize, cap: usize) -> Duration {
    let (mut tx, mut rx) = spsc::channel(cap).unwrap();
    let t = std::thread::spawn(move || {
        pin(1);
        let data = vec![1u8; len];
        for i in 0..n {
            while let Err(SendError::Full) = tx.try_send(i as u32, &data) {
                std::hint::spin_loop();
            }
        }
    });
    let mut buf = vec![0u8; len];
    let start = Instant::now();
    for _ in 0..n {
        loop {
            match rx.try_recv_into(&mut buf) {
                // Read, as a user would: otherwise the copy into `buf` may be dropped as a
                // dead store and the case measures a producer alone.
                Ok(_) => {
                    std::hint::black_box(&mut buf);
                    break;
                }
                Err(RecvError::Empty) => std::hint::spin_loop(),
                Err(e) => panic!("{e}"),
            }
        }
    }
    let d = start.elapsed();
    t.join().unwrap();
    d
}

/// 64 B frames through a 64 KiB ring with the blocking calls (`send`/`recv_into`, default
/// settings: spin, then sleep), threads placed by `place`; or, with `spin`, the `try_` calls
/// in a loop, placed the same way.
fn stream_ringbell_placed(n: u64, place: Place, spin: bool) -> Duration {
    let (mut tx, mut rx) = spsc::channel(1 << 16).unwrap();
    let t = std::thread::spawn(move || {
        place.producer();
        let data = [1u8; 64];
        for i in 0..n {
            if spin {
                while let Err(SendError::Full) = tx.try_send(i as u32, &data) {
                    std::hint::spin_loop();
                }
            } else {
                tx.send_timeout(i as u32, &data, DEADLINE).unwrap();
            }
        }
    });
    let d = std::thread::spawn(move || {
        place.consumer();
        let mut buf = [0u8; 64];
        let start = Instant::now();
        for _ in 0..n {
            if spin {
                loop {
                    match rx.try_recv_into(&mut buf) {
                        Ok(_) => break,
                        Err(RecvError::Empty) => std::hint::spin_loop(),
                        Err(e) => panic!("{e}"),
                    }
                }
            } else {
                rx.recv_into_timeout(&mut buf, DEADLINE).unwrap();
            }
            std::hint::black_box(&mut buf);
        }
        start.elapsed()
    })
    .join()
    .unwrap();
    t.join().unwrap();
    d
}

/// The same with the batch calls: up to 32 frames per publish and per release.
fn stream_ringbell_batched(n: u64) -> Duration {
    let (mut tx, mut rx) = spsc::channel(1 << 16).unwrap();
    let t = std::thread::spawn(move || {
        pin(1);
        // Not on this thread's stack: there, where the payload lands depends on the stack
        // frames of the build, and at some addresses its reloads collide with the stores
        // into the ring (4 KiB aliasing). Seen: 42 vs 26 M/s between two builds whose batch
        // path was the same code.
        static DATA: [u8; 64] = [1u8; 64];
        let data = std::hint::black_box(&DATA);
        let mut i = 0u64;
        while i < n {
            let k = (n - i).min(32);
            match tx.try_send_batch((0..k).map(|j| ((i + j) as u32, &data[..]))) {
                Ok(sent) => i += sent as u64,
                Err(SendError::Full) => std::hint::spin_loop(),
                Err(e) => panic!("{e}"),
            }
        }
    });
    let mut buf = [0u8; 64];
    let mut got = 0u64;
    let start = Instant::now();
    while got < n {
        match rx.try_recv_batch_into(&mut buf, 32, |_, d| {
            std::hint::black_box(d);
        }) {
            Ok(k) => got += k as u64,
            Err(RecvError::Empty) => std::hint::spin_loop(),
            Err(e) => panic!("{e}"),
        }
    }
    let d = start.elapsed();
    t.join().unwrap();
    d
}

// rtrb and ArrayQueue each get a loop of their own, not one generic harness: through
// closures rtrb measured at half its speed here, which would flatter ringbell.
/// rtrb push/pop of `[u8; L]` items through a ring of `cap_bytes` bytes (`cap_bytes / L`
/// slots: the same memory as ringbell's ring of that capacity).
fn stream_rtrb<const L: usize>(n: u64, cap_bytes: usize) -> Duration {
    let (mut tx, mut rx) = rtrb::RingBuffer::<[u8; L]>::new(cap_bytes / L);
    let t = std::thread::spawn(move || {
        pin(1);
        for i in 0..n {
            let mut item = [1u8; L];
            item[0] = i as u8;
            while let Err(rtrb::PushError::Full(back)) = tx.push(item) {
                item = back;
                std::hint::spin_loop();
            }
        }
    });
    let start = Instant::now();
    for _ in 0..n {
        loop {
            if let Ok(item) = rx.pop() {
                std::hint::black_box(item);
                break;
            }
            std::hint::spin_loop();
        }
    }
    let d = start.elapsed();
    t.join().unwrap();
    d
}

fn stream_arrayqueue(n: u64) -> Duration {
    let q = Arc::new(crossbeam_queue::ArrayQueue::<[u8; 64]>::new(1024));
    let q2 = q.clone();
    let t = std::thread::spawn(move || {
        pin(1);
        for i in 0..n {
            let mut item = [1u8; 64];
            item[0] = i as u8;
            while let Err(back) = q2.push(item) {
                item = back;
                std::hint::spin_loop();
            }
        }
    });
    let start = Instant::now();
    for _ in 0..n {
        loop {
            if let Some(item) = q.pop() {
                std::hint::black_box(item);
                break;
            }
            std::hint::spin_loop();
        }
    }
    let d = start.elapsed();
    t.join().unwrap();
    d
}

/// A bare two-thread copy-through of 64 KiB frames: 16 slots, a flag each.
fn stream_copythrough(n: u64) -> Duration {
    const SLOTS: usize = 16;
    const LEN: usize = 64 << 10;
    struct Slots {
        data: Vec<std::cell::UnsafeCell<Box<[u8]>>>,
        full: Vec<AtomicBool>,
    }
    // SAFETY: a slot's bytes are written only while its flag is clear (by the producer) and
    // read only while it is set (by the consumer); the flag's Release/Acquire orders them.
    unsafe impl Sync for Slots {}
    let slots = Arc::new(Slots {
        data: (0..SLOTS)
            .map(|_| std::cell::UnsafeCell::new(vec![0u8; LEN].into_boxed_slice()))
            .collect(),
        full: (0..SLOTS).map(|_| AtomicBool::new(false)).collect(),
    });
    let s2 = slots.clone();
    let t = std::thread::spawn(move || {
        pin(1);
        let src = vec![3u8; LEN];
        for i in 0..n as usize {
            let k = i % SLOTS;
            while s2.full[k].load(Ordering::Acquire) {
                std::hint::spin_loop();
            }
            // SAFETY: the flag is clear: the consumer is done with this slot.
            unsafe { (*s2.data[k].get()).copy_from_slice(&src) };
            s2.full[k].store(true, Ordering::Release);
        }
    });
    let mut dst = vec![0u8; LEN];
    let start = Instant::now();
    for i in 0..n as usize {
        let k = i % SLOTS;
        while !slots.full[k].load(Ordering::Acquire) {
            std::hint::spin_loop();
        }
        // SAFETY: the flag is set: the producer finished this slot.
        dst.copy_from_slice(unsafe { &*slots.data[k].get() });
        slots.full[k].store(false, Ordering::Release);
    }
    let d = start.elapsed();
    t.join().unwrap();
    std::hint::black_box(&dst);
    d
}

/// User plus system CPU time of this process (`RUSAGE_SELF`) or thread (`RUSAGE_THREAD`).
fn rusage(who: libc::c_int) -> Duration {
    // SAFETY: `getrusage` fills the zeroed struct we pass.
    let u = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(who, &mut u);
        u
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

fn cpu_time() -> Duration {
    rusage(libc::RUSAGE_SELF)
}

/// Where the threads of a many-producer case run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    /// Wherever the scheduler puts them (every thread may run on every CPU): what a user's
    /// threads get.
    Free,
    /// The consumer on CPU 0, every producer on CPU 1.
    Pinned,
}

impl Place {
    fn consumer(self) {
        match self {
            Self::Free => unpin(),
            Self::Pinned => pin(0),
        }
    }
    fn producer(self) {
        match self {
            Self::Free => unpin(),
            Self::Pinned => pin(1),
        }
    }
}

/// Lets the calling thread run on every online CPU.
fn unpin() {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as usize;
    let mut set = rustix::thread::CpuSet::new();
    for cpu in 0..n {
        set.set(cpu);
    }
    let _ = rustix::thread::sched_setaffinity(None, &set);
}

/// Runs `producers` and `consumer`, each on a thread of its own placed by `place`: (wall
/// time until the consumer is done, CPU time of the whole process meanwhile).
fn many_to_one(
    place: Place,
    producers: Vec<Box<dyn FnOnce() + Send>>,
    consumer: Box<dyn FnOnce() + Send>,
) -> (Duration, Duration) {
    let cpu0 = cpu_time();
    let start = Instant::now();
    let threads: Vec<_> = producers
        .into_iter()
        .map(|p| {
            std::thread::spawn(move || {
                place.producer();
                p()
            })
        })
        .collect();
    std::thread::spawn(move || {
        place.consumer();
        consumer()
    })
    .join()
    .unwrap();
    let wall = start.elapsed();
    for t in threads {
        t.join().unwrap();
    }
    (wall, cpu_time() - cpu0)
}

/// `sched_yield`s and sleeps the ringbell ends of the many-producer cases made (from their
/// `WaitStats`), for the yields-per-message figure.
static MANY_YIELDS: AtomicU64 = AtomicU64::new(0);
static MANY_SLEEPS: AtomicU64 = AtomicU64::new(0);

fn count_waits(s: ringbell::doorbell::WaitStats) {
    MANY_YIELDS.fetch_add(s.yields, Ordering::Relaxed);
    MANY_SLEEPS.fetch_add(s.sleeps, Ordering::Relaxed);
}

/// A producer's job: `per` 64-byte frames through `send`, then its wait counters counted.
fn sending<P: Send + 'static>(
    mut tx: P,
    per: u64,
    send: fn(&mut P, u32, &[u8]) -> Result<(), SendError>,
    stats: fn(&P) -> ringbell::doorbell::WaitStats,
) -> Box<dyn FnOnce() + Send> {
    Box::new(move || {
        let data = [1u8; 64];
        for i in 0..per {
            send(&mut tx, i as u32, &data).unwrap();
        }
        count_waits(stats(&tx));
    })
}

/// MPSC, `p` producer threads, 64 B, blocking calls with default settings on every side:
/// (wall time, CPU time) for `n` messages.
fn mpsc_ringbell(n: u64, p: usize, place: Place) -> (Duration, Duration) {
    let (mut rx, region) = ringbell::mpsc::channel(1 << 16).unwrap();
    let per = n / p as u64;
    let producers = (0..p)
        .map(|_| {
            let tx = ringbell::mpsc::Producer::attach(region.clone(), ringbell::OwnerId::unique())
                .unwrap();
            sending(
                tx,
                per,
                |tx, i, data| tx.send_timeout(i, data, DEADLINE),
                |tx| tx.stats(),
            )
        })
        .collect();
    let total = per * p as u64;
    let consumer = Box::new(move || {
        let mut buf = [0u8; 64];
        for _ in 0..total {
            rx.recv_into_timeout(&mut buf, DEADLINE).unwrap();
            std::hint::black_box(&mut buf);
        }
        count_waits(rx.stats());
    });
    many_to_one(place, producers, consumer)
}

/// The same producers, each with an SPSC ring of its own into one fan-in (the crate's answer
/// for producers that need not share a ring): (wall time, CPU time).
fn fanin_ringbell(n: u64, p: usize, place: Place) -> (Duration, Duration) {
    use ringbell::fanin::FanIn;
    use ringbell::region::HeapRegion;
    let bell = HeapRegion::new(&ringbell::doorbell::BellConfig).unwrap();
    let mut fanin = FanIn::new(bell.clone(), p).unwrap();
    let per = n / p as u64;
    let producers = (0..p)
        .map(|_| {
            let ring = HeapRegion::new(&spsc::Config::new(1 << 16).shared_bell()).unwrap();
            fanin
                .add(ring.clone(), ringbell::OwnerId::unique())
                .unwrap();
            let tx =
                spsc::Producer::attach_shared_bell(ring, bell.clone(), ringbell::OwnerId::unique())
                    .unwrap();
            sending(
                tx,
                per,
                |tx, i, data| tx.send_timeout(i, data, DEADLINE),
                |tx| tx.stats(),
            )
        })
        .collect();
    let total = per * p as u64;
    let consumer = Box::new(move || {
        let mut buf = [0u8; 64];
        let mut got = 0;
        while got < total {
            match fanin.recv_into_timeout(&mut buf, DEADLINE) {
                Ok(_) => {
                    std::hint::black_box(&mut buf);
                    got += 1;
                }
                // A producer that finished closed its ring: reported once, after its frames.
                Err(ringbell::fanin::FanInError::Closed(_)) => {}
                Err(e) => panic!("{e}"),
            }
        }
        count_waits(fanin.stats());
    });
    many_to_one(place, producers, consumer)
}

/// crossbeam-channel `bounded(1024)` of `[u8; 64]` (64 KiB, as ringbell's ring), the same
/// producers and placement: (wall time, CPU time).
fn mpsc_crossbeam(n: u64, p: usize, place: Place) -> (Duration, Duration) {
    let (tx, rx) = crossbeam_channel::bounded::<[u8; 64]>(1024);
    let per = n / p as u64;
    let producers = (0..p)
        .map(|_| {
            let tx = tx.clone();
            Box::new(move || {
                for i in 0..per {
                    let mut item = [1u8; 64];
                    item[0] = i as u8;
                    tx.send(item).unwrap();
                }
            }) as Box<dyn FnOnce() + Send>
        })
        .collect();
    drop(tx);
    let total = per * p as u64;
    let consumer = Box::new(move || {
        for _ in 0..total {
            std::hint::black_box(rx.recv().unwrap());
        }
    });
    many_to_one(place, producers, consumer)
}

// ---------------------------------------------------------------- figures

/// CPU an idle consumer burns with default settings, in percent of one core.
fn idle_cpu(d: Duration) -> f64 {
    let (_tx, mut rx) = spsc::channel(4096).unwrap();
    let t = std::thread::spawn(move || {
        let tid_cpu = || rusage(libc::RUSAGE_THREAD);
        let c0 = tid_cpu();
        let start = Instant::now();
        let mut buf = [0u8; 64];
        while start.elapsed() < d {
            let _ = rx.recv_into_timeout(&mut buf, d.saturating_sub(start.elapsed()));
        }
        (tid_cpu() - c0).as_secs_f64() / start.elapsed().as_secs_f64() * 100.0
    });
    t.join().unwrap()
}

/// CPU a reactor with a 2-thread pool (so with its watcher thread) and four connected idle
/// clients burns, in percent of one core: the whole process's CPU over the period, nothing
/// else running.
fn idle_reactor_cpu(d: Duration) -> f64 {
    let dir = std::env::temp_dir().join(format!("ringbell-idle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let running = reactor_c1::reactor(&dir.join("idle.sock"), Some(2), false);
    let clients: Vec<_> = (0..4)
        .map(|_| ringbell::channel::Client::connect(dir.join("idle.sock")).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200)); // settle: spinning ends, sleeps begin
    let c0 = cpu_time();
    let start = Instant::now();
    std::thread::sleep(d);
    let pct = (cpu_time() - c0).as_secs_f64() / start.elapsed().as_secs_f64() * 100.0;
    drop(clients);
    running.finish();
    let _ = std::fs::remove_dir_all(&dir);
    pct
}

/// Streams frames through a small ring with the default blocking calls; returns, for each
/// direction, wake system calls made minus sleeps the other side announced (≤ 0 is the rule).
fn wakes_minus_sleeps(n: u64) -> i64 {
    let (mut tx, mut rx) = spsc::channel(4096).unwrap();
    let t = std::thread::spawn(move || {
        for i in 0..n {
            tx.send_timeout(i as u32, &[0u8; 64], DEADLINE).unwrap();
        }
        tx.stats()
    });
    let mut buf = [0u8; 64];
    for _ in 0..n {
        rx.recv_into_timeout(&mut buf, DEADLINE).unwrap();
    }
    let p = t.join().unwrap();
    let c = rx.stats();
    (p.wakes as i64 - c.sleeps as i64).max(c.wakes as i64 - p.sleeps as i64)
}

/// System calls per `Client::call` at one request in flight, client and server processes
/// together, as the kernel counts them: `perf stat -e raw_syscalls:sys_enter` over this
/// program re-executed as a server process that starts a client process making `calls`
/// calls, for two numbers of calls; the difference in system calls over the difference in
/// calls (so that starting, connecting and stopping cancel out). The median of `reps` pairs.
/// `None` without a working `perf`.
fn syscalls_per_call(reps: usize, pinned: bool) -> Option<f64> {
    syscalls_per_call_of(reps, pinned, "blocking")
}

/// As [`syscalls_per_call`], with the client making its calls the way `how` says:
/// `blocking` (`Client::call`) or `async` (`AsyncClient::call` from one task of tokio's
/// default runtime; its yields are `epoll_wait`s and are counted).
fn syscalls_per_call_of(reps: usize, pinned: bool, how: &str) -> Option<f64> {
    const FEW: u64 = 20_000;
    const MANY: u64 = 220_000;
    let count = |calls: u64| -> Option<u64> {
        let out = Command::new("perf")
            .args(["stat", "-x,", "-e", "raw_syscalls:sys_enter", "--"])
            .arg(std::env::current_exe().unwrap())
            .args(["child", "syscalls-server", &calls.to_string()])
            .arg(if pinned { "pinned" } else { "free" })
            .arg(how)
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .find(|l| l.contains("raw_syscalls:sys_enter"))?
            .split(',')
            .next()?
            .trim()
            .parse()
            .ok()
    };
    let mut v = Vec::new();
    for _ in 0..reps {
        let (few, many) = (count(FEW)?, count(MANY)?);
        v.push((many as f64 - few as f64) / (MANY - FEW) as f64);
    }
    Some(stat(v).p50)
}

/// The server process of [`syscalls_per_call`]: a reactor with a 2-thread pool answering
/// with the request's bytes, default settings, and one client process making `calls` calls;
/// the reactor thread on CPU 1 and the client on CPU 0, or (`pinned` false) every thread
/// wherever the scheduler puts it.
fn syscalls_server(calls: u64, pinned: bool, how: &str) {
    if !pinned {
        unpin();
    }
    let dir = std::env::temp_dir().join(format!("ringbell-syscalls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("s.sock");
    let running = reactor_c1::reactor_with(&path, Some(2), reactor_c1::echo, pinned.then_some(1));
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["child", "syscalls-client"])
        .arg(&path)
        .arg(calls.to_string())
        .arg(if pinned { "pinned" } else { "free" })
        .arg(how)
        .status()
        .unwrap();
    assert!(status.success(), "the client process failed");
    running.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// Own RSS growth from creating a 32 MiB ring (and attaching both ends).
fn rss_32mib() -> u64 {
    let before = rss_kib();
    let r = Region::create(&spsc::Config::new(32 << 20)).unwrap();
    let (tx, rx) = (r.producer().unwrap(), r.consumer().unwrap());
    let after = rss_kib();
    drop((tx, rx, r));
    after.saturating_sub(before)
}

// ---------------------------------------------------------------- iceoryx2

mod iox {
    use super::*;
    use iceoryx2::prelude::*;

    fn names(tag: &str) -> (String, String) {
        (
            format!("ringbell-compare/{tag}/ping"),
            format!("ringbell-compare/{tag}/pong"),
        )
    }

    /// The child: answers every ping with a pong carrying the same 64 bytes.
    pub fn pong(tag: &str) {
        let (ping, pong) = names(tag);
        let node = NodeBuilder::new().create::<ipc::Service>().unwrap();
        let ping = node
            .service_builder(&ping.as_str().try_into().unwrap())
            .publish_subscribe::<[u8; 64]>()
            .open_or_create()
            .unwrap();
        let pong = node
            .service_builder(&pong.as_str().try_into().unwrap())
            .publish_subscribe::<[u8; 64]>()
            .open_or_create()
            .unwrap();
        let sub = ping.subscriber_builder().create().unwrap();
        let publisher = pong.publisher_builder().create().unwrap();
        let start = Instant::now();
        let mut last = Instant::now();
        loop {
            match sub.receive().unwrap() {
                Some(s) => {
                    let payload: [u8; 64] = *s;
                    drop(s);
                    let sample = publisher.loan_uninit().unwrap();
                    sample.write_payload(payload).send().unwrap();
                    last = Instant::now();
                    if payload[63] == 0xFF {
                        return;
                    }
                }
                None => {
                    if last.elapsed() > Duration::from_secs(10)
                        || start.elapsed() > Duration::from_secs(600)
                    {
                        return;
                    }
                    std::hint::spin_loop();
                }
            }
        }
    }

    /// The parent: round trips through two publish-subscribe services, spinning on receive.
    pub fn pingpong(n: usize) -> Stat {
        let tag = format!("{}", std::process::id());
        let (ping, pong) = names(&tag);
        let node = NodeBuilder::new().create::<ipc::Service>().unwrap();
        let ping = node
            .service_builder(&ping.as_str().try_into().unwrap())
            .publish_subscribe::<[u8; 64]>()
            .open_or_create()
            .unwrap();
        let pong = node
            .service_builder(&pong.as_str().try_into().unwrap())
            .publish_subscribe::<[u8; 64]>()
            .open_or_create()
            .unwrap();
        let publisher = ping.publisher_builder().create().unwrap();
        let sub = pong.subscriber_builder().create().unwrap();
        let mut child = spawn_child("iceoryx2", &[], &[tag]);
        // Until the child's ports are connected: resend until an answer comes.
        'connect: loop {
            publisher
                .loan_uninit()
                .unwrap()
                .write_payload([0u8; 64])
                .send()
                .unwrap();
            let t = Instant::now();
            while t.elapsed() < Duration::from_millis(20) {
                if sub.receive().unwrap().is_some() {
                    break 'connect;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
        while sub.receive().unwrap().is_some() {}
        let s = trips(n, |msg| {
            msg[63] = 0;
            publisher
                .loan_uninit()
                .unwrap()
                .write_payload(*msg)
                .send()
                .unwrap();
            loop {
                if let Some(s) = sub.receive().unwrap() {
                    *msg = *s;
                    break;
                }
                std::hint::spin_loop();
            }
        });
        let mut last = [0u8; 64];
        last[63] = 0xFF;
        publisher
            .loan_uninit()
            .unwrap()
            .write_payload(last)
            .send()
            .unwrap();
        let _ = child.wait();
        s
    }
}

// ---------------------------------------------------------------- main

/// What a run prints: the table's rows as they are measured, the ratio and figure lines at
/// the end.
#[derive(Default)]
struct Report {
    ratios: Vec<(String, f64)>,
    figures: Vec<(String, String)>,
}

impl Report {
    fn row(&self, name: &str, s: Stat, unit: &str) {
        let f = |v: f64| match unit {
            "rate" => format!("{:.2} M/s", 1e3 / v),
            "MB/s" => format!("{:.0} MB/s", (64 << 10) as f64 / v * 1e3),
            _ => {
                if v >= 10_000.0 {
                    format!("{:.1} µs", v / 1e3)
                } else {
                    format!("{v:.0} ns")
                }
            }
        };
        // For rates the slower repetition is the p99.
        println!("{name:<62} {:>12} {:>12}", f(s.p50), f(s.p99));
    }
    fn ratio(&mut self, name: impl Into<String>, v: f64) {
        self.ratios.push((name.into(), v));
    }
    fn figure(&mut self, name: impl Into<String>, v: impl ToString) {
        self.figures.push((name.into(), v.to_string()));
    }
}

const KIB: usize = 1 << 10;

/// In-process SPSC streaming: the best API, one frame per call at three ring sizes and two
/// frame sizes against rtrb with the same bytes, the blocking calls against the spinning
/// ones, and 64 KiB frames against a bare copy-through.
fn section_spsc(z: &Sizes, r: &mut Report) {
    let n = z.stream;
    // RINGBELL_COMPARE_ONLY_BATCHED=1: only the batched stream, five times (for profiling).
    if std::env::var_os("RINGBELL_COMPARE_ONLY_BATCHED").is_some() {
        for _ in 0..5 {
            let d = stream_ringbell_batched(n);
            println!("batched {:.2} M/s", n as f64 / d.as_secs_f64() / 1e6);
        }
        return;
    }
    let ring_sizes = [16 * KIB, 64 * KIB, 1024 * KIB];
    let mut one: Vec<Box<dyn FnMut() -> Duration>> = Vec::new();
    let mut names = Vec::new();
    for &cap in &ring_sizes {
        for len in [8usize, 64] {
            names.push((cap, len));
            one.push(Box::new(move || stream_ringbell(n, len, cap)));
            one.push(Box::new(move || match len {
                8 => stream_rtrb::<8>(n, cap),
                _ => stream_rtrb::<64>(n, cap),
            }));
        }
    }
    let mut runs: Vec<&mut dyn FnMut() -> Duration> = vec![];
    let mut batched = || stream_ringbell_batched(n);
    let mut aq = || stream_arrayqueue(n);
    let mut blocking_pinned = || stream_ringbell_placed(n, Place::Pinned, false);
    let mut spin_pinned = || stream_ringbell_placed(n, Place::Pinned, true);
    let mut blocking_free = || stream_ringbell_placed(n, Place::Free, false);
    let mut spin_free = || stream_ringbell_placed(n, Place::Free, true);
    runs.push(&mut batched);
    runs.push(&mut aq);
    runs.push(&mut blocking_pinned);
    runs.push(&mut spin_pinned);
    runs.push(&mut blocking_free);
    runs.push(&mut spin_free);
    for f in one.iter_mut() {
        runs.push(f.as_mut());
    }
    let st = interleaved(z.reps, n, &mut runs);
    let (batched, aq) = (st[0], st[1]);
    let (blocking_pinned, spin_pinned, blocking_free, spin_free) = (st[2], st[3], st[4], st[5]);
    let grid = &st[6..];
    let rtrb64 = grid[3]; // 64 KiB ring, 64 B
    r.row(
        "SPSC 64 B, 64 KiB ring: ringbell, batches of 32 (best API)",
        batched,
        "rate",
    );
    r.row(
        "SPSC 64 B, 64 KiB ring: crossbeam ArrayQueue<[u8; 64]>",
        aq,
        "rate",
    );
    for (k, &(cap, len)) in names.iter().enumerate() {
        let (rb, rt) = (grid[2 * k], grid[2 * k + 1]);
        let ring = format!("{} KiB ring", cap / KIB);
        r.row(
            &format!("SPSC {len} B, {ring}: ringbell, one frame per call"),
            rb,
            "rate",
        );
        r.row(
            &format!("SPSC {len} B, {ring}: rtrb push/pop of [u8; {len}]"),
            rt,
            "rate",
        );
        r.ratio(
            format!("spsc_one_per_call_{len}B_{}KiB_vs_rtrb", cap / KIB),
            rt.p50 / rb.p50,
        );
    }
    r.row("SPSC 64 B: blocking calls, pinned", blocking_pinned, "rate");
    r.row(
        "SPSC 64 B: try_ calls spinning, pinned",
        spin_pinned,
        "rate",
    );
    r.row(
        "SPSC 64 B: blocking calls, threads not pinned",
        blocking_free,
        "rate",
    );
    r.row(
        "SPSC 64 B: try_ calls spinning, threads not pinned",
        spin_free,
        "rate",
    );
    r.ratio("spsc_64B_vs_rtrb", rtrb64.p50 / batched.p50);
    r.ratio("spsc_64B_vs_arrayqueue", aq.p50 / batched.p50);
    r.ratio(
        "spsc_64B_default_vs_spin_pinned",
        blocking_pinned.p50 / spin_pinned.p50,
    );
    r.ratio(
        "spsc_64B_default_vs_spin_free",
        blocking_free.p50 / spin_free.p50,
    );
    // 64 KiB frames.
    let st = interleaved(
        z.reps,
        z.big,
        &mut [
            &mut || stream_ringbell(z.big, 64 << 10, 1 << 20),
            &mut || stream_copythrough(z.big),
        ],
    );
    let (rbbig, copy) = (st[0], st[1]);
    r.row("SPSC 64 KiB frames: ringbell (1 MiB ring)", rbbig, "MB/s");
    r.row(
        "SPSC 64 KiB frames: bare copy-through (16 slots, flags)",
        copy,
        "MB/s",
    );
    r.ratio("spsc_64KiB_vs_copythrough", copy.p50 / rbbig.p50);
}

/// Many producers into one consumer, 64 B, blocking calls with default settings: ringbell's
/// MPSC ring and fan-in against crossbeam-channel, 2 and 4 producers, threads where the
/// scheduler puts them and pinned one side per CPU.
fn section_many(z: &Sizes, r: &mut Report) {
    let n = z.stream;
    let (y0, s0) = (
        MANY_YIELDS.load(Ordering::Relaxed),
        MANY_SLEEPS.load(Ordering::Relaxed),
    );
    for p in [2usize, 4] {
        for place in [Place::Free, Place::Pinned] {
            let (mut w, mut c) = ([vec![], vec![], vec![]], [vec![], vec![], vec![]]);
            for _ in 0..z.reps {
                let runs = [
                    mpsc_ringbell(n, p, place),
                    fanin_ringbell(n, p, place),
                    mpsc_crossbeam(n, p, place),
                ];
                for (k, (wall, cpu)) in runs.into_iter().enumerate() {
                    w[k].push(wall.as_nanos() as f64 / n as f64);
                    c[k].push(cpu.as_nanos() as f64 / n as f64);
                }
            }
            let [m, f, x] = w.map(stat);
            let [cm, cf, cx] = c.map(stat);
            let pl = match place {
                Place::Free => "free",
                Place::Pinned => "pinned",
            };
            let what = format!("{p} producers 64 B, threads {pl}");
            r.row(&format!("MPSC {what}: ringbell mpsc"), m, "rate");
            r.row(
                &format!("MPSC {what}: ringbell fan-in, a ring each"),
                f,
                "rate",
            );
            r.row(
                &format!("MPSC {what}: crossbeam-channel bounded(1024)"),
                x,
                "rate",
            );
            r.row("  CPU per message: ringbell mpsc", cm, "ns");
            r.row("  CPU per message: ringbell fan-in", cf, "ns");
            r.row("  CPU per message: crossbeam-channel", cx, "ns");
            r.ratio(
                format!("mpsc_{p}p_64B_{pl}_vs_crossbeam_channel"),
                x.p50 / m.p50,
            );
            r.ratio(
                format!("fanin_{p}p_64B_{pl}_vs_crossbeam_channel"),
                x.p50 / f.p50,
            );
        }
    }
    // Every ringbell message of the section: both ring kinds, both placements, 2 and 4
    // producers.
    let messages = (z.reps * 2 * 4) as f64 * n as f64;
    let yields = (MANY_YIELDS.load(Ordering::Relaxed) - y0) as f64 / messages;
    let sleeps = (MANY_SLEEPS.load(Ordering::Relaxed) - s0) as f64 / messages;
    println!(
        "ringbell yields / sleeps per message, all many-producer cases: {yields:.4} / {sleeps:.4}"
    );
    r.figure("many_yields_per_message", format!("{yields:.4}"));
    r.figure("many_sleeps_per_message", format!("{sleeps:.4}"));
}

/// Cross-process ping-pong: spinning against the two-atomic floor and iceoryx2, sleeping
/// against the futex floor, the default settings against spinning, sockets and pipes.
fn section_pingpong(z: &Sizes, r: &mut Report) {
    let floor = pingpong_atomic(z.trips);
    let (spin, _) = pingpong_ringbell(z.trips, "spin");
    let iox = iox::pingpong(z.trips);
    r.row("ping-pong 64 B x-process, spinning: ringbell", spin, "ns");
    r.row(
        "ping-pong 64 B x-process, spinning: bare two-atomic floor",
        floor,
        "ns",
    );
    r.row(
        "ping-pong 64 B x-process, spinning: iceoryx2 pub-sub",
        iox,
        "ns",
    );
    let (sleep, sleep_stats) = pingpong_ringbell(z.sleepy_trips, "sleep");
    let futex = pingpong_futex(z.sleepy_trips);
    r.row(
        "ping-pong, every message sleeps: ringbell spin budget 0",
        sleep,
        "ns",
    );
    r.row(
        "ping-pong, every message sleeps: bare futex floor",
        futex,
        "ns",
    );
    let (dflt, _) = pingpong_ringbell(z.trips, "default");
    let uds = pingpong_stream(z.sleepy_trips, true);
    let pipe = pingpong_stream(z.sleepy_trips, false);
    r.row("ping-pong, default settings: ringbell", dflt, "ns");
    r.row("ping-pong: Unix-domain socket", uds, "ns");
    r.row("ping-pong: pipe", pipe, "ns");
    println!(
        "ringbell consumer sleeps announced in the sleeping ping-pong: {} (of {} receives)",
        sleep_stats.sleeps,
        z.sleepy_trips * 11 / 10
    );
    r.ratio("pingpong_spin_vs_atomic_floor", spin.p50 / floor.p50);
    r.ratio("pingpong_spin_vs_iceoryx2", spin.p50 / iox.p50);
    r.ratio("pingpong_sleep_vs_futex_floor", sleep.p50 / futex.p50);
    r.ratio("pingpong_default_vs_spin", dflt.p50 / spin.p50);
    r.ratio("pingpong_default_vs_uds", dflt.p50 / uds.p50);
    r.ratio("pingpong_default_vs_pipe", dflt.p50 / pipe.p50);
}

/// The channel: `Client::call` at one request in flight to a plain serial loop and to the
/// reactor (client in a process of its own), against the rings' spinning ping-pong measured
/// just before; and the system calls per call.
fn section_call(z: &Sizes, quick: bool, r: &mut Report) {
    let (spin, _) = pingpong_ringbell(z.trips, "spin");
    let dir = std::env::temp_dir().join(format!("ringbell-compare-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut client = Command::new(std::env::current_exe().unwrap());
    client.args(["child", "reactor-client"]);
    let (rounds, batch) = if quick { (6, 1000) } else { (20, 5000) };
    let reactor = reactor_c1::one_in_flight(&dir, rounds, batch, client);
    let (rounds16, secs16) = if quick { (2, 0.2) } else { (3, 0.5) };
    let many = reactor_c1::many_in_flight(&dir, 16, rounds16, secs16, || {
        let mut c = Command::new(std::env::current_exe().unwrap());
        c.args(["child", "timed-client"]);
        c
    });
    let _ = std::fs::remove_dir_all(&dir);
    r.row(
        "ping-pong 64 B x-process, spinning: ringbell (again)",
        spin,
        "ns",
    );
    for (name, p50, p99) in &reactor {
        let s = Stat {
            p50: p50 * 1e3,
            p99: p99 * 1e3,
        };
        r.row(
            &format!("call 64 B x-process, 1 in flight: {name}"),
            s,
            "ns",
        );
    }
    for (name, rate, p50, p99) in &many {
        let s = Stat {
            p50: p50 * 1e3,
            p99: p99 * 1e3,
        };
        r.row(
            &format!("call 64 B echo, 16 client processes: {name}"),
            s,
            "ns",
        );
        println!("calls/s, 16 client processes, echo over {name}: {rate:.0}");
    }
    r.ratio("reactor_c1_vs_serial", reactor[2].1 / reactor[0].1);
    // The socket transport against shared memory, same handler (echo), same reactor.
    r.ratio("call_c1_socket_vs_shm_p50", reactor[4].1 / reactor[3].1);
    r.ratio("call_c16_socket_vs_shm_p50", many[1].2 / many[0].2);
    r.ratio("call_c16_shm_vs_socket_calls_per_s", many[0].1 / many[1].1);
    r.ratio(
        "call_c1_echo_vs_spin_pingpong",
        reactor[3].1 * 1e3 / spin.p50,
    );
    for (pinned, name) in [
        (false, "syscalls_per_call"),
        (true, "syscalls_per_call_pinned"),
    ] {
        match syscalls_per_call(if quick { 1 } else { 3 }, pinned) {
            Some(v) => {
                let how = if pinned {
                    "client and reactor pinned"
                } else {
                    "threads not pinned"
                };
                println!("system calls per Client::call, both processes (perf), {how}: {v:.4}");
                r.figure(name, format!("{v:.4}"));
            }
            None => println!("system calls per Client::call: not measured (no working `perf`)"),
        }
    }
}

/// Async calls (issue 17): `AsyncClient` against the blocking `Client` and against a tokio
/// `UnixStream` server and multiplexing client, each client a process with tokio's default
/// runtime.
fn section_async(quick: bool, r: &mut Report) {
    let dir = std::env::temp_dir().join(format!("ringbell-compare-async-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (rounds, n, secs, idle) = if quick {
        (2, 2000, 0.2, 0.5)
    } else {
        (5, 20_000, 1.0, 2.0)
    };
    let f = asyncbench::run(&dir, rounds, n, secs, idle);
    let _ = std::fs::remove_dir_all(&dir);
    for (name, p50, p99, rate) in &f.rows {
        let s = Stat {
            p50: p50 * 1e3,
            p99: p99 * 1e3,
        };
        r.row(&format!("async: {name}"), s, "ns");
        if rate.is_finite() {
            println!("calls/s, {name}: {rate:.0}");
        }
    }
    println!(
        "idle CPU of a task awaiting a call, {idle} s: {:.3} % of a core",
        f.idle_cpu_percent
    );
    let row = |i: usize| f.rows[i];
    r.ratio("async_c1_vs_blocking_p50", row(1).1 / row(0).1);
    r.ratio("async_c1_vs_tokio_stream_p50", row(1).1 / row(2).1);
    r.ratio("async_c64_vs_tokio_stream_calls_per_s", row(3).3 / row(4).3);
    r.figure(
        "async_idle_cpu_percent",
        format!("{:.3}", f.idle_cpu_percent),
    );
    match syscalls_per_call_of(if quick { 1 } else { 3 }, false, "async") {
        Some(v) => {
            println!(
                "system calls per AsyncClient::call, both processes (perf), threads not pinned: {v:.4}"
            );
            r.figure("async_syscalls_per_call", format!("{v:.4}"));
        }
        None => println!("system calls per AsyncClient::call: not measured (no working `perf`)"),
    }
}

/// Idle CPU, wake accounting and the memory a large ring costs.
fn section_figures(z: &Sizes, r: &mut Report) {
    let idle = idle_cpu(z.idle);
    let idle_reactor = idle_reactor_cpu(z.idle);
    let wakes = wakes_minus_sleeps(z.stream);
    let rss = rss_32mib();
    println!(
        "idle consumer, default settings, {:?}: {idle:.3} % of a core",
        z.idle
    );
    println!(
        "idle reactor + 2-thread pool, 4 idle clients, default settings, {:?}: {idle_reactor:.3} % of a core",
        z.idle
    );
    println!(
        "wake system calls minus announced sleeps while streaming {} frames: {wakes}",
        z.stream
    );
    println!("own RSS growth creating a 32 MiB ring: {rss} KiB");
    r.figure("wake_syscalls_minus_sleeps", wakes);
    r.figure("idle_cpu_percent", format!("{idle:.3}"));
    r.figure("idle_reactor_cpu_percent", format!("{idle_reactor:.3}"));
    r.figure("rss_32MiB_ring_KiB", rss);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("child") {
        return child(&args[1..]);
    }
    let quick = args.iter().any(|a| a == "--quick");
    // `--only spsc,many,pingpong,call,async,c,figures` runs those sections (all by default).
    let only: Option<Vec<String>> = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(|v| v.split(',').map(str::to_string).collect());
    let runs = |s: &str| only.as_ref().is_none_or(|o| o.iter().any(|x| x == s));
    let z = sizes(quick);
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    pin(0);
    println!(
        "ringbell compare: {} run, {cpus} CPUs; parent on CPU 0, its peer thread or process on CPU 1 \
         unless a case says the threads are not pinned",
        if quick { "quick" } else { "full" }
    );
    println!("{:<62} {:>12} {:>12}", "case", "p50", "p99");
    let mut r = Report::default();
    if runs("spsc") {
        section_spsc(&z, &mut r);
    }
    if runs("many") {
        section_many(&z, &mut r);
    }
    if runs("pingpong") {
        section_pingpong(&z, &mut r);
    }
    if runs("call") {
        section_call(&z, quick, &mut r);
    }
    if runs("async") {
        section_async(quick, &mut r);
    }
    if runs("c") {
        cbench::section_c(quick, &mut r);
    }
    if runs("figures") {
        section_figures(&z, &mut r);
    }
    println!();
    for (name, v) in &r.ratios {
        println!("ratio {name} {v:.3}");
    }
    for (name, v) in &r.figures {
        println!("figure {name} {v}");
    }
}
