#!/bin/sh
# Installs what the tests need on a fresh Debian machine: the packages
# listed in deps.txt (one "command:package" per line), each only when it is
# not installed yet, so the script is quick on a prepared machine. Then it
# downloads the Go modules.
set -eu
need=""
for entry in $(cat "$(dirname "$0")/deps.txt" 2>/dev/null); do
	pkg=${entry#*:}
	# dpkg, not the PATH: haproxy and nginx live in /usr/sbin, which is not
	# on every user's PATH.
	if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
		need="$need $pkg"
	fi
done
if [ -n "$need" ]; then
	echo "deps: installing$need"
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO="sudo"
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $need >/dev/null
fi
go mod download
