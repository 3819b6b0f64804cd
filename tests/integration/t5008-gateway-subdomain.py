#!/usr/bin/python3
"""Per-user subdomain mode (url_mode "subdomain", domain "nbgate.test",
hub on hub.nbgate.test; no DNS: Host headers on 127.0.0.1): JH-3/JH-4 on
<user>.<domain>, JH-15 cookie tossing, PRX-7 host rows, PRX-22 origins."""
import os
import sys
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import nbgate_test as T  # noqa: E402

DOMAIN = "nbgate.test"


def host(gw, sub):
    return "%s.%s:%d" % (sub, DOMAIN, gw.port)


def req(gw, sub, method, path, headers=None, body=None):
    h = {"Host": host(gw, sub)}
    h.update(headers or {})
    return gw.request(method, path, headers=h, body=body)


def user_prefix(gw, user):
    """Finds where the user's server lives on its host ('/user/<u>/' or '/')."""
    for p in ("/user/%s/" % user, "/"):
        r = req(gw, user, "GET", p + "api/status", {"Authorization": "token " + gw.tokens[user]})
        if r.status == 200:
            return p
    return None


def hub_login(gw, user, next_url=None):
    r = req(gw, "hub", "GET", "/hub/login")
    jar = T.cookies_from(r)
    fields = {"username": user, "password": T.DEFAULT_PASSWORD, "_xsrf": T.form_xsrf(r.text()) or ""}
    if next_url:
        fields["next"] = next_url
    r2 = req(gw, "hub", "POST", "/hub/login", {
        "Content-Type": "application/x-www-form-urlencoded", "Cookie": T.jar_header(jar),
        "Origin": "http://" + host(gw, "hub"), "Sec-Fetch-Site": "same-origin"},
        body=urllib.parse.urlencode(fields))
    jar.update(T.cookies_from(r2))
    return r2, jar


def run(tap):
    port = T.free_port()
    cfg = {"url_mode": "subdomain", "domain": DOMAIN, "public_url": "http://hub.%s:%d" % (DOMAIN, port),
           "listen": "127.0.0.1:%d" % port}
    gw = T.setup(tap, users=("alice", "bob"), config=cfg, name="gw-subdomain")
    if gw is None:
        return
    for u in ("alice", "bob"):
        r = gw.request("POST", "/hub/api/users/%s/server" % u,
                       headers={"Host": host(gw, "hub"), "Authorization": "token " + gw.tokens[u]})
        tap.in_(r.status, (201, 202), "subdomain: %s's server started" % u, repr(r))
    T.wait_until(lambda: user_prefix(gw, "alice") and user_prefix(gw, "bob"), 20, 0.2)
    pa = user_prefix(gw, "alice")
    tap.ok(pa is not None, "subdomain: alice's server reachable on alice.%s (prefix %r)" % (DOMAIN, pa))
    if pa is None:
        gw.stop()
        return
    pb = user_prefix(gw, "bob") or "/user/bob/"

    # JH-3 cookies: hub cookie host-only, no Domain anywhere
    r, jar = hub_login(gw, "alice")
    sc = r.header_all("Set-Cookie")
    tap.ok(r.status in (302, 303) and sc, "JH-3 (subdomain) hub login sets cookies", repr(r))
    tap.ok(not any("domain=" in c.lower() for c in sc), "JH-3 (subdomain) no Domain= on hub cookies (host-only)",
           repr(sc))
    # follow the login -> alice.<domain> redirect chain (at most 6 hops)
    r, jar2 = hub_login(gw, "alice", next_url="http://%s%sapi/status" % (host(gw, "alice"), pa))
    jars = {"hub": dict(jar2)}
    loc, hops, last, last_sub = r.header("Location"), 0, r, "hub"
    all_sc = list(r.header_all("Set-Cookie"))
    na = len(gw.requests_seen("alice"))
    while loc and hops < 6:
        u = urllib.parse.urlsplit(urllib.parse.urljoin("http://%s/" % host(gw, "hub"), loc))
        sub = u.hostname.split(".")[0] if u.hostname and u.hostname.endswith(DOMAIN) else None
        if sub is None:
            break
        path = u.path + ("?" + u.query if u.query else "")
        last = req(gw, sub, "GET", path, {"Cookie": T.jar_header(jars.setdefault(sub, {}))})
        last_sub = sub
        all_sc += last.header_all("Set-Cookie")
        jars[sub].update(T.cookies_from(last))
        loc = last.header("Location") if last.status in (301, 302, 303, 307) else None
        hops += 1
    tap.ok(last.status == 200 and last_sub == "alice" and len(gw.requests_seen("alice")) > na,
           "JH-3 (subdomain) a browser logging in with next=alice's host ends on alice's server "
           "(%d hops, last host %s)" % (hops, last_sub), "Set-Cookie seen: %r\nlast: %r" % (all_sc, last))
    tap.ok(not any("domain=" in c.lower() for c in all_sc), "JH-3 (subdomain) no cookie on the way has Domain=",
           repr(all_sc))
    # JH-4 on bob.<domain>
    nb = len(gw.requests_seen("bob"))
    r = req(gw, "bob", "GET", pb + "api/contents", {"Authorization": "token " + gw.tokens["alice"]})
    tap.in_(r.status, (403, 404), "JH-4 (subdomain) alice's token on bob.%s -> 403" % DOMAIN, repr(r))
    for sub, j in jars.items():
        r = req(gw, "bob", "GET", pb + "lab", {"Cookie": T.jar_header(j), "Accept": "text/html"})
        tap.ok(r.status in (302, 303, 401, 403), "JH-4 (subdomain) alice's %s cookies on bob.%s -> redirect/403"
               % (sub, DOMAIN), repr(r))
    tap.is_(len(gw.requests_seen("bob")) - nb, 0, "JH-4 (subdomain) bob's backend 0")

    # JH-15 cookie tossing at the hub
    name = T.session_cookie_name()
    _, bjar = hub_login(gw, "bob")
    alice_sid, bob_sid = jar.get(name), bjar.get(name)
    r = req(gw, "hub", "GET", "/hub/api/user", {"Cookie": "%s=%s; %s=%s" % (name, bob_sid, name, alice_sid)})
    who = (r.json() or {}).get("name") if r.status == 200 else None
    tap.ok(who in (None, "alice"), "JH-15 tossed cookie (bob's, listed first) + alice's valid one: never bob",
           repr(r))
    forged = "f" * len(alice_sid or "x" * 43)
    r = req(gw, "hub", "GET", "/hub/api/user", {"Cookie": "%s=%s; %s=%s" % (name, forged, name, alice_sid)})
    who = (r.json() or {}).get("name") if r.status == 200 else None
    tap.ok(r.status in (401, 403) or who == "alice", "JH-15 forged cookie listed first + alice's valid one: "
           "alice or 401, never the forged value", repr(r))
    r = req(gw, "hub", "GET", "/hub/api/user", {"Cookie": "%s=%s" % (name, forged)})
    tap.in_(r.status, (401, 403), "JH-15 only a forged session cookie -> 401/403", repr(r))

    # PRX-7 hosts
    tok = "Authorization: token %s\r\n" % gw.tokens["alice"]
    na = len(gw.requests_seen("alice"))
    rows = [("unknown host evil.example", "GET %sapi/status HTTP/1.1\r\nHost: evil.example\r\n%s\r\n" % (pa, tok),
             (404, 421, 400)),
            ("unknown user host", "GET /api/status HTTP/1.1\r\nHost: nosuch.%s:%d\r\n%s\r\n" % (DOMAIN, gw.port, tok),
             (404, 421, 400, 503)),
            ("absolute-form bob + Host alice", "GET http://bob.%s:%d%sapi/status HTTP/1.1\r\nHost: %s\r\n%s\r\n"
             % (DOMAIN, gw.port, pb, host(gw, "alice"), tok), (400,)),
            ("Host alice.<domain>.evil.example", "GET %sapi/status HTTP/1.1\r\nHost: alice.%s.evil.example\r\n%s\r\n"
             % (pa, DOMAIN, tok), (404, 421, 400))]
    for label, raw, want in rows:
        r, _ = T.raw_request(gw.port, raw)
        tap.ok(r is not None and r.status in want, "PRX-7 (subdomain) %s -> %s" % (label, want), repr(r))
    tap.is_(len(gw.requests_seen("alice")) - na, 0, "PRX-7 (subdomain) alice's backend 0 for foreign hosts")

    # PRX-22 origins in subdomain mode (cookie on alice's host)
    ajar = jars.get("alice") or {}
    if ajar:
        for origin, want in (("http://bob.%s:%d" % (DOMAIN, gw.port), 403),
                             ("http://alice.%s.evil.example" % DOMAIN, 403),
                             ("http://%s" % host(gw, "alice"), 101)):
            c, r = T.ws_handshake(gw, pa + "api/kernels/k/channels",
                                  {"Host": host(gw, "alice"), "Cookie": T.jar_header(ajar), "Origin": origin})
            c.close()
            tap.ok(r is not None and r.status == want, "PRX-22 (subdomain) Origin %s -> %d" % (origin, want), repr(r))
    else:
        tap.ok(False, "PRX-22 (subdomain) alice's host got a cookie through the login chain", repr(jars))
    gw.stop()


T.main(run)
