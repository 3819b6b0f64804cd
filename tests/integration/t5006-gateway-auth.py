#!/usr/bin/python3
"""SECURITY.md section 5.3: AUTH-1 .. AUTH-13 (passwords, sessions,
throttling, CSRF, CORS, security headers), with small timeouts via config.
Several gateways: the main one, one with login_max_failures 10 (AUTH-5),
one with 2 s idle / 5 s absolute sessions (AUTH-8), one with TLS (AUTH-6)."""
import ctypes
import os
import re
import sqlite3
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import nbgate_test as T  # noqa: E402

HASH_RE = re.compile(r"^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=1\$")


def auth(tok):
    return {"Authorization": "token " + tok, "Content-Type": "application/json"}


def db(gw):
    for root, _d, files in os.walk(gw.state_dir):
        for f in files:
            if f.endswith((".db", ".sqlite", ".sqlite3")):
                return os.path.join(root, f)
    raise RuntimeError("no database file under " + gw.state_dir)


def pw_hash(gw, user):
    con = sqlite3.connect(db(gw), timeout=5)
    try:
        row = con.execute("SELECT pw_hash FROM users WHERE name = ?", (user,)).fetchone()
        return row[0] if row else None
    finally:
        con.close()


def set_pw_hash(gw, user, h):
    con = sqlite3.connect(db(gw), timeout=5)
    try:
        con.execute("UPDATE users SET pw_hash = ? WHERE name = ?", (h, user))
        con.commit()
    finally:
        con.close()


def weak_argon2(password):
    lib = ctypes.CDLL("libsodium.so.23")
    lib.sodium_init()
    out = ctypes.create_string_buffer(128)
    lib.crypto_pwhash_str.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulonglong,
                                      ctypes.c_ulonglong, ctypes.c_size_t]
    pw = password.encode()
    if lib.crypto_pwhash_str(out, pw, len(pw), 1, 8192 * 1024) != 0:
        raise RuntimeError("crypto_pwhash_str failed")
    return out.value.decode()


def logged_in(r):
    return r.status in (302, 303) and any(c.startswith(T.session_cookie_name()) for c in r.header_all("Set-Cookie"))


def auth1(tap, gw):
    h1, h2 = pw_hash(gw, "alice"), pw_hash(gw, "bob")
    m = HASH_RE.match(h1 or "")
    tap.ok(m is not None, "AUTH-1 stored hash is $argon2id$v=19$m=..,t=..,p=1$", repr(h1)[:60])
    if m:
        tap.ok(int(m.group(1)) >= 19456 and int(m.group(2)) >= 2, "AUTH-1 m >= 19456 KiB and t >= 2 (%s, %s)"
               % (m.group(1), m.group(2)))
    tap.ok(h1 and h2 and h1 != h2, "AUTH-1 same password, different hash strings (salted)")


def auth2(tap, gw):
    weak = weak_argon2(T.DEFAULT_PASSWORD)
    set_pw_hash(gw, "carol", weak)
    r, _ = gw.form_login("carol", password="wrong password!!")
    tap.ok(not logged_in(r), "AUTH-2 wrong password refused", repr(r))
    tap.is_(pw_hash(gw, "carol"), weak, "AUTH-2 failed login leaves the old hash unchanged")
    r, _ = gw.form_login("carol")
    tap.ok(logged_in(r), "AUTH-2 login with the old-parameter hash works", repr(r))
    h = pw_hash(gw, "carol")
    m = HASH_RE.match(h or "")
    tap.ok(h != weak and m and int(m.group(1)) >= 19456 and int(m.group(2)) >= 2,
           "AUTH-2 rehashed with the current parameters after login", repr(h)[:60])


def auth3(tap, gw):
    for n in (64, 256):
        pw = ("p%d-" % n + "x" * n)[:n]
        rc, out, err = gw.cli("user", "add", "len%d" % n, "--password-stdin", input=pw + "\n")
        tap.is_(rc, 0, "AUTH-3 %d-char passphrase accepted (CLI)" % n)
        gw.users["len%d" % n] = pw
        r, _ = gw.form_login("len%d" % n)
        tap.ok(logged_in(r), "AUTH-3 login with the %d-char passphrase" % n, repr(r))
    rc, out, err = gw.cli("user", "add", "short7", "--password-stdin", input="abcdefg\n")
    tap.ok(rc != 0 and "8" in (out + err), "AUTH-3 7-char password refused, message names the minimum (8)",
           out + err)
    pw = "a" * 1000000
    times = []
    for _ in range(3):
        body = ("username=alice&password=%s&_xsrf=x" % pw).encode()
        t0 = time.monotonic()
        with T.RawConn(gw.host, gw.port) as c:
            c.send("POST /hub/login HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                   "Content-Length: %d\r\n\r\n" % (gw.public_host, len(body)))
            c.send(body)
            r = c.read_response()
        times.append(time.monotonic() - t0)
    tap.ok(r is not None and r.status in (400, 403, 413), "AUTH-3 1 MB password -> 400/413", repr(r))
    tap.ok(statistics.median(times) < 0.1, "AUTH-3 ... in < 100 ms, no hashing (median %.0f ms)"
           % (statistics.median(times) * 1000))
    # 50 parallel logins must not block unrelated requests
    gw.add_user("para")
    lat = []
    done = []

    def login_once():
        try:
            gw.form_login("para")
        finally:
            done.append(1)
    ths = [threading.Thread(target=login_once) for _ in range(50)]
    for t in ths:
        t.start()
    deadline = time.monotonic() + 60
    while len(done) < 50 and time.monotonic() < deadline:
        t1 = time.monotonic()
        gw.request("GET", "/hub/api/")
        lat.append(time.monotonic() - t1)
        time.sleep(0.02)
    for t in ths:
        t.join(10)
    p99 = T.percentile(lat, 99)
    tap.ok(len(lat) >= 5 and p99 < 0.2, "AUTH-3 50 parallel logins: p99 of GET /hub/api/ < 200 ms "
           "(%.0f ms over %d samples)" % (p99 * 1000, len(lat)))


def norm_body(b, user):
    b = re.sub(rb'value="[^"]*"', b'value=""', b)
    b = b.replace(user.encode(), b"USER")
    return b


def auth4(tap, gw):
    r1, _ = gw.form_login("nosuchuser", password="wrong password 1")
    r2, _ = gw.form_login("alice", password="wrong password 1")
    tap.is_(r1.status, r2.status, "AUTH-4 unknown user and wrong password: same status (%s)" % r1.status)
    tap.ok(norm_body(r1.body, "nosuchuser") == norm_body(r2.body, "alice"),
           "AUTH-4 ... and same body", "%r\n%r" % (r1.body[:300], r2.body[:300]))
    ta, tb = [], []
    for i in range(50):
        for user, acc in (("nosuchuser%d" % (i % 5), ta), ("bob", tb)):
            t0 = time.monotonic()
            gw.form_login(user, password="wrong password %d" % i)
            acc.append(time.monotonic() - t0)
    ma, mb = statistics.median(ta), statistics.median(tb)
    diff = abs(ma - mb) / max(ma, mb)
    tap.ok(diff < 0.2, "AUTH-4 median time unknown-user vs wrong-password differs < 20 %% (%.1f vs %.1f ms)"
           % (ma * 1000, mb * 1000))
    tap.skip("AUTH-4 locked account", "no account locking in this issue (users.locked exists, no API)")


def auth5(tap):
    gw = T.setup(tap, users=("alice", "bob"), name="gw-throttle",
                 config={"login_max_failures": 10, "login_backoff_base": "1s", "login_backoff_max": "2s"})
    if gw is None:
        return
    try:
        for i in range(10):
            r, _ = gw.form_login("alice", password="wrong password %d" % i, source="127.0.0.%d" % (20 + i))
            tap.ok(r.status in (200, 400, 401, 403), "AUTH-5 wrong password %d from 127.0.0.%d refused (not yet 429)"
                   % (i + 1, 20 + i), repr(r.status))
        r, _ = gw.form_login("alice", password="wrong password 11", source="127.0.0.40")
        tap.ok(r.status == 429 and r.header("Retry-After"), "AUTH-5 11th from a new IP -> 429 + Retry-After",
               repr(r))
        r, _ = gw.form_login("alice", source="127.0.0.41")
        tap.ok(not logged_in(r), "AUTH-5 even the right password is held back during backoff", repr(r.status))
        rb, _ = gw.form_login("bob", source="127.0.0.20")
        tap.ok(logged_in(rb), "AUTH-5 bob unaffected", repr(rb))
        ra = None
        deadline = time.monotonic() + 12
        while time.monotonic() < deadline:
            ra, _ = gw.form_login("alice", source="127.0.0.42")
            if ra.status != 429:
                break
            time.sleep(min(3, max(0.5, float(ra.header("Retry-After") or 1))))
        tap.ok(ra is not None and logged_in(ra), "AUTH-5 alice's correct password after the backoff -> logged in",
               repr(ra))
    finally:
        gw.stop()


def auth6(tap, main_gw):
    err = main_gw.proc.stderr_text() + main_gw.proc.stdout_text()
    tap.ok(re.search(r"(?i)warn.*(plain http|tls|insecure|secure)", err) is not None,
           "AUTH-6 plain-HTTP dev mode logs a warning at start", err[:1500])
    redirect_port = T.free_port()
    gw = T.setup(tap, users=("alice",), admin=(), tls=True, name="gw-tls",
                 config={"http_redirect_listen": "127.0.0.1:%d" % redirect_port})
    if gw is None:
        return
    try:
        # the plain-HTTP listener only redirects, to the configured public URL
        # (never to the request's Host: PRX-8), and serves nothing itself
        import socket
        with socket.create_connection(("127.0.0.1", redirect_port), timeout=5) as sk:
            sk.sendall(b"GET /user/alice/tree?x=1 HTTP/1.1\r\nHost: evil.example\r\n\r\n")
            head = sk.recv(4096).decode("latin-1")
        loc = [l.split(":", 1)[1].strip() for l in head.split("\r\n") if l.lower().startswith("location:")]
        tap.ok(head.startswith("HTTP/1.1 301") and loc == [gw.public_url.rstrip("/") + "/user/alice/tree?x=1"],
               "TLS: plain-HTTP redirect listener sends 301 to the public https URL", head[:300])
        r, _ = gw.form_login("alice")
        sc = [c for c in r.header_all("Set-Cookie") if "session" in c.split("=", 1)[0]]
        tap.ok(r.status in (302, 303) and sc, "AUTH-6 TLS login sets a session cookie", repr(r))
        for c in sc:
            attrs = [a.strip().lower() for a in c.split(";")[1:]]
            tap.ok(c.startswith("__Host-"), "AUTH-6 cookie name has __Host- prefix", c)
            tap.ok("secure" in attrs and "httponly" in attrs, "AUTH-6 Secure; HttpOnly", c)
            tap.ok(any(a in ("samesite=lax", "samesite=strict") for a in attrs), "AUTH-6 SameSite=Lax|Strict", c)
            tap.ok("path=/" in attrs and not any(a.startswith("domain") for a in attrs), "AUTH-6 Path=/ and no Domain",
                   c)
    finally:
        gw.stop()


def auth7(tap, gw):
    name = T.session_cookie_name()
    r = gw.request("GET", "/hub/login")
    pre = T.cookies_from(r)
    fixed = "attackerchosen0123456789abcdef0123456789abcdef"
    r1 = gw.request("GET", "/hub/login", headers={"Cookie": "%s=%s" % (name, fixed)})
    jar = T.cookies_from(r1)
    jar[name] = fixed
    xsrf = T.form_xsrf(r1.text()) or ""
    import urllib.parse
    body = urllib.parse.urlencode({"username": "alice", "password": T.DEFAULT_PASSWORD, "_xsrf": xsrf})
    r2 = gw.request("POST", "/hub/login", body=body,
                    headers={"Cookie": T.jar_header(jar), "Origin": gw.public_url, "Sec-Fetch-Site": "same-origin",
                             "Content-Type": "application/x-www-form-urlencoded"})
    post = T.cookies_from(r2).get(name)
    tap.ok(post and post != fixed and post != pre.get(name), "AUTH-7 session id after login is new", repr(r2))
    r3 = gw.request("GET", "/hub/api/user", headers={"Cookie": "%s=%s" % (name, fixed)})
    tap.in_(r3.status, (401, 403), "AUTH-7 the pre-login value is rejected after login", repr(r3))
    if pre.get(name):
        r4 = gw.request("GET", "/hub/api/user", headers={"Cookie": "%s=%s" % (name, pre[name])})
        tap.in_(r4.status, (401, 403), "AUTH-7 the gateway's own pre-login cookie is rejected", repr(r4))


def auth8(tap):
    import websocket
    gw = T.setup(tap, users=("alice",), admin=(), name="gw-timeouts", start_servers=("alice",),
                 config={"session_idle_timeout": "2s", "session_absolute_timeout": "5s"})
    if gw is None:
        return
    try:
        _, cookie = gw.form_login("alice")
        r = gw.request("GET", "/hub/api/user", headers={"Cookie": cookie})
        tap.is_(r.status, 200, "AUTH-8 fresh session works")
        time.sleep(3)
        r = gw.request("GET", "/hub/api/user", headers={"Cookie": cookie})
        tap.in_(r.status, (401, 403), "AUTH-8 idle 3 s > 2 s -> 401", repr(r))
        _, cookie = gw.form_login("alice")
        t0 = time.monotonic()
        ws = websocket.create_connection("ws://%s/user/alice/api/kernels/k/channels" % gw.public_host,
                                         header=["Cookie: " + cookie], origin=gw.public_url, timeout=1)
        statuses = []
        ws_closed_at = None
        while time.monotonic() - t0 < 7:
            r = gw.request("GET", "/hub/api/user", headers={"Cookie": cookie})
            statuses.append((round(time.monotonic() - t0, 1), r.status))
            if ws_closed_at is None:
                try:
                    ws.send("x")
                    ws.recv()
                except Exception:
                    ws_closed_at = time.monotonic() - t0
            time.sleep(0.9)
        first401 = next((t for t, s in statuses if s in (401, 403)), None)
        tap.ok(all(s == 200 for t, s in statuses if t < 4.8) and first401 is not None and first401 <= 6.2,
               "AUTH-8 activity every ~1 s: 200 until the 5 s absolute limit, then 401", repr(statuses))
        # the loop notices a close up to ~1 s late (it polls every 0.9 s), and
        # sanitizer builds on 2 loaded cores add more: the upper bound only has
        # to show the socket ended near the limit, not much later
        tap.ok(ws_closed_at is not None and 4.0 <= ws_closed_at <= 7.5,
               "AUTH-8 WebSocket closed at the absolute limit (%s s)" % (ws_closed_at and round(ws_closed_at, 1)))
    finally:
        gw.stop()


def auth9(tap, gw):
    s, x, _ = gw.login("alice")
    cookie = T.cookie_header(s)
    st, info = gw.logout(s, x)
    tap.ok(st in (200, 302, 303), "AUTH-9 POST /hub/logout answered (%s)" % st, info)
    r = gw.request("GET", "/hub/api/user", headers={"Cookie": cookie})
    tap.in_(r.status, (401, 403), "AUTH-9 old cookie on the hub -> 401", repr(r))
    r = gw.request("GET", "/user/alice/api/status", headers={"Cookie": cookie})
    tap.ok(r.status in (401, 403) or (r.status in (302, 303) and "/hub/login" in (r.header("Location") or "")),
           "AUTH-9 old cookie on the user server -> 401/redirect", repr(r))
    c, rr = T.ws_handshake(gw, "/user/alice/api/kernels/k/channels", {"Cookie": cookie, "Origin": gw.public_url})
    c.close()
    tap.ok(rr is not None and rr.status in (401, 403), "AUTH-9 old cookie on a WebSocket -> 401/403", repr(rr))


def server_running(gw, user):
    r = gw.request("GET", "/hub/api/users/%s" % user, headers=auth(gw.tokens["admin"]))
    j = r.json() or {}
    return bool(j.get("servers")) or bool(j.get("server"))


def auth10(tap, gw):
    sa, xa, _ = gw.login("dave")
    sb, xb, _ = gw.login("dave")
    url = gw.url("/hub/api/users/dave/server")
    ok = {"Origin": gw.public_url, "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors",
          "Content-Type": "application/json", "X-XSRFToken": xa}
    rows = [("Sec-Fetch-Site: cross-site", {"Sec-Fetch-Site": "cross-site"}),
            ("Sec-Fetch-Site: same-site from bob.<domain>", {"Sec-Fetch-Site": "same-site",
                                                            "Origin": "http://bob.nbgate.test"}),
            ("no Sec-Fetch-*, Origin: https://evil", {"Sec-Fetch-Site": None, "Sec-Fetch-Mode": None,
                                                     "Origin": "https://evil"}),
            ("no Sec-Fetch-*, no Origin/Referer, no token", {"Sec-Fetch-Site": None, "Sec-Fetch-Mode": None,
                                                             "Origin": None, "X-XSRFToken": None}),
            ("Content-Type: text/plain", {"Content-Type": "text/plain"})]
    for name, h in rows:
        r = sa.post(url, data="{}", headers=dict(ok, **h), allow_redirects=False)
        tap.is_(r.status_code, 403, "AUTH-10 %s -> 403" % name)
    if xa and xb and xa != xb:
        r = sb.post(url, data="{}", headers=dict(ok, **{"X-XSRFToken": xa}), allow_redirects=False)
        tap.is_(r.status_code, 403, "AUTH-10 valid token of session A used with session B -> 403")
    else:
        tap.ok(False, "AUTH-10 sessions A and B have different XSRF tokens", "%r %r" % (xa, xb))
    time.sleep(0.3)
    tap.ok(not server_running(gw, "dave") and not gw.records("dave"), "AUTH-10 no state change on any 403")
    r = sa.post(url, data="{}", headers=ok, allow_redirects=False)
    tap.in_(r.status_code, (201, 202), "AUTH-10 same-origin + valid token -> 201/202", r.text[:300])
    r = gw.request("POST", "/hub/api/users/erin/server", headers=auth(gw.tokens["erin"]), body="{}")
    tap.in_(r.status, (201, 202), "AUTH-10 Authorization: token, no cookie -> 201/202", repr(r))


def auth11(tap, gw):
    r = gw.request("GET", "/hub/login")
    jar = T.cookies_from(r)
    import urllib.parse
    body = urllib.parse.urlencode({"username": "alice", "password": T.DEFAULT_PASSWORD})
    for name, h in (("cross-site, no form token", {"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}),
                    ("no headers, no form token", {}),
                    ("cross-site with cookie, no form token", {"Sec-Fetch-Site": "cross-site",
                                                              "Origin": "https://evil.example",
                                                              "Cookie": T.jar_header(jar)})):
        r = gw.request("POST", "/hub/login", body=body,
                       headers=dict({"Content-Type": "application/x-www-form-urlencoded"}, **h))
        sess = [c for c in r.header_all("Set-Cookie") if c.startswith(T.session_cookie_name())]
        tap.ok(r.status == 403 and not sess, "AUTH-11 login POST %s -> 403, no session" % name, repr(r))


def auth12(tap, gw):
    seen = []
    r = gw.request("OPTIONS", "/hub/api/users", headers={"Origin": "https://evil", "Access-Control-Request-Method":
                                                         "POST", "Access-Control-Request-Headers": "authorization"})
    seen.append(r)
    tap.ok(not any(n.lower().startswith("access-control-allow") for n, _ in r.headers),
           "AUTH-12 preflight from https://evil -> no Access-Control-Allow-*", repr(r.headers))
    for m, p in (("GET", "/hub/api/user"), ("GET", "/hub/api/"), ("GET", "/user/alice/api/status"),
                 ("POST", "/hub/api/users/alice/tokens"), ("GET", "/hub/login")):
        seen.append(gw.request(m, p, headers=dict(auth(gw.tokens["alice"]), Origin="https://evil"), body=None))
    bad = [r for r in seen if r.header("Access-Control-Allow-Origin") == "*"
           and r.header("Access-Control-Allow-Credentials")]
    tap.ok(not bad, "AUTH-12 never ACAO: * together with credentials", repr(bad))
    tap.ok(not any(r.header("Access-Control-Allow-Origin") == "https://evil" for r in seen),
           "AUTH-12 evil origin never reflected", repr([r.headers for r in seen])[:500])


def auth13(tap, gw):
    s, _, _ = gw.login("alice")
    for path in ("/hub/login", "/hub/home", "/hub/token"):
        r = (s if path != "/hub/login" else gw.session()).get(gw.url(path), allow_redirects=False)
        h = r.headers
        tap.ok(r.status_code == 200, "AUTH-13 %s -> 200" % path, str(r.status_code))
        tap.ok("frame-ancestors 'none'" in h.get("Content-Security-Policy", ""), "AUTH-13 %s CSP frame-ancestors"
               % path, str(h))
        tap.is_(h.get("X-Content-Type-Options"), "nosniff", "AUTH-13 %s nosniff" % path)
        tap.in_(h.get("Referrer-Policy"), ("same-origin", "no-referrer", "strict-origin"),
                "AUTH-13 %s Referrer-Policy same-origin or stricter" % path)
        if path == "/hub/token":
            tap.ok("no-store" in h.get("Cache-Control", ""), "AUTH-13 token page Cache-Control: no-store", str(h))


def run(tap):
    gw = T.setup(tap, users=("alice", "bob", "carol", "dave", "erin"), start_servers=("alice",),
                 config={"login_max_failures": 1000})
    if gw is None:
        return
    for name, fn in (("AUTH-1", auth1), ("AUTH-2", auth2), ("AUTH-3", auth3), ("AUTH-4", auth4),
                     ("AUTH-7", auth7), ("AUTH-9", auth9), ("AUTH-10", auth10), ("AUTH-11", auth11),
                     ("AUTH-12", auth12), ("AUTH-13", auth13)):
        tap.run(name, fn, tap, gw)
    tap.run("AUTH-6", auth6, tap, gw)
    gw.stop()
    tap.run("AUTH-5", auth5, tap)
    tap.run("AUTH-8", auth8, tap)


T.main(run)
