#!/bin/sh
# Installs what the tests need on a fresh Debian machine: the packages
# listed in deps.txt (one "command:package" per line), each only when it is
# not installed yet, so the script is quick on a prepared machine. Then it
# downloads the Go modules.
set -eu
need=""
for entry in $(cat "$(dirname "$0")/deps.txt" 2>/dev/null); do
	cmd=${entry%%:*}
	pkg=${entry#*:}
	# Present on the PATH, in /usr/sbin (haproxy and nginx live there, off
	# an ordinary user's PATH), or installed as far as dpkg knows.
	if command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] ||
		dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
		continue
	fi
	need="$need $pkg"
done
if [ -n "$need" ]; then
	echo "deps: installing$need"
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO="sudo"
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $need >/dev/null
fi
go mod download
