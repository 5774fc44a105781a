//! A defect of loom 0.7 that bounds what our models can check, pinned as a test.
//!
//! Loom can let a thread's load return that thread's own earlier read-modify-write store even
//! when another thread's later *plain* store happens-before the load — a coherence violation
//! no C++ execution has (loom issues 254 and 389). The doorbell once set its waiter mark with
//! a plain store while ringers swap it, and the models then reported deadlocks that cannot
//! happen; the mark is now set with a swap (see `doorbell.rs`, *Why an RMW for the mark*),
//! which keeps every write to it an RMW and the models clear of the defect.
//!
//! The test below expects loom to fail. If a loom upgrade fixes the defect, it starts to pass
//! and `#[should_panic]` turns that into a failure: then the note in `doorbell.rs` can go.
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
