#!/bin/sh
# Runs the real-browser end-to-end tests (tests/browser/*.test.mjs) with
# node's built-in test runner: Playwright (playwright-core, pinned in
# tests/browser/package-lock.json) drives Debian's chromium headless against
# build/nbgate: newcomer.test.mjs with the `process` backend and Jupyter's
# classic Notebook (jupyter-notebook), sandbox.test.mjs with the embedded
# default (sandboxed JupyterLab and VS Code from the images `make images`
# builds into the machine-level store).
#
# Env: NBGATE (binary, default build/nbgate), CHROMIUM (default
# /usr/bin/chromium), NBGATE_BROWSER_OUT (screenshots, default
# build/browser), NBGATE_BROWSER_KEEP=1 (keep the temp state dir).
# Installs the npm dependencies with `npm ci` when node_modules is missing.
# Exits non-zero on any failure and prints a final "browser: N passed,
# N failed, N skipped" line.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR="$ROOT/tests/browser"
: "${NBGATE:=$ROOT/build/nbgate}"
: "${CHROMIUM:=/usr/bin/chromium}"
: "${NBGATE_BROWSER_OUT:=$ROOT/build/browser}"
export NBGATE CHROMIUM NBGATE_BROWSER_OUT
# We drive Debian's chromium (scripts/deps.apt); never download Playwright's.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1

fail() {
	echo "run-browser: $*" >&2
	echo "browser: 0 passed, 1 failed, 0 skipped (setup)"
	exit 1
}
# playwright-core 1.65 needs node >= 20. Debian 12's own nodejs is 18 and no
# registry reachable from a fresh machine serves a newer one, so without it
# the browser test is skipped with the reason (the CI image has NodeSource's
# node 20, so CI always runs it).
skip() {
	echo "run-browser: SKIP: $*" >&2
	echo "browser: 0 passed, 0 failed, 1 skipped ($*)"
	exit 0
}
command -v node >/dev/null 2>&1 || skip "no node (needs node >= 20)"
major=$(node -p 'process.versions.node.split(".")[0]')
[ "$major" -ge 20 ] || skip "node $(node --version) is older than 20"
[ -x "$CHROMIUM" ] || fail "no chromium at $CHROMIUM (make install-deps, or apt-get install chromium)"
[ -x "$NBGATE" ] || fail "no nbgate binary at $NBGATE (make all)"
/usr/bin/python3 -c 'import notebook' 2>/dev/null || fail "need jupyter-notebook (classic Notebook 6) for /usr/bin/python3"

if [ ! -d "$DIR/node_modules/playwright-core" ]; then
	echo "run-browser: npm ci in tests/browser" >&2
	(cd "$DIR" && npm ci --no-audit --no-fund) || fail "npm ci failed"
fi
mkdir -p "$NBGATE_BROWSER_OUT"

LOG=$(mktemp /tmp/nbgate-browser.XXXXXX)
trap 'rm -f "$LOG"' EXIT
# The whole run is bounded: each test has its own timeout, this caps the rest.
(cd "$DIR" && timeout -k 10 600 node --test --test-reporter=spec \
	--test-reporter-destination=stdout --test-reporter=tap \
	--test-reporter-destination="$LOG" --test-concurrency=1 --test-timeout=300000 \
	./*.test.mjs)
rc=$?
# TAP summary lines from the runner ("# pass N", "# fail N", "# skipped N")
num() { sed -n "s/^# $1 \([0-9]*\)$/\1/p" "$LOG" | tail -n 1; }
pass=$(num pass)
failed=$(num fail)
skipped=$(num skipped)
echo "browser: ${pass:-0} passed, ${failed:-?} failed, ${skipped:-0} skipped (screenshots in $NBGATE_BROWSER_OUT)"
[ "$rc" -eq 0 ] && [ "${failed:-1}" -eq 0 ]
