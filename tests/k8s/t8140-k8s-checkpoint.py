#!/usr/bin/python3
"""Issue 5 item 2, last sentence: CRIU checkpoints on Kubernetes through the
kubelet checkpoint API (kubernetes.checkpoint_kubelet), against the contract
test double (checkpoint_enabled: it serves POST
/api/v1/nodes/{node}/proxy/checkpoint/{ns}/{pod}/{container}) and the fake
kubelet (real Jupyter servers where pod IPs point).

Flag on: a manual criu checkpoint -> 202, the double saw the node-proxy POST
for the pod's node/namespace/pod/container "server", pod and Secret gone, PVC
kept, state suspended, the row in mode criu with "<node>:<archive>" as its
path. Resume without kubernetes.checkpoint_image: a fresh start that works,
the checkpoint broken saying why. Resume with checkpoint_image: the new pod
runs the expanded image, pinned to the node (kubernetes.io/hostname), with
the nbgate.io/restored-from annotation and the checkpointed process's token.
The kubelet API answering 404 (feature gate off): the server keeps running
and answering, the message names the cause. Mode commit: the core's
fallback, a plain stop (home kept). Flag off: criu is not available, the
same fallback. Bounded waits, loopback only."""
import base64
import json
import os
import re
import sqlite3
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import k8senv as K  # noqa: E402

T = K.T

U1, U2, U3, U4 = "kcada", "kcbarbara", "kccarol", "kcdorothy"
NODE = "node-1"
CKPT_IMAGE = "registry.example/nbgate-ckpt/{pod}:{id}"


def kubelet_kw():
    # the restored pod is pinned with kubernetes.io/hostname: the node has it
    return {"node_labels": {"pool": "cpu", "nvidia.com/gpu.product": K.GPU_MODEL,
                            "kubernetes.io/hostname": NODE}}


def db_rows(env, sql, args=()):
    db = sqlite3.connect(os.path.join(env.gw.state_dir, "nbgate.db"), timeout=5)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def server_message(env, user):
    rows = db_rows(env, "SELECT s.message FROM servers s JOIN users u ON u.id = s.user_id "
                        "WHERE u.name = ? AND s.name = ''", (user,))
    return (rows[0][0] or "") if rows else ""


def ckpt_rows(env, user):
    return db_rows(env, "SELECT c.id, c.mode, c.state, c.path, c.message FROM checkpoints c "
                        "JOIN servers s ON s.id = c.server_id JOIN users u ON u.id = s.user_id "
                        "WHERE u.name = ? ORDER BY c.id DESC", (user,))


def stopping_message(env):
    """The fallback's message: nbgate logs every transition (the stop's own
    'server stopped' replaces it in the model)."""
    lines = [ln for ln in env.gw.logs().splitlines() if "checkpointing -> stopping" in ln]
    return lines[-1] if lines else ""


def secret_token(env, user):
    sec = env.secret(user)
    data = (sec or {}).get("data") or {}
    v = data.get("NBGATE_SERVER_TOKEN")
    return base64.b64decode(v).decode() if v else None


def start(tap, env, user):
    r = env.spawn(user)
    tap.in_(r.status_code, (201, 202), "%s: spawn" % user, r.text[:300])
    m = env.wait_state(user, ("running", "failed"), timeout=45)
    tap.is_(m.get("state"), "running", "%s: running" % user,
            json.dumps(m)[:400] + "\n" + env.stderr_tail())
    ok = env.wait_proxied(user, timeout=30)
    tap.ok(ok, "%s: proxied to the real server" % user)
    return env.pod(user) if ok else None


def checkpoint(env, user, mode):
    return env.api_call("POST", "/users/%s/server/checkpoint" % user, user, {"mode": mode})


def criu_suspend(tap, env, user):
    """A criu checkpoint through the kubelet; the pod before it, or None."""
    pod = start(tap, env, user)
    if pod is None:
        return None, None
    name = pod["metadata"]["name"]
    tok = secret_token(env, user)
    pvc0 = env.pvc(user)
    n0 = len(env.requests("POST", r"/proxy/checkpoint/"))
    r = checkpoint(env, user, "criu")
    tap.is_(r.status_code, 202, "%s: POST .../server/checkpoint {mode: criu} -> 202" % user,
            r.text[:300])
    m = env.wait_state(user, ("suspended", "running", "stopped", "failed"), timeout=45)
    tap.is_(m.get("state"), "suspended", "%s: suspended" % user,
            json.dumps(m)[:300] + "\n" + server_message(env, user) + "\n" + env.stderr_tail())
    posts = env.requests("POST", r"/proxy/checkpoint/")[n0:]
    want = "/api/v1/nodes/%s/proxy/checkpoint/%s/%s/server" % (NODE, K.NS, name)
    tap.ok(len(posts) == 1 and posts[0][1].split("?")[0] == want and posts[0][2] == 200,
           "%s: the double served the kubelet checkpoint for node/ns/pod/container" % user,
           [p[:3] for p in posts])
    tap.ok(env.wait_no_pod(user, timeout=30), "%s: pod gone after the checkpoint" % user)
    tap.ok(T.wait_until(lambda: env.secret(user) is None, 10),
           "%s: secret gone after the checkpoint" % user)
    pvc1 = env.pvc(user)
    tap.ok(pvc0 and pvc1 and pvc0["metadata"]["uid"] == pvc1["metadata"]["uid"],
           "%s: PVC kept" % user)
    r = env.api_call("GET", "/users/%s/server/checkpoints" % user, user)
    rows = r.json() if r.status_code == 200 else []
    tap.ok(len(rows) == 1 and rows[0].get("mode") == "criu" and rows[0].get("state") == "ready",
           "%s: GET checkpoints: one ready criu checkpoint" % user, r.text[:400])
    db = ckpt_rows(env, user)
    archives = env.api.checkpoint_paths()
    tap.ok(db and archives and db[0][3] == "%s:%s" % (NODE, archives[-1]),
           "%s: the row's path is <node>:<archive> (%s)" % (user, db[0][3] if db else None),
           archives[-1:])
    tap.ok("kubelet archive %s:" % NODE in server_message(env, user),
           "%s: the suspended message names the archive" % user, server_message(env, user))
    tap.ok(tok and tok not in env.gw.logs(), "%s: the server token is not in nbgate's logs" % user)
    return pod, tok


def resume(env, user):
    return env.api_call("POST", "/users/%s/server/resume" % user, user)


def flag_on(tap, env):
    pod, _tok = criu_suspend(tap, env, U1)
    if pod is None:
        return
    # no checkpoint_image: the restore fails at once, a fresh start follows
    r = resume(env, U1)
    tap.in_(r.status_code, (200, 202), "%s: resume" % U1, r.text[:300])
    m = env.wait_state(U1, ("running", "failed"), timeout=45)
    tap.is_(m.get("state"), "running", "%s: running again (a fresh start)" % U1,
            json.dumps(m)[:300] + "\n" + env.stderr_tail())
    tap.ok(env.wait_proxied(U1, timeout=30), "%s: the fresh server answers through nbgate" % U1)
    p2 = env.pod(U1)
    tap.ok(p2 and p2["metadata"]["uid"] != pod["metadata"]["uid"] and
           p2["spec"]["containers"][0]["image"] == K.IMAGE_REF and
           "nbgate.io/restored-from" not in (p2["metadata"].get("annotations") or {}),
           "%s: a new pod from the profile's image, not a restore" % U1,
           p2 and p2["spec"]["containers"][0]["image"])
    rows = env.api_call("GET", "/users/%s/server/checkpoints" % U1, U1).json()
    tap.ok(rows and rows[0].get("state") == "broken" and
           "needs kubernetes.checkpoint_image" in (rows[0].get("message") or "") and
           NODE in (rows[0].get("message") or ""),
           "%s: the checkpoint is broken, saying checkpoint_image is needed" % U1,
           json.dumps(rows)[:500])
    feature_gate_off(tap, env)
    commit_falls_back(tap, env)
    tap.is_(env.invalid_bodies(), [], "flag on: the double refused no body")


def feature_gate_off(tap, env):
    """The kubelet API answers 404: the dump fails, the server goes on."""
    env.api.checkpoint_enabled = False
    try:
        pod = env.pod(U1)
        r = checkpoint(env, U1, "criu")
        tap.in_(r.status_code, (202, 409, 500), "404 from the kubelet API: checkpoint answered",
                r.text[:300])
        T.wait_until(lambda: "checkpoint failed" in server_message(env, U1), 30, 0.2)
        m = env.wait_state(U1, ("running", "suspended", "stopped", "failed"), timeout=30)
        msg = server_message(env, U1)
        tap.is_(m.get("state"), "running", "404: the server keeps running", msg)
        tap.ok("checkpoint failed, server left running" in msg and "404" in msg and
               "ContainerCheckpoint" in msg, "404: the message names the feature gate", msg)
        tap.ok(env.requests("POST", r"/proxy/checkpoint/")[-1][2] == 404,
               "404: the double answered the node-proxy POST with 404")
        p = env.pod(U1)
        tap.ok(p and pod and p["metadata"]["uid"] == pod["metadata"]["uid"] and
               p["metadata"].get("deletionTimestamp") is None, "404: the pod was not touched")
        tap.is_(env.proxied(U1, "api/status").status, 200, "404: the server still answers")
        rows = env.api_call("GET", "/users/%s/server/checkpoints" % U1, U1).json()
        tap.ok(all(x.get("state") != "writing" for x in rows) and
               [x for x in rows if x.get("state") == "ready"] == [],
               "404: no checkpoint row was left behind", json.dumps(rows)[:300])
    finally:
        env.api.checkpoint_enabled = True


def commit_falls_back(tap, env):
    """commit does not exist on kubernetes: the core stops instead, home kept."""
    pvc0 = env.pvc(U1)
    r = checkpoint(env, U1, "commit")
    body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
    tap.ok(r.status_code == 202 and body.get("checkpoint_mode") == "stop",
           "commit -> 202, checkpoint_mode stop (the core's fallback)",
           "%s %s" % (r.status_code, r.text[:300]))
    m = env.wait_state(U1, ("stopped", None, "failed", "suspended"), timeout=45)
    tap.in_(m.get("state"), ("stopped", None), "commit: the server is stopped",
            server_message(env, U1))
    msg = stopping_message(env)
    tap.ok("commit failed" in msg and "not available on kubernetes" in msg and
           "your home is kept" in msg, "commit: the stop says why", msg)
    tap.ok(env.wait_no_pod(U1, timeout=30), "commit: pod gone")
    pvc1 = env.pvc(U1)
    tap.ok(pvc0 and pvc1 and pvc0["metadata"]["uid"] == pvc1["metadata"]["uid"],
           "commit: PVC kept")


def with_image(tap, env):
    pod, tok = criu_suspend(tap, env, U2)
    if pod is None:
        return
    ck = ckpt_rows(env, U2)[0]
    r = resume(env, U2)
    tap.in_(r.status_code, (200, 202), "%s: resume" % U2, r.text[:300])
    m = env.wait_state(U2, ("running", "failed"), timeout=45)
    tap.is_(m.get("state"), "running", "%s: restored and running" % U2,
            json.dumps(m)[:300] + "\n" + server_message(env, U2) + "\n" + env.stderr_tail())
    p = env.wait_pod(U2, pred=K.pod_ready, timeout=30)
    tap.ok(p is not None, "%s: the restored pod is Ready" % U2)
    if p is None:
        return
    name = p["metadata"]["name"]
    want_image = "registry.example/nbgate-ckpt/%s:%d" % (name, ck[0])
    tap.is_(p["spec"]["containers"][0]["image"], want_image,
            "the restored pod runs the expanded checkpoint_image")
    tap.is_((p["spec"].get("nodeSelector") or {}).get("kubernetes.io/hostname"), NODE,
            "the restored pod is pinned to the archive's node")
    tap.is_((p["spec"].get("nodeSelector") or {}).get("pool"), "cpu",
            "... keeping the profile's node selector")
    tap.is_((p["metadata"].get("annotations") or {}).get("nbgate.io/restored-from"), ck[3],
            "annotation nbgate.io/restored-from = <node>:<archive>")
    tap.is_(K.pss.check_restricted(p) + K.pss.check_nbgate(p), [],
            "the restored pod passes Pod Security 'restricted'")
    tap.is_(secret_token(env, U2), tok, "the restored pod's Secret holds the token the "
            "checkpointed process has")
    tap.ok(env.wait_proxied(U2, timeout=30), "the restored server answers through nbgate")
    rows = env.api_call("GET", "/users/%s/server/checkpoints" % U2, U2).json()
    tap.ok(rows and rows[0].get("state") == "restored", "the checkpoint is 'restored'",
           json.dumps(rows)[:300])
    r = env.api_call("DELETE", "/users/%s/server/checkpoints/%s" % (U2, ck[0]), U2)
    tap.is_(r.status_code, 204, "DELETE of the restored checkpoint -> 204 (the archive "
            "stays on the node)")
    tap.ok(re.search(r"archive \S+ stays on node " + NODE, env.gw.logs()),
           "the log says the archive stays on the node")
    tap.is_(env.invalid_bodies(), [], "checkpoint_image: the double refused no body")


def flag_off(tap, env):
    start(tap, env, U3)
    r = checkpoint(env, U3, "criu")
    body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
    tap.ok(r.status_code == 202 and body.get("checkpoint_mode") == "stop",
           "flag off: criu -> the core's fallback (checkpoint_mode stop)",
           "%s %s" % (r.status_code, r.text[:300]))
    m = env.wait_state(U3, ("stopped", None, "failed", "suspended", "running"), timeout=45)
    tap.in_(m.get("state"), ("stopped", None), "flag off: stopped, home kept",
            server_message(env, U3))
    msg = stopping_message(env)
    tap.ok("criu: criu is not available" in msg,
           "flag off: the stop says criu is not available", msg)
    tap.is_(env.requests("POST", r"/proxy/checkpoint/"), [],
            "flag off: the kubelet checkpoint API was never called")
    tap.ok(env.pvc(U3) is not None, "flag off: PVC kept")


def templates(tap):
    """kubernetes.checkpoint_image is checked at load: {pod} {id} {node} only, {id} needed."""
    import subprocess
    import tempfile
    nbgate = T.nbgate_path()
    for tmpl, want in (("registry.example/x/{pod}:{tag}", "unknown placeholder at '{tag}'"),
                       ("registry.example/x/{pod}", "needs {id}"),
                       ("registry.example/x/{node}/{pod}:{id}", None)):
        with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
            json.dump({"spawner": "kubernetes", "images": ["jupyter"],
                       "profiles": [{"name": "small", "image": "jupyter", "cpu": 1,
                                     "memory": "1G"}],
                       "kubernetes": {"namespace": K.NS, "images": K.default_images(8888)[:1],
                                      "checkpoint_image": tmpl}}, f)
            f.flush()
            r = subprocess.run([nbgate, "--config", f.name, "config", "print"],
                               capture_output=True, text=True, timeout=30)
        out = r.stdout + r.stderr
        if want:
            tap.ok(r.returncode != 0 and "kubernetes.checkpoint_image" in out and want in out,
                   "checkpoint_image %r refused: %s" % (tmpl, want), out[-400:])
        else:
            tap.ok(r.returncode == 0 and tmpl in out, "checkpoint_image %r accepted" % tmpl,
                   out[-400:])


def run(tap):
    templates(tap)

    def on(**kw):
        env = K.K8sEnv(tap, kubelet=kubelet_kw(), **kw)
        env.api.checkpoint_enabled = True
        return env

    for env, fn in ((on(name="ckpt-flag-on", users=(U1,), k8s={"checkpoint_kubelet": True}),
                     flag_on),
                    (on(name="ckpt-image", users=(U2,),
                        k8s={"checkpoint_kubelet": True, "checkpoint_image": CKPT_IMAGE}),
                     with_image),
                    (on(name="ckpt-flag-off", users=(U3,)), flag_off)):
        try:
            if env.start() is not None:
                fn(tap, env)
        finally:
            env.stop()


if __name__ == "__main__":
    T.main(run)
