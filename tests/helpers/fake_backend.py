#!/usr/bin/python3
"""Recording fake user server for nbgate's integration tests.

Started by the gateway's `process` spawner as server_cmd (or directly by a
test). It listens on a unix socket (--sock) or 127.0.0.1:--port, speaks
HTTP/1.1 with keep-alive, and appends every request it receives as one JSON
line to <record-dir>/<user>/{default|server-<name>}.jsonl:

  {"t": time, "conn": id, "seq": n, "raw_head": "<head as latin-1>",
   "method": ..., "target": ..., "version": ..., "headers": [[name, value]...],
   "body_len": n, "upgrade": bool, "note": ...}

Bytes that are not a parsable request are recorded as {"junk": "..."} and
the connection is closed, so a test can see smuggled bytes too. A request
whose target contains "__smuggled" is recorded like any other (tests look
for it).

Default answers (paths are relative to --base-url; the prefix is not
required so the fake also works when the gateway strips it):
  GET  .../api/status        200 {"started":..., "last_activity":..., "connections":0, "kernels":0}
  GET  .../api                200 {"version": "fake"}
  PUT  .../api/contents/<p>   stores the body in memory, 200 {"name","path","size"}
  GET  .../api/contents/<p>   200 with the stored body, 404 when absent
  any  other                  200 JSON echo {"method","target","headers","body_len","user"}
  any path ending in /ws or /channels with Upgrade: websocket -> RFC 6455
                              handshake, then an echo of every data frame,
                              pong for ping, close echoed.
Misbehaviour knobs (PRX-20/21/24), matched anywhere in the target:
  /__bad/cl_te            TE chunked + CL 30 + "0\\r\\n\\r\\nResponse splitting attach"
  /__bad/cl_invalid       Content-Length: 5abc
  /__bad/cl_double        two different Content-Length lines
  /__bad/bare_lf          a bare LF inside a header value ("X-A: a\\nInjected: yes")
  /__bad/bare_cr          a bare CR inside a header value
  /__bad/setcookie_domain Set-Cookie with Domain=<parent>, one for Path=/hub/, one good one
  /__bad/csp              an HTML page without CSP (JH-14)
  /__ws_bad_accept        101 with a wrong Sec-WebSocket-Accept, then records raw bytes
  /__ws_426               426 to an upgrade, connection kept reading
  /__ws_200               200 to an upgrade, connection kept reading
  /__slow_body            answers after reading the whole body (normal), see body_len

At start the fake writes <record-dir>/<user>/<name>.env.json with the
JUPYTERHUB_*/NBGATE_* variables it got (TOK-7), and <name>.pid.

--canary HOST:PORT --count-file F: instead of all of the above, accept TCP
connections on HOST:PORT, count them into F (must stay 0 in the tests).
"""

import argparse
import base64
import hashlib
import json
import os
import signal
import socket
import socketserver
import sys
import threading
import time

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_HEAD = 256 * 1024

_lock = threading.Lock()
_conn_ids = iter(range(1, 1 << 30))
_files = {}


class State:
    record_path = None
    base_url = "/"
    user = ""
    server = ""
    started = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())


def record(obj):
    obj["t"] = time.time()
    line = json.dumps(obj) + "\n"
    with _lock:
        with open(State.record_path, "a", encoding="utf-8") as f:
            f.write(line)


def now_iso():
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())


class Conn:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.eof = False

    def fill(self, timeout=60.0):
        self.sock.settimeout(timeout)
        try:
            d = self.sock.recv(65536)
        except (socket.timeout, OSError):
            self.eof = True
            return False
        if not d:
            self.eof = True
            return False
        self.buf += d
        return True

    def read_exact(self, n):
        while len(self.buf) < n:
            if not self.fill():
                return None
        d, self.buf = self.buf[:n], self.buf[n:]
        return d

    def send(self, data):
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False


def parse_head(head):
    text = head.decode("latin-1")
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        raise ValueError("bad request line")
    method, target, version = parts
    headers = []
    for ln in lines[1:]:
        if not ln:
            continue
        if ":" not in ln or ln[0] in " \t":
            raise ValueError("bad header line %r" % ln)
        n, v = ln.split(":", 1)
        headers.append([n, v.strip(" \t")])
    return method, target, version, headers


def hget(headers, name):
    name = name.lower()
    vals = [v for n, v in headers if n.lower() == name]
    return vals


def read_body(conn, headers):
    """Reads the body per CL or chunked; returns (bytes, error-or-None)."""
    te = hget(headers, "transfer-encoding")
    cl = hget(headers, "content-length")
    if te:
        body = b""
        while True:
            while b"\r\n" not in conn.buf:
                if not conn.fill():
                    return body, "eof in chunk size"
            line, _, conn.buf = conn.buf.partition(b"\r\n")
            try:
                size = int(line.split(b";")[0], 16)
            except ValueError:
                return body, "bad chunk size %r" % line[:40]
            if size == 0:
                while True:
                    while b"\r\n" not in conn.buf:
                        if not conn.fill():
                            return body, "eof in trailers"
                    tl, _, conn.buf = conn.buf.partition(b"\r\n")
                    if not tl:
                        return body, None
            d = conn.read_exact(size + 2)
            if d is None:
                return body, "eof in chunk"
            body += d[:-2]
    if cl:
        if len(cl) > 1 or not cl[0].isdigit():
            return b"", "bad content-length %r" % cl
        n = int(cl[0])
        while len(conn.buf) < n:
            if not conn.fill():
                got, conn.buf = conn.buf, b""
                return got, "eof in body after %d of %d" % (len(got), n)
        got, conn.buf = conn.buf[:n], conn.buf[n:]
        return got, None
    return b"", None


_store = {}


def strip_base(target):
    path = target.split("?", 1)[0]
    b = State.base_url.rstrip("/")
    if b and path.startswith(b + "/"):
        return path[len(b):]
    return path


def respond(conn, status, body=b"", ctype="application/json", extra=None, keep=True):
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    elif isinstance(body, str):
        body = body.encode()
    reason = {200: "OK", 201: "Created", 404: "Not Found", 400: "Bad Request"}.get(status, "X")
    h = "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n" % (status, reason, ctype,
                                                                        len(body))
    for k, v in extra or []:
        h += "%s: %s\r\n" % (k, v)
    if not keep:
        h += "Connection: close\r\n"
    conn.send(h.encode("latin-1") + b"\r\n" + body)


def bad_response(conn, kind):
    """Answers with a malformed response; returns True to keep reading raw."""
    if kind == "cl_te":
        conn.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 30\r\n\r\n"
                  b"0\r\n\r\nResponse splitting attach")
    elif kind == "cl_invalid":
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 5abc\r\n\r\nhelloResponse splitting attach")
    elif kind == "cl_double":
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 30\r\n\r\n"
                  b"helloResponse splitting attach")
    elif kind == "bare_lf":
        conn.send(b"HTTP/1.1 200 OK\r\nX-A: a\nInjected: yes\r\nContent-Length: 2\r\n\r\nok")
    elif kind == "bare_cr":
        conn.send(b"HTTP/1.1 200 OK\r\nX-A: a\rInjected: yes\r\nContent-Length: 2\r\n\r\nok")
    elif kind == "setcookie_domain":
        u = State.user
        respond(conn, 200, {"ok": True}, extra=[
            ("Set-Cookie", "jupyterhub-session-id=x; Domain=127.0.0.1; Path=/"),
            ("Set-Cookie", "nbgate-session=forged; Domain=nbgate.test; Path=/"),
            ("Set-Cookie", "y=1; Path=/hub/"),
            ("Set-Cookie", "good=1; Path=/user/%s/" % u)])
        return True
    elif kind == "csp":
        respond(conn, 200, "<html><body>user content</body></html>", ctype="text/html")
        return True
    else:
        respond(conn, 404, {"message": "unknown knob"})
        return True
    return False


def ws_accept(key):
    return base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()


def ws_read_frame(conn):
    h = conn.read_exact(2)
    if h is None:
        return None
    fin = h[0] & 0x80
    op = h[0] & 0x0F
    masked = h[1] & 0x80
    n = h[1] & 0x7F
    if n == 126:
        d = conn.read_exact(2)
        if d is None:
            return None
        n = int.from_bytes(d, "big")
    elif n == 127:
        d = conn.read_exact(8)
        if d is None:
            return None
        n = int.from_bytes(d, "big")
    mask = conn.read_exact(4) if masked else b""
    if masked and mask is None:
        return None
    payload = conn.read_exact(n) if n else b""
    if payload is None:
        return None
    if masked:
        payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
    return fin, op, bool(masked), payload


def ws_frame(op, payload, fin=True):
    b0 = (0x80 if fin else 0) | op
    n = len(payload)
    if n < 126:
        h = bytes([b0, n])
    elif n < 65536:
        h = bytes([b0, 126]) + n.to_bytes(2, "big")
    else:
        h = bytes([b0, 127]) + n.to_bytes(8, "big")
    return h + payload


def ws_echo(conn, cid):
    frames = 0
    while True:
        f = ws_read_frame(conn)
        if f is None:
            break
        fin, op, masked, payload = f
        frames += 1
        if not masked:
            record({"conn": cid, "ws_event": "unmasked frame from proxy", "op": op})
        if op == 0x8:
            conn.send(ws_frame(0x8, payload[:2]))
            break
        if op == 0x9:
            conn.send(ws_frame(0xA, payload))
            continue
        if op == 0xA:
            continue
        conn.send(ws_frame(op, payload, fin))
    record({"conn": cid, "ws_event": "closed", "frames": frames})


def record_raw_rest(conn, cid, why):
    """After a refused upgrade: record any raw bytes the proxy still sends."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not conn.eof:
        if conn.buf:
            record({"conn": cid, "junk": conn.buf.decode("latin-1")[:4096], "after": why})
            conn.buf = b""
        conn.fill(timeout=max(0.1, deadline - time.monotonic()))
    if conn.buf:
        record({"conn": cid, "junk": conn.buf.decode("latin-1")[:4096], "after": why})


def handle_ws(conn, cid, target, headers):
    key = (hget(headers, "sec-websocket-key") or [""])[0]
    if "__ws_bad_accept" in target:
        conn.send(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n"
                   % ws_accept("x" + key)).encode())
        record_raw_rest(conn, cid, "bad accept")
        return False
    if "__ws_426" in target:
        conn.send(b"HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\n"
                  b"Content-Length: 0\r\n\r\n")
        record_raw_rest(conn, cid, "426")
        return False
    if "__ws_200" in target:
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        record_raw_rest(conn, cid, "200")
        return False
    if not key:
        respond(conn, 400, {"message": "no key"}, keep=False)
        return False
    conn.send(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n" % ws_accept(key)).encode())
    ws_echo(conn, cid)
    return False


def handle_request(conn, cid, seq):
    """Reads and answers one request. Returns False to close."""
    while True:
        i = conn.buf.find(b"\r\n\r\n")
        if i >= 0:
            break
        if len(conn.buf) > MAX_HEAD:
            record({"conn": cid, "junk": conn.buf[:4096].decode("latin-1"), "note": "head too big"})
            return False
        if not conn.fill():
            if conn.buf:
                record({"conn": cid, "junk": conn.buf[:4096].decode("latin-1"),
                        "note": "eof before end of head"})
            return False
    head, conn.buf = conn.buf[:i], conn.buf[i + 4:]
    try:
        method, target, version, headers = parse_head(head)
    except ValueError as e:
        record({"conn": cid, "junk": head[:4096].decode("latin-1"), "note": str(e)})
        respond(conn, 400, {"message": str(e)}, keep=False)
        return False
    upgrade = any("websocket" in v.lower() for v in hget(headers, "upgrade"))
    rec = {"conn": cid, "seq": seq, "raw_head": head.decode("latin-1"), "method": method,
           "target": target, "version": version, "headers": headers, "upgrade": upgrade}
    if upgrade:
        record(dict(rec, body_len=0))
        return handle_ws(conn, cid, target, headers)
    body, err = read_body(conn, headers)
    rec["body_len"] = len(body)
    if err:
        rec["note"] = err
    record(rec)
    if err:
        return False
    keep = not any("close" in v.lower() for v in hget(headers, "connection"))
    if version == "HTTP/1.0":
        keep = False
    if "/__bad/" in target:
        kind = target.split("/__bad/", 1)[1].split("?")[0].split("/")[0]
        return bad_response(conn, kind) and keep
    path = strip_base(target)
    if path.rstrip("/").endswith("/api/status") and method == "GET":
        respond(conn, 200, {"started": State.started, "last_activity": now_iso(),
                            "connections": 0, "kernels": 0}, keep=keep)
    elif path.rstrip("/") == "/api" and method == "GET":
        respond(conn, 200, {"version": "fake"}, keep=keep)
    elif "/api/contents/" in path and method in ("PUT", "GET", "DELETE"):
        key = path.split("/api/contents/", 1)[1]
        if method == "PUT":
            _store[key] = body
            respond(conn, 200, {"name": key.rsplit("/", 1)[-1], "path": key, "size": len(body)},
                    keep=keep)
        elif method == "DELETE":
            existed = _store.pop(key, None) is not None
            respond(conn, 204 if existed else 404, b"", keep=keep)
        elif key in _store:
            respond(conn, 200, _store[key], ctype="application/octet-stream", keep=keep)
        else:
            respond(conn, 404, {"message": "no such file"}, keep=keep)
    else:
        respond(conn, 200, {"method": method, "target": target, "headers": headers,
                            "body_len": len(body), "user": State.user}, keep=keep)
    return keep


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        with _lock:
            cid = next(_conn_ids)
        conn = Conn(self.request)
        seq = 0
        try:
            while True:
                seq += 1
                if not handle_request(conn, cid, seq):
                    break
                if not conn.buf and conn.eof:
                    break
        except Exception as e:  # record, never crash the server
            record({"conn": cid, "note": "handler exception %r" % e})
        finally:
            try:
                self.request.close()
            except OSError:
                pass


class TCPServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024


class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    request_queue_size = 1024


class CanaryHandler(socketserver.BaseRequestHandler):
    count_file = None
    n = 0

    def handle(self):
        with _lock:
            CanaryHandler.n += 1
            with open(self.count_file + ".tmp", "w") as f:
                f.write(str(CanaryHandler.n))
            os.replace(self.count_file + ".tmp", self.count_file)
        self.request.close()


def run_canary(spec, count_file):
    host, port = spec.rsplit(":", 1)
    CanaryHandler.count_file = count_file
    srv = TCPServer((host, int(port)), CanaryHandler)
    with open(count_file, "w") as f:
        f.write("0")
    srv.serve_forever()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sock")
    ap.add_argument("--port", type=int)
    ap.add_argument("--base-url", default="/")
    ap.add_argument("--user", default="")
    ap.add_argument("--server", default="")
    ap.add_argument("--record-dir")
    ap.add_argument("--record")
    ap.add_argument("--canary")
    ap.add_argument("--count-file")
    a, _unknown = ap.parse_known_args()
    signal.signal(signal.SIGTERM, lambda *x: os._exit(0))
    if a.canary:
        run_canary(a.canary, a.count_file)
        return
    State.base_url = a.base_url if a.base_url.startswith("/") else "/" + a.base_url
    State.user = a.user
    State.server = a.server
    # <record-dir>/<user>/<server or "default">.*: injective for any
    # user/server pair (JH-6 creates "user-hyphen" and "user" + "hyphen")
    name = ("server-" + a.server) if a.server else "default"
    rec_dir = os.path.join(a.record_dir or os.environ.get("FAKE_BACKEND_RECORD_DIR") or ".",
                           a.user or "_nouser")
    os.makedirs(rec_dir, exist_ok=True)
    State.record_path = a.record or os.path.join(rec_dir, name + ".jsonl")
    env = {k: v for k, v in os.environ.items()
           if k.startswith(("JUPYTERHUB_", "NBGATE_", "JPY_"))}
    env["argv"] = sys.argv
    with open(os.path.join(rec_dir, name + ".env.json"), "w") as f:
        json.dump(env, f)
    with open(os.path.join(rec_dir, name + ".pid"), "w") as f:
        f.write(str(os.getpid()))
    if a.sock:
        try:
            os.unlink(a.sock)
        except FileNotFoundError:
            pass
        srv = UnixServer(a.sock, Handler)
    elif a.port:
        srv = TCPServer(("127.0.0.1", a.port), Handler)
    else:
        sys.exit("fake_backend: need --sock or --port")
    srv.serve_forever()


if __name__ == "__main__":
    main()
