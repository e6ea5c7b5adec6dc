#!/bin/sh
# scripts/bench.sh — make a release build of weft and run the benchmarks:
#   scripts/bench.sh [sched|io|sse|agents|patterns|checkpoint|reload|server|peers|all] [--runs N] [--quick]
# (default all; the other arguments go to each bench/<name>.lua; peers, the
# side-by-side bench against PocketFlow, runs bench/peers/peers.lua, needs
# node and npm, and is not part of all). Runs
# scripts/deps.sh first when it exists (skip with WEFT_SKIP_DEPS=1).
# WEFT_BENCH_BUILD=<dir> builds elsewhere than build/. Build output goes to
# stderr, so stdout holds only the figures.
set -eu

cd "$(dirname "$0")/.."
build=${WEFT_BENCH_BUILD:-build}

if [ -f scripts/deps.sh ] && [ "${WEFT_SKIP_DEPS:-0}" != 1 ]; then
  bash scripts/deps.sh >&2
fi

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >&2
cmake --build "$build" -j2 >&2

which=all
case "${1:-}" in
  sched|io|sse|agents|patterns|checkpoint|server|reload|peers|all) which=$1; shift ;;
esac
if [ "$which" = peers ]; then
  for tool in node npm; do
    command -v "$tool" >/dev/null 2>&1 ||
      { echo "bench.sh peers: $tool not found (Debian: apt-get install nodejs npm)" >&2; exit 1; }
  done
  exec "$build/weft" exec bench/peers/peers.lua "$@"
elif [ "$which" = all ]; then
  for b in sched io sse agents patterns checkpoint server reload; do
    "$build/weft" exec "bench/$b.lua" "$@"
    echo
  done
else
  exec "$build/weft" exec "bench/$which.lua" "$@"
fi
