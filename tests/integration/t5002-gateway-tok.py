#!/usr/bin/python3
"""SECURITY.md section 2.3: TOK-1 .. TOK-12 (tokens, scopes, expiry,
revocation, server token, no oracle, throttling, log hygiene, format)."""
import base64
import json
import os
import re
import sqlite3
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import nbgate_test as T  # noqa: E402


def auth(tok):
    return {"Authorization": "token " + tok, "Content-Type": "application/json"}


def new_token(gw, user, by, body=None):
    r = gw.request("POST", "/hub/api/users/%s/tokens" % user, headers=auth(by),
                   body=json.dumps(body or {}))
    j = r.json() or {}
    return r, j.get("token"), j.get("id")


def token_list(gw, user, tok):
    r = gw.request("GET", "/hub/api/users/%s/tokens" % user, headers=auth(tok))
    j = r.json()
    if isinstance(j, dict):
        return r, (j.get("api_tokens") or []) + (j.get("oauth_tokens") or [])
    return r, j if isinstance(j, list) else []


def state_bytes(gw):
    data = b""
    for root, _d, files in os.walk(gw.state_dir):
        for f in files:
            try:
                with open(os.path.join(root, f), "rb") as fh:
                    data += fh.read()
            except OSError:
                pass
    return data


def db_path(gw):
    for root, _d, files in os.walk(gw.state_dir):
        for f in files:
            if f.endswith((".db", ".sqlite", ".sqlite3")):
                return os.path.join(root, f)
    return None


def tok1(tap, gw):
    toks = []
    for i in range(3):
        r, t, _ = new_token(gw, "alice", gw.tokens["alice"], {"note": "tok1-%d" % i})
        if t:
            toks.append(t)
    tap.is_(len(toks), 3, "TOK-1 three tokens created through the API")
    time.sleep(0.2)
    data = state_bytes(gw)
    for t in toks + [gw.tokens["alice"]]:
        forms = {t, t.encode().hex(), base64.b64encode(t.encode()).decode().rstrip("=")}
        if "_" in t:
            forms.add(t.split("_", 1)[1])
        hit = [f for f in forms if f.encode() in data]
        tap.ok(not hit, "TOK-1 secret of token %s... not in the state dir (any form)" % t[:6], repr(hit))
    p = db_path(gw)
    try:
        con = sqlite3.connect("file:%s?mode=ro" % p, uri=True, timeout=5)
        rows = con.execute("SELECT prefix, hash FROM tokens").fetchall()
        con.close()
    except Exception as e:
        rows = []
        tap.diag("TOK-1 reading tokens table: %r" % e)
    tap.ok(rows and all(r[0] and r[1] for r in rows), "TOK-1 every token row has prefix + hash",
           repr(rows[:3]))


def tok2(tap, gw):
    r, lst = token_list(gw, "alice", gw.tokens["alice"])
    tap.is_(r.status, 200, "TOK-2 GET /hub/api/users/alice/tokens -> 200")
    tap.ok(lst and all("id" in x for x in lst), "TOK-2 entries have ids", r.text()[:400])
    tap.ok(all("scopes" in x and "expires_at" in x for x in lst), "TOK-2 entries have scopes + expires_at",
           r.text()[:400])
    tap.ok(gw.tokens["alice"] not in r.text() and not any("token" in x for x in lst),
           "TOK-2 no secret in the listing", r.text()[:400])


def tok3(tap, gw):
    t = gw.tokens["alice"]
    for h, name in (("token " + t, "token X"), ("Bearer " + t, "Bearer X")):
        r = gw.request("GET", "/hub/api/user", headers={"Authorization": h})
        tap.ok(r.status == 200 and (r.json() or {}).get("name") == "alice", "TOK-3 %s -> 200" % name, repr(r))
    bad = [("token: " + t, "token: X"), ("Basic " + base64.b64encode(b"alice:" + t.encode()).decode(),
                                          "Basic X"),
           ("no sir", "no sir"), ("", "empty"), ("token " + t + "garbage", "trailing garbage"),
           ("token " + t + " x", "trailing word"), ("token " + "A" * 10000, "10 kB token")]
    bodies = {}
    for h, name in bad:
        r = gw.request("GET", "/hub/api/user", headers={"Authorization": h})
        tap.in_(r.status, (401, 403) if "10 kB" not in name else (400, 401, 403, 431),
                "TOK-3 Authorization: %s -> 401/403" % name, repr(r))
        if r.status in (401, 403):
            bodies.setdefault((r.status, r.body), []).append(name)
    tap.ok(len(bodies) == 1, "TOK-3 same status+body for every invalid form", repr(bodies)[:600])
    req = ("GET /hub/api/user HTTP/1.1\r\nHost: %s\r\nAuthorization: token %s\r\n"
           "Authorization: token %s\r\n\r\n" % (gw.public_host, t, t))
    r, _ = T.raw_request(gw.port, req)
    tap.ok(r is not None and r.status == 400, "TOK-3 two Authorization headers -> 400", repr(r))


def tok4(tap, gw):
    r, t, _ = new_token(gw, "alice", gw.tokens["alice"], {"scopes": ["admin:users"]})
    tap.is_(r.status, 403, "TOK-4 non-admin requests admin:users -> 403")
    adm = gw.tokens["admin"]
    gw.request("POST", "/hub/api/users/eve", headers=auth(adm))
    r = gw.request("PATCH", "/hub/api/users/eve", headers=auth(adm), body='{"admin": true}')
    tap.is_(r.status, 200, "TOK-4 setup: eve made admin")
    r, et, _ = new_token(gw, "eve", adm, {"scopes": ["list:users"]})
    if not et:
        et = gw.create_token("eve", scopes=["list:users"])
    r = gw.request("GET", "/hub/api/users", headers=auth(et))
    tap.is_(r.status, 200, "TOK-4 eve's list:users token lists users while eve is admin")
    r = gw.request("PATCH", "/hub/api/users/eve", headers=auth(adm), body='{"admin": false}')
    tap.is_(r.status, 200, "TOK-4 setup: eve loses admin")
    r = gw.request("GET", "/hub/api/users", headers=auth(et))
    tap.in_(r.status, (403, 404), "TOK-4 the very next request with eve's token -> 403", repr(r))
    # filtered admin (GHSA-69wv)
    gw.request("POST", "/hub/api/groups/g", headers=auth(adm))
    gw.request("POST", "/hub/api/groups/g/users", headers=auth(adm), body='{"users": ["carol"]}')
    r, ft, _ = new_token(gw, "admin", adm, {"scopes": ["admin:users!group=g", "read:users!group=g"]})
    tap.ok(ft, "TOK-4 setup: admin:users!group=g token", repr(r))
    if ft:
        r = gw.request("GET", "/hub/api/users/carol", headers=auth(ft))
        tap.is_(r.status, 200, "TOK-4 filtered token reads carol (in g)")
        r = gw.request("GET", "/hub/api/users/bob", headers=auth(ft))
        tap.in_(r.status, (403, 404), "TOK-4 filtered token cannot read bob (outside g)", repr(r))
        r = gw.request("PATCH", "/hub/api/users/bob", headers=auth(ft), body='{"name": "bobby"}')
        tap.in_(r.status, (403, 404), "TOK-4 filtered token cannot rename bob", repr(r))
        r = gw.request("DELETE", "/hub/api/users/bob", headers=auth(ft))
        tap.in_(r.status, (403, 404), "TOK-4 filtered token cannot delete bob", repr(r))
        r = gw.request("GET", "/hub/api/users/bob", headers=auth(adm))
        tap.is_(r.status, 200, "TOK-4 bob unchanged")


def tok5(tap, gw):
    r, t, _ = new_token(gw, "alice", gw.tokens["alice"], {"expires_in": 1})
    tap.ok(t, "TOK-5 token with expires_in 1 created", repr(r))
    if t:
        r = gw.request("GET", "/hub/api/user", headers=auth(t))
        tap.is_(r.status, 200, "TOK-5 works at once")
        time.sleep(2.1)
        r = gw.request("GET", "/hub/api/user", headers=auth(t))
        tap.in_(r.status, (401, 403), "TOK-5 refused after 2 s", repr(r))
    r, t, _ = new_token(gw, "alice", gw.tokens["alice"], {"expires_in": 7200})
    msg = ((r.json() or {}).get("message") or "")
    tap.ok(r.status == 400 and "3600" in msg, "TOK-5 expires_in above token_max_expires_in (3600 s) -> 400 "
           "naming the max", repr(r))


def ws_open(gw, path, headers):
    import websocket
    return websocket.create_connection("ws://%s%s" % (gw.public_host, path), header=headers, timeout=5)


def ws_closed_within(ws, seconds):
    import websocket
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ws.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            d = ws.recv()
            if d in ("", b"", None):
                return True
        except websocket.WebSocketConnectionClosedException:
            return True
        except websocket.WebSocketTimeoutException:
            return False
        except OSError:
            return True
    return False


def tok6(tap, gw):
    r, t, tid = new_token(gw, "alice", gw.tokens["alice"], {"note": "revoke-me"})
    tap.ok(t and tid is not None, "TOK-6 token created", repr(r))
    if not t:
        return
    ws = None
    try:
        ws = ws_open(gw, "/user/alice/api/kernels/k/channels", ["Authorization: token " + t])
        ws.send("ping")
        tap.is_(ws.recv(), "ping", "TOK-6 WebSocket with the token works")
    except Exception as e:
        tap.ok(False, "TOK-6 WebSocket with the token works", repr(e))
    r = gw.request("DELETE", "/hub/api/users/alice/tokens/%s" % tid, headers=auth(gw.tokens["alice"]))
    tap.in_(r.status, (200, 204), "TOK-6 DELETE token", repr(r))
    t0 = time.monotonic()
    ok = T.wait_until(lambda: gw.request("GET", "/hub/api/user", headers=auth(t)).status in (401, 403), 1.0)
    tap.ok(ok, "TOK-6 revoked token refused within 1 s (%.2f s)" % (time.monotonic() - t0))
    if ws is not None:
        tap.ok(ws_closed_within(ws, 2.0), "TOK-6 WebSocket opened with it is closed")


def tok7(tap, gw):
    env = gw.backend_env("alice")
    st = env.get("NBGATE_API_TOKEN") or env.get("JUPYTERHUB_API_TOKEN") or env.get("JPY_API_TOKEN")
    tap.ok(st, "TOK-7 alice's server got a token in its environment", repr(sorted(env))[:400])
    if not st:
        return
    r = gw.request("GET", "/user/alice/api/status", headers=auth(st))
    tap.is_(r.status, 200, "TOK-7 server token: GET /user/alice/api/status -> 200")
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    r = gw.request("POST", "/hub/api/users/alice/activity", headers=auth(st),
                   body=json.dumps({"last_activity": now, "servers": {"": {"last_activity": now}}}))
    tap.in_(r.status, (200, 204), "TOK-7 server token: POST activity -> 200", repr(r))
    r = gw.request("GET", "/hub/api/users", headers=auth(st))
    tap.in_(r.status, (403, 404), "TOK-7 server token: GET /hub/api/users -> 403", repr(r))
    r = gw.request("GET", "/user/bob/api/status", headers=auth(st))
    tap.in_(r.status, (403, 404), "TOK-7 server token: /user/bob/ -> 403", repr(r))
    r = gw.request("POST", "/hub/api/users/alice/tokens", headers=auth(st), body="{}")
    tap.in_(r.status, (403, 404), "TOK-7 server token: POST tokens -> 403", repr(r))


def tok9(tap, gw):
    t = gw.tokens["alice"]
    if "_" in t:
        pre, sec = t.split("_", 1)
        sep = "_"
    else:
        pre, sec, sep = t[:8], t[8:], ""
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    results = {"a": set(), "b": set()}
    for i in range(200):
        rnd = "".join(alphabet[b % len(alphabet)] for b in os.urandom(len(sec)))
        unknown_pre = "".join(alphabet[b % 16] for b in os.urandom(len(pre)))
        for kind, tok in (("a", unknown_pre + sep + rnd), ("b", pre + sep + rnd)):
            r = gw.request("GET", "/hub/api/user", headers=auth(tok), source="127.0.0.%d" % (100 + i % 50))
            results[kind].add((r.status, re.sub(rb"\d+", b"N", r.body)))
    tap.ok(results["a"] == results["b"], "TOK-9 unknown prefix vs known prefix + wrong secret: "
           "identical status/body over 200 tries each", repr(results)[:600])
    src = ""
    for f in ("gateway/users.c", "gateway/auth.c"):
        try:
            src += open(os.path.join(T.REPO, f)).read()
        except OSError:
            pass
    tap.ok(re.search(r"sodium_memcmp|CRYPTO_memcmp", src) is not None,
           "TOK-9 code review: token comparison uses sodium_memcmp/CRYPTO_memcmp")


def tok10(tap, gw):
    got429 = None
    t0 = time.monotonic()
    for i in range(100):
        if time.monotonic() - t0 > 10:
            break
        r = gw.request("GET", "/hub/api/user", headers=auth("bogus%04d_%s" % (i, "x" * 40)),
                       source="127.0.0.7")
        if r.status == 429:
            got429 = r
            break
    tap.ok(got429 is not None and got429.header("Retry-After"),
           "TOK-10 100 invalid tokens from one client in 10 s -> 429 with Retry-After", repr(got429))
    r = gw.request("GET", "/hub/api/user", headers=auth(gw.tokens["bob"]), source="127.0.0.8")
    tap.is_(r.status, 200, "TOK-10 valid token from another client meanwhile -> 200")


def tok11(tap, gw):
    reqs = [("GET", "/hub/api/nonexistent?token=SECRET3aaaa"), ("GET", "/user/alice/api/status?token=SECRET3bbbb"),
            ("GET", "/hub/login?token=SECRET3cccc"), ("POST", "/hub/api/users/alice/server?token=SECRET3dddd"),
            ("GET", "/user/nosuchuser/x?token=SECRET3eeee")]
    for m, p in reqs:
        gw.request(m, p, headers={"Authorization": "token SECRET1xyzzy", "Cookie": "nbgate-session=SECRET2plugh"})
    T.raw_request(gw.port, "GET /hub/api/user?token=SECRET3ffff HTTP/1.1\r\nHost: %s\r\nContent-Length: 5\r\n"
                  "Content-Length: 6\r\nAuthorization: token SECRET1qqq\r\nCookie: nbgate-session=SECRET2rrr"
                  "\r\n\r\n" % gw.public_host)
    time.sleep(0.3)
    logs = gw.logs()
    leaks = sorted(set(re.findall(r"SECRET\d\w*", logs)))
    tap.ok(not leaks, "TOK-11 no SECRET* from Authorization, Cookie or ?token= in any log", repr(leaks))
    tap.ok(len(logs) > 0, "TOK-11 the logs are not empty (the check above saw something)")
    tap.skip("TOK-11 forced 500", "no fault-injection switch in nbgate yet; errors 4xx and bad framing covered")


def tok12(tap, gw):
    toks = []
    t0 = time.monotonic()
    import requests
    s = requests.Session()
    s.trust_env = False
    h = auth(gw.tokens["tokgen"])
    while len(toks) < 10000 and time.monotonic() - t0 < 40:
        r = s.post(gw.url("/hub/api/users/tokgen/tokens"), headers=h, data="{}", timeout=10)
        if r.status_code not in (200, 201):
            tap.diag("TOK-12 stopped at %d: %s %s" % (len(toks), r.status_code, r.text[:200]))
            break
        toks.append(r.json()["token"])
    tap.ok(len(toks) >= 2000, "TOK-12 generated %d tokens in %.0f s (>= 2000; 10000 if time allows)"
           % (len(toks), time.monotonic() - t0))
    tap.is_(len(set(toks)), len(toks), "TOK-12 all unique")
    lens = set(len(t) for t in toks)
    tap.is_(len(lens), 1, "TOK-12 fixed length")
    tap.ok(all(re.fullmatch(r"[A-Za-z0-9_-]+", t) for t in toks), "TOK-12 base64url/hex charset")
    if toks:
        sec = [t.split("_", 1)[1] if "_" in t else t for t in toks]
        hexy = all(re.fullmatch(r"[0-9a-f]+", x) for x in sec)
        bits = len(sec[0]) * (4 if hexy else 6)
        tap.ok(bits >= 128, "TOK-12 secret part >= 128 bits (%d chars, %s)" % (len(sec[0]),
                                                                            "hex" if hexy else "base64url"))


def run(tap):
    gw = T.setup(tap, users=("alice", "bob", "carol", "tokgen"),
                 config={"token_max_expires_in": "1h", "token_guess_limit": 50,
                         "token_guess_window": "10s"},
                 start_servers=("alice", "bob"))
    if gw is None:
        return
    for name, fn in (("TOK-1", tok1), ("TOK-2", tok2), ("TOK-3", tok3), ("TOK-4", tok4),
                     ("TOK-5", tok5), ("TOK-6", tok6), ("TOK-7", tok7), ("TOK-9", tok9),
                     ("TOK-11", tok11), ("TOK-10", tok10), ("TOK-12", tok12)):
        tap.run(name, fn, tap, gw)
    tap.skip("TOK-8 token confidentiality between sandboxes", "process backend is unsandboxed "
             "(same uid, shared /proc); applies to the local sandbox backend (next issue) and k8s")
    gw.stop()


T.main(run)
