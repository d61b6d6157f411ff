"""The whole lab as one thing: `vmwave lab up|env|down` and the test fixtures call these."""

from __future__ import annotations

import asyncio
import math
import subprocess
from pathlib import Path
from typing import Any, Callable

import yaml

from vmwave_lab import estate as estates
from vmwave_lab import from_inventory
from vmwave_lab import guests, kubernetes, vcenter
from vmwave_lab.kube.qemu import choose_accel, remembered_accel
from vmwave_lab.process import LabError

ESTATES = Path(__file__).parent / "estates"


def maps_beside(estate_file: Path) -> Path | None:
    """Each estate ships with its maps: ``NAME.yaml`` -> ``NAME.maps.yaml``."""
    candidate = estate_file.with_name(estate_file.stem + ".maps.yaml")
    return candidate if candidate.is_file() else None


def generated_maps(seed: dict[str, Any]) -> dict[str, Any]:
    """Maps for an estate without its own: every datastore on one StorageClass, every VLAN to a localnet NAD."""
    vlans = sorted(
        {pg["vlan"] for dc in seed["datacenters"] for sw in dc["switches"] for pg in sw["portgroups"]}
        | {pg["vlan"] for dc in seed["datacenters"] for pg in dc["standard_portgroups"]}
    )
    network = [
        {"vlan": v, "network": f"vmwave/vlan{v}", "create": {"type": "ovn-localnet", "vlan": v, "mtu": 9000}}
        for v in vlans
        if v
    ]
    return {
        "version": 1,
        "namespace": "vmwave",
        "storage": [{"datastore": "*", "storage_class": "rook-ceph-block-vm"}],
        "network": network + [{"vlan": 0, "network": "pod"}] if 0 in vlans else network,
    }


def storage_classes(maps_file: Path, room_gi: int = 0) -> list[dict[str, Any]]:
    """The maps' StorageClasses, each of 100 TiB, or ``room_gi`` when that is more."""
    names = sorted({entry["storage_class"] for entry in yaml.safe_load(maps_file.read_text()).get("storage", [])})
    return [{"name": n, "capacity_gi": max(100 * 1024, room_gi), "default": i == 0} for i, n in enumerate(names)]


def fill_registry(state: Path, maps_file: Path) -> list[Path]:
    """The lab registry (a directory the lab CDI pulls from) gets a small image for each image the maps name."""
    images = (yaml.safe_load(maps_file.read_text()) or {}).get("images") or {}
    registry = state / "registry"
    registry.mkdir(exist_ok=True)
    made = []
    for url in sorted(set(images.values())):
        name = url.removeprefix("docker://").rsplit("/", 1)[-1].replace(":", "_")
        target = registry / f"{name}.qcow2"
        if not target.exists():
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(target), "256M"], check=True)
        made.append(target)
    return made


def up(
    estate_file: Path | None = None,
    vms: int | None = None,
    state_dir: Path | None = None,
    progress: Callable[[int], None] | None = None,
    kube_config: dict[str, Any] | None = None,
    inventory: list[dict[str, Any]] | None = None,
    data_mb: int = 1,
    maps_file: Path | None = None,
    room_for_all: bool = False,
    nodes: list[dict[str, Any]] | None = None,
) -> dict[str, str]:
    """Start the lab vCenter and the lab Kubernetes; return the VMWAVE_* settings for them.

    The estate is a file, ``vms`` generated ones, or the VMs of an ``inventory`` (records as `vmwave inventory`
    writes them, each disk holding ``data_mb`` MiB); the maps (StorageClasses, images) are ``maps_file``, else
    the estate's own beside it, else generated. ``room_for_all`` adds nodes and storage until every VM of the
    estate fits at once (a rehearsal migrates them all; the estate's own nodes keep their labels, hugepages and CPU
    manager)."""
    state = Path(state_dir or vcenter.default_state_dir())
    if inventory is not None:
        seed = estates.expand(from_inventory.estate(inventory, data_mb), "inventory")
    elif vms is not None:
        seed = estates.expand(estates.generated(vms), f"generated({vms})")
    else:
        estate_file = Path(estate_file or ESTATES / "small.yaml")
        seed, maps_file = estates.load(str(estate_file)), maps_file or maps_beside(estate_file)
    state.mkdir(parents=True, exist_ok=True)
    if maps_file is None:
        maps_file = state / "maps.yaml"
        maps_file.write_text(yaml.safe_dump(generated_maps(seed), sort_keys=False))
    center = vcenter.start(seed, state, progress=progress)
    try:
        vcenter.seed_disks(center, seed)
        declared = nodes or seed.get("nodes") or (kubernetes.DEFAULT_NODES if room_for_all else None)
        nodes = {"nodes": with_room(declared, seed["vms"]) if room_for_all else declared} if declared else {}
        room_gi = (
            math.ceil(sum(d["size_kb"] for vm in seed["vms"] for d in vm["disks"]) / 2**20 * 1.25)
            if room_for_all
            else 0
        )  # every disk of the estate migrated at once
        cluster = kubernetes.start(
            state, {"storage_classes": storage_classes(maps_file, room_gi), **nodes, **(kube_config or {})}
        )
    except LabError:
        vcenter.stop(state)
        raise
    (state / "maps-path").write_text(str(maps_file))
    fill_registry(state, maps_file)
    if remembered_accel() is None:  # once per machine: does KVM boot a guest here, or must QEMU use TCG?
        asyncio.run(choose_accel(state, guests.tiny_guest(vcenter.cache_dir() / "guests")))
    return settings(center, cluster, maps_file)


NODE_CPU, NODE_MEMORY_GI = 128, 1024  # a node added for room: a large one, as clusters hosting VMs have


def with_room(nodes: list[dict[str, Any]], vms: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``nodes`` and as many more as every VM of the estate needs to run at once, with a quarter to spare. The lab
    cannot know which VMs the plan will give hugepages or dedicated CPUs (its P4 class does), so each node added
    offers both: its memory again as 1 GiB hugepages, and the CPU manager's label."""
    cpu = sum(vm["cpus"] for vm in vms) * 1.25 - sum(n["cpu"] for n in nodes)
    memory = sum(vm["memory_mb"] for vm in vms) / 1024 * 1.25 - sum(n["memory_gi"] for n in nodes)
    extra = math.ceil(max(cpu / NODE_CPU, memory / NODE_MEMORY_GI, 0))
    return nodes + [
        {
            "name": f"room-{n:03d}",
            "cpu": NODE_CPU,
            "memory_gi": NODE_MEMORY_GI,
            "hugepages_1gi": NODE_MEMORY_GI,
            "labels": {"kubevirt.io/schedulable": "true", "cpumanager": "true"},
        }
        for n in range(1, extra + 1)
    ]


VDDK_IMAGE = "localhost/vmwave-lab/vddk:8.0"  # any name will do: the lab CDI is its own VDDK


def settings(center, cluster, maps_file: Path) -> dict[str, str]:
    """What vmwave needs to migrate in the lab: disks read through (the lab's) VDDK, as Forklift reads them."""
    return {
        **center.env(),
        "VMWAVE_KUBECONFIG": str(cluster.kubeconfig),
        "VMWAVE_MAPS": str(maps_file),
        "VMWAVE_VDDK_IMAGE": VDDK_IMAGE,
        "VMWAVE_V2V_ACCEL": (remembered_accel() or ("tcg", ""))[0],
    }  # virt-v2v's appliance: KVM only where it boots


def env(state_dir: Path | None = None) -> dict[str, str] | None:
    state = Path(state_dir or vcenter.default_state_dir())
    center, cluster = vcenter.running(state), kubernetes.running(state)
    if center is None or cluster is None:
        return None
    return settings(center, cluster, Path((state / "maps-path").read_text()))


def down(state_dir: Path | None = None) -> bool:
    state = Path(state_dir or vcenter.default_state_dir())
    stopped = [vcenter.stop(state), kubernetes.stop(state)]
    return any(stopped)
