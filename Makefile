# otpprobe — build and test. `make test` is what CI runs (.ci/run).
GO ?= go
BIN := bin/otpprobe
# What `otpprobe --version` and otpprobe_build_info report.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo "(devel)")
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null)
BUILD_TIME ?= $(shell git log -1 --format=%cI 2>/dev/null)
LDFLAGS := -X main.version=$(VERSION) -X main.revision=$(REVISION) -X main.buildTime=$(BUILD_TIME)

.PHONY: build test lint lab bench fuzz clean screenshots

build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/otpprobe

# Everything: formatting, vet, real Dovecot/Postfix/OpenDKIM/rspamd for the interop tests
# (installed from Debian when missing and run as root), then every Go test
# under the race detector.
test:
	scripts/test.sh

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...

# The demo: a whole mail world on loopback and the prober pointed at it.
lab: build
	$(BIN) lab

# The README's screenshots: the browser test against a running lab writes
# them to docs/ (needs Debian's chromium: scripts/testservers.sh install).
screenshots:
	mkdir -p docs
	OTPPROBE_SCREENSHOTS=$(CURDIR)/docs $(GO) test -count=1 -run '^TestDashboardInBrowser$$' ./cmd/otpprobe/

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# Every fuzz target in turn, FUZZTIME each (go test fuzzes one at a time).
FUZZTIME ?= 10s
fuzz:
	@set -e; for f in $$(git grep -l '^func Fuzz' -- '*_test.go'); do \
	  for t in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$f); do \
	    echo "== ./$$(dirname $$f) $$t"; \
	    $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) ./$$(dirname $$f); \
	  done; \
	done

clean:
	rm -rf bin data
