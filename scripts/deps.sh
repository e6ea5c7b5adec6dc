#!/usr/bin/env bash
# scripts/deps.sh — install the Debian packages weft needs to build, test and
# run its demo. Only the missing ones are installed (checked with dpkg-query),
# so a second run does nothing. Needs root (or sudo) when something is missing.
set -eu

PKGS="luajit libluajit-5.1-dev lua-cjson libev-dev libcurl4-openssl-dev
libhiredis-dev libsqlite3-dev libmicrohttpd-dev lua-busted lua-check luarocks
redis-server bubblewrap cmake pkg-config gcc make libgraphviz-dev chromium"

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

# npm packages of the browser tests (spec/browser/package-lock.json:
# puppeteer-core, which drives the chromium above): `npm ci` when
# spec/browser/node_modules lacks the pinned version; nothing is fetched
# when it is there (offline-safe). A failure is a warning: only
# spec/integration/dashboard_spec.lua needs them, and it says so.
npm_deps() {
  local dir want have
  dir="$(cd "$(dirname "$0")/.." && pwd)/spec/browser"
  [ -f "$dir/package-lock.json" ] || return 0
  want=$(sed -n 's/.*"puppeteer-core": *"\([^"]*\)".*/\1/p' "$dir/package.json" | head -n 1)
  have=$(sed -n 's/^  "version": *"\([^"]*\)".*/\1/p' "$dir/node_modules/puppeteer-core/package.json" 2>/dev/null | head -n 1)
  if [ -n "$want" ] && [ "$want" = "$have" ]; then return 0; fi
  if ! command -v npm >/dev/null 2>&1; then
    echo "deps: no npm: the browser tests' packages (spec/browser) are not installed" >&2
    return 0
  fi
  echo "deps: npm ci in spec/browser (puppeteer-core $want)"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) ||
    echo "deps: npm ci in spec/browser failed: the browser spec will fail naming it" >&2
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
