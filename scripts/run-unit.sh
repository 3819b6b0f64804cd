#!/bin/sh
# Runs the cmocka unit-test binaries given as arguments under prove (TAP).
# Each binary is one source file's tests (tests/unit/<dir>/test_<file>.c).
set -u
[ $# -gt 0 ] || { echo "run-unit: no unit tests built" >&2; exit 1; }
export CMOCKA_MESSAGE_OUTPUT=TAP
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
exec prove --exec '' "$@"
