#!/usr/bin/python3
"""SECURITY.md section 3.4: PRX-16/17/18 (bounded variants: 50 slowloris
connections against header_timeout 2s, slow body against
body_idle_timeout 2s, max_conns_per_ip 20) and the WebSocket rows
PRX-22..25."""
import os
import select
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import nbgate_test as T  # noqa: E402

CHANNELS = "/user/alice/api/kernels/k1/channels"


def upgrades(gw, user="alice"):
    return sum(1 for r in gw.requests_seen(user) if r.get("upgrade"))


def prx16(tap, gw):
    conns = []
    for i in range(50):
        try:
            s = socket.create_connection((gw.host, gw.port), timeout=2,
                                         source_address=("127.0.0.%d" % (10 + i), 0))
            s.setblocking(False)
            conns.append([s, 0, None])  # sock, bytes sent, closed_at
        except OSError as e:
            tap.diag("PRX-16 connect %d: %r" % (i, e))
    line = ("GET /user/alice/api/status HTTP/1.1\r\nHost: %s\r\nX-Slow: " % gw.public_host).encode()
    t0 = time.monotonic()
    login_times = []
    statuses = []
    while time.monotonic() - t0 < 8 and any(c[2] is None for c in conns):
        for c in conns:
            if c[2] is None:
                try:
                    c[0].send(line[c[1]:c[1] + 1] if c[1] < len(line) else b"a")
                    c[1] += 1
                except OSError:
                    c[2] = time.monotonic() - t0
        if len(login_times) < 3 and time.monotonic() - t0 > 0.5 * (len(login_times) + 1):
            t1 = time.monotonic()
            r, cookie = gw.form_login("alice")
            r2 = gw.request("GET", "/user/alice/api/status", headers={"Cookie": cookie})
            login_times.append(time.monotonic() - t1)
            statuses.append((r.status, r2.status))
        rl = [c[0] for c in conns if c[2] is None]
        ready, _, _ = select.select(rl, [], [], 1.0)
        for s in ready:
            c = next(x for x in conns if x[0] is s)
            try:
                d = s.recv(4096)
            except OSError:
                d = b""
            # an answer (408) or EOF: the gateway ended this connection
            c[2] = time.monotonic() - t0
            if d and not d.startswith(b"HTTP/1.1 408"):
                tap.diag("PRX-16 unexpected answer: %r" % d[:80])
    for c in conns:
        c[0].close()
    closed = [c[2] for c in conns if c[2] is not None]
    tap.is_(len(closed), len(conns), "PRX-16 all %d slowloris connections closed by the header deadline"
            % len(conns))
    tap.ok(closed and max(closed) < 2.0 + 2.5, "PRX-16 closed within header_timeout 2 s + slack (max %.2f s)"
           % (max(closed) if closed else -1))
    tap.ok(closed and min(closed) > 1.5, "PRX-16 not closed before the deadline (min %.2f s)"
           % (min(closed) if closed else -1))
    tap.ok(login_times and all(t < 1.0 for t in login_times) and all(s[1] == 200 for s in statuses),
           "PRX-16 login + GET /user/alice/api/status during the attack < 1 s each",
           "times %r statuses %r" % (login_times, statuses))


def prx17(tap, gw):
    tok = gw.tokens["alice"]
    gw.request("PUT", "/user/alice/api/contents/slow", headers={"Authorization": "token " + tok},
               body=b"original")
    t0 = time.monotonic()
    with T.RawConn(gw.host, gw.port, timeout=12) as c:
        c.send("PUT /user/alice/api/contents/slow HTTP/1.1\r\nHost: %s\r\nAuthorization: token %s\r\n"
               "Content-Length: 1000000\r\n\r\n" % (gw.public_host, tok))
        closed_at = None
        while time.monotonic() - t0 < 12:
            if not c.send(b"x"):
                closed_at = time.monotonic() - t0
                break
            if c.closed_by_peer(3.0):
                closed_at = time.monotonic() - t0
                break
    tap.ok(closed_at is not None and closed_at < 8, "PRX-17 slow body (1 byte / 3 s) closed by "
           "body_idle_timeout 2 s (after %s s)" % (None if closed_at is None else round(closed_at, 2)))
    r = gw.request("GET", "/user/alice/api/contents/slow", headers={"Authorization": "token " + tok})
    tap.ok(r.status == 200 and r.body == b"original", "PRX-17 file unchanged (aborted upload not applied)",
           repr(r))


def prx18(tap, gw):
    import websocket
    src = "127.0.0.5"
    tok = gw.tokens["alice"]
    ws = None
    try:
        s = socket.create_connection((gw.host, gw.port), timeout=5, source_address=(src, 0))
        ws = websocket.create_connection("ws://%s%s" % (gw.public_host, CHANNELS), socket=s,
                                         header=["Authorization: token " + tok], timeout=5)
    except Exception as e:
        tap.ok(False, "PRX-18 WebSocket from %s opens" % src, repr(e))
        return
    extra = []
    for i in range(19):
        extra.append(socket.create_connection((gw.host, gw.port), timeout=5, source_address=(src, 0)))
    t0 = time.monotonic()
    with T.RawConn(gw.host, gw.port, timeout=2, source=src) as c:
        c.send("GET /hub/health HTTP/1.1\r\nHost: %s\r\n\r\n" % gw.public_host)
        r = c.read_response(timeout=2)
        closed = c.eof or c.closed_by_peer(0.5)
    dt = time.monotonic() - t0
    tap.ok((r is not None and r.status in (429, 503)) or (r is None and closed),
           "PRX-18 connection %d from one IP -> 429/503 at once (%.2f s)" % (21, dt), repr(r))
    tap.ok(dt < 1.0, "PRX-18 refused without waiting")
    r = gw.request("GET", "/hub/health", source="127.0.0.6")
    tap.is_(r.status, 200, "PRX-18 another IP is still served")
    try:
        ws.send("still here")
        tap.is_(ws.recv(), "still here", "PRX-18 existing WebSocket keeps working")
    except Exception as e:
        tap.ok(False, "PRX-18 existing WebSocket keeps working", repr(e))
    for s in extra:
        s.close()
    ws.close()


def prx22(tap, gw):
    s, _x, _ = gw.login("alice")
    cookie = T.cookie_header(s)
    before = upgrades(gw)
    for origin in ("https://evil.example", "null", "https://bob.nbgate.test",
                   "https://alice.nbgate.test.evil.example", "http://127.0.0.1:1", None):
        c, r = T.ws_handshake(gw, CHANNELS, {"Cookie": cookie, "Origin": origin})
        c.close()
        tap.ok(r is not None and r.status == 403, "PRX-22 cookie upgrade with Origin %r -> 403" % origin, repr(r))
    tap.is_(upgrades(gw) - before, 0, "PRX-22 backend saw 0 upgrades for them")
    c, r = T.ws_handshake(gw, CHANNELS, {"Cookie": cookie, "Origin": gw.public_url})
    ok = r is not None and r.status == 101
    tap.ok(ok, "PRX-22 correct Origin -> 101", repr(r))
    if ok:
        c.send(T.ws_frame(0x1, "hi"))
        f = T.ws_read_frame(c)
        tap.ok(f == (0x1, b"hi"), "PRX-22 messages flow", repr(f))
    c.close()
    c, r = T.ws_handshake(gw, CHANNELS, {"Authorization": "token " + gw.tokens["alice"]})
    tap.ok(r is not None and r.status == 101, "PRX-22 no Origin with Authorization: token -> 101", repr(r))
    c.close()


def prx23(tap, gw):
    tok = "token " + gw.tokens["alice"]
    before = upgrades(gw)
    rows = [("missing Sec-WebSocket-Key", {"Sec-WebSocket-Key": None}, (400,)),
            ("Upgrade: proto1, websocket, proto2", {"Upgrade": "proto1, websocket, proto2"}, (400,)),
            ("Sec-WebSocket-Version: 8", {"Sec-WebSocket-Version": "8"}, (426,)),
            ("short key", {"Sec-WebSocket-Key": "c2hvcnQ="}, (400,))]
    for name, h, want in rows:
        c, r = T.ws_handshake(gw, CHANNELS, dict({"Authorization": tok}, **h))
        c.close()
        tap.ok(r is not None and r.status in want, "PRX-23 %s -> %s" % (name, want), repr(r))
        if want == (426,) and r is not None:
            tap.is_(r.header("sec-websocket-version"), "13", "PRX-23 426 carries Sec-WebSocket-Version: 13")
    raw = ("POST %s HTTP/1.1\r\nHost: %s\r\nAuthorization: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\n\r\n"
           % (CHANNELS, gw.public_host, tok, T.ws_key()))
    r, _ = T.raw_request(gw.port, raw)
    tap.ok(r is not None and r.status == 400, "PRX-23 POST + Upgrade: websocket -> 400", repr(r))
    raw = ("GET /user/alice/x HTTP/1.1\r\nHost: %s\r\nAuthorization: %s\r\nUpgrade: h2c\r\n"
           "Connection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
           % (gw.public_host, tok))
    r, _ = T.raw_request(gw.port, raw)
    tap.ok(r is not None and r.status == 400, "PRX-23 Upgrade: h2c + HTTP2-Settings -> 400", repr(r))
    tap.is_(upgrades(gw) - before, 0, "PRX-23 backend saw 0 upgrades")


def prx24(tap, gw):
    tok = "token " + gw.tokens["alice"]
    for knob in ("__ws_426", "__ws_200", "__ws_bad_accept"):
        c, r = T.ws_handshake(gw, "/user/alice/%s/ws" % knob, {"Authorization": tok})
        tap.ok(r is not None and r.status in (502, 426, 200), "PRX-24 backend %s -> 502 or its status" % knob,
               repr(r))
        c.send("GET /__smuggled HTTP/1.1\r\nHost: %s\r\n\r\n" % gw.public_host)
        time.sleep(0.5)
        c.close()
        tap.ok(r is None or r.status != 101, "PRX-24 %s: client never sees 101" % knob, repr(r))
    time.sleep(0.5)
    tap.ok(not gw.smuggled(), "PRX-24 bytes written after the failed upgrade never reached a backend raw",
           repr(gw.smuggled())[:500])


def close_code(c, timeout=3.0):
    """Reads frames (skipping echoes) until a close frame; returns
    (code or None, last frame)."""
    deadline = time.monotonic() + timeout
    f = None
    while time.monotonic() < deadline:
        f = T.ws_read_frame(c, timeout=max(0.05, deadline - time.monotonic()))
        if f is None:
            return None, "EOF/timeout (eof=%s)" % c.eof
        if f[0] == 0x8:
            return (int.from_bytes(f[1][:2], "big") if len(f[1]) >= 2 else None), f
    return None, f


def prx25(tap, gw):
    tok = "token " + gw.tokens["alice"]
    c, r = T.ws_handshake(gw, CHANNELS, {"Authorization": tok})
    if r is None or r.status != 101:
        tap.ok(False, "PRX-25 setup: upgrade", repr(r))
        return
    c.send(T.ws_frame(0x1, "unmasked", mask=False))
    code, f = close_code(c)
    tap.ok(code == 1002, "PRX-25 unmasked client frame -> close 1002", repr(f))
    c.close()
    c, r = T.ws_handshake(gw, CHANNELS, {"Authorization": tok})
    c.send(T.ws_frame(0x2, b"\0" * (64 * 1024 + 1)))
    code, f = close_code(c)
    tap.ok(code == 1009, "PRX-25 frame above ws_message_max (64 KiB) -> close 1009", repr(f)[:200])
    c.close()
    # a message above the cap split in fragments
    c, r = T.ws_handshake(gw, CHANNELS, {"Authorization": tok})
    for i in range(3):
        c.send(T.ws_frame(0x2 if i == 0 else 0x0, b"\0" * 30000, fin=False))
    c.send(T.ws_frame(0x0, b"\0" * 30000, fin=True))
    code, f = close_code(c)
    tap.ok(code == 1009, "PRX-25 fragmented message above the cap -> close 1009", repr(f)[:200])
    c.close()
    # ping flood (bounded: 10 000 pings, at most 3 s)
    c, r = T.ws_handshake(gw, CHANNELS, {"Authorization": tok})
    t0 = time.monotonic()
    sent = 0
    frame = T.ws_frame(0x9, b"p")
    c.sock.settimeout(0.5)
    while sent < 10000 and time.monotonic() - t0 < 3:
        try:
            c.sock.sendall(frame * 100)
            sent += 100
        except OSError:
            break
    pongs = 0
    closed = False
    while True:
        f = T.ws_read_frame(c, timeout=1.0)
        if f is None:
            closed = c.eof
            break
        if f[0] == 0xA:
            pongs += 1
        if f[0] == 0x8:
            closed = True
            break
    c.close()
    t1 = time.monotonic()
    r = gw.request("GET", "/hub/health")
    tap.ok(r.status == 200 and time.monotonic() - t1 < 1.0, "PRX-25 gateway responsive after a ping flood")
    tap.ok(closed or pongs < sent, "PRX-25 10 000 pings: throttled or closed (sent %d, pongs %d, closed %s)"
           % (sent, pongs, closed))
    tap.skip("PRX-25 session expiry / token revocation closes sockets",
             "covered by TOK-6 (t5002) and AUTH-8 (t5006)")


def run(tap):
    gw = T.setup(tap, users=("alice", "bob"), start_servers=("alice",),
                 config={"header_timeout": "2s", "body_idle_timeout": "2s", "max_conns_per_ip": 20,
                         "ws_message_max": "64KiB"})
    if gw is None:
        return
    for name, fn in (("PRX-22", prx22), ("PRX-23", prx23), ("PRX-24", prx24), ("PRX-25", prx25),
                     ("PRX-16", prx16), ("PRX-17", prx17), ("PRX-18", prx18)):
        tap.run(name, fn, tap, gw)
    gw.stop()


T.main(run)
