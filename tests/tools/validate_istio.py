#!/usr/bin/env python3
"""Validates custom resources (Istio's, and any other CRD given) against the
openAPIV3Schema of their CRD version, rejecting unknown fields.

Usage:
  validate_istio.py --crds CRD.yaml [--crds ...] --rest REST.yaml RENDERED.yaml...

Every object in RENDERED whose API group is defined by one of the CRD files
is validated here; an unknown version or kind of such a group is an error.
All other objects (the core Kubernetes API) are written to REST for
kubernetes-validate. Prints one line per object; exits 1 on any error.

Strictness: the API server prunes unknown fields silently, so a typo in a
field would apply without effect. Here every schema node that lists
`properties` and neither sets `additionalProperties` nor
`x-kubernetes-preserve-unknown-fields` gets `additionalProperties: false`,
so a typo fails. `metadata` is checked against the ObjectMeta fields a
manifest may set.
"""

import argparse
import copy
import sys

import jsonschema
import yaml

# The ObjectMeta fields a checked-in manifest may carry.
OBJECT_META = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {
        "name": {"type": "string"},
        "namespace": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}

SUBSCHEMA_LISTS = ("allOf", "anyOf", "oneOf")


def strict(node):
    """Returns a copy of the schema with unknown properties rejected."""
    if isinstance(node, list):
        return [strict(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {name: strict(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not") or key in SUBSCHEMA_LISTS:
            out[key] = strict(value)
        else:
            out[key] = copy.deepcopy(value)
    if (
        "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields", False)
    ):
        out["additionalProperties"] = False
    return out


def load_crds(paths):
    """Maps (group, version, kind) to a strict validator, and lists groups."""
    schemas, groups = {}, set()
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for doc in yaml.safe_load_all(f):
                if not doc or doc.get("kind") != "CustomResourceDefinition":
                    continue
                spec = doc["spec"]
                group, kind = spec["group"], spec["names"]["kind"]
                groups.add(group)
                for version in spec["versions"]:
                    if not version.get("served", False):
                        continue
                    schema = strict(version["schema"]["openAPIV3Schema"])
                    props = schema.setdefault("properties", {})
                    # The API server supplies these two; Istio's schemas omit them.
                    props["apiVersion"] = {"type": "string", "const": f"{group}/{version['name']}"}
                    props["kind"] = {"type": "string", "const": kind}
                    props["metadata"] = OBJECT_META
                    schema["required"] = sorted(
                        set(schema.get("required", [])) | {"apiVersion", "kind", "metadata"}
                    )
                    jsonschema.Draft7Validator.check_schema(schema)
                    schemas[(group, version["name"], kind)] = jsonschema.Draft7Validator(schema)
    return schemas, groups


def describe(doc):
    meta = doc.get("metadata") or {}
    return f"{doc.get('kind')}/{meta.get('name')} ({doc.get('apiVersion')})"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crds", action="append", required=True)
    parser.add_argument("--rest", required=True, help="file for the non-CRD objects")
    parser.add_argument("rendered", nargs="+")
    args = parser.parse_args()

    schemas, groups = load_crds(args.crds)
    if not schemas:
        print("ERROR no CustomResourceDefinition found in", args.crds)
        return 1
    errors, checked, rest = 0, 0, []
    for path in args.rendered:
        with open(path, encoding="utf-8") as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        for doc in docs:
            if not isinstance(doc, dict) or "apiVersion" not in doc or "kind" not in doc:
                print(f"ERROR {path}: an object without apiVersion/kind: {doc!r:.80}")
                errors += 1
                continue
            api = doc["apiVersion"]
            group, _, version = api.rpartition("/")
            if group not in groups:
                rest.append(doc)
                continue
            validator = schemas.get((group, version, doc["kind"]))
            if validator is None:
                print(f"ERROR {path}: {describe(doc)}: no served CRD version defines it")
                errors += 1
                continue
            problems = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
            for e in problems:
                where = ".".join(str(p) for p in e.absolute_path) or "(root)"
                print(f"ERROR {path}: {describe(doc)}: {where}: {e.message}")
            errors += len(problems)
            checked += 1
            if not problems:
                print(f"OK {path}: {describe(doc)}")
    with open(args.rest, "w", encoding="utf-8") as f:
        yaml.safe_dump_all(rest, f, sort_keys=False)
    print(f"custom resources checked: {checked}, errors: {errors}, other objects: {len(rest)}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
