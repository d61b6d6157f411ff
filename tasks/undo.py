"""What undoes each step: removes what the step made; the source VM is never deleted.

``migrate_vm`` runs them for the steps the ledger says finished when a VM
fails for good (``undo_finished``), and a failing step runs its own before it
gives up; ``rollback_wave`` runs them all on request. Not Prefect's
transactions: there a failed attempt rolls back every finished step even when
a retry follows (``Transaction.reset`` rolls back the parent), so a transient
error mid-migration undid its DataVolumes and the retry went on without them.
Each undo records its outcome in the ledger and never raises: one failed undo
must not stop the others. An undo needs only what was done (the ledger and
the objects' labels), never what a migration checks first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from prefect import task
from prefect.cache_policies import NONE

from vmwave.adapters.files import inside
from vmwave.adapters.vsphere import connect
from vmwave.adapters.vsphere_cbt import remove_snapshot
from vmwave.adapters.vsphere_ops import power_on, snapshots, vm_ref
from vmwave.domain.manifests import LABEL_RUN, LABEL_UUID, LABEL_WAVE
from vmwave.domain.steps import (BOOT, CDI_IMPORT, CONVERT, GUEST_AGENT, NETWORK_ATTACH, POST_BOOT_HOOK, PRE_CUTOVER_HOOK,
                                 PRECOPY, ROLLBACK, SMOKE_TEST, SNAPSHOT)
from vmwave.domain.warm import round_prefix
from vmwave_tasks.job import Job

KEPT = "vmwave.io/kept-for-debug"


def _cluster_objects(job: Job, kinds: list[tuple[str, str]]) -> dict:
    """Delete this VM's objects of ``kinds`` in this wave, or label them kept when the plan says keep-for-debug."""
    cluster = job.cluster()
    namespace = job.maps.namespace
    done = []
    for api_version, kind in kinds:
        for obj in cluster.find(api_version, kind, namespace, {LABEL_UUID: job.vm.instance_uuid, LABEL_WAVE: job.wave,
                                                               LABEL_RUN: job.run}):  # only what this run made
            name = obj["metadata"]["name"]
            if job.keep_for_debug:
                cluster.patch(api_version, kind, namespace, name, {"metadata": {"labels": {KEPT: "true"}}})
                done.append(f"kept {kind}/{name}")
            elif cluster.delete(api_version, kind, namespace, name):
                done.append(f"removed {kind}/{name}")
    return {"cluster": done}


def undo_boot(job: Job) -> dict:
    return _cluster_objects(job, [("kubevirt.io/v1", "VirtualMachine")])


def undo_import(job: Job) -> dict:
    """The DataVolumes (and with them their PVCs); the wave's credentials Secret goes when the wave ends."""
    return _cluster_objects(job, [("cdi.kubevirt.io/v1beta1", "DataVolume")])


def undo_precopy(job: Job) -> dict:
    """The DataVolumes being copied warm, and the precopy rounds' snapshots; the source ran all along."""
    done = undo_import(job)
    prefix = round_prefix(job.wave)
    with connect(job.settings.need_vcenter()) as si:
        rounds = [name for name in snapshots(si, vm_ref(si, job.vm.moref)) if name.startswith(prefix)]
        for name in rounds:
            remove_snapshot(si, job.vm.moref, name)
    return {**done, "snapshots_removed": rounds}


def undo_hook(job: Job) -> dict:
    """The hook's Job and its Pod; what the hook itself did is the hook's to undo."""
    return _cluster_objects(job, [("batch/v1", "Job"), ("v1", "Pod")])


def undo_convert(job: Job) -> dict:
    """The conversion pod and its libvirt XML, if a failure left them; the pod's log stays in the work directory."""
    return _cluster_objects(job, [("v1", "Pod"), ("v1", "ConfigMap")])


def work_folder(job: Job) -> Path:
    """Where a worker keeps a VM's conversion log: the only file it writes for a VM."""
    return inside(job.settings.workdir, job.wave, job.vm.instance_uuid)


def undo_snapshot(job: Job) -> dict:
    """The source runs again if it ran before; its vmwave snapshot stays until someone verifies and removes it."""
    recorded = job.ledger().get(job.wave, job.vm.key, SNAPSHOT) or {}
    if not (recorded.get("detail") or {}).get("was_on", job.vm.power_state == "poweredOn"):
        return {"source_powered_on": False}
    with connect(job.settings.need_vcenter()) as si:
        return {"source_powered_on": power_on(si, job.vm.moref)}


UNDO: dict[str, Callable[[Job], dict]] = {SNAPSHOT: undo_snapshot, CONVERT: undo_convert, CDI_IMPORT: undo_import,
                                          BOOT: undo_boot, PRE_CUTOVER_HOOK: undo_hook, POST_BOOT_HOOK: undo_hook,
                                          PRECOPY: undo_precopy}
ORDER = [POST_BOOT_HOOK, BOOT, CONVERT, CDI_IMPORT, SNAPSHOT, PRE_CUTOVER_HOOK, PRECOPY]  # newest first


def undo(job: Job, step: str, mark: bool = True) -> bool:
    """Undo ``step`` for ``job``, record it in the ledger's ``rollback`` row; False when the undo failed."""
    ledger = job.ledger()
    row = ledger.get(job.wave, job.vm.key, ROLLBACK)
    detail = dict((row or {}).get("detail") or {})
    if row is None or row["status"] != "running":
        job.start_step(ROLLBACK)
        detail = {}
    try:
        detail[step] = UNDO[step](job)
    except Exception as exc:  # recorded, never raised: the remaining undos must still run
        detail[step] = {"error": f"{type(exc).__name__}: {getattr(exc, 'msg', exc)}"}
        ledger.mark(job.wave, job.vm.key, ROLLBACK, detail=detail)
        return False
    ledger.mark(job.wave, job.vm.key, ROLLBACK, detail=detail)
    recorded = ledger.get(job.wave, job.vm.key, step)
    if mark and recorded and recorded["status"] == "succeeded":  # done again on a rerun (the snapshot is reused)
        ledger.mark(job.wave, job.vm.key, step, "rolled_back")
    return True


def finish_rollback(job: Job) -> dict:
    """Close the ledger's ``rollback`` row: failed, naming what a person must undo by hand, if any undo failed."""
    ledger = job.ledger()
    row = ledger.get(job.wave, job.vm.key, ROLLBACK)
    if row is None:
        job.start_step(ROLLBACK)
        row = {"detail": {}}
    detail = dict(row.get("detail") or {})
    failed = [f"{step}: {d['error']}" for step, d in detail.items() if isinstance(d, dict) and "error" in d]
    if failed:
        ledger.finish(job.wave, job.vm.key, ROLLBACK, "failed", detail=detail, cause="rollback-failed",
                      error="; ".join(failed))
    else:
        for step in (NETWORK_ATTACH, GUEST_AGENT, SMOKE_TEST):  # nothing to undo, but no longer done
            recorded = ledger.get(job.wave, job.vm.key, step)
            if recorded and recorded["status"] == "succeeded":
                ledger.mark(job.wave, job.vm.key, step, "rolled_back")
        ledger.finish(job.wave, job.vm.key, ROLLBACK, detail=detail)
    return {"undone": sorted(detail), "failed": failed}


def undo_finished(job: Job) -> dict:
    """After a failure retries cannot fix: undo each step the ledger says this VM finished, newest first."""
    ledger = job.ledger()
    for step in ORDER:
        recorded = ledger.get(job.wave, job.vm.key, step)
        if recorded and recorded["status"] in ("succeeded", "skipped"):
            undo(job, step)
    return finish_rollback(job)


@task(name=ROLLBACK, task_run_name="{job.vm.name} / " + ROLLBACK, cache_policy=NONE, persist_result=False)
def rollback(job: Job) -> dict:
    """Undo every step of one VM on request (``rollback_wave``), newest first."""
    for step in ORDER:
        if step in (PRE_CUTOVER_HOOK, POST_BOOT_HOOK) and not job.hooks:
            continue
        if step == PRECOPY and job.ledger().get(job.wave, job.vm.key, PRECOPY) is None:
            continue  # it moved cold
        undo(job, step)
    return finish_rollback(job)
