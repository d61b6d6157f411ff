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

import time
from pathlib import Path
from typing import Callable

from prefect import task
from prefect.cache_policies import NONE

from vmwave.adapters.files import inside
from vmwave.adapters.vsphere import connect
from vmwave.adapters.vsphere_cbt import remove_snapshot
from vmwave.adapters.vsphere_fence import move, reconfigure, set_attribute
from vmwave.adapters.vsphere_ops import power_on, snapshots, vm_ref
from vmwave.domain.manifests import KEPT_FOR_RETRY, LABEL_RUN, LABEL_UUID, LABEL_WAVE
from vmwave.domain.steps import (
    BOOT,
    CDI_IMPORT,
    CONVERT,
    FENCE,
    GUEST_AGENT,
    NETWORK_ATTACH,
    POST_BOOT_HOOK,
    PRE_CUTOVER_HOOK,
    PRECOPY,
    ROLLBACK,
    SMOKE_TEST,
    SNAPSHOT,
    FENCED_ATTRIBUTE,
    DONE,
)
from vmwave.domain.warm import round_prefix
from vmwave.errors import VmwaveError
from vmwave_tasks.job import Job

KEPT = "vmwave.io/kept-for-debug"


def _cluster_objects(job: Job, kinds: list[tuple[str, str]]) -> dict:
    """Delete this VM's objects of ``kinds`` in this wave, or label them kept when the plan says keep-for-debug."""
    cluster = job.clients.cluster
    namespace = job.maps.namespace
    done = []
    for api_version, kind in kinds:
        for obj in cluster.find(
            api_version, kind, namespace, {LABEL_UUID: job.vm.instance_uuid, LABEL_WAVE: job.wave, LABEL_RUN: job.run}
        ):  # only what this run made
            name = obj["metadata"]["name"]
            if job.keep_for_debug:
                cluster.patch(api_version, kind, namespace, name, {"metadata": {"labels": {KEPT: "true"}}})
                done.append(f"kept {kind}/{name}")
            elif cluster.delete(api_version, kind, namespace, name):
                done.append(f"removed {kind}/{name}")
    return {"cluster": done}


def undo_boot(job: Job) -> dict:
    """The VirtualMachine, waited for until it and its instance are gone: until then they use its volumes, and a
    VM sharing a disk with it keeps that disk's copy, and its source stays off, for them."""
    done = _cluster_objects(job, [("kubevirt.io/v1", "VirtualMachine")])
    if any(what.startswith("removed") for what in done["cluster"]):
        for kind in ("VirtualMachine", "VirtualMachineInstance"):
            job.clients.cluster.wait_for(
                "kubevirt.io/v1",
                kind,
                job.maps.namespace,
                job.target,
                lambda o: o is None,
                job.settings.timeouts.boot,
                "deleted",
            )
    return done


def undo_import(job: Job) -> dict:
    """The DataVolumes (and with them their PVCs); a shared disk's once no VM of its group uses it any more; the
    wave's credentials Secret goes when the wave ends."""
    done = _cluster_objects(job, [("cdi.kubevirt.io/v1beta1", "DataVolume")])
    cluster, namespace = job.clients.cluster, job.maps.namespace
    for what in done["cluster"]:  # deleted once CDI let its PVC go: a rerun then starts from nothing
        if what.startswith("removed DataVolume/"):
            cluster.wait_for(
                "cdi.kubevirt.io/v1beta1",
                "DataVolume",
                namespace,
                what.split("/", 1)[1],
                lambda o: o is None,
                60,
                "deleted",
            )
    for name in shared_volumes(job):
        found = cluster.get("cdi.kubevirt.io/v1beta1", "DataVolume", namespace, name)
        if found is None or not job.owns(found):
            continue
        if users := cluster.volume_users(namespace, [name]):
            done["cluster"].append(f"kept shared DataVolume/{name}: {', '.join(users)} uses it")
        elif job.keep_for_debug:
            cluster.patch(
                "cdi.kubevirt.io/v1beta1", "DataVolume", namespace, name, {"metadata": {"labels": {KEPT: "true"}}}
            )
            done["cluster"].append(f"kept DataVolume/{name}")
        elif cluster.delete("cdi.kubevirt.io/v1beta1", "DataVolume", namespace, name):
            done["cluster"].append(f"removed shared DataVolume/{name}")
    return done


def shared_volumes(job: Job) -> list[str]:
    """The shared disks' DataVolumes this VM's import recorded (a rollback's job knows no disks)."""
    detail = (job.clients.steps.get(job.wave, job.vm.key, CDI_IMPORT) or {}).get("detail") or {}
    return [d["datavolume"] for d in detail.get("disks", []) if d.get("shared")]


def undo_precopy(job: Job) -> dict:
    """The DataVolumes being copied warm, and the precopy rounds' snapshots; the source ran all along."""
    return {**undo_import(job), **_remove_rounds(job)}


def _remove_rounds(job: Job) -> dict:
    prefix = round_prefix(job.wave)
    with connect(job.settings.need_vcenter()) as si:
        rounds = [name for name in snapshots(si, vm_ref(si, job.vm.moref)) if name.startswith(prefix)]
        for name in rounds:
            remove_snapshot(si, job.vm.moref, name)
    return {"snapshots_removed": rounds}


def keep_import(job: Job) -> dict:
    """A copy that finished, kept for `vmwave retry` when a later step failed: its DataVolumes and their PVCs are
    labelled, not removed, so a retry converts them again without copying (if the source did not change)."""
    cluster, namespace, kept = job.clients.cluster, job.maps.namespace, []
    for dv in cluster.find(
        "cdi.kubevirt.io/v1beta1",
        "DataVolume",
        namespace,
        {LABEL_UUID: job.vm.instance_uuid, LABEL_WAVE: job.wave, LABEL_RUN: job.run},
    ):
        name = dv["metadata"]["name"]
        for api_version, kind in (("cdi.kubevirt.io/v1beta1", "DataVolume"), ("v1", "PersistentVolumeClaim")):
            cluster.patch(api_version, kind, namespace, name, {"metadata": {"labels": {KEPT_FOR_RETRY: "true"}}})
        kept.append(name)
    recorded = job.clients.steps.get(job.wave, job.vm.key, CDI_IMPORT) or {}
    job.clients.steps.mark(
        job.wave, job.vm.key, CDI_IMPORT, detail={**(recorded.get("detail") or {}), "kept_for_retry": kept}
    )
    return {"kept_for_retry": kept}


def keep_precopy(job: Job) -> dict:
    """A warm copy kept with its import (``keep_import``); the rounds' snapshots go, as a retry copies anew or not
    at all."""
    return _remove_rounds(job)


def undo_hook(job: Job) -> dict:
    """The hook's Job and its Pod; what the hook itself did is the hook's to undo."""
    return _cluster_objects(job, [("batch/v1", "Job"), ("v1", "Pod")])


def undo_convert(job: Job) -> dict:
    """The conversion pod and its libvirt XML, if a failure left them; the pod's log stays in the work directory."""
    return _cluster_objects(job, [("v1", "Pod"), ("v1", "ConfigMap")])


def work_folder(job: Job) -> Path:
    """Where a worker keeps a VM's conversion log: the only file it writes for a VM."""
    return inside(job.settings.workdir, job.wave, job.vm.instance_uuid)


def _still_used(job: Job, shared: list[str]) -> list[str]:
    """Who uses the copies of the disks this VM shares, once the VMs of its group being rolled back are gone (they
    are given until a boot's timeout); [] when nobody does."""
    if not shared:
        return []
    cluster, deadline = job.clients.cluster, time.monotonic() + job.settings.timeouts.boot
    while (users := cluster.volume_users(job.maps.namespace, shared)) and time.monotonic() < deadline:
        time.sleep(1.0)
    return users


def undo_snapshot(job: Job) -> dict:
    """The source runs again if it ran before; its vmwave snapshot stays until someone verifies and removes it.

    Not while a VM of its group still uses the copy of a disk they share: two copies of one cluster's disk, both
    written, would split it.
    """
    recorded = job.clients.steps.get(job.wave, job.vm.key, SNAPSHOT) or {}
    if not (recorded.get("detail") or {}).get("was_on", job.vm.power_state == "poweredOn"):
        return {"source_powered_on": False}
    if users := _still_used(job, shared_volumes(job)):
        raise VmwaveError(
            f"its source stays off: {', '.join(users)} still uses the copy of the disk it shares",
            "roll back that VM too (or finish its migration), then power this source on",
        )
    with connect(job.settings.need_vcenter()) as si:
        return {"source_powered_on": power_on(si, job.vm.moref)}


def undo_fence(job: Job) -> dict:
    """Put back what the source was before fencing: its folder, attribute, name and NICs (it is powered on by the
    snapshot's undo, after this); what fencing had not changed yet is set to what it is."""
    ledger = job.clients.steps
    before = ((ledger.get(job.wave, job.vm.key, FENCE) or {}).get("detail") or {}).get("before")
    if before is None:
        return {"restored": False}
    with connect(job.settings.need_vcenter()) as si:
        move(si, job.vm.moref, before["folder"])
        set_attribute(si, job.vm.moref, FENCED_ATTRIBUTE, before["attribute"])
        reconfigure(si, job.vm.moref, before["name"], before["nics"])
    ledger.mark(job.wave, job.vm.key, FENCE, detail={})  # a later fence starts from the source as it is then
    return {"restored": True, "name": before["name"]}


UNDO: dict[str, Callable[[Job], dict]] = {
    SNAPSHOT: undo_snapshot,
    CONVERT: undo_convert,
    CDI_IMPORT: undo_import,
    BOOT: undo_boot,
    PRE_CUTOVER_HOOK: undo_hook,
    POST_BOOT_HOOK: undo_hook,
    PRECOPY: undo_precopy,
    FENCE: undo_fence,
}
ORDER = [FENCE, POST_BOOT_HOOK, BOOT, CONVERT, CDI_IMPORT, SNAPSHOT, PRE_CUTOVER_HOOK, PRECOPY]  # newest first


def undo(job: Job, step: str, mark: bool = True, how: Callable[[Job], dict] | None = None) -> bool:
    """Undo ``step`` for ``job`` (``how``, else its undo), record it in the ledger's ``rollback`` row; False when
    the undo failed."""
    ledger = job.clients.steps
    row = ledger.get(job.wave, job.vm.key, ROLLBACK)
    detail = dict((row or {}).get("detail") or {})
    if row is None or row["status"] != "running":
        job.start_step(ROLLBACK)
        detail = {}
    try:
        detail[step] = (how or UNDO[step])(job)
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
    ledger = job.clients.steps
    row = ledger.get(job.wave, job.vm.key, ROLLBACK)
    if row is None:
        job.start_step(ROLLBACK)
        row = {"detail": {}}
    detail = dict(row.get("detail") or {})
    failed = [f"{step}: {d['error']}" for step, d in detail.items() if isinstance(d, dict) and "error" in d]
    if failed:
        ledger.finish(
            job.wave, job.vm.key, ROLLBACK, "failed", detail=detail, cause="rollback-failed", error="; ".join(failed)
        )
    else:
        for step in (NETWORK_ATTACH, GUEST_AGENT, SMOKE_TEST):  # nothing to undo, but no longer done
            recorded = ledger.get(job.wave, job.vm.key, step)
            if recorded and recorded["status"] == "succeeded":
                ledger.mark(job.wave, job.vm.key, step, "rolled_back")
        ledger.finish(job.wave, job.vm.key, ROLLBACK, detail=detail)
    return {"undone": sorted(detail), "failed": failed}


KEEP = {CDI_IMPORT: keep_import, PRECOPY: keep_precopy}  # what a failure after the copy keeps for a retry


def undo_finished(job: Job) -> dict:
    """After a failure retries cannot fix: undo each step the ledger says this VM finished, newest first; a copy
    that finished is kept for `vmwave retry` unless the plan says ``on_failure: delete`` (or keep-for-debug keeps
    everything). The source runs again either way."""
    ledger = job.clients.steps
    copied = (ledger.get(job.wave, job.vm.key, CDI_IMPORT) or {}).get("status") == "succeeded"
    keep = (
        copied
        and job.entry.on_failure != "delete"
        and not job.keep_for_debug
        and job.mode != "rebuild"
        and not job.vm.shared_disks
    )  # a group's shared disk is copied again, together
    for step in ORDER:
        recorded = ledger.get(job.wave, job.vm.key, step)
        if recorded and recorded["status"] in DONE:
            undo(job, step, how=KEEP.get(step) if keep else None)
    return finish_rollback(job)


@task(name=ROLLBACK, task_run_name="{job.vm.name} / " + ROLLBACK, cache_policy=NONE, persist_result=False)
def rollback(job: Job) -> dict:
    """Undo every step of one VM on request (``rollback_wave``), newest first."""
    for step in ORDER:
        if step in (PRE_CUTOVER_HOOK, POST_BOOT_HOOK) and not job.hooks:
            continue
        if step == PRECOPY and job.clients.steps.get(job.wave, job.vm.key, PRECOPY) is None:
            continue  # it moved cold
        undo(job, step)
    return finish_rollback(job)
