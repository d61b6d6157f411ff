"""The RHEL family (RHEL, CentOS, Rocky, Alma, Oracle Linux): its preferences, and the CPU RHEL 9 and later need.

RHEL 9 and its rebuilds are built for x86-64-v2: on an older CPU model
(``qemu64``, ``Penryn``, ...) they stop at boot with "CPU does not support
x86-64-v2". The standard profile gives the maps' ``cpu_model`` (KubeVirt's
host-model when unset, which is fine), so a model below v2 there is a
critical concern for these guests.
"""

from __future__ import annotations

import re

from vmwave import hookimpl
from vmwave.domain.concerns import CRITICAL, Concern
from vmwave.domain.manifests import Target
from vmwave.domain.maps import Maps
from vmwave.domain.preferences import RNG, prefer, preference_for
from vmwave.domain.records import SourceVM

PREFERENCES = (  # vSphere guest id -> kubevirt/common-instancetypes preference
    (r"^rhel(7|8|9|10)(_64)?Guest", r"rhel.\1"),
    (r"^centos(7|8)(_64)?Guest", r"rhel.\1"),  # common-instancetypes keeps no centos.7 or stream8
    (r"^centos(9|10)_64Guest", r"centos.stream\1"),
    (r"^oracleLinux", "oraclelinux"),
)
REBUILDS = re.compile(r"^(rockylinux|almalinux)_64Guest", re.IGNORECASE)  # vSphere gives these no version
BELOW_V2 = frozenset(
    {
        "qemu64",
        "qemu32",
        "kvm64",
        "kvm32",
        "486",
        "pentium",
        "pentium2",
        "pentium3",
        "athlon",
        "coreduo",
        "core2duo",
        "n270",
        "Conroe",
        "Penryn",
        "Opteron_G1",
        "Opteron_G2",
        "phenom",
    }
)


def major(vm: SourceVM) -> int | None:
    """The release: from the guest id (rhel9_64Guest), else from what VMware Tools reports (Rocky Linux 9.3)."""
    found = re.search(r"(?:rhel|centos|oracleLinux)(\d+)", vm.guest_id) or re.search(
        r"\b(\d+)(\.\d+)*\b", vm.guest_name
    )
    return int(found.group(1)) if found else None


def family(vm: SourceVM) -> bool:
    return vm.guest_family == "linux" and (
        preference_for(vm.guest_id, PREFERENCES) is not None or bool(REBUILDS.match(vm.guest_id))
    )


@hookimpl
def vmwave_virtual_machine(vm: SourceVM, manifest: dict, target: Target) -> None:
    if not family(vm):
        return
    release = major(vm)
    name = preference_for(vm.guest_id, PREFERENCES) or (f"rhel.{release}" if release in (8, 9, 10) else None)
    if name:  # else the generic Linux plugin's
        prefer(manifest, target, name, RNG)


@hookimpl
def vmwave_concerns(vm: SourceVM, maps: Maps | None) -> list[Concern]:
    release = major(vm)
    model = maps.cpu_model if maps else ""
    if not family(vm) or release is None or release < 9 or model not in BELOW_V2:
        return []
    return [
        Concern(
            "x86_64_v2_cpu",
            CRITICAL,
            f"runs release {release} of the RHEL family, which needs an x86-64-v2 CPU, but the maps' "
            f"cpu_model {model} is older: it would stop at boot",
            "set cpu_model in the maps to a v2 model (Nehalem or later) or remove it for host-model, "
            "or give the VM the latency-sensitive profile (host-passthrough)",
        )
    ]
