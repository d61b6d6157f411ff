"""What we know about a vSphere guest id: its family and whether KubeVirt runs it.

The table follows virt-v2v's supported guests: RHEL/CentOS/Rocky/Alma/Oracle
6-9, SLES 12+, Debian 9+, Ubuntu 16.04+, Windows 7 / Server 2008 R2 and
later. Older Windows and non-Linux Unixes cannot be converted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class GuestOS:
    family: str  # linux | windows | other | unknown
    supported: bool | None  # None: we cannot tell


_UNSUPPORTED = re.compile(
    r"^(win(NetStandard|NetEnterprise|NetDatacenter|NetWeb|NetBusiness|XPPro|XPHome|2000|98|95|31|Longhorn|Vista)"
    r"|rhel[2-5]|centos[2-5]?Guest|sles9|sles10|sles11|debian[4-8]|ubuntu(Guest)?$"
    r"|solaris|freebsd|darwin|netware|os2|dos|openServer|unixWare|eComStation|vmkernel)",
    re.IGNORECASE,
)
_WINDOWS = re.compile(r"^win", re.IGNORECASE)
_LINUX = re.compile(
    r"^(rhel|centos|rocky|alma|oracleLinux|sles|debian|ubuntu|fedora|opensuse|amazonlinux|asianux|coreos|photon|mandrake|mandriva|turbo|redhat|suse|genericLinux|other\d*xLinux|otherLinux)",
    re.IGNORECASE,
)


def guest_os(guest_id: str) -> GuestOS:
    """Classify a vSphere guest id such as ``rhel8_64Guest`` or ``windows2019srv_64Guest``."""
    if not guest_id or guest_id.startswith("other") and "Linux" not in guest_id:
        return GuestOS("unknown", None)
    family = "windows" if _WINDOWS.match(guest_id) else "linux" if _LINUX.match(guest_id) else "other"
    if _UNSUPPORTED.match(guest_id) or family == "other":
        return GuestOS(family, False)
    if family == "linux" and guest_id.startswith("other"):
        return GuestOS(family, None)
    return GuestOS(family, True)
