"""What a running guest does to its disks while it is copied warm: writes, and vSphere's CBT resets.

`vmwave lab write-disk` writes random bytes into a disk's flat file on the
lab datastore, as the guest would, and appends the extent to STATE/cbt.jsonl,
the journal from which the lab vCenter answers QueryChangedDiskAreas
(lab/vcsim/cbt.go). `vmwave lab reset-cbt` appends a reset for each disk of
the VM: every changeId taken before it is refused from then on.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from vmwave_lab.process import LabError

MB = 1 << 20


def _vm(state: Path, name: str) -> dict:
    try:
        seed = json.loads((state / "seed.json").read_text())
    except FileNotFoundError:
        raise LabError(f"no lab vCenter was started from {state}; start one with `vmwave lab up`") from None
    found = [vm for vm in seed["vms"] if vm["name"] == name]
    if not found:
        raise LabError(f"the lab has no VM named {name!r}; `vmwave inventory` lists them")
    return found[0]


def flat_file(state: Path, vm: dict, datastore_path: str) -> Path:
    """The raw data file behind a disk ("[ds] vm/vm.vmdk" -> datastores/DC/ds/vm/vm-flat.vmdk)."""
    datastore, _, path = datastore_path.partition("] ")
    descriptor = state / "datastores" / vm["datacenter"] / datastore.lstrip("[") / path
    return descriptor.with_name(descriptor.stem + "-flat.vmdk")


def _journal(state: Path, entry: dict) -> None:
    with open(state / "cbt.jsonl", "a") as journal:
        journal.write(json.dumps(entry) + "\n")
        journal.flush()
        os.fsync(journal.fileno())


def write_disk(state: Path, name: str, disk: int, offset_mb: int, mb: int) -> dict:
    """Write ``mb`` MiB of random bytes at ``offset_mb`` into the VM's disk ``disk`` (from 0); the extent written."""
    vm = _vm(state, name)
    if not 0 <= disk < len(vm["disks"]):
        raise LabError(f"{name} has {len(vm['disks'])} disk(s): --disk is 0 to {len(vm['disks']) - 1}")
    spec = vm["disks"][disk]
    if offset_mb < 0 or mb < 1 or (offset_mb + mb) * MB > spec["size_kb"] * 1024:
        raise LabError(
            f"{name}'s disk {disk} holds {spec['size_kb'] // 1024} MiB: write inside it "
            "(--offset-mb and --mb from 0 and 1)"
        )
    data = flat_file(state, vm, spec["file"])
    if not data.exists():
        raise LabError(
            f"{spec['file']} has no data on the lab datastore: give the disk data_mb or an image in the estate"
        )
    with open(data, "r+b") as handle:
        handle.seek(offset_mb * MB)
        for _ in range(mb):
            handle.write(os.urandom(MB))
        handle.flush()
        os.fsync(handle.fileno())
    extent = {"file": spec["file"], "offset": offset_mb * MB, "length": mb * MB}
    _journal(state, extent)
    return extent


def reset_cbt(state: Path, name: str) -> list[str]:
    """Reset change tracking on every disk of the VM, as a storage vMotion does; the disks reset."""
    vm = _vm(state, name)
    for spec in vm["disks"]:
        _journal(state, {"file": spec["file"], "offset": 0, "length": 0, "reset": True})
    return [spec["file"] for spec in vm["disks"]]
