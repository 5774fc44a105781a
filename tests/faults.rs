//! Fault injection with real processes: peers SIGKILLed at random moments.
//!
//! 100 trials, in four kinds taken in turn, each killing a child process at a random moment:
//!
//! * SPSC, the producer dies (mid-send, mid-commit, or blocked on a full ring): the consumer
//!   gets every frame it published, in order and intact, then `Disconnected`.
//! * SPSC, the consumer dies (while the producer streams, or blocks on full): the producer's
//!   send returns `Disconnected`.
//! * MPSC, one of two producers dies (possibly between claim and commit): every frame of the
//!   survivor arrives, in order and intact; the victim's frames are a prefix of what it sent.
//! * Fan-in, one of two producers dies: the same, and the victim's ring is reported
//!   `Disconnected` once drained.
//!
//! After each trial: no hang (every wait has a deadline), nothing lost, reordered or corrupted
//! from a surviving producer, and the survivor's error is the documented one. The whole loop
//! is bounded in time.

mod common;

use std::process::Child;
use std::time::{Duration, Instant};

use common::{Rng, checksum, child_fds, child_role};
use ringbell::fanin::{FanIn, FanInError, RingId};
use ringbell::mpsc::PidfdLiveness;
use ringbell::mpsc::{self};
use ringbell::region::Region;
use ringbell::spsc::{self, Producer};
use ringbell::testing;
use ringbell::wire::{CONSUMER_OWNER_OFF, PRODUCER_OWNER_OFF, READ_POS_OFF, WRITE_POS_OFF};
use ringbell::{OwnerId, RecvError, SendError};
use std::sync::atomic::Ordering;

const TEST: &str = "a_hundred_random_kills_never_hang_lose_or_corrupt";
const SEED_ENV: &str = "RINGBELL_TEST_SEED";
const LONG: Duration = Duration::from_secs(10);
/// Frames each MPSC / fan-in producer sends.
const FRAMES: u32 = 3000;

/// A frame: `[seq u32][random bytes][checksum u32]`, tag = the producer's number.
fn make_frame(rng: &mut Rng, producer: u32, seq: u32) -> Vec<u8> {
    let span = if rng.below(50) == 0 { 900 } else { 60 };
    let len = 8 + rng.below(span) as usize;
    let mut f = vec![0u8; len];
    f[..4].copy_from_slice(&seq.to_le_bytes());
    rng.fill(&mut f[4..len - 4]);
    let c = checksum(producer, &f[..len - 4]);
    f[len - 4..].copy_from_slice(&c.to_le_bytes());
    f
}

/// Checks a frame's checksum and returns its sequence number.
fn check_frame(producer: u32, f: &[u8]) -> u32 {
    assert!(f.len() >= 8, "short frame");
    let (body, sum) = f.split_at(f.len() - 4);
    assert_eq!(
        checksum(producer, body).to_le_bytes(),
        sum,
        "corrupt frame from producer {producer}"
    );
    u32::from_le_bytes(f[..4].try_into().unwrap())
}

fn seed() -> u64 {
    std::env::var(SEED_ENV).unwrap().parse().unwrap()
}

/// The child side of every kind.
fn child(role: &str) {
    let mut rng = Rng::new(seed());
    let mut fds = child_fds();
    match role {
        "spsc-producer" => {
            let mut tx = Region::<ringbell::region::Spsc>::open(fds.remove(0))
                .unwrap()
                .producer()
                .unwrap();
            for seq in 0.. {
                let f = make_frame(&mut rng, 0, seq);
                if rng.below(2) == 0 {
                    tx.send_timeout(0, &f, LONG).unwrap();
                } else {
                    // Reserve, fill in two steps, commit: a kill can land between any two.
                    let mut g = loop {
                        match tx.reserve(f.len()) {
                            Ok(g) => break g,
                            Err(SendError::Full) => std::thread::yield_now(),
                            Err(e) => panic!("{e}"),
                        }
                    };
                    g.write_at(0, &f[..4]);
                    g.write_at(4, &f[4..]);
                    g.commit(0);
                }
            }
        }
        "spsc-consumer" => {
            let mut rx = Region::<ringbell::region::Spsc>::open(fds.remove(0))
                .unwrap()
                .consumer()
                .unwrap();
            let mut buf = vec![0u8; rx.max_frame()];
            loop {
                rx.recv_into_timeout(&mut buf, LONG).unwrap();
                if rng.below(64) == 0 {
                    std::thread::sleep(Duration::from_millis(rng.below(3)));
                }
            }
        }
        "mpsc-producer" => {
            let k: u32 = std::env::var("RINGBELL_TEST_PRODUCER")
                .unwrap()
                .parse()
                .unwrap();
            let region = Region::<ringbell::region::Mpsc>::open(fds.remove(0)).unwrap();
            let mut tx = mpsc::Producer::attach(region, OwnerId::unique()).unwrap();
            for seq in 0..FRAMES {
                let f = make_frame(&mut rng, k, seq);
                let mut g = loop {
                    match tx.reserve(f.len()) {
                        Ok(g) => break g,
                        Err(SendError::Full) => std::thread::yield_now(),
                        Err(e) => panic!("{e}"),
                    }
                };
                g.write_at(0, &f[..4]);
                g.write_at(4, &f[4..]);
                g.commit(k).unwrap();
            }
        }
        "fanin-producer" => {
            let k: u32 = std::env::var("RINGBELL_TEST_PRODUCER")
                .unwrap()
                .parse()
                .unwrap();
            let bell = Region::<ringbell::region::Bell>::open(fds.remove(1)).unwrap();
            let ring = Region::<ringbell::region::Spsc>::open(fds.remove(0)).unwrap();
            let mut tx = Producer::attach_shared_bell(ring, bell, OwnerId::unique()).unwrap();
            for seq in 0..FRAMES {
                tx.send_timeout(k, &make_frame(&mut rng, k, seq), LONG)
                    .unwrap();
            }
        }
        other => panic!("unknown role {other}"),
    }
}

fn spawn(role: &str, fds: &[std::os::fd::BorrowedFd<'_>], seed: u64, producer: u32) -> Child {
    let mut cmd = common::child_command(TEST, role, fds);
    cmd.env(SEED_ENV, seed.to_string())
        .env("RINGBELL_TEST_PRODUCER", producer.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    cmd.spawn().unwrap()
}

/// Waits until the child has claimed its role in `region` (the role word at `off` is set):
/// a peer killed before it ever attached cannot be told from one that has yet to come.
fn wait_attached<S: ringbell::region::SharedMemory>(region: &S, off: usize) {
    let start = Instant::now();
    while testing::view(&region).load_u64(off, Ordering::Acquire) == 0 {
        assert!(start.elapsed() < LONG, "the child never attached");
        std::thread::sleep(Duration::from_micros(100));
    }
}

fn kill(mut c: Child) {
    let _ = c.kill();
    let _ = c.wait();
}

/// SPSC, the producer is killed: frames in order and intact, then `Disconnected`.
fn spsc_producer_dies(rng: &mut Rng, seed: u64) {
    let region = Region::create(&spsc::Config::new(4096)).unwrap();
    let mut rx = region.consumer().unwrap();
    let child = spawn("spsc-producer", &[region.fd()], seed, 0);
    wait_attached(&region, PRODUCER_OWNER_OFF);
    let kill_at = Instant::now() + Duration::from_micros(rng.below(30_000));
    // Some trials do not read until the kill: the producer is then blocked on a full ring.
    let read_early = rng.below(3) != 0;
    let mut child = Some(child);
    let mut next = 0u32;
    let mut buf = vec![0u8; rx.max_frame()];
    let mut killed_at = None;
    loop {
        if child.is_some() && Instant::now() >= kill_at {
            kill(child.take().unwrap());
            killed_at = Some(Instant::now());
        }
        if child.is_some() && !read_early {
            std::thread::sleep(Duration::from_micros(200));
            continue;
        }
        match rx.recv_into_timeout(&mut buf, Duration::from_millis(1)) {
            Ok((tag, len)) => {
                assert_eq!(tag, 0);
                assert_eq!(
                    check_frame(0, &buf[..len]),
                    next,
                    "a frame lost or reordered"
                );
                next += 1;
            }
            Err(RecvError::Timeout) => {}
            Err(RecvError::Disconnected) => {
                let after = killed_at.expect("Disconnected before the kill").elapsed();
                assert!(after < Duration::from_secs(2), "noticed after {after:?}");
                // Everything the producer published was delivered before the error.
                assert!(!rx.has_data());
                let view = testing::view(&region);
                assert_eq!(
                    view.load_u64(WRITE_POS_OFF, Ordering::Acquire),
                    view.load_u64(READ_POS_OFF, Ordering::Acquire),
                    "Disconnected with published frames still in the ring"
                );
                return;
            }
            Err(e) => panic!("consumer: {e}"),
        }
        if let Some(t) = killed_at {
            assert!(
                t.elapsed() < LONG,
                "the consumer never saw the producer die"
            );
        }
    }
}

/// SPSC, the consumer is killed: the producer's blocking send returns `Disconnected`.
fn spsc_consumer_dies(rng: &mut Rng, seed: u64) {
    let region = Region::create(&spsc::Config::new(4096)).unwrap();
    let mut tx = region.producer().unwrap();
    let mut child = Some(spawn("spsc-consumer", &[region.fd()], seed, 0));
    wait_attached(&region, CONSUMER_OWNER_OFF);
    let kill_at = Instant::now() + Duration::from_micros(rng.below(30_000));
    let mut killed_at = None;
    let mut seq = 0;
    loop {
        if child.is_some() && Instant::now() >= kill_at {
            kill(child.take().unwrap());
            killed_at = Some(Instant::now());
        }
        let f = make_frame(rng, 0, seq);
        match tx.send_timeout(0, &f, Duration::from_millis(1)) {
            Ok(()) => seq += 1,
            Err(SendError::Timeout) => {}
            Err(SendError::Disconnected) => {
                let after = killed_at.expect("Disconnected before the kill").elapsed();
                assert!(after < Duration::from_secs(2), "noticed after {after:?}");
                return;
            }
            Err(e) => panic!("producer: {e}"),
        }
        if let Some(t) = killed_at {
            assert!(
                t.elapsed() < LONG,
                "the producer never saw the consumer die"
            );
        }
    }
}

/// MPSC, one of two producers is killed: the survivor's frames all arrive, the victim's are
/// a prefix.
fn mpsc_producer_dies(rng: &mut Rng, seed: u64) -> bool {
    let region = Region::create(&mpsc::Config::new(1 << 14).slots(4)).unwrap();
    let live = PidfdLiveness::new();
    let victim = spawn("mpsc-producer", &[region.fd()], seed, 0);
    let survivor = spawn("mpsc-producer", &[region.fd()], seed ^ 1, 1);
    live.watch(victim.id()).unwrap();
    live.watch(survivor.id()).unwrap();
    let mut rx = mpsc::Consumer::attach(region.clone(), OwnerId::unique(), live).unwrap();
    rx.set_stall_timeout(Duration::from_millis(20));
    // Armed by the victim's first frame: the kill lands while it streams (or just after).
    // A victim streams its frames in about a millisecond (less with faster rings): the kill
    // lands within 1.5 ms of its first frame.
    let delay = Duration::from_micros(rng.below(1500));
    let mut kill_at = None;
    let mut victim = Some(victim);
    let mut next = [0u32; 2];
    let mut killed_mid_stream = false;
    let start = Instant::now();
    while next[1] < FRAMES {
        if victim.is_some() && kill_at.is_some_and(|t| Instant::now() >= t) {
            kill(victim.take().unwrap());
            killed_mid_stream = next[0] < FRAMES;
        }
        match rx.recv_timeout(Duration::from_millis(1)) {
            Ok(f) => {
                let k = f.tag as usize;
                assert!(k < 2, "unknown producer {k}");
                assert_eq!(check_frame(f.tag, &f.data), next[k], "lost or reordered");
                next[k] += 1;
                if k == 0 && kill_at.is_none() {
                    kill_at = Some(Instant::now() + delay);
                }
            }
            Err(RecvError::Timeout) => {}
            Err(e) => panic!("consumer: {e}"),
        }
        assert!(
            start.elapsed() < LONG * 2,
            "the survivor's frames never all came"
        );
    }
    if let Some(v) = victim {
        kill(v); // it may have finished before its kill time
    }
    let mut survivor = survivor;
    assert!(survivor.wait().unwrap().success());
    // After the survivor's last frame, only victim frames (continuing its prefix) can remain.
    while let Ok(f) = rx.recv_timeout(Duration::from_millis(50)) {
        assert_eq!(f.tag, 0);
        assert_eq!(check_frame(0, &f.data), next[0]);
        next[0] += 1;
    }
    // Counts only a kill that landed while both streamed and cut the victim short.
    killed_mid_stream && next[0] < FRAMES
}

/// Fan-in, one of two producers is killed: the survivor's frames all arrive, the victim's
/// are a prefix, then its ring is reported `Disconnected`.
fn fanin_producer_dies(rng: &mut Rng, seed: u64) -> bool {
    let bell = Region::create(&ringbell::doorbell::BellConfig).unwrap();
    let mut fanin = FanIn::new(bell.clone(), 2).unwrap();
    let mut children = Vec::new();
    let mut rings = Vec::new();
    for k in 0..2u32 {
        let ring = Region::create(&spsc::Config::new(4096).shared_bell()).unwrap();
        rings.push(ring.clone());
        assert_eq!(
            fanin.add(ring.clone(), OwnerId::unique()).unwrap(),
            RingId(k as usize)
        );
        children.push(Some(spawn(
            "fanin-producer",
            &[ring.fd(), bell.fd()],
            seed ^ u64::from(k),
            k,
        )));
        wait_attached(&ring, PRODUCER_OWNER_OFF);
    }
    // A victim streams its frames in about a millisecond (less with faster rings): the kill
    // lands within 1.5 ms of its first frame.
    let delay = Duration::from_micros(rng.below(1500));
    let mut kill_at = None;
    let mut next = [0u32; 2];
    let mut victim_gone = false;
    let mut buf = vec![0u8; 4096];
    let start = Instant::now();
    while next[1] < FRAMES || !victim_gone {
        if children[0].is_some() && kill_at.is_some_and(|t| Instant::now() >= t) {
            kill(children[0].take().unwrap());
        }
        match fanin.recv_into_timeout(&mut buf, Duration::from_millis(1)) {
            Ok((RingId(k), tag, len)) => {
                assert_eq!(tag as usize, k);
                assert_eq!(check_frame(tag, &buf[..len]), next[k], "lost or reordered");
                next[k] += 1;
                if k == 0 && kill_at.is_none() {
                    kill_at = Some(Instant::now() + delay);
                }
            }
            Err(FanInError::Timeout) => {}
            // The victim, killed: its ring drained before the report.
            Err(FanInError::Disconnected(RingId(0))) => {
                assert!(children[0].is_none(), "Disconnected before the kill");
                let view = testing::view(&rings[0]);
                assert_eq!(
                    view.load_u64(WRITE_POS_OFF, Ordering::Acquire),
                    view.load_u64(READ_POS_OFF, Ordering::Acquire),
                    "Disconnected with published frames still in the ring"
                );
                victim_gone = true;
            }
            // The victim finished before its kill and closed cleanly.
            Err(FanInError::Closed(RingId(0))) => {
                assert_eq!(next[0], FRAMES, "a clean close before all frames");
                victim_gone = true;
            }
            // The survivor closes after its last frame.
            Err(FanInError::Closed(RingId(1))) => assert_eq!(next[1], FRAMES),
            Err(e) => panic!("fan-in: {e}"),
        }
        assert!(start.elapsed() < LONG * 2, "the fan-in never finished");
    }
    for c in children.iter_mut().filter_map(Option::take) {
        let _ = c.wait_with_output();
    }
    next[0] < FRAMES
}

#[test]
fn a_hundred_random_kills_never_hang_lose_or_corrupt() {
    let _watchdog = common::watchdog();
    if let Some(role) = child_role() {
        return child(&role);
    }
    let start = Instant::now();
    let base: u64 = std::env::var(SEED_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed);
    let mut rng = Rng::new(base);
    let mut cut_short = 0;
    for trial in 0..100u64 {
        let seed = base.wrapping_add(trial);
        match trial % 4 {
            0 => spsc_producer_dies(&mut rng, seed),
            1 => spsc_consumer_dies(&mut rng, seed),
            2 => cut_short += u32::from(mpsc_producer_dies(&mut rng, seed)),
            _ => cut_short += u32::from(fanin_producer_dies(&mut rng, seed)),
        }
    }
    let took = start.elapsed();
    eprintln!(
        "100 kill trials in {took:?}; {cut_short} of 50 MPSC/fan-in victims killed mid-stream"
    );
    // The kills must land while victims stream, or the test proves little.
    assert!(
        cut_short >= 10,
        "only {cut_short} victims were killed mid-stream"
    );
    assert!(
        took < Duration::from_secs(300),
        "the kill loop took {took:?}"
    );
}

#[test]
fn a_forked_child_cannot_act_as_a_second_producer() {
    let _watchdog = common::watchdog();
    let region = Region::create(&spsc::Config::new(4096)).unwrap();
    let mut tx = region.producer().unwrap();
    let mut rx = region.consumer().unwrap();
    tx.try_send(1, b"parent").unwrap();
    for remap in [false, true] {
        // SAFETY: the child makes only system calls (mmap) and touches only the inherited
        // producer (no allocation, no lock), then leaves with `_exit`, as a child of a
        // multithreaded process must.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            if remap {
                // The child maps the ring afresh over the inherited mapping, at the same
                // address: the inherited handle's memory is valid and is the real ring, so
                // only the handle's own check can stop it.
                // SAFETY: the range is the child's inherited copy of the mapping, which nothing
                // else in this child uses; MAP_FIXED replaces it in place.
                let r = unsafe {
                    rustix::mm::mmap(
                        region.as_ptr() as *mut _,
                        region.len(),
                        rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                        rustix::mm::MapFlags::SHARED | rustix::mm::MapFlags::FIXED,
                        region.fd(),
                        0,
                    )
                };
                if r.is_err() {
                    // SAFETY: `_exit` ends the child without running the parent's destructors.
                    unsafe { libc::_exit(4) };
                }
            }
            let code = match tx.try_send(2, b"child") {
                Err(SendError::Forked) => 3,
                Ok(()) => 0,
                Err(_) => 5,
            };
            // SAFETY: as above.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waits for our own child; `status` is a valid out-pointer.
        let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(waited, pid);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 3,
            "remap {remap}: the inherited handle did not refuse with Forked: status {status:#x}"
        );
    }
    // The parent's ring saw nothing from the children and goes on.
    assert_eq!(rx.try_recv().unwrap().data, b"parent");
    assert_eq!(rx.try_recv(), Err(RecvError::Empty));
    tx.try_send(3, b"again").unwrap();
    assert_eq!(rx.try_recv().unwrap().tag, 3);
}
