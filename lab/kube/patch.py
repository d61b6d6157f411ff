"""The patch flavours the API accepts: JSON merge, JSON patch (RFC 6902) and server-side apply."""

from __future__ import annotations

import copy
from typing import Any


class PatchError(ValueError):
    """The patch cannot be applied (422)."""


class ApplyConflict(Exception):
    """Another field manager owns a field this apply would change (409)."""

    def __init__(self, conflicts: list[tuple[str, str]]):
        self.conflicts = conflicts
        super().__init__("; ".join(f'conflict with "{m}": {p}' for m, p in conflicts))


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: mappings merge, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc: Any, parts: list[str]) -> Any:
    for part in parts:
        if isinstance(doc, list):
            doc = doc[int(part)]
        elif isinstance(doc, dict) and part in doc:
            doc = doc[part]
        else:
            raise PatchError(f"path /{'/'.join(parts)} does not exist")
    return doc


def json_patch(doc: Any, operations: list[dict]) -> Any:
    """RFC 6902 add/remove/replace/move/copy/test."""
    doc = copy.deepcopy(doc)
    if not isinstance(operations, list):
        raise PatchError("a JSON patch is a list of operations")
    for op in operations:
        kind, parts = op.get("op"), _pointer(op.get("path", ""))
        try:
            if kind == "test":
                if _walk(doc, parts) != op.get("value"):
                    raise PatchError(f"test failed at {op['path']}")
                continue
            if kind in ("move", "copy"):
                value = copy.deepcopy(_walk(doc, _pointer(op["from"])))
                if kind == "move":
                    doc = json_patch(doc, [{"op": "remove", "path": op["from"]}])
                kind, op = "add", {"value": value}
            parent = _walk(doc, parts[:-1])
            last = parts[-1] if parts else None
            if kind == "add":
                if isinstance(parent, list):
                    parent.insert(len(parent) if last == "-" else int(last), copy.deepcopy(op["value"]))
                else:
                    parent[last] = copy.deepcopy(op["value"])
            elif kind == "remove":
                _walk(parent, [last])
                del parent[int(last) if isinstance(parent, list) else last]
            elif kind == "replace":
                _walk(parent, [last])
                parent[int(last) if isinstance(parent, list) else last] = copy.deepcopy(op["value"])
            else:
                raise PatchError(f"unknown operation {kind!r}")
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            if isinstance(exc, PatchError):
                raise
            raise PatchError(f"cannot apply {kind} at {op.get('path')!r}: {exc}") from None
    return doc


# --- server-side apply: fields are tracked per manager as leaf paths (lists count as leaves) ---


def leaf_paths(obj: Any, prefix: tuple = ()) -> dict[tuple, Any]:
    if isinstance(obj, dict) and obj:
        found: dict[tuple, Any] = {}
        for key, value in obj.items():
            found.update(leaf_paths(value, prefix + (key,)))
        return found
    return {prefix: obj}


def to_fields_v1(paths: list[tuple]) -> dict:
    tree: dict = {}
    for path in paths:
        node = tree
        for part in path:
            node = node.setdefault(f"f:{part}", {})
    return tree


def from_fields_v1(tree: dict, prefix: tuple = ()) -> list[tuple]:
    if not tree:
        return [prefix] if prefix else []
    found = []
    for key, sub in tree.items():
        found.extend(from_fields_v1(sub, prefix + (key[2:] if key.startswith("f:") else key,)))
    return found


_IGNORED = {
    ("metadata", "resourceVersion"),
    ("metadata", "uid"),
    ("metadata", "generation"),
    ("metadata", "creationTimestamp"),
    ("metadata", "managedFields"),
    ("apiVersion",),
    ("kind",),
    ("metadata", "name"),
    ("metadata", "namespace"),
}


def _get(obj: Any, path: tuple) -> Any:
    for part in path:
        if not isinstance(obj, dict) or part not in obj:
            return None
        obj = obj[part]
    return obj


def _delete(obj: dict, path: tuple) -> None:
    parents = []
    for part in path[:-1]:
        if not isinstance(obj.get(part), dict):
            return
        parents.append((obj, part))
        obj = obj[part]
    obj.pop(path[-1], None)
    for parent, key in reversed(parents):  # drop mappings the removal left empty
        if parent[key] == {}:
            del parent[key]


def apply(live: dict | None, applied: dict, manager: str, force: bool) -> dict:
    """Merge ``applied`` into ``live`` as ``manager``; fields it no longer sets and nobody else owns go away."""
    owned: dict[str, set[tuple]] = {}
    for entry in (live or {}).get("metadata", {}).get("managedFields") or []:
        owned.setdefault(entry["manager"], set()).update(from_fields_v1(entry.get("fieldsV1") or {}))
    mine = {p: v for p, v in leaf_paths(applied).items() if p[:2] not in _IGNORED and p[:1] not in _IGNORED}
    conflicts = [
        (m, ".".join(p))
        for m, paths in owned.items()
        if m != manager
        for p in mine
        if p in paths and _get(live, p) != mine[p]
    ]
    if conflicts and not force:
        raise ApplyConflict(conflicts)
    result = merge_patch(live or {}, {k: v for k, v in applied.items() if k != "status"})
    if live is not None:
        others = set().union(*(paths for m, paths in owned.items() if m != manager)) if owned else set()
        for path in owned.get(manager, set()) - set(mine) - others:
            _delete(result, path)
    if force:
        for m in owned:
            if m != manager:
                owned[m] -= set(mine)
    owned[manager] = set(mine)
    result.setdefault("metadata", {})["managedFields"] = [
        {
            "manager": m,
            "operation": "Apply" if m == manager else "Update",
            "apiVersion": applied.get("apiVersion", ""),
            "fieldsType": "FieldsV1",
            "fieldsV1": to_fields_v1(sorted(paths)),
        }
        for m, paths in sorted(owned.items())
        if paths
    ]
    return result
