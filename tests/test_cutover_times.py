"""Cutover when it was agreed: a VM's `cutover:` time is honoured, and its wave's window's end is enforced.

The lab of these tests copies at 0.5 MiB/s (its VDDK link), so a warm round of
a 16 MiB disk takes 32 s: long enough for a window to end while it copies.
"""

from __future__ import annotations

import os
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from helpers import SMALL, VMWAVE
from vmwave.adapters.kubernetes import Cluster
from vmwave.adapters.ledger import Ledger
from vmwave.adapters.vsphere import connect
from vmwave.adapters.vsphere_ops import power_state
from vmwave.settings import Settings
from vmwave_lab import lab as lab_control

pytestmark = [pytest.mark.prefect, pytest.mark.lab, pytest.mark.timeout(900)]
CDI, KV = "cdi.kubevirt.io/v1beta1", "kubevirt.io/v1"


@pytest.fixture(scope="module")
def slow_lab(tmp_path_factory):
    state = tmp_path_factory.mktemp("slow-lab")
    settings = lab_control.up(estate_file=SMALL, state_dir=state, kube_config={"copy_mib_per_s": 0.5})
    yield settings
    lab_control.down(state)


@pytest.fixture
def plan_of(slow_lab, prefect_server, tmp_path):
    """A plan of the slow lab with one wave of the VMs named; (plan file, environment, write(wave))."""
    from prefect.settings import PREFECT_API_URL

    env = {
        **os.environ,
        **slow_lab,
        "VMWAVE_LEDGER": str(tmp_path / "ledger.db"),
        "VMWAVE_WORKDIR": str(tmp_path / "work"),
        "PREFECT_API_URL": PREFECT_API_URL.value(),
    }
    plan = tmp_path / "plan.yaml"
    subprocess.run([VMWAVE, "plan", "--out", str(plan)], env=env, check=True, capture_output=True)
    planned = yaml.safe_load(plan.read_text())
    entries = {vm["name"]: {**vm, "mode": "cold"} for w in planned["waves"] for vm in w["vms"]}

    def write(wave: dict, names: tuple[str, ...], **per_vm) -> None:
        doc = {
            **planned,
            "waves": [{"class": "P3", "mode": "cold", **wave, "vms": [{**entries[name], **per_vm} for name in names]}],
        }
        plan.write_text(yaml.safe_dump(doc, sort_keys=False))

    yield plan, env, write
    for wave in ("late", "agreed"):
        subprocess.run([VMWAVE, "rollback", "--plan", str(plan), "--wave", wave], env=env, capture_output=True)


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def migrate(plan: Path, env: dict, wave: str, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [VMWAVE, "migrate", "--plan", str(plan), "--wave", wave, "--report-dir", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def steps(env: dict, wave: str) -> dict:
    return {r["step"]: r for r in Ledger(Settings.load(env=env).ledger).rows(wave)}


def test_a_warm_vm_whose_window_ends_while_it_copies_is_not_cut_over(plan_of, tmp_path):
    plan, env, write = plan_of
    now = datetime.now(timezone.utc)
    write(
        {
            "id": "late",
            "migration": "warm",
            "precopy_interval": "10s",
            "window": {"start": iso(now + timedelta(seconds=10)), "end": iso(now + timedelta(seconds=25))},
        },
        ("web-01",),
    )
    missed = migrate(plan, env, "late", tmp_path / "first")
    assert missed.returncode == 1, missed.stdout + missed.stderr
    report = (tmp_path / "first" / "wave-late-report.md").read_text()
    assert "missed its window" in report and "--ignore-window" in report, report
    done = steps(env, "late")
    assert done["precopy"]["cause"] == "missed-window" and len(done["precopy"]["detail"]["rounds"]) == 1
    assert "snapshot" not in done  # never cut over: the source was not shut down
    with connect(Settings.load(env=env).need_vcenter()) as si:
        assert power_state(si, yaml.safe_load(plan.read_text())["waves"][0]["vms"][0]["moref"]) == "poweredOn"
    cluster = Cluster(env["VMWAVE_KUBECONFIG"])
    assert cluster.get(KV, "VirtualMachine", "vmwave", "web-01") is None
    kept = cluster.get(CDI, "DataVolume", "vmwave", "web-01-disk0")
    assert kept is not None  # its copy so far stays for the next window

    now = datetime.now(timezone.utc)
    write(
        {
            "id": "late",
            "migration": "warm",
            "precopy_interval": "10s",
            "window": {"start": iso(now - timedelta(seconds=1)), "end": iso(now + timedelta(minutes=10))},
        },
        ("web-01",),
    )
    again = migrate(plan, env, "late", tmp_path / "next")
    assert again.returncode == 0, again.stdout + again.stderr
    done = steps(env, "late")
    rounds = done["precopy"]["detail"]["rounds"]
    assert [r["full"] for r in rounds] == [True, False]  # it went on from its first round, not from the start
    assert cluster.get(CDI, "DataVolume", "vmwave", "web-01-disk0")["metadata"]["uid"] == kept["metadata"]["uid"]


def test_a_vms_cutover_time_is_honoured(plan_of, tmp_path):
    plan, env, write = plan_of
    agreed = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=20)
    write({"id": "agreed"}, ("web-02",), cutover=iso(agreed))
    done = migrate(plan, env, "agreed", tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    went_down = steps(env, "agreed")["snapshot"]["started_at"]
    went_down = went_down if went_down.tzinfo else went_down.replace(tzinfo=timezone.utc)
    assert went_down >= agreed


def test_a_cold_vm_not_started_by_its_windows_end_does_not_start(
    prefect_server, lab_settings, target, by_name, tmp_path, vm_job
):
    from vmwave.errors import VmwaveError
    from vmwave_flows.migrate import migrate_vm

    now = datetime.now(timezone.utc)
    ended = {"start": iso(now - timedelta(hours=2)), "end": iso(now - timedelta(hours=1))}
    job = vm_job(by_name["web-03"], "w960", window=ended)  # queued past the window
    with pytest.raises(VmwaveError) as stopped:
        migrate_vm(job)
    assert stopped.value.cause == "missed-window"
    assert "snapshot" not in {r["step"] for r in job.clients.steps.rows("w960")}  # nothing of it started
    with connect(target) as si:
        assert power_state(si, by_name["web-03"].moref) == by_name["web-03"].power_state
