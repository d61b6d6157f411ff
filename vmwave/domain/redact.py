"""Secrets taken out of text that leaves vmwave (a debug bundle): every known secret, as written and as base64,
and what looks like a credential whatever its value (bearer tokens, password and token fields)."""

from __future__ import annotations

import base64
import re
from typing import Iterable

REDACTED = "[redacted]"
MIN_SECRET = 4  # a shorter "secret" would blank out ordinary words
_LOOKS_SECRET = [
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"),
    re.compile(
        r"(?i)((?:password|passwd|pwd|token|secretKey|client-key-data|client-certificate-data)"
        r"[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]+"
    ),
]


def _forms(secret: str) -> set[str]:
    """A secret as it may appear: itself, and base64 (Kubernetes Secret data, basic auth) with and without padding."""
    encoded = base64.b64encode(secret.encode()).decode()
    return {secret, encoded, encoded.rstrip("=")}


def redacted(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each of ``secrets`` (in every form) and anything that looks like a credential replaced."""
    for form in sorted({f for s in secrets if len(s) >= MIN_SECRET for f in _forms(s)}, key=len, reverse=True):
        text = text.replace(form, REDACTED)
    for pattern in _LOOKS_SECRET:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    return text
