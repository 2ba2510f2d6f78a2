# llmproxy — build, run, test.
#
#   make run     build everything and serve the embedded default config
#   make test    unit, conformance, end-to-end and documentation tests; installs
#                what they need first (scripts/install-deps.sh) when it is missing
#   make bench   gateway overhead benchmark (direct vs bare proxy vs two bare
#                proxies chained vs llmproxy with openai planned and served,
#                and every other provider), BENCHFLAGS=... (-baseline DIR:
#                another build in the same run)
#   make bench-streams  1,000 slow streams at once: peak RSS and first-chunk time
#                (BENCHFLAGS=-target=served: with the openai plugin on the path)
#   make soak DURATION=30m  llmproxy at half its peak throughput, RSS and
#                goroutines over time (BENCHFLAGS=-target=served: with
#                the openai plugin on the data path)
#   make loadtest  1,000 req/s for 60 s through llmproxy; fails above 0.1 % errors
#   make fuzz    every Go fuzz target for FUZZTIME (default 1m) each

SHELL := /bin/bash
GO    ?= go
BIN   := bin
# A plugin directory is built once it has a go.mod.
PLUGIN_DIRS := $(patsubst %/go.mod,%,$(wildcard plugins/provider-*/go.mod plugins/storage-*/go.mod plugins/extractor-*/go.mod plugins/secrets-*/go.mod plugins/middleware-*/go.mod))
PLUGINS := $(patsubst plugins/%,$(BIN)/plugins/llmproxy-%,$(PLUGIN_DIRS))
# A plugin directory with a package.json and no go.mod is a Node.js plugin
# (see plugins/provider-nodeecho): its sources, .proto files and npm
# dependencies are bundled into bin/plugins/node/<dir>, beside a small
# llmproxy-<dir> launcher script.
NODE_PLUGIN_DIRS := $(filter-out $(PLUGIN_DIRS),$(patsubst %/package.json,%,$(wildcard plugins/provider-*/package.json)))
NODE_PLUGINS := $(patsubst plugins/%,$(BIN)/plugins/llmproxy-%,$(NODE_PLUGIN_DIRS))
MODULES := sdk sdk/relay host $(PLUGIN_DIRS) $(wildcard deployments) $(wildcard test)
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)

.PHONY: all build run test deps bench bench-streams soak bench-rag loadtest fuzz lint fmt proto tidy clean FORCE

all: build

build: $(BIN)/llmproxy $(PLUGINS) $(NODE_PLUGINS)

# Each binary is built inside its own module, as it would be released.
$(BIN)/llmproxy: FORCE
	@mkdir -p $(BIN)
	cd host && GOWORK=off $(GO) build -trimpath -ldflags "-X main.Version=$(VERSION)" -o $(CURDIR)/$@ ./cmd/llmproxy

$(BIN)/plugins/llmproxy-%: FORCE
	@mkdir -p $(BIN)/plugins
	cd plugins/$* && GOWORK=off $(GO) build -trimpath -o $(CURDIR)/$@ .

$(NODE_PLUGINS): $(BIN)/plugins/llmproxy-%: FORCE
	@[ -d plugins/$*/node_modules ] || (cd plugins/$* && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)
	@rm -rf $(BIN)/plugins/node/$* && mkdir -p $(BIN)/plugins/node/$*/proto
	cp -R plugins/$*/main.js plugins/$*/lib plugins/$*/package.json plugins/$*/node_modules $(BIN)/plugins/node/$*/
	cp plugins/$*/proto/*.proto $(BIN)/plugins/node/$*/proto/
	cd sdk/proto && cp --parents $$(find llmproxy -name '*.proto') $(CURDIR)/$(BIN)/plugins/node/$*/proto/
	printf '#!/usr/bin/env node\n// Starts the $* plugin bundled in node/$*.\nrequire(require("path").join(__dirname, "node", "$*", "main.js"));\n' > $@.tmp
	chmod +x $@.tmp && mv $@.tmp $@

run: build
	./$(BIN)/llmproxy

# deps runs scripts/install-deps.sh (idempotent, but slow: apt, go
# install, npm ci) only when one of the tools the tests use is missing, so
# that `make test` on a fresh clone needs nothing else and costs nothing
# once everything is there.
GOBIN_DIR := $(shell $(GO) env GOPATH 2>/dev/null)/bin
deps:
	@missing=; \
	for c in protoc redis-server curl promtool chromium; do command -v $$c >/dev/null || missing="$$missing $$c"; done; \
	for c in protoc-gen-go protoc-gen-go-grpc; do [ -x "$(GOBIN_DIR)/$$c" ] || command -v $$c >/dev/null || missing="$$missing $$c"; done; \
	if [ -f test/node/package-lock.json ] && [ ! -d test/node/node_modules ]; then missing="$$missing test/node/node_modules"; fi; \
	for d in $(NODE_PLUGIN_DIRS); do [ -d $$d/node_modules ] || missing="$$missing $$d/node_modules"; done; \
	if [ -n "$$missing" ]; then echo "== missing:$$missing; running scripts/install-deps.sh"; scripts/install-deps.sh; fi

# Every module is tested on its own (GOWORK=off) so that each can be
# released alone; test/ then drives the built binaries end to end, and
# test/docs checks every config snippet and the quick start of the
# documentation. The storage emulators are started first
# (scripts/services.sh) and left running for the next run.
test: deps build
	@export PATH="$(GOBIN_DIR):$$PATH"; \
	eval "$$(scripts/services.sh start)"; set -e; \
	for m in $(filter-out test,$(MODULES)); do \
	  echo "== go test $$m"; (cd $$m && GOWORK=off $(GO) test -count=1 ./...); done; \
	for d in $(NODE_PLUGIN_DIRS); do echo "== npm test $$d"; (cd $$d && npm test --silent); done; \
	if [ -d test ]; then echo "== go test test (end to end)"; \
	  cd test && GOWORK=off LLMPROXY_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -timeout 20m ./...; fi

bench: build
	cd test && GOWORK=off LLMPROXY_BIN=$(CURDIR)/$(BIN) $(GO) run ./cmd/bench $(BENCHFLAGS)

bench-streams: build
	cd test && GOWORK=off LLMPROXY_BIN=$(CURDIR)/$(BIN) $(GO) run ./cmd/bench -mode streams -streams 1000 $(BENCHFLAGS)

DURATION ?= 30m
soak: build
	cd test && GOWORK=off LLMPROXY_BIN=$(CURDIR)/$(BIN) $(GO) run ./cmd/bench -mode soak -soak $(DURATION) $(BENCHFLAGS)

# 1,000 req/s for 60 s through llmproxy to a fake upstream answering after
# 20 ms, 30 % streamed; fails above 0.1 % errors. LOADTEST_FLAGS="-rate
# 2000 -duration 30s" changes the load.
loadtest: build
	cd test && GOWORK=off LLMPROXY_BIN=$(CURDIR)/$(BIN) $(GO) run ./cmd/loadtest $(LOADTEST_FLAGS)

bench-rag: build
	@eval "$$(scripts/services.sh start)"; cd test && GOWORK=off LLMPROXY_BIN=$(CURDIR)/$(BIN) $(GO) run ./cmd/ragbench

# Every Go fuzz target, FUZZTIME each (default 1m): make fuzz FUZZTIME=10m
fuzz:
	FUZZTIME=$(or $(FUZZTIME),1m) scripts/fuzz.sh

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
