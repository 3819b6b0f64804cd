#!/usr/bin/python3
"""Issue 5: how the kubernetes backend fails, against the contract test
double and the fake kubelet: an image that cannot be pulled, a GPU request
no node can fit (unschedulable), a server that crashes at start (crash
loop, with its last log lines), the service account missing `create pods`
(the message names the verb and the resource), a pod of the derived name
created by hand (clear failure, the foreign pod untouched), and a running
server's pod deleted behind nbgate's back (the server is stopped with a
message). Every failure must come within the spawn timeout (15 s here),
delete the pod and the Secret, and keep the PVC."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import k8senv as K  # noqa: E402

T = K.T
SPAWN_TIMEOUT = 15
PULL, NOGPU, CRASH, SQUAT, GHOST, NORBAC = ("pullfail", "nogpu", "crasher", "squatter",
                                            "ghost", "norbac")


def wait_failed(env, user, server=""):
    """({"state": "failed"|"running"|None, "message": ...}, seconds waited), from
    the progress stream (a failed server leaves the model; the stream keeps
    the last event)."""
    t0 = time.monotonic()
    res, msg, _ev = env.outcome(user, server, timeout=SPAWN_TIMEOUT + 20)
    return {"state": res, "message": msg}, time.monotonic() - t0


def cleaned_up(tap, env, user, what):
    tap.ok(env.wait_no_pod(user, timeout=15), "%s: the pod is deleted" % what,
           json.dumps((env.pod(user) or {}).get("metadata", {}))[:300])
    tap.ok(T.wait_until(lambda: env.secret(user) is None, 15), "%s: the Secret is deleted" % what)
    tap.ok(env.pvc(user) is not None, "%s: the PVC is kept" % what)


def three_at_once(tap, env):
    """Pull error, unschedulable and crash loop, spawned together."""
    env.kubelet.gpus_free = 0
    t0 = time.monotonic()
    for user, prof in ((PULL, "broken"), (NOGPU, "gpu"), (CRASH, "crash")):
        r = env.spawn(user, options={"profile": prof})
        tap.in_(r.status_code, (201, 202), "%s: spawn accepted (profile %s)" % (user, prof),
                r.text[:300])
    m, _ = wait_failed(env, PULL)
    dt = time.monotonic() - t0
    msg = m.get("message") or ""
    tap.is_(m.get("state"), "failed", "image pull error: the spawn fails", json.dumps(m)[:500])
    tap.ok(("ErrImagePull" in msg or "ImagePullBackOff" in msg) and K.BAD_IMAGE_REF in msg,
           "image pull error: the message has the reason and the image", msg)
    # ImagePullBackOff's own message is only 'Back-off pulling image "x"'; why
    # the pull failed is in ErrImagePull's message and the Failed event
    tap.ok("not found" in msg, "image pull error: the message says why the pull failed "
           "(the registry's 'not found')", msg)
    tap.ok(dt < SPAWN_TIMEOUT + 8, "image pull error: within the spawn timeout (%.1fs)" % dt)
    cleaned_up(tap, env, PULL, "image pull error")

    m, _ = wait_failed(env, CRASH)
    msg = m.get("message") or ""
    tap.is_(m.get("state"), "failed", "crash loop: the spawn fails", json.dumps(m)[:500])
    tap.ok("CrashLoopBackOff" in msg or "crash" in msg.lower(), "crash loop: named", msg)
    tap.ok("t8110: the server could not start" in msg and "t8110: second line" in msg,
           "crash loop: the message has the server's last log lines (stdout and stderr)", msg)
    cleaned_up(tap, env, CRASH, "crash loop")

    m, _ = wait_failed(env, NOGPU)
    dt = time.monotonic() - t0
    msg = m.get("message") or ""
    tap.is_(m.get("state"), "failed", "unschedulable: the spawn fails", json.dumps(m)[:500])
    tap.ok("0/1 nodes are available" in msg and "Insufficient nvidia.com/gpu" in msg,
           "unschedulable: the message has the scheduler's message", msg)
    tap.ok(dt < SPAWN_TIMEOUT + 8, "unschedulable: failed by the spawn timeout (%.1fs)" % dt)
    cleaned_up(tap, env, NOGPU, "unschedulable")
    env.kubelet.gpus_free = 1
    for u in (PULL, NOGPU, CRASH):
        r = env.api_call("GET", "/users/%s/server/logs" % u, u)
        tap.ok(r.status_code in (200, 404, 409), "%s: logs endpoint answers (%s)"
               % (u, r.status_code), r.text[:200])


def squatter(tap, env):
    r = env.spawn(SQUAT)
    m = env.wait_state(SQUAT, ("running", "failed"), timeout=45)
    tap.is_(m.get("state"), "running", "squatter: first start works", json.dumps(m)[:300])
    pod = env.pod(SQUAT)
    name = pod["metadata"]["name"] if pod else None
    env.stop_server(SQUAT)
    tap.ok(env.wait_no_pod(SQUAT, timeout=30), "squatter: stopped, pod gone")
    env.wait_state(SQUAT, ("stopped",), timeout=15)
    if not name:
        return
    foreign = env.api.create(K.restricted_pod(name, node="node-elsewhere"))
    n_req = len(env.api.requests)
    r = env.spawn(SQUAT)
    tap.in_(r.status_code, (201, 202, 409), "squatter: spawn with a foreign pod of that name",
            r.text[:300])
    m, _ = wait_failed(env, SQUAT)
    msg = (m.get("message") or "") + (r.text if r.status_code == 409 else "")
    tap.ok(m.get("state") in ("failed", "stopped") or r.status_code == 409,
           "squatter: the start fails", json.dumps(m)[:300])
    tap.ok("already exists" in msg and name in msg, "squatter: the message names the pod "
           "and says it already exists", msg)
    time.sleep(1.0)
    now = env.api.get("Pod", K.NS, name)
    tap.ok(now is not None and now["metadata"]["uid"] == foreign["metadata"]["uid"]
           and now["metadata"]["resourceVersion"] == foreign["metadata"]["resourceVersion"]
           and not now["metadata"].get("deletionTimestamp"),
           "squatter: the foreign pod is untouched (same uid and resourceVersion)",
           json.dumps((now or {}).get("metadata"))[:400])
    writes = [x[:3] for x in list(env.api.requests)[n_req:]
              if x[0] in ("DELETE", "PATCH", "PUT") and "/pods/" + name in x[1]]
    tap.is_(writes, [], "squatter: nbgate sent no DELETE/PATCH/PUT for the foreign pod")
    env.kube("DELETE", "/api/v1/namespaces/%s/pods/%s?gracePeriodSeconds=0" % (K.NS, name))


def ghost(tap, env):
    env.spawn(GHOST)
    m = env.wait_state(GHOST, ("running", "failed"), timeout=45)
    tap.is_(m.get("state"), "running", "ghost: running", json.dumps(m)[:300])
    pod = env.pod(GHOST)
    if pod is None:
        return
    tap.is_(env.proxied(GHOST, "api/status").status, 200, "ghost: proxied")
    st, _ = env.kube("DELETE", "/api/v1/namespaces/%s/pods/%s" % (K.NS, pod["metadata"]["name"]),
                     {"gracePeriodSeconds": 0})
    tap.is_(st, 200, "ghost: pod deleted by someone else (grace 0)")
    gone = T.wait_until(lambda: env.state(GHOST) in (None, "stopped", "failed"), 20)
    tap.ok(gone, "ghost: the server is stopped (no longer running in the model)",
           json.dumps(env.server_model(GHOST))[:300])
    # a stopped server leaves the hub's model and its progress stream only
    # says "Spawn failed": the reason is in nbgate's log (for the operator)
    tap.ok(T.wait_until(lambda: "deleted outside nbgate" in env.gw.logs(), 5),
           "ghost: nbgate logs that the pod was deleted outside nbgate", env.stderr_tail(1500))
    tap.ok(T.wait_until(lambda: env.proxied(GHOST, "api/status").status in (502, 503, 404), 10),
           "ghost: no route any more")
    tap.ok(T.wait_until(lambda: env.secret(GHOST) is None, 15), "ghost: the Secret is deleted")
    tap.ok(env.pvc(GHOST) is not None, "ghost: the PVC is kept")
    # and it can start again
    res = []
    T.wait_until(lambda: res.append(env.spawn(GHOST)) or res[-1].status_code != 409, 20, 0.2)
    m = env.wait_state(GHOST, ("running", "failed"), timeout=45)
    tap.is_(m.get("state"), "running", "ghost: starts again", json.dumps(m)[:300])
    env.stop_server(GHOST)
    env.wait_no_pod(GHOST, timeout=30)


def main_env(tap, env):
    three_at_once(tap, env)
    squatter(tap, env)
    ghost(tap, env)
    tap.is_(env.invalid_bodies(), [], "no body refused by the double")


def rbac_env(tap, env):
    r = env.spawn(NORBAC)
    tap.in_(r.status_code, (201, 202, 403, 500, 503), "norbac: spawn answered", r.text[:300])
    m, _ = wait_failed(env, NORBAC)
    msg = (m.get("message") or "") + (r.text if r.status_code >= 400 else "")
    tap.is_(m.get("state"), "failed", "RBAC: the spawn fails", json.dumps(m)[:400])
    tap.ok("create" in msg and "pods" in msg, "RBAC: the message names the verb and the "
           "resource (create pods)", msg)
    tap.ok(any(x in msg.lower() for x in ("forbidden", "403", "rbac", "permission")),
           "RBAC: the message says it is a permission problem", msg)
    tap.ok(env.rejections(403), "the double answered 403")
    tap.ok(env.pod(NORBAC) is None, "RBAC: no pod")


def run(tap):
    K.run_env(tap, main_env, name="failures", users=(PULL, NOGPU, CRASH, SQUAT, GHOST),
              spawn_timeout="%ds" % SPAWN_TIMEOUT)
    with open(os.path.join(K.HERE, "..", "fixtures", "rbac-backend.json")) as f:
        rules = json.load(f)
    for rule in rules:
        if rule["resources"] == ["pods"]:
            rule["verbs"] = [v for v in rule["verbs"] if v != "create"]
    K.run_env(tap, rbac_env, name="rbac", users=(NORBAC,), rbac=rules,
              spawn_timeout="%ds" % SPAWN_TIMEOUT)


if __name__ == "__main__":
    T.main(run)
