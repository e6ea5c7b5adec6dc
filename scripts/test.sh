#!/usr/bin/env bash
# scripts/test.sh — install what is missing, build release (build/) and ASan
# (build-asan/), then run every test with ctest from build/: C unit tests,
# busted specs, the plain-luajit embedding test, and the ASan build's whole
# suite as the asan_suite test. Exits with ctest's status.
set -eu
cd "$(dirname "$0")/.."
root=$(pwd)

scripts/deps.sh
scripts/build.sh asan
scripts/build.sh release -DWEFT_ASAN_DIR="$root/build-asan"
ctest --test-dir build --output-on-failure
