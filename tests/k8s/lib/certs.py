"""Test PKI for the Kubernetes API server contract test double (openssl CLI).

make_pki(dir) writes a CA, a server certificate for 127.0.0.1/::1/localhost
and helpers to issue client certificates (CN = user, O = groups), the way a
cluster's kubeconfig carries them. ECDSA P-256 keys (fast), 2-day validity.
Only the openssl command line is used (Debian's openssl 3).
"""

import os
import subprocess

OPENSSL = "openssl"
DAYS = "2"


def _run(args, cwd):
    p = subprocess.run([OPENSSL] + args, cwd=cwd, capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" % (" ".join(args[:2]), p.stderr.strip()))


def _key(path, cwd):
    _run(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
          "-out", path], cwd)
    os.chmod(os.path.join(cwd, path), 0o600)


def make_ca(d, cn="nbgate-test-ca"):
    """CA key+cert in d; returns (ca_crt, ca_key) absolute paths."""
    _key("ca.key", d)
    _run(["req", "-x509", "-new", "-key", "ca.key", "-out", "ca.crt", "-days", DAYS,
          "-subj", "/CN=" + cn,
          "-addext", "basicConstraints=critical,CA:TRUE",
          "-addext", "keyUsage=critical,keyCertSign,cRLSign"], d)
    return os.path.join(d, "ca.crt"), os.path.join(d, "ca.key")


def _issue(d, stem, subj, ext_lines, ca_crt, ca_key):
    _key(stem + ".key", d)
    _run(["req", "-new", "-key", stem + ".key", "-out", stem + ".csr", "-subj", subj], d)
    with open(os.path.join(d, stem + ".ext"), "w") as f:
        f.write("\n".join(ext_lines) + "\n")
    _run(["x509", "-req", "-in", stem + ".csr", "-CA", ca_crt, "-CAkey", ca_key,
          "-CAcreateserial", "-out", stem + ".crt", "-days", DAYS,
          "-extfile", stem + ".ext"], d)
    return os.path.join(d, stem + ".crt"), os.path.join(d, stem + ".key")


def make_server_cert(d, ca_crt, ca_key, stem="server"):
    """Server cert for 127.0.0.1, ::1 and localhost; returns (crt, key)."""
    return _issue(d, stem, "/CN=kube-apiserver", [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        "extendedKeyUsage=serverAuth",
        "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost,DNS:kubernetes.default.svc"],
        ca_crt, ca_key)


def make_client_cert(d, ca_crt, ca_key, user, groups=(), stem=None):
    """Client cert CN=user, O=each group; returns (crt, key)."""
    safe = "".join(ch if ch.isalnum() else "_" for ch in user)
    subj = "/CN=" + user.replace("/", "\\/")
    for g in groups:
        subj += "/O=" + g.replace("/", "\\/")
    return _issue(d, stem or "client-" + safe, subj, [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature",
        "extendedKeyUsage=clientAuth"], ca_crt, ca_key)


class Pki:
    """A CA plus server certificate in directory d (created)."""

    def __init__(self, d):
        os.makedirs(d, exist_ok=True)
        self.dir = d
        self.ca_crt, self.ca_key = make_ca(d)
        self.server_crt, self.server_key = make_server_cert(d, self.ca_crt, self.ca_key)

    def client(self, user, groups=()):
        """Issue a client certificate; returns (crt, key) paths."""
        return make_client_cert(self.dir, self.ca_crt, self.ca_key, user, groups)
