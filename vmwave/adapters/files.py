"""Reading and writing the YAML/JSON files people edit (estate, maps, rules, plan)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from vmwave.errors import InputError


def read_yaml(path: str | os.PathLike, what: str) -> Any:
    """Parse a YAML file; a missing or malformed file is an InputError naming the line."""
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise InputError(str(p), "", f"{what} file not found", f"check the path, or create the {what} file") from None
    except OSError as exc:
        raise InputError(str(p), "", f"cannot read {what} file: {exc.strerror}", "check its permissions") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise InputError(str(p), where, f"not valid YAML ({problem})", "fix the syntax at that position") from None
    if data is None:
        raise InputError(str(p), "", f"the {what} file is empty", f"see examples/ for a {what} file to start from")
    return data


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write through a temporary file so a crash never leaves half a plan behind."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, p)
