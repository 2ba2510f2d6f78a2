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

state_dir="${LLMPROXY_SERVICES_DIR:-${TMPDIR:-/tmp}/llmproxy-services}/fake-gcs"
port="${FAKE_GCS_PORT:-4443}"
pid_file="$state_dir/fake-gcs.pid"
log_file="$state_dir/fake-gcs.log"
version="${FAKE_GCS_VERSION:-v1.56.1}"

log() { echo "fake-gcs: $*" >&2; }

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

running() {
	[[ -f "$pid_file" ]] && kill -0 "$(cat "$pid_file")" 2>/dev/null
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
	if running && answers; then
		log "already running (pid $(cat "$pid_file"), port $port)"
		do_env
		return
	fi
	if answers; then
		log "port $port already answers but is not ours; stop that server or set FAKE_GCS_PORT"
		exit 1
	fi
	[[ -n "$(find_bin)" ]] || do_install
	local bin
	bin="$(find_bin)"
	mkdir -p "$state_dir"
	log "starting on 127.0.0.1:$port (log $log_file)"
	(cd "$state_dir" && exec nohup "$bin" -scheme http -host 127.0.0.1 -port "$port" \
		-backend memory -public-host "127.0.0.1:$port" -external-url "http://127.0.0.1:$port" \
		-log-level warn >"$log_file" 2>&1 </dev/null) &
	echo $! >"$pid_file"
	for _ in $(seq 1 100); do
		if answers; then
			log "ready"
			do_env
			return
		fi
		if ! running; then
			log "exited during start; log follows"
			cat "$log_file" >&2
			exit 1
		fi
		sleep 0.2
	done
	log "did not answer within 20s; log follows"
	cat "$log_file" >&2
	exit 1
}

do_stop() {
	if running; then
		local pid
		pid="$(cat "$pid_file")"
		kill "$pid"
		for _ in $(seq 1 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		log "stopped (pid $pid)"
	else
		log "not running"
	fi
	rm -f "$pid_file"
}

case "${1:-}" in
install) do_install ;;
start) do_start ;;
stop) do_stop ;;
env) do_env ;;
*)
	echo "usage: $0 install|start|stop|env" >&2
	exit 2
	;;
esac
