#!/usr/bin/env python3
"""Validate the Fluid manifests in this directory before applying them.

Each Fluid object (Dataset, ThinRuntime, ThinRuntimeProfile) is checked against the
openAPIV3Schema of its CustomResourceDefinition, read from a CRD directory, the way the
API server with `kubectl apply --validate=strict` would: types, enums, required fields
and patterns, plus unknown fields (an object schema that lists `properties` rejects other
keys unless it says `x-kubernetes-preserve-unknown-fields`). Pods get a basic sanity
check. Finally the objects are checked against each other the way the Curvine
ThinRuntime needs them (docs/FLUID.md).

usage: validate.py [CRD_DIR] [--manifests DIR]
  CRD_DIR        default: $FLUID_CRDS_DIR, else <repo root>/../shared/fluid/crds
  --manifests    default: the directory holding this script

Exit status: 0 all valid, 1 violations (each printed), 2 bad usage or unreadable
input, 3 a Python module is missing.
"""

import copy
import glob
import os
import re
import sys

try:
    import jsonschema
    import yaml
except ImportError as error:  # pragma: no cover - depends on the machine
    print(f"validate.py: missing Python module '{error.name}'; run: pip install pyyaml jsonschema",
          file=sys.stderr)
    sys.exit(3)

SCRIPT_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(SCRIPT_DIR))
DEFAULT_CRD_DIR = os.path.join(REPO_ROOT, "..", "shared", "fluid", "crds")

# RFC 1123 subdomain: what Kubernetes requires of metadata.name for these kinds.
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS_SUBDOMAIN_MAX = 253


def load_yaml_documents(path):
    with open(path, encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


def strict(schema):
    """Copy of a structural schema where objects with `properties` reject unknown keys."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if ("properties" in node and "additionalProperties" not in node
                    and not node.get("x-kubernetes-preserve-unknown-fields")):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


def load_crds(crd_dir):
    """(group, kind) -> {"scope": ..., "versions": {name: validator}} for every CRD file."""
    crds = {}
    paths = sorted(glob.glob(os.path.join(crd_dir, "*.yaml")) + glob.glob(os.path.join(crd_dir, "*.yml")))
    for path in paths:
        for doc in load_yaml_documents(path):
            if doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            versions = {}
            for version in spec.get("versions", []):
                if not version.get("served", True):
                    continue
                schema = version.get("schema", {}).get("openAPIV3Schema")
                if schema is None:
                    continue
                # OpenAPI v3.0 schemas are closest to JSON Schema draft 4 (boolean exclusiveMinimum).
                versions[version["name"]] = jsonschema.Draft4Validator(strict(schema))
            crds[(spec["group"], spec["names"]["kind"])] = {"scope": spec.get("scope", "Namespaced"),
                                                            "versions": versions}
    return crds


def path_of(error):
    return "/".join(str(part) for part in error.absolute_path) or "(root)"


def check_metadata(obj, namespaced, problems):
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict):
        problems.append("metadata: missing or not an object")
        return
    name = metadata.get("name")
    if not isinstance(name, str) or not DNS_SUBDOMAIN.match(name) or len(name) > DNS_SUBDOMAIN_MAX:
        problems.append(f"metadata/name: {name!r} is not a lowercase RFC 1123 name")
    namespace = metadata.get("namespace")
    if namespaced is False and namespace is not None:
        problems.append(f"metadata/namespace: {namespace!r} set on a cluster-scoped kind")
    if namespace is not None and (not isinstance(namespace, str) or not DNS_SUBDOMAIN.match(namespace)):
        problems.append(f"metadata/namespace: {namespace!r} is not a valid namespace")


def check_custom_resource(obj, crds, problems):
    api_version = obj.get("apiVersion", "")
    group, _, version = api_version.rpartition("/")
    crd = crds.get((group, obj.get("kind")))
    if crd is None:
        problems.append(f"no CRD for {obj.get('kind')} in group {group!r} in the CRD directory")
        return
    validator = crd["versions"].get(version)
    if validator is None:
        problems.append(f"apiVersion: {api_version} is not a served version (served: {sorted(crd['versions'])})")
        return
    check_metadata(obj, crd["scope"] == "Namespaced", problems)
    for error in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path))):
        problems.append(f"{path_of(error)}: {error.message}")


def check_pod(obj, problems):
    """Not a full Pod schema: the mistakes that stop a Dataset from being read."""
    check_metadata(obj, True, problems)
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        problems.append("spec: missing or not an object")
        return
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        problems.append("spec/containers: must be a non-empty list")
        containers = []
    volumes = spec.get("volumes") or []
    if not isinstance(volumes, list):
        problems.append("spec/volumes: must be a list")
        volumes = []
    volume_names = set()
    for index, volume in enumerate(volumes):
        name = volume.get("name") if isinstance(volume, dict) else None
        if not name:
            problems.append(f"spec/volumes/{index}: needs a name")
            continue
        if name in volume_names:
            problems.append(f"spec/volumes/{index}: duplicate volume name {name!r}")
        volume_names.add(name)
        claim = volume.get("persistentVolumeClaim")
        if claim is not None and not (isinstance(claim, dict) and claim.get("claimName")):
            problems.append(f"spec/volumes/{index}/persistentVolumeClaim: needs claimName")
    for index, container in enumerate(containers):
        if not isinstance(container, dict):
            problems.append(f"spec/containers/{index}: must be an object")
            continue
        for field in ("name", "image"):
            if not isinstance(container.get(field), str) or not container.get(field):
                problems.append(f"spec/containers/{index}/{field}: required string")
        for mount_index, mount in enumerate(container.get("volumeMounts") or []):
            where = f"spec/containers/{index}/volumeMounts/{mount_index}"
            if not isinstance(mount, dict):
                problems.append(f"{where}: must be an object")
                continue
            if mount.get("name") not in volume_names:
                problems.append(f"{where}/name: {mount.get('name')!r} is not a volume of this Pod")
            if not str(mount.get("mountPath", "")).startswith("/"):
                problems.append(f"{where}/mountPath: must be an absolute path")


def key(obj):
    metadata = obj.get("metadata") or {}
    return metadata.get("namespace") or "default", metadata.get("name")


def check_together(objects, problems_of):
    """Cross-object rules of the Curvine ThinRuntime (docs/FLUID.md, CONTRACT §4, §9)."""
    by_kind = {}
    for obj in objects:
        by_kind.setdefault(obj.get("kind"), []).append(obj)
    datasets = {key(obj): obj for obj in by_kind.get("Dataset", [])}
    profiles = {(obj.get("metadata") or {}).get("name") for obj in by_kind.get("ThinRuntimeProfile", [])}

    for profile in by_kind.get("ThinRuntimeProfile", []):
        fs_type = (profile.get("spec") or {}).get("fileSystemType", "")
        if not str(fs_type).startswith("fuse"):
            problems_of(profile).append(f"spec/fileSystemType: {fs_type!r} must start with 'fuse' "
                                        "(the mount type is fuse.curvinefs)")
    for dataset in datasets.values():
        mounts = (dataset.get("spec") or {}).get("mounts") or []
        if len(mounts) != 1:
            problems_of(dataset).append(f"spec/mounts: the Curvine ThinRuntime needs exactly one mount, got {len(mounts)}")
            continue
        mount_point = str(mounts[0].get("mountPoint", ""))
        if not re.match(r"^curvine:///", mount_point, re.IGNORECASE) and not mount_point.startswith("/"):
            problems_of(dataset).append(f"spec/mounts/0/mountPoint: {mount_point!r} must be curvine:///<path>")
        options = mounts[0].get("options") or {}
        if not options.get("master-endpoints"):
            problems_of(dataset).append("spec/mounts/0/options/master-endpoints: required (host:port[,host:port])")
    for runtime in by_kind.get("ThinRuntime", []):
        if key(runtime) not in datasets:
            problems_of(runtime).append(f"metadata/name: no Dataset {key(runtime)[1]!r} in namespace "
                                        f"{key(runtime)[0]!r}; a ThinRuntime must be named like its Dataset")
        profile = (runtime.get("spec") or {}).get("profileName")
        if profiles and profile not in profiles:
            problems_of(runtime).append(f"spec/profileName: {profile!r} is not one of the profiles {sorted(profiles)}")
    for pod in by_kind.get("Pod", []):
        for volume in ((pod.get("spec") or {}).get("volumes") or []):
            claim = (volume.get("persistentVolumeClaim") or {}).get("claimName") if isinstance(volume, dict) else None
            if claim and datasets and (key(pod)[0], claim) not in datasets:
                problems_of(pod).append(f"spec/volumes: claim {claim!r} is not a Dataset in namespace {key(pod)[0]!r}")


def main(argv):
    args = list(argv)
    manifests_dir = SCRIPT_DIR
    if "--manifests" in args:
        index = args.index("--manifests")
        if index + 1 >= len(args):
            print("validate.py: --manifests needs a directory", file=sys.stderr)
            return 2
        manifests_dir = args[index + 1]
        del args[index:index + 2]
    if len(args) > 1 or any(arg.startswith("-") for arg in args):
        print(__doc__, file=sys.stderr)
        return 2
    crd_dir = args[0] if args else os.environ.get("FLUID_CRDS_DIR") or DEFAULT_CRD_DIR
    if not os.path.isdir(crd_dir):
        print(f"validate.py: CRD directory {crd_dir} not found; pass it as the first argument "
              "or set FLUID_CRDS_DIR", file=sys.stderr)
        return 2
    crds = load_crds(crd_dir)
    if not crds:
        print(f"validate.py: no CustomResourceDefinition in {crd_dir}", file=sys.stderr)
        return 2

    paths = sorted(glob.glob(os.path.join(manifests_dir, "*.yaml")) + glob.glob(os.path.join(manifests_dir, "*.yml")))
    if not paths:
        print(f"validate.py: no manifests in {manifests_dir}", file=sys.stderr)
        return 2
    entries = []  # (label, object, problems)
    for path in paths:
        try:
            documents = load_yaml_documents(path)
        except (OSError, yaml.YAMLError) as error:
            entries.append((os.path.basename(path), {}, [f"cannot parse YAML: {error}"]))
            continue
        for document in documents:
            label = f"{os.path.basename(path)}: {document.get('kind')}/{(document.get('metadata') or {}).get('name')}"
            problems = []
            if document.get("apiVersion") == "v1" and document.get("kind") == "Pod":
                check_pod(document, problems)
            else:
                check_custom_resource(document, crds, problems)
            entries.append((label, document, problems))

    problems_by_id = {id(obj): problems for _, obj, problems in entries}
    check_together([obj for _, obj, _ in entries if obj], lambda obj: problems_by_id[id(obj)])

    failed = 0
    for label, _, problems in entries:
        if problems:
            failed += 1
            for problem in problems:
                print(f"INVALID {label}: {problem}")
        else:
            print(f"ok      {label}")
    if failed:
        print(f"{failed} of {len(entries)} objects are invalid", file=sys.stderr)
        return 1
    print(f"all {len(entries)} objects are valid (CRDs from {os.path.normpath(crd_dir)})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
