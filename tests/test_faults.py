"""Each known failure ends in the right ledger state and cause, and a rollback that restores the source."""

import shutil
from dataclasses import replace

import pytest

from helpers import small_disk
from vmwave.adapters.vsphere import connect
from vmwave.adapters.vsphere_ops import power_state
from vmwave.domain.diagnosis import cause as cause_of
from vmwave_tasks.undo import rollback

pytestmark = pytest.mark.prefect


HTTPS = {"VMWAVE_VDDK_IMAGE": ""}  # CDI reads the datastore's /folder URL instead of VDDK


def armed(fault: dict):
    def prepare(vm, lab, tmp):
        small_disk(vm, lab)
        lab.inject(**fault)
        return vm

    return prepare


def missing_data_file(vm, lab, tmp):
    small_disk(vm, lab).rename(tmp / "moved-away-flat.vmdk")
    return vm


CASES = {  # cause: (VM, the step that fails, what breaks it, smoke checks, settings, plan entry)
    "vmi-not-running": ("web-01", "boot", lambda vm, lab, tmp: replace(vm, memory_mb=4 << 20), None, {}, {}),
    "cdi-import-failed": (
        "web-03",
        "cdi-import",
        lambda vm, lab, tmp: replace(vm, disks=(replace(vm.disks[0], capacity_bytes=1 << 20),)),
        None,
        {},
        {},
    ),
    "conversion-failed": (
        "batch-old-01",
        "convert",
        lambda vm, lab, tmp: vm,
        None,
        {},
        {"convert": "virt-v2v"},
    ),  # random bytes, no OS: virt-v2v-in-place finds no guest
    "smoke-check-failed": ("web-02", "smoke-test", lambda vm, lab, tmp: vm, [{"tcp": 9, "timeout": 2}], {}, {}),
    "source-auth-failed": (
        "app-01",
        "cdi-import",
        armed({"datastore_fail": {"status": 401, "times": 1}}),
        None,
        HTTPS,
        {},
    ),
    "source-disk-missing": ("App_01", "cdi-import", missing_data_file, None, {}, {}),
    "vcenter-unreachable": (
        "static-2",
        "cdi-import",
        armed({"datastore_fail": {"status": 0, "times": 16}}),
        None,
        HTTPS,
        {},
    ),  # every attempt of every importer restart: the connection drops
}
NEEDS_V2V = pytest.mark.skipif(not shutil.which("virt-v2v-in-place"), reason="apt-get install -y virt-v2v")


@pytest.mark.parametrize(
    "cause", [pytest.param(c, marks=NEEDS_V2V) if c == "conversion-failed" else c for c in sorted(CASES)]
)
def test_a_failure_is_recorded_and_rolled_back(
    cause, prefect_server, lab_settings, lab, target, by_name, tmp_path, vm_job
):
    from vmwave.errors import VmwaveError
    from vmwave_flows.migrate import migrate_vm

    name, failing_step, prepare, checks, env, entry = CASES[cause]
    vm = prepare(by_name[name], lab, tmp_path)
    wave = f"w9{sorted(CASES).index(cause) + 10}"
    job = vm_job(
        vm,
        wave,
        smoke=checks or [],
        env=env,
        timeouts={"shutdown": 60, "import": 60, "boot": 5, "agent": 10, "convert": 600},
        **entry,
    )
    cluster = job.clients.cluster
    if checks:  # smoke checks go through the lab's forwards only: traffic never leaves loopback
        cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "vmwave"}})
        cluster.dynamic.server_side_apply(
            cluster.resource("kubevirt.io/v1", "VirtualMachine"),
            field_manager="lab-test",
            body={
                "apiVersion": "kubevirt.io/v1",
                "kind": "VirtualMachine",
                "metadata": {
                    "name": vm.name,
                    "namespace": "vmwave",
                    "labels": {"vmwave.io/run": job.run},  # as if the run made it
                    "annotations": {"lab.vmwave.io/forward-ports": ",".join(str(c["tcp"]) for c in checks)},
                },
            },
        )
    with pytest.raises(VmwaveError) as failed:  # each step's failure carries its cause in the diagnosis table
        migrate_vm(job)
    assert failed.value.cause == cause and cause_of(cause).fix in str(failed.value)  # the table's fix, said
    steps = {s["step"]: s for s in job.clients.steps.by_vm(wave)[0]["steps"]}
    assert steps[failing_step]["status"] == "failed" and steps[failing_step]["cause"] == cause
    assert steps["rollback"]["status"] == "succeeded"
    assert all(s["status"] in ("rolled_back", "failed", "succeeded", "skipped") for s in steps.values())
    kept = cluster.find("cdi.kubevirt.io/v1beta1", "DataVolume", "vmwave", {"vmwave.io/wave": wave})
    copied = steps.get("cdi-import", {}).get("status") == "rolled_back"  # a failure after the copy keeps it
    assert len(kept) == (len(vm.disks) if copied else 0)
    assert all(dv["metadata"]["labels"]["vmwave.io/kept-for-retry"] == "true" for dv in kept)
    rollback(job)  # a person's `vmwave rollback` removes the kept copy too
    for api_version, kind in (
        ("kubevirt.io/v1", "VirtualMachine"),
        ("cdi.kubevirt.io/v1beta1", "DataVolume"),
        ("v1", "Pod"),
    ):
        assert cluster.find(api_version, kind, "vmwave", {"vmwave.io/wave": wave}) == [], kind  # all undone
    with connect(target) as si:
        assert power_state(si, vm.moref) == by_name[name].power_state  # the source is as it was
    moved = tmp_path / "moved-away-flat.vmdk"
    if moved.exists():  # the disk file comes back for the tests after this one
        small_disk(vm, lab)
