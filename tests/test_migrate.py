"""One VM through the seven steps on the lab, with the ledger; a rerun skips; a failure rolls back."""

import subprocess
from pathlib import Path

import pytest

from vmwave.adapters.vsphere import connect
from vmwave.adapters.vsphere_ops import power_state, snapshots, vm_ref
from vmwave_tasks.job import StepFailed
from vmwave_tasks.undo import rollback

pytestmark = pytest.mark.prefect


def volume(lab_settings: dict, pvc: str, namespace: str = "vmwave") -> Path:
    """The file holding a lab PVC's bytes."""
    return Path(lab_settings["VMWAVE_KUBECONFIG"]).parent / "volumes" / namespace / f"{pvc}.img"


def same_bytes(source_vmdk: Path, pvc: Path) -> bool:
    """`qemu-img compare`: the guest sees the same disk in the PVC as on the datastore."""
    return subprocess.run(["qemu-img", "compare", "-q", "-f", "raw", str(pvc), str(source_vmdk)]).returncode == 0


def du(folder: Path) -> int:
    return sum(f.stat().st_blocks * 512 for f in folder.rglob("*") if f.is_file())


def test_a_vm_migrates_and_a_rerun_changes_nothing(
    prefect_server, lab_settings, lab, target, by_name, tmp_path, vm_job
):
    from vmwave_flows.migrate import migrate_vm

    vm = by_name["win-app-01"]
    job = vm_job(vm, "w900")
    result = migrate_vm(job)
    assert result["result"] == "succeeded"
    ledger = job.clients.steps
    [entry] = ledger.by_vm("w900")
    assert [(s["step"], s["status"]) for s in entry["steps"]] == [
        ("snapshot", "succeeded"),
        ("cdi-import", "succeeded"),
        ("convert", "skipped"),
        ("network-attach", "succeeded"),
        ("boot", "succeeded"),
        ("guest-agent", "succeeded"),
        ("smoke-test", "succeeded"),  # the Windows plugin's checks: the agent says Windows, RDP answers
        ("fence", "succeeded"),
    ]
    imported = ledger.get("w900", vm.key, "cdi-import")["detail"]
    assert imported["source"] == "vddk" and imported["disks"][0]["phase"] == "Succeeded"
    assert imported["disks"][0]["progress"] == "100.0%"  # status.progress was followed to the end
    cluster = job.clients.cluster
    got = cluster.get("kubevirt.io/v1", "VirtualMachine", "vmwave", "win-app-01")
    assert got["status"]["printableStatus"] == "Running"
    assert got["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"][0]["macAddress"] == vm.nics[0].mac
    with connect(target) as si:
        assert power_state(si, vm.moref) == "poweredOff"  # cold: the source stays off after cutover
        assert "vmwave-w900" in snapshots(si, vm_ref(si, vm.moref))
    assert same_bytes(
        lab.datastore_root / vm.datacenter / "ds-sas-01" / "win-app-01" / "win-app-01_0.vmdk",
        volume(lab_settings, "win-app-01-disk0"),
    )
    assert not (tmp_path / "work").exists() or du(tmp_path / "work") < 1 << 20  # no disk passed through the worker

    rv = got["metadata"]["resourceVersion"]
    attempts = [s["attempts"] for s in job.clients.steps.by_vm("w900")[0]["steps"]]
    migrate_vm(job)  # rerun: every step is in the ledger as done
    assert [s["attempts"] for s in job.clients.steps.by_vm("w900")[0]["steps"]] == attempts
    assert cluster.get("kubevirt.io/v1", "VirtualMachine", "vmwave", "win-app-01")["metadata"]["resourceVersion"] == rv
    assert len(cluster.find("cdi.kubevirt.io/v1beta1", "DataVolume", "vmwave", {"vmwave.io/wave": "w900"})) == 1
    rollback(job)  # a verified migration stays migrated for every later run: the tests after this one start afresh
    assert cluster.find("kubevirt.io/v1", "VirtualMachine", "vmwave", {"vmwave.io/wave": "w900"}) == []


def test_an_agent_that_never_connects_rolls_back(
    prefect_server, lab_settings, target, by_name, tmp_path, agent_never_answers, vm_job
):
    from vmwave_flows.migrate import migrate_vm

    vm = by_name["web-02"]
    job = vm_job(vm, "w901")
    cluster = job.clients.cluster
    agent_never_answers(lab_settings["VMWAVE_KUBECONFIG"], "vmwave", "web-02", job.settings.ledger)
    with pytest.raises(StepFailed, match="guest agent of web-02 never connected"):
        migrate_vm(job)
    steps = {s["step"]: s for s in job.clients.steps.by_vm("w901")[0]["steps"]}
    assert steps["guest-agent"]["status"] == "failed" and steps["guest-agent"]["cause"] == "guest-agent-not-connected"
    assert steps["rollback"]["status"] == "succeeded" and steps["boot"]["status"] == "rolled_back"
    assert cluster.get("kubevirt.io/v1", "VirtualMachine", "vmwave", "web-02") is None
    [kept] = cluster.find("cdi.kubevirt.io/v1beta1", "DataVolume", "vmwave", {"vmwave.io/wave": "w901"})
    assert kept["metadata"]["labels"]["vmwave.io/kept-for-retry"] == "true"  # its copy, for `vmwave retry`
    assert steps["cdi-import"]["status"] == "rolled_back" and steps["cdi-import"]["detail"]["kept_for_retry"]
    with connect(target) as si:
        assert power_state(si, vm.moref) == "poweredOn"  # the source is back
        assert "vmwave-w901" in snapshots(si, vm_ref(si, vm.moref))  # and its snapshot kept
    rollback(job)  # a person's rollback removes the kept copy too
    assert cluster.find("cdi.kubevirt.io/v1beta1", "DataVolume", "vmwave", {"vmwave.io/wave": "w901"}) == []


def test_a_rebuild_takes_the_template_image_instead_of_copying(
    prefect_server, lab_settings, target, by_name, tmp_path, vm_job
):
    from vmwave_flows.migrate import migrate_vm

    job = vm_job(by_name["static-1"], "w902", mode="rebuild")
    try:
        migrate_vm(job)
        steps = {s["step"]: s["status"] for s in job.clients.steps.by_vm("w902")[0]["steps"]}
        assert steps["convert"] == "skipped" and steps["cdi-import"] == "succeeded"
        dv = job.clients.cluster.get("cdi.kubevirt.io/v1beta1", "DataVolume", "vmwave", "static-1-disk0")
        assert dv["spec"]["source"] == {"registry": {"url": "docker://registry.lab/debian12:latest"}}
        assert dv["status"]["phase"] == "Succeeded"
    finally:
        rollback(job)  # the tests after this one find static-1 as the lab made it


def test_a_vm_whose_plan_says_off_is_verified_running_then_left_stopped(
    prefect_server, lab_settings, by_name, tmp_path, vm_job
):
    from vmwave_flows.migrate import migrate_vm

    job = vm_job(by_name["static-2"], "w907", mode="rebuild", target_power_state="off")
    cluster = job.clients.cluster
    try:
        migrate_vm(job)
        steps = {s["step"]: s["status"] for s in job.clients.steps.by_vm("w907")[0]["steps"]}
        assert steps["boot"] == steps["guest-agent"] == "succeeded"  # it ran to be checked
        assert cluster.get("kubevirt.io/v1", "VirtualMachine", "vmwave", "static-2")["spec"]["runStrategy"] == "Halted"
        assert cluster.get("kubevirt.io/v1", "VirtualMachineInstance", "vmwave", "static-2") is None
    finally:
        rollback(job)


def test_a_manual_migration_waits_for_a_person(prefect_server, lab_settings, target, by_name, tmp_path, vm_job):
    """P5: paused before cutover and after boot; approved in the UI (here: the API) it finishes; refused, it rolls
    back."""
    import threading
    import time
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
    from prefect.flow_runs import resume_flow_run

    from vmwave_flows.migrate import NotApproved, migrate_vm

    def answer(run_name: str, answers: list[dict]) -> None:
        with get_client(sync_client=True) as client:
            for reply in answers:
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:  # a person watching the UI for the paused run
                    runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[run_name])))
                    if runs and runs[0].state.is_paused():
                        resume_flow_run(runs[0].id, run_input=reply)
                        break
                    time.sleep(0.5)

    job = vm_job(by_name["static-2"], "w903", mode="manual")
    person = threading.Thread(target=answer, args=("w903-static-2", [{"approve": True}, {"approve": True}]))
    person.start()
    assert migrate_vm(job)["result"] == "succeeded"
    person.join()
    rollback(job)  # the tests after this one find static-2 as the lab made it

    refused = vm_job(by_name["App_01"], "w904", mode="manual")
    person = threading.Thread(target=answer, args=("w904-App_01", [{"approve": False, "note": "DBA says no"}]))
    person.start()
    with pytest.raises(NotApproved, match="not approved before-cutover: DBA says no"):
        migrate_vm(refused)
    person.join()
    with connect(target) as si:
        assert power_state(si, by_name["App_01"].moref) == "poweredOn"  # nothing was touched


def test_keep_for_debug_labels_what_a_failed_migration_made(
    prefect_server, lab_settings, target, by_name, tmp_path, agent_never_answers, vm_job
):
    from vmwave_flows.migrate import migrate_vm

    vm = by_name["db-01"]
    job = vm_job(vm, "w905", keep_for_debug=True)
    cluster = job.clients.cluster
    agent_never_answers(lab_settings["VMWAVE_KUBECONFIG"], "vmwave", "db-01", job.settings.ledger)
    try:
        with pytest.raises(StepFailed, match="never connected"):
            migrate_vm(job)
        kept = cluster.get("kubevirt.io/v1", "VirtualMachine", "vmwave", "db-01")
        assert kept["metadata"]["labels"]["vmwave.io/kept-for-debug"] == "true"
        disks = cluster.find("cdi.kubevirt.io/v1beta1", "DataVolume", "vmwave", {"vmwave.io/wave": "w905"})
        assert len(disks) == 2 and all(d["metadata"]["labels"]["vmwave.io/kept-for-debug"] == "true" for d in disks)
        rollback = job.clients.steps.get("w905", vm.key, "rollback")
        assert (
            rollback["status"] == "succeeded" and "kept VirtualMachine/db-01" in rollback["detail"]["boot"]["cluster"]
        )
        with connect(target) as si:
            assert power_state(si, vm.moref) == "poweredOn"  # kept objects or not, the source runs again
    finally:
        for api_version, kind in (("kubevirt.io/v1", "VirtualMachine"), ("cdi.kubevirt.io/v1beta1", "DataVolume")):
            for obj in cluster.find(api_version, kind, "vmwave", {"vmwave.io/wave": "w905"}):
                cluster.delete(api_version, kind, "vmwave", obj["metadata"]["name"])


def test_a_512_mib_disk_streams_into_its_pvc_and_never_through_the_worker(
    prefect_server, lab_settings, lab, target, by_name, tmp_path, vm_job
):
    """Over HTTPS from the datastore (no VDDK): the PVC holds the disk's bytes; the work directory stays empty."""
    import threading
    from dataclasses import replace

    from vmwave.adapters.vsphere_ops import power_on
    from vmwave_flows.migrate import migrate_vm
    from vmwave_lab.vcenter import write_disk

    vm = by_name["web-03"]
    flat = write_disk(lab, vm.datacenter, vm.disks[0].file, 512, 512 << 10, "web-03/512")
    vm = replace(vm, disks=(replace(vm.disks[0], capacity_bytes=512 << 20),))
    job = vm_job(vm, "w906", env={"VMWAVE_VDDK_IMAGE": ""})
    work, peak, done = tmp_path / "work", [0], threading.Event()

    def watch() -> None:  # measure, not synchronise: how big the work directory ever got
        while not done.wait(0.05):
            peak[0] = max(peak[0], du(work) if work.exists() else 0)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        assert migrate_vm(job)["result"] == "succeeded"
    finally:
        done.set()
        watcher.join()
    assert job.clients.steps.get("w906", vm.key, "cdi-import")["detail"]["source"] == "http"
    assert same_bytes(flat, volume(lab_settings, "web-03-disk0"))
    assert peak[0] < 4 << 20, peak[0]
    cluster = job.clients.cluster
    cluster.delete("kubevirt.io/v1", "VirtualMachine", "vmwave", "web-03")
    cluster.delete("cdi.kubevirt.io/v1beta1", "DataVolume", "vmwave", "web-03-disk0")
    with connect(target) as si:
        power_on(si, vm.moref)  # the source as the other tests know it
