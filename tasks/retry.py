"""`vmwave retry`: the failed VMs of a wave run again from their first failed step, on the copy their failure kept.

A VM that failed after its copy finished (conversion, network, boot, agent,
smoke test) keeps its DataVolumes, labelled ``vmwave.io/kept-for-retry``, and
its source runs again (``vmwave_tasks.undo.keep_import``). A retry cuts the
source over again (the shutdown) and reuses that copy, as the same
DataVolumes, when the source did not change since: vCenter's changeId of
each disk is the one recorded after the copy, or, for a VM whose disks vCenter
does not track, vCenter's events show no power-on since its copy. Otherwise it copies
again and says why. Whatever it decides is decided here, before anything
changes.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timezone

from vmwave.adapters.vsphere import connect
from vmwave.adapters.vsphere_ops import powered_on_since
from vmwave.domain.manifests import KEPT_FOR_RETRY
from vmwave.domain.steps import CDI_IMPORT, PRECOPY, SNAPSHOT, outcome
from vmwave.errors import VmwaveError
from vmwave_tasks.job import Job

CDI = "cdi.kubevirt.io/v1beta1"


def to_retry(jobs: list[Job], only: list[str]) -> list[Job]:
    """The jobs of the VMs that failed (of those named, when names are given), each with what its retry does."""
    ledger = jobs[0].clients.steps if jobs else None
    failed = {
        entry["key"]
        for entry in (ledger.by_vm(jobs[0].wave) if ledger else [])
        if outcome(entry["steps"]).state == "failed"
    }
    named = {job.vm.name for job in jobs}
    unknown = sorted(set(only) - named)
    if unknown:
        raise VmwaveError(
            f"wave {jobs[0].wave if jobs else ''} has no VM {', '.join(unknown)}", "name VMs as the plan has them"
        )
    not_failed = sorted(job.vm.name for job in jobs if job.vm.name in only and job.vm.key not in failed)
    if not_failed:
        raise VmwaveError(
            f"{', '.join(not_failed)} did not fail in this wave, so there is nothing to retry",
            "run `vmwave migrate` for VMs not started, or `vmwave status` to see where each is",
        )
    return [
        replace(job, note=reuse_or_recopy(job))
        for job in jobs
        if job.vm.key in failed and (not only or job.vm.name in only)
    ]


def reuse_or_recopy(job: Job) -> str:
    """Reuse the VM's kept copy (the ledger's import counts as done again) when its source did not change, else
    remove it so the import copies anew; what was decided, for the report."""
    ledger, cluster = job.clients.steps, job.clients.cluster
    row = ledger.get(job.wave, job.vm.key, CDI_IMPORT) or {}
    kept = (row.get("detail") or {}).get("kept_for_retry") or []
    found = [cluster.get(CDI, "DataVolume", job.maps.namespace, name) for name in kept]
    if job.vm.shared_disks:
        return "copied again: it shares a disk, which its group copies again together"
    if not kept:
        return (
            "copied again: no copy was kept (it failed before its copy finished, or the plan says `on_failure: delete`)"
        )
    if any(dv is None or not job.owns(dv) for dv in found):
        return "copied again: its kept volumes are gone"
    why = source_changed(job, row)
    if why:  # left labelled: the import's first act is to remove a kept copy
        return f"copied again: {why}"
    for dv in found:
        for api_version, kind in ((CDI, "DataVolume"), ("v1", "PersistentVolumeClaim")):
            cluster.patch(
                api_version,
                kind,
                job.maps.namespace,
                dv["metadata"]["name"],
                {"metadata": {"labels": {KEPT_FOR_RETRY: None}}},
            )
    ledger.mark(job.wave, job.vm.key, CDI_IMPORT, "succeeded")
    if (ledger.get(job.wave, job.vm.key, PRECOPY) or {}).get("status") == "rolled_back":
        ledger.mark(job.wave, job.vm.key, PRECOPY, "succeeded")
    return "its kept copy was reused, the source unchanged since"


def source_changed(job: Job, row: dict) -> str:
    """Why the source's disks may differ from the kept copy (whose import is ``row``); "" when they cannot."""
    cutover = job.clients.steps.get(job.wave, job.vm.key, SNAPSHOT) or {}
    recorded = (cutover.get("detail") or {}).get("change_ids") or {}  # read once it was down, before its copy
    if job.vm.cbt and recorded and all(recorded.get(str(d.key)) for d in job.vm.disks):
        moved = [d.label for d in job.vm.disks if recorded[str(d.key)] != d.change_id]
        return f"vCenter's changeId of {', '.join(moved)} moved since its copy" if moved else ""
    if job.vm.power_state != "poweredOff":
        return "its source runs, and vCenter does not track its disks' changes"
    copied = row["finished_at"] if row["finished_at"].tzinfo else row["finished_at"].replace(tzinfo=timezone.utc)
    with connect(job.settings.need_vcenter()) as si:
        if powered_on_since(si, job.vm.moref, copied):
            return "its source was powered on since its copy, and vCenter does not track its disks' changes"
    return ""
