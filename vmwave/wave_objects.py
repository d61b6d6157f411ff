"""Everything one wave creates in the cluster, built from the plan, fresh inventory, rules and maps."""

from __future__ import annotations

from typing import Any

from vmwave.domain.classes import Policy
from vmwave.domain.concerns import Concern
from vmwave.domain.manifests import Source, datavolume, nads_for, virtual_machine
from vmwave.domain.maps import Maps
from vmwave.domain.records import SourceVM
from vmwave.errors import VmwaveError


def find_wave(doc: dict[str, Any], wave: str) -> dict[str, Any]:
    """A wave by id (w003) or by number (3)."""
    wanted = f"w{int(wave):03d}" if wave.isdigit() else wave
    for entry in doc["waves"]:
        if entry["id"] == wanted:
            return entry
    raise VmwaveError(f"the plan has no wave {wave!r}", "use one of: " + ", ".join(w["id"] for w in doc["waves"]))


def disk_source(mode: str, vm: SourceVM, index: int, maps: Maps, transfer_url: str | None) -> Source:
    """Rebuilds boot from a template image with blank data disks; every other mode copies the source disk."""
    if mode == "rebuild":
        if index > 0:
            return {"blank": {}}
        image = maps.image_for(vm.guest_id, vm.guest_family)
        if image is None:
            raise VmwaveError(f"{vm.name} is rebuilt from a template but the maps name no image for "
                              f"{vm.guest_id} or {vm.guest_family}", "add it under `images:` in the maps file")
        return {"registry": {"url": image}}
    if transfer_url:
        return {"http": {"url": f"{transfer_url.rstrip('/')}/{vm.instance_uuid}/disk{index}.qcow2"}}
    return {"upload": {}}


def wave_objects(doc: dict[str, Any], wave_id: str, records: list[SourceVM], policy: Policy, maps: Maps,
                 transfer_url: str | None = None) -> list[dict[str, Any]]:
    """NADs first, then per VM its DataVolumes and its VirtualMachine, in plan order."""
    wave = find_wave(doc, wave_id)
    by_moref = {r.moref: r for r in records}
    missing = [vm["name"] for vm in wave["vms"] if vm["moref"] not in by_moref]
    if missing:
        raise VmwaveError(f"{len(missing)} VM(s) of wave {wave['id']} are not in the inventory: {', '.join(missing[:5])}",
                          "re-plan: the VMs were removed or re-registered in vCenter since the plan was written")
    vms = [by_moref[vm["moref"]] for vm in wave["vms"]]
    objects = nads_for(vms, maps)
    for entry, vm in zip(wave["vms"], vms):
        concerns = [Concern(c["id"], c["severity"], c.get("message", ""), "") for c in entry["concerns"]]
        profile = policy.profile(vm, concerns, entry["class"])
        objects += [datavolume(vm, i, maps, wave["id"], disk_source(wave["mode"], vm, i, maps, transfer_url))
                    for i in range(len(vm.disks))]
        objects.append(virtual_machine(vm, maps, wave["id"], profile))
    return objects
