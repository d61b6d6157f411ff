"""The `vmwave` command as a person uses it: lab up, plan, check, lab down."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from helpers import REPO, VMWAVE


def run(*args, env=None, check=True):
    result = subprocess.run([VMWAVE, *args], env=env or os.environ, capture_output=True, text=True, timeout=300)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_help_on_every_command():
    for args in (
        [],
        ["lab"],
        ["lab", "up"],
        ["lab", "down"],
        ["lab", "env"],
        ["plan"],
        ["inventory"],
        ["check"],
        ["manifests"],
        ["cluster"],
        ["cluster", "migration-config"],
    ):
        assert "Usage" in run(*args, "--help").stdout


@pytest.mark.lab  # starts its own lab servers
def test_lab_up_prints_settings_and_down_stops_it(tmp_path):
    state = tmp_path / "lab"
    up = run("lab", "up", "--vms", "30", "--state-dir", str(state))
    settings = dict(line.split("=", 1) for line in up.stdout.splitlines())
    assert set(settings) == {
        "VMWAVE_VCENTER_URL",
        "VMWAVE_VCENTER_USER",
        "VMWAVE_VCENTER_PASSWORD_FILE",
        "VMWAVE_VCENTER_CA",
        "VMWAVE_KUBECONFIG",
        "VMWAVE_MAPS",
        "VMWAVE_VDDK_IMAGE",
        "VMWAVE_V2V_ACCEL",
    }
    assert settings["VMWAVE_V2V_ACCEL"] in ("kvm", "tcg")
    assert yaml.safe_load(Path(settings["VMWAVE_MAPS"]).read_text())["network"][0]["network"] == "vmwave/vlan100"
    if shutil.which("kubectl"):  # the kubeconfig works for people's tools too
        nodes = subprocess.run(
            ["kubectl", "--kubeconfig", settings["VMWAVE_KUBECONFIG"], "get", "nodes", "-o", "name"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert nodes.stdout.split() == ["node/lab-node-1", "node/lab-node-2"], nodes.stderr
    assert settings["VMWAVE_VCENTER_URL"].startswith("https://127.0.0.1:")
    password = Path(settings["VMWAVE_VCENTER_PASSWORD_FILE"]).read_text().strip()
    assert password not in up.stdout + up.stderr
    assert oct(Path(settings["VMWAVE_VCENTER_PASSWORD_FILE"]).stat().st_mode & 0o777) == "0o600"
    assert run("lab", "env", "--state-dir", str(state)).stdout == up.stdout
    again = run("lab", "up", "--state-dir", str(state), check=False)
    assert again.returncode == 2 and "already runs" in again.stderr

    plan = tmp_path / "plan.yaml"
    run("plan", "--out", str(plan), "--wave-size", "7", env={**os.environ, **settings})
    doc = yaml.safe_load(plan.read_text())
    assert sum(len(w["vms"]) for w in doc["waves"]) == 30 and all(len(w["vms"]) <= 7 for w in doc["waves"])

    pid = int((state / "vcenter.pid").read_text())
    kube_pid = int((state / "kube.pid").read_text())
    run("lab", "down", "--state-dir", str(state))
    for stopped in (pid, kube_pid):
        assert not Path(f"/proc/{stopped}").exists() or Path(f"/proc/{stopped}/stat").read_text().split()[2] == "Z"
    assert run("lab", "down", "--state-dir", str(state)).stderr.strip() == "no lab was running"


def test_plan_with_maps_then_check(lab_env, tmp_path):
    plan = tmp_path / "plan.yaml"
    result = run("plan", "--out", str(plan), "--maps", str(REPO / "lab/estates/small.maps.yaml"), env=lab_env)
    assert "VMs by priority class" in result.stdout and "unmapped_datastore" in result.stdout
    checked = run("check", str(plan))
    assert "is a valid plan" in checked.stderr


def test_inventory_file_plans_offline(lab_env, tmp_path):
    inv, plan = tmp_path / "inv.json", tmp_path / "plan.yaml"
    run("inventory", "--out", str(inv), env=lab_env)
    offline = {k: v for k, v in lab_env.items() if not k.startswith("VMWAVE_VCENTER")}
    run("plan", "--inventory", str(inv), "--out", str(plan), env=offline)
    online = tmp_path / "online.yaml"
    run("plan", "--out", str(online), env=lab_env)
    assert plan.read_text() == online.read_text()


@pytest.mark.parametrize(
    "args,expected",
    [
        (["plan", "--rules", "missing.yaml"], "missing.yaml: rules file not found"),
        (["plan", "--maps", "{bad}"], "maps file not found"),
        (["check", "missing.yaml"], "plan file not found"),
        (["lab", "up", "--vms", "0"], "--vms must be at least 1"),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path, args, expected):
    result = subprocess.run([VMWAVE, *args], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and expected in result.stderr and "Traceback" not in result.stderr


def test_bad_yaml_names_the_line(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text("version: 1\nrules:\n  - class: P1\n   when: {}\n")
    result = subprocess.run([VMWAVE, "plan", "--rules", str(rules)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "line 4" in result.stderr


def test_manifests_for_a_wave_without_touching_the_cluster(lab_env, tmp_path):
    import schema_check
    from vmwave.adapters.kubernetes import Cluster

    plan, out = tmp_path / "plan.yaml", tmp_path / "objects"
    run("plan", "--out", str(plan), env=lab_env)
    doc = yaml.safe_load(plan.read_text())
    wave = next(w for w in doc["waves"] if w["class"] == "P3")
    before = Cluster(lab_env["VMWAVE_KUBECONFIG"]).find("kubevirt.io/v1", "VirtualMachine", None, {})
    result = run("manifests", "--plan", str(plan), "--wave", wave["id"], "--out", str(out), env=lab_env)
    assert "objects written" in result.stderr
    files = sorted(p.name for p in out.iterdir())
    assert [f for f in files if f.startswith("virtualmachine-")] == sorted(
        f"virtualmachine-vmwave-{vm['target_name']}.yaml" for vm in wave["vms"]
    )
    for path in out.iterdir():
        obj = yaml.safe_load(path.read_text())
        if schema_check.available() and obj["kind"] in ("VirtualMachine", "DataVolume"):
            assert schema_check.problems(obj) == [], path.name
    assert Cluster(lab_env["VMWAVE_KUBECONFIG"]).find("kubevirt.io/v1", "VirtualMachine", None, {}) == before
    missing = run("manifests", "--plan", str(plan), "--wave", "99", "--out", str(out), env=lab_env, check=False)
    assert missing.returncode == 2 and "the plan has no wave w099" in missing.stderr

    gone, kept = wave["vms"][0], wave["vms"][1:]  # a VM vCenter no longer has: the others are still written
    gone["moref"] = "vm-999999"
    plan.write_text(yaml.safe_dump(doc, sort_keys=False))
    partial = tmp_path / "partial"
    result = run(
        "manifests", "--plan", str(plan), "--wave", wave["id"], "--out", str(partial), env=lab_env, check=False
    )
    assert result.returncode == 1 and f"not rendered: {gone['name']}: vCenter no longer has it" in result.stderr
    assert sorted(p.name for p in partial.glob("virtualmachine-*")) == sorted(
        f"virtualmachine-vmwave-{vm['target_name']}.yaml" for vm in kept
    )


def test_cluster_migration_config(lab_env):
    from vmwave.adapters.kubernetes import Cluster

    printed = yaml.safe_load(run("cluster", "migration-config", "--parallel-per-node", "2").stdout)
    assert printed["spec"]["configuration"]["migrations"]["parallelOutboundMigrationsPerNode"] == 2
    run("cluster", "migration-config", "--apply", env=lab_env)
    cr = Cluster(lab_env["VMWAVE_KUBECONFIG"]).get("kubevirt.io/v1", "KubeVirt", "kubevirt", "kubevirt")
    assert cr["spec"]["configuration"]["migrations"] == {
        "parallelMigrationsPerCluster": 10,
        "parallelOutboundMigrationsPerNode": 4,
        "bandwidthPerMigration": "1Gi",
        "allowAutoConverge": True,
        "completionTimeoutPerGiB": 800,
        "progressTimeout": 150,
    }


def test_vmwave_runs_without_the_lab_package(tmp_path):
    """The lab is an optional part: with `vmwave_lab` not importable, the CLI still plans (from an inventory file)."""
    inventory = tmp_path / "inv.json"
    inventory.write_text('{"source": "offline", "vms": [{"name": "a", "moref": "vm-1", "instance_uuid": "u-1"}]}')
    blocker = (
        "import sys\n"
        "class NoLab:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'vmwave_lab':\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, NoLab())\n"
        "from vmwave.cli import main\n"
        "main()\n"
    )
    import sys

    def cli(*args):
        return subprocess.run(
            [sys.executable, "-c", blocker, *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            env={k: v for k, v in os.environ.items() if not k.startswith("VMWAVE_")},
        )

    shown = cli("--help")
    assert shown.returncode == 0 and "plan" in shown.stdout and " lab " not in shown.stdout, shown.stdout + shown.stderr
    planned = cli("plan", "--inventory", str(inventory), "--out", "plan.yaml")
    assert planned.returncode == 0, planned.stderr
    assert yaml.safe_load((tmp_path / "plan.yaml").read_text())["waves"][0]["vms"][0]["name"] == "a"
    for asked in (["lab", "up", "--vms", "3"], ["rehearse", "--help"]):
        told = cli(*asked)
        assert told.returncode == 2 and "Traceback" not in told.stderr, told.stderr
        assert "the lab is not installed" in told.stderr and "pip install vmwave-lab" in told.stderr
