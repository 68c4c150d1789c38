# chatd: the two commands of the README are `make run` and `make test`.
GO ?= go

.PHONY: run build test testdeps test-short bench lint

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

lint:
	$(GO) run github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.15.0 run
