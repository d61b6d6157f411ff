"""The one builder of what a VM becomes in the cluster: used by the pre-flight check, `vmwave manifests` and the steps.

For each VM of a wave it gives its Namespace, the NADs vmwave creates for it,
the ConfigMap and Secret its DataVolumes reference, the DataVolumes and the
VirtualMachine, all from the plan's entry (target name, mode, profile), the
maps and how CDI reaches vSphere. Each DataVolume reads its disk straight
from vSphere into the PVC: through VDDK when a VDDK image is configured (as
Forklift does), else over HTTPS from the datastore's ``/folder`` URL of the
disk's data file. So what `vmwave manifests` writes is what `vmwave migrate`
applies, but for the vCenter password, which only the run puts in the Secret.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from vmwave.domain.datastore_paths import data_file, folder_url, origin
from vmwave.domain.manifests import (
    LABEL_WAVE,
    MANAGED_BY,
    Customize,
    Source,
    Target,
    datavolume,
    nads_for,
    virtual_machine,
)
from vmwave.domain.maps import Maps
from vmwave.domain.names import k8s_name
from vmwave.domain.pod_placement import with_transfer_network
from vmwave.domain.plan import find_wave
from vmwave.domain.plan_file import PlanFile, PlannedEntry
from vmwave.domain.records import SourceVM
from vmwave.errors import VmwaveError

CA_CONFIGMAP = "vmwave-vcenter-ca"
PASSWORD_AT_RUN_TIME = "set-when-the-wave-runs"  # what `vmwave manifests` shows in place of the password


@dataclass(frozen=True)
class SourceAccess:
    """How CDI reads a wave's disks from vSphere. No secret: the password joins only when a run applies the Secret."""

    url: str  # the vCenter, as configured (https://vcenter.example.com/sdk)
    user: str
    ca_pem: str | None = None  # the CA that signed vCenter's certificate, when the cluster must be told
    vddk_image: str | None = None  # CDI's VDDK init image: read disks through VDDK
    thumbprint: str | None = None  # SHA-1 of vCenter's certificate, which VDDK checks; needed with vddk_image


@dataclass(frozen=True)
class VMObjects:
    """Everything one VM becomes, in the order it is applied."""

    namespace: dict[str, Any]
    nads: tuple[dict[str, Any], ...]
    config_maps: tuple[dict[str, Any], ...]
    secrets: tuple[dict[str, Any], ...]  # the wave's vCenter credentials, when its disks are copied
    datavolumes: tuple[dict[str, Any], ...]
    virtual_machine: dict[str, Any]

    def all(self) -> list[dict[str, Any]]:
        return [self.namespace, *self.nads, *self.config_maps, *self.secrets, *self.datavolumes, self.virtual_machine]


def credentials_name(wave: str) -> str:
    return k8s_name(f"vmwave-vcenter-{wave}", 63)


def credentials_secret(wave: str, namespace: str, user: str, password: str = PASSWORD_AT_RUN_TIME) -> dict[str, Any]:
    """The vCenter credentials CDI reads disks with (``secretRef``), one per wave, removed with the wave."""
    encode = lambda text: base64.b64encode(text.encode()).decode()  # noqa: E731
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": credentials_name(wave),
            "namespace": namespace,
            "labels": {**MANAGED_BY, LABEL_WAVE: wave},
        },
        "type": "Opaque",
        "data": {"accessKeyId": encode(user), "secretKey": encode(password)},
    }


def ca_config_map(namespace: str, ca_pem: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": CA_CONFIGMAP, "namespace": namespace, "labels": dict(MANAGED_BY)},
        "data": {"ca.pem": ca_pem},
    }


def disk_source(mode: str, vm: SourceVM, index: int, maps: Maps, wave: str, access: SourceAccess | None) -> Source:
    """Rebuilds boot from a template image with blank data disks; every other mode reads the disk from vSphere."""
    if mode == "rebuild":
        if index > 0:
            return {"blank": {}}
        image = maps.image_for(vm.guest_id, vm.guest_family)
        if image is None:
            raise VmwaveError(
                f"{vm.name} is rebuilt from a template but the maps name no image for "
                f"{vm.guest_id} or {vm.guest_family}",
                "add it under `images:` in the maps file",
            )
        return {"registry": {"url": image}}
    if access is None:
        raise VmwaveError(
            f"{vm.name}: no vCenter to read its disks from",
            "set VMWAVE_VCENTER_URL and VMWAVE_VCENTER_USER (the lab prints them)",
        )
    disk = vm.disks[index]
    if access.vddk_image:
        if not vm.bios_uuid:
            raise VmwaveError(
                f"{vm.name}: vCenter reports no BIOS UUID, which VDDK finds the VM by",
                "unset VMWAVE_VDDK_IMAGE to read its disks over HTTPS, or re-read the inventory",
            )
        return {
            "vddk": {
                "url": origin(access.url) + "/sdk",
                "uuid": vm.bios_uuid,
                "backingFile": disk.file,
                "thumbprint": access.thumbprint or "",
                "secretRef": credentials_name(wave),
                "initImageURL": access.vddk_image,
            }
        }
    http: dict[str, Any] = {
        "url": folder_url(access.url, vm.datacenter, data_file(disk.file)),
        "secretRef": credentials_name(wave),
    }
    if access.ca_pem:
        http["certConfigMap"] = CA_CONFIGMAP
    return {"http": http}


def vm_objects(
    vm: SourceVM,
    entry: PlannedEntry,
    wave: str,
    maps: Maps,
    access: SourceAccess | None,
    customize: Customize | None = None,
) -> VMObjects:
    """The objects of one VM of the plan; raises, naming the VM, when one of them cannot be made."""
    target, mode = Target.of(entry, maps), entry.mode
    copied = mode != "rebuild" and access is not None
    network = entry.transfer_network or maps.transfer_network if copied else None  # a registry image: no vCenter
    datavolumes = tuple(
        with_transfer_network(
            datavolume(vm, i, maps, wave, disk_source(mode, vm, i, maps, wave, access), target.name, target.names),
            network,
        )
        for i in range(len(vm.disks))
    )
    secrets = (credentials_secret(wave, maps.namespace, access.user),) if copied else ()
    config_maps = (
        (ca_config_map(maps.namespace, access.ca_pem),) if copied and access.ca_pem and not access.vddk_image else ()
    )
    return VMObjects(
        namespace={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": maps.namespace}},
        nads=tuple(nads_for([vm], maps)),
        config_maps=config_maps,
        secrets=secrets,
        datavolumes=datavolumes,
        virtual_machine=virtual_machine(vm, maps, wave, target, customize),
    )


def wave_objects(
    plan: PlanFile,
    wave_id: str | int,
    records: list[SourceVM],
    maps: Maps,
    access: SourceAccess | None,
    customize: Customize | None = None,
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Every object of a wave, each once, in apply order; and per VM that could not be rendered, why."""
    wave = find_wave(plan, wave_id)
    by_moref = {r.moref: r for r in records}
    objects: dict[tuple[str, str, str], dict[str, Any]] = {}
    failed: dict[str, str] = {}
    for entry in wave.vms:
        vm = by_moref.get(entry.moref)
        if vm is None:
            failed[entry.name] = "vCenter no longer has it: re-plan, it was removed or re-registered"
            continue
        try:
            made = vm_objects(vm, entry, wave.id, maps, access, customize)
        except VmwaveError as exc:
            failed[entry.name] = str(exc)
            continue
        for obj in made.all():
            meta = obj["metadata"]
            objects.setdefault((obj["kind"], meta.get("namespace", ""), meta["name"]), obj)
    return list(objects.values()), failed
