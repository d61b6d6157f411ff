"""Step 3: the VM's DataVolumes, as the builder made them, fed from vmwave's transfer server over HTTPS.

Each copied disk is published on the worker's transfer server under its
wave's path with a token of this run; the token's Secret is the only object
that differs from what `vmwave manifests` shows. A rebuild (P2) takes its boot
disk from the template image the maps name, and blank data disks.
"""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger

from vmwave.domain.build import token_secret, transfer_path
from vmwave.domain.steps import CDI_IMPORT
from vmwave_tasks.job import Job, StepFailed, transfer_server
from vmwave_tasks.step import step


def _phase(obj: dict | None) -> str:
    return ((obj or {}).get("status") or {}).get("phase", "")


class _Progress:
    """Follows a DataVolume's ``status.progress`` while the import runs: logged, and kept for the ledger."""

    def __init__(self, name: str):
        self.name, self.steps = name, []

    def __call__(self, obj: dict | None) -> str:
        progress = ((obj or {}).get("status") or {}).get("progress")
        if progress and (not self.steps or self.steps[-1] != progress):
            self.steps.append(progress)
            get_run_logger().info("%s: import %s", self.name, progress)
        return _phase(obj)


@step(CDI_IMPORT)
def cdi_import(job: Job, converted: dict) -> dict:
    cluster, objects = job.cluster(), job.objects
    for obj in (objects.namespace, *objects.config_maps):
        cluster.apply(obj)
    server = None if job.mode == "rebuild" else transfer_server(job.settings)
    volumes = []
    for index, manifest in enumerate(objects.datavolumes):
        image, token = None, None
        if server is not None:
            image = Path(converted["disks"][index]["image"])
            token = server.publish(transfer_path(job.wave, job.vm, index), image)
            cluster.apply(token_secret(job.vm, job.target, index, job.wave, job.maps.namespace, token))
        made = cluster.apply(manifest)
        name = manifest["metadata"]["name"]
        seen = _Progress(name)
        try:
            done = cluster.wait_for("cdi.kubevirt.io/v1beta1", "DataVolume", job.maps.namespace, name,
                                    lambda o: seen(o) in ("Succeeded", "Failed"), job.settings.timeouts.import_,
                                    "imported", since=made)
        finally:
            if token:
                server.retract(token)
        if _phase(done) == "Failed":
            running = next((c for c in done["status"].get("conditions", []) if c["type"] == "Running"), {})
            raise StepFailed("cdi-import-failed", f"CDI could not import {name}: {running.get('message', 'unknown error')}")
        volumes.append({"datavolume": name, "source": next(iter(manifest["spec"]["source"])),
                        "bytes": image.stat().st_size if image else 0, "progress": seen.steps})
    return {"datavolumes": volumes, "bytes": sum(v["bytes"] for v in volumes)}
