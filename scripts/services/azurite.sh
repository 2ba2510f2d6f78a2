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

name=azurite
port_var=AZURITE_PORT
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
install_dir="$here/.azurite"
port="${AZURITE_PORT:-10000}"
bin="$install_dir/node_modules/.bin/azurite-blob"
version="${AZURITE_VERSION:-3.35.0}"

# The emulator's well-known development account (public, documented by Microsoft).
account="devstoreaccount1"
account_key="Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

answers() {
	# Any HTTP status means the server is up (an unsigned request gets 403/400).
	local code
	code="$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$port/$account?comp=list" || true)"
	[[ "$code" != "000" && -n "$code" ]]
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
	[[ -x "$bin" ]] || do_install
	launch "$bin" --blobHost 127.0.0.1 --blobPort "$port" \
		--inMemoryPersistence --disableTelemetry --skipApiVersionCheck --loose
}

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
service_main "$@"
