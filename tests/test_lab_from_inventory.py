"""A rehearsal starts from the user's own estate: the lab vCenter seeded from what `vmwave inventory` read of a
real one, so that planning the lab gives the plan the real estate gets."""

from __future__ import annotations

import json
import subprocess

import yaml
from kubernetes import client, config

from helpers import VMWAVE


def planned(inventory, maps, out, env) -> dict:
    subprocess.run(
        [VMWAVE, "plan", "--inventory", str(inventory), "--maps", str(maps), "--out", str(out)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    doc = yaml.safe_load(out.read_text())
    doc.pop("source")
    for vm in [vm for wave in doc["waves"] for vm in wave["vms"]] + doc["skipped"]:
        vm.pop("moref")  # each vCenter numbers its own VMs; their UUIDs stay theirs
    return doc


def test_the_lab_seeded_from_an_inventory_plans_as_the_estate_it_was_read_from(lab_env, tmp_path):
    read = tmp_path / "real.json"
    subprocess.run([VMWAVE, "inventory", "--out", str(read)], env=lab_env, check=True, capture_output=True, timeout=120)
    state = tmp_path / "lab"
    env = {k: v for k, v in lab_env.items() if not k.startswith("VMWAVE_")}
    (tmp_path / "nodes.yaml").write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "nodes": [  # the real cluster's, say
                    {"name": "worker-a", "cpu": 48, "memory_gi": 384},
                    {
                        "name": "worker-db",
                        "cpu": 96,
                        "memory_gi": 768,
                        "hugepages_1gi": 512,
                        "labels": {"cpumanager": "true"},
                    },
                ],
            }
        )
    )
    up = subprocess.run(
        [
            VMWAVE,
            "lab",
            "up",
            "--inventory",
            str(read),
            "--nodes",
            str(tmp_path / "nodes.yaml"),
            "--state-dir",
            str(state),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert up.returncode == 0, up.stderr
    try:
        rehearsal = {**env, **dict(line.split("=", 1) for line in up.stdout.splitlines())}
        again = tmp_path / "lab.json"
        subprocess.run(
            [VMWAVE, "inventory", "--out", str(again)], env=rehearsal, check=True, capture_output=True, timeout=120
        )
        real, lab = (json.loads(p.read_text())["vms"] for p in (read, again))
        assert sorted(vm["name"] for vm in lab) == sorted(vm["name"] for vm in real)
        maps = lab_env["VMWAVE_MAPS"]
        original = planned(read, maps, tmp_path / "real-plan.yaml", env)
        rehearsed = planned(again, maps, tmp_path / "lab-plan.yaml", env)
        # The lab's disks hold bytes, not an operating system: it marks them to be copied, not converted, and the
        # guest-OS plugins' concerns and preparation for those VMs are a copy's (the interface names change).
        copied = {vm["name"] for vm in lab if vm["attributes"].get("vmwave.convert") == "copy"}
        converted = {vm["name"] for wave in original["waves"] for vm in wave["vms"] if vm.get("convert") == "virt-v2v"}
        assert converted and converted <= copied
        for doc in (original, rehearsed):  # and what the plugins say of a VM follows from how it moves
            for vm in [vm for wave in doc["waves"] for vm in wave["vms"] if vm["name"] in converted]:
                for key in ("convert", "concerns", "preparation"):
                    vm.pop(key, None)
        assert rehearsed == original
        assert {vm["name"]: vm["instance_uuid"] for vm in lab} == {vm["name"]: vm["instance_uuid"] for vm in real}
        nodes = client.CoreV1Api(config.new_client_from_config(rehearsal["VMWAVE_KUBECONFIG"])).list_node().items
        assert {
            n.metadata.name: (
                n.status.allocatable["cpu"],
                n.status.allocatable["hugepages-1Gi"],
                (n.metadata.labels or {}).get("cpumanager"),
            )
            for n in nodes
        } == {"worker-a": ("48", "0Gi", None), "worker-db": ("96", "512Gi", "true")}
    finally:
        subprocess.run([VMWAVE, "lab", "down", "--state-dir", str(state)], env=env, capture_output=True, timeout=120)
