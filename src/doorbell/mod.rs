//! Doorbells: sleep until a condition holds, without ever losing a wake-up, and without a
//! system call while nobody sleeps.
//!
//! What users meet here: [`WaitOptions`] (how blocking calls spin and sleep), [`WaitStats`]
//! (what they did), [`Notifier`] (wake a consumer from another thread), [`Doorbell`] (a
//! doorbell of one's own in shared memory) and bell regions ([`BellConfig`], [`init_bell`]),
//! the doorbell a fan-in's producers share. The rings use the same protocol internally.
//!
//! A doorbell is two 32-bit words at the start of its own 128-byte line in shared memory
//! ([`wire::BELL_SEQ`](crate::wire::BELL_SEQ), [`wire::BELL_WAITERS`](crate::wire::BELL_WAITERS)):
//!
//! ```text
//! +0  sequence   the futex word; bumped (fetch_add, Release) by a ringer that wakes
//! +4  waiters    the waiter mark; bits set (fetch_or) by a waiter before it waits —
//!                WAIT_SLEEPER for a futex sleep, WAIT_ASYNC for an async wait — and
//!                cleared by the ringer that wakes it (a ringer without the async
//!                waiter's signal clears only WAIT_SLEEPER: see *Async waits*)
//! ```
//!
//! The steps below are in `doorbell/line.rs`; the spin phase and the sleep slices in
//! `doorbell/waiter.rs`.
//!
//! # The protocol
//!
//! **Waiter** (`wait_until(ready, deadline)`): spin a little while `ready()` is false (see
//! *Spinning*); then loop:
//!
//! 1. if the deadline passed, return a timeout
//! 2. `seq = sequence.load(Acquire)`
//! 3. `waiters.fetch_or(WAIT_SLEEPER, Release)` (an RMW: see *Why an RMW* below)
//! 4. `fence(SeqCst)`
//! 5. if `ready()`, return
//! 6. futex-wait on `sequence` while it still equals `seq`, for at most one *slice*; go to 1
//!
//! **Ringer** (after publishing whatever makes `ready()` true — a frame, freed space, a
//! completion posted by `notify()`):
//!
//! 1. `fence(SeqCst)`
//! 2. if `waiters.load() != 0` and clearing it (`swap(0, AcqRel)`; `fetch_and(WAIT_ASYNC)`
//!    for a ringer without the async waiter's signal) found `WAIT_SLEEPER` set:
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
//! # Asymmetric fences
//!
//! The ringer's `fence(SeqCst)` is paid on every publish; on x86 it is an `mfence`, which
//! waits for the store buffer to drain, and in a stream of one frame per call it is most of
//! the cost. The waiter's fence is paid only when it is about to sleep. A region made with
//! [`Fences::Asymmetric`] (the default wherever the process can register, recorded in the
//! header as [`wire::FLAG_ASYMMETRIC_FENCES`](crate::wire::FLAG_ASYMMETRIC_FENCES)) moves
//! the whole cost to the sleeper:
//!
//! - **ringer** step 1 becomes a compiler fence: the compiler keeps the mark's load after the
//!   publishing stores; the processor may still let the load pass them;
//! - **waiter** step 4 becomes `fence(SeqCst)` and then
//!   `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)`.
//!
//! `MEMBARRIER_CMD_GLOBAL_EXPEDITED` returns only after every CPU that runs a thread of a
//! process registered with `MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED` has executed a full
//! memory barrier (an IPI), and a thread that is not running passed through the scheduler,
//! which is a full barrier, since it last ran; the call is itself a full barrier for the
//! caller, before and after. Take a ringer R (stores the condition `C`, then loads the mark
//! `M`) and a waiter W (stores `M`, calls membarrier, loads `C`). The barrier the call forces
//! on R's CPU falls at some point of R's program order:
//!
//! - **after R's store of `C`**: that store is globally visible before the barrier
//!   completes, so before membarrier returns, so before W's load of `C`: W's re-check sees
//!   it and W does not sleep;
//! - **before R's store of `C`**, hence before R's load of `M` (which follows the store in
//!   program order, kept there by the compiler fence): W's store of `M` was globally visible
//!   before W entered membarrier (the call's own leading barrier), so before the barrier on
//!   R's CPU, so before R's load: R sees the mark and wakes.
//!
//! Either way no wake-up is lost, which is the same disjunction the two `SeqCst` fences give;
//! the rest of the argument (the sequence bump, waking all) is unchanged. The argument needs
//! R's process registered *before* R's first ring in that mode: every attach of an
//! asymmetric region registers (`Fences::usable`), or refuses the region with
//! [`HeaderError::FencesUnavailable`](crate::HeaderError::FencesUnavailable); registration
//! is per process and lost at `execve` (a new process attaches anew). The kernel keeps it in
//! the memory map, which `fork(2)` copies; the fork handler registers the child again all the
//! same (one system call per fork), because a child may ring a line it got before the fork —
//! a `Notifier` made from an inherited handle — without attaching anything.
//!
//! **Where the modes meet.** The mode is fixed per region at creation and read once at
//! attach; a build that does not know the flag refuses the region (unknown flags are
//! refused). Two kinds of line have no trustworthy mode, and take the side of both: a
//! [`Doorbell`] in the caller's own memory (which may even be a bell region's line) and a
//! channel server's shared doorbell as its clients see it (any client may rewrite that
//! header). They are rung with a full fence, which a waiter of either mode answers, and
//! waited on with the membarrier as well wherever it works, which answers a ringer of either
//! mode. A channel server makes that shared doorbell symmetric whatever its rings' mode: the
//! reactor sets its mark before every inline run, and an asymmetric mark would cost a
//! `membarrier` on every call. A peer that lies — sets the flag of its ring without
//! registering — loses its own wake-ups and those of its own ring's other side, nothing
//! more; our sleeps stay bounded by the slice.
//!
//! **Where it cannot be used.** `membarrier` needs Linux 4.16; a seccomp filter or a sandbox
//! such as gVisor may refuse it. Then [`Fences::default_for_new_regions`] is `Symmetric` and
//! an asymmetric region made elsewhere is refused with a typed error, never used with the
//! wrong fences. `RINGBELL_FENCES=symmetric` makes a process behave so on purpose (for a
//! creator whose peers run in such a sandbox). A filter installed *after* registration makes
//! every barrier fail: a waiter then sleeps at most 1 ms at a time instead of a slice (a ring
//! may have been missed), and an inline run of the reactor is handed to the executor.
//!
//! **Proof.** loom cannot model `membarrier`, so the loom models keep the symmetric protocol
//! (the asymmetric one differs only in the two fence steps). The asymmetric pair is tested
//! with real processes instead: `tests/fences.rs` runs the store-buffering litmus with the
//! crate's own halves of the pair (a ringer's store, fence and load against a waiter's store,
//! barrier and load, 100,000 times per run, the two processes pinned to two CPUs) and fails
//! if both loads ever miss both stores; with the membarrier planted out (the
//! `barrier_omitted` mutant) it fails (on this machine 1 iteration in 4,000 to 10,000 shows
//! the lost wake-up). What the litmus cannot tell apart is the barrier and any system call
//! as slow: a ringer's store buffer drains in far less than the microsecond the call takes,
//! so a ringer that never registered would pass it too. That a ringer is registered rests
//! on the attach paths (each calls `Fences::usable` before it claims a role) and on the test
//! that a process unable to register is refused; `tests/blocking.rs` ping-pongs 100,000
//! sleeping messages between processes in each mode with slices longer than the deadlines,
//! so a lost wake-up fails a call.
//!
//! **Cost.** A sleep costs the waiter one membarrier more (so does a mark that a busy thread
//! sets on an asymmetric line to be woken through a watcher): on this 2-vCPU VM about 1 µs
//! with the other CPU idle and up to 10 µs when it must interrupt a running registered
//! thread (each IPI to a running vCPU leaves the guest). Against a sleep and its wake (about
//! 14 µs a hop here) that is a few per cent; what it saves is an `mfence` on every publish. A
//! registered process also receives the barriers of every other process that issues
//! `MEMBARRIER_CMD_GLOBAL_EXPEDITED` on the machine — an interrupt of a microsecond or so
//! each time some ringbell waiter anywhere goes to sleep.
//!
//! # Async waits
//!
//! A waiter that must not block a thread (a task of an async runtime, a `poll(2)` loop) waits
//! on a [`Readiness`] descriptor instead of the futex, which every ringer of the line holds
//! (a [`ReadinessSignal`]) and writes only when it clears an async waiter's mark. Between
//! parties that trust each other it is an eventfd ([`Readiness::new`]); the channel, whose
//! server and clients do not, uses stream socket pairs instead: a ring is a `send` with
//! `MSG_DONTWAIT` on the ringer's own end, which nothing the waiting side does can make
//! block (with a shared eventfd, a waiter that filled the counter and raced the
//! non-blocking flag could), and the waiter drains with a bounded `recv`. The mark is a set of bits ([`wire::WAIT_SLEEPER`](crate::wire::WAIT_SLEEPER)
//! for a futex sleep, [`wire::WAIT_ASYNC`](crate::wire::WAIT_ASYNC) for an async wait), each set
//! with `fetch_or` so that a sleeper and an async waiter on one line never erase each
//! other's bit.
//!
//! **Async waiter** ([`Doorbell::poll_ready`]):
//!
//! 1. drain the descriptor (a non-blocking read; nothing there is fine)
//! 2. `waiters.fetch_or(WAIT_ASYNC, Release)`
//! 3. the waiter's fence of the line's mode (as step 4 above)
//! 4. if `ready()`, return ready; otherwise the caller waits until the descriptor is
//!    readable, then starts again at 1
//!
//! **Ringer** ([`Doorbell::ring_readiness`]): as above; in the wake, after the bump, a mark
//! with a bit other than `WAIT_ASYNC` gets the futex wake, and one with `WAIT_ASYNC` gets a
//! write of 1 to the descriptor.
//!
//! *Why no wake-up is lost.* The fence pair decides as for a sleeper: either the ringer
//! reads the async bit — then it writes the descriptor, after the drain (the drain came
//! before the mark, which came before the ringer's read of it), so the wait at step 4 ends
//! at once — or the re-check sees what the ringer published. A ring that lands before the
//! drain has its write drained, but its publish is then before the re-check. Draining
//! *after* the re-check would eat the write of a ring landing between the two, and the wait
//! would sleep through it (`drain_after_recheck`); skipping the re-check loses a ring between
//! the caller's first look and the mark (`async_skip_recheck`); a ringer that clears the bit
//! without writing leaves the waiter asleep (`ringer_skips_readiness`); a sleeper whose mark
//! is a `swap` erases the async bit (`sleeper_mark_swaps`). The loom models
//! `async_waiter_vs_ringer` and `async_and_futex_waiters_one_ring` catch all four (the
//! descriptor modelled as a counter on loom's `Mutex` and `Condvar`).
//!
//! **Limits.** The async bit does not say whose descriptor to write, so a line has at most
//! one async waiter, and every ringer of it rings with that waiter's
//! [`ReadinessSignal`]: a plain [`ring`](Doorbell::ring) (or a second waiter's ringer) clears
//! the bit without making the descriptor readable, and the waiter would wait on its own
//! timer only. A peer of an older build, whose marks are `swap`s, erases the bit too: an
//! async waiter needs every peer of its line on this build. (The channel's greeting, version
//! 4 and later, gives every ringer its signal and refuses older peers; a word saying who holds the
//! descriptor is planned: `docs/design-async.md`.) A [`Readiness`] is not `Clone`: it is drained by its one
//! waiter; ringers hold [`ReadinessSignal`]s. Wake system calls still never exceed
//! announced waits: a ringer writes a descriptor only after clearing a mark an async wait
//! set, and counts each call it makes. A waiter on several lines with one descriptor drains
//! once and then marks, fences and re-checks each line: a drain between them could eat a
//! ring of a line already re-checked. A [`Notifier`] rings async waiters only when given
//! their signal ([`Notifier::with_readiness`]). Why a descriptor and not a
//! helper thread on the futex or io_uring's futex wait: `docs/design-async.md` in the
//! repository.
//!
//! # Cost
//!
//! While nobody sleeps the ringer pays one fence (symmetric) or none (asymmetric) and one
//! load — no system call. A sleeping
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
//! as many spinning threads as the waiter's CPUs but one (at least one may spin), the waiter
//! does not spin, so spinners never starve the thread they wait for.
//!
//! **Yielding.** A waiter that may not spin gives its CPU away up to 4 times before it
//! sleeps (`sched_yield`, re-checking after each; counted in [`WaitStats::yields`]). It may
//! not spin when the CPUs are taken: by as many spinners of this process as its CPUs but
//! one, or — for a thread that may run on one CPU only — by another runnable thread on that
//! CPU. That it finds by timing one yield (a yield that comes back within 5 µs ran nobody)
//! after a spin that failed and after yields nobody answered, and at its first wait and
//! every 4096th (there two slow yields in a row are needed: one may be a hiccup of the
//! machine). Both are the case of more runnable threads than CPUs: a yield then runs another
//! thread, often the one this wait is for, at far less cost than a sleep and the wake that
//! ends it (two producers and a consumer on one CPU: 11 M/s with sleeps, 22 M/s with
//! yields). A waiter that may spin never yields, so threads the scheduler places make no
//! system call while both sides are awake. A thread pinned to a CPU of its own can be
//! misjudged (a failed spin, then a hiccup during the probe) and then yields where it would
//! spin until its yields go unanswered: up to ~0.05 yields per call measured in the channel
//! with client and server pinned. Spin budget 0 never spins and never yields: every wait that
//! is not satisfied at once sleeps.
//!
//! A wait reads the clock only when it goes on to sleep (for the end of its slice) or, with
//! a finite deadline, once when it starts and then every 256 spins: a blocking call that
//! succeeds at once or while spinning with no deadline reads no clock at all.

#[cfg(all(feature = "tokio", not(loom)))]
pub(crate) mod asynchronous;
mod bell;
mod fences;
mod handle;
mod line;
mod options;
#[cfg(feature = "std")]
mod readiness;
mod waiter;

#[cfg(feature = "std")]
pub use bell::WatchBell;
pub use bell::{BellConfig, Notifier, init_bell};
#[allow(unused_imports)] // `bell_of_unchecked` and `FencedBell` are the channel's only
pub(crate) use bell::{FencedBell, bell_of, bell_of_unchecked};
pub use fences::Fences;
#[cfg(all(feature = "std", not(loom), not(miri), target_os = "linux"))]
pub(crate) use fences::register_again_in_child;
#[cfg(feature = "test-hooks")]
pub(crate) use fences::{ringer as ringer_half, waiter as waiter_half};
pub use handle::Doorbell;
#[cfg(feature = "std")]
pub use line::Announced;
pub(crate) use line::Line;
pub use options::{DEFAULT_SLICE, DEFAULT_SPIN_BUDGET, TimedOut, WaitOptions, WaitStats};
#[cfg(feature = "std")]
pub use readiness::{Readiness, ReadinessSignal};
pub(crate) use waiter::{Stop, Waiter};
