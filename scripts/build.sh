#!/usr/bin/env bash
# scripts/build.sh [release|asan] [CMAKE_ARGS...] — configure (when needed)
# and build weft: release into build/, asan (AddressSanitizer + UBSan,
# -DWEFT_SANITIZE=ON) into build-asan/. Extra arguments go to cmake's
# configure step (and force it), e.g. -DWEFT_ASAN_DIR=$PWD/build-asan.
set -eu
cd "$(dirname "$0")/.."

mode=${1:-release}
[ $# -gt 0 ] && shift
case "$mode" in
  release) dir=build; flags="" ;;
  asan) dir=build-asan; flags="-DWEFT_SANITIZE=ON" ;;
  *) echo "usage: scripts/build.sh [release|asan] [CMAKE_ARGS...]" >&2; exit 2 ;;
esac

if [ ! -f "$dir/CMakeCache.txt" ] || [ $# -gt 0 ]; then
  # shellcheck disable=SC2086 # $flags is empty or one word
  cmake -S . -B "$dir" $flags "$@"
fi
cmake --build "$dir" -j2
