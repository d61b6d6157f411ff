"""Two VMs sharing a multi-writer disk move in one wave onto one DataVolume attached to both."""

from __future__ import annotations

import os
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from helpers import VMWAVE
from vmwave.adapters.kubernetes import Cluster
from vmwave.adapters.ledger import Ledger
from vmwave.adapters.vsphere import connect
from vmwave.adapters.vsphere_ops import power_state
from vmwave.domain.manifests import LABEL_SHARED
from vmwave.settings import Settings
from vmwave_lab.changes import flat_file, write_disk

pytestmark = [pytest.mark.prefect, pytest.mark.timeout(900)]
CDI, KV = "cdi.kubevirt.io/v1beta1", "kubevirt.io/v1"
NODES = ("sql-node-1", "sql-node-2")


def test_a_shared_disk_is_copied_once_and_attached_to_both(prefect_server, lab, lab_settings, by_name, tmp_path):
    from prefect.settings import PREFECT_API_URL

    env = {
        **os.environ,
        **lab_settings,
        "VMWAVE_LEDGER": str(tmp_path / "ledger.db"),
        "VMWAVE_WORKDIR": str(tmp_path / "work"),
        "PREFECT_API_URL": PREFECT_API_URL.value(),
    }
    plan = tmp_path / "plan.yaml"
    subprocess.run([VMWAVE, "plan", "--out", str(plan)], env=env, check=True, capture_output=True)
    doc = yaml.safe_load(plan.read_text())
    [wave] = [w for w in doc["waves"] if {vm["name"] for vm in w["vms"]} & set(NODES)]
    assert {vm["name"] for vm in wave["vms"]} >= set(NODES)  # the planner keeps the group in one wave
    entries = [{**vm, "mode": "cold", "convert": "copy"} for vm in wave["vms"] if vm["name"] in NODES]
    doc["waves"] = [{"id": "shared", "class": "P3", "mode": "cold", "vms": entries[:1]}]  # a hand edit splits them
    plan.write_text(yaml.safe_dump(doc, sort_keys=False))
    alone = subprocess.run(
        [VMWAVE, "migrate", "--plan", str(plan), "--wave", "shared"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert (
        alone.returncode == 2
        and f"is shared with VM(s) {by_name['sql-node-2'].moref} outside wave shared" in alone.stderr
    ), alone.stderr  # refused before anything changed
    doc["waves"][0]["vms"] = entries
    plan.write_text(yaml.safe_dump(doc, sort_keys=False))
    write_disk(lab.state_dir, "sql-node-1", 1, 0, 3)  # the quorum disk holds data, written through one node
    cluster = Cluster(lab_settings["VMWAVE_KUBECONFIG"])
    try:
        done = subprocess.run(
            [VMWAVE, "migrate", "--plan", str(plan), "--wave", "shared", "--report-dir", str(tmp_path)],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        [shared] = [
            dv
            for dv in cluster.find(CDI, "DataVolume", "vmwave", {"vmwave.io/wave": "shared"})
            if LABEL_SHARED in dv["metadata"]["labels"]
        ]
        assert shared["spec"]["storage"]["accessModes"] == ["ReadWriteMany"]
        assert shared["spec"]["storage"]["volumeMode"] == "Block"
        name = shared["metadata"]["name"]
        for node in NODES:
            vm = cluster.get(KV, "VirtualMachine", "vmwave", node)["spec"]["template"]["spec"]
            [disk] = [d for d in vm["domain"]["devices"]["disks"] if d.get("shareable")]
            [volume] = [v for v in vm["volumes"] if v["name"] == disk["name"]]
            assert volume["dataVolume"]["name"] == name  # one volume, attached to both
        ledger = Ledger(Settings.load(env=env).ledger)
        down = max(r["finished_at"] for r in ledger.rows("shared") if r["step"] == "snapshot")
        created = datetime.fromisoformat(shared["metadata"]["creationTimestamp"].replace("Z", "+00:00"))
        assert created >= down.replace(tzinfo=timezone.utc, microsecond=0)  # copied once both were down
        volume = Path(lab_settings["VMWAVE_KUBECONFIG"]).parent / "volumes" / "vmwave" / f"{name}.img"
        source = flat_file(
            lab.state_dir, {"datacenter": by_name["sql-node-1"].datacenter}, by_name["sql-node-1"].disks[1].file
        )
        compared = subprocess.run(
            ["qemu-img", "compare", "-q", "-f", "raw", "-F", "raw", str(source), str(volume)],
            capture_output=True,
            text=True,
        )
        assert compared.returncode == 0, compared.stdout + compared.stderr
    finally:
        undone = subprocess.run(
            [VMWAVE, "rollback", "--plan", str(plan), "--wave", "shared"],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    assert undone.returncode == 0, undone.stdout + undone.stderr
    assert cluster.find(CDI, "DataVolume", "vmwave", {"vmwave.io/wave": "shared"}) == []  # the shared one too
    with connect(Settings.load(env=env).need_vcenter()) as si:
        for node in NODES:
            assert power_state(si, by_name[node].moref) == by_name[node].power_state
