#!/usr/bin/python3
"""CRIU checkpoints end to end (issue 4): the real nbgate with the sandboxed
`local` backend, the real `jupyterlab` image, the real (patched) CRIU.

Round trip, three cycles in a row: a kernel holds `x = 42` and a 200 MB
numpy array, a terminal's shell has a command in its history; POST
.../checkpoint {"mode": "criu"} suspends the server: the sandbox processes
and its cgroup (its memory) are gone, the images sit in a root-only 0700
directory; an idle tab's poll waits without resuming it; a browser's
request of the server's URL gets the Resuming page and brings it back, and
the waiting poll is then answered; the same kernel id answers
and still has x == 42 and the array's checksum; the shell's history still
has the command.

Faults: CRIU killed with SIGKILL mid-dump (the server keeps running, no
checkpoint is recorded); a corrupted image (resume falls back to a fresh
start and says why; the home is intact; the checkpoint is kept, marked
broken); the gateway restarted while the server is suspended (it resumes
later as if nothing happened); a per-user checkpoint quota smaller than the
kernel's memory (the dump is refused before it starts, the server keeps
running)."""
import json
import os
import re
import stat
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import nbgate_test as T  # noqa: E402
import jupyter as J  # noqa: E402

STORE = os.environ.get("NBGATE_IMAGE_STORE", "/var/cache/nbgate/images")
CRIU = os.environ.get("NBGATE_CRIU_PATH", "/usr/local/sbin/criu")
STATE = "import numpy as np\nx = 42\na = np.random.default_rng(7).random(25_000_000)\nprint(repr(float(a.sum())))"
CHECK = "print(x, repr(float(a.sum())))"


def shim_pids(state_dir):
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                if (state_dir + "/run/").encode() in open("/proc/%s/cmdline" % p, "rb").read():
                    out.append(int(p))
            except OSError:
                pass
    return out


def cgroup_dirs(slug):
    dirs = ["/sys/fs/cgroup/nbgate/" + slug] + ["/sys/fs/cgroup/%s/nbgate/%s" % (c, slug)
                                               for c in ("memory", "cpu", "pids")]
    return [d for d in dirs if os.path.isdir(d)]


def criu_pids():
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                argv = open("/proc/%s/cmdline" % p, "rb").read().split(b"\0")
            except OSError:
                continue
            if argv and argv[0].endswith(b"/criu") and len(argv) > 1 and argv[1] == b"dump":
                out.append(int(p))
    return out


class Lab:
    def __init__(self, tap, gw):
        self.tap, self.gw = tap, gw
        self.tok = gw.create_token("cora")
        self.auth = {"Authorization": "token " + self.tok}
        self.cl = J.Client("/user/cora/", self.auth, tcp=(gw.host, gw.port), host_header=gw.public_host)

    def api(self, method, path, body=None):
        h = dict(self.auth)
        if body is not None:
            h["Content-Type"] = "application/json"
            body = json.dumps(body).encode()
        return self.gw.request(method, "/hub/api/users/cora" + path, headers=h, body=body)

    def navigate(self, sub):
        """A browser's GET of the server's URL (Accept: text/html)."""
        return self.gw.request("GET", "/user/cora/" + sub, headers=dict(self.auth, Accept="text/html"))

    def state(self):
        r = self.api("GET", "")
        srv = ((r.json() or {}).get("servers") or {}).get("") or {}
        return srv.get("state") if isinstance(srv.get("state"), str) else \
            ("running" if srv.get("ready") else srv.get("pending"))

    def start(self):
        r = self.api("POST", "/server", {"profile": "jupyterlab"})
        self.tap.in_(r.status, (201, 202), "cora starts JupyterLab", r.text()[:300])
        ready, events = J.progress_ready(self.gw, self.tok, "cora", "", 120)
        self.tap.ok(ready, "the server is ready", repr(events)[-600:])

    def checkpoints(self):
        r = self.api("GET", "/server/checkpoints")
        return r.json() if r.status == 200 and isinstance(r.json(), list) else []

    def checkpoint(self, label, mode="criu"):
        t0 = time.monotonic()
        r = self.api("POST", "/server/checkpoint", {"mode": mode})
        self.tap.is_(r.status, 202, "%s: POST .../server/checkpoint {mode: %s} -> 202" % (label, mode),
                     r.text()[:300])
        ok = T.wait_until(lambda: self.state() in ("suspended", "failed", "stopped"), 120, 0.1) and \
            self.state() == "suspended"
        self.tap.ok(ok, "%s: the server is suspended (%.2f s)" % (label, time.monotonic() - t0),
                    repr(self.api("GET", "").json())[:600] + "\n" + self.gw.proc.stderr_text()[-3000:])
        return ok


def terminal(lab):
    r = lab.cl.req("POST", "api/terminals")
    name = (r.json() or {}).get("name")
    lab.tap.ok(r.status == 200 and name, "a terminal is created", r.text()[:200])
    return name


def term_run(lab, name, line, want, timeout=20):
    """Types line into the terminal; True when `want` appears in its output."""
    ws = lab.cl.ws("terminals/websocket/%s" % name)
    try:
        ws.send(json.dumps(["stdin", line + "\r"]))
        out, deadline = "", time.monotonic() + timeout
        while time.monotonic() < deadline:
            ws.settimeout(max(0.2, deadline - time.monotonic()))
            try:
                m = json.loads(ws.recv())
            except Exception:
                break
            if m and m[0] == "stdout":
                out += m[1]
                if re.search(want, out):
                    return True, out
        return False, out
    finally:
        ws.close()


def round_trip(tap, gw, lab, kid, term, want_sum, cycle):
    label = "cycle %d" % cycle
    # an open kernel WebSocket, like a JupyterLab tab's: the gateway closes
    # it for the dump (CRIU cannot take a socket whose peer stays outside)
    ws = lab.cl.ws("api/kernels/%s/channels" % kid)
    if not lab.checkpoint(label):
        return False
    try:
        ws.settimeout(5)
        while ws.recv():
            pass
        closed = True
    except Exception as e:
        closed = "closed" in repr(e).lower() or "connection" in repr(e).lower()
    tap.ok(closed, "%s: the open kernel WebSocket was closed for the dump" % label)
    tap.is_(shim_pids(gw.state_dir), [], "%s: no sandbox process left" % label)
    tap.is_(cgroup_dirs("cora"), [], "%s: the sandbox's cgroup is gone (its memory freed)" % label)
    cks = lab.checkpoints()
    ck = cks[0] if cks else {}
    tap.ok(ck.get("mode") == "criu" and ck.get("state") == "ready" and ck.get("size", 0) > 150e6,
           "%s: the checkpoint is listed: criu, ready, %.0f MB" % (label, ck.get("size", 0) / 1e6), repr(cks)[:400])
    cdir = os.path.join(gw.state_dir, "checkpoints", "cora", str(ck.get("id")))
    mode = stat.S_IMODE(os.stat(cdir).st_mode) if os.path.isdir(cdir) else None
    tap.ok(mode == 0o700 and os.stat(cdir).st_uid == 0, "%s: images in a root-only 0700 dir (%s)"
           % (label, oct(mode or 0)), cdir)
    # the idle tab's polling waits without resuming; the user coming back
    # (a navigation to the server's URL) resumes; the poll is then answered
    out = {}
    poll = threading.Thread(target=lambda: out.update(r=lab.cl.req("GET", "api/kernels")))
    poll.start()
    time.sleep(1.0)
    tap.ok(lab.state() == "suspended" and poll.is_alive(), "%s: polling waits and does not resume" % label)
    t0 = time.monotonic()
    r = lab.navigate("lab")
    tap.ok(r.status == 200 and "Resuming your server" in r.text(), "%s: GET /user/cora/lab (a browser) "
           "-> Resuming page" % label, r.text()[:300])
    poll.join(120)
    r = out.get("r")
    ids = [k.get("id") for k in (r.json() or [])] if r is not None and r.status == 200 else []
    tap.ok(kid in ids, "%s: the held poll is answered after the restore (%.2f s), same kernel id"
           % (label, time.monotonic() - t0), repr(r)[:300])
    tap.is_(lab.state(), "running", "%s: the server is running again" % label)
    try:
        got = J.execute(lab.cl, kid, CHECK).strip()
    except Exception as e:
        got = repr(e)
    tap.is_(got, "42 " + want_sum, "%s: same kernel: x == 42 and the 200 MB array's checksum match" % label)
    ok, out = term_run(lab, term, "history | tail -n 5", r"echo nbgate-marker-1")
    tap.ok(ok, "%s: the terminal's shell history survived" % label, out[-400:])
    return True


def fault_kill_criu(tap, gw, lab, kid, want_sum):
    before = [c.get("id") for c in lab.checkpoints()]
    r = lab.api("POST", "/server/checkpoint", {"mode": "criu"})
    tap.is_(r.status, 202, "kill -9 CRIU: checkpoint begun")
    killed = []
    deadline = time.monotonic() + 20
    while not killed and time.monotonic() < deadline:
        for p in criu_pids():
            try:
                os.kill(p, 9)
                killed.append(p)
            except ProcessLookupError:
                pass
        time.sleep(0.005)
    tap.ok(killed, "kill -9 CRIU: killed criu dump pid(s) %r mid-dump" % killed)
    ok = T.wait_until(lambda: lab.state() == "running", 60, 0.1)
    tap.ok(ok, "kill -9 CRIU: the server is running again", repr(lab.api("GET", "").json())[:400])
    try:
        got = J.execute(lab.cl, kid, CHECK).strip()
    except Exception as e:
        got = repr(e)
    tap.is_(got, "42 " + want_sum, "kill -9 CRIU: the kernel kept running untouched")
    after = [c.get("id") for c in lab.checkpoints()]
    tap.is_(after, before, "kill -9 CRIU: no checkpoint recorded")


def fault_restart(tap, gw, lab, kid, want_sum):
    if not lab.checkpoint("restart while suspended"):
        return
    gw.proc.stop()
    T.Gateway.live.remove(gw)  # start() adds it again
    gw.start()
    tap.is_(lab.state(), "suspended", "restart while suspended: still suspended after the gateway restart")
    r = lab.navigate("lab")
    tap.ok(r.status == 200 and "Resuming your server" in r.text(),
           "restart while suspended: the server's URL resumes it", r.text()[:200])
    T.wait_until(lambda: lab.state() == "running", 60, 0.1)
    r = lab.cl.req("GET", "api/kernels")
    tap.ok(r.status == 200 and kid in r.text(), "restart while suspended: the same kernel is back",
           "%s %s" % (r.status, r.text()[:200]))
    try:
        got = J.execute(lab.cl, kid, CHECK).strip()
    except Exception as e:
        got = repr(e)
    tap.is_(got, "42 " + want_sum, "restart while suspended: x and the array survived")


def fault_corrupt(tap, gw, lab):
    if not lab.checkpoint("corrupt image"):
        return
    ck = lab.checkpoints()[0]
    cdir = os.path.join(gw.state_dir, "checkpoints", "cora", str(ck["id"]))
    victims = [f for f in os.listdir(cdir) if f.startswith("pstree")] or \
        [f for f in os.listdir(cdir) if f.endswith(".img")][:1]
    for f in victims:
        with open(os.path.join(cdir, f), "r+b") as fh:
            fh.write(b"\xff" * 64)
    tap.ok(victims, "corrupt image: overwrote %r" % victims)
    r = lab.api("POST", "/server/resume")
    tap.in_(r.status, (200, 202), "corrupt image: POST .../server/resume", r.text()[:200])
    ready, events = J.progress_ready(gw, lab.tok, "cora", "", 120)
    msgs = " | ".join(e.get("message") or "" for e in events)
    tap.ok(ready, "corrupt image: the server came back (a fresh start)", msgs[-600:])
    tap.ok("restore failed" in msgs, "corrupt image: the progress says the restore failed and why", msgs[-600:])
    r = lab.cl.req("GET", "api/contents/kept.txt?content=1")
    tap.ok(r.status == 200 and "kept" in r.text(), "corrupt image: the home is intact", r.text()[:200])
    cks = {c["id"]: c for c in lab.checkpoints()}
    tap.is_((cks.get(ck["id"]) or {}).get("state"), "broken", "corrupt image: the checkpoint is kept, marked broken")


def quota(tap):
    profiles = [{"name": "jupyterlab", "display_name": "JupyterLab", "image": "jupyterlab", "cpu": 2,
                 "memory": "4G"}]
    gw = T.Gateway(tap, users=[("cora", T.DEFAULT_PASSWORD, False)], name="gw-quota",
                   config={"spawner": "local", "spawn_timeout": "120s", "profiles": profiles,
                           "images": ["jupyterlab"], "checkpoint_user_quota": 250 * 1024 * 1024,
                           "criu_path": CRIU})
    gw.cfg.pop("server_cmd", None)
    with open(gw.config_path, "w") as f:
        json.dump(gw.cfg, f, indent=1)
    gw.start()
    lab = Lab(tap, gw)
    lab.start()
    kid = (lab.cl.req("POST", "api/kernels", body={"name": "python3"}).json() or {}).get("id")
    J.execute(lab.cl, kid, STATE)
    r = lab.api("POST", "/server/checkpoint", {"mode": "criu"})
    tap.is_(r.status, 507, "quota: a dump bigger than the 250 MiB quota is refused before it starts",
            r.text()[:300])
    tap.ok("quota" in r.text(), "quota: the message names the quota", r.text()[:300])
    tap.is_(lab.checkpoints(), [], "quota: no checkpoint recorded")
    tap.is_(lab.state(), "running", "quota: the server keeps running")
    J.execute(lab.cl, kid, "del a")  # now well below the quota
    time.sleep(0.5)
    r = lab.api("POST", "/server/checkpoint", {"mode": "criu"})
    tap.is_(r.status, 202, "quota: below the quota the same dump is accepted", r.text()[:300])
    tap.ok(T.wait_until(lambda: lab.state() == "suspended", 60, 0.1), "quota: and the server is suspended")
    lab.api("DELETE", "/server")
    T.wait_until(lambda: not shim_pids(gw.state_dir), 30, 0.2)
    gw.stop()


def run(tap):
    if not os.path.isfile(os.path.join(STORE, "index.json")):
        T.skip_all("no image store at %s: run `make images` (make test does)" % STORE)
    if not os.access(CRIU, os.X_OK):
        T.skip_all("no CRIU at %s: run `make criu` (make test does)" % CRIU)
    # a sandbox of an earlier test named cora may still be cleaning up
    T.wait_until(lambda: not cgroup_dirs("cora"), 20, 0.2)
    profiles = [{"name": "jupyterlab", "display_name": "JupyterLab", "image": "jupyterlab", "cpu": 2,
                 "memory": "4G"}]
    gw = T.Gateway(tap, users=[("cora", T.DEFAULT_PASSWORD, False)], name="gw-criu",
                   config={"spawner": "local", "spawn_timeout": "120s", "log_level": "info",
                           "profiles": profiles, "images": ["jupyterlab"], "criu_path": CRIU})
    gw.cfg.pop("server_cmd", None)
    with open(gw.config_path, "w") as f:
        json.dump(gw.cfg, f, indent=1)
    gw.start()
    lab = Lab(tap, gw)
    lab.start()
    r = lab.cl.req("PUT", "api/contents/kept.txt", body={"type": "file", "format": "text", "content": "kept"})
    tap.in_(r.status, (200, 201), "a file in the home", r.text()[:200])
    r = lab.cl.req("POST", "api/kernels", body={"name": "python3"})
    kid = (r.json() or {}).get("id")
    tap.ok(r.status == 201 and kid, "a kernel is started", r.text()[:200])
    want_sum = J.execute(lab.cl, kid, STATE).strip()
    tap.ok(re.match(r"^\d+\.\d+$", want_sum), "x = 42 and a 200 MB array in the kernel (sum %s)" % want_sum)
    term = terminal(lab)
    ok, out = term_run(lab, term, "echo nbgate-marker-1", r"nbgate-marker-1\r?\n")
    tap.ok(ok, "a command runs in the terminal", out[-300:])
    for cycle in (1, 2, 3):
        if not round_trip(tap, gw, lab, kid, term, want_sum, cycle):
            break
    fault_kill_criu(tap, gw, lab, kid, want_sum)
    fault_restart(tap, gw, lab, kid, want_sum)
    fault_corrupt(tap, gw, lab)
    lab.api("DELETE", "/server")
    tap.ok(T.wait_until(lambda: not shim_pids(gw.state_dir), 30, 0.2), "stop: no sandbox process left")
    gw.stop()
    quota(tap)


T.main(run)
