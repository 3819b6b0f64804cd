#!/usr/bin/python3
"""SECURITY.md section 3.4, framing rows: PRX-1..7, PRX-15, PRX-19.
HAProxy VTest pattern: raw bytes on one connection, then (if still open) a
second plain request; assert the status, Connection: close + socket closed
for framing errors, and what the recording backend received."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import nbgate_test as T  # noqa: E402

SMUGGLED = "GET /__smuggled HTTP/1.1\r\nHost: x\r\n\r\n"


class Ctx:
    pass


def case(tap, gw, row, head_lines, body=b"", want=(400,), close=True, path="/user/alice/x",
         method="POST", version="HTTP/1.1", raw=None, auth=True):
    """Sends one crafted request (+ a follow-up on the same connection) and
    asserts status, close and backend 0."""
    if raw is None:
        lines = ["%s %s %s" % (method, path, version), "Host: %s" % gw.public_host]
        if auth:
            lines.append("Authorization: token %s" % gw.tokens["alice"])
        lines += head_lines
        raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        raw += body if isinstance(body, bytes) else body.encode("latin-1")
    before = len(gw.requests_seen("alice"))
    with T.RawConn(gw.host, gw.port, timeout=5) as c:
        c.send(raw)
        r = c.read_response(timeout=5)
        if r is not None and not c.eof:
            c.send(SMUGGLED)
        closed = c.closed_by_peer(2.0)
    seen = gw.requests_seen("alice")[before:]
    ok_status = r is not None and r.status in want
    conn_close = r is not None and "close" in (r.header("connection") or "").lower()
    tap.ok(ok_status, "%s -> %s" % (row, "/".join(map(str, want))), repr(r))
    if close:
        tap.ok(closed and conn_close, "%s: Connection: close and socket closed" % row,
               "closed=%s header=%r" % (closed, r and r.header("connection")))
    tap.ok(not seen, "%s: backend 0" % row, repr([s.get("raw_head", "")[:200] for s in seen]))
    return r, seen


def prx1(tap, gw):
    body = "0\r\n\r\n" + SMUGGLED
    for order in (("Content-Length: %d" % len(body), "Transfer-Encoding: chunked"),
                  ("Transfer-Encoding: chunked", "Content-Length: %d" % len(body)),
                  ("Content-Length: 31", "Transfer-Encoding: chunked")):
        case(tap, gw, "PRX-1 %s + %s" % order, list(order), body)


def prx2(tap, gw):
    variants = ["chunked, identity", "identity", ",chunked", "chunked,", "xchunked", "chunked\x0b",
                '"chunked"', "gzip, chunked", "Chunked", "chunked"]
    for v in variants:
        case(tap, gw, "PRX-2 TE %r" % v, ["Transfer-Encoding: " + v], "0\r\n\r\n" + SMUGGLED,
             want=(400, 411, 501))
    case(tap, gw, "PRX-2 two TE lines", ["Transfer-Encoding: chunked", "Transfer-Encoding: chunked"],
         "0\r\n\r\n" + SMUGGLED, want=(400,))
    case(tap, gw, "PRX-2 TE on GET", ["Transfer-Encoding: chunked"], "0\r\n\r\n" + SMUGGLED,
         method="GET", want=(400, 501))


def prx3(tap, gw):
    case(tap, gw, "PRX-3 HTTP/1.0 + TE", ["Transfer-Encoding: chunked"], "0\r\n\r\n" + SMUGGLED,
         version="HTTP/1.0", want=(400,))


def prx4(tap, gw):
    for v in ("+5", "-1", "0x10", "1_0", "5abc", "1 2", "", "5,5", "5, 6"):
        case(tap, gw, "PRX-4 Content-Length %r" % v, ["Content-Length: " + v], "hello" + SMUGGLED)
    case(tap, gw, "PRX-4 Content-Length 99999999999999999999", ["Content-Length: 99999999999999999999"],
         "hello", want=(400, 413))
    case(tap, gw, "PRX-4 two identical CL lines", ["Content-Length: 5", "Content-Length: 5"], "hello")
    case(tap, gw, "PRX-4 two different CL lines", ["Content-Length: 5", "Content-Length: 6"], "hello!")
    # 010 = decimal 10, forwarded as "Content-Length: 10"
    before = len(gw.requests_seen("alice"))
    with T.RawConn(gw.host, gw.port) as c:
        c.send("POST /user/alice/x HTTP/1.1\r\nHost: %s\r\nAuthorization: token %s\r\n"
               "Content-Length: 010\r\n\r\n0123456789" % (gw.public_host, gw.tokens["alice"]))
        r = c.read_response()
    seen = gw.requests_seen("alice")[before:]
    tap.ok(r is not None and r.status == 200, "PRX-4 CL 010 with 10 bytes accepted", repr(r))
    cl = [v for n, v in (seen[0]["headers"] if seen else []) if n.lower() == "content-length"]
    tap.ok(len(seen) == 1 and cl == ["10"] and seen[0]["body_len"] == 10,
           "PRX-4 CL 010 forwarded as Content-Length: 10", repr(seen)[:400])


def prx5(tap, gw):
    tok = "Authorization: token %s" % gw.tokens["alice"]
    host = "Host: %s" % gw.public_host
    cases = [
        ("Content-Length : 5", [host, tok, "Content-Length : 5"]),
        ("TAB before first header", ["\tContent-Length: 1", host, tok]),
        ("obs-fold", [host, tok, "X-A: a", " folded", "Content-Length: 5"]),
        ("bare CR in value", [host, tok, "X-A: a\rb", "Content-Length: 5"]),
        ("NUL in value", [host, tok, "X-A: a\x00b", "Content-Length: 5"]),
        ("NUL in name", [host, tok, "X-\x00A: b", "Content-Length: 5"]),
        ("empty name", [host, tok, ": x", "Content-Length: 5"]),
        ("line without colon", [host, tok, "X-A b", "Content-Length: 5"]),
        ("name with \\x85", [host, tok, "X-\x85A: b", "Content-Length: 5"]),
        ("name with space", [host, tok, "X A: b", "Content-Length: 5"]),
        ("X_Gateway_User: admin", [host, tok, "X_Gateway_User: admin", "Content-Length: 5"]),
    ]
    for name, lines in cases:
        raw = ("POST /user/alice/x HTTP/1.1\r\n" + "\r\n".join(lines) + "\r\n\r\nhello").encode("latin-1")
        case(tap, gw, "PRX-5 %s" % name, None, raw=raw)
    raw = ("POST /user/alice/x HTTP/1.1\n%s\n%s\nContent-Length: 5\n\nhello" % (host, tok)).encode()
    case(tap, gw, "PRX-5 bare LF line endings", None, raw=raw)


def prx6(tap, gw):
    h = "Host: %s\r\n" % gw.public_host
    rows = [("GET * HTTP/1.1", "GET * HTTP/1.1\r\n" + h + "\r\n", (400,)),
            ("GET admin HTTP/1.1", "GET admin HTTP/1.1\r\n" + h + "\r\n", (400,)),
            ("GET / HTTP/1.32", "GET / HTTP/1.32\r\n" + h + "\r\n", (400, 505)),
            ("GET / HTTP/2.0", "GET / HTTP/2.0\r\n" + h + "\r\n", (400, 505)),
            ("HTTP/0.9 GET /", "GET /\r\n\r\n", (400,)),
            ("GET /\\nHTTP/1.1", "GET /\nHTTP/1.1\r\n" + h + "\r\n", (400,)),
            ("raw byte 0x80 in target", "GET /user/alice/\x80 HTTP/1.1\r\n" + h + "\r\n", (400,)),
            ("CTL in target", "GET /user/alice/\x01 HTTP/1.1\r\n" + h + "\r\n", (400,)),
            ("16 KiB URI", "GET /user/alice/" + "a" * 16384 + " HTTP/1.1\r\n" + h + "\r\n", (414, 431)),
            ("TRACE", "TRACE /user/alice/x HTTP/1.1\r\n" + h + "\r\n", (405,)),
            ("CONNECT", "CONNECT 127.0.0.2:80 HTTP/1.1\r\n" + h + "\r\n", (400, 405)),
            ("300-byte method", "M" * 300 + " /user/alice/x HTTP/1.1\r\n" + h + "\r\n", (400, 501))]
    for name, raw, want in rows:
        case(tap, gw, "PRX-6 %s" % name, None, raw=raw.encode("latin-1"), want=want,
             close=want[0] in (400, 414, 505))


def prx7(tap, gw):
    tok = "Authorization: token %s\r\n" % gw.tokens["alice"]
    rows = [("no Host on 1.1", "GET /user/alice/x HTTP/1.1\r\n" + tok + "\r\n", (400,)),
            ("two Host lines", "GET /user/alice/x HTTP/1.1\r\nHost: %s\r\nHost: %s\r\n%s\r\n"
             % (gw.public_host, gw.public_host, tok), (400,)),
            ("Host: a b", "GET /user/alice/x HTTP/1.1\r\nHost: a b\r\n" + tok + "\r\n", (400,)),
            ("Host: hub.example:@evil", "GET /user/alice/x HTTP/1.1\r\nHost: 127.0.0.1:@evil\r\n" + tok
             + "\r\n", (400,)),
            ("Host: port 99999", "GET /user/alice/x HTTP/1.1\r\nHost: 127.0.0.1:99999\r\n" + tok + "\r\n",
             (400,)),
            ("absolute-form host != Host", "GET http://bob.nbgate.test/user/alice/x HTTP/1.1\r\nHost: %s\r\n%s\r\n"
             % (gw.public_host, tok), (400,))]
    for name, raw, want in rows:
        case(tap, gw, "PRX-7 %s" % name, None, raw=raw.encode(), want=want)
    case(tap, gw, "PRX-7 unknown host evil.example", None,
         raw=("GET /user/alice/x HTTP/1.1\r\nHost: evil.example\r\n" + tok + "\r\n").encode(),
         want=(421, 404, 400), close=False)


def prx15(tap, gw):
    h = "Host: %s\r\nAuthorization: token %s\r\n" % (gw.public_host, gw.tokens["alice"])
    rows = [("one 20 KiB header", "GET /user/alice/x HTTP/1.1\r\n" + h + "X-Big: " + "a" * 20480 + "\r\n\r\n",
             (431,)),
            ("150 headers", "GET /user/alice/x HTTP/1.1\r\n" + h
             + "".join("X-H%d: v\r\n" % i for i in range(150)) + "\r\n", (431,)),
            ("64 KiB total", "GET /user/alice/x HTTP/1.1\r\n" + h
             + "".join("X-H%d: %s\r\n" % (i, "b" * 4000) for i in range(16)) + "\r\n", (431,)),
            ("16 KiB request line", "GET /user/alice/" + "c" * 16384 + " HTTP/1.1\r\n" + h + "\r\n", (414,))]
    for name, raw, want in rows:
        case(tap, gw, "PRX-15 %s" % name, None, raw=raw.encode(), want=want)


def prx19(tap, gw):
    _, cookie = gw.form_login("alice")
    b0, a0 = len(gw.requests_seen("bob")), len(gw.requests_seen("alice"))
    raw = ("GET /user/bob/api/status HTTP/1.1\r\nHost: %s\r\n\r\n"
           "GET /user/alice/api/status HTTP/1.1\r\nHost: %s\r\nCookie: %s\r\n\r\n"
           % (gw.public_host, gw.public_host, cookie))
    with T.RawConn(gw.host, gw.port) as c:
        c.send(raw)
        r1 = c.read_response()
        r2 = c.read_response()
    tap.ok(r1 is not None and r1.status in (302, 303, 401, 403), "PRX-19 pipelined 1 (bob, no creds) rejected",
           repr(r1))
    tap.ok(r2 is not None and r2.status == 200, "PRX-19 pipelined 2 (alice, cookie) served", repr(r2))
    new = gw.requests_seen("alice")[a0:]
    tap.is_(len(gw.requests_seen("bob")) - b0, 0, "PRX-19 bob's backend 0")
    tap.ok(len(new) == 1 and "/user/bob" not in new[0]["raw_head"],
           "PRX-19 alice's backend got exactly request 2, no bytes of 1", repr(new)[:400])


def run(tap):
    gw = T.setup(tap, users=("alice", "bob"), start_servers=("alice", "bob"))
    if gw is None:
        return
    for name, fn in (("PRX-1", prx1), ("PRX-2", prx2), ("PRX-3", prx3), ("PRX-4", prx4),
                     ("PRX-5", prx5), ("PRX-6", prx6), ("PRX-7", prx7), ("PRX-15", prx15),
                     ("PRX-19", prx19)):
        tap.run(name, fn, tap, gw)
    tap.ok(not gw.smuggled(), "PRX-1..19: no backend ever saw /__smuggled", repr(gw.smuggled())[:600])
    gw.stop()


T.main(run)
