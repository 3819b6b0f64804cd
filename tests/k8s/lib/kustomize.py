"""Renders a kustomization directory: the subset of kustomize that manifests/ uses.

There is no kustomize (nor kubectl) on these machines, so the tests render the
layout themselves. Supported kustomization keys (anything else is refused, so
that the layout never silently relies on something this renderer ignores):

  apiVersion, kind          kustomize.config.k8s.io/v1beta1, Kustomization
  resources                 YAML files (multi-document) and directories that hold
                            a kustomization.yaml (rendered first, like a base)
  namespace                 sets metadata.namespace of every namespaced object and
                            the namespace of ServiceAccount subjects of
                            (Cluster)RoleBindings
  commonLabels              metadata.labels of every object, plus the selectors
                            kustomize's fieldspecs name (workload selectors and
                            pod templates, Service selectors, NetworkPolicy
                            podSelectors where they exist)
  images                    name -> newName / newTag / digest on every container
                            and init container image
  patches                   path or inline patch, optional target (group, version,
                            kind, name, namespace, labelSelector); a YAML map is a
                            strategic merge patch, a YAML list a JSON 6902 patch
  configMapGenerator        name, namespace, behavior (create|merge|replace),
                            files (path or key=path, inside the kustomization dir),
                            literals (key=value), options (labels, annotations,
                            disableNameSuffixHash)
  generatorOptions          labels, annotations, disableNameSuffixHash

Order as kustomize's: resources, generators, patches, namespace, commonLabels,
images; then references to generated ConfigMaps get their hashed names.
Stricter than kustomize where it helps the tests: a patch that matches no
object is an error.

API: render(path) -> list of dicts; render_yaml(path) -> str;
     python3 kustomize.py DIR prints the rendered YAML.
"""

import base64
import copy
import hashlib
import json
import os
import re
import sys

import yaml


class KustomizeError(Exception):
    pass


KUSTOMIZATION_KEYS = {
    "apiVersion", "kind", "resources", "namespace", "commonLabels", "images",
    "patches", "configMapGenerator", "generatorOptions",
}
CLUSTER_SCOPED = {
    "Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume", "StorageClass",
    "CustomResourceDefinition", "Node", "PriorityClass", "RuntimeClass", "IngressClass",
    "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration", "APIService",
    "CSIDriver", "CSINode", "VolumeSnapshotClass", "PodSecurityPolicy",
}
WORKLOADS = {"Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "ReplicationController"}

# strategic merge: list fields merged by a key (core/v1 patchMergeKey); other lists replace
MERGE_KEYS = {
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name",
    "volumes": "name", "volumeMounts": "mountPath", "volumeDevices": "devicePath",
    "env": "name", "imagePullSecrets": "name", "hostAliases": "ip",
    "conditions": "type", "topologySpreadConstraints": "topologyKey",
}


def _load_yaml_docs(path):
    try:
        with open(path, encoding="utf-8") as f:
            docs = [d for d in yaml.safe_load_all(f) if d is not None]
    except (OSError, yaml.YAMLError) as e:
        raise KustomizeError("%s: %s" % (path, e))
    for d in docs:
        if not isinstance(d, dict) or not d.get("kind") or not d.get("apiVersion") \
                or not isinstance(d.get("metadata"), dict) or not d["metadata"].get("name"):
            raise KustomizeError("%s: every document needs apiVersion, kind and metadata.name"
                                 % path)
    return docs


def _kustomization_file(d):
    for n in ("kustomization.yaml", "kustomization.yml", "Kustomization"):
        p = os.path.join(d, n)
        if os.path.isfile(p):
            return p
    return None


def _group(obj):
    av = obj.get("apiVersion", "")
    return av.split("/")[0] if "/" in av else ""


def _version(obj):
    return obj.get("apiVersion", "").split("/")[-1]


def res_id(obj):
    m = obj["metadata"]
    return (_group(obj), obj["kind"], m.get("namespace") or "", m["name"])


def _inside(root, path):
    root = os.path.realpath(root)
    path = os.path.realpath(path)
    return path == root or path.startswith(root + os.sep)


# ---------------------------------------------------------------------------
# strategic merge patch and JSON 6902
# ---------------------------------------------------------------------------

def _list_merge_key(field, items):
    if field in MERGE_KEYS:
        return MERGE_KEYS[field]
    if field == "ports":
        for it in items:
            if isinstance(it, dict):
                return "containerPort" if "containerPort" in it else "port"
    return None


def _merge_list(field, base, patch):
    key = _list_merge_key(field, base + patch)
    if key is None or not all(isinstance(x, dict) for x in base + patch):
        if any(isinstance(x, dict) and "$patch" in x for x in patch):
            raise KustomizeError("%s: $patch in a list without a merge key" % field)
        return copy.deepcopy(patch)
    out = copy.deepcopy(base)
    for item in patch:
        directive = item.get("$patch")
        if directive not in (None, "delete", "merge"):
            raise KustomizeError("%s: unsupported $patch %r" % (field, directive))
        if key not in item:
            raise KustomizeError("%s: list item without its merge key %r" % (field, key))
        idx = [i for i, b in enumerate(out) if b.get(key) == item[key]]
        if directive == "delete":
            for i in reversed(idx):
                del out[i]
        elif idx:
            out[idx[0]] = strategic_merge(out[idx[0]], item, field)
        else:
            out.append(strategic_merge({}, item, field))
    return out


def strategic_merge(base, patch, _field=None):
    """Applies a strategic merge patch (maps merge, null deletes, keyed lists merge)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(base, dict):
        base = {}
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return None
    if directive not in (None, "merge"):
        raise KustomizeError("unsupported $patch %r" % directive)
    out = copy.deepcopy(base)
    for k, v in patch.items():
        if k.startswith("$"):
            if k == "$patch":
                continue
            raise KustomizeError("unsupported directive %r" % k)
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict):
            merged = strategic_merge(out.get(k), v, k)
            if merged is None:
                out.pop(k, None)
            else:
                out[k] = merged
        elif isinstance(v, list) and isinstance(out.get(k), list):
            out[k] = _merge_list(k, out[k], v)
        elif isinstance(v, list):
            out[k] = [strategic_merge({}, x, k) if isinstance(x, dict) else x for x in v
                      if not (isinstance(x, dict) and x.get("$patch") == "delete")]
        else:
            out[k] = copy.deepcopy(v)
    return out


def _pointer(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise KustomizeError("JSON pointer %r must start with /" % path)
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc, parts, path):
    cur = doc
    for p in parts:
        if isinstance(cur, dict) and p in cur:
            cur = cur[p]
        elif isinstance(cur, list) and re.fullmatch(r"0|[1-9][0-9]*", p) and int(p) < len(cur):
            cur = cur[int(p)]
        else:
            raise KustomizeError("JSON patch: path %r does not exist" % path)
    return cur


def _json_add(doc, path, value):
    parts = _pointer(path)
    if not parts:
        return copy.deepcopy(value)
    parent = _walk(doc, parts[:-1], path)
    last = parts[-1]
    if isinstance(parent, dict):
        parent[last] = copy.deepcopy(value)
    elif isinstance(parent, list):
        if last == "-":
            parent.append(copy.deepcopy(value))
        elif re.fullmatch(r"0|[1-9][0-9]*", last) and int(last) <= len(parent):
            parent.insert(int(last), copy.deepcopy(value))
        else:
            raise KustomizeError("JSON patch: bad index in %r" % path)
    else:
        raise KustomizeError("JSON patch: %r has no container parent" % path)
    return doc


def _json_remove(doc, path):
    parts = _pointer(path)
    if not parts:
        raise KustomizeError("JSON patch: cannot remove the whole document")
    parent = _walk(doc, parts[:-1], path)
    _walk(parent, parts[-1:], path)
    if isinstance(parent, dict):
        return parent.pop(parts[-1])
    return parent.pop(int(parts[-1]))


def json6902(doc, ops):
    """Applies RFC 6902 operations (add remove replace move copy test)."""
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise KustomizeError("JSON patch: every operation needs op and path: %r" % op)
        kind, path = op["op"], op["path"]
        if kind in ("add", "replace", "test") and "value" not in op:
            raise KustomizeError("JSON patch: %s %s needs a value" % (kind, path))
        if kind == "add":
            doc = _json_add(doc, path, op["value"])
        elif kind == "remove":
            _json_remove(doc, path)
        elif kind == "replace":
            _json_remove(doc, path)
            doc = _json_add(doc, path, op["value"])
        elif kind in ("move", "copy"):
            src = op.get("from")
            if src is None:
                raise KustomizeError("JSON patch: %s needs from" % kind)
            val = _json_remove(doc, src) if kind == "move" else \
                copy.deepcopy(_walk(doc, _pointer(src), src))
            doc = _json_add(doc, path, val)
        elif kind == "test":
            if _walk(doc, _pointer(path), path) != op["value"]:
                raise KustomizeError("JSON patch: test %s failed" % path)
        else:
            raise KustomizeError("JSON patch: unknown op %r" % kind)
    return doc


# ---------------------------------------------------------------------------
# transformers
# ---------------------------------------------------------------------------

def _labels_match(obj, selector):
    labels = obj["metadata"].get("labels") or {}
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k.strip()) == v.strip():
                return False
        elif "=" in term:
            k, v = term.replace("==", "=").split("=", 1)
            if labels.get(k.strip()) != v.strip():
                return False
        elif term.strip() not in labels:
            return False
    return True


TARGET_KEYS = {"group", "version", "kind", "name", "namespace", "labelSelector"}


def _target_match(obj, t):
    unknown = set(t) - TARGET_KEYS
    if unknown:
        raise KustomizeError("patch target: unsupported keys %s" % sorted(unknown))
    m = obj["metadata"]
    checks = (("group", _group(obj)), ("version", _version(obj)), ("kind", obj["kind"]),
              ("name", m["name"]), ("namespace", m.get("namespace") or ""))
    for key, val in checks:
        if key in t and not re.fullmatch(t[key], val):
            return False
    return "labelSelector" not in t or _labels_match(obj, t["labelSelector"])


def _apply_patch(objs, entry, root):
    if not isinstance(entry, dict) or set(entry) - {"path", "patch", "target", "options"}:
        raise KustomizeError("patches: entry %r has unsupported keys" % entry)
    if entry.get("options"):
        raise KustomizeError("patches: options are not supported")
    if ("path" in entry) == ("patch" in entry):
        raise KustomizeError("patches: an entry needs exactly one of path and patch")
    if "path" in entry:
        p = os.path.join(root, entry["path"])
        if not _inside(root, p):
            raise KustomizeError("patches: %s is outside %s" % (entry["path"], root))
        with open(p, encoding="utf-8") as f:
            text = f.read()
    else:
        text = entry["patch"]
    docs = [d for d in yaml.safe_load_all(text) if d is not None]
    if not docs:
        raise KustomizeError("patches: an empty patch")
    target = entry.get("target")
    for doc in docs:
        if isinstance(doc, list):
            if not target:
                raise KustomizeError("patches: a JSON 6902 patch needs a target")
            hits = [i for i, o in enumerate(objs) if _target_match(o, target)]
            for i in hits:
                objs[i] = json6902(objs[i], doc)
        elif isinstance(doc, dict):
            if target:
                hits = [i for i, o in enumerate(objs) if _target_match(o, target)]
            else:
                md = doc.get("metadata") or {}
                hits = [i for i, o in enumerate(objs)
                        if o["kind"] == doc.get("kind") and o["metadata"]["name"] == md.get("name")
                        and (not md.get("namespace")
                             or (o["metadata"].get("namespace") or "") == md["namespace"])]
            for i in hits:
                body = doc
                if target:  # the patch's own name does not rename the target
                    body = copy.deepcopy(doc)
                    body.get("metadata", {}).pop("name", None)
                objs[i] = strategic_merge(objs[i], body)
        else:
            raise KustomizeError("patches: a patch is a YAML map or list")
        if not hits:
            what = target or "%s %s" % (doc.get("kind"), (doc.get("metadata") or {}).get("name"))
            raise KustomizeError("patches: %s matches no object" % (what,))


def _set_namespace(objs, ns):
    for o in objs:
        if o["kind"] not in CLUSTER_SCOPED:
            o["metadata"]["namespace"] = ns
        if o["kind"] in ("RoleBinding", "ClusterRoleBinding"):
            for s in o.get("subjects") or []:
                if s.get("kind") == "ServiceAccount":
                    s["namespace"] = ns


def _add_labels(node, path, labels, create):
    cur = node
    for p in path[:-1]:
        if not isinstance(cur, dict):
            return
        if p not in cur:
            if not create:
                return
            cur[p] = {}
        cur = cur[p]
    if not isinstance(cur, dict):
        return
    if path[-1] not in cur:
        if not create:
            return
        cur[path[-1]] = {}
    if cur[path[-1]] is None:
        cur[path[-1]] = {}
    cur[path[-1]].update(labels)


def _common_labels(objs, labels):
    for o in objs:
        _add_labels(o, ["metadata", "labels"], labels, True)
        k, spec = o["kind"], o.get("spec") or {}
        if k in WORKLOADS or k == "Job":
            _add_labels(o, ["spec", "template", "metadata", "labels"], labels, True)
            if k == "ReplicationController":
                _add_labels(o, ["spec", "selector"], labels, True)
            else:
                _add_labels(o, ["spec", "selector", "matchLabels"], labels, k != "Job")
        elif k == "CronJob":
            _add_labels(o, ["spec", "jobTemplate", "metadata", "labels"], labels, True)
            _add_labels(o, ["spec", "jobTemplate", "spec", "template", "metadata", "labels"],
                        labels, True)
        elif k == "Service":
            _add_labels(o, ["spec", "selector"], labels, True)
        elif k == "PodDisruptionBudget":
            _add_labels(o, ["spec", "selector", "matchLabels"], labels, False)
        elif k == "NetworkPolicy":
            _add_labels(o, ["spec", "podSelector", "matchLabels"], labels, False)
            for rule in (spec.get("ingress") or []):
                for peer in rule.get("from") or []:
                    _add_labels(peer, ["podSelector", "matchLabels"], labels, False)
            for rule in (spec.get("egress") or []):
                for peer in rule.get("to") or []:
                    _add_labels(peer, ["podSelector", "matchLabels"], labels, False)


def image_name(ref):
    """The part of an image reference kustomize matches `images[].name` against."""
    ref = ref.split("@", 1)[0]
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    return ref[:colon] if colon > slash else ref


def _retag(ref, entry):
    unknown = set(entry) - {"name", "newName", "newTag", "digest"}
    if unknown:
        raise KustomizeError("images: unsupported keys %s" % sorted(unknown))
    name = entry.get("newName") or image_name(ref)
    if entry.get("digest"):
        return "%s@%s" % (name, entry["digest"])
    if entry.get("newTag"):
        return "%s:%s" % (name, entry["newTag"])
    rest = ref[len(image_name(ref)):]
    return name + rest


def _each_container(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k in ("containers", "initContainers", "ephemeralContainers") and \
                    isinstance(v, list):
                for c in v:
                    if isinstance(c, dict):
                        yield c
            else:
                yield from _each_container(v)
    elif isinstance(node, list):
        for v in node:
            yield from _each_container(v)


def _images(objs, entries):
    for e in entries:
        if not e.get("name"):
            raise KustomizeError("images: every entry needs a name")
    for o in objs:
        for c in _each_container(o.get("spec")):
            for e in entries:
                if isinstance(c.get("image"), str) and image_name(c["image"]) == e["name"]:
                    c["image"] = _retag(c["image"], e)
                    break


# ---------------------------------------------------------------------------
# configMapGenerator
# ---------------------------------------------------------------------------

def configmap_hash(cm):
    """kustomize's name suffix: sha256 of the ConfigMap's kind, name and data (10 chars)."""
    m = {"kind": "ConfigMap", "name": cm["metadata"]["name"], "data": cm.get("data") or {}}
    if cm.get("binaryData"):
        m["binaryData"] = cm["binaryData"]
    enc = json.dumps(m, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    enc = enc.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    h = hashlib.sha256(enc.encode("utf-8")).hexdigest()[:10]
    return h.translate(str.maketrans("013ae", "ghkmt"))


def _gen_configmap(g, root, opts):
    unknown = set(g) - {"name", "namespace", "behavior", "files", "literals", "options"}
    if unknown or not g.get("name"):
        raise KustomizeError("configMapGenerator: needs name; unsupported keys %s"
                             % sorted(unknown))
    data, binary = {}, {}
    for spec in g.get("files") or []:
        key, _, rel = spec.partition("=") if "=" in spec else (os.path.basename(spec), "", spec)
        path = os.path.join(root, rel)
        if not _inside(root, path):
            raise KustomizeError("configMapGenerator %s: %s is outside %s (kustomize's load "
                                 "restrictor refuses it)" % (g["name"], rel, root))
        with open(path, "rb") as f:
            raw = f.read()
        try:
            data[key] = raw.decode("utf-8")
        except UnicodeDecodeError:
            binary[key] = base64.b64encode(raw).decode()
    for spec in g.get("literals") or []:
        if "=" not in spec:
            raise KustomizeError("configMapGenerator %s: literal %r is not key=value"
                                 % (g["name"], spec))
        k, v = spec.split("=", 1)
        data[k] = v
    md = {"name": g["name"]}
    if g.get("namespace"):
        md["namespace"] = g["namespace"]
    o = dict(opts)
    o.update(g.get("options") or {})
    if set(o) - {"labels", "annotations", "disableNameSuffixHash"}:
        raise KustomizeError("configMapGenerator %s: unsupported options" % g["name"])
    if o.get("labels"):
        md["labels"] = dict(o["labels"])
    if o.get("annotations"):
        md["annotations"] = dict(o["annotations"])
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": md}
    if data:
        cm["data"] = data
    if binary:
        cm["binaryData"] = binary
    return cm, not o.get("disableNameSuffixHash", False)


def _ref_configmaps(node, ns, renames):
    """Renames references to generated ConfigMaps inside pod specs of namespace ns."""
    if isinstance(node, list):
        for v in node:
            _ref_configmaps(v, ns, renames)
        return
    if not isinstance(node, dict):
        return
    for key in ("configMap", "configMapRef", "configMapKeyRef"):
        ref = node.get(key)
        if isinstance(ref, dict) and (ns, ref.get("name")) in renames:
            ref["name"] = renames[(ns, ref["name"])]
    for v in node.values():
        _ref_configmaps(v, ns, renames)


# generated ConfigMaps remember their name before the hash suffix (kustomize
# keeps it too: an overlay's generator with behavior merge|replace finds the
# base's by it); render() strips the marks
MARK_ORIG = "x-kustomize.nbgate/original-name"
MARK_HASH = "x-kustomize.nbgate/hashed"


def _orig_name(o):
    return o["metadata"].get(MARK_ORIG) or o["metadata"]["name"]


def _generate(objs, k, root):
    opts = k.get("generatorOptions") or {}
    for g in k.get("configMapGenerator") or []:
        cm, hashed = _gen_configmap(g, root, opts)
        behavior = g.get("behavior", "create")
        ns = cm["metadata"].get("namespace") or ""
        idx = [i for i, o in enumerate(objs) if o["kind"] == "ConfigMap"
               and _orig_name(o) == g["name"]
               and (not ns or (o["metadata"].get("namespace") or "") == ns)]
        if behavior == "create":
            if idx:
                raise KustomizeError("configMapGenerator %s: already exists (use behavior "
                                     "merge or replace)" % g["name"])
            objs.append(cm)
        elif behavior in ("merge", "replace"):
            if not idx:
                raise KustomizeError("configMapGenerator %s: behavior %s needs an existing "
                                     "ConfigMap" % (g["name"], behavior))
            old = objs[idx[0]]
            if behavior == "merge":
                for f in ("data", "binaryData"):
                    if cm.get(f):
                        old.setdefault(f, {}).update(cm[f])
                cm = old
            else:
                cm["metadata"] = old["metadata"]
                objs[idx[0]] = cm
        else:
            raise KustomizeError("configMapGenerator %s: behavior %r" % (g["name"], behavior))
        cm["metadata"][MARK_ORIG] = g["name"]
        cm["metadata"][MARK_HASH] = hashed


def _hash_names(objs):
    """Gives generated ConfigMaps their hashed names; renames references to them."""
    renames = {}
    for o in objs:
        md = o["metadata"]
        if o["kind"] != "ConfigMap" or MARK_ORIG not in md:
            continue
        ns = md.get("namespace") or ""
        want = md[MARK_ORIG]
        if md.get(MARK_HASH):
            named = dict(o, metadata={"name": want})
            want = "%s-%s" % (want, configmap_hash(named))
        if md["name"] != want:
            renames[(ns, md["name"])] = want
            md["name"] = want
    if renames:
        for o in objs:
            _ref_configmaps(o.get("spec"), o["metadata"].get("namespace") or "", renames)


def _strip_marks(objs):
    for o in objs:
        o["metadata"].pop(MARK_ORIG, None)
        o["metadata"].pop(MARK_HASH, None)
    return objs


# ---------------------------------------------------------------------------
# the driver
# ---------------------------------------------------------------------------

def _load_kustomization(d):
    kf = _kustomization_file(d)
    if kf is None:
        raise KustomizeError("%s: no kustomization.yaml" % d)
    with open(kf, encoding="utf-8") as f:
        k = yaml.safe_load(f) or {}
    if not isinstance(k, dict):
        raise KustomizeError("%s: not a map" % kf)
    unknown = set(k) - KUSTOMIZATION_KEYS
    if unknown:
        raise KustomizeError("%s: unsupported kustomization keys %s (this renderer would "
                             "ignore them)" % (kf, ", ".join(sorted(unknown))))
    if k.get("kind", "Kustomization") != "Kustomization":
        raise KustomizeError("%s: kind %r" % (kf, k.get("kind")))
    return k


def _resources(k, d, depth):
    objs = []
    for r in k.get("resources") or []:
        p = os.path.normpath(os.path.join(d, r))
        if os.path.isdir(p):
            objs.extend(_render(p, depth + 1))
        elif os.path.isfile(p):
            objs.extend(_load_yaml_docs(p))
        else:
            raise KustomizeError("%s: resource %s not found" % (d, r))
    return objs


def _render(d, depth=0):
    if depth > 16:
        raise KustomizeError("%s: resources nested too deep (a cycle?)" % d)
    k = _load_kustomization(d)
    objs = _resources(k, d, depth)
    _generate(objs, k, d)
    seen = set()
    for o in objs:
        if res_id(o) in seen:
            raise KustomizeError("%s: duplicate object %s" % (d, res_id(o)))
        seen.add(res_id(o))
    for entry in k.get("patches") or []:
        _apply_patch(objs, entry, d)
    if k.get("namespace"):
        _set_namespace(objs, k["namespace"])
    if k.get("commonLabels"):
        _common_labels(objs, k["commonLabels"])
    if k.get("images"):
        _images(objs, k["images"])
    _hash_names(objs)
    return objs


def render(path):
    """Renders the kustomization in directory path; returns a list of objects (dicts)."""
    return _strip_marks(_render(os.path.abspath(path)))


def render_yaml(path):
    return yaml.safe_dump_all(render(path), sort_keys=False, default_flow_style=False)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: kustomize.py DIR", file=sys.stderr)
        sys.exit(2)
    try:
        sys.stdout.write(render_yaml(sys.argv[1]))
    except KustomizeError as e:
        print("kustomize: %s" % e, file=sys.stderr)
        sys.exit(1)
