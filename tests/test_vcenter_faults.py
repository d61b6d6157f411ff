"""vCenter on a bad day: 503s, a failing task, an expired session, a datastore stream cut mid-way.

Each fault is armed in the lab vCenter (lab/vcsim/faults.go) and fires once;
the step records a failed attempt, retries, and finishes as if nothing happened.
"""

import subprocess
import uuid
from pathlib import Path

import pytest

from helpers import small_disk
from vmwave.adapters.vsphere import connect
from vmwave.adapters.vsphere_ops import snapshots, vm_ref

pytestmark = pytest.mark.prefect

SNAPSHOT_FAULTS = {
    "sdk-503": lambda vm: {"sdk_status": [503]},
    "task-fault": lambda vm: {"fail_task": {"moref": vm.moref, "method": "CreateSnapshot_Task", "times": 1}},
    "session-expired": lambda vm: {"expire_sessions": 1},
}


@pytest.mark.parametrize("fault", sorted(SNAPSHOT_FAULTS))
def test_a_vcenter_fault_is_retried(fault, prefect_server, lab, lab_settings, target, by_name, tmp_path, vm_job):
    from vmwave_tasks.snapshot import snapshot

    vm = by_name["app-01"]
    wave = f"wf-{fault}-{uuid.uuid4().hex[:6]}"  # a snapshot name no earlier run took: the task must run
    job = vm_job(vm, wave, mode="rebuild")  # a snapshot, no shutdown
    lab.inject(**SNAPSHOT_FAULTS[fault](vm))
    detail = snapshot(job)
    row = job.clients.steps.get(wave, vm.key, "snapshot")
    assert row["status"] == "succeeded" and row["attempt"] == 2  # one failed attempt, then the retry
    assert detail["snapshot"] == f"vmwave-{wave}"
    with connect(target) as si:
        assert f"vmwave-{wave}" in snapshots(si, vm_ref(si, vm.moref))


def test_a_datastore_stream_cut_mid_way_restarts_the_importer(
    prefect_server, lab, lab_settings, target, by_name, tmp_path, vm_job
):
    from vmwave_tasks.cdi_import import cdi_import

    vm = by_name["batch-old-01"]
    seeded = small_disk(vm, lab, data_mb=16)
    job = vm_job(vm, "wf-cut", env={"VMWAVE_VDDK_IMAGE": ""})  # over HTTPS from /folder
    lab.inject(cut_download_after=5 << 20)
    detail = cdi_import(job, {"snapshot": None}, {})  # a cold copy: no snapshot to name, no precopy
    row = job.clients.steps.get("wf-cut", vm.key, "cdi-import")
    assert row["status"] == "succeeded" and row["attempt"] == 1 and detail["source"] == "http"
    dv = job.clients.cluster.get("cdi.kubevirt.io/v1beta1", "DataVolume", "vmwave", "batch-old-01-disk0")
    assert dv["status"]["restartCount"] == 1  # CDI restarted its importer, as its pod would be
    volume = Path(lab_settings["VMWAVE_KUBECONFIG"]).parent / "volumes" / "vmwave" / "batch-old-01-disk0.img"
    same = subprocess.run(
        ["qemu-img", "compare", "-f", "raw", str(volume), str(seeded)], capture_output=True, text=True
    )
    assert same.returncode == 0, same.stdout + same.stderr  # byte for byte what vCenter holds
    job.clients.cluster.delete("cdi.kubevirt.io/v1beta1", "DataVolume", "vmwave", "batch-old-01-disk0")
