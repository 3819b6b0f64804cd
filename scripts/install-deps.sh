#!/bin/sh
# Installs every Debian package listed in scripts/deps.apt that is missing.
# Idempotent: when everything is present it only checks and exits.
# At its end, scripts/install-criu.sh (CRIU >= 4.2, built from source when
# the installed one is missing, older or fails `criu check`).
set -eu
cd "$(dirname "$0")/.."
pkgs=$(grep -v '^[[:space:]]*#' scripts/deps.apt | grep -v '^[[:space:]]*$')
missing=""
for p in $pkgs; do
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$st" in
	*" installed") ;;
	*) missing="$missing $p" ;;
	esac
done
if [ -z "$missing" ]; then
	exec scripts/install-criu.sh
fi
if [ "$(id -u)" != 0 ]; then
	echo "install-deps: missing packages:$missing (run as root or install them)" >&2
	exit 1
fi
echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing
exec scripts/install-criu.sh
