#!/usr/bin/env bash
# Installs what the test suite needs beyond Go, on a Debian/Ubuntu machine:
# redis-server (tests start their own on free ports), Chromium (browser
# tests) and the FerretDB-based MongoDB-wire test server (built from
# internal/testserver/ferretdbserver, its own Go module).
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then sudo=""; elif command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "testdeps: please install: ${missing[*]} (apt-get install -y ${missing[*]})" >&2
    exit 1
  fi
  echo "testdeps: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The MongoDB-wire test server: the test helpers build it on demand too;
# building it here keeps its one-minute cold build out of the test timeout.
cache="${XDG_CACHE_HOME:-$HOME/.cache}/chatd-test"  # the same place internal/testserver looks
mkdir -p "$cache"
(cd internal/testserver/ferretdbserver && go build -buildvcs=false -o "$cache/ferretdbserver" .)
echo "testdeps: ok (redis-server: $(command -v redis-server), chromium: $(command -v chromium), ferretdbserver: $cache/ferretdbserver)"
