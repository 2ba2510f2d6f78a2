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

name=versitygw
port_var=VERSITYGW_PORT
port="${VERSITYGW_PORT:-7070}"
version="${VERSITYGW_VERSION:-v1.8.0}"
gobin="$(go env GOBIN)"
bin="${gobin:-$(go env GOPATH)/bin}/versitygw"

# Test-only credentials for the emulator; they protect nothing.
access_key="AKIATESTKEY"
secret_key="testsecretkey123"
region="us-east-1"

answers() {
	# Any HTTP status means the server is up (an unsigned request gets 403).
	local code
	code="$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$port/" || true)"
	[[ "$code" != "000" && -n "$code" ]]
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
	[[ -x "$bin" ]] || do_install
	mkdir -p "$state_dir/data" "$state_dir/meta"
	# Metadata goes to a sidecar directory so that the data directory needs
	# no extended attribute support from the file system.
	launch "$bin" --port "127.0.0.1:$port" \
		--access "$access_key" --secret "$secret_key" --region "$region" \
		posix --sidecar "$state_dir/meta" "$state_dir/data"
}

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
service_main "$@"
