#!/usr/bin/python3
"""Issue 5, SECURITY.md JH-6 on Kubernetes: object names derived from user
and server names are valid and injective, against the contract test double
(which refuses invalid names and labels with 422) and the fake kubelet.

Users user-hyphen, user (+ its server "hyphen"), a.b, a-b, a_b, A-b (the
gateway folds it onto a-b: 409), and two 64-character names that differ
only at the end (with a 64-character server name: the slug is cut and
hashed). Every pod, Secret and PVC name is distinct, a valid DNS-1123 name
(pods: a DNS-1123 label, so the hostname is the name), labels valid, the
annotations give back the exact user and server names, and every route
reaches its own server (each server demands its own token). Starting a
server whose pod already exists (the same server again, or A-b's default
server, which is a-b's) answers 4xx and changes nothing of the existing one."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import k8senv as K  # noqa: E402
import schema  # noqa: E402

T = K.T
LONG1 = "n" * 58 + "-a.b.c"
LONG2 = "n" * 58 + "-a_b.c"
LONG_SERVER = "s" * 60 + "-x.y"
SERVERS = [("user-hyphen", ""), ("user", "hyphen"), ("user", ""), ("a.b", ""), ("a-b", ""),
           ("a_b", ""), ("a-b", "x.y"), ("a-b", "x-y"), (LONG1, LONG_SERVER), (LONG2, LONG_SERVER)]


def create_users(tap, env):
    gw = env.gw
    adm = {"Authorization": "token " + env.tokens["admin"]}
    for u in sorted({u for u, _s in SERVERS}):
        r = gw.request("POST", "/hub/api/users/%s" % u, headers=adm)
        tap.is_(r.status, 201, "create user %s" % u, repr(r))
        env.tokens[u] = gw.create_token(u)
    r = gw.request("POST", "/hub/api/users/A-b", headers=adm)
    tap.in_(r.status, (400, 409), "create A-b after a-b -> 409 (it folds onto a-b)", repr(r))


def naming(tap, env):
    create_users(tap, env)
    for u, s in SERVERS:
        r = env.spawn(u, s)
        tap.in_(r.status_code, (201, 202), "spawn %s/%r" % (u[:12], s[:12]), r.text[:300])
    for u, s in SERVERS:
        res, msg, _ev = env.outcome(u, s, timeout=90)
        tap.is_(res, "running", "%s/%r running" % (u[:12], s[:12]), msg)
    pods = {(u, s): env.pod(u, s) for u, s in SERVERS}
    tap.ok(all(pods.values()), "every server has a pod found by its annotations (exact names)",
           [k for k, v in pods.items() if not v])
    secrets = {(u, s): env.secret(u, s) for u, s in SERVERS}
    pvcs = {u: env.pvc(u) for u, _s in SERVERS}
    pnames = [p["metadata"]["name"] for p in pods.values() if p]
    snames = [x["metadata"]["name"] for x in secrets.values() if x]
    vnames = [x["metadata"]["name"] for x in pvcs.values() if x]
    tap.is_(len(set(pnames)), len(SERVERS), "pod names distinct", pnames)
    tap.is_(len(set(snames)), len(SERVERS), "secret names distinct", snames)
    tap.is_(len(set(vnames)), len(pvcs), "PVC names distinct (one per user)", vnames)
    for n in pnames:
        tap.is_(schema.check_name(n, "dns1123subdomain"), [], "pod name %s is a DNS-1123 "
                "subdomain" % n[:40])
    # a pod's hostname would be its name, which the kubelet cuts at 63
    # characters; the backend sets spec.hostname to the slug (a label) instead
    hosts = [p["spec"].get("hostname", "") for p in pods.values() if p]
    tap.is_(len(set(hosts)), len(SERVERS), "pod hostnames distinct", hosts)
    tap.is_([h for h in hosts if schema.check_name(h, "dns1123label")], [],
            "pod hostnames are DNS-1123 labels (never truncated), also for the "
            "%d pod names over 63 characters" % len([n for n in pnames if len(n) > 63]))
    for obj in [p for p in pods.values() if p] + [x for x in secrets.values() if x] + \
            [x for x in pvcs.values() if x]:
        tap.is_(schema.validate_object_meta(obj), [], "%s %s: name, labels, annotations valid"
                % (obj["kind"], obj["metadata"]["name"]))
    sl = [p["metadata"]["labels"].get("nbgate.io/server") for p in pods.values() if p]
    tap.is_(len(set(sl)), len(SERVERS), "label nbgate.io/server distinct per server", sl)
    tap.is_(env.invalid_bodies(), [], "the double refused no body (no 422 for a name or label)")
    for u, s in SERVERS:
        r = env.proxied(u, "api/status", server=s)
        tap.is_(r.status, 200, "route of %s/%r reaches its own server (its own token)"
                % (u[:12], s[:12]), repr(r))
    # the route of user-hyphen is not user's server "hyphen" and vice versa
    r = env.proxied("user", "api/status", server="hyphen")
    h = {"Authorization": "token " + env.tokens["user-hyphen"]}
    r2 = env.gw.request("GET", "/user/user/hyphen/api/status", headers=h)
    tap.in_(r2.status, (403, 404), "user-hyphen's token does not open /user/user/hyphen/", repr(r2))
    return pods


def collisions(tap, env, pods):
    # the owner asks for its running server again; the admin asks for A-b's
    # server (A-b folds onto a-b: 4xx, never a second pod or a change)
    for (u, s), asked, who, codes in ((("user-hyphen", ""), "user-hyphen", "user-hyphen",
                                       (400, 409)),
                                      (("a-b", ""), "A-b", "admin", (400, 403, 404, 409))):
        pod = pods.get((u, s))
        if not pod:
            continue
        n_req = len(env.api.requests)
        path = "/users/%s/server" % asked
        r = env.gw.api("POST", path, token=env.tokens[who], json_body={})
        tap.in_(r.status_code, codes, "POST %s (as %s) while %s's server runs -> 4xx"
                % (path, who, u), r.text[:300])
        tap.ok(r.status_code >= 400 and (r.json() or {}).get("message"), "... with a message",
               r.text[:300])
        now = env.pod(u, s)
        tap.ok(now and now["metadata"]["uid"] == pod["metadata"]["uid"] and
               now["metadata"]["resourceVersion"] == pod["metadata"]["resourceVersion"],
               "... and %s's pod is unchanged (uid, resourceVersion)" % u)
        writes = [x[:3] for x in list(env.api.requests)[n_req:] if x[0] != "GET"]
        tap.is_(writes, [], "... and nbgate wrote nothing to the API server")
        tap.is_(env.proxied(u, "api/status", server=s).status, 200, "... and it still answers")


def main_env(tap, env):
    pods = naming(tap, env)
    collisions(tap, env, pods)
    for u, s in SERVERS:
        env.stop_server(u, s)
    tap.ok(T.wait_until(lambda: not env.pods(), 60), "every pod gone after the stops",
           [p["metadata"]["name"] for p in env.pods()])


def run(tap):
    K.run_env(tap, main_env, name="naming", users=(), spawn_timeout="60s",
              config={"quota": {"max_servers": 4, "max_cpu": 8, "max_memory": "16G",
                                "max_gpus": 1}})


if __name__ == "__main__":
    T.main(run)
