"""Warm migration on the lab: the disks copy while the source runs, and it goes down only for the last changes.

The lab vCenter tracks changed blocks for real (lab/vcsim/cbt.go): `vmwave lab
write-disk` writes into the running VM's disk file and the extents come back
from QueryChangedDiskAreas; the lab CDI copies each checkpoint of a multi-stage
DataVolume, only the changed extents after the first. After the cutover the
volume must hold exactly the source disk's bytes (`qemu-img compare`), also
when vCenter reset the tracking on the way, which forces a full copy.
"""

import os
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from helpers import VMWAVE
from vmwave.adapters.ledger import Ledger
from vmwave.adapters.vsphere import connect
from vmwave.adapters.vsphere_ops import power_on, power_state, snapshots, vm_ref
from vmwave.settings import Settings
from vmwave_lab.changes import flat_file, reset_cbt, write_disk
from vmwave_lab.process import wait_for

pytestmark = pytest.mark.timeout(900)
MB = 1 << 20


@pytest.fixture
def warm_wave(lab, lab_settings, prefect_server, tmp_path):
    """A plan whose one wave moves ``names`` warm, a person's edit of `vmwave plan`'s output; (plan, env, wave id)."""
    env = {
        **os.environ,
        **lab_settings,
        "VMWAVE_LEDGER": str(tmp_path / "ledger.db"),
        "VMWAVE_WORKDIR": str(tmp_path / "work"),
    }
    plan = tmp_path / "plan.yaml"
    subprocess.run([VMWAVE, "plan", "--out", str(plan)], env=env, check=True, capture_output=True)
    made = []

    def make(wave: str, names: tuple[str, ...], interval: str = "1h") -> tuple[Path, dict, str]:
        doc = yaml.safe_load(plan.read_text())
        moved = [{**vm, "mode": "cold"} for w in doc["waves"] for vm in w["vms"] if vm["name"] in names]
        for w in doc["waves"]:
            w["vms"] = [vm for vm in w["vms"] if vm["name"] not in names]
        doc["waves"] = [w for w in doc["waves"] if w["vms"]] + [
            {"id": wave, "class": "P3", "mode": "cold", "migration": "warm", "precopy_interval": interval, "vms": moved}
        ]
        plan.write_text(yaml.safe_dump(doc, sort_keys=False))
        made.append(wave)
        return plan, env, wave

    yield make
    for wave in made:  # the sources run again for the tests after these
        subprocess.run([VMWAVE, "rollback", "--plan", str(plan), "--wave", wave], env=env, capture_output=True)


def start(plan: Path, env: dict, wave: str, tmp_path: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [VMWAVE, "migrate", "--plan", str(plan), "--wave", wave, "--report-dir", str(tmp_path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def rounds(env: dict, wave: str, vm: str) -> list[dict]:
    ledger = Ledger(Settings.load(env=env).ledger)
    row = next((r for r in ledger.rows(wave) if r["vm"] == vm and r["step"] == "precopy"), None)
    return ((row or {}).get("detail") or {}).get("rounds", [])


def wait_for_round(env: dict, wave: str, vm: str, n: int, run: subprocess.Popen) -> dict:
    assert wait_for(
        lambda: len(rounds(env, wave, vm)) >= n or run.poll() is not None, time.monotonic() + 300, poll=0.2
    ), f"no precopy round {n}"
    assert run.poll() is None, run.communicate()[0]
    return rounds(env, wave, vm)[n - 1]


def write(lab, vm: str, offset_mb: int, mb: int) -> None:
    """What the running guest writes, on the lab this test's session started."""
    subprocess.run(
        [
            VMWAVE,
            "lab",
            "write-disk",
            vm,
            "--offset-mb",
            str(offset_mb),
            "--mb",
            str(mb),
            "--state-dir",
            str(lab.state_dir),
        ],
        check=True,
        capture_output=True,
    )


def reset_tracking(lab, vm: str) -> None:
    said = subprocess.run(
        [VMWAVE, "lab", "reset-cbt", vm, "--state-dir", str(lab.state_dir)], capture_output=True, text=True
    )
    assert said.returncode == 0 and "change tracking reset" in said.stderr, said.stderr


def cut_over(plan: Path, env: dict, wave: str, vm: str, run: subprocess.Popen) -> dict:
    said = subprocess.run(
        [VMWAVE, "cutover", "--plan", str(plan), "--wave", wave, "--vm", vm], env=env, capture_output=True, text=True
    )
    assert said.returncode == 0, said.stderr
    output = run.communicate(timeout=600)[0]
    assert run.returncode == 0, output
    ledger = Ledger(Settings.load(env=env).ledger)
    return {r["step"]: r for r in ledger.rows(wave) if r["vm"] == vm}


def assert_volume_equals_source(lab, lab_settings, by_name, vm: str, steps: dict) -> None:
    source = flat_file(lab.state_dir, {"datacenter": by_name[vm].datacenter}, by_name[vm].disks[0].file)
    dv = steps["cdi-import"]["detail"]["disks"][0]["datavolume"]
    volume = Path(lab_settings["VMWAVE_KUBECONFIG"]).parent / "volumes" / "vmwave" / f"{dv}.img"
    compared = subprocess.run(
        ["qemu-img", "compare", "-q", "-f", "raw", "-F", "raw", str(source), str(volume)],
        capture_output=True,
        text=True,
    )
    assert compared.returncode == 0, compared.stdout + compared.stderr  # 0: identical, 1: they differ


def test_writes_after_the_first_round_reach_the_volume_at_cutover(warm_wave, lab, lab_settings, by_name, tmp_path):
    plan, env, wave = warm_wave("warm1", ("web-01",))
    run = start(plan, env, wave, tmp_path)
    first = wait_for_round(env, wave, "web-01", 1, run)
    assert first["full"] and first["bytes"] == 16 * MB  # the disk's data, not its 40 GiB
    with connect(Settings.load(env=env).need_vcenter()) as si:
        assert power_state(si, by_name["web-01"].moref) == "poweredOn"  # it runs while it copies
    write(lab, "web-01", 100, 4)
    write(lab, "web-01", 2, 1)  # over data the first round copied
    steps = cut_over(plan, env, wave, "web-01", run)

    assert len(steps["precopy"]["detail"]["rounds"]) == 1
    assert steps["cdi-import"]["bytes"] == 5 * MB  # only what changed since the round
    assert_volume_equals_source(lab, lab_settings, by_name, "web-01", steps)
    assert steps["guest-agent"]["detail"]["downtime_seconds"] > 0
    with connect(Settings.load(env=env).need_vcenter()) as si:
        kept = snapshots(si, vm_ref(si, by_name["web-01"].moref))
    assert f"vmwave-{wave}" in kept and not [s for s in kept if "precopy" in s]  # the rounds' snapshots are gone
    report = (tmp_path / f"wave-{wave}-report.md").read_text()
    assert "downtime" in report


def test_a_reset_change_tracking_forces_a_full_copy_and_still_ends_equal(
    warm_wave, lab, lab_settings, by_name, tmp_path
):
    plan, env, wave = warm_wave("warm2", ("web-02",), interval="10s")
    run = start(plan, env, wave, tmp_path)
    wait_for_round(env, wave, "web-02", 1, run)
    reset_tracking(lab, "web-02")  # as a storage vMotion between two rounds would
    write(lab, "web-02", 50, 2)
    second = wait_for_round(env, wave, "web-02", 2, run)
    assert second["full"] and second["bytes"] == 18 * MB  # refused changeId: every allocated extent again (16 + 2)
    write_disk(lab.state_dir, "web-02", 0, 60, 3)  # then, within the second before the next round could
    reset_cbt(lab.state_dir, "web-02")  # start, another reset, and the cutover
    Ledger(Settings.load(env=env).ledger).requests.request_cutover(wave, by_name["web-02"].instance_uuid)
    output = run.communicate(timeout=600)[0]
    assert run.returncode == 0, output
    steps = {r["step"]: r for r in Ledger(Settings.load(env=env).ledger).rows(wave)}
    assert len(steps["precopy"]["detail"]["rounds"]) == 2
    assert steps["cdi-import"]["detail"]["full"]  # the last copy is whole too
    assert_volume_equals_source(lab, lab_settings, by_name, "web-02", steps)


def test_a_vm_without_change_tracking_moves_cold_and_says_how_to_enable_it(warm_wave, lab, by_name, tmp_path):
    plan, env, wave = warm_wave("warm3", ("win-app-01",))
    with connect(Settings.load(env=env).need_vcenter()) as si:  # running, as an earlier test may have left it off
        power_on(si, by_name["win-app-01"].moref)
    run = subprocess.run(
        [VMWAVE, "migrate", "--plan", str(plan), "--wave", wave, "--report-dir", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    steps = {r["step"]: r for r in Ledger(Settings.load(env=env).ledger).rows(wave)}
    assert steps["precopy"]["status"] == "skipped"
    assert "Changed Block Tracking is off" in steps["precopy"]["detail"]["cold"]
    assert "ctkEnabled = TRUE" in steps["precopy"]["detail"]["fix"]
    assert steps["cdi-import"]["status"] == "succeeded" and "checkpoints" not in str(steps["cdi-import"]["detail"])
    assert steps["guest-agent"]["detail"]["downtime_seconds"] > 0
