# chargemq build and test entry points. `make test` is what CI runs (.ci/run).

GO       ?= go
BIN      := bin/chargemq
PKG      := ./cmd/chargemq
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
# Fuzz targets as package:FuzzName, e.g. ./ocpp:FuzzParseFrame.
FUZZ_TARGETS ?= ./ocpp:FuzzParseFrame ./ocpp:FuzzParseFrameMatchesReference ./schemas:FuzzCompiledMatchesReference ./schemas:FuzzURIMatchesNetURL ./broker:FuzzDecodeCommand ./broker:FuzzDecodeCommandMatchesReference ./broker:FuzzEncode \
	./broker/topic:FuzzRender ./broker/topic:FuzzEscape ./broker/topic:FuzzParse
FUZZTIME ?= 30s
# FUZZTIME_SHORT is how long `make test` fuzzes each target (fuzz-short).
FUZZTIME_SHORT ?= 3s

.PHONY: all run build test vet fmt-check lint interop interop-deps page-deps cross bench fuzz fuzz-short clean

all: build

## build: compile bin/chargemq with the version and commit from git.
build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) $(PKG)

## run: build, then start the broker with the default configuration.
run: build
	./$(BIN) serve

vet:
	$(GO) vet ./...

## fmt-check: fail, listing the files, when gofmt would change anything.
fmt-check:
	@files="$$(find . -name '*.go' -not -path './.git/*' -not -path '*/node_modules/*' -not -path '*/testdata/*' -print0 | xargs -0 -r gofmt -l)"; \
	if [ -n "$$files" ]; then echo "gofmt needed on:"; echo "$$files"; exit 1; fi

## lint: go vet and gofmt (no third-party linters needed to pass).
lint: vet fmt-check

## test: everything CI checks. The interop suite's node packages are installed
## first: the schema oracle test reads the official OCPP schemas that npm
## ocpp-rpc bundles, and must not skip.
test: vet fmt-check interop-deps
	CHARGEMQ_REQUIRE_ORACLE=1 $(GO) test -race ./...
	$(MAKE) fuzz-short
	$(MAKE) interop

## interop-deps: install the interop suite's pinned node packages.
interop-deps:
	@if ! command -v openssl >/dev/null; then \
		echo "interop-deps: installing openssl (the TLS test makes its certificates with it)"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends openssl; \
	fi
	cd test/interop && npm ci --no-audit --no-fund

## page-deps: install Debian's chromium for the Clients page test (tests/12-page.test.js)
## when /usr/bin/chromium is missing; playwright-core drives it, never downloads a browser.
page-deps:
	@if [ ! -x /usr/bin/chromium ]; then \
		echo "page-deps: installing chromium"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium; \
	fi

## interop: drive the built binary with ocpp-rpc and mqtt.js (test/interop).
interop: build interop-deps page-deps
	cd test/interop && CHARGEMQ_BIN=$(abspath $(BIN)) npm test

## cross: static builds for linux amd64/arm64/armv7 in dist/, each arm one run under qemu.
cross:
	@mkdir -p dist
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/chargemq-linux-amd64 $(PKG)
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/chargemq-linux-arm64 $(PKG)
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=7 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/chargemq-linux-armv7 $(PKG)
	@if ! command -v qemu-aarch64-static >/dev/null || ! command -v qemu-arm-static >/dev/null; then \
		echo "cross: installing qemu-user-static"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y qemu-user-static; \
	fi
	qemu-aarch64-static dist/chargemq-linux-arm64 version
	qemu-arm-static dist/chargemq-linux-armv7 version

# MOSQUITTO is the outside reference broker of `make bench` (Debian package mosquitto).
MOSQUITTO ?= /usr/sbin/mosquitto
# BENCH_FLAGS are passed on to the suite, e.g. BENCH_FLAGS='-memory-counts 1000 -upstream-repeats 1'
# (`go run ./internal/benchsuite bench -h` lists them).
BENCH_FLAGS ?=
# SOAK_DURATION is how long `make soak` holds its charge points once all are connected.
SOAK_DURATION ?= 10m

.PHONY: bench-deps bench-go soak

## bench: the benchmark suite (internal/benchsuite): bin/chargemq as its own process, measured
## against plain MQTT through the same binary and Mosquitto, rewriting the generated section of
## docs/BENCHMARKS.md (6-8 minutes here). The microbenchmarks are part of it; bench-go runs them alone.
bench: build bench-deps
	$(GO) run ./internal/benchsuite bench -bin $(BIN) -mosquitto $(MOSQUITTO) -go $(GO) -write docs/BENCHMARKS.md $(BENCH_FLAGS)

## bench-deps: install Mosquitto for bench when it is missing (without it, its row says so).
bench-deps:
	@if [ ! -x $(MOSQUITTO) ]; then \
		echo "bench: installing mosquitto"; \
		(apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y mosquitto) || \
			echo "bench: could not install mosquitto; the reference run will be skipped"; \
	fi

## bench-go: the Go microbenchmarks alone, no tests.
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem ./...

## soak: 10,000 charge points heartbeating, with commands, for SOAK_DURATION (default 10m):
## fails when RSS, goroutines or descriptors grow, a charge point is dropped, or goroutines
## do not return to the baseline; rewrites the soak section of docs/BENCHMARKS.md.
soak: build
	$(GO) run ./internal/benchsuite soak -bin $(BIN) -duration $(SOAK_DURATION) -write docs/BENCHMARKS.md

## fuzz-short: run each target in FUZZ_TARGETS for FUZZTIME_SHORT (part of test).
fuzz-short:
	$(MAKE) fuzz FUZZTIME=$(FUZZTIME_SHORT)

## fuzz: run each target in FUZZ_TARGETS for FUZZTIME. A crasher is written
## to <pkg>/testdata/fuzz/<FuzzName>/ and replayed by every go test after.
fuzz:
	@if [ -z "$(strip $(FUZZ_TARGETS))" ]; then echo "fuzz: no targets in FUZZ_TARGETS"; fi
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz: $$name in $$pkg"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg; \
	done

clean:
	rm -rf bin dist
