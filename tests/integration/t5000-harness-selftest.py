#!/usr/bin/python3
"""Self-test of the integration harness without nbgate: the recording fake
backend (unix socket), its misbehaviour knobs, its WebSocket echo, the
canary, and the raw-socket client. If this fails, the catalogue tests'
verdicts cannot be trusted."""
import os
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import nbgate_test as T  # noqa: E402


class UnixRaw(T.RawConn):
    def __init__(self, path, timeout=5.0):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(path)
        self.sock, self.timeout, self.buf, self.eof = s, timeout, b"", False


def run(tap):
    tmp = tempfile.mkdtemp(prefix="nbgate-selftest-")
    sock = os.path.join(tmp, "alice.sock")
    fb, _ = T.start_fake_backend(tmp, user="alice", sock=sock)
    rec = os.path.join(tmp, "records", "alice", "default.jsonl")

    # keep-alive: two requests on one connection
    with UnixRaw(sock) as c:
        c.send("GET /user/alice/api/status HTTP/1.1\r\nHost: x\r\n\r\n"
               "POST /user/alice/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        r1 = c.read_response()
        r2 = c.read_response()
    tap.is_(r1 and r1.status, 200, "fake: GET api/status -> 200")
    tap.ok(r1 and b'"kernels"' in r1.body, "fake: status body is JSON with kernels")
    tap.is_(r2 and r2.status, 200, "fake: second request on the same connection (keep-alive)")
    recs = T.read_jsonl(rec)
    tap.is_(len(recs), 2, "fake: two requests recorded")
    tap.ok(len(recs) == 2 and recs[0]["conn"] == recs[1]["conn"], "fake: same connection id")
    tap.ok(len(recs) == 2 and recs[1]["body_len"] == 5, "fake: body length recorded")
    tap.ok(len(recs) == 2 and "Host: x" in recs[0]["raw_head"], "fake: raw head recorded")

    # smuggled bytes are recorded
    with UnixRaw(sock) as c:
        c.send("POST /user/alice/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               "0\r\n\r\nGET /__smuggled HTTP/1.1\r\nHost: x\r\n\r\n")
        c.read_response()
        c.read_response()
    tap.ok(any("__smuggled" in r.get("target", "") for r in T.read_jsonl(rec)),
           "fake: a smuggled request is visible in the record")

    # contents store
    with UnixRaw(sock) as c:
        c.send("PUT /user/alice/api/contents/x HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
               "GET /user/alice/api/contents/x HTTP/1.1\r\nHost: x\r\n\r\n")
        c.read_response()
        r = c.read_response()
    tap.ok(r and r.body == b"abc", "fake: contents PUT then GET round-trips")

    # knobs
    for knob, needle in (("cl_te", "Response splitting"), ("cl_invalid", "5abc"),
                         ("bare_lf", "Injected"), ("setcookie_domain", "Domain=")):
        with UnixRaw(sock) as c:
            c.send("GET /user/alice/__bad/%s HTTP/1.1\r\nHost: x\r\n\r\n" % knob)
            c.read_response(timeout=2)
            c.closed_by_peer(0.3)
            raw = c.buf
        # read_response consumed the head; check what arrived overall
        with UnixRaw(sock) as c:
            c.send("GET /user/alice/__bad/%s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                   % knob)
            c.closed_by_peer(2)
            raw = c.buf
        tap.ok(needle.encode() in raw, "fake knob %s sends %r" % (knob, needle), raw[:300])

    # WebSocket echo through websocket-client on a unix socket
    import websocket
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock)
    ws = websocket.create_connection("ws://x/user/alice/api/kernels/k/channels", socket=s,
                                     timeout=5)
    ws.send("hello")
    tap.is_(ws.recv(), "hello", "fake: WebSocket echo (text)")
    ws.send_binary(b"\x00\x01")
    tap.is_(ws.recv(), b"\x00\x01", "fake: WebSocket echo (binary)")
    ws.ping(b"p")
    ws.close()

    # WebSocket bad answers
    for knob, want in (("__ws_bad_accept", 101), ("__ws_426", 426), ("__ws_200", 200)):
        with UnixRaw(sock) as c:
            c.send("GET /user/alice/%s/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13"
                   "\r\n\r\n" % (knob, T.ws_key()))
            r = c.read_response(head_only=True)
            c.send("GET /__smuggled HTTP/1.1\r\nHost: x\r\n\r\n")
        tap.is_(r and r.status, want, "fake: %s answers %d" % (knob, want))
    ok = T.wait_until(lambda: sum(1 for r in T.read_jsonl(rec)
                                  if "__smuggled" in r.get("junk", "")) >= 3, 3)
    tap.ok(ok, "fake: bytes after a refused upgrade are recorded as junk")

    # env + pid files
    env_path = os.path.join(tmp, "records", "alice", "default.env.json")
    tap.ok(os.path.exists(env_path), "fake: env file written")

    # canary
    can = T.Canary(tmp)
    tap.is_(can.count(), 0, "canary: starts at 0")
    try:
        socket.create_connection((can.host, can.port), timeout=2).close()
    except OSError as e:
        tap.diag("canary connect failed: %s" % e)
    tap.ok(T.wait_until(lambda: can.count() == 1, 3), "canary: counts a connection")
    can.stop()

    # TAP helpers: quoting like encodeURIComponent
    tap.is_(T.quote_segment("a+b c%/?#ü"), "a%2Bb%20c%25%2F%3F%23%C3%BC",
            "quote_segment == encodeURIComponent")
    fb.stop()
    import shutil
    shutil.rmtree(tmp, ignore_errors=True)
    t0 = time.monotonic()
    tap.ok(T.wait_until(lambda: True, 1) and time.monotonic() - t0 < 1, "wait_until returns")


T.main(run)
