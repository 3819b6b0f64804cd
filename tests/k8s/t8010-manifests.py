#!/usr/bin/python3
"""t8010: manifests/ renders, validates and is as narrow as it claims (TAP).

Renders manifests/base and manifests/overlays/example with
tests/k8s/lib/kustomize.py and checks:
  - the renderer itself (refused keys, strategic merge, JSON 6902, generator
    hashes, a patch that matches nothing);
  - every object against the Kubernetes v1.24 OpenAPI schema
    (tests/k8s/lib/schema.py, the contract double's validator);
  - every pod template against Pod Security "restricted" (tests/k8s/lib/pss.py)
    except the seccomp installer DaemonSet, asserted to be the only exception
    and to live in a namespace that does not enforce "restricted";
  - SBX-16: a user pod like the backend's passes, each mutation of one field
    fails with the PSA wording; the backend's pods from fixtures when present;
  - RBAC: the Role is exactly tests/k8s/fixtures/rbac-backend.json, nodes/proxy
    only in the overlay's ClusterRole; automount only on the gateway pod;
  - the config.json in the ConfigMap agrees with the Deployment and loads in
    `nbgate config print` (once the binary knows the `kubernetes` key);
  - the Secret's placeholder is not a usable key; the state and key plumbing;
  - NetworkPolicies (evaluated here): only the gateway reaches users' pods,
    DNS and the hub API out, internet only for nbgate.io/network=egress, the
    cloud metadata address never.
"""

import base64
import copy
import ipaddress
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, os.path.join(REPO, "tests", "integration", "lib"))

import kustomize  # noqa: E402
import pss  # noqa: E402
import schema  # noqa: E402
from nbgate_test import main  # noqa: E402

BASE = os.path.join(REPO, "manifests", "base")
OVERLAY = os.path.join(REPO, "manifests", "overlays", "example")
FIXTURES = os.path.join(HERE, "fixtures")
NBGATE = os.environ.get("NBGATE", os.path.join(REPO, "build", "nbgate"))
POD_KINDS = {"Pod", "Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob",
             "ReplicationController", "PodTemplate"}
INSTALLER = ("DaemonSet", "nbgate-system", "nbgate-seccomp-installer")


def find(objs, kind, name=None, ns=None):
    out = [o for o in objs if o["kind"] == kind
           and (name is None or o["metadata"]["name"] == name
                or (kind == "ConfigMap" and o["metadata"]["name"].startswith(name + "-")))
           and (ns is None or o["metadata"].get("namespace") == ns)]
    return out


def one(objs, kind, name, ns=None):
    hits = find(objs, kind, name, ns)
    if len(hits) != 1:
        raise AssertionError("%d objects %s/%s in %s" % (len(hits), kind, name, ns))
    return hits[0]


def ident(o):
    return (o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"])


# ---------------------------------------------------------------------------
# the renderer
# ---------------------------------------------------------------------------

def write_tree(root, files):
    for rel, text in files.items():
        p = os.path.join(root, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(text)


DEPLOY = """apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: a}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - {name: c1, image: "reg.example/web:1", env: [{name: A, value: "1"}]}
        - {name: c2, image: "reg.example/side@sha256:0000"}
      volumes: [{name: cfg, configMap: {name: cfg}}]
"""


def t_renderer(tap):
    with tempfile.TemporaryDirectory() as d:
        write_tree(d, {"kustomization.yaml": "resources: [d.yaml]\nvars: []\n", "d.yaml": DEPLOY})
        try:
            kustomize.render(d)
            tap.ok(False, "kustomize: an unknown key (vars) is refused")
        except kustomize.KustomizeError as e:
            tap.ok("vars" in str(e), "kustomize: an unknown key (vars) is refused", str(e))
    with tempfile.TemporaryDirectory() as d:
        write_tree(d, {
            "base/kustomization.yaml": "resources: [d.yaml]\n"
                                       "configMapGenerator: [{name: cfg, namespace: a, "
                                       "literals: [x=1]}]\n",
            "base/d.yaml": DEPLOY,
            "o/kustomization.yaml": """resources: [../base]
namespace: b
commonLabels: {team: t}
images: [{name: reg.example/web, newName: reg2.example/web, newTag: "2"}]
configMapGenerator: [{name: cfg, namespace: a, behavior: merge, literals: [y=2]}]
patches:
  - patch: |
      kind: Deployment
      metadata: {name: web, namespace: a}
      spec:
        template:
          spec:
            containers:
              - {name: c1, env: [{name: B, value: "2"}]}
              - {name: c2, $patch: delete}
  - target: {kind: Deployment, name: web}
    patch: |
      - {op: add, path: /spec/replicas, value: 3}
      - {op: remove, path: /spec/template/spec/containers/0/env/0}
""",
        })
        objs = kustomize.render(os.path.join(d, "o"))
        dep = one(objs, "Deployment", "web")
        cm = one(objs, "ConfigMap", "cfg")
        spec = dep["spec"]["template"]["spec"]
        tap.is_([c["name"] for c in spec["containers"]], ["c1"],
                "kustomize: strategic merge $patch delete removes a keyed list item")
        tap.is_(spec["containers"][0]["env"], [{"name": "B", "value": "2"}],
                "kustomize: env merged by name, then JSON 6902 remove of the first")
        tap.is_(dep["spec"]["replicas"], 3, "kustomize: JSON 6902 add")
        tap.is_(spec["containers"][0]["image"], "reg2.example/web:2",
                "kustomize: images newName + newTag")
        tap.is_((dep["metadata"]["namespace"], cm["metadata"]["namespace"]), ("b", "b"),
                "kustomize: namespace moves every namespaced object")
        tap.is_((dep["spec"]["selector"]["matchLabels"].get("team"),
                 dep["spec"]["template"]["metadata"]["labels"].get("team")), ("t", "t"),
                "kustomize: commonLabels reach the selector and the template")
        tap.is_(cm["data"], {"x": "1", "y": "2"}, "kustomize: generator behavior merge")
        tap.ok(cm["metadata"]["name"].startswith("cfg-") and len(cm["metadata"]["name"]) == 14,
               "kustomize: generated ConfigMap gets a 10-char hash suffix",
               cm["metadata"]["name"])
        tap.is_(spec["volumes"][0]["configMap"]["name"], cm["metadata"]["name"],
                "kustomize: references follow the hashed name")
        tap.ok(not any(k.startswith("x-kustomize") for k in cm["metadata"]),
               "kustomize: no internal marks in the output")
        write_tree(d, {"o/kustomization.yaml": "resources: [../base]\npatches:\n"
                       "  - patch: '{kind: Deployment, metadata: {name: nothere}}'\n"})
        try:
            kustomize.render(os.path.join(d, "o"))
            tap.ok(False, "kustomize: a patch that matches nothing is an error")
        except kustomize.KustomizeError as e:
            tap.ok("matches no object" in str(e),
                   "kustomize: a patch that matches nothing is an error", str(e))
        write_tree(d, {"o/kustomization.yaml": "resources: [../base]\nconfigMapGenerator:\n"
                       "  - {name: z, files: [../base/d.yaml]}\n"})
        try:
            kustomize.render(os.path.join(d, "o"))
            tap.ok(False, "kustomize: generator files outside the directory are refused")
        except kustomize.KustomizeError as e:
            tap.ok("outside" in str(e),
                   "kustomize: generator files outside the directory are refused", str(e))


# ---------------------------------------------------------------------------
# schema
# ---------------------------------------------------------------------------

def t_schema(tap, name, objs):
    s = schema.default_schema()
    for o in objs:
        errs = list(s.validate(o)) + list(schema.validate_object_meta(o) or [])
        tap.is_(errs, [], "%s: %s %s/%s validates against the v1.24 schema" % ((name,) + ident(o)))


# ---------------------------------------------------------------------------
# Pod Security
# ---------------------------------------------------------------------------

def ns_labels(objs, ns):
    hits = find(objs, "Namespace", ns)
    return (hits[0]["metadata"].get("labels") or {}) if hits else {}


def t_pod_security(tap, name, objs):
    exceptions = []
    for o in objs:
        if o["kind"] not in POD_KINDS:
            continue
        v = pss.check_restricted(o)
        if v:
            exceptions.append((ident(o), v))
            continue
        tap.ok(True, "%s: %s %s/%s passes Pod Security restricted" % ((name,) + ident(o)))
        tap.is_(ns_labels(objs, o["metadata"]["namespace"])
                .get("pod-security.kubernetes.io/enforce"), "restricted",
                "%s: %s's namespace enforces restricted" % (name, o["metadata"]["name"]))
        gateway = o["metadata"]["name"] == "nbgate"
        tap.is_(pss.check_nbgate(o, allow_automount=gateway), [],
                "%s: %s %s/%s passes nbgate's extra rules" % ((name,) + ident(o)))
    tap.is_([e[0] for e in exceptions], [INSTALLER],
            "%s: the seccomp installer is the only pod template that is not restricted"
            % name, "\n".join("%s: %s" % e for e in exceptions))
    inst = find(objs, "DaemonSet", INSTALLER[2], INSTALLER[1])
    if inst:
        v = pss.check_restricted(inst[0])
        tap.ok(all(m.startswith(("restricted volume types (volume \"host-seccomp\"",
                                 "runAsNonRoot", "runAsUser=0"))
                   for m in v), "%s: the installer breaks only hostPath and uid 0" % name,
               "\n".join(v))
        tap.is_(pss.check_baseline(inst[0]), ["hostPath volumes (volume \"host-seccomp\")"],
                "%s: under baseline, the installer breaks only the hostPath rule" % name)
        tap.is_(ns_labels(objs, "nbgate-system").get("pod-security.kubernetes.io/enforce"),
                "privileged", "%s: nbgate-system is labelled privileged (it must be)" % name)
        c = inst[0]["spec"]["template"]["spec"]["containers"][0]["securityContext"]
        tap.ok(c.get("allowPrivilegeEscalation") is False and c.get("capabilities") ==
               {"drop": ["ALL"]} and c.get("readOnlyRootFilesystem") is True
               and not c.get("privileged"),
               "%s: the installer still drops every capability, read-only root" % name, c)
    for ns in ("nbgate-users", "nbgate"):
        lab = ns_labels(objs, ns)
        tap.is_([lab.get("pod-security.kubernetes.io/" + m) for m in ("enforce", "audit", "warn")],
                ["restricted"] * 3, "%s: namespace %s enforce/audit/warn restricted" % (name, ns))


def good_pod():
    """A user pod shaped like spawner/k8s_pod.c's (k8s_build_pod)."""
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "nb-alice", "namespace": "nbgate-users",
                     "labels": {"app.kubernetes.io/managed-by": "nbgate",
                                "nbgate.io/network": "none"}},
        "spec": {
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "restartPolicy": "OnFailure",
            "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000,
                                "fsGroup": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "server", "image": "registry.example/nbgate/jupyterlab:4",
                "command": ["python3", "-m", "jupyterlab", "--ServerApp.port=8888",
                            "--IdentityProvider.token=$(NBGATE_SERVER_TOKEN)"],
                "envFrom": [{"secretRef": {"name": "nb-alice-env"}}],
                "env": [{"name": "NBGATE_POD_IP",
                         "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                        {"name": "LANG", "value": "C.UTF-8"}],
                "ports": [{"name": "http", "containerPort": 8888}],
                "securityContext": {"allowPrivilegeEscalation": False, "privileged": False,
                                    "runAsNonRoot": True, "runAsUser": 1000,
                                    "capabilities": {"drop": ["ALL"]}},
                "volumeMounts": [{"name": "home", "mountPath": "/home/jovyan"},
                                 {"name": "tmp", "mountPath": "/tmp"}],
            }],
            "volumes": [{"name": "home", "persistentVolumeClaim": {"claimName": "home-alice"}},
                        {"name": "tmp", "emptyDir": {}}],
        },
    }


def _c(p):
    return p["spec"]["containers"][0]


def _csc(p):
    return _c(p)["securityContext"]


def _psc(p):
    return p["spec"]["securityContext"]


C = 'container "server"'
# (what, mutation, the restricted messages it must produce exactly)
MUTATIONS = [
    ("allowPrivilegeEscalation true", lambda p: _csc(p).update(allowPrivilegeEscalation=True),
     ['allowPrivilegeEscalation != false (%s must set '
      'securityContext.allowPrivilegeEscalation=false)' % C]),
    ("allowPrivilegeEscalation absent", lambda p: _csc(p).pop("allowPrivilegeEscalation"),
     ['allowPrivilegeEscalation != false (%s must set '
      'securityContext.allowPrivilegeEscalation=false)' % C]),
    ("runAsNonRoot absent", lambda p: (_csc(p).pop("runAsNonRoot"), _psc(p).pop("runAsNonRoot")),
     ['runAsNonRoot != true (pod or %s must set securityContext.runAsNonRoot=true)' % C]),
    ("runAsNonRoot false", lambda p: _csc(p).update(runAsNonRoot=False),
     ['runAsNonRoot != true (%s must not set securityContext.runAsNonRoot=false)' % C]),
    ("runAsUser 0 (container)", lambda p: _csc(p).update(runAsUser=0),
     ['runAsUser=0 (%s must not set runAsUser=0)' % C]),
    ("runAsUser 0 (pod)", lambda p: _psc(p).update(runAsUser=0),
     ['runAsUser=0 (pod must not set runAsUser=0)']),
    ("capabilities add SYS_ADMIN",
     lambda p: _csc(p)["capabilities"].update(add=["SYS_ADMIN"]),
     ['unrestricted capabilities (%s must not include "SYS_ADMIN" in '
      'securityContext.capabilities.add)' % C]),
    ("capabilities add NET_BIND_SERVICE (allowed)",
     lambda p: _csc(p)["capabilities"].update(add=["NET_BIND_SERVICE"]), []),
    ("capabilities drop missing", lambda p: _csc(p).pop("capabilities"),
     ['unrestricted capabilities (%s must set securityContext.capabilities.drop=["ALL"])' % C]),
    ("seccomp Unconfined (pod)",
     lambda p: _psc(p).update(seccompProfile={"type": "Unconfined"}),
     ['seccompProfile (pod must not set securityContext.seccompProfile.type to "Unconfined")']),
    ("seccomp Unconfined (container)",
     lambda p: _csc(p).update(seccompProfile={"type": "Unconfined"}),
     ['seccompProfile (%s must not set securityContext.seccompProfile.type to "Unconfined")'
      % C]),
    ("seccomp absent", lambda p: _psc(p).pop("seccompProfile"),
     ['seccompProfile (pod or %s must set securityContext.seccompProfile.type to '
      '"RuntimeDefault" or "Localhost")' % C]),
    ("seccomp Localhost (allowed)",
     lambda p: _psc(p).update(seccompProfile={"type": "Localhost",
                                              "localhostProfile": "nbgate/default.json"}), []),
    ("hostPath volume",
     lambda p: p["spec"]["volumes"].append({"name": "host", "hostPath": {"path": "/"}}),
     ['restricted volume types (volume "host" uses restricted volume type "hostPath")']),
    ("hostNetwork", lambda p: p["spec"].update(hostNetwork=True),
     ['host namespaces (hostNetwork=true)']),
    ("hostPID + hostIPC", lambda p: p["spec"].update(hostPID=True, hostIPC=True),
     ['host namespaces (hostPID=true, hostIPC=true)']),
    ("hostPort", lambda p: _c(p)["ports"][0].update(hostPort=8888),
     ['hostPort (%s uses hostPort 8888)' % C]),
    ("privileged", lambda p: _csc(p).update(privileged=True),
     ['privileged (%s must not set securityContext.privileged=true)' % C]),
    ("procMount Unmasked", lambda p: _csc(p).update(procMount="Unmasked"),
     ['procMount (%s must not set securityContext.procMount to "Unmasked")' % C]),
    ("sysctls", lambda p: _psc(p).update(sysctls=[{"name": "kernel.msgmax", "value": "1"},
                                                  {"name": "net.ipv4.tcp_syncookies",
                                                   "value": "1"}]),
     ['forbidden sysctls (kernel.msgmax)']),
    ("SELinux type", lambda p: _csc(p).update(seLinuxOptions={"type": "spc_t"}),
     ['seLinuxOptions (%s set forbidden securityContext.seLinuxOptions: type "spc_t")' % C]),
    ("AppArmor unconfined",
     lambda p: p["metadata"].update(annotations={
         "container.apparmor.security.beta.kubernetes.io/server": "unconfined"}),
     ['forbidden AppArmor profile (container.apparmor.security.beta.kubernetes.io/'
      'server="unconfined")']),
    ("a second container without a security context",
     lambda p: p["spec"]["containers"].append({"name": "side", "image": "x"}),
     ['allowPrivilegeEscalation != false (container "side" must set '
      'securityContext.allowPrivilegeEscalation=false)',
      'unrestricted capabilities (container "side" must set '
      'securityContext.capabilities.drop=["ALL"])']),
]

NB_MUTATIONS = [
    ("automountServiceAccountToken true",
     lambda p: p["spec"].update(automountServiceAccountToken=True),
     ["automountServiceAccountToken != false (pod must set "
      "spec.automountServiceAccountToken=false)"]),
    ("automountServiceAccountToken absent",
     lambda p: p["spec"].pop("automountServiceAccountToken"),
     ["automountServiceAccountToken != false (pod must set "
      "spec.automountServiceAccountToken=false)"]),
    ("token in a plain env value",
     lambda p: _c(p)["env"].append({"name": "NBGATE_SERVER_TOKEN", "value": "abc123"}),
     ['secret in plain env (%s sets env "NBGATE_SERVER_TOKEN" to a literal value; use '
      'valueFrom.secretKeyRef or envFrom a Secret)' % C]),
    ("an nbgate token under an innocent name",
     lambda p: _c(p)["env"].append({"name": "X", "value": "nbg_0123abcd_" + "A" * 43}),
     ['secret in plain env (%s sets env "X" to a literal value; use '
      'valueFrom.secretKeyRef or envFrom a Secret)' % C]),
    ("token from secretKeyRef (allowed)",
     lambda p: _c(p)["env"].append({"name": "JUPYTERHUB_API_TOKEN", "valueFrom": {
         "secretKeyRef": {"name": "nb-alice-env", "key": "JUPYTERHUB_API_TOKEN"}}}), []),
]


_POD_DIR = []


def backend_pod_dir():
    """The backend's own pods, rendered now by the k8s_pod unit test binary
    (NBGATE_WRITE_FIXTURES): the objects k8s_build_pod() really builds, not a
    checked-in copy that could drift. None when that binary is not built."""
    if not _POD_DIR:
        build = os.environ.get("BUILD") or os.path.join(REPO, "build")
        binary = os.path.join(build, "tests", "unit", "spawner", "test_k8s_pod")
        out = tempfile.mkdtemp(prefix="t8010-pods-")
        if os.access(binary, os.X_OK):
            env = dict(os.environ, NBGATE_WRITE_FIXTURES=out)
            subprocess.run([binary], env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=60, check=False)
        _POD_DIR.append(out if any(f.startswith("pod-") for f in os.listdir(out)) else None)
    return _POD_DIR[0]


def backend_fixtures():
    """pod-*.json paths: the backend's own pods (see backend_pod_dir)."""
    d = backend_pod_dir()
    if not d:
        return []
    return sorted(os.path.join(d, f) for f in os.listdir(d)
                  if f.startswith("pod-") and f.endswith(".json"))


def t_sbx16(tap):
    p = good_pod()
    tap.is_(pss.check_restricted(p), [], "SBX-16: the backend-shaped user pod is restricted")
    tap.is_(pss.check_nbgate(p), [], "SBX-16: and passes nbgate's rules")
    for what, mutate, want in MUTATIONS:
        q = copy.deepcopy(p)
        mutate(q)
        tap.is_(pss.check_restricted(q), want, "SBX-16: %s -> %s" % (
            what, "allowed" if not want else "PSA: " + want[0].split(" (")[0]))
    for what, mutate, want in NB_MUTATIONS:
        q = copy.deepcopy(p)
        mutate(q)
        tap.is_(pss.check_nbgate(q), want, "SBX-16/TOK-8: %s" % what)
        tap.is_(pss.check_restricted(q), [], "SBX-16: %s is not a PSS matter" % what)
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
           "spec": {"template": copy.deepcopy({"metadata": p["metadata"], "spec": p["spec"]})}}
    dep["spec"]["template"]["spec"]["hostNetwork"] = True
    tap.is_(pss.check_restricted(dep), ["host namespaces (hostNetwork=true)"],
            "SBX-16: a Deployment's pod template is checked")
    job = {"kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": dep["spec"][
        "template"]}}}}
    tap.is_(pss.check_restricted(job), ["host namespaces (hostNetwork=true)"],
            "SBX-16: a CronJob's pod template is checked")
    fixtures = backend_fixtures()
    if not fixtures:
        tap.ok(False, "SBX-16: the backend's own pods: build/tests/unit/spawner/test_k8s_pod "
               "did not write them (make build/tests/unit/spawner/test_k8s_pod)")
    for f in fixtures:
        with open(f) as fh:
            pod = json.load(fh)
        tap.is_(list(schema.default_schema().validate(pod)) + schema.validate_object_meta(pod),
                [], "the backend's %s validates against the v1.24 schema" % os.path.basename(f))
        tap.is_(pss.check_restricted(pod) + pss.check_nbgate(pod), [],
                "SBX-16: the backend's %s is restricted and passes nbgate's rules" % os.path.basename(f))


# ---------------------------------------------------------------------------
# RBAC
# ---------------------------------------------------------------------------

def load_fixture(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return json.load(f)


def t_rbac(tap, name, objs, overlay):
    role = one(objs, "Role", "nbgate-spawner", "nbgate-users")
    tap.is_(role["rules"], load_fixture("rbac-backend.json"),
            "%s: the Role grants exactly fixtures/rbac-backend.json" % name)
    rb = one(objs, "RoleBinding", "nbgate-spawner", "nbgate-users")
    tap.is_((rb["roleRef"], rb["subjects"]),
            ({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "nbgate-spawner"},
             [{"kind": "ServiceAccount", "name": "nbgate", "namespace": "nbgate"}]),
            "%s: the RoleBinding gives it to nbgate's ServiceAccount only" % name)
    rules = [r for o in objs if o["kind"] in ("Role", "ClusterRole") for r in o["rules"]]
    tap.ok(not any("*" in r.get(k, []) for r in rules
                   for k in ("apiGroups", "resources", "verbs")),
           "%s: no wildcard in any rule" % name)
    tap.ok(not any(set(r["verbs"]) & {"update", "patch", "deletecollection", "escalate", "bind",
                                      "impersonate"} for r in rules),
           "%s: no update/patch/escalate/bind/impersonate anywhere" % name)
    crs = find(objs, "ClusterRole")
    if overlay:
        tap.is_([(c["metadata"]["name"], c["rules"]) for c in crs],
                [("nbgate-checkpoint", load_fixture("rbac-checkpoint.json"))],
                "%s: the only ClusterRole is nodes/proxy create (checkpoint_kubelet)" % name)
        crb = one(objs, "ClusterRoleBinding", "nbgate-checkpoint")
        tap.is_(crb["subjects"], [{"kind": "ServiceAccount", "name": "nbgate",
                                   "namespace": "nbgate"}],
                "%s: bound to nbgate's ServiceAccount" % name)
    else:
        tap.is_(crs + find(objs, "ClusterRoleBinding"), [],
                "%s: no cluster-wide permission in the base" % name)
    sas = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objs
           if o["kind"] == "ServiceAccount"}
    tap.ok(sas and all(sa.get("automountServiceAccountToken") is False for sa in sas.values()),
           "%s: every ServiceAccount has automountServiceAccountToken false" % name)
    for o in objs:
        if o["kind"] in POD_KINDS:
            spec = pss.pod_template(o)[1]
            want = o["metadata"]["name"] == "nbgate"
            tap.is_(spec.get("automountServiceAccountToken"), want,
                    "%s: %s %s automountServiceAccountToken explicitly %s"
                    % (name, o["kind"], o["metadata"]["name"], str(want).lower()))


# ---------------------------------------------------------------------------
# the gateway: config, key, state, probes, service
# ---------------------------------------------------------------------------

def gateway_parts(objs):
    dep = one(objs, "Deployment", "nbgate", "nbgate")
    spec = dep["spec"]["template"]["spec"]
    cont = [c for c in spec["containers"] if c["name"] == "nbgate"][0]
    return dep, spec, cont


def mount_of(container, volume):
    return [m["mountPath"] for m in container.get("volumeMounts", []) if m["name"] == volume]


def config_of(objs):
    cm = one(objs, "ConfigMap", "nbgate-config", "nbgate")
    return cm, json.loads(cm["data"]["config.json"])


def t_gateway(tap, name, objs):
    dep, spec, cont = gateway_parts(objs)
    cm, cfg = config_of(objs)
    tap.is_((dep["spec"]["replicas"], dep["spec"]["strategy"]), (1, {"type": "Recreate"}),
            "%s: one gateway replica, strategy Recreate (SQLite state)" % name)
    tap.is_((cfg.get("spawner"), cfg.get("kubernetes", {}).get("namespace")),
            ("kubernetes", "nbgate-users"),
            "%s: config.json: spawner kubernetes in nbgate-users" % name)
    vol = {v["name"]: v for v in spec["volumes"]}
    cfg_mount = [m for m in cont["volumeMounts"]
                 if vol[m["name"]].get("configMap", {}).get("name") == cm["metadata"]["name"]]
    tap.is_([m["mountPath"] for m in cfg_mount], ["/etc/nbgate"],
            "%s: the ConfigMap (hashed name) is mounted at /etc/nbgate" % name)
    args = cont.get("args", [])
    tap.ok("--config" in args and args[args.index("--config") + 1] == "/etc/nbgate/config.json"
           and args[-1] == "serve", "%s: nbgate --config /etc/nbgate/config.json serve" % name,
           args)
    port = int(cfg["listen"].rsplit(":", 1)[1])
    cports = {p["name"]: p["containerPort"] for p in cont["ports"]}
    tap.is_(cports.get("http"), port, "%s: containerPort http = the listen port" % name)
    tap.ok(cfg["listen"].startswith(("0.0.0.0:", "[::]:")),
           "%s: listens on the pod's addresses, not loopback" % name, cfg["listen"])
    state = [v for v in spec["volumes"] if "persistentVolumeClaim" in v]
    tap.is_(mount_of(cont, state[0]["name"]) if state else None, [cfg["state_dir"]],
            "%s: state_dir is the mounted state PVC" % name)
    pvc = one(objs, "PersistentVolumeClaim", state[0]["persistentVolumeClaim"]["claimName"],
              "nbgate")
    tap.is_(pvc["spec"]["accessModes"], ["ReadWriteOnce"], "%s: state PVC ReadWriteOnce" % name)
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        p = cont.get(probe, {}).get("httpGet", {})
        tap.is_((p.get("path"), cports.get(p.get("port"), p.get("port"))), ("/hub/health", port),
                "%s: %s is GET /hub/health on the listen port" % (name, probe))
    allc = spec.get("initContainers", []) + spec["containers"]
    tap.ok(all(c.get("securityContext", {}).get("readOnlyRootFilesystem") is True for c in allc),
           "%s: every gateway container has a read-only root" % name)
    tap.ok(all(c.get("resources", {}).get("requests") and
               c.get("resources", {}).get("limits", {}).get("memory") for c in allc),
           "%s: every gateway container has requests and a memory limit" % name)
    tap.is_(spec["securityContext"].get("seccompProfile"), {"type": "RuntimeDefault"},
            "%s: gateway seccomp RuntimeDefault" % name)
    svc = one(objs, "Service", "nbgate", "nbgate")
    sp = svc["spec"]["ports"][0]
    tap.is_((svc["spec"].get("type"), sp["port"], cports.get(sp["targetPort"])),
            ("ClusterIP", 80, port), "%s: Service ClusterIP :80 -> %d" % (name, port))
    tap.is_(svc["spec"]["selector"], dep["spec"]["selector"]["matchLabels"],
            "%s: the Service selects the gateway pods" % name)
    t_key(tap, name, objs, spec, cfg)


def t_key(tap, name, objs, spec, cfg):
    sec = one(objs, "Secret", "nbgate-keys", "nbgate")
    key = base64.b64decode(sec["data"]["secret.key"])
    tap.ok(len(key) != 32, "%s: the key in git is a placeholder nbgate refuses (%d bytes, "
           "not 32)" % (name, len(key)))
    init = [c for c in spec.get("initContainers", []) if c["name"] == "install-key"]
    vol = {v["name"]: v for v in spec["volumes"]}
    keyvol = [n for n, v in vol.items() if v.get("secret", {}).get("secretName") == "nbgate-keys"]
    if not tap.ok(init and keyvol, "%s: an init container installs the key Secret" % name):
        return
    cmd = " ".join(init[0]["command"])
    src = mount_of(init[0], keyvol[0])[0] + "/secret.key"
    dst = cfg["state_dir"] + "/secret.key"
    tap.ok("install -m 0600 %s %s" % (src, dst) in cmd,
           "%s: ... into <state_dir>/secret.key with mode 0600" % name, cmd)
    mode = vol[keyvol[0]]["secret"].get("defaultMode")
    tap.ok(mode is not None and mode & 0o007 == 0 and mode & 0o040,
           "%s: key volume readable by the fsGroup only (mode %s)" % (name, oct(mode or 0)))
    tap.ok(spec["securityContext"].get("fsGroup") and
           spec["securityContext"].get("fsGroupChangePolicy") == "OnRootMismatch",
           "%s: fsGroup set, OnRootMismatch" % name)


def t_config_loads(tap, name, objs):
    _, cfg = config_of(objs)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "config.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        env = {k: v for k, v in os.environ.items() if not k.startswith("NBGATE_")}
        r = subprocess.run([NBGATE, "--config", path, "config", "print"], capture_output=True,
                           text=True, timeout=30, env=env)
    tap.is_(r.returncode, 0, "%s: config.json loads in nbgate config print" % name, r.stderr)
    if r.returncode == 0:
        printed = json.loads(r.stdout)
        tap.is_((printed.get("spawner"), printed.get("state_dir")),
                ("kubernetes", cfg["state_dir"]), "%s: printed config as written" % name)


def t_seccomp(tap, name, objs):
    with open(os.path.join(REPO, "sandbox", "profiles", "default.json")) as f:
        profile = f.read()
    cm = one(objs, "ConfigMap", "nbgate-seccomp", "nbgate-system")
    tap.ok(cm["data"]["default.json"] == profile,
           "%s: the installer's profile is sandbox/profiles/default.json, byte for byte" % name)
    ds = one(objs, "DaemonSet", INSTALLER[2], INSTALLER[1])
    spec = ds["spec"]["template"]["spec"]
    host = [v for v in spec["volumes"] if "hostPath" in v]
    _, cfg = config_of(objs)
    local = cfg.get("kubernetes", {}).get("seccomp_localhost")
    tap.ok(local and host and host[0]["hostPath"]["path"] == "/var/lib/kubelet/seccomp/" +
           os.path.dirname(local),
           "%s: the installer writes where seccomp_localhost points (%s)" % (name, local),
           host)
    c = spec["containers"][0]
    script = "\n".join(c["command"])
    dst = mount_of(c, host[0]["name"])[0] + "/" + os.path.basename(local)
    src = mount_of(c, [v["name"] for v in spec["volumes"] if "configMap" in v][0])[0]
    tap.ok("dst=%s" % dst in script and "src=%s/default.json" % src in script,
           "%s: ... as %s" % (name, os.path.basename(local)), script)
    tap.is_(spec.get("tolerations"), [{"operator": "Exists"}],
            "%s: the installer runs on every node, tainted ones too" % name)


# ---------------------------------------------------------------------------
# NetworkPolicy evaluation
# ---------------------------------------------------------------------------

def sel_match(sel, labels):
    if sel is None:
        return False
    for k, v in (sel.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in sel.get("matchExpressions") or []:
        k, op, vals = e["key"], e["operator"], e.get("values") or []
        if (op == "In" and labels.get(k) not in vals) or \
                (op == "NotIn" and k in labels and labels[k] in vals) or \
                (op == "Exists" and k not in labels) or \
                (op == "DoesNotExist" and k in labels):
            return False
    return True


def peer_match(peer, pol_ns, other, all_ns):
    """other: {"ip": addr} or {"ns": ns, "labels": {...}}."""
    if "ipBlock" in peer:
        if "ip" not in other:
            return False  # conservative: pod IPs are in the private ranges excepted below
        ip = ipaddress.ip_address(other["ip"])
        net = ipaddress.ip_network(peer["ipBlock"]["cidr"])
        return ip.version == net.version and ip in net and not any(
            ip in ipaddress.ip_network(x) for x in peer["ipBlock"].get("except") or []
            if ipaddress.ip_network(x).version == ip.version)
    if "ip" in other:
        return False
    if "namespaceSelector" in peer:
        nsl = dict(all_ns.get(other["ns"], {}), **{"kubernetes.io/metadata.name": other["ns"]})
        if not sel_match(peer["namespaceSelector"], nsl):
            return False
    elif other["ns"] != pol_ns:
        return False
    return "podSelector" not in peer or sel_match(peer["podSelector"], other["labels"])


def port_match(rule, proto, port):
    ports = rule.get("ports")
    return not ports or any(p.get("protocol", "TCP") == proto and p.get("port") in (None, port)
                            for p in ports)


def allowed(objs, pod_ns, pod_labels, direction, other, proto="TCP", port=80):
    """Is traffic of the pod (ns, labels) in direction Ingress|Egress allowed?"""
    all_ns = {o["metadata"]["name"]: o["metadata"].get("labels") or {} for o in objs
              if o["kind"] == "Namespace"}
    pols = [o for o in objs if o["kind"] == "NetworkPolicy"
            and o["metadata"]["namespace"] == pod_ns
            and sel_match(o["spec"]["podSelector"], pod_labels)
            and direction in o["spec"].get("policyTypes", ["Ingress"])]
    if not pols:
        return True
    field, peers = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    for pol in pols:
        for rule in pol["spec"].get(field) or []:
            if not port_match(rule, proto, port):
                continue
            ps = rule.get(peers)
            if ps is None or any(peer_match(p, pod_ns, other, all_ns) for p in ps):
                return True
    return False


GW = {"ns": "nbgate", "labels": {"app.kubernetes.io/name": "nbgate",
                                 "app.kubernetes.io/component": "gateway",
                                 "app.kubernetes.io/part-of": "nbgate"}}
DNS = {"ns": "kube-system", "labels": {"k8s-app": "kube-dns"}}
NONE = {"app.kubernetes.io/managed-by": "nbgate", "nbgate.io/network": "none"}
EGRESS = {"app.kubernetes.io/managed-by": "nbgate", "nbgate.io/network": "egress"}


def t_netpol(tap, name, objs):
    u = "nbgate-users"
    tap.ok(allowed(objs, u, NONE, "Ingress", GW, port=8888),
           "%s: the gateway reaches a user's server" % name)
    tap.ok(not allowed(objs, u, NONE, "Ingress", {"ns": u, "labels": EGRESS}, port=8888),
           "%s: another user's pod does not" % name)
    tap.ok(not allowed(objs, u, NONE, "Ingress", {"ns": "default", "labels": GW["labels"]},
                       port=8888),
           "%s: gateway-looking pods in another namespace do not" % name)
    tap.ok(not allowed(objs, u, NONE, "Ingress", {"ip": "203.0.113.7"}, port=8888),
           "%s: nothing from outside the cluster" % name)
    for labels, what in ((NONE, "network=none"), (EGRESS, "network=egress")):
        tap.ok(allowed(objs, u, labels, "Egress", DNS, "UDP", 53),
               "%s: %s pod resolves names (DNS)" % (name, what))
        tap.ok(allowed(objs, u, labels, "Egress", GW, "TCP", 8000),
               "%s: %s pod reaches the hub API" % (name, what))
        for ip in ("169.254.169.254", "fd00:ec2::254"):
            tap.ok(not allowed(objs, u, labels, "Egress", {"ip": ip}, "TCP", 80),
                   "%s: %s pod cannot reach the metadata service %s" % (name, what, ip))
        tap.ok(not allowed(objs, u, labels, "Egress", {"ip": "10.96.0.1"}, "TCP", 443),
               "%s: %s pod cannot reach a cluster address (API server)" % (name, what))
        tap.ok(not allowed(objs, u, labels, "Egress", GW, "TCP", 9999),
               "%s: %s pod reaches the gateway on its API port only" % (name, what))
    tap.ok(allowed(objs, u, EGRESS, "Egress", {"ip": "151.101.0.223"}, "TCP", 443),
           "%s: network=egress pod reaches the internet" % name)
    tap.ok(not allowed(objs, u, NONE, "Egress", {"ip": "151.101.0.223"}, "TCP", 443),
           "%s: network=none pod does not" % name)
    unlabelled = {"app.kubernetes.io/managed-by": "nbgate"}
    tap.ok(not allowed(objs, u, unlabelled, "Egress", {"ip": "151.101.0.223"}, "TCP", 443),
           "%s: a pod without the network label gets no internet either" % name)
    for f in backend_fixtures():
        with open(f) as fh:
            pod = json.load(fh)
        lab = pod["metadata"].get("labels") or {}
        internet = allowed(objs, u, lab, "Egress", {"ip": "151.101.0.223"}, "TCP", 443)
        tap.ok(allowed(objs, u, lab, "Ingress", GW, port=8888) and
               internet == (lab.get("nbgate.io/network") == "egress") and
               not allowed(objs, u, lab, "Egress", {"ip": "169.254.169.254"}, "TCP", 80),
               "%s: the backend's %s (network=%s): gateway in, internet %s, no metadata"
               % (name, f, lab.get("nbgate.io/network"), "yes" if internet else "no"))
    tap.ok(allowed(objs, "nbgate", GW["labels"], "Ingress", {"ip": "203.0.113.7"}, port=8000)
           and not allowed(objs, "nbgate", GW["labels"], "Ingress", {"ip": "203.0.113.7"},
                           port=9000),
           "%s: the gateway accepts port 8000 only" % name)


def t_all(tap, name, path, overlay):
    objs = kustomize.render(path)
    tap.ok(objs, "%s: renders (%d objects)" % (name, len(objs)))
    ids = [ident(o) for o in objs]
    tap.is_(len(ids), len(set(ids)), "%s: no duplicate objects" % name)
    t_schema(tap, name, objs)
    t_pod_security(tap, name, objs)
    t_rbac(tap, name, objs, overlay)
    t_gateway(tap, name, objs)
    t_config_loads(tap, name, objs)
    t_seccomp(tap, name, objs)
    t_netpol(tap, name, objs)
    return objs


def t_overlay_changes(tap, base, ov):
    _, _, cont = gateway_parts(ov)
    tap.is_(cont["image"], "registry.example.org/nbgate/nbgate:0.1.0",
            "overlay: images retags the gateway")
    imgs = {c["image"] for o in ov if o["kind"] in POD_KINDS
            for c in pss.pod_template(o)[1].get("initContainers", []) +
            pss.pod_template(o)[1]["containers"]}
    tap.is_(imgs, {"registry.example.org/nbgate/nbgate:0.1.0"},
            "overlay: ... and every helper that reuses it")
    _, cfg = config_of(ov)
    gpu = [p for p in cfg["profiles"] if p.get("gpus")]
    tap.ok(gpu and gpu[0].get("gpu_model"), "overlay: a GPU profile with a model")
    tap.is_(cfg["kubernetes"].get("checkpoint_kubelet"), True,
            "overlay: checkpoint_kubelet on, with its ClusterRole")
    pvc = one(ov, "PersistentVolumeClaim", "nbgate-state", "nbgate")
    tap.is_(pvc["spec"].get("storageClassName"), cfg["kubernetes"].get("storage_class"),
            "overlay: the state PVC on the site's storage class")
    tap.ok(config_of(base)[0]["metadata"]["name"] != config_of(ov)[0]["metadata"]["name"],
           "overlay: its config.json gives the ConfigMap another hashed name")


def run(tap):
    tap.run("renderer", t_renderer, tap)
    tap.run("SBX-16", t_sbx16, tap)
    base = tap.run("base", t_all, tap, "base", BASE, False)
    ov = tap.run("overlay", t_all, tap, "overlay", OVERLAY, True)
    if base and ov:
        tap.run("overlay changes", t_overlay_changes, tap, base, ov)


if __name__ == "__main__":
    main(run)
