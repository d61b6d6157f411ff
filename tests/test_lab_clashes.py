"""VMs already in the target cluster: the plan names the MACs and names they would clash with, the wave refuses."""

import os
import subprocess

import pytest
import yaml

from helpers import VMWAVE
from vmwave.adapters.kubernetes import Cluster
from vmwave.errors import VmwaveError
from vmwave.settings import Settings
from vmwave_tasks.clients import open_clients
from vmwave_tasks.job import Choices
from vmwave_tasks.wave import planned_wave, prepare_wave


def foreign_vm(name: str, mac: str) -> dict:
    """A VirtualMachine someone made by hand, not by vmwave: no source label."""
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {"name": name, "namespace": "vmwave"},
        "spec": {
            "runStrategy": "Halted",
            "template": {
                "spec": {
                    "domain": {
                        "devices": {"interfaces": [{"name": "nic0", "masquerade": {}, "macAddress": mac}]},
                        "memory": {"guest": "128Mi"},
                    },
                    "networks": [{"name": "nic0", "pod": {}}],
                }
            },
        },
    }


def test_the_plan_and_the_wave_see_vms_already_in_the_cluster(lab_settings, records, by_name, tmp_path):
    cluster = Cluster(lab_settings["VMWAVE_KUBECONFIG"])
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "vmwave"}})
    web_mac = by_name["web-01"].nics[0].mac
    assert cluster.get("kubevirt.io/v1", "VirtualMachine", "vmwave", "gpu-render-01") is None  # never migrated here
    cluster.apply(foreign_vm("gpu-render-01", "02:00:00:00:00:01"))  # takes gpu-render-01's name
    cluster.apply(foreign_vm("hand-made", web_mac))  # takes web-01's MAC
    try:
        plan = tmp_path / "plan.yaml"
        run = subprocess.run(
            [VMWAVE, "plan", "--out", str(plan)], capture_output=True, text=True, env={**os.environ, **lab_settings}
        )
        assert run.returncode == 0, run.stderr
        assert "checked against the" in run.stderr
        vms = {vm["name"]: vm for wave in yaml.safe_load(plan.read_text())["waves"] for vm in wave["vms"]}
        concerns = lambda name: {c["id"]: c for c in vms[name]["concerns"]}  # noqa: E731
        assert "vmwave/gpu-render-01 already exists" in concerns("gpu-render-01")["cluster_name_clash"]["message"]
        assert "vmwave/hand-made" in concerns("web-01")["cluster_mac_clash"]["message"]
        assert "cluster_name_clash" not in concerns("web-02") and "cluster_mac_clash" not in concerns("web-02")

        waves = yaml.safe_load(plan.read_text())["waves"]
        wave = next(w for w in waves if any(v["name"] == "gpu-render-01" for v in w["vms"]))
        settings = Settings.load(env=lab_settings)
        wave_plan = planned_wave(str(plan), wave["id"], settings, True)
        with open_clients(settings) as clients:
            with pytest.raises(VmwaveError, match="VirtualMachine vmwave/gpu-render-01 already exists and is not"):
                prepare_wave.fn(wave_plan, records, settings, clients, Choices(ignore_window=True))
    finally:
        for name in ("gpu-render-01", "hand-made"):
            cluster.delete("kubevirt.io/v1", "VirtualMachine", "vmwave", name)
