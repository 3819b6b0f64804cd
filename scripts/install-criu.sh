#!/bin/sh
# Installs CRIU >= 4.2 for nbgate's checkpoints (issue 4, docs/checkpoint.md
# "Installing CRIU"). Called at the end of `make install-deps`; `make criu`
# runs it alone.
#
# Why not apt: Debian 12's criu 3.17 fails `criu check` on this kernel and
# trixie's 4.1.1 hangs in dump. So we build Debian sid's source tarball
# (4.2.1 when this was written) without touching the host's binaries: a
# deb-src-only line for sid (never a binary `deb` line), `apt-get source
# --download-only`, the orig tarball checked against the .dsc's
# Checksums-Sha256, then CRIU's own `make criu` + `make install-criu`.
#
# nbgate's patches (scripts/criu-patches/*.patch, each says why) are applied
# before the build; a stamp file next to the binary records their sha256, so
# a criu without them (or with older ones) is rebuilt.
#
# Idempotent: when $PREFIX/sbin/criu is >= 4.2, carries the current patches
# and `criu check` passes it only says so. The verified tarball and the build tree stay in the cache
# dir, so a second install (new DESTDIR, deleted binary) is instant.
#
# Settings (environment):
#   CRIU_PREFIX      install prefix (default /usr/local: criu lands in
#                    /usr/local/sbin/criu, the default of the config key
#                    criu_path)
#   DESTDIR          staging root for packaging (default empty)
#   CRIU_CACHE       cache dir (default /var/cache/nbgate/criu-src)
#   CRIU_MIN         oldest acceptable version (default 4.2)
#   NBGATE_SKIP_CRIU=1  do nothing (machines that will never checkpoint)
set -eu

PREFIX=${CRIU_PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
CACHE=${CRIU_CACHE:-/var/cache/nbgate/criu-src}
MIN=${CRIU_MIN:-4.2}
CRIU=$DESTDIR$PREFIX/sbin/criu
SOURCES=/etc/apt/sources.list.d/nbgate-sid-src.sources
TESTED=4.2.1
JOBS=${CRIU_JOBS:-2}
PATCHES=$(cd "$(dirname "$0")" && pwd)/criu-patches
STAMP=$DESTDIR$PREFIX/lib/nbgate/criu-patches.sha256
# One hash over every patch, in the order they are applied.
patches_sum=$(cat "$PATCHES"/*.patch 2>/dev/null | sha256sum | cut -d' ' -f1)

step_name="start"
step() {
	step_name=$1
	echo "install-criu: [$step_name] $2"
}
# shellcheck disable=SC2317 # called by the trap
on_exit() {
	rc=$?
	if [ "$rc" != 0 ]; then
		echo "install-criu: FAILED in step '$step_name' (exit $rc); see the output above" >&2
	fi
}
trap on_exit EXIT
die() {
	echo "install-criu: $*" >&2
	exit 1
}

# "4.2.1" -> 4002001, so versions compare as integers; "" for garbage.
vnum() {
	echo "$1" | awk -F. '/^[0-9]+(\.[0-9]+)?(\.[0-9]+)?$/ { printf "%d\n", $1 * 1000000 + $2 * 1000 + $3 }'
}

# Version of the criu binary $1 ("" when absent or unparsable).
criu_version() {
	[ -x "$1" ] || return 0
	"$1" --version 2>/dev/null | awk '/^Version:/ { print $2; exit }'
}

version_ok() {
	v=$(vnum "$1")
	[ -n "$v" ] && [ "$v" -ge "$(vnum "$MIN")" ]
}

newest_dsc() {
	find "$CACHE/dl" -maxdepth 1 -name 'criu_*.dsc' | sort -V | tail -n 1
}

# Runs `criu check` (needs root); prints the verdict, returns its status.
criu_check() {
	if [ "$(id -u)" != 0 ]; then
		echo "install-criu: not root: skipping 'criu check'"
		return 0
	fi
	out=$("$1" check 2>&1) && rc=0 || rc=$?
	echo "$out" | sed 's/^/  criu check: /'
	return "$rc"
}

if [ "${NBGATE_SKIP_CRIU:-0}" = 1 ]; then
	echo "install-criu: NBGATE_SKIP_CRIU=1: not installing CRIU (checkpoints will be unavailable)"
	exit 0
fi

step probe "looking at $CRIU"
have=$(criu_version "$CRIU")
if [ -n "$have" ] && version_ok "$have" &&
	[ "$(cat "$STAMP" 2>/dev/null)" != "$patches_sum" ]; then
	echo "install-criu: criu $have at $CRIU lacks nbgate's current patches: rebuilding"
elif [ -n "$have" ] && version_ok "$have"; then
	if criu_check "$CRIU"; then
		echo "install-criu: criu $have at $CRIU: ok"
		exit 0
	fi
	echo "install-criu: criu $have at $CRIU fails 'criu check': rebuilding from source"
elif [ -n "$have" ]; then
	echo "install-criu: criu $have at $CRIU is older than $MIN: building from source"
else
	echo "install-criu: no criu at $CRIU: building from source"
fi
[ "$(id -u)" = 0 ] || die "building CRIU needs root (or set NBGATE_SKIP_CRIU=1)"

# The sid source index: deb-src only, so nothing from sid can ever be
# installed on the host by apt.
step sources "deb-src for sid in $SOURCES"
if [ ! -f "$SOURCES" ]; then
	cat >"$SOURCES" <<'EOF'
# Added by nbgate scripts/install-criu.sh: Debian sid SOURCE packages only,
# to build CRIU >= 4.2 (docs/checkpoint.md). Never add a binary `deb` line.
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: sid
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
fi
grep -q '^Types: deb-src$' "$SOURCES" || die "$SOURCES is not deb-src only; fix or remove it"

mkdir -p "$CACHE/dl"
chmod 700 "$CACHE"

# Reuse a tarball a previous run verified; else download.
dsc=$(newest_dsc)
if [ -z "$dsc" ]; then
	step update "apt-get update (the sid source list only)"
	apt-get -q -o Dir::Etc::sourcelist="$SOURCES" -o Dir::Etc::sourceparts=- \
		-o APT::Get::List-Cleanup=0 update
	step download "apt-get source --download-only criu/sid into $CACHE/dl"
	# _apt downloads, so the dir must be its; Debian's .debian.tar.xz
	# answers 404 at times (the packaging is not needed here): apt exits
	# non-zero but the .dsc and the orig tarball are what we check below.
	chown _apt "$CACHE/dl" 2>/dev/null || true
	(cd "$CACHE/dl" && apt-get -q source --download-only criu/sid) ||
		echo "install-criu: apt-get source exited non-zero (tolerated; checking what arrived)"
	dsc=$(newest_dsc)
	[ -n "$dsc" ] || die "no criu .dsc downloaded"
fi

step verify "sha256 of the orig tarball against $(basename "$dsc")"
# The .dsc itself came through apt, checked against the signed sid index.
line=$(awk '/^Checksums-Sha256:/ { on = 1; next } /^[^ ]/ { on = 0 }
	on && $3 ~ /^criu_[0-9.]+\.orig\.tar\.(xz|gz)$/ { print $1, $3; exit }' "$dsc")
[ -n "$line" ] || die "no orig tarball in the Checksums-Sha256 of $dsc"
want=${line%% *}
tarball=$CACHE/dl/${line#* }
[ -f "$tarball" ] || die "$tarball missing (download failed?)"
got=$(sha256sum "$tarball" | cut -d' ' -f1)
if [ "$got" != "$want" ]; then
	rm -f "$tarball" "$dsc"
	die "CHECKSUM MISMATCH for $tarball: .dsc says $want, file is $got (both removed)"
fi
ver=$(basename "$tarball" | sed -n 's/^criu_\([0-9.]*\)\.orig\.tar\..*$/\1/p')
version_ok "$ver" || die "sid has criu $ver, older than $MIN"
[ "$ver" = "$TESTED" ] || echo "install-criu: note: nbgate was tested with criu $TESTED, sid has $ver"
echo "install-criu: criu_$ver.orig tarball sha256 $got: ok"

src=$CACHE/build/criu-$ver
if [ ! -x "$src/criu/criu" ] || [ "$(criu_version "$src/criu/criu")" != "$ver" ] ||
	[ "$(cat "$src/.nbgate-patches" 2>/dev/null)" != "$patches_sum" ]; then
	step unpack "unpacking into $src"
	rm -rf "$src"
	mkdir -p "$CACHE/build"
	tar -xf "$tarball" -C "$CACHE/build"
	[ -d "$src" ] || die "tarball did not unpack to $src"
	for p in "$PATCHES"/*.patch; do
		[ -f "$p" ] || continue
		step patch "applying $(basename "$p")"
		patch -d "$src" -p1 --forward --batch <"$p" || die "patch $(basename "$p") does not apply to criu $ver"
	done
	echo "$patches_sum" >"$src/.nbgate-patches"
	# Without iptables on the host (Debian 12 minimal) CRIU's default
	# network lock fails any --tcp-established dump; libnftables is
	# linked in (scripts/deps.apt), so lock with nftables by default.
	step build "make -j$JOBS criu (CRIU $ver; about a minute)"
	make -C "$src" -j"$JOBS" PREFIX="$PREFIX" \
		NETWORK_LOCK_DEFAULT=NETWORK_LOCK_NFTABLES criu >"$CACHE/build.log" 2>&1 ||
		{ tail -n 30 "$CACHE/build.log" >&2; die "make criu failed (log: $CACHE/build.log)"; }
else
	echo "install-criu: using the cached build $src/criu/criu"
fi

step install "make install-criu PREFIX=$PREFIX${DESTDIR:+ DESTDIR=$DESTDIR}"
make -C "$src" PREFIX="$PREFIX" DESTDIR="$DESTDIR" \
	NETWORK_LOCK_DEFAULT=NETWORK_LOCK_NFTABLES install-criu >>"$CACHE/build.log" 2>&1 ||
	{ tail -n 30 "$CACHE/build.log" >&2; die "make install-criu failed (log: $CACHE/build.log)"; }
have=$(criu_version "$CRIU")
[ "$have" = "$ver" ] || die "installed $CRIU reports version '$have', expected $ver"
mkdir -p "$(dirname "$STAMP")"
echo "$patches_sum" >"$STAMP"

step check "criu check"
if criu_check "$CRIU"; then
	echo "install-criu: criu $have at $CRIU: ok"
else
	# Not fatal: the kernel, not the build, lacks something; nbgate
	# falls back to commit checkpoints and `nbgate doctor` says why.
	echo "install-criu: WARNING: criu $have installed at $CRIU but 'criu check' fails" \
		"(checkpoints will use commit mode; run 'nbgate doctor')" >&2
fi
exit 0
