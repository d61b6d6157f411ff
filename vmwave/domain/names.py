"""vSphere names made valid as Kubernetes object names (RFC 1123 DNS labels)."""

from __future__ import annotations

import hashlib
import re

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
MAX_LEN = 63


def is_k8s_name(name: str) -> bool:
    return bool(_LABEL.match(name))


def k8s_name(name: str) -> str:
    """Lower-case, replace runs of invalid characters with '-', trim to 63.

    A name that had to be shortened keeps a short hash of the original, so two
    long names with the same prefix stay distinct.
    """
    if is_k8s_name(name):
        return name
    cleaned = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "vm"
    if len(cleaned) > MAX_LEN:
        digest = hashlib.sha256(name.encode()).hexdigest()[:6]
        cleaned = cleaned[: MAX_LEN - 7].rstrip("-") + "-" + digest
    return cleaned
