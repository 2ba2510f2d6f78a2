#!/usr/bin/env bash
# fuzz.sh runs every Go fuzz target of every module for FUZZTIME each
# (default 30s), one after the other, and prints one line per target.
#
#   scripts/fuzz.sh                   # all modules
#   FUZZTIME=10m scripts/fuzz.sh host plugins/extractor-document
#
# A target that fails leaves its input in the package's testdata/fuzz
# directory (commit it once fixed: it becomes a regression seed); the
# script then exits non-zero after running the rest.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
fuzztime=${FUZZTIME:-30s}
if [[ $# -gt 0 ]]; then
	modules=("$@")
else
	modules=(sdk host $(cd "$root" && ls -d plugins/*/ | sed 's#/$##') test)
fi
failed=0
for m in "${modules[@]}"; do
	[[ -f $root/$m/go.mod ]] || continue
	# Each package directory with a func Fuzz... in a _test.go file.
	while IFS= read -r file; do
		dir=$(dirname "$file")
		for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$file" | sed 's/^func //'); do
			start=$(date +%s)
			if out=$(cd "$dir" && GOWORK=off go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" . 2>&1); then
				result=ok
			else
				result=FAIL
				failed=1
			fi
			execs=$(grep -o 'execs: [0-9]*' <<<"$out" | tail -1)
			printf '%-4s %-45s %-28s %4ds %s\n' "$result" "${dir#$root/}" "$target" $(($(date +%s) - start)) "$execs"
			if [[ $result == FAIL ]]; then
				grep -E -- '--- FAIL|Failing input|panic:|_test.go:[0-9]+' <<<"$out" | head -20 | sed 's/^/     /'
			fi
		done
	done < <(cd "$root/$m" && grep -rl --include='*_test.go' '^func Fuzz' . | sed "s#^\.#$root/$m#" | sort)
done
exit $failed
