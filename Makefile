# llmproxy — build, run, test.
#
#   make run     build everything and serve the embedded default config
#   make test    unit, conformance and end-to-end tests (needs scripts/ci-deps.sh once)
#   make bench   gateway overhead benchmark (direct vs llmproxy vs bare proxy)
#   make fuzz    every fuzz target, FUZZTIME (default 30s) each

SHELL := /bin/bash
GO    ?= go
BIN   := bin
# A plugin directory is built once it has a go.mod.
PLUGIN_DIRS := $(patsubst %/go.mod,%,$(wildcard plugins/provider-*/go.mod plugins/storage-*/go.mod plugins/extractor-*/go.mod))
PLUGINS := $(patsubst plugins/%,$(BIN)/plugins/llmproxy-%,$(PLUGIN_DIRS))
MODULES := sdk host $(PLUGIN_DIRS) $(wildcard test)
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)

.PHONY: all build run test bench bench-rag fuzz lint fmt proto tidy clean FORCE

all: build

build: $(BIN)/llmproxy $(PLUGINS)

# Each binary is built inside its own module, as it would be released.
$(BIN)/llmproxy: FORCE
	@mkdir -p $(BIN)
	cd host && GOWORK=off $(GO) build -trimpath -ldflags "-X main.Version=$(VERSION)" -o $(CURDIR)/$@ ./cmd/llmproxy

$(BIN)/plugins/llmproxy-%: FORCE
	@mkdir -p $(BIN)/plugins
	cd plugins/$* && GOWORK=off $(GO) build -trimpath -o $(CURDIR)/$@ .

run: build
	./$(BIN)/llmproxy

# Every module is tested on its own (GOWORK=off) so that each can be
# released alone; test/ then drives the built binaries end to end. The
# storage emulators are started first (scripts/services.sh) and left
# running for the next run.
test: build
	@eval "$$(scripts/services.sh start)"; set -e; \
	for m in $(filter-out test,$(MODULES)); do \
	  echo "== go test $$m"; (cd $$m && GOWORK=off $(GO) test -count=1 ./...); done; \
	if [ -d test ]; then echo "== go test test (end to end)"; \
	  cd test && GOWORK=off LLMPROXY_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -timeout 20m ./...; fi

bench: build
	cd test && GOWORK=off LLMPROXY_BIN=$(CURDIR)/$(BIN) $(GO) run ./cmd/bench

bench-rag: build
	@eval "$$(scripts/services.sh start)"; cd test && GOWORK=off LLMPROXY_BIN=$(CURDIR)/$(BIN) $(GO) run ./cmd/ragbench

# Every fuzz target of every module, FUZZTIME (default 30s) each.
fuzz:
	./scripts/fuzz.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	@set -e; for m in $(MODULES); do (cd $$m && GOWORK=off $(GO) vet ./...); done
	@if cd host && GOWORK=off $(GO) list -deps ./... | grep -E '^(github.com/aws|github.com/Azure|cloud.google.com|google.golang.org/api|github.com/oracle|github.com/IBM)'; then \
	  echo "the host must not import a cloud SDK"; exit 1; fi
	@if cd host && GOWORK=off $(GO) list -deps ./... | grep -E '^(github.com/ledongthuc/pdf|golang.org/x/net/html)$$'; then \
	  echo "the host must not parse PDF or HTML: that is the extractor plugins' job"; exit 1; fi

fmt:
	gofmt -w $$(git ls-files '*.go' | grep -v '\.pb\.go$$')

proto:
	./scripts/protogen.sh

tidy:
	@set -e; for m in $(MODULES); do (cd $$m && GOWORK=off $(GO) mod tidy); done

clean:
	rm -rf $(BIN)
