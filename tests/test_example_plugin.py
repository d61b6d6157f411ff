"""The example third-party plugin (examples/plugins/freebsd), installed as a user installs it, end to end.

pip builds and installs it into a temporary environment; vmwave, run as a
separate process with that environment on its path, finds it through its
`vmwave` entry point, lists it with its distribution and version, puts its
concern and preparation into a plan and its change into the VirtualMachine.
"""

import json
import os
import subprocess
import sys
from dataclasses import replace

import yaml

from helpers import REPO, VMWAVE, estate_records
from vmwave.domain.records import SourceVM

EXAMPLE = REPO / "examples" / "plugins" / "freebsd"


def test_the_example_plugin_installs_and_changes_a_plan_and_a_virtual_machine(tmp_path):
    site = tmp_path / "site"
    pip = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(site),
            str(EXAMPLE),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert pip.returncode == 0, pip.stderr
    assert (site / "vmwave_freebsd.py").is_file() and list(site.glob("vmwave_freebsd-0.1.0.dist-info"))
    (tmp_path / "password").write_text("not-used: the inventory is saved")
    env = {
        **os.environ,
        "PYTHONPATH": str(site),
        "COLUMNS": "250",
        "VMWAVE_VCENTER_URL": "https://vcenter.example/sdk",
        "VMWAVE_VCENTER_USER": "migrator",
        "VMWAVE_VCENTER_PASSWORD_FILE": str(tmp_path / "password"),
    }

    listed = subprocess.run([VMWAVE, "plugins", "list"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    row = next(line for line in listed.stdout.splitlines() if "│ freebsd" in line)
    assert "vmwave-freebsd 0.1.0" in row and "vmwave_concerns" in row and "vmwave_virtual_machine" in row

    records = estate_records()
    template = next(r for r in records if r.guest_family == "linux" and r.disks and r.nics)
    bsd = replace(
        template,
        name="bsd-01",
        moref="vm-9001",
        instance_uuid="bsd-uuid",
        bios_uuid="bsd-bios",
        guest_id="freebsd13_64Guest",
        guest_family="other",
        attributes={},
    )
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps({"source": "example", "vms": [SourceVM.to_dict(bsd)]}))
    maps = REPO / "lab" / "estates" / "small.maps.yaml"
    plan = tmp_path / "plan.yaml"
    planned = subprocess.run(
        [VMWAVE, "plan", "--inventory", str(inventory), "--maps", str(maps), "--out", str(plan)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert planned.returncode == 0, planned.stdout + planned.stderr
    entry = yaml.safe_load(plan.read_text())["waves"][0]["vms"][0]
    ids = [c["id"] for c in entry["concerns"]]
    assert "freebsd_disk_names" in ids and "no_guest_plugin" not in ids  # the plugin knows this guest
    assert entry["convert"] == "copy" and "gpart modify -l" in entry["preparation"][0]

    out = tmp_path / "manifests"
    rendered = subprocess.run(
        [
            VMWAVE,
            "manifests",
            "--plan",
            str(plan),
            "--wave",
            "1",
            "--maps",
            str(maps),
            "--inventory",
            str(inventory),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert rendered.returncode == 0, rendered.stdout + rendered.stderr
    vm = yaml.safe_load(next(out.glob("virtualmachine-*.yaml")).read_text())
    devices = vm["spec"]["template"]["spec"]["domain"]["devices"]
    assert devices["rng"] == {} and devices["autoattachSerialConsole"] is True

    without = subprocess.run(
        [VMWAVE, "plan", "--inventory", str(inventory), "--maps", str(maps), "--out", str(tmp_path / "bare.yaml")],
        capture_output=True,
        text=True,
        env={**env, "PYTHONPATH": ""},
        cwd=tmp_path,
    )
    assert without.returncode == 0, without.stderr
    bare = yaml.safe_load((tmp_path / "bare.yaml").read_text())["waves"][0]["vms"][0]
    assert "no_guest_plugin" in [c["id"] for c in bare["concerns"]] and bare["class"] == "P5"
