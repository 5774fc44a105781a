//! Fan-in model: two producers on their own rings ring one shared doorbell; the consumer
//! sleeps on it and receives everything, then sees both closes.
//!
//! Each producer sends one frame; the consumer sleeps until it has both. (Waiting for the
//! producers' closes as well makes each producer ring twice, and loom 0.7 then reports
//! deadlocks no execution can have: see `loom_limits.rs`.)
#![cfg(loom)]

use loom::thread;
use loom_tests::support::{builder, no_spin};
use ringbell::OwnerId;
use ringbell::doorbell::{BELL_REGION_SIZE, init_bell};
use ringbell::fanin::{FanIn, FanInError, RingId};
use ringbell::mem::LoomRegion;
use ringbell::spsc::{self, Producer, RingConfig};

#[test]
fn two_producers_one_doorbell() {
    builder().check(|| {
        let bell = LoomRegion::zeroed(BELL_REGION_SIZE);
        init_bell(&bell).unwrap();
        let mut fanin = FanIn::new(bell.clone(), 2).unwrap();
        fanin.set_wait_options(no_spin());
        let producers: Vec<_> = (0..2u64)
            .map(|k| {
                let cfg = RingConfig::new(32).shared_bell();
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
                    p // dropped (and its close rung) after the consumer is done
                })
            })
            .collect();
        let mut got = [0u32; 2];
        let mut buf = [0u8; 8];
        for _ in 0..2 {
            let (RingId(k), tag, len) = fanin.recv_into_timeout(&mut buf, None).unwrap();
            assert_eq!((tag, &buf[..len]), (0, &[k as u8 + 1; 8][..]));
            got[k] += 1;
        }
        assert_eq!(got, [1, 1]);
        assert!(!fanin.has_data());
        let producers: Vec<_> = producers.into_iter().map(|t| t.join().unwrap()).collect();
        drop(producers);
        let err = fanin.try_recv_into(&mut buf).unwrap_err();
        assert!(matches!(err, FanInError::Closed(_)), "{err}");
    });
}
