#!/usr/bin/python3
"""The `process` spawner backend on a real lws loop (tests/helpers/spawner_drive):
readiness over a unix socket and a loopback port, stop kills the whole process
group, failures carry the exit status and the server's last output, the spawn
timeout, a killed server is noticed, the child's environment is built from
scratch, arguments are never split, and a gateway restart re-adopts a running
server (Jupyter Server when Debian's is installed)."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import nbgate_test as T  # noqa: E402

PY = "/usr/bin/python3"
BUILD = os.environ.get("BUILD") or os.path.join(T.REPO, "build")
DRIVE = os.path.join(BUILD, "tests", "helpers", "spawner_drive")

# A tiny HTTP server: records its argv and environment in $HOME, starts a
# child that ignores SIGTERM (only a group SIGKILL ends it), answers any request.
FAKE = r'''
import json, os, socket, subprocess, sys
kind, addr = sys.argv[1], sys.argv[2]
home = os.environ["HOME"]
with open(os.path.join(home, "seen.json"), "w") as f:
    json.dump({"argv": sys.argv, "env": dict(os.environ), "pgid": os.getpgid(0),
               "pid": os.getpid(), "sid": os.getsid(0)}, f)
child = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)"])
with open(os.path.join(home, "child.pid"), "w") as f:
    f.write(str(child.pid))
if kind == "unix":
    s = socket.socket(socket.AF_UNIX)
    s.bind(addr)
else:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", int(addr)))
s.listen(16)
while True:
    c, _ = s.accept()
    c.recv(65536)
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
    c.close()
'''


def drive(state, mode, user, server, cmd, timeout_ms=20000, env=None):
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run([DRIVE, state, mode, user, server, str(timeout_ms), "--"] + cmd,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e,
                       timeout=timeout_ms / 1000 + 30)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")








def test_unix_stop_kills_group(tap, tmp):
    state = os.path.join(tmp, "s1")
    os.mkdir(state)
    cmd = [PY, "-c", FAKE, "unix", "{sock}", "a;touch %s/pwn" % tmp, "{base_url}", "{user}"]
    rc, out, err = drive(state, "start-stop", "alice", "", cmd,
                         env={"NBGATE_TEST_GATEWAY_SECRET": "leak"})
    tap.ok(rc == 0, "unix: start, ready, stop", err[-2000:])
    tap.ok((T.tagged_line(out, "READY") or "").startswith("unix:%s/run/alice/server.sock" % state),
           "unix: upstream is the socket in the run dir", out)
    tap.diag("ready after %s ms" % T.tagged_line(out, "READY_AFTER_MS"))
    seen = json.load(open(os.path.join(state, "home", "alice", "seen.json")))
    tap.is_(seen["argv"][3:], ["a;touch %s/pwn" % tmp, "/user/alice/", "alice"],
            "argv: one element per argument, no shell, placeholders expanded")
    tap.ok(not os.path.exists(os.path.join(tmp, "pwn")), "argv: nothing ran a shell")
    tap.ok("NBGATE_TEST_GATEWAY_SECRET" not in seen["env"],
           "env: the gateway's environment does not reach the server")
    tap.is_(seen["env"].get("HOME"), os.path.join(state, "home", "alice"), "env: HOME")
    tap.is_(seen["sid"], seen["pid"], "the server leads its own session")
    child = int(open(os.path.join(state, "home", "alice", "child.pid")).read())
    tap.ok(T.wait_until(lambda: not T.pid_alive(child), 5),
           "stop: a child that ignores SIGTERM is killed with its group")
    mode = os.stat(os.path.join(state, "run", "alice")).st_mode & 0o777
    tap.is_(mode, 0o700, "run dir is 0700")
    tap.ok("STOPPED server stopped" in out, "stop: stopped event", out)


def test_port(tap, tmp):
    state = os.path.join(tmp, "s2")
    os.mkdir(state)
    cmd = [PY, "-c", FAKE, "tcp", "{port}"]
    rc, out, err = drive(state, "start-stop", "bob", "lab", cmd)
    tap.ok(rc == 0, "port: start, ready, stop", err[-2000:])
    tap.ok((T.tagged_line(out, "READY") or "").startswith("127.0.0.1:"), "port: upstream is loopback",
           out)
    tap.ok(os.path.isdir(os.path.join(state, "run", "bob--lab")), "named server run dir")


def test_stop_all(tap, tmp):
    state = os.path.join(tmp, "s7")
    os.mkdir(state)
    cmd = [PY, "-c", FAKE, "unix", "{sock}"]
    rc, out, err = drive(state, "start-stopall", "gina", "", cmd)
    tap.ok(rc == 0, "shutdown: spawner_stop_all stops and reaps without the loop",
           out + err[-2000:])
    child = int(open(os.path.join(state, "home", "gina", "child.pid")).read())
    tap.ok(T.wait_until(lambda: not T.pid_alive(child), 5), "shutdown: the group is gone")


def test_exit_reported(tap, tmp):
    state = os.path.join(tmp, "s3")
    os.mkdir(state)
    cmd = [PY, "-c", "import sys; print('token=SECRET123 boom-marker', file=sys.stderr);"
           " sys.exit(3)", "{sock}"]
    rc, out, err = drive(state, "expect-fail", "carol", "", cmd)
    tap.ok(rc == 0, "early exit: failed event", out + err[-2000:])
    msg = T.tagged_line(out, "FAILED") or ""
    tap.ok("exited with status 3 before it answered" in msg, "early exit: status in message",
           msg)
    tap.ok("boom-marker" in msg, "early exit: last output in message", msg)
    tap.ok("SECRET123" not in msg, "early exit: token redacted in message", msg)

    rc, out, err = drive(state, "expect-fail", "carol", "x", ["/nonexistent/cmd", "{sock}"])
    tap.ok(rc == 0, "missing command: synchronous failure", out)
    tap.ok("/nonexistent/cmd" in (T.tagged_line(out, "FAILED") or ""), "missing command: named", out)


def test_timeout(tap, tmp):
    state = os.path.join(tmp, "s4")
    os.mkdir(state)
    marker = "nbgate-t2001-sleeper-%d" % os.getpid()
    cmd = [PY, "-c", "import time; time.sleep(120)", "{sock}", marker]
    rc, out, err = drive(state, "expect-fail", "dave", "", cmd, timeout_ms=2000)
    tap.ok(rc == 0, "timeout: failed event", out + err[-2000:])
    tap.ok("did not answer within 1000 ms" in (T.tagged_line(out, "FAILED") or ""),
           "timeout: message says so", out)

    def sleeper_gone():
        p = subprocess.run(["pgrep", "-f", marker], stdout=subprocess.PIPE)
        return p.returncode != 0
    tap.ok(T.wait_until(sleeper_gone, 5), "timeout: the server process was killed")


def test_killed_noticed(tap, tmp):
    state = os.path.join(tmp, "s5")
    os.mkdir(state)
    cmd = [DRIVE, state, "start-watch", "erin", "", "20000", "--", PY, "-c", FAKE, "unix",
           "{sock}"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    pid = None
    for raw in p.stdout:
        ln = raw.decode()
        if ln.startswith("READY "):
            pid = int(ln.split()[2])
            break
    tap.ok(pid, "watch: server ready")
    if pid:
        os.kill(pid, signal.SIGKILL)
    rest = p.stdout.read().decode()
    rc = p.wait(30)
    tap.ok(rc == 0, "watch: the driver saw the server end", rest)
    tap.ok("killed by signal 9" in (T.tagged_line(rest, "FAILED") or ""), "watch: failed with signal",
           rest)


def test_adopt_jupyter(tap, tmp):
    if subprocess.run([PY, "-c", "import jupyter_server"]).returncode != 0:
        tap.skip("adopt: jupyter server", "python3-jupyter-server not installed")
        return
    state = os.path.join(tmp, "s6")
    os.mkdir(state)
    cmd = T.jupyter_server_cmd()
    if os.geteuid() == 0:
        cmd = cmd + ["--allow-root"]
    rc, out, err = drive(state, "start-detach", "frank", "", cmd, timeout_ms=60000)
    tap.ok(rc == 0, "jupyter: ready on its unix socket", out + err[-3000:])
    ready = (T.tagged_line(out, "READY") or "- 0").split()
    sock, pid = ready[0][len("unix:"):], int(ready[1])
    tap.diag("jupyter ready after %s ms" % T.tagged_line(out, "READY_AFTER_MS"))
    try:
        resp = T.unix_request(sock, "GET", "/user/frank/api/status", timeout=5)
    except OSError as e:
        resp = repr(e).encode()
    tap.ok(resp.startswith(b"HTTP/1.1 200"), "jupyter: GET /user/frank/api/status -> 200",
           resp[:300])
    tap.ok(T.pid_alive(pid), "detach: the server outlives the spawner")

    rc, out, err = drive(state, "adopt-stop", "frank", "", cmd, timeout_ms=30000)
    tap.ok(rc == 0, "restart: re-adopted and stopped", out + err[-3000:])
    tap.ok("re-adopted" in out, "restart: re-adoption announced with a ready event", out)
    tap.ok(T.wait_until(lambda: not T.pid_alive(pid), 5), "restart: the adopted server is gone")
    if T.pid_alive(pid):
        os.killpg(pid, signal.SIGKILL)

    # a row whose process died meanwhile becomes stopped, not running
    rc, out, err = drive(state, "start-detach", "frank", "", cmd, timeout_ms=60000)
    pid = int((T.tagged_line(out, "READY") or "- 0").split()[1])
    if pid:
        os.killpg(pid, signal.SIGKILL)
        T.wait_until(lambda: not T.pid_alive(pid), 5)
    rc, out, err = drive(state, "adopt-stop", "frank", "", cmd, timeout_ms=3000)
    tap.ok("was not running after gateway restart" in out, "restart: dead server -> stopped",
           out)


def run(tap):
    if not os.access(DRIVE, os.X_OK):
        T.skip_all("%s not built" % DRIVE)
    # Short state path: unix socket paths are limited to 107 bytes.
    tmp = tempfile.mkdtemp(prefix="t2001-", dir="/tmp")
    try:
        tap.run("unix", test_unix_stop_kills_group, tap, tmp)
        tap.run("port", test_port, tap, tmp)
        tap.run("stop_all", test_stop_all, tap, tmp)
        tap.run("exit", test_exit_reported, tap, tmp)
        tap.run("timeout", test_timeout, tap, tmp)
        tap.run("killed", test_killed_noticed, tap, tmp)
        tap.run("adopt", test_adopt_jupyter, tap, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


T.main(run)
