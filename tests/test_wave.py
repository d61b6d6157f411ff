"""A whole wave on its own lab: bounded, reported, rerun-safe, and undone on request."""

import json
import subprocess

import pytest
import yaml

from conftest import VMWAVE
from vmwave.adapters.kubernetes import Cluster
from vmwave.adapters.ledger import Ledger
from vmwave_lab import lab as lab_control

pytestmark = pytest.mark.prefect


@pytest.fixture(scope="module")
def wave_lab(tmp_path_factory):
    state = tmp_path_factory.mktemp("wave-lab")
    settings = lab_control.up(vms=12, state_dir=state)
    yield settings
    lab_control.down(state)


def test_a_wave_runs_reports_and_rolls_back(prefect_server, wave_lab, tmp_path, monkeypatch):
    for key, value in wave_lab.items():
        monkeypatch.setenv(key, value)
    ledger = str(tmp_path / "ledger.db")
    monkeypatch.setenv("VMWAVE_LEDGER", ledger)
    monkeypatch.setenv("VMWAVE_WORKDIR", str(tmp_path / "work"))
    plan = tmp_path / "plan.yaml"
    subprocess.run([VMWAVE, "plan", "--out", str(plan)], check=True, capture_output=True)
    doc = yaml.safe_load(plan.read_text())
    wave = next(w for w in doc["waves"] if w["class"] == "P3")

    from vmwave_flows.wave import migrate_wave, rollback_wave

    report = migrate_wave(str(plan), wave["id"], report_dir=str(tmp_path))
    assert report["succeeded"] == report["total"] == len(wave["vms"]), report["rows"]
    assert (tmp_path / f"wave-{wave['id']}-report.md").read_text().count("| succeeded |") == len(wave["vms"])
    cluster = Cluster(wave_lab["VMWAVE_KUBECONFIG"])
    vms = cluster.find("kubevirt.io/v1", "VirtualMachine", "vmwave", {"vmwave.io/wave": wave["id"]})
    assert len(vms) == len(wave["vms"])

    again = migrate_wave(str(plan), wave["id"], report_dir=str(tmp_path))  # a rerun redoes nothing
    assert again["succeeded"] == again["total"]
    assert {s["attempts"] for e in Ledger(ledger).by_vm(wave["id"]) for s in e["steps"]} == {1}

    status = subprocess.run([VMWAVE, "status", "--wave", wave["id"], "--json"], capture_output=True, text=True, check=True)
    assert len(json.loads(status.stdout)) == len(wave["vms"])

    done = rollback_wave(str(plan), wave["id"])
    assert done["rolled_back"] == len(wave["vms"])
    assert cluster.find("kubevirt.io/v1", "VirtualMachine", "vmwave", {"vmwave.io/wave": wave["id"]}) == []


def test_a_plan_naming_unknown_vms_is_refused_before_anything_changes(prefect_server, wave_lab, tmp_path, monkeypatch):
    for key, value in wave_lab.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("VMWAVE_LEDGER", str(tmp_path / "ledger.db"))
    plan = tmp_path / "plan.yaml"
    subprocess.run([VMWAVE, "plan", "--out", str(plan)], check=True, capture_output=True)
    doc = yaml.safe_load(plan.read_text())
    doc["waves"][0]["vms"][0]["moref"] = "vm-999999"
    plan.write_text(yaml.safe_dump(doc))
    from vmwave.errors import VmwaveError
    from vmwave_flows.wave import migrate_wave

    with pytest.raises(VmwaveError, match="names VMs vCenter does not have"):
        migrate_wave(str(plan), doc["waves"][0]["id"], report_dir=str(tmp_path))
    assert Ledger(str(tmp_path / "ledger.db")).rows() == []
