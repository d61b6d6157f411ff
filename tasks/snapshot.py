"""Step 1: a named vmwave snapshot on the source, then, for cold modes, a clean shutdown."""

from __future__ import annotations

from vmwave.adapters.vsphere import connect
from vmwave.adapters.vsphere_ops import ensure_snapshot, shut_down
from vmwave.domain.steps import SNAPSHOT
from vmwave_tasks.job import Job
from vmwave_tasks.step import step

COLD_MODES = ("offline-batch", "cold", "planned-window", "manual")


def snapshot_name(job: Job) -> str:
    return f"vmwave-{job.wave}"


@step(SNAPSHOT)
def snapshot(job: Job) -> dict:
    """Kept until the migration is verified; skipped for VMs that are already off."""
    detail = {"snapshot": None, "was_on": job.vm.power_state == "poweredOn", "shutdown": "already-off"}
    job.ledger().mark(job.wave, job.vm.moref, SNAPSHOT, detail=detail)  # what a rollback needs, even if this fails
    with connect(job.settings.need_vcenter()) as si:
        if detail["was_on"]:
            ensure_snapshot(si, job.vm.moref, snapshot_name(job))
            detail["snapshot"] = snapshot_name(job)
        if job.mode in COLD_MODES:
            detail["shutdown"] = shut_down(si, job.vm.moref, job.vm.tools == "running", job.settings.timeouts.shutdown)
    return detail
