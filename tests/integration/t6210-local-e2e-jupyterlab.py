#!/usr/bin/python3
"""End to end with the embedded default: the real nbgate, the sandboxed
`local` backend, the real `jupyterlab` image from the machine-level store
(`make images` builds it) and real nbgate-init sandboxes.

alice logs in through the form and starts her default server with the
`jupyterlab` profile (cookie + XSRF); the progress stream reports the image,
the sandbox and readiness; GET /user/alice/lab returns JupyterLab; she
creates a notebook through the contents API and runs a cell over the
kernel's WebSocket through the gateway; from inside the kernel the sandbox
looks as it should (unprivileged uid, no capabilities, no_new_privs,
seccomp filter, no host processes, subprocesses work: SBX-5 end to end);
the server's log is readable through the API; bob cannot reach alice's
server, and from bob's own sandbox (the `minimal` image) alice's processes,
environment (her server's token), home and sockets are out of sight (TOK-8);
stop, start again: the notebook is still there; stop: no sandbox process and
no mount left."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import nbgate_test as T  # noqa: E402
import jupyter as J  # noqa: E402

STORE = os.environ.get("NBGATE_IMAGE_STORE", "/var/cache/nbgate/images")

# Runs inside alice's kernel; prints one JSON object.
PROBE = r'''
import json, os, subprocess, socket
st = dict(l.split(":", 1) for l in open("/proc/self/status") if ":" in l)
pids = [p for p in os.listdir("/proc") if p.isdigit()]
cmds = []
for p in pids:
    try:
        cmds.append(open("/proc/%s/cmdline" % p, "rb").read().split(b"\0")[0].decode())
    except OSError:
        pass
r = subprocess.run(["true"])
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM); s.close()
print(json.dumps({"uid": os.getuid(), "euid": os.geteuid(), "home": os.environ.get("HOME"),
    "cwd": os.getcwd(), "capeff": st["CapEff"].strip(), "capbnd": st["CapBnd"].strip(),
    "nnp": st["NoNewPrivs"].strip(), "seccomp": st["Seccomp"].strip(), "pid1": cmds and
    open("/proc/1/cmdline", "rb").read().split(b"\0")[0].decode(), "nprocs": len(pids),
    "true_rc": r.returncode, "env": sorted(k for k in os.environ if k.startswith(("JUPYTERHUB_", "NBGATE_"))),
    "hostname": socket.gethostname()}))
'''


def notebook(code):
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {"kernelspec": {"name": "python3",
            "display_name": "Python 3"}},
            "cells": [{"cell_type": "code", "id": "c1", "metadata": {}, "execution_count": None,
                       "outputs": [], "source": code}]}


def mounts_under(path):
    with open("/proc/self/mounts") as f:
        return [line.split()[1] for line in f if line.split()[1].startswith(path)]


def shim_pids(state_dir):
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            if (state_dir + "/run/").encode() in open("/proc/%s/cmdline" % p, "rb").read():
                out.append(int(p))
        except OSError:
            pass
    return out


def start(tap, gw, s, x, label):
    t0 = time.monotonic()
    r = s.post(gw.url("/hub/api/users/alice/server"), json={"profile": "jupyterlab"}, allow_redirects=False,
               headers={"X-XSRFToken": x or "", "Origin": gw.public_url, "Sec-Fetch-Site": "same-origin"})
    tap.in_(r.status_code, (201, 202), "%s: POST /hub/api/users/alice/server {profile: jupyterlab}" % label,
            r.text[:300])
    ready, events = J.progress_ready(gw, gw.alice_tok, "alice", "", 120)
    msgs = [e.get("message") or "" for e in events]
    tap.ok(ready, "%s: progress stream ends with ready (%.1f s)" % (label, time.monotonic() - t0),
           repr(events)[:1500] + "\n" + gw.proc.stderr_text()[-1500:])
    return msgs


def stop(tap, gw, s, x, label):
    r = s.delete(gw.url("/hub/api/users/alice/server"), allow_redirects=False,
                 headers={"X-XSRFToken": x or "", "Origin": gw.public_url, "Sec-Fetch-Site": "same-origin"})
    tap.in_(r.status_code, (202, 204), "%s: DELETE /hub/api/users/alice/server" % label, r.text[:300])

    def stopped():
        j = gw.request("GET", "/hub/api/users/alice", headers={"Authorization": "token " + gw.alice_tok}).json()
        return j is not None and not j.get("servers")
    tap.ok(T.wait_until(stopped, 30, 0.2), "%s: the API shows the server stopped" % label)
    tap.ok(T.wait_until(lambda: not shim_pids(gw.state_dir), 30, 0.2),
           "%s: no sandbox process left" % label, repr(shim_pids(gw.state_dir)))


def inside(tap, cl):
    r = cl.req("POST", "api/kernels", body={"name": "python3"})
    kid = (r.json() or {}).get("id")
    tap.ok(r.status == 201 and kid, "kernel started in the sandbox (POST api/kernels)", r.text()[:300])
    if not kid:
        return
    try:
        out = J.execute(cl, kid, "x = 6*7\nprint(x)")
        tap.is_(out.strip(), "42", "print(6*7) over the kernel's channels WebSocket through the gateway")
        info = json.loads(J.execute(cl, kid, PROBE))
    except Exception as e:
        tap.ok(False, "kernel execution", repr(e))
        return
    finally:
        cl.req("DELETE", "api/kernels/" + kid)
    tap.ok(info["uid"] != 0 and info["euid"] != 0, "SBX-2 in the kernel: uid %d, euid %d (not root)"
           % (info["uid"], info["euid"]))
    tap.is_(info["capeff"], "0000000000000000", "SBX-1 in the kernel: CapEff empty")
    tap.is_(info["capbnd"], "0000000000000000", "SBX-1 in the kernel: CapBnd empty")
    tap.is_(info["nnp"], "1", "SBX-1 in the kernel: NoNewPrivs 1")
    tap.is_(info["seccomp"], "2", "SBX-1 in the kernel: Seccomp 2 (filter)")
    tap.ok("nbgate-init" in (info["pid1"] or ""), "SBX-10 PID 1 in the sandbox is nbgate-init", info["pid1"])
    tap.ok(info["nprocs"] < 20, "SBX-10 only the sandbox's processes are visible (%d)" % info["nprocs"])
    tap.is_(info["true_rc"], 0, "SBX-5 subprocess.run(['true']) works in the kernel")
    tap.is_(info["home"], "/home/jovyan", "HOME is the persistent home inside")
    tap.ok("JUPYTERHUB_API_TOKEN" in info["env"] and "NBGATE_API_URL" in info["env"],
           "the server's token and hub URLs are in its environment", repr(info["env"]))
    tap.is_(info["hostname"], "alice", "hostname is the sandbox's own")
    return info["uid"]


# Runs inside bob's kernel: what of alice can it see? One JSON object.
PEEK = r'''
import json, os
found = []
for p in os.listdir("/proc"):
    if p.isdigit():
        try:
            env = open("/proc/%s/environ" % p, "rb").read()
        except OSError:
            continue
        if b"JUPYTERHUB_USER=alice" in env or ALICE_TOKEN.encode() in env:
            found.append(p)
paths = {}
for path in ("/home/alice", ALICE_HOME, ALICE_RUN, "/run/nbgate/../../" + ALICE_RUN):
    paths[path] = os.path.exists(path)
print(json.dumps({"procs": found, "paths": paths, "uid": os.getuid()}))
'''


def alice_token():
    """From the host (root): the API token in the environment of alice's
    server process, or None."""
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            env = open("/proc/%s/environ" % p, "rb").read().split(b"\0")
        except OSError:
            continue
        if b"JUPYTERHUB_USER=alice" not in env:
            continue
        for kv in env:
            if kv.startswith(b"JUPYTERHUB_API_TOKEN="):
                return kv.split(b"=", 1)[1].decode()
    return None


def tok8(tap, gw, alice_uid):
    """Bob's own sandbox: alice's environment (with her server's token) and
    files are out of reach (SECURITY.md TOK-8)."""
    btok = gw.create_token("bob")
    r = gw.request("POST", "/hub/api/users/bob/server", headers={"Authorization": "token " + btok,
                   "Content-Type": "application/json"}, body=json.dumps({"profile": "minimal"}).encode())
    tap.in_(r.status, (201, 202), "TOK-8: bob starts his own sandbox (minimal image)", repr(r)[:300])
    ready, events = J.progress_ready(gw, btok, "bob", "", 120)
    tap.ok(ready, "TOK-8: bob's server is ready", repr(events)[:600])
    if not ready:
        return
    token = alice_token()
    tap.ok(token is not None, "TOK-8: (from the host) alice's server holds its token in its environment")
    code = PEEK.replace("ALICE_TOKEN", repr(token or "nbg_no_token_seen")).replace(
        "ALICE_HOME", repr(os.path.join(gw.state_dir, "home", "alice"))).replace(
        "ALICE_RUN", repr(os.path.join(gw.state_dir, "run", "alice")))
    bc = J.Client("/user/bob/", {"Authorization": "token " + btok}, tcp=(gw.host, gw.port),
                  host_header=gw.public_host)
    r = bc.req("POST", "api/kernels", body={"name": "python3"})
    kid = (r.json() or {}).get("id")
    try:
        info = json.loads(J.execute(bc, kid, code, user="bob"))
    except Exception as e:
        tap.ok(False, "TOK-8: kernel in bob's sandbox", repr(e))
        return
    tap.is_(info["procs"], [], "TOK-8: no process with alice's environment or token visible from bob's sandbox")
    tap.ok(not any(info["paths"].values()), "TOK-8: alice's home and run dir do not exist in bob's sandbox",
           repr(info["paths"]))
    tap.ok(info["uid"] != alice_uid, "TOK-8: bob's sandbox uid %d differs from alice's %d"
           % (info["uid"], alice_uid))
    r = gw.request("DELETE", "/hub/api/users/bob/server", headers={"Authorization": "token " + btok})
    tap.in_(r.status, (202, 204), "TOK-8: bob's server stops")
    T.wait_until(lambda: not gw.request("GET", "/hub/api/users/bob", headers={
        "Authorization": "token " + btok}).json().get("servers"), 30, 0.2)


def run(tap):
    if not os.path.isfile(os.path.join(STORE, "index.json")):
        T.skip_all("no image store at %s: run `make images` (make test does)" % STORE)
    profiles = [{"name": "jupyterlab", "display_name": "JupyterLab", "image": "jupyterlab", "cpu": 2,
                 "memory": "4G"},
                {"name": "minimal", "display_name": "Jupyter Server", "image": "minimal", "cpu": 1,
                 "memory": "2G"}]
    gw = T.Gateway(tap, users=[("alice", T.DEFAULT_PASSWORD, False), ("bob", T.DEFAULT_PASSWORD, False)],
                   name="gw-lab", config={"spawner": "local", "spawn_timeout": "120s", "log_level": "info",
                                          "profiles": profiles, "images": ["jupyterlab", "minimal"]})
    gw.cfg.pop("server_cmd", None)  # the local backend runs the image's command
    with open(gw.config_path, "w") as f:
        json.dump(gw.cfg, f, indent=1)
    gw.start()
    gw.alice_tok = gw.create_token("alice")
    s, x, r = gw.login("alice")
    tap.ok(r.status_code in (302, 303) and x, "alice logs in through the form", r.text[:200])
    msgs = start(tap, gw, s, x, "first start")
    tap.ok(any("image" in m and "jupyterlab" in m for m in msgs), "progress names the image", repr(msgs))
    tap.ok(any(m.startswith("sandbox up") for m in msgs), "progress reports the sandbox up", repr(msgs))
    r = s.get(gw.url("/user/alice/lab"), headers={"Accept": "text/html"}, allow_redirects=False)
    tap.ok(r.status_code == 200 and "<title>JupyterLab</title>" in r.text,
           "GET /user/alice/lab returns JupyterLab (cookie)", "%s %s" % (r.status_code, r.text[:300]))
    cl = J.Client("/user/alice/", {"Authorization": "token " + gw.alice_tok}, tcp=(gw.host, gw.port),
                  host_header=gw.public_host)
    r = cl.req("PUT", "api/contents/work.ipynb", body={"type": "notebook", "format": "json",
                                                       "content": notebook("print('kept')")})
    tap.in_(r.status, (200, 201), "a notebook is created (contents API through the gateway)", r.text()[:300])
    alice_uid = inside(tap, cl)
    tok8(tap, gw, alice_uid)
    r = gw.request("GET", "/hub/api/users/alice/server/logs?tail=50",
                   headers={"Authorization": "token " + gw.alice_tok})
    tap.ok(r.status == 200 and "ServerApp" in r.text(), "the server's log through the API", repr(r)[:300])
    # bob: no way to alice's server through the gateway
    bs, bx, _ = gw.login("bob")
    r = bs.get(gw.url("/user/alice/lab"), headers={"Accept": "text/html"}, allow_redirects=False)
    tap.ok(r.status_code in (403, 404), "bob's session on /user/alice/lab -> 403/404", r.status_code)
    r = gw.request("GET", "/user/alice/api/contents/work.ipynb",
                   headers={"Authorization": "token " + gw.create_token("bob")})
    tap.ok(r.status in (403, 404) and b"kept" not in r.body, "bob's token on alice's contents -> 403/404",
           repr(r)[:200])
    stop(tap, gw, s, x, "stop")
    start(tap, gw, s, x, "second start")
    r = cl.req("GET", "api/contents/work.ipynb?content=1")
    src = (((r.json() or {}).get("content") or {}).get("cells") or [{}])[0].get("source")
    tap.ok(r.status == 200 and src == "print('kept')", "after stop and start the notebook is still there",
           "%s %r" % (r.status, src))
    stop(tap, gw, s, x, "final stop")
    tap.is_(mounts_under(gw.state_dir), [], "no mount left under the state dir")
    gw.stop()


T.main(run)
