"""The Kubernetes objects a migrated VM becomes: DataVolumes, NetworkAttachmentDefinitions, a VirtualMachine.

Every object carries labels tying it to its source VM (vCenter instance UUID,
moref) and its wave, so a rerun finds what exists and a rollback finds what
to remove. Field names follow KubeVirt v1 and CDI v1beta1.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from vmwave.domain.maps import Maps, NetworkMapping
from vmwave.domain.names import k8s_name, target_name
from vmwave.domain.profiles import apply_profile, prerequisites
from vmwave.domain.records import Disk, SourceVM
from vmwave.errors import VmwaveError

if TYPE_CHECKING:  # the plan's models build on the manifests' Names
    from vmwave.domain.plan_file import PlannedEntry

MANAGED_BY = {"app.kubernetes.io/managed-by": "vmwave"}
LABEL_UUID = "vmwave.io/source-uuid"
LABEL_MOREF = "vmwave.io/source-moref"
LABEL_VCENTER = "vmwave.io/source-vcenter"  # the source's vCenter (about.instanceUuid): a moref is only unique there
LABEL_WAVE = "vmwave.io/wave"
LABEL_SHARED = "vmwave.io/shared-disk"  # on the one DataVolume of a disk several source VMs share (multi-writer)
LABEL_RUN = "vmwave.io/run"  # the ledger whose run made the object (set when it is applied)
KEPT_FOR_RETRY = "vmwave.io/kept-for-retry"  # on the volumes of a VM that failed after its copy: `vmwave retry`
ANNOTATION_MIGRATED = "vmwave.io/migrated"  # on a verified VirtualMachine: "<wave> <time UTC> run <run>"
ANNOTATION_SOURCE = "vmwave.io/source-name"
ANNOTATION_SHARED_FILE = "vmwave.io/shared-disk-file"  # the datastore file of a shared disk's DataVolume
ANNOTATION_GUEST_ID = "vmwave.io/source-guest-id"  # what vCenter said the guest is
FS_OVERHEAD = 0.055  # CDI's default filesystem overhead
MI = 1024**2

Source = dict[str, Any]  # a CDI DataVolume source, e.g. {"upload": {}} or {"http": {"url": ...}}


def source_labels(vm: SourceVM, wave: str) -> dict[str, str]:
    vcenter = {LABEL_VCENTER: vm.vcenter} if vm.vcenter else {}
    return {**MANAGED_BY, LABEL_UUID: vm.instance_uuid, LABEL_MOREF: vm.moref, **vcenter, LABEL_WAVE: wave}


def same_source(obj: dict | None, vm: SourceVM) -> bool:
    """Whether a cluster object was made for ``vm``: its instance UUID, and its vCenter when both say which."""
    labels = ((obj or {}).get("metadata") or {}).get("labels") or {}
    vcenter = labels.get(LABEL_VCENTER, "")
    return labels.get(LABEL_UUID) == vm.instance_uuid and (not vcenter or not vm.vcenter or vcenter == vm.vcenter)


def _meta(name: str, namespace: str, vm: SourceVM, wave: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": namespace,
        "labels": source_labels(vm, wave),
        "annotations": {ANNOTATION_SOURCE: vm.name},
    }


@dataclass(frozen=True)
class Names:
    """How a VM's objects are named, as Forklift's pvcNameTemplate, volumeNameTemplate and networkNameTemplate.

    ``{vm}`` is the VM's target name, ``{index}`` the disk's or NIC's position, ``{wave}`` the wave id.
    """

    pvc: str = "{vm}-disk{index}"  # the DataVolume and its PVC
    volume: str = "disk{index}"  # the disk and volume inside the VirtualMachine
    interface: str = "nic{index}"  # the interface and network inside the VirtualMachine

    FIELDS = {"pvc": ("vm", "index", "wave"), "volume": ("vm", "index"), "interface": ("vm", "index")}

    def of(self, kind: str, vm: str, index: int, wave: str = "") -> str:
        return getattr(self, kind).format(vm=vm, index=index, wave=wave)


def disk_name(target: str, index: int, names: Names = Names(), wave: str = "") -> str:
    """The DataVolume (and PVC) of a VM's disk, named after the VM's target name."""
    return names.of("pvc", target, index, wave)


SERIAL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.+-")  # KubeVirt's


def disk_serial(vm: SourceVM, disk: Disk) -> str:
    """The disk's serial: its vSphere UUID without dashes, as a SCSI disk reports it to a guest with
    ``disk.EnableUUID`` set; every disk that has a UUID carries it, so its identity is the same from its first boot
    in KubeVirt whether or not the guest looked at it before. "" when vCenter reports none (a concern says when the
    guest saw one)."""
    serial = disk.uuid.replace("-", "").lower()
    return serial if serial and set(serial) <= SERIAL_CHARS else ""


def boot_orders(vm: SourceVM) -> list[int | None]:
    """Each disk's place in the firmware's boot order, in source order: vCenter's order when it names disks,
    else the first disk alone."""
    if vm.boot_order:
        return [vm.boot_order.index(d.key) + 1 if d.key in vm.boot_order else None for d in vm.disks]
    return [1 if index == 0 else None for index in range(len(vm.disks))]


def requested_size(disk: Disk, volume_mode: str) -> str:
    """Capacity plus CDI's filesystem overhead for Filesystem volumes, rounded up to MiB."""
    size = disk.capacity_bytes / (1 - FS_OVERHEAD) if volume_mode == "Filesystem" else disk.capacity_bytes
    return f"{max(1, math.ceil(size / MI))}Mi"


def shared_disk_name(disk: Disk) -> str:
    """The one DataVolume of a disk several VMs share: named after its file, not after any one of them."""
    stem = disk.file.split("]", 1)[-1].strip().rsplit("/", 1)[-1].removesuffix(".vmdk")
    return f"{k8s_name('shared-' + stem, 54)}-{_file_id(disk)}"


def _file_id(disk: Disk) -> str:
    return hashlib.sha256(disk.file.encode()).hexdigest()[:8]


def volume_name(vm: SourceVM, index: int, target: str, names: Names, wave: str) -> str:
    """The DataVolume (and PVC) that holds a VM's disk: its own, or the shared one."""
    disk = vm.disks[index]
    return shared_disk_name(disk) if disk.sharing == "multiwriter" else disk_name(target, index, names, wave)


def datavolume(
    vm: SourceVM, index: int, maps: Maps, wave: str, source: Source, target: str | None = None, names: Names = Names()
) -> dict[str, Any]:
    """A disk's DataVolume; a shared (multi-writer) disk's is one for all the VMs that share it, ReadWriteMany in
    Block mode as KubeVirt's shareable disks need, and belongs to none of them."""
    disk = vm.disks[index]
    mapping = maps.storage_for(disk)
    if mapping is None:
        raise VmwaveError(
            f"{vm.name}: datastore {disk.datastore} of {disk.label} has no storage mapping",
            "add it to the maps file under `storage:`",
        )
    metadata = _meta(volume_name(vm, index, target or target_name(vm.name), names, wave), maps.namespace, vm, wave)
    if disk.sharing == "multiwriter":
        if "ReadWriteMany" not in mapping.access_modes or mapping.volume_mode != "Block":
            raise VmwaveError(
                f"{vm.name}: {disk.label} is shared (multi-writer) and needs a ReadWriteMany volume in Block mode, "
                f"but the storage map gives {mapping.storage_class} {', '.join(mapping.access_modes)} "
                f"{mapping.volume_mode}",
                f"map datastore {disk.datastore} to a StorageClass that can (e.g. Ceph "
                "RBD) with `volume_mode: Block` and `access_modes: [ReadWriteMany]`",
            )
        metadata["labels"] = {**MANAGED_BY, LABEL_WAVE: wave, LABEL_SHARED: _file_id(disk)}
        metadata["annotations"] = {ANNOTATION_SHARED_FILE: disk.file}
    return {
        "apiVersion": "cdi.kubevirt.io/v1beta1",
        "kind": "DataVolume",
        "metadata": metadata,
        "spec": {
            "source": source,
            "storage": {
                "accessModes": list(mapping.access_modes),
                "volumeMode": mapping.volume_mode,
                "storageClassName": mapping.storage_class,
                "resources": {"requests": {"storage": requested_size(disk, mapping.volume_mode)}},
            },
        },
    }


def nad(mapping: NetworkMapping) -> dict[str, Any]:
    """The NetworkAttachmentDefinition a network mapping asks vmwave to create."""
    namespace, name = mapping.network.split("/")
    spec = mapping.create
    if spec is None:
        raise ValueError(f"{mapping.network} is not created by vmwave")
    if spec.type == "ovn-localnet":
        config: dict[str, Any] = {
            "cniVersion": "0.3.1",
            "name": name,
            "type": "ovn-k8s-cni-overlay",
            "topology": "localnet",
            "netAttachDefName": mapping.network,
            "mtu": spec.mtu,
        }
        if spec.vlan:
            config["vlanID"] = spec.vlan
        if spec.subnets:
            config["subnets"] = spec.subnets
    else:
        config = {
            "cniVersion": "0.3.1",
            "name": name,
            "type": "bridge",
            "bridge": spec.bridge,
            "mtu": spec.mtu,
            "macspoofchk": True,
            "ipam": {},
        }
        if spec.vlan:
            config["vlan"] = spec.vlan
    return {
        "apiVersion": "k8s.cni.cncf.io/v1",
        "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(MANAGED_BY)},
        "spec": {"config": json.dumps(config, sort_keys=True)},
    }


def nads_for(vms: list[SourceVM], maps: Maps) -> list[dict[str, Any]]:
    """The NADs a set of VMs needs that vmwave creates, once each."""
    found: dict[str, dict[str, Any]] = {}
    for vm in vms:
        for nic in vm.nics:
            mapping = maps.network_for(nic)
            if mapping is not None and mapping.create is not None:
                found.setdefault(mapping.network, nad(mapping))
    return [found[k] for k in sorted(found)]


@dataclass(frozen=True)
class Target:
    """What the plan and the maps say a VM becomes; what the guest-OS plugins' ``vmwave_virtual_machine`` is told."""

    name: str  # the VirtualMachine's name (the plan's target_name)
    profile: str = "standard"  # the performance profile (vmwave.domain.profiles)
    convert: str = ""  # copy | virt-v2v, as the plan says; "" when it does not (the plugins decide at run time)
    compatibility: bool = False  # boot unconverted on SATA disks and an e1000e NIC (Forklift's useCompatibilityMode)
    preferences: bool = False  # the cluster has kubevirt/common-instancetypes' VirtualMachineClusterPreferences
    cpu_model: str = ""  # the CPU model the maps give the standard profile; "" is KubeVirt's default (host-model)
    names: Names = Names()  # how its DataVolumes, volumes and interfaces are named (the plan's `names:`)
    labels: tuple[tuple[str, str], ...] = ()  # extra labels for the VM, e.g. from its vSphere tags (`tag_labels:`)
    node_selector: tuple[tuple[str, str], ...] = ()  # where it may run: the plan's, else the maps' placement
    affinity: dict[str, Any] | None = field(default=None, hash=False, compare=False)

    @classmethod
    def of(cls, entry: "PlannedEntry", maps: Maps) -> "Target":
        """The target of a plan entry (its target name, profile, conversion, compatibility, the plan's name
        templates, labels and placement); the maps give placement where the plan gives none."""
        node_selector = entry.node_selector or dict(maps.node_selector)
        return cls(
            entry.target,
            entry.profile,
            entry.convert or "",
            entry.compatibility,
            maps.preferences == "cluster",
            maps.cpu_model,
            entry.object_names,
            tuple(sorted(entry.labels.items())),
            tuple(sorted(node_selector.items())),
            entry.affinity or maps.affinity,
        )


def _interfaces(vm: SourceVM, maps: Maps, model: str, target: Target) -> tuple[list[dict], list[dict]]:
    interfaces, networks = [], []
    for n, nic in enumerate(vm.nics):
        mapping = maps.network_for(nic)
        if mapping is None:
            raise VmwaveError(
                f"{vm.name}: {nic.label} on portgroup {nic.portgroup} (VLAN {nic.vlan}) has no network mapping",
                "add it to the maps file under `network:`",
            )
        name = target.names.of("interface", target.name, n)
        binding = {"masquerade": {}} if mapping.network == "pod" else {"bridge": {}}
        interfaces.append({"name": name, **binding, "macAddress": nic.mac, "model": model})
        networks.append(
            {"name": name, "pod": {}}
            if mapping.network == "pod"
            else {"name": name, "multus": {"networkName": mapping.network}}
        )
    return interfaces, networks


Customize = Callable[[SourceVM, dict[str, Any], Target], None]  # changes a VirtualMachine in place (the plugins' hook)


def virtual_machine(
    vm: SourceVM, maps: Maps, wave: str, target: Target | None = None, customize: Customize | None = None
) -> dict[str, Any]:
    """The VirtualMachine for ``vm`` as ``target`` says; it runs, because a migration boots it to verify it.

    A guest booted in compatibility mode gets the devices every guest has drivers for (SATA, e1000e); every
    other guest gets virtio. ``customize`` (the guest-OS plugins' ``vmwave_virtual_machine``) changes it after
    the profile, before the checks KubeVirt would make.
    """
    target = target or Target(target_name(vm.name))
    name, bus = target.name, "sata" if target.compatibility else "virtio"
    labels = source_labels(vm, wave)
    interfaces, networks = _interfaces(vm, maps, "e1000e" if target.compatibility else "virtio", target)
    disks, volumes = [], []
    for index, (disk, order) in enumerate(zip(vm.disks, boot_orders(vm))):
        volume = target.names.of("volume", name, index)
        entry: dict[str, Any] = {"name": volume, "disk": {"bus": bus}}
        if order is not None:
            entry["bootOrder"] = order
        if serial := disk_serial(vm, disk):
            entry["serial"] = serial
        if disk.sharing == "multiwriter":
            entry.update(shareable=True, cache="none")
        disks.append(entry)
        volumes.append({"name": volume, "dataVolume": {"name": volume_name(vm, index, name, target.names, wave)}})
    firmware: dict[str, Any] = {
        "bootloader": {"efi": {"secureBoot": vm.secure_boot, "persistent": True}}
        if vm.firmware == "efi"
        else {"bios": {}}
    }
    if vm.bios_uuid:
        firmware["uuid"] = vm.bios_uuid  # the SMBIOS UUID licences and cloud-init key on
    devices: dict[str, Any] = {"disks": disks, "interfaces": interfaces}
    if "tpm" in vm.devices:
        devices["tpm"] = {"persistent": True}  # only a source vTPM: a guest that had none may not boot with one
    cpu: dict[str, Any] = {"cores": vm.cpus, "sockets": 1, "threads": 1}
    if target.cpu_model:
        cpu["model"] = target.cpu_model
    domain: dict[str, Any] = {
        "cpu": cpu,
        "memory": {"guest": f"{vm.memory_mb}Mi"},
        "resources": {"requests": {"memory": f"{vm.memory_mb}Mi"}},
        "firmware": firmware,
        "devices": devices,
    }
    if vm.secure_boot:
        domain["features"] = {"smm": {"enabled": True}}
    template_spec: dict[str, Any] = {"domain": domain, "networks": networks, "volumes": volumes}
    if target.node_selector:
        template_spec["nodeSelector"] = dict(target.node_selector)
    if target.affinity:
        template_spec["affinity"] = target.affinity
    meta = _meta(name, maps.namespace, vm, wave)
    meta["labels"] = {**dict(target.labels), **meta["labels"]}  # vmwave's own labels win
    manifest = {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": meta,
        "spec": {
            "runStrategy": "Always",
            "template": {
                "metadata": {"labels": {**dict(target.labels), **labels, "kubevirt.io/domain": name}},
                "spec": template_spec,
            },
        },
    }
    if vm.guest_id:
        manifest["metadata"]["annotations"][ANNOTATION_GUEST_ID] = vm.guest_id
    apply_profile(manifest, target.profile)
    if customize is not None:
        customize(vm, manifest, target)
    problems = prerequisites(manifest)
    if problems:
        raise VmwaveError(
            f"{vm.name}: the {target.profile} VirtualMachine would be rejected by KubeVirt: " + "; ".join(problems),
            "change the VM's profile or the maps file",
        )
    return manifest


def migration_config(
    parallel_per_cluster: int = 10,
    parallel_per_node: int = 4,
    bandwidth: str = "1Gi",
    auto_converge: bool = True,
    completion_timeout_per_gib: int = 800,
    progress_timeout: int = 150,
) -> dict[str, Any]:
    """The seed's live-migration settings as a merge patch for the KubeVirt CR."""
    return {
        "spec": {
            "configuration": {
                "migrations": {
                    "parallelMigrationsPerCluster": parallel_per_cluster,
                    "parallelOutboundMigrationsPerNode": parallel_per_node,
                    "bandwidthPerMigration": bandwidth,
                    "allowAutoConverge": auto_converge,
                    "completionTimeoutPerGiB": completion_timeout_per_gib,
                    "progressTimeout": progress_timeout,
                }
            }
        }
    }
