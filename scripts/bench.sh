#!/bin/sh
# scripts/bench.sh — make a release build of weft and run the scheduler
# benchmarks: scripts/bench.sh [--runs N] [--quick]  (arguments go to
# bench/sched.lua). Runs scripts/deps.sh first when it exists (skip with
# WEFT_SKIP_DEPS=1). WEFT_BENCH_BUILD=<dir> builds elsewhere than build/.
# Build output goes to stderr, so stdout holds only the figures.
set -eu

cd "$(dirname "$0")/.."
build=${WEFT_BENCH_BUILD:-build}

if [ -f scripts/deps.sh ] && [ "${WEFT_SKIP_DEPS:-0}" != 1 ]; then
  bash scripts/deps.sh >&2
fi

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >&2
cmake --build "$build" -j2 >&2

exec "$build/weft" exec bench/sched.lua "$@"
