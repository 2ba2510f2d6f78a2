#!/usr/bin/env bash
# Builds llmproxy and its plugins, then runs the gateway benchmark
# (test/cmd/bench) with the flags given, e.g.
#
#   scripts/bench.sh -json bench.json            # table, and JSON for a note
#   scripts/bench.sh -baseline /tmp/old/bin      # another build beside this one
#   scripts/bench.sh -pprof /tmp/llmproxy-pprof  # CPU and allocation profiles of host and plugins
#   scripts/bench.sh -perf /tmp/llmproxy-perf    # perf profiles of host and plugin
#   scripts/bench.sh -mode streams -streams 1000 # `make bench-streams`
#   scripts/bench.sh -mode soak -soak 30m        # `make soak DURATION=30m`
#   scripts/bench.sh -gogc 400 -duration 10s -loadprocs 2
#
# `make bench` is the same without flags.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
make -C "$root" --no-print-directory build >/dev/null
cd "$root/test"
GOWORK=off LLMPROXY_BIN="$root/bin" exec go run ./cmd/bench "$@"
