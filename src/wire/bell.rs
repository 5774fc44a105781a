//! Doorbell words and the bell region.
//!
//! A doorbell is the first two `u32` words of a 128-byte line of its own:
//!
//! ```text
//! +0  sequence   the futex word; bumped (fetch_add, Release) by a ringer that wakes
//! +4  waiters    the waiter mark: bits a waiter about to wait sets (fetch_or, Release) —
//!                WAIT_SLEEPER for a futex sleep, WAIT_ASYNC for a wait on a readiness
//!                descriptor — cleared (swap to 0, AcqRel) by the ringer that wakes them;
//!                a ringer without the async waiter's signal clears only WAIT_SLEEPER
//!                (fetch_and WAIT_ASYNC), leaving the async mark for one that has it
//! ```
//!
//! The protocol on these words is argued in [`doorbell`](crate::doorbell). A *bell region* is
//! a region header of kind [`Bell`](super::RingKind::Bell) whose data area is one doorbell
//! line: the doorbell a fan-in's producers, or a channel server's clients, share.

use super::header::HEADER_SIZE;

/// Offset of the sequence (futex) word within a doorbell line.
pub const BELL_SEQ: usize = 0;
/// Offset of the waiter mark within a doorbell line.
pub const BELL_WAITERS: usize = 4;
/// Waiter-mark bit: a thread announced a futex sleep on the sequence word (the mark's only
/// value before async waits existed, so older builds interoperate).
pub const WAIT_SLEEPER: u32 = 1;
/// Waiter-mark bit: a waiter announced a wait on its readiness descriptor (an eventfd the
/// ringer writes when it clears this bit).
pub const WAIT_ASYNC: u32 = 2;
/// Bytes a doorbell occupies: a whole line, so that nothing else shares it.
pub const DOORBELL_SIZE: usize = 128;
/// Data-area size of a bell region: one doorbell line.
pub const BELL_CAPACITY: usize = DOORBELL_SIZE;
/// Bytes a bell region occupies: a header and one doorbell line.
pub const BELL_REGION_SIZE: usize = HEADER_SIZE + BELL_CAPACITY;
