#!/usr/bin/python3
"""Images (issue 3 item 1): a real mmdebstrap build of the `minimal` recipe
into the machine-level store (cached after the first run), list/inspect,
the cache hit, a failing build (nonexistent package) that names step
mmdebstrap and leaves nothing behind, validation errors naming the field,
CLI usage errors, and rm + gc on a scratch store.
Needs root and mmdebstrap (skips otherwise); the first run needs the Debian
mirror and takes about 2 minutes."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import nbgate_test as T  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RECIPE = os.path.join(REPO, "images", "recipes", "minimal")
STORE = os.environ.get("NBGATE_IMAGE_STORE") or "/var/cache/nbgate/images"


def image(store, *args, timeout=60):
    env = dict(os.environ, NBGATE_IMAGE_STORE=store)
    t0 = time.monotonic()
    p = subprocess.run([T.nbgate_path(), "image"] + list(args), env=env, timeout=timeout,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return p.returncode, p.stdout, p.stderr, time.monotonic() - t0


def entries(d):
    try:
        return sorted(os.listdir(d))
    except FileNotFoundError:
        return []


def real_build(tap):
    rc, out, err, dt = image(STORE, "build", RECIPE, timeout=1500)
    tap.is_(rc, 0, "build minimal: exit 0 (%.0f s)" % dt)
    if rc != 0:
        tap.diag(out[-3000:] + err[-3000:])
        return None
    tap.ok("image minimal:" in out, "build minimal: progress or cache line on stdout")
    rc, out, err, _ = image(STORE, "list")
    tap.is_(rc, 0, "list: exit 0")
    lines = out.splitlines()
    tap.ok(lines and lines[0].split() == ["NAME", "DIGEST", "SIZE", "CREATED", "RECIPE"],
           "list: header NAME DIGEST SIZE CREATED RECIPE", out)
    tap.ok(any(line.split()[:1] == ["minimal"] for line in lines[1:]), "list: has minimal", out)
    rc, out, err, _ = image(STORE, "inspect", "minimal")
    tap.is_(rc, 0, "inspect minimal: exit 0")
    info = json.loads(out) if rc == 0 else {}
    return info


def check_image(tap, info):
    tap.is_(info.get("name"), "minimal", "inspect: name")
    tap.is_(info.get("server_type"), "jupyter", "inspect: server type label")
    tap.is_(info.get("user"), "jovyan", "inspect: user")
    tap.is_(info.get("home"), "/home/jovyan", "inspect: home")
    tap.ok("--ServerApp.sock={sock}" in info.get("cmd", []), "inspect: cmd keeps {sock}")
    cfg = info.get("config", {})
    tap.is_(cfg.get("config", {}).get("Labels", {}).get("io.nbgate.recipe.digest"),
            info.get("recipe_digest"), "config label carries the recipe digest")
    man = info.get("manifest", {})
    tap.is_(man.get("layers", [{}])[0].get("mediaType"),
            "application/vnd.oci.image.layer.v1.tar", "manifest: uncompressed OCI layer")
    layers = info.get("layers", [])
    tap.is_(len(layers), 1, "one layer")
    root = layers[0] if layers else "/nonexistent"
    tap.ok(os.path.isfile(os.path.join(root, "usr/bin/python3")), "layer: has python3")
    tap.ok(os.path.isdir(os.path.join(root, "usr/lib/python3/dist-packages/jupyter_server")),
           "layer: has jupyter_server")
    with open(os.path.join(root, "etc/passwd")) as f:
        tap.ok("jovyan:x:1000:1000:" in f.read(), "post-install ran: user jovyan (1000)")
    tap.ok(not os.path.exists(os.path.join(root, "tmp/nbgate-build")),
           "no build folder (host CA bundle) left in the image")
    tap.is_(entries(os.path.join(root, "dev")), [], "no device nodes in the layer")
    st = os.stat(os.path.join(root, "usr/bin/python3"), follow_symlinks=False)
    tap.is_((st.st_uid, st.st_gid), (0, 0), "owners preserved (root)")
    digest = man.get("layers", [{}])[0].get("digest", "")
    tap.is_(os.path.basename(root), digest.replace("sha256:", ""),
            "unpacked layer folder named by the diff id")
    # the layout
    with open(os.path.join(STORE, "oci-layout")) as f:
        tap.is_(json.load(f).get("imageLayoutVersion"), "1.0.0", "oci-layout")
    with open(os.path.join(STORE, "index.json")) as f:
        idx = json.load(f)
    ent = [m for m in idx.get("manifests", [])
           if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == "minimal"]
    tap.is_(len(ent), 1, "index.json: one entry named minimal")
    tap.ok(ent and ent[0].get("annotations", {}).get("io.nbgate.recipe.digest")
           == info.get("recipe_digest"), "index.json: recipe digest annotation")


def cache_hit(tap, info):
    rc, out, err, dt = image(STORE, "build", RECIPE, timeout=120)
    tap.is_(rc, 0, "rebuild: exit 0")
    tap.ok("image minimal: cached (%s)" % info.get("digest") in out,
           "rebuild: prints 'image minimal: cached (<digest>)'", out + err)
    tap.ok(dt < 10, "rebuild: cache hit is fast (%.2f s)" % dt)
    tap.ok("mmdebstrap" not in out, "rebuild: mmdebstrap not run")


def failing_build(tap, tmp):
    store = os.path.join(tmp, "store-fail")
    bad = os.path.join(tmp, "broken")
    shutil.copytree(RECIPE, bad)
    with open(os.path.join(bad, "recipe.json")) as f:
        r = json.load(f)
    r["name"] = "t6000-broken"
    r["packages"] = ["nbgate-no-such-package-t6000"]
    with open(os.path.join(bad, "recipe.json"), "w") as f:
        json.dump(r, f)
    rc, out, err, dt = image(store, "build", bad, timeout=900)
    tap.is_(rc, 1, "nonexistent package: exit 1 (%.0f s)" % dt)
    tap.ok("step 'mmdebstrap'" in err, "nonexistent package: error names step mmdebstrap",
           err[-2000:])
    tap.ok("exit status" in err and "last lines" in err,
           "nonexistent package: exit status and last lines in the error", err[-2000:])
    tap.ok("step 2/6: mmdebstrap" in out, "progress: step lines announced", out[-2000:])
    rc, out, _, _ = image(store, "list")
    tap.ok(rc == 0 and "t6000-broken" not in out, "failed build: no image in the store", out)
    tap.is_(entries(os.path.join(store, "tmp")), [], "failed build: nothing left in tmp/")
    tap.is_(entries(os.path.join(store, "rootfs")), [], "failed build: no unpacked layer")
    tap.is_(entries(os.path.join(store, "blobs", "sha256")), [], "failed build: no blobs")
    # a validation error names the field, before anything runs
    r["packages"] = ["ok-package", "bad,package"]
    with open(os.path.join(bad, "recipe.json"), "w") as f:
        json.dump(r, f)
    rc, out, err, dt = image(store, "build", bad)
    tap.is_(rc, 1, "invalid recipe: exit 1")
    tap.ok("field 'packages[1]'" in err and "step 'validate'" in err,
           "invalid recipe: error names step validate and field packages[1]", err)
    tap.ok(dt < 5, "invalid recipe: fails at once")
    rc, out, err, _ = image(store, "build", os.path.join(tmp, "no-such-recipe"))
    tap.ok(rc == 1 and "no-such-recipe" in err, "missing recipe folder: error names it", err)


def usage_errors(tap, tmp):
    store = os.path.join(tmp, "store-usage")
    for args, frag in ((["build"], "RECIPE_DIR"), (["frobnicate"], "'frobnicate'"),
                       (["inspect"], "inspect"), (["rm", "a", "b"], "rm"),
                       (["build", RECIPE, "--bogus"], "'--bogus'"),
                       (["build", RECIPE, "--mirror", "ftp://x"], "--mirror")):
        rc, out, err, _ = image(store, *args)
        tap.ok(rc == 2 and frag in err, "usage error %r: exit 2 naming %s" % (args, frag),
               "rc=%d err=%s" % (rc, err))
    rc, out, err, _ = image(store, "inspect", "nothere")
    tap.ok(rc == 1 and "'nothere'" in err and "nbgate image build" in err,
           "inspect of an unknown image: exit 1, says how to build it", err)


def rm_gc(tap, tmp, info):
    """rm + gc on a scratch copy (hard links) of the real store."""
    store = os.path.join(tmp, "store-rm")
    os.makedirs(os.path.join(store, "blobs"))
    os.makedirs(os.path.join(store, "rootfs"))
    subprocess.run(["cp", "-al", os.path.join(STORE, "blobs", "sha256"),
                    os.path.join(store, "blobs")], check=True)
    for layer in info["layers"]:
        subprocess.run(["cp", "-al", layer, os.path.join(store, "rootfs")], check=True)
    shutil.copy(os.path.join(STORE, "oci-layout"), store)
    with open(os.path.join(STORE, "index.json")) as f:
        idx = json.load(f)
    ent = [m for m in idx["manifests"]
           if m["annotations"]["org.opencontainers.image.ref.name"] == "minimal"][0]
    twin = json.loads(json.dumps(ent))
    twin["annotations"]["org.opencontainers.image.ref.name"] = "minimal-twin"
    idx["manifests"] = [ent, twin]
    with open(os.path.join(store, "index.json"), "w") as f:
        json.dump(idx, f)
    orphan = os.path.join(store, "blobs", "sha256", "ab" * 32)
    with open(orphan, "w") as f:
        f.write("orphan")
    rc, out, err, _ = image(store, "list")
    tap.ok(rc == 0 and "minimal-twin" in out, "scratch store: lists both names", out + err)
    rc, out, err, _ = image(store, "rm", "minimal")
    tap.is_(rc, 0, "rm minimal: exit 0")
    rc, out, err, _ = image(store, "inspect", "minimal-twin")
    tap.is_(rc, 0, "rm: the twin sharing the blobs still resolves")
    tap.ok(all(os.path.isdir(os.path.join(store, "rootfs", os.path.basename(p)))
               for p in info["layers"]), "rm: shared layer kept")
    tap.ok(not os.path.exists(orphan), "rm: unreferenced blob collected")
    with open(orphan, "w") as f:
        f.write("orphan")
    rc, out, err, _ = image(store, "gc")
    tap.ok(rc == 0 and not os.path.exists(orphan), "gc: unreferenced blob collected")
    rc, out, err, _ = image(store, "rm", "minimal-twin")
    tap.is_(rc, 0, "rm minimal-twin: exit 0")
    tap.is_(entries(os.path.join(store, "blobs", "sha256")), [], "rm last: no blobs left")
    tap.is_(entries(os.path.join(store, "rootfs")), [], "rm last: no layers left")
    rc, out, err, _ = image(store, "rm", "minimal-twin")
    tap.ok(rc == 1 and "'minimal-twin'" in err, "rm again: exit 1 naming the image", err)
    tap.ok(os.path.isdir(info["layers"][0]), "the real store is untouched")


def run(tap):
    if os.geteuid() != 0:
        T.skip_all("image builds need root (mmdebstrap --mode=root)")
    if not os.path.exists("/usr/bin/mmdebstrap"):
        T.skip_all("mmdebstrap is not installed")
    tmp = tempfile.mkdtemp(prefix="nbgate-t6000-")
    try:
        usage_errors(tap, tmp)
        info = real_build(tap)
        if info:
            check_image(tap, info)
            cache_hit(tap, info)
            rm_gc(tap, tmp, info)
        failing_build(tap, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


T.main(run)
