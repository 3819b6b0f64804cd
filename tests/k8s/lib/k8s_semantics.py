"""Kubernetes v1.24 API semantics used by the contract API server double.

What it holds (pure functions over plain dicts; no HTTP, no locks, no state):
- ApiError / status_obj / REASONS: the metav1.Status error every function
  here raises (selectors answer 400 like kube-apiserver does);
- label and field selectors: parsing (with the real error wording) and
  matching (FIELD_SELECTORS: the field labels each kind supports);
- patches: RFC 7386 merge patch (also used for strategic merge: lists are
  replaced, no $patch directives) and RFC 6902 JSON patch;
- defaulting: what the real API server fills in on create (pods with the
  ServiceAccount token volume, qosClass, imagePullPolicy; services, jobs,
  PVCs, secrets) and the pod-spec update immutability rule.

Why it is separate from apiserver.py: these are the parts of the contract
that encode Kubernetes' own rules, independent of the double's transport,
storage, watches and authorization; keeping them apart keeps apiserver.py
under the project's file-size limit and lets them be read (and checked
against upstream) on their own. apiserver.py re-exports every name, so
`apiserver.ApiError`, `apiserver.merge_patch`, ... keep working.

Python 3.11 stdlib only (+ tests/k8s/lib/schema.py for name/label rules).
"""

import base64
import copy
import json
import os
import random
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import schema as schema_mod  # noqa: E402


# -- errors and selector tables -----------------------------------------------

REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
           405: "MethodNotAllowed", 409: "Conflict", 410: "Expired", 413: "RequestEntityTooLarge",
           415: "UnsupportedMediaType", 422: "Invalid", 429: "TooManyRequests",
           500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout"}

FIELD_SELECTORS = {
    "Pod": ("status.phase", "spec.nodeName", "status.podIP", "spec.restartPolicy",
            "spec.schedulerName", "spec.serviceAccountName"),
    "Event": ("involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
              "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
              "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type"),
    "Secret": ("type",),
    "Job": ("status.successful",),
    "PersistentVolumeClaim": (),
    "Service": (),
}



class ApiError(Exception):
    """An API error answered as a v1 Status (code, reason, message, details)."""

    def __init__(self, code, message, reason=None, details=None, headers=None):
        super().__init__(message)
        self.code, self.message = code, message
        self.reason = reason or REASONS.get(code, "")
        self.details = details
        self.headers = headers or {}

    def status(self):
        return status_obj(self.code, self.message, self.reason, self.details)


def status_obj(code, message, reason=None, details=None):
    """A metav1.Status dict."""
    st = {"kind": "Status", "apiVersion": "v1", "metadata": {},
          "status": "Success" if code < 400 else "Failure", "message": message,
          "reason": reason if reason is not None else REASONS.get(code, ""), "code": code}
    if details is not None:
        st["details"] = details
    if not st["message"]:
        del st["message"]
    if not st["reason"]:
        del st["reason"]
    return st


def jcopy(o):
    return json.loads(json.dumps(o))


# -- selectors ---------------------------------------------------------------


def _split_terms(s):
    terms, depth, cur = [], 0, ""
    for ch in s:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append(cur)
            cur = ""
        else:
            cur += ch
    terms.append(cur)
    return [t.strip() for t in terms if t.strip()]


def parse_label_selector(s):
    """List of (key, op, values); op in exists,!,=,!=,in,notin. ApiError 400 if bad."""
    reqs = []
    for t in _split_terms(s or ""):
        m = re.match(r"^!\s*(\S+)$", t)
        if m:
            reqs.append((m.group(1), "!", ()))
            continue
        m = re.match(r"^(\S+?)\s+(in|notin)\s*\((.*)\)$", t)
        if m:
            vals = tuple(v.strip() for v in m.group(3).split(",") if v.strip())
            reqs.append((m.group(1), m.group(2), vals))
            continue
        m = re.match(r"^([^=!\s]+)\s*(==|!=|=)\s*(\S*)$", t)
        if m:
            reqs.append((m.group(1), "!=" if m.group(2) == "!=" else "=", (m.group(3),)))
            continue
        m = re.match(r"^([^=!\s()]+)$", t)
        if m:
            reqs.append((m.group(1), "exists", ()))
            continue
        raise ApiError(400, "unable to parse requirement: found '%s', expected: "
                       "identifier" % t)
    for k, _, vals in reqs:
        bad = schema_mod.check_qualified_name(k) + \
            [m for v in vals for m in schema_mod.check_label_value(v)]
        if bad:
            raise ApiError(400, "unable to parse requirement: values[0][%s]: Invalid value: "
                           "%s" % (k, bad[0]))
    return reqs


def match_labels(reqs, labels):
    labels = labels or {}
    for k, op, vals in reqs:
        has, v = k in labels, labels.get(k)
        if op == "exists":
            ok = has
        elif op == "!":
            ok = not has
        elif op in ("=", "in"):
            ok = has and v in vals
        else:                               # != and notin match objects without the key
            ok = not has or v not in vals
        if not ok:
            return False
    return True


def parse_field_selector(s, kind):
    out = []
    allowed = ("metadata.name", "metadata.namespace") + FIELD_SELECTORS.get(kind, ())
    for t in _split_terms(s or ""):
        m = re.match(r"^([^=!]+?)\s*(==|!=|=)\s*(.*)$", t)
        if not m:
            raise ApiError(400, "invalid selector: '%s'; can't understand '%s'" % (s, t))
        f = m.group(1).strip()
        if f not in allowed:
            raise ApiError(400, 'field label not supported: %s' % f)
        out.append((f, m.group(2) != "!=", m.group(3).strip()))
    return out


def _field(obj, path):
    cur = obj
    for p in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(p)
    if path == "source" and isinstance(cur, dict):
        cur = cur.get("component")
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def match_fields(reqs, obj):
    return all((_field(obj, f) == v) == eq for f, eq, v in reqs)


# -- patches -----------------------------------------------------------------


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def _ptr(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise ValueError("invalid JSON pointer %r" % path)
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc, parts):
    cur = doc
    for p in parts:
        if isinstance(cur, list):
            cur = cur[int(p)]
        elif isinstance(cur, dict):
            cur = cur[p]
        else:
            raise KeyError(p)
    return cur


def _jp_add(doc, parts, value):
    if not parts:
        return value
    parent = _walk(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, list):
        idx = len(parent) if last == "-" else int(last)
        if not 0 <= idx <= len(parent):
            raise IndexError("index out of range")
        parent.insert(idx, value)
    elif isinstance(parent, dict):
        parent[last] = value
    else:
        raise KeyError(last)
    return doc


def _jp_remove(doc, parts):
    parent = _walk(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, list):
        return parent.pop(int(last))
    return parent.pop(last)


def json_patch(doc, ops):
    """RFC 6902 JSON patch; raises ValueError/KeyError/IndexError on failure."""
    if not isinstance(ops, list):
        raise ValueError("a JSON patch must be an array of operations")
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise ValueError("invalid operation %r" % (op,))
        kind, parts = op["op"], _ptr(op["path"])
        if kind == "add":
            doc = _jp_add(doc, parts, copy.deepcopy(op["value"]))
        elif kind == "remove":
            _jp_remove(doc, parts)
        elif kind == "replace":
            _walk(doc, parts)  # must exist
            if not parts:
                doc = copy.deepcopy(op["value"])
            else:
                _jp_remove(doc, parts)
                doc = _jp_add(doc, parts, copy.deepcopy(op["value"]))
        elif kind in ("move", "copy"):
            src = _ptr(op["from"])
            v = copy.deepcopy(_walk(doc, src))
            if kind == "move":
                _jp_remove(doc, src)
            doc = _jp_add(doc, parts, v)
        elif kind == "test":
            if _walk(doc, parts) != op.get("value"):
                raise ValueError("testing value %s failed" % op["path"])
        else:
            raise ValueError("Unexpected kind: %s" % kind)
    return doc


# -- defaulting (what the real API server fills in) ----------------------------

_RAND_CHARS = "bcdfghjklmnpqrstvwxz2456789"


def rand_suffix(n=5):
    return "".join(random.choice(_RAND_CHARS) for _ in range(n))


def _pull_policy(image):
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else ""
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def _default_probe(p):
    if not isinstance(p, dict):
        return
    for k, v in (("timeoutSeconds", 1), ("periodSeconds", 10), ("successThreshold", 1),
                 ("failureThreshold", 3)):
        p.setdefault(k, v)
    if isinstance(p.get("httpGet"), dict):
        p["httpGet"].setdefault("scheme", "HTTP")
        p["httpGet"].setdefault("path", "/")


def _default_container(c):
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    if c.get("image"):
        c.setdefault("imagePullPolicy", _pull_policy(c["image"]))
    res = c.setdefault("resources", {})
    lim = res.get("limits") or {}
    if lim:
        req = res.setdefault("requests", {})
        for k, v in lim.items():
            req.setdefault(k, v)
    for p in c.get("ports") or []:
        if isinstance(p, dict):
            p.setdefault("protocol", "TCP")
    for k in ("readinessProbe", "livenessProbe", "startupProbe"):
        _default_probe(c.get(k))


def qos_class(spec):
    """Guaranteed / Burstable / BestEffort (cpu and memory only), after defaulting."""
    any_set, guaranteed = False, True
    for c in (spec.get("containers") or []):
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        for r in ("cpu", "memory"):
            if r in req or r in lim:
                any_set = True
            if r not in lim or str(req.get(r)) != str(lim.get(r)):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def default_pod_spec(spec, add_token_volume=True):
    for k, v in (("restartPolicy", "Always"), ("dnsPolicy", "ClusterFirst"),
                 ("schedulerName", "default-scheduler"), ("terminationGracePeriodSeconds", 30),
                 ("securityContext", {}), ("enableServiceLinks", True), ("priority", 0),
                 ("preemptionPolicy", "PreemptLowerPriority")):
        spec.setdefault(k, v)
    sa = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    spec["serviceAccountName"] = spec["serviceAccount"] = sa
    tol = spec.setdefault("tolerations", [])
    for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
        if not any(isinstance(t, dict) and t.get("key") == key for t in tol):
            tol.append({"key": key, "operator": "Exists", "effect": "NoExecute",
                        "tolerationSeconds": 300})
    for v in spec.get("volumes") or []:
        if isinstance(v, dict) and isinstance(v.get("secret"), dict):
            v["secret"].setdefault("defaultMode", 420)
    conts = (spec.get("containers") or []) + (spec.get("initContainers") or [])
    for c in conts:
        if isinstance(c, dict):
            _default_container(c)
    if add_token_volume and spec.get("automountServiceAccountToken") is not False:
        _add_token_volume(spec, conts)


def _add_token_volume(spec, conts):
    """The ServiceAccount admission plugin's projected token volume."""
    name = "kube-api-access-" + rand_suffix()
    spec.setdefault("volumes", []).append({"name": name, "projected": {
        "defaultMode": 420, "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt",
                           "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {
                "apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}})
    for c in conts:
        if isinstance(c, dict):
            c.setdefault("volumeMounts", []).append({
                "name": name, "readOnly": True,
                "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"})


def _default_service(obj, ip):
    spec = obj.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if spec.get("clusterIP") != "None":
        spec["clusterIP"] = spec.get("clusterIP") or ip
    spec["clusterIPs"] = [spec["clusterIP"]]
    spec.setdefault("ipFamilies", ["IPv4"])
    spec.setdefault("ipFamilyPolicy", "SingleStack")
    spec.setdefault("internalTrafficPolicy", "Cluster")
    for p in spec.get("ports") or []:
        if isinstance(p, dict):
            p.setdefault("protocol", "TCP")
            p.setdefault("targetPort", p.get("port"))
    obj["status"] = {"loadBalancer": {}}


def _default_job(obj):
    spec, meta = obj["spec"], obj["metadata"]
    for k, v in (("completions", 1), ("parallelism", 1), ("backoffLimit", 6),
                 ("completionMode", "NonIndexed"), ("suspend", False)):
        spec.setdefault(k, v)
    uid = meta["uid"]
    if not spec.get("manualSelector"):
        spec["selector"] = {"matchLabels": {"controller-uid": uid}}
        tm = spec["template"].setdefault("metadata", {})
        labels = tm.setdefault("labels", {})
        labels["controller-uid"] = uid
        labels["job-name"] = meta["name"]
    ts = spec["template"].get("spec")
    if isinstance(ts, dict):
        default_pod_spec(ts, add_token_volume=False)
    obj["status"] = {}


def _default_pvc(obj, bound):
    spec = obj["spec"]
    spec.setdefault("volumeMode", "Filesystem")
    if bound:
        spec["volumeName"] = "pvc-" + obj["metadata"]["uid"]
        obj["metadata"].setdefault("annotations", {})["pv.kubernetes.io/bind-completed"] = "yes"
        obj["status"] = {"phase": "Bound", "accessModes": list(spec.get("accessModes") or []),
                         "capacity": {"storage": spec["resources"]["requests"]["storage"]}}
    else:
        obj["status"] = {"phase": "Pending"}


def _default_secret(obj):
    obj.setdefault("type", "Opaque")
    sd = obj.pop("stringData", None)
    if isinstance(sd, dict):
        data = obj.get("data") or {}
        for k, v in sd.items():
            data[k] = base64.b64encode(str(v).encode()).decode()
        obj["data"] = data


# Pod fields a PUT/PATCH may change (pkg/apis/core/validation ValidatePodUpdate, v1.24).
POD_UPDATE_FORBIDDEN = (
    "spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`, "
    "`spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, `spec.tolerations` (only "
    "additions to existing tolerations) or `spec.terminationGracePeriodSeconds` (allow it to be "
    "set to 1 if it was previously negative)")


def pod_spec_update_ok(old, new):
    def norm(spec):
        s = jcopy(spec or {})
        for c in (s.get("containers") or []) + (s.get("initContainers") or []):
            if isinstance(c, dict):
                c.pop("image", None)
        s.pop("activeDeadlineSeconds", None)
        s.pop("tolerations", None)
        return s
    if norm(old) != norm(new):
        return False
    old_t, new_t = (old or {}).get("tolerations") or [], (new or {}).get("tolerations") or []
    return all(t in new_t for t in old_t)
