//! Doorbell models: a waiter never sleeps through a ring.
#![cfg(loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicU32, Ordering};
use loom::thread;
use loom_tests::support::{builder, builder_bounded, no_spin};
use ringbell::doorbell::{Announced, Doorbell, Readiness};
use ringbell::region::LoomRegion;

fn bell(region: &LoomRegion) -> Doorbell<LoomRegion> {
    let mut b = Doorbell::new(region.clone(), 0).unwrap();
    b.set_wait_options(no_spin());
    b
}

/// One waiter, one ringer: the waiter wakes (a lost wake-up deadlocks the model).
#[test]
fn waiter_vs_ringer() {
    builder().check(|| {
        let region = LoomRegion::zeroed(128);
        let flag = Arc::new(AtomicU32::new(0));
        let ringer = bell(&region);
        let f = flag.clone();
        let t = thread::spawn(move || {
            f.store(1, Ordering::Release);
            ringer.ring();
        });
        let waiter = bell(&region);
        waiter.wait_until(|| flag.load(Ordering::Acquire) == 1);
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
                let ringer = bell(&region);
                let c = count.clone();
                thread::spawn(move || {
                    c.fetch_add(1, Ordering::Release);
                    ringer.ring();
                })
            })
            .collect();
        let waiter = bell(&region);
        waiter.wait_until(|| count.load(Ordering::Acquire) == 2);
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
                let waiter = bell(&region);
                let f = flag.clone();
                thread::spawn(move || {
                    waiter.wait_until(|| f.load(Ordering::Acquire) == 1);
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
    builder().check(|| {
        let region = LoomRegion::zeroed(128);
        region.set_spurious_wakeups(true);
        let flag = Arc::new(AtomicU32::new(0));
        let ringer = bell(&region);
        let f = flag.clone();
        let t = thread::spawn(move || {
            f.store(1, Ordering::Release);
            ringer.ring();
        });
        let waiter = bell(&region);
        waiter.wait_until(|| flag.load(Ordering::Acquire) == 1);
        assert_eq!(flag.load(Ordering::Relaxed), 1);
        t.join().unwrap();
    });
}

/// Two waiters (A, B) and three ringers on one doorbell; waiter B, once woken, rings for A.
/// A stale load-then-store bump can put the word back at the value A re-read after another
/// ringer's bump: A sleeps through the ring that answered its mark.
#[test]
fn two_waiters_three_rings() {
    // Five threads: preemption bound 2 keeps it to seconds (bound 3 takes minutes).
    builder_bounded(2).check(|| {
        let region = LoomRegion::zeroed(128);
        let a = Arc::new(AtomicU32::new(0));
        let b = Arc::new(AtomicU32::new(0));
        // Rb rings for nothing in particular (a notify for a condition already seen).
        let rb = bell(&region);
        let t_rb = thread::spawn(move || rb.ring());
        // W2 waits for B, then publishes A and rings.
        let w2 = bell(&region);
        let (a2, b2) = (a.clone(), b.clone());
        let t_w2 = thread::spawn(move || {
            w2.wait_until(|| b2.load(Ordering::Acquire) == 1);
            a2.store(1, Ordering::Release);
            w2.ring();
        });
        // Rc publishes B and rings.
        let rc = bell(&region);
        let b3 = b.clone();
        let t_rc = thread::spawn(move || {
            b3.store(1, Ordering::Release);
            rc.ring();
        });
        let w1 = bell(&region);
        w1.wait_until(|| a.load(Ordering::Acquire) == 1);
        t_rb.join().unwrap();
        t_w2.join().unwrap();
        t_rc.join().unwrap();
    });
}

/// The async waiter's loop: look, announce (drain, mark, fence, re-check), wait on the
/// readiness descriptor; a lost ring leaves it waiting for ever (loom: deadlock).
fn wait_async(bell: &Doorbell<LoomRegion>, readiness: &Readiness, ready: impl Fn() -> bool) {
    while !ready() {
        match bell.poll_ready(readiness, &ready) {
            Announced::Ready => return,
            Announced::Wait => {
                readiness.wait_timeout(std::time::Duration::MAX);
            }
            Announced::RetryAfter(_) => unreachable!("loom lines are symmetric"),
        }
    }
}

/// One async waiter (a readiness descriptor instead of the futex), one ringer: the waiter
/// wakes, wherever the ring falls among its drain, mark, fence and re-check.
#[test]
fn async_waiter_vs_ringer() {
    builder().check(|| {
        let region = LoomRegion::zeroed(128);
        let flag = Arc::new(AtomicU32::new(0));
        let readiness = Readiness::new().unwrap();
        let ringer = bell(&region);
        let (f, r) = (flag.clone(), readiness.signal());
        let t = thread::spawn(move || {
            f.store(1, Ordering::Release);
            ringer.ring_readiness(&r);
        });
        let waiter = bell(&region);
        wait_async(&waiter, &readiness, || flag.load(Ordering::Acquire) == 1);
        t.join().unwrap();
    });
}

/// A futex sleeper and an async waiter on one line, one ring: both wake (neither's mark
/// erases the other's, and the ringer answers both).
#[test]
fn async_and_futex_waiters_one_ring() {
    builder().check(|| {
        let region = LoomRegion::zeroed(128);
        let flag = Arc::new(AtomicU32::new(0));
        let readiness = Readiness::new().unwrap();
        let sleeper = bell(&region);
        let f = flag.clone();
        let t = thread::spawn(move || {
            sleeper.wait_until(|| f.load(Ordering::Acquire) == 1);
        });
        let (f, r) = (flag.clone(), readiness.signal());
        let ringer = bell(&region);
        let u = thread::spawn(move || {
            f.store(1, Ordering::Release);
            ringer.ring_readiness(&r);
        });
        let waiter = bell(&region);
        wait_async(&waiter, &readiness, || flag.load(Ordering::Acquire) == 1);
        t.join().unwrap();
        u.join().unwrap();
    });
}

/// One async waiter on two doorbells with one readiness descriptor (the async client's
/// driver waits so on its response ring and its request ring's room), one ringer on the
/// first: the waiter drains once, announces on both, and wakes wherever the ring falls —
/// also between the first doorbell's re-check and the second's announcement.
#[test]
fn async_waiter_on_two_doorbells() {
    builder().check(|| {
        let (r1, r2) = (LoomRegion::zeroed(128), LoomRegion::zeroed(128));
        let flag = Arc::new(AtomicU32::new(0));
        let readiness = Readiness::new().unwrap();
        let ringer = bell(&r1);
        let (f, r) = (flag.clone(), readiness.signal());
        let t = thread::spawn(move || {
            f.store(1, Ordering::Release);
            ringer.ring_readiness(&r);
        });
        let (first, second) = (bell(&r1), bell(&r2));
        while flag.load(Ordering::Acquire) == 0 {
            let a = first.poll_ready(&readiness, || flag.load(Ordering::Acquire) == 1);
            let b = second.poll_ready_more(&readiness, || false);
            match (a, b) {
                (Announced::Ready, _) => break,
                (Announced::Wait, Announced::Wait) => {
                    readiness.wait_timeout(std::time::Duration::MAX);
                }
                _ => unreachable!("loom lines are symmetric; the second never has news"),
            }
        }
        t.join().unwrap();
    });
}

/// An async waiter, a ringer that rings plainly (no signal: say a notifier that does not
/// know the waiter waits asynchronously) and a ringer with the waiter's signal that
/// publishes what it waits for: the plain ring must leave the async bit for the other, or
/// the waiter sleeps through the ring that matters.
#[test]
fn a_plain_ring_leaves_the_async_mark_for_a_ringer_that_can_answer_it() {
    builder().check(|| {
        let region = LoomRegion::zeroed(128);
        let flag = Arc::new(AtomicU32::new(0));
        let readiness = Readiness::new().unwrap();
        let plain = bell(&region);
        let t = thread::spawn(move || plain.ring());
        let (f, r) = (flag.clone(), readiness.signal());
        let ringer = bell(&region);
        let u = thread::spawn(move || {
            f.store(1, Ordering::Release);
            ringer.ring_readiness(&r);
        });
        let waiter = bell(&region);
        wait_async(&waiter, &readiness, || flag.load(Ordering::Acquire) == 1);
        t.join().unwrap();
        u.join().unwrap();
    });
}
