#!/usr/bin/python3
"""Issue 5: nbgate with spawner=kubernetes through a full lifecycle against
the contract test double of the API server (tests/k8s/lib/apiserver.py)
and the fake kubelet (tests/k8s/lib/kubelet.py), which runs the host's
Jupyter Server 1.23 where the pod IP points. That server demands the token
in the pod's Secret, so every proxied request below also shows that the
gateway adds srv->upstream_auth.

Spawn via the REST API -> Pending -> Running -> Ready, progress from the
pod's events, proxy (HTTP + kernel WebSocket), objects valid (the double
validates every body against the v1.24 OpenAPI schema; PSA restricted is
enforced on the namespace), Pod Security restricted + nbgate's rules, the
token in the Secret and not in the pod (TOK-8), a GPU profile's limits /
node selector / tolerations, stop (pod and secret gone, PVC kept), start
again (same PVC, the home survives); with a kubeconfig bearer token, a
kubeconfig client certificate and the in-cluster service account."""
import base64
import json
import os
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import k8senv as K  # noqa: E402

T = K.T
sys.path.insert(0, os.path.join(K.HERE, "..", "..", "integration", "lib"))
import jupyter as J  # noqa: E402

U1, U2, U3 = "lovelace", "hopper", "turing"


class PhaseLog:
    """Records (phase, ready) of a pod as the double changes it (on_change)."""

    def __init__(self, api):
        self.lock = threading.Lock()
        self.seen = {}
        api.on_change(self._cb)

    def _cb(self, typ, kind, obj):
        if kind != "Pod":
            return
        name = obj["metadata"]["name"]
        st = (obj.get("status") or {}).get("phase"), K.pod_ready(obj)
        with self.lock:
            lst = self.seen.setdefault(name, [])
            if not lst or lst[-1] != st:
                lst.append(st)

    def of(self, name):
        with self.lock:
            return list(self.seen.get(name, []))


def qty_bytes(q):
    """A memory/storage Quantity in bytes ("1Gi", "1073741824", "1G"), or None."""
    import re
    m = re.match(r"^([0-9]+)(Ki|Mi|Gi|Ti|k|M|G|T)?$", str(q))
    if not m:
        return None
    mul = {None: 1, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40,
           "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}[m.group(2)]
    return int(m.group(1)) * mul


def check_objects(tap, env, user, pod):
    spec = pod["spec"]
    c = spec["containers"][0]
    md = pod["metadata"]
    lab = md.get("labels") or {}
    tap.is_((lab.get("app.kubernetes.io/managed-by"), lab.get("nbgate.io/gateway"),
             lab.get("app.kubernetes.io/component")), ("nbgate", "t81", "user-server"),
            "pod labels: managed-by, gateway id, component")
    tap.is_((md.get("annotations") or {}).get("nbgate.io/user"), user, "pod annotation names the user")
    tap.is_(K.pss.check_restricted(pod), [], "pod passes Pod Security 'restricted'")
    tap.is_(K.pss.check_nbgate(pod), [], "pod passes nbgate's own rules (automount off, "
            "no secret in plain env)")
    res = c.get("resources") or {}
    tap.is_((res.get("limits", {}).get("cpu") in ("1", "1000m"),
             res.get("limits", {}).get("memory") is not None,
             res.get("requests") == res.get("limits")), (True, True, True),
            "profile small: cpu/memory limits, requests = limits", json.dumps(res))
    tap.is_(spec.get("nodeSelector"), {"pool": "cpu"}, "profile's node selector")
    tap.ok({"key": "dedicated", "operator": "Equal", "value": "nb", "effect": "NoSchedule"}
           in (spec.get("tolerations") or []), "profile's toleration", spec.get("tolerations"))
    sec = env.secret(user)
    tap.ok(sec is not None and sec["metadata"]["name"].startswith(md["name"]),
           "the server's Secret exists", sec and sec["metadata"]["name"])
    data = {k: base64.b64decode(v).decode() for k, v in ((sec or {}).get("data") or {}).items()}
    tok = data.get("NBGATE_SERVER_TOKEN", "")
    tap.ok(len(tok) >= 32, "TOK-8: the server token is in the Secret")
    text = json.dumps(pod)
    leaked = [k for k, v in data.items() if len(v) >= 16 and v in text]
    tap.is_(leaked, [], "TOK-8: no Secret value (server token, API token) appears in the pod")
    tap.ok(any((e.get("secretRef") or {}).get("name") == sec["metadata"]["name"]
               for e in c.get("envFrom") or []) if sec else False,
           "the container gets its env from the Secret (envFrom)")
    tap.ok("$(NBGATE_SERVER_TOKEN)" in " ".join(c.get("command", []) + c.get("args", [])),
           "the command references the token, the kubelet expands it")
    tap.ok(tok and tok not in env.gw.logs(), "the server token is not in nbgate's logs")
    pvc = env.pvc(user)
    tap.ok(pvc is not None and any(v.get("persistentVolumeClaim", {}).get("claimName") ==
                                   pvc["metadata"]["name"] for v in spec.get("volumes", [])),
           "the user's PVC is mounted", pvc and pvc["metadata"]["name"])
    if pvc:
        tap.is_((pvc["spec"].get("storageClassName"),
                 qty_bytes(pvc["spec"]["resources"]["requests"]["storage"])),
                ("standard", 1 << 30), "PVC: storage class and size (1Gi) from the config",
                pvc["spec"]["resources"])
    tap.is_(env.invalid_bodies(), [], "the double refused no body (schema, names, labels, PSA)")
    return tok


def direct_needs_token(tap, env, pod, tok):
    """The server where the pod IP points demands the token: without it 403."""
    ip = pod["status"]["podIP"]
    port = pod["spec"]["containers"][0]["ports"][0]["containerPort"]
    base = "/user/%s/" % U1
    r = T.http_request(ip, port, "GET", base + "api/status")
    tap.in_(r.status, (401, 403), "the pod's server refuses a request without the token", repr(r))
    r = T.http_request(ip, port, "GET", base + "api/status", headers={"Authorization": "token " + tok})
    tap.is_(r.status, 200, "... and answers with the Secret's token")


def kernel_round_trip(tap, env, user, server=""):
    cl = J.Client(env.prefix(user, server), {"Authorization": "token " + env.tokens[user]},
                  tcp=(env.gw.host, env.gw.port), host_header="%s:%d" % (env.gw.host, env.gw.port))
    r = cl.req("POST", "api/kernels", body={"name": "python3"})
    kid = (r.json() or {}).get("id") if r.status in (200, 201) else None
    tap.ok(kid, "kernel started through the proxy", repr(r))
    if not kid:
        return
    try:
        out = J.execute(cl, kid, "import os\nopen(os.path.join(os.environ['HOME'], 't8100.txt'), 'w')"
                        ".write('kept')\nprint(6*7)", user=user, timeout=60)
        tap.is_((out or "").strip(), "42", "kernel WebSocket round trip through nbgate")
    except Exception as e:
        tap.ok(False, "kernel WebSocket round trip through nbgate", repr(e))
    cl.req("DELETE", "api/kernels/" + kid)


def lifecycle(tap, env):
    log = PhaseLog(env.api)
    gw = env.gw
    r = env.spawn(U1)
    tap.in_(r.status_code, (201, 202), "POST /hub/api/users/%s/server" % U1, r.text[:300])
    ready, events = J.progress_ready(gw, env.tokens[U1], user=U1, timeout=45)
    msgs = " | ".join(str(e.get("message", "")) for e in events)
    tap.ok(ready, "progress stream ends ready", msgs[-1500:] + "\n" + env.stderr_tail())
    for want in ("Successfully assigned", "Pulling image", "Started container"):
        tap.ok(want in msgs, "progress shows the pod event %r" % want, msgs[-1500:])
    pcts = [e.get("progress") for e in events if isinstance(e.get("progress"), (int, float))]
    tap.ok(pcts == sorted(pcts) and len(set(pcts)) >= 3, "progress percentages rise", pcts)
    pod = env.wait_pod(U1, pred=K.pod_ready, timeout=30)
    tap.ok(pod is not None, "the pod is Ready in the double")
    if pod is None:
        return
    want = [("Pending", False), ("Running", False), ("Running", True)]

    def went():  # on_change runs on the double's dispatcher thread: it may lag
        it = iter(log.of(pod["metadata"]["name"]))
        return all(w in it for w in want)
    tap.ok(T.wait_until(went, 5), "pod went Pending -> Running -> Ready",
           log.of(pod["metadata"]["name"]))
    tap.is_(env.state(U1), "running", "server model: running")
    r = env.proxied(U1, "api/status")
    tap.is_(r.status, 200, "GET /user/%s/api/status through nbgate reaches the real server" % U1,
            repr(r))
    tok = check_objects(tap, env, U1, pod)
    direct_needs_token(tap, env, pod, tok)
    kernel_round_trip(tap, env, U1)
    gpu(tap, env)
    stop_start(tap, env, pod)


def gpu(tap, env):
    r = env.spawn(U1, "g", {"profile": "gpu"})
    tap.in_(r.status_code, (201, 202), "spawn a named server with the gpu profile", r.text[:300])
    m = env.wait_state(U1, ("running", "failed"), server="g", timeout=45)
    tap.is_(m.get("state"), "running", "gpu server running (the node has 1 GPU free)",
            json.dumps(m)[:500])
    pod = env.pod(U1, "g")
    if pod is None:
        tap.ok(False, "gpu pod exists")
        return
    spec = pod["spec"]
    lim = spec["containers"][0].get("resources", {}).get("limits", {})
    tap.is_(str(lim.get("nvidia.com/gpu")), "1", "gpu limit nvidia.com/gpu: 1")
    tap.is_((spec.get("nodeSelector") or {}).get("nvidia.com/gpu.product"), K.GPU_MODEL,
            "node selector on the GPU product label")
    tap.ok(any(t.get("key") == "nvidia.com/gpu" and t.get("operator") == "Exists"
               for t in spec.get("tolerations") or []), "toleration for the GPU taint",
           spec.get("tolerations"))
    tap.is_(K.pss.check_restricted(pod), [], "gpu pod passes Pod Security 'restricted'")
    tap.is_(env.proxied(U1, "api/status", server="g").status, 200, "gpu server proxied")
    env.stop_server(U1, "g")
    tap.ok(env.wait_no_pod(U1, "g", 30), "gpu pod deleted on stop")


def stop_start(tap, env, pod):
    name = pod["metadata"]["name"]
    pvc0 = env.pvc(U1)
    w = env.kubelet.worker_for(name)
    pids = w.pids() if w else []
    tap.ok(pids, "the fake kubelet runs the server's processes", pids)
    n_del = len(env.requests("DELETE", r"/pods/"))
    r = env.stop_server(U1)
    tap.in_(r.status_code, (202, 204), "DELETE the server", r.text[:300])
    tap.ok(env.wait_no_pod(U1, timeout=30), "pod gone after stop")
    tap.ok(T.wait_until(lambda: env.secret(U1) is None, 10), "secret gone after stop")
    dels = env.requests("DELETE", r"/pods/")[n_del:]
    tap.ok(dels and all(d[1].split("?")[0].endswith("/pods/" + name) for d in dels)
           and any("gracePeriodSeconds=" in d[1] or (d[3] or {}).get("gracePeriodSeconds")
                   for d in dels),
           "the stop deleted this pod, with a grace period", [d[:3] for d in dels])
    tap.ok(T.wait_until(lambda: not any(T.pid_alive(p) for p in pids), 10),
           "the server's processes ended")
    m = env.wait_state(U1, ("stopped",), timeout=20)
    tap.ok(m.get("state") in ("stopped", None), "server model: stopped", json.dumps(m)[:300])
    pvc1 = env.pvc(U1)
    tap.ok(pvc0 and pvc1 and pvc0["metadata"]["uid"] == pvc1["metadata"]["uid"],
           "the PVC is kept")
    tap.in_(env.proxied(U1, "api/status").status, (502, 503, 404), "stopped: no route")
    # start again: same PVC, the file written by the kernel is there
    res = []
    T.wait_until(lambda: res.append(env.spawn(U1)) or res[-1].status_code != 409, 20, 0.2)
    tap.in_(res[-1].status_code, (201, 202), "start again", res[-1].text[:300])
    m = env.wait_state(U1, ("running", "failed"), timeout=45)
    tap.is_(m.get("state"), "running", "running again", json.dumps(m)[:400])
    pvc2 = env.pvc(U1)
    tap.ok(pvc2 and pvc2["metadata"]["uid"] == pvc0["metadata"]["uid"]
           and len(env.api.list("PersistentVolumeClaim", K.NS)) == 1,
           "the same PVC is reused (no second claim)")
    p2 = env.pod(U1)
    tap.ok(p2 and p2["metadata"]["uid"] != pod["metadata"]["uid"], "a new pod")
    r = env.proxied(U1, "api/contents/t8100.txt?content=1&type=file&format=text")
    tap.ok(r.status == 200 and (r.json() or {}).get("content") == "kept",
           "the file written before the stop is in the home", repr(r)[:300])
    env.stop_server(U1)
    tap.ok(env.wait_no_pod(U1, timeout=30), "stopped at the end")
    tap.is_(env.invalid_bodies(), [], "still no refused body")
    tap.is_([r for r in env.rejections() if r.get("code") in (401, 403)], [],
            "no 401/403 from the double")


def short_cycle(tap, env, user):
    r = env.spawn(user)
    tap.in_(r.status_code, (201, 202), "%s: spawn" % env.name, r.text[:300])
    m = env.wait_state(user, ("running", "failed"), timeout=45)
    tap.is_(m.get("state"), "running", "%s: running" % env.name,
            json.dumps(m)[:400] + "\n" + env.stderr_tail())
    tap.is_(env.proxied(user, "api/status").status, 200, "%s: proxied to the real server" % env.name)
    pod = env.pod(user)
    if pod is not None:
        tap.is_(K.pss.check_restricted(pod) + K.pss.check_nbgate(pod), [],
                "%s: pod restricted" % env.name)
    env.stop_server(user)
    tap.ok(env.wait_no_pod(user, timeout=30), "%s: pod gone after stop" % env.name)
    tap.ok(env.pvc(user) is not None, "%s: PVC kept" % env.name)
    tap.is_(env.invalid_bodies(), [], "%s: no refused body" % env.name)


def run(tap):
    K.run_env(tap, lifecycle, name="kubeconfig-token", users=(U1,), auth="token")
    K.run_env(tap, lambda t, e: short_cycle(t, e, U2), name="kubeconfig-cert", users=(U2,),
              auth="cert")
    K.run_env(tap, lambda t, e: short_cycle(t, e, U3), name="in-cluster", users=(U3,),
              auth="in-cluster")


if __name__ == "__main__":
    T.main(run)
