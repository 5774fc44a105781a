//! A doorbell of one's own: a handle on any doorbell line, for conditions outside the rings.

use core::fmt;
use core::time::Duration;

use super::line::Line;
use super::options::{TimedOut, WaitOptions, WaitStats};
use super::waiter::Waiter;
use crate::clock::Deadline;
use crate::region::SharedMemory;
use crate::wire::DOORBELL_SIZE;

/// A doorbell in shared memory, as a handle of its own: for conditions outside the rings — a
/// worker pool's completion queue, a flag another process sets.
///
/// The doorbell occupies the 128-byte line at `offset` of `shm`; every handle on the same line,
/// in any thread or process, rings and waits on the same doorbell. Publish what a waiter's
/// condition reads, then [`ring`](Self::ring); the waiter's condition is re-checked after it
/// announces its sleep, so a ring is never slept through.
///
/// # Examples
///
/// ```
/// use ringbell::doorbell::{BellConfig, Doorbell};
/// use ringbell::region::HeapRegion;
/// use ringbell::wire::HEADER_SIZE;
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::sync::Arc;
///
/// let region = HeapRegion::new(&BellConfig)?;
/// let waiter = Doorbell::new(region.clone(), HEADER_SIZE).unwrap();
/// let ringer = Doorbell::new(region, HEADER_SIZE).unwrap();
/// let count = Arc::new(AtomicU32::new(0));
/// let c = count.clone();
/// let t = std::thread::spawn(move || {
///     c.store(1, Ordering::Release); // publish first,
///     ringer.ring();                 // then ring
/// });
/// waiter.wait_until(|| count.load(Ordering::Acquire) == 1);
/// t.join().unwrap();
/// # Ok::<(), ringbell::HeaderError>(())
/// ```
pub struct Doorbell<S: SharedMemory> {
    line: Line,
    waiter: Waiter,
    /// Keeps the memory behind `line` alive.
    _shm: S,
}

impl<S: SharedMemory> Doorbell<S> {
    /// The doorbell on the line at `offset`; `None` unless `offset` is a multiple of 128 and
    /// the line lies inside `shm`.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::doorbell::{BellConfig, Doorbell};
    /// use ringbell::region::HeapRegion;
    ///
    /// let region = HeapRegion::new(&BellConfig)?; // 1152 bytes
    /// assert!(Doorbell::new(region.clone(), 1024).is_some());
    /// assert!(Doorbell::new(region.clone(), 1000).is_none()); // not on a line
    /// assert!(Doorbell::new(region, 1152).is_none()); // past the end
    /// # Ok::<(), ringbell::HeaderError>(())
    /// ```
    pub fn new(shm: S, offset: usize) -> Option<Self> {
        let mem = shm.mem();
        if offset % DOORBELL_SIZE != 0 || mem.len() < offset.checked_add(DOORBELL_SIZE)? {
            return None;
        }
        Some(Self {
            line: Line::in_any_mode(mem, offset),
            waiter: Waiter::new(WaitOptions::default()),
            _shm: shm,
        })
    }

    /// Rings: wakes every waiter that announced a sleep. Publish what they wait for first.
    /// No system call unless someone sleeps.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::doorbell::{BellConfig, Doorbell};
    /// use ringbell::region::HeapRegion;
    ///
    /// let bell = Doorbell::new(HeapRegion::new(&BellConfig)?, 1024).unwrap();
    /// bell.ring(); // nobody sleeps: no system call
    /// assert_eq!(bell.stats().wakes, 0);
    /// # Ok::<(), ringbell::HeaderError>(())
    /// ```
    pub fn ring(&self) {
        self.waiter.ring(&self.line);
    }

    /// Rings, and answers an async waiter through `signal` (the handle of the descriptor its
    /// waiting side made). Every ringer of a line that has an async waiter must ring this way:
    /// a plain [`ring`](Self::ring) clears the waiter's mark without making its descriptor
    /// readable. No system call unless someone waits.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::doorbell::{Announced, BellConfig, Doorbell, Readiness};
    /// use ringbell::region::HeapRegion;
    /// use std::time::Duration;
    ///
    /// let region = HeapRegion::new(&BellConfig)?;
    /// let bell = Doorbell::new(region, 1024).unwrap();
    /// let readiness = Readiness::new()?;
    /// assert_eq!(bell.poll_ready(&readiness, || false), Announced::Wait); // announced
    /// bell.ring_readiness(&readiness.signal());                          // answered
    /// assert!(readiness.wait_timeout(Duration::from_secs(1)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "std")]
    pub fn ring_readiness(&self, signal: &super::ReadinessSignal) {
        let calls = self.line.ring_readiness(signal);
        for _ in 0..calls {
            self.waiter.count_wake();
        }
    }

    /// The async waiter's step ([module docs](super), "Async waits"): drains `readiness`,
    /// announces an async wait, re-checks `ready()`. Look at the condition first: this always
    /// pays the announcement (an atomic RMW and a fence).
    ///
    /// One async waiter per line, and every ringer of the line rings with
    /// [`ring_readiness`](Self::ring_readiness) and this waiter's signal: the mark's async bit
    /// does not say whose descriptor to write, and a plain ring, or a peer of an older build
    /// (whose marks overwrite the bit), answers it without making the descriptor readable.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::doorbell::{Announced, BellConfig, Doorbell, Readiness};
    /// use ringbell::region::HeapRegion;
    ///
    /// let bell = Doorbell::new(HeapRegion::new(&BellConfig)?, 1024).unwrap();
    /// let readiness = Readiness::new()?;
    /// assert_eq!(bell.poll_ready(&readiness, || true), Announced::Ready);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "std")]
    pub fn poll_ready(
        &self,
        readiness: &super::Readiness,
        ready: impl FnMut() -> bool,
    ) -> super::Announced {
        self.waiter.count_sleep();
        self.line.announce_async(readiness, ready)
    }

    /// For a waiter on several doorbells with one readiness descriptor: after
    /// [`poll_ready`](Self::poll_ready) on the first (which drains the descriptor), announce
    /// on each of the others with this — the mark, the fence and the re-check, *without* a
    /// second drain, which could eat a ring of a doorbell already re-checked. `Wait` from
    /// all of them: wait until the descriptor is readable. Every ringer of every one of
    /// them rings with the readiness's signal.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::doorbell::{Announced, BellConfig, Doorbell, Readiness};
    /// use ringbell::region::HeapRegion;
    /// use std::time::Duration;
    ///
    /// let (a, b) = (HeapRegion::new(&BellConfig)?, HeapRegion::new(&BellConfig)?);
    /// let (wa, wb) = (Doorbell::new(a.clone(), 0).unwrap(), Doorbell::new(b.clone(), 0).unwrap());
    /// let ring_b = Doorbell::new(b, 0).unwrap();
    /// let readiness = Readiness::new()?;
    /// assert_eq!(wa.poll_ready(&readiness, || false), Announced::Wait);
    /// assert_eq!(wb.poll_ready_more(&readiness, || false), Announced::Wait);
    /// ring_b.ring_readiness(&readiness.signal()); // either doorbell's ring reaches the wait
    /// assert!(readiness.wait_timeout(Duration::from_secs(1)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "std")]
    pub fn poll_ready_more(
        &self,
        readiness: &super::Readiness,
        ready: impl FnMut() -> bool,
    ) -> super::Announced {
        self.line.announce_async_more(readiness, ready)
    }

    /// Waits until `ready()` is true, as long as it takes; the wait sleeps in bounded slices
    /// and re-checks `ready()` after each.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::doorbell::{BellConfig, Doorbell};
    /// use ringbell::region::HeapRegion;
    ///
    /// let bell = Doorbell::new(HeapRegion::new(&BellConfig)?, 1024).unwrap();
    /// bell.wait_until(|| true); // already true: returns at once
    /// # Ok::<(), ringbell::HeaderError>(())
    /// ```
    pub fn wait_until(&self, ready: impl FnMut() -> bool) {
        let never: Result<(), TimedOut> = self.waiter.wait(&self.line, ready, None);
        debug_assert!(never.is_ok());
    }

    /// Waits until `ready()` is true or `timeout` passes.
    ///
    /// # Errors
    ///
    /// [`TimedOut`] if `ready()` is still false at the deadline.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::doorbell::{BellConfig, Doorbell, TimedOut};
    /// use ringbell::region::HeapRegion;
    /// use std::time::Duration;
    ///
    /// let bell = Doorbell::new(HeapRegion::new(&BellConfig)?, 1024).unwrap();
    /// let r = bell.wait_until_timeout(|| false, Duration::from_millis(2));
    /// assert_eq!(r, Err(TimedOut));
    /// # Ok::<(), ringbell::HeaderError>(())
    /// ```
    pub fn wait_until_timeout(
        &self,
        ready: impl FnMut() -> bool,
        timeout: Duration,
    ) -> Result<(), TimedOut> {
        self.waiter
            .wait(&self.line, ready, Deadline::after(timeout).at())
    }

    /// How waits spin and sleep.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::doorbell::{BellConfig, Doorbell, WaitOptions};
    /// use ringbell::region::HeapRegion;
    ///
    /// let mut bell = Doorbell::new(HeapRegion::new(&BellConfig)?, 1024).unwrap();
    /// bell.set_wait_options(WaitOptions::new().spin_budget(0));
    /// # Ok::<(), ringbell::HeaderError>(())
    /// ```
    pub fn set_wait_options(&mut self, opts: WaitOptions) {
        self.waiter.set_options(opts);
    }

    /// This handle's counters.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringbell::doorbell::{BellConfig, Doorbell, WaitOptions};
    /// use ringbell::region::HeapRegion;
    /// use std::time::Duration;
    ///
    /// let mut bell = Doorbell::new(HeapRegion::new(&BellConfig)?, 1024).unwrap();
    /// bell.set_wait_options(WaitOptions::new().spin_budget(0));
    /// let _ = bell.wait_until_timeout(|| false, Duration::from_millis(1));
    /// assert!(bell.stats().sleeps >= 1); // it announced a sleep
    /// # Ok::<(), ringbell::HeaderError>(())
    /// ```
    pub fn stats(&self) -> WaitStats {
        self.waiter.stats()
    }
}

impl<S: SharedMemory> fmt::Debug for Doorbell<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Doorbell")
            .field("waiter", &self.waiter)
            .finish_non_exhaustive()
    }
}
