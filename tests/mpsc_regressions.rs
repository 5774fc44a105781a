//! Regression tests for the MPSC ring: each one a schedule or input a review found that broke
//! an earlier version (named for what must hold now).

mod common;

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use ringbell::OwnerId;
use ringbell::doorbell::WaitOptions;
use ringbell::mpsc::{self, Consumer, Liveness, NeverDead, Producer};
use ringbell::region::{HeapRegion, Mpsc};
use ringbell::testing;
use ringbell::wire::{COMMITTED, PADDING};
use ringbell::wire::{HEADER_SIZE, READ_POS_OFF, WRITE_POS_OFF};
use ringbell::{Corruption, RecvError};

struct Dead(Mutex<HashSet<u64>>);
impl Dead {
    fn new() -> Self {
        Dead(Mutex::new(HashSet::new()))
    }
    fn kill(&self, o: OwnerId) {
        self.0.lock().unwrap().insert(o.get());
    }
}
impl Liveness for Dead {
    fn is_dead(&self, o: OwnerId) -> bool {
        self.0.lock().unwrap().contains(&o.get())
    }
}

fn region(cfg: &mpsc::Config) -> HeapRegion<Mpsc> {
    HeapRegion::new(cfg).unwrap()
}

/// A garbage padding length that is not a multiple of 8 is corruption (it once moved the
/// read position off the 8-byte grid and panicked the next access).
#[test]
fn misaligned_padding_is_corruption_not_a_panic() {
    let _watchdog = common::watchdog();
    let cfg = mpsc::Config::new(256);
    let reg = region(&cfg);
    let mut rx = Consumer::attach(reg.clone(), OwnerId::unique(), NeverDead).unwrap();
    let mem = testing::view(&reg);
    mem.store_u32(HEADER_SIZE, PADDING | COMMITTED | 3, Relaxed); // 11-byte padding
    mem.store_u64(WRITE_POS_OFF, 64, Relaxed);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let a = rx.try_recv();
        let b = rx.try_recv();
        (a.is_ok(), b.is_ok())
    }));
    assert!(r.is_ok(), "consumer panicked on garbage");
}

#[test]
fn misaligned_padding_does_not_panic_has_data() {
    let _watchdog = common::watchdog();
    let cfg = mpsc::Config::new(256);
    let reg = region(&cfg);
    let rx = Consumer::attach(reg.clone(), OwnerId::unique(), NeverDead).unwrap();
    let mem = testing::view(&reg);
    mem.store_u32(HEADER_SIZE, PADDING | COMMITTED | 3, Relaxed);
    mem.store_u64(WRITE_POS_OFF, 64, Relaxed);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rx.has_data()));
    assert!(r.is_ok(), "has_data panicked on garbage");
}

/// The consumer starts waiting on an empty ring; then a producer claims and dies, and a
/// survivor sends behind it. The stall must be examined (it once was not: the wait slept to
/// its deadline).
#[test]
fn a_stall_appearing_during_a_wait_is_examined() {
    let _watchdog = common::watchdog();
    let cfg = mpsc::Config::new(1024);
    let reg = region(&cfg);
    let dead: &'static Dead = Box::leak(Box::new(Dead::new()));
    let mut rx = Consumer::attach(reg.clone(), OwnerId::unique(), dead).unwrap();
    rx.set_stall_timeout(Duration::from_millis(10));
    let did = OwnerId::unique();
    let mut d = Producer::attach(reg.clone(), did).unwrap();
    let mut q = Producer::attach(reg.clone(), OwnerId::unique()).unwrap();
    let t = std::thread::spawn(move || {
        let t0 = Instant::now();
        let r = rx.recv_into_timeout(&mut [0u8; 64], Duration::from_secs(2));
        (r, t0.elapsed(), rx.skipped())
    });
    std::thread::sleep(Duration::from_millis(100));
    testing::mpsc_claim_and_stop(&mut d, 8).unwrap();
    dead.kill(did);
    q.try_send(2, b"behind").unwrap();
    let (r, took, skipped) = t.join().unwrap();
    println!("recv: {r:?} after {took:?}, skipped {skipped}");
    assert_eq!(r, Ok((2, 6)), "took {took:?}");
}

/// E claims (header 0) and D describes (CLAIMED) right behind it; both die. Both records are
/// skipped (once, D's record lost its owner's slot and stuck the ring forever).
#[test]
fn two_dead_producers_do_not_stick_the_ring() {
    let _watchdog = common::watchdog();
    let cfg = mpsc::Config::new(1024);
    let reg = region(&cfg);
    let dead: &'static Dead = Box::leak(Box::new(Dead::new()));
    let mut rx = Consumer::attach(reg.clone(), OwnerId::unique(), dead).unwrap();
    rx.set_stall_timeout(Duration::from_millis(5));
    let (eid, did) = (OwnerId::unique(), OwnerId::unique());
    let mut e = Producer::attach(reg.clone(), eid).unwrap();
    let mut d = Producer::attach(reg.clone(), did).unwrap();
    let mut s = Producer::attach(reg.clone(), OwnerId::unique()).unwrap();
    testing::mpsc_claim_and_stop(&mut e, 8).unwrap();
    std::mem::forget(d.reserve(8).unwrap());
    s.try_send(3, b"survivor").unwrap();
    dead.kill(eid);
    dead.kill(did);
    let r = rx.recv_into_timeout(&mut [0u8; 64], Duration::from_secs(1));
    println!("recv: {r:?}, skipped {}", rx.skipped());
    std::mem::forget(e);
    std::mem::forget(d);
    assert_eq!(r, Ok((3, 8)));
}

/// A live producer that marks and claims while the consumer examines a dead producer's gap:
/// its claim must not be covered by the gap and its slot must not be freed (once the claim
/// position was read after the slot scan, and every in-claim slot was freed).
struct Racy {
    dead: OwnerId,
    live: Mutex<Option<Producer<HeapRegion<Mpsc>>>>,
}
impl Liveness for Racy {
    fn is_dead(&self, o: OwnerId) -> bool {
        if o == self.dead {
            // The live producer claims right now (as if scheduled between the slot scan and
            // the claim load).
            if let Some(p) = self.live.lock().unwrap().as_mut() {
                testing::mpsc_claim_and_stop(p, 8).unwrap();
            }
            return true;
        }
        false
    }
}

#[test]
fn a_gap_skip_never_covers_a_live_claim_or_frees_its_slot() {
    let _watchdog = common::watchdog();
    let cfg = mpsc::Config::new(1024).slots(4);
    let reg = region(&cfg);
    let live = Producer::attach(reg.clone(), OwnerId::unique()).unwrap(); // slot 0
    assert_eq!(live.slot(), 0);
    let did = OwnerId::unique();
    let mut d = Producer::attach(reg.clone(), did).unwrap(); // slot 1
    let racy: &'static Racy = Box::leak(Box::new(Racy {
        dead: did,
        live: Mutex::new(Some(live)),
    }));
    let mut rx = Consumer::attach(reg.clone(), OwnerId::unique(), racy).unwrap();
    rx.set_stall_timeout(Duration::from_millis(1));
    testing::mpsc_claim_and_stop(&mut d, 8).unwrap(); // [0, 16) header 0, D "dies"
    std::mem::forget(d);
    let t0 = Instant::now();
    while rx.skipped() == 0 && t0.elapsed() < Duration::from_secs(1) {
        let _ = rx.try_recv();
        std::thread::sleep(Duration::from_millis(2));
    }
    let mem = testing::view(&reg);
    let read = mem.load_u64(READ_POS_OFF, Relaxed);
    let claim = mem.load_u64(WRITE_POS_OFF, Relaxed);
    println!("skipped {} read {read} claim {claim}", rx.skipped());
    // A newcomer gets the live producer's slot.
    let n = Producer::attach(reg.clone(), OwnerId::unique()).unwrap();
    println!("newcomer slot {}", n.slot());
    let live_slot_stolen = n.slot() == 0;
    let live_claim_skipped = read > 16;
    assert!(
        !live_slot_stolen && !live_claim_skipped,
        "stolen {live_slot_stolen} skipped-live {live_claim_skipped}"
    );
}

/// While a large producer's reservation is posted, a small producer blocked in `send` sleeps
/// (it once spun at 100% CPU past its deadline).
#[test]
fn a_small_producer_sleeps_while_a_reservation_is_posted() {
    let _watchdog = common::watchdog();
    let cfg = mpsc::Config::new(4096).frame_cap(1500);
    let reg = region(&cfg);
    let _rx = Consumer::attach(reg.clone(), OwnerId::unique(), NeverDead).unwrap();
    let mut f = Producer::attach(reg.clone(), OwnerId::unique()).unwrap();
    for i in 0..25 {
        f.try_send(i, &[0; 96]).unwrap(); // 2600 bytes used, 1496 free
    }
    let mut big = Producer::attach(reg.clone(), OwnerId::unique()).unwrap();
    let bt = std::thread::spawn(move || big.send_timeout(9, &[1; 1500], Duration::from_secs(2)));
    std::thread::sleep(Duration::from_millis(50));
    let mut small = Producer::attach(reg.clone(), OwnerId::unique()).unwrap();
    let st = std::thread::spawn(move || {
        let cpu0 = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
        let t0 = Instant::now();
        let r = small.send_timeout(1, &[2; 40], Duration::from_millis(300));
        let cpu1 = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
        let cpu = (cpu1.tv_sec - cpu0.tv_sec) as f64 + (cpu1.tv_nsec - cpu0.tv_nsec) as f64 * 1e-9;
        (r, t0.elapsed(), cpu, small.stats())
    });
    let (r, wall, cpu, stats) = st.join().unwrap();
    println!("small: {r:?} wall {wall:?} cpu {cpu:.3}s stats {stats:?}");
    let _ = bt.join();
    assert!(cpu < 0.05, "small producer burnt {cpu:.3}s CPU in {wall:?}");
}

/// A large send wakes as soon as its claim fits (its wait once asked for twice its size).
#[test]
fn a_large_send_wakes_when_it_fits() {
    let _watchdog = common::watchdog();
    let cfg = mpsc::Config::new(4096).frame_cap(2040);
    let reg = region(&cfg);
    let mut rx = Consumer::attach(reg.clone(), OwnerId::unique(), NeverDead).unwrap();
    let mut f = Producer::attach(reg.clone(), OwnerId::unique()).unwrap();
    let mut l = Producer::attach(reg.clone(), OwnerId::unique()).unwrap();
    f.try_send(0, &[0; 1016]).unwrap();
    f.try_send(0, &[0; 1016]).unwrap(); // 2048
    let g = l.reserve(0).unwrap(); // 2048..2056, held open
    f.try_send(0, &[0; 2032]).unwrap(); // ..4096
    let mut big = Producer::attach(reg.clone(), OwnerId::unique()).unwrap();
    let bt = std::thread::spawn(move || {
        let t0 = Instant::now();
        let r = big.send_timeout(9, &[1; 2040], Duration::from_millis(500));
        (r, t0.elapsed())
    });
    std::thread::sleep(Duration::from_millis(50));
    rx.try_recv().unwrap();
    rx.try_recv().unwrap(); // 2048 free at offset 0: the big claim fits
    let (r, took) = bt.join().unwrap();
    drop(g);
    println!("big: {r:?} after {took:?}");
    assert_eq!(r, Ok(()));
}

/// Crashed producers (here: forgotten handles) do not keep their registry slots for good.
#[test]
fn crashed_producers_do_not_leak_registry_slots() {
    let _watchdog = common::watchdog();
    let cfg = mpsc::Config::new(1024).slots(2);
    let reg = region(&cfg);
    let dead: &'static Dead = Box::leak(Box::new(Dead::new()));
    let mut rx = Consumer::attach(reg.clone(), OwnerId::unique(), dead).unwrap();
    rx.set_stall_timeout(Duration::from_millis(1));
    for _ in 0..2 {
        let id = OwnerId::unique();
        let mut p = Producer::attach(reg.clone(), id).unwrap();
        p.try_send(1, b"x").unwrap();
        std::mem::forget(p); // SIGKILL between sends
        dead.kill(id);
    }
    for _ in 0..10 {
        let _ = rx.try_recv();
        std::thread::sleep(Duration::from_millis(2));
    }
    let r = Producer::attach(reg.clone(), OwnerId::unique()).map(|_| ());
    assert_eq!(r, Ok(()), "registry full of dead producers");
}

/// A live producer retrying `try_send` on a full ring must not keep IN_CLAIM set (it once
/// did, and the gap skip, which needs every in-claim producer dead, kept refusing).
#[test]
fn a_spinning_try_send_does_not_starve_the_skip() {
    let _watchdog = common::watchdog();
    let cfg = mpsc::Config::new(1024);
    let reg = region(&cfg);
    let dead: &'static Dead = Box::leak(Box::new(Dead::new()));
    let mut rx = Consumer::attach(reg.clone(), OwnerId::unique(), dead).unwrap();
    rx.set_stall_timeout(Duration::from_millis(5));
    let did = OwnerId::unique();
    let mut d = Producer::attach(reg.clone(), did).unwrap();
    testing::mpsc_claim_and_stop(&mut d, 8).unwrap();
    std::mem::forget(d);
    dead.kill(did);
    let mut s = Producer::attach(reg.clone(), OwnerId::unique()).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let st = stop.clone();
    let t = std::thread::spawn(move || {
        let mut n = 0u64;
        while !st.load(Relaxed) {
            if s.try_send(1, &[0; 8]).is_ok() {
                n += 1;
            }
        }
        n
    });
    let t0 = Instant::now();
    let r = rx.recv_into_timeout(&mut [0u8; 64], Duration::from_secs(3));
    let took = t0.elapsed();
    stop.store(true, Relaxed);
    let n = t.join().unwrap();
    println!("recv {r:?} after {took:?}; sent {n}");
    assert!(r.is_ok());
}

/// One dead producer whose claim wrapped (padding + record, nothing described) is skipped.
/// Its two pieces count as two skipped regions: `skipped()` over-counts rather than hides.
#[test]
fn a_wrapped_dead_claim_is_skipped() {
    let _watchdog = common::watchdog();
    let cfg = mpsc::Config::new(256).frame_cap(120);
    let reg = region(&cfg);
    let dead: &'static Dead = Box::leak(Box::new(Dead::new()));
    let mut rx = Consumer::attach(reg.clone(), OwnerId::unique(), dead).unwrap();
    rx.set_stall_timeout(Duration::from_millis(1));
    let mut f = Producer::attach(reg.clone(), OwnerId::unique()).unwrap();
    f.try_send(0, &[0; 100]).unwrap();
    f.try_send(0, &[0; 112]).unwrap(); // 0..232
    rx.try_recv().unwrap();
    rx.try_recv().unwrap();
    let did = OwnerId::unique();
    let mut d = Producer::attach(reg.clone(), did).unwrap();
    testing::mpsc_claim_and_stop(&mut d, 24).unwrap(); // pad 48 + 32 at 0
    std::mem::forget(d);
    dead.kill(did);
    f.try_send(5, b"after").unwrap();
    let r = rx.recv_into_timeout(&mut [0u8; 64], Duration::from_secs(1));
    println!("recv {r:?} skipped {}", rx.skipped());
    assert_eq!(r, Ok((5, 5)));
    assert!((1..=2).contains(&rx.skipped()), "skipped {}", rx.skipped());
}

/// A claim position off the 8-byte grid (garbage from a crashed or buggy writer) makes a send
/// fail with a corruption error. Found by the `hostile_region` fuzz target: the producer once
/// wrote its record header at the unaligned offset and tripped the access layer's bounds
/// assertion.
#[test]
fn an_unaligned_claim_position_is_corruption_not_a_panic() {
    let _watchdog = common::watchdog();
    let cfg = mpsc::Config::new(128).slots(2);
    let reg = region(&cfg);
    let mut p = Producer::attach(reg.clone(), OwnerId::unique()).unwrap();
    testing::view(&reg).store_u64(WRITE_POS_OFF, 22, Relaxed);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| p.try_send(0, &[0; 4])));
    assert!(
        matches!(r, Ok(Err(ringbell::SendError::Corrupt(_)))),
        "{r:?}"
    );
}

/// The consumer re-reads the claim word only when it has caught up with the one it saw; a
/// claim word corrupted while the record at its position is still being written must still
/// be reported (a review found it waited on silently, or spun, instead).
#[test]
fn a_claim_word_corrupted_behind_a_pending_record_is_reported() {
    let _watchdog = common::watchdog();
    let cfg = mpsc::Config::new(1024);
    let reg = region(&cfg);
    let mut rx = Consumer::attach(reg.clone(), OwnerId::unique(), NeverDead).unwrap();
    let mut a = Producer::attach(reg.clone(), OwnerId::unique()).unwrap();
    let mut b = Producer::attach(reg.clone(), OwnerId::unique()).unwrap();
    let grant = a.reserve(8).unwrap(); // pending at the consumer's position
    b.try_send(2, b"behind").unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(rx.try_recv_into(&mut buf), Err(RecvError::Empty));
    let mem = testing::view(&reg);
    for garbage in [u64::MAX - 7, 3, 8] {
        mem.store_u64(WRITE_POS_OFF, garbage, Relaxed);
        assert_eq!(
            rx.try_recv_into(&mut buf),
            Err(RecvError::Corrupt(Corruption::WritePosition {
                found: garbage
            })),
            "claim word {garbage:#x}"
        );
    }
    drop(grant);
}

/// A consumer that frees space but stops short of catching up — here at a record its buffer
/// cannot hold — rings the space doorbell even though it freed less than a wake step, so a
/// producer blocked on the full ring goes on at once rather than at the end of its slice.
#[test]
fn a_consumer_stopping_short_wakes_a_blocked_producer() {
    let _watchdog = common::watchdog();
    let cfg = mpsc::Config::new(4096);
    let reg = region(&cfg);
    let mut rx = Consumer::attach(reg.clone(), OwnerId::unique(), NeverDead).unwrap();
    let mut p = Producer::attach(reg.clone(), OwnerId::unique()).unwrap();
    let max = p.max_frame();
    p.try_send(0, &[0; 56]).unwrap(); // 64 bytes
    while p.try_send(1, &vec![1; max]).is_ok() {}
    while p.try_send(2, &[2; 56]).is_ok() {}
    // Asleep for a whole minute unless rung.
    p.set_wait_options(
        WaitOptions::new()
            .spin_budget(0)
            .slice(Duration::from_secs(60)),
    );
    let sender = std::thread::spawn(move || {
        let t = Instant::now();
        p.send_timeout(3, &[3; 56], Duration::from_secs(30))
            .unwrap();
        t.elapsed()
    });
    std::thread::sleep(Duration::from_millis(100)); // let it fall asleep
    let mut buf = [0u8; 64];
    assert_eq!(rx.try_recv_into(&mut buf), Ok((0, 56))); // frees 64 bytes, rings nothing
    assert_eq!(
        rx.try_recv_into(&mut buf),
        Err(RecvError::BufferTooSmall { needed: max })
    );
    let waited = sender.join().unwrap();
    assert!(
        waited < Duration::from_secs(10),
        "producer slept {waited:?}"
    );
}

/// `mpsc::init` publishes the ready word once, after zeroing the registry and every record
/// header. It used to publish it first (through the header's initialisation), zero, then
/// publish again: an opener that saw the first one could attach a producer whose slot, and
/// claim a record whose header, was then wiped. An observer spinning on the ready word must
/// find everything zeroed the moment it sees it, even in a reused (garbage-filled) buffer.
#[test]
#[cfg_attr(miri, ignore = "a 4 MiB ring is slow to zero under miri")]
fn init_publishes_ready_once_after_zeroing() {
    let _watchdog = common::watchdog();
    use ringbell::wire::{READY, READY_OFF, REGISTRY_SLOT_SIZE};
    let capacity = 4 << 20;
    let cfg = mpsc::Config::new(capacity).slots(4);
    let len = cfg.region_size().unwrap();
    let last_header = HEADER_SIZE + capacity - 8;
    let last_slot = HEADER_SIZE + capacity + 3 * REGISTRY_SLOT_SIZE;
    for round in 0..8 {
        let region = testing::zeroed_heap_region(len);
        let view = testing::view(&region);
        view.copy_in(HEADER_SIZE, &vec![0xAB; len - HEADER_SIZE]);
        let start = std::sync::Barrier::new(2);
        let seen = std::thread::scope(|s| {
            let observer = s.spawn(|| {
                start.wait();
                while view.load_u32(READY_OFF, std::sync::atomic::Ordering::Acquire) != READY {
                    std::hint::spin_loop();
                }
                (
                    view.load_u32(last_header, Relaxed),
                    view.load_u64(last_slot, Relaxed),
                )
            });
            start.wait();
            mpsc::init(&region, &cfg).unwrap();
            observer.join().unwrap()
        });
        assert_eq!(
            seen,
            (0, 0),
            "round {round}: ready before the zeroing finished"
        );
    }
}
