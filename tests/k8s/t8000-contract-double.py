#!/usr/bin/python3
"""The Kubernetes API server contract test double rejects what a real v1.24
API server rejects (and accepts what it accepts), so that the kubernetes
backend's tests (t81xx) mean something. Loopback only; no cluster."""
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "integration", "lib"))
import nbgate_test as T  # noqa: E402
import apiserver as A  # noqa: E402
import schema as S  # noqa: E402

NS = "nbgate-users"
PODS = "/api/v1/namespaces/%s/pods" % NS
SA_USER = "system:serviceaccount:nbgate:nbgate"


def restricted_pod(name="nb-alice", labels=None):
    """A pod shaped like the backend's: PSS restricted, no token automount."""
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {
            "app.kubernetes.io/managed-by": "nbgate", "nbgate.io/user": "alice"},
            "annotations": {"nbgate.io/user": "Alice@example.com"}},
        "spec": {
            "automountServiceAccountToken": False,
            "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000,
                                "fsGroup": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "server", "image": "registry.example/nbgate/jupyterlab:4",
                "command": ["python3", "-m", "jupyterlab"],
                "ports": [{"name": "http", "containerPort": 8888}],
                "env": [{"name": "NBGATE_POD_IP",
                         "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
                "envFrom": [{"secretRef": {"name": name + "-env"}}],
                "resources": {"limits": {"cpu": "1", "memory": "2G", "nvidia.com/gpu": 1},
                              "requests": {"cpu": "500m", "memory": "1Gi"}},
                "readinessProbe": {"httpGet": {"path": "/api", "port": "http"}},
                "securityContext": {"allowPrivilegeEscalation": False,
                                    "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True},
                "volumeMounts": [{"name": "home", "mountPath": "/home/jovyan"}]}],
            "volumes": [{"name": "home", "persistentVolumeClaim": {"claimName": "home-alice"}}],
            "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists",
                             "effect": "NoSchedule"}]}}


def fixtures():
    """One valid object per kind the backend uses."""
    return {
        "Pod": restricted_pod(),
        "PersistentVolumeClaim": {
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "home-alice", "labels": {"nbgate.io/user": "alice"}},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "standard",
                     "resources": {"requests": {"storage": "10Gi"}}}},
        "Secret": {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                   "metadata": {"name": "nb-alice-env"},
                   "stringData": {"NBGATE_SERVER_TOKEN": "s3cr3t"},
                   "data": {"X": "eA=="}},
        "Service": {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "nbgate"},
                    "spec": {"selector": {"app": "nbgate"},
                             "ports": [{"name": "https", "port": 443, "targetPort": "https"}]}},
        "Event": {"apiVersion": "v1", "kind": "Event",
                  "metadata": {"name": "nb-alice.1"},
                  "involvedObject": {"kind": "Pod", "name": "nb-alice", "namespace": NS},
                  "reason": "Scheduled", "message": "ok", "type": "Normal",
                  "firstTimestamp": "2024-01-02T03:04:05Z", "count": 1},
        "Job": {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "job-1"},
                "spec": {"backoffLimit": 0, "template": {"spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "job", "image": "busybox:1"}]}}}},
    }


# one breaking mutation per kind, and the error a real API server names
def _break_pod(o):
    o["spec"]["containers"][0]["securityContext"]["runAsUser"] = "1000"


def _break_pvc(o):
    o["spec"]["resources"]["requests"]["storage"] = "ten gigs"


def _break_secret(o):
    o["data"]["X"] = "not base64!"


def _break_service(o):
    o["spec"]["ports"][0]["nodePortz"] = 1


def _break_event(o):
    del o["involvedObject"]


def _break_job(o):
    o["spec"]["backoffLimit"] = 1.5


BREAKS = {
    "Pod": (_break_pod, "spec.containers[0].securityContext.runAsUser: expected integer, "
            "got string"),
    "PersistentVolumeClaim": (_break_pvc, "spec.resources.requests[storage]: quantities must"),
    "Secret": (_break_secret, "data[X]: illegal base64 data"),
    "Service": (_break_service, 'spec.ports[0].nodePortz: unknown field "nodePortz"'),
    "Event": (_break_event, "involvedObject: required"),
    "Job": (_break_job, "spec.backoffLimit: expected integer, got number"),
}


def test_schema(tap):
    sch = S.default_schema()
    tap.ok(("v1", "Pod") in sch.kinds() and ("batch/v1", "Job") in sch.kinds(),
           "schema: kinds() lists v1/Pod and batch/v1/Job")
    for kind, obj in fixtures().items():
        errs = S.validate_all(obj)
        tap.is_(errs, [], "schema: valid %s accepted" % kind)
        bad = copy.deepcopy(obj)
        fn, want = BREAKS[kind]
        fn(bad)
        errs = sch.validate(bad)
        tap.ok(any(e.startswith(want) for e in errs), "schema: broken %s rejected (%s)"
               % (kind, want), errs)
    tap.is_(sch.validate({"apiVersion": "v1", "kind": "Podd"}),
            ['kind: unknown kind "Podd" in apiVersion "v1"'], "schema: unknown kind is an error")
    p = restricted_pod()
    p["spec"]["containers"][0]["foo"] = 1
    tap.ok('spec.containers[0].foo: unknown field "foo"' in sch.validate(p),
           "schema: unknown field named with its path")
    p = restricted_pod()
    p["metadata"]["name"] = None
    p["spec"]["containers"][0]["ports"][0]["containerPort"] = 1 << 31
    errs = sch.validate(p)
    tap.ok(any("out of range for int32" in e for e in errs), "schema: int32 range", errs)
    p = restricted_pod()
    p["spec"]["containers"][0]["readinessProbe"]["httpGet"]["port"] = 8888
    p["metadata"]["managedFields"] = [{"fieldsV1": {"f:anything": {"x": [1]}}}]
    p["metadata"]["creationTimestamp"] = "2024-01-02T03:04:05.123+02:00"
    p["spec"]["containers"][0]["resources"]["limits"]["cpu"] = 0.5
    tap.is_(sch.validate(p), [], "schema: int-or-string int, FieldsV1 free-form, RFC3339, "
            "numeric Quantity")
    p["metadata"]["creationTimestamp"] = "yesterday"
    p["spec"]["containers"][0]["readinessProbe"]["httpGet"]["port"] = True
    p["spec"]["containers"][0]["resources"]["limits"]["memory"] = "2 G"
    errs = sch.validate(p)
    tap.is_(len(errs), 3, "schema: bad time, bool int-or-string and bad quantity all reported",
            errs)
    p = restricted_pod()
    p["metadata"]["labels"] = {"a": 1}
    p["spec"]["containers"] = {"name": "x"}
    errs = sch.validate(p)
    tap.ok("metadata.labels[a]: expected string, got integer" in errs and
           "spec.containers: expected array, got object" in errs, "schema: map values, arrays",
           errs)
    errs = sch.validate({"phase": "Running", "podIP": 5}, "io.k8s.api.core.v1.PodStatus")
    tap.is_(errs, ["podIP: expected string, got integer"], "schema: explicit definition")


def test_meta(tap):
    def names(kind, name):
        return S.validate_object_meta({"kind": kind, "metadata": {"name": name}}, kind)
    tap.is_(names("Pod", "nb-a.b-1"), [], "meta: subdomain name ok")
    for bad in ("Bad_Name", "a..b", "-a", "a-", "x" * 254, ""):
        tap.ok(names("Pod", bad), "meta: pod name %r rejected" % bad[:20])
    tap.ok(names("Service", "1abc") and not names("Pod", "1abc"),
           "meta: Service names are DNS-1035 labels (no leading digit), pods are not")
    tap.ok(names("Service", "a.b"), "meta: Service name with a dot rejected")
    tap.ok(any(e.startswith('metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 '
                            'subdomain') for e in names("Pod", "Bad_Name")),
           "meta: real wording for a bad name")
    lab = S.validate_object_meta({"metadata": {"name": "a", "labels": {
        "nbgate.io/user": "ok", "bad key!": "v", "k": "x" * 64, "p/": "v",
        "UPPER.example/x": "v", "ok/n": "-bad"}}}, "Pod")
    tap.is_(len(lab), 5, "meta: label keys/values checked (5 bad of 6)", lab)
    big = {"metadata": {"name": "a", "annotations": {"k": "v" * (256 * 1024)}}}
    tap.ok(any("Too long" in e for e in S.validate_object_meta(big, "Pod")),
           "meta: annotations over 256 KiB rejected")
    tap.is_(S.validate_object_meta({"metadata": {"generateName": "nb-"}}, "Pod"), [],
            "meta: generateName satisfies the name requirement")


def test_cli(tap):
    d = tempfile.mkdtemp(prefix="nbgate-t8000-")
    try:
        good, bad = os.path.join(d, "good.yaml"), os.path.join(d, "bad.yaml")
        docs = fixtures()
        with open(good, "w") as f:
            f.write("---\n".join(json.dumps(o) + "\n" for o in docs.values()))
        p = copy.deepcopy(docs["Pod"])
        p["spec"]["containers"][0]["imagee"] = "x"
        with open(bad, "w") as f:
            f.write(json.dumps(docs["Secret"]) + "\n---\n" + json.dumps(p) + "\n")
        lib = os.path.join(HERE, "lib", "schema.py")
        r1 = subprocess.run([T.PY, lib, good], capture_output=True, text=True, timeout=60)
        r2 = subprocess.run([T.PY, lib, bad], capture_output=True, text=True, timeout=60)
        tap.is_((r1.returncode, r1.stdout), (0, ""), "cli: valid multi-doc YAML exits 0")
        tap.ok(r2.returncode == 1 and 'doc 1 (Pod/nb-alice): spec.containers[0].imagee: '
               'unknown field "imagee"' in r2.stdout, "cli: invalid doc reported, exit 1",
               r2.stdout + r2.stderr)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def status_of(tap, got, code, reason, name):
    st, body = got
    ok = st == code and isinstance(body, dict) and body.get("kind") == "Status" and \
        body.get("code") == code and body.get("reason") == reason and \
        body.get("status") == "Failure"
    tap.ok(ok, name, "got %r %r" % (st, body))
    return body if isinstance(body, dict) else {}


def test_auth(tap, srv, c):
    anon = A.ApiClient(srv)
    status_of(tap, anon.req("GET", PODS), 401, "Unauthorized", "auth: no token -> 401 Status")
    status_of(tap, A.ApiClient(srv, token="wrong").req("GET", PODS), 401, "Unauthorized",
              "auth: unknown token -> 401")
    tok = srv.add_token("rotated-token")
    tap.is_(A.ApiClient(srv, token=tok).req("GET", PODS)[0], 200, "auth: added token works")
    srv.revoke_token(tok)
    tap.is_(A.ApiClient(srv, token=tok).req("GET", PODS)[0], 401, "auth: revoked token -> 401")
    crt = srv.pki.client("alice-cert")
    tap.is_(A.ApiClient(srv, cert=crt).req("GET", PODS)[0], 200,
            "auth: client certificate signed by the CA works")
    tap.is_(anon.req("GET", "/version")[1].get("minor"), "24", "/version answers v1.24")


def test_create(tap, srv, c):
    st, pod = c.req("POST", PODS, restricted_pod())
    tap.is_(st, 201, "create: valid restricted pod -> 201", pod)
    if st != 201:
        return
    m = pod["metadata"]
    tap.ok(m.get("uid") and m.get("creationTimestamp") and m.get("resourceVersion", "").isdigit(),
           "create: uid, creationTimestamp, resourceVersion filled")
    tap.is_((pod["status"].get("phase"), pod["status"].get("qosClass")), ("Pending", "Burstable"),
            "create: status Pending, qosClass Burstable")
    sp = pod["spec"]
    tap.ok(sp["restartPolicy"] == "Always" and sp["dnsPolicy"] == "ClusterFirst" and
           sp["schedulerName"] == "default-scheduler" and
           sp["containers"][0]["resources"]["requests"].get("nvidia.com/gpu") == 1 and
           not any(v["name"].startswith("kube-api-access") for v in sp["volumes"]),
           "create: defaults filled, requests defaulted from limits, no token volume "
           "(automount false)")
    st2, pod2 = c.req("GET", PODS + "/nb-alice")
    tap.ok(st2 == 200 and pod2 == pod, "get: returns the stored object")
    body = status_of(tap, c.req("POST", PODS, restricted_pod()), 409, "AlreadyExists",
                     "create: duplicate -> 409 AlreadyExists")
    tap.is_(body.get("message"), 'pods "nb-alice" already exists', "409 message wording")
    body = status_of(tap, c.req("GET", PODS + "/nope"), 404, "NotFound", "get: missing -> 404")
    tap.is_(body.get("message"), 'pods "nope" not found', "404 message wording")
    status_of(tap, c.req("POST", "/api/v1/namespaces/nowhere/pods", restricted_pod("x")), 404,
              "NotFound", "create: unknown namespace -> 404")
    for kind in ("PersistentVolumeClaim", "Secret", "Service", "Event", "Job"):
        o = fixtures()[kind]
        res = A.KIND_TO_RES[kind]
        base = "/apis/batch/v1" if kind == "Job" else "/api/v1"
        st, got = c.req("POST", "%s/namespaces/%s/%s" % (base, NS, res), o)
        tap.is_(st, 201, "create: valid %s -> 201" % kind, got)
    pvc = srv.get("PersistentVolumeClaim", NS, "home-alice")
    tap.is_(pvc and pvc["status"]["phase"], "Bound", "create: PVC Bound (pvc_bound)")
    sec = srv.get("Secret", NS, "nb-alice-env")
    tap.ok(sec and "stringData" not in sec and sec["data"].get("NBGATE_SERVER_TOKEN") ==
           "czNjcjN0" and sec["data"].get("X") == "eA==", "create: Secret stringData -> data")
    job = srv.get("Job", NS, "job-1")
    tap.ok(job and job["spec"]["template"]["metadata"]["labels"].get("job-name") == "job-1",
           "create: Job selector/labels defaulted")


def test_invalid(tap, srv, c):
    p = restricted_pod("nb-bad")
    p["spec"]["containers"][0]["foo"] = "bar"
    body = status_of(tap, c.req("POST", PODS, p), 422, "Invalid", "create: unknown field -> 422")
    tap.ok('spec.containers[0].foo: unknown field "foo"' in body.get("message", ""),
           "422 message names the path", body.get("message"))
    tap.ok(any(cs.get("field") == "spec.containers[0].foo"
               for cs in body.get("details", {}).get("causes", [])), "422 causes carry the field")
    p = restricted_pod("nb-bad")
    p["spec"]["securityContext"]["runAsUser"] = "1000"
    body = status_of(tap, c.req("POST", PODS, p), 422, "Invalid", "create: wrong type -> 422")
    tap.ok("spec.securityContext.runAsUser: expected integer, got string" in
           body.get("message", ""), "wrong type message", body.get("message"))
    p = restricted_pod("nb-bad")
    del p["spec"]["containers"]
    status_of(tap, c.req("POST", PODS, p), 422, "Invalid", "create: missing containers -> 422")
    p["spec"]["containers"] = []
    body = status_of(tap, c.req("POST", PODS, p), 422, "Invalid", "create: empty containers "
                     "-> 422")
    tap.ok("spec.containers: Required value" in body.get("message", ""), "empty containers "
           "wording", body.get("message"))
    p = restricted_pod("Nb_Bad")
    body = status_of(tap, c.req("POST", PODS, p), 422, "Invalid", "create: bad name -> 422")
    tap.ok(body.get("message", "").startswith('Pod "Nb_Bad" is invalid: metadata.name: Invalid'),
           "bad name wording", body.get("message"))
    p = restricted_pod("nb-bad")
    p["spec"]["containers"][0]["env"][0]["name"] = "1BAD"
    status_of(tap, c.req("POST", PODS, p), 422, "Invalid", "create: bad env var name -> 422")
    p = restricted_pod("nb-bad")
    p["kind"] = "Secret"
    status_of(tap, c.req("POST", PODS, p), 400, "BadRequest", "create: kind does not match the "
              "path -> 400")
    p = restricted_pod("nb-bad")
    p["metadata"]["namespace"] = "other"
    status_of(tap, c.req("POST", PODS, p), 400, "BadRequest", "create: namespace mismatch -> 400")
    status_of(tap, c.req("POST", PODS, raw=b"{not json"), 400, "BadRequest",
              "create: malformed JSON -> 400")
    big = restricted_pod("nb-big")
    big["metadata"]["annotations"]["x"] = "y" * (3 * 1024 * 1024)
    status_of(tap, c.req("POST", PODS, big), 413, "RequestEntityTooLarge",
              "create: body over 3 MiB -> 413")
    tap.is_(srv.get("Pod", NS, "nb-bad"), None, "no invalid pod was stored")


def test_rbac(tap, srv):
    srv.rbac = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]
    try:
        c = A.ApiClient(srv, token=srv.token)
        body = status_of(tap, c.req("POST", PODS, restricted_pod("nb-rbac")), 403, "Forbidden",
                         "rbac: create without the verb -> 403")
        tap.is_(body.get("message"), 'pods is forbidden: User "%s" cannot create resource '
                '"pods" in API group "" in the namespace "%s"' % (SA_USER, NS),
                "rbac: real wording")
        tap.is_(body.get("details"), {"kind": "pods"}, "rbac: details kind")
        tap.is_(c.req("GET", PODS)[0], 200, "rbac: list allowed")
        body = status_of(tap, c.req("GET", PODS + "/nb-alice/log"), 403, "Forbidden",
                         "rbac: pods/log is its own resource")
        tap.ok('pods "nb-alice" is forbidden' in body.get("message", "") and
               'cannot get resource "pods/log"' in body.get("message", ""),
               "rbac: subresource wording", body.get("message"))
        body = status_of(tap, c.req("DELETE", "/apis/batch/v1/namespaces/%s/jobs/job-1" % NS),
                         403, "Forbidden", "rbac: jobs.batch delete denied")
        tap.ok(body.get("message", "").startswith('jobs.batch "job-1" is forbidden') and
               'in API group "batch"' in body.get("message", ""), "rbac: group wording",
               body.get("message"))
    finally:
        srv.rbac = None


def test_selectors(tap, srv, c):
    for name, labels in (("sel-a", {"app": "x", "tier": "a"}), ("sel-b", {"app": "x"}),
                         ("sel-c", {"app": "y", "tier": "c"})):
        srv.create(restricted_pod(name, labels), NS)

    def names(q):
        st, lst = c.req("GET", PODS + "?" + q)
        return sorted(i["metadata"]["name"] for i in lst.get("items", [])) if st == 200 else st
    tap.is_(names("labelSelector=app%3Dx"), ["sel-a", "sel-b"], "list: label =")
    tap.is_(names("labelSelector=app%3D%3Dx,tier"), ["sel-a"], "list: label == and exists")
    tap.is_(names("labelSelector=app,!tier"), ["sel-b"], "list: !key")
    tap.is_(names("labelSelector=app!%3Dx"), ["nb-alice", "sel-c"],
            "list: label != (also matches objects without the key)")
    tap.is_(names("labelSelector=tier%20in%20(a,c)"), ["sel-a", "sel-c"], "list: in ()")
    tap.is_(names("labelSelector=tier%20notin%20(a),app"), ["sel-b", "sel-c"], "list: notin ()")
    tap.is_(names("fieldSelector=metadata.name%3Dsel-b"), ["sel-b"], "list: field metadata.name")
    tap.is_(names("fieldSelector=status.phase%3DRunning"), [], "list: field status.phase")
    tap.is_(names("fieldSelector=spec.foo%3Dx"), 400, "list: unsupported field -> 400")
    tap.is_(names("labelSelector=a%3D%3D%3Db"), 400, "list: malformed selector -> 400")
    st, lst = c.req("GET", PODS)
    tap.ok(st == 200 and lst["kind"] == "PodList" and
           lst["metadata"]["resourceVersion"] == str(srv.current_rv()) and
           all("kind" not in i for i in lst["items"]), "list: PodList with resourceVersion, "
           "items without kind")
    srv.create_event(NS, "sel-a", "Scheduled", "Successfully assigned")
    st, ev = c.req("GET", "/api/v1/namespaces/%s/events?fieldSelector=involvedObject.kind%%3DPod"
                   ",involvedObject.name%%3Dsel-a" % NS)
    tap.ok(st == 200 and [e["reason"] for e in ev["items"]] == ["Scheduled"],
           "events: involvedObject field selectors", ev)


def test_patch(tap, srv, c):
    pod = srv.get("Pod", NS, "sel-b")
    rv0 = pod["metadata"]["resourceVersion"]
    st, got = c.req("PATCH", PODS + "/sel-b", {"metadata": {"labels": {"tier": "b", "app": None}}},
                    ctype="application/merge-patch+json")
    tap.ok(st == 200 and got["metadata"]["labels"] == {"tier": "b"} and
           int(got["metadata"]["resourceVersion"]) > int(rv0), "patch: merge patch sets/removes "
           "labels, bumps resourceVersion", got)
    st, got = c.req("PATCH", PODS + "/sel-b", [
        {"op": "add", "path": "/metadata/annotations", "value": {"x.io/a": "1"}},
        {"op": "add", "path": "/metadata/annotations/x.io~1b", "value": "2"},
        {"op": "test", "path": "/metadata/labels/tier", "value": "b"}],
        ctype="application/json-patch+json")
    tap.ok(st == 200 and got["metadata"]["annotations"] == {"x.io/a": "1", "x.io/b": "2"},
           "patch: JSON patch (with ~1 escapes)", got)
    st, got = c.req("PATCH", PODS + "/sel-b", [{"op": "test", "path": "/metadata/name",
                                               "value": "zzz"}],
                    ctype="application/json-patch+json")
    tap.is_(st, 422, "patch: failed JSON patch test -> 422")
    st, got = c.req("PATCH", PODS + "/sel-b", {"metadata": {"labels": {"s": "1"}}},
                    ctype="application/strategic-merge-patch+json")
    tap.ok(st == 200 and got["metadata"]["labels"].get("s") == "1", "patch: strategic merge "
           "accepted (as merge)")
    status_of(tap, c.req("PATCH", PODS + "/sel-b", {"metadata": {"labels": {"s": "2"}}},
                         ctype="application/json"), 415, "UnsupportedMediaType",
              "patch: plain application/json -> 415")
    status_of(tap, c.req("PATCH", PODS + "/sel-b", {"metadata": {"resourceVersion": rv0,
                                                                "labels": {"s": "3"}}},
                         ctype="application/merge-patch+json"), 409, "Conflict",
              "patch: stale resourceVersion -> 409 Conflict")
    body = status_of(tap, c.req("PATCH", PODS + "/sel-b", {"spec": {"containers": [
        {"name": "server", "image": "x:1", "bogus": True}]}},
        ctype="application/merge-patch+json"), 422, "Invalid",
        "patch: result validated (unknown field) -> 422")
    tap.ok("bogus" in body.get("message", ""), "patch: 422 names the field", body)
    body = status_of(tap, c.req("PATCH", PODS + "/sel-b", {"spec": {"restartPolicy": "Never"}},
                                ctype="application/merge-patch+json"), 422, "Invalid",
                     "patch: pod spec change outside the mutable set -> 422")
    tap.ok("pod updates may not change fields" in body.get("message", ""), "pod update wording")
    st, got = c.req("PATCH", PODS + "/sel-b", {"spec": {"activeDeadlineSeconds": 60}},
                    ctype="application/merge-patch+json")
    tap.is_(st, 200, "patch: activeDeadlineSeconds is mutable")
    cur = srv.get("Pod", NS, "sel-b")
    st, got = c.req("PUT", PODS + "/sel-b", cur)
    tap.is_((st, got.get("metadata", {}).get("resourceVersion")),
            (200, cur["metadata"]["resourceVersion"]), "put: unchanged object is a no-op")
    cur["metadata"]["labels"]["put"] = "1"
    st, got = c.req("PUT", PODS + "/sel-b", cur)
    tap.is_(st, 200, "put: with the current resourceVersion -> 200")
    status_of(tap, c.req("PUT", PODS + "/sel-b", cur), 409, "Conflict",
              "put: with an old resourceVersion -> 409")
    status_of(tap, c.req("PATCH", PODS + "/nope", {}, ctype="application/merge-patch+json"),
              404, "NotFound", "patch: missing object -> 404")


def test_status_and_log(tap, srv, c):
    st = {"phase": "Running", "podIP": "127.0.0.1",
          "conditions": [{"type": "Ready", "status": "True"}],
          "containerStatuses": [{"name": "server", "ready": True, "restartCount": 0,
                                 "image": "x", "imageID": "", "state": {
                                     "running": {"startedAt": A.now_rfc3339()}}}]}
    pod = srv.put_status("Pod", NS, "sel-a", st)
    tap.is_(pod["status"]["phase"], "Running", "put_status: stored")
    try:
        srv.put_status("Pod", NS, "sel-a", {"phase": "Running", "podIP": 7})
        tap.ok(False, "put_status: invalid status rejected")
    except ValueError as e:
        tap.ok("podIP" in str(e), "put_status: invalid status rejected")
    status_of(tap, c.req("GET", PODS + "/sel-c/log"), 400, "BadRequest",
              "log: container waiting to start -> 400")
    srv.set_pod_log(NS, "sel-a", "".join("line %d\n" % i for i in range(30)))
    st, text = c.req("GET", PODS + "/sel-a/log?tailLines=3&container=server")
    tap.is_((st, text), (200, "line 27\nline 28\nline 29\n"), "log: tailLines")
    status_of(tap, c.req("GET", PODS + "/sel-a/log?container=nope"), 400, "BadRequest",
              "log: unknown container -> 400")
    status_of(tap, c.req("GET", PODS + "/sel-a/log?previous=true"), 400, "BadRequest",
              "log: no previous instance -> 400")


def test_delete(tap, srv, c):
    seen = []
    srv.on_change(lambda t, k, o: seen.append((t, k, o["metadata"]["name"])))
    srv.create(restricted_pod("del-a"), NS)
    srv.bind_pod(NS, "del-a", "node-1")
    st, got = c.req("DELETE", PODS + "/del-a", {"kind": "DeleteOptions", "apiVersion": "v1",
                                                "gracePeriodSeconds": 30})
    tap.ok(st == 200 and got["metadata"].get("deletionTimestamp") and
           got["metadata"].get("deletionGracePeriodSeconds") == 30,
           "delete: bound pod gets deletionTimestamp", got)
    tap.ok(srv.get("Pod", NS, "del-a") is not None, "delete: terminating pod still there")
    tap.ok(srv.finalize_delete("Pod", NS, "del-a") and srv.get("Pod", NS, "del-a") is None,
           "delete: finalize_delete removes it")
    srv.create(restricted_pod("del-b"), NS)
    st, got = c.req("DELETE", PODS + "/del-b")
    tap.ok(st == 200 and srv.get("Pod", NS, "del-b") is None,
           "delete: unscheduled pod is gone at once")
    srv.create(restricted_pod("del-c"), NS)
    srv.bind_pod(NS, "del-c", "node-1")
    c.req("DELETE", PODS + "/del-c?gracePeriodSeconds=1")
    tap.ok(T.wait_until(lambda: srv.get("Pod", NS, "del-c") is None, 5),
           "delete: gone after the grace period")
    status_of(tap, c.req("DELETE", PODS + "/del-c"), 404, "NotFound", "delete: missing -> 404")
    st, got = c.req("DELETE", "/api/v1/namespaces/%s/secrets/nb-alice-env" % NS)
    tap.ok(st == 200 and got.get("status") == "Success" and got["details"]["name"] ==
           "nb-alice-env", "delete: secret -> Status Success", got)
    srv.create(restricted_pod("del-d"), NS)
    status_of(tap, c.req("DELETE", PODS + "/del-d", {"preconditions": {"uid": "other"}}), 409,
              "Conflict", "delete: failed uid precondition -> 409")
    tap.ok(T.wait_until(lambda: ("DELETED", "Pod", "del-c") in seen, 3) and
           ("MODIFIED", "Pod", "del-a") in seen, "on_change: MODIFIED/DELETED observed")


def test_watch(tap, srv, c):
    rv = srv.current_rv()
    q = PODS + "?watch=1&resourceVersion=%d&timeoutSeconds=5" % rv
    srv.create(restricted_pod("w-1", {"app": "w"}), NS)
    srv.put_status("Pod", NS, "w-1", {"phase": "Running"})
    evs, end = c.watch(q, until=lambda e: len(e) >= 2, timeout=5)
    tap.is_([(e["type"], e["object"]["metadata"]["name"]) for e in evs],
            [("ADDED", "w-1"), ("MODIFIED", "w-1")], "watch: events after resourceVersion")
    tap.ok(evs and evs[0]["object"].get("kind") == "Pod", "watch: event objects carry kind")
    evs, end = c.watch(PODS + "?watch=true&labelSelector=app%3Dw&timeoutSeconds=1", timeout=5)
    tap.is_(([e["type"] for e in evs], end), (["ADDED"], "eof"),
            "watch: no resourceVersion = ADDED for current objects; ends at timeoutSeconds")
    srv.compact()
    evs, end = c.watch(q, timeout=5)
    tap.ok(len(evs) == 1 and evs[0]["type"] == "ERROR" and evs[0]["object"]["code"] == 410 and
           evs[0]["object"]["reason"] == "Expired" and
           evs[0]["object"]["message"].startswith("too old resource version: %d (" % rv) and
           end == "eof", "watch: compacted resourceVersion -> ERROR 410 Expired, closed", evs)
    srv.bookmark_interval = 0.2
    rv = srv.current_rv()
    evs, end = c.watch(PODS + "?watch=1&allowWatchBookmarks=true&resourceVersion=%d" % rv,
                       until=lambda e: len(e) >= 2, timeout=5)
    tap.ok(len(evs) == 2 and all(e["type"] == "BOOKMARK" for e in evs) and
           set(evs[0]["object"]) == {"kind", "apiVersion", "metadata"} and
           evs[0]["object"]["metadata"] == {"resourceVersion": str(rv)},
           "watch: bookmarks arrive with only kind/apiVersion/resourceVersion", evs)
    rv = srv.current_rv()
    out = {}

    def run():
        out["r"] = c.watch(PODS + "?watch=1&resourceVersion=%d" % rv, timeout=8)
    import threading
    t = threading.Thread(target=run)
    t.start()
    time.sleep(0.5)
    srv.drop_watches()
    t.join(10)
    tap.ok(out.get("r") and out["r"][1] in ("broken", "eof") and not t.is_alive(),
           "watch: drop_watches() cuts the stream", out.get("r"))
    rv = srv.current_rv()
    srv.create(restricted_pod("w-2", {"app": "w"}), NS)
    c.req("PATCH", PODS + "/w-2", {"metadata": {"labels": {"app": "gone"}}},
          ctype="application/merge-patch+json")
    evs, _ = c.watch(PODS + "?watch=1&labelSelector=app%%3Dw&resourceVersion=%d" % rv,
                     until=lambda e: len(e) >= 2, timeout=5)
    tap.is_([e["type"] for e in evs], ["ADDED", "DELETED"],
            "watch: an object leaving the selector is sent as DELETED")
    evs, _ = c.watch(PODS + "?watch=1&resourceVersion=abc", timeout=3)
    tap.ok(evs and evs[0].get("status") == 400, "watch: malformed resourceVersion -> 400")


def test_psa(tap, srv, c):
    srv.add_namespace("psa-ns", {"pod-security.kubernetes.io/enforce": "restricted"})
    base = "/api/v1/namespaces/psa-ns/pods"
    p = restricted_pod("evil")
    p["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    body = status_of(tap, c.req("POST", base, p), 403, "Forbidden",
                     "psa: privileged pod -> 403")
    tap.ok(body.get("message", "").startswith(
        'pods "evil" is forbidden: violates PodSecurity "restricted:latest": ') and
        "privileged" in body.get("message", ""), "psa: real wording", body.get("message"))
    st, got = c.req("POST", base, restricted_pod("good"))
    tap.is_(st, 201, "psa: restricted pod accepted in an enforcing namespace", got)


def test_faults_misc(tap, srv, c):
    srv.fail_next("GET", r"/pods/sel-a$", 500, "etcd is on fire")
    body = status_of(tap, c.req("GET", PODS + "/sel-a"), 500, "InternalError",
                     "fail_next: injected 500")
    tap.is_(body.get("message"), "etcd is on fire", "fail_next: message")
    tap.is_(c.req("GET", PODS + "/sel-a")[0], 200, "fail_next: only once")
    srv.fail_next("*", r"/pods", 429, "slow down")
    tap.ok(c.req("GET", PODS)[0] == 429 and c.last_headers.get("Retry-After") == "1",
           "fail_next: 429 with Retry-After")
    ck = "/api/v1/nodes/node-1/proxy/checkpoint/%s/sel-a/server" % NS
    tap.is_(c.req("POST", ck)[0], 404, "checkpoint: 404 when the kubelet API is off")
    srv.checkpoint_enabled = True
    srv.bind_pod(NS, "sel-a", "node-1")
    st, got = c.req("POST", ck)
    tap.ok(st == 200 and got["items"][0].startswith(
        "/var/lib/kubelet/checkpoints/checkpoint-sel-a_%s-server-" % NS), "checkpoint: items", got)
    st, ns = c.req("GET", "/api/v1/namespaces/" + NS)
    tap.ok(st == 200 and ns["metadata"]["labels"]["kubernetes.io/metadata.name"] == NS,
           "namespace: GET")
    tap.is_(c.req("GET", "/api/v1/namespaces/zz")[0], 404, "namespace: unknown -> 404")
    tap.is_(c.req("GET", "/api/v1/namespaces/%s/configmaps" % NS)[0], 404,
            "unserved resource -> 404")
    tap.ok(any(r[0] == "POST" and r[2] == 409 for r in srv.requests) and
           any(r["code"] == 422 for r in srv.rejections), "requests/rejections are logged")


def test_credentials(tap, srv):
    d = tempfile.mkdtemp(prefix="nbgate-t8000-")
    try:
        env = srv.write_in_cluster(d, NS)
        sa = os.path.join(d, A.SA_DIR)
        tok = open(os.path.join(sa, "token")).read()
        tap.ok(env["KUBERNETES_SERVICE_PORT"] == str(srv.port) and
               A.ApiClient(srv, token=tok).req("GET", PODS)[0] == 200 and
               open(os.path.join(sa, "namespace")).read() == NS, "in-cluster files work")
        kc = json.load(open(srv.write_kubeconfig(os.path.join(d, "kc"), NS, auth="cert")))
        u = kc["users"][0]["user"]
        tap.is_(A.ApiClient(srv, cert=(u["client-certificate"], u["client-key"]))
                .req("GET", PODS)[0], 200, "kubeconfig (cert): credentials work")
        curl = shutil.which("curl") or "curl"  # scripts/deps.apt installs it
        r = subprocess.run([curl, "-sS", "--cacert", srv.ca_file, "-H",
                            "Authorization: Bearer " + srv.token, srv.url + PODS + "/sel-a",
                            srv.url + PODS + "/sel-b"], capture_output=True, text=True,
                           timeout=30)
        tap.ok(r.returncode == 0 and r.stdout.count('"kind": "Pod"') == 2,
               "curl (libcurl, OpenSSL) verifies the CA and reuses the connection",
               r.stderr)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def run(tap):
    tap.run("schema", test_schema, tap)
    tap.run("meta", test_meta, tap)
    tap.run("cli", test_cli, tap)
    srv = A.ContractApiServer(namespaces=(NS,))
    srv.start()
    try:
        c = A.ApiClient(srv, token=srv.token)
        for name, fn in (("auth", test_auth), ("create", test_create),
                         ("invalid", test_invalid), ("selectors", test_selectors),
                         ("patch", test_patch), ("status", test_status_and_log),
                         ("delete", test_delete), ("watch", test_watch), ("psa", test_psa),
                         ("faults", test_faults_misc)):
            tap.run(name, fn, tap, srv, c)
        tap.run("rbac", test_rbac, tap, srv)
        tap.run("credentials", test_credentials, tap, srv)
        tap.is_(srv.errors, [], "the double itself did not crash")
    finally:
        t0 = time.monotonic()
        srv.stop()
    tap.ok(time.monotonic() - t0 < 6 and not srv.leaked_threads,
           "stop(): every thread exits", srv.leaked_threads)


T.main(run)
