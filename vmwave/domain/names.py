"""Names from outside (VMs, datastores, networks, wave ids) made into each name they must become.

The one place a source name is turned into a Kubernetes object name, a label
value or a file-name part, or made safe to print:
- a Kubernetes name (RFC 1123 label) is the name lower-cased, accents dropped
  (``Café-01`` -> ``cafe-01``), every other run of characters a ``-``; when
  letters of another script were dropped (``数据库-01``, emoji), or the name was
  shortened, a 6-hex hash of the original keeps distinct names distinct
  (``01-1f0c2b``); vCenter's escapes of '/', '\\' and '%' (``a%2fb``) count as separators;
- a wave id is ``WAVE_ID``: it becomes label values, Prefect limit names and
  file names, so it is never path-like;
- a Prefect concurrency limit is named by ``limit_name``;
- ``printable`` drops control characters (terminal escapes, newlines) from
  anything shown to a person.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
MAX_LEN = 63
TARGET_MAX = 56  # a target name leaves room for the "-diskN" of the DataVolumes named after it


_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_LABEL_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


WAVE_ID = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")
WAVE_ID_FIX = "a wave id is 1-32 lower-case letters, digits and '-', starting and ending with a letter or digit (w003)"
_VCENTER_ESCAPE = re.compile(r"%(2f|5c|25)", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def is_wave_id(text: str) -> bool:
    return bool(WAVE_ID.match(text))


def wave_id(given: str | int) -> str:
    """The wave id a person means: ``3``, ``"3"`` and ``"w003"`` all mean w003; anything else must be a wave id."""
    text = str(given).strip()
    if text.isascii() and text.isdigit() and len(text) <= 9:
        return f"w{int(text):03d}"
    if not is_wave_id(text):
        raise ValueError(f"{printable(text)!r} is neither a wave number nor a wave id; {WAVE_ID_FIX}")
    return text


def printable(text: str, keep_newlines: bool = False) -> str:
    """``text`` without control characters (terminal escapes, bidi overrides), each shown as U+FFFD."""
    if keep_newlines:
        return "\n".join(_CONTROL.sub("\ufffd", line) for line in text.split("\n"))
    return _CONTROL.sub("\ufffd", text.replace("\n", "\ufffd"))


_LIMIT_BANNED = re.compile(r"[/%&><\x00-\x1f\x7f]")  # what Prefect refuses in a name, and control characters


def limit_name(kind: str, name: str) -> str:
    """The Prefect global concurrency limit shared by the VMs of one ESXi host or datastore (``kind``): readable,
    with what Prefect refuses in names (``/ % & > <``) made '-' and a hash then keeping distinct names apart."""
    cleaned = _LIMIT_BANNED.sub("-", name)
    if cleaned != name or len(cleaned) > 200:
        cleaned = f"{cleaned[:200]}-{hashlib.sha256(name.encode()).hexdigest()[:6]}"
    return f"vmwave-{kind}-{cleaned}"


def markdown_cell(text: str) -> str:
    """``text`` for a Markdown table cell, shown as written: no markup, link or image of its own, one line."""
    return re.sub(r"([\\`*_{}\[\]<>()#+!|~])", r"\\\1", printable(text))


def is_k8s_name(name: str) -> bool:
    return bool(_LABEL.match(name))


def is_subdomain(name: str) -> bool:
    """An RFC 1123 DNS subdomain (StorageClass, ConfigMap and most object names): at most 253, dots allowed."""
    return len(name) <= 253 and bool(_LABEL_PREFIX.match(name))


def is_label_value(value: str) -> bool:
    return bool(_LABEL_VALUE.match(value))


def is_label_key(key: str) -> bool:
    """``[prefix/]name``: a DNS subdomain prefix of at most 253 and a name like a label value, not empty."""
    prefix, _, name = key.rpartition("/")
    return (
        bool(name)
        and is_label_value(name)
        and (not prefix or (len(prefix) <= 253 and bool(_LABEL_PREFIX.match(prefix))))
    )


def label_value(text: str) -> str:
    """``text`` made a valid label value: invalid characters become '-', at most 63, alphanumeric at both ends."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:63].strip("-_.")


def k8s_name(name: str, max_len: int = MAX_LEN) -> str:
    """``name`` as an RFC 1123 label of at most ``max_len`` (see the module's docstring for the mapping)."""
    if is_k8s_name(name) and len(name) <= max_len:
        return name
    decomposed = unicodedata.normalize("NFKD", _VCENTER_ESCAPE.sub(" ", name))  # vCenter's a%2fb is a/b
    ascii_ = decomposed.encode("ascii", "ignore").decode()
    lost = any(not ch.isascii() and not unicodedata.combining(ch) for ch in decomposed)
    cleaned = re.sub(r"[^a-z0-9]+", "-", ascii_.lower()).strip("-") or "vm"
    if lost or len(cleaned) > max_len:
        digest = hashlib.sha256(name.encode()).hexdigest()[:6]
        cleaned = cleaned[: max_len - 7].rstrip("-") + "-" + digest
    return cleaned


def target_name(source_name: str) -> str:
    """The default name of a VM in the cluster: its source name as a Kubernetes name of at most TARGET_MAX."""
    return k8s_name(source_name, TARGET_MAX)
