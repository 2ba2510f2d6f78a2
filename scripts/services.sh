#!/usr/bin/env bash
# services.sh starts (or stops) every test service the tests use and prints
# the environment they read. Use it as:
#
#   eval "$(scripts/services.sh start)"
#   scripts/services.sh stop
#
# Each service is a script in scripts/services/; a missing one is reported
# and skipped here, and the tests that need it then fail with a message
# naming the script to run.
set -euo pipefail
cd "$(dirname "$0")/services"
cmd=${1:-start}
for svc in versitygw azurite fake-gcs; do
	if [[ -x ./$svc.sh ]]; then
		./$svc.sh "$cmd" || echo "services: $svc $cmd failed" >&2
	fi
done
