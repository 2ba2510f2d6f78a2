#!/usr/bin/env bash
# fuzz.sh runs every Go native fuzz target in the repository, one after
# another, for FUZZTIME each (default 1m), and prints a summary line per
# target. Targets are found by name (func FuzzXxx in *_test.go); each runs in
# its own module with GOWORK=off, like the tests. New crashers are written by
# `go test` under the package's testdata/fuzz/FuzzXxx and fail the run.
#
#   scripts/fuzz.sh                 every target, 1 minute each
#   FUZZTIME=10m scripts/fuzz.sh    longer
#   scripts/fuzz.sh FuzzParseChat   only targets whose name matches
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
fuzztime=${FUZZTIME:-1m}
filter=${1:-.}

failed=0
results=()
while IFS= read -r file; do
	dir=$(dirname "$file")
	mod=$dir
	while [[ ! -f $mod/go.mod && $mod != . ]]; do mod=$(dirname "$mod"); done
	pkg=./${dir#"$mod"/}
	[[ $dir == "$mod" ]] && pkg=.
	for fn in $(grep -oE '^func (Fuzz[A-Za-z0-9_]+)' "$file" | awk '{print $2}'); do
		[[ $fn =~ $filter ]] || continue
		echo "== $mod $pkg $fn ($fuzztime)"
		start=$(date +%s)
		if (cd "$mod" && GOWORK=off go test -run '^$' -fuzz "^${fn}\$" -fuzztime "$fuzztime" "$pkg"); then
			results+=("ok    $fn  $mod/$pkg  $(( $(date +%s) - start ))s")
		else
			results+=("FAIL  $fn  $mod/$pkg  $(( $(date +%s) - start ))s")
			failed=1
		fi
	done
done < <(git ls-files '*_test.go' | xargs grep -l '^func Fuzz' | sort)

printf '%s\n' "${results[@]}"
exit $failed
