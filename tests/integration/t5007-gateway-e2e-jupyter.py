#!/usr/bin/python3
"""End to end with the real Jupyter Server (Debian 12, jupyter_server 1.23)
behind nbgate's `process` backend: log in, start alice's server through
the API, wait for the progress stream's ready event, GET
/user/alice/api/status through the proxy, PRX-13 file-name round trips
through the contents API, path traversal refused, a kernel runs 1+1 over
its channels WebSocket through the gateway.

Modes:
  default                 nbgate with its default server_cmd (Jupyter)
  NBGATE_E2E_SERVER_CMD=harness   nbgate with the harness's Jupyter command
  NBGATE_E2E_DIRECT=1     only the control: no nbgate, Jupyter on a unix
                          socket, same client code (always run first)
"""
import json
import os
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import nbgate_test as T  # noqa: E402
import jupyter as J  # noqa: E402
from jupyter import Client  # noqa: E402

NAMES = ["a+b.ipynb", "a b.ipynb", "a%2Fb.ipynb", "50%.ipynb", "q?.ipynb", "h#.ipynb", "\u00fc.ipynb"]


def notebook(text):
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {},
            "cells": [{"cell_type": "markdown", "id": "c1", "metadata": {}, "source": text}]}


def contents(tap, cl):
    for name in NAMES:
        q = T.quote_segment(name)
        marker = "content of %s %s" % (name, uuid.uuid4().hex[:8])
        r = cl.req("PUT", "api/contents/" + q, body={"type": "notebook", "format": "json",
                                                     "content": notebook(marker)})
        tap.in_(r.status, (200, 201), "PRX-13 PUT %r" % name, r.text()[:300])
        r = cl.req("GET", "api/contents/" + q + "?content=1")
        j = r.json() or {}
        src = ((j.get("content") or {}).get("cells") or [{}])[0].get("source")
        tap.ok(r.status == 200 and j.get("name") == name and j.get("path") == name and src == marker,
               "PRX-13 GET %r round-trips (name, path, content)" % name,
               "status %s name %r path %r src %r" % (r.status, j.get("name"), j.get("path"), src))
    r = cl.req("GET", "api/contents?content=1")
    listed = sorted(x["name"] for x in (r.json() or {}).get("content") or [])
    tap.ok(all(n in listed for n in NAMES), "PRX-13 directory listing has every name exactly", repr(listed))
    tap.ok(not any("/" in n for n in listed) and "a" not in listed, "PRX-13 no file/dir created by "
           "splitting a%2Fb", repr(listed))
    for name in NAMES:
        r = cl.req("DELETE", "api/contents/" + T.quote_segment(name))
        tap.is_(r.status, 204, "PRX-13 DELETE %r" % name)
    for p in ("api/contents/..%2F..%2Fetc%2Fpasswd", "api/contents/../../etc/passwd",
              "api/contents/%2e%2e/%2e%2e/etc/passwd"):
        r = cl.req("GET", p)
        tap.ok(r.status in (400, 403, 404) and b"root:" not in r.body, "PRX-13 %s -> 400/404" % p,
               "%s %r" % (r.status, r.body[:200]))


def kernel(tap, cl, label=""):
    r = cl.req("POST", "api/kernels", body={"name": "python3"})
    kid = (r.json() or {}).get("id")
    tap.ok(r.status == 201 and kid, "e2e%s: kernel started (POST api/kernels)" % label, r.text()[:300])
    if not kid:
        return
    result = None
    try:
        result = J.execute(cl, kid, "1+1")
    except Exception as e:
        tap.diag("kernel websocket: %r" % e)
    tap.is_(result, "2", "e2e%s: 1+1 over the kernel's channels WebSocket -> 2" % label)
    r = cl.req("DELETE", "api/kernels/" + kid)
    tap.is_(r.status, 204, "e2e%s: kernel shut down" % label)


def direct(tap):
    tmp = tempfile.mkdtemp(prefix="nbgate-e2e-direct-")
    sock = os.path.join(tmp, "jupyter.sock")
    home = os.path.join(tmp, "home")
    os.makedirs(home)
    argv = [a.replace("{sock}", sock).replace("{base_url}", "/user/alice/").replace("{home}", home)
            for a in T.jupyter_server_cmd()]
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=os.path.join(tmp, "runtime"))
    p = T.Process(argv, os.path.join(tmp, "jupyter"), cwd=home, env=env)
    cl = Client("/user/alice/", {}, unix=sock)
    ok = T.wait_until(lambda: cl.req("GET", "api/status").status == 200, 30, 0.2)
    tap.ok(ok, "direct: jupyter_server answers on its unix socket", p.stderr_text()[-2000:])
    if ok:
        contents(tap, cl)
        kernel(tap, cl, " (direct)")
    p.stop()
    if not os.environ.get("NBGATE_TEST_KEEP"):
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)


def through_gateway(tap):
    cmd = os.environ.get("NBGATE_E2E_SERVER_CMD")
    server_cmd = T.jupyter_server_cmd() if cmd == "harness" else None
    try:
        gw = T.Gateway(tap, users=[("alice", T.DEFAULT_PASSWORD, False)], server_cmd=server_cmd, name="gw-e2e",
                       config={"spawn_timeout": "60s"})
        if server_cmd is None:
            gw.cfg.pop("server_cmd", None)  # the gateway's default: Jupyter Server
            with open(gw.config_path, "w") as f:
                json.dump(gw.cfg, f, indent=1)
        gw.start()
    except Exception as e:
        tap.ok(False, "e2e: gateway starts", repr(e))
        return
    s, x, r = gw.login("alice")
    tap.ok(r.status_code in (302, 303) and x, "e2e: alice logs in through the form (xsrf %s)" % bool(x),
           "%s %s" % (r.status_code, r.text[:200]))
    t0 = time.monotonic()
    r = s.post(gw.url("/hub/api/users/alice/server"), json={}, allow_redirects=False,
               headers={"X-XSRFToken": x or "", "Origin": gw.public_url, "Sec-Fetch-Site": "same-origin"})
    tap.in_(r.status_code, (201, 202), "e2e: POST /hub/api/users/alice/server (cookie + xsrf)", r.text[:300])
    tok = gw.create_token("alice")
    ready, events = J.progress_ready(gw, tok, "alice", "", 60)
    tap.ok(ready, "e2e: progress stream ends with a ready event (%.1f s)" % (time.monotonic() - t0),
           repr(events)[:800] + "\n" + gw.proc.stderr_text()[-1500:])
    r = s.get(gw.url("/user/alice/api/status"), allow_redirects=False)
    tap.ok(r.status_code == 200 and "started" in r.text, "e2e: GET /user/alice/api/status through the proxy "
           "(cookie)", "%s %s" % (r.status_code, r.text[:300]))
    cl = Client("/user/alice/", {"Authorization": "token " + tok}, tcp=(gw.host, gw.port),
                host_header=gw.public_host)
    contents(tap, cl)
    kernel(tap, cl, " (token)")
    ck = Client("/user/alice/", {"Cookie": T.cookie_header(s), "X-XSRFToken": x or ""}, tcp=(gw.host, gw.port),
                host_header=gw.public_host, origin=gw.public_url)
    kernel(tap, ck, " (cookie + Origin)")
    r = cl.req("PUT", "api/contents/x.html", body={"type": "file", "format": "text", "content": "<b>x</b>"})
    r = cl.req("GET", "files/x.html")
    csp = ",".join(r.header_all("Content-Security-Policy"))
    tap.ok(r.status == 200 and "frame-ancestors 'none'" in csp and "frame-ancestors 'self'" not in csp,
           "JH-14 Jupyter's own page through the gateway: CSP frame-ancestors 'none' (single-origin mode)", csp)
    # a browser navigating from another site carries the session cookie
    # (SameSite=Lax allows top-level GETs); token clients are exempt
    r = ck.req("GET", "files/x.html", headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate",
                                                "Sec-Fetch-Dest": "document"})
    tap.ok(r.status == 403, "JH-14 GET /user/alice/files/x.html cross-site without Referer -> 403", repr(r)[:300])
    r = ck.req("GET", "files/x.html", headers={"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "navigate",
                                                "Sec-Fetch-Dest": "document"})
    tap.ok(r.status == 200, "JH-14 same-origin GET of files/x.html with the cookie -> 200", repr(r)[:300])
    r = s.delete(gw.url("/hub/api/users/alice/server"), allow_redirects=False,
                 headers={"X-XSRFToken": x or "", "Origin": gw.public_url, "Sec-Fetch-Site": "same-origin"})
    tap.in_(r.status_code, (202, 204), "e2e: DELETE /hub/api/users/alice/server", r.text[:300])
    ok = T.wait_until(lambda: gw.request("GET", "/user/alice/api/status",
                                         headers={"Authorization": "token " + tok}).status == 503, 20, 0.2)
    tap.ok(ok, "e2e: after stop, /user/alice/api/status -> 503 JSON for API clients")
    r = gw.request("GET", "/user/alice/lab", headers={"Authorization": "token " + tok, "Accept": "text/html"})
    tap.ok(r.status in (200, 503) and "text/html" in (r.header("Content-Type") or ""),
           "e2e: browser on a stopped server gets an HTML page offering to start it", repr(r)[:300])
    gw.stop()


def run(tap):
    # the control first: the same client code straight against Jupyter on
    # a unix socket; if this fails, the gateway rows below mean nothing
    direct(tap)
    if not os.environ.get("NBGATE_E2E_DIRECT"):
        through_gateway(tap)


T.main(run)
