#!/usr/bin/env bash
# Installs what the test suite needs beyond Go, on a Debian/Ubuntu machine:
# redis-server (tests start their own on free ports), Chromium (browser
# tests), the FerretDB-based MongoDB-wire test server (built from
# internal/testserver/ferretdbserver, its own Go module) and the Pebble ACME
# test server (internal/testserver/pebbleserver), and checks that the
# PostgreSQL it keeps its data on answers (starting the local cluster if not).
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

# PostgreSQL for the MongoDB-wire test server (FerretDB's PostgreSQL backend;
# each test server makes a database of its own there). Without it the tests
# fall back to FerretDB's SQLite backend, except under CI, where they fail.
pg_url="${CHATD_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
pg_ok() { psql "$pg_url" -Atqc 'SELECT 1' >/dev/null 2>&1; }
if ! pg_ok; then
  if [ -z "${CHATD_TEST_POSTGRES_URL:-}" ] && command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    for version in $(ls /etc/postgresql); do
      echo "testdeps: starting PostgreSQL $version"
      pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    done
    for _ in $(seq 30); do pg_ok && break; sleep 1; done
  fi
  if ! pg_ok; then
    echo "testdeps: PostgreSQL at $pg_url does not answer (need trust auth for its user, and CREATE DATABASE);" >&2
    if [ -n "${CI:-}" ]; then exit 1; fi
    echo "testdeps: the MongoDB-wire tests will use FerretDB's SQLite backend, which scans whole collections" >&2
  fi
fi

# The MongoDB-wire test server: the test helpers build it on demand too;
# building it here keeps its one-minute cold build out of the test timeout.
cache="${XDG_CACHE_HOME:-$HOME/.cache}/chatd-test"  # the same place internal/testserver looks
mkdir -p "$cache"
(cd internal/testserver/ferretdbserver && go build -buildvcs=false -o "$cache/ferretdbserver" .)
# Pebble, the ACME test server of the TLS tests (internal/testserver/pebbleserver,
# its own module too); the tests build it on demand as well.
(cd internal/testserver/pebbleserver && GOWORK=off go build -buildvcs=false -o "$cache/pebbleserver" .)
pg_state="PostgreSQL $pg_url"; pg_ok || pg_state="no PostgreSQL: SQLite backend"
echo "testdeps: ok (redis-server: $(command -v redis-server), chromium: $(command -v chromium), ferretdbserver: $cache/ferretdbserver on $pg_state, pebbleserver: $cache/pebbleserver)"
