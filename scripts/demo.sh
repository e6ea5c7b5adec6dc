#!/usr/bin/env bash
# scripts/demo.sh — install what is missing, build, and run the branching
# example with its events (readable lines on stderr, outputs as JSON on stdout).
set -eu
cd "$(dirname "$0")/.."

scripts/deps.sh
scripts/build.sh release
input="The quick brown fox jumps over the lazy dog"
echo "== build/weft run examples/branching.lua --input \"$input\" --events pretty"
exec build/weft run examples/branching.lua --input "$input" --events pretty
