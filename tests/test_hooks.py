"""Hooks around cutover: the plan's Jobs run to completion in the cluster; a failing one rolls the VM back."""

import pytest
import yaml

from helpers import estate_records
from vmwave.adapters.files import load_policy
from vmwave.domain.diagnosis import cause
from vmwave.domain.hooks import hook_job
from vmwave.domain.plan import make_plan, parse_plan
from vmwave.errors import InputError, VmwaveError

IMAGE = "registry.access.redhat.com/ubi9/ubi-minimal:latest"  # an image the lab runs


def hook(script: str) -> dict:
    return {"image": IMAGE, "command": ["/bin/sh", "-c", script], "service_account": "", "deadline": 60}


def test_the_plan_takes_hooks_per_wave_and_per_vm_and_checks_them():
    doc = make_plan(estate_records(), load_policy(), None, "estate")
    wave = doc["waves"][0]
    wave["hooks"] = {"pre_cutover": {"image": IMAGE, "command": ["/drain.sh"]}}
    wave["vms"][0]["hooks"] = {"post_boot": {"image": IMAGE, "command": ["/check.sh"], "deadline": 30}}
    parsed = parse_plan(yaml.safe_load(yaml.safe_dump(doc)), "plan.yaml").waves[0].vms
    assert parsed[0].hooks == {
        "pre_cutover": {"image": IMAGE, "command": ["/drain.sh"], "service_account": "", "deadline": 600},
        "post_boot": {"image": IMAGE, "command": ["/check.sh"], "service_account": "", "deadline": 30},
    }
    assert all("pre_cutover" in vm.hooks for vm in parsed)  # the wave's hook, for every VM of it
    wave["vms"][0]["hooks"] = {"post_boot": {"image": IMAGE, "command": []}}
    with pytest.raises(InputError, match="command: is empty"):
        parse_plan(doc, "plan.yaml")
    wave["vms"][0]["hooks"] = {"after_boot": {"image": IMAGE, "command": ["x"]}}
    with pytest.raises(InputError, match="after_boot"):
        parse_plan(doc, "plan.yaml")


def test_a_hook_job_runs_once_and_knows_its_vm():
    vm = estate_records()[0]
    job = hook_job(vm, "db-01", "w004", "vmwave", "pre_cutover", {**hook("true"), "service_account": "ops"})
    assert job["metadata"]["name"] == "db-01-w004-pre-cutover" and job["spec"]["backoffLimit"] == 0
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["serviceAccountName"] == "ops"
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    assert env == {
        "VMWAVE_VM": vm.name,
        "VMWAVE_TARGET": "db-01",
        "VMWAVE_NAMESPACE": "vmwave",
        "VMWAVE_WAVE": "w004",
        "VMWAVE_HOOK": "pre_cutover",
    }
    assert job["metadata"]["labels"]["vmwave.io/wave"] == "w004"


def test_hooks_run_around_cutover_and_a_failing_one_rolls_the_vm_back(
    prefect_server, lab_settings, by_name, tmp_path, vm_job
):
    from vmwave_flows.migrate import migrate_vm

    good = vm_job(
        by_name["static-1"],
        "w931",
        mode="rebuild",
        hooks={"pre_cutover": hook('echo "draining $VMWAVE_VM"'), "post_boot": hook("echo registered")},
    )
    cluster = good.clients.cluster
    try:
        migrate_vm(good)
        steps = {s["step"]: s for s in good.clients.steps.by_vm("w931")[0]["steps"]}
        assert steps["pre-cutover-hook"]["detail"]["log"] == ["draining static-1"]
        assert steps["post-boot-hook"]["detail"]["log"] == ["registered"]
        assert steps["pre-cutover-hook"]["finished_at"] <= steps["snapshot"]["started_at"]
        assert steps["post-boot-hook"]["started_at"] >= steps["smoke-test"]["finished_at"]
    finally:
        for api_version, kind in (
            ("kubevirt.io/v1", "VirtualMachine"),
            ("cdi.kubevirt.io/v1beta1", "DataVolume"),
            ("batch/v1", "Job"),
        ):
            for obj in cluster.find(api_version, kind, "vmwave", {"vmwave.io/wave": "w931"}):
                cluster.delete(api_version, kind, "vmwave", obj["metadata"]["name"])

    bad = vm_job(
        by_name["static-1"],
        "w932",
        mode="rebuild",
        hooks={"post_boot": hook("echo 'the app did not answer'; exit 3")},
    )
    with pytest.raises(VmwaveError) as failed:
        migrate_vm(bad)
    assert failed.value.cause == "hook-failed" and "the app did not answer" in str(failed.value)
    assert cause("hook-failed").fix in str(failed.value)
    steps = {s["step"]: s for s in bad.clients.steps.by_vm("w932")[0]["steps"]}
    assert steps["post-boot-hook"]["status"] == "failed" and steps["rollback"]["status"] == "succeeded"
    for api_version, kind in (("kubevirt.io/v1", "VirtualMachine"), ("batch/v1", "Job")):
        assert cluster.find(api_version, kind, "vmwave", {"vmwave.io/wave": "w932"}) == [], kind
