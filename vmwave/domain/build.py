"""The one builder of what a VM becomes in the cluster: used by the pre-flight check, `vmwave manifests` and the steps.

For each VM of a wave it gives its Namespace, the NADs vmwave creates for it,
the ConfigMap and Secrets its DataVolumes reference, the DataVolumes and the
VirtualMachine, all from the plan's entry (target name, mode, profile), the
maps and where CDI fetches converted disks. So what `vmwave manifests` writes
is what `vmwave migrate` applies, but for each run's transfer tokens.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from vmwave.domain.manifests import MANAGED_BY, Source, datavolume, disk_name, nads_for, source_labels, \
    virtual_machine
from vmwave.domain.maps import Maps
from vmwave.domain.plan import find_wave
from vmwave.domain.records import SourceVM
from vmwave.errors import VmwaveError

CA_CONFIGMAP = "vmwave-transfer-ca"
PER_RUN_TOKEN = "per-run-token"  # shown by `vmwave manifests` where a run puts the token it makes for each disk


@dataclass(frozen=True)
class Transfer:
    """Where CDI fetches a wave's converted disks: vmwave's transfer server and the CA the cluster trusts for it."""

    url: str
    ca_pem: str


@dataclass(frozen=True)
class VMObjects:
    """Everything one VM becomes, in the order it is applied."""

    namespace: dict[str, Any]
    nads: tuple[dict[str, Any], ...]
    config_maps: tuple[dict[str, Any], ...]
    secrets: tuple[dict[str, Any], ...]  # one per disk copied through the transfer server, same order as the disks
    datavolumes: tuple[dict[str, Any], ...]
    virtual_machine: dict[str, Any]

    def all(self) -> list[dict[str, Any]]:
        return [self.namespace, *self.nads, *self.config_maps, *self.secrets, *self.datavolumes, self.virtual_machine]


def transfer_path(wave: str, vm: SourceVM, index: int) -> str:
    """The path of one converted disk on the transfer server: the same in every run of the wave."""
    return f"/images/{wave}/{vm.instance_uuid}/disk{index}"


def token_secret(vm: SourceVM, target: str, index: int, wave: str, namespace: str, token: str) -> dict[str, Any]:
    """The header CDI sends the transfer server for one disk (``secretExtraHeaders``)."""
    header = base64.b64encode(f"Authorization: Bearer {token}".encode()).decode()
    return {"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": f"{disk_name(target, index)}-token", "namespace": namespace,
                         "labels": source_labels(vm, wave)},
            "type": "Opaque", "data": {"authorization": header}}


def disk_source(mode: str, vm: SourceVM, index: int, maps: Maps, wave: str, transfer: Transfer | None,
                secret: str) -> Source:
    """Rebuilds boot from a template image with blank data disks; every other mode imports the converted disk."""
    if mode == "rebuild":
        if index > 0:
            return {"blank": {}}
        image = maps.image_for(vm.guest_id, vm.guest_family)
        if image is None:
            raise VmwaveError(f"{vm.name} is rebuilt from a template but the maps name no image for "
                              f"{vm.guest_id} or {vm.guest_family}", "add it under `images:` in the maps file")
        return {"registry": {"url": image}}
    if transfer is None:
        raise VmwaveError(f"{vm.name}: no transfer server to import its disks from",
                          "set VMWAVE_TRANSFER_CERT, VMWAVE_TRANSFER_KEY and VMWAVE_TRANSFER_CA (the lab prints them)")
    return {"http": {"url": transfer.url.rstrip("/") + transfer_path(wave, vm, index), "certConfigMap": CA_CONFIGMAP,
                     "secretExtraHeaders": [secret]}}


def vm_objects(vm: SourceVM, entry: dict[str, Any], wave: str, maps: Maps, transfer: Transfer | None) -> VMObjects:
    """The objects of one VM of the plan; raises, naming the VM, when one of them cannot be made."""
    target, mode = entry["target_name"], entry["mode"]
    copied = mode != "rebuild"
    secrets = tuple(token_secret(vm, target, i, wave, maps.namespace, PER_RUN_TOKEN) for i in range(len(vm.disks))) \
        if copied else ()
    datavolumes = tuple(
        datavolume(vm, i, maps, wave, disk_source(mode, vm, i, maps, wave, transfer,
                                                  secrets[i]["metadata"]["name"] if copied else ""), target)
        for i in range(len(vm.disks)))
    config_maps = ({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": CA_CONFIGMAP, "namespace": maps.namespace, "labels": dict(MANAGED_BY)},
                    "data": {"ca.pem": transfer.ca_pem}},) if copied and transfer else ()
    return VMObjects(namespace={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": maps.namespace}},
                     nads=tuple(nads_for([vm], maps)), config_maps=config_maps, secrets=secrets,
                     datavolumes=datavolumes,
                     virtual_machine=virtual_machine(vm, maps, wave, entry["profile"], target))


def wave_objects(doc: dict[str, Any], wave_id: str, records: list[SourceVM], maps: Maps,
                 transfer: Transfer | None) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Every object of a wave, each once, in apply order; and per VM that could not be rendered, why."""
    wave = find_wave(doc, wave_id)
    by_moref = {r.moref: r for r in records}
    objects: dict[tuple[str, str, str], dict[str, Any]] = {}
    failed: dict[str, str] = {}
    for entry in wave["vms"]:
        vm = by_moref.get(entry["moref"])
        if vm is None:
            failed[entry["name"]] = "vCenter no longer has it: re-plan, it was removed or re-registered"
            continue
        try:
            made = vm_objects(vm, entry, wave["id"], maps, transfer)
        except VmwaveError as exc:
            failed[entry["name"]] = str(exc)
            continue
        for obj in made.all():
            meta = obj["metadata"]
            objects.setdefault((obj["kind"], meta.get("namespace", ""), meta["name"]), obj)
    return list(objects.values()), failed
