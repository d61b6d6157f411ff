"""Label and field selectors, as `kubectl get -l` and `--field-selector` send them."""

from __future__ import annotations

import re
from typing import Any, Callable

Match = Callable[[dict], bool]
_SET = re.compile(r"^\s*([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")
_EQ = re.compile(r"^\s*([\w./-]+)\s*(==|=|!=)\s*([\w./-]*)\s*$")
_EXISTS = re.compile(r"^\s*(!?)\s*([\w./-]+)\s*$")


class SelectorError(ValueError):
    pass


def _split(text: str) -> list[str]:
    """Split on commas outside parentheses."""
    parts, depth, current = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    return [p for p in parts + [current] if p.strip()]


def label_selector(text: str | None) -> Match:
    if not text:
        return lambda obj: True
    tests = []
    for term in _split(text):
        if m := _SET.match(term):
            key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",") if v.strip()}
            tests.append(
                lambda labels, k=key, v=values, neg=op == "notin": (labels.get(k) in v) != neg if k in labels else neg
            )
        elif m := _EQ.match(term):
            key, op, value = m.groups()
            tests.append(lambda labels, k=key, v=value, neg=op == "!=": (labels.get(k) == v) != neg)
        elif m := _EXISTS.match(term):
            neg, key = m.group(1) == "!", m.group(2)
            tests.append(lambda labels, k=key, n=neg: (k in labels) != n)
        else:
            raise SelectorError(f"unable to parse requirement: {term.strip()!r}")
    return lambda obj: all(t(obj.get("metadata", {}).get("labels") or {}) for t in tests)


def _path(obj: dict, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = obj.get(part) if isinstance(obj, dict) else None
    return obj


def field_selector(text: str | None) -> Match:
    if not text:
        return lambda obj: True
    tests = []
    for term in _split(text):
        m = _EQ.match(term)
        if not m:
            raise SelectorError(f"invalid field selector: {term.strip()!r}")
        key, op, value = m.groups()
        tests.append(lambda obj, k=key, v=value, neg=op == "!=": (str(_path(obj, k) or "") == v) != neg)
    return lambda obj: all(t(obj) for t in tests)
