#!/bin/sh
# `make run`: starts nbgate on this machine with the sandboxed `local`
# backend and the default profiles (JupyterLab, VS Code), a state directory
# under ./state (created on first start, with a one-time setup URL for
# 'admin'), and the images `make images` built into the machine-level cache.
set -eu
nbgate=$1
state=${NBGATE_STATE_DIR:-$PWD/state}
listen=${NBGATE_LISTEN:-127.0.0.1:8000}
mkdir -p "$state"
chmod 700 "$state"
cfg=$state/nbgate.json
if [ ! -f "$cfg" ]; then
	# spawner, profiles, images, quota, image_store and seccomp_profile keep
	# their defaults (docs/operations.md); add them here to change them
	cat >"$cfg" <<JSON
{
  "listen": "$listen",
  "state_dir": "$state",
  "spawner": "local"
}
JSON
fi
echo "nbgate: config $cfg (edit it, or override with NBGATE_* variables)"
if ! "$nbgate" --config "$cfg" config print >/dev/null; then
	echo "nbgate: the configuration is not valid (see above)" >&2
	exit 1
fi
url=$("$nbgate" --config "$cfg" config print | /usr/bin/python3 -c \
	'import json,sys; print(json.load(sys.stdin)["public_url"])' 2>/dev/null || echo "http://$listen")
echo "nbgate: log in at $url/hub/login"
echo "nbgate: first start: open the one-time setup URL printed below to set admin's password;"
echo "        add users with: $nbgate --config $cfg user add NAME --password-stdin"
exec "$nbgate" serve --config "$cfg"
