"""A completed migration is never touched by a later run, whatever its plan, ledger or wave id.

The cluster remembers what is done (a verified VirtualMachine says so), every
object carries the run (ledger) that made it, a run never takes over what
another run made, a rollback removes only its own run's objects, and no
conversion starts on a volume a running VM uses.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from helpers import VMWAVE
from vmwave.adapters.kubernetes import Cluster
from vmwave.adapters.ledger import Ledger
from vmwave.domain.manifests import ANNOTATION_MIGRATED, LABEL_RUN
from vmwave.settings import Settings

pytestmark = pytest.mark.prefect
CDI, KV = "cdi.kubevirt.io/v1beta1", "kubevirt.io/v1"


def cluster_state(cluster: Cluster, names: list[str], volumes: Path) -> dict:
    """Each VM's VirtualMachine and DataVolume (uid, resourceVersion) and its volume's bytes."""
    state = {}
    for name in names:
        vm = cluster.get(KV, "VirtualMachine", "vmwave", name)
        dv = cluster.get(CDI, "DataVolume", "vmwave", f"{name}-disk0")
        state[name] = (
            (vm["metadata"]["uid"], vm["metadata"]["resourceVersion"]),
            (dv["metadata"]["uid"], dv["metadata"]["resourceVersion"]),
            (volumes / "vmwave" / f"{name}-disk0.img").read_bytes(),
        )
    return state


def test_another_plan_and_ledger_leave_a_completed_migration_alone(
    prefect_server, wave_lab, wave_env, planned, tmp_path
):
    from prefect.settings import PREFECT_API_URL

    plan, doc, wave = planned
    wave["vms"] = wave["vms"][:2]
    doc["fence"] = False  # what the cluster remembers, alone: a fenced source says so too (tests/test_fence.py)
    plan.write_text(yaml.safe_dump(doc, sort_keys=False))
    env = {**os.environ, **wave_env, "PREFECT_API_URL": PREFECT_API_URL.value()}
    first = subprocess.run(
        [VMWAVE, "migrate", "--plan", str(plan), "--wave", wave["id"], "--report-dir", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert first.returncode == 0, first.stdout + first.stderr
    cluster = Cluster(wave_lab["VMWAVE_KUBECONFIG"])
    names = [vm["target_name"] for vm in wave["vms"]]
    volumes = Path(wave_lab["VMWAVE_KUBECONFIG"]).parent / "volumes"
    before = cluster_state(cluster, names, volumes)
    first_run = Ledger(Settings.load(env=wave_env).ledger).run_id
    vm = cluster.get(KV, "VirtualMachine", "vmwave", names[0])
    assert vm["metadata"]["labels"][LABEL_RUN] == first_run
    assert vm["metadata"]["annotations"][ANNOTATION_MIGRATED].startswith(f"{wave['id']} ")

    # Another plan (the same VMs in another wave) with another ledger: a second machine, a wiped home directory.
    other = {**doc, "waves": [{**wave, "id": "w777"}]}
    other_plan = tmp_path / "other-plan.yaml"
    other_plan.write_text(yaml.safe_dump(other, sort_keys=False))
    env_b = {**env, "VMWAVE_LEDGER": str(tmp_path / "other-ledger.db")}
    second = subprocess.run(
        [VMWAVE, "migrate", "--plan", str(other_plan), "--wave", "w777", "--report-dir", str(tmp_path)],
        env=env_b,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert second.returncode == 0, second.stdout + second.stderr
    report = (tmp_path / "wave-w777-report.md").read_text()
    assert report.count("already migrated \\(wave " + wave["id"]) == len(names), report
    assert cluster_state(cluster, names, volumes) == before  # not applied, converted, relabelled or deleted

    undone = subprocess.run(
        [VMWAVE, "rollback", "--plan", str(other_plan), "--wave", "w777"],
        env=env_b,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert undone.returncode == 0, undone.stderr
    assert cluster_state(cluster, names, volumes) == before  # the other ledger's rollback removes nothing of it

    # A run of another ledger that finds the objects but no verified migration (one that never finished) stops at
    # the first object it would take over, and its rollback leaves that object where it is.
    cluster.patch(KV, "VirtualMachine", "vmwave", names[0], {"metadata": {"annotations": {ANNOTATION_MIGRATED: None}}})
    env_c = {**env, "VMWAVE_LEDGER": str(tmp_path / "third-ledger.db")}
    third = subprocess.run(
        [VMWAVE, "migrate", "--plan", str(other_plan), "--wave", "w777", "--report-dir", str(tmp_path / "third")],
        env=env_c,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert third.returncode == 1, third.stdout + third.stderr
    steps = {
        s["step"]: s
        for e in Ledger(Settings.load(env=env_c).ledger).by_vm("w777")
        if e["vm"] == wave["vms"][0]["name"]
        for s in e["steps"]
    }
    assert steps["cdi-import"]["cause"] == "owned-by-another-run"
    assert f"made by run {first_run}" in steps["cdi-import"]["error"]
    dv = cluster.get(CDI, "DataVolume", "vmwave", f"{names[0]}-disk0")
    assert (dv["metadata"]["uid"], dv["metadata"]["resourceVersion"]) == before[names[0]][1]
    assert (volumes / "vmwave" / f"{names[0]}-disk0.img").read_bytes() == before[names[0]][2]

    # What the first ledger recorded as done but the cluster no longer has is said, not counted as done; --redo
    # migrates it again.
    gone = wave["vms"][1]
    cluster.delete(KV, "VirtualMachine", "vmwave", names[1])
    cluster.delete(CDI, "DataVolume", "vmwave", f"{names[1]}-disk0")
    again = subprocess.run(
        [VMWAVE, "migrate", "--plan", str(plan), "--wave", wave["id"], "--report-dir", str(tmp_path / "again")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert again.returncode == 1, again.stdout + again.stderr
    assert "recorded-but-gone" in (tmp_path / "again" / f"wave-{wave['id']}-report.md").read_text()
    redone = subprocess.run(
        [
            VMWAVE,
            "migrate",
            "--plan",
            str(plan),
            "--wave",
            wave["id"],
            "--redo",
            gone["name"],
            "--report-dir",
            str(tmp_path / "redo"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert redone.returncode == 0, redone.stdout + redone.stderr
    back = cluster.get(KV, "VirtualMachine", "vmwave", names[1])
    assert back["metadata"]["annotations"][ANNOTATION_MIGRATED].startswith(f"{wave['id']} ")

    # The first ledger undoes its own migration, as it always could.
    rolled = subprocess.run(
        [VMWAVE, "rollback", "--plan", str(plan), "--wave", wave["id"]],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert rolled.returncode == 0, rolled.stderr
    assert cluster.find(KV, "VirtualMachine", "vmwave", {"vmwave.io/wave": wave["id"]}) == []


def test_no_conversion_starts_on_a_volume_a_running_vm_uses(prefect_server, lab_settings, by_name, tmp_path, vm_job):
    from vmwave.errors import VmwaveError
    from vmwave_tasks.convert import convert

    job = vm_job(by_name["batch-old-01"], "w950", convert="virt-v2v")
    cluster = job.clients.cluster
    claim = job.objects.datavolumes[0]["metadata"]["name"]
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "vmwave"}})
    user = {
        "apiVersion": KV,
        "kind": "VirtualMachineInstance",
        "metadata": {"name": "uses-it", "namespace": "vmwave"},
        "spec": {"domain": {"devices": {}}, "volumes": [{"name": "disk0", "dataVolume": {"name": claim}}]},
    }
    cluster.apply(user)
    try:
        with pytest.raises(VmwaveError) as stopped:
            convert(job)
        assert stopped.value.cause == "volume-in-use" and "VirtualMachineInstance vmwave/uses-it" in str(stopped.value)
        assert cluster.find("v1", "Pod", "vmwave", {"vmwave.io/wave": "w950"}) == []  # nothing was converted
    finally:
        cluster.delete(KV, "VirtualMachineInstance", "vmwave", "uses-it")


def test_a_ledger_from_another_lab_knows_none_of_its_vms(prefect_server, wave_lab, wave_env, planned, tmp_path):
    """Two labs of one estate have the same morefs and VM UUIDs but not the same vCenter: a ledger that recorded a
    wave in one migrates every VM of it in the other, and a rollback in one leaves the other's migration alone."""
    from prefect.settings import PREFECT_API_URL
    from vmwave.adapters.vsphere import vcenter_id
    from vmwave_lab import lab as lab_control

    plan, doc, wave = planned
    wave["vms"] = wave["vms"][:2]
    plan.write_text(yaml.safe_dump(doc, sort_keys=False))
    names = [vm["target_name"] for vm in wave["vms"]]
    env = {**os.environ, **wave_env, "PREFECT_API_URL": PREFECT_API_URL.value()}
    first = subprocess.run(
        [VMWAVE, "migrate", "--plan", str(plan), "--wave", wave["id"], "--report-dir", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert first.returncode == 0, first.stdout + first.stderr
    here = Cluster(wave_lab["VMWAVE_KUBECONFIG"])
    before = cluster_state(here, names, Path(wave_lab["VMWAVE_KUBECONFIG"]).parent / "volumes")

    other_lab = lab_control.up(vms=12, state_dir=tmp_path / "other-lab")
    try:
        env_b = {**env, **other_lab}  # the same ledger
        centers = {vcenter_id(Settings.load(env=e).need_vcenter()) for e in (wave_env, other_lab)}
        assert len(centers) == 2 and "" not in centers
        second = subprocess.run(
            [VMWAVE, "migrate", "--plan", str(plan), "--wave", wave["id"], "--report-dir", str(tmp_path / "other")],
            env=env_b,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert second.returncode == 0, second.stdout + second.stderr
        report = (tmp_path / "other" / f"wave-{wave['id']}-report.md").read_text()
        assert "already migrated" not in report and report.count("| succeeded |") == len(names), report
        there = Cluster(other_lab["VMWAVE_KUBECONFIG"])
        for name in names:  # migrated there, step by step: the ledger's record of the first lab skipped nothing
            vm = there.get(KV, "VirtualMachine", "vmwave", name)
            assert vm["metadata"]["annotations"][ANNOTATION_MIGRATED].startswith(f"{wave['id']} ")
        assert {e["key"].split("/")[0] for e in Ledger(Settings.load(env=wave_env).ledger).by_vm(wave["id"])} == centers

        undone = subprocess.run(
            [VMWAVE, "rollback", "--plan", str(plan), "--wave", wave["id"]],
            env=env_b,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert undone.returncode == 0, undone.stderr
        assert there.find(KV, "VirtualMachine", "vmwave", {"vmwave.io/wave": wave["id"]}) == []
        assert cluster_state(here, names, Path(wave_lab["VMWAVE_KUBECONFIG"]).parent / "volumes") == before
    finally:
        lab_control.down(tmp_path / "other-lab")
    rolled = subprocess.run(
        [VMWAVE, "rollback", "--plan", str(plan), "--wave", wave["id"]],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert rolled.returncode == 0, rolled.stderr
    assert here.find(KV, "VirtualMachine", "vmwave", {"vmwave.io/wave": wave["id"]}) == []
