#!/usr/bin/env bash
# The project's whole check: formatting, lints, tests, the no_std build and the
# cross-target checks. Works on a fresh machine with rustup: it installs what it needs.
#
#   bash scripts/check.sh          # everything
#
# Each step prints a banner and its wall time; the first failure stops the run.
set -euo pipefail
cd "$(dirname "$0")/.."

step() {
    local name=$1
    shift
    echo
    echo "=== $name"
    local t0=$SECONDS
    "$@"
    echo "--- $name: ok in $((SECONDS - t0)) s"
}

install_targets() {
    local missing=()
    for t in aarch64-unknown-linux-gnu i686-unknown-linux-gnu; do
        rustup target list --installed | grep -qx "$t" || missing+=("$t")
    done
    if ((${#missing[@]})); then
        rustup target add "${missing[@]}"
    fi
}

step "install cross targets" install_targets
step "cargo fmt --check" cargo fmt --all --check
step "cargo clippy" cargo clippy --workspace --all-targets -- -D warnings
step "cargo clippy (lib, default features, no test hooks)" cargo clippy --lib -- -D warnings
step "cargo clippy (no_std)" cargo clippy --no-default-features --lib -- -D warnings
step "cargo clippy (no_std + alloc)" cargo clippy --no-default-features --features alloc --lib -- -D warnings
step "no_std build" cargo build --no-default-features --lib
step "cargo doc" env RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --features tokio
step "cargo check aarch64" cargo check --target aarch64-unknown-linux-gnu --lib --tests --examples
step "cargo check i686" cargo check --target i686-unknown-linux-gnu --lib --tests --examples
step "cargo check aarch64 and i686 (the C ABI, the command)" bash -c \
    "cargo check --target aarch64-unknown-linux-gnu -p ringbell-c -p ringbell-cli --all-targets &&
     cargo check --target i686-unknown-linux-gnu -p ringbell-c -p ringbell-cli --all-targets"
step "cargo check i686 (no_std)" cargo check --target i686-unknown-linux-gnu --no-default-features --lib
# Every integration test runs under a watchdog that names it and fails the run if it hangs
# (tests/common: `watchdog()`). Doctests run one at a time under a timeout: libtest prints a
# test's name before it finishes, so a hung doctest is the last name printed.
step "tests" cargo test --workspace --lib --bins --tests --examples
doctests() {
    timeout --foreground 900 cargo test --doc -- --test-threads=1 ||
        { echo "doctests failed or hung (the last test named above)"; return 1; }
}
step "doctests" doctests
# The examples that finish on their own run to the end (the demo runs in the README's demo
# command and in the comparison).
step "example: poll" timeout --foreground 120 cargo run --example poll
# The C ABI: header regenerated and compared, C and C++ examples compiled by the system's
# compilers and run against Rust peers, the `ringbell` command against a live server.
step "C ABI, C and C++ examples, the ringbell command" timeout --foreground 900 bash scripts/c-check.sh
step "loom models and mutants" bash scripts/mutants.sh

# Benchmarks must keep compiling; the comparison with peer crates (its own crate, its own
# lock file) runs once in quick mode. Its numbers are printed, not judged: CI machines are
# shared and noisy.
step "benchmarks build" cargo bench --no-run
step "compare (quick)" cargo run --release --manifest-path benches/compare/Cargo.toml -- --quick

# miri: the in-process SPSC, doorbell, fan-in and MPSC tests (threads over heap regions, real
# futexes), several scheduler seeds. Weak-memory emulation is off: this nightly's miri crashes (an
# internal error in its store buffers) on memory that is written atomically in one lap and
# by byte copies in another; data-race detection, which catches a missing Release, is on.
MIRI_TESTS=(threads_stream_in_order has_data_changes_nothing trusted_slices
    wake_calls_never a_close_wakes deadlines_are threads_stream_without_a_wake
    sixty_four_producer_threads uncommitted_records_block)
MIRIFLAGS_BASE="-Zmiri-permissive-provenance -Zmiri-disable-weak-memory-emulation"
miri_available() {
    if ! rustup component list --toolchain nightly --installed 2>/dev/null | grep -q '^miri'; then
        rustup component add miri rust-src --toolchain nightly || return 1
    fi
    cargo +nightly miri setup >/dev/null 2>&1 || cargo +nightly miri setup
}
miri_tests() {
    MIRIFLAGS="$MIRIFLAGS_BASE -Zmiri-many-seeds=0..4" \
        timeout --foreground 1200 cargo +nightly miri test --test spsc --test blocking --test fanin --test mpsc -- \
        "${MIRI_TESTS[@]}"
}
miri_mutant() {
    # The Relaxed publish must show up as a data race on the payload.
    local log
    log=$(mktemp)
    if RINGBELL_MUTANT=relaxed_publish RUSTFLAGS="--cfg ringbell_mutants" \
        CARGO_TARGET_DIR=target/miri-mutants \
        MIRIFLAGS="$MIRIFLAGS_BASE -Zmiri-env-forward=RINGBELL_MUTANT" \
        cargo +nightly miri test --test spsc -- threads_stream_in_order >"$log" 2>&1; then
        echo "MISSED  relaxed_publish under miri"
        rm -f "$log"
        return 1
    fi
    if grep -q "Data race detected" "$log"; then
        echo "caught  relaxed_publish under miri: $(grep -m1 -o 'Data race detected[^(]*' "$log")"
        rm -f "$log"
    else
        echo "ERROR   relaxed_publish under miri failed without a data race:"
        tail -20 "$log"
        rm -f "$log"
        return 1
    fi
}
if miri_available; then
    step "miri (4 seeds)" miri_tests
    step "miri catches the relaxed publish" miri_mutant
else
    echo
    echo "!!!!!!!! MIRI SKIPPED: the nightly miri component could not be installed. !!!!!!!!"
    echo "!!!!!!!! The loom models and mutants above ran; the miri checks did not.    !!!!!!!!"
fi
# Fuzzing: the shared memory is the input. Each target runs for FUZZ_SECONDS (default 30) with
# the address sanitizer; a crash fails the check (its input is saved under fuzz/artifacts/).
FUZZ_TARGETS=(spsc_ops mpsc_ops fanin_ops hostile_region hostile_peer)
fuzz_cargo() {
    if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
        cargo +nightly "$@"
    else
        RUSTC_BOOTSTRAP=1 cargo "$@"
    fi
}
install_fuzz() {
    command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
}
fuzz_all() {
    local t out
    for t in "${FUZZ_TARGETS[@]}"; do
        out=$(mktemp -d)
        (cd fuzz && CARGO_CACHE_RUSTC_INFO=0 fuzz_cargo fuzz run "$t" "$out" "corpus/$t" -- \
            -max_total_time="${FUZZ_SECONDS:-30}" -rss_limit_mb=4096 2>&1 |
            grep -E "^Done|ERROR|SUMMARY|panicked")
        rm -rf "$out"
        # `cargo fuzz run` fails (and the pipe's status with `pipefail`) on a crash.
    done
}
step "install cargo-fuzz" install_fuzz
step "fuzz (${FUZZ_SECONDS:-30} s per target)" fuzz_all
echo
echo "all checks passed"
