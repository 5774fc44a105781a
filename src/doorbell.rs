//! Doorbells: sleep until a condition holds, without ever losing a wake-up, and without a
//! system call while nobody sleeps.
//!
//! A doorbell is two 32-bit words at the start of its own 128-byte line in shared memory:
//!
//! ```text
//! +0  sequence   the futex word; bumped (fetch_add, Release) by a ringer that wakes
//! +4  waiters    the waiter mark; set to 1 by a waiter before it sleeps, swapped to 0 by the
//!                ringer that wakes it
//! ```
//!
//! # The protocol
//!
//! **Waiter** (`wait_until(ready, deadline)`): spin a little while `ready()` is false (see
//! *Spinning*); then loop:
//!
//! 1. if the deadline passed, return a timeout
//! 2. `seq = sequence.load(Acquire)`
//! 3. `waiters.swap(1, Release)` (an RMW: see *Why an RMW* below)
//! 4. `fence(SeqCst)`
//! 5. if `ready()`, return
//! 6. futex-wait on `sequence` while it still equals `seq`, for at most one *slice*; go to 1
//!
//! **Ringer** (after publishing whatever makes `ready()` true — a frame, freed space, a
//! completion posted by `notify()`):
//!
//! 1. `fence(SeqCst)`
//! 2. if `waiters.load() != 0` and `waiters.swap(0, AcqRel) != 0`:
//!    `sequence.fetch_add(1, Release)`, then futex-wake **all** waiters.
//!
//! # Why no wake-up is lost
//!
//! The waiter stores the mark then reads the condition; the ringer stores the condition then
//! reads the mark. That is the store-buffering shape, and Release/Acquire alone does not stop
//! both reads from missing both stores. The two `SeqCst` fences do: they are totally ordered,
//! so either the waiter's fence comes first — then the ringer's mark read sees the mark and it
//! wakes — or the ringer's fence comes first — then the waiter's re-check (step 4) sees the
//! published condition and it does not sleep.
//!
//! When the ringer wakes, the sleep cannot slip past the wake either: the waiter sleeps only
//! while `sequence` still equals the value `seq` it read *before* setting the mark, and the
//! ringer bumps `sequence` after taking a mark and before calling wake. The bump is a
//! `fetch_add`, so it always moves the word past every value it held before — including
//! `seq`, which the waiter read (Acquire) before its mark, and so before the bump that answers
//! it: were the waiter's read to see that bump (Release), the bump would happen-before the
//! mark it follows in the ringer, which coherence forbids. The kernel compares and sleeps
//! atomically with respect to wake: either the waiter sees the moved word and returns at
//! once (`EAGAIN`), or it is asleep when the wake comes.
//!
//! The bump must be one `fetch_add`. A load-then-store can store a value a waiter already
//! holds: with two waiters and three ringers, a ringer preempted between its load and its
//! store can put the word back to the value the first waiter re-read after another ringer's
//! bump, and that waiter then sleeps through the ring that answered its mark (the
//! `bump_load_store` mutant, caught by the `two_waiters_three_rings` model). In production
//! the slice bounds such a sleep; it is still a lost wake-up.
//!
//! **Why an RMW for the mark.** A plain store would do in C++. The swap costs nothing on the
//! hot path (only a waiter about to sleep pays it), it puts every mark into the release
//! sequence the ringer's swap reads from, and it keeps loom 0.7 out of a defect where a plain
//! store racing a swap lets a later load return a value the store overwrote (loom issues
//! 254/389), which would show as deadlocks no execution can have.
//!
//! Waking all (not one) keeps several waiters on one doorbell correct: a ringer that clears
//! the mark speaks for every waiter that set it. A waiter woken for a condition that is not
//! its own just loops and sets the mark again.
//!
//! # Cost
//!
//! While nobody sleeps the ringer pays one fence and one load — no system call. A sleeping
//! waiter costs its ringer one swap, one `fetch_add` and one `FUTEX_WAKE`; the mark is set at
//! most once per sleep announced, so **wake system calls ≤ sleeps announced** (counted in
//! [`WaitStats`]). A waiter killed while asleep leaves its mark set; the next ringer clears it
//! with one wasted wake and later messages pay nothing — the mark heals itself.
//!
//! # Bounded sleeps
//!
//! Every futex wait lasts at most one slice ([`WaitOptions::slice`], default 50 ms), so a
//! 32-bit sequence that wrapped to the exact value a waiter holds can never turn into an
//! endless sleep: the waiter re-checks at least once a slice (the callers' `ready()` includes
//! the peer's closed flag, so a clean close is seen at once; the rings' blocking calls also
//! sleep in slices of their own and, between them, poll a pidfd of the peer's process, so a
//! peer killed without closing is seen within a slice). On `EINTR`, `EAGAIN`,
//! a timeout or a spurious return the waiter recomputes the remaining time and loops; on any
//! other futex error it sleeps briefly instead, so it never spins hot.
//!
//! # Spinning
//!
//! Before announcing a sleep the waiter spins, re-checking `ready()`, for up to
//! [`WaitOptions::spin_budget`] iterations. The budget adapts: a wait that ended while
//! spinning doubles the next budget (up to the configured one); a wait that had to sleep
//! halves it, down to a floor of 1/64 of the configured budget; every 16th wait tries the
//! full budget again, so a peer that got fast again is noticed. When this process already has
//! as many spinning threads as CPUs but one, a waiter skips spinning and sleeps at once, so
//! spinners never starve the thread they wait for. Spin budget 0 never spins: every wait that
//! is not satisfied at once sleeps.

use core::time::Duration;

use crate::error::{AttachError, HeaderError};
use crate::futex::{self, Instant};
use crate::layout::{self, HEADER_SIZE, RingKind};
use crate::mem::{Mem, SharedMemory};
use crate::mutant::{self, Mutant};
use crate::sync::{Ordering, fence, spin_loop};

/// Offset of the sequence (futex) word within a doorbell line.
pub const SEQ: usize = 0;
/// Offset of the waiter mark within a doorbell line.
pub const WAITERS: usize = 4;
/// Bytes a doorbell occupies (a whole line, so nothing else shares it).
pub const DOORBELL_SIZE: usize = 128;

/// Default sleep slice: the longest a single futex wait lasts.
pub const DEFAULT_SLICE: Duration = Duration::from_millis(50);
/// Default spin budget, in spin iterations (roughly 20–60 µs on current x86), chosen so a
/// peer that answers within a few microseconds is caught spinning while a quiet peer costs
/// little CPU before the waiter sleeps.
pub const DEFAULT_SPIN_BUDGET: u32 = 2_000;

/// How a blocking call waits.
///
/// # Examples
///
/// ```
/// use ringbell::doorbell::WaitOptions;
/// use std::time::Duration;
///
/// let always_sleep = WaitOptions::new().spin_budget(0);
/// let fine_slices = WaitOptions::new().slice(Duration::from_millis(5));
/// assert_eq!(always_sleep.get_spin_budget(), 0);
/// assert_eq!(fine_slices.get_slice(), Duration::from_millis(5));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitOptions {
    spin_budget: u32,
    slice: Duration,
}

impl Default for WaitOptions {
    fn default() -> Self {
        Self {
            spin_budget: DEFAULT_SPIN_BUDGET,
            slice: DEFAULT_SLICE,
        }
    }
}

impl WaitOptions {
    /// The defaults: [`DEFAULT_SPIN_BUDGET`] and [`DEFAULT_SLICE`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Spin at most `iterations` times before sleeping (0: never spin).
    pub fn spin_budget(mut self, iterations: u32) -> Self {
        self.spin_budget = iterations;
        self
    }

    /// Sleep at most `slice` per futex wait (clamped to at least 1 ms). Between slices a
    /// blocked call checks whether the peer's process died, so the slice bounds how late a
    /// dead peer is noticed; it also bounds how late a producer blocked on a full ring sees
    /// space freed by a consumer that then stopped receiving with frames left (see
    /// [`spsc`](crate::spsc), "Waking a producer").
    pub fn slice(mut self, slice: Duration) -> Self {
        self.slice = slice.max(Duration::from_millis(1));
        self
    }

    /// The configured spin budget.
    pub fn get_spin_budget(&self) -> u32 {
        self.spin_budget
    }

    /// The configured slice.
    pub fn get_slice(&self) -> Duration {
        self.slice
    }
}

/// Counters of one side's waiting and waking, kept locally (no shared write).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WaitStats {
    /// `FUTEX_WAKE` system calls this side made as a ringer.
    pub wakes: u64,
    /// Sleeps this side announced as a waiter (times it set the waiter mark).
    pub sleeps: u64,
    /// `FUTEX_WAIT` system calls this side made.
    pub futex_waits: u64,
    /// Spin iterations this side made while waiting.
    pub spins: u64,
}

/// Per-waiter adaptive spin state.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Spinner {
    /// The current adaptive budget, at most the configured one.
    #[cfg_attr(loom, allow(dead_code))]
    budget: u32,
    /// Waits so far, to try the full budget every 16th.
    #[cfg_attr(loom, allow(dead_code))]
    waits: u32,
}

impl Spinner {
    pub(crate) fn new(opts: &WaitOptions) -> Self {
        Self {
            budget: opts.spin_budget,
            waits: 0,
        }
    }
}

/// What a blocking side keeps between waits: its options, its adaptive spin state and its
/// counters. Copyable, so a side can wait on a doorbell while a predicate borrows the side.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Waiter {
    opts: WaitOptions,
    spinner: Spinner,
    stats: WaitStats,
}

impl Waiter {
    pub(crate) fn new(opts: WaitOptions) -> Self {
        Self {
            opts,
            spinner: Spinner::new(&opts),
            stats: WaitStats::default(),
        }
    }

    pub(crate) fn set_options(&mut self, opts: WaitOptions) {
        self.opts = opts;
        self.spinner = Spinner::new(&opts);
    }

    #[cfg_attr(not(feature = "alloc"), allow(dead_code))] // only the fan-in asks
    pub(crate) fn options(&self) -> WaitOptions {
        self.opts
    }

    pub(crate) fn stats(&self) -> WaitStats {
        self.stats
    }

    /// Rings `bell`, counting a wake system call if one is made.
    #[inline]
    pub(crate) fn ring(&mut self, bell: &Doorbell) {
        bell.ring(&mut self.stats);
    }

    /// Waits on `bell` until `ready()` or `deadline`; see [`Doorbell::wait_until`].
    pub(crate) fn wait(
        &mut self,
        bell: &Doorbell,
        ready: impl FnMut() -> bool,
        deadline: Option<Instant>,
    ) -> Result<(), TimedOut> {
        bell.wait_until(
            ready,
            deadline,
            &self.opts,
            &mut self.spinner,
            &mut self.stats,
        )
    }
}

/// A waiter, or the caller's deadline, ran out of time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimedOut;

/// Threads of this process spinning in `wait_until` right now.
#[cfg(not(loom))]
static SPINNERS: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

/// CPUs this process may run on (cached; 0 until first asked).
#[cfg(not(loom))]
fn cpus() -> u32 {
    use core::sync::atomic::{AtomicU32, Ordering::Relaxed};
    static CPUS: AtomicU32 = AtomicU32::new(0);
    match CPUS.load(Relaxed) {
        0 => {
            let n = rustix::thread::sched_getaffinity(None)
                .map(|set| set.count())
                .unwrap_or(1)
                .max(1);
            CPUS.store(n, Relaxed);
            n
        }
        n => n,
    }
}

/// A doorbell at `off` in `mem`. Copyable: it is two words' address.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Doorbell {
    mem: Mem,
    off: usize,
}

impl Doorbell {
    /// The doorbell whose line starts at `off`.
    pub(crate) fn at(mem: Mem, off: usize) -> Self {
        debug_assert_eq!(off % DOORBELL_SIZE, 0);
        Self { mem, off }
    }

    /// Rings after the caller published something a waiter may be waiting for. No system
    /// call unless a waiter announced a sleep.
    #[inline]
    pub(crate) fn ring(&self, stats: &mut WaitStats) {
        if !mutant::active(Mutant::RingerFence) {
            // SeqCst: pairs with the waiter's fence (module docs): either the waiter's
            // re-check sees what we published, or we see its mark below.
            fence(Ordering::SeqCst);
        }
        if self.mem.load_u32(self.off + WAITERS, Ordering::Relaxed) != 0 {
            self.wake(stats);
        }
    }

    #[cold]
    #[inline(never)]
    fn wake(&self, stats: &mut WaitStats) {
        // One ringer clears the mark and wakes for everyone who set it. AcqRel: the Acquire
        // half pairs with the waiters' Release swaps of the mark.
        if self.mem.swap_u32(self.off + WAITERS, 0, Ordering::AcqRel) == 0 {
            return;
        }
        let seq = self.off + SEQ;
        if mutant::active(Mutant::BumpLoadStore) {
            let v = self.mem.load_u32(seq, Ordering::Relaxed);
            self.mem
                .store_u32(seq, v.wrapping_add(1), Ordering::Release);
        } else if !mutant::active(Mutant::SkipBump) {
            // Release: pairs with the waiter's Acquire load of the sequence; a waiter that
            // reads this value has seen everything before the bump.
            self.mem.fetch_add_u32(seq, 1, Ordering::Release);
        }
        futex::wake_all(&self.mem, seq);
        stats.wakes += 1;
    }

    /// Waits until `ready()` returns true or `deadline` passes.
    ///
    /// `ready` must be cheap and free of side effects that matter if repeated; it is called
    /// while spinning, after announcing a sleep, and after each wake.
    pub(crate) fn wait_until(
        &self,
        mut ready: impl FnMut() -> bool,
        deadline: Option<Instant>,
        opts: &WaitOptions,
        spinner: &mut Spinner,
        stats: &mut WaitStats,
    ) -> Result<(), TimedOut> {
        if ready() {
            return Ok(());
        }
        if self.spin(&mut ready, opts, spinner, stats) {
            return Ok(());
        }
        let seq_off = self.off + SEQ;
        loop {
            let slice = match deadline {
                None => opts.slice,
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Err(TimedOut);
                    }
                    d.since(now).min(opts.slice)
                }
            };
            // Acquire: the bump that answers our mark cannot be read here (module docs).
            let seq = self.mem.load_u32(seq_off, Ordering::Acquire);
            // Release (an RMW, see the module docs): joins the release sequence the ringer's
            // swap reads.
            self.mem.swap_u32(self.off + WAITERS, 1, Ordering::Release);
            stats.sleeps += 1;
            if !mutant::active(Mutant::WaiterFence) {
                // SeqCst: pairs with the ringer's fence (module docs).
                fence(Ordering::SeqCst);
            }
            if !mutant::active(Mutant::SkipRecheck) && ready() {
                return Ok(());
            }
            stats.futex_waits += 1;
            futex::wait(&self.mem, seq_off, seq, slice);
            if ready() {
                return Ok(());
            }
        }
    }

    /// The spin phase; true if `ready()` came true while spinning.
    #[cfg(not(loom))]
    fn spin(
        &self,
        ready: &mut impl FnMut() -> bool,
        opts: &WaitOptions,
        spinner: &mut Spinner,
        stats: &mut WaitStats,
    ) -> bool {
        use core::sync::atomic::Ordering::Relaxed;
        /// Leaves the spinner count when dropped, even if `ready()` panics.
        struct Spinning;
        impl Drop for Spinning {
            fn drop(&mut self) {
                SPINNERS.fetch_sub(1, Relaxed);
            }
        }
        spinner.waits = spinner.waits.wrapping_add(1);
        let budget = if spinner.waits % 16 == 0 {
            opts.spin_budget // probe: maybe the peer is fast again
        } else {
            spinner.budget.min(opts.spin_budget)
        };
        if budget == 0 {
            return false;
        }
        // As many spinners as CPUs but one: spinning would only steal the CPU of whoever we
        // wait for.
        let spinning = SPINNERS.fetch_add(1, Relaxed);
        let _guard = Spinning;
        if spinning >= cpus().saturating_sub(1).max(1) {
            return false;
        }
        let mut done = false;
        let mut i = 0;
        while i < budget {
            spin_loop();
            i += 1;
            if ready() {
                done = true;
                break;
            }
        }
        stats.spins += i as u64;
        let floor = (opts.spin_budget / 64).max(1);
        spinner.budget = if done {
            budget.saturating_mul(2).clamp(floor, opts.spin_budget)
        } else {
            (budget / 2).max(floor)
        };
        done
    }

    /// Under loom the spin phase is skipped: the models explore the sleeping protocol.
    #[cfg(loom)]
    fn spin(
        &self,
        _ready: &mut impl FnMut() -> bool,
        _opts: &WaitOptions,
        _spinner: &mut Spinner,
        _stats: &mut WaitStats,
    ) -> bool {
        let _ = spin_loop;
        false
    }
}

/// Data-area size of a bell region: one doorbell line.
pub const BELL_CAPACITY: usize = 128;

/// Bytes a bell region needs.
pub const BELL_REGION_SIZE: usize = HEADER_SIZE + BELL_CAPACITY;

fn bell_geometry() -> layout::Geometry {
    // A valid configuration by construction (128 is a power of two within range).
    match layout::geometry(RingKind::Bell, BELL_CAPACITY, Some(0)) {
        Ok(g) => g,
        Err(_) => unreachable!("the bell geometry is valid"),
    }
}

/// Writes a fresh bell region header into `shm` (exactly [`BELL_REGION_SIZE`] bytes).
///
/// # Errors
///
/// [`HeaderError::SizeMismatch`] if `shm` is not [`BELL_REGION_SIZE`] bytes.
pub fn init_bell<S: SharedMemory + ?Sized>(shm: &S) -> Result<(), HeaderError> {
    layout::init(&shm.mem(), &bell_geometry(), 0)
}

/// The doorbell of a validated bell region.
pub(crate) fn bell_of<S: SharedMemory + ?Sized>(shm: &S) -> Result<Doorbell, AttachError> {
    let mem = shm.mem();
    layout::validate(&mem, RingKind::Bell)?;
    Ok(Doorbell::at(mem, HEADER_SIZE))
}

/// The doorbell of a bell region whose header is not checked (only its size): for a region
/// shared with peers who may have rewritten the header since it was made. Its line is read
/// and written through bounds-checked atomics only, so whatever is there is harmless.
#[cfg_attr(not(feature = "std"), allow(dead_code))]
pub(crate) fn bell_of_unchecked<S: SharedMemory + ?Sized>(
    shm: &S,
) -> Result<Doorbell, AttachError> {
    let mem = shm.mem();
    if mem.len() < BELL_REGION_SIZE {
        return Err(AttachError::Header(crate::error::HeaderError::TooSmall {
            size: mem.len() as u64,
        }));
    }
    Ok(Doorbell::at(mem, HEADER_SIZE))
}

/// A doorbell in shared memory, as a handle of its own: for conditions outside the rings —
/// a server's doorbell shared by many clients, a worker's completion queue.
///
/// The doorbell occupies the 128-byte line at `offset` of `shm`; all handles on the same line
/// (in any thread or process) ring and wait on the same doorbell.
///
/// # Examples
///
/// ```
/// use ringbell::doorbell::Bell;
/// use ringbell::region::HeapRegion;
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::sync::Arc;
///
/// let region = HeapRegion::zeroed(128);
/// let mut waiter = Bell::new(region.clone(), 0).unwrap();
/// let mut ringer = Bell::new(region, 0).unwrap();
/// let count = Arc::new(AtomicU32::new(0));
/// let c = count.clone();
/// let t = std::thread::spawn(move || {
///     c.store(1, Ordering::Release); // publish first,
///     ringer.ring();                 // then ring
/// });
/// waiter.wait_until(|| count.load(Ordering::Acquire) == 1, None).unwrap();
/// t.join().unwrap();
/// ```
pub struct Bell<S: SharedMemory> {
    bell: Doorbell,
    waiter: Waiter,
    /// Keeps the memory behind `bell` alive.
    _shm: S,
}

impl<S: SharedMemory> Bell<S> {
    /// The doorbell on the line at `offset`; `None` unless `offset` is a multiple of 128 and
    /// the line lies inside `shm`.
    pub fn new(shm: S, offset: usize) -> Option<Self> {
        let mem = shm.mem();
        if offset % DOORBELL_SIZE != 0 || mem.len() < offset.checked_add(DOORBELL_SIZE)? {
            return None;
        }
        Some(Self {
            bell: Doorbell::at(mem, offset),
            waiter: Waiter::new(WaitOptions::default()),
            _shm: shm,
        })
    }

    /// Rings: wakes every waiter that announced a sleep. Publish what they wait for first.
    /// No system call unless someone sleeps.
    pub fn ring(&mut self) {
        self.waiter.ring(&self.bell);
    }

    /// Waits until `ready()` is true or `timeout` passes (`None`: no deadline; the wait still
    /// sleeps in bounded slices and re-checks `ready()` after each).
    ///
    /// # Errors
    ///
    /// [`TimedOut`] if `ready()` is still false at the deadline.
    pub fn wait_until(
        &mut self,
        ready: impl FnMut() -> bool,
        timeout: Option<Duration>,
    ) -> Result<(), TimedOut> {
        let deadline = timeout.map(|t| Instant::now().after(t));
        self.waiter.wait(&self.bell, ready, deadline)
    }

    /// How waits spin and sleep.
    pub fn set_wait_options(&mut self, opts: WaitOptions) {
        self.waiter.set_options(opts);
    }

    /// This handle's counters.
    pub fn stats(&self) -> WaitStats {
        self.waiter.stats()
    }
}

impl<S: SharedMemory> core::fmt::Debug for Bell<S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Bell")
            .field("waiter", &self.waiter)
            .finish_non_exhaustive()
    }
}
