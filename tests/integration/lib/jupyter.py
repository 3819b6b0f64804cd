"""Jupyter client helpers shared by the end-to-end tests: HTTP and
WebSocket to /user/<name>/ through the gateway (TCP) or straight to a
server's unix socket, running code in a kernel over its channels
WebSocket, and following the hub's progress stream.

Uses python3-websocket (Debian). Every wait is bounded."""
import http.client
import json
import socket
import time
import uuid

import nbgate_test as T


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=10):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


class Client:
    """HTTP + WebSocket to a server prefix (e.g. /user/alice/) either
    through the gateway (tcp=(host, port)) or to a unix socket."""

    def __init__(self, prefix, headers, tcp=None, unix=None, host_header=None, origin=None):
        self.prefix = prefix
        self.headers = headers
        self.tcp = tcp
        self.unix = unix
        self.host_header = host_header
        self.origin = origin

    def conn(self, timeout=20):
        if self.unix:
            return UnixHTTPConnection(self.unix, timeout=timeout)
        return http.client.HTTPConnection(self.tcp[0], self.tcp[1], timeout=timeout)

    def req(self, method, path, body=None, headers=None):
        c = self.conn()
        try:
            h = dict(self.headers)
            h.update(headers or {})
            if body is not None and not isinstance(body, (bytes, str)):
                body = json.dumps(body)
                h.setdefault("Content-Type", "application/json")
            c.request(method, self.prefix + path, body=body, headers=h)
            r = c.getresponse()
            return T.Resp(r.status, r.getheaders(), r.read())
        finally:
            c.close()

    def ws(self, path):
        import websocket
        hdr = ["%s: %s" % kv for kv in self.headers.items()]
        if self.unix:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(self.unix)
            return websocket.create_connection("ws://localhost" + self.prefix + path, socket=s, header=hdr,
                                               timeout=20, suppress_origin=self.origin is None)
        return websocket.create_connection("ws://%s%s%s" % (self.host_header, self.prefix, path), header=hdr,
                                           timeout=20, origin=self.origin, suppress_origin=self.origin is None)


def execute(cl, kernel_id, code, user="alice", timeout=60):
    """Runs code in the kernel over its channels WebSocket. Returns the
    text it produced (execute_result text/plain, else stream output), or
    raises on timeout or a kernel error."""
    ws = cl.ws("api/kernels/%s/channels" % kernel_id)
    try:
        msg_id = uuid.uuid4().hex
        msg = {"header": {"msg_id": msg_id, "username": user, "session": uuid.uuid4().hex,
                          "msg_type": "execute_request", "version": "5.3",
                          "date": time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())},
               "parent_header": {}, "metadata": {}, "channel": "shell",
               "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                           "allow_stdin": False, "stop_on_error": True}, "buffers": []}
        ws.send(json.dumps(msg))
        deadline = time.monotonic() + timeout
        out = []
        while time.monotonic() < deadline:
            ws.settimeout(max(0.5, deadline - time.monotonic()))
            m = ws.recv()
            if isinstance(m, bytes):
                continue
            m = json.loads(m)
            if m.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            t = m.get("msg_type")
            if t == "execute_result":
                return m["content"]["data"].get("text/plain")
            if t == "stream":
                out.append(m["content"].get("text", ""))
            if t == "error":
                raise RuntimeError("kernel error: %s: %s" % (m["content"].get("ename"), m["content"].get("evalue")))
            if t == "status" and m["content"].get("execution_state") == "idle":
                return "".join(out)
        raise TimeoutError("no result within %ss" % timeout)
    finally:
        ws.close()


def progress_ready(gw, tok, user="alice", server="", timeout=30):
    """Reads the hub's progress event stream until ready or failed.
    Returns (ready: bool, events: list)."""
    path = "/hub/api/users/%s/server/progress" % user if not server else \
        "/hub/api/users/%s/servers/%s/progress" % (user, server)
    c = http.client.HTTPConnection(gw.host, gw.port, timeout=timeout)
    try:
        c.request("GET", path, headers={"Authorization": "token " + tok, "Accept": "text/event-stream"})
        r = c.getresponse()
        if r.status != 200:
            return False, ["status %s %r" % (r.status, r.read()[:300])]
        deadline = time.monotonic() + timeout
        events = []
        while time.monotonic() < deadline:
            line = r.fp.readline()
            if not line:
                break
            line = line.decode("utf-8", "replace").strip()
            if line.startswith("data:"):
                ev = json.loads(line[5:].strip())
                events.append(ev)
                if ev.get("ready") or ev.get("failed"):
                    return bool(ev.get("ready")), events
        return False, events
    finally:
        c.close()
