"""Step 2: each disk read straight from vSphere into its PVC by CDI: the worker moves no disk bytes.

The DataVolumes are the builder's (``vmwave.domain.build``): a ``vddk``
source when a VDDK image is configured, else ``http`` from the datastore
with the wave's vCenter credentials in a Secret, which only the run fills
in. All of a VM's disks import at once; each one's progress goes to the
ledger as CDI reports it. A DataVolume that failed before is started afresh.
"""

from __future__ import annotations

import time

from prefect import get_run_logger

from vmwave.domain.build import credentials_secret
from vmwave.domain.diagnosis import import_cause
from vmwave.domain.steps import CDI_IMPORT
from vmwave_tasks.job import Job, StepFailed
from vmwave_tasks.step import step

CDI = "cdi.kubevirt.io/v1beta1"
NOTE_SECONDS = 1.0  # progress goes to the ledger at most this often: a ledger write would delay the next event


def _phase(obj: dict | None) -> str:
    return ((obj or {}).get("status") or {}).get("phase", "")


class DiskProgress:
    """Each disk's phase and ``status.progress`` as CDI reports them: logged and kept in the ledger's detail.

    When its bytes started and stopped moving (first seen ImportInProgress, then Succeeded; epoch seconds) is
    kept too: the data path's own clock, apart from the step's orchestration. The ledger hears of it at most
    once a second while it runs.
    """

    def __init__(self, job: Job, names: list[str]):
        self.job, self.disks = job, {name: {"datavolume": name, "phase": "", "progress": "N/A"} for name in names}
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
                self.job.ledger().mark(self.job.wave, self.job.vm.moref, CDI_IMPORT, detail={"disks": self.list()})
                self.noted = time.monotonic()
        return seen["phase"]

    def list(self) -> list[dict]:
        return list(self.disks.values())


def _start_afresh(job: Job, name: str) -> None:
    """A DataVolume that failed stays failed in CDI: remove it so this attempt imports again."""
    cluster = job.cluster()
    if _phase(cluster.get(CDI, "DataVolume", job.maps.namespace, name)) == "Failed":
        cluster.delete(CDI, "DataVolume", job.maps.namespace, name)
        cluster.wait_for(CDI, "DataVolume", job.maps.namespace, name, lambda o: o is None, 60, "deleted")


@step(CDI_IMPORT)
def cdi_import(job: Job) -> dict:
    cluster, objects, namespace = job.cluster(), job.objects, job.maps.namespace
    for obj in (objects.namespace, *objects.config_maps):
        cluster.apply(obj)
    if objects.secrets:  # the wave's credentials; the password only here, never in a log or the ledger
        vcenter = job.settings.need_vcenter()
        cluster.apply(credentials_secret(job.wave, namespace, vcenter.user, vcenter.password()))
    names = [m["metadata"]["name"] for m in objects.datavolumes]
    for name in names:
        _start_afresh(job, name)
    progress = DiskProgress(job, names)
    made = {name: cluster.apply(manifest) for name, manifest in zip(names, objects.datavolumes)}
    deadline = time.monotonic() + job.settings.timeouts.import_
    for name in names:
        done = job.wait_for(CDI, "DataVolume", name, lambda o: progress(o) in ("Succeeded", "Failed"),
                            max(1.0, deadline - time.monotonic()), "imported", since=made[name])
        if _phase(done) == "Failed":
            running = next((c for c in done["status"].get("conditions", []) if c["type"] == "Running"), {})
            message = running.get("message") or "unknown error"
            raise StepFailed(import_cause(message), f"CDI could not import {name}: {message}")
    sources = [next(iter(m["spec"]["source"])) for m in objects.datavolumes]
    return {"disks": progress.list(), "source": sources[0] if sources else "", "bytes": sum(
        d.capacity_bytes for d in job.vm.disks) if job.mode != "rebuild" else 0}
