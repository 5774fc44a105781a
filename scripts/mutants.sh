#!/usr/bin/env bash
# The proof harness: runs every loom model once clean (all must pass), then each planted bug
# against the models that must catch it (every one listed must fail). The mutants, and what
# catches each, are listed in src/mutant.rs. One build serves every run: RINGBELL_MUTANT
# picks the bug at run time.
#
#   bash scripts/mutants.sh
#
# LOOM_MAX_PREEMPTIONS defaults to 3 (loom-tests/src/lib.rs); the heaviest models cap it at 2,
# the reactor model (four threads, two rings, a queue) at 1.
set -euo pipefail
cd "$(dirname "$0")/.."

export RUSTFLAGS="--cfg loom"
export CARGO_TARGET_DIR=target/loom

# mutant -> the models that must catch it (binary:test).
declare -A CATCHERS=(
    [ringer_fence]="doorbell:waiter_vs_ringer doorbell:async_waiter_vs_ringer doorbell:waiter_vs_two_ringers doorbell:two_waiters_one_ring spsc:blocking_stream_across_the_wrap"
    [waiter_fence]="doorbell:waiter_vs_ringer doorbell:async_waiter_vs_ringer doorbell:waiter_vs_two_ringers doorbell:two_waiters_one_ring spsc:blocking_stream_across_the_wrap"
    [skip_recheck]="doorbell:waiter_vs_ringer doorbell:waiter_vs_two_ringers doorbell:two_waiters_one_ring"
    [skip_bump]="doorbell:waiter_vs_ringer doorbell:waiter_vs_two_ringers doorbell:two_waiters_one_ring"
    [bump_load_store]="doorbell:two_waiters_three_rings"
    [relaxed_publish]="spsc:blocking_stream_across_the_wrap spsc:has_data_is_honest_and_close_is_seen"
    [room_ignores_close]="spsc:consumer_close_wakes_blocked_producer"
    [consumer_drop_no_ring]="spsc:consumer_close_wakes_blocked_producer"
    [mpsc_claim_bound]="mpsc:one_producer_three_laps"
    [mpsc_commit_store]="mpsc:dead_producer_skip_races_a_late_commit"
    [mpsc_no_zero]="mpsc:one_producer_three_laps"
    [spsc_no_catch_up_ring]="spsc:has_data_is_honest_and_close_is_seen"
    [mpsc_no_catch_up_ring]="mpsc:a_blocked_producer_wakes_when_the_consumer_catches_up"
    [reply_rings_first]="reactor:dispatched_completions_wake_the_reactor_and_go_out_in_order"
    [send_out_of_order]="reactor:dispatched_completions_wake_the_reactor_and_go_out_in_order"
    [back_rings_first]="reactor:an_overrunning_inline_handler_hands_the_serve_loop_over_in_order"
    [odd_after_arm]="reactor:a_request_at_any_moment_of_an_inline_run_is_not_missed"
    [write_ignores_reads]="reactor:two_keys_from_two_connections"
    [read_overtakes_write]="reactor:two_keys_from_two_connections"
    [early_release]="reactor:two_keys_from_two_connections"
    [async_skip_recheck]="doorbell:async_waiter_vs_ringer"
    [drain_after_recheck]="doorbell:async_waiter_vs_ringer"
    [ringer_skips_readiness]="doorbell:async_waiter_vs_ringer doorbell:async_and_futex_waiters_one_ring"
    [sleeper_mark_swaps]="doorbell:async_and_futex_waiters_one_ring"
    [more_drains]="doorbell:async_waiter_on_two_doorbells"
    [plain_ring_clears_async]="doorbell:a_plain_ring_leaves_the_async_mark_for_a_ringer_that_can_answer_it"
)
MUTANTS=(ringer_fence waiter_fence skip_recheck skip_bump bump_load_store relaxed_publish
    room_ignores_close consumer_drop_no_ring mpsc_claim_bound mpsc_commit_store mpsc_no_zero
    mpsc_no_catch_up_ring spsc_no_catch_up_ring
    reply_rings_first send_out_of_order back_rings_first odd_after_arm
    write_ignores_reads read_overtakes_write early_release
    async_skip_recheck drain_after_recheck ringer_skips_readiness sleeper_mark_swaps
    more_drains plain_ring_clears_async)

declare -A BIN=()
build_log=$(cargo test --release -p loom-tests --no-run 2>&1) || {
    echo "$build_log"
    echo "the loom models did not build"
    exit 1
}
while read -r name path; do
    BIN[$name]=$path
done < <(sed -n 's/.*Executable tests\/\(.*\)\.rs (\(.*\))$/\1 \2/p' <<<"$build_log")
((${#BIN[@]})) || { echo "no loom test binaries were built"; exit 1; }

t0=$SECONDS
echo "=== loom models, no mutant (LOOM_MAX_PREEMPTIONS=${LOOM_MAX_PREEMPTIONS:-3})"
for name in $(printf '%s\n' "${!BIN[@]}" | sort); do
    t1=$SECONDS
    # A hung model fails the run by name instead of holding CI to its limit.
    timeout --foreground 900 "${BIN[$name]}" --test-threads=1 --include-ignored -q ||
        { echo "loom models in $name failed or hung (900 s)"; exit 1; }
    echo "--- $name: $((SECONDS - t1)) s"
done
echo "--- loom models pass in $((SECONDS - t0)) s"

# Each model runs in its own process: a loom deadlock panics inside loom's scheduler and can
# abort the whole test binary.
# Mutants run at preemption bound 3 even where a model's clean run is bounded at 2 (the
# stale store of bump_load_store needs three preemptions; a failing run stops early anyway).
# The reactor model is explored at bound 1 for mutants too: at 3 its out-of-order execution
# lies too deep in loom's search to be reached in minutes.
declare -A BOUND=([dispatched_completions_wake_the_reactor_and_go_out_in_order]=1
    [an_overrunning_inline_handler_hands_the_serve_loop_over_in_order]=1
    [a_request_at_any_moment_of_an_inline_run_is_not_missed]=1
    [two_keys_from_two_connections]=1)
run_model() { # mutant binary test log
    bash -c 'LOOM_MAX_PREEMPTIONS=$5 RINGBELL_MUTANT=$1 timeout 600 "$2" --exact "$3" --test-threads=1 >"$4" 2>&1' \
        _ "$@" "${BOUND[$3]:-3}" 2>/dev/null
}
missed=()
for m in "${MUTANTS[@]}"; do
    t1=$SECONDS
    report=()
    for target in ${CATCHERS[$m]}; do
        bin=${BIN[${target%%:*}]}
        t=${target#*:}
        log=$(mktemp)
        if run_model "$m" "$bin" "$t" "$log"; then
            missed+=("$m/$t")
            report+=("$t: PASSED (missed)")
        elif grep -qE "deadlock|panicked|Causality|FAILED" "$log"; then
            why=$(grep -m1 -oE "deadlock|Causality violation" "$log" ||
                grep -m1 -oE "assertion[^,]*|panicked at [^:]*" "$log" | head -c 80)
            report+=("$t ($why)")
        else
            missed+=("$m/$t")
            report+=("$t: failed without a test failure: $(tail -2 "$log" | tr '\n' ' ')")
        fi
        rm -f "$log"
    done
    echo "$m ($((SECONDS - t1)) s): $(IFS=';'; echo "${report[*]}")"
done

# Mutants that loom cannot model, caught by tests with real processes: a native build with
# the mutant switch compiled in (--cfg ringbell_mutants), run clean first (must pass), then
# with each mutant (must fail with the named message).
declare -A NATIVE=(
    [barrier_omitted]="fences:the_fence_pair_forbids_store_buffering_across_processes:both loads missed both stores"
    [control_to_handler]="channel:server_stats_list_connections_and_never_reach_the_handler:not a statistics answer"
)
declare -A NATIVE_BIN=()
native_log=$(RUSTFLAGS="--cfg ringbell_mutants" CARGO_TARGET_DIR=target/mutants-native \
    cargo test --release --test fences --test channel --no-run 2>&1) ||
    { echo "$native_log"; echo "the native mutant build failed"; exit 1; }
while read -r name path; do
    NATIVE_BIN[$name]=$path
done < <(sed -n 's/.*Executable tests\/\(.*\)\.rs (\(.*\))$/\1 \2/p' <<<"$native_log")
for m in "${!NATIVE[@]}"; do
    IFS=: read -r b t why <<<"${NATIVE[$m]}"
    native_bin=${NATIVE_BIN[$b]:-}
    [[ -n $native_bin ]] || { echo "no native test binary $b"; exit 1; }
    t1=$SECONDS
    log=$(mktemp)
    RINGBELL_LITMUS_ITERS=1000000 timeout 300 "$native_bin" --exact "$t" --test-threads=1 >"$log" 2>&1 ||
        { cat "$log"; echo "$t fails without a mutant"; exit 1; }
    if RINGBELL_MUTANT=$m RINGBELL_LITMUS_ITERS=1000000 timeout 300 "$native_bin" --exact "$t" \
        --test-threads=1 >"$log" 2>&1; then
        missed+=("$m/$t")
        echo "$m ($((SECONDS - t1)) s): $t: PASSED (missed)"
    elif grep -q "$why" "$log"; then
        echo "$m ($((SECONDS - t1)) s): $t ($(grep -m1 -oE "$why[^\"]{0,30}" "$log"))"
    else
        missed+=("$m/$t")
        echo "$m: $t failed without the expected message: $(tail -3 "$log" | tr '\n' ' ')"
    fi
    rm -f "$log"
done

if ((${#missed[@]})); then
    echo "MUTANTS NOT CAUGHT: ${missed[*]}"
    exit 1
fi
echo "all $((${#MUTANTS[@]} + ${#NATIVE[@]})) mutants caught by every model or test listed for them"
