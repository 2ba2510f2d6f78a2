#!/usr/bin/env bash
# azurite.sh installs, starts and stops Azurite, Microsoft's Azure Storage
# emulator, for the storage-azblob tests.
#
#   scripts/services/azurite.sh install   npm install azurite under scripts/services/.azurite
#   scripts/services/azurite.sh start     start the blob service on 127.0.0.1 (idempotent), print env
#   scripts/services/azurite.sh stop      stop it
#   scripts/services/azurite.sh env       print the env the tests read
#
# Use it as: eval "$(scripts/services/azurite.sh start)"
#
# Data lives in memory; the pid file and log live under
# $LLMPROXY_SERVICES_DIR (default ${TMPDIR:-/tmp}/llmproxy-services/azurite).
# AZURITE_PORT (default 10000) picks the blob port. Everything but the
# exports goes to stderr.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
install_dir="$here/.azurite"
state_dir="${LLMPROXY_SERVICES_DIR:-${TMPDIR:-/tmp}/llmproxy-services}/azurite"
port="${AZURITE_PORT:-10000}"
pid_file="$state_dir/azurite.pid"
log_file="$state_dir/azurite.log"
bin="$install_dir/node_modules/.bin/azurite-blob"
version="${AZURITE_VERSION:-3.35.0}"

# The emulator's well-known development account (public, documented by Microsoft).
account="devstoreaccount1"
account_key="Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

log() { echo "azurite: $*" >&2; }

answers() {
	# Any HTTP status means the server is up (an unsigned request gets 403/400).
	local code
	code="$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$port/$account?comp=list" || true)"
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
	command -v npm >/dev/null || { log "npm is required"; exit 1; }
	mkdir -p "$install_dir"
	# Keep the install out of version control.
	printf '*\n' >"$install_dir/.gitignore"
	[[ -f "$install_dir/package.json" ]] || printf '{"private":true}\n' >"$install_dir/package.json"
	log "installing azurite@$version"
	(cd "$install_dir" && npm install --no-audit --no-fund --loglevel=error "azurite@$version" >&2)
}

do_env() {
	echo "export LLMPROXY_TEST_AZURITE_ENDPOINT=http://127.0.0.1:$port/$account"
	echo "export LLMPROXY_TEST_AZURITE_ACCOUNT=$account"
	echo "export LLMPROXY_TEST_AZURITE_KEY=$account_key"
}

do_start() {
	if running && answers; then
		log "already running (pid $(cat "$pid_file"), port $port)"
		do_env
		return
	fi
	if answers; then
		log "port $port already answers but is not ours; stop that server or set AZURITE_PORT"
		exit 1
	fi
	[[ -x "$bin" ]] || do_install
	mkdir -p "$state_dir"
	log "starting on 127.0.0.1:$port (log $log_file)"
	# Run from the state dir so nothing Azurite writes lands in the repository.
	(cd "$state_dir" && exec nohup "$bin" --blobHost 127.0.0.1 --blobPort "$port" \
		--inMemoryPersistence --disableTelemetry --skipApiVersionCheck --loose \
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
