#!/bin/sh
# Runs the integration tests (tests/integration/t*.py, then the Kubernetes
# backend's tests/k8s/t*.py against the API server's contract double; TAP)
# under prove.
# Env: NBGATE (binary, default build/nbgate), TESTS (space-separated list to
# run instead of all), PROVE_JOBS (default 1). Exits non-zero on any failure
# and prints a final "N passed, N failed" line (test files).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
: "${NBGATE:=$ROOT/build/nbgate}"
export NBGATE
PY=/usr/bin/python3
if ! $PY -c 'import requests, websocket, h11' 2>/dev/null; then
	echo "run-integration: need python3-requests python3-websocket python3-h11 (make install-deps)" >&2
	exit 1
fi
if [ -n "${TESTS:-}" ]; then
	set -- $TESTS
else
	set -- tests/integration/t*.py tests/k8s/t*.py
fi
LOG=$(mktemp /tmp/nbgate-prove.XXXXXX)
trap 'rm -f "$LOG"' EXIT
prove -v -j "${PROVE_JOBS:-1}" --timer --exec "$PY" "$@" 2>&1 | tee "$LOG"
rc_prove=$(grep -c '^Result: PASS' "$LOG")
# prove's summary lists each failing file under "Test Summary Report".
failed=$(sed -n '/^Test Summary Report/,$p' "$LOG" | grep -cE '^tests/(integration|k8s)/t[^ ]+ +\(Wstat')
total=$#
passed=$((total - failed))
echo "integration: $passed passed, $failed failed (of $total test files)"
[ "$rc_prove" -eq 1 ] && [ "$failed" -eq 0 ]
