"""Checking what files say: a ``Node`` walk for the small parsers, the pieces the models share (a problem with
its fix, times with their zone, durations), and pydantic's errors told as vmwave's (file, field, what, the fix)."""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from datetime import datetime
from typing import Any, Iterable

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

from vmwave.errors import InputError

_MISSING = object()
_TYPE_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    list: "a list",
    dict: "a mapping",
}


class Node:
    """A mapping inside a document, with the dotted path that leads to it."""

    def __init__(self, data: Any, source: str, path: str = ""):
        if not isinstance(data, dict):
            raise InputError(
                source,
                path or "(top level)",
                f"expected a mapping, got {type(data).__name__}",
                "write `key: value` lines here",
            )
        self.data = data
        self.source = source
        self.path = path

    def where(self, key: str | int) -> str:
        if isinstance(key, int):
            return f"{self.path}[{key}]"
        return f"{self.path}.{key}" if self.path else key

    def fail(self, key: str, problem: str, fix: str) -> InputError:
        return InputError(self.source, self.where(key), problem, fix)

    def get(
        self, key: str, kind: type | tuple[type, ...], default: Any = _MISSING, choices: Iterable[Any] | None = None
    ) -> Any:
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
                near = difflib.get_close_matches(str(key), allowed, 1, 0.6)
                raise self.fail(
                    str(key),
                    "is not a known field",
                    f"did you mean {near[0]}?" if near else f"remove it or use one of: {', '.join(allowed)}",
                )
        return self


def path_of(loc: tuple[Any, ...]) -> str:
    """pydantic's location as vmwave names a field: ``waves[0].vms[3].target_name``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def input_errors(
    exc: Any, source: str, root: Any = None, fixes: dict[str, str] | None = None, limit: int = 20
) -> InputError:
    """A pydantic ``ValidationError`` as vmwave's error: each problem with its file, field and fix (at most
    ``limit``). ``fixes`` gives the fix by a field's last name; else the message says what is wanted."""
    from vmwave.errors import InputErrors

    problems = []
    for error in exc.errors()[:limit]:
        loc = tuple(part for part in error["loc"] if not (isinstance(part, str) and ("[" in part or "-" in part)))
        field = path_of(loc)
        name = next((str(p) for p in reversed(loc) if isinstance(p, str)), "")
        ctx = error.get("ctx") or {}
        if error["type"] == "vmwave":  # a problem vmwave's own check described, with its fix
            inner = ctx.get("sub", "")
            if inner:
                field = (
                    field[: -len(name)] + inner
                    if name and inner.startswith(name) and field.endswith(name)
                    else f"{field}{'' if inner.startswith('[') or not field else '.'}{inner}"
                )
            problems.append(InputError(source, field, ctx["problem"], ctx["fix"]))
            continue
        given = error.get("input")
        shown = (
            ""
            if error["type"] in ("missing", "extra_forbidden") or isinstance(given, (dict, list))
            else f" (got {_short(given)})"
        )
        fix = (fixes or {}).get(name) or (
            "use one of: " + ctx.get("expected", "").replace("'", "").replace(" or ", ", ")
            if error["type"] == "literal_error"
            else _FIXES.get(error["type"], "change it to what the message asks for")
        )
        if error["type"] == "extra_forbidden":
            known = _fields_at(root, loc[:-1])
            near = difflib.get_close_matches(name, known, 1, 0.6)
            fix = (
                f"did you mean {near[0]}?"
                if near
                else "remove it" + (f" or use one of: {', '.join(known)}" if known else "")
            )
        message = (
            "is not a known field"
            if error["type"] == "extra_forbidden"
            else f"{error['msg'][0].lower()}{error['msg'][1:]}{shown}"
        )
        problems.append(InputError(source, field, message, fix))
    return problems[0] if len(problems) == 1 else InputErrors(problems)


_FIXES = {
    "missing": "add it",
    "string_type": "write text here",
    "int_type": "write a whole number",
    "int_parsing": "write a whole number",
    "bool_type": "write true or false",
    "bool_parsing": "write true or false",
    "list_type": "write a list",
    "tuple_type": "write a list",
    "dict_type": "write a mapping (key: value)",
    "literal_error": "use one of the values named",
}


def _fields_at(root: Any, loc: tuple[Any, ...]) -> list[str]:
    """The field names of the model (a dataclass or pydantic model) at ``loc`` below ``root``."""
    kind = root
    for part in loc:
        if kind is None:
            return []
        if isinstance(part, int):
            args = [a for a in typing.get_args(kind) if a is not Ellipsis]
            kind = args[0] if args else None
        else:
            kind = _hints(kind).get(part)
        while typing.get_origin(kind) in (typing.Union, types.UnionType, typing.Annotated):
            kind = next((a for a in typing.get_args(kind) if a is not type(None)), None)
    return list(_hints(kind)) if kind is not None else []


def _hints(kind: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(kind) or hasattr(kind, "model_fields"):
        try:
            hints = typing.get_type_hints(kind, include_extras=True)
        except (NameError, TypeError):
            return {}
        aliases = {name: (f.alias or name) for name, f in getattr(kind, "model_fields", {}).items()}
        return {
            aliases.get(name, name): hint
            for name, hint in hints.items()
            if not name.startswith("_") and name != "model_config"
        }
    return {}


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def problem(what: str, fix: str, sub: str = "") -> PydanticCustomError:
    """A model's problem as vmwave says it: what is wrong and the fix (and the path below the field, if any)."""
    return PydanticCustomError("vmwave", "{problem}", {"problem": what, "fix": fix, "sub": sub})


def node_checked(parse: Any, key: str) -> BeforeValidator:
    """A value checked by one of the domain's ``Node``-walking parsers (smoke checks, hooks, placement, patterns),
    its result used, its error told as the model's."""

    def check(value: Any) -> Any:
        try:
            return parse(Node({key: value}, "", ""))
        except InputError as exc:
            raise problem(exc.problem, exc.fix, exc.field if exc.field != key else "") from None

    return BeforeValidator(check)


_DURATION = re.compile(r"^(\d{1,9})([smhd])$")
MAX_DURATION = 366 * 86400  # a year: a longer interval, window or cadence is a typo


def seconds(text: Any, minimum: int = 1) -> int:
    """'30s', '90m', '6h', '1d' -> seconds, between ``minimum`` and a year."""
    found = _DURATION.match(text) if isinstance(text, str) else None
    if not found:
        raise problem(f"{text!r} is not a duration", "write seconds, minutes, hours or days: 30s, 90m, 6h, 1d")
    value = int(found.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[found.group(2)]
    if not minimum <= value <= MAX_DURATION:
        raise problem(
            f"{text!r} is {f'shorter than {minimum}s' if value < minimum else 'over a year'}",
            f"write a duration from {minimum}s to 366d",
        )
    return value


def aware_time(value: Any) -> Any:
    """An ISO 8601 date-time with its time zone (a naive one would mean another time on every worker)."""
    if not isinstance(value, str):
        return value
    try:
        found = datetime.fromisoformat(value)
    except ValueError:
        raise problem(f"{value!r} is not an ISO date-time", "write e.g. 2026-12-05T22:00:00+00:00") from None
    if found.tzinfo is None:
        raise problem(f"{value!r} has no time zone", "add one, e.g. 2026-12-05T22:00:00+00:00 or ...Z")
    return found
