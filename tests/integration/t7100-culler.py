#!/usr/bin/python3
"""Idle culling end to end (issue 4 "How it is shown": Culling).

The real nbgate with the sandboxed `local` backend and the `jupyterlab`
image; the culler looks every second, idle_timeout 6 s, action "stop" (so
that nothing here depends on CRIU):

 (a) a client replaying what an idle open JupyterLab 4 tab polls (recorded
     from a real tab, see gateway/activity.c) every second -> culled; the
     audit log says "idle";
 (b) a kernel running time.sleep(600), silent -> still running after three
     timeouts; the audit log and the API name the kernel; the kernel
     deleted -> culled;
 (c) a terminal printing a line every second over its WebSocket -> not
     culled; the loop stopped and the terminal closed -> culled;
 (d) a kernel that started a CPU-busy background process and went idle ->
     not culled (cpu); the process killed -> culled.
Loops are bounded; everything is on loopback.
"""
import json
import os
import sqlite3
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import nbgate_test as T  # noqa: E402
import jupyter as J  # noqa: E402

STORE = os.environ.get("NBGATE_IMAGE_STORE", "/var/cache/nbgate/images")
# Sandboxes are named after the user (cgroup nbgate/<user>): a name of its
# own keeps this test clear of others running at the same time.
U = "t7100"
IDLE_S = 6
# cpu_threshold 20 %: a Jupyter server answering four polls a second uses a
# few percent of a CPU by itself; a busy loop uses 100 %.
CULL = {"interval": 1, "idle_timeout": IDLE_S, "action": "stop", "cpu_threshold": 20}

# What an idle JupyterLab 4.0 tab requests every 10 s (api/kernelspecs and
# api/me every 60 s); replayed here every second.
POLLS = ["api/kernels", "api/sessions", "api/terminals", "api/contents?content=1&type=directory"]
POLLS_SLOW = ["api/kernelspecs", "api/me"]


def auth(gw):
    return {"Authorization": "token " + gw.tok}


def server_model(gw):
    r = gw.request("GET", "/hub/api/users/" + U + "", headers=auth(gw))
    j = r.json() or {}
    return (j.get("servers") or {}).get("")


def running(gw):
    m = server_model(gw)
    return bool(m and m.get("ready"))


def start(tap, gw, label):
    r = gw.request("POST", "/hub/api/users/" + U + "/server", headers=dict(auth(gw), **{
        "Content-Type": "application/json"}), body=json.dumps({"profile": "jupyterlab"}).encode())
    tap.in_(r.status, (201, 202), "%s: server starts" % label, repr(r)[:300])
    ready, events = J.progress_ready(gw, gw.tok, U, "", 120)
    tap.ok(ready, "%s: server ready" % label, repr(events)[:800] + gw.proc.stderr_text()[-1500:])
    return ready


def audit(gw, since_id=0):
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(gw.state_dir, "nbgate.db"), uri=True,
                         timeout=5)
    try:
        return db.execute("SELECT id, action, target, detail FROM audit WHERE id > ? AND action LIKE"
                          " 'server.cull%' ORDER BY id", (since_id,)).fetchall()
    finally:
        db.close()


def last_audit_id(gw):
    rows = audit(gw)
    return rows[-1][0] if rows else 0


def wait_culled(gw, timeout):
    """Bounded wait for the server to be gone; returns seconds or None."""
    t0 = time.monotonic()
    ok = T.wait_until(lambda: not running(gw) and not server_model(gw), timeout, 0.25)
    return time.monotonic() - t0 if ok else None


def stays_running(gw, seconds):
    """True when the server is running at every check for `seconds`."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if not running(gw):
            return False
        time.sleep(0.5)
    return running(gw)


def send_execute(cl, kid, code, wait_busy=True):
    """Sends an execute_request and returns once the kernel says busy
    (without waiting for the result); closes the WebSocket."""
    ws = cl.ws("api/kernels/%s/channels" % kid)
    try:
        msg_id = uuid.uuid4().hex
        ws.send(json.dumps({"header": {"msg_id": msg_id, "username": U, "session": uuid.uuid4().hex,
                                       "msg_type": "execute_request", "version": "5.3"},
                            "parent_header": {}, "metadata": {}, "channel": "shell",
                            "content": {"code": code, "silent": False, "store_history": True,
                                        "user_expressions": {}, "allow_stdin": False,
                                        "stop_on_error": True}, "buffers": []}))
        deadline = time.monotonic() + 30
        while wait_busy and time.monotonic() < deadline:
            ws.settimeout(max(0.5, deadline - time.monotonic()))
            m = ws.recv()
            if isinstance(m, bytes):
                continue
            m = json.loads(m)
            if m.get("parent_header", {}).get("msg_id") == msg_id and m.get("msg_type") == "status" \
                    and m["content"].get("execution_state") == "busy":
                return True
        return not wait_busy
    finally:
        ws.close()


def new_kernel(tap, cl, label):
    r = cl.req("POST", "api/kernels", body={"name": "python3"})
    kid = (r.json() or {}).get("id")
    tap.ok(r.status == 201 and kid, "%s: kernel started" % label, r.text()[:300])
    return kid


def case_polling(tap, gw, cl):
    t0 = time.monotonic()  # the idle clock starts with the start request
    if not start(tap, gw, "(a)"):
        return
    mark = last_audit_id(gw)
    statuses, n = set(), 0
    while time.monotonic() - t0 < 30 and running(gw):  # bounded: 30 s
        for p in POLLS + (POLLS_SLOW if n % 6 == 0 else []):
            statuses.add(cl.req("GET", p).status)
        n += 1
        time.sleep(1)
    took = time.monotonic() - t0
    tap.ok(200 in statuses, "(a) the replayed polling reached the server (%d rounds)" % n, statuses)
    tap.ok(wait_culled(gw, 10) is not None and IDLE_S <= took < 25,
           "(a) an idle tab's polling every second does not keep the server: culled after %.1f s" % took)
    rows = audit(gw, mark)
    culls = [r for r in rows if r[1] == "server.cull"]
    tap.ok(culls and "idle for" in culls[0][3] and "action stop" in culls[0][3] and culls[0][2] == U,
           "(a) audit: %s" % (culls[0][3] if culls else "none"), rows)


def case_sleep(tap, gw, cl):
    if not start(tap, gw, "(b)"):
        return
    mark = last_audit_id(gw)
    kid = new_kernel(tap, cl, "(b)")
    if not kid:
        return
    tap.ok(send_execute(cl, kid, "import time\ntime.sleep(600)"), "(b) kernel busy with time.sleep(600)")
    tap.ok(stays_running(gw, 3 * IDLE_S + 2), "(b) a silently busy kernel is not culled after 3x the timeout")
    m = server_model(gw) or {}
    tap.is_(m.get("activity_source"), "kernel", "(b) the API names the kernel as the last activity")
    rows = audit(gw, mark)
    tap.ok(any(r[1] == "server.cull.skip" and "'kernel' active" in r[3] for r in rows),
           "(b) audit: not culled because the kernel is active", rows)
    tap.ok(not any(r[1] == "server.cull" for r in rows), "(b) audit: no cull", rows)
    r = cl.req("DELETE", "api/kernels/" + kid)
    tap.is_(r.status, 204, "(b) kernel deleted")
    took = wait_culled(gw, 20)
    tap.ok(took is not None, "(b) once the kernel is gone the server is culled (%s s)" % took)


def case_terminal(tap, gw, cl):
    if not start(tap, gw, "(c)"):
        return
    mark = last_audit_id(gw)
    r = cl.req("POST", "api/terminals")
    name = (r.json() or {}).get("name")
    tap.ok(r.status == 200 and name, "(c) terminal created (POST api/terminals)", r.text()[:300])
    if not name:
        return
    ws = cl.ws("terminals/websocket/%s" % name)
    ws.send(json.dumps(["stdin", "while true; do echo tick; sleep 1; done\r"]))
    ticks, end, alive = 0, time.monotonic() + 3 * IDLE_S + 2, True
    while time.monotonic() < end:  # bounded: 20 s
        ws.settimeout(2)
        try:
            m = ws.recv()
        except Exception:
            break
        if isinstance(m, str) and "tick" in m:
            ticks += 1
        alive = alive and running(gw)
    tap.ok(ticks >= 5, "(c) the terminal printed through the gateway (%d ticks)" % ticks)
    tap.ok(alive and running(gw), "(c) a terminal in use is not culled after 3x the timeout")
    tap.ok(not any(r[1] == "server.cull" for r in audit(gw, mark)), "(c) audit: no cull")
    ws.send(json.dumps(["stdin", "\x03"]))
    ws.close()
    cl.req("DELETE", "api/terminals/" + name)
    took = wait_culled(gw, 20)
    tap.ok(took is not None, "(c) once the terminal is quiet the server is culled (%s s)" % took)


BUSY = """import subprocess, sys
p = subprocess.Popen([sys.executable, "-c", "while True: pass"])
print(p.pid)"""


def case_cpu(tap, gw, cl):
    if not start(tap, gw, "(d)"):
        return
    mark = last_audit_id(gw)
    kid = new_kernel(tap, cl, "(d)")
    if not kid:
        return
    try:
        pid = J.execute(cl, kid, BUSY).strip()
    except Exception as e:
        tap.ok(False, "(d) background busy process started", repr(e))
        return
    tap.ok(pid.isdigit(), "(d) the kernel started a CPU-busy background process and went idle", pid)
    tap.ok(stays_running(gw, 3 * IDLE_S + 2), "(d) CPU-busy background work is not culled after 3x the timeout")
    m = server_model(gw) or {}
    tap.is_(m.get("activity_source"), "cpu", "(d) the API names the CPU as the last activity")
    rows = audit(gw, mark)
    tap.ok(any(r[1] == "server.cull.skip" and "'cpu' active" in r[3] for r in rows),
           "(d) audit: not culled because the CPU is busy", rows)
    try:
        J.execute(cl, kid, "p.kill(); p.wait()")
    except Exception as e:
        tap.ok(False, "(d) background process killed", repr(e))
    took = wait_culled(gw, 20)
    tap.ok(took is not None, "(d) once the CPU is quiet the server is culled (%s s)" % took)
    rows = audit(gw, mark)
    tap.ok(any(r[1] == "server.cull" and "idle for" in r[3] for r in rows), "(d) audit: culled idle", rows)


def metrics(tap, gw, want):
    r = gw.request("GET", "/hub/metrics", headers=auth(gw))
    line = [ln for ln in r.text().splitlines()
            if ln.startswith('nbgate_cull_total{action="stop",reason="idle"}')]
    tap.ok(line and int(line[0].split()[-1]) >= want, "metrics: nbgate_cull_total counts the %d culls" % want,
           line or r.text()[:500])


def run(tap):
    if not os.path.isfile(os.path.join(STORE, "index.json")):
        T.skip_all("no image store at %s: run `make images` (make test does)" % STORE)
    if os.geteuid() != 0:
        T.skip_all("the local backend's sandboxes need root")
    profiles = [{"name": "jupyterlab", "display_name": "JupyterLab", "image": "jupyterlab", "cpu": 2,
                 "memory": "4G"}]
    gw = T.Gateway(tap, users=[(U, T.DEFAULT_PASSWORD, True)], name="gw-cull",
                   config={"spawner": "local", "spawn_timeout": "120s", "log_level": os.environ.get("T7100_LOG", "info"),
                           "profiles": profiles, "images": ["jupyterlab"], "cull": CULL})
    gw.cfg.pop("server_cmd", None)  # the local backend runs the image's command
    with open(gw.config_path, "w") as f:
        json.dump(gw.cfg, f, indent=1)
    gw.start()
    gw.tok = gw.create_token(U)
    cl = J.Client("/user/%s/" % U, auth(gw), tcp=(gw.host, gw.port), host_header=gw.public_host)
    only = os.environ.get("T7100_CASES")
    ran = 0
    for case in (case_polling, case_sleep, case_terminal, case_cpu):
        if only and case.__name__ not in only.split(","):
            continue
        ran += 1
        tap.run(case.__name__, case, tap, gw, cl)
        if running(gw):  # a failed case must not leave its server to the next
            gw.request("DELETE", "/hub/api/users/" + U + "/server", headers=auth(gw))
            T.wait_until(lambda: not server_model(gw), 30, 0.25)
    tap.run("metrics", metrics, tap, gw, ran)
    gw.stop()


T.main(run)
