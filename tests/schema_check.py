"""Check a manifest against the upstream KubeVirt v1 / CDI v1beta1 OpenAPI definitions in ../shared/schemas.

Every field must exist in its definition with the right JSON type; the
schemas are reference data and stay outside the repo.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

SCHEMAS = Path(__file__).resolve().parents[2] / "shared" / "schemas"
ROOTS = {
    ("kubevirt.io/v1", "VirtualMachine"): ("kubevirt-swagger.json", "v1.VirtualMachine"),
    ("kubevirt.io/v1", "KubeVirt"): ("kubevirt-swagger.json", "v1.KubeVirt"),
    ("cdi.kubevirt.io/v1beta1", "DataVolume"): ("cdi-swagger.json", "v1beta1.DataVolume"),
}
_TYPES = {"string": str, "integer": int, "boolean": bool, "array": list, "object": dict, "number": (int, float)}


def available() -> bool:
    return (SCHEMAS / "kubevirt-swagger.json").is_file() and (SCHEMAS / "cdi-swagger.json").is_file()


@lru_cache(maxsize=None)
def _definitions(file: str) -> dict:
    return json.loads((SCHEMAS / file).read_text())["definitions"]


def problems(obj: dict, root: tuple[str, str] | None = None) -> list[str]:
    """Fields that do not exist or have the wrong type; [] when the object fits its schema."""
    file, name = ROOTS[root or (obj["apiVersion"], obj["kind"])]
    defs = _definitions(file)
    found: list[str] = []

    def walk(value, schema: dict, path: str) -> None:
        if "$ref" in schema:
            ref = schema["$ref"].rsplit("/", 1)[-1]
            if ref.endswith("resource.Quantity") or ref.endswith("util.intstr.IntOrString"):
                if not isinstance(value, (str, int)):
                    found.append(f"{path}: a quantity must be a string or integer")
                return
            if ref.endswith("meta.v1.Time"):
                return
            schema = defs[ref]
        kind = schema.get("type")
        if kind and not isinstance(value, _TYPES[kind]) or (kind in ("integer", "number") and isinstance(value, bool)):
            found.append(f"{path}: expected {kind}, got {type(value).__name__}")
            return
        if isinstance(value, dict) and "properties" in schema:
            for key, sub in value.items():
                if key not in schema["properties"]:
                    found.append(f"{path}.{key}: no such field in {schema.get('description', '')[:40]!r}")
                else:
                    walk(sub, schema["properties"][key], f"{path}.{key}")
        elif isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
            for key, sub in value.items():
                walk(sub, schema["additionalProperties"], f"{path}.{key}")
        elif isinstance(value, list) and "items" in schema:
            for i, item in enumerate(value):
                walk(item, schema["items"], f"{path}[{i}]")

    walk(obj, defs[name], obj.get("kind", name))
    return found


_SCALARS = {"str": str, "int": int, "bool": bool, "float": (int, float)}


def kubernetes_problems(obj: dict) -> list[str]:
    """Fields a core Kubernetes object (Job, Role, ServiceAccount...) does not have, or of the wrong type.

    The official client's models are generated from Kubernetes' OpenAPI document: each lists its fields
    (``attribute_map``) and their types (``openapi_types``), which is the schema this walks.
    """
    from kubernetes import client

    version = obj["apiVersion"].rsplit("/", 1)[-1]
    found: list[str] = []

    def walk(value, kind: str, path: str) -> None:
        if kind in ("object", "datetime", "date"):
            return
        if kind in _SCALARS:
            if not isinstance(value, _SCALARS[kind]) or (kind != "bool" and isinstance(value, bool)):
                found.append(f"{path}: expected {kind}, got {type(value).__name__}")
            return
        if kind.lower().startswith("list["):
            if not isinstance(value, list):
                found.append(f"{path}: expected a list")
                return
            for i, item in enumerate(value):
                walk(item, kind[5:-1], f"{path}[{i}]")
            return
        if kind.lower().startswith(("dict(", "dict[")):
            if not isinstance(value, dict):
                found.append(f"{path}: expected a mapping")
                return
            for key, item in value.items():
                walk(item, kind.split(",", 1)[1][:-1].strip(), f"{path}.{key}")
            return
        model = getattr(client, kind)
        if not isinstance(value, dict):
            found.append(f"{path}: expected an object ({kind})")
            return
        fields = {json_name: attr for attr, json_name in model.attribute_map.items()}
        for key, item in value.items():
            if key not in fields:
                found.append(f"{path}.{key}: no such field in {kind}")
            else:
                walk(item, model.openapi_types[fields[key]], f"{path}.{key}")

    walk(obj, f"{version.capitalize()}{obj['kind']}", obj["kind"])
    return found


def served(group: str, plural: str) -> bool:
    """Whether the KubeVirt or CDI OpenAPI document serves ``plural`` in ``group`` (namespaced or cluster-wide)."""
    for file in ("kubevirt-swagger.json", "cdi-swagger.json"):
        for path in json.loads((SCHEMAS / file).read_text())["paths"]:
            parts = path.strip("/").split("/")
            if parts[:2] == ["apis", group] and plural in parts[3:] and parts[-1] in (plural, "{name}"):
                return True
    return False
