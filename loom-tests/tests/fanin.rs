//! Fan-in model: two producers on their own rings ring one shared doorbell; the consumer
//! sleeps on it and receives everything, then sees both closes.
//!
//! Each producer sends one frame and closes; the consumer receives both and sees both closes.
#![cfg(loom)]

use loom::thread;
use loom_tests::support::{builder_bounded, no_spin};
use ringbell::OwnerId;
use ringbell::doorbell::init_bell;
use ringbell::fanin::{FanIn, FanInError, RingId};
use ringbell::region::LoomRegion;
use ringbell::spsc::{self, Producer};
use ringbell::wire::BELL_REGION_SIZE;

#[test]
fn two_producers_one_doorbell() {
    // Three threads over three regions: preemption bound 2 (bound 3 takes over a minute).
    builder_bounded(2).check(|| {
        let bell = LoomRegion::zeroed(BELL_REGION_SIZE);
        init_bell(&bell).unwrap();
        let mut fanin = FanIn::new(bell.clone(), 2).unwrap();
        fanin.set_wait_options(no_spin());
        let producers: Vec<_> = (0..2u64)
            .map(|k| {
                let cfg = spsc::Config::new(32).shared_bell();
                let ring = LoomRegion::zeroed(cfg.region_size().unwrap());
                spsc::init(&ring, &cfg).unwrap();
                fanin
                    .add(ring.clone(), OwnerId::new(10 + k).unwrap())
                    .unwrap();
                let mut p =
                    Producer::attach_shared_bell(ring, bell.clone(), OwnerId::new(20 + k).unwrap())
                        .unwrap();
                p.set_wait_options(no_spin());
                thread::spawn(move || {
                    p.send(0, &[k as u8 + 1; 8]).unwrap();
                    drop(p); // closes and rings the shared doorbell
                })
            })
            .collect();
        let (mut frames, mut closes) = ([0u32; 2], 0);
        let mut buf = [0u8; 8];
        while closes < 2 {
            match fanin.recv_into(&mut buf) {
                Ok((RingId(k), tag, len)) => {
                    assert_eq!((tag, &buf[..len]), (0, &[k as u8 + 1; 8][..]));
                    frames[k] += 1;
                }
                Err(FanInError::Closed(RingId(k))) => {
                    assert_eq!(
                        frames[k], 1,
                        "ring {k} closed before its frame was received"
                    );
                    closes += 1;
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(frames, [1, 1]);
        for t in producers {
            t.join().unwrap();
        }
    });
}
