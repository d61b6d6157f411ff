"""Walk a parsed YAML document and fail with errors that name the file, the field and the fix."""

from __future__ import annotations

from typing import Any, Iterable

from vmwave.errors import InputError

_MISSING = object()
_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false", list: "a list", dict: "a mapping"}


class Node:
    """A mapping inside a document, with the dotted path that leads to it."""

    def __init__(self, data: Any, source: str, path: str = ""):
        if not isinstance(data, dict):
            raise InputError(source, path or "(top level)", f"expected a mapping, got {type(data).__name__}",
                             "write `key: value` lines here")
        self.data = data
        self.source = source
        self.path = path

    def where(self, key: str | int) -> str:
        if isinstance(key, int):
            return f"{self.path}[{key}]"
        return f"{self.path}.{key}" if self.path else key

    def fail(self, key: str, problem: str, fix: str) -> InputError:
        return InputError(self.source, self.where(key), problem, fix)

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = _MISSING,
            choices: Iterable[Any] | None = None) -> Any:
        if key not in self.data or self.data[key] is None:
            if default is _MISSING:
                raise self.fail(key, "is missing", f"add `{key}:` to {self.path or 'the file'}")
            return default
        value = self.data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            wanted = " or ".join(_TYPE_NAMES.get(k, k.__name__) for k in kinds)
            raise self.fail(key, f"must be {wanted}, got {value!r}", f"change {key} to {wanted}")
        if choices is not None and value not in choices:
            options = ", ".join(str(c) for c in choices)
            raise self.fail(key, f"{value!r} is not allowed", f"use one of: {options}")
        return value

    def child(self, key: str, default: Any = _MISSING) -> "Node":
        return Node(self.get(key, dict, {} if default is _MISSING else default), self.source, self.where(key))

    def children(self, key: str, required: bool = False) -> list["Node"]:
        items = self.get(key, list) if required else self.get(key, list, [])
        where = self.where(key)
        return [Node(item, self.source, f"{where}[{i}]") for i, item in enumerate(items)]

    def only(self, *allowed: str) -> "Node":
        """Reject keys we do not know: a typo must not be silently ignored."""
        for key in self.data:
            if key not in allowed:
                raise self.fail(str(key), "is not a known field",
                                f"remove it or use one of: {', '.join(allowed)}")
        return self
