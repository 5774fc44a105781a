//! Loom models of ringbell's concurrency protocols. The models live in `tests/`; this crate
//! compiles to nothing without `--cfg loom`.
//!
//! Run them (a separate target dir keeps the normal build):
//!
//! ```text
//! LOOM_MAX_PREEMPTIONS=3 RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
//!     cargo test --release -p loom-tests
//! ```
//!
//! Every wait in these models is unbounded (loom does not model time), so a lost wake-up
//! shows as loom's deadlock. `scripts/mutants.sh` runs the suite once per planted bug
//! (`RINGBELL_MUTANT`) and fails unless each one is caught.

#[cfg(loom)]
pub mod support {
    use ringbell::doorbell::WaitOptions;

    /// Waits never spin in models: they exercise the sleeping protocol.
    pub fn no_spin() -> WaitOptions {
        WaitOptions::new().spin_budget(0)
    }

    /// A loom builder bounded as the suite documents (`LOOM_MAX_PREEMPTIONS`, default 3).
    pub fn builder() -> loom::model::Builder {
        builder_bounded(3)
    }

    /// A builder for a heavy model: preemption bound `default` unless `LOOM_MAX_PREEMPTIONS`
    /// says otherwise.
    pub fn builder_bounded(default: usize) -> loom::model::Builder {
        let mut b = loom::model::Builder::new();
        if b.preemption_bound.is_none() {
            b.preemption_bound = Some(default);
        }
        b
    }
}
