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
step "cargo clippy (no_std)" cargo clippy --no-default-features --lib -- -D warnings
step "no_std build" cargo build --no-default-features --lib
step "cargo check aarch64" cargo check --target aarch64-unknown-linux-gnu --all-targets
step "cargo check i686" cargo check --target i686-unknown-linux-gnu --all-targets
step "cargo check i686 (no_std)" cargo check --target i686-unknown-linux-gnu --no-default-features --lib
step "tests" cargo test --workspace
echo
echo "all checks passed"
