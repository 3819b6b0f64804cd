#!/bin/sh
# `make run`: starts nbgate on this machine with a state directory under
# ./state (created on first start, with a one-time setup URL for 'admin').
set -eu
nbgate=$1
state=${NBGATE_STATE_DIR:-$PWD/state}
mkdir -p "$state"
chmod 700 "$state"
cfg=$state/nbgate.json
if [ ! -f "$cfg" ]; then
	cat >"$cfg" <<JSON
{
  "listen": "${NBGATE_LISTEN:-127.0.0.1:8000}",
  "state_dir": "$state"
}
JSON
fi
echo "nbgate: config $cfg (edit it, or override with NBGATE_* variables)"
exec "$nbgate" serve --config "$cfg"
