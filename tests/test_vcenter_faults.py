"""vCenter on a bad day: 503s, a failing task, an expired session, a download cut mid-way.

Each fault is armed in the lab vCenter (lab/vcsim/faults.go) and fires once;
the step records a failed attempt, retries, and finishes as if nothing happened.
"""

import subprocess
import uuid

import pytest

from helpers import job_for
from vmwave.adapters.vsphere import connect
from vmwave.adapters.vsphere_ops import snapshots, vm_ref

pytestmark = pytest.mark.prefect

SNAPSHOT_FAULTS = {
    "sdk-503": lambda vm: {"sdk_status": [503]},
    "task-fault": lambda vm: {"fail_task": {"moref": vm.moref, "method": "CreateSnapshot_Task", "times": 1}},
    "session-expired": lambda vm: {"expire_sessions": 1},
}


@pytest.mark.parametrize("fault", sorted(SNAPSHOT_FAULTS))
def test_a_vcenter_fault_is_retried(fault, prefect_server, lab, lab_settings, target, by_name, tmp_path):
    from vmwave_tasks.snapshot import snapshot

    vm = by_name["app-01"]
    wave = f"wf-{fault}-{uuid.uuid4().hex[:6]}"  # a snapshot name no earlier run took: the task must run
    job = job_for(vm, lab_settings, tmp_path, wave, mode="rebuild")  # a snapshot, no shutdown
    lab.inject(**SNAPSHOT_FAULTS[fault](vm))
    detail = snapshot(job)
    row = job.ledger().get(wave, vm.moref, "snapshot")
    assert row["status"] == "succeeded" and row["attempt"] == 2  # one failed attempt, then the retry
    assert detail["snapshot"] == f"vmwave-{wave}"
    with connect(target) as si:
        assert f"vmwave-{wave}" in snapshots(si, vm_ref(si, vm.moref))


def test_a_download_cut_mid_way_resumes_with_range(prefect_server, lab, lab_settings, target, by_name, tmp_path):
    from vmwave_tasks.convert import convert

    vm = by_name["win-app-01"]  # 16 MiB of real bytes in its disk
    job = job_for(vm, lab_settings, tmp_path, "wf-cut")
    lab.inject(cut_download_after=5 << 20)
    detail = convert(job)
    row = job.ledger().get("wf-cut", vm.moref, "convert")
    assert row["status"] == "succeeded" and row["attempt"] == 2
    assert detail["resumed_bytes"] >= 5 << 20  # the second attempt asked only for the rest
    seeded = lab.datastore_root / vm.datacenter / "ds-sas-01" / "win-app-01" / "win-app-01_0.vmdk"
    assert detail["bytes"] == seeded.stat().st_size

    same = subprocess.run(["qemu-img", "compare", "-f", "qcow2", "-F", "vmdk", detail["disks"][0]["image"], str(seeded)],
                          capture_output=True, text=True)
    assert same.returncode == 0, same.stdout + same.stderr  # byte for byte what vCenter holds
