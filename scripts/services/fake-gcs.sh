#!/usr/bin/env bash
# fake-gcs.sh installs, starts and stops fake-gcs-server, a Google Cloud
# Storage emulator, for the storage-gcs tests.
#
#   scripts/services/fake-gcs.sh install   go install fake-gcs-server into $(go env GOPATH)/bin
#   scripts/services/fake-gcs.sh start     start it on 127.0.0.1 (idempotent), print env
#   scripts/services/fake-gcs.sh stop      stop it
#   scripts/services/fake-gcs.sh env       print the env the tests read
#
# Use it as: eval "$(scripts/services/fake-gcs.sh start)"
#
# Objects live in memory; the pid file and log live under
# $LLMPROXY_SERVICES_DIR (default ${TMPDIR:-/tmp}/llmproxy-services/fake-gcs).
# FAKE_GCS_PORT (default 4443) picks the port. Everything but the exports
# goes to stderr.
set -euo pipefail

name=fake-gcs
port_var=FAKE_GCS_PORT
port="${FAKE_GCS_PORT:-4443}"
version="${FAKE_GCS_VERSION:-v1.56.1}"

find_bin() {
	if command -v fake-gcs-server >/dev/null; then
		command -v fake-gcs-server
	elif [[ -x "$(go env GOPATH)/bin/fake-gcs-server" ]]; then
		echo "$(go env GOPATH)/bin/fake-gcs-server"
	fi
}

answers() {
	local code
	code="$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$port/storage/v1/b" || true)"
	[[ "$code" == "200" ]]
}

do_install() {
	if [[ -n "$(find_bin)" ]]; then
		log "already installed ($(find_bin))"
		return
	fi
	log "installing github.com/fsouza/fake-gcs-server@$version (takes a few minutes)"
	GOWORK=off GOFLAGS=-mod=mod go install "github.com/fsouza/fake-gcs-server@$version" >&2
}

do_env() {
	echo "export LLMPROXY_TEST_GCS_ENDPOINT=http://127.0.0.1:$port/storage/v1/"
}

do_start() {
	[[ -n "$(find_bin)" ]] || do_install
	launch "$(find_bin)" -scheme http -host 127.0.0.1 -port "$port" \
		-backend memory -public-host "127.0.0.1:$port" -external-url "http://127.0.0.1:$port" \
		-log-level warn
}

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
service_main "$@"
