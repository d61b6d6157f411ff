"""Kubernetes quantities as the lab reads them: bytes (``512Mi``, ``2G``) and CPUs (``500m``, ``2``)."""

from __future__ import annotations

import re

_UNITS = {
    "": 1,
    "k": 1000,
    "M": 1000**2,
    "G": 1000**3,
    "T": 1000**4,
    "Ki": 1024,
    "Mi": 1024**2,
    "Gi": 1024**3,
    "Ti": 1024**4,
}


def parse_quantity(text: str | int) -> int:
    m = re.match(r"^(\d+(?:\.\d+)?)([kMGT]i?|)$", str(text))
    if not m:
        raise ValueError(f"bad quantity {text!r}")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def cpu(text: str | int | float) -> float:
    text = str(text)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)
