# chatd: the two commands of the README are `make run` and `make test`.
GO ?= go

.PHONY: run build test testdeps test-short bench perf-curve perf-split lint

run:
	$(GO) run . serve --role=all

# The version `chatd version` and chatd_build_info report.
VERSION ?= $(shell git describe --always --dirty 2>/dev/null)

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-X github.com/chatd/chatd/app.Version=$(VERSION)" -o bin/chatd .

# Installs redis-server and Chromium when missing and builds the MongoDB-wire
# test server, then runs every test with the race detector, then the Helm
# chart and Grafana dashboard checks (deploy/charttest, a module of its own
# so that chatd's go.mod does not carry Helm and the Kubernetes API).
test: testdeps
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...
	cd deploy/charttest && $(GO) vet ./... && $(GO) test -count=1 -timeout 10m ./...

testdeps:
	./scripts/testdeps.sh

# Unit tests only: no browser, no split deployment.
test-short:
	$(GO) test -short ./...

bench:
	$(GO) test -run '^$$' -bench . -benchtime 2s ./store/sqlitestore ./pubsub/mempubsub ./chat

# The README's performance table: `chatd bench` starts `chatd serve
# --role=all` itself on a temporary data dir (limits lifted) and steps the
# rate until delivery p99 passes PERF_P99_MAX, first pinned (server on CPU 0,
# picking GOMAXPROCS as a 1-vCPU machine would; bench on CPU 1), then
# unpinned (both share every core).
# Run it on a quiet machine: figures taken under other load mean nothing.
# Writes docs/perf/{pinned,unpinned}.{json,md}.
PERF_CURVE ?= 1000:30000:1000
PERF_P99_MAX ?= 50ms
PERF_DURATION ?= 20s
PERF_PAIRS ?= 100
PERF_FLAGS = --pairs $(PERF_PAIRS) --curve $(PERF_CURVE) --p99-max $(PERF_P99_MAX) --duration $(PERF_DURATION)
perf-curve: build
	@mkdir -p docs/perf
	@echo "## pinned: server taskset -c 0 (one CPU; GOMAXPROCS 1 + runtime.extra_procs), bench taskset -c 1"
	@bash -o pipefail -c 'bin/chatd bench --server-cpus 0 --client-cpus 1 $(PERF_FLAGS) --json docs/perf/pinned.json | tee docs/perf/pinned.md'
	@echo
	@echo "## unpinned: server and bench share every core"
	@bash -o pipefail -c 'bin/chatd bench --serve $(PERF_FLAGS) --json docs/perf/unpinned.json | tee docs/perf/unpinned.md'

# The split deployment (issue 13, points 4-6): redis-server, the FerretDB
# test server on PostgreSQL, auth, two chat replicas and a gateway as real
# processes on loopback, then chatd bench through the gateway: PERF_RATE
# msg/s against --role=all and against one replica with and without Redis,
# the curve, the reconnect storm (PERF_STORM x PERF_MISSED, and whether the
# gateway ejected a replica) and the gateway's memory per idle proxied
# socket (PERF_IDLE); PERF_SPLIT_CURVE, PERF_RATE, PERF_PHASES and the
# others of scripts/perf-split.sh come from the environment. Needs make
# testdeps (redis-server, PostgreSQL). Writes docs/perf/split.{json,md}.
# Not part of make test.
perf-split:
	PERF_P99_MAX=$(PERF_P99_MAX) PERF_DURATION=$(PERF_DURATION) PERF_PAIRS=$(PERF_PAIRS) ./scripts/perf-split.sh

lint:
	$(GO) run github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.15.0 run
