#!/usr/bin/env bash
# make perf-split: the split deployment measured by one command (issue 13,
# points 4-6). It builds bin/chatd and the MongoDB-wire test server, starts
# as real processes on loopback: redis-server on a free port, ferretdbserver
# (FerretDB on the PostgreSQL backend, in a PostgreSQL database of its own
# that it drops when it stops), an auth node, two chat replicas and a gateway,
# with chatd bench's limits lifted, and runs chatd bench against the gateway:
#
#   1. the comparison at PERF_RATE msg/s (default 2000), PERF_PAIRS pairs,
#      PERF_DURATION each after PERF_WARMUP (10s) at the same rate that is
#      not counted, one run per deployment, fresh users each:
#        all      chatd serve --role=all: SQLite, in-process broker, no gateway
#        all-redis the same on redis-server's broker: the Redis hop without a gateway
#        gw-mem   gateway -> one --role=auth,chat node, SQLite, in-process broker
#        gw-redis gateway -> one --role=auth,chat node, SQLite, Redis broker
#        split    gateway -> auth + chat1 + chat2, mongo store (FerretDB), Redis
#      gw-mem minus all is the gateway's hop, gw-redis minus gw-mem the Redis
#      hop alone (the same processes and store; chat delivers through the
#      broker even to its own sockets), both on a store that keeps up at
#      this rate; split is the deployment itself, every pair across nodes
#      (the gateway's least-connections alternates a pair's two sockets),
#      whose store is the FerretDB test server;
#   2. the curve on split: PERF_SPLIT_CURVE (200:4000:200) until delivery
#      p99 passes PERF_P99_MAX (50ms), as make perf-curve does for --role=all,
#      after PERF_WARMUP at the first rate;
#   3. the reconnect storm on split: PERF_STORM clients (5000) x PERF_MISSED
#      (10) through the gateway, and whether the gateway took a replica out
#      of rotation meanwhile (its "upstream unhealthy" log lines and
#      chatd_gateway_upstream_ejections_total);
#   3b. (storm-node) the same storm through the gateway onto one
#      --role=auth,chat node on SQLite and the Redis broker: the gateway's
#      and the broker's part of a storm, on a store that keeps up;
#   4. bench --idle PERF_IDLE (2000) through the gateway, memory read from
#      the gateway's own /metrics after its GC (its --pprof-addr; the
#      gateway is restarted with it for this phase only, since pprof turns
#      on mutex and block profiling).
#
# Every process's CPU seconds (from /proc, FerretDB's PostgreSQL backends
# included) are recorded per phase. Writes docs/perf/split.json and
# docs/perf/split.md; the processes' logs stay in docs/perf/split-logs/.
# Everything started is stopped and every temporary directory removed on
# exit, also on failure and Ctrl-C. The machine's load average is recorded:
# figures taken beside other work compare within the run only.
#
# Limits: one process may hold 20,000 open files here (ulimit -n). A storm
# client through the gateway is two sockets at the gateway (the client's
# and the replica's) plus, while its GETs run, an HTTP connection each
# side: 5,000 clients take the gateway to about 20,000 at the peak.
# PERF_STORM=4000 stays clear of it.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

rate=${PERF_RATE:-2000}
pairs=${PERF_PAIRS:-100}
duration=${PERF_DURATION:-20s}
warmup=${PERF_WARMUP:-10s} # bench --warmup: each conversation's first sends (cold caches, all at once) uncounted
curve=${PERF_SPLIT_CURVE:-200:4000:200}
p99max=${PERF_P99_MAX:-50ms}
storm=${PERF_STORM:-5000}
missed=${PERF_MISSED:-10}
fanout=${PERF_STORM_FANOUT:-10}   # see "Storm fan-out" in docs/performance.md
idle=${PERF_IDLE:-2000}
pg_conns=${PERF_PG_MAX_CONNS:-16}   # FerretDB's pool (the PostgreSQL server is shared with the tests: max_connections 100)
phases=${PERF_PHASES:-compare,curve,idle,storm-node,storm}
pg_url=${CHATD_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
out=docs/perf
cache="${XDG_CACHE_HOME:-$HOME/.cache}/chatd-test"

# The limits chatd bench --serve lifts (bench/server.go benchServerEnv;
# bench's TestPerfSplitLiftsBenchLimits checks that every one is here), a
# cheap password hash (sign-ups are not measured) and the gateway's login limit.
bench_env=(
  CHATD_AUTH_SIGNUP_LIMIT=0
  CHATD_AUTH_LOGIN_RATE_LIMIT=0
  CHATD_CHAT_SEND_RATE=1e6
  CHATD_CHAT_SEND_BURST=1000000
  CHATD_CHAT_MAX_SOCKETS_PER_USER=1000000
  CHATD_CHAT_MAX_SOCKETS_PER_ADDR=1000000
  CHATD_HTTP_MAX_CONNS=0
  CHATD_HTTP_MAX_CONNS_PER_ADDR=0
  CHATD_AUTH_ARGON2_MEMORY_KIB=1024
  CHATD_AUTH_ARGON2_TIME=1
  CHATD_GATEWAY_LOGIN_RATE_LIMIT=0
  CHATD_LOG_LEVEL=info
)

log() { printf '%s perf-split: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/chatd-perf-split.XXXXXX")
procs=()   # "name pid" of every process started, stopped in reverse order
failed=()  # phases whose bench command failed
cleanup() {
  local rc=$? i name pid
  trap - EXIT INT TERM
  for ((i = ${#procs[@]} - 1; i >= 0; i--)); do
    name=${procs[i]%% *} pid=${procs[i]##* }
    stop_pid "$name" "$pid"
  done
  exec 9>&- 2>/dev/null || true
  if [ -n "${logs_kept:-}" ]; then
    mkdir -p "$out/split-logs" && cp "$tmp"/*.log "$out/split-logs/" 2>/dev/null || true
  fi
  rm -rf "$tmp"
  [ "$rc" -eq 0 ] || log "failed (exit $rc); logs in $out/split-logs/"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
logs_kept=1

# stop_pid ends a process we started: SIGTERM, SIGKILL after 20 s.
stop_pid() {
  local name=$1 pid=$2 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 200; i++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  log "$name (pid $pid) still running after 20 s: SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
}

# forget drops name from procs once it was stopped by hand.
forget() {
  local keep=() p
  for p in "${procs[@]}"; do [ "${p%% *}" = "$1" ] || keep+=("$p"); done
  procs=("${keep[@]}")
}

stop() {
  local p
  for p in "${procs[@]}"; do
    if [ "${p%% *}" = "$1" ]; then stop_pid "$1" "${p##* }"; fi
  done
  forget "$1"
}

pid_of() {
  local p
  for p in "${procs[@]}"; do [ "${p%% *}" = "$1" ] && { echo "${p##* }"; return; }; done
  return 1
}

# free_port prints a loopback port nothing listens on, below the ephemeral
# range (32768-60999 here), where outgoing connections take their ports.
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 12000))
    if ! (exec 8<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
}

# wait_ready NAME: waits until chatd NAME logged "chatd ready" (it listens
# on ports the kernel chose: no race for a free port) and answers /readyz,
# then sets url_NAME and ops_NAME from that line.
wait_ready() {
  local name=$1 pid line i
  pid=$(pid_of "$name")
  for ((i = 0; i < 600; i++)); do
    line=$(grep -m1 'msg="chatd ready"' "$tmp/$name.log" || true)
    [ -n "$line" ] && break
    kill -0 "$pid" 2>/dev/null || { log "$name exited:"; tail -5 "$tmp/$name.log" >&2; return 1; }
    sleep 0.1
  done
  [ -n "$line" ] || { log "$name: not ready after 60 s"; return 1; }
  printf -v "url_$name" '%s' "http://$(sed 's/.* addr=\([^ ]*\).*/\1/' <<<"$line")"
  printf -v "ops_$name" '%s' "http://$(sed 's/.*ops_addr=\([^ ]*\).*/\1/' <<<"$line")"
  local url="url_$name"
  for ((i = 0; i < 600; i++)); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' "${!url}/readyz")" = 200 ]; then return 0; fi
    sleep 0.1
  done
  log "$name: ${!url}/readyz not 200 after 60 s"
  return 1
}

# start_chatd NAME ROLES ENV...: a chatd serve in a directory of its own
# (so no config.yaml is read), its log in $tmp/NAME.log, listening on ports
# the kernel chooses; then waits for it (wait_ready). With PPROF=1 it also
# serves pprof and sets pprof_NAME.
start_chatd() {
  local name=$1 roles=$2 extra=()
  shift 2
  if [ "${PPROF:-}" = 1 ]; then
    local pp; pp=$(free_port)
    extra=(--pprof-addr="127.0.0.1:$pp")
    printf -v "pprof_$name" '%s' "http://127.0.0.1:$pp"
  fi
  rm -rf "${tmp:?}/$name" && mkdir -p "$tmp/$name" # a fresh data directory
  local k=1
  while [ -e "$tmp/$name.log" ] && [ -e "$tmp/$name.$k.log" ]; do k=$((k + 1)); done
  [ -e "$tmp/$name.log" ] && mv "$tmp/$name.log" "$tmp/$name.$k.log" # an earlier run of NAME
  (cd "$tmp/$name" && exec env "${bench_env[@]}" "$@" \
    CHATD_HTTP_ADDR=127.0.0.1:0 CHATD_HTTP_OPS_ADDR=127.0.0.1:0 CHATD_DATA_DIR="$tmp/$name" \
    "$chatd_bin" serve --role="$roles" --node-id="$name" "${extra[@]}") >"$tmp/$name.log" 2>&1 9>&- &
  procs+=("$name $!")
  wait_ready "$name"
}

# cpu_snap prints "name pid cpu_seconds" for every process started and for
# the PostgreSQL backends of FerretDB's database.
clk=$(getconf CLK_TCK)
cpu_of() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk -v hz="$clk" '{ printf "%.2f\n", ($12 + $13) / hz }'; }
cpu_snap() {
  local p c
  for p in "${procs[@]}"; do
    if c=$(cpu_of "${p##* }") && [ -n "$c" ]; then echo "${p%% *} ${p##* } $c"; fi
  done
  if [ -n "${ferret_pid:-}" ]; then
    for p in $(psql "$pg_url" -Atqc "SELECT pid FROM pg_stat_activity WHERE datname LIKE 'chatd_ferretdb_${ferret_pid}_%'" 2>/dev/null); do
      if c=$(cpu_of "$p") && [ -n "$c" ]; then echo "postgres $p $c"; fi
    done
  fi
  return 0
}
# cpu_delta BEFORE AFTER prints a JSON object: CPU seconds per process name
# between the two snapshots (a process absent before counts from 0).
cpu_delta() {
  awk 'NR == FNR { before[$2] = $3; next } { d[$1] += $3 - before[$2] }
       END { printf "{"; sep = ""; for (n in d) { printf "%s\"%s\": %.2f", sep, n, d[n]; sep = ", " } print "}" }' "$1" "$2"
}

# --- build, infrastructure -------------------------------------------------
log "load average $(loadavg) at the start"
load_start=$(loadavg)
# PERF_CHATD: a chatd binary to measure instead of building bin/chatd (for
# comparing builds: the report's commit is then that file's name)
if [ -n "${PERF_CHATD:-}" ]; then
  chatd_bin=$(realpath "$PERF_CHATD") commit=$(basename "$PERF_CHATD")
else
  make -s build
  chatd_bin=$root/bin/chatd commit=$(git describe --always --dirty 2>/dev/null || echo unknown) # what bin/chatd was built from
fi
bench=$chatd_bin
mkdir -p "$cache" "$out"
ferret_bin=$cache/ferretdbserver
(cd internal/testserver/ferretdbserver && GOWORK=off go build -buildvcs=false -o "$ferret_bin" .)
command -v redis-server >/dev/null || { log "redis-server missing: run make testdeps"; exit 1; }
psql "$pg_url" -Atqc 'SELECT 1' >/dev/null || { log "PostgreSQL at $pg_url does not answer: run make testdeps"; exit 1; }

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
  >"$tmp/redis.log" 2>&1 9>&- &
procs+=("redis $!")
redis_url=redis://127.0.0.1:$redis_port/0

# FerretDB reads its standard input until EOF: the fifo stays open for
# writing in fd 9 of this script only, so FerretDB stops and drops its
# PostgreSQL database when this script ends, even by SIGKILL.
mkfifo "$tmp/ferret.in"
exec 9<>"$tmp/ferret.in"
# PERF_FERRET_SQL=1: FerretDB logs every SQL statement to split-logs/ferretdb.log
"$ferret_bin" -postgresql "$pg_url" -pg-max-conns "$pg_conns" ${PERF_FERRET_SQL:+-log-sql} <"$tmp/ferret.in" >"$tmp/ferret.out" 2>"$tmp/ferretdb.log" &
ferret_pid=$!
procs+=("ferretdb $ferret_pid")
for ((i = 0; i < 600; i++)); do grep -qs '^MONGODB_URI=' "$tmp/ferret.out" && break; sleep 0.1; done
mongo_uri=$(sed -n 's/^MONGODB_URI=//p' "$tmp/ferret.out")
[ -n "$mongo_uri" ] || { log "ferretdbserver gave no URI"; cat "$tmp/ferretdb.log" >&2; exit 1; }
for ((i = 0; i < 100; i++)); do (exec 8<>"/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null && break; sleep 0.1; done
kill -0 "$(pid_of redis)" 2>/dev/null || { log "redis-server exited:"; cat "$tmp/redis.log" >&2; exit 1; }
log "redis $redis_url, FerretDB $mongo_uri (PostgreSQL $pg_url, pool $pg_conns)"

# --- deployments -----------------------------------------------------------
# cluster KIND DB: KIND is single-mem or single-redis (one auth,chat node
# on SQLite) or split (auth + chat1 + chat2 on the mongo database DB).
# Sets auth_url, chat_urls and chat_nodes.
cluster() {
  local kind=$1 db=${2:-}
  local store=(CHATD_STORE_BACKEND=mongo CHATD_STORE_MONGO_URI="$mongo_uri" CHATD_STORE_MONGO_DATABASE="$db")
  local redis=(CHATD_PUBSUB_BACKEND=redis CHATD_PUBSUB_REDIS_URL="$redis_url")
  local key=CHATD_AUTH_KEY_FILE=$tmp/$db-signing.key
  case $kind in
  single-mem | single-redis)
    local broker=(CHATD_PUBSUB_BACKEND=memory)
    [ "$kind" = single-redis ] && broker=("${redis[@]}")
    start_chatd node auth,chat "${broker[@]}"
    auth_url=$url_node chat_urls=$url_node chat_nodes=(node)
    ;;
  split)
    start_chatd auth auth "${store[@]}" "${redis[@]}" "$key"
    for n in chat1 chat2; do
      start_chatd "$n" chat "${store[@]}" "${redis[@]}" CHATD_KEYS_JWKS_URL="$url_auth/auth/jwks"
    done
    auth_url=$url_auth chat_urls=$url_chat1,$url_chat2 chat_nodes=(auth chat1 chat2)
    ;;
  esac
  start_gateway
}
start_gateway() {
  start_chatd gateway gateway CHATD_KEYS_JWKS_URL="$auth_url/auth/jwks" \
    CHATD_GATEWAY_AUTH_UPSTREAMS="$auth_url" CHATD_GATEWAY_CHAT_UPSTREAMS="$chat_urls"
}
stop_cluster() {
  local n
  stop gateway
  for n in "${chat_nodes[@]}"; do stop "$n"; done
}
# pids_of NAME...: their pids as a comma list, for bench --server-pid.
pids_of() {
  local n ids=()
  for n in "$@"; do ids+=("$(pid_of "$n")"); done
  (IFS=,; echo "${ids[*]}")
}

# measured NAME CMD...: runs a bench command with the CPU of every process
# recorded around it into $tmp/NAME.cpu.json and its output into $tmp/NAME.txt.
measured() {
  local name=$1 pid
  shift
  cpu_snap >"$tmp/$name.before"
  log "$name: $*"
  # In the background, so that Ctrl-C or SIGTERM runs the trap at once
  # (bash runs traps only between foreground commands, wait included).
  "$@" 9>&- > >(tee "$tmp/$name.txt") &
  pid=$!
  procs+=("bench-$name $pid")
  local rc=0
  wait "$pid" || rc=$?
  forget "bench-$name"
  if [ "$rc" -ne 0 ]; then
    # A phase that fails (the store gave up under the load, say) is
    # reported as such; the other phases still run.
    log "$name: bench exited with status $rc"
    failed+=("$name")
  fi
  sleep 0.5 # tee's last lines
  cpu_snap >"$tmp/$name.after"
  cpu_delta "$tmp/$name.before" "$tmp/$name.after" >"$tmp/$name.cpu.json"
}

common=(--pairs "$pairs" --duration "$duration" --warmup "$warmup")
has() { [[ ",$phases," == *",$1,"* ]]; }

if has compare; then
  # all-in-one: chatd serve --role=all, SQLite in its data directory, the
  # in-process broker, no gateway (what make perf-curve measures).
  start_chatd all all
  measured all "$bench" bench --url "$url_all" "${common[@]}" --rate "$rate" --server-pid "$(pids_of all)" --json "$tmp/all.json"
  stop all
  start_chatd allredis all CHATD_PUBSUB_BACKEND=redis CHATD_PUBSUB_REDIS_URL="$redis_url"
  measured all-redis "$bench" bench --url "$url_allredis" "${common[@]}" --rate "$rate" \
    --server-pid "$(pids_of allredis redis)" --json "$tmp/all-redis.json"
  stop allredis
  cluster single-mem
  measured gw-mem "$bench" bench --url "$url_gateway" "${common[@]}" --rate "$rate" \
    --server-pid "$(pids_of gateway node)" --json "$tmp/gw-mem.json"
  stop_cluster
  cluster single-redis
  measured gw-redis "$bench" bench --url "$url_gateway" "${common[@]}" --rate "$rate" \
    --server-pid "$(pids_of gateway node redis)" --json "$tmp/gw-redis.json"
  stop_cluster
fi

# Each split phase gets a fresh deployment on a fresh database: a phase
# that overloads the store (the FerretDB test server cannot take 2,000
# msg/s here) leaves queues behind that the next phase would measure.
# fresh_cluster KIND [DB]: stops the deployment running, if any, and starts
# cluster KIND DB; fresh_split numbers the split phases' databases.
up=0
fresh_cluster() {
  if [ "$up" = 1 ]; then stop_cluster; fi
  up=1
  cluster "$@"
}
split_n=0
fresh_split() {
  split_n=$((split_n + 1))
  fresh_cluster split "perf_split_$split_n"
}
if has curve; then
  fresh_split
  measured curve "$bench" bench --url "$url_gateway" "${common[@]}" --curve "$curve" --p99-max "$p99max" \
    --server-pid "$(pids_of gateway auth chat1 chat2 redis ferretdb)" --json "$tmp/curve.json"
fi
if has idle; then
  # The gateway with pprof: bench --idle runs its GC before it reads its
  # /metrics, so the figure is the gateway's memory per proxied socket.
  fresh_split
  stop gateway
  PPROF=1 start_gateway
  measured idle "$bench" bench --url "$url_gateway" --idle "$idle" \
    --metrics-url "$ops_gateway/metrics" --pprof-url "$pprof_gateway" --json "$tmp/idle.json"
  stop gateway
  start_gateway
fi
prof=() # storm_run's extra bench flags (the storm-node phase's profile)
# storm_run NAME PROCS...: the reconnect storm through the gateway into
# $tmp/NAME.*, and whether the gateway took an upstream out of rotation
# meanwhile (its "upstream unhealthy" lines, its ejections counter, and the
# nodes' own "not ready" lines).
storm_run() {
  local name=$1 n
  shift
  gw_log_from=$(wc -l <"$tmp/gateway.log")
  curl -s "$ops_gateway/metrics" >"$tmp/$name.metrics.before"
  measured "$name" "$bench" bench --url "$url_gateway" --storm "$storm" --missed "$missed" --storm-fanout "$fanout" "${prof[@]}" \
    --server-pid "$(pids_of "$@")" --json "$tmp/$name.json"
  curl -s "$ops_gateway/metrics" >"$tmp/$name.metrics.after"
  # bench's per-process CPU of the storm (in --server-pid's order), named
  jq -r '(.server_cpu_s_by_pid // []) as $c | [range(0; $c | length) | "\($ARGS.positional[.]) \($c[.] * 100 | round / 100) s (\($c[.] * 1e6 / $clients | round) µs per client)"] | join(", ")' \
    --argjson clients "$storm" --args "$@" <"$tmp/$name.json" >"$tmp/$name.cpu_by_process.txt"
  log "$name: server CPU during the storm by process: $(cat "$tmp/$name.cpu_by_process.txt")"
  ejections() { awk '/^chatd_gateway_upstream_ejections_total/ { s += $2 } END { print s + 0 }' "$1"; }
  unhealthy=$(tail -n +"$((gw_log_from + 1))" "$tmp/gateway.log" | grep -c 'upstream unhealthy' || true)
  not_ready=0
  for n in "${chat_nodes[@]}"; do
    not_ready=$((not_ready + $(grep -c 'msg="not ready"' "$tmp/$n.log" || true)))
  done
  jq -n --argjson u "$unhealthy" --argjson e "$(( $(ejections "$tmp/$name.metrics.after") - $(ejections "$tmp/$name.metrics.before") ))" \
    --argjson nr "$not_ready" --arg lines "$(tail -n +"$((gw_log_from + 1))" "$tmp/gateway.log" | grep 'upstream \(un\)\?healthy' || true)" \
    '{upstream_unhealthy: $u, ejections: $e, replica_not_ready_lines: $nr, gateway_health_log: $lines}' >"$tmp/$name.health.json"
  log "$name: gateway 'upstream unhealthy' $unhealthy, ejections $(jq .ejections "$tmp/$name.health.json"), nodes' 'not ready' $not_ready"
}
if has storm-node; then
  # The storm through the gateway onto one --role=auth,chat node on SQLite
  # and the Redis broker: the gateway's part of a storm, on a store that
  # keeps up (the split deployment's storm below is FerretDB's).
  if [ -n "${PERF_STORM_PROFILE:-}" ]; then
    # the CPU profile of the storm of PERF_STORM_PROFILE_OF (gateway or
    # node), which then serves pprof; that turns on mutex and block
    # profiling: for where the time goes, not for the figure
    PPROF=1 fresh_cluster single-redis
    pp="pprof_${PERF_STORM_PROFILE_OF:-gateway}"
    prof=(--storm-profile "$PERF_STORM_PROFILE" --pprof-url "${!pp}")
  else
    fresh_cluster single-redis
  fi
  storm_run storm-node gateway node redis
  prof=()
fi
if has storm; then
  fresh_split
  storm_run storm gateway auth chat1 chat2 redis ferretdb
fi
if has compare; then
  fresh_split
  measured split "$bench" bench --url "$url_gateway" "${common[@]}" --rate "$rate" \
    --server-pid "$(pids_of gateway auth chat1 chat2 redis ferretdb)" --json "$tmp/split.json"
fi
load_end=$(loadavg)
log "load average $load_end at the end"

# --- report ----------------------------------------------------------------
j() { [ -s "$tmp/$1" ] && cat "$tmp/$1" || echo null; }
jq -n --arg started "$(date -u -r "$tmp/ferret.out" +%FT%TZ)" --arg commit "$commit" \
  --arg load_start "$load_start" --arg load_end "$load_end" --argjson cpus "$(nproc)" \
  --arg rate "$rate" --arg pairs "$pairs" --arg duration "$duration" --arg warmup "$warmup" --arg storm "$storm" --arg idle "$idle" \
  --argjson all "$(j all.json)" --argjson all_redis "$(j all-redis.json)" --argjson gw_mem "$(j gw-mem.json)" --argjson gw_redis "$(j gw-redis.json)" \
  --argjson split "$(j split.json)" --argjson curve "$(j curve.json)" --argjson storm_r "$(j storm.json)" \
  --argjson idle_r "$(j idle.json)" --argjson health "$(j storm.health.json)" \
  --argjson cpu_all "$(j all.cpu.json)" --argjson cpu_all_redis "$(j all-redis.cpu.json)" --argjson cpu_gw_mem "$(j gw-mem.cpu.json)" --argjson cpu_gw_redis "$(j gw-redis.cpu.json)" \
  --argjson cpu_split "$(j split.cpu.json)" --argjson cpu_curve "$(j curve.cpu.json)" --argjson cpu_storm "$(j storm.cpu.json)" \
  --argjson storm_node "$(j storm-node.json)" --argjson health_node "$(j storm-node.health.json)" --argjson cpu_storm_node "$(j storm-node.cpu.json)" \
  --argjson failed "$(printf '%s\n' "${failed[@]}" | jq -R . | jq -sc 'map(select(. != ""))')" \
  '{started: $started, commit: $commit, failed_phases: $failed, cpus: $cpus, load_average_start: $load_start, load_average_end: $load_end,
    params: {rate: ($rate | tonumber), pairs: ($pairs | tonumber), duration: $duration, warmup: $warmup, storm: ($storm | tonumber), idle: ($idle | tonumber)},
    compare: {all: $all, "all-redis": $all_redis, "gw-mem": $gw_mem, "gw-redis": $gw_redis, split: $split},
    curve: $curve, storm: $storm_r, storm_health: $health, "storm-node": $storm_node, "storm-node_health": $health_node, idle: $idle_r,
    process_cpu_s: {all: $cpu_all, "all-redis": $cpu_all_redis, "gw-mem": $cpu_gw_mem, "gw-redis": $cpu_gw_redis, split: $cpu_split, curve: $cpu_curve, storm: $cpu_storm, "storm-node": $cpu_storm_node}}' \
  >"$out/split.json"

# storm_md NAME TITLE: the report's section of storm phase NAME, if it ran.
storm_md() {
  has "$1" && [ -s "$tmp/$1.json" ] || return 0
  echo "## $2"
  echo
  sed -n '/^storm:/,$p' "$tmp/$1.txt"
  echo
  echo "server CPU during the storm by process: $(cat "$tmp/$1.cpu_by_process.txt")"
  echo
  jq -r '"gateway during the storm: \(.upstream_unhealthy) upstream unhealthy, \(.ejections) ejections; the nodes logged not ready \(.replica_not_ready_lines) times (whole run)"' "$tmp/$1.health.json"
  echo
}
{
  echo "# make perf-split ($(jq -r .commit "$out/split.json"), $(jq -r .started "$out/split.json"), $(nproc) CPUs, load average $load_start at the start, $load_end at the end)"
  echo
  if has compare; then
    echo "## $rate msg/s, $pairs pairs, $duration each after a $warmup warm-up"
    echo
    echo "| deployment | pairs across nodes | delivered/s | ack p50 | ack p99 | delivery p50 | p99 | p99.9 | max | errors | CPU ms per 1,000 msgs (processes) |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|"
    for name in all all-redis gw-mem gw-redis split; do
      [ -s "$tmp/$name.json" ] || continue
      jq -r --arg name "$name" --argjson cpu "$(j "$name.cpu.json")" '.steps[0] as $s | ($s.delivered + (.warmup.delivered // 0)) as $msgs |
        ["gateway", "all", "allredis", "node", "auth", "chat1", "chat2", "redis", "ferretdb", "postgres"] as $order |
        ($cpu | with_entries(select(.value > 0))) as $c |
        ([$order[] as $k | select($c[$k] != null) | {key: $k, value: $c[$k]}] + [{key: "total", value: ([$c[]] | add)}] | from_entries) as $c |
        "| \($name) | \($s.cross_pairs)/\($s.pairs) | \($s.delivered_per_s | round) | \($s.ack.p50_ms) ms | \($s.ack.p99_ms) ms | \($s.delivery.p50_ms) ms | \($s.delivery.p99_ms) ms | \($s.delivery.p999_ms) ms | \($s.delivery.max_ms) ms | \($s.errors) | " +
        ([$c | to_entries[] | "\(.key) \((1e6 * .value / ($msgs | if . == 0 then 1 else . end)) | round)"] | join(", ")) + " |"' "$tmp/$name.json"
    done
    echo
    echo "all: chatd serve --role=all (SQLite, in-process broker), no gateway; all-redis: the same on Redis. gw-mem / gw-redis: gateway -> one --role=auth,chat node on"
    echo "SQLite, in-process / Redis broker. split: gateway -> auth + chat1 + chat2 on the mongo store (FerretDB on PostgreSQL), Redis."
    echo "CPU: each process's user+system CPU over the whole bench command (sign-up, connects and the warm-up included, and FerretDB's"
    echo "PostgreSQL backends as postgres), in ms per 1,000 messages delivered in the warm-up and the run."
    echo
  fi
  if has curve && [ -s "$tmp/curve.json" ]; then
    echo "## split: curve until delivery p99 > $p99max"
    echo
    sed -n '/^| rate asked/,/^$/p' "$tmp/curve.txt"
    grep '^highest rate' "$tmp/curve.txt" || true
    echo
    echo "server CPU and RSS: the sum over gateway, auth, chat1, chat2, redis-server and ferretdbserver (PostgreSQL not included)."
    echo
  fi
  storm_md storm "split: reconnect storm through the gateway"
  storm_md storm-node "gateway -> one auth,chat node (SQLite, Redis broker): reconnect storm through the gateway"
  if has idle && [ -s "$tmp/idle.json" ]; then
    echo "## split: the gateway's memory per idle proxied socket"
    echo
    sed -n '/^idle connections/,$p' "$tmp/idle.txt"
    echo
  fi
} >"$out/split.md"
if [ ${#failed[@]} -gt 0 ]; then echo; echo "failed phases (see their output above and docs/perf/split-logs/): ${failed[*]}"; fi >>"$out/split.md"
log "wrote $out/split.json and $out/split.md"
cat "$out/split.md"
[ ${#failed[@]} -eq 0 ] # the exit status says whether every phase ran
