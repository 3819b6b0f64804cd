#!/usr/bin/python3
"""Issue 3 gateway integration with the process backend and the recording
fake server (the sandboxed local backend has its own tests, t62xx): the new
config keys (`nbgate config print`, spawner=local by default), user_options
checked against the configured images, the server model's new fields, the
logs endpoint (bounds, scopes, 404s), the server environment and the
spawn form on the home page."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import nbgate_test as T  # noqa: E402


def config_print(tap):
    tmp = T.tempfile.mkdtemp(prefix="nbgate-test-")
    path = os.path.join(tmp, "c.json")
    with open(path, "w") as f:
        json.dump({"state_dir": os.path.join(tmp, "state"),
                   "quota": {"max_servers": 3},
                   "profiles": [{"name": "small", "image": "minimal", "cpu": 0.5,
                                 "memory": "512M"}]}, f)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NBGATE_")}
    p = T.subprocess.run(T.cli_argv(T.nbgate_path(), path, ["config", "print"]),
                         capture_output=True, text=True, env=env, timeout=30)
    tap.is_(p.returncode, 0, "config print exits 0")
    try:
        c = json.loads(p.stdout)
    except ValueError:
        c = {}
    tap.is_(c.get("spawner"), "local", "the default spawner is local")
    tap.is_([x.get("name") for x in c.get("profiles", [])], ["small"], "profiles printed")
    tap.is_((c.get("profiles") or [{}])[0].get("memory"), "512M", "profile memory printed")
    tap.is_((c.get("profiles") or [{}])[0].get("cpu"), 0.5, "profile cpu printed")
    tap.is_(c.get("quota", {}).get("max_servers"), 3, "quota printed")
    tap.is_(c.get("images"), ["jupyterlab", "vscode", "minimal"], "images default")
    tap.is_(c.get("image_store"), "/var/cache/nbgate/images", "image_store default")
    tap.is_(c.get("sandbox_uid_base"), 200000, "sandbox_uid_base default")
    tap.ok(str(c.get("seccomp_profile", "")).endswith("/sandbox/profiles/default.json"),
           "seccomp_profile next to the executable", c.get("seccomp_profile"))
    # a bad key names itself
    with open(path, "w") as f:
        json.dump({"state_dir": os.path.join(tmp, "state"),
                   "profiles": [{"name": "x", "image": "minimal", "cpu": 1, "memory": "1G",
                                 "command": "/bin/sh"}]}, f)
    p = T.subprocess.run(T.cli_argv(T.nbgate_path(), path, ["config", "print"]),
                         capture_output=True, text=True, env=env, timeout=30)
    tap.ok(p.returncode != 0 and "profiles[0].command" in p.stderr,
           "unknown profile key refused, named", p.stderr[-300:])
    T.shutil.rmtree(tmp, ignore_errors=True)


def user_options(tap, gw, tok):
    r = gw.api("POST", "/users/alice/servers/img", token=tok, json_body={"image": "evil/x:1"})
    msg = r.json().get("message", "") if r.status_code == 400 else ""
    tap.ok(r.status_code == 400 and "user_options.image" in msg and "minimal" in msg,
           "image outside the configured list -> 400 naming the field and the choices",
           "%s %s" % (r.status_code, r.text[:300]))
    r = gw.start_server("alice", tok, server="img", options={"image": "minimal"})
    tap.in_(r.status_code, (201, 202), "configured image accepted")
    r = gw.api("GET", "/users/alice", token=tok)
    srv = r.json().get("servers", {}).get("img", {}) if r.status_code == 200 else {}
    tap.ok("profile" in srv and "server_type" in srv and "message" in srv,
           "server model has profile, server_type, message", json.dumps(srv)[:400])
    tap.is_(srv.get("user_options"), {"image": "minimal"}, "user_options kept in the model")


def logs(tap, gw, tok, bob_tok, admin_tok):
    r = gw.request("GET", "/user/alice/api/status", headers={"Authorization": "token " + tok})
    tap.is_(r.status, 200, "alice's default server answers through the proxy")
    # the fake writes little: append known lines to its log (what the
    # backend's server.log holds is the server's stdout/stderr)
    log = os.path.join(gw.state_dir, "run", "alice", "server.log")
    tap.ok(os.path.isfile(log), "server.log exists", log)
    with open(log, "a") as f:
        for i in range(300):
            f.write("t6300 line %d\n" % i)
    r = gw.api("GET", "/users/alice/server/logs", token=tok)
    tap.ok(r.status_code == 200 and r.headers.get("Content-Type", "").startswith("text/plain"),
           "logs of the default server: 200 text/plain", "%s %s" % (r.status_code, r.headers))
    lines = r.text.splitlines()
    tap.ok(len(lines) == 200 and lines[0] == "t6300 line 100" and lines[-1] == "t6300 line 299",
           "default tail is the last 200 lines", repr(lines[:2] + lines[-2:]))
    r = gw.api("GET", "/users/alice/server/logs?tail=1", token=tok)
    tap.is_(r.text, "t6300 line 299\n", "tail=1 gives the last line")
    for bad in ("0", "10001", "-1", "x", ""):
        r = gw.api("GET", "/users/alice/server/logs?tail=" + bad, token=tok)
        tap.is_(r.status_code, 400, "tail=%r -> 400" % bad)
    r = gw.api("GET", "/users/alice/server/logs?tail=10000", token=tok)
    tap.is_(r.status_code, 200, "tail=10000 accepted")
    r = gw.api("GET", "/users/alice/servers/img/logs", token=tok)
    tap.is_(r.status_code, 200, "named server's logs")
    r = gw.api("GET", "/users/alice/servers/nosuch/logs", token=tok)
    tap.is_(r.status_code, 404, "unknown server -> 404")
    r = gw.api("GET", "/users/alice/server/logs", token=bob_tok)
    tap.in_(r.status_code, (403, 404), "another user may not read alice's logs")
    r = gw.api("GET", "/users/alice/server/logs", token=admin_tok)
    tap.is_(r.status_code, 200, "an admin may")
    r = gw.api("GET", "/users/alice/server/logs")
    tap.in_(r.status_code, (401, 403), "anonymous may not")


def environment(tap, gw):
    env = gw.backend_env("alice") or {}
    want = gw.public_url + "/user/alice/"
    tap.is_(env.get("JUPYTERHUB_SERVICE_URL"), want, "JUPYTERHUB_SERVICE_URL set")
    tap.ok(env.get("JUPYTERHUB_API_TOKEN") and env.get("NBGATE_API_TOKEN"),
           "token variables kept")
    tap.ok(env.get("JUPYTERHUB_API_TOKEN", "x") not in gw.logs(), "the token is not logged")


def home_page(tap, gw):
    s, xsrf, r = gw.login("alice")
    r = s.get(gw.url("/hub/home"), timeout=10)
    body = r.text
    tap.ok(r.status_code == 200 and 'class="spawn"' in body and 'name="server"' in body,
           "home page has the spawn form", body[:500])
    tap.ok('name="profile"' not in body, "no profile select for the process backend")
    tap.ok("<script>" not in body and "onclick" not in body, "no inline script")
    tap.ok("img" in body and "running" in body, "the named server is listed with its state")
    js = s.get(gw.url("/hub/static/app.js"), timeout=10).text
    tap.ok("spawn" in js and "dataset.options" in js, "app.js drives the spawn form")


def run(tap):
    config_print(tap)
    gw = T.Gateway(tap, users=[("alice", T.DEFAULT_PASSWORD, False),
                               ("bob", T.DEFAULT_PASSWORD, False),
                               ("root", T.DEFAULT_PASSWORD, True)],
                   config={"images": ["minimal", "jupyterlab"]}).start()
    tok = gw.create_token("alice")
    bob_tok = gw.create_token("bob")
    admin_tok = gw.create_token("root")
    r = gw.start_server("alice", tok)
    tap.in_(r.status_code, (201, 202), "alice's default server starts")
    user_options(tap, gw, tok)
    logs(tap, gw, tok, bob_tok, admin_tok)
    environment(tap, gw)
    home_page(tap, gw)


if __name__ == "__main__":
    T.main(run)
