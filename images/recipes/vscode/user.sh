# The notebook user: uid/gid 1000 (the sandbox maps its own uid onto it),
# home created here and replaced at run time by the persistent home mount.
# Runs inside the new root filesystem (chroot), as root, with set -eu.
if ! getent group "$NBGATE_IMAGE_USER" >/dev/null; then
	groupadd --gid 1000 "$NBGATE_IMAGE_USER"
fi
if ! getent passwd "$NBGATE_IMAGE_USER" >/dev/null; then
	useradd --uid 1000 --gid 1000 --home-dir "$NBGATE_IMAGE_HOME" --create-home \
		--shell /bin/bash "$NBGATE_IMAGE_USER"
fi
# apt lists are only needed at build time
rm -rf /var/lib/apt/lists/*
