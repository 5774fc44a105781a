//! Wait and wake on a 32-bit word in shared memory.
//!
//! On Linux this is the `futex` system call through rustix, as a *shared* futex
//! (`Flags::empty()`, not `FUTEX_PRIVATE_FLAG`): a private futex is keyed by the virtual
//! address in one process and would never reach a waiter in another process that maps the
//! same page elsewhere.
//!
//! `wait` sleeps only while the word still holds the value the caller last saw — the kernel
//! compares and sleeps atomically with respect to `wake_all` — and returns on a wake, a
//! changed value (`EAGAIN`), a signal (`EINTR`), the end of its timeout, or spuriously. Callers
//! treat every return alike: re-check their condition, recompute the remaining time, loop.
//!
//! Under `--cfg loom` the futex is a model on loom's `Mutex` + `Condvar`: the compare happens
//! under the mutex and `wake_all` takes the same mutex, so compare-and-sleep is atomic with
//! respect to wake exactly as in the kernel. Timeouts are not modelled (a lost wake-up must
//! show as loom's deadlock); `LoomRegion::set_spurious_wakeups` makes every wait on that
//! region return at once instead, to model spurious wake-ups.
//!
//! Man pages: futex(2), futex(7).

use core::time::Duration;

use crate::mem::Mem;

/// Sleeps while the `u32` at `off` equals `expected`, for at most `timeout`.
///
/// `futex(FUTEX_WAIT)`; returns on wake, value change, signal, timeout or spuriously.
#[cfg(not(loom))]
pub(crate) fn wait(mem: &Mem, off: usize, expected: u32, timeout: Duration) {
    use rustix::thread::futex;
    let ts = futex::Timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as _,
        tv_nsec: timeout.subsec_nanos() as _,
    };
    // Every outcome — woken, EAGAIN, EINTR, ETIMEDOUT — means "re-check and loop".
    let _ = futex::wait(
        mem.futex_word(off),
        futex::Flags::empty(),
        expected,
        Some(&ts),
    );
}

/// Wakes every thread sleeping on the `u32` at `off`, in any process.
///
/// `futex(FUTEX_WAKE, INT_MAX)`.
#[cfg(not(loom))]
pub(crate) fn wake_all(mem: &Mem, off: usize) {
    use rustix::thread::futex;
    let _ = futex::wake(mem.futex_word(off), futex::Flags::empty(), i32::MAX as u32);
}

/// Loom model of `FUTEX_WAIT`: compare under the word's mutex, then sleep on its condvar.
#[cfg(loom)]
pub(crate) fn wait(mem: &Mem, off: usize, expected: u32, _timeout: Duration) {
    if mem.spurious_wakeups() {
        loom::thread::yield_now();
        return;
    }
    let (lock, cv) = mem.futex_model(off);
    let guard = lock.lock().unwrap();
    // Relaxed is enough: a waker changes the word before taking this mutex, so either its
    // change happens-before our check (we return) or its notify comes after we sleep.
    if mem.load_u32(off, crate::sync::Ordering::Relaxed) != expected {
        return;
    }
    drop(cv.wait(guard).unwrap());
}

/// Loom model of `FUTEX_WAKE`: notify every sleeper under the word's mutex.
#[cfg(loom)]
pub(crate) fn wake_all(mem: &Mem, off: usize) {
    let (lock, cv) = mem.futex_model(off);
    let _guard = lock.lock().unwrap();
    cv.notify_all();
}
