#!/usr/bin/env bash
# The proof harness: runs the loom models once clean (all must pass) and then once per planted
# bug (each must be caught by at least one model). The mutants, and which tool catches each,
# are listed in src/mutant.rs. One build serves every run: RINGBELL_MUTANT picks the bug.
#
#   bash scripts/mutants.sh
#
# LOOM_MAX_PREEMPTIONS defaults to 3 (loom-tests/src/lib.rs); set it to override.
set -euo pipefail
cd "$(dirname "$0")/.."

export RUSTFLAGS="--cfg loom"
export CARGO_TARGET_DIR=target/loom
MUTANTS=(ringer_fence waiter_fence skip_recheck skip_bump relaxed_publish)

mapfile -t BINS < <(cargo test --release -p loom-tests --no-run 2>&1 |
    sed -n 's/.*Executable tests\/.* (\(.*\))$/\1/p')
((${#BINS[@]})) || { echo "no loom test binaries were built"; exit 1; }

t0=$SECONDS
echo "=== loom models, no mutant (LOOM_MAX_PREEMPTIONS=${LOOM_MAX_PREEMPTIONS:-3})"
for bin in "${BINS[@]}"; do
    "$bin" --test-threads=1
done
echo "--- loom models pass in $((SECONDS - t0)) s"

# Each model runs in its own process: a loom deadlock panics inside loom's scheduler and can
# abort the whole test binary.
# Each model runs in its own process: a loom deadlock panics inside loom's scheduler and can
# abort the whole test binary. Every model runs against every mutant, so the report says
# which models catch which bug.
run_model() { # mutant binary test log
    bash -c 'RINGBELL_MUTANT=$1 "$2" --exact "$3" --test-threads=1 >"$4" 2>&1' _ "$@" 2>/dev/null
}
missed=()
for m in "${MUTANTS[@]}"; do
    t0=$SECONDS
    caught=()
    for bin in "${BINS[@]}"; do
        mapfile -t TESTS < <("$bin" --list --format terse 2>/dev/null | sed -n 's/: test$//p')
        for t in "${TESTS[@]}"; do
            log=$(mktemp)
            if ! run_model "$m" "$bin" "$t" "$log"; then
                if grep -qE "deadlock|panicked|Causality|FAILED" "$log"; then
                    why=$(grep -m1 -oE "deadlock|Causality violation" "$log" ||
                        grep -m1 -oE "assertion[^,]*|panicked at [^:]*" "$log" | head -c 80)
                    caught+=("$t ($why)")
                else
                    echo "ERROR   $m: $t failed without a test failure:"
                    tail -5 "$log"
                fi
            fi
            rm -f "$log"
        done
    done
    if ((${#caught[@]})); then
        echo "caught  $m in $((SECONDS - t0)) s by ${#caught[@]} model(s): $(IFS=';'; echo "${caught[*]}")"
    else
        echo "MISSED  $m: every loom model passed with it"
        missed+=("$m")
    fi
done

if ((${#missed[@]})); then
    echo "mutants not caught: ${missed[*]}"
    exit 1
fi
echo "all ${#MUTANTS[@]} mutants caught"
