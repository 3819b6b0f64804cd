#!/usr/bin/python3
"""Image commit (issue 4 item 4, commit mode): a throw-away store with a small
hand-made base image (GNU tar layer in an OCI layout), an overlay mounted on it
(lower = the base layer, upper = a temp dir), changes made through the mount
(new, changed and deleted files, a replaced directory, owners, modes, setuid,
symlinks, hard links, xattrs incl. security.capability, a fifo, long names),
unmount, `nbgate image commit`, then the committed image's layers mounted
alone (no upper) must show the same tree as the upper mount did. Then the
faults (an unreadable file, a full tmp/) leave the store as it was, and
`nbgate image rm` removes the commit and its layer but not the base.
Needs root and overlayfs (skips otherwise)."""
import hashlib
import json
import os
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import nbgate_test as T  # noqa: E402

MTIME = 1600000000
LONG = "L" * 150
# struct vfs_cap_data, revision 2, effective, permitted = CAP_NET_RAW (13)
CAP = struct.pack("<IIIII", 0x02000001, 1 << 13, 0, 0, 0)


def image(store, *args, timeout=120, wrap=None):
    env = dict(os.environ, NBGATE_IMAGE_STORE=store)
    argv = (wrap or []) + [T.nbgate_path(), "image"] + list(args)
    p = subprocess.run(argv, env=env, timeout=timeout, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    return p.returncode, p.stdout, p.stderr


def entries(d):
    try:
        return sorted(os.listdir(d))
    except FileNotFoundError:
        return []


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def xattr(path, key):
    try:
        return os.getxattr(path, key, follow_symlinks=False)
    except OSError as e:
        return "error: %s" % e


def write(path, data, mode=0o644, uid=0, gid=0):
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
    os.chown(path, uid, gid)
    os.chmod(path, mode)


def make_base_tree(src):
    os.makedirs(os.path.join(src, "etc"))
    write(os.path.join(src, "etc/keep.conf"), "keep\n")
    write(os.path.join(src, "etc/delete-me"), "bye\n")
    os.makedirs(os.path.join(src, "opt/app/sub"))
    write(os.path.join(src, "opt/app/old1"), "old1\n")
    write(os.path.join(src, "opt/app/sub/old2"), "old2\n")
    os.makedirs(os.path.join(src, "usr/bin"))
    write(os.path.join(src, "usr/bin/tool"), "#!/bin/sh\necho tool\n", 0o755)
    os.makedirs(os.path.join(src, "home/jovyan"))
    os.chown(os.path.join(src, "home/jovyan"), 1000, 1000)
    os.chmod(os.path.join(src, "home/jovyan"), 0o750)
    os.symlink("usr/bin", os.path.join(src, "bin"))


def make_base_store(tmp, store):
    """An OCI layout with one image 'base', laid out as store.c does."""
    src = os.path.join(tmp, "base-src")
    make_base_tree(src)
    for d in ("blobs/sha256", "rootfs", "tmp"):
        os.makedirs(os.path.join(store, d))
    tar = os.path.join(tmp, "base.tar")
    subprocess.run(["tar", "--create", "--file", tar, "--directory", src, "--numeric-owner",
                    "--xattrs", "--xattrs-include=*", "--sort=name", "--format=posix", "."],
                   check=True)
    lhex = sha256_file(tar)
    shutil.move(tar, os.path.join(store, "blobs/sha256", lhex))
    os.rename(src, os.path.join(store, "rootfs", lhex))
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "created": "2020-01-01T00:00:00Z",
                      "config": {"User": "jovyan", "Cmd": ["/bin/true"], "Env": [],
                                 "WorkingDir": "/home/jovyan",
                                 "Labels": {"io.nbgate.home": "/home/jovyan"}},
                      "rootfs": {"type": "layers", "diff_ids": ["sha256:" + lhex]},
                      "history": [{"created_by": "t6010"}]}).encode()
    chex = hashlib.sha256(cfg).hexdigest()
    man = json.dumps({"schemaVersion": 2,
                      "mediaType": "application/vnd.oci.image.manifest.v1+json",
                      "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                 "digest": "sha256:" + chex, "size": len(cfg)},
                      "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                                  "digest": "sha256:" + lhex,
                                  "size": os.path.getsize(os.path.join(store, "blobs/sha256",
                                                                       lhex))}]}).encode()
    mhex = hashlib.sha256(man).hexdigest()
    for hx, data in ((chex, cfg), (mhex, man)):
        with open(os.path.join(store, "blobs/sha256", hx), "wb") as f:
            f.write(data)
    with open(os.path.join(store, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}\n')
    idx = {"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json",
         "digest": "sha256:" + mhex, "size": len(man),
         "annotations": {"org.opencontainers.image.ref.name": "base"}}]}
    with open(os.path.join(store, "index.json"), "w") as f:
        json.dump(idx, f)
    return "sha256:" + mhex, os.path.join(store, "rootfs", lhex)


class Mounts:
    """Mount points to unmount at the end, whatever happened."""

    def __init__(self):
        self.points = []

    def mount(self, argv, point):
        subprocess.run(argv + [point], check=True)
        self.points.append(point)

    def umount(self, point):
        subprocess.run(["umount", point], check=True)
        self.points.remove(point)

    def cleanup(self):
        for p in reversed(self.points):
            if subprocess.run(["umount", p]).returncode != 0:
                subprocess.run(["umount", "-l", p])
        self.points = []


def change_tree(m):
    """What a user does in the running server, through the overlay."""
    write(os.path.join(m, "etc/keep.conf"), "changed\n", 0o640)       # copy-up
    os.unlink(os.path.join(m, "etc/delete-me"))                       # whiteout
    shutil.rmtree(os.path.join(m, "opt/app"))                         # opaque dir
    os.mkdir(os.path.join(m, "opt/app"), 0o700)
    write(os.path.join(m, "opt/app/fresh"), "fresh\n", 0o600, 1000, 1000)
    h = os.path.join(m, "home/jovyan")
    write(os.path.join(h, "a"), "shared inode\n", 0o644, 1000, 1000)
    os.link(os.path.join(h, "a"), os.path.join(h, "b"))
    os.symlink("/etc/keep.conf", os.path.join(h, "abs-link"))
    os.symlink("../../etc", os.path.join(h, "rel-link"))
    os.mkfifo(os.path.join(h, "pipe"), 0o600)
    os.makedirs(os.path.join(h, "site-packages/pkg"))
    write(os.path.join(h, "site-packages/pkg/__init__.py"), "x = 42\n", 0o644, 1000, 100)
    deep = os.path.join(h, "d" * 60, "e" * 60)
    os.makedirs(deep)
    write(os.path.join(deep, LONG), "long\n")
    os.makedirs(os.path.join(m, "usr/local/bin"))
    write(os.path.join(m, "usr/local/bin/suid"), "#!/bin/sh\n", 0o4755)
    os.setxattr(os.path.join(m, "usr/bin/tool"), "security.capability", CAP)
    os.setxattr(os.path.join(h, "a"), "user.note", b"kept")
    write(os.path.join(m, "big.bin"), os.urandom(3 << 20))
    for root, dirs, files in os.walk(m):
        for n in files + dirs:
            p = os.path.join(root, n)
            if not os.path.islink(p):
                os.utime(p, (MTIME, MTIME))
    os.utime(m + "/etc", (MTIME + 7, MTIME + 7))


def snapshot(root):
    """Everything a merged view shows, except inode numbers and the root dir."""
    out, inodes = {}, {}
    for dirpath, dirs, files in os.walk(root):
        for n in sorted(dirs + files):
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            e = {"type": stat.S_IFMT(st.st_mode), "mode": oct(stat.S_IMODE(st.st_mode)),
                 "owner": (st.st_uid, st.st_gid), "mtime": int(st.st_mtime)}
            if stat.S_ISREG(st.st_mode):
                e["sha256"] = sha256_file(p)
                inodes.setdefault(st.st_ino, []).append(rel)
            elif stat.S_ISLNK(st.st_mode):
                e["target"] = os.readlink(p)
                e.pop("mtime")
            if not stat.S_ISLNK(st.st_mode):
                e["xattrs"] = {k: os.getxattr(p, k, follow_symlinks=False)
                               for k in sorted(os.listxattr(p, follow_symlinks=False))
                               if not k.startswith("trusted.overlay.")}
            out[rel] = e
    links = sorted(sorted(v) for v in inodes.values() if len(v) > 1)
    return out, links


def overlay_opts(lowers, upper=None, work=None):
    o = "lowerdir=" + ":".join(lowers)
    if upper:
        o += ",upperdir=%s,workdir=%s" % (upper, work)
    return ["mount", "-t", "overlay", "overlay", "-o", o]


def round_trip(tap, tmp, store, mounts, base_layer, base_digest):
    upper, work, merged = (os.path.join(tmp, n) for n in ("upper", "work", "merged"))
    for d in (upper, work, merged):
        os.mkdir(d)
    mounts.mount(overlay_opts([base_layer], upper, work), merged)
    change_tree(merged)
    before, links_before = snapshot(merged)
    mounts.umount(merged)
    tap.ok(stat.S_ISCHR(os.lstat(os.path.join(upper, "etc/delete-me")).st_mode),
           "upper: the deleted file is an overlay whiteout")
    tap.is_(xattr(os.path.join(upper, "opt/app"), "trusted.overlay.opaque"), b"y",
            "upper: the replaced dir is opaque")
    rc, out, err = image(store, "commit", "--base", "base", "--upper", upper,
                         "--annotation", "io.nbgate.test=t6010", "snap")
    tap.is_(rc, 0, "commit: exit 0")
    if rc != 0:
        tap.diag(err)
        return None
    tap.ok(out.startswith("image snap: committed sha256:"), "commit: prints the digest", out)
    rc, out, err = image(store, "inspect", "snap")
    info = json.loads(out) if rc == 0 else {}
    layers = info.get("layers", [])
    tap.is_(len(layers), 2, "committed image: two layers")
    tap.is_(layers[1:], [base_layer], "committed image: the base layer below the new one")
    ann = info.get("manifest", {}).get("annotations", {})
    tap.is_(ann.get("io.nbgate.commit.base"), "base@" + base_digest,
            "annotation io.nbgate.commit.base = base@digest")
    tap.is_(ann.get("io.nbgate.test"), "t6010", "annotation from --annotation")
    tap.ok(ann.get("io.nbgate.commit.created", "").endswith("Z"), "annotation commit.created")
    cfg = info.get("config", {})
    tap.is_(len(cfg.get("rootfs", {}).get("diff_ids", [])), 2, "config: two diff ids")
    tap.is_([h.get("created_by") for h in cfg.get("history", [])],
            ["t6010", "nbgate image commit"], "config: history entry appended")
    if len(layers) != 2:
        return None
    top = layers[0]
    tap.ok(stat.S_ISCHR(os.lstat(os.path.join(top, "etc/delete-me")).st_mode) and
           os.lstat(os.path.join(top, "etc/delete-me")).st_rdev == 0,
           "unpacked layer: .wh.delete-me became a 0:0 device")
    tap.is_(xattr(os.path.join(top, "opt/app"), "trusted.overlay.opaque"), b"y",
            "unpacked layer: .wh..wh..opq became the opaque xattr")
    tap.ok(not any(n.startswith(".wh.") for _, d, f in os.walk(top) for n in d + f),
           "unpacked layer: no .wh. files left")
    merged2 = os.path.join(tmp, "merged2")
    os.mkdir(merged2)
    mounts.mount(overlay_opts(layers), merged2)
    after, links_after = snapshot(merged2)
    check_views(tap, merged2, before, after, links_before, links_after)
    mounts.umount(merged2)
    return layers


def check_views(tap, m, before, after, links_before, links_after):
    diff = [k for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)]
    tap.ok(not diff, "committed layers alone show what the upper mount showed (%d entries)"
           % len(before), "\n".join("%s:\n  before %r\n  after  %r" % (k, before.get(k),
                                                                       after.get(k))
                                    for k in diff[:10]))
    tap.ok(not os.path.exists(os.path.join(m, "etc/delete-me")), "the deleted file stays deleted")
    tap.is_(entries(os.path.join(m, "opt/app")), ["fresh"],
            "the replaced dir shows only its new contents")
    with open(os.path.join(m, "etc/keep.conf")) as f:
        tap.is_(f.read(), "changed\n", "the changed base file has its new contents")
    tap.is_(links_after, [["home/jovyan/a", "home/jovyan/b"]], "hard link kept")
    tap.is_(links_before, links_after, "same hard links as before")
    tap.is_(os.readlink(os.path.join(m, "home/jovyan/abs-link")), "/etc/keep.conf",
            "absolute symlink target kept as it was")
    tap.is_(xattr(os.path.join(m, "usr/bin/tool"), "security.capability"), CAP,
            "security.capability kept")
    tap.is_(oct(stat.S_IMODE(os.lstat(os.path.join(m, "usr/local/bin/suid")).st_mode)),
            oct(0o4755), "setuid bit kept")
    st = os.lstat(os.path.join(m, "opt/app/fresh"))
    tap.is_((st.st_uid, st.st_gid), (1000, 1000), "owner kept")
    deep = os.path.join(m, "home/jovyan", "d" * 60, "e" * 60, LONG)
    tap.ok(os.path.isfile(deep), "a name longer than 100 bytes (pax) kept")
    tap.ok(stat.S_ISFIFO(os.lstat(os.path.join(m, "home/jovyan/pipe")).st_mode), "fifo kept")


def store_state(store):
    with open(os.path.join(store, "index.json"), "rb") as f:
        idx = f.read()
    return (idx, entries(os.path.join(store, "blobs/sha256")),
            entries(os.path.join(store, "rootfs")), entries(os.path.join(store, "tmp")))


def faults(tap, tmp, store, mounts):
    before = store_state(store)
    bad = os.path.join(tmp, "upper-unreadable")
    os.makedirs(os.path.join(bad, "etc"))
    write(os.path.join(bad, "etc/a-fine"), "fine\n")
    write(os.path.join(bad, "etc/secret"), "no\n", 0o000)
    # root without CAP_DAC_OVERRIDE/READ_SEARCH: a mode 000 file is unreadable
    drop = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search",
            "--inh-caps", "-dac_override,-dac_read_search"]
    rc, out, err = image(store, "commit", "--base", "base", "--upper", bad, "broken",
                         wrap=drop)
    tap.is_(rc, 1, "unreadable file: exit 1")
    tap.ok(os.path.join(bad, "etc/secret") in err and "Permission denied" in err,
           "unreadable file: the error names the file", err)
    tap.is_(store_state(store), before, "unreadable file: the store is as it was")
    big = os.path.join(tmp, "upper-big")
    os.makedirs(big)
    write(os.path.join(big, "big.bin"), os.urandom(2 << 20))
    tmpdir = os.path.join(store, "tmp")
    mounts.mount(["mount", "-t", "tmpfs", "-o", "size=512k,mode=0711", "tmpfs"], tmpdir)
    rc, out, err = image(store, "commit", "--base", "base", "--upper", big, "broken")
    tap.is_(rc, 1, "full tmp/: exit 1")
    tap.ok("No space left on device" in err, "full tmp/: the error says so", err)
    tap.is_(entries(tmpdir), [], "full tmp/: the work dir is removed")
    mounts.umount(tmpdir)
    tap.is_(store_state(store), before, "full tmp/: the store is as it was")
    rc, out, err = image(store, "commit", "--upper", big, "broken")
    tap.ok(rc == 2 and "--base" in err, "usage: missing --base is exit 2", err)
    rc, out, err = image(store, "commit", "--base", "base", "--upper", big, "Bad_Name")
    tap.ok(rc == 1 and "Bad_Name" in err, "an invalid new name: exit 1 naming it", err)


def rm_commit(tap, store, layers):
    rc, out, err = image(store, "rm", "snap")
    tap.is_(rc, 0, "rm snap: exit 0")
    tap.is_(entries(os.path.join(store, "rootfs")), [os.path.basename(layers[1])],
            "rm snap: its layer is gone, the base layer stays")
    tap.is_(len(entries(os.path.join(store, "blobs/sha256"))), 3,
            "rm snap: only the base's blobs (layer, config, manifest) left")
    rc, out, err = image(store, "inspect", "base")
    tap.is_(rc, 0, "rm snap: the base still resolves")


def run(tap):
    if os.geteuid() != 0:
        T.skip_all("commit needs root (overlay mounts, whiteout device nodes)")
    with open("/proc/filesystems") as f:
        if "overlay" not in f.read():
            T.skip_all("no overlayfs in this kernel")
    tmp = tempfile.mkdtemp(prefix="nbgate-t6010-")
    mounts = Mounts()
    try:
        store = os.path.join(tmp, "store")
        base_digest, base_layer = make_base_store(tmp, store)
        t0 = time.monotonic()
        layers = round_trip(tap, tmp, store, mounts, base_layer, base_digest)
        tap.diag("round trip: %.2f s" % (time.monotonic() - t0))
        faults(tap, tmp, store, mounts)
        if layers:
            rm_commit(tap, store, layers)
    finally:
        mounts.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


T.main(run)
