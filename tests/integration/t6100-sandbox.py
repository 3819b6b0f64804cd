#!/usr/bin/python3
"""nbgate-init end to end (real namespaces, as root): a busybox + sbx-probe
rootfs in a temp dir as the overlay lower dir, specs written here, the shim
run with fd 3 as a pipe. Covers SBX-1..11, 13, 14, 15, 18 (live half),
writes outside home/tmp, isolation between two sandboxes, port forwarding,
the server log, SIGTERM grace then kill, cleanup, memory and pids limits,
and net=none (only lo, host loopback unreachable)."""
import json
import os
import re
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import nbgate_test as T  # noqa: E402

BUILD = os.environ.get("BUILD") or os.path.join(T.REPO, "build")
INIT = os.path.join(BUILD, "nbgate-init")
INIT_FAULTS = os.path.join(BUILD, "tests", "sbx", "nbgate-init-faults")
PROBE = os.path.join(BUILD, "tests", "sbx", "sbx-probe")
PROFILE = os.path.join(T.REPO, "sandbox", "profiles", "default.json")
UID = 1500
BUSYBOX = os.environ.get("BUSYBOX", "/bin/busybox")
CG = "/sys/fs/cgroup"
SETUP_US = []


def make_rootfs(tmp):
    low = os.path.join(tmp, "lower")
    for d in ("bin", "etc", "usr/bin", "var/tmp", "home"):
        os.makedirs(os.path.join(low, d), exist_ok=True)
    os.chmod(os.path.join(low, "var/tmp"), 0o1777)
    shutil.copy(BUSYBOX, os.path.join(low, "bin/busybox"))
    for c in ("sh", "id", "echo", "cat", "ls", "sleep", "true"):
        os.symlink("busybox", os.path.join(low, "bin", c))
    shutil.copy(PROBE, os.path.join(low, "usr/bin/sbx-probe"))
    suid = os.path.join(low, "usr/bin/sbx-probe-suid")  # test-only (SBX-7)
    shutil.copy(PROBE, suid)
    os.chown(suid, 0, 0)
    os.chmod(suid, 0o4755)
    with open(os.path.join(low, "etc/passwd"), "w") as f:
        f.write("root:x:0:0::/root:/bin/sh\n")
    with open(os.path.join(low, "etc/group"), "w") as f:
        f.write("root:x:0:\n")
    return low


# Sandbox ids (cgroup names, hostnames) carry this run's tag, so a second
# run at the same time, or the leftovers of a crashed one, never collide.
RUN = "%04x" % (os.getpid() & 0xffff)


class Box:
    """One sandbox: its dirs, spec and (once started) the shim."""

    def __init__(self, tmp, lower, sid, argv, **kw):
        self.id = "%s-%s" % (sid, RUN)
        self.dir = os.path.join(tmp, sid)
        for d in ("root", "upper", "work", "home", "sock"):
            os.makedirs(os.path.join(self.dir, d))
        for d in ("home", "sock"):
            os.chown(os.path.join(self.dir, d), UID, UID)
        self.spec = {
            "id": self.id, "rootfs": self.p("root"), "lower": [lower], "upper": self.p("upper"),
            "work": self.p("work"), "home_src": self.p("home"), "home_dst": "/home/alice",
            "sock_dir": self.p("sock"), "log_path": self.p("log"), "uid": UID, "gid": UID,
            "user_name": "alice", "argv": argv, "env": ["PATH=/bin:/usr/bin"],
            "seccomp_profile": PROFILE, "stop_grace_ms": 1000,
        }
        self.spec.update(kw)
        self.proc = None
        self.status = None

    def p(self, *a):
        return os.path.join(self.dir, *a)

    def write_spec(self):
        with open(self.p("spec.json"), "w") as f:
            json.dump(self.spec, f)

    def start(self, binary=INIT, wrap=None):
        self.write_spec()
        r, w = os.pipe()

        def to_fd3():
            os.dup2(w, 3)  # the status fd; dup2 clears CLOEXEC
        argv = (wrap or []) + [binary, self.p("spec.json")]
        # close_fds would run after preexec_fn and close fd 3 again; Python's
        # own fds are non-inheritable anyway
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     preexec_fn=to_fd3, start_new_session=True,
                                     close_fds=False)
        os.close(w)
        self.status_fd = r
        return self

    def read_status(self, timeout=20):
        line = b""
        deadline = time.time() + timeout
        while not line.endswith(b"\n") and time.time() < deadline:
            rd, _, _ = select.select([self.status_fd], [], [], 0.2)
            if rd:
                b = os.read(self.status_fd, 256)
                if not b:
                    break
                line += b
        os.close(self.status_fd)
        self.status = line.decode()
        m = re.match(r"up (\d+)\n", self.status)
        if m:
            SETUP_US.append(int(m.group(1)))
        return self.status

    def wait(self, timeout=30):
        out, err = self.proc.communicate(timeout=timeout)
        self.stderr = err.decode("utf-8", "replace")
        return self.proc.returncode

    def run(self, timeout=30, **kw):
        self.start(**kw)
        self.read_status(timeout)
        return self.wait(timeout)

    def log(self):
        try:
            with open(self.p("log")) as f:
                return f.read()
        except OSError:
            return ""

    def wait_log(self, text, timeout=10):
        """"up" means the server exec'd, not that it listens: a server
        says so in its log (sbx-probe serve prints "serving" after
        listen()); connecting before that gets EOF from the forwarder."""
        return T.wait_until(lambda: text in self.log(), timeout)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def leftovers(box, procs=True):
    """What a sandbox left behind: cgroup dirs, mounts, processes of UID
    (procs=False while another sandbox of UID still runs)."""
    left = []
    for c in ("memory", "cpu", "pids", "nbgate"):
        for base in (os.path.join(CG, c, "nbgate", box.id), os.path.join(CG, "nbgate", box.id)):
            if os.path.exists(base):
                left.append(base)
    with open("/proc/self/mountinfo") as f:
        left += [ln.strip() for ln in f if box.dir in ln]
    for pid in os.listdir("/proc") if procs else ():
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/status" % pid) as f:
                uid = re.search(r"^Uid:\s+(\d+)", f.read(), re.M).group(1)
        except (OSError, AttributeError):
            continue
        if int(uid) == UID:
            left.append("process %s" % pid)
    return sorted(set(left))


def http_unix(path, target="/"):
    return T.unix_request(path, "GET", target, timeout=5).decode("utf-8", "replace")


def test_probe_all(tap, tmp, low):
    b = Box(tmp, low, "probe-all", ["/usr/bin/sbx-probe", "all", "probe-all-" + RUN],
            memory_bytes=256 << 20, cpu_millis=1000, pids_max=64)
    rc = b.run()
    log = b.log()
    tap.ok(b.status.startswith("up "), "status fd says up", b.status + b.stderr)
    tap.is_(rc, 0, "SBX-1..10 probe exits 0")
    bad = [ln for ln in log.splitlines() if ln.startswith("not ok")]
    rows = [ln for ln in log.splitlines() if ln.startswith("ok ")]
    tap.ok(not bad and len(rows) >= 70, "SBX-1..10, 18: %d probe rows pass" % len(rows),
           log[-3000:])
    tap.ok(not leftovers(b), "nothing left after exit", leftovers(b))


def test_exit_status_and_user(tap, tmp, low):
    b = Box(tmp, low, "exit7", ["/bin/sh", "-c", "id; grep alice /etc/passwd; exit 7"])
    tap.is_(b.run(), 7, "exit status is the server's")
    log = b.log()
    tap.ok("uid=1500(alice) gid=1500(alice)" in log, "runs as the spec uid, named", log)
    tap.ok("alice:x:1500:1500::/home/alice:/bin/sh" in log, "passwd entry added", log)
    tap.ok("alice" in open(b.p("upper", "etc", "passwd")).read() and
           "alice" not in open(os.path.join(low, "etc", "passwd")).read(),
           "passwd entry lands in the upper dir, not the image")


def test_strace_order(tap, tmp, low):
    if not shutil.which("strace"):
        tap.skip("SBX-13", "no strace")
        return
    b = Box(tmp, low, "strace", ["/usr/bin/sbx-probe", "euid"])
    trace = b.p("trace")
    # under a sanitizer build, LeakSanitizer stops the world with ptrace at
    # exit, which cannot work while strace traces us: leaks are checked by
    # every other run of nbgate-init
    asan = "ASAN_OPTIONS=%s:detect_leaks=0" % os.environ.get("ASAN_OPTIONS", "")
    rc = b.run(wrap=["env", asan, "strace", "-f", "-qq", "-o", trace, "-e",
                     "trace=setgroups,setresgid,setresuid,capset,prctl,close_range,"
                     "seccomp,execve"])
    tap.is_(rc, 0, "SBX-13 traced run succeeds")
    lines = open(trace).read().splitlines()
    pids = [ln.split()[0] for ln in lines if 'execve("/usr/bin/sbx-probe"' in ln]
    tap.ok(pids, "SBX-13 server execve seen", "\n".join(lines[-20:]))
    if not pids:
        return
    mine = [ln.split(None, 1)[1] for ln in lines if ln.split()[0] == pids[0]]
    order = ["setgroups(", "setresgid(", "setresuid(", "capset(",
             "prctl(PR_SET_NO_NEW_PRIVS", "close_range(", "seccomp(SECCOMP_SET_MODE_FILTER",
             'execve("/usr/bin/sbx-probe"']
    idx = []
    for o in order:
        hits = [i for i, ln in enumerate(mine) if ln.startswith(o)]
        idx.append(hits[0] if hits else -1)
    tap.ok(-1 not in idx and idx == sorted(idx), "SBX-13 order " + " < ".join(order),
           "\n".join(mine))
    after = mine[idx[-2] + 1:idx[-1]] if -1 not in idx else ["?"]
    tap.ok(not after, "SBX-13 nothing traced between seccomp and execve", after)


STEPS = ["cgroup_write", "clone", "cgroupns", "mount_private", "overlay", "pivot_root",
         "hostname", "lo", "setgroups", "bounding", "setresgid", "setresuid", "capset",
         "ambient", "nnp", "close_range", "seccomp_load"]


def test_fail_closed(tap, tmp, low):
    if not os.access(INIT_FAULTS, os.X_OK):
        tap.skip("SBX-14", "no %s" % INIT_FAULTS)
        return
    for i, step in enumerate(STEPS):
        b = Box(tmp, low, "fail-%d" % i, ["/usr/bin/sbx-probe", "sleep", "30"],
                fail_step=step, ports=[{"port": 8000, "socket_name": "p.sock"}])
        rc = b.run(binary=INIT_FAULTS)
        ok = (rc == 125 and b.status.startswith("failed %s " % step) and
              ("nbgate-init: %s:" % step) in b.stderr)
        tap.ok(ok, "SBX-14 %s: exit 125, status and stderr name the step" % step,
               "rc=%r status=%r stderr=%r" % (rc, b.status, b.stderr))
        left = leftovers(b) + (["socket"] if os.path.exists(b.p("sock", "p.sock")) else [])
        tap.ok(not left, "SBX-14 %s: no process, cgroup, mount or socket left" % step, left)
    if os.access("/usr/bin/pasta", os.X_OK):
        b = Box(tmp, low, "fail-net", ["/bin/true"], fail_step="net", net="egress")
        rc = b.run(binary=INIT_FAULTS)
        tap.ok(rc == 125 and b.status.startswith("failed net ") and not leftovers(b),
               "SBX-14 net: fails closed, nothing left", (rc, b.status, leftovers(b)))
        b = Box(tmp, low, "fail-egress", ["/bin/true"], fail_step="egress", net="egress")
        rc = b.run(binary=INIT_FAULTS)
        tap.ok(rc == 125 and b.status.startswith("failed egress ") and not leftovers(b),
               "SBX-14 egress filter: fails closed, nothing left", (rc, b.status, leftovers(b)))
        b = Box(tmp, low, "fail-pcaps", ["/bin/true"], fail_step="pasta_caps", net="egress")
        rc = b.run(binary=INIT_FAULTS)
        tap.ok(rc == 125 and b.status.startswith("failed net ") and "capabilities" in b.status
               and not leftovers(b),
               "SBX-14 pasta's capability drop: fails closed, nothing left",
               (rc, b.status, leftovers(b)))
        tap.ok(not subprocess.run(["pgrep", "-f", "pasta.*--netns"],
                                  stdout=subprocess.PIPE).stdout.strip(), "SBX-14 net: no pasta")
    b = Box(tmp, low, "fail-prod", ["/bin/true"], fail_step="setgroups")
    tap.is_(b.run(), 0, "SBX-14 the production binary ignores fail_step")


def test_argv_injection(tap, tmp, low):
    args = ["a;touch /tmp/pwn", "$(id)", "../../etc", "-rf", "x" * 300, "`id`", "a b"]
    b = Box(tmp, low, "inject", ["/usr/bin/sbx-probe", "args"] + args +
            ["--", "/bin/sh"])
    tap.is_(b.run(), 0, "SBX-15 probe args runs")
    tap.is_(b.log().split("\n")[:-1], args + ["--", "/bin/sh"],
            "SBX-15 every argument arrives as one argv element, unexpanded")
    tap.ok(not os.path.exists(b.p("upper", "tmp", "pwn")) and not os.path.exists("/tmp/pwn"),
           "SBX-15 /tmp/pwn absent")
    b = Box(tmp, low, "inject2", ["/bin/true"])
    b.spec["id"] = "a;touch /tmp/pwn"
    rc = b.run()
    tap.ok(rc == 125 and b.status.startswith("failed spec ") and "'id'" in b.status,
           "SBX-15 a bad id is rejected naming the field", b.status)


def test_writes(tap, tmp, low):
    sh = ("for p in /etc/x /usr/x /bin/x /var/tmp/f /tmp/f /home/alice/f /run/nbgate/f; do "
          "echo $p $(sbx-probe write $p); done")
    b = Box(tmp, low, "writes", ["/bin/sh", "-c", sh])
    tap.is_(b.run(), 0, "write probe runs")
    got = dict(ln.split(" ", 1) for ln in b.log().splitlines() if " " in ln)
    for p in ("/etc/x", "/usr/x", "/bin/x"):
        tap.ok(got.get(p, "").startswith("err"), "write %s fails" % p, got)
    for p in ("/var/tmp/f", "/tmp/f", "/home/alice/f", "/run/nbgate/f"):
        tap.is_(got.get(p), "ok", "write %s works" % p)
    tap.ok(os.path.exists(b.p("upper", "var", "tmp", "f")) and
           not os.path.exists(os.path.join(low, "var", "tmp", "f")),
           "a write to the image lands in the upper dir only")
    tap.ok(os.path.exists(b.p("home", "f")), "home writes reach home_src")
    tap.ok(not os.path.exists(b.p("upper", "tmp", "f")), "/tmp is a tmpfs, not the upper")


def wait_socket(path, timeout=10):
    return T.wait_until(lambda: os.path.exists(path), timeout)


def test_ports_and_isolation(tap, tmp, low):
    a = Box(tmp, low, "iso-a", ["/usr/bin/sbx-probe", "serve", "8080"],
            ports=[{"port": 8080, "socket_name": "port-8080.sock"}])
    a.start()
    st = a.read_status()
    try:
        tap.ok(st.startswith("up "), "A is up", st)
        sock = a.p("sock", "port-8080.sock")
        s = os.stat(sock)
        tap.ok(stat.S_ISSOCK(s.st_mode) and s.st_uid == UID and (s.st_mode & 0o777) == 0o660,
               "port socket owned by the uid, mode 0660", oct(s.st_mode))
        tap.ok(a.wait_log("serving 8080"), "A's server listens", a.log())
        r1, r2 = http_unix(sock), http_unix(sock)
        tap.ok("hello 1" in r1 and "hello 2" in r2, "HTTP through the Unix socket",
               "first %r second %r" % (r1, r2))
        body = "\n".join([
            "sbx-probe connect /run/nbgate/port-8080.sock",
            "sbx-probe tcp 127.0.0.1 8080",
            "sbx-probe read %s/f" % a.p("home"),
            "ls /run/nbgate | wc -l"])
        with open(a.p("home", "f"), "w") as f:
            f.write("secret")
        b = Box(tmp, low, "iso-b", ["/bin/sh", "-c", body])
        b.run()
        lines = b.log().splitlines()
        tap.ok(len(lines) == 4 and lines[0].startswith("err") and lines[1].startswith("err")
               and lines[2].startswith("err") and lines[3].strip() == "0",
               "B cannot reach A's socket, port or home", lines)
        tap.ok("serving 8080" in a.log(), "server output reaches the log file", a.log())
    finally:
        a.kill()
    tap.ok(not os.path.exists(a.p("sock", "port-8080.sock")), "port socket removed at exit")
    tap.ok(not leftovers(a), "nothing left after stop", leftovers(a))


def test_sigterm(tap, tmp, low):
    for name, argv, want in (
            ("term", ["/usr/bin/sbx-probe", "sleep", "30"], 128 + signal.SIGTERM),
            ("ignore", ["/usr/bin/sbx-probe", "sleep", "30", "ignore-term"],
             128 + signal.SIGKILL)):
        b = Box(tmp, low, "sig-" + name, argv, stop_grace_ms=700)
        b.start()
        b.read_status()
        T.wait_until(lambda: "sleeping" in b.log(), 5)
        t0 = time.time()
        b.proc.send_signal(signal.SIGTERM)
        rc = b.wait()
        dt = time.time() - t0
        tap.is_(rc, want, "SIGTERM (%s): exit %d" % (name, want))
        if name == "ignore":
            tap.ok(0.6 <= dt < 3, "SIGKILL after the grace period (%.2f s)" % dt)
        else:
            tap.ok(dt < 0.6, "SIGTERM ends it at once (%.2f s)" % dt)
        tap.ok(not leftovers(b), "SIGTERM %s: nothing left" % name, leftovers(b))


def test_limits(tap, tmp, low):
    other = Box(tmp, low, "lim-other", ["/usr/bin/sbx-probe", "serve", "8080"],
                ports=[{"port": 8080, "socket_name": "p.sock"}])
    other.start()
    other.read_status()
    try:
        tap.ok(other.wait_log("serving 8080"), "SBX-11 the other sandbox's server listens",
               other.log())
        m = Box(tmp, low, "lim-mem", ["/usr/bin/sbx-probe", "alloc", str(128 << 20)],
                memory_bytes=64 << 20)
        rc = m.run()
        tap.is_(rc, 128 + signal.SIGKILL, "SBX-11 2x memory allocation is OOM-killed")
        tap.ok("allocated" not in m.log(), "SBX-11 the allocation never completed")
        tap.ok("hello" in http_unix(other.p("sock", "p.sock")), "SBX-11 the other sandbox works")
        p = Box(tmp, low, "lim-pids", ["/usr/bin/sbx-probe", "forkbomb", "5000"], pids_max=32)
        rc = p.run()
        log = p.log()
        mm = re.search(r"forks=(\d+) eagain=1", log)
        tap.ok(rc == 0 and mm and int(mm.group(1)) < 32, "SBX-11 fork bomb stops at pids.max",
               log)
        tap.ok("hello" in http_unix(other.p("sock", "p.sock")),
               "SBX-11 the other sandbox still works")
        # processes of the uid are checked below, once `other` is gone too
        left = leftovers(m, procs=False) + leftovers(p, procs=False)
        tap.ok(not left, "limits: no cgroup or mount left by the OOM-killed and fork-bomb"
               " sandboxes", left)
    finally:
        other.kill()
    tap.ok(not leftovers(other), "limits: nothing left (no process of the uid either)",
           leftovers(other))


def test_net_none(tap, tmp, low):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    srv.setblocking(False)
    port = srv.getsockname()[1]
    b = Box(tmp, low, "net-none", ["/bin/sh", "-c", "ls /sys/class/net; sbx-probe tcp "
                                   "127.0.0.1 %d" % port])
    b.run()
    lines = b.log().splitlines()
    tap.is_(lines[:1], ["lo"], "SBX-12 net none: only lo")
    tap.ok(lines[-1].startswith("err"), "SBX-12 host loopback listener unreachable", lines)
    if os.access("/usr/bin/pasta", os.X_OK):
        e = Box(tmp, low, "net-egress", ["/bin/sh", "-c", "ls /sys/class/net; sbx-probe tcp "
                                         "127.0.0.1 %d; sbx-probe tcp 192.0.2.1 %d; true" %
                                         (port, port)], net="egress")
        rc = e.run()
        lines = e.log().splitlines()
        tap.ok(rc == 0 and e.status.startswith("up ") and "eth0" in lines and "lo" in lines,
               "net egress: pasta gives an interface besides lo", e.status + e.log())
        tap.ok(len(lines) >= 2 and lines[-2].startswith("err") and lines[-1].startswith("err"),
               "net egress: the host's loopback is not mapped in (-T none, --no-map-gw)", lines)
        tap.ok(not leftovers(e) and not [ln for ln in open("/proc/self/mountinfo")
                                         if "net-egress" in ln], "net egress: nothing left")
        pasta = subprocess.run(["pgrep", "-f", "pasta.*--netns"], stdout=subprocess.PIPE)
        tap.ok(not pasta.stdout.strip(), "net egress: pasta is gone", pasta.stdout)
    else:
        tap.skip("net egress", "no pasta")
    try:
        srv.accept()
        tap.ok(False, "SBX-12 the host listener got no connection")
    except BlockingIOError:
        tap.ok(True, "SBX-12 the host listener got no connection")
    srv.close()


CANARY = r"""
import json, select, socket, sys
addrs = sys.argv[1:]
socks = {}
for a in addrs:
    s = socket.socket(socket.AF_INET6 if ":" in a else socket.AF_INET)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((a, 80))
    s.listen(16)
    socks[s] = a
counts = dict((a, 0) for a in addrs)
print("ready", flush=True)
for _ in range(6000):  # bounded: 10 minutes at most
    rd, _, _ = select.select(list(socks) + [sys.stdin], [], [], 0.1)
    if sys.stdin in rd:
        break
    for s in rd:
        c, _ = s.accept()
        counts[socks[s]] += 1
        c.close()
print(json.dumps(counts), flush=True)
"""

NS = "t6100-egress-%d" % os.getpid()
DENIED = ["169.254.169.254", "10.77.5.5", "172.16.7.7", "192.168.7.7", "100.64.7.7",
          "fd00:77::5"]
ALLOWED = ["10.77.6.6", "fd00:77::6"]
ONLINK = "10.77.0.9"  # in the subnet pasta copies into the sandbox


def make_netns():
    """A network namespace of the test's own: a veth pair (both ends
    inside) with 10.77.0.1/24 and fd00:77:0::1/64, default routes through
    it, and the canary addresses on its lo. pasta, started from there,
    copies that setup into the sandbox and connects out from there, so
    every connection the sandbox makes ends in this namespace."""
    cmds = [["ip", "netns", "add", NS],
            ["ip", "-n", NS, "link", "set", "lo", "up"],
            ["ip", "-n", NS, "link", "add", "v0", "type", "veth", "peer", "name", "v1"],
            ["ip", "-n", NS, "link", "set", "v1", "up"],
            ["ip", "-n", NS, "addr", "add", "10.77.0.1/24", "dev", "v0"],
            ["ip", "-n", NS, "-6", "addr", "add", "fd00:77:0::1/64", "dev", "v0", "nodad"],
            ["ip", "-n", NS, "link", "set", "v0", "up"],
            ["ip", "-n", NS, "route", "add", "default", "via", "10.77.0.254", "dev", "v0",
             "onlink"],
            ["ip", "-n", NS, "-6", "route", "add", "default", "via", "fd00:77:0::fe",
             "dev", "v0", "onlink"]]
    for a in DENIED + ALLOWED + [ONLINK]:
        cmds.append(["ip", "-n", NS, "addr", "add", a + ("/128" if ":" in a else "/32"),
                     "dev", "lo"] + (["nodad"] if ":" in a else []))
    for c in cmds:
        r = subprocess.run(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if r.returncode:
            return "%s: %s" % (" ".join(c), r.stderr.decode().strip())
    return None


def canary_start():
    c = subprocess.Popen(["nsenter", "--net=/run/netns/" + NS, "/usr/bin/python3", "-c",
                          CANARY] + DENIED + ALLOWED + [ONLINK],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    ready = c.stdout.readline()
    return c if ready.strip() == b"ready" else None


def canary_counts(c):
    out, _ = c.communicate(b"", timeout=10)
    return json.loads(out.decode().strip().splitlines()[-1])


def egress_box(tmp, low, sid, allow):
    tries = DENIED + ALLOWED + [ONLINK]
    sh = "; ".join(["echo %s $(sbx-probe tcp %s 80)" % (a, a) for a in tries] +
                   ["echo dontroute $(sbx-probe tcp %s 80 dontroute)" % ONLINK,
                    "echo resolv $(cat /etc/resolv.conf)", "echo hostname $(cat /etc/hostname)",
                    "true"])
    b = Box(tmp, low, sid, ["/bin/sh", "-c", sh], net="egress", net_allow=allow)
    rc = b.run(wrap=["nsenter", "--net=/run/netns/" + NS])
    got = dict(ln.split(" ", 1) for ln in b.log().splitlines() if " " in ln)
    return rc, b, got


def pasta_caps(tap, tmp, low):
    """pasta runs as uid 0 (--runas 0:0): what is left of its privileges
    once it joined the sandbox's namespace (docs/sandbox.md)."""
    b = Box(tmp, low, "egress-caps", ["/usr/bin/sbx-probe", "sleep", "30"], net="egress")
    b.start(wrap=["nsenter", "--net=/run/netns/" + NS])
    b.read_status()
    try:
        kids = []
        for pid in os.listdir("/proc"):
            try:
                with open("/proc/%s/status" % pid) as f:
                    st = f.read()
            except OSError:
                continue
            if re.search(r"^PPid:\s+%d$" % b.proc.pid, st, re.M) and st.split()[1].startswith("pass"):
                kids.append(st)
        tap.ok(len(kids) == 1, "pasta found, a child of the shim", len(kids))
        if kids:
            f = dict(re.findall(r"^(\w+):\s+(.*)$", kids[0], re.M))
            tap.diag("pasta: Uid %s CapEff %s CapPrm %s CapBnd %s CapInh %s CapAmb %s "
                     "NoNewPrivs %s Seccomp %s" % (
                         f.get("Uid"), f.get("CapEff"), f.get("CapPrm"), f.get("CapBnd"),
                         f.get("CapInh"), f.get("CapAmb"), f.get("NoNewPrivs"),
                         f.get("Seccomp")))
            # The shim execs pasta with a bounding set of CAP_SYS_ADMIN
            # and CAP_NET_ADMIN only, nothing inheritable or ambient, and
            # no_new_privs; once joined, pasta itself drops NET_ADMIN but
            # keeps CAP_SYS_ADMIN (known gap, docs/sandbox.md). Fail if it
            # ever holds more than that.
            def caps(k):
                return int(f.get(k, "f" * 16), 16)
            sys_admin, net_admin = 1 << 21, 1 << 12
            tap.ok(caps("CapEff") & ~sys_admin == 0 and caps("CapPrm") & ~sys_admin == 0,
                   "pasta: CapEff/CapPrm within {SYS_ADMIN}", (f.get("CapEff"), f.get("CapPrm")))
            tap.ok(caps("CapBnd") & ~(sys_admin | net_admin) == 0 and caps("CapInh") == 0 and
                   caps("CapAmb") == 0,
                   "pasta: bounding set within {SYS_ADMIN, NET_ADMIN}, nothing inheritable"
                   " or ambient", (f.get("CapBnd"), f.get("CapInh"), f.get("CapAmb")))
            tap.ok(f.get("NoNewPrivs") == "1" and f.get("Seccomp") == "2",
                   "pasta: NNP and seccomp on", (f.get("NoNewPrivs"), f.get("Seccomp")))
            pid = re.search(r"^Pid:\s+(\d+)", kids[0], re.M).group(1)
            tap.ok(os.readlink("/proc/%s/ns/mnt" % pid) != os.readlink("/proc/self/ns/mnt"),
                   "pasta runs in a mount namespace of its own")
    finally:
        b.kill()


def test_egress(tap, tmp, low):
    """SBX-12: egress mode reaches the Internet through pasta but not
    private, link-local (metadata), CGNAT or ULA addresses, except
    net_allow; the control run (all of them allowed) shows that pasta does
    route to every canary, so the 0 counts come from the filter."""
    if not os.access("/usr/bin/pasta", os.X_OK) or not shutil.which("nsenter"):
        tap.skip("SBX-12 egress", "no pasta or nsenter")
        return
    err = make_netns()
    if err:
        tap.skip("SBX-12 egress", "cannot build the test netns: " + err)
        return
    try:
        c = canary_start()
        tap.ok(c is not None, "SBX-12 canary listeners up in the test netns")
        if not c:
            return
        rc, b, got = egress_box(tmp, low, "egress-f", ["10.77.6.6", "fd00:77::6/128"])
        counts = canary_counts(c)
        tap.ok(rc == 0 and b.status.startswith("up "), "SBX-12 egress sandbox runs",
               b.status + b.stderr)
        for a in DENIED + [ONLINK]:
            tap.ok(got.get(a, "").startswith("err") and counts.get(a) == 0,
                   "SBX-12 %s unreachable, canary saw 0 connections" % a,
                   (got.get(a), counts.get(a)))
        tap.ok(got.get("dontroute", "").startswith("err") and counts.get(ONLINK) == 0,
               "SBX-12 SO_DONTROUTE does not get around the filter", got.get("dontroute"))
        for a in ALLOWED:
            tap.ok(got.get(a) == "ok" and counts.get(a) == 1,
                   "SBX-12 %s in net_allow is reachable" % a, (got.get(a), counts.get(a)))
        with open("/etc/resolv.conf") as f:
            host_resolv = " ".join(f.read().split())
        tap.is_(got.get("resolv", "").strip(), host_resolv, "egress: the host's resolv.conf")
        tap.is_(got.get("hostname"), "egress-f-" + RUN, "/etc/hostname is the id")
        tap.ok(not leftovers(b), "egress: nothing left", leftovers(b))
        pasta_caps(tap, tmp, low)
        # control: everything allowed -> the same pasta reaches every canary
        c = canary_start()
        allow = ["169.254.0.0/16", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
                 "100.64.0.0/10", "fd00::/8"]  # same prefix as a denied range, or inside
        rc, b, got = egress_box(tmp, low, "egress-c", allow)
        counts = canary_counts(c)
        tap.ok(all(got.get(a) == "ok" and counts.get(a) == 1 for a in DENIED),
               "SBX-12 control: with net_allow covering them, pasta reaches every canary",
               (b.status, b.stderr, got, counts))
    finally:
        subprocess.run(["ip", "netns", "del", NS], stderr=subprocess.DEVNULL)


def test_cgroup_view(tap, tmp, low):
    """/sys/fs/cgroup inside: the sandbox's own limits, read-only."""
    v2 = os.path.exists(os.path.join(CG, "cgroup.controllers"))
    mem = "/sys/fs/cgroup/memory.max" if v2 else "/sys/fs/cgroup/memory/memory.limit_in_bytes"
    pids = "/sys/fs/cgroup/pids.max" if v2 else "/sys/fs/cgroup/pids/pids.max"
    sh = ("echo mem $(cat %s); echo pids $(cat %s); echo procs $(wc -l < %s); "
          "echo write $(sbx-probe write %s); echo mkdir $(mkdir /sys/fs/cgroup/x 2>&1 || echo err)"
          % (mem, pids, os.path.join(os.path.dirname(pids), "cgroup.procs"), pids))
    b = Box(tmp, low, "cgview", ["/bin/sh", "-c", sh], memory_bytes=64 << 20, pids_max=50)
    tap.is_(b.run(), 0, "cgroup view: runs", )
    got = dict(ln.split(" ", 1) for ln in b.log().splitlines() if " " in ln)
    tap.is_(got.get("mem"), str(64 << 20), "cgroup view: memory limit readable")
    tap.is_(got.get("pids"), "50", "cgroup view: pids limit readable")
    tap.ok(got.get("procs", "0").strip() not in ("", "0"), "cgroup view: own processes listed",
           got.get("procs"))
    tap.ok(got.get("write", "").startswith("err") and "err" in got.get("mkdir", ""),
           "cgroup view: read-only (write and mkdir fail)", got)


def test_log_cap(tap, tmp, low):
    b = Box(tmp, low, "logcap", ["/usr/bin/sbx-probe", "out", str(9 << 20)])
    tap.is_(b.run(), 0, "9 MiB of output")
    size = os.path.getsize(b.p("log"))
    old = os.path.getsize(b.p("log.1")) if os.path.exists(b.p("log.1")) else 0
    want = -(-(9 << 20) // 100) * 100  # the probe writes whole 100-byte lines
    tap.ok(size <= 8 << 20 and old > 0 and old <= 8 << 20 and size + old == want,
           "log capped at 8 MiB, the older part in log.1 (%d + %d)" % (size, old))


def test_cleanup_after_kill(tap, tmp, low):
    b = Box(tmp, low, "killed", ["/usr/bin/sbx-probe", "sleep", "30"])
    b.start()
    b.read_status()
    b.proc.kill()  # SIGKILL: the shim cannot clean up
    b.proc.wait()
    T.wait_until(lambda: not [x for x in leftovers(b) if x.startswith("process")], 5)
    left = leftovers(b)
    tap.ok(not [x for x in left if x.startswith("process")],
           "shim SIGKILLed: PID 1 and the server die with it", left)
    rc = subprocess.run([INIT, "--cleanup", b.id, b.p("root")], stderr=subprocess.PIPE)
    tap.is_(rc.returncode, 0, "nbgate-init --cleanup succeeds")
    tap.ok(not leftovers(b), "sandbox_cleanup leaves nothing", leftovers(b))


def run(tap):
    if os.geteuid() != 0:
        T.skip_all("needs root")
    for f in (INIT, PROBE, BUSYBOX):
        if not os.access(f, os.X_OK):
            T.skip_all("%s missing" % f)
    tmp = tempfile.mkdtemp(prefix="t6100-", dir="/tmp")
    os.chmod(tmp, 0o755)
    try:
        low = make_rootfs(tmp)
        for name, fn in (("probe", test_probe_all), ("exit", test_exit_status_and_user),
                         ("strace", test_strace_order), ("faults", test_fail_closed),
                         ("inject", test_argv_injection), ("writes", test_writes),
                         ("ports", test_ports_and_isolation), ("sigterm", test_sigterm),
                         ("limits", test_limits), ("net", test_net_none),
                         ("egress", test_egress), ("cgroup", test_cgroup_view),
                         ("logcap", test_log_cap),
                         ("cleanup", test_cleanup_after_kill)):
            if os.environ.get("T6100_ONLY") and name not in os.environ["T6100_ONLY"].split(","):
                continue
            tap.run(name, fn, tap, tmp, low)
        if SETUP_US:
            tap.diag("sandbox setup (us): median %d, max %d over %d runs" %
                     (T.median(SETUP_US), max(SETUP_US), len(SETUP_US)))
    finally:
        subprocess.run(["umount", "-R", "-l", tmp], stderr=subprocess.DEVNULL)
        shutil.rmtree(tmp, ignore_errors=True)


T.main(run)
