"""Plain records read from vCenter: what the rest of vmwave plans and migrates.

They are frozen dataclasses that round-trip through ``to_dict``/``from_dict``
so an inventory can be written to a file and planned later without vCenter.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class Disk:
    key: int
    label: str
    file: str
    datastore: str
    capacity_bytes: int
    controller: str  # pvscsi, lsilogic, lsilogic-sas, buslogic, sata, nvme, ide
    bus: int
    unit: int
    sharing: str = "none"  # none | multiwriter
    mode: str = "persistent"  # persistent | independent_persistent | independent_nonpersistent
    thin: bool = True
    rdm: str = ""  # "" | physical | virtual
    change_id: str = ""


@dataclass(frozen=True)
class Nic:
    key: int
    label: str
    mac: str
    adapter: str  # vmxnet3, e1000e, e1000, ...
    portgroup: str
    vlan: int | None = None
    distributed: bool = False
    addresses: tuple[str, ...] = ()  # the guest's addresses on it with prefix ("10.0.2.15/24"), from VMware Tools
    address_origin: str = ""  # how the guest got them: manual | dhcp | "" (not reported)


@dataclass(frozen=True)
class GuestDisk:
    """A file system as VMware Tools reports it (guest.disk)."""

    path: str  # mount point or drive: /, /boot, C:\\
    capacity_bytes: int
    free_bytes: int


@dataclass(frozen=True)
class Snapshot:
    name: str
    created: str


@dataclass(frozen=True)
class SourceVM:
    name: str
    moref: str
    instance_uuid: str
    bios_uuid: str = ""
    datacenter: str = ""
    cluster: str = ""
    host: str = ""
    folder: str = ""  # path below the datacenter's vm folder, "" for the root
    guest_id: str = ""
    guest_name: str = ""
    guest_family: str = "unknown"  # linux | windows | other | unknown, from the guest id
    firmware: str = "bios"
    secure_boot: bool = False
    cpus: int = 1
    memory_mb: int = 0
    cbt: bool = False
    power_state: str = "poweredOff"  # poweredOn | poweredOff | suspended
    tools: str = "not_installed"  # running | not_running | not_installed
    ips: tuple[str, ...] = ()
    template: bool = False
    disks: tuple[Disk, ...] = ()
    nics: tuple[Nic, ...] = ()
    snapshots: tuple[Snapshot, ...] = ()
    devices: tuple[str, ...] = ()  # extra hardware kinds: usb, tpm, passthrough, serial, floppy
    tags: tuple[str, ...] = ()  # vSphere tags as "category/tag"
    attributes: dict[str, str] = field(default_factory=dict, hash=False)
    hot_add: tuple[str, ...] = ()  # enabled hot plug: cpu, cpu-remove, memory
    cpu_affinity: tuple[int, ...] = ()  # host CPUs the VM is pinned to (config.cpuAffinity)
    extra_config: dict[str, str] = field(default_factory=dict, hash=False)  # the advanced settings checks read
    hostname: str = ""  # what VMware Tools reports (guest.hostName)
    consolidation_needed: bool = False  # snapshot files left behind (runtime.consolidationNeeded)
    fault_tolerance: bool = False  # vSphere FT is configured (runtime.faultToleranceState)
    host_state: str = "connected"  # its ESXi host: connected | maintenance | disconnected | notResponding
    cluster_features: tuple[str, ...] = ()  # what its cluster has on: drs, dpm
    host_rules: tuple[str, ...] = ()  # the cluster's VM-host affinity rules that name this VM
    guest_disks: tuple[GuestDisk, ...] = ()  # the guest's file systems, when VMware Tools reports them
    gateway: str = ""  # the guest's default gateway (guest.ipStack), when VMware Tools reports it
    dns: tuple[str, ...] = ()  # the guest's DNS servers (guest.ipStack)

    @property
    def shared_disks(self) -> tuple[Disk, ...]:
        return tuple(d for d in self.disks if d.sharing == "multiwriter")

    @property
    def total_disk_bytes(self) -> int:
        return sum(d.capacity_bytes for d in self.disks)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SourceVM":
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["disks"] = tuple(Disk(**d) for d in data.get("disks", ()))
        values["nics"] = tuple(Nic(**{**n, "addresses": tuple(n.get("addresses", ()))}) for n in data.get("nics", ()))
        values["snapshots"] = tuple(Snapshot(**s) for s in data.get("snapshots", ()))
        values["ips"] = tuple(data.get("ips", ()))
        values["devices"] = tuple(data.get("devices", ()))
        values["tags"] = tuple(data.get("tags", ()))
        values["attributes"] = dict(data.get("attributes", {}))
        values["hot_add"] = tuple(data.get("hot_add", ()))
        values["cpu_affinity"] = tuple(data.get("cpu_affinity", ()))
        values["extra_config"] = dict(data.get("extra_config", {}))
        values["cluster_features"] = tuple(data.get("cluster_features", ()))
        values["host_rules"] = tuple(data.get("host_rules", ()))
        values["dns"] = tuple(data.get("dns", ()))
        values["guest_disks"] = tuple(GuestDisk(**g) for g in data.get("guest_disks", ()))
        return cls(**values)


@dataclass(frozen=True)
class ClusterVM:
    """A VirtualMachine already in the target cluster: what a new one must not collide with."""

    namespace: str
    name: str
    macs: tuple[str, ...] = ()
    source_uuid: str = ""  # vmwave's source label: "" when vmwave did not make it
