"""Reading the files people hand vmwave: bounded in size and depth, UTF-8, YAML without aliases.

Every file that enters (plan, maps, rules, inventory, password, CA) is read
here, once, so none of them can exhaust memory or time before it is checked:
- at most ``MAX_FILE_BYTES`` (64 MiB; ``VMWAVE_MAX_FILE_MB``) are read;
- bytes that are not UTF-8 are refused, naming their offset;
- YAML is parsed by libyaml (C) and built here from its events, which refuses
  anchors, aliases and merge keys (a "billion laughs" document is a few lines
  of aliases), custom tags, duplicate keys, more than one document and nesting
  deeper than ``MAX_DEPTH``; dates stay the strings they were written as, for
  the models to check;
- JSON gets the same bounds.
Each problem is one ``InputError`` with the file, the line and the fix.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml
from yaml import events as ev
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import ScalarNode
from yaml.resolver import Resolver

from vmwave.errors import InputError

MAX_FILE_BYTES = 64 << 20
NO_ALIASES = (
    "write the value out: vmwave files refuse YAML anchors and aliases (a script that writes the file with "
    "PyYAML: give yaml.dump a Dumper whose ignore_aliases returns True)"
)
MAX_DEPTH = 64
CORE = "tag:yaml.org,2002:"
STR, MAP, SEQ = CORE + "str", CORE + "map", CORE + "seq"


class _PlainResolver(Resolver):
    """YAML 1.1 as PyYAML's SafeLoader reads it (null, bools, ints, floats), but no timestamps: a date stays text."""


_PlainResolver.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != CORE + "timestamp"]
    for first, resolvers in Resolver.yaml_implicit_resolvers.items()
}
_RESOLVER = _PlainResolver()
_CONSTRUCT = {
    CORE + "null": SafeConstructor.construct_yaml_null,
    CORE + "bool": SafeConstructor.construct_yaml_bool,
    CORE + "int": SafeConstructor.construct_yaml_int,
    CORE + "float": SafeConstructor.construct_yaml_float,
}
_CONSTRUCTOR = SafeConstructor()


class _PlainDumper(yaml.CSafeDumper):
    """Writes every value out: the files vmwave writes are files vmwave reads, and those refuse aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump_yaml(data: Any, **options: Any) -> str:
    """YAML as vmwave writes it (plans, manifests): libyaml, no anchors or aliases, Unicode kept."""
    return yaml.dump(data, Dumper=_PlainDumper, allow_unicode=True, **options)


def read_bytes(path: str | os.PathLike, what: str, limit: int = MAX_FILE_BYTES) -> bytes:
    """A file's bytes, refused when it is missing, unreadable or over ``limit``."""
    p = Path(path)
    try:
        with p.open("rb") as handle:
            data = handle.read(limit + 1)
    except FileNotFoundError:
        raise InputError(str(p), "", f"{what} file not found", f"check the path, or create the {what} file") from None
    except IsADirectoryError:
        raise InputError(str(p), "", f"is a directory, not a {what} file", "name the file itself") from None
    except OSError as exc:
        raise InputError(str(p), "", f"cannot read the {what} file: {exc.strerror}", "check its permissions") from None
    if len(data) > limit:
        raise InputError(
            str(p),
            "",
            f"the {what} file is larger than {limit >> 20} MiB",
            "split it, or raise VMWAVE_MAX_FILE_MB if it really is that large",
        )
    return data


def read_text(path: str | os.PathLike, what: str, limit: int = MAX_FILE_BYTES) -> str:
    """A file's text: UTF-8, or an error naming the first byte that is not."""
    data = read_bytes(path, what, limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(
            str(path),
            f"line {line} (byte {exc.start})",
            f"is not UTF-8 text (byte 0x{data[exc.start]:02x})",
            f"save the {what} file as UTF-8",
        ) from None


def read_secret(path: str | os.PathLike, what: str) -> str:
    """A password or token file: one line (a trailing newline allowed), never empty; the same rule everywhere."""
    text = read_text(path, what, limit=64 << 10)
    value = text[:-2] if text.endswith("\r\n") else text[:-1] if text.endswith("\n") else text
    if not value or "\n" in value or "\r" in value:
        raise InputError(
            str(path),
            "",
            f"the {what} file must hold exactly one line, the {what} itself",
            f'write only the {what} into it, e.g. printf %s "$PW" > FILE',
        )
    return value


def read_yaml(path: str | os.PathLike, what: str, limit: int = MAX_FILE_BYTES) -> Any:
    """A YAML file as plain data (dicts, lists, strings, numbers, bools, None); never empty."""
    data = parse_yaml(read_text(path, what, limit), str(path))
    if data is None:
        raise InputError(str(path), "", f"the {what} file is empty", f"see examples/ for a {what} file to start from")
    return data


def read_json(path: str | os.PathLike, what: str, limit: int = MAX_FILE_BYTES) -> Any:
    """A JSON file with the same bounds as YAML: size, UTF-8, depth, no duplicate keys."""
    text = read_text(path, what, limit)
    try:
        data = json.loads(text, object_pairs_hook=lambda pairs: _unique_pairs(pairs, str(path)))
    except RecursionError:
        raise InputError(str(path), "", "nests deeper than Python can read", f"write the {what} file flat") from None
    except json.JSONDecodeError as exc:
        raise InputError(
            str(path),
            f"line {exc.lineno}, column {exc.colno}",
            f"not valid JSON ({exc.msg})",
            "fix the syntax at that position",
        ) from None
    _check_depth(data, str(path))
    return data


def _unique_pairs(pairs: list[tuple[str, Any]], source: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise InputError(source, key, "appears twice in one object", "keep one of them")
        found[key] = value
    return found


def _check_depth(data: Any, source: str) -> None:
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise InputError(
                source, "", f"nests deeper than {MAX_DEPTH} levels", "no vmwave file needs that: flatten it"
            )
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        stack.extend((child, depth + 1) for child in children)


def parse_yaml(text: str, source: str) -> Any:
    """One YAML document built from libyaml's events, refusing what could explode (see the module's docstring)."""
    stack: list[Any] = []  # open collections; a mapping's pending key is pushed after it
    result: Any = None
    documents = 0
    try:
        for event in yaml.parse(text, Loader=yaml.CSafeLoader):
            kind = type(event)
            if kind is ev.ScalarEvent:
                _no_anchor(event, source)
                value = _scalar(event, source)
            elif kind is ev.MappingStartEvent or kind is ev.SequenceStartEvent:
                _no_anchor(event, source)
                _standard_tag(event, MAP if kind is ev.MappingStartEvent else SEQ, source)
                if len(stack) >= MAX_DEPTH * 2:
                    raise _error(
                        source, event, f"nests deeper than {MAX_DEPTH} levels", "no vmwave file needs that: flatten it"
                    )
                stack.append({} if kind is ev.MappingStartEvent else [])
                stack.append(_START if kind is ev.MappingStartEvent else _ITEMS)
                continue
            elif kind is ev.MappingEndEvent or kind is ev.SequenceEndEvent:
                stack.pop()
                value = stack.pop()
            elif kind is ev.AliasEvent:
                raise _error(source, event, f"uses the alias *{event.anchor}", NO_ALIASES)
            elif kind is ev.DocumentStartEvent:
                documents += 1
                if documents > 1:
                    raise _error(source, event, "holds more than one YAML document", "keep one document per file")
                continue
            else:
                continue
            if not stack:
                result = value
                continue
            top = stack[-1]
            if top is _ITEMS:
                stack[-2].append(value)
            elif top is _START:  # a key
                if isinstance(value, (dict, list)) or value is None:
                    raise _error(
                        source, event, "has a key that is not a plain value", "keys are names: write `name: value`"
                    )
                if isinstance(value, str) and value == "<<" and event.implicit[0]:
                    raise _error(
                        source, event, "uses a merge key (<<)", "write the keys out: vmwave files refuse merges"
                    )
                if value in stack[-2]:
                    raise _error(source, event, f"has the key {value!r} twice in one mapping", "keep one of them")
                stack[-1] = _Key(value)
            else:  # a key's value
                stack[-2][top.key] = value
                stack[-1] = _START
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise InputError(source, where, f"not valid YAML ({problem})", "fix the syntax at that position") from None
    return result


class _Key:
    __slots__ = ("key",)

    def __init__(self, key: Any):
        self.key = key


_START, _ITEMS = object(), object()  # markers: a mapping waiting for a key, a sequence taking items


def _scalar(event: ev.ScalarEvent, source: str) -> Any:
    tag = event.tag
    if tag is None:
        if not event.implicit[0]:  # quoted: text
            return event.value
        tag = _RESOLVER.resolve(ScalarNode, event.value, (True, False))
    if tag in (STR, "!"):
        return event.value
    build = _CONSTRUCT.get(tag)
    if build is None:
        if tag == CORE + "merge":
            return "<<"
        raise _error(source, event, f"has the tag {tag}", "remove the tag: vmwave files hold plain values")
    try:
        return build(_CONSTRUCTOR, ScalarNode(tag, event.value))
    except (ConstructorError, ValueError):
        raise _error(
            source, event, f"{event.value!r} is not a valid {tag.removeprefix(CORE)}", "fix the value or remove its tag"
        ) from None


def _no_anchor(event: ev.NodeEvent, source: str) -> None:
    if event.anchor is not None:
        raise _error(source, event, f"defines the anchor &{event.anchor}", NO_ALIASES)


def _standard_tag(event: ev.NodeEvent, expected: str, source: str) -> None:
    tag = event.tag
    if tag not in (None, "!", expected):
        raise _error(source, event, f"has the tag {tag}", "remove the tag: vmwave files hold plain values")


def _error(source: str, event: ev.Event, problem: str, fix: str) -> InputError:
    mark = event.start_mark
    return InputError(source, f"line {mark.line + 1}, column {mark.column + 1}", problem, fix)
