"""vSphere names made valid as Kubernetes object names (RFC 1123 DNS labels)."""

from __future__ import annotations

import hashlib
import re

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
MAX_LEN = 63
TARGET_MAX = 56  # a target name leaves room for the "-diskN" of the DataVolumes named after it


_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_LABEL_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def is_k8s_name(name: str) -> bool:
    return bool(_LABEL.match(name))


def is_label_value(value: str) -> bool:
    return bool(_LABEL_VALUE.match(value))


def is_label_key(key: str) -> bool:
    """``[prefix/]name``: a DNS subdomain prefix of at most 253 and a name like a label value, not empty."""
    prefix, _, name = key.rpartition("/")
    return bool(name) and is_label_value(name) and (not prefix or (len(prefix) <= 253 and bool(_LABEL_PREFIX.match(prefix))))


def label_value(text: str) -> str:
    """``text`` made a valid label value: invalid characters become '-', at most 63, alphanumeric at both ends."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:63].strip("-_.")


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
