//! Doorbell models: a waiter never sleeps through a ring.
#![cfg(loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicU32, Ordering};
use loom::thread;
use loom_tests::support::{builder, no_spin};
use ringbell::doorbell::Bell;
use ringbell::mem::LoomRegion;

fn bell(region: &LoomRegion) -> Bell<LoomRegion> {
    let mut b = Bell::new(region.clone(), 0).unwrap();
    b.set_wait_options(no_spin());
    b
}

/// One waiter, one ringer: the waiter wakes (a lost wake-up deadlocks the model).
#[test]
fn waiter_vs_ringer() {
    builder().check(|| {
        let region = LoomRegion::zeroed(128);
        let flag = Arc::new(AtomicU32::new(0));
        let mut ringer = bell(&region);
        let f = flag.clone();
        let t = thread::spawn(move || {
            f.store(1, Ordering::Release);
            ringer.ring();
        });
        let mut waiter = bell(&region);
        waiter
            .wait_until(|| flag.load(Ordering::Acquire) == 1, None)
            .unwrap();
        t.join().unwrap();
    });
}

/// A waiter waiting for two things rung by two ringers: every ring is seen, including when a
/// ringer clears the mark the waiter set for the other condition.
#[test]
fn waiter_vs_two_ringers() {
    builder().check(|| {
        let region = LoomRegion::zeroed(128);
        let count = Arc::new(AtomicU32::new(0));
        let ringers: Vec<_> = (0..2)
            .map(|_| {
                let mut ringer = bell(&region);
                let c = count.clone();
                thread::spawn(move || {
                    c.fetch_add(1, Ordering::Release);
                    ringer.ring();
                })
            })
            .collect();
        let mut waiter = bell(&region);
        waiter
            .wait_until(|| count.load(Ordering::Acquire) == 2, None)
            .unwrap();
        for t in ringers {
            t.join().unwrap();
        }
    });
}

/// Two waiters on one doorbell, one ring: both wake (wake-all, one mark for both).
#[test]
fn two_waiters_one_ring() {
    builder().check(|| {
        let region = LoomRegion::zeroed(128);
        let flag = Arc::new(AtomicU32::new(0));
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let mut waiter = bell(&region);
                let f = flag.clone();
                thread::spawn(move || {
                    waiter
                        .wait_until(|| f.load(Ordering::Acquire) == 1, None)
                        .unwrap();
                })
            })
            .collect();
        flag.store(1, Ordering::Release);
        bell(&region).ring();
        for t in waiters {
            t.join().unwrap();
        }
    });
}

/// Spurious wake-ups (every futex wait returns at once): the waiter still returns only when
/// its condition holds, and the model terminates.
#[test]
fn spurious_wakeups_are_harmless() {
    ringbell::futex::set_spurious(true);
    builder().check(|| {
        let region = LoomRegion::zeroed(128);
        let flag = Arc::new(AtomicU32::new(0));
        let mut ringer = bell(&region);
        let f = flag.clone();
        let t = thread::spawn(move || {
            f.store(1, Ordering::Release);
            ringer.ring();
        });
        let mut waiter = bell(&region);
        waiter
            .wait_until(|| flag.load(Ordering::Acquire) == 1, None)
            .unwrap();
        assert_eq!(flag.load(Ordering::Relaxed), 1);
        t.join().unwrap();
    });
    ringbell::futex::set_spurious(false);
}
