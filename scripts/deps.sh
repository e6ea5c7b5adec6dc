#!/usr/bin/env bash
# scripts/deps.sh — install the Debian packages weft needs to build, test and
# run its demo. Only the missing ones are installed (checked with dpkg-query),
# so a second run does nothing. Needs root (or sudo) when something is missing.
set -eu

PKGS="luajit2 libluajit2-5.1-dev lua-cjson libev-dev libcurl4-openssl-dev
libhiredis-dev libsqlite3-dev libmicrohttpd-dev lua-busted lua-check luarocks
redis-server bubblewrap cmake pkg-config gcc make libgraphviz-dev chromium
firefox-esr
neovim nginx libnginx-mod-http-lua"
# neovim, nginx and its Lua module (with lua-resty-core): the real Lua hosts
# weft is embedded in by spec/integration/nvim_spec.lua and nginx_spec.lua

missing=""
for p in $PKGS; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  if [ "$status" != "install ok installed" ]; then
    missing="$missing $p"
  fi
done

# node and npm (the peer bench, bench/peers; npm packages run by node in
# tests): Debian's, unless a node and an npm are on PATH already (another
# distribution of them, e.g. NodeSource's, would conflict with Debian's npm)
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  missing="$missing nodejs npm"
fi

# npm packages of the tests: spec/browser (puppeteer-core, which drives the
# chromium above) and spec/interop/<protocol> (the official implementations
# of the protocols weft speaks), each pinned by its package-lock.json.
# `npm ci` runs in a directory only when its lock file changed since the
# last install (a stamp in node_modules holds the lock's sha256): nothing is
# fetched when they are there (offline-safe). A failure is a warning: only
# the specs using that directory need it, and they say so.
npm_deps() {
  local root dir lock sum
  root="$(cd "$(dirname "$0")/.." && pwd)"
  for lock in "$root"/spec/browser/package-lock.json "$root"/spec/interop/*/package-lock.json; do
    [ -f "$lock" ] || continue
    dir=$(dirname "$lock")
    sum=$(sha256sum "$lock" | cut -d' ' -f1)
    if [ "$(cat "$dir/node_modules/.weft-lock-sha256" 2>/dev/null)" = "$sum" ]; then continue; fi
    if ! command -v npm >/dev/null 2>&1; then
      echo "deps: no npm: the test packages of ${dir#"$root"/} are not installed" >&2
      continue
    fi
    echo "deps: npm ci in ${dir#"$root"/}"
    if (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error); then
      echo "$sum" > "$dir/node_modules/.weft-lock-sha256"
    else
      echo "deps: npm ci in ${dir#"$root"/} failed: the specs using it will fail naming it" >&2
    fi
  done
}

if [ -z "$missing" ]; then
  npm_deps
  exit 0
fi

echo "deps: installing:$missing"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo="sudo"
  else
    echo "deps: missing packages and not root (no sudo): run as root:" >&2
    echo "  apt-get install$missing" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# shellcheck disable=SC2086 # word splitting of the package list is intended
$sudo apt-get install -y -qq -o Dpkg::Options::=--force-confdef \
  -o Dpkg::Options::=--force-confold $missing
npm_deps
