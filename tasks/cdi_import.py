"""Step 2: each disk read straight from vSphere into its PVC by CDI: the worker moves no disk bytes.

The DataVolumes are the builder's (``vmwave.domain.build``): a ``vddk``
source when a VDDK image is configured, else ``http`` from the datastore
with the wave's vCenter credentials in a Secret, which only the run fills
in. All of a VM's disks import at once; each one's progress goes to the
ledger as CDI reports it. A DataVolume that failed before is started afresh.

A warm VM copies before its cutover, while it runs (``precopy``): each round
is a snapshot, and its DataVolumes get one more checkpoint (CDI's multi-stage
import) and pause once CDI copied it: the whole disk first, then only what
vCenter reports changed since the round before. The previous round's snapshot
goes once the next one has copied; a changeId vCenter refuses (tracking was
reset) starts the copy over. At the cutover, ``cdi_import`` adds the final
checkpoint, from the snapshot taken after the clean shutdown.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from prefect import get_run_logger

from vmwave.adapters.vsphere import connect, password
from vmwave.adapters.vsphere_cbt import changed_bytes, find_snapshot, remove_snapshot, snapshot_disks, take_snapshot
from vmwave.domain.build import credentials_secret
from vmwave.domain.diagnosis import import_cause
from vmwave.domain.manifests import KEPT_FOR_RETRY
from vmwave.domain.steps import CDI_IMPORT, PRECOPY, SNAPSHOT
from vmwave.domain.warm import cold_because, cutover_state, round_snapshot, staged
from vmwave_tasks.job import Job, StepFailed
from vmwave_tasks.shared import wait_for_group
from vmwave_tasks.step import step

CDI = "cdi.kubevirt.io/v1beta1"
NOTE_SECONDS = 1.0  # progress goes to the ledger at most this often: a ledger write would delay the next event
COPIED = "cdi.kubevirt.io/storage.checkpoint.copied"  # CDI's note on the PVC, one per checkpoint it copied
CUTOVER_POLL_SECONDS = 1.0  # how often a warm VM between rounds asks the ledger whether a person asked to cut over


def _phase(obj: dict | None) -> str:
    return ((obj or {}).get("status") or {}).get("phase", "")


class DiskProgress:
    """Each disk's phase and ``status.progress`` as CDI reports them: logged and kept in the ledger's detail.

    When its bytes started and stopped moving (first seen ImportInProgress, then Succeeded; epoch seconds) is
    kept too: the data path's own clock, apart from the step's orchestration. The ledger hears of it at most
    once a second while it runs.
    """

    def __init__(self, job: Job, names: list[str]):
        own = set(job.own_volumes)  # a shared disk's is said so: its undo waits for the group
        self.job, self.disks = (
            job,
            {
                name: {"datavolume": name, "phase": "", "progress": "N/A", **({} if name in own else {"shared": True})}
                for name in names
            },
        )
        self.noted = 0.0

    def __call__(self, obj: dict | None) -> str:
        if obj is None:
            return ""
        name, status = obj["metadata"]["name"], obj.get("status") or {}
        before = self.disks[name]
        seen = {**before, "phase": status.get("phase", ""), "progress": status.get("progress", "N/A")}
        if seen["phase"] == "ImportInProgress" and "copy_started" not in seen:
            seen["copy_started"] = time.time()
        if seen["phase"] == "Succeeded" and "copy_finished" not in seen:
            seen["copy_finished"] = time.time()
        if (seen["phase"], seen["progress"]) != (before["phase"], before["progress"]):
            self.disks[name] = seen
            get_run_logger().info("%s: %s %s", name, seen["phase"], seen["progress"])
            if time.monotonic() - self.noted > NOTE_SECONDS:  # the step's end records the last state anyway
                self.job.clients.steps.mark(self.job.wave, self.job.vm.key, CDI_IMPORT, detail={"disks": self.list()})
                self.noted = time.monotonic()
        return seen["phase"]

    def list(self) -> list[dict]:
        return list(self.disks.values())


def _start_afresh(job: Job, name: str, only_failed: bool = True) -> None:
    """Remove the DataVolume so CDI imports it again: one that failed stays failed in CDI, a warm copy whose
    changeId vCenter refused must start over from its first checkpoint, and a copy a failure kept is reused only
    by `vmwave retry`, which checks the source did not change since."""
    cluster = job.clients.cluster
    found = cluster.get(CDI, "DataVolume", job.maps.namespace, name)
    kept = KEPT_FOR_RETRY in ((found or {}).get("metadata") or {}).get("labels", {})
    if found is not None and job.owns(found) and (not only_failed or kept or _phase(found) == "Failed"):
        cluster.delete(CDI, "DataVolume", job.maps.namespace, name)
        cluster.wait_for(CDI, "DataVolume", job.maps.namespace, name, lambda o: o is None, 60, "deleted")


def _apply_sources(job: Job) -> list[str]:
    """The namespace, the CA and the wave's credentials the DataVolumes read with; their names."""
    cluster, objects = job.clients.cluster, job.objects
    for obj in (objects.namespace, *objects.config_maps):
        cluster.apply(obj)
    if objects.secrets:  # the wave's credentials; the password only here, never in a log or the ledger
        vcenter = job.settings.need_vcenter()
        cluster.apply(credentials_secret(job.wave, job.maps.namespace, vcenter.user, password(vcenter)))
    return [m["metadata"]["name"] for m in objects.datavolumes]


def _import(
    job: Job, manifests: list[dict], until: tuple[str, ...], timeout: float, checkpoint: str = ""
) -> DiskProgress:
    """Apply the DataVolumes and wait until each is in one of ``until``; a Failed one fails the step.

    A precopy round waits first for CDI's note on the PVC that it copied ``checkpoint``: the DataVolume was
    Paused before the round too.
    """
    cluster, names = job.clients.cluster, [m["metadata"]["name"] for m in manifests]
    progress = DiskProgress(job, names)
    made = {name: cluster.apply_owned(manifest, job.run) for name, manifest in zip(names, manifests)}
    deadline = time.monotonic() + timeout
    for name in names:
        if checkpoint:
            job.wait_for(
                "v1",
                "PersistentVolumeClaim",
                name,
                lambda o: (
                    f"{COPIED}.{checkpoint}" in (((o or {}).get("metadata") or {}).get("annotations") or {})
                    or progress(cluster.get(CDI, "DataVolume", job.maps.namespace, name)) == "Failed"
                ),
                max(1.0, deadline - time.monotonic()),
                f"checkpoint {checkpoint} copied",
            )
        done = job.wait_for(
            CDI,
            "DataVolume",
            name,
            lambda o: progress(o) in (*until, "Failed"),
            max(1.0, deadline - time.monotonic()),
            " or ".join(until),
            since=made[name],
        )
        if _phase(done) == "Failed":
            running = next((c for c in done["status"].get("conditions", []) if c["type"] == "Running"), {})
            message = running.get("message") or "unknown error"
            raise StepFailed(import_cause(message), f"CDI could not import {name}: {message}")
    return progress


@step(CDI_IMPORT)
def cdi_import(job: Job, down: dict, copies: dict) -> dict:
    """``down`` is what the snapshot step returned, ``copies`` what the precopy did (a warm VM's rounds)."""
    wait_for_group(job, SNAPSHOT, "shut down", job.settings.timeouts.shutdown)  # a shared disk copies once all are off
    names = _apply_sources(job)
    for name in names:
        _start_afresh(job, name)
    manifests, copied = list(job.objects.datavolumes), sum(d.capacity_bytes for d in job.vm.disks)
    warm = {}
    if job.warm:
        manifests, copied, full = _final_checkpoints(job, down["snapshot"], copies)
        warm = {"final_checkpoint": True, "full": full}
    progress = _import(job, manifests, ("Succeeded",), job.settings.timeouts.import_)
    if job.warm:
        with connect(job.settings.need_vcenter()) as si:  # the last round's snapshot; the final one stays
            remove_snapshot(si, job.vm.moref, copies["snapshot"])
    sources = [next(iter(m["spec"]["source"])) for m in job.objects.datavolumes]
    return {
        "disks": progress.list(),
        "source": sources[0] if sources else "",
        "bytes": copied if job.mode != "rebuild" else 0,
        **warm,
    }


def _final_checkpoints(job: Job, final: str | None, rounds: dict) -> tuple[list[dict], int, bool]:
    """Each DataVolume with its final checkpoint, from the last round (``rounds``) to the snapshot ``final``
    taken after shutdown; the bytes that changed; whether it is a whole copy again (vCenter reset the tracking
    since the last round)."""
    with connect(job.settings.need_vcenter()) as si:
        snap = find_snapshot(si, job.vm.moref, final or "")
        if snap is None:
            raise StepFailed(
                "unexpected",
                f"{job.vm.name}: its cutover snapshot {final} is gone",
                "roll the wave back and run it again: the precopy starts over",
            )
        manifests, _, _, copied, full = _next_checkpoints(
            si, job, snap, rounds["change_ids"], rounds["checkpoints"], final=True
        )
    return manifests, copied, full


def _next_checkpoints(
    si: Any, job: Job, snap: Any, change_ids: dict[str, str], checkpoints: dict[str, list[dict]], final: bool
) -> tuple[list[dict], dict[str, list[dict]], dict[str, str], int, bool]:
    """Each DataVolume staged with one more checkpoint, to ``snap`` from its disk's last changeId (the whole disk
    again when there is none, or vCenter reset its tracking); each one's checkpoints, each disk's changeId at
    ``snap``, the bytes they copy, and whether they copy whole disks. A precopy round and the final copy chain
    their checkpoints so, both."""
    disks = snapshot_disks(si, snap)
    deltas = {file: changed_bytes(si, job.vm.moref, snap, disks[file], since) for file, since in change_ids.items()}
    full = not change_ids or None in deltas.values()
    if full:
        deltas = {file: changed_bytes(si, job.vm.moref, snap, disk, "*") or 0 for file, disk in disks.items()}
    manifests, chains, now = [], {}, dict(change_ids)
    for manifest in job.objects.datavolumes:
        name, disk = manifest["metadata"]["name"], disks[_backing(manifest)]
        if full:
            _start_afresh(job, name, only_failed=False)
        previous = [] if full else checkpoints[name] + [{"previous": change_ids[disk.file], "current": snap._moId}]
        chains[name] = previous or [{"previous": "", "current": snap._moId}]
        now[disk.file] = disk.change_id
        manifests.append(staged(manifest, chains[name], final=final))
    return manifests, chains, now, sum(deltas[_backing(m)] or 0 for m in manifests), full


def _backing(manifest: dict) -> str:
    return manifest["spec"]["source"]["vddk"]["backingFile"]


@step(PRECOPY)
def precopy(job: Job) -> dict:
    """Rounds of copies while the source runs, every ``precopy_interval``, until its cutover is due.

    A VM the plan moves warm that cannot (no change tracking, no VDDK) is skipped here and moves cold; the
    ledger says why and what to do.
    """
    if not job.warm:
        why, fix = cold_because(job.vm, bool(job.settings.vddk_image))
        get_run_logger().warning("%s moves cold: %s (%s)", job.vm.name, why, fix)
        return {"status": "skipped", "cold": why, "fix": fix}
    names = _apply_sources(job)
    ledger, interval = job.clients.steps, job.entry.precopy_interval
    with connect(job.settings.need_vcenter()) as si:
        rounds, checkpoints, change_ids = _resumed(job, si, names)
        while True:
            n, started = len(rounds) + 1, time.monotonic()
            snap = take_snapshot(si, job.vm.moref, round_snapshot(job.wave, n))
            manifests, checkpoints, change_ids, copied, full = _next_checkpoints(
                si, job, snap, change_ids, checkpoints, final=False
            )
            _import(job, manifests, ("Paused",), job.settings.timeouts.import_, checkpoint=snap._moId)
            if n > 1:
                remove_snapshot(si, job.vm.moref, round_snapshot(job.wave, n - 1))
            rounds.append(
                {
                    "round": n,
                    "full": full,
                    "bytes": copied,
                    "seconds": round(time.monotonic() - started, 3),
                    "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                }
            )
            detail = {
                "rounds": rounds,
                "snapshot": round_snapshot(job.wave, n),
                "checkpoints": checkpoints,
                "change_ids": change_ids,
            }
            ledger.mark(job.wave, job.vm.key, PRECOPY, detail=detail)
            get_run_logger().info(
                "%s: precopy round %d copied %d bytes%s",
                job.vm.name,
                n,
                rounds[-1]["bytes"],
                " (the whole disks)" if full else "",
            )
            try:
                due = wait_for_cutover(job, interval)
            except StepFailed as exc:  # what it copied stays for the next window (vmwave_tasks.step.KEEP)
                if exc.cause == "missed-window":
                    ledger.mark(job.wave, job.vm.key, PRECOPY, detail={**detail, "missed_window": True})
                raise
            if due:
                return {**detail, "bytes": sum(r["bytes"] for r in rounds)}


def _resumed(job: Job, si: Any, names: list[str]) -> tuple[list[dict], dict[str, list[dict]], dict[str, str]]:
    """The rounds, checkpoints and changeIds a precopy goes on from: those of one that missed its window, when its
    last round's snapshot is still there to copy the next delta from; else none (a whole copy first)."""
    detail = (job.clients.steps.get(job.wave, job.vm.key, PRECOPY) or {}).get("detail") or {}
    if (
        not detail.get("missed_window")
        or not detail.get("rounds")
        or find_snapshot(si, job.vm.moref, detail.get("snapshot", "")) is None
    ):
        return [], {name: [] for name in names}, {}
    get_run_logger().info("%s: its precopy goes on from round %d", job.vm.name, len(detail["rounds"]))
    return list(detail["rounds"]), dict(detail["checkpoints"]), dict(detail["change_ids"])


def wait_for_cutover(job: Job, seconds: float | None = None) -> bool:
    """Wait until the VM's cutover is due (its cutover time or its window's start came, or a person asked) or
    ``seconds`` passed; raise ``missed-window`` once its window ended first.

    Returns whether the cutover is due. Without ``seconds``, waits for the cutover itself: how a cold VM of a
    wave that starts before its window (or with a cutover time) waits for it.
    """
    deadline = None if seconds is None else time.monotonic() + seconds
    window = job.entry.window
    while True:
        job.check_cancelled()
        state = cutover_state(
            job.entry.cutover_at,
            window.end if window else None,
            datetime.now(timezone.utc),
            job.cutover_now or job.clients.requests.cutover_requested(job.wave, job.vm.instance_uuid),
        )
        if state == "missed":
            raise StepFailed(
                "missed-window",
                f"{job.vm.name} was not cut over: its wave's window ended at "
                f"{window.end.isoformat()} before its cutover could start",
            )
        if state == "due" or (deadline is not None and time.monotonic() >= deadline):
            return state == "due"
        time.sleep(CUTOVER_POLL_SECONDS)
