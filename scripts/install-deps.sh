#!/usr/bin/env bash
# install-deps.sh installs everything `make test` needs on a fresh Debian
# machine with Go and Node: Debian packages (protoc, redis, chromium), the protoc Go
# plugins at the versions the committed code was generated with, the
# official OpenAI Node SDK for the end-to-end tests, and the storage
# emulators (versitygw, Azurite, fake-gcs-server). It is idempotent; the
# slow Go installs run in parallel.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH="$(go env GOPATH)/bin:$PATH"

need_apt=()
command -v protoc >/dev/null || need_apt+=(protobuf-compiler)
command -v redis-server >/dev/null || need_apt+=(redis-server)
command -v curl >/dev/null || need_apt+=(curl)
# promtool runs the alert rules' unit tests (deployments/monitoring).
command -v promtool >/dev/null || need_apt+=(prometheus)
# The web console's end-to-end test drives a headless Chromium.
command -v chromium >/dev/null || need_apt+=(chromium)
# The key store tests start their own throwaway PostgreSQL clusters with
# initdb and pg_ctl (host/internal/pgtest, test/harness).
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || command -v initdb >/dev/null || need_apt+=(postgresql)
if ((${#need_apt[@]})); then
	echo "install-deps: apt-get install ${need_apt[*]}" >&2
	if [[ $(id -u) -eq 0 ]]; then
		apt-get update -qq >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >&2
	else
		sudo apt-get update -qq >&2
		sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >&2
	fi
fi

pids=()
gobin="$(go env GOPATH)/bin"
[[ -x "$gobin/protoc-gen-go" ]] || { GOFLAGS= go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12 & pids+=($!); }
[[ -x "$gobin/protoc-gen-go-grpc" ]] || { GOFLAGS= go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.5.1 & pids+=($!); }
for svc in versitygw azurite fake-gcs; do
	if [[ -x scripts/services/$svc.sh ]]; then
		scripts/services/$svc.sh install & pids+=($!)
	fi
done
if [[ -f test/node/package-lock.json ]]; then
	(cd test/node && npm ci --no-audit --no-fund --loglevel=error >&2) & pids+=($!)
fi
# Plugins written in JavaScript carry their npm dependencies in their own
# folder (plugins/*/package-lock.json); make build bundles them.
for lock in plugins/*/package-lock.json; do
	[[ -f "$lock" ]] || continue
	(cd "$(dirname "$lock")" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >&2) & pids+=($!)
done
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done
exit $status
