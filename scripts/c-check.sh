#!/usr/bin/env bash
# The C ABI's check: builds libringbell_c (shared and static), regenerates the header with
# cbindgen and fails if the checked-in capi/include/ringbell.h differs, compiles the C and
# C++ examples with the system's compilers (warnings are errors), and runs them against
# Rust peers: the C client and the C++ wrapper against the Rust server, the Rust client
# against the C server, SPSC ends between two C processes; then the `ringbell` command
# against the live C server. Every process runs under `timeout`.
#
#   bash scripts/c-check.sh            # run from anywhere; scripts/check.sh runs it
#   C_BENCH=200000 bash scripts/c-check.sh   # also print the C and Rust round trips
set -euo pipefail
cd "$(dirname "$0")/.."

CBINDGEN_VERSION=0.29.4
OUT=target/c
mkdir -p "$OUT"

need() {
    command -v "$1" >/dev/null || {
        echo "installing $2 (for $1)"
        if command -v apt-get >/dev/null; then
            apt-get install -y "$2" >/dev/null
        else
            echo "no $1 and no apt-get to install $2" >&2
            return 1
        fi
    }
}
need cc gcc
need c++ g++
if [[ "$(cbindgen --version 2>/dev/null)" != "cbindgen $CBINDGEN_VERSION" ]]; then
    cargo install --locked --force cbindgen --version "$CBINDGEN_VERSION"
fi

echo "--- build libringbell_c, the Rust peers and the ringbell command"
cargo build --release -p ringbell-c --lib --examples
cargo build --release -p ringbell-cli

echo "--- header up to date"
cbindgen --quiet --config capi/cbindgen.toml --crate ringbell-c --output "$OUT/ringbell.h"
if ! diff -u capi/include/ringbell.h "$OUT/ringbell.h"; then
    echo "capi/include/ringbell.h is stale: regenerate it with"
    echo "  cbindgen --config capi/cbindgen.toml --crate ringbell-c --output capi/include/ringbell.h"
    exit 1
fi

echo "--- compile the C and C++ examples"
LIB=target/release
CFLAGS=(-std=c11 -O2 -Wall -Wextra -Werror -pedantic -Icapi/include)
STATIC=("$LIB/libringbell_c.a" -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc)
# The client links the static library, the others the shared one: both must work.
cc "${CFLAGS[@]}" capi/examples/client.c "${STATIC[@]}" -o "$OUT/client"
cc "${CFLAGS[@]}" capi/examples/server.c -L"$LIB" -lringbell_c -Wl,-rpath,"$PWD/$LIB" -lpthread -o "$OUT/server"
cc "${CFLAGS[@]}" capi/examples/spsc.c -L"$LIB" -lringbell_c -Wl,-rpath,"$PWD/$LIB" -o "$OUT/spsc"
c++ -std=c++20 -O2 -Wall -Wextra -Werror -Icapi/include capi/examples/cpp_example.cpp \
    -L"$LIB" -lringbell_c -Wl,-rpath,"$PWD/$LIB" -lpthread -o "$OUT/cpp_example"
# The header alone compiles as C++ too.
echo '#include "ringbell.h"
int main(void) { return rb_error_name(RB_OK)[0] == 0; }' >"$OUT/header.cpp"
c++ -std=c++17 -Wall -Wextra -Werror -Icapi/include -fsyntax-only "$OUT/header.cpp"

DIR=$(mktemp -d /tmp/ringbell-c-check.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$DIR"
}
trap cleanup EXIT

# Starts a server in the background (bounded by its own SECONDS argument and by timeout)
# and waits until it prints "ready".
start() {
    local log=$1
    shift
    timeout -k 5 120 "$@" >"$log" 2>&1 </dev/null &
    PIDS+=($!)
    for _ in $(seq 1 500); do
        grep -q ready "$log" 2>/dev/null && return 0
        sleep 0.02
    done
    echo "server did not start:"
    cat "$log"
    return 1
}

echo "--- C client and C++ wrapper against the Rust server"
start "$DIR/rust-server.log" "$LIB/examples/rust_echo_server" "$DIR/rust.sock" 60
timeout -k 5 60 "$OUT/client" "$DIR/rust.sock"
timeout -k 5 60 "$OUT/cpp_example" --connect "$DIR/rust.sock"

echo "--- Rust client against the C server"
start "$DIR/c-server.log" "$OUT/server" "$DIR/c.sock" 60
timeout -k 5 60 "$LIB/examples/rust_client" "$DIR/c.sock"
timeout -k 5 60 "$OUT/client" "$DIR/c.sock"

echo "--- ringbell inspect against the live C server"
# One client stays connected (calling) while the command looks: the answer must list it
# and the command's own connection.
timeout -k 5 60 "$LIB/examples/rust_client" "$DIR/c.sock" --bench 50000000 >/dev/null 2>&1 &
HOLD=$!
PIDS+=("$HOLD")
listed=0
for _ in $(seq 1 100); do
    timeout -k 5 30 target/release/ringbell inspect "$DIR/c.sock" --json >"$DIR/stats.json"
    listed=$(grep -o '"slot":' "$DIR/stats.json" | wc -l)
    ((listed >= 2)) && break
    sleep 0.05
done
if ((listed < 2)); then
    echo "ringbell inspect did not list the connected client and itself:"
    cat "$DIR/stats.json"
    exit 1
fi
timeout -k 5 30 target/release/ringbell inspect "$DIR/c.sock"
kill "$HOLD" 2>/dev/null || true

echo "--- SPSC ends between two C processes"
timeout -k 5 60 "$OUT/spsc"

echo "--- C++ server and client in one process"
timeout -k 5 60 "$OUT/cpp_example"

if [[ -n "${C_BENCH:-}" ]]; then
    echo "--- round trip, 64-byte echo, the Rust server: C client, then Rust client"
    for _ in 1 2 3; do
        timeout -k 5 120 "$OUT/client" "$DIR/rust.sock" --bench "$C_BENCH"
        timeout -k 5 120 "$LIB/examples/rust_client" "$DIR/rust.sock" --bench "$C_BENCH"
    done
fi
echo "C ABI checks passed"
