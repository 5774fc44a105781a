//! Planted bugs for the proof harness: each weakens one ordering or step the proofs rely on.
//!
//! Only in builds with `--cfg loom` or `--cfg ringbell_mutants` (miri); there the environment
//! variable `RINGBELL_MUTANT` selects at most one at run time, so one build runs them all
//! (`scripts/mutants.sh`). In every other build [`active`] is a constant `false` and the
//! mutants compile away.
//!
//! | mutant | what it breaks | caught by |
//! |---|---|---|
//! | `ringer_fence` | the ringer's `fence(SeqCst)` between publishing and reading the waiter mark is removed | loom (doorbell models: lost wake-up → deadlock) |
//! | `waiter_fence` | the waiter's `fence(SeqCst)` between setting the mark and re-checking is removed | loom (lost wake-up) |
//! | `skip_recheck` | the waiter sleeps without re-checking its condition after setting the mark | loom (lost wake-up) |
//! | `skip_bump` | the ringer wakes without bumping the sequence | loom (the waiter sleeps on an unchanged word after the wake) |
//! | `relaxed_publish` | the producer publishes its write position with Relaxed instead of Release | loom (payload cell race / torn record) and miri (data race) |

/// The planted bugs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(dead_code)]
pub(crate) enum Mutant {
    RingerFence,
    WaiterFence,
    SkipRecheck,
    SkipBump,
    RelaxedPublish,
}

#[cfg(any(loom, ringbell_mutants))]
impl Mutant {
    fn name(self) -> &'static str {
        match self {
            Self::RingerFence => "ringer_fence",
            Self::WaiterFence => "waiter_fence",
            Self::SkipRecheck => "skip_recheck",
            Self::SkipBump => "skip_bump",
            Self::RelaxedPublish => "relaxed_publish",
        }
    }
}

/// Whether `m` is the mutant selected for this run.
#[cfg(any(loom, ringbell_mutants))]
pub(crate) fn active(m: Mutant) -> bool {
    extern crate std;
    use std::sync::OnceLock;
    static SELECTED: OnceLock<Option<std::string::String>> = OnceLock::new();
    SELECTED
        .get_or_init(|| std::env::var("RINGBELL_MUTANT").ok())
        .as_deref()
        == Some(m.name())
}

/// Whether `m` is the mutant selected for this run: never, in this build.
#[cfg(not(any(loom, ringbell_mutants)))]
#[inline(always)]
pub(crate) const fn active(_m: Mutant) -> bool {
    false
}

// Not a mutant: "the sequence bump made a load-then-store". The mark swap hands each
// announced sleep to exactly one ringer and the waiter cannot start another round before
// that ringer's bump lands, so in every schedule loom can build (loom has no time) a
// load-then-store still changes the word. Only a ringer stalled for a whole sleep slice could
// store a stale value, which delays one wake by at most a slice. See `doorbell`'s docs.
