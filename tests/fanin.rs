//! Fan-in: fairness, a pure peek, isolation of a hostile or closed ring, limits, threads and
//! real processes.

mod common;

use std::os::fd::AsFd;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use common::{Rng, checksum, frame_len};
use ringbell::doorbell::WaitOptions;
use ringbell::fanin::{FanIn, FanInError, RingId};
use ringbell::region::{Bell, HeapRegion, Region, Spsc};
use ringbell::spsc::{self, Consumer, Producer};
use ringbell::testing;
use ringbell::wire::WRITE_POS_OFF;
use ringbell::{AttachError, OwnerId, SendError};

type Ring = HeapRegion<Spsc>;
type BellRegion = HeapRegion<Bell>;

type Setup = (
    BellRegion,
    FanIn<Ring, BellRegion>,
    Vec<Ring>,
    Vec<Producer<Ring, BellRegion>>,
);

fn setup(n: usize, cap: usize) -> Setup {
    let bell = HeapRegion::new(&ringbell::doorbell::BellConfig).unwrap();
    let mut fanin = FanIn::new(bell.clone(), 64).unwrap();
    let mut rings = Vec::new();
    let mut producers = Vec::new();
    for i in 0..n {
        let ring = HeapRegion::new(&spsc::Config::new(cap).shared_bell()).unwrap();
        assert_eq!(
            fanin.add(ring.clone(), OwnerId::unique()).unwrap(),
            RingId(i)
        );
        producers.push(
            Producer::attach_shared_bell(ring.clone(), bell.clone(), OwnerId::unique()).unwrap(),
        );
        rings.push(ring);
    }
    (bell, fanin, rings, producers)
}

#[test]
fn rings_are_served_in_turn() {
    let _watchdog = common::watchdog();
    let (_b, mut fanin, _r, mut p) = setup(3, 4096);
    for i in 0..10u32 {
        p[0].try_send(i, b"busy").unwrap();
    }
    p[1].try_send(100, b"quiet").unwrap();
    p[2].try_send(200, b"quiet").unwrap();
    let mut buf = [0u8; 16];
    let first: Vec<usize> = (0..3)
        .map(|_| fanin.try_recv_into(&mut buf).unwrap().0.0)
        .collect();
    assert_eq!(first, [0, 1, 2], "a busy ring starved the quiet ones");
    // Per-ring order is kept for the busy ring.
    for i in 1..10u32 {
        let (ring, tag, _) = fanin.try_recv_into(&mut buf).unwrap();
        assert_eq!((ring, tag), (RingId(0), i));
    }
    assert_eq!(fanin.try_recv_into(&mut buf), Err(FanInError::Empty));
}

#[test]
fn has_data_changes_nothing() {
    let _watchdog = common::watchdog();
    let (bell, fanin, rings, mut p) = setup(3, 256);
    fn snapshot<S: ringbell::region::SharedMemory>(r: &S) -> Vec<u8> {
        let view = testing::view(r);
        let mut v = vec![0u8; view.len()];
        view.copy_out(0, &mut v);
        v
    }
    let all = || {
        let mut v: Vec<Vec<u8>> = rings.iter().map(snapshot).collect();
        v.push(snapshot(&bell));
        v
    };
    let check = |expect: bool| {
        let (before, local) = (all(), format!("{fanin:?}"));
        assert_eq!(fanin.has_data(), expect);
        assert_eq!(before, all());
        assert_eq!(local, format!("{fanin:?}"));
    };
    check(false);
    p[2].try_send(0, b"x").unwrap();
    check(true);
}

#[test]
fn a_corrupt_ring_is_detached_and_the_others_go_on() {
    let _watchdog = common::watchdog();
    let (_b, mut fanin, rings, mut p) = setup(3, 256);
    p[0].try_send(0, b"a").unwrap();
    p[2].try_send(2, b"c").unwrap();
    // Ring 1's producer writes garbage into its write position.
    testing::view(&rings[1]).store_u64(WRITE_POS_OFF, 12345, Relaxed);
    let mut buf = [0u8; 16];
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(fanin.try_recv_into(&mut buf).map(|(r, t, _)| (r, t)));
    }
    assert!(seen.contains(&Ok((RingId(0), 0))));
    assert!(seen.contains(&Ok((RingId(2), 2))));
    assert!(
        seen.iter()
            .any(|r| matches!(r, Err(FanInError::Corrupt(RingId(1), _))))
    );
    assert_eq!(fanin.ring_count(), 2);
    // The hostile producer is cut off; the others keep going.
    assert_eq!(p[1].try_send(1, b"b"), Err(SendError::Closed));
    p[0].try_send(3, b"d").unwrap();
    assert_eq!(
        fanin.try_recv_into(&mut buf).map(|(r, t, _)| (r, t)),
        Ok((RingId(0), 3))
    );
}

#[test]
fn a_closed_ring_is_drained_then_reported_once() {
    let _watchdog = common::watchdog();
    let (_b, mut fanin, _r, mut p) = setup(2, 256);
    p[1].try_send(7, b"last").unwrap();
    drop(p.remove(1));
    let mut buf = [0u8; 16];
    assert_eq!(
        fanin.try_recv_into(&mut buf).map(|(r, t, _)| (r, t)),
        Ok((RingId(1), 7))
    );
    assert_eq!(
        fanin.try_recv_into(&mut buf),
        Err(FanInError::Closed(RingId(1)))
    );
    assert_eq!(fanin.try_recv_into(&mut buf), Err(FanInError::Empty));
    assert_eq!(fanin.ring_count(), 1);
    // A blocking receive is woken by a close too.
    let producer = p.remove(0);
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        drop(producer);
    });
    assert_eq!(
        fanin.recv_into_timeout(&mut buf, Duration::from_secs(5)),
        Err(FanInError::Closed(RingId(0)))
    );
    t.join().unwrap();
}

#[test]
fn rings_and_bells_must_match() {
    let _watchdog = common::watchdog();
    let bell = HeapRegion::new(&ringbell::doorbell::BellConfig).unwrap();
    let mut fanin = FanIn::new(bell.clone(), 1).unwrap();
    let plain = HeapRegion::new(&spsc::Config::new(256)).unwrap();
    let shared = HeapRegion::new(&spsc::Config::new(256).shared_bell()).unwrap();
    let id = OwnerId::unique;
    assert_eq!(
        fanin.add(plain.clone(), id()).unwrap_err(),
        AttachError::WrongBell
    );
    assert_eq!(
        Producer::attach(shared.clone(), id()).unwrap_err(),
        AttachError::WrongBell
    );
    assert_eq!(
        Consumer::attach(shared.clone(), id()).unwrap_err(),
        AttachError::WrongBell
    );
    assert_eq!(
        Producer::attach_shared_bell(plain, bell.clone(), id()).unwrap_err(),
        AttachError::WrongBell
    );
    // A ring is not a bell region: typed regions do not compile that way, and untyped memory
    // holding a ring is refused at run time.
    let untyped = testing::zeroed_heap_region(1024 + 256);
    spsc::init(&untyped, &spsc::Config::new(256)).unwrap();
    assert!(matches!(
        Producer::attach_shared_bell(shared.clone(), &untyped, id()),
        Err(AttachError::Header(_))
    ));
    assert!(FanIn::<Ring, _>::new(&untyped, 1).is_err());
    fanin.add(shared, id()).unwrap();
    let another = HeapRegion::new(&spsc::Config::new(256).shared_bell()).unwrap();
    assert_eq!(
        fanin.add(another, id()).unwrap_err(),
        AttachError::Limit { max: 1 }
    );
}

/// Four producer threads stream into one fan-in that sleeps when every ring is empty:
/// everything arrives in per-producer order, and the producers' wake system calls never exceed
/// the sleeps the fan-in announced.
#[test]
fn threads_stream_without_a_wake_per_message() {
    let _watchdog = common::watchdog();
    let per: u32 = if cfg!(miri) { 200 } else { 100_000 };
    let (_b, mut fanin, _r, producers) = setup(4, 4096);
    let handles: Vec<_> = producers
        .into_iter()
        .enumerate()
        .map(|(k, mut p)| {
            std::thread::spawn(move || {
                for i in 0..per {
                    p.send(i, &[k as u8; 24]).unwrap();
                }
                p.stats()
            })
        })
        .collect();
    let mut next = [0u32; 4];
    let mut buf = [0u8; 64];
    let mut closed = 0;
    while closed < 4 {
        match fanin.recv_into_timeout(&mut buf, Duration::from_secs(30)) {
            Ok((RingId(k), tag, len)) => {
                assert_eq!(tag, next[k], "ring {k} out of order");
                assert_eq!(&buf[..len], &[k as u8; 24]);
                next[k] += 1;
            }
            Err(FanInError::Closed(_)) => closed += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(next, [per; 4]);
    let wakes: u64 = handles.into_iter().map(|h| h.join().unwrap().wakes).sum();
    let sleeps = fanin.stats().sleeps;
    println!("producers' wake calls {wakes}, fan-in sleeps announced {sleeps}");
    assert!(wakes <= sleeps, "{wakes} wakes for {sleeps} sleeps");
}

const PROCS: usize = 4;
const PROC_FRAMES: u32 = 250_000;

/// Four producer processes × 250,000 frames of random sizes with checksums into one fan-in
/// over 64 KiB rings: nothing lost, nothing duplicated, per-producer order kept.
#[test]
#[cfg_attr(miri, ignore = "miri cannot spawn processes or map memfds")]
fn four_processes_into_one_fanin() {
    let _watchdog = common::watchdog();
    let bell = Region::create(&ringbell::doorbell::BellConfig).unwrap();
    let mut fanin = FanIn::new(bell.clone(), PROCS).unwrap();
    let mut children = Vec::new();
    for k in 0..PROCS {
        let ring = Region::create(&spsc::Config::new(64 << 10).shared_bell()).unwrap();
        fanin.add(ring.clone(), OwnerId::unique()).unwrap();
        let child = common::spawn_child_with_fds(
            "fanin_producer_child",
            &format!("fanin-producer-{k}"),
            &[ring.fd().as_fd(), bell.fd().as_fd()],
        );
        children.push(child);
    }
    let max = (64 << 10) / 2 - 8;
    let mut rngs: Vec<Rng> = (0..PROCS).map(|k| Rng::new(k as u64)).collect();
    let mut next = [0u32; PROCS];
    let mut buf = vec![0u8; max];
    let mut closed = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while closed < PROCS {
        assert!(Instant::now() < deadline, "stalled at {next:?}");
        match fanin.recv_into_timeout(&mut buf, Duration::from_secs(30)) {
            Ok((RingId(k), tag, len)) => {
                assert_eq!(tag, next[k], "producer {k}: frame out of order");
                assert_eq!(
                    len,
                    frame_len(&mut rngs[k], max),
                    "producer {k} frame {tag}: length"
                );
                let sum = u32::from_le_bytes(buf[..4].try_into().unwrap());
                assert_eq!(
                    sum,
                    checksum(tag, &buf[4..len]),
                    "producer {k} frame {tag}: corrupt"
                );
                next[k] += 1;
            }
            Err(FanInError::Closed(RingId(k))) => {
                assert_eq!(next[k], PROC_FRAMES, "producer {k} closed early");
                closed += 1;
            }
            Err(e) => panic!("{e} at {next:?}"),
        }
    }
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let stats = fanin.stats();
    println!("fan-in: {stats:?}");
}

#[test]
fn fanin_producer_child() {
    let _watchdog = common::watchdog();
    let Some(role) = common::child_role() else {
        return;
    };
    let Some(k) = role.strip_prefix("fanin-producer-") else {
        return;
    };
    let k: u64 = k.parse().unwrap();
    let mut fds = common::child_fds().into_iter();
    let ring = Region::<ringbell::region::Spsc>::open(fds.next().unwrap()).unwrap();
    let bell = Region::<ringbell::region::Bell>::open(fds.next().unwrap()).unwrap();
    let mut tx = Producer::attach_shared_bell(ring, bell, OwnerId::unique()).unwrap();
    tx.set_wait_options(WaitOptions::default());
    let max = tx.max_frame();
    let mut rng = Rng::new(k);
    let mut fill = Rng::new(k + 1000);
    let mut payload = vec![0u8; max];
    for i in 0..PROC_FRAMES {
        let len = frame_len(&mut rng, max);
        fill.fill(&mut payload[4..len]);
        let sum = checksum(i, &payload[4..len]);
        payload[..4].copy_from_slice(&sum.to_le_bytes());
        tx.send_timeout(i, &payload[..len], Duration::from_secs(30))
            .unwrap();
    }
}

/// A blocking receive with no ring left — each was reported closed and detached — returns
/// `NoRings` instead of sleeping for ever (nothing can add a ring while it blocks). It used to
/// wait until its deadline, and without one for ever.
#[test]
fn a_blocking_receive_with_every_ring_closed_returns_no_rings() {
    let _watchdog = common::watchdog_for(Duration::from_secs(20));
    let (_bell, mut fanin, _rings, producers) = setup(2, 256);
    drop(producers);
    let mut buf = [0u8; 16];
    let mut closed = Vec::new();
    let end = loop {
        match fanin.recv_into(&mut buf) {
            Err(FanInError::Closed(r)) => closed.push(r),
            other => break other,
        }
    };
    closed.sort();
    assert_eq!(closed, [RingId(0), RingId(1)]);
    assert_eq!(end, Err(FanInError::NoRings));
    // Every ring paused counts as none to receive from, too.
    let (_bell, mut fanin, _rings, _p) = setup(1, 256);
    fanin.set_paused(RingId(0), true);
    assert_eq!(fanin.recv().map(drop), Err(FanInError::NoRings));
}
