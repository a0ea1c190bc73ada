#!/bin/sh
# Runs govulncheck on every package of graftlb against the Go vulnerability
# database, obtained through the Go module proxy alone: the module
# golang.org/x/vulndb holds the database's OSV files (data/osv), and
# scripts/vulndb builds from them the layout govulncheck's -db file://
# reads. The built database is cached in .cache/vulndb/VERSION (or under
# $VULNDB_CACHE), so only the first run downloads and indexes it.
# govulncheck exits non-zero when code of graftlb reaches a vulnerable
# symbol; vulnerable code in a dependency that is never called is listed
# but does not fail.
#
# VULNDB_VERSION picks the snapshot of the database (a newer one: the
# pseudo-version of a later golang.org/x/vulndb commit).
set -eu
export GOTOOLCHAIN="${GOTOOLCHAIN:-go1.26.11}"
VULNDB_VERSION="${VULNDB_VERSION:-v0.0.0-20261105234957-e22db6528018}"
GOVULNCHECK=golang.org/x/vuln/cmd/govulncheck@v1.9.0

root=$(cd "$(dirname "$0")/.." && pwd)
cache="${VULNDB_CACHE:-$root/.cache/vulndb}"
db="$cache/$VULNDB_VERSION"

if [ ! -f "$db/index/modules.json" ]; then
	# Downloaded from outside the module, so that graftlb's go.mod and
	# go.sum stay as they are; the module cache checks the zip's hash
	# against the checksum database.
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	(cd "$tmp" && go mod download -json "golang.org/x/vulndb@$VULNDB_VERSION") >"$tmp/dl.json"
	dir=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p' "$tmp/dl.json")
	info=$(sed -n 's/^[[:space:]]*"Info": "\(.*\)",*$/\1/p' "$tmp/dl.json")
	when=$(sed -n 's/.*"Time":"\([^"]*\)".*/\1/p' "$info")
	if [ -z "$dir" ] || [ ! -d "$dir/data/osv" ]; then
		echo "vulncheck: golang.org/x/vulndb@$VULNDB_VERSION has no data/osv" >&2
		exit 1
	fi
	mkdir -p "$cache"
	rm -rf "$db.tmp"
	(cd "$root/scripts/vulndb" && go run . -osv "$dir/data/osv" -out "$db.tmp" -modified "$when")
	mv "$db.tmp" "$db"
	rm -rf "$tmp"
	trap - EXIT
fi

cd "$root"
exec go run "$GOVULNCHECK" -db "file://$db" ./...
