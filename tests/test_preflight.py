"""`vmwave preflight` against the lab's cluster and vCenter: every problem named once with its fix, nothing
changed; the same plan fixed passes; `vmwave migrate` refuses the broken wave with the same checks."""

from __future__ import annotations

import os
import subprocess

import pytest
import yaml

from pyVmomi import vim

from helpers import VMWAVE
from vmwave.adapters.kubernetes import Cluster
from vmwave.adapters.vsphere import connect
from vmwave.settings import Settings
from vmwave_lab import lab as lab_control
from vmwave_lab import vcenter

pytestmark = pytest.mark.lab

SMALL_NODE = {
    "name": "small-1",
    "cpu": 4,
    "memory_gi": 1,
    "hugepages_1gi": 0,
    "labels": {"kubevirt.io/schedulable": "true"},
}
KINDS = [
    ("v1", "Namespace"),
    ("v1", "Secret"),
    ("v1", "ConfigMap"),
    ("v1", "PersistentVolumeClaim"),
    ("v1", "Pod"),
    ("cdi.kubevirt.io/v1beta1", "DataVolume"),
    ("kubevirt.io/v1", "VirtualMachine"),
    ("k8s.cni.cncf.io/v1", "NetworkAttachmentDefinition"),
    ("v1", "ResourceQuota"),
    ("v1", "Node"),
]


@pytest.fixture(scope="module")
def small_lab(tmp_path_factory):
    """A lab of its own whose only node has 1 GiB of memory: no wave of its estate fits."""
    state = tmp_path_factory.mktemp("preflight-lab")
    settings = lab_control.up(vms=6, state_dir=state, nodes=[SMALL_NODE])
    yield settings, state
    lab_control.down(state)


def cluster_state(cluster: Cluster) -> dict:
    return {
        kind: sorted(
            (o["metadata"].get("namespace", ""), o["metadata"]["name"], o["metadata"]["resourceVersion"])
            for o in cluster.items(api, kind)
        )
        for api, kind in KINDS
    }


def run(args, env):
    return subprocess.run(
        [VMWAVE, *args], capture_output=True, text=True, env={**os.environ, **env, "COLUMNS": "400"}, timeout=300
    )


def test_preflight_names_each_problem_once_changes_nothing_and_passes_once_fixed(small_lab, tmp_path):
    settings, state = small_lab
    env = {**settings, "VMWAVE_LEDGER": str(tmp_path / "ledger.db"), "VMWAVE_WORKDIR": str(tmp_path / "work")}
    plan = tmp_path / "plan.yaml"
    assert run(["plan", "--out", str(plan)], env).returncode == 0
    doc = yaml.safe_load(plan.read_text())
    wave = next(w for w in doc["waves"] if w["class"] == "P3")
    maps = yaml.safe_load(open(settings["VMWAVE_MAPS"]))
    broken = tmp_path / "broken-maps.yaml"
    broken.write_text(
        yaml.safe_dump({**maps, "storage": [{**s, "storage_class": "gold-missing"} for s in maps["storage"]]})
    )
    cluster = Cluster(settings["VMWAVE_KUBECONFIG"])
    namespace = maps.get("namespace", "vmwave")
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": "vm-storage", "namespace": namespace},
            "spec": {"hard": {"requests.storage": "1Mi", "persistentvolumeclaims": "50"}},
        }
    )
    center = vcenter.running(state)
    center.set_role(without=["VirtualMachine.State.CreateSnapshot"])
    try:
        before = cluster_state(cluster)
        result = run(["preflight", "--plan", str(plan), "--maps", str(broken), "--wave", wave["id"]], env)
        assert result.returncode == 1, result.stdout + result.stderr
        said = result.stdout
        for problem, fix in [
            ("StorageClass gold-missing does not exist", "create StorageClass gold-missing"),
            (f"ResourceQuota {namespace}/vm-storage allows requests.storage 1Mi", "raise requests.storage"),
            ("fit on no node", "add nodes"),
            ("lacks VirtualMachine.State.CreateSnapshot", "grant vmwave's vCenter role"),
        ]:
            assert said.count(problem) == 1, (problem, said)
            assert fix in said, (fix, said)
        assert "persistentvolumeclaims" not in said  # within its limit: not a problem
        assert f"{wave['id']}" in said and "cannot run" in said

        refused = run(["migrate", "--plan", str(plan), "--maps", str(broken), "--wave", wave["id"]], env)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "cannot start; nothing was changed" in refused.stderr
        assert "VirtualMachine.State.CreateSnapshot" in refused.stderr and "gold-missing" in refused.stderr
        assert cluster_state(cluster) == before  # neither the preflight nor the refused wave wrote anything
        assert not list((state / "datastores").rglob("*.vmsn"))  # and no snapshot was taken
        with connect(Settings.load(env=env).need_vcenter()) as si:  # the lab's vCenter refuses what the role lacks
            with pytest.raises(vim.fault.NoPermission):
                vim.VirtualMachine(wave["vms"][0]["moref"], si._stub).CreateSnapshot_Task(
                    name="x", description="", memory=False, quiesce=False
                )
    finally:
        center.set_role(without=[])

    cluster.patch("v1", "ResourceQuota", namespace, "vm-storage", {"spec": {"hard": {"requests.storage": "10Ti"}}})
    cluster.dynamic.create(
        cluster.resource("v1", "Node"),
        body={
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "big-1", "labels": {"kubevirt.io/schedulable": "true"}},
            "status": {
                "allocatable": {"cpu": "64", "memory": "256Gi", "hugepages-1Gi": "0", "pods": "110"},
                "capacity": {"cpu": "64", "memory": "256Gi", "hugepages-1Gi": "0", "pods": "110"},
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        },
    )
    fixed = run(["preflight", "--plan", str(plan), "--wave", wave["id"]], env)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "1 of 1 wave(s) ready" in fixed.stdout
