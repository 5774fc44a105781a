//! SPSC models on a tiny ring: order, no torn record, blocking on full and empty, notify.
#![cfg(loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicU32, Ordering};
use loom::thread;
use loom_tests::support::{builder, no_spin};
use ringbell::OwnerId;
use ringbell::region::LoomRegion;
use ringbell::spsc::{self, Consumer, Producer};

/// A 32-byte ring: the frame cap is 8 bytes and holds two 8-byte frames, so three frames wrap
/// and the producer blocks on full.
fn ring() -> (Producer<LoomRegion>, Consumer<LoomRegion>) {
    let cfg = spsc::Config::new(32);
    let region = LoomRegion::zeroed(cfg.region_size().unwrap());
    spsc::init(&region, &cfg).unwrap();
    let mut tx = Producer::attach(region.clone(), OwnerId::new(1).unwrap()).unwrap();
    let mut rx = Consumer::attach(region, OwnerId::new(2).unwrap()).unwrap();
    tx.set_wait_options(no_spin());
    rx.set_wait_options(no_spin());
    (tx, rx)
}

fn frame(i: u8) -> [u8; 8] {
    [i; 8]
}

/// Three 8-byte frames through a ring that holds two: blocking on full and on empty, across
/// the wrap, in order, never torn.
#[test]
fn blocking_stream_across_the_wrap() {
    builder().check(|| {
        let (mut tx, mut rx) = ring();
        let t = thread::spawn(move || {
            for i in 0..3u8 {
                tx.send(i as u32, &frame(i + 1)).unwrap();
            }
        });
        let mut buf = [0u8; 8];
        for i in 0..3u8 {
            let (tag, len) = rx.recv_into(&mut buf).unwrap();
            assert_eq!((tag, len), (i as u32, 8));
            assert_eq!(buf, frame(i + 1), "torn or misplaced record");
        }
        t.join().unwrap();
    });
}

/// Frames whose sizes make a real padding record (8 + 16 bytes, then a 16-byte record at
/// offset 24 needs 8 bytes of padding and wraps): `has_data()` true means the next
/// `try_recv_into` succeeds, and the producer's close is seen after the last frame.
#[test]
fn has_data_is_honest_and_close_is_seen() {
    builder().check(|| {
        let (mut tx, mut rx) = ring();
        let t = thread::spawn(move || {
            tx.send(0, &[]).unwrap(); // 8 bytes at 0
            tx.send(1, &[8; 8]).unwrap(); // 16 bytes at 8
            tx.send(2, &[9; 8]).unwrap(); // 8 bytes of padding at 24, 16 bytes at 0
            drop(tx);
        });
        let mut buf = [0u8; 8];
        let mut next = 0u32;
        loop {
            if rx.has_data() {
                let (tag, _) = rx.try_recv_into(&mut buf).expect("has_data lied");
                assert_eq!(tag, next);
                next += 1;
                continue;
            }
            match rx.recv_into(&mut buf) {
                Ok((tag, _)) => {
                    assert_eq!(tag, next);
                    next += 1;
                }
                Err(ringbell::RecvError::Closed) => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(next, 3);
        t.join().unwrap();
    });
}

/// A producer blocked on a full ring sees the consumer's close at once: the consumer's drop
/// rings the space doorbell and the producer's wait checks the closed flag.
#[test]
fn consumer_close_wakes_blocked_producer() {
    builder().check(|| {
        let (mut tx, rx) = ring();
        let t = thread::spawn(move || drop(rx));
        let mut sent = 0;
        let err = loop {
            match tx.send(0, &[1; 8]) {
                Ok(()) => sent += 1,
                Err(e) => break e,
            }
        };
        assert_eq!(err, ringbell::SendError::Closed);
        assert!(sent <= 2, "sent {sent} into a ring that holds 2");
        t.join().unwrap();
    });
}

/// A consumer waiting for data *or* a worker's completion is woken by the worker's notify.
#[test]
fn notify_from_a_third_thread() {
    builder().check(|| {
        let (mut tx, mut rx) = ring();
        let done = Arc::new(AtomicU32::new(0));
        let notifier = rx.notifier();
        let d = done.clone();
        let worker = thread::spawn(move || {
            d.store(1, Ordering::Release);
            notifier.notify();
        });
        let producer = thread::spawn(move || {
            tx.send(0, &frame(1)).unwrap();
        });
        // Wait for both the frame and the completion, each announced on the one doorbell.
        let mut got_frame = false;
        let mut buf = [0u8; 8];
        while !(got_frame && done.load(Ordering::Acquire) == 1) {
            let seen = got_frame;
            rx.wait_until(|rx| (!seen && rx.has_data()) || done.load(Ordering::Acquire) == 1);
            if rx.try_recv_into(&mut buf).is_ok() {
                got_frame = true;
            } else if done.load(Ordering::Acquire) == 1 && !got_frame {
                rx.recv_into(&mut buf).unwrap();
                got_frame = true;
            }
        }
        worker.join().unwrap();
        producer.join().unwrap();
    });
}
