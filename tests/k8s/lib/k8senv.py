"""K8sEnv: the fixture of the end-to-end tests of the kubernetes backend.

One ContractApiServer (the contract test double, apiserver.py), one
FakeKubelet (kubelet.py) playing the node, and one `nbgate serve` with
spawner=kubernetes whose credentials are a kubeconfig (bearer token or
client certificate) or the in-cluster service account files
(NBGATE_K8S_IN_CLUSTER_ROOT + KUBERNETES_SERVICE_HOST/PORT). The image's
command runs the host's Jupyter Server 1.23, which demands the server
token from the Secret (--ServerApp.token=$(NBGATE_SERVER_TOKEN)), so
proxied requests only work when nbgate adds srv->upstream_auth.

Only loopback: the double listens on 127.0.0.1, pods on 127.0.0.N.
Every wait is bounded. stop() (also run by T.main's teardown through
Gateway.live) stops nbgate, the kubelet and the double, and records
assertions: the double served no crash, the kubelet raised nothing.
"""

import json
import os
import random
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "integration", "lib"))
import nbgate_test as T  # noqa: E402
from apiserver import ContractApiServer  # noqa: E402
from kubelet import FakeKubelet  # noqa: E402

NS = "nbgate-users"
IMAGE_REF = "registry.example/nbgate/jupyter:1"
BAD_IMAGE_REF = "registry.example/nbgate/missing:404"
GPU_MODEL = "NVIDIA-A100-SXM4-40GB"

import pss  # noqa: E402,F401 (tests use K.pss)


def jupyter_cmd(extra=None):
    """kubernetes.images[].cmd: the host's Jupyter Server 1.23 on the pod IP,
    demanding the token from the Secret (the fake kubelet expands $(VAR))."""
    return ["/usr/bin/python3", "-m", "jupyter_server",
            "--ServerApp.ip=$(NBGATE_POD_IP)", "--ServerApp.port={port}",
            "--ServerApp.port_retries=0", "--ServerApp.base_url={base_url}",
            "--ServerApp.token=$(NBGATE_SERVER_TOKEN)", "--ServerApp.password=",
            "--ServerApp.open_browser=False", "--ServerApp.root_dir=$(HOME)",
            "--ServerApp.allow_remote_access=True", "--ServerApp.disable_check_xsrf=True"] \
        + list(extra or [])


def default_profiles():
    return [{"name": "small", "image": "jupyter", "cpu": 1, "memory": "1G",
             "node_selector": {"pool": "cpu"},
             "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "nb",
                              "effect": "NoSchedule"}]},
            {"name": "gpu", "image": "jupyter", "cpu": 1, "memory": "1G", "gpus": 1,
             "gpu_model": GPU_MODEL},
            {"name": "broken", "image": "broken", "cpu": 1, "memory": "1G"},
            {"name": "crash", "image": "crash", "cpu": 1, "memory": "1G"}]


def default_images(port):
    crash = ["/bin/sh", "-c", "echo 't8110: the server could not start: {port}' ; "
             "echo 't8110: second line' >&2 ; exit 1"]
    base = {"server_type": "jupyter", "port": port, "uid": 1000, "home": "/home/jovyan"}
    return [dict(base, name="jupyter", ref=IMAGE_REF, cmd=jupyter_cmd()),
            dict(base, name="broken", ref=BAD_IMAGE_REF, cmd=jupyter_cmd()),
            dict(base, name="crash", ref="registry.example/nbgate/crash:1", cmd=crash)]


class K8sEnv:
    """Double + kubelet + nbgate. Attributes: api, kubelet, gw, tokens, tmp."""

    def __init__(self, tap, name="k8s", users=("alice",), admin="admin", auth="token",
                 rbac=None, namespace_labels=None, kubelet=None, profiles=None, images=None,
                 k8s=None, config=None, spawn_timeout="40s"):
        self.tap = tap
        self.name = name
        self.users = list(users)
        self.admin = admin
        self.auth = auth
        self.tmp = tempfile.mkdtemp(prefix="nbgate-k8senv-")
        os.chmod(self.tmp, 0o711)
        self.port = T.free_port()
        self.api = ContractApiServer(namespaces=(NS,), namespace_labels=namespace_labels or {
            NS: {"pod-security.kubernetes.io/enforce": "restricted"}}, rbac=rbac)
        kl = {"gpus_free": 1, "node_labels": {"pool": "cpu", "nvidia.com/gpu.product": GPU_MODEL},
              "bad_images": {BAD_IMAGE_REF}}
        kl.update(kubelet or {})
        self.kubelet_kw = kl
        self.kubelet = None
        self.gw = None
        self.env = {}
        kcfg = {"namespace": NS, "images": images or default_images(self.port),
                "storage_class": "standard", "home_size": "1Gi", "gateway_id": "t81",
                "request_timeout": 10000}
        kcfg.update(k8s or {})
        self.cfg = {"spawner": "kubernetes",
                    "images": sorted({i["name"] for i in kcfg["images"]}),
                    "profiles": profiles if profiles is not None else default_profiles(),
                    "spawn_timeout": spawn_timeout, "kubernetes": kcfg}
        self.cfg.update(config or {})
        self.tokens = {}
        self.stopped = False

    # ---- lifecycle ----------------------------------------------------------
    def start(self):
        """Starts everything; returns self, or None after a failed assertion."""
        try:
            self.api.start()
            kw = dict(self.kubelet_kw)
            # pod IPs in a /24 of 127/8 of this run's own: two test files
            # running at once (prove -j, CI beside a developer) never share
            # an address:port
            kw.setdefault("ip_base", "127.%d.%d." % (random.randint(2, 254),
                                                    random.randint(1, 254)))
            self.kubelet = FakeKubelet(self.api, NS, root=os.path.join(self.tmp, "kubelet"),
                                       **kw)
            os.makedirs(self.kubelet.root, exist_ok=True)
            os.chmod(self.kubelet.root, 0o711)
            self.kubelet.start()
            self._credentials()
            ulist = [(u, T.DEFAULT_PASSWORD, False) for u in self.users]
            if self.admin:
                ulist.append((self.admin, T.DEFAULT_PASSWORD, True))
            self.gw = T.Gateway(self.tap, config=self.cfg, users=[], name=self.name)
            del self.gw.cfg["server_cmd"]
            with open(self.gw.config_path, "w") as f:
                json.dump(self.gw.cfg, f, indent=1)
            for u in ulist:
                self.gw.add_user(*u)
            self.gw.env.update(self.env)
            self.tokens = {u: self.gw.create_token(u) for u, _p, _a in ulist}
            self.gw.tokens = self.tokens
            self.gw.start()
        except Exception:
            import traceback
            self.tap.ok(False, "%s: setup (double, kubelet, nbgate)" % self.name,
                        traceback.format_exc() + "\n" + self.stderr_tail())
            return None
        self.tap.ok(True, "%s: double, kubelet and nbgate (spawner=kubernetes, %s) up"
                    % (self.name, self.auth))
        return self

    def _credentials(self):
        k = self.cfg["kubernetes"]
        if self.auth in ("token", "cert"):
            path = os.path.join(self.tmp, "kubeconfig")
            self.api.write_kubeconfig(path, NS, auth=self.auth)
            k["kubeconfig"] = path
        elif self.auth == "in-cluster":
            k.pop("kubeconfig", None)
            root = os.path.join(self.tmp, "incluster")
            self.env = dict(self.api.write_in_cluster(root, NS),
                            NBGATE_K8S_IN_CLUSTER_ROOT=root)
            self.in_cluster_root = root
        else:
            raise ValueError("auth: token, cert or in-cluster")

    def sa_token_path(self):
        return os.path.join(self.in_cluster_root, "var/run/secrets/kubernetes.io/serviceaccount/token")

    def restart_gateway(self, between=None):
        """Stops nbgate (SIGTERM, state kept), runs between() while it is
        down, starts it again on the same port and state. Returns True when
        it is ready again."""
        gw = self.gw
        if gw in T.Gateway.live:
            T.Gateway.live.remove(gw)
        rc = gw.proc.stop()
        err = gw.proc.stderr_text()
        self.tap.ok(not T.SANITIZER_RE.search(err) and not gw.proc.killed and
                    (rc is None or rc >= 0 or rc == -15),
                    "%s: nbgate stopped cleanly for the restart (rc=%s)" % (self.name, rc),
                    err[-3000:])
        if between:
            between()
        try:
            gw.start()
            return True
        except Exception as e:
            self.tap.diag("restart failed: %r\n%s" % (e, gw.proc.stderr_text()[-3000:]))
            return False

    def stop(self):
        if self.stopped:
            return
        self.stopped = True
        try:
            if self.gw is not None:
                self.gw.stop()
        finally:
            try:
                if self.kubelet is not None:
                    self.kubelet.stop()
                    self.tap.ok(not self.kubelet.errors, "%s: the fake kubelet saw no API "
                                "errors" % self.name, "\n".join(self.kubelet.errors[:10]))
            finally:
                self.api.stop()
                self.tap.ok(not self.api.errors, "%s: the double had no internal errors"
                            % self.name, "\n".join(self.api.errors[:5]))
                if os.environ.get("NBGATE_TEST_KEEP"):
                    self.tap.diag("kept %s" % self.tmp)
                else:
                    shutil.rmtree(self.tmp, ignore_errors=True)

    def stderr_tail(self, n=3000):
        if self.gw is None or self.gw.proc is None:
            return ""
        return "\n".join(ln for ln in self.gw.proc.stderr_text().splitlines()
                         if " lws" not in ln)[-n:]

    # ---- the hub's view ----------------------------------------------------------
    def api_call(self, method, path, user, body=None):
        return self.gw.api(method, path, token=self.tokens[user], json_body=body)

    def spawn(self, user, server="", options=None):
        path = "/users/%s/server" % user if not server else "/users/%s/servers/%s" % (
            user, T.quote_segment(server))
        return self.gw.api("POST", path, token=self.tokens[user], json_body=options or {})

    def stop_server(self, user, server=""):
        path = "/users/%s/server" % user if not server else "/users/%s/servers/%s" % (
            user, T.quote_segment(server))
        return self.gw.api("DELETE", path, token=self.tokens[user])

    def server_model(self, user, server=""):
        r = self.gw.api("GET", "/users/%s" % user, token=self.tokens[user])
        if r.status_code != 200:
            return {}
        return (r.json().get("servers") or {}).get(server) or {}

    def state(self, user, server=""):
        return self.server_model(user, server).get("state")

    def wait_state(self, user, want, server="", timeout=45.0):
        """Polls the server model until its state is in want. Returns the
        last model (check ["state"])."""
        got = [{}]

        def pred():
            got[0] = self.server_model(user, server)
            return got[0].get("state") in want
        T.wait_until(pred, timeout=timeout, interval=0.2)
        return got[0]

    def outcome(self, user, server="", timeout=45.0):
        """Follows the hub's progress stream (it replays the last event of a
        finished spawn) until ready or failed. Returns (result, message,
        events): result "running", "failed" or None (no end within timeout)."""
        import jupyter as J
        deadline = time.monotonic() + timeout
        events = []
        while time.monotonic() < deadline:
            try:
                ready, events = J.progress_ready(self.gw, self.tokens[user], user=user,
                                                 server=server,
                                                 timeout=max(1.0, deadline - time.monotonic()))
            except OSError:
                ready, events = False, []
            last = events[-1] if events and isinstance(events[-1], dict) else {}
            if ready or last.get("failed"):
                return ("running" if ready else "failed"), str(last.get("message", "")), events
            time.sleep(0.2)
        last = events[-1] if events and isinstance(events[-1], dict) else {}
        return None, str(last.get("message", "")), events

    def prefix(self, user, server=""):
        return "/user/%s/%s" % (user, server + "/" if server else "")

    def proxied(self, user, path, server="", method="GET", body=None, headers=None):
        h = {"Authorization": "token " + self.tokens[user]}
        h.update(headers or {})
        return self.gw.request(method, self.prefix(user, server) + path, headers=h, body=body)

    def wait_proxied(self, user, server="", timeout=45.0):
        return T.wait_until(lambda: self.proxied(user, "api/status", server).status == 200,
                            timeout, 0.2)

    # ---- the cluster's view -----------------------------------------------------
    def _by_ann(self, kind, user, server):
        out = []
        for o in self.api.list(kind, NS):
            ann = o["metadata"].get("annotations") or {}
            if ann.get("nbgate.io/user") == user and ann.get("nbgate.io/server-name", "") == server:
                out.append(o)
        return out

    def pod(self, user, server=""):
        """The server's pod (by its annotations), or None."""
        p = self._by_ann("Pod", user, server)
        return p[0] if p else None

    def secret(self, user, server=""):
        s = self._by_ann("Secret", user, server)
        return s[0] if s else None

    def pods(self):
        return self.api.list("Pod", NS)

    def pvc(self, user):
        for o in self.api.list("PersistentVolumeClaim", NS):
            ann = o["metadata"].get("annotations") or {}
            if ann.get("nbgate.io/user") == user:
                return o
        return None

    def requests(self, method=None, pattern=None):
        """The double's request log, filtered: [(method, path, status, body)]."""
        import re
        rx = re.compile(pattern) if pattern else None
        return [r for r in list(self.api.requests)
                if (method is None or r[0] == method) and (rx is None or rx.search(r[1]))]

    def rejections(self, code=None):
        return [r for r in list(self.api.rejections) if code is None or r.get("code") == code]

    def invalid_bodies(self):
        """422/400/415 answers: bodies the double refused (must stay empty)."""
        return [r for r in list(self.api.rejections) if r.get("code") in (400, 413, 415, 422)]

    def wait_pod(self, user, server="", pred=None, timeout=30.0):
        """Waits until the user's pod exists and pred(pod) is true; the pod or None."""
        return T.wait_until(lambda: (lambda p: p if p is not None and (pred is None or pred(p))
                                     else None)(self.pod(user, server)), timeout, 0.1)

    def wait_no_pod(self, user, server="", timeout=30.0):
        return T.wait_until(lambda: self.pod(user, server) is None, timeout, 0.1)

    def kube(self, method, path, body=None, timeout=10):
        """One request to the double as a cluster admin would make it
        (kubectl-like, the double's own token). Returns (status, body)."""
        import ssl
        import urllib.error
        import urllib.request
        ctx = ssl.create_default_context(cafile=self.api.ca_file)
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.api.url + path, method=method, data=data, headers={
            "Authorization": "Bearer " + self.api.token, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=timeout) as r:
                d = r.read()
                st = r.status
        except urllib.error.HTTPError as e:
            d, st = e.read(), e.code
        try:
            return st, json.loads(d)
        except ValueError:
            return st, d

    def events_of(self, pod_name):
        return [e for e in self.api.list("Event", NS)
                if e.get("involvedObject", {}).get("name") == pod_name]


def restricted_pod(name, node=None, labels=None, image="registry.example/someone/else:1"):
    """A minimal Pod that passes PSA restricted (for objects made "by hand")."""
    spec = {"containers": [{"name": "main", "image": image, "command": ["/bin/sleep", "3600"],
                            "securityContext": {
                                "allowPrivilegeEscalation": False, "runAsNonRoot": True,
                                "capabilities": {"drop": ["ALL"]},
                                "seccompProfile": {"type": "RuntimeDefault"}}}],
            "securityContext": {"runAsNonRoot": True, "runAsUser": 4242,
                                "seccompProfile": {"type": "RuntimeDefault"}}}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NS, "labels": labels or {"app": "foreign"}},
            "spec": spec}


def pod_ready(p):
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (p.get("status") or {}).get("conditions", []))


def run_env(tap, fn, **kw):
    """Starts a K8sEnv, runs fn(tap, env), always stops it."""
    env = K8sEnv(tap, **kw)
    try:
        if env.start() is None:
            return None
        return fn(tap, env)
    finally:
        env.stop()


def wait_for(pred, timeout, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    return None
