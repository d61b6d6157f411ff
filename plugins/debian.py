"""Debian and Ubuntu: their preferences, and the network interface names that change with the NIC model.

On vSphere a vmxnet3 NIC is ``ens192``; on KubeVirt the virtio NIC is
``enp1s0``. Debian's ``/etc/network/interfaces`` and Ubuntu's netplan name
the interface, so after cutover it stays down (Forklift's users report it for
Ubuntu, kubev2v/forklift#1354). vmwave keeps each NIC's MAC, so a
configuration that matches by MAC survives: that is the preparation step. A
NIC with a static address VMware Tools reports keeps its name (the Linux
plugin pins it), so it is not a concern.
"""

from __future__ import annotations

import re

from vmwave import hookimpl
from vmwave.domain.concerns import WARNING, Concern
from vmwave.domain.manifests import Target
from vmwave.domain.preferences import RNG, prefer, preference_for
from vmwave.domain.records import SourceVM
from vmwave.domain.static_ips import static_ips

PREFERENCES = ((r"^debian", "debian"), (r"^ubuntu", "ubuntu"))


def ubuntu(vm: SourceVM) -> bool:
    return bool(re.match(r"^ubuntu", vm.guest_id, re.IGNORECASE))


def family(vm: SourceVM) -> bool:
    return vm.guest_family == "linux" and preference_for(vm.guest_id, PREFERENCES) is not None


@hookimpl
def vmwave_virtual_machine(vm: SourceVM, manifest: dict, target: Target) -> None:
    if family(vm):
        prefer(manifest, target, preference_for(vm.guest_id, PREFERENCES), RNG)


@hookimpl
def vmwave_concerns(vm: SourceVM) -> list[Concern]:
    pinned = {ip.mac for ip in static_ips(vm)}  # the Linux plugin keeps these NICs' names
    renamed = [nic for nic in vm.nics if nic.adapter != "virtio" and nic.mac not in pinned] if family(vm) else []
    if not renamed:
        return []
    where = "netplan (/etc/netplan/*.yaml)" if ubuntu(vm) else "/etc/network/interfaces"
    return [
        Concern(
            "interface_renamed",
            WARNING,
            f"{', '.join(f'{n.label} ({n.adapter})' for n in renamed)} gets a new interface name on KubeVirt "
            f"(virtio: enp1s0 instead of ens192); {where} naming the old one leaves it down",
            "match the interface by MAC address in the guest before cutover (vmwave keeps the MACs)",
        )
    ]


@hookimpl
def vmwave_preparation(vm: SourceVM) -> list[str]:
    if not family(vm) or not vm.nics:
        return []
    if ubuntu(vm):
        return [
            "in netplan, match each interface by MAC (match: {macaddress: ...} with set-name) instead of by "
            "its name, then netplan apply"
        ]
    return [
        "name each interface by MAC in /etc/systemd/network/10-<name>.link ([Match] MACAddress=, [Link] Name=) "
        "and use that name in /etc/network/interfaces"
    ]
