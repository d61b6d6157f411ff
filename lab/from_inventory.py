"""An estate from an inventory: the lab vCenter shaped as a real one is, from what `vmwave inventory` read of it.

Every field the planner reads comes across: names and UUIDs as given, datacenters,
clusters (DRS, DPM, hosts in maintenance or disconnected, VM-host rules),
hosts, folders, datastores, portgroups (standard or distributed) with their
VLANs, guest ids, tools, addresses, disks (sizes, controllers, modes, thin,
multi-writer sharing, their files' paths), change tracking, snapshots, attributes and tags. Each
disk holds ``data_mb`` MiB of real bytes and is sparse beyond, so a 2000-VM
estate fits on a laptop; its disks hold no operating system, so the lab marks
them to be copied, not converted (``estate.CONVERT_ATTRIBUTE``).

What the lab cannot be stays behind: a raw device mapping becomes a plain
disk. The inventory is vmwave's checked file; here it is plain data, as the
lab imports nothing of vmwave.
"""

from __future__ import annotations

import hashlib
from typing import Any

from vmwave_lab.estate import CONTROLLERS, DEVICES, DISK_MODES

ADAPTERS = ("vmxnet3", "e1000e", "e1000", "sriov")
DEFAULT_DATACENTER, DEFAULT_DATASTORE = "dc", "datastore1"


def estate(records: list[dict[str, Any]], data_mb: int = 1) -> dict[str, Any]:
    """The estate document (see ``estates/small.yaml``) holding exactly these VMs."""
    datacenters: dict[str, dict[str, Any]] = {}
    for vm in records:
        dc = datacenters.setdefault(
            vm.get("datacenter") or DEFAULT_DATACENTER,
            {"clusters": {}, "folders": set(), "datastores": set(), "standard": {}, "distributed": {}},
        )
        cluster = dc["clusters"].setdefault(
            _cluster(vm), {"hosts": set(), "maintenance": set(), "disconnected": set(), "features": set(), "rules": {}}
        )
        host = _host(vm)
        cluster["hosts"].add(host)
        state = vm.get("host_state", "connected")
        if state != "connected":
            cluster["maintenance" if state == "maintenance" else "disconnected"].add(host)
        cluster["features"].update(vm.get("cluster_features") or ())
        for rule in vm.get("host_rules") or ():
            found = cluster["rules"].setdefault(rule, {"vms": [], "hosts": set()})
            found["vms"].append(vm["name"])
            found["hosts"].add(host)
        if vm.get("folder"):
            dc["folders"].add(vm["folder"])
        dc["datastores"].update(d.get("datastore") or DEFAULT_DATASTORE for d in vm.get("disks") or ())
        for nic in vm.get("nics") or ():
            dc["distributed" if nic.get("distributed") else "standard"].setdefault(
                nic["portgroup"], nic.get("vlan") or 0
            )
    return {
        "version": 1,
        "datacenters": [_datacenter(name, dc) for name, dc in sorted(datacenters.items())],
        "vms": [_vm(vm, data_mb) for vm in records],
    }


def _cluster(vm: dict[str, Any]) -> str:
    return vm.get("cluster") or f"standalone-{_host(vm)}"  # a host outside any cluster: a cluster of its own


def _host(vm: dict[str, Any]) -> str:
    return vm.get("host") or "esx01"


def _datacenter(name: str, dc: dict[str, Any]) -> dict[str, Any]:
    clusters = [
        {
            "name": cname,
            "hosts": sorted(c["hosts"]),
            "drs": "drs" in c["features"],
            "dpm": "dpm" in c["features"],
            "maintenance": sorted(c["maintenance"]),
            "disconnected": sorted(c["disconnected"]),
            "vm_host_rules": [
                {"name": rule, "vms": r["vms"], "hosts": sorted(r["hosts"])} for rule, r in sorted(c["rules"].items())
            ],
        }
        for cname, c in sorted(dc["clusters"].items())
    ]
    switch = [
        {
            "name": f"dvs-{name}",
            "portgroups": [{"name": pg, "vlan": vlan} for pg, vlan in sorted(dc["distributed"].items())],
        }
    ]
    return {
        "name": name,
        "folders": sorted(dc["folders"]),
        "datastores": sorted(dc["datastores"] or {DEFAULT_DATASTORE}),
        "portgroups": [{"name": pg, "vlan": vlan} for pg, vlan in sorted(dc["standard"].items())],
        "switches": switch if dc["distributed"] else [],
        "clusters": clusters,
    }


def _vm(vm: dict[str, Any], data_mb: int) -> dict[str, Any]:
    entry = {
        key: list(vm[key]) if isinstance(vm[key], tuple) else vm[key]
        for key in (
            "name",
            "folder",
            "firmware",
            "secure_boot",
            "cpus",
            "memory_mb",
            "cbt",
            "tools",
            "ips",
            "template",
            "tags",
            "extra_config",
            "hot_add",
            "cpu_affinity",
            "hostname",
            "consolidation_needed",
            "fault_tolerance",
            "gateway",
            "dns",
            "attributes",
            "instance_uuid",
            "bios_uuid",
        )
        if vm.get(key) not in (None, "")
    }
    entry.update(
        {
            "datacenter": vm.get("datacenter") or DEFAULT_DATACENTER,
            "cluster": _cluster(vm),
            "host": _host(vm),
            "guest_id": vm.get("guest_id") or "otherGuest",
            "power": vm.get("power_state", "poweredOff"),
            "memory_mb": vm.get("memory_mb") or 1,
            "devices": [d for d in vm.get("devices") or () if d in DEVICES],
            "snapshots": [s["name"] for s in vm.get("snapshots") or ()],
            "guest_disks": [
                {"path": g["path"], "capacity_mb": g["capacity_bytes"] >> 20, "free_mb": g["free_bytes"] >> 20}
                for g in vm.get("guest_disks") or ()
            ],
            "disks": [_disk(d, data_mb) for d in vm.get("disks") or ()],
            "nics": [_nic(n) for n in vm.get("nics") or ()],
        }
    )
    return entry


def _disk(disk: dict[str, Any], data_mb: int) -> dict[str, Any]:
    size_mb = max(disk.get("capacity_bytes", 0) >> 20, 1)
    found = {
        "size_gb": size_mb / 1024,
        "datastore": disk.get("datastore") or DEFAULT_DATASTORE,
        "controller": disk["controller"] if disk.get("controller") in CONTROLLERS else "pvscsi",
        "bus": disk.get("bus", 0),
        "mode": disk["mode"] if disk.get("mode") in DISK_MODES else "persistent",
        "thin": disk.get("thin", True),
        "data_mb": min(data_mb, size_mb),
        "path": disk["file"].partition("] ")[2],
    }
    if disk.get("sharing") == "multiwriter":  # the VMs sharing one file share one lab disk
        found["shared"] = "shared-" + hashlib.sha256(disk["file"].encode()).hexdigest()[:12]
    return found


def _nic(nic: dict[str, Any]) -> dict[str, Any]:
    return {
        "portgroup": nic["portgroup"],
        "mac": nic["mac"],
        "type": nic["adapter"] if nic.get("adapter") in ADAPTERS else "vmxnet3",
        "ips": [a for a in nic.get("addresses") or () if "/" in a],
        "origin": nic["address_origin"] if nic.get("address_origin") in ("manual", "dhcp") else "manual",
    }
