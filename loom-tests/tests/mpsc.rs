//! MPSC models: producers racing for claims across the wrap with blocking on full and empty,
//! and the dead-producer skip racing a late commit.
#![cfg(loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::thread;
use loom_tests::support::{builder, builder_bounded, no_spin};
use ringbell::mpsc::{self, Consumer, Liveness, NeverDead, Producer};
use ringbell::region::LoomRegion;
use ringbell::{OwnerId, RecvError, SendError};

fn region(cfg: &mpsc::Config) -> LoomRegion {
    let r = LoomRegion::zeroed(cfg.region_size().unwrap());
    mpsc::init(&r, cfg).unwrap();
    r
}

/// Two producers race for claims on a 32-byte ring starting at offset 24, so the first claim
/// takes 8 bytes of padding and wraps, and the second must wait for room (blocking on full)
/// while the consumer waits for data (blocking on empty). Both frames arrive once, intact;
/// `has_data()` true means the next receive succeeds.
#[test]
fn two_producers_across_the_wrap() {
    // Three threads blocking on two doorbells: preemption bound 2 takes half a minute, bound 3
    // about ten.
    builder_bounded(2).check(|| {
        let cfg = mpsc::Config::new(32)
            .frame_cap(8)
            .slots(2)
            .start_position(24);
        let ring = region(&cfg);
        let mut rx = Consumer::attach(ring.clone(), OwnerId::new(1).unwrap(), NeverDead).unwrap();
        rx.set_wait_options(no_spin());
        let producers: Vec<_> = (0..2u32)
            .map(|k| {
                let mut p =
                    Producer::attach(ring.clone(), OwnerId::new(10 + k as u64).unwrap()).unwrap();
                p.set_wait_options(no_spin());
                thread::spawn(move || p.send(k, &[k as u8 + 1; 8]).unwrap())
            })
            .collect();
        let mut got = [0u32; 2];
        let mut buf = [0u8; 8];
        for _ in 0..2 {
            let (tag, len) = if rx.has_data() {
                rx.try_recv_into(&mut buf).expect("has_data lied")
            } else {
                rx.recv_into(&mut buf).unwrap()
            };
            assert_eq!(&buf[..len], &[tag as u8 + 1; 8], "torn record");
            got[tag as usize] += 1;
        }
        assert_eq!(got, [1, 1], "lost or duplicated");
        for t in producers {
            t.join().unwrap();
        }
        assert_eq!(rx.try_recv_into(&mut buf), Err(RecvError::Empty));
    });
}

/// The consumer rings the space doorbell only at wake steps (the whole ring, under loom) and
/// when it catches up with the claims it saw. A producer whose second frame must wrap (8 bytes
/// of padding, then 16) blocks until the first frame's release, which crosses no step: the
/// catch-up ring must wake it.
#[test]
fn a_blocked_producer_wakes_when_the_consumer_catches_up() {
    builder().check(|| {
        let cfg = mpsc::Config::new(32)
            .frame_cap(8)
            .slots(1)
            .start_position(8);
        let ring = region(&cfg);
        let mut rx = Consumer::attach(ring.clone(), OwnerId::new(1).unwrap(), NeverDead).unwrap();
        rx.set_wait_options(no_spin());
        let mut p = Producer::attach(ring, OwnerId::new(10).unwrap()).unwrap();
        p.set_wait_options(no_spin());
        let t = thread::spawn(move || {
            for i in 0..2u32 {
                p.send(i, &[i as u8 + 1; 8]).unwrap();
            }
        });
        let mut buf = [0u8; 8];
        for i in 0..2u32 {
            let (tag, len) = rx.recv_into(&mut buf).unwrap();
            assert_eq!((tag, &buf[..len]), (i, &[i as u8 + 1; 8][..]));
        }
        t.join().unwrap();
    });
}

/// One producer sends three frames through a ring that holds two, so the third reuses the
/// first one's place: its header must read "claimed, not described" (zeroed on release), not
/// the first lap's committed header, and the claim must wait for the release.
#[test]
fn one_producer_three_laps() {
    builder_bounded(2).check(|| {
        let cfg = mpsc::Config::new(32).frame_cap(8).slots(1);
        let ring = region(&cfg);
        let mut rx = Consumer::attach(ring.clone(), OwnerId::new(1).unwrap(), NeverDead).unwrap();
        rx.set_wait_options(no_spin());
        let mut p = Producer::attach(ring, OwnerId::new(10).unwrap()).unwrap();
        p.set_wait_options(no_spin());
        let t = thread::spawn(move || {
            for i in 0..3u32 {
                p.send(i, &[i as u8 + 1; 8]).unwrap();
            }
        });
        let mut buf = [0u8; 8];
        for i in 0..3u32 {
            let (tag, len) = rx.recv_into(&mut buf).unwrap();
            assert_eq!(
                (tag, &buf[..len]),
                (i, &[i as u8 + 1; 8][..]),
                "stale or torn frame"
            );
        }
        t.join().unwrap();
    });
}

/// A liveness source that reports every producer dead once told to: the consumer may then
/// skip a record whose producer is in fact about to commit.
struct DeclaredDead(Arc<AtomicBool>);

impl Liveness for DeclaredDead {
    fn is_dead(&self, _: OwnerId) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// The consumer skips a stuck record while its producer commits late: exactly one wins. If
/// the commit wins the frame is delivered; if the skip wins the producer's commit fails with
/// `Skipped` and the frame is counted as skipped — never both, never neither.
#[test]
fn dead_producer_skip_races_a_late_commit() {
    builder().check(|| {
        let cfg = mpsc::Config::new(64).frame_cap(8).slots(2);
        let ring = region(&cfg);
        let dead = Arc::new(AtomicBool::new(true));
        let mut rx =
            Consumer::attach(ring.clone(), OwnerId::new(1).unwrap(), DeclaredDead(dead)).unwrap();
        rx.set_stall_timeout(core::time::Duration::ZERO);
        let mut p = Producer::attach(ring, OwnerId::new(10).unwrap()).unwrap();
        let late = thread::spawn(move || {
            let mut g = p.reserve(8).unwrap();
            thread::yield_now();
            g.write_at(0, &[5; 8]);
            g.commit(7)
        });
        let mut buf = [0u8; 8];
        let mut delivered = false;
        for _ in 0..8 {
            match rx.try_recv_into(&mut buf) {
                Ok((tag, len)) => {
                    assert_eq!((tag, &buf[..len]), (7, &[5u8; 8][..]));
                    delivered = true;
                    break;
                }
                Err(RecvError::Empty) if rx.skipped() == 1 => break,
                Err(RecvError::Empty) => thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        }
        let commit = late.join().unwrap();
        if !delivered && rx.skipped() == 0 {
            // The consumer gave up looking before the producer committed: drain now.
            if let Ok((tag, _)) = rx.try_recv_into(&mut buf) {
                assert_eq!(tag, 7);
                delivered = true;
            }
        }
        match commit {
            Ok(()) => assert!(
                delivered && rx.skipped() == 0,
                "committed but not delivered"
            ),
            Err(SendError::Skipped) => {
                assert!(!delivered && rx.skipped() == 1, "skipped yet delivered")
            }
            Err(e) => panic!("{e}"),
        }
    });
}
