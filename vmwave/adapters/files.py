"""The YAML files people edit (maps, rules, plan): read (``documents``) and checked, or written atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any


from vmwave.adapters.documents import MAX_FILE_BYTES, dump_yaml, parse_yaml, read_yaml
from vmwave.domain.classes import DEFAULT_RULES, Policy
from vmwave.domain.maps import Maps, parse_maps
from vmwave.domain.names import printable
from vmwave.domain.plan_file import PlanFile, parse_plan
from vmwave.domain.rules_file import parse_rules
from vmwave.errors import InputError


def inside(folder: str | os.PathLike, *parts: str) -> Path:
    """``folder/part/...`` for parts that come from data (a wave id, a VM's UUID, an object's name): each must be
    one plain path component, and the result must stay inside ``folder`` (symbolic links resolved)."""
    base = Path(folder).resolve()
    for part in parts:
        if not part or part in (".", "..") or "/" in part or "\0" in part or len(part.encode()) > 255:
            raise InputError(
                str(folder),
                "",
                f"{printable(part)!r} cannot be a file name inside it",
                "names that become files are checked when the plan is read: run `vmwave check`",
            )
    path = base.joinpath(*parts)
    if path.resolve() != path and base not in path.resolve().parents:
        raise InputError(str(path), "", f"leads outside {base}", "remove the symbolic link that points elsewhere")
    return path


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write through a temporary file so a crash never leaves half a plan behind."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, p)


def load_policy(
    rules: str | os.PathLike | None = None,
    wave_size: int | None = None,
    per_host: int | None = None,
    limit: int = MAX_FILE_BYTES,
) -> Policy:
    """The rules file (or the built-in rules), with the CLI's wave size and per-host cap over it."""
    policy = (
        parse_rules(read_yaml(rules, "rules", limit), str(rules))
        if rules
        else parse_rules(parse_yaml(DEFAULT_RULES, "built-in rules"), "built-in rules")
    )
    policy.wave_size = wave_size or policy.wave_size
    policy.per_host = per_host or policy.per_host
    return policy


def load_maps(maps: str | os.PathLike | None, limit: int = MAX_FILE_BYTES) -> Maps | None:
    return parse_maps(read_yaml(maps, "maps", limit), str(maps)) if maps else None


def load_plan(path: str | os.PathLike, limit: int = MAX_FILE_BYTES) -> PlanFile:
    """A plan file, checked: an edited value that is not valid is an error naming its field."""
    return parse_plan(read_yaml(path, "plan", limit), str(path))


def dump_plan(doc: dict[str, Any]) -> str:
    header = "# vmwave wave plan: edit classes, modes, profiles or move VMs between waves, then `vmwave check` it.\n"
    return header + dump_yaml(doc, sort_keys=False, width=120)


def write_plan(doc: dict[str, Any], path: str | os.PathLike) -> None:
    write_text_atomic(path, dump_plan(doc))
