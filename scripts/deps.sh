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

if [ -z "$missing" ]; then
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
