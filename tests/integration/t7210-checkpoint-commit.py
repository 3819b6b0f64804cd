#!/usr/bin/python3
"""Commit checkpoints end to end (issue 4): the real nbgate, the sandboxed
`local` backend, the real `minimal` image.

A package-manager-style change is made inside the running sandbox as root
through its own mount namespace (what `apt install` or a root `pip install`
does: files written through the overlay into the server's upper dir): a new
module in Python's dist-packages, and a deleted file of the image. The
culler, with action `commit` and a short idle timeout, puts the server away:
its upper dir becomes an image layer (state suspended, a `commit` row in the
checkpoint list, the committed image in the store). A browser's request of
the server's URL resumes it from base + that layer: the module imports in a new
kernel, the deleted file stays deleted, the old kernel is gone (kernels are
restarted, and the progress says so). Then the checkpoint is deleted and the
committed image leaves the store with it."""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import nbgate_test as T  # noqa: E402
import jupyter as J  # noqa: E402

STORE = os.environ.get("NBGATE_IMAGE_STORE", "/var/cache/nbgate/images")
USER = "cliff"
MODULE = "/usr/lib/python3/dist-packages/nbgate_commit_probe.py"
DELETED = "/etc/issue.net"


def shim_pid(state_dir):
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                argv = open("/proc/%s/cmdline" % p, "rb").read().split(b"\0")
            except OSError:
                continue
            if argv[0].endswith(b"nbgate-init") and len(argv) > 1 and \
                    argv[1].startswith((state_dir + "/run/").encode()):
                return int(p)
    return None


def store_refs():
    try:
        idx = json.load(open(os.path.join(STORE, "index.json")))
    except OSError:
        return []
    return [m.get("annotations", {}).get("org.opencontainers.image.ref.name") for m in idx.get("manifests", [])]


def in_sandbox(shim, script):
    """Runs a shell script as root in the sandbox's mount namespace (PID 1's)."""
    pid1 = int(open("/proc/%d/task/%d/children" % (shim, shim)).read().split()[0])
    return subprocess.run(["nsenter", "-t", str(pid1), "-m", "sh", "-c", script],
                          capture_output=True, text=True, timeout=30)


def run(tap):
    if not os.path.isfile(os.path.join(STORE, "index.json")):
        T.skip_all("no image store at %s: run `make images` (make test does)" % STORE)
    T.wait_until(lambda: not os.path.isdir("/sys/fs/cgroup/memory/nbgate/" + USER) and
                 not os.path.isdir("/sys/fs/cgroup/nbgate/" + USER), 20, 0.2)
    profiles = [{"name": "minimal", "display_name": "Jupyter Server", "image": "minimal", "cpu": 1,
                 "memory": "2G"}]
    gw = T.Gateway(tap, users=[(USER, T.DEFAULT_PASSWORD, False)], name="gw-commit",
                   config={"spawner": "local", "spawn_timeout": "120s", "log_level": "info",
                           "profiles": profiles, "images": ["minimal"],
                           "cull": {"idle_timeout": 4, "interval": 1, "action": "commit"}})
    gw.cfg.pop("server_cmd", None)
    with open(gw.config_path, "w") as f:
        json.dump(gw.cfg, f, indent=1)
    gw.start()
    tok = gw.create_token(USER)
    auth = {"Authorization": "token " + tok}
    cl = J.Client("/user/%s/" % USER, auth, tcp=(gw.host, gw.port), host_header=gw.public_host)

    def api(method, path, body=None):
        h = dict(auth)
        if body is not None:
            h["Content-Type"] = "application/json"
            body = json.dumps(body).encode()
        return gw.request(method, "/hub/api/users/%s%s" % (USER, path), headers=h, body=body)

    def state():
        srv = ((api("GET", "").json() or {}).get("servers") or {}).get("") or {}
        return srv.get("state")

    r = api("POST", "/server", {"profile": "minimal"})
    tap.in_(r.status, (201, 202), "start the minimal image", r.text()[:200])
    ready, events = J.progress_ready(gw, tok, USER, "", 120)
    tap.ok(ready, "the server is ready", repr(events)[-400:])
    r = cl.req("POST", "api/kernels", body={"name": "python3"})
    kid = (r.json() or {}).get("id")
    tap.ok(r.status == 201 and kid, "a kernel runs", r.text()[:200])
    shim = shim_pid(gw.state_dir)
    p = in_sandbox(shim, "echo 'VALUE = 4242' > %s && rm %s && test -e %s" % (MODULE, DELETED, MODULE))
    tap.is_(p.returncode, 0, "as root in the sandbox: a module written into dist-packages, %s deleted"
            % DELETED, p.stderr)
    upper = os.path.join(gw.state_dir, "run", USER, "upper")
    tap.ok(os.path.isfile(upper + MODULE), "the change is in the server's upper dir")
    t0 = time.monotonic()
    ok = T.wait_until(lambda: state() == "suspended", 60, 0.2)
    tap.ok(ok, "the idle server is culled with action commit (%.1f s)" % (time.monotonic() - t0),
           repr(api("GET", "").json())[:400] + gw.proc.stderr_text()[-2000:])
    cks = api("GET", "/server/checkpoints").json() or []
    ck = cks[0] if cks else {}
    tap.ok(ck.get("mode") == "commit" and ck.get("state") == "ready", "a commit checkpoint is listed",
           repr(cks)[:300])
    ref = ck.get("path") or "minimal-ckpt-%s-%s" % (USER, ck.get("id"))
    tap.ok(any(x and x.startswith("minimal-ckpt-") for x in store_refs()), "the committed image is in the store",
           repr(store_refs()))
    tap.ok(shim_pid(gw.state_dir) is None, "no sandbox process while suspended")
    # the user comes back: a browser's request of the server's URL resumes it
    r = gw.request("GET", "/user/%s/api/status" % USER, headers=dict(auth, Accept="text/html"))
    tap.ok(r.status == 200 and "Resuming your server" in r.text(),
           "a browser's request of the server's URL resumes it (Resuming page)", r.text()[:200])
    r = cl.req("GET", "api/kernels")
    tap.is_(r.status, 200, "an API request is held until the server is back, then answered", r.text()[:200])
    tap.ok(kid not in r.text(), "the old kernel is gone: kernels are restarted after a commit", r.text()[:200])
    ev = J.progress_ready(gw, tok, USER, "", 5)[1]
    msgs = " | ".join(e.get("message") or "" for e in ev)
    r = cl.req("POST", "api/kernels", body={"name": "python3"})
    kid2 = (r.json() or {}).get("id")
    try:
        out = J.execute(cl, kid2, "import os, nbgate_commit_probe\nprint(nbgate_commit_probe.VALUE, "
                        "os.path.exists(%r))" % DELETED, user=USER).strip()
    except Exception as e:
        out = repr(e)
    tap.is_(out, "4242 False", "after resume: the installed module imports, the deleted file stays deleted")
    tap.ok(not os.path.exists(upper + MODULE), "the upper dir was reset (the change lives in the image layer)")
    cks = api("GET", "/server/checkpoints").json() or []
    tap.is_([c.get("state") for c in cks][:1], ["restored"], "the checkpoint is marked restored", msgs)
    api("DELETE", "/server")
    tap.ok(T.wait_until(lambda: state() in (None, "stopped"), 30, 0.2), "stop")
    for c in cks:
        r = api("DELETE", "/server/checkpoints/%s" % c["id"])
        tap.in_(r.status, (204,), "DELETE checkpoint %s" % c["id"], r.text()[:200])
    tap.ok(not any(x == ref for x in store_refs()), "the committed image left the store with its checkpoint",
           repr(store_refs()))
    gw.stop()


T.main(run)
