"""Plain records read from vCenter: what the rest of vmwave plans and migrates.

They are frozen dataclasses that round-trip through ``to_dict``/``from_dict``
so an inventory can be written to a file and planned later without vCenter.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, StringConstraints, with_config

# What an inventory file may hold (``vmwave.domain.inventory`` checks it): names as vSphere allows them (at most
# 80 characters, a path or a file a little more), counts that are not negative; the values code branches on, named.
Name = Annotated[str, StringConstraints(max_length=255)]
Text = Annotated[str, StringConstraints(max_length=4096)]
Count = Annotated[int, Field(ge=0, le=1 << 62)]
STRICT_FIELDS = ConfigDict(extra="forbid")
# A VM's identities become label values and file names: as vCenter writes them, never path-like.
UUID_PATTERN = r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$"  # a label value; vCenter's are UUIDs
MOREF_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,79}$"  # vm-137


@with_config(STRICT_FIELDS)
@dataclass(frozen=True)
class Disk:
    key: int
    label: Name
    file: Text
    datastore: Name
    capacity_bytes: Count
    controller: Name  # pvscsi, lsilogic, lsilogic-sas, buslogic, sata, nvme, ide
    bus: int
    unit: int
    sharing: Literal["none", "multiwriter"] = "none"
    mode: Name = "persistent"  # persistent | independent_persistent | independent_nonpersistent
    thin: bool = True
    rdm: Literal["", "physical", "virtual"] = ""
    change_id: Name = ""
    uuid: Name = ""  # the vSphere disk UUID (backing.uuid): the serial the guest sees when disk.EnableUUID is set


@with_config(STRICT_FIELDS)
@dataclass(frozen=True)
class Nic:
    key: int
    label: Name
    mac: Name
    adapter: Name  # vmxnet3, e1000e, e1000, ...
    portgroup: Name
    vlan: Annotated[int, Field(ge=0, le=4095)] | None = None
    distributed: bool = False
    addresses: tuple[Name, ...] = ()  # the guest's addresses on it with prefix ("10.0.2.15/24"), from VMware Tools
    address_origin: Name = ""  # how the guest got them: manual | dhcp | "" (not reported)


@with_config(STRICT_FIELDS)
@dataclass(frozen=True)
class GuestDisk:
    """A file system as VMware Tools reports it (guest.disk)."""

    path: Text  # mount point or drive: /, /boot, C:\\
    capacity_bytes: Count
    free_bytes: Count


@with_config(STRICT_FIELDS)
@dataclass(frozen=True)
class Snapshot:
    name: Text
    created: Name


@with_config(STRICT_FIELDS)
@dataclass(frozen=True)
class SourceVM:
    name: Name
    moref: Annotated[str, StringConstraints(pattern=MOREF_PATTERN)]
    instance_uuid: Annotated[str, StringConstraints(pattern=UUID_PATTERN)]
    vcenter: Annotated[str, StringConstraints(pattern=UUID_PATTERN)] = ""  # its vCenter's about.instanceUuid
    bios_uuid: Annotated[str, StringConstraints(pattern=UUID_PATTERN)] = ""
    datacenter: Name = ""
    cluster: Name = ""
    host: Name = ""
    folder: Text = ""  # path below the datacenter's vm folder, "" for the root
    guest_id: Name = ""
    guest_name: Name = ""
    guest_family: Literal["linux", "windows", "other", "unknown"] = "unknown"  # from the guest id
    firmware: Literal["bios", "efi"] = "bios"
    secure_boot: bool = False
    cpus: Annotated[int, Field(ge=1, le=4096)] = 1
    memory_mb: Annotated[int, Field(ge=0, le=1 << 40)] = 0
    cbt: bool = False
    power_state: Literal["poweredOn", "poweredOff", "suspended"] = "poweredOff"
    tools: Literal["running", "not_running", "not_installed"] = "not_installed"
    ips: tuple[Name, ...] = ()
    template: bool = False
    disks: tuple[Disk, ...] = ()
    nics: tuple[Nic, ...] = ()
    snapshots: tuple[Snapshot, ...] = ()
    devices: tuple[Name, ...] = ()  # extra hardware kinds: usb, tpm, passthrough, serial, floppy
    tags: tuple[Name, ...] = ()  # vSphere tags as "category/tag"
    attributes: dict[Name, Text] = field(default_factory=dict, hash=False)
    hot_add: tuple[Literal["cpu", "cpu-remove", "memory"], ...] = ()  # enabled hot plug
    cpu_affinity: tuple[Annotated[int, Field(ge=0)], ...] = ()  # host CPUs the VM is pinned to (config.cpuAffinity)
    extra_config: dict[Name, Text] = field(default_factory=dict, hash=False)  # the advanced settings checks read
    hostname: Name = ""  # what VMware Tools reports (guest.hostName)
    consolidation_needed: bool = False  # snapshot files left behind (runtime.consolidationNeeded)
    fault_tolerance: bool = False  # vSphere FT is configured (runtime.faultToleranceState)
    host_state: Literal["connected", "maintenance", "disconnected", "notResponding"] = "connected"  # its ESXi host
    cluster_features: tuple[Literal["drs", "dpm"], ...] = ()  # what its cluster has on
    host_rules: tuple[Name, ...] = ()  # the cluster's VM-host affinity rules that name this VM
    guest_disks: tuple[GuestDisk, ...] = ()  # the guest's file systems, when VMware Tools reports them
    gateway: Name = ""  # the guest's default gateway (guest.ipStack), when VMware Tools reports it
    dns: tuple[Name, ...] = ()  # the guest's DNS servers (guest.ipStack)
    boot_order: tuple[int, ...] = ()  # the disks' keys in the firmware's boot order (config.bootOptions.bootOrder)

    @property
    def key(self) -> str:
        """Which VM this is in the ledger: its vCenter and its instance UUID, as a moref is unique only inside one
        vCenter (every vCenter has a vm-137)."""
        return f"{self.vcenter}/{self.instance_uuid or self.moref}"

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
        """A record from ``to_dict``'s output, checked (``vmwave.domain.inventory``)."""
        from vmwave.domain.inventory import RECORD

        return RECORD.validate_python(data)


@dataclass(frozen=True)
class ClusterVM:
    """A VirtualMachine already in the target cluster: what a new one must not collide with."""

    namespace: str
    name: str
    macs: tuple[str, ...] = ()
    source_uuid: str = ""  # vmwave's source label: "" when vmwave did not make it
    migrated: str = ""  # vmwave's marker of a verified migration (wave, time, run): "" when none
