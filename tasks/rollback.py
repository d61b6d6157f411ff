"""Undo one VM's migration: cluster objects removed (or kept, labelled), the source powered on again."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NONE

from vmwave.adapters.kubernetes import Cluster
from vmwave.adapters.ledger import Ledger
from vmwave.adapters.vsphere import connect
from vmwave.adapters.vsphere_ops import power_on
from vmwave.domain.manifests import LABEL_UUID, LABEL_WAVE
from vmwave.planning import load_maps
from vmwave_tasks.job import Job

KINDS = [("kubevirt.io/v1", "VirtualMachine"), ("cdi.kubevirt.io/v1beta1", "DataVolume"), ("v1", "Secret")]


@task(name="rollback", retries=3, retry_delay_seconds=[2, 10, 30], cache_policy=NONE, persist_result=False)
def rollback(job: Job, was_on: bool, keep_for_debug: bool = False) -> dict:
    """Never deletes the source; keeps its vmwave snapshot until someone verifies and removes it."""
    ledger = Ledger(job.ledger)
    ledger.start(job.wave, job.vm.moref, job.vm.name, "rollback")
    removed = []
    if not keep_for_debug:
        cluster = Cluster(job.kubeconfig)
        namespace = load_maps(job.maps).namespace
        for api_version, kind in KINDS:
            for obj in cluster.find(api_version, kind, namespace, {LABEL_UUID: job.vm.instance_uuid, LABEL_WAVE: job.wave}):
                if cluster.delete(api_version, kind, namespace, obj["metadata"]["name"]):
                    removed.append(f"{kind}/{obj['metadata']['name']}")
    powered = False
    if was_on:
        with connect(job.vcenter) as si:
            powered = power_on(si, job.vm.moref)
    for row in ledger.rows(job.wave):  # what succeeded is undone now: a rerun must do it again (the snapshot is reused)
        if row["moref"] == job.vm.moref and row["step"] != "rollback" and row["status"] == "succeeded":
            ledger.finish(job.wave, job.vm.moref, row["step"], "rolled_back", detail=row["detail"])
    detail = {"removed": removed, "source_powered_on": powered, "kept": keep_for_debug}
    ledger.finish(job.wave, job.vm.moref, "rollback", detail=detail)
    return detail
