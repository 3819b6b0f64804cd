#!/usr/bin/python3
"""Issue 5: the kubernetes backend across a gateway restart and API server
trouble, with the in-cluster service account configuration, against the
contract test double and the fake kubelet.

- gateway restart with 3 running servers: all re-adopted (proxied requests
  work again, same pod uid, no new pod); a server whose pod vanished while
  nbgate was down is stopped (and its Secret cleaned up);
- watch streams dropped by the API server: a spawn after it completes;
- history compacted while the watch is away (410 Expired on reconnect):
  nbgate lists again (a second LIST) and a spawn still completes;
- token rotation: the service account token file is rewritten with a new
  token and the old one revoked: the next calls (and watches) work."""
import json
import os
import secrets
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import k8senv as K  # noqa: E402

T = K.T
USERS = ("rs-ann", "rs-ben", "rs-cid", "rs-dee", "rs-eve")
A, B, C, D, E = USERS
POD_LIST_RE = r"^/api/v1/namespaces/%s/pods\?" % K.NS


def pod_lists(env):
    """LIST calls for pods (not watches)."""
    return [r for r in env.requests("GET", POD_LIST_RE) if "watch=" not in r[1]]


def pod_watches(env):
    return [r for r in env.requests("GET", POD_LIST_RE) if "watch=" in r[1]]


def spawn_ok(tap, env, user, what):
    r = env.spawn(user)
    res, msg, _ev = env.outcome(user, timeout=45)
    tap.is_(res, "running", "%s: %s's server starts" % (what, user),
            "%s %s\n%s\n%s" % (r.status_code, r.text[:200], msg, env.stderr_tail(2000)))
    ok = T.wait_until(lambda: env.proxied(user, "api/status").status == 200, 15, 0.2)
    tap.ok(ok, "%s: %s's server answers through nbgate" % (what, user))
    return res == "running"


def restart(tap, env):
    for u in (A, B, C, D):
        r = env.spawn(u)
        tap.in_(r.status_code, (201, 202), "spawn %s" % u, r.text[:200])
    for u in (A, B, C, D):
        res, msg, _ev = env.outcome(u, timeout=45)
        tap.is_(res, "running", "%s running before the restart" % u, msg)
    uids = {u: (env.pod(u) or {}).get("metadata", {}).get("uid") for u in (A, B, C, D)}
    n_post = len(env.requests("POST", r"/pods$"))

    def while_down():
        name = env.pod(D)["metadata"]["name"]
        st, _ = env.kube("DELETE", "/api/v1/namespaces/%s/pods/%s" % (K.NS, name),
                         {"gracePeriodSeconds": 0})
        tap.is_(st, 200, "while nbgate is down: %s's pod is deleted" % D)
        tap.ok(env.wait_no_pod(D, timeout=10), "... and gone")
    tap.ok(env.restart_gateway(between=while_down), "nbgate restarted", env.stderr_tail())
    for u in (A, B, C):
        ok = T.wait_until(lambda: env.proxied(u, "api/status").status == 200, 20, 0.2)
        tap.ok(ok, "after the restart: %s's server answers through nbgate (upstream token "
               "read back from the Secret)" % u, env.stderr_tail(1500))
        tap.is_((env.pod(u) or {}).get("metadata", {}).get("uid"), uids[u],
                "after the restart: %s's pod is the same pod (adopted)" % u)
        tap.is_(env.state(u), "running", "after the restart: %s is running in the model" % u)
    tap.is_(len(env.requests("POST", r"/pods$")), n_post, "no pod was created by the restart")
    tap.ok(T.wait_until(lambda: env.state(D) != "running", 15), "%s (pod gone while down) is "
           "not running" % D, json.dumps(env.server_model(D))[:300])
    tap.in_(env.proxied(D, "api/status").status, (502, 503, 404), "%s has no route" % D)
    tap.ok(T.wait_until(lambda: env.secret(D) is None, 15), "%s's leftover Secret is deleted" % D)
    tap.ok(env.pvc(D) is not None, "%s's PVC is kept" % D)
    for u in (A, B, C):
        env.stop_server(u)


def watch_drop(tap, env):
    n_watch = len(pod_watches(env))
    env.api.drop_watches()
    tap.ok(T.wait_until(lambda: len(pod_watches(env)) > n_watch, 15),
           "watch drop: nbgate watches pods again", env.stderr_tail(1500))
    spawn_ok(tap, env, D, "after a watch drop")


def compaction(tap, env):
    n_list = len(pod_lists(env))
    # keep the watches away while the history moves on and is compacted, so
    # that their resourceVersion is older than anything the server keeps
    env.api.fail_next("GET", r"[?&]watch=(true|1)", 503, "t8120: watch refused", times=4)
    env.api.drop_watches()
    env.api.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "t8120-bump",
                    "namespace": K.NS}, "stringData": {"x": "y"}})
    env.api.compact()
    tap.ok(T.wait_until(lambda: len(pod_lists(env)) > n_list, 30), "410 Expired: nbgate lists "
           "the pods again (a second LIST)", "\n".join(str(r[:3]) for r in env.requests(
               "GET", POD_LIST_RE)[-10:]) + "\n" + env.stderr_tail(2000))
    spawn_ok(tap, env, E, "after a 410")


def rotation(tap, env):
    old = env.api.token
    new = env.api.add_token(secrets.token_urlsafe(24))
    path = env.sa_token_path()
    tmp = path + ".new"
    with open(tmp, "w") as f:
        f.write(new)
    os.replace(tmp, path)
    env.api.revoke_token(old)
    n = len(env.api.requests)
    env.api.drop_watches()  # the watches must come back with the new token too
    env.stop_server(E)
    tap.ok(env.wait_no_pod(E, timeout=30), "token rotation: a stop works with the new token")
    time.sleep(0.5)
    res = []
    T.wait_until(lambda: res.append(env.spawn(E)) or res[-1].status_code != 409, 20, 0.2)
    spawn_ok(tap, env, E, "token rotation")
    later = list(env.api.requests)[n:]
    tail = later[-5:]
    tap.ok(later and all(r[2] != 401 for r in tail), "token rotation: the latest calls are not "
           "401", [r[:3] for r in later if r[2] == 401][:5])
    n401 = len([r for r in later if r[2] == 401])
    tap.ok(n401 <= 4, "token rotation: at most one 401 per connection kind before the new "
           "token is used (%d)" % n401)
    for u in (D, E):
        env.stop_server(u)
    tap.is_(env.invalid_bodies(), [], "no body refused by the double")


def main_env(tap, env):
    restart(tap, env)
    watch_drop(tap, env)
    compaction(tap, env)
    rotation(tap, env)


def run(tap):
    K.run_env(tap, main_env, name="restart-watch", users=USERS, auth="in-cluster",
              spawn_timeout="30s")


if __name__ == "__main__":
    T.main(run)
