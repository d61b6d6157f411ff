"""Each known failure ends in the right ledger state and cause, and a rollback that restores the source."""

from dataclasses import replace
from pathlib import Path

import pytest

from helpers import job_for
from vmwave.adapters.vsphere import connect
from vmwave.adapters.vsphere_ops import power_state
from vmwave_lab.vcenter import seed_disk

pytestmark = pytest.mark.prefect


def broken_vmdk(tmp_path: Path) -> Path:
    path = tmp_path / "broken.vmdk"
    path.write_bytes(b"KDMV" + b"\xff" * 508 + b"garbage" * 1000)  # a VMDK magic with nonsense behind it
    return path


CASES = {
    "vmi-not-running": ("web-01", "boot", lambda vm, lab, tmp: replace(vm, memory_mb=4 << 20), None),
    "cdi-import-failed": ("web-03", "cdi-import", lambda vm, lab, tmp: replace(
        vm, disks=(replace(vm.disks[0], capacity_bytes=1 << 20),)), None),
    "conversion-failed": ("batch-old-01", "convert", lambda vm, lab, tmp: (
        seed_disk(lab, vm.datacenter, vm.disks[0].file, broken_vmdk(tmp)), vm)[1], None),
    "smoke-check-failed": ("web-02", "smoke-test", lambda vm, lab, tmp: vm, [{"tcp": 9, "timeout": 2}]),
}


@pytest.mark.parametrize("cause", sorted(CASES))
def test_a_failure_is_recorded_and_rolled_back(cause, prefect_server, lab_settings, lab, target, by_name, tmp_path):
    from vmwave.errors import VmwaveError
    from vmwave_flows.migrate import migrate_vm

    name, failing_step, prepare, checks = CASES[cause]
    vm = prepare(by_name[name], lab, tmp_path)
    wave = f"w9{sorted(CASES).index(cause) + 10}"
    job = job_for(vm, lab_settings, tmp_path, wave, checks=tuple(checks or ()),
                  timeouts={"shutdown": 60, "import": 60, "boot": 5, "agent": 10})
    cluster = job.cluster()
    if checks:  # smoke checks go through the lab's forwards only: traffic never leaves loopback
        cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "vmwave"}})
        cluster.dynamic.server_side_apply(
            cluster.resource("kubevirt.io/v1", "VirtualMachine"), field_manager="lab-test",
            body={"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": {
                "name": vm.name, "namespace": "vmwave",
                "annotations": {"lab.vmwave.io/forward-ports": ",".join(str(c["tcp"]) for c in checks)}}})
    with pytest.raises(VmwaveError) as failed:  # each step's failure carries its cause in the diagnosis table
        migrate_vm(job)
    assert failed.value.cause == cause
    steps = {s["step"]: s for s in job.ledger().by_vm(wave)[0]["steps"]}
    assert steps[failing_step]["status"] == "failed" and steps[failing_step]["cause"] == cause
    assert steps["rollback"]["status"] == "succeeded"
    assert all(s["status"] in ("rolled_back", "failed", "succeeded") for s in steps.values())
    assert cluster.find("kubevirt.io/v1", "VirtualMachine", "vmwave", {"vmwave.io/wave": wave}) == []
    with connect(target) as si:
        assert power_state(si, vm.moref) == by_name[name].power_state  # the source is as it was
