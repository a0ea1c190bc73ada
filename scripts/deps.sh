#!/bin/sh
# Installs what the tests need on a fresh Debian machine. Each tool is
# installed only when missing, so the script is quick on a prepared machine.
set -eu
need=""
for tool in $(cat "$(dirname "$0")/deps.txt" 2>/dev/null); do
	command -v "${tool%%:*}" >/dev/null 2>&1 || need="$need ${tool#*:}"
done
if [ -n "$need" ]; then
	echo "deps: installing$need"
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO="sudo"
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $need >/dev/null
fi
go mod download
