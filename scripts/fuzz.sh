#!/bin/sh
# Runs every fuzz target of graftlb, one after another, each for the time
# given as the first argument (default $FUZZTIME, else 10m; go test's
# -fuzztime syntax: 5s, 10m, 1000x). A target is any "func FuzzX(" in a
# _test.go file, found by grep, so a new one is run without being listed.
# Each package's test binary is built once, instrumented for fuzzing as
# go test -fuzz builds it, and run once per target with the corpus cache
# go test uses, so a short run is mostly fuzzing, not linking. With
# FUZZCACHE=fresh the targets start from their seeds and testdata alone,
# in an empty cache removed afterwards: the corpus a long run left in the
# cache takes a while to replay, which a short run would spend on that.
#
# Ends with a table of each target's run time and executions. Fails at the
# first target that finds a failing input, which has then been written to
# the package's testdata/fuzz/FuzzX/: commit it with the fix, and every go
# test run replays it as a regression seed.
set -eu
export GOTOOLCHAIN="${GOTOOLCHAIN:-go1.26.11}"
fuzztime="${1:-${FUZZTIME:-10m}}"
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

targets=$(grep -rE --include='*_test.go' -o '^func Fuzz[A-Za-z0-9_]*\(' . |
	sed -E 's|^\./(.*)/[^/]*:func (Fuzz[A-Za-z0-9_]*)\($|\1 \2|' | sort -u)
if [ -z "$targets" ]; then
	echo "fuzz: no fuzz targets found" >&2
	exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cache="$(go env GOCACHE)/fuzz"
if [ "${FUZZCACHE:-}" = fresh ]; then
	cache="$tmp/cache"
fi
start=$(date +%s)
built=""
echo "$targets" | while read -r dir name; do
	bin="$tmp/$(echo "$dir" | tr / _).test"
	if [ "$built" != "$dir" ]; then
		go test -c -fuzz "^$name\$" -o "$bin" "./$dir/"
		built=$dir
	fi
	t0=$(date +%s)
	if ! (cd "$dir" && "$bin" -test.run '^$' -test.fuzz "^$name\$" -test.fuzztime "$fuzztime" \
		-test.fuzzcachedir "$cache/$(go list "./")") >"$tmp/log" 2>&1; then
		cat "$tmp/log" >&2
		echo "fuzz: $dir $name failed; the input is in $dir/testdata/fuzz/$name/" >&2
		exit 1
	fi
	execs=$(grep -o 'execs: [0-9]*' "$tmp/log" | tail -1 | cut -d' ' -f2)
	printf '%-10s %-18s %6ss %12s execs\n' "$dir" "$name" "$(($(date +%s) - t0))" "${execs:-?}" | tee -a "$tmp/summary"
done
echo "fuzz: $(wc -l <"$tmp/summary") targets, $fuzztime each, $(($(date +%s) - start))s in all"
