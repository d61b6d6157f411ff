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

    attempts = [(e["vm"], s["step"], s["attempts"]) for e in Ledger(ledger).by_vm(wave["id"]) for s in e["steps"]]
    again = migrate_wave(str(plan), wave["id"], report_dir=str(tmp_path))  # a rerun redoes nothing
    assert again["succeeded"] == again["total"]
    assert [(e["vm"], s["step"], s["attempts"]) for e in Ledger(ledger).by_vm(wave["id"]) for s in e["steps"]] == attempts

    status = subprocess.run([VMWAVE, "status", "--wave", wave["id"], "--json"], capture_output=True, text=True, check=True)
    assert len(json.loads(status.stdout)) == len(wave["vms"])

    assert_no_secret_anywhere(wave_lab, tmp_path)

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


def assert_no_secret_anywhere(settings: dict, tmp_path) -> None:
    """The vCenter password and the lab tokens never reach argv, a log, a report or a flow parameter."""
    import asyncio
    from pathlib import Path

    from prefect.client.orchestration import get_client

    state = Path(settings["VMWAVE_KUBECONFIG"]).parent
    secrets = [Path(settings["VMWAVE_VCENTER_PASSWORD_FILE"]).read_text().strip()]
    secrets += list(json.loads((state / "kube-tokens.json").read_text()).values())
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().decode(errors="replace")
        except OSError:
            continue
        assert not any(secret in text for secret in secrets), cmdline
    for log in list(state.glob("*.log")) + list(tmp_path.glob("*.md")):
        text = log.read_text(errors="replace")
        assert not any(secret in text for secret in secrets), log

    async def parameters():
        async with get_client() as client:
            return [str(run.parameters) for run in await client.read_flow_runs()]

    assert not any(secret in params for params in asyncio.run(parameters()) for secret in secrets)


def test_a_wave_killed_mid_way_finishes_on_rerun(prefect_server, wave_lab, tmp_path):
    """SIGKILL the `vmwave migrate` process mid-wave; the rerun ends as an uninterrupted run would."""
    import os
    import signal
    import time

    from prefect.settings import PREFECT_API_URL

    ledger = tmp_path / "ledger.db"
    env = {**os.environ, **wave_lab, "VMWAVE_LEDGER": str(ledger), "VMWAVE_WORKDIR": str(tmp_path / "work"),
           "PREFECT_API_URL": PREFECT_API_URL.value()}
    plan = tmp_path / "plan.yaml"
    subprocess.run([VMWAVE, "plan", "--out", str(plan)], check=True, capture_output=True, env=env)
    wave = next(w for w in yaml.safe_load(plan.read_text())["waves"] if w["class"] == "P3")
    argv = [VMWAVE, "migrate", "--plan", str(plan), "--wave", wave["id"]]
    first = subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:  # kill once some VMs are part-way through
        rows = Ledger(str(ledger)).rows(wave["id"]) if ledger.exists() else []
        if sum(r["step"] == "cdi-import" and r["status"] == "succeeded" for r in rows) >= 2:
            break
        time.sleep(0.2)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    unfinished = [r for r in Ledger(str(ledger)).rows(wave["id"]) if r["status"] != "succeeded"]
    rerun = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    entries = Ledger(str(ledger)).by_vm(wave["id"])
    assert len(entries) == len(wave["vms"])
    assert all(s["status"] in ("succeeded", "skipped") for e in entries for s in e["steps"])
    assert unfinished or any(s["attempts"] == 1 for e in entries for s in e["steps"])
    cluster = Cluster(wave_lab["VMWAVE_KUBECONFIG"])
    for vm in wave["vms"]:
        assert len(cluster.find("kubevirt.io/v1", "VirtualMachine", "vmwave", {"vmwave.io/source-uuid": vm["uuid"]})) == 1
        assert len(cluster.find("cdi.kubevirt.io/v1beta1", "DataVolume", "vmwave",
                                {"vmwave.io/source-uuid": vm["uuid"]})) >= 1
