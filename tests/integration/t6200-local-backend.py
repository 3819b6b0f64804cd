#!/usr/bin/python3
"""The sandboxed `local` spawner backend with the real `minimal` image and the
real nbgate-init, driven on a real lws loop (tests/helpers/spawner_drive):
start -> the server answers through its socket; a file written through the
contents API survives stop/start; a restarted daemon re-adopts the running
sandbox (same shim pid, still answering); two users get distinct uids and
0700 homes and sockets; quota, bad user_options and a missing image fail
with messages that name the limit / field / the build command; no secret
from the environment reaches a progress or failure message.
Then (when the gateway takes `spawner: local`) the same through nbgate:
proxied /user/<u>/api/status, a 400 naming the field, a 4xx naming the
quota, and a second user kept out of the first one's server.

Needs root, build/nbgate-init and the `minimal` image in the store
(`nbgate image build images/recipes/minimal`); skips otherwise."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import nbgate_test as T  # noqa: E402

BUILD = os.environ.get("BUILD") or os.path.join(T.REPO, "build")
DRIVE = os.path.join(BUILD, "tests", "helpers", "spawner_drive")
INIT = os.path.join(BUILD, "nbgate-init")
STORE = os.environ.get("NBGATE_IMAGE_STORE") or "/var/cache/nbgate/images"
SECCOMP = os.path.join(T.REPO, "sandbox", "profiles", "default.json")
PROFILE = "small:minimal:1000:1024:0:none"
SECRET = "s3cr3t-token-value-0123456789"


def drive(state, mode, user, server="", options=None, extra=None, timeout_ms=60000,
          profiles=None, init=INIT):
    argv = [DRIVE, "--backend", "local", "--images", "minimal,vscode",
            "--image-store", STORE, "--seccomp", SECCOMP, "--env", "JUPYTERHUB_API_TOKEN=" + SECRET]
    for p in profiles or [PROFILE]:
        argv += ["--profile", p]
    if options is not None:
        argv += ["--options", options]
    argv += extra or []
    argv += [state, mode, user, server, str(timeout_ms)]
    env = dict(os.environ)
    env["NBGATE_INIT"] = init
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                       timeout=timeout_ms / 1000 + 30)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")








def unix_http_status(path, method, target, body=None):
    """(status, body bytes) of one request over a Unix socket."""
    return T.raw_status(T.unix_request(path, method, target, body))


def sock_of(state, slug):
    return os.path.join(state, "run", slug, "sock", "server.sock")


def test_lifecycle(tap, state):
    rc, out, err = drive(state, "start-detach", "alice")
    tap.ok(rc == 0, "start: the minimal image answers through its socket", out + err[-3000:])
    if rc != 0:
        raise T.SkipAll
    up = T.tagged_line(out, "READY") or ""
    tap.ok(up.startswith("unix:%s " % sock_of(state, "alice")),
           "upstream is <run>/sock/server.sock", up)
    pid = int(up.split()[1])
    tap.diag("ready after %s ms" % T.tagged_line(out, "READY_AFTER_MS"))
    for msg in ("image minimal ready", "sandbox up ("):
        tap.ok(msg in out, "progress: '%s'" % msg, out)
    tap.ok(SECRET not in out + err, "no secret in progress messages or logs")
    st, body = unix_http_status(sock_of(state, "alice"), "GET", "/user/alice/api/status")
    tap.is_(st, 200, "GET /user/alice/api/status answers 200")
    st, body = unix_http_status(sock_of(state, "alice"), "PUT", "/user/alice/api/contents/keep.txt",
                         json.dumps({"type": "file", "format": "text", "content": "kept 42"}))
    tap.in_(st, (200, 201), "contents API: file written", body[:300])
    tap.ok(not os.path.exists(os.path.join(state, "run", "alice", "sandbox.json")) or
           (os.stat(os.path.join(state, "run", "alice", "sandbox.json")).st_mode & 0o077) == 0,
           "the spec (it holds tokens) is root-only")

    # a restarted daemon adopts the running sandbox
    rc, out, err = drive(state, "adopt-detach", "alice")
    tap.ok(rc == 0 and "re-adopted" in out, "restart: the sandbox is re-adopted", out + err[-2000:])
    tap.is_(int((T.tagged_line(out, "READY") or "0 0").split()[1]), pid, "restart: same shim pid")
    tap.ok(T.pid_alive(pid), "restart: the shim still runs")
    st, _ = unix_http_status(sock_of(state, "alice"), "GET", "/user/alice/api/status")
    tap.is_(st, 200, "restart: the server still answers")
    return pid


def test_two_users(tap, state):
    rc, out, err = drive(state, "start-detach", "bob")
    tap.ok(rc == 0, "second user: started", out + err[-2000:])
    homes = [os.stat(os.path.join(state, "home", u)) for u in ("alice", "bob")]
    socks = [os.stat(os.path.join(state, "run", u, "sock")) for u in ("alice", "bob")]
    tap.ok(homes[0].st_uid != homes[1].st_uid and homes[0].st_uid != 0,
           "homes belong to distinct non-root uids", [h.st_uid for h in homes])
    tap.ok(all(h.st_mode & 0o777 == 0o700 for h in homes + socks), "homes and sock dirs are 0700")
    tap.is_([s.st_uid for s in socks], [h.st_uid for h in homes], "sock dir uid = home uid")
    run = os.stat(os.path.join(state, "run", "alice"))
    tap.ok(run.st_uid == 0 and run.st_mode & 0o777 == 0o700, "run dir is root 0700")
    # bob's uid cannot open alice's home or socket from the host either
    probe = ("import os,socket,sys\n"
             "os.setgroups([]); os.setgid(%d); os.setuid(%d)\n"
             "r=[]\n"
             "try: os.listdir(sys.argv[1]); r.append('home-open')\n"
             "except PermissionError: pass\n"
             "s=socket.socket(socket.AF_UNIX)\n"
             "try: s.connect(sys.argv[2]); r.append('sock-open')\n"
             "except PermissionError: pass\n"
             "print(','.join(r) or 'denied')\n") % (homes[1].st_gid, homes[1].st_uid)
    p = subprocess.run(["/usr/bin/python3", "-c", probe, os.path.join(state, "home", "alice"),
                        sock_of(state, "alice")], stdout=subprocess.PIPE, timeout=20)
    tap.is_(p.stdout.decode().strip(), "denied", "bob's uid reaches neither alice's home nor socket")
    rc, out, err = drive(state, "adopt-stop", "bob")
    tap.ok(rc == 0 and "STOPPED" in out, "second user: stopped", out + err[-2000:])


def test_rejections(tap, state):
    # quota: alice already runs one server
    rc, out, err = drive(state, "expect-fail", "alice", "second", extra=["--quota", "1:0:0:0"])
    msg = T.tagged_line(out, "FAILED") or ""
    tap.ok(rc == 0 and "at most 1 running servers per user (1 running)" in msg,
           "quota: a second server is refused, naming the limit and the use", out)
    rc, out, err = drive(state, "expect-fail", "alice", "third",
                         extra=["--quota", "0:1500:0:0"])
    tap.ok("CPU limit 1.50 CPUs per user (1.00 CPUs in use" in (T.tagged_line(out, "FAILED") or ""),
           "quota: CPU limit named", out)
    # bad user_options, through the public check and through start
    rc, out, err = drive(state, "check-options", "alice", options='{"cmd": "/bin/sh"}')
    tap.ok(rc == 1 and "user_options.cmd: unknown option (allowed: profile, image)" in out,
           "check_user_options names the field", out)
    rc, out, err = drive(state, "expect-fail", "alice", "x", options='{"profile": "huge"}')
    tap.ok("user_options.profile: unknown profile 'huge' (allowed: small)" in out,
           "start with an unknown profile names the field and the allowed values", out)
    rc, out, err = drive(state, "expect-fail", "alice", "x", options='{"image": "evil"}')
    tap.ok("user_options.image: unknown image 'evil'" in out, "unknown image named", out)
    # an image that is allowed by config but not built
    rc, out, err = drive(state, "expect-fail", "carol", "", profiles=[
        "nobuilt:no-such-image-xyz:1000:1024:0:none"])
    msg = T.tagged_line(out, "FAILED") or ""
    tap.ok(rc == 0 and "not found" in msg and "nbgate image build" in msg,
           "missing image: failed, says how to build it", out)
    tap.ok(SECRET not in out + err, "no secret in failure messages")
    # a sandbox setup step that fails is reported by name (status pipe), with the log
    faults = os.path.join(BUILD, "tests", "sbx", "nbgate-init-faults")
    if not os.access(faults, os.X_OK):
        tap.skip("setup failure names the step", "nbgate-init-faults not built")
        return
    rc, out, err = drive(state, "expect-fail", "dave", "", init=faults,
                         extra=["--fail-step", "pivot_root"])
    msg = T.tagged_line(out, "FAILED") or ""
    tap.ok(rc == 0 and "sandbox setup failed at step 'pivot_root'" in msg,
           "setup failure: failed, naming the step", out + err[-2000:])
    tap.ok("last output:" in msg, "setup failure: quotes the shim's log", msg)
    with open("/proc/mounts") as f:
        tap.ok(os.path.join(state, "run", "dave") not in f.read(),
               "setup failure: nothing left mounted")


def test_restart_keeps_files(tap, state, pid):
    rc, out, err = drive(state, "adopt-stop", "alice")
    tap.ok(rc == 0 and "STOPPED" in out, "stop: stopped", out + err[-2000:])
    tap.ok(T.wait_until(lambda: not T.pid_alive(pid), 10), "stop: the shim is gone")
    with open("/proc/mounts") as f:
        tap.ok(os.path.join(state, "run", "alice", "rootfs") not in f.read(),
               "stop: the rootfs is unmounted")
    rc, out, err = drive(state, "start-detach", "alice")
    tap.ok(rc == 0, "start again", out + err[-2000:])
    st, body = unix_http_status(sock_of(state, "alice"), "GET",
                         "/user/alice/api/contents/keep.txt?content=1&format=text&type=file")
    tap.ok(st == 200 and b"kept 42" in body, "the file survived stop/start", body[:300])
    rc, out, err = drive(state, "adopt-stop", "alice")
    tap.ok(rc == 0, "stopped at the end", out + err[-2000:])


# ---- through the gateway ----------------------------------------------------

def api(gw, method, path, tok, body=None):
    data = json.dumps(body).encode() if body is not None else None
    h = {"Authorization": "token " + tok}
    if data is not None:
        h["Content-Type"] = "application/json"
    return gw.request(method, path, headers=h, body=data)


def wait_status(gw, tok, user, want, timeout=60):
    return T.wait_until(lambda: api(gw, "GET", "/user/%s/api/status" % user, tok).status == want,
                        timeout, 0.2)


def sandbox_pids(state_dir, slug):
    """Processes whose command line names the server's spec (shim and PID 1)."""
    needle = os.path.join(state_dir, "run", slug, "sandbox.json").encode()
    pids = []
    for p in os.listdir("/proc"):
        try:
            if p.isdigit() and needle in open("/proc/%s/cmdline" % p, "rb").read():
                pids.append(int(p))
        except OSError:
            pass
    return sorted(pids)


def mounted_under(path):
    with open("/proc/mounts") as f:
        return any(" %s/" % path in ln for ln in f)


def gateway_checks(tap, gw):
    ta, tb = gw.create_token("alice"), gw.create_token("bob")
    r = api(gw, "POST", "/hub/api/users/alice/server", ta, {"gpu": 1})
    tap.ok(r.status == 400 and b"user_options.gpu" in r.body,
           "gateway: bad user_options -> 400 naming the field", repr(r)[:300])
    r = api(gw, "POST", "/hub/api/users/alice/server", ta, {})
    tap.in_(r.status, (201, 202), "gateway: POST /hub/api/users/alice/server", repr(r)[:300])
    tap.ok(wait_status(gw, ta, "alice", 200), "gateway: proxied /user/alice/api/status answers",
           gw.logs()[-2000:])
    r = api(gw, "PUT", "/user/alice/api/contents/gw.txt", ta,
            {"type": "file", "format": "text", "content": "through the gateway"})
    tap.in_(r.status, (200, 201), "gateway: file written through the contents API", repr(r)[:300])
    r = api(gw, "GET", "/user/alice/api/status", tb)
    tap.in_(r.status, (403, 404), "gateway: bob cannot reach alice's server", repr(r)[:300])
    r = api(gw, "POST", "/hub/api/users/alice/servers/two", ta, {})
    tap.ok(400 <= r.status < 500 and b"at most 1 running servers" in r.body,
           "gateway: quota exceeded -> 4xx naming the limit", repr(r)[:300])
    r = api(gw, "POST", "/hub/api/users/bob/server", tb, {"profile": "nobuilt"})
    ok = T.wait_until(lambda: b"nbgate image build" in api(
        gw, "GET", "/hub/api/users/bob", tb).body, 20, 0.2) or b"nbgate image build" in r.body
    tap.ok(ok, "gateway: a missing image fails, saying how to build it", repr(r)[:300])

    # restart the daemon: the sandbox is adopted, same processes, still answering
    before = sandbox_pids(gw.state_dir, "alice")
    gw.proc.stop()
    T.Gateway.live.remove(gw)  # start() adds it again
    gw.start()
    after = sandbox_pids(gw.state_dir, "alice")
    tap.ok(before and before == after, "restart: the same sandbox processes live on",
           "%s %s" % (before, after))
    tap.ok(wait_status(gw, ta, "alice", 200, 20), "restart: adopted, answers through the gateway")

    # stop/start keeps the file
    r = api(gw, "DELETE", "/hub/api/users/alice/server", ta)
    tap.in_(r.status, (202, 204), "gateway: DELETE the server", repr(r)[:300])
    tap.ok(wait_status(gw, ta, "alice", 503, 30), "gateway: stopped -> 503")
    # 503 comes as soon as the route is dropped; the stop may still be finishing (409)
    res = []
    T.wait_until(lambda: res.append(api(gw, "POST", "/hub/api/users/alice/server", ta, {}))
                 or res[-1].status != 409, 20, 0.1)
    r = res[-1]
    tap.in_(r.status, (201, 202), "gateway: start again once stopped", repr(r.body)[:300])
    tap.ok(wait_status(gw, ta, "alice", 200), "gateway: started again",
           repr(r.body)[:600] + "\n" + "\n".join(ln for ln in gw.proc.stderr_text().splitlines()
                                           if "lws" not in ln)[-3000:])
    r = api(gw, "GET", "/user/alice/api/contents/gw.txt?content=1&format=text&type=file", ta)
    tap.ok(r.status == 200 and b"through the gateway" in r.body,
           "gateway: the file survived stop/start", repr(r)[:300])
    api(gw, "DELETE", "/hub/api/users/alice/server", ta)
    tap.ok(wait_status(gw, ta, "alice", 503, 30), "gateway: stopped at the end")


def through_gateway(tap):
    gw = T.Gateway(tap, users=[("alice", T.DEFAULT_PASSWORD, False),
                               ("bob", T.DEFAULT_PASSWORD, False)], name="gw-local",
                   config={"spawner": "local", "spawn_timeout": "60s", "images": ["minimal"],
                           "profiles": [{"name": "small", "display_name": "Small",
                                         "image": "minimal", "cpu": 1, "memory": "1G"},
                                        {"name": "nobuilt", "display_name": "Not built",
                                         "image": "no-such-image-xyz", "cpu": 1,
                                         "memory": "1G"}],
                           "quota": {"max_servers": 1, "max_cpu": 4, "max_memory": "8G",
                                     "max_gpus": 0}})
    gw.cfg.pop("server_cmd", None)
    with open(gw.config_path, "w") as f:
        json.dump(gw.cfg, f, indent=1)
    try:
        gw.start()
    except Exception as e:
        tap.ok(False, "gateway with spawner=local starts", repr(e))
        return
    try:
        tap.run("gateway", gateway_checks, tap, gw)
    finally:
        # never let the harness remove a state dir under live sandboxes
        for u in ("alice", "bob"):
            try:
                api(gw, "DELETE", "/hub/api/users/%s/server" % u, gw.create_token(u))
            except Exception:
                pass
        T.wait_until(lambda: not mounted_under(gw.state_dir), 20, 0.2)
        if mounted_under(gw.state_dir):
            gw.proc.stop()
            for u in ("alice", "bob"):
                drive(gw.state_dir, "adopt-stop", u, timeout_ms=20000)
            gw.stop(check=False)
        else:
            gw.stop()

def main(tap):
    if os.geteuid() != 0:
        T.skip_all("the local backend needs root")
    if not os.access(INIT, os.X_OK) or not os.access(DRIVE, os.X_OK):
        T.skip_all("build/nbgate-init or spawner_drive not built")
    try:
        with open(os.path.join(STORE, "index.json")) as f:
            names = [m.get("annotations", {}).get("org.opencontainers.image.ref.name")
                     for m in json.load(f).get("manifests", [])]
    except (OSError, ValueError):
        names = []
    if "minimal" not in names:
        T.skip_all("image 'minimal' not in %s (nbgate image build images/recipes/minimal)"
                   % STORE)
    tmp = tempfile.mkdtemp(prefix="nbgate-t6200-")
    state = os.path.join(tmp, "st")
    os.mkdir(state, 0o700)
    try:
        pid = tap.run("lifecycle", test_lifecycle, tap, state)
        tap.run("two users", test_two_users, tap, state)
        tap.run("rejections", test_rejections, tap, state)
        if pid:
            tap.run("restart keeps files", test_restart_keeps_files, tap, state, pid)
        through_gateway(tap)
    finally:
        # stop whatever a failed step left running, then remove the state
        for u in ("alice", "bob"):
            drive(state, "adopt-stop", u, timeout_ms=20000)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    T.main(main)
