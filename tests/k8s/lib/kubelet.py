#!/usr/bin/python3
"""FakeKubelet: plays the scheduler and the kubelet of a one-node cluster
against the contract test double of the API server (apiserver.py).

What it does, per pod created in its namespace:
  - schedules it: spec.nodeName, condition PodScheduled True and the event
    Scheduled; or, when the node is configured unschedulable, a GPU request
    exceeds `gpus_free`, the node selector does not match `node_labels`, a
    taint in `node_taints` is not tolerated or the PVC does not exist,
    PodScheduled False reason Unschedulable with the scheduler's message
    ("0/1 nodes are available: 1 Insufficient nvidia.com/gpu.") and a
    FailedScheduling event; it retries every `schedule_retry` seconds;
  - "pulls" the image: events Pulling/Pulled; images in `bad_images` give
    Failed + waiting ErrImagePull, then BackOff + waiting ImagePullBackOff,
    again and again with a growing back-off; a malformed reference gives
    InvalidImageName;
  - resolves the container's environment like a kubelet: envFrom secretRef
    (the Secret's data, keys that are not env var names skipped), env with
    value / valueFrom fieldRef (status.podIP, metadata.name, ...) /
    secretKeyRef, $(VAR) expansion in env values, command and args ($$ is
    a literal $, unknown $(X) is left as is); a missing Secret is
    CreateContainerConfigError;
  - runs the container's command as a host process in its own session,
    cwd the pod's workingDir; volumes are host directories (a PVC is a
    directory per claim that outlives the pod, an emptyDir one per pod), and
    every path in env values, command/args and workingDir below a
    mountPath is rewritten to the host directory (so HOME=/home/jovyan is
    the PVC's directory); as root it drops to runAsUser/runAsGroup and
    fsGroup, and chowns the volumes like the kubelet's fsGroup handling;
  - gives the pod a podIP 127.0.0.N (N unique, from 10 up), phase Running,
    container state running;
  - captures the process's output as the pod log (api.set_pod_log);
  - probes the readiness probe itself (httpGet podIP:port path, tcpSocket)
    every `probe_interval` seconds (a real kubelet uses periodSeconds; the
    tests want speed) and sets Ready / ContainersReady;
  - restarts a crashed container (restartPolicy Always/OnFailure) with a
    back-off, reporting restartCount, lastState.terminated (message: the
    log tail, terminationMessagePolicy FallbackToLogsOnError) and waiting
    CrashLoopBackOff; exit 0 under OnFailure is phase Succeeded;
  - on deletion with a grace period: SIGTERM to the container's session,
    SIGKILL after the grace (capped at `max_grace`), then
    api.finalize_delete; a pod deleted at once (grace 0) is just killed.

What it does not: init containers, several containers per pod beyond the
first-one-runs-all model (every container runs, but only as processes
sharing the pod IP), liveness/startup probes, exec probes, configMaps,
resource enforcement, image contents (the command runs on the host).

Bounded: every wait has a deadline; stop() kills every process it started
and joins every thread. Thread model: api.on_change() only enqueues (it
may run under the double's lock); one dispatcher thread routes changes to
one worker thread per pod (keyed by uid); a worker is the only writer of
its pod's status.
"""

import atexit
import base64
import inspect
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import http.client

ENV_NAME_RE = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
# docker reference grammar, simplified: lower-case repository path
IMAGE_REF_RE = re.compile(r"^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-]+[a-z0-9]+)*)*"
                          r"(:[\w][\w.-]{0,127})?(@sha256:[0-9a-f]{64})?$")
LOG_KEEP_BYTES = 256 * 1024
SETPRIV = shutil.which("setpriv")  # util-linux: sets the parent-death signal, then execs


def now_rfc3339():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def expand(s, env):
    """Kubernetes $(VAR) expansion (third_party/forked/golang/expansion):
    $(VAR) -> env[VAR] when defined, else kept verbatim; $$ -> $; any other
    $ is literal."""
    out = []
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        if c != "$" or i + 1 >= n:
            out.append(c)
            i += 1
            continue
        nxt = s[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "(":
            j = s.find(")", i + 2)
            if j < 0:
                out.append(s[i:])
                break
            name = s[i + 2:j]
            out.append(env[name] if name in env else s[i:j + 1])
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _qty_int(q):
    """An integer quantity ("1", 2) -> int; anything else 0."""
    try:
        return int(str(q))
    except ValueError:
        return 0


def session_pids(sid):
    """Pids whose session id is sid (the container's processes, kernels
    included: they may change process group but keep the session)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
            fields = st.rsplit(")", 1)[1].split()
            if int(fields[3]) == sid:  # fields: state ppid pgrp session
                out.append(int(d))
        except (OSError, IndexError, ValueError):
            pass
    return out


class ContainerError(Exception):
    """A container cannot be created: (reason, message) for its waiting state."""

    def __init__(self, reason, message):
        super().__init__(message)
        self.reason = reason
        self.message = message


class FakeKubelet:
    def __init__(self, api, ns, node="node-1", ip_base="127.0.0.", gpus_free=0,
                 gpu_resource="nvidia.com/gpu", node_labels=None, node_taints=(),
                 unschedulable=False, bad_images=(), probe_interval=0.5,
                 crash_backoff=1.0, pull_backoff=1.0, max_backoff=8.0, max_grace=15.0,
                 schedule_retry=1.0, pull_delay=0.1, run_as_user=True, root=None,
                 unhealthy_events=True):
        self.api = api
        self.ns = ns
        self.node = node
        self.ip_base = ip_base
        self.gpus_free = gpus_free
        self.gpu_resource = gpu_resource
        self.node_labels = node_labels  # None: every nodeSelector matches
        self.node_taints = list(node_taints)
        self.unschedulable = unschedulable
        self.bad_images = set(bad_images)
        self.probe_interval = probe_interval
        self.crash_backoff = crash_backoff
        self.pull_backoff = pull_backoff
        self.max_backoff = max_backoff
        self.max_grace = max_grace
        self.schedule_retry = schedule_retry
        self.pull_delay = pull_delay
        self.run_as_user = run_as_user and os.geteuid() == 0
        self.unhealthy_events = unhealthy_events
        self.own_root = root is None
        self.root = root or tempfile.mkdtemp(prefix="fake-kubelet-")
        os.makedirs(self.root, exist_ok=True)
        os.chmod(self.root, 0o711)  # runAsUser must reach the volumes
        self.lock = threading.Lock()
        self.q = queue.Queue()
        self.workers = {}       # uid -> PodWorker
        self.next_ip = 10
        self.ips_used = set()
        self.gpus_used = {}     # uid -> n
        self.errors = []        # exceptions raised in worker threads (tests assert none)
        self.stopping = threading.Event()
        self.thread = None
        self._log_prev = "previous" in inspect.signature(api.set_pod_log).parameters

    # ---- lifecycle --------------------------------------------------------
    def start(self):
        # a test script that dies without stop() must not leave servers behind
        atexit.register(self.stop)
        self.api.on_change(self._on_change)
        self.thread = threading.Thread(target=self._dispatch, name="kubelet", daemon=True)
        self.thread.start()
        for pod in self.api.list("Pod", self.ns) or []:
            self.q.put(("ADDED", "Pod", pod))
        return self

    def stop(self):
        """Kills every container (no grace), joins every thread. Idempotent."""
        if self.stopping.is_set():
            return
        self.stopping.set()
        self.q.put(None)
        if self.thread:
            self.thread.join(10)
        with self.lock:
            workers = list(self.workers.values())
        for w in workers:
            w.kill_now.set()
            w.wake.set()
        for w in workers:
            w.thread.join(15)
            w.kill_all()
        if self.own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    # ---- state shared by the workers ----------------------------------------
    def alloc_ip(self):
        with self.lock:
            if self.next_ip > 254:
                raise RuntimeError("FakeKubelet: out of pod IPs")
            n = self.next_ip
            self.next_ip += 1
            ip = self.ip_base + str(n)
            self.ips_used.add(ip)
            return ip

    def release(self, uid, ip):
        with self.lock:
            self.ips_used.discard(ip)
            self.gpus_used.pop(uid, None)
            self.workers.pop(uid, None)

    def try_reserve_gpus(self, uid, n):
        with self.lock:
            used = sum(v for k, v in self.gpus_used.items() if k != uid)
            if n and used + n > self.gpus_free:
                return False
            if n:
                self.gpus_used[uid] = n
            return True

    def pvc_dir(self, claim):
        d = os.path.join(self.root, "pvc", claim)
        os.makedirs(d, exist_ok=True)
        return d

    def set_log(self, name, text, previous=False):
        if self._log_prev:
            self.api.set_pod_log(self.ns, name, text, previous=previous)
        elif not previous:
            self.api.set_pod_log(self.ns, name, text)

    def worker_for(self, name):
        """The live worker of pod `name`, or None (tests: pid, ip)."""
        with self.lock:
            for w in self.workers.values():
                if w.name == name:
                    return w
        return None

    # ---- the watch side -----------------------------------------------------
    def _on_change(self, typ, kind, obj):
        # may run under the double's lock: enqueue only
        if kind == "Pod":
            self.q.put((typ, kind, obj))

    def _dispatch(self):
        while not self.stopping.is_set():
            try:
                item = self.q.get(timeout=0.5)
            except queue.Empty:
                continue
            if item is None:
                return
            typ, _kind, pod = item
            md = pod.get("metadata", {})
            if md.get("namespace", self.ns) != self.ns:
                continue
            uid = md.get("uid")
            with self.lock:
                w = self.workers.get(uid)
                if w is None and typ != "DELETED" and not md.get("deletionTimestamp"):
                    node = pod.get("spec", {}).get("nodeName")
                    if node and node != self.node:
                        continue
                    w = PodWorker(self, pod)
                    self.workers[uid] = w
                    w.thread.start()
                    continue
            if w is not None:
                w.observe(typ, pod)


class PodWorker:
    """One pod: schedule, pull, run, probe, restart, terminate."""

    def __init__(self, kl, pod):
        self.kl = kl
        self.api = kl.api
        self.ns = kl.ns
        self.pod = pod
        md = pod["metadata"]
        self.name = md["name"]
        self.uid = md["uid"]
        self.spec = pod.get("spec", {})
        self.status = dict(pod.get("status") or {})
        self.ip = None
        self.procs = {}          # container name -> Popen
        self.started_at = {}     # container name -> rfc3339
        self.restarts = {}
        self.logs = {}           # container name -> current log path
        self.deleted = threading.Event()     # gone from the API (grace 0)
        self.terminating = threading.Event() # deletionTimestamp seen
        self.kill_now = threading.Event()    # kubelet stop
        self.wake = threading.Event()
        self.grace = 30
        self.dir = tempfile.mkdtemp(prefix="pod-%s-" % self.name, dir=kl.root)
        os.chmod(self.dir, 0o711)
        self.thread = threading.Thread(target=self._run, name="pod-" + self.name, daemon=True)
        self.last_unhealthy = 0.0

    # ---- from the dispatcher ------------------------------------------------
    def observe(self, typ, pod):
        md = pod.get("metadata", {})
        if typ == "DELETED":
            self.deleted.set()
        elif md.get("deletionTimestamp"):
            g = md.get("deletionGracePeriodSeconds")
            if isinstance(g, int):
                self.grace = g
            self.terminating.set()
        self.wake.set()

    def gone(self):
        return self.deleted.is_set() or self.terminating.is_set() or self.kl.stopping.is_set()

    def sleep(self, secs):
        """Waits secs or until the pod is deleted/the kubelet stops. True = keep going."""
        deadline = time.monotonic() + secs
        while not self.gone():
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            self.wake.wait(min(left, 0.5))
            self.wake.clear()
        return False

    # ---- API writes ---------------------------------------------------------
    def event(self, reason, message, typ="Normal"):
        try:
            self.api.create_event(self.ns, self.name, reason, message, type=typ)
        except Exception as e:  # the pod may be gone
            self._note(e)

    def put_status(self):
        if self.deleted.is_set():
            return
        try:
            self.api.put_status("Pod", self.ns, self.name, self.status)
        except Exception as e:
            self._note(e)

    def _note(self, e):
        if not self.deleted.is_set() and not self.kl.stopping.is_set():
            self.kl.errors.append("%s: %r" % (self.name, e))

    def condition(self, typ, ok, reason=None, message=None):
        conds = [c for c in self.status.get("conditions", []) if c.get("type") != typ]
        old = [c for c in self.status.get("conditions", []) if c.get("type") == typ]
        st = "True" if ok else "False"
        c = {"type": typ, "status": st}
        if old and old[0].get("status") == st:
            c["lastTransitionTime"] = old[0].get("lastTransitionTime", now_rfc3339())
        else:
            c["lastTransitionTime"] = now_rfc3339()
        if reason:
            c["reason"] = reason
        if message:
            c["message"] = message
        conds.append(c)
        order = {"Initialized": 0, "Ready": 1, "ContainersReady": 2, "PodScheduled": 3}
        conds.sort(key=lambda x: order.get(x["type"], 9))
        self.status["conditions"] = conds

    def cstatus(self, c, state, ready=False, last=None):
        cs = {"name": c["name"], "image": c.get("image", ""), "imageID": "",
              "ready": ready, "restartCount": self.restarts.get(c["name"], 0),
              "started": "running" in state, "state": state}
        if "running" in state or "terminated" in state:
            cs["imageID"] = "docker-pullable://" + c.get("image", "") + "@sha256:" + "0" * 64
            cs["containerID"] = "containerd://%s-%d" % (self.uid, self.restarts.get(c["name"], 0))
        prev = [x for x in self.status.get("containerStatuses", []) if x["name"] == c["name"]]
        if last is not None:
            cs["lastState"] = last
        elif prev and prev[0].get("lastState"):
            cs["lastState"] = prev[0]["lastState"]
        others = [x for x in self.status.get("containerStatuses", []) if x["name"] != c["name"]]
        self.status["containerStatuses"] = others + [cs]

    # ---- the pod's life -------------------------------------------------------
    def _run(self):
        try:
            if self._schedule() and self._pull_all():
                self._run_containers()
        except Exception as e:
            import traceback
            self._note("worker raised: " + traceback.format_exc())
            del e
        finally:
            self._terminate()

    def _containers(self):
        return self.spec.get("containers", [])

    def _unschedulable_reason(self):
        kl = self.kl
        if kl.unschedulable:
            return "0/1 nodes are available: 1 node(s) were unschedulable."
        gpus = sum(_qty_int(c.get("resources", {}).get("limits", {}).get(kl.gpu_resource, 0))
                   for c in self._containers())
        if gpus and not kl.try_reserve_gpus(self.uid, gpus):
            return "0/1 nodes are available: 1 Insufficient %s." % kl.gpu_resource
        sel = self.spec.get("nodeSelector") or {}
        if kl.node_labels is not None and any(kl.node_labels.get(k) != v for k, v in sel.items()):
            return "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."
        for t in kl.node_taints:
            if t.get("effect") in ("NoSchedule", "NoExecute") and not self._tolerates(t):
                return ("0/1 nodes are available: 1 node(s) had untolerated taint {%s: %s}."
                        % (t.get("key"), t.get("value", "")))
        for v in self.spec.get("volumes", []):
            claim = (v.get("persistentVolumeClaim") or {}).get("claimName")
            if claim and not self.api.get("PersistentVolumeClaim", self.ns, claim):
                return 'persistentvolumeclaim "%s" not found' % claim
        return None

    def _tolerates(self, taint):
        for t in self.spec.get("tolerations", []) or []:
            if t.get("effect") and t.get("effect") != taint.get("effect"):
                continue
            if t.get("operator") == "Exists" and (not t.get("key") or t["key"] == taint.get("key")):
                return True
            if t.get("key") == taint.get("key") and t.get("value", "") == taint.get("value", ""):
                return True
        return False

    def _schedule(self):
        last_msg = None
        while True:
            msg = self._unschedulable_reason()
            if msg is None:
                break
            if msg != last_msg:
                self.condition("PodScheduled", False, "Unschedulable", msg)
                self.status.setdefault("phase", "Pending")
                self.put_status()
                self.event("FailedScheduling", msg, "Warning")
                last_msg = msg
            if not self.sleep(self.kl.schedule_retry):
                return False
        self.api.bind_pod(self.ns, self.name, self.kl.node)
        self.condition("PodScheduled", True)
        self.status["phase"] = "Pending"
        self.status["hostIP"] = "127.0.0.1"
        self.status["startTime"] = now_rfc3339()
        self.put_status()
        self.event("Scheduled", "Successfully assigned %s/%s to %s" % (self.ns, self.name,
                                                                     self.kl.node))
        return not self.gone()

    def _pull_all(self):
        self.ip = self.kl.alloc_ip()
        self.condition("Initialized", True)
        self.condition("ContainersReady", False, "ContainersNotReady",
                       "containers with unready status: [%s]"
                       % " ".join(c["name"] for c in self._containers()))
        self.condition("Ready", False, "ContainersNotReady",
                       "containers with unready status: [%s]"
                       % " ".join(c["name"] for c in self._containers()))
        for c in self._containers():
            self.cstatus(c, {"waiting": {"reason": "ContainerCreating"}})
        self.put_status()
        for c in self._containers():
            if not self._pull(c):
                return False
        return True

    def _pull(self, c):
        ref = c.get("image", "")
        if not IMAGE_REF_RE.match(ref):
            msg = 'Failed to apply default image tag "%s": couldn\'t parse image reference "%s": ' \
                  'invalid reference format' % (ref, ref)
            self.event("InspectFailed", msg, "Warning")
            self.event("Failed", "Error: InvalidImageName", "Warning")
            self.cstatus(c, {"waiting": {"reason": "InvalidImageName", "message": msg}})
            self.put_status()
            while self.sleep(1.0):
                pass
            return False
        backoff = self.kl.pull_backoff
        while ref in self.kl.bad_images:
            self.event("Pulling", 'Pulling image "%s"' % ref)
            msg = ('rpc error: code = NotFound desc = failed to pull and unpack image "%s": '
                   'failed to resolve reference "%s": %s: not found' % (ref, ref, ref))
            self.event("Failed", 'Failed to pull image "%s": %s' % (ref, msg), "Warning")
            self.event("Failed", "Error: ErrImagePull", "Warning")
            self.cstatus(c, {"waiting": {"reason": "ErrImagePull", "message": msg}})
            self.put_status()
            if not self.sleep(min(backoff, self.kl.max_backoff) / 2):
                return False
            bmsg = 'Back-off pulling image "%s"' % ref
            self.event("BackOff", bmsg)
            self.event("Failed", "Error: ImagePullBackOff", "Warning")
            self.cstatus(c, {"waiting": {"reason": "ImagePullBackOff", "message": bmsg}})
            self.put_status()
            if not self.sleep(min(backoff, self.kl.max_backoff)):
                return False
            backoff *= 2
        self.event("Pulling", 'Pulling image "%s"' % ref)
        t0 = time.monotonic()
        if not self.sleep(self.kl.pull_delay):
            return False
        self.event("Pulled", 'Successfully pulled image "%s" in %.3fs' % (ref, time.monotonic() - t0))
        return True

    # ---- environment, volumes ----------------------------------------------------
    def _secret_data(self, name):
        s = self.api.get("Secret", self.ns, name)
        if s is None:
            return None
        out = {}
        for k, v in (s.get("data") or {}).items():
            out[k] = base64.b64decode(v).decode("utf-8", "replace")
        return out

    def _field(self, path):
        md = self.pod.get("metadata", {})
        m = re.match(r"^metadata\.(labels|annotations)\['(.*)'\]$", path)
        if m:
            return (md.get(m.group(1)) or {}).get(m.group(2), "")
        return {"status.podIP": self.ip, "status.hostIP": "127.0.0.1",
                "metadata.name": self.name, "metadata.namespace": self.ns,
                "metadata.uid": self.uid, "spec.nodeName": self.kl.node,
                "spec.serviceAccountName": self.spec.get("serviceAccountName", "default"),
                "status.podIPs": self.ip}.get(path, "")

    def _env(self, c):
        """The container's environment (dict, ordered) or ContainerError."""
        env = {}
        for ef in c.get("envFrom", []) or []:
            prefix = ef.get("prefix", "")
            ref = ef.get("secretRef")
            if ref is None:
                raise ContainerError("CreateContainerConfigError", "envFrom: only secretRef is implemented")
            data = self._secret_data(ref.get("name", ""))
            if data is None:
                if ref.get("optional"):
                    continue
                raise ContainerError("CreateContainerConfigError",
                                     'secret "%s" not found' % ref.get("name", ""))
            for k, v in data.items():
                if ENV_NAME_RE.match(prefix + k):
                    env[prefix + k] = v
        for e in c.get("env", []) or []:
            name = e["name"]
            if "valueFrom" in e:
                vf = e["valueFrom"]
                if "fieldRef" in vf:
                    env[name] = self._field(vf["fieldRef"].get("fieldPath", ""))
                elif "secretKeyRef" in vf:
                    r = vf["secretKeyRef"]
                    data = self._secret_data(r.get("name", ""))
                    if data is None or r.get("key") not in data:
                        if r.get("optional"):
                            continue
                        raise ContainerError("CreateContainerConfigError",
                                             'secret "%s" not found' % r.get("name", "")
                                             if data is None else
                                             "couldn't find key %s in Secret %s/%s"
                                             % (r.get("key"), self.ns, r.get("name")))
                    env[name] = data[r["key"]]
                else:
                    raise ContainerError("CreateContainerConfigError",
                                         "env %s: valueFrom kind not implemented" % name)
            else:
                env[name] = expand(e.get("value", ""), env)
        return env

    def _mounts(self, c):
        """[(mountPath, host dir)] longest first."""
        vols = {v["name"]: v for v in self.spec.get("volumes", [])}
        out = []
        for m in c.get("volumeMounts", []) or []:
            v = vols.get(m.get("name"))
            if v is None:
                raise ContainerError("CreateContainerConfigError",
                                     "volume %s not found" % m.get("name"))
            if "persistentVolumeClaim" in v:
                d = self.kl.pvc_dir(v["persistentVolumeClaim"]["claimName"])
            elif "emptyDir" in v or "projected" in v or "secret" in v:
                d = os.path.join(self.dir, "vol-" + v["name"])
                os.makedirs(d, exist_ok=True)
                self._fill_volume(v, d)
            else:
                raise ContainerError("CreateContainerConfigError",
                                     "volume %s: type not implemented" % v["name"])
            if m.get("subPath"):
                d = os.path.join(d, m["subPath"])
                os.makedirs(d, exist_ok=True)
            out.append((m["mountPath"].rstrip("/") or "/", d))
        out.sort(key=lambda x: -len(x[0]))
        return out

    def _fill_volume(self, v, d):
        """Files of a secret or projected volume (the service account token
        volume the double adds when automountServiceAccountToken is not
        false: a placeholder token, never a real credential)."""
        files = {}
        if "secret" in v:
            data = self._secret_data(v["secret"].get("secretName", ""))
            if data is None and not v["secret"].get("optional"):
                raise ContainerError("CreateContainerConfigError", 'secret "%s" not found'
                                     % v["secret"].get("secretName", ""))
            files.update(data or {})
        for src in (v.get("projected") or {}).get("sources", []) or []:
            if "serviceAccountToken" in src:
                files[src["serviceAccountToken"].get("path", "token")] = "fake-kubelet-sa-token"
            for it in ((src.get("configMap") or {}).get("items") or []):
                files[it.get("path", it.get("key", "x"))] = ""
            if "downwardAPI" in src:
                for it in src["downwardAPI"].get("items", []) or []:
                    files[it["path"]] = self._field((it.get("fieldRef") or {}).get("fieldPath", ""))
        for name, text in files.items():
            if "/" in name or name.startswith("."):
                continue
            with open(os.path.join(d, name), "w") as f:
                f.write(text)

    @staticmethod
    def _map_paths(s, mounts):
        """One pass (a host path may itself start with a mountPath such as
        /tmp): every mountPath at a path boundary -> its host directory."""
        mounts = [(mp, h) for mp, h in mounts if mp != "/"]
        if not mounts:
            return s
        table = dict(mounts)
        rx = r"(?<![\w./-])(" + "|".join(re.escape(mp) for mp, _h in mounts) + \
            r")(?=/|$|[^\w.-])"
        return re.sub(rx, lambda m: table[m.group(1)], s)

    def _ids(self, c):
        psc = self.spec.get("securityContext") or {}
        csc = c.get("securityContext") or {}
        uid = csc.get("runAsUser", psc.get("runAsUser"))
        gid = csc.get("runAsGroup", psc.get("runAsGroup"))
        return uid, gid, psc.get("fsGroup")

    # ---- containers ---------------------------------------------------------------
    def _start_container(self, c):
        cenv = self._env(c)      # as the container sees it
        mounts = self._mounts(c)
        cenv.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        cenv.setdefault("HOSTNAME", self.name)
        argv = [expand(a, cenv) for a in (c.get("command") or []) + (c.get("args") or [])]
        if not argv:
            raise ContainerError("CreateContainerError", "no command specified (the fake "
                                 "kubelet has no image entrypoints)")
        # container paths -> host directories, once, after the expansion
        argv = [self._map_paths(a, mounts) for a in argv]
        env = {k: self._map_paths(v, mounts) for k, v in cenv.items()}
        cwd = self._map_paths(c.get("workingDir") or "/", mounts)
        if c.get("workingDir") and not os.path.isdir(cwd):
            os.makedirs(cwd, exist_ok=True)
        uid, gid, fsgroup = self._ids(c)
        kw = {}
        if self.kl.run_as_user and uid is not None:
            kw = {"user": uid, "group": gid if gid is not None else uid,
                  "extra_groups": [fsgroup] if fsgroup is not None else []}
            for _mp, host in mounts:
                self._chown_volume(host, uid, fsgroup if fsgroup is not None else gid)
        n = self.restarts.get(c["name"], 0)
        logp = os.path.join(self.dir, "%s-%d.log" % (c["name"], n))
        if SETPRIV:
            # a test killed without stop() must not leave servers running:
            # the container gets SIGTERM when this worker thread goes away
            argv = [SETPRIV, "--pdeathsig", "TERM", "--"] + argv
        with open(logp, "wb") as lf:
            p = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=lf,
                                 stderr=subprocess.STDOUT, start_new_session=True,
                                 close_fds=True, **kw)
        self.procs[c["name"]] = p
        self.logs[c["name"]] = logp
        self.started_at[c["name"]] = now_rfc3339()
        self.event("Created", "Created container %s" % c["name"])
        self.event("Started", "Started container %s" % c["name"])
        return p

    @staticmethod
    def _chown_volume(d, uid, gid):
        st = os.stat(d)
        if st.st_uid == uid and (gid is None or st.st_gid == gid):
            return  # fsGroupChangePolicy OnRootMismatch
        for root, dirs, files in os.walk(d):
            for x in [root] + [os.path.join(root, f) for f in dirs + files]:
                try:
                    os.lchown(x, uid, gid if gid is not None else -1)
                except OSError:
                    pass
        os.chmod(d, 0o2770)

    def _log_text(self, name, path=None):
        path = path or self.logs.get(name)
        if not path:
            return ""
        try:
            with open(path, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - LOG_KEEP_BYTES))
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    @staticmethod
    def _termination_message(text):
        lines = text.splitlines()[-80:]
        return "\n".join(lines)[-2048:]

    def _run_containers(self):
        for c in self._containers():
            try:
                self._start_container(c)
            except ContainerError as e:
                self.event("Failed", "Error: %s" % e.message, "Warning")
                self.cstatus(c, {"waiting": {"reason": e.reason, "message": e.message}})
                self.put_status()
                while self.sleep(1.0):
                    pass
                return
            self.cstatus(c, {"running": {"startedAt": self.started_at[c["name"]]}})
        self.status["phase"] = "Running"
        self.status["podIP"] = self.ip
        self.status["podIPs"] = [{"ip": self.ip}]
        self.put_status()
        self._supervise()

    def _supervise(self):
        """Probe, publish logs, restart crashed containers until deleted."""
        ready = {c["name"]: False for c in self._containers()}
        fails = {c["name"]: 0 for c in self._containers()}
        backoff_until = {}
        backoff = {c["name"]: self.kl.crash_backoff for c in self._containers()}
        last_log = {}
        while self.sleep(self.kl.probe_interval):
            changed = False
            for c in self._containers():
                name = c["name"]
                text = self._log_text(name)
                if text != last_log.get(name):
                    last_log[name] = text
                    self.set_log_safe(text)
                p = self.procs.get(name)
                if p is not None and p.poll() is not None:
                    changed |= self._exited(c, p.returncode, text, ready)
                    self.procs[name] = None
                    if self.status.get("phase") == "Succeeded":
                        continue
                    if self._should_restart(p.returncode):
                        delay = 0 if self.restarts[name] <= 1 else backoff[name]
                        if delay:
                            backoff[name] = min(backoff[name] * 2, self.kl.max_backoff)
                            self._crash_loop(c, delay)
                        backoff_until[name] = time.monotonic() + delay
                    continue
                if p is None:
                    until = backoff_until.get(name)
                    if until is not None and time.monotonic() >= until:
                        del backoff_until[name]
                        try:
                            self._start_container(c)
                        except ContainerError as e:
                            self.cstatus(c, {"waiting": {"reason": e.reason, "message": e.message}})
                            self.put_status()
                            continue
                        self.cstatus(c, {"running": {"startedAt": self.started_at[name]}})
                        self.status["phase"] = "Running"
                        changed = True
                    continue
                changed |= self._probe_once(c, ready, fails)
            if changed:
                self._set_ready(ready)
                self.put_status()

    def set_log_safe(self, text, previous=False):
        try:
            self.kl.set_log(self.name, text, previous=previous)
        except Exception as e:
            self._note(e)

    def _should_restart(self, rc):
        pol = self.spec.get("restartPolicy", "Always")
        return pol == "Always" or (pol == "OnFailure" and rc != 0)

    def _exited(self, c, rc, text, ready):
        name = c["name"]
        sig = -rc if rc < 0 else 0
        code = 128 + sig if sig else rc
        term = {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                "startedAt": self.started_at.get(name, now_rfc3339()), "finishedAt": now_rfc3339(),
                "containerID": "containerd://%s-%d" % (self.uid, self.restarts.get(name, 0))}
        if sig:
            term["signal"] = sig
        if code != 0 and c.get("terminationMessagePolicy") == "FallbackToLogsOnError":
            term["message"] = self._termination_message(text)
        ready[name] = False
        self.set_log_safe(text, previous=True)
        if self._should_restart(rc):
            self.restarts[name] = self.restarts.get(name, 0) + 1
            self.cstatus(c, {"terminated": term}, last={"terminated": term})
        else:
            self.cstatus(c, {"terminated": term})
            if all(self.procs.get(x["name"]) in (None,) or x["name"] == name
                   for x in self._containers()):
                self.status["phase"] = "Succeeded" if code == 0 else "Failed"
        return True

    def _crash_loop(self, c, delay):
        msg = "back-off %ds restarting failed container=%s pod=%s_%s(%s)" % (
            max(1, int(delay)), c["name"], self.name, self.ns, self.uid)
        self.cstatus(c, {"waiting": {"reason": "CrashLoopBackOff", "message": msg}})
        self.put_status()
        self.event("BackOff", "Back-off restarting failed container", "Warning")

    def _probe_once(self, c, ready, fails):
        probe = c.get("readinessProbe")
        name = c["name"]
        if not probe:
            ok, why = True, None
        else:
            ok, why = self._probe(c, probe)
        if ok:
            fails[name] = 0
            if not ready[name]:
                ready[name] = True
                self.cstatus(c, {"running": {"startedAt": self.started_at[name]}}, ready=True)
                return True
            return False
        fails[name] += 1
        if self.kl.unhealthy_events and time.monotonic() - self.last_unhealthy > 5.0:
            self.last_unhealthy = time.monotonic()
            self.event("Unhealthy", "Readiness probe failed: %s" % why, "Warning")
        if ready[name] and fails[name] >= probe.get("failureThreshold", 3):
            ready[name] = False
            self.cstatus(c, {"running": {"startedAt": self.started_at[name]}}, ready=False)
            return True
        return False

    def _port(self, c, port):
        if isinstance(port, int):
            return port
        for p in c.get("ports", []) or []:
            if p.get("name") == port:
                return p["containerPort"]
        return int(port) if str(port).isdigit() else 0

    def _probe(self, c, probe):
        timeout = min(float(probe.get("timeoutSeconds", 1)), 2.0)
        if "httpGet" in probe:
            h = probe["httpGet"]
            host = h.get("host") or self.ip
            port = self._port(c, h.get("port"))
            path = h.get("path", "/")
            scheme = h.get("scheme", "HTTP").lower()
            url = "%s://%s:%d%s" % (scheme, host, port, path)
            try:
                if scheme == "https":
                    import ssl
                    ctx = ssl._create_unverified_context()
                    conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=ctx)
                else:
                    conn = http.client.HTTPConnection(host, port, timeout=timeout)
                hdrs = {x["name"]: x["value"] for x in h.get("httpHeaders", []) or []}
                hdrs.setdefault("User-Agent", "kube-probe/1.24")
                conn.request("GET", path, headers=hdrs)
                r = conn.getresponse()
                r.read(10240)
                conn.close()
                if 200 <= r.status < 400:
                    return True, None
                return False, "HTTP probe failed with statuscode: %d" % r.status
            except OSError as e:
                return False, 'Get "%s": dial tcp %s:%d: %s' % (url, host, port, e)
        if "tcpSocket" in probe:
            t = probe["tcpSocket"]
            host = t.get("host") or self.ip
            port = self._port(c, t.get("port"))
            try:
                socket.create_connection((host, port), timeout=timeout).close()
                return True, None
            except OSError as e:
                return False, "dial tcp %s:%d: %s" % (host, port, e)
        return False, "probe type not implemented by the fake kubelet"

    def _set_ready(self, ready):
        names = [c["name"] for c in self._containers()]
        bad = [n for n in names if not ready.get(n)]
        if bad:
            msg = "containers with unready status: [%s]" % " ".join(bad)
            self.condition("ContainersReady", False, "ContainersNotReady", msg)
            self.condition("Ready", False, "ContainersNotReady", msg)
        else:
            self.condition("ContainersReady", True)
            self.condition("Ready", True)

    # ---- the end --------------------------------------------------------------------
    def pids(self):
        out = []
        for p in self.procs.values():
            if p is not None and p.poll() is None:
                out += session_pids(p.pid) or [p.pid]
        return out

    def _signal_all(self, sig):
        for p in list(self.procs.values()):
            if p is None:
                continue
            for pid in session_pids(p.pid) or [p.pid]:
                try:
                    os.kill(pid, sig)
                except OSError:
                    pass

    def kill_all(self):
        self._signal_all(signal.SIGKILL)
        for p in self.procs.values():
            if p is not None:
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    pass

    def _terminate(self):
        """Stops the containers: TERM, grace, KILL; confirms the deletion."""
        if self.terminating.is_set() and not self.deleted.is_set() and not self.kl.stopping.is_set():
            if any(p is not None and p.poll() is None for p in self.procs.values()):
                for c in self._containers():
                    self.event("Killing", "Stopping container %s" % c["name"])
            self._signal_all(signal.SIGTERM)
            deadline = time.monotonic() + min(max(self.grace, 0), self.kl.max_grace)
            while time.monotonic() < deadline and not self.kill_now.is_set():
                if all(p is None or p.poll() is not None for p in self.procs.values()) \
                        and not self.pids():
                    break
                time.sleep(0.05)
        self.kill_all()
        for c in self._containers():
            self.set_log_safe(self._log_text(c["name"]))
        if self.terminating.is_set() and not self.deleted.is_set() and not self.kl.stopping.is_set():
            try:
                self.api.finalize_delete("Pod", self.ns, self.name)
            except Exception as e:
                if self.api.get("Pod", self.ns, self.name) is not None:
                    self._note(e)
        self.kl.release(self.uid, self.ip)
