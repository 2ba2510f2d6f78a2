#!/usr/bin/env bash
# versitygw.sh installs, starts and stops versitygw, an S3-compatible
# gateway over a local directory that checks SigV4 signatures and presigned
# URLs for real, for the storage-s3 tests.
#
#   scripts/services/versitygw.sh install   go install versitygw (about 4 minutes cold)
#   scripts/services/versitygw.sh start     start it on 127.0.0.1 (idempotent), print env
#   scripts/services/versitygw.sh stop      stop it
#   scripts/services/versitygw.sh env       print the env the tests read
#
# Use it as: eval "$(scripts/services/versitygw.sh start)"
#
# Objects, the pid file and the log live under $LLMPROXY_SERVICES_DIR
# (default ${TMPDIR:-/tmp}/llmproxy-services/versitygw). VERSITYGW_PORT
# (default 7070) picks the port. Everything but the exports goes to stderr.
set -euo pipefail

state_dir="${LLMPROXY_SERVICES_DIR:-${TMPDIR:-/tmp}/llmproxy-services}/versitygw"
port="${VERSITYGW_PORT:-7070}"
pid_file="$state_dir/versitygw.pid"
log_file="$state_dir/versitygw.log"
version="${VERSITYGW_VERSION:-v1.8.0}"
gobin="$(go env GOBIN)"
bin="${gobin:-$(go env GOPATH)/bin}/versitygw"

# Test-only credentials for the emulator; they protect nothing.
access_key="AKIATESTKEY"
secret_key="testsecretkey123"
region="us-east-1"

log() { echo "versitygw: $*" >&2; }

answers() {
	# Any HTTP status means the server is up (an unsigned request gets 403).
	local code
	code="$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$port/" || true)"
	[[ "$code" != "000" && -n "$code" ]]
}

running() {
	[[ -f "$pid_file" ]] && kill -0 "$(cat "$pid_file")" 2>/dev/null
}

do_install() {
	if [[ -x "$bin" ]]; then
		log "already installed ($bin)"
		return
	fi
	log "installing github.com/versity/versitygw/cmd/versitygw@$version (takes a few minutes)"
	go install "github.com/versity/versitygw/cmd/versitygw@$version" >&2
}

do_env() {
	echo "export LLMPROXY_TEST_S3_ENDPOINT=http://127.0.0.1:$port"
	echo "export LLMPROXY_TEST_S3_ACCESS_KEY_ID=$access_key"
	echo "export LLMPROXY_TEST_S3_SECRET_ACCESS_KEY=$secret_key"
	echo "export LLMPROXY_TEST_S3_REGION=$region"
}

do_start() {
	if running && answers; then
		log "already running (pid $(cat "$pid_file"), port $port)"
		do_env
		return
	fi
	if answers; then
		log "port $port already answers but is not ours; stop that server or set VERSITYGW_PORT"
		exit 1
	fi
	[[ -x "$bin" ]] || do_install
	mkdir -p "$state_dir/data" "$state_dir/meta"
	log "starting on 127.0.0.1:$port (data $state_dir/data, log $log_file)"
	# Metadata goes to a sidecar directory so that the data directory needs
	# no extended attribute support from the file system.
	(cd "$state_dir" && exec nohup "$bin" --port "127.0.0.1:$port" \
		--access "$access_key" --secret "$secret_key" --region "$region" \
		posix --sidecar "$state_dir/meta" "$state_dir/data" \
		>"$log_file" 2>&1 </dev/null) &
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
