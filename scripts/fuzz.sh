#!/bin/sh
# Builds every tests/fuzz/fuzz_*.c with clang's libFuzzer + ASan + UBSan and
# runs each for FUZZ_SECONDS (default 60) on a copy of its corpus.
set -eu
secs=${FUZZ_SECONDS:-60}
out=build-fuzz
mkdir -p "$out"
make --no-print-directory CC=clang BUILD="$out/lib" \
	CFLAGS="-O1 -g -fsanitize=fuzzer-no-link,address,undefined" \
	"$out/lib/libgateway.a" "$out/lib/libspawner.a" "$out/lib/libcommon.a"
libs=$(pkg-config --libs libwebsockets libsodium libssl libcrypto sqlite3 libcjson libseccomp libcap libcurl yaml-0.1)
for src in tests/fuzz/fuzz_*.c; do
	name=$(basename "$src" .c)
	target=${name#fuzz_}
	clang -I. -D_GNU_SOURCE -O1 -g -fsanitize=fuzzer,address,undefined \
		$(pkg-config --cflags libwebsockets libcjson) -o "$out/$name" "$src" \
		"$out/lib/libgateway.a" "$out/lib/libspawner.a" "$out/lib/libcommon.a" $libs -lpthread
	work="$out/corpus-$target"
	mkdir -p "$work"
	cp -n tests/fuzz/corpus/"$target"/* "$work"/ 2>/dev/null || true
	echo "fuzz: $name for ${secs}s"
	"$out/$name" -max_total_time="$secs" -max_len=65536 "$work"
done
