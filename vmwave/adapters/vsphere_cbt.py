"""What a warm copy asks of vCenter: snapshots by name, each disk's changeId in them, and what changed since.

Forklift's precopy works this way: a snapshot per round, the disks' changeIds
read from it, the previous snapshot removed once CDI copied the round. A
changeId vCenter refuses (``InvalidArgument``: tracking was reset, by a storage
vMotion or ctkEnabled toggled) means the next round must copy the whole disk.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyVmomi import vim, vmodl

from vmwave.adapters.vsphere_ops import read, run_task, vm_ref


@dataclass(frozen=True)
class SnapshotDisk:
    file: str  # the backing file, "[ds] vm/vm.vmdk": CDI's backingFile
    key: int
    change_id: str
    capacity: int


def find_snapshot(si: vim.ServiceInstance, moref: str, name: str) -> vim.vm.Snapshot | None:
    info = read(si, vm_ref(si, moref), "snapshot").get("snapshot")
    todo = list(info.rootSnapshotList) if info else []
    while todo:
        tree = todo.pop(0)
        if tree.name == name:
            return tree.snapshot
        todo.extend(tree.childSnapshotList or ())
    return None


def take_snapshot(si: vim.ServiceInstance, moref: str, name: str, timeout: float = 600) -> vim.vm.Snapshot:
    """The named snapshot, taken now unless it exists (a rerun reuses it)."""
    found = find_snapshot(si, moref, name)
    if found is not None:
        return found
    task = vm_ref(si, moref).CreateSnapshot_Task(
        name=name, description="taken by vmwave for a warm copy", memory=False, quiesce=False
    )
    return run_task(si, task, timeout, f"snapshot {name}")


def remove_snapshot(si: vim.ServiceInstance, moref: str, name: str, timeout: float = 600) -> bool:
    """Remove the named snapshot (its changes merge into the disk); False when there is none."""
    found = find_snapshot(si, moref, name)
    if found is None:
        return False
    run_task(si, found.RemoveSnapshot_Task(removeChildren=False), timeout, f"remove snapshot {name}")
    return True


def snapshot_disks(si: vim.ServiceInstance, snapshot: vim.vm.Snapshot) -> dict[str, SnapshotDisk]:
    """Each disk of the snapshot by backing file, with the changeId it had when the snapshot was taken."""
    devices = read(si, snapshot, "config.hardware.device").get("config.hardware.device") or []
    return {
        d.backing.fileName: SnapshotDisk(d.backing.fileName, d.key, d.backing.changeId or "", d.capacityInBytes)
        for d in devices
        if isinstance(d, vim.vm.device.VirtualDisk)
    }


def changed_bytes(
    si: vim.ServiceInstance, moref: str, snapshot: vim.vm.Snapshot, disk: SnapshotDisk, since: str
) -> int | None:
    """How many bytes of ``disk`` changed between changeId ``since`` and ``snapshot``; None if vCenter refuses it."""
    vm, offset, total = vm_ref(si, moref), 0, 0
    while offset < disk.capacity:
        try:
            changed = vm.QueryChangedDiskAreas(
                snapshot=snapshot, deviceKey=disk.key, startOffset=offset, changeId=since
            )
        except (vmodl.fault.InvalidArgument, vim.fault.FileFault):
            return None
        if not changed.changedArea:
            break
        total += sum(area.length for area in changed.changedArea)
        offset = changed.startOffset + changed.length
    return total
