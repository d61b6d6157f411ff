"""Warm migration: which VMs copy while they run, their round snapshots, and CDI's multi-stage DataVolumes.

A VM copies warm when the plan says ``migration: warm`` (P4 VMs whose disks
vCenter tracks are planned so) and vCenter tracks its disks' changes: precopy
rounds copy the disks while the source runs, and the source goes down only
for the last delta, at its cutover. Otherwise it moves cold; ``cold_because``
says why and what to do.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from vmwave.domain.records import SourceVM
from vmwave.domain.steps import snapshot_name

DEFAULT_PRECOPY_INTERVAL = 3600  # seconds between precopy rounds: Forklift's default is an hour too
MIN_PRECOPY = 10  # seconds: a shorter interval only makes snapshots back to back
MIGRATIONS = ("cold", "warm")


def tracks_changes(vm: SourceVM) -> bool:
    """Changed Block Tracking is on for the VM and for each of its disks."""
    return vm.cbt and not any(
        key.endswith(".ctkEnabled") and value.lower() == "false" for key, value in vm.extra_config.items()
    )


def planned_migration(cls: str, vm: SourceVM) -> str:
    """How `vmwave plan` moves a VM: business-critical (P4) VMs with tracked disks warm, the others cold."""
    return "warm" if cls == "P4" and tracks_changes(vm) else "cold"


def cold_because(vm: SourceVM, vddk: bool) -> tuple[str, str] | None:
    """(why, fix) when a VM the plan moves warm must move cold; None when it can move warm."""
    if vm.shared_disks:
        return (
            f"{vm.name}: it shares a disk (multi-writer), which vSphere does not snapshot",
            "nothing to do: it moves cold with the VMs that share the disk, all of them down for the copy",
        )
    if not tracks_changes(vm):
        return (
            f"{vm.name}: vCenter does not track the changes of all its disks (Changed Block Tracking is off)",
            "enable it: with the VM powered off, or followed by taking and removing a snapshot, set "
            "ctkEnabled = TRUE and scsiX:Y.ctkEnabled = TRUE for each disk; the next wave run copies it warm",
        )
    if not vddk:
        return (
            f"{vm.name}: a warm copy needs CDI's vddk source, which reads changed blocks",
            "set VMWAVE_VDDK_IMAGE to a VDDK init image (the runbook says how to build one)",
        )
    return None


def round_prefix(wave: str) -> str:
    return f"{snapshot_name(wave)}-precopy-"


def round_snapshot(wave: str, n: int) -> str:
    """The snapshot precopy round ``n`` copies from; removed once the next round has copied."""
    return f"{round_prefix(wave)}{n}"


def staged(datavolume: dict[str, Any], checkpoints: list[dict[str, str]], final: bool) -> dict[str, Any]:
    """A DataVolume of a warm copy: CDI's multi-stage import, one checkpoint per round.

    The first checkpoint's ``previous`` is empty (the whole disk); each next one's
    is the disk's changeId in the round before, as Forklift passes it, since that
    round's snapshot is gone by then. ``finalCheckpoint`` ends the import.
    """
    return {**datavolume, "spec": {**datavolume["spec"], "checkpoints": checkpoints, "finalCheckpoint": final}}


def cutover_state(cutover_at: datetime | None, window_end: datetime | None, now: datetime, requested: bool) -> str:
    """Whether a VM's cutover is ``due`` (a person asked: `vmwave cutover`, or a run that ignores the window; or its
    cutover time came), must ``wait``, or ``missed`` its window: a cutover that cannot start before the window
    ends does not start."""
    if requested:
        return "due"
    if window_end is not None and now >= window_end:
        return "missed"
    return "due" if cutover_at is not None and cutover_at <= now else "wait"
