"""ContractApiServer: a contract test double of the Kubernetes v1.24 API server.

This is NOT a cluster and not a mock that says yes: it is a strict stand-in
for the API server's HTTP contract, so that nbgate's kubernetes backend is
tested against the answers a real kube-apiserver (v1.24, strict field
validation, RBAC authorizer, Pod Security admission) would give.

What it implements (in this process, on threads; HTTPS on 127.0.0.1 only):
- core/v1 pods (+ /log, /status), secrets, persistentvolumeclaims, services,
  events; batch/v1 jobs; GET namespaces/{ns}; /version; /openapi/v2;
  POST nodes/{node}/proxy/checkpoint/{ns}/{pod}/{container} (kubelet
  checkpoint API through the node proxy; 404 unless checkpoint_enabled).
- authentication: bearer tokens (rotatable) or client certificates signed by
  the double's CA; 401 otherwise. Authorization: Role-style rules, 403 with
  the real RBAC wording.
- create/get/list/update (PUT)/patch (merge, strategic treated as merge:
  lists are replaced, no $patch directives; JSON patch)/delete with
  resourceVersion (one global counter), uid, creationTimestamp, generation,
  409 AlreadyExists / Conflict, 404 NotFound, 422 Invalid with causes
  (every body is validated against the official OpenAPI schema: unknown
  fields and wrong types are errors, plus object-meta name/label rules and a
  subset of per-kind rules, schema.py), 413 for bodies over 3 MiB, 415 for
  unknown patch types; defaulting of pods (restartPolicy, dnsPolicy,
  schedulerName, tolerations, service account token volume, requests from
  limits, qosClass, imagePullPolicy), secrets (stringData -> data), PVCs
  (Bound when pvc_bound), services (clusterIP), jobs (selector, labels).
- Pod Security admission on namespaces labelled
  pod-security.kubernetes.io/enforce (restricted/baseline; pss.py).
- pod spec immutability on update (the real "pod updates may not change
  fields other than ..." error); graceful pod deletion (deletionTimestamp,
  then gone on finalize_delete() or after the grace period; pods not bound
  to a node, or finished, are deleted at once, as a real API server does).
- watches: chunked JSON lines, history per resource (history events each),
  410 Expired after compaction/eviction, bookmarks, timeoutSeconds, label and
  field selectors (objects leaving/entering a selector are sent as
  DELETED/ADDED), drop_watches() to cut the streams.
- faults: fail_next(), compact(), drop_watches().

What it does NOT implement: controllers (no scheduler, kubelet, job
controller, garbage collector, PVC protection finalizer: the test plays them,
see kubelet.py), list pagination (limit/continue), resourceVersionMatch,
server-side apply, dry-run, field managers, protobuf/YAML bodies, exact
strategic-merge semantics, watch on cluster-scoped resources, aggregated
discovery, admission webhooks, quota, LimitRange, audit.

Python 3.11 stdlib only (+ tests/k8s/lib/schema.py, certs.py, pss.py).
Kubernetes' own rules (selectors, merge/JSON patch, defaulting, the Status
error) live in k8s_semantics.py; this module re-exports them.
"""

import base64
import collections
import datetime
import http.client
import json
import os
import queue
import random
import re
import secrets
import select
import shutil
import socket
import ssl
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import certs  # noqa: E402
import schema as schema_mod  # noqa: E402

# Kubernetes rules (selectors, patches, defaulting, errors): k8s_semantics.py.
# Every name is re-exported: apiserver.<name> is part of this module's API.
from k8s_semantics import (  # noqa: E402,F401
    REASONS, FIELD_SELECTORS, ApiError, status_obj, jcopy, parse_label_selector, match_labels,
    parse_field_selector, match_fields, merge_patch, json_patch, rand_suffix, qos_class,
    default_pod_spec, _default_service, _default_job, _default_pvc, _default_secret,
    POD_UPDATE_FORBIDDEN, pod_spec_update_ok, _split_terms, _field, _ptr, _walk, _jp_add,
    _jp_remove, _RAND_CHARS, _pull_policy, _default_probe, _default_container, _add_token_volume,
)

MAX_BODY = 3 * 1024 * 1024
DEFAULT_USER = "system:serviceaccount:nbgate:nbgate"
SA_DIR = "var/run/secrets/kubernetes.io/serviceaccount"

# resource -> (group, version, kind)
RESOURCES = {
    "pods": ("", "v1", "Pod"),
    "secrets": ("", "v1", "Secret"),
    "persistentvolumeclaims": ("", "v1", "PersistentVolumeClaim"),
    "services": ("", "v1", "Service"),
    "events": ("", "v1", "Event"),
    "jobs": ("batch", "v1", "Job"),
}
KIND_TO_RES = {v[2]: k for k, v in RESOURCES.items()}
SUBRESOURCES = {"pods": ("log", "status"), "jobs": ("status",),
                "persistentvolumeclaims": ("status",), "services": ("status",)}
# kinds whose DELETE answers the deleted object (others: Status Success)
DELETE_RETURNS_OBJECT = ("Pod", "Job")


def now_rfc3339(offset=0.0):
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=offset)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def res_name(resource):
    """'pods', 'jobs.batch': how messages name a resource."""
    g = RESOURCES.get(resource, ("",))[0]
    return resource + ("." + g if g else "")


def res_details(resource, name=None, uid=None):
    d = {}
    if name is not None:
        d["name"] = name
    g = RESOURCES.get(resource, ("",))[0]
    if g:
        d["group"] = g
    d["kind"] = resource
    if uid:
        d["uid"] = uid
    return d


def not_found(resource, name):
    return ApiError(404, '%s "%s" not found' % (res_name(resource), name),
                    details=res_details(resource, name))


def conflict(resource, name, why=None):
    return ApiError(409, 'Operation cannot be fulfilled on %s "%s": %s' % (
        res_name(resource), name, why or "the object has been modified; please apply your "
        "changes to the latest version and try again"), details=res_details(resource, name))


_CAUSES = (("Required value", "FieldValueRequired"), ("Not found", "FieldValueNotFound"),
           ("Duplicate value", "FieldValueDuplicate"),
           ("Unsupported value", "FieldValueNotSupported"), ("Forbidden", "FieldValueForbidden"),
           ("Too long", "FieldValueTooLong"), ("expected ", "FieldValueTypeInvalid"))


def invalid(kind, resource, name, errors):
    """422 Invalid with one cause per error string 'field: message'."""
    causes = []
    for e in errors:
        field, _, msg = e.partition(": ")
        reason = "FieldValueInvalid"
        for prefix, r in _CAUSES:
            if msg.startswith(prefix) or (prefix == "Required value" and msg == "required"):
                reason = r
                break
        causes.append({"reason": reason, "message": msg or e, "field": field})
    text = errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"
    d = res_details(resource, name)
    d["kind"] = kind
    d["causes"] = causes
    return ApiError(422, '%s "%s" is invalid: %s' % (kind, name, text), details=d)


# -- the double ----------------------------------------------------------------

HistEntry = collections.namedtuple("HistEntry", "rv type obj prev")


class ContractApiServer:
    """Contract test double of the Kubernetes v1.24 API server (see module doc).

    Thread-safe: tests, FakeKubelet and the HTTP threads share one lock."""

    def __init__(self, namespaces=("nbgate-users",), namespace_labels=None, rbac=None,
                 history=1000, bookmark_interval=1.0, pvc_bound=True,
                 checkpoint_enabled=False, user=DEFAULT_USER, schema=None):
        self.schema = schema or schema_mod.default_schema()
        self.rbac = rbac
        self.history = int(history)
        self.bookmark_interval = float(bookmark_interval)
        self.pvc_bound = pvc_bound
        self.checkpoint_enabled = checkpoint_enabled
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._rv = 1
        self._objs = {k: {} for k in KIND_TO_RES}          # kind -> (ns, name) -> obj
        self._hist = {k: collections.deque() for k in KIND_TO_RES}
        self._floor = {k: 0 for k in KIND_TO_RES}          # oldest RV a watch may resume from
        self._namespaces = {}
        for ns in namespaces:
            self.add_namespace(ns, (namespace_labels or {}).get(ns))
        self._logs = {}
        self._pending_deletes = {}                           # (kind, ns, name) -> deadline
        self._faults = []
        self._watch_gen = 0
        self._watch_clean = False
        self._stopping = threading.Event()
        self._callbacks = []
        self._cbq = queue.Queue()
        self._conns = set()
        self._threads = set()
        self._next_ip = 10
        self.tokens = set()
        self._token_users = {}
        self.token = self.add_token(secrets.token_urlsafe(24), user)
        self.user = user
        self.requests = []      # (method, path?query, status, body dict or None)
        self.rejections = []    # dicts {method, path, code, reason, message} for status >= 400
        self.errors = []        # tracebacks of handler/callback crashes (double's own bugs)
        self.checkpoints = []   # paths answered by the checkpoint endpoint
        self.tmpdir = tempfile.mkdtemp(prefix="nbgate-k8s-double-")
        self.pki = None
        self.url = None
        self.ca_file = None
        self._httpd = None

    # -- lifecycle ------------------------------------------------------------

    def start(self):
        """Generate certs, listen on 127.0.0.1:0 over TLS; returns the base URL."""
        self.pki = certs.Pki(os.path.join(self.tmpdir, "pki"))
        self.ca_file = self.pki.ca_crt
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.pki.server_crt, self.pki.server_key)
        ctx.load_verify_locations(self.pki.ca_crt)
        ctx.verify_mode = ssl.CERT_OPTIONAL
        self._httpd = _TLSServer(self, ctx)
        self.port = self._httpd.server_address[1]
        self.url = "https://127.0.0.1:%d" % self.port
        for fn in (self._httpd.serve_forever, self._reaper, self._dispatcher):
            t = threading.Thread(target=fn, name="k8s-double-" + fn.__name__, daemon=True)
            t.start()
            self._threads.add(t)
        return self.url

    def stop(self):
        """Stop serving; every thread (listener, connections, watches) exits."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        if self._httpd:
            self._httpd.shutdown()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._cbq.put(None)
        for t in list(self._threads) + (self._httpd.conn_threads() if self._httpd else []):
            t.join(timeout=5)
        if self._httpd:
            self._httpd.server_close()
        self.leaked_threads = [t.name for t in self._threads if t.is_alive()]
        if self._httpd:
            self.leaked_threads += [t.name for t in self._httpd.conn_threads() if t.is_alive()]
        if not os.environ.get("NBGATE_TEST_KEEP"):
            shutil.rmtree(self.tmpdir, ignore_errors=True)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *a):
        self.stop()

    # -- credentials ----------------------------------------------------------

    def add_token(self, token, user=DEFAULT_USER):
        """Accept bearer token for user; returns token."""
        with self._lock:
            self.tokens.add(token)
            self._token_users[token] = user
        return token

    def revoke_token(self, token):
        with self._lock:
            self.tokens.discard(token)
            self._token_users.pop(token, None)

    def write_kubeconfig(self, path, namespace, auth="token", context="test", token=None,
                         user=None, embed=False, server=None):
        """Write a kubeconfig (token or client cert CN=user); returns path."""
        user = user or self.user
        if auth == "cert":
            crt, key = self.pki.client(user)
            if embed:
                cred = {"client-certificate-data": _b64file(crt),
                        "client-key-data": _b64file(key)}
            else:
                cred = {"client-certificate": crt, "client-key": key}
        else:
            cred = {"token": token or self.token}
        ca = {"certificate-authority-data": _b64file(self.ca_file)} if embed else \
            {"certificate-authority": self.ca_file}
        cfg = {"apiVersion": "v1", "kind": "Config", "current-context": context,
               "clusters": [{"name": "double", "cluster": dict(server=server or self.url, **ca)}],
               "users": [{"name": "u-" + context, "user": cred}],
               "contexts": [{"name": context, "context": {
                   "cluster": "double", "user": "u-" + context, "namespace": namespace}}],
               "preferences": {}}
        with open(path, "w") as f:
            json.dump(cfg, f, indent=1)  # JSON is YAML: readable by any kubeconfig loader
        return path

    def write_in_cluster(self, root, namespace, token=None):
        """Write root/var/run/secrets/kubernetes.io/serviceaccount/*; returns the env."""
        d = os.path.join(root, SA_DIR)
        os.makedirs(d, exist_ok=True)
        for name, text in (("token", token or self.token), ("namespace", namespace)):
            with open(os.path.join(d, name), "w") as f:
                f.write(text)
        shutil.copyfile(self.ca_file, os.path.join(d, "ca.crt"))
        return {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(self.port)}

    # -- namespaces -----------------------------------------------------------

    def add_namespace(self, ns, labels=None):
        with self._lock:
            lab = {"kubernetes.io/metadata.name": ns}
            lab.update(labels or {})
            self._rv += 1
            self._namespaces[ns] = {
                "kind": "Namespace", "apiVersion": "v1",
                "metadata": {"name": ns, "uid": str(uuid.uuid4()), "labels": lab,
                             "resourceVersion": str(self._rv),
                             "creationTimestamp": now_rfc3339()},
                "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}

    def get_namespace(self, ns):
        with self._lock:
            o = self._namespaces.get(ns)
            return jcopy(o) if o else None

    # -- observers and faults --------------------------------------------------

    def on_change(self, callback):
        """callback(type, kind, obj) after every write, in order, on one dispatcher thread."""
        with self._lock:
            self._callbacks.append(callback)

    def fail_next(self, method, path_regex, status, message="injected failure", times=1):
        """The next `times` requests (method or '*', regex searched in path?query) get status."""
        with self._lock:
            self._faults.append([method.upper(), re.compile(path_regex), status, message, times])

    def drop_watches(self, clean=False):
        """Close every open watch stream (abruptly, or with the final chunk if clean)."""
        with self._cond:
            self._watch_gen += 1
            self._watch_clean = clean
            self._cond.notify_all()

    def compact(self):
        """Forget all history: watches from any older resourceVersion get 410 Expired."""
        with self._cond:
            for k in self._hist:
                self._hist[k].clear()
                self._floor[k] = self._rv

    def current_rv(self):
        with self._lock:
            return self._rv

    # -- objects: test side ------------------------------------------------------

    def get(self, kind, ns, name):
        """A copy of the object, or None."""
        kind = self._kind(kind)
        with self._lock:
            o = self._objs[kind].get((ns, name))
            return jcopy(o) if o is not None else None

    def list(self, kind, ns=None, label_selector=None):
        """Copies of the objects of kind (in ns, or all), optionally filtered."""
        kind = self._kind(kind)
        reqs = parse_label_selector(label_selector) if label_selector else []
        with self._lock:
            return [jcopy(o) for (ons, _), o in sorted(self._objs[kind].items())
                    if (ns is None or ons == ns) and
                    match_labels(reqs, o["metadata"].get("labels"))]

    def create(self, obj, ns=None):
        """Create as a client would (validation, defaults, admission); ApiError on failure."""
        kind = self._kind(obj.get("kind"))
        ns = ns or (obj.get("metadata") or {}).get("namespace")
        return self._create(KIND_TO_RES[kind], ns, jcopy(obj))

    def put_status(self, kind, ns, name, status):
        """The kubelet's/controller's status write: replaces .status (validated), MODIFIED."""
        kind = self._kind(kind)
        g, v, _ = RESOURCES[KIND_TO_RES[kind]]
        sdef = self.schema.status_definition(schema_mod.api_version_of(g, v), kind)
        errs = self.schema.validate(status, sdef) if sdef else []
        if errs:
            raise ValueError("put_status(%s %s/%s): invalid status: %s" % (kind, ns, name, errs))
        with self._lock:
            cur = self._objs[kind].get((ns, name))
            if cur is None:
                raise KeyError("%s %s/%s not found" % (kind, ns, name))
            new = jcopy(cur)
            new["status"] = jcopy(status)
            return self._store(kind, new, "MODIFIED", cur)

    def bind_pod(self, ns, name, node):
        """The scheduler's binding: sets spec.nodeName (MODIFIED)."""
        with self._lock:
            cur = self._objs["Pod"].get((ns, name))
            if cur is None:
                raise KeyError("pod %s/%s not found" % (ns, name))
            new = jcopy(cur)
            new["spec"]["nodeName"] = node
            return self._store("Pod", new, "MODIFIED", cur)

    def create_event(self, ns, involved_pod_name, reason, message, type="Normal",
                     component=None):
        """A core/v1 Event about a pod (as kubelet/scheduler write them); returns it."""
        with self._lock:
            pod = self._objs["Pod"].get((ns, involved_pod_name))
            ts = now_rfc3339()
            comp = component or ("default-scheduler" if reason in (
                "Scheduled", "FailedScheduling") else "kubelet")
            ev = {"apiVersion": "v1", "kind": "Event",
                  "metadata": {"name": "%s.%016x" % (involved_pod_name, random.getrandbits(64)),
                               "namespace": ns},
                  "involvedObject": {"kind": "Pod", "namespace": ns, "name": involved_pod_name,
                                     "apiVersion": "v1"},
                  "reason": reason, "message": message, "type": type,
                  "source": {"component": comp}, "reportingComponent": comp,
                  "reportingInstance": "", "firstTimestamp": ts, "lastTimestamp": ts,
                  "count": 1}
            if pod is not None:
                ev["involvedObject"]["uid"] = pod["metadata"]["uid"]
                ev["involvedObject"]["resourceVersion"] = pod["metadata"]["resourceVersion"]
                if pod["spec"].get("containers"):
                    ev["involvedObject"]["fieldPath"] = \
                        "spec.containers{%s}" % pod["spec"]["containers"][0]["name"]
            return self._create("events", ns, ev)

    def set_pod_log(self, ns, name, text, container=None, previous=False):
        """What GET pods/{name}/log answers (per container; previous instance if asked)."""
        with self._lock:
            if container is None:
                pod = self._objs["Pod"].get((ns, name))
                cs = pod["spec"]["containers"] if pod else []
                container = cs[0]["name"] if cs else "server"
            self._logs[(ns, name, container, bool(previous))] = text

    def finalize_delete(self, kind, ns, name):
        """The kubelet confirms termination: the object is gone (DELETED). False if absent."""
        kind = self._kind(kind)
        with self._lock:
            cur = self._objs[kind].get((ns, name))
            if cur is None:
                return False
            self._remove(kind, cur)
            return True

    def checkpoint_paths(self):
        with self._lock:
            return list(self.checkpoints)

    # -- internals: store -------------------------------------------------------

    @staticmethod
    def _kind(kind):
        if kind in KIND_TO_RES:
            return kind
        if kind in RESOURCES:
            return RESOURCES[kind][2]
        for k in KIND_TO_RES:
            if str(kind).lower() in (k.lower(), k.lower() + "s"):
                return k
        raise KeyError("the double does not serve kind %r" % (kind,))

    def _store(self, kind, obj, etype, prev):
        """Bump RV, save obj, append history, notify; returns a copy. Lock held."""
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        meta = obj["metadata"]
        key = (meta.get("namespace"), meta["name"])
        if etype == "DELETED":
            self._objs[kind].pop(key, None)
        else:
            self._objs[kind][key] = obj
        self._emit(kind, etype, obj, prev)
        return jcopy(obj)

    def _emit(self, kind, etype, obj, prev):
        h = self._hist[kind]
        h.append(HistEntry(self._rv, etype, jcopy(obj), jcopy(prev) if prev else None))
        while len(h) > self.history:
            self._floor[kind] = max(self._floor[kind], h.popleft().rv)
        self._cond.notify_all()
        if self._callbacks:
            self._cbq.put((etype, kind, jcopy(obj)))

    def _remove(self, kind, cur):
        meta = cur["metadata"]
        self._pending_deletes.pop((kind, meta.get("namespace"), meta["name"]), None)
        if kind == "Pod":
            for k in [k for k in self._logs if k[:2] == (meta.get("namespace"), meta["name"])]:
                del self._logs[k]
        return self._store(kind, jcopy(cur), "DELETED", cur)

    def _reaper(self):
        """Ends graceful pod deletions whose grace period ran out."""
        while not self._stopping.wait(0.05):
            with self._lock:
                now = time.monotonic()
                for (kind, ns, name), dl in list(self._pending_deletes.items()):
                    cur = self._objs[kind].get((ns, name))
                    if cur is None:
                        self._pending_deletes.pop((kind, ns, name), None)
                    elif now >= dl:
                        self._remove(kind, cur)

    def _dispatcher(self):
        while True:
            item = self._cbq.get()
            if item is None:
                return
            with self._lock:
                cbs = list(self._callbacks)
            for cb in cbs:
                try:
                    cb(*item)
                except Exception:
                    self.errors.append("on_change callback: " + traceback.format_exc())
                    print(self.errors[-1], file=sys.stderr)

    def _track_conn(self, sock, add):
        with self._lock:
            (self._conns.add if add else self._conns.discard)(sock)

    # -- internals: API operations (raise ApiError) --------------------------------

    def _validate(self, kind, resource, obj, name):
        errs = self.schema.validate(obj)
        errs += schema_mod.validate_object_meta(obj, kind)
        errs += schema_mod.validate_kind_rules(obj)
        if errs:
            raise invalid(kind, resource, name, errs)

    def _check_type(self, resource, obj):
        g, v, kind = RESOURCES[resource]
        want = schema_mod.api_version_of(g, v)
        if not isinstance(obj, dict):
            raise ApiError(400, "the body of the request must be a JSON object")
        obj.setdefault("apiVersion", want)
        obj.setdefault("kind", kind)
        if obj["apiVersion"] != want:
            raise ApiError(400, "the API version in the data (%s) does not match the expected "
                           "API version (%s)" % (obj["apiVersion"], want))
        if obj["kind"] != kind:
            raise ApiError(400, '%s in version "%s" cannot be handled as a %s: no kind "%s" is '
                           'registered for version "%s"' % (obj["kind"], v, kind, obj["kind"],
                                                           want))
        return kind

    def _admit_pod(self, ns, pod, name):
        labels = self._namespaces[ns]["metadata"]["labels"]
        level = labels.get("pod-security.kubernetes.io/enforce")
        if level not in ("restricted", "baseline"):
            return
        import pss  # lazily: H-MANIFESTS' module
        v = labels.get("pod-security.kubernetes.io/enforce-version", "latest")
        fn = pss.check_restricted if level == "restricted" else pss.check_baseline
        bad = fn(pod)
        if bad:
            raise ApiError(403, 'pods "%s" is forbidden: violates PodSecurity "%s:%s": %s'
                           % (name, level, v, ", ".join(bad)),
                           details=res_details("pods", name))

    def _create(self, resource, ns, obj):
        kind = self._check_type(resource, obj)
        meta = obj.get("metadata")
        if isinstance(meta, dict):
            if meta.get("namespace") not in (None, "", ns):
                raise ApiError(400, "the namespace of the provided object does not match the "
                               "namespace sent on the request")
            if not meta.get("name") and isinstance(meta.get("generateName"), str):
                meta["name"] = meta["generateName"] + rand_suffix()
            if meta.get("resourceVersion"):
                raise ApiError(500, "resourceVersion should not be set on objects to be created")
        name = meta.get("name") if isinstance(meta, dict) else None
        self._validate(kind, resource, obj, name or "")
        with self._lock:
            if ns not in self._namespaces:
                raise ApiError(404, 'namespaces "%s" not found' % ns,
                               details=res_details("namespaces", ns))
            if kind == "Pod":
                self._admit_pod(ns, obj, name)
            if (ns, name) in self._objs[kind]:
                raise ApiError(409, '%s "%s" already exists' % (res_name(resource), name),
                               reason="AlreadyExists", details=res_details(resource, name))
            self._fill_new(kind, ns, obj)
            return self._store(kind, obj, "ADDED", None)

    def _fill_new(self, kind, ns, obj):
        meta = obj["metadata"]
        meta["namespace"] = ns
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        meta["generation"] = 1
        for k in ("deletionTimestamp", "deletionGracePeriodSeconds", "selfLink",
                  "managedFields"):
            meta.pop(k, None)
        if kind == "Pod":
            default_pod_spec(obj["spec"])
            obj["status"] = {"phase": "Pending", "qosClass": qos_class(obj["spec"])}
        elif kind == "Secret":
            _default_secret(obj)
        elif kind == "PersistentVolumeClaim":
            _default_pvc(obj, self.pvc_bound)
        elif kind == "Service":
            self._next_ip += 1
            _default_service(obj, "10.96.%d.%d" % (self._next_ip // 250, self._next_ip % 250))
        elif kind == "Job":
            _default_job(obj)

    def _get_obj(self, resource, ns, name):
        o = self._objs[RESOURCES[resource][2]].get((ns, name))
        if o is None:
            raise not_found(resource, name)
        return o

    def _list(self, resource, ns, q):
        g, v, kind = RESOURCES[resource]
        lreq = parse_label_selector(q.get("labelSelector"))
        freq = parse_field_selector(q.get("fieldSelector"), kind)
        with self._lock:
            items = []
            for (ons, _), o in sorted(self._objs[kind].items()):
                if (ns is None or ons == ns) and match_labels(lreq, o["metadata"].get("labels")) \
                        and match_fields(freq, o):
                    it = jcopy(o)
                    it.pop("kind", None)        # a real list's items carry no kind/apiVersion
                    it.pop("apiVersion", None)
                    items.append(it)
            return {"kind": kind + "List", "apiVersion": schema_mod.api_version_of(g, v),
                    "metadata": {"resourceVersion": str(self._rv)}, "items": items}

    def _update(self, resource, ns, name, new, sub):
        """PUT (or the result of a patch) on the object or its status subresource."""
        kind = self._check_type(resource, new)
        meta = new.get("metadata") if isinstance(new.get("metadata"), dict) else {}
        if meta.get("name") not in (None, name):
            raise ApiError(400, "the name of the object (%s) does not match the name on the "
                           "URL (%s)" % (meta.get("name"), name))
        if meta.get("namespace") not in (None, "", ns):
            raise ApiError(400, "the namespace of the provided object does not match the "
                           "namespace sent on the request")
        with self._lock:
            cur = self._get_obj(resource, ns, name)
            rv = meta.get("resourceVersion")
            if rv not in (None, "") and rv != cur["metadata"]["resourceVersion"]:
                raise conflict(resource, name)
            res = self._merge_update(kind, cur, new, sub)
            self._validate(kind, resource, res, name)
            if kind == "Pod" and sub is None and \
                    not pod_spec_update_ok(cur.get("spec"), res.get("spec")):
                raise invalid(kind, resource, name, [POD_UPDATE_FORBIDDEN])
            if kind == "PersistentVolumeClaim" and sub is None and \
                    _pvc_spec_frozen(cur["spec"]) != _pvc_spec_frozen(res["spec"]):
                raise invalid(kind, resource, name, [
                    "spec: Forbidden: spec is immutable after creation except "
                    "resources.requests for bound claims"])
            if cur.get("immutable") and (cur.get("data") != res.get("data")):
                raise invalid(kind, resource, name,
                              ["data: Forbidden: field is immutable when `immutable` is set"])
            res["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"]
            if res == cur:
                return jcopy(cur)          # a no-op update does not bump resourceVersion
            if res.get("spec") != cur.get("spec"):
                res["metadata"]["generation"] = cur["metadata"].get("generation", 1) + 1
            return self._store(kind, res, "MODIFIED", cur)

    @staticmethod
    def _merge_update(kind, cur, new, sub):
        if sub == "status":
            res = jcopy(cur)
            res["status"] = jcopy(new.get("status") or {})
            return res
        res = jcopy(new)
        if kind == "Secret" and isinstance(res.get("stringData"), dict):
            _default_secret(res)
        if "status" in cur:
            res["status"] = jcopy(cur["status"])
        m, cm = res.setdefault("metadata", {}), cur["metadata"]
        for k in ("name", "namespace", "uid", "creationTimestamp", "generation",
                  "deletionTimestamp", "deletionGracePeriodSeconds"):
            if k in cm:
                m[k] = cm[k]
            else:
                m.pop(k, None)
        return res

    def _patch(self, resource, ns, name, ctype, body, sub):
        ctype = (ctype or "").split(";")[0].strip().lower()
        if ctype not in ("application/merge-patch+json", "application/strategic-merge-patch+json",
                         "application/json-patch+json"):
            raise ApiError(415, "the body of the request was in an unknown format - accepted "
                           "media types include: application/json-patch+json, "
                           "application/merge-patch+json, application/apply-patch+yaml, "
                           "application/strategic-merge-patch+json")
        with self._lock:
            cur = jcopy(self._get_obj(resource, ns, name))
            if ctype == "application/json-patch+json":
                try:
                    new = json_patch(cur, body)
                except (ValueError, KeyError, IndexError, TypeError) as e:
                    raise ApiError(422, "the server rejected our request due to an error in "
                                   "our request: %s" % e) from None
            else:
                if not isinstance(body, dict):
                    raise ApiError(400, "json: cannot unmarshal %s into Go value of type "
                                   "map[string]interface {}" % schema_mod._jtype(body))
                new = merge_patch(cur, body)
            if not isinstance(new, dict) or not isinstance(new.get("metadata"), dict):
                raise ApiError(422, "the server rejected our request: patched object is not "
                               "an object with metadata")
            rv = new["metadata"].get("resourceVersion")
            if rv not in (None, "") and rv != cur["metadata"]["resourceVersion"]:
                raise conflict(resource, name)
            return self._update(resource, ns, name, new, sub)

    def _delete(self, resource, ns, name, q, body):
        kind = RESOURCES[resource][2]
        opts = body if isinstance(body, dict) else {}
        if opts:
            errs = self.schema.validate(opts, "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions")
            if errs:
                raise ApiError(400, "invalid DeleteOptions: " + "; ".join(errs))
        grace = opts.get("gracePeriodSeconds")
        if q.get("gracePeriodSeconds") not in (None, ""):
            try:
                grace = int(q["gracePeriodSeconds"])
            except ValueError:
                raise ApiError(400, "gracePeriodSeconds: invalid integer") from None
        with self._lock:
            cur = self._get_obj(resource, ns, name)
            pre = opts.get("preconditions") or {}
            for f, label in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
                if pre.get(f) and pre[f] != cur["metadata"].get(f):
                    raise conflict(resource, name, "Precondition failed: %s in precondition: "
                                   "%s, %s in object meta: %s" % (label, pre[f], label,
                                                                   cur["metadata"].get(f)))
            if kind == "Pod":
                done = self._delete_pod(cur, grace)
                if done is not None:
                    return done
            gone = self._remove(kind, cur)
            if kind in DELETE_RETURNS_OBJECT:
                return gone
            return status_obj(200, "", "", res_details(resource, name, gone["metadata"]["uid"]))

    def _delete_pod(self, cur, grace):
        """Graceful pod deletion; returns the terminating pod, or None to delete now."""
        spec, meta = cur["spec"], cur["metadata"]
        if grace is None:
            grace = meta.get("deletionGracePeriodSeconds",
                             spec.get("terminationGracePeriodSeconds", 30))
        grace = max(0, int(grace))
        phase = (cur.get("status") or {}).get("phase")
        if grace == 0 or not spec.get("nodeName") or phase in ("Failed", "Succeeded"):
            return None
        old = meta.get("deletionGracePeriodSeconds")
        if old is not None and old <= grace:
            return jcopy(cur)           # already terminating with a shorter grace
        new = jcopy(cur)
        new["metadata"]["deletionTimestamp"] = now_rfc3339(grace)
        new["metadata"]["deletionGracePeriodSeconds"] = grace
        key = ("Pod", meta["namespace"], meta["name"])
        self._pending_deletes[key] = time.monotonic() + grace
        return self._store("Pod", new, "MODIFIED", cur)

    def _pod_log(self, ns, name, q):
        with self._lock:
            pod = self._get_obj("pods", ns, name)
            names = [c["name"] for c in pod["spec"]["containers"]]
            c = q.get("container")
            if not c:
                if len(names) != 1:
                    raise ApiError(400, "a container name must be specified for pod %s, "
                                   "choose one of: [%s]" % (name, " ".join(names)))
                c = names[0]
            if c not in names:
                raise ApiError(400, "container %s is not valid for pod %s" % (c, name))
            prev = q.get("previous") in ("true", "1")
            text = self._logs.get((ns, name, c, prev))
            if text is None:
                if prev:
                    raise ApiError(400, 'previous terminated container "%s" in pod "%s" not '
                                   'found' % (c, name))
                waiting = self._waiting_reason(pod, c)
                if waiting:
                    raise ApiError(400, 'container "%s" in pod "%s" is waiting to start: %s'
                                   % (c, name, waiting))
                text = ""
        tail = q.get("tailLines")
        if tail not in (None, ""):
            n = max(0, int(tail))
            lines = text.splitlines(keepends=True)
            text = "".join(lines[-n:]) if n else ""
        return text

    @staticmethod
    def _waiting_reason(pod, c):
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            if cs.get("name") == c:
                st = cs.get("state") or {}
                if "waiting" in st:
                    return st["waiting"].get("reason") or "ContainerCreating"
                return None
        return "ContainerCreating"

    def _checkpoint(self, node, ns, pod, container):
        """kubelet /checkpoint via the node proxy: (code, body, content type)."""
        if not self.checkpoint_enabled:
            return 404, "404 page not found\n", "text/plain; charset=utf-8"
        with self._lock:
            p = self._objs["Pod"].get((ns, pod))
            if p is None or p["spec"].get("nodeName") != node:
                return 404, "pod does not exist\n", "text/plain; charset=utf-8"
            if container not in [c["name"] for c in p["spec"]["containers"]]:
                return 404, "container %s does not exist\n" % container, "text/plain"
            path = "/var/lib/kubelet/checkpoints/checkpoint-%s_%s-%s-%s.tar" % (
                pod, ns, container,
                datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
            self.checkpoints.append(path)
        return 200, json.dumps({"items": [path]}), "application/json"

    def _take_fault(self, method, target):
        with self._lock:
            for f in self._faults:
                if f[0] in ("*", method) and f[1].search(target):
                    f[4] -= 1
                    if f[4] <= 0:
                        self._faults.remove(f)
                    hdr = {"Retry-After": "1"} if f[2] == 429 else {}
                    return ApiError(f[2], f[3], headers=hdr)
        return None

    def _allowed(self, verb, group, resource, sub, name):
        if self.rbac is None:
            return True
        full = resource + ("/" + sub if sub else "")
        for r in self.rbac:
            if not {group, "*"} & set(r.get("apiGroups", [])):
                continue
            if not {full, "*"} & set(r.get("resources", [])):
                continue
            if not {verb, "*"} & set(r.get("verbs", [])):
                continue
            rn = r.get("resourceNames")
            if rn and name not in rn:
                continue
            return True
        return False


def _pvc_spec_frozen(spec):
    s = jcopy(spec or {})
    (s.get("resources") or {}).pop("requests", None)
    return s


def _b64file(path):
    with open(path, "rb") as f:
        return base64.b64encode(f.read()).decode()


# -- watches --------------------------------------------------------------------


def _watch_view(entry, lreq, freq):
    """(type, obj) to send for a history entry under selectors, or None."""
    def m(o):
        return o is not None and match_labels(lreq, o["metadata"].get("labels")) and \
            match_fields(freq, o)
    if not lreq and not freq:
        return entry.type, entry.obj
    new_ok = m(entry.obj)
    if entry.type == "MODIFIED":
        old_ok = m(entry.prev)
        if new_ok and old_ok:
            return "MODIFIED", entry.obj
        if new_ok:
            return "ADDED", entry.obj
        if old_ok:
            return "DELETED", entry.obj
        return None
    return (entry.type, entry.obj) if new_ok else None


class _Watch:
    """State of one watch stream; runs on the connection's handler thread."""

    def __init__(self, srv, handler, resource, ns, q):
        self.srv, self.h, self.resource, self.ns = srv, handler, resource, ns
        g, v, self.kind = RESOURCES[resource]
        self.api_version = schema_mod.api_version_of(g, v)
        self.lreq = parse_label_selector(q.get("labelSelector"))
        self.freq = parse_field_selector(q.get("fieldSelector"), self.kind)
        self.bookmarks = q.get("allowWatchBookmarks") in ("true", "1")
        ts = q.get("timeoutSeconds")
        try:
            self.timeout = float(ts) if ts not in (None, "") else 1800.0
        except ValueError:
            raise ApiError(400, "timeoutSeconds: invalid value %r" % ts) from None
        rv = q.get("resourceVersion")
        self.rv = None
        if rv not in (None, "", "0"):
            if not rv.isdigit():
                raise ApiError(400, 'resourceVersion: Invalid value: "%s": strconv.ParseUint: '
                               'parsing "%s": invalid syntax' % (rv, rv))
            self.rv = int(rv)

    def _ns_ok(self, obj):
        return self.ns is None or obj["metadata"].get("namespace") == self.ns

    def run(self):
        srv = self.srv
        with srv._cond:
            gen = srv._watch_gen
            floor = srv._floor[self.kind]
            if self.rv is not None and self.rv < floor:
                err = status_obj(410, "too old resource version: %d (%d)" % (self.rv, floor),
                                 "Expired")
                self.h.start_chunked()
                self.h.write_chunk({"type": "ERROR", "object": err})
                return self.h.end_chunked()
            initial = []
            if self.rv is None:
                for (ons, _), o in sorted(srv._objs[self.kind].items()):
                    if self._ns_ok(o) and match_labels(self.lreq, o["metadata"].get("labels")) \
                            and match_fields(self.freq, o):
                        initial.append(("ADDED", jcopy(o)))
                last = srv._rv
            else:
                last = self.rv
        self.h.start_chunked()
        for t, o in initial:
            self.h.write_chunk({"type": t, "object": o})
        self._loop(gen, last)

    def _loop(self, gen, last):
        srv = self.srv
        deadline = time.monotonic() + self.timeout
        next_bm = time.monotonic() + srv.bookmark_interval
        while True:
            with srv._cond:
                pending = [e for e in srv._hist[self.kind] if e.rv > last]
                if not pending and srv._watch_gen == gen and not srv._stopping.is_set():
                    now = time.monotonic()
                    wait = min(deadline, next_bm if self.bookmarks else deadline) - now
                    srv._cond.wait(max(0.0, min(0.5, wait)))
                    pending = [e for e in srv._hist[self.kind] if e.rv > last]
                dropped = srv._watch_gen != gen
                clean = srv._watch_clean
                top = srv._rv
            if srv._stopping.is_set() or (dropped and not clean) or self.h.client_gone():
                return self.h.abort()
            for e in pending:
                v = _watch_view(e, self.lreq, self.freq) if self._ns_ok(e.obj) else None
                if v is not None:
                    self.h.write_chunk({"type": v[0], "object": v[1]})
            last = top
            now = time.monotonic()
            if dropped or now >= deadline:
                return self.h.end_chunked()
            if self.bookmarks and now >= next_bm:
                self.h.write_chunk({"type": "BOOKMARK", "object": {
                    "kind": self.kind, "apiVersion": self.api_version,
                    "metadata": {"resourceVersion": str(top)}}})
                next_bm = now + srv.bookmark_interval


class _WatchGone(Exception):
    pass


# -- HTTP -------------------------------------------------------------------------

_NS_RE = re.compile(r"^/api/v1/namespaces/([^/]+)$")
_CORE_RE = re.compile(r"^/api/v1/(?:namespaces/([^/]+)/)?([a-z]+)(?:/([^/]+)(?:/([a-z]+))?)?$")
_BATCH_RE = re.compile(r"^/apis/batch/v1/(?:namespaces/([^/]+)/)?(jobs)"
                       r"(?:/([^/]+)(?:/([a-z]+))?)?$")
_CKPT_RE = re.compile(r"^/api/v1/nodes/([^/]+)/proxy/checkpoint/([^/]+)/([^/]+)/([^/]+)$")
VERSION = {"major": "1", "minor": "24", "gitVersion": "v1.24.17-nbgate-contract-double",
           "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
           "buildDate": "2023-08-24T00:00:00Z", "goVersion": "go1.20.7", "compiler": "gc",
           "platform": "linux/amd64"}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "nbgate-k8s-contract-double"
    sys_version = ""
    timeout = 30

    def log_message(self, fmt, *args):
        if os.environ.get("NBGATE_K8S_DOUBLE_VERBOSE"):
            sys.stderr.write("k8s-double: " + (fmt % args) + "\n")

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_PUT(self):
        self._handle("PUT")

    def do_PATCH(self):
        self._handle("PATCH")

    def do_DELETE(self):
        self._handle("DELETE")

    # -- response helpers ------------------------------------------------------

    def _send(self, code, body, ctype="application/json", headers=None):
        data = body if isinstance(body, bytes) else \
            (body if isinstance(body, str) else json.dumps(body)).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Audit-Id", str(uuid.uuid4()))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def start_chunked(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        self._log_req(200)

    def write_chunk(self, obj):
        data = (json.dumps(obj) + "\n").encode()
        try:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
        except OSError:
            raise _WatchGone() from None

    def end_chunked(self):
        try:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            pass
        self.close_connection = True

    def client_gone(self):
        """True when the watching client closed its side (nothing else is sent on a watch)."""
        try:
            r, _, _ = select.select([self.connection], [], [], 0)
            if not r:
                return False
            self.connection.settimeout(0.05)
            return self.connection.recv(1) == b""
        except (OSError, ValueError):
            return True
        finally:
            try:
                self.connection.settimeout(self.timeout)
            except OSError:
                pass

    def abort(self):
        """Cut the stream without the final chunk (what a dropped connection looks like)."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _log_req(self, code, err=None):
        srv = self.server.double
        with srv._lock:
            srv.requests.append((self.command, self.path, code, self._body_obj))
            if len(srv.requests) > 100000:
                del srv.requests[:50000]
            if err is not None:
                srv.rejections.append({"method": self.command, "path": self.path, "code": code,
                                       "reason": err.reason, "message": err.message})

    def _fail(self, e):
        self._send(e.code, e.status(), headers=e.headers)
        self._log_req(e.code, e)

    # -- request -------------------------------------------------------------------

    def _read_body(self):
        te = self.headers.get("Transfer-Encoding", "").lower()
        cl = self.headers.get("Content-Length")
        if te == "chunked":
            data = b""
            while True:
                line = self.rfile.readline(100)
                n = int(line.split(b";")[0].strip() or b"0", 16)
                if n == 0:
                    self.rfile.readline(100)
                    return data
                if len(data) + n > MAX_BODY:
                    raise ApiError(413, "Request entity too large: limit is %d" % MAX_BODY)
                data += self.rfile.read(n)
                self.rfile.readline(100)
        if cl is None:
            return b""
        n = int(cl)
        if n > MAX_BODY:
            self._drain(n)
            raise ApiError(413, "Request entity too large: limit is %d" % MAX_BODY)
        return self.rfile.read(n)

    def _drain(self, n, bound=64 * 1024 * 1024):
        """Read and drop an oversized body (bounded) so the client sees the 413."""
        n = min(n, bound)
        while n > 0:
            got = self.rfile.read(min(n, 1 << 16))
            if not got:
                return
            n -= len(got)

    def _user(self):
        srv = self.server.double
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            tok = auth[7:].strip()
            with srv._lock:
                return srv._token_users.get(tok) if tok in srv.tokens else None
        cert = self.connection.getpeercert() if hasattr(self.connection, "getpeercert") else None
        if cert:
            for rdn in cert.get("subject", ()):
                for k, v in rdn:
                    if k == "commonName":
                        return v
        return None

    def _handle(self, method):
        self._body_obj = None
        srv = self.server.double
        try:
            try:
                raw = self._read_body()
            except ApiError as e:
                self.close_connection = True
                return self._fail(e)
            except ValueError:
                self.close_connection = True
                return self._fail(ApiError(400, "bad request body framing"))
            self._body_raw = raw
            if raw:
                try:
                    self._body_obj = json.loads(raw)
                except ValueError:
                    self._body_obj = None
            self._dispatch(method, raw)
        except _WatchGone:
            self.close_connection = True
        except ApiError as e:
            self._fail(e)
        except Exception:
            srv.errors.append(traceback.format_exc())
            print("k8s-double: handler crashed:\n" + srv.errors[-1], file=sys.stderr)
            try:
                self._fail(ApiError(500, "contract double internal error (see test log)"))
            except OSError:
                pass

    def _dispatch(self, method, raw):
        srv = self.server.double
        u = urllib.parse.urlsplit(self.path)
        path = u.path
        q = {k: v[-1] for k, v in urllib.parse.parse_qs(u.query, keep_blank_values=True).items()}
        if path in ("/version", "/healthz", "/readyz", "/livez"):
            if method != "GET":
                raise ApiError(405, "the server does not allow this method on the requested "
                               "resource")
            self._send(200, VERSION if path == "/version" else "ok",
                       "application/json" if path == "/version" else "text/plain")
            return self._log_req(200)
        user = self._user()
        if user is None:
            raise ApiError(401, "Unauthorized")
        fault = srv._take_fault(method, self.path)
        if fault is not None:
            raise fault
        if path == "/openapi/v2" and method == "GET":
            self._send(200, json.dumps(srv.schema.doc))
            return self._log_req(200)
        m = _CKPT_RE.match(path)
        if m:
            return self._checkpoint(method, user, [urllib.parse.unquote(x) for x in m.groups()])
        m = _NS_RE.match(path)
        if m:
            return self._namespace(method, user, urllib.parse.unquote(m.group(1)))
        m = _CORE_RE.match(path) or _BATCH_RE.match(path)
        if not m or m.group(2) not in RESOURCES or \
                (path.startswith("/api/v1/") and m.group(2) == "jobs"):
            raise ApiError(404, "the server could not find the requested resource", details={})
        ns, resource, name, sub = [urllib.parse.unquote(x) if x else x for x in m.groups()]
        if sub and sub not in SUBRESOURCES.get(resource, ()):
            raise ApiError(404, "the server could not find the requested resource", details={})
        verb = self._verb(method, name, q)
        if ns is None and verb not in ("list", "watch"):
            raise ApiError(404, "the server could not find the requested resource", details={})
        self._authorize(user, verb, resource, sub, name, ns)
        self._resource(method, verb, resource, ns, name, sub, q)

    @staticmethod
    def _verb(method, name, q):
        if method == "GET":
            if q.get("watch") in ("true", "1"):
                return "watch"
            return "get" if name else "list"
        if method == "DELETE":
            return "delete" if name else "deletecollection"
        return {"POST": "create", "PUT": "update", "PATCH": "patch"}[method]

    def _authorize(self, user, verb, resource, sub, name, ns):
        srv = self.server.double
        group = RESOURCES.get(resource, ("",))[0]
        if srv._allowed(verb, group, resource, sub, name):
            return
        subject = res_name(resource) + (' "%s"' % name if name else "")
        scope = 'in the namespace "%s"' % ns if ns else "at the cluster scope"
        raise ApiError(403, '%s is forbidden: User "%s" cannot %s resource "%s" in API group '
                       '"%s" %s' % (subject, user, verb, resource + ("/" + sub if sub else ""),
                                    group, scope), details=res_details(resource, name))

    def _body_json(self):
        if not self._body_raw:
            raise ApiError(400, "the body of the request is empty")
        ctype = (self.headers.get("Content-Type") or "application/json").split(";")[0].strip()
        if self.command in ("POST", "PUT") and ctype not in ("application/json", "*/*"):
            raise ApiError(415, 'the body of the request was in an unknown format - accepted '
                           'media types include: application/json, application/yaml, '
                           'application/vnd.kubernetes.protobuf')
        try:
            return json.loads(self._body_raw)
        except ValueError as e:
            raise ApiError(400, "couldn't get version/kind; json parse error: %s" % e) from None

    def _resource(self, method, verb, resource, ns, name, sub, q):
        srv = self.server.double
        if verb == "watch":
            return _Watch(srv, self, resource, ns, q).run()
        if verb == "list":
            return self._ok(srv._list(resource, ns, q))
        if verb == "get":
            if sub == "log":
                text = srv._pod_log(ns, name, q)
                self._send(200, text, "text/plain")
                return self._log_req(200)
            with srv._lock:
                return self._ok(jcopy(srv._get_obj(resource, ns, name)))
        if verb == "create" and not name:
            return self._ok(srv._create(resource, ns, self._body_json()), 201)
        if verb == "update" and name and sub != "log":
            return self._ok(srv._update(resource, ns, name, self._body_json(), sub))
        if verb == "patch" and name and sub != "log":
            body = self._body_json()
            return self._ok(srv._patch(resource, ns, name, self.headers.get("Content-Type"),
                                       body, sub))
        if verb == "delete" and not sub:
            body = json.loads(self._body_raw) if self._body_raw.strip() else None
            return self._ok(srv._delete(resource, ns, name, q, body))
        raise ApiError(405, "the server does not allow this method on the requested resource")

    def _ok(self, obj, code=200):
        self._send(code, obj)
        self._log_req(code)

    def _namespace(self, method, user, ns):
        srv = self.server.double
        if method != "GET":
            raise ApiError(405, "the server does not allow this method on the requested "
                           "resource")
        if not srv._allowed("get", "", "namespaces", None, ns):
            raise ApiError(403, 'namespaces "%s" is forbidden: User "%s" cannot get resource '
                           '"namespaces" in API group "" in the namespace "%s"' % (ns, user, ns),
                           details={"name": ns, "kind": "namespaces"})
        o = srv.get_namespace(ns)
        if o is None:
            raise not_found("namespaces", ns)
        self._ok(o)

    def _checkpoint(self, method, user, parts):
        srv = self.server.double
        node, ns, pod, container = parts
        if method != "POST":
            raise ApiError(405, "the server does not allow this method on the requested "
                           "resource")
        if not srv._allowed("create", "", "nodes", "proxy", node):
            raise ApiError(403, 'nodes "%s" is forbidden: User "%s" cannot create resource '
                           '"nodes/proxy" in API group "" at the cluster scope' % (node, user),
                           details={"name": node, "kind": "nodes"})
        code, body, ctype = srv._checkpoint(node, ns, pod, container)
        self._send(code, body, ctype)
        self._log_req(code, None if code < 400 else ApiError(code, body.strip()))


class _TLSServer(ThreadingHTTPServer):
    """ThreadingHTTPServer whose TLS handshake runs on the connection's thread."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, double, ctx):
        self.double, self.ctx = double, ctx
        self._conn_threads = set()
        self._ct_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request, client_address):
        t = threading.Thread(target=self.process_request_thread, args=(request, client_address),
                             name="k8s-double-conn", daemon=True)
        with self._ct_lock:
            self._conn_threads = {x for x in self._conn_threads if x.is_alive()}
            self._conn_threads.add(t)
        t.start()

    def conn_threads(self):
        with self._ct_lock:
            return list(self._conn_threads)

    def finish_request(self, request, client_address):
        if self.double._stopping.is_set():
            return
        request.settimeout(10)
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no 40 ms delayed-ACK stalls
        try:
            tls = self.ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        self.double._track_conn(tls, True)
        try:
            self.RequestHandlerClass(tls, client_address, self)
        except (OSError, ssl.SSLError):
            pass
        finally:
            self.double._track_conn(tls, False)
            try:
                tls.close()
            except OSError:
                pass


# -- a small client for tests -------------------------------------------------------


class ApiClient:
    """HTTPS client for the double (tests only): req() and watch()."""

    def __init__(self, srv, token=None, cert=None, timeout=10.0):
        self.srv, self.token, self.timeout = srv, token, timeout
        self.ctx = ssl.create_default_context(cafile=srv.ca_file)
        if cert:
            self.ctx.load_cert_chain(*cert)

    def _conn(self, timeout=None):
        return http.client.HTTPSConnection("127.0.0.1", self.srv.port, context=self.ctx,
                                           timeout=timeout or self.timeout)

    def _headers(self, ctype):
        h = {"Accept": "application/json"}
        if self.token:
            h["Authorization"] = "Bearer " + self.token
        if ctype:
            h["Content-Type"] = ctype
        return h

    def req(self, method, path, body=None, ctype=None, raw=None):
        """(status, decoded JSON or text) for one request."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None
                                            else None)
        if data is not None and ctype is None:
            ctype = "application/json"
        c = self._conn()
        try:
            c.request(method, path, body=data, headers=self._headers(ctype))
            r = c.getresponse()
            text = r.read().decode(errors="replace")
            self.last_headers = dict(r.getheaders())
        finally:
            c.close()
        if (r.getheader("Content-Type") or "").startswith("application/json"):
            try:
                return r.status, json.loads(text)
            except ValueError:
                pass
        return r.status, text

    def watch(self, path, until=None, max_events=1000, timeout=5.0):
        """Events of a watch (list of dicts) until until(events) is true, EOF or timeout.

        Also returns how the stream ended: 'eof', 'until', 'timeout' or 'broken'."""
        events, end = [], "timeout"
        deadline = time.monotonic() + timeout
        c = self._conn(timeout=timeout)
        try:
            c.request("GET", path, headers=self._headers(None))
            r = c.getresponse()
            if r.status != 200:
                return [{"type": "HTTP", "status": r.status,
                         "object": json.loads(r.read() or b"{}")}], "eof"
            while len(events) < max_events and time.monotonic() < deadline:
                c.sock.settimeout(max(0.05, deadline - time.monotonic()))
                try:
                    line = r.readline()
                except socket.timeout:
                    break
                except (http.client.IncompleteRead, OSError, ValueError):
                    end = "broken"
                    break
                if not line:
                    end = "eof"
                    break
                events.append(json.loads(line))
                if until and until(events):
                    end = "until"
                    break
        finally:
            c.close()
        return events, end
