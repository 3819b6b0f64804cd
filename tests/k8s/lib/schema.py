#!/usr/bin/python3
"""Strict OpenAPI v2 validator for Kubernetes objects (test support).

Validates a decoded object (dict) against the official Kubernetes v1.24
OpenAPI v2 document (../shared/k8s-openapi/swagger-v1.24.json) the way a
real API server with strict field validation decodes it: unknown fields,
wrong JSON types, out-of-range int32/int64, malformed Quantity /
IntOrString / date-time / base64 (format byte) values and missing
required fields are errors. Definitions without a type and without
properties (RawExtension, JSON, FieldsV1) accept any value; objects with
additionalProperties are maps. A JSON null is accepted anywhere (the Go
decoder turns it into the zero value) and counts as absent for required.

Also: validate_object_meta() (the API server's name, label and annotation
rules, with its wording) and validate_kind_rules() (a small subset of the
API server's per-kind semantic validation that the schema cannot express:
a pod needs at least one container, container images, unique names...).
What it does NOT do: defaulting, immutability on update, cross-object
checks, every per-field rule of pkg/apis/core/validation.

Python 3.11 stdlib + python3-yaml (CLI only).
CLI: python3 schema.py file.yaml...  (multi-document YAML or JSON; prints
one line per error "file: doc N (Kind/name): error"; exit 1 if any).
"""

import base64
import binascii
import json
import os
import re
import sys

DEFAULT_PATH = os.environ.get(
    "NBGATE_K8S_OPENAPI",
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "..",
                 "shared", "k8s-openapi", "swagger-v1.24.json"))
if not os.path.exists(DEFAULT_PATH):
    DEFAULT_PATH = "/work/shared/k8s-openapi/swagger-v1.24.json"

QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"

INT32 = (-(1 << 31), (1 << 31) - 1)
INT64 = (-(1 << 63), (1 << 63) - 1)

# Same grammar as k8s.io/apimachinery/pkg/api/resource.ParseQuantity.
QUANTITY_RE = re.compile(
    r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)"
    r"(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?$")
RFC3339_RE = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})$")

# k8s.io/apimachinery/pkg/util/validation, with its messages.
DNS1123_LABEL_FMT = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN_FMT = DNS1123_LABEL_FMT + r"(\." + DNS1123_LABEL_FMT + r")*"
DNS1035_LABEL_FMT = r"[a-z]([-a-z0-9]*[a-z0-9])?"
QUALIFIED_NAME_FMT = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
LABEL_VALUE_FMT = r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?"
ENV_VAR_NAME_FMT = r"[-._a-zA-Z][-._a-zA-Z0-9]*"
CONFIG_KEY_FMT = r"[-._a-zA-Z0-9]+"
TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024
MAX_SECRET_SIZE = 1024 * 1024

MSG_DNS1123_LABEL = ("a lowercase RFC 1123 label must consist of lower case alphanumeric "
                     "characters or '-', and must start and end with an alphanumeric character "
                     "(e.g. 'my-name',  or '123-abc', regex used for validation is '%s')"
                     % DNS1123_LABEL_FMT)
MSG_DNS1123_SUBDOMAIN = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                         "characters, '-' or '.', and must start and end with an alphanumeric "
                         "character (e.g. 'example.com', regex used for validation is '%s')"
                         % DNS1123_SUBDOMAIN_FMT)
MSG_DNS1035_LABEL = ("a DNS-1035 label must consist of lower case alphanumeric characters or "
                     "'-', start with an alphabetic character, and end with an alphanumeric "
                     "character (e.g. 'my-name',  or 'abc-123', regex used for validation is '%s')"
                     % DNS1035_LABEL_FMT)
MSG_QUALIFIED_NAME = ("name part must consist of alphanumeric characters, '-', '_' or '.', and "
                      "must start and end with an alphanumeric character (e.g. 'MyName',  or "
                      "'my.name',  or '123-abc', regex used for validation is '%s')"
                      % QUALIFIED_NAME_FMT)
MSG_LABEL_VALUE = ("a valid label must be an empty string or consist of alphanumeric "
                   "characters, '-', '_' or '.', and must start and end with an alphanumeric "
                   "character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for "
                   "validation is '%s')" % LABEL_VALUE_FMT)

# Kinds whose metadata.name is checked with a rule other than DNS-1123 subdomain.
NAME_RULES = {"Service": "dns1035", "Namespace": "dns1123label"}


def _full(fmt):
    return re.compile("^" + fmt + "$")


_RE = {k: _full(v) for k, v in {
    "dns1123label": DNS1123_LABEL_FMT, "dns1123subdomain": DNS1123_SUBDOMAIN_FMT,
    "dns1035": DNS1035_LABEL_FMT, "qname": QUALIFIED_NAME_FMT, "lvalue": LABEL_VALUE_FMT,
    "env": ENV_VAR_NAME_FMT, "configkey": CONFIG_KEY_FMT}.items()}


def api_version_of(group, version):
    return version if not group else "%s/%s" % (group, version)


def _jtype(v):
    """Name of the JSON type of a decoded value, in the validator's words."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return type(v).__name__


def _join(path, key):
    return key if not path else "%s.%s" % (path, key)


class Schema:
    """The OpenAPI v2 document, indexed by definition name and by GVK."""

    def __init__(self, path=None):
        with open(path or DEFAULT_PATH, encoding="utf-8") as f:
            self.doc = json.load(f)
        self.defs = self.doc["definitions"]
        self._gvk = {}
        for name, d in self.defs.items():
            for g in d.get("x-kubernetes-group-version-kind", []):
                key = (api_version_of(g["group"], g["version"]), g["kind"])
                # DeleteOptions/WatchEvent are listed under every group; keep the first.
                self._gvk.setdefault(key, name)

    def kinds(self):
        """Sorted list of (apiVersion, kind) the schema defines."""
        return sorted(self._gvk)

    def definition_for(self, api_version, kind):
        """Definition name for apiVersion/kind, or None."""
        return self._gvk.get((api_version, kind))

    def resolve(self, definition):
        """Accepts a full definition name or a unique suffix ("core.v1.PodStatus")."""
        if definition in self.defs:
            return definition
        hits = [n for n in self.defs if n.endswith("." + definition)]
        if len(hits) == 1:
            return hits[0]
        raise KeyError("unknown or ambiguous definition %r" % definition)

    def status_definition(self, api_version, kind):
        """Definition name of the kind's .status, or None."""
        d = self.definition_for(api_version, kind)
        if not d:
            return None
        st = self.defs[d].get("properties", {}).get("status", {})
        ref = st.get("$ref")
        return ref.rsplit("/", 1)[1] if ref else None

    def validate(self, obj, definition=None):
        """Errors (list of str, empty = valid) of obj against definition (default: by GVK)."""
        if definition is None:
            if not isinstance(obj, dict):
                return ["expected object, got %s" % _jtype(obj)]
            av, kind = obj.get("apiVersion"), obj.get("kind")
            if not isinstance(av, str) or not av:
                return ["apiVersion: required"]
            if not isinstance(kind, str) or not kind:
                return ["kind: required"]
            definition = self.definition_for(av, kind)
            if definition is None:
                return ['kind: unknown kind "%s" in apiVersion "%s"' % (kind, av)]
        else:
            definition = self.resolve(definition)
        errs = []
        self._check(obj, {"$ref": "#/definitions/" + definition}, "", errs, 0)
        return errs

    # -- the walker ---------------------------------------------------------

    def _check(self, v, s, path, errs, depth):
        if depth > 64:
            errs.append("%s: nesting too deep" % (path or "<root>"))
            return
        ref = s.get("$ref")
        if ref:
            name = ref.rsplit("/", 1)[1]
            if name == QUANTITY:
                return self._check_quantity(v, path, errs)
            if name == INT_OR_STRING:
                return self._check_int_or_string(v, path, errs)
            return self._check(v, self.defs[name], path, errs, depth + 1)
        if v is None:
            return
        t = s.get("type")
        if t is None and "properties" not in s:
            return  # JSON / RawExtension-like: anything
        if "enum" in s and v not in s["enum"]:
            errs.append('%s: Unsupported value: %s: supported values: %s'
                        % (path, json.dumps(v), ", ".join(json.dumps(e) for e in s["enum"])))
        if t == "object" or (t is None and "properties" in s):
            return self._check_object(v, s, path, errs, depth)
        if t == "array":
            if not isinstance(v, list):
                return errs.append("%s: expected array, got %s" % (path, _jtype(v)))
            for i, item in enumerate(v):
                self._check(item, s.get("items", {}), "%s[%d]" % (path, i), errs, depth + 1)
            return
        self._check_scalar(v, t, s.get("format"), path, errs)

    def _check_object(self, v, s, path, errs, depth):
        if not isinstance(v, dict):
            return errs.append("%s: expected object, got %s" % (path or "<root>", _jtype(v)))
        props = s.get("properties")
        addl = s.get("additionalProperties")
        for req in s.get("required", []):
            if v.get(req) is None:
                errs.append("%s: required" % _join(path, req))
        if props is None and addl is None:
            return  # free-form object (FieldsV1, RawExtension)
        for k, item in v.items():
            if props is not None and k in props:
                self._check(item, props[k], _join(path, k), errs, depth + 1)
            elif isinstance(addl, dict):
                self._check(item, addl, "%s[%s]" % (path, k), errs, depth + 1)
            elif addl is True:
                continue
            else:
                errs.append('%s: unknown field "%s"' % (_join(path, k), k))

    @staticmethod
    def _check_scalar(v, t, fmt, path, errs):
        got = _jtype(v)
        if t == "string":
            if fmt == "int-or-string":
                return Schema._check_int_or_string(v, path, errs)
            if not isinstance(v, str):
                return errs.append("%s: expected string, got %s" % (path, got))
            if fmt == "byte":
                try:
                    base64.b64decode(v, validate=True)
                except (binascii.Error, ValueError):
                    errs.append("%s: illegal base64 data" % path)
            elif fmt == "date-time" and not RFC3339_RE.match(v):
                errs.append('%s: invalid RFC3339 time "%s"' % (path, v))
        elif t == "integer":
            if got != "integer":
                return errs.append("%s: expected integer, got %s" % (path, got))
            lo, hi = INT32 if fmt == "int32" else INT64
            if not lo <= v <= hi:
                errs.append("%s: value %d out of range for %s" % (path, v, fmt or "int64"))
        elif t == "number":
            if got not in ("integer", "number"):
                errs.append("%s: expected number, got %s" % (path, got))
        elif t == "boolean":
            if got != "boolean":
                errs.append("%s: expected boolean, got %s" % (path, got))

    @staticmethod
    def _check_quantity(v, path, errs):
        if v is None:
            return
        if isinstance(v, bool) or not isinstance(v, (str, int, float)):
            return errs.append("%s: expected quantity (string or number), got %s"
                               % (path, _jtype(v)))
        s = v if isinstance(v, str) else json.dumps(v)
        if not QUANTITY_RE.match(s):
            errs.append("%s: quantities must match the regular expression "
                        "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$' (got %s)"
                        % (path, json.dumps(v)))

    @staticmethod
    def _check_int_or_string(v, path, errs):
        if v is None or isinstance(v, str):
            return
        if isinstance(v, bool) or not isinstance(v, int):
            return errs.append("%s: expected integer or string, got %s" % (path, _jtype(v)))
        if not INT32[0] <= v <= INT32[1]:
            errs.append("%s: value %d out of range for int32" % (path, v))


# -- object metadata: the API server's rules ---------------------------------


def _invalid(path, value, msg):
    return "%s: Invalid value: %s: %s" % (path, json.dumps(value), msg)


def check_name(value, rule):
    """Messages (list) for a name under rule dns1123subdomain|dns1123label|dns1035."""
    limit = 253 if rule == "dns1123subdomain" else 63
    out = []
    if len(value) > limit:
        out.append("must be no more than %d characters" % limit)
    if not _RE[rule].match(value):
        out.append({"dns1123subdomain": MSG_DNS1123_SUBDOMAIN, "dns1123label": MSG_DNS1123_LABEL,
                    "dns1035": MSG_DNS1035_LABEL}[rule])
    return out


def check_qualified_name(key):
    """Messages for a label/annotation key: [prefix/]name."""
    out = []
    prefix, _, name = key.rpartition("/")
    if "/" in key and not prefix:
        out.append("prefix part must be non-empty")
    elif prefix:
        out += ["prefix part " + m for m in check_name(prefix, "dns1123subdomain")]
    if not name:
        out.append("name part must be non-empty")
        return out
    if len(name) > 63:
        out.append("name part must be no more than 63 characters")
    if not _RE["qname"].match(name):
        out.append(MSG_QUALIFIED_NAME)
    return out


def check_label_value(value):
    out = []
    if len(value) > 63:
        out.append("must be no more than 63 characters")
    if not _RE["lvalue"].match(value):
        out.append(MSG_LABEL_VALUE)
    return out


def validate_labels(labels, path):
    errs = []
    if not isinstance(labels, dict):
        return errs
    for k, v in labels.items():
        for m in check_qualified_name(k):
            errs.append(_invalid(path, k, m))
        if isinstance(v, str):
            for m in check_label_value(v):
                errs.append(_invalid("%s[%s]" % (path, k), v, m))
    return errs


def validate_object_meta(obj, kind=None, require_name=True):
    """API server metadata rules for obj (errors, list of str).

    Name: DNS-1035 label for Services, DNS-1123 label for Namespaces, DNS-1123
    subdomain otherwise; labels (qualified key, value <= 63); annotation keys
    and total annotation size <= 256 KiB; namespace a DNS-1123 label."""
    kind = kind or (obj.get("kind") if isinstance(obj, dict) else None)
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    if not isinstance(meta, dict):
        return ["metadata: Required value"]
    errs = []
    name, gen = meta.get("name"), meta.get("generateName")
    if not name:
        if require_name and not gen:
            errs.append("metadata.name: Required value: name or generateName is required")
    elif isinstance(name, str):
        for m in check_name(name, NAME_RULES.get(kind, "dns1123subdomain")):
            errs.append(_invalid("metadata.name", name, m))
    ns = meta.get("namespace")
    if isinstance(ns, str) and ns:
        for m in check_name(ns, "dns1123label"):
            errs.append(_invalid("metadata.namespace", ns, m))
    errs += validate_labels(meta.get("labels"), "metadata.labels")
    ann = meta.get("annotations")
    if isinstance(ann, dict):
        total = 0
        for k, v in ann.items():
            for m in check_qualified_name(k):
                errs.append(_invalid("metadata.annotations", k, m))
            total += len(k) + (len(v) if isinstance(v, str) else 0)
        if total > TOTAL_ANNOTATION_SIZE_LIMIT:
            errs.append("metadata.annotations: Too long: must have at most %d bytes"
                        % TOTAL_ANNOTATION_SIZE_LIMIT)
    return errs


# -- per-kind semantic rules (subset of pkg/apis/core/validation) --------------


def _containers_errs(containers, path, volumes):
    errs, seen = [], set()
    for i, c in enumerate(containers or []):
        if not isinstance(c, dict):
            continue
        p = "%s[%d]" % (path, i)
        name = c.get("name")
        if isinstance(name, str) and name:
            errs += [_invalid(p + ".name", name, m) for m in check_name(name, "dns1123label")]
            if name in seen:
                errs.append('%s.name: Duplicate value: "%s"' % (p, name))
            seen.add(name)
        if not c.get("image"):
            errs.append("%s.image: Required value" % p)
        for j, e in enumerate(c.get("env") or []):
            n = e.get("name") if isinstance(e, dict) else None
            if isinstance(n, str) and not _RE["env"].match(n):
                errs.append(_invalid("%s.env[%d].name" % (p, j), n,
                                     "a valid environment variable name must consist of "
                                     "alphabetic characters, digits, '_', '-', or '.', and must "
                                     "not start with a digit"))
        for j, port in enumerate(c.get("ports") or []):
            cp = port.get("containerPort") if isinstance(port, dict) else None
            if isinstance(cp, int) and not 1 <= cp <= 65535:
                errs.append(_invalid("%s.ports[%d].containerPort" % (p, j), cp,
                                     "must be between 1 and 65535, inclusive"))
        for j, m in enumerate(c.get("volumeMounts") or []):
            n = m.get("name") if isinstance(m, dict) else None
            if isinstance(n, str) and n not in volumes:
                errs.append('%s.volumeMounts[%d].name: Not found: "%s"' % (p, j, n))
        errs += _resources_errs(c.get("resources"), p + ".resources")
    return errs


def _qty_value(q):
    """Approximate numeric value of a Quantity (for limit >= request checks)."""
    m = QUANTITY_RE.match(str(q))
    if not m:
        return None
    s = str(q)
    mult = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
            "n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
            "P": 1e15, "E": 1e18}
    suf = m.group(3) or ""
    num = float(s[:len(s) - len(suf)])
    if suf[:1] in ("e", "E"):
        return num * 10 ** int(suf[1:])
    return num * mult.get(suf, 1)


def _resources_errs(res, path):
    errs = []
    if not isinstance(res, dict):
        return errs
    lim, req = res.get("limits") or {}, res.get("requests") or {}
    for name, q in req.items():
        if name in lim:
            a, b = _qty_value(q), _qty_value(lim[name])
            if a is not None and b is not None and a > b:
                errs.append(_invalid("%s.requests[%s]" % (path, name), q,
                                     "must be less than or equal to %s limit" % name))
    for name, q in lim.items():
        if "/" in name and not name.startswith(("kubernetes.io/", "requests.")):
            # extended resources (nvidia.com/gpu): integers, requests == limits
            v = _qty_value(q)
            if v is not None and v != int(v):
                errs.append(_invalid("%s.limits[%s]" % (path, name), q,
                                     "must be an integer"))
            if name in req and _qty_value(req[name]) != v:
                errs.append(_invalid("%s.requests[%s]" % (path, name), req[name],
                                     "must be equal to %s limit" % name))
    return errs


def _pod_spec_errs(spec, path, restart_policies=("Always", "OnFailure", "Never")):
    if not isinstance(spec, dict):
        return []
    errs = []
    vols = set()
    for i, v in enumerate(spec.get("volumes") or []):
        n = v.get("name") if isinstance(v, dict) else None
        if isinstance(n, str):
            errs += [_invalid("%s.volumes[%d].name" % (path, i), n, m)
                     for m in check_name(n, "dns1123label")]
            if n in vols:
                errs.append('%s.volumes[%d].name: Duplicate value: "%s"' % (path, i, n))
            vols.add(n)
    if not spec.get("containers"):
        errs.append("%s.containers: Required value" % path)
    errs += _containers_errs(spec.get("containers"), path + ".containers", vols)
    errs += _containers_errs(spec.get("initContainers"), path + ".initContainers", vols)
    rp = spec.get("restartPolicy")
    if rp is not None and rp not in restart_policies:
        errs.append('%s.restartPolicy: Unsupported value: "%s": supported values: %s'
                    % (path, rp, ", ".join('"%s"' % r for r in restart_policies)))
    for i, t in enumerate(spec.get("tolerations") or []):
        if isinstance(t, dict) and t.get("operator") == "Exists" and t.get("value"):
            errs.append(_invalid("%s.tolerations[%d].operator" % (path, i), t.get("value"),
                                 "value must be empty when `operator` is 'Exists'"))
    errs += validate_labels(spec.get("nodeSelector"), path + ".nodeSelector")
    return errs


def validate_kind_rules(obj):
    """Per-kind semantic errors the schema cannot express (subset; list of str)."""
    if not isinstance(obj, dict):
        return []
    kind, spec = obj.get("kind"), obj.get("spec")
    errs = []
    if kind == "Pod":
        errs += _pod_spec_errs(spec, "spec")
    elif kind == "Job" and isinstance(spec, dict):
        tmpl = spec.get("template") or {}
        errs += validate_labels((tmpl.get("metadata") or {}).get("labels"),
                                "spec.template.metadata.labels")
        ts = tmpl.get("spec")
        if not isinstance(ts, dict) or not ts.get("restartPolicy"):
            errs.append('spec.template.spec.restartPolicy: Required value: valid values: '
                        '"OnFailure", "Never"')
        errs += _pod_spec_errs(ts, "spec.template.spec", ("OnFailure", "Never"))
        name = (obj.get("metadata") or {}).get("name")
        if isinstance(name, str) and len(name) > 63:
            errs.append(_invalid("spec.template.labels", name,
                                 "must be no more than 63 characters"))
    elif kind == "PersistentVolumeClaim":
        spec = spec if isinstance(spec, dict) else {}
        if not spec.get("accessModes"):
            errs.append("spec.accessModes: Required value: at least 1 access mode is required")
        if not ((spec.get("resources") or {}).get("requests") or {}).get("storage"):
            errs.append('spec.resources[storage]: Required value')
    elif kind == "Secret":
        errs += _secret_errs(obj)
    elif kind == "Service" and isinstance(spec, dict):
        for i, p in enumerate(spec.get("ports") or []):
            port = p.get("port") if isinstance(p, dict) else None
            if isinstance(port, int) and not 1 <= port <= 65535:
                errs.append(_invalid("spec.ports[%d].port" % i, port,
                                     "must be between 1 and 65535, inclusive"))
    return errs


def _secret_errs(obj):
    errs, total = [], 0
    for field in ("data", "stringData"):
        d = obj.get(field)
        if not isinstance(d, dict):
            continue
        for k, v in d.items():
            if not _RE["configkey"].match(k) or len(k) > 253:
                errs.append(_invalid(field, k, "a valid config key must consist of alphanumeric "
                                     "characters, '-', '_' or '.' (e.g. 'key.name',  or "
                                     "'KEY_NAME',  or 'key-name', regex used for validation is "
                                     "'%s')" % CONFIG_KEY_FMT))
            total += len(v) if isinstance(v, str) else 0
    if total > MAX_SECRET_SIZE:
        errs.append("data: Too long: must have at most %d bytes" % MAX_SECRET_SIZE)
    return errs


_DEFAULT = None


def default_schema():
    """A process-wide Schema on the default path (loaded once; ~0.3 s)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = Schema()
    return _DEFAULT


def validate_all(obj, schema=None):
    """Schema + metadata + per-kind errors for a whole object (what the CLI checks)."""
    schema = schema or default_schema()
    errs = schema.validate(obj)
    if isinstance(obj, dict) and isinstance(obj.get("metadata"), dict):
        errs += validate_object_meta(obj)
    errs += validate_kind_rules(obj)
    return errs


def _load_docs(path):
    import yaml  # python3-yaml; only the CLI needs it
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if path.endswith(".json"):
        return [json.loads(text)]
    return [d for d in yaml.safe_load_all(text) if d is not None]


def main(argv):
    if not argv:
        print("usage: schema.py FILE.yaml...", file=sys.stderr)
        return 2
    schema, bad = default_schema(), 0
    for path in argv:
        try:
            docs = _load_docs(path)
        except Exception as e:  # a file that does not parse is an error, not a crash
            print("%s: %s" % (path, e))
            bad += 1
            continue
        for i, doc in enumerate(docs):
            what = "%s/%s" % (doc.get("kind"), (doc.get("metadata") or {}).get("name")) \
                if isinstance(doc, dict) else "?"
            for e in validate_all(doc, schema):
                print("%s: doc %d (%s): %s" % (path, i, what, e))
                bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
