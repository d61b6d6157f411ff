"""Step 1: a named vmwave snapshot on the source and, except for a live copy, a clean shutdown.

Cold modes snapshot the running VM, then shut it down: the copy reads the
stopped disk, the snapshot stays as the way back. A warm VM shuts down first,
then the snapshot is its cutover's: the last changes CDI copies. When the
source went down is noted: the VM's downtime runs until its guest agent answers.
"""

from __future__ import annotations

import time

from vmwave.adapters.vsphere import connect
from vmwave.adapters.vsphere_ops import disk_change_ids, ensure_snapshot, shut_down
from vmwave.domain.steps import SNAPSHOT, snapshot_name
from vmwave_tasks.job import Job
from vmwave_tasks.step import step

COLD_MODES = ("offline-batch", "cold", "planned-window", "manual")


@step(SNAPSHOT)
def snapshot(job: Job) -> dict:
    """Kept until the migration is verified; skipped for VMs that are already off, and for VMs with a shared
    (multi-writer) disk, which vSphere does not snapshot: those are shut down only."""
    detail = {"snapshot": None, "was_on": job.vm.power_state == "poweredOn", "shutdown": "already-off"}
    job.clients.steps.mark(job.wave, job.vm.key, SNAPSHOT, detail=detail)  # what a rollback needs, even if this fails
    name = snapshot_name(job.wave)
    with connect(job.settings.need_vcenter()) as si:
        if detail["was_on"] and not job.warm and not job.vm.shared_disks:  # vSphere cannot snapshot multi-writer
            ensure_snapshot(si, job.vm.moref, name)
            detail["snapshot"] = name
        if job.warm or job.mode in COLD_MODES:
            detail["shutdown"] = shut_down(si, job.vm.moref, job.vm.tools == "running", job.settings.timeouts.shutdown)
            if detail["shutdown"] != "already-off":
                detail["powered_off_at"] = time.time()
        if detail["was_on"] and job.warm:
            ensure_snapshot(si, job.vm.moref, name)
            detail["snapshot"] = name
        if job.mode != "rebuild":  # down now: what its copy will hold, which a retry compares (vmwave_tasks.retry)
            detail["change_ids"] = disk_change_ids(si, job.vm.moref)
    return detail
