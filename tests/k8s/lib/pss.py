"""Pod Security Standards checker: the PSA "baseline" and "restricted" levels, offline.

Mirrors the checks of Kubernetes' Pod Security admission
(k8s.io/pod-security-admission/policy/check_*.go, policy version v1.24+), with
their wording: every failure is one string "<reason> (<detail>)", e.g.

  allowPrivilegeEscalation != false (container "x" must set
  securityContext.allowPrivilegeEscalation=false)

which is what a real API server puts after `violates PodSecurity
"restricted:latest": ` when it rejects a pod. Checks run in PSA's order (by
check id); at the restricted level the restricted capability, seccomp and
volume checks replace their baseline versions (PSA's OverrideCheckIDs).
Windows pods (spec.os.name=windows) are not special-cased: nbgate runs none.

API (tests/k8s/lib/apiserver.py imports check_restricted; keep the signature):
  check_restricted(pod: dict) -> list[str]   [] = allowed
  check_baseline(pod: dict) -> list[str]
  check_nbgate(pod: dict, allow_automount=False) -> list[str]
      nbgate's own rules beyond PSS (SECURITY.md R-4.5, TOK-8):
      automountServiceAccountToken false, no secret-looking env value literals.
  pod_template(obj) -> (metadata, spec): a Pod, PodSpec, PodTemplate or the
      template of a Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, CronJob
      or ReplicationController. Every check_* accepts all of these.
"""

import json
import re

BASELINE_CAPS = {
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
    "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}
RESTRICTED_CAPS = {"NET_BIND_SERVICE"}
RESTRICTED_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
    "projected", "secret",
}
KNOWN_VOLUMES = RESTRICTED_VOLUMES | {
    "awsElasticBlockStore", "azureDisk", "azureFile", "cephfs", "cinder", "fc", "flexVolume",
    "flocker", "gcePersistentDisk", "gitRepo", "glusterfs", "hostPath", "iscsi", "nfs",
    "photonPersistentDisk", "portworxVolume", "quobyte", "rbd", "scaleIO", "storageos",
    "vsphereVolume",
}
# v1.24's safe set (check_sysctls.go); later versions add a few net.ipv4 ones
ALLOWED_SYSCTLS = {
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range",
}
SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t"}
APPARMOR_PREFIX = "container.apparmor.security.beta.kubernetes.io/"
TEMPLATE_KINDS = {"Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job",
                  "ReplicationController"}
SECRET_ENV = re.compile(r"TOKEN|SECRET|PASSW(OR)?D|KEY|CREDENTIAL", re.I)
TOKEN_VALUE = re.compile(r"nbg_[0-9a-f]{8}_[A-Za-z0-9_-]{43}")


# ---------------------------------------------------------------------------
# helpers (PSA's pluralize, joinQuote, visitContainers)
# ---------------------------------------------------------------------------

def pluralize(one, many, n):
    return one if n == 1 else many


def quote(s):
    return json.dumps(str(s), ensure_ascii=False)


def join_quote(items):
    return ", ".join(quote(i) for i in items)


def _sorted_unique(items):
    return sorted(set(items))


def pod_template(obj):
    """(metadata, spec) of a Pod, a PodSpec or a workload's pod template."""
    if not isinstance(obj, dict):
        raise TypeError("pod_template: a dict is needed")
    kind = obj.get("kind")
    if kind in TEMPLATE_KINDS:
        t = (obj.get("spec") or {}).get("template") or {}
    elif kind == "CronJob":
        t = ((((obj.get("spec") or {}).get("jobTemplate") or {}).get("spec") or {})
             .get("template") or {})
    elif kind == "PodTemplate":
        t = obj.get("template") or {}
    elif kind == "Pod" or (kind is None and "spec" in obj):
        t = obj
    elif kind is None and "containers" in obj:
        return {}, obj
    else:
        raise ValueError("pod_template: %s holds no pod template" % (kind or "object"))
    return t.get("metadata") or {}, t.get("spec") or {}


def _containers(spec):
    for field in ("initContainers", "containers", "ephemeralContainers"):
        for c in spec.get(field) or []:
            yield c


def _csc(c):
    return c.get("securityContext") or {}


def _psc(spec):
    return spec.get("securityContext") or {}


def _setters(pod_bad, containers):
    s = ["pod"] if pod_bad else []
    if containers:
        s.append("%s %s" % (pluralize("container", "containers", len(containers)),
                            join_quote(containers)))
    return s


# ---------------------------------------------------------------------------
# the checks; each returns (reason, detail) or None
# ---------------------------------------------------------------------------

def check_allow_privilege_escalation(meta, spec):
    bad = [c.get("name") for c in _containers(spec)
           if _csc(c).get("allowPrivilegeEscalation") is not False]
    if not bad:
        return None
    return ("allowPrivilegeEscalation != false",
            "%s %s must set securityContext.allowPrivilegeEscalation=false"
            % (pluralize("container", "containers", len(bad)), join_quote(bad)))


def check_app_armor(meta, spec):
    bad = []
    for k, v in sorted((meta.get("annotations") or {}).items()):
        if k.startswith(APPARMOR_PREFIX) and v != "runtime/default" \
                and not str(v).startswith("localhost/"):
            bad.append("%s=%s" % (k, quote(v)))
    if not bad:
        return None
    return (pluralize("forbidden AppArmor profile", "forbidden AppArmor profiles", len(bad)),
            ", ".join(bad))


def _adds(c):
    return (_csc(c).get("capabilities") or {}).get("add") or []


def check_capabilities_baseline(meta, spec):
    bad, caps = [], []
    for c in _containers(spec):
        extra = [a for a in _adds(c) if a not in BASELINE_CAPS]
        if extra:
            bad.append(c.get("name"))
            caps.extend(extra)
    if not bad:
        return None
    return ("non-default capabilities",
            "%s %s must not include %s in securityContext.capabilities.add"
            % (pluralize("container", "containers", len(bad)), join_quote(bad),
               join_quote(_sorted_unique(caps))))


def check_capabilities_restricted(meta, spec):
    no_drop, adding, caps = [], [], []
    for c in _containers(spec):
        drop = (_csc(c).get("capabilities") or {}).get("drop") or []
        if "ALL" not in drop:
            no_drop.append(c.get("name"))
        extra = [a for a in _adds(c) if a not in RESTRICTED_CAPS]
        if extra:
            adding.append(c.get("name"))
            caps.extend(extra)
    details = []
    if no_drop:
        details.append('%s %s must set securityContext.capabilities.drop=["ALL"]'
                       % (pluralize("container", "containers", len(no_drop)),
                          join_quote(no_drop)))
    if adding:
        details.append("%s %s must not include %s in securityContext.capabilities.add"
                       % (pluralize("container", "containers", len(adding)),
                          join_quote(adding), join_quote(_sorted_unique(caps))))
    return ("unrestricted capabilities", "; ".join(details)) if details else None


def check_host_namespaces(meta, spec):
    bad = ["%s=true" % f for f in ("hostNetwork", "hostPID", "hostIPC") if spec.get(f) is True]
    return ("host namespaces", ", ".join(bad)) if bad else None


def check_host_path_volumes(meta, spec):
    bad = [v.get("name") for v in spec.get("volumes") or [] if "hostPath" in v]
    if not bad:
        return None
    return ("hostPath volumes", "%s %s" % (pluralize("volume", "volumes", len(bad)),
                                           join_quote(bad)))


def check_host_ports(meta, spec):
    bad, ports = [], []
    for c in _containers(spec):
        hp = [str(p["hostPort"]) for p in c.get("ports") or [] if p.get("hostPort")]
        if hp:
            bad.append(c.get("name"))
            ports.extend(hp)
    if not bad:
        return None
    ports = _sorted_unique(ports)  # a Go string set's List(): sorted as strings
    return ("hostPort", "%s %s %s %s %s" % (
        pluralize("container", "containers", len(bad)), join_quote(bad),
        pluralize("uses", "use", len(bad)), pluralize("hostPort", "hostPorts", len(ports)),
        ", ".join(ports)))


def check_host_process(meta, spec):
    def hp(sc):
        return (sc.get("windowsOptions") or {}).get("hostProcess") is True
    bad = [c.get("name") for c in _containers(spec) if hp(_csc(c))]
    setters = _setters(hp(_psc(spec)), bad)
    if not setters:
        return None
    return ("hostProcess", "%s must not set securityContext.windowsOptions.hostProcess=true"
            % " and ".join(setters))


def check_privileged(meta, spec):
    bad = [c.get("name") for c in _containers(spec) if _csc(c).get("privileged") is True]
    if not bad:
        return None
    return ("privileged", "%s %s must not set securityContext.privileged=true"
            % (pluralize("container", "containers", len(bad)), join_quote(bad)))


def check_proc_mount(meta, spec):
    bad, vals = [], []
    for c in _containers(spec):
        pm = _csc(c).get("procMount")
        if pm not in (None, "", "Default"):
            bad.append(c.get("name"))
            vals.append(pm)
    if not bad:
        return None
    return ("procMount", "%s %s must not set securityContext.procMount to %s"
            % (pluralize("container", "containers", len(bad)), join_quote(bad),
               join_quote(_sorted_unique(vals))))


def check_restricted_volumes(meta, spec):
    bad, types = [], []
    for v in spec.get("volumes") or []:
        src = [k for k in v if k != "name"]
        if len(src) == 1 and src[0] in RESTRICTED_VOLUMES:
            continue
        bad.append(v.get("name"))
        types.extend(t if t in KNOWN_VOLUMES else "unknown" for t in (src or ["unknown"]))
    if not bad:
        return None
    types = _sorted_unique(types)
    return ("restricted volume types", "%s %s %s %s %s" % (
        pluralize("volume", "volumes", len(bad)), join_quote(bad),
        pluralize("uses", "use", len(bad)),
        pluralize("restricted volume type", "restricted volume types", len(types)),
        join_quote(types)))


def check_run_as_non_root(meta, spec):
    """Explicit runAsNonRoot=false is reported first (PSA returns early)."""
    pod_false, pod_ok = False, False
    pv = _psc(spec).get("runAsNonRoot")
    if pv is False:
        pod_false = True
    elif pv is True:
        pod_ok = True
    explicit, implicit = [], []
    for c in _containers(spec):
        cv = _csc(c).get("runAsNonRoot")
        if cv is False:
            explicit.append(c.get("name"))
        elif cv is None and not pod_ok:
            implicit.append(c.get("name"))
    setters = _setters(pod_false, explicit)
    if setters:
        return ("runAsNonRoot != true", "%s must not set securityContext.runAsNonRoot=false"
                % " and ".join(setters))
    if implicit:
        return ("runAsNonRoot != true", "pod or %s %s must set securityContext.runAsNonRoot=true"
                % (pluralize("container", "containers", len(implicit)), join_quote(implicit)))
    return None


def check_run_as_user(meta, spec):
    bad = [c.get("name") for c in _containers(spec) if _csc(c).get("runAsUser") == 0]
    setters = _setters(_psc(spec).get("runAsUser") == 0, bad)
    if not setters:
        return None
    return ("runAsUser=0", "%s must not set runAsUser=0" % " and ".join(setters))


def check_selinux(meta, spec):
    types, user, role = [], False, False

    def bad(opts):
        nonlocal user, role
        if not opts:
            return False
        b = False
        if (opts.get("type") or "") not in SELINUX_TYPES:
            types.append(opts.get("type"))
            b = True
        if opts.get("user"):
            user = b = True
        if opts.get("role"):
            role = b = True
        return b
    pod_bad = bad(_psc(spec).get("seLinuxOptions"))
    cbad = [c.get("name") for c in _containers(spec) if bad(_csc(c).get("seLinuxOptions"))]
    setters = _setters(pod_bad, cbad)
    if not setters:
        return None
    reasons = []
    if types:
        t = _sorted_unique(types)
        reasons.append("%s %s" % (pluralize("type", "types", len(t)), join_quote(t)))
    if user:
        reasons.append("user may not be set")
    if role:
        reasons.append("role may not be set")
    return ("seLinuxOptions", "%s set forbidden securityContext.seLinuxOptions: %s"
            % (" and ".join(setters), "; ".join(reasons)))


def _seccomp_type(sc):
    p = sc.get("seccompProfile")
    return None if p is None else p.get("type")


def check_seccomp_baseline(meta, spec):
    bad = [c.get("name") for c in _containers(spec) if _seccomp_type(_csc(c)) == "Unconfined"]
    setters = _setters(_seccomp_type(_psc(spec)) == "Unconfined", bad)
    if not setters:
        return None
    return ("seccompProfile", '%s must not set securityContext.seccompProfile.type to "Unconfined"'
            % " and ".join(setters))


def check_seccomp_restricted(meta, spec):
    """Explicit bad types are reported first (PSA returns early)."""
    ok_types = ("RuntimeDefault", "Localhost")
    values, pod_ok, pod_bad = [], False, False
    if _psc(spec).get("seccompProfile") is not None:
        pt = _seccomp_type(_psc(spec))
        if pt in ok_types:
            pod_ok = True
        else:
            pod_bad = True
            values.append(str(pt))
    explicit, implicit = [], []
    for c in _containers(spec):
        if _csc(c).get("seccompProfile") is not None:
            ct = _seccomp_type(_csc(c))
            if ct not in ok_types:
                explicit.append(c.get("name"))
                values.append(str(ct))
        elif not pod_ok:
            implicit.append(c.get("name"))
    setters = _setters(pod_bad, explicit)
    if setters:
        return ("seccompProfile", "%s must not set securityContext.seccompProfile.type to %s"
                % (" and ".join(setters), join_quote(_sorted_unique(values))))
    if implicit:
        return ("seccompProfile", 'pod or %s %s must set securityContext.seccompProfile.type '
                'to "RuntimeDefault" or "Localhost"'
                % (pluralize("container", "containers", len(implicit)), join_quote(implicit)))
    return None


def check_sysctls(meta, spec):
    bad = [s.get("name") for s in _psc(spec).get("sysctls") or []
           if s.get("name") not in ALLOWED_SYSCTLS]
    return ("forbidden sysctls", ", ".join(bad)) if bad else None


# (check id, level, function, ids it overrides), in PSA's order (by id)
CHECKS = [
    ("allowPrivilegeEscalation", "restricted", check_allow_privilege_escalation, ()),
    ("appArmorProfile", "baseline", check_app_armor, ()),
    ("capabilities_baseline", "baseline", check_capabilities_baseline, ()),
    ("capabilities_restricted", "restricted", check_capabilities_restricted,
     ("capabilities_baseline",)),
    ("hostNamespaces", "baseline", check_host_namespaces, ()),
    ("hostPathVolumes", "baseline", check_host_path_volumes, ()),
    ("hostPorts", "baseline", check_host_ports, ()),
    ("hostProcess", "baseline", check_host_process, ()),
    ("privileged", "baseline", check_privileged, ()),
    ("procMount", "baseline", check_proc_mount, ()),
    ("restrictedVolumes", "restricted", check_restricted_volumes, ("hostPathVolumes",)),
    ("runAsNonRoot", "restricted", check_run_as_non_root, ()),
    ("runAsUser", "restricted", check_run_as_user, ()),
    ("seLinuxOptions", "baseline", check_selinux, ()),
    ("seccompProfile_baseline", "baseline", check_seccomp_baseline, ()),
    ("seccompProfile_restricted", "restricted", check_seccomp_restricted,
     ("seccompProfile_baseline",)),
    ("sysctls", "baseline", check_sysctls, ()),
]


def _run(obj, level):
    meta, spec = pod_template(obj)
    active = [c for c in CHECKS if level == "restricted" or c[1] == "baseline"]
    overridden = {o for c in active for o in c[3]}
    out = []
    for cid, _, fn, _ in active:
        if cid in overridden:
            continue
        r = fn(meta, spec)
        if r:
            out.append("%s (%s)" % r if r[1] else r[0])
    return out


def check_restricted(pod):
    """PSA "restricted" violations of a pod or pod template, in PSA wording; [] = allowed."""
    return _run(pod, "restricted")


def check_baseline(pod):
    """PSA "baseline" violations of a pod or pod template, in PSA wording; [] = allowed."""
    return _run(pod, "baseline")


def check_nbgate(pod, allow_automount=False):
    """nbgate's rules on top of PSS restricted (SECURITY.md R-4.5, TOK-8).

    automountServiceAccountToken must be explicitly false (user pods never talk
    to the API server; allow_automount for the gateway's own pod), and no env
    entry whose name looks secret (TOKEN, SECRET, PASSWORD, KEY, CREDENTIAL) or
    whose value looks like an nbgate token may hold a literal `value`: secrets
    come from a Secret (valueFrom.secretKeyRef or envFrom).
    """
    meta, spec = pod_template(pod)
    out = []
    if not allow_automount and spec.get("automountServiceAccountToken") is not False:
        out.append("automountServiceAccountToken != false (pod must set "
                   "spec.automountServiceAccountToken=false)")
    for c in _containers(spec):
        for e in c.get("env") or []:
            v = e.get("value")
            if not v:
                continue
            if SECRET_ENV.search(e.get("name", "")) or TOKEN_VALUE.search(str(v)):
                out.append("secret in plain env (container %s sets env %s to a literal value; "
                           "use valueFrom.secretKeyRef or envFrom a Secret)"
                           % (quote(c.get("name")), quote(e.get("name"))))
    return out


if __name__ == "__main__":
    import sys
    import yaml
    rc = 0
    for path in sys.argv[1:]:
        with open(path, encoding="utf-8") as f:
            for doc in yaml.safe_load_all(f):
                try:
                    pod_template(doc)
                except (ValueError, TypeError):
                    continue
                for msg in check_restricted(doc) + check_nbgate(doc):
                    rc = 1
                    print("%s: %s/%s: %s" % (path, doc.get("kind"),
                                              (doc.get("metadata") or {}).get("name"), msg))
    sys.exit(rc)
