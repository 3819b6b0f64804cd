#!/bin/sh
# Builds image recipes into the machine-level image store (images/image.h):
#   scripts/build-images.sh NBGATE [NAME...]
# NAME is a folder under images/recipes; with none, minimal, jupyterlab and
# vscode. Unchanged recipes are cache hits (one line each, no rebuild).
# Env: NBGATE_IMAGE_STORE (default /var/cache/nbgate/images),
#      NBGATE_IMAGE_MIRROR (Debian mirror URL), NBGATE_IMAGE_FORCE=1 (rebuild).
# Building needs root (mmdebstrap --mode=root): as another user, images that
# are already cached are reported and the rest are skipped with a warning.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
NBGATE=${1:?usage: build-images.sh NBGATE [NAME...]}
shift
[ $# -gt 0 ] || set -- minimal jupyterlab vscode
case $NBGATE in /*) ;; *) NBGATE=$(pwd)/$NBGATE ;; esac
opts=
[ -z "${NBGATE_IMAGE_MIRROR:-}" ] || opts="--mirror $NBGATE_IMAGE_MIRROR"
[ "${NBGATE_IMAGE_FORCE:-0}" != 1 ] || opts="$opts --force"
rc=0
for name in "$@"; do
	dir=$ROOT/images/recipes/$name
	if [ ! -f "$dir/recipe.json" ]; then
		echo "build-images: no recipe '$name' ($dir/recipe.json)" >&2
		rc=1
		continue
	fi
	if [ "$(id -u)" != 0 ] && ! "$NBGATE" image inspect "$name" >/dev/null 2>&1; then
		echo "build-images: skipping '$name': building images needs root" >&2
		continue
	fi
	start=$(date +%s)
	# shellcheck disable=SC2086
	if ! "$NBGATE" image build "$dir" $opts; then
		echo "build-images: image '$name' failed after $(($(date +%s) - start)) s" >&2
		rc=1
	fi
done
exit $rc
