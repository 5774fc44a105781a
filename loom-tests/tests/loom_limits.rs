//! A defect of loom 0.7 that bounds what our models can check, pinned as a test.
//!
//! Loom can let a thread's load return that thread's own earlier read-modify-write store even
//! when another thread's later store happens-before the load — a coherence violation no C++
//! execution has. The doorbell's ringer swaps the waiter mark on every wake and reads it again
//! on its next ring, which is exactly this shape; a model in which one ringer rings twice
//! while the waiter keeps waiting (a fan-in producer that sends, then closes, with the
//! consumer waiting for the close) therefore reports deadlocks that cannot happen. Our models
//! are sized so that no ringer rings again while a waiter still depends on it.
//!
//! The test below expects loom to fail. If a loom upgrade fixes the defect, it starts to pass
//! — and `#[should_panic]` turns that into a failure telling us to grow the fan-in model to
//! wait for the closes too.
#![cfg(loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicU32, Ordering::*};
use loom::thread;

#[test]
#[should_panic(expected = "loom returned a stale value")]
fn own_rmw_store_read_back_despite_a_later_happens_before_store() {
    loom::model(|| {
        let x = Arc::new(AtomicU32::new(0));
        let flag = Arc::new(AtomicU32::new(0));
        let (x2, f2) = (x.clone(), flag.clone());
        let writer = thread::spawn(move || {
            for i in 1..=4 {
                x2.store(i, Relaxed);
            }
            f2.store(1, Release);
        });
        // Our RMW reads the initial 0, so it is first in x's modification order and every
        // store of the writer comes after it.
        let mine = x.swap(100, AcqRel);
        if flag.load(Acquire) == 1 && mine == 0 {
            // The writer's last store happens-before this load (Release/Acquire on `flag`)
            // and is the newest in modification order: C++ allows only 4 here.
            let v = x.load(Relaxed);
            assert_eq!(v, 4, "loom returned a stale value");
        }
        writer.join().unwrap();
    });
}
