//! Asymmetric fences with real processes: the store-buffering litmus of the fence pair (the
//! test that catches the `barrier_omitted` mutant; loom cannot model `membarrier`), and the
//! fallback — a process that cannot register refuses an asymmetric region with a typed error
//! and works with a symmetric one, through bare rings and through a channel.

mod common;

use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ringbell::channel::{ChannelError, Client, Server, ServerConfig};
use ringbell::doorbell::Fences;
use ringbell::reactor::{Reactor, Request, Responder};
use ringbell::region::{Region, Spsc};
use ringbell::{AttachError, HeaderError, spsc, testing};

use common::{child_command, child_role};

/// Iterations of the litmus; `RINGBELL_LITMUS_ITERS` raises it (the mutant check does).
fn litmus_iters() -> u64 {
    std::env::var("RINGBELL_LITMUS_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000)
}

/// The shared words of the litmus, each on a 128-byte line of its own.
const PARENT_AT: usize = 0;
const CHILD_AT: usize = 16;
const X: usize = 32;
const Y: usize = 48;
const R2: usize = 64;
const DONE: usize = 80;
const WORDS: usize = 96;

struct Shared {
    _fd: std::os::fd::OwnedFd,
    base: *const AtomicU64,
}

impl Shared {
    fn create() -> Self {
        let fd =
            rustix::fs::memfd_create("ringbell-litmus", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        rustix::fs::ftruncate(&fd, (WORDS * 8) as u64).unwrap();
        Self::map(fd)
    }

    fn map(fd: std::os::fd::OwnedFd) -> Self {
        // SAFETY: a fresh shared mapping of the whole memfd (WORDS * 8 bytes); nothing else in
        // this process maps or frees that range, and it is unmapped only at exit.
        let p = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                WORDS * 8,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::SHARED,
                &fd,
                0,
            )
        }
        .unwrap();
        Self {
            _fd: fd,
            base: p.cast(),
        }
    }

    fn word(&self, i: usize) -> &AtomicU64 {
        assert!(i < WORDS);
        // SAFETY: in bounds (checked), 8-aligned (page-aligned base), and only ever accessed
        // atomically by either process for as long as the mapping lives (the process).
        unsafe { &*self.base.add(i) }
    }
}

/// Spins until `w` reaches `v`, yielding after a while (if the two processes share a CPU the
/// other must run), failing the test after `bound`.
fn await_word(w: &AtomicU64, v: u64, bound: Instant) {
    let mut n = 0u32;
    while w.load(Ordering::Acquire) < v {
        std::hint::spin_loop();
        n = n.wrapping_add(1);
        if n >= 1 << 14 {
            std::thread::yield_now();
            if n % 1024 == 0 {
                assert!(Instant::now() < bound, "litmus peer stopped at {v}");
            }
        }
    }
}

/// Two CPUs this thread may run on, if it may run on two: the two sides of the litmus are
/// pinned one to each, for they must run at the same time, or no store buffer is ever in play.
fn two_cpus() -> Option<(usize, usize)> {
    let mine = rustix::thread::sched_getaffinity(None).ok()?;
    let mut allowed = (0..rustix::thread::CpuSet::MAX_CPU).filter(|&c| mine.is_set(c));
    Some((allowed.next()?, allowed.next()?))
}

fn pin(cpu: usize) {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    let _ = rustix::thread::sched_setaffinity(None, &set);
}

/// A few spins of a varying count, so that the two sides' accesses meet at varying offsets.
fn jitter(state: &mut u64) {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    for _ in 0..(*state % 8) {
        std::hint::spin_loop();
    }
}

/// The store-buffering shape the doorbell relies on, across two processes, with the crate's
/// own halves of the fence pair: the parent plays a ringer (stores X, its fence, loads Y),
/// the child a waiter (stores Y, its barrier, loads X). Both loads missing both stores is
/// the lost wake-up; it must never happen. With the waiter's `membarrier` planted out
/// (`RINGBELL_MUTANT=barrier_omitted`, `scripts/mutants.sh`) this test fails.
#[test]
#[cfg_attr(miri, ignore = "miri cannot spawn processes or map memfds")]
fn the_fence_pair_forbids_store_buffering_across_processes() {
    let _watchdog = common::watchdog();
    let iters = litmus_iters();
    if let Some(role) = child_role() {
        let bound = Instant::now() + Duration::from_secs(50);
        if let Ok(cpu) = std::env::var("LITMUS_CPU") {
            pin(cpu.parse().unwrap());
        }
        if let Some(mode) = role.strip_prefix("litmus-") {
            let fences = if mode == "asymmetric" {
                assert!(Fences::asymmetric_available());
                Fences::Asymmetric
            } else {
                Fences::Symmetric
            };
            let m = Shared::map(common::child_fd());
            let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(std::process::id());
            for i in 1..=iters {
                m.word(CHILD_AT).store(i, Ordering::Release);
                await_word(m.word(PARENT_AT), i, bound);
                jitter(&mut rng);
                m.word(Y).store(i, Ordering::Relaxed);
                assert!(testing::waiter_barrier(fences), "membarrier failed");
                let r2 = m.word(X).load(Ordering::Relaxed);
                m.word(R2).store(r2, Ordering::Relaxed);
                m.word(DONE).store(i, Ordering::Release);
            }
        }
        return;
    }
    let mut modes = vec![Fences::Symmetric];
    if Fences::asymmetric_available() {
        modes.push(Fences::Asymmetric);
    } else {
        eprintln!("membarrier is unavailable here: only the symmetric pair is tested");
    }
    let cpus = two_cpus();
    for fences in modes {
        let bound = Instant::now() + Duration::from_secs(50);
        let m = Shared::create();
        let mode = match fences {
            Fences::Asymmetric => "litmus-asymmetric",
            Fences::Symmetric => "litmus-symmetric",
        };
        let mut cmd = child_command(
            "the_fence_pair_forbids_store_buffering_across_processes",
            mode,
            &[m._fd.as_fd()],
        );
        if let Some((mine, its)) = cpus {
            pin(mine);
            cmd.env("LITMUS_CPU", its.to_string());
        }
        let mut child = cmd.spawn().unwrap();
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let (mut violations, mut first) = (0u64, None);
        let start = Instant::now();
        for i in 1..=iters {
            m.word(PARENT_AT).store(i, Ordering::Release);
            await_word(m.word(CHILD_AT), i, bound);
            jitter(&mut rng);
            m.word(X).store(i, Ordering::Relaxed);
            testing::ringer_fence(fences);
            let r1 = m.word(Y).load(Ordering::Relaxed);
            await_word(m.word(DONE), i, bound);
            let r2 = m.word(R2).load(Ordering::Relaxed);
            if r1 < i && r2 < i {
                violations += 1;
                first.get_or_insert(i);
            }
        }
        let status = child.wait().unwrap();
        println!(
            "{fences:?}: {iters} iterations in {:?}, {violations} store-buffering outcomes",
            start.elapsed()
        );
        assert!(status.success(), "litmus child: {status}");
        assert_eq!(
            violations, 0,
            "{fences:?}: both loads missed both stores {violations} times (first at \
             iteration {first:?}): a waiter would sleep through a ring"
        );
    }
}

/// A process that cannot register for `membarrier` (here: `RINGBELL_FENCES=symmetric`)
/// refuses an asymmetric ring with a typed error, creates symmetric rings itself, and works
/// with a symmetric ring made by a process that could register.
#[test]
#[cfg_attr(miri, ignore = "miri cannot spawn processes or map memfds")]
fn a_process_without_membarrier_refuses_asymmetric_rings_and_uses_symmetric_ones() {
    let _watchdog = common::watchdog();
    if child_role().as_deref() == Some("no-membarrier") {
        assert!(!Fences::asymmetric_available());
        assert_eq!(Fences::default_for_new_regions(), Fences::Symmetric);
        let (tx, _rx) = spsc::channel(4096).unwrap();
        assert_eq!(tx.fences(), Fences::Symmetric);
        assert_eq!(
            spsc::channel_with(&spsc::Config::new(4096).fences(Fences::Asymmetric)).map(drop),
            Err(AttachError::Header(HeaderError::FencesUnavailable))
        );
        let mut fds = common::child_fds().into_iter();
        let asym = Region::<Spsc>::open(fds.next().unwrap()).unwrap();
        let sym = Region::<Spsc>::open(fds.next().unwrap()).unwrap();
        assert_eq!(
            asym.consumer().map(drop),
            Err(AttachError::Header(HeaderError::FencesUnavailable))
        );
        let mut rx = sym.consumer().unwrap();
        assert_eq!(rx.fences(), Fences::Symmetric);
        let f = rx.recv_timeout(Duration::from_secs(20)).unwrap();
        assert_eq!((f.tag, &f.data[..]), (7, &b"symmetric"[..]));
        return;
    }
    if !Fences::asymmetric_available() {
        eprintln!("membarrier is unavailable here: nothing to refuse");
        return;
    }
    let asym = Region::create(&spsc::Config::new(4096)).unwrap();
    let sym = Region::create(&spsc::Config::new(4096).fences(Fences::Symmetric)).unwrap();
    let mut tx = sym.producer().unwrap();
    assert_eq!(tx.fences(), Fences::Symmetric);
    assert_eq!(asym.producer().unwrap().fences(), Fences::Asymmetric);
    tx.send(7, b"symmetric").unwrap();
    let mut child = child_command(
        "a_process_without_membarrier_refuses_asymmetric_rings_and_uses_symmetric_ones",
        "no-membarrier",
        &[asym.fd(), sym.fd()],
    )
    .env("RINGBELL_FENCES", "symmetric")
    .spawn()
    .unwrap();
    assert!(child.wait().unwrap().success());
}

/// Through a channel: a client that cannot register cannot connect to an asymmetric server
/// (a typed error, not a hang or a silent fallback), and is served by a symmetric one.
#[test]
#[cfg_attr(miri, ignore = "miri cannot spawn processes or map memfds")]
fn a_client_without_membarrier_is_refused_by_an_asymmetric_server_and_served_by_a_symmetric_one() {
    const TEST: &str = "a_client_without_membarrier_is_refused_by_an_asymmetric_server_and_served_by_a_symmetric_one";
    let _watchdog = common::watchdog();
    if child_role().as_deref() == Some("no-membarrier-client") {
        let asym = std::env::var("ASYM_PATH").unwrap();
        let sym = std::env::var("SYM_PATH").unwrap();
        match Client::connect(&asym).map(drop) {
            Err(ChannelError::Attach(AttachError::Header(HeaderError::FencesUnavailable))) => {}
            other => panic!("asymmetric server: expected FencesUnavailable, got {other:?}"),
        }
        let mut c = Client::connect(&sym).unwrap();
        let r = c.call_timeout(b"ping", Duration::from_secs(20)).unwrap();
        assert_eq!(&r[..], b"ping");
        return;
    }
    if !Fences::asymmetric_available() {
        eprintln!("membarrier is unavailable here: nothing to refuse");
        return;
    }
    let dir = std::env::temp_dir().join(format!("ringbell-test-{}-fences", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let echo = |req: Request, res: Responder| res.respond(&req.body).unwrap();
    let mut servers = Vec::new();
    for (name, fences) in [
        ("a.sock", Fences::Asymmetric),
        ("s.sock", Fences::Symmetric),
    ] {
        let server = Server::bind(dir.join(name), ServerConfig::new().fences(fences)).unwrap();
        let mut reactor = Reactor::new(server, echo);
        let stop = reactor.stop_handle();
        servers.push((stop, std::thread::spawn(move || reactor.run())));
    }
    let mut child = child_command(TEST, "no-membarrier-client", &[])
        .env("RINGBELL_FENCES", "symmetric")
        .env("ASYM_PATH", dir.join("a.sock"))
        .env("SYM_PATH", dir.join("s.sock"))
        .spawn()
        .unwrap();
    let ok = child.wait().unwrap().success();
    for (stop, thread) in servers {
        stop.stop();
        thread.join().unwrap().unwrap();
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(ok, "the client process failed");
}
