#!/bin/sh
# Fails when a function exceeds cyclomatic complexity 15 or 120 lines, or a
# file exceeds 1500 lines (STYLE.md). Exceptions need a reason in
# scripts/complexity.allow ("file:function reason").
set -u
cd "$(dirname "$0")/.."
allow=scripts/complexity.allow
rc=0
for f in common/*.c gateway/*.c spawner/*.c; do
	[ -f "$f" ] || continue
	n=$(wc -l <"$f")
	if [ "$n" -gt 1500 ]; then
		echo "complexity: $f has $n lines (max 1500)" >&2
		rc=1
	fi
done
pmccabe common/*.c gateway/*.c spawner/*.c 2>/dev/null |
while read -r mod trad stmts first lines loc; do
	file=${loc%%(*}
	fn=${loc##*: }
	if [ "$mod" -gt 15 ] || [ "$lines" -gt 120 ]; then
		if [ -f "$allow" ] && grep -q "^$file:$fn " "$allow"; then
			continue
		fi
		echo "complexity: $loc complexity $mod, $lines lines (max 15, 120)"
	fi
done >build/complexity.txt 2>/dev/null || true
if [ -s build/complexity.txt ]; then
	cat build/complexity.txt >&2
	rc=1
fi
exit "$rc"
