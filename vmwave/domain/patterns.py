"""Regular expressions people write (rules, smoke checks), compiled with RE2 so matching is linear in the text.

Python's ``re`` backtracks: ``^(a+)+$`` takes seconds on a 30-character name
and doubles with each character more, which a rules file must not be able to
do to a planner reading 10,000 VM names. RE2 has no backreferences or
lookarounds; a pattern that needs them is refused with that reason.
"""

from __future__ import annotations

import functools

import re2

from vmwave.domain.validate import Node

MAX_PATTERN = 1000
_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # the error goes into vmwave's message, not to stderr
_OPTIONS.max_mem = 8 << 20


@functools.lru_cache(maxsize=1024)
def _compiled(value: str) -> re2._Regexp:
    return re2.compile(value, _OPTIONS)


def search(pattern: str, text: str) -> bool:
    """Whether ``pattern`` (checked when its file was read) matches somewhere in ``text``, in linear time."""
    return _compiled(pattern).search(text) is not None


def compile_pattern(node: Node, key: str, value: str) -> re2._Regexp:
    """``value`` as an RE2 pattern, or an error naming ``node``'s ``key``."""
    if len(value) > MAX_PATTERN:
        raise node.fail(key, f"the pattern is {len(value)} characters long", f"keep it under {MAX_PATTERN}")
    try:
        return _compiled(value)
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise node.fail(
            key,
            f"{value!r} is not a pattern vmwave can use ({reason})",
            "fix the pattern; RE2 syntax: no backreferences or lookarounds",
        ) from None
