"""Migration concerns: what in a source VM can break its move to KubeVirt, and the fix.

Each rule is a small function over one VM and the estate around it (for
duplicate MACs and name collisions). Rules follow Forklift's validation where
it applies to KubeVirt, plus what the seed migration learned the hard way.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

from vmwave.domain.guests import guest_os
from vmwave.domain.manifests import disk_serial
from vmwave.domain.maps import Maps
from vmwave.domain.names import is_k8s_name, target_name
from vmwave.domain.records import ClusterVM, SourceVM
from vmwave.domain.static_ips import dhcp_nics, not_kept
from vmwave.domain.steps import FENCED_ATTRIBUTE

CRITICAL, WARNING, INFO = "critical", "warning", "info"
SEVERITIES = (CRITICAL, WARNING, INFO)


@dataclass(frozen=True)
class Concern:
    id: str
    severity: str
    message: str
    fix: str


@dataclass
class Thresholds:
    large_disk_bytes: int = 2 * 1024**4  # 2 TiB: a day of copying at 25 MB/s
    many_disks: int = 8


@dataclass
class EstateContext:
    """Facts about the whole estate that single-VM rules need."""

    maps: Maps | None = None
    thresholds: Thresholds = field(default_factory=Thresholds)
    mac_count: Counter = field(default_factory=Counter)
    name_count: Counter = field(default_factory=Counter)
    cluster_macs: dict[str, ClusterVM] = field(default_factory=dict)  # MACs of VMs already in the target cluster
    cluster_names: dict[str, ClusterVM] = field(default_factory=dict)  # VMs already in the target namespace
    sharers: Counter = field(default_factory=Counter)  # how many VMs have each multi-writer disk file

    @classmethod
    def of(
        cls,
        vms: Iterable[SourceVM],
        maps: Maps | None = None,
        thresholds: Thresholds | None = None,
        existing: Iterable[ClusterVM] = (),
    ) -> "EstateContext":
        vms = [vm for vm in vms if not vm.template]
        macs = Counter(nic.mac.lower() for vm in vms for nic in vm.nics if nic.mac)
        names = Counter(target_name(vm.name) for vm in vms)
        existing = list(existing)
        namespace = maps.namespace if maps else None
        return cls(
            maps,
            thresholds or Thresholds(),
            macs,
            names,
            {mac.lower(): e for e in existing for mac in e.macs},
            {e.name: e for e in existing if namespace is None or e.namespace == namespace},
            Counter(d.file for vm in vms for d in vm.shared_disks),
        )


Check = Callable[[SourceVM, EstateContext], Iterable[str | tuple[str, str]]]  # a message, or (severity, message)


@dataclass(frozen=True)
class Rule:
    id: str
    severity: str
    fix: str
    check: Check


RULES: list[Rule] = []


def rule(rule_id: str, severity: str, fix: str) -> Callable[[Check], Check]:
    def register(check: Check) -> Check:
        RULES.append(Rule(rule_id, severity, fix, check))
        return check

    return register


def flag(
    rule_id: str, severity: str, fix: str, holds: Callable[[SourceVM], bool], message: str | Callable[[SourceVM], str]
) -> None:
    """A rule that is one yes-or-no fact about the VM, said in one message (fixed, or made from the VM)."""
    say = message if callable(message) else lambda vm: message
    rule(rule_id, severity, fix)(lambda vm, ctx: [say(vm)] if holds(vm) else [])


def _gib(n: int) -> str:
    return f"{n / 1024**3:,.0f} GiB"


@rule(
    "rdm_disk",
    CRITICAL,
    "Copy the LUN into a VMDK (Storage vMotion to virtual mode) or present it to KubeVirt as a raw block PVC by hand.",
)
def _rdm(vm, ctx):
    return [f"disk {d.label} is a {d.rdm}-mode RDM ({d.file})" for d in vm.disks if d.rdm]


def _shared_ready(vm: SourceVM, ctx: "EstateContext") -> list[tuple[bool, str]]:
    """Each shared disk, with whether vmwave can move it (one ReadWriteMany Block volume, every VM sharing it in
    this inventory, so moved in one wave) and what is said of it."""
    found = []
    for d in vm.shared_disks:
        mapping = ctx.maps.storage_for(d) if ctx.maps else None
        others = ctx.sharers[d.file] - 1
        if mapping is None or "ReadWriteMany" not in mapping.access_modes or mapping.volume_mode != "Block":
            found.append(
                (
                    False,
                    f"disk {d.label} ({d.file}) is multi-writer shared, and its storage map gives no "
                    "ReadWriteMany volume in Block mode",
                )
            )
        elif others < 1:
            found.append(
                (False, f"disk {d.label} ({d.file}) is multi-writer shared, but no other VM of this inventory has it")
            )
        else:
            found.append(
                (
                    True,
                    f"disk {d.label} ({d.file}) is shared with {others} other VM(s): one DataVolume, "
                    "attached to each, all of them cut over together",
                )
            )
    return found


@rule(
    "shared_disk",
    CRITICAL,
    "vmwave moves the VMs sharing a disk in one wave, all shut down before its one copy onto a shareable "
    "ReadWriteMany Block DataVolume (a warning: verify the cluster after cutover); when it cannot (critical), map the "
    "datastore to a StorageClass with `volume_mode: Block` and `access_modes: [ReadWriteMany]` and plan from an "
    "inventory holding every VM that shares it.",
)
def _shared(vm, ctx):
    return [(WARNING if ready else CRITICAL, message) for ready, message in _shared_ready(vm, ctx)]


@rule(
    "independent_disk",
    WARNING,
    "Independent disks are skipped by snapshots; switch them to dependent mode or power the VM off before copying.",
)
def _independent(vm, ctx):
    return [f"disk {d.label} is in {d.mode} mode" for d in vm.disks if d.mode.startswith("independent")]


@rule(
    "snapshots_present",
    WARNING,
    "Consolidate or delete the snapshots before migration; conversion reads the current state of a snapshot chain "
    "slowly.",
)
def _snapshots(vm, ctx):
    if vm.snapshots:
        names = ", ".join(s.name for s in vm.snapshots)
        yield f"{len(vm.snapshots)} snapshot(s) present: {names}"


@rule(
    "passthrough_device",
    CRITICAL,
    "Remove the PCI passthrough device, or plan a KubeVirt hostDevice/GPU on a node that has the hardware and move "
    "the VM by hand.",
)
def _passthrough(vm, ctx):
    if "passthrough" in vm.devices:
        yield "has a PCI passthrough device"


@rule(
    "usb_device",
    WARNING,
    "USB devices are not migrated; remove them or attach them to the KubeVirt VM by hand after cutover.",
)
def _usb(vm, ctx):
    if "usb" in vm.devices:
        yield "has a USB device attached"


@rule(
    "vtpm",
    WARNING,
    "The vTPM state does not move: suspend BitLocker or disk encryption bound to the TPM before migration; the "
    "KubeVirt VM gets a fresh persistent TPM.",
)
def _vtpm(vm, ctx):
    if "tpm" in vm.devices:
        yield "has a virtual TPM"


@rule(
    "secure_boot",
    INFO,
    "The VirtualMachine is generated with EFI secure boot and SMM enabled; make sure the nodes' OVMF has the "
    "Microsoft keys for Windows.",
)
def _secure_boot(vm, ctx):
    if vm.secure_boot:
        yield "boots with EFI secure boot"


@rule(
    "unsupported_guest_os",
    CRITICAL,
    "virt-v2v cannot convert this guest: upgrade the OS first or rebuild the workload on a supported OS.",
)
def _unsupported(vm, ctx):
    if guest_os(vm.guest_id).supported is False:
        yield f"guest OS {vm.guest_id} is not supported by virt-v2v/KubeVirt"


@rule(
    "unknown_guest_os",
    WARNING,
    "Set the correct guest OS in vSphere (VM settings > Guest OS) so the right conversion and drivers are chosen.",
)
def _unknown(vm, ctx):
    if guest_os(vm.guest_id).supported is None:
        yield f"guest OS {vm.guest_id or '(none)'} does not say which OS runs inside"


@rule(
    "tools_not_running",
    WARNING,
    "Start VMware Tools: without it vmwave cannot read the guest's IPs nor shut it down cleanly before the copy.",
)
def _tools_not_running(vm, ctx):
    if vm.power_state == "poweredOn" and vm.tools == "not_running":
        yield (
            "VMware Tools is installed but not running: the guest's addresses are unknown, so a static IP is not "
            "carried over"
        )


@rule(
    "tools_not_installed",
    WARNING,
    "Install VMware Tools (or open-vm-tools) so the guest's IPs are known and the guest can be shut down cleanly.",
)
def _tools_not_installed(vm, ctx):
    if vm.power_state == "poweredOn" and vm.tools == "not_installed":
        yield "VMware Tools is not installed: the guest's addresses are unknown, so a static IP is not carried over"


@rule(
    "static_ip_not_kept",
    WARNING,
    "Check the guest's address after cutover (a post-boot hook can set it), or leave one static address per NIC with "
    "its gateway before migration.",
)
def _static_ip_not_kept(vm, ctx):
    return not_kept(vm)


flag(
    "dhcp_address",
    INFO,
    "Nothing to carry over: make sure the target network's DHCP serves the guest (vmwave keeps the MAC, so a "
    "reservation by MAC still holds).",
    lambda vm: bool(dhcp_nics(vm)),
    lambda vm: f"{', '.join(n.label or n.mac for n in dhcp_nics(vm))} takes its address from DHCP",
)


@rule(
    "invalid_k8s_name",
    INFO,
    "The KubeVirt VirtualMachine gets the shown name; set `target_name:` in the plan if another name is wanted.",
)
def _k8s_name(vm, ctx):
    if not is_k8s_name(vm.name):
        yield f"name {vm.name!r} is not a valid Kubernetes name; it becomes {target_name(vm.name)!r}"


@rule(
    "name_collision",
    CRITICAL,
    "Set another `target_name:` for one of them in the plan (or rename one in vSphere) so their Kubernetes names "
    "differ.",
)
def _name_collision(vm, ctx):
    target = target_name(vm.name)
    if ctx.name_count[target] > 1:
        yield (
            f"{ctx.name_count[target]} VMs would all become VirtualMachine {target!r} (the plan names all but one "
            "apart)"
        )


@rule(
    "duplicate_mac",
    CRITICAL,
    "Give the NIC a unique MAC in vSphere before migration: KubeVirt keeps source MACs, and two VMs with one MAC on a "
    "VLAN break both.",
)
def _duplicate_mac(vm, ctx):
    for nic in vm.nics:
        if nic.mac and ctx.mac_count[nic.mac.lower()] > 1:
            yield f"{nic.label} MAC {nic.mac} is used by {ctx.mac_count[nic.mac.lower()]} NICs in the estate"


@rule(
    "unmapped_datastore",
    CRITICAL,
    'Add a storage map entry for the datastore (maps file, `storage:`), or a "*" default.',
)
def _unmapped_datastore(vm, ctx):
    if ctx.maps is None:
        return
    for ds in sorted({d.datastore for d in vm.disks if ctx.maps.storage_for(d) is None}):
        yield f"datastore {ds} has no StorageClass in the storage map"


@rule("unmapped_network", CRITICAL, "Add a network map entry for the portgroup or its VLAN (maps file, `network:`).")
def _unmapped_network(vm, ctx):
    if ctx.maps is None:
        return
    for nic in vm.nics:
        if ctx.maps.network_for(nic) is None:
            yield f"{nic.label} on portgroup {nic.portgroup} (VLAN {nic.vlan}) has no network in the network map"


@rule(
    "large_disk",
    WARNING,
    "Plan this VM alone in a long window, or pre-copy with warm migration; check the target StorageClass has room.",
)
def _large_disk(vm, ctx):
    for d in vm.disks:
        if d.capacity_bytes > ctx.thresholds.large_disk_bytes:
            yield f"disk {d.label} is {_gib(d.capacity_bytes)}"


@rule(
    "many_disks",
    WARNING,
    "Each disk becomes a DataVolume and a PVC; check the StorageClass quota and plan a longer window.",
)
def _many_disks(vm, ctx):
    if len(vm.disks) > ctx.thresholds.many_disks:
        yield f"{len(vm.disks)} disks (more than {ctx.thresholds.many_disks})"


@rule(
    "no_disks",
    WARNING,
    "A VM without disks has nothing to migrate; check it is not a placeholder, or recreate it on KubeVirt.",
)
def _no_disks(vm, ctx):
    if not vm.disks:
        yield "has no virtual disks"


@rule(
    "template",
    INFO,
    "Templates are not migrated as VMs; rebuild them as KubeVirt golden images (DataSources) if they are still used.",
)
def _template(vm, ctx):
    if vm.template:
        yield "is a template"


@rule(
    "suspended",
    WARNING,
    "Resume the VM and shut it down, or power it off: the suspended memory state cannot be migrated.",
)
def _suspended(vm, ctx):
    if vm.power_state == "suspended":
        yield "is suspended"


@rule(
    "cbt_disabled", INFO, "Enable Changed Block Tracking (ctkEnabled) if this VM should move warm with a short cutover."
)
def _cbt(vm, ctx):
    if vm.power_state == "poweredOn" and vm.disks and not vm.cbt:
        yield "Changed Block Tracking is off: only cold migration is possible"


@rule(
    "legacy_devices",
    INFO,
    "Serial ports and floppy drives are not carried over; recreate a serial console in KubeVirt if one is needed.",
)
def _legacy(vm, ctx):
    for kind in ("serial", "floppy"):
        if kind in vm.devices:
            yield f"has a {kind} device that will not be migrated"


@rule(
    "hot_plug",
    WARNING,
    "KubeVirt hot-plugs CPU and memory only within limits set in advance; check the VM's sizing after cutover and "
    "turn hot add off in vSphere if nothing relies on it.",
)
def _hot_plug(vm, ctx):
    if vm.hot_add:
        yield (
            "has "
            + ", ".join(
                {"cpu": "CPU hot add", "cpu-remove": "CPU hot remove", "memory": "memory hot add"}[k]
                for k in vm.hot_add
            )
            + " enabled, which is not carried over"
        )


flag(
    "cpu_affinity",
    WARNING,
    "Pin the KubeVirt VM with the latency-sensitive profile (dedicated CPUs) or a node selector instead; clear the "
    "vSphere CPU affinity to confirm nothing needs it.",
    lambda vm: bool(vm.cpu_affinity),
    lambda vm: f"is pinned to host CPUs {','.join(str(c) for c in vm.cpu_affinity)}; the pinning is not carried over",
)
flag(
    "numa_affinity",
    WARNING,
    "Give the VM the latency-sensitive profile (NUMA passthrough) if it needs NUMA placement; the vSphere node "
    "affinity is not carried over.",
    lambda vm: bool(vm.extra_config.get("numa.nodeAffinity")),
    lambda vm: f"has NUMA node affinity {vm.extra_config['numa.nodeAffinity']} (numa.nodeAffinity)",
)


@rule(
    "sriov_nic",
    WARNING,
    "Map the portgroup to an SR-IOV NetworkAttachmentDefinition and attach the interface with the sriov binding by "
    "hand, or move it to a vmxnet3 NIC first.",
)
def _sriov(vm, ctx):
    for nic in vm.nics:
        if nic.adapter == "sriov":
            yield f"{nic.label} is an SR-IOV passthrough adapter; it becomes a virtio NIC"


@rule(
    "disk_cbt_off",
    WARNING,
    "Enable Changed Block Tracking on every disk (ctkEnabled = TRUE) and take and remove a snapshot to apply it, or "
    "the disks without it cannot move warm.",
)
def _disk_cbt_off(vm, ctx):
    if vm.cbt:
        for key, value in sorted(vm.extra_config.items()):
            if key.endswith(".ctkEnabled") and value.lower() == "false":
                yield f"Changed Block Tracking is on for the VM but off for disk {key.removesuffix('.ctkEnabled')}"


@rule(
    "disk_unusable",
    CRITICAL,
    "Remove the disk or fix its backing in vSphere (capacity, datastore), then re-read the inventory.",
)
def _disk_unusable(vm, ctx):
    for d in vm.disks:
        if d.capacity_bytes <= 0:
            yield f"disk {d.label} ({d.file}) has a capacity of 0"
        elif not d.datastore:
            yield f"disk {d.label} ({d.file}) is on no datastore vCenter knows"


@rule(
    "disk_serial_lost",
    WARNING,
    "Read the disk's UUID in vSphere (re-read the inventory) or have the guest find the disk by file system UUID or "
    "label: vmwave gives each target disk the serial the guest saw, and has none for this one.",
)
def _disk_serial_lost(vm, ctx):
    if vm.extra_config.get("disk.EnableUUID", "").lower() == "true":
        for d in vm.disks:
            if not disk_serial(vm, d):
                yield f"the guest sees a serial on disk {d.label}, but vCenter reports no UUID to keep it by"


flag(
    "disk_enable_uuid",
    INFO,
    "Nothing to do unless the guest identifies disks by serial: KubeVirt truncates disk serials to 20 characters; use "
    "file system UUIDs or labels.",
    lambda vm: vm.extra_config.get("disk.EnableUUID", "").lower() == "true",
    "disk.EnableUUID is set: the guest sees disk serials, which KubeVirt truncates to 20 characters",
)
flag(
    "fault_tolerance",
    CRITICAL,
    "Turn off Fault Tolerance in vSphere before migration: the secondary VM cannot be moved, and KubeVirt has no FT "
    "(use live migration and a node-failure policy).",
    lambda vm: vm.fault_tolerance,
    "is protected by vSphere Fault Tolerance",
)
flag(
    "consolidation_needed",
    WARNING,
    "Consolidate the VM's disks in vSphere (Snapshots > Consolidate) so the copy reads one consistent chain.",
    lambda vm: vm.consolidation_needed,
    "its snapshot files need consolidation",
)
flag(
    "no_guest_ip",
    WARNING,
    "Check VMware Tools reports the guest's network (guest.net): without an IP neither the static address can be "
    "carried over nor the guest reached for smoke checks by address.",
    lambda vm: vm.power_state == "poweredOn" and vm.tools == "running" and not vm.ips,
    "VMware Tools runs but reports no IP address",
)


@rule(
    "default_hostname",
    WARNING,
    "Give the guest a real host name before migration; a guest called localhost.localdomain collides in DNS and DHCP "
    "once it is on the cluster network.",
)
def _default_hostname(vm, ctx):
    if vm.power_state == "poweredOn" and vm.tools == "running":
        if not vm.hostname:
            yield "VMware Tools reports no host name"
        elif vm.hostname.lower() in ("localhost", "localhost.localdomain"):
            yield f"its host name is the default {vm.hostname!r}"


flag(
    "host_unavailable",
    CRITICAL,
    "Take the ESXi host out of maintenance mode or reconnect it to vCenter (or move the VM to a healthy host) before "
    "its wave: its disks cannot be read or its power changed meanwhile.",
    lambda vm: vm.host_state != "connected",
    lambda vm: (
        f"its ESXi host {vm.host} is {'in maintenance mode' if vm.host_state == 'maintenance' else vm.host_state}"
    ),
)
flag(
    "cluster_drs_dpm",
    INFO,
    "Nothing to carry over: KubeVirt balances VMs itself (the descheduler, live migration); check DRS does not move "
    "the VM during its copy (set it to partially automated for the window).",
    lambda vm: bool(vm.cluster_features),
    lambda vm: f"its cluster {vm.cluster} uses {' and '.join(f.upper() for f in vm.cluster_features)}",
)


@rule(
    "vm_host_affinity",
    WARNING,
    "Express the placement as a node selector or node affinity on the VirtualMachine (the plan's placement), or the "
    "VM may land on any node.",
)
def _vm_host_affinity(vm, ctx):
    for name in vm.host_rules:
        yield f"the cluster's VM-host affinity rule {name!r} places it; the rule is not carried over"


MB = 1024**2
V2V_FREE = {"/": 100 * MB, "/boot": 50 * MB, "c:\\": 100 * MB}  # Forklift's thresholds; every other file system 10 MB


@rule(
    "guest_disk_space",
    CRITICAL,
    "Free space in the guest before cutover (virt-v2v writes drivers and a new initramfs or registry hive there): / "
    "and C: need 100 MB, /boot 50 MB, every other file system 10 MB.",
)
def _guest_disk_space(vm, ctx):
    for disk in vm.guest_disks:
        need = V2V_FREE.get(disk.path.lower(), 10 * MB)
        if disk.free_bytes < need:
            yield f"file system {disk.path} has {disk.free_bytes // MB} MB free; virt-v2v needs {need // MB} MB"


@rule(
    "cluster_mac_clash",
    CRITICAL,
    "Give the source NIC another MAC in vSphere, or change or remove the VM in the cluster that has it: KubeVirt "
    "keeps source MACs, and two VMs with one MAC on a network break both.",
)
def _cluster_mac_clash(vm, ctx):
    for nic in vm.nics:
        other = ctx.cluster_macs.get(nic.mac.lower())
        if other is not None and other.source_uuid != vm.instance_uuid:
            yield (
                f"{nic.label} MAC {nic.mac} is already used by VirtualMachine {other.namespace}/{other.name} in "
                "the cluster"
            )


@rule(
    "cluster_name_clash",
    CRITICAL,
    "Set another `target_name:` for this VM in the plan, or move or rename the VM already in the cluster.",
)
def _cluster_name_clash(vm, ctx):
    other = ctx.cluster_names.get(target_name(vm.name))
    if other is not None and other.source_uuid != vm.instance_uuid:
        yield f"VirtualMachine {other.namespace}/{other.name} already exists in the cluster and is not this VM's"


@rule(
    "already_migrated",
    INFO,
    "Nothing to do: a run leaves a verified migration alone. To move it again, roll it back with the ledger that "
    "migrated it, or give it another `target_name:`.",
)
def _already_migrated(vm, ctx):
    other = ctx.cluster_names.get(target_name(vm.name))
    if other is not None and other.source_uuid == vm.instance_uuid and other.migrated:
        yield f"VirtualMachine {other.namespace}/{other.name} is its migration, verified (wave {other.migrated})"
    elif fenced := vm.attributes.get(FENCED_ATTRIBUTE):
        yield f"its source is fenced: it was migrated to {fenced}"


def concerns_for(vm: SourceVM, ctx: EstateContext) -> list[Concern]:
    """Every concern for one VM, in rule order (stable for the same input)."""
    return [
        Concern(r.id, *(found if isinstance(found, tuple) else (r.severity, found)), r.fix)
        for r in RULES
        for found in r.check(vm, ctx)
    ]


def assess(
    vms: Iterable[SourceVM],
    maps: Maps | None = None,
    thresholds: Thresholds | None = None,
    existing: Iterable[ClusterVM] = (),
) -> Iterator[tuple[SourceVM, list[Concern]]]:
    vms = list(vms)
    ctx = EstateContext.of(vms, maps, thresholds, existing)
    for vm in vms:
        yield vm, concerns_for(vm, ctx)
