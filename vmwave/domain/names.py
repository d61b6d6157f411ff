"""vSphere names made valid as Kubernetes object names (RFC 1123 DNS labels)."""

from __future__ import annotations

import hashlib
import re

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
MAX_LEN = 63
TARGET_MAX = 56  # a target name leaves room for the "-diskN" of the DataVolumes named after it


def is_k8s_name(name: str) -> bool:
    return bool(_LABEL.match(name))


def k8s_name(name: str, max_len: int = MAX_LEN) -> str:
    """Lower-case, replace runs of invalid characters with '-', trim to ``max_len``.

    A name that had to be shortened keeps a short hash of the original, so two
    long names with the same prefix stay distinct.
    """
    if is_k8s_name(name) and len(name) <= max_len:
        return name
    cleaned = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "vm"
    if len(cleaned) > max_len:
        digest = hashlib.sha256(name.encode()).hexdigest()[:6]
        cleaned = cleaned[: max_len - 7].rstrip("-") + "-" + digest
    return cleaned


def target_name(source_name: str) -> str:
    """The default name of a VM in the cluster: its source name as a Kubernetes name of at most TARGET_MAX."""
    return k8s_name(source_name, TARGET_MAX)
