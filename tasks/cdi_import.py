"""Step 3: a DataVolume per disk, fed from vmwave's transfer server over HTTPS with a per-image token.

A rebuild (P2) takes its boot disk from the template image the maps name instead, and blank data disks.
"""

from __future__ import annotations

import base64
import threading
from pathlib import Path

from prefect import get_run_logger

from vmwave.adapters.kubernetes import Cluster
from vmwave.adapters.transfer import TransferServer
from vmwave.domain.manifests import datavolume, source_labels
from vmwave.planning import load_maps
from vmwave.wave_objects import disk_source
from vmwave_tasks.job import Job, StepFailed, Transfer
from vmwave_tasks.step import step

CA_CONFIGMAP = "vmwave-transfer-ca"
_servers: dict[tuple[str, str], TransferServer] = {}
_lock = threading.Lock()


def transfer_server(settings: Transfer) -> TransferServer:
    """One transfer server per process, started on first use; it lives as long as the worker."""
    with _lock:
        key = (settings.cert, settings.key)
        if key not in _servers:
            _servers[key] = TransferServer(Path(settings.cert), Path(settings.key)).__enter__()
        return _servers[key]


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


@step("cdi-import")
def cdi_import(job: Job, converted: dict) -> dict:
    maps = load_maps(job.maps)
    cluster = Cluster(job.kubeconfig)
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": maps.namespace}})
    cluster.apply({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": CA_CONFIGMAP, "namespace": maps.namespace},
                   "data": {"ca.pem": Path(job.transfer.ca).read_text()}})
    volumes = []
    rebuild = job.mode == "rebuild"
    images = [None] * len(job.vm.disks) if rebuild else [Path(d["image"]) for d in converted["disks"]]
    for index, image in enumerate(images):
        token = None
        if rebuild:  # the boot disk from the template image, data disks blank
            source = disk_source(job.mode, job.vm, index, maps, None)
        else:
            url, token = transfer_server(job.transfer).publish(image)
            secret_name = f"vmwave-{job.vm.instance_uuid[:8]}-disk{index}-token"
            cluster.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {
                "name": secret_name, "namespace": maps.namespace, "labels": source_labels(job.vm, job.wave)},
                "data": {"authorization": base64.b64encode(f"Authorization: Bearer {token}".encode()).decode()}})
            source = {"http": {"url": url, "certConfigMap": CA_CONFIGMAP, "secretExtraHeaders": [secret_name]}}
        manifest = datavolume(job.vm, index, maps, job.wave, source)
        made = cluster.apply(manifest)
        name = manifest["metadata"]["name"]
        seen = _Progress(name)
        try:
            done = cluster.wait_for("cdi.kubevirt.io/v1beta1", "DataVolume", maps.namespace, name,
                                    lambda o: seen(o) in ("Succeeded", "Failed"), job.timeouts["import"],
                                    "imported", since=made)
        finally:
            if token:
                transfer_server(job.transfer).retract(token)
        if _phase(done) == "Failed":
            running = next((c for c in done["status"].get("conditions", []) if c["type"] == "Running"), {})
            raise StepFailed(f"CDI could not import {name}: {running.get('message', 'unknown error')}",
                             "check the DataVolume's events; the transfer server must be reachable from the cluster",
                             "cdi-import-failed")
        volumes.append({"datavolume": name, "source": next(iter(source)), "bytes": image.stat().st_size if image else 0,
                        "progress": seen.steps})
    return {"datavolumes": volumes, "bytes": sum(v["bytes"] for v in volumes)}
