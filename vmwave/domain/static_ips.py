"""Static addresses a guest keeps across the move, from what VMware Tools reports.

VMware Tools reports each NIC's addresses with their origin
(``guest.net[].ipConfig``) and the guest's default gateway and DNS servers
(``guest.ipStack``). A NIC whose one address the guest set by hand is carried
over by its MAC, which vmwave keeps: virt-v2v's ``--mac MAC:ip:IP,GW,PREFIX,DNS``
(Forklift passes the same), which virt-v2v applies to Windows guests. A Linux
guest keeps its own configuration, but that names the interface and the name
changes with the NIC (``ens192`` becomes ``enp1s0``): the Linux plugin pins
the old name to the MAC in the guest (``pin_nic_names.sh``).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Iterator

from vmwave.domain.records import Nic, SourceVM


@dataclass(frozen=True)
class StaticIP:
    mac: str
    address: str
    prefix: int
    gateway: str  # "" when the default gateway is not on this NIC's network
    dns: tuple[str, ...]

    def option(self) -> str:
        """virt-v2v's ``--mac`` value: its fields are positional, so the prefix needs a gateway before it."""
        fields = [self.address, self.gateway, str(self.prefix), *self.dns] if self.gateway else [self.address]
        return f"{self.mac}:ip:{','.join(fields)}"


MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")


def _address(text: str) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface | None:
    """An address as vCenter (or an edited inventory) gives it, or None: it reaches virt-v2v and a guest script."""
    try:
        return ipaddress.ip_interface(text)
    except ValueError:
        return None


def _kept(nic: Nic) -> bool:
    return (
        bool(MAC.match(nic.mac))
        and nic.address_origin == "manual"
        and len(nic.addresses) == 1
        and _address(nic.addresses[0]) is not None
    )


def _static(nic: Nic, vm: SourceVM) -> StaticIP:
    interface = _address(nic.addresses[0])
    gateway = _address(vm.gateway) if vm.gateway else None
    on_it = gateway is not None and gateway.ip in interface.network
    dns = tuple(str(found.ip) for found in map(_address, vm.dns) if found is not None)
    return StaticIP(
        nic.mac.lower(), str(interface.ip), interface.network.prefixlen, str(gateway.ip) if on_it else "", dns
    )


def static_ips(vm: SourceVM) -> tuple[StaticIP, ...]:
    """The NICs whose address the conversion carries over: one manual address each."""
    return tuple(_static(nic, vm) for nic in vm.nics if _kept(nic))


def mac_options(vm: SourceVM) -> tuple[str, ...]:
    """virt-v2v's arguments that set each static address on the NIC with its MAC."""
    return tuple(arg for ip in static_ips(vm) for arg in ("--mac", ip.option()))


def not_kept(vm: SourceVM) -> Iterator[str]:
    """Why a manual address is not (wholly) carried over, NIC by NIC."""
    for nic in vm.nics:
        if nic.address_origin == "manual" and len(nic.addresses) > 1:
            yield (
                f"{nic.label or nic.mac} has {len(nic.addresses)} addresses ({', '.join(nic.addresses)}); "
                "virt-v2v sets one per NIC"
            )
        elif _kept(nic) and not _static(nic, vm).gateway:
            yield (
                f"{nic.label or nic.mac} ({nic.addresses[0]}) has no default gateway on its network; "
                "virt-v2v sets its address without the prefix length on Windows"
            )


def dhcp_nics(vm: SourceVM) -> list[Nic]:
    return [nic for nic in vm.nics if nic.address_origin == "dhcp"]
