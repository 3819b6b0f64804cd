"""nbgate integration-test harness: TAP output + a gateway under test.

Shaped like h2o's t/Util.pm spawn_server: a temp state dir, a free port, a
config file, users/tokens created through the CLI before `nbgate serve`
starts, a readiness deadline (GET /hub/health), teardown TERM then KILL,
and a failed assertion when the daemon died from a signal or printed a
sanitizer report.

Only the Python standard library and Debian's python3-requests,
python3-websocket and python3-h11 are used. Run with /usr/bin/python3.

Environment:
  NBGATE        path of the nbgate binary (default: <repo>/build/nbgate)
  NBGATE_TEST_KEEP=1   keep temp dirs (printed as diagnostics)
  NBGATE_TEST_VERBOSE=1  print the daemon's stderr tail on teardown
"""

import base64
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.parse

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
HELPERS = os.path.join(REPO, "tests", "helpers")
FAKE_BACKEND = os.path.join(HELPERS, "fake_backend.py")
PY = "/usr/bin/python3"
DEFAULT_PASSWORD = "correct horse battery staple"

# --------------------------------------------------------------------------
# TAP
# --------------------------------------------------------------------------


class Tap:
    """Minimal TAP 13 producer. The plan is printed at the end (done())."""

    def __init__(self):
        self.n = 0
        self.failed = 0
        self.bailed = False
        sys.stdout.reconfigure(line_buffering=True)

    @staticmethod
    def _clean(name):
        return str(name).replace("\n", " ").replace("#", "\\#")

    def diag(self, msg):
        for line in str(msg).splitlines() or [""]:
            print("# " + line)

    def ok(self, cond, name, diag=None):
        self.n += 1
        cond = bool(cond)
        print("%s %d - %s" % ("ok" if cond else "not ok", self.n, self._clean(name)))
        if not cond:
            self.failed += 1
            if diag is not None:
                self.diag(diag)
        return cond

    def is_(self, got, want, name, extra=None):
        d = "got:  %r\nwant: %r" % (got, want)
        if extra:
            d += "\n" + str(extra)
        return self.ok(got == want, name, d)

    def in_(self, got, allowed, name, extra=None):
        d = "got:  %r\nwant one of: %r" % (got, allowed)
        if extra:
            d += "\n" + str(extra)
        return self.ok(got in allowed, name, d)

    def skip(self, name, reason):
        self.n += 1
        print("ok %d - %s # SKIP %s" % (self.n, self._clean(name), self._clean(reason)))

    def todo(self, cond, name, reason, diag=None):
        self.n += 1
        print("%s %d - %s # TODO %s" % ("ok" if cond else "not ok", self.n,
                                       self._clean(name), self._clean(reason)))
        if not cond and diag:
            self.diag(diag)

    def bail(self, reason):
        self.bailed = True
        print("Bail out! " + self._clean(reason))
        sys.exit(255)

    def done(self):
        print("1..%d" % self.n)
        return 1 if self.failed else 0

    def run(self, name, fn, *args, **kw):
        """Runs one subtest function; an exception becomes a failed assertion."""
        try:
            return fn(*args, **kw)
        except SkipAll:
            raise
        except Exception:
            self.ok(False, "%s raised" % name, traceback.format_exc())
            return None


class SkipAll(Exception):
    pass


def skip_all(reason):
    print("1..0 # SKIP " + reason)
    sys.exit(0)


def main(fn):
    """Runs fn(tap); prints the plan; exits 1 if any assertion failed."""
    tap = Tap()
    try:
        fn(tap)
    except SystemExit:
        raise
    except Exception:
        tap.ok(False, "test script raised", traceback.format_exc())
    finally:
        for gw in list(Gateway.live):
            try:
                gw.stop()
            except Exception:
                tap.ok(False, "teardown raised", traceback.format_exc())
        for b in list(Process.live):
            b.stop()
    sys.exit(tap.done())


# --------------------------------------------------------------------------
# Small utilities
# --------------------------------------------------------------------------


def unix_request(path, method="GET", target="/", body=None, timeout=10.0):
    """One request over a Unix socket (Connection: close); the whole raw
    response as bytes, read until the server closes."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout)
    try:
        s.connect(path)
        data = body.encode() if isinstance(body, str) else (body or b"")
        head = "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" % (method, target)
        if body is not None:
            head += "Content-Type: application/json\r\nContent-Length: %d\r\n" % len(data)
        s.sendall(head.encode() + b"\r\n" + data)
        raw = b""
        while True:
            b = s.recv(65536)
            if not b:
                return raw
            raw += b
    finally:
        s.close()


def raw_status(raw):
    """(status code or 0, body bytes) of a raw HTTP response."""
    status = int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/") else 0
    return status, raw.split(b"\r\n\r\n", 1)[-1]


def tagged_line(out, tag):
    """The rest of the first line of out that starts with "<tag> ", or None
    (the test drivers print one tagged line per fact)."""
    for ln in out.splitlines():
        if ln.startswith(tag + " "):
            return ln[len(tag) + 1:]
    return None


def pid_alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


def free_port(host="127.0.0.1"):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_until(pred, timeout=5.0, interval=0.05):
    """Bounded poll: returns pred()'s truthy value or None after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            v = pred()
        except Exception:
            v = None
        if v:
            return v
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


def quote_segment(s):
    """encodeURIComponent (what JupyterLab uses per path segment)."""
    return urllib.parse.quote(s, safe="-_.!~*'()")


def quote_path(p):
    return "/".join(quote_segment(seg) for seg in p.split("/"))


def median(xs):
    xs = sorted(xs)
    if not xs:
        return 0.0
    m = len(xs) // 2
    return xs[m] if len(xs) % 2 else (xs[m - 1] + xs[m]) / 2


def percentile(xs, p):
    xs = sorted(xs)
    if not xs:
        return 0.0
    k = min(len(xs) - 1, max(0, int(round(p / 100.0 * (len(xs) - 1)))))
    return xs[k]


def read_jsonl(path):
    out = []
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as f:
            for line in f:
                line = line.strip()
                if line:
                    try:
                        out.append(json.loads(line))
                    except ValueError:
                        pass
    except FileNotFoundError:
        pass
    return out


# --------------------------------------------------------------------------
# Raw sockets (smuggling tests)
# --------------------------------------------------------------------------


class RawResponse:
    """A parsed response head read off a raw socket (lenient on purpose)."""

    def __init__(self, status, reason, headers, body, raw):
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (lower-name, value)
        self.body = body
        self.raw = raw

    def header(self, name, default=None):
        name = name.lower()
        for n, v in self.headers:
            if n == name:
                return v
        return default

    def header_all(self, name):
        name = name.lower()
        return [v for n, v in self.headers if n == name]

    def __repr__(self):
        return "RawResponse(%r, %r, body=%r)" % (self.status, self.headers, self.body[:200])


class RawConn:
    """One TCP (or TLS) connection with timeouts, for byte-exact requests."""

    def __init__(self, host, port, timeout=5.0, tls=False, source=None):
        s = socket.create_connection((host, port), timeout=timeout,
                                     source_address=(source, 0) if source else None)
        if tls:
            import ssl
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            s = ctx.wrap_socket(s, server_hostname=host)
        self.sock = s
        self.timeout = timeout
        self.buf = b""
        self.eof = False

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def _fill(self, deadline):
        if self.eof:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        self.sock.settimeout(left)
        try:
            d = self.sock.recv(65536)
        except socket.timeout:
            return False
        except OSError:
            self.eof = True
            return False
        if not d:
            self.eof = True
            return False
        self.buf += d
        return True

    def read_response(self, timeout=None, head_only=False):
        """Reads one response (head + CL/chunked/close-delimited body).
        Returns RawResponse, or None when the connection closed/timed out
        before a complete head arrived."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while b"\r\n\r\n" not in self.buf:
            if not self._fill(deadline):
                return None
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        m = re.match(r"HTTP/1\.[01] (\d{3}) ?(.*)", lines[0])
        if not m:
            self.buf = b""
            return RawResponse(0, lines[0], [], b"", head)
        status = int(m.group(1))
        hdrs = []
        for ln in lines[1:]:
            if ":" in ln:
                n, v = ln.split(":", 1)
                hdrs.append((n.strip().lower(), v.strip()))
        r = RawResponse(status, m.group(2), hdrs, b"", head + b"\r\n\r\n")
        self.buf = rest
        if head_only or status in (101, 204, 304) or 100 <= status < 200:
            return r
        te = (r.header("transfer-encoding") or "").lower()
        cl = r.header("content-length")
        if "chunked" in te:
            body = b""
            while True:
                while b"\r\n" not in self.buf:
                    if not self._fill(deadline):
                        r.body = body
                        return r
                line, _, self.buf = self.buf.partition(b"\r\n")
                try:
                    size = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    r.body = body
                    return r
                if size == 0:
                    while b"\r\n" not in self.buf:
                        if not self._fill(deadline):
                            break
                    # skip (empty) trailers
                    while self.buf.startswith(b"\r\n") is False and b"\r\n" in self.buf:
                        _, _, self.buf = self.buf.partition(b"\r\n")
                    if self.buf.startswith(b"\r\n"):
                        self.buf = self.buf[2:]
                    break
                while len(self.buf) < size + 2:
                    if not self._fill(deadline):
                        break
                body += self.buf[:size]
                self.buf = self.buf[size + 2:]
            r.body = body
        elif cl is not None and cl.isdigit():
            n = int(cl)
            while len(self.buf) < n:
                if not self._fill(deadline):
                    break
            r.body, self.buf = self.buf[:n], self.buf[n:]
        else:
            while self._fill(deadline):
                pass
            r.body, self.buf = self.buf, b""
        return r

    def closed_by_peer(self, timeout=2.0):
        """True if the peer closes the connection within timeout (any
        buffered/trailing bytes are consumed and kept in self.buf)."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            if not self._fill(deadline) and not self.eof:
                return False
        return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def raw_request(port, data, host="127.0.0.1", timeout=5.0, tls=False):
    """Sends data on a new connection; returns (first response or None,
    closed: bool). closed is True when the server closed the connection
    within 2 s after the first response."""
    with RawConn(host, port, timeout=timeout, tls=tls) as c:
        c.send(data)
        r = c.read_response()
        closed = c.closed_by_peer(2.0) if r is not None else c.eof or c.closed_by_peer(0.5)
        return r, closed


# --------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------

SANITIZER_RE = re.compile(r"ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer|"
                          r"ThreadSanitizer|SUMMARY: UndefinedBehaviorSanitizer")


class Process:
    """A child process with stdout/stderr in files; stop() is TERM then KILL."""
    live = []

    def __init__(self, argv, log_prefix, env=None, cwd=None, stdin_data=None):
        self.argv = argv
        self.out_path = log_prefix + ".out"
        self.err_path = log_prefix + ".err"
        self.out = open(self.out_path, "wb")
        self.err = open(self.err_path, "wb")
        self.p = subprocess.Popen(argv, stdout=self.out, stderr=self.err,
                                  stdin=subprocess.PIPE if stdin_data else subprocess.DEVNULL,
                                  env=env, cwd=cwd, start_new_session=True)
        if stdin_data:
            self.p.stdin.write(stdin_data)
            self.p.stdin.close()
        self.rc = None
        self.killed = False
        Process.live.append(self)

    @property
    def pid(self):
        return self.p.pid

    def alive(self):
        return self.p.poll() is None

    def stop(self, term_wait=5.0):
        if self in Process.live:
            Process.live.remove(self)
        if self.p.poll() is None:
            try:
                self.p.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(term_wait)
            except subprocess.TimeoutExpired:
                self.killed = True
                try:
                    os.killpg(self.p.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    self.p.kill()
                self.p.wait(5)
        self.rc = self.p.returncode
        for f in (self.out, self.err):
            try:
                f.close()
            except OSError:
                pass
        return self.rc

    def stderr_text(self):
        try:
            with open(self.err_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stdout_text(self):
        try:
            with open(self.out_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""


def cli_argv(binary, config_path, args):
    """argv for a CLI subcommand working on the config's state dir. The
    global --config goes before the subcommand (one place to adapt)."""
    return [binary, "--config", config_path] + list(args)


def nbgate_path():
    p = os.environ.get("NBGATE") or os.path.join(REPO, "build", "nbgate")
    return os.path.abspath(p)


def fake_backend_cmd(record_dir, extra=None):
    """server_cmd for the `process` spawner that starts the recording fake."""
    argv = [PY, FAKE_BACKEND, "--sock", "{sock}", "--base-url", "{base_url}",
            "--user", "{user}", "--server", "{server}", "--record-dir", record_dir]
    return argv + (extra or [])


def jupyter_server_cmd():
    """server_cmd that runs Debian's Jupyter Server 1.23 on the unix socket,
    authentication delegated to the gateway (token disabled, no browser)."""
    return [PY, "-m", "jupyter_server", "--ServerApp.sock={sock}",
            "--ServerApp.base_url={base_url}", "--ServerApp.root_dir={home}",
            "--ServerApp.token=", "--ServerApp.password=", "--no-browser",
            "--ServerApp.disable_check_xsrf=True", "--ServerApp.allow_remote_access=True",
            "--ServerApp.open_browser=False", "--allow-root"]


class Gateway:
    """A running `nbgate serve` with its own state dir and port."""
    live = []

    def __init__(self, tap, config=None, users=None, server_cmd=None, tls=False,
                 ready_timeout=20.0, name="gw"):
        self.tap = tap
        self.name = name
        self.bin = nbgate_path()
        self.tmp = tempfile.mkdtemp(prefix="nbgate-test-")
        self.state_dir = os.path.join(self.tmp, "state")
        self.record_dir = os.path.join(self.tmp, "records")
        os.makedirs(self.state_dir, mode=0o700)
        os.makedirs(self.record_dir)
        self.port = free_port()
        self.tls = tls
        self.scheme = "https" if tls else "http"
        self.host = "127.0.0.1"
        self.public_url = "%s://127.0.0.1:%d" % (self.scheme, self.port)
        self.access_log = os.path.join(self.tmp, "access.log")
        cfg = {
            "listen": "127.0.0.1:%d" % self.port,
            "public_url": self.public_url,
            "state_dir": self.state_dir,
            "log_level": "debug",
            "access_log": self.access_log,
            "spawner": "process",
            "server_cmd": server_cmd or fake_backend_cmd(self.record_dir),
            "spawn_timeout": "20s",
        }
        if tls:
            cert, key = make_self_signed(self.tmp)
            cfg["tls_cert"], cfg["tls_key"] = cert, key
        cfg.update(config or {})
        # a test may choose listen/public_url itself (subdomain mode)
        self.port = int(cfg["listen"].rsplit(":", 1)[1])
        self.public_url = cfg["public_url"]
        self.cfg = cfg
        self.config_path = os.path.join(self.tmp, "nbgate.json")
        with open(self.config_path, "w") as f:
            json.dump(cfg, f, indent=1)
        self.users = {}
        self.proc = None
        self.ready_timeout = ready_timeout
        self.env = dict(os.environ)
        for k in list(self.env):
            if k.startswith("NBGATE_"):
                del self.env[k]
        self.env.setdefault("ASAN_OPTIONS", "detect_leaks=0:abort_on_error=1")
        self.env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        self.cli_log = []
        for u in users or []:
            if isinstance(u, str):
                u = (u, DEFAULT_PASSWORD, False)
            self.add_user(*u)

    # ---- CLI --------------------------------------------------------------
    def cli(self, *args, input=None, timeout=30, check=False):
        argv = cli_argv(self.bin, self.config_path, args)
        env = dict(self.env, NBGATE_STATE_DIR=self.state_dir)
        r = subprocess.run(argv, input=input.encode() if isinstance(input, str) else input,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=env, timeout=timeout)
        out = r.stdout.decode("utf-8", "replace")
        err = r.stderr.decode("utf-8", "replace")
        self.cli_log.append((args, r.returncode, out, err))
        if SANITIZER_RE.search(err) or r.returncode < 0:
            self.tap.ok(False, "CLI %s: no crash or sanitizer report" % " ".join(args[:2]),
                        "rc=%d\n%s" % (r.returncode, err[-4000:]))
        if check and r.returncode != 0:
            raise RuntimeError("nbgate %s failed rc=%d: %s%s" % (" ".join(args), r.returncode,
                                                                 out, err))
        return r.returncode, out, err

    def add_user(self, name, password=DEFAULT_PASSWORD, admin=False):
        args = ["user", "add", name]
        if admin:
            args.append("--admin")
        args.append("--password-stdin")
        self.cli(*args, input=password + "\n", check=True)
        self.users[name] = password

    def create_token(self, user, scopes=None, expires_in=None):
        args = ["token", "create", user]
        if scopes is not None:
            args += ["--scopes", " ".join(scopes) if isinstance(scopes, (list, tuple)) else scopes]
        if expires_in is not None:
            args += ["--expires-in", str(expires_in)]
        rc, out, err = self.cli(*args, check=True)
        toks = [t for t in out.split() if len(t) >= 16]
        if not toks:
            raise RuntimeError("no token printed by nbgate token create: %r" % out)
        return toks[-1]

    # ---- lifecycle --------------------------------------------------------
    def start(self):
        if not os.access(self.bin, os.X_OK):
            raise RuntimeError("nbgate binary not found at %s (set NBGATE)" % self.bin)
        argv = [self.bin, "serve", "--config", self.config_path]
        self.proc = Process(argv, os.path.join(self.tmp, "nbgate"), env=self.env)
        Gateway.live.append(self)
        ok = wait_until(self._ready, timeout=self.ready_timeout, interval=0.05)
        if not ok:
            alive = self.proc.alive()
            self.tap.diag("gateway not ready after %.0fs (alive=%s); stderr tail:\n%s"
                          % (self.ready_timeout, alive, self.proc.stderr_text()[-3000:]))
            raise RuntimeError("gateway did not become ready")
        return self

    def _ready(self):
        if not self.proc.alive():
            raise RuntimeError("gateway exited rc=%s" % self.proc.p.returncode)
        try:
            c = self.http_conn(timeout=1.0)
            c.request("GET", "/hub/health", headers={"Host": self.public_host})
            r = c.getresponse()
            r.read()
            c.close()
            return r.status == 200
        except OSError:
            return False

    def http_conn(self, timeout=5.0):
        if self.tls:
            import ssl
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=ctx)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def stop(self, check=True):
        """Stops the daemon and records assertions about how it ended."""
        if self in Gateway.live:
            Gateway.live.remove(self)
        if self.proc is None:
            return
        died_early = not self.proc.alive()
        rc = self.proc.stop()
        err = self.proc.stderr_text()
        if check:
            san = SANITIZER_RE.search(err)
            self.tap.ok(not san, "%s: no sanitizer report in stderr" % self.name,
                        err[max(0, san.start() - 200):san.start() + 4000] if san else None)
            crashed = rc is not None and rc < 0 and (died_early or rc != -signal.SIGTERM)
            self.tap.ok(not crashed and not died_early,
                        "%s: did not die from a signal / exit early (rc=%s, early=%s)"
                        % (self.name, rc, died_early), err[-3000:])
            self.tap.ok(not self.proc.killed, "%s: exits within 5 s of SIGTERM" % self.name)
        if os.environ.get("NBGATE_TEST_VERBOSE"):
            self.tap.diag("---- %s stderr tail ----\n%s" % (self.name, err[-4000:]))
        # the spawned backends are children of the daemon; make sure none
        # survive (they are in the daemon's session only if it did not
        # setsid them, so kill by record-dir pidfiles too)
        pidfiles = [os.path.join(root, f) for root, _d, files in os.walk(self.record_dir)
                    for f in files if f.endswith(".pid")]
        for pidfile in pidfiles:
            try:
                pid = int(open(pidfile).read().strip())
                os.kill(pid, signal.SIGKILL)
            except (ValueError, OSError):
                pass
        if os.environ.get("NBGATE_TEST_KEEP"):
            self.tap.diag("kept %s" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def logs(self):
        txt = self.proc.stderr_text() + self.proc.stdout_text() if self.proc else ""
        try:
            with open(self.access_log, errors="replace") as f:
                txt += f.read()
        except OSError:
            pass
        return txt

    # ---- HTTP helpers -----------------------------------------------------
    def url(self, path):
        return "%s://%s:%d%s" % (self.scheme, self.host, self.port, path)

    def session(self):
        import requests
        s = requests.Session()
        s.verify = False
        s.trust_env = False  # never a proxy from the environment
        return s

    def logout(self, session, xsrf):
        """POST /hub/logout with the session. Returns (status or None, error)."""
        try:
            r = session.post(self.url("/hub/logout"), data={"_xsrf": xsrf or ""}, allow_redirects=False,
                             headers={"Origin": self.public_url, "Sec-Fetch-Site": "same-origin",
                                      "Sec-Fetch-Mode": "navigate"}, timeout=10)
            return r.status_code, r.text[:300]
        except Exception as e:  # a connection closed without a response
            return None, repr(e)

    def login(self, user, password=None, next_url=None, session=None):
        """Logs in through the form. Returns (requests.Session, xsrf, response)."""
        s = session or self.session()
        password = password if password is not None else self.users.get(user, DEFAULT_PASSWORD)
        r = s.get(self.url("/hub/login"), timeout=10)
        xsrf = form_xsrf(r.text) or s.cookies.get("_xsrf") or ""
        data = {"username": user, "password": password, "_xsrf": xsrf}
        if next_url is not None:
            data["next"] = next_url
        r = s.post(self.url("/hub/login"), data=data, allow_redirects=False, timeout=10,
                   headers={"Origin": self.public_url, "Referer": self.url("/hub/login"),
                            "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "navigate"})
        s.headers["X-XSRFToken"] = ""
        x = self.session_xsrf(s)
        if x:
            s.headers["X-XSRFToken"] = x
        else:
            del s.headers["X-XSRFToken"]
        return s, x, r

    def session_xsrf(self, s):
        """The XSRF token bound to a logged-in session (from /hub/api/user
        or the _xsrf hidden input of the home page or the _xsrf cookie)."""
        try:
            r = s.get(self.url("/hub/api/user"), timeout=10)
            if r.status_code == 200:
                j = r.json()
                for k in ("xsrf", "_xsrf", "xsrf_token"):
                    if isinstance(j.get(k), str) and j[k]:
                        return j[k]
            r = s.get(self.url("/hub/home"), timeout=10)
            x = meta_xsrf(r.text) or form_xsrf(r.text)
            if x:
                return x
        except Exception:
            pass
        return s.cookies.get("_xsrf")

    def api(self, method, path, token=None, session=None, json_body=None, headers=None,
            timeout=10, **kw):
        """Calls /hub/api<path> with a token (Authorization: token) or a
        logged-in session (cookie + X-XSRFToken + same-origin headers)."""
        import requests
        h = dict(headers or {})
        if token is not None:
            h.setdefault("Authorization", "token " + token)
        url = self.url("/hub/api" + path if not path.startswith("/hub/") else path)
        if session is not None:
            h.setdefault("Origin", self.public_url)
            h.setdefault("Sec-Fetch-Site", "same-origin")
            h.setdefault("Sec-Fetch-Mode", "cors")
            return session.request(method, url, json=json_body, headers=h, timeout=timeout,
                                   allow_redirects=False, **kw)
        return requests.request(method, url, json=json_body, headers=h, timeout=timeout,
                                allow_redirects=False, verify=False, **kw)

    def start_server(self, user, token, server="", wait=True, timeout=25.0, options=None):
        """Starts user's server through the API and waits until the proxy
        answers something other than 503 for /user/<user>/[server/]api/status."""
        path = "/users/%s/server" % user if not server else "/users/%s/servers/%s" % (user, server)
        r = self.api("POST", path, token=token, json_body=options or {})
        if r.status_code not in (201, 202, 400) or not wait:
            return r
        if r.status_code == 400 and "already" not in r.text:
            return r
        prefix = "/user/%s/%s" % (user, server + "/" if server else "")
        import requests

        def up():
            x = requests.get(self.url(prefix + "api/status"),
                             headers={"Authorization": "token " + token},
                             timeout=3, verify=False, allow_redirects=False)
            return x.status_code == 200
        if not wait_until(up, timeout=timeout, interval=0.1):
            raise RuntimeError("server of %s not reachable through the proxy after %ss"
                               % (user, timeout))
        return r

    # ---- what reached the backends ----------------------------------------
    def _rec_base(self, user, server=""):
        return os.path.join(self.record_dir, user, ("server-" + server) if server else "default")

    def records(self, user, server=""):
        """Every request the user's fake backend recorded (list of dicts)."""
        return read_jsonl(self._rec_base(user, server) + ".jsonl")

    def requests_seen(self, user, server=""):
        """Recorded HTTP requests + upgrades (not ws events, not junk)."""
        return [r for r in self.records(user, server) if "method" in r]

    def backend_env(self, user, server=""):
        try:
            with open(self._rec_base(user, server) + ".env.json") as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def all_records(self):
        out = []
        for root, _dirs, files in os.walk(self.record_dir):
            for f in files:
                if f.endswith(".jsonl"):
                    out += read_jsonl(os.path.join(root, f))
        return out

    def smuggled(self):
        """Records showing a smuggled request reached any backend."""
        return [r for r in self.all_records()
                if "__smuggled" in r.get("target", "") or "__smuggled" in r.get("junk", "")]

    # ---- http.client helpers (exact headers, source address) ---------------
    def request(self, method, path, headers=None, body=None, source=None, timeout=10):
        """One request on a fresh connection. Returns Resp(status, headers, body)."""
        return http_request(self.host, self.port, method, path, headers=headers, body=body,
                            source=source, timeout=timeout, tls=self.tls,
                            host_header=self.public_host)

    @property
    def public_host(self):
        return urllib.parse.urlsplit(self.public_url).netloc

    def form_login(self, user, password=None, source=None, next_url=None, extra_headers=None,
                   with_xsrf=True):
        """Form login over http.client (lets the test pick the client IP).
        Returns (Resp of the POST, cookie header string for later use)."""
        password = password if password is not None else self.users.get(user, DEFAULT_PASSWORD)
        r = self.request("GET", "/hub/login", source=source)
        jar = cookies_from(r)
        xsrf = form_xsrf(r.text()) or jar.get("_xsrf", "")
        fields = {"username": user, "password": password}
        if with_xsrf:
            fields["_xsrf"] = xsrf
        if next_url is not None:
            fields["next"] = next_url
        body = urllib.parse.urlencode(fields).encode()
        h = {"Content-Type": "application/x-www-form-urlencoded",
             "Origin": self.public_url, "Sec-Fetch-Site": "same-origin",
             "Sec-Fetch-Mode": "navigate", "Cookie": jar_header(jar)}
        h.update(extra_headers or {})
        h = {k: v for k, v in h.items() if v is not None}
        r2 = self.request("POST", "/hub/login", headers=h, body=body, source=source)
        jar.update(cookies_from(r2))
        return r2, jar_header(jar)


class Resp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # list of (name, value) as received
        self.body = body

    def header(self, name, default=None):
        for n, v in self.headers:
            if n.lower() == name.lower():
                return v
        return default

    def header_all(self, name):
        return [v for n, v in self.headers if n.lower() == name.lower()]

    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def __repr__(self):
        return "Resp(%s, %r, %r)" % (self.status, self.headers, self.body[:300])


def http_request(host, port, method, path, headers=None, body=None, source=None, timeout=10,
                 tls=False, host_header=None):
    if tls:
        import ssl
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        c = http.client.HTTPSConnection(host, port, timeout=timeout, context=ctx,
                                        source_address=(source, 0) if source else None)
    else:
        c = http.client.HTTPConnection(host, port, timeout=timeout,
                                       source_address=(source, 0) if source else None)
    try:
        h = dict(headers or {})
        if host_header and not any(k.lower() == "host" for k in h):
            h["Host"] = host_header
        skip_host = any(k.lower() == "host" for k in h)
        if body is None and method in ("POST", "PUT", "PATCH"):
            body = b""  # what browsers and requests send: Content-Length: 0
        c.putrequest(method, path, skip_host=skip_host, skip_accept_encoding=True)
        for k, v in h.items():
            if v is not None:
                c.putheader(k, v)
        if body is not None:
            if isinstance(body, str):
                body = body.encode()
            c.putheader("Content-Length", str(len(body)))
        c.endheaders(body)
        r = c.getresponse()
        data = r.read()
        return Resp(r.status, r.getheaders(), data)
    finally:
        c.close()


def cookies_from(resp):
    """{name: value} of the Set-Cookie headers of resp (Resp or requests)."""
    out = {}
    if hasattr(resp, "raw") and hasattr(resp.raw, "headers"):
        vals = resp.raw.headers.getlist("Set-Cookie")
    else:
        vals = resp.header_all("Set-Cookie")
    for v in vals:
        nv = v.split(";", 1)[0]
        if "=" in nv:
            n, val = nv.split("=", 1)
            out[n.strip()] = val.strip()
    return out


def set_cookie_headers(resp):
    if hasattr(resp, "raw") and hasattr(resp.raw, "headers"):
        return resp.raw.headers.getlist("Set-Cookie")
    return resp.header_all("Set-Cookie")


def jar_header(jar):
    return "; ".join("%s=%s" % kv for kv in jar.items())


def session_cookie_name(tls=False):
    return "__Host-nbgate-session" if tls else "nbgate-session"


def setup(tap, users=("alice", "bob"), admin="admin", config=None, server_cmd=None,
          tls=False, start_servers=(), name="gw"):
    """The standard fixture: users (non-admin) + admin (a name or a list of
    names, made admins), an API token for
    each (gw.tokens), the gateway started, and the listed users' servers
    started and reachable. Returns the Gateway, or None after reporting a
    failed assertion (the caller then returns)."""
    gw = None
    try:
        ulist = [(u, DEFAULT_PASSWORD, False) for u in users]
        for a in ([admin] if isinstance(admin, str) else list(admin or [])):
            ulist.append((a, DEFAULT_PASSWORD, True))
        gw = Gateway(tap, config=config, users=ulist, server_cmd=server_cmd, tls=tls, name=name)
        gw.tokens = {u: gw.create_token(u) for u, _p, _a in ulist}
        gw.start()
    except Exception:
        tap.ok(False, "%s: setup (users, tokens, serve, ready)" % name, traceback.format_exc()
               + ("\n" + "\n".join("nbgate %s -> %s %s %s" % (" ".join(a), rc, o, e[-500:])
                                    for a, rc, o, e in (gw.cli_log if gw else []))))
        return None
    tap.ok(True, "%s: started on port %d" % (name, gw.port))
    for u in start_servers:
        try:
            r = gw.start_server(u, gw.tokens[u])
            tap.ok(r.status_code in (201, 202), "%s: server of %s started via API (%s)"
                   % (name, u, r.status_code), r.text[:500])
        except Exception:
            tap.ok(False, "%s: start server of %s" % (name, u), traceback.format_exc())
    return gw


def _glob(d, suffix):
    try:
        return [os.path.join(d, f) for f in os.listdir(d) if f.endswith(suffix)]
    except OSError:
        return []


def meta_xsrf(html):
    """The session's XSRF token from <meta name="nbgate-xsrf" content=...>."""
    m = re.search(r'<meta name="nbgate-xsrf" content="([^"]+)"', html or "")
    return m.group(1) if m else None


def form_xsrf(html):
    m = re.search(r'name=["\']_xsrf["\'][^>]*value=["\']([^"\']+)', html or "")
    if not m:
        m = re.search(r'value=["\']([^"\']+)["\'][^>]*name=["\']_xsrf["\']', html or "")
    return m.group(1) if m else None


def make_self_signed(d):
    cert = os.path.join(d, "cert.pem")
    key = os.path.join(d, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:nbgate.test,DNS:*.nbgate.test",
                    "-keyout", key, "-out", cert], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    return cert, key


# --------------------------------------------------------------------------
# Fake backend and canary, started directly (without the gateway)
# --------------------------------------------------------------------------


class Canary:
    """A listener on 127.0.0.2:<port> that counts connections (must stay 0)."""

    def __init__(self, tmp, host="127.0.0.2", port=None):
        self.host = host
        self.port = port or free_port(host)
        self.count_file = os.path.join(tmp, "canary-%d.count" % self.port)
        self.proc = Process([PY, FAKE_BACKEND, "--canary", "%s:%d" % (host, self.port),
                             "--count-file", self.count_file],
                            os.path.join(tmp, "canary-%d" % self.port))
        if not wait_until(lambda: os.path.exists(self.count_file), 5):
            raise RuntimeError("canary did not start")

    def count(self):
        try:
            with open(self.count_file) as f:
                return int(f.read().strip() or 0)
        except (OSError, ValueError):
            return -1

    def stop(self):
        self.proc.stop()


def start_fake_backend(tmp, user="alice", server="", sock=None, port=None, base_url=None):
    """Starts fake_backend.py directly; returns (Process, address)."""
    rec = os.path.join(tmp, "records")
    os.makedirs(rec, exist_ok=True)
    base_url = base_url or "/user/%s/" % user
    argv = [PY, FAKE_BACKEND, "--base-url", base_url, "--user", user, "--server", server,
            "--record-dir", rec]
    if sock:
        argv += ["--sock", sock]
        addr = sock
    else:
        port = port or free_port()
        argv += ["--port", str(port)]
        addr = ("127.0.0.1", port)
    p = Process(argv, os.path.join(tmp, "fake-%s" % user))

    def up():
        try:
            if sock:
                s = socket.socket(socket.AF_UNIX)
                s.connect(sock)
            else:
                s = socket.create_connection(addr, timeout=0.5)
            s.close()
            return True
        except OSError:
            return False
    if not wait_until(up, 5):
        raise RuntimeError("fake backend did not start: " + p.stderr_text())
    return p, addr


# --------------------------------------------------------------------------
# WebSocket helpers
# --------------------------------------------------------------------------


def ws_key():
    return base64.b64encode(os.urandom(16)).decode()


def ws_frame(opcode, payload=b"", mask=True, fin=True, rsv=0, length_override=None):
    """Builds one frame (client frames masked by default)."""
    if isinstance(payload, str):
        payload = payload.encode()
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload) if length_override is None else length_override
    hdr = bytes([b0])
    mbit = 0x80 if mask else 0
    if n < 126:
        hdr += bytes([mbit | n])
    elif n < 65536:
        hdr += bytes([mbit | 126]) + n.to_bytes(2, "big")
    else:
        hdr += bytes([mbit | 127]) + n.to_bytes(8, "big")
    if mask:
        m = os.urandom(4)
        hdr += m
        payload = bytes(c ^ m[i % 4] for i, c in enumerate(payload))
    return hdr + payload


def ws_read_frame(conn, timeout=3.0):
    """Reads one frame from a RawConn; returns (opcode, payload) or None."""
    deadline = time.monotonic() + timeout
    while True:
        b = conn.buf
        if len(b) >= 2:
            n = b[1] & 0x7F
            off = 2
            if n == 126 and len(b) >= 4:
                n = int.from_bytes(b[2:4], "big")
                off = 4
            elif n == 127 and len(b) >= 10:
                n = int.from_bytes(b[2:10], "big")
                off = 10
            elif n >= 126:
                n = None
            if n is not None:
                masked = b[1] & 0x80
                if masked:
                    off += 4
                if len(b) >= off + n:
                    payload = b[off:off + n]
                    if masked:
                        m = b[off - 4:off]
                        payload = bytes(c ^ m[i % 4] for i, c in enumerate(payload))
                    conn.buf = b[off + n:]
                    return b[0] & 0x0F, payload
        if not conn._fill(deadline):
            return None


def ws_handshake(gw, path, headers=None, timeout=5.0):
    """Raw WebSocket upgrade through the gateway. Returns (RawConn, RawResponse)."""
    c = RawConn(gw.host, gw.port, timeout=timeout, tls=gw.tls)
    h = {"Host": "%s:%d" % (gw.host, gw.port), "Upgrade": "websocket",
         "Connection": "Upgrade", "Sec-WebSocket-Key": ws_key(), "Sec-WebSocket-Version": "13"}
    h.update(headers or {})
    req = "GET %s HTTP/1.1\r\n" % path + "".join("%s: %s\r\n" % (k, v) for k, v in h.items()
                                                   if v is not None) + "\r\n"
    c.send(req)
    r = c.read_response(head_only=True)
    return c, r


def cookie_header(session):
    return "; ".join("%s=%s" % (c.name, c.value) for c in session.cookies)
