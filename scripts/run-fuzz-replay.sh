#!/bin/sh
# Replays each fuzz target's corpus (tests/fuzz/corpus/<target>/) through its
# replay build (-DFUZZ_REPLAY_MAIN), so gcc-only CI exercises every seed.
set -u
fail=0 pass=0
for bin in "$@"; do
	name=$(basename "$bin")
	target=${name#fuzz_}
	dir=tests/fuzz/corpus/$target
	if [ ! -d "$dir" ]; then
		echo "fuzz-replay: $name has no corpus at $dir" >&2
		fail=$((fail + 1))
		continue
	fi
	if "$bin" "$dir"; then
		pass=$((pass + 1))
	else
		echo "fuzz-replay: $name failed on its corpus" >&2
		fail=$((fail + 1))
	fi
done
echo "fuzz-replay: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
