"""The exporter's metrics come from the ledger alone: what every worker wrote, read at each scrape.

A real SQLite ledger is written through the same calls the steps make; the
text a scrape returns is parsed back and, where Debian's ``promtool`` is
installed (the set-up installs it), checked by it.
"""

import shutil
import subprocess
import time
import urllib.request
from datetime import datetime, timezone

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from helpers import VMWAVE
from vmwave.adapters.ledger import Ledger
from vmwave.adapters.metrics import registry
from vmwave.domain.steps import PIPELINE, ROLLBACK
from vmwave_lab.kube.qemu import free_port
from vmwave_lab.process import wait_for


def run_steps(ledger, wave, moref, vm, steps, fail=None, cause=""):
    """``vm`` through ``steps``; the last one failing with ``cause`` when ``fail``."""
    for step in steps:
        ledger.start(wave, moref, vm, step)
        failed = fail and step == steps[-1]
        ledger.finish(
            wave,
            moref,
            step,
            "failed" if failed else "succeeded",
            bytes_done=2 << 30 if step == "cdi-import" and not failed else 0,
            cause=cause if failed else "",
        )


@pytest.fixture
def ledger(tmp_path):
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger.begin_wave("w001", "P3", "cold", {f"vm-{n}": "P3" for n in range(1, 6)})
    run_steps(ledger, "w001", "vm-1", "web-01", PIPELINE)
    run_steps(ledger, "w001", "vm-2", "web-02", PIPELINE[:6], fail=True, cause="guest-agent-not-connected")
    ledger.start("w001", "vm-2", "web-02", ROLLBACK)
    ledger.finish("w001", "vm-2", ROLLBACK)
    run_steps(ledger, "w001", "vm-3", "web-03", PIPELINE[:2], fail=True, cause="cancelled")
    run_steps(ledger, "w001", "vm-4", "web-04", PIPELINE[:1])
    ledger.start("w001", "vm-4", "web-04", "cdi-import")  # still copying
    ledger.end_wave("w001")
    return ledger


def scrape(ledger, timeouts=None):
    text = generate_latest(registry(ledger, timeouts)).decode()
    return text, {
        s.name + str(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def sample(samples, name, **labels):
    return samples[name + str(sorted(labels.items()))]


def test_vms_per_state_count_the_pending_ones_the_plan_named(ledger):
    _, samples = scrape(ledger)
    states = {
        s: sample(samples, "vmwave_vms", wave="w001", **{"class": "P3"}, state=s)
        for s in ("pending", "running", "succeeded", "failed", "rolled_back")
    }
    assert states == {
        "pending": 1,
        "running": 1,
        "succeeded": 1,
        "failed": 1,
        "rolled_back": 1,
    }  # cancelled: rolled back
    assert sample(samples, "vmwave_wave_info", wave="w001", **{"class": "P3"}, mode="cold") == 1
    assert sample(samples, "vmwave_disk_bytes_total", wave="w001") == 2 * (2 << 30)  # two disks finished importing
    start = sample(samples, "vmwave_wave_start_timestamp_seconds", wave="w001")
    end = sample(samples, "vmwave_wave_end_timestamp_seconds", wave="w001")
    assert start <= end <= datetime.now(timezone.utc).timestamp()


def test_steps_have_durations_failures_by_cause_and_the_age_of_what_still_runs(ledger):
    _, samples = scrape(ledger, {"cdi-import": 3600.0})
    assert sample(samples, "vmwave_step_duration_seconds_count", step="snapshot") == 4
    assert sample(samples, "vmwave_step_duration_seconds_bucket", step="snapshot", le="+Inf") == 4
    assert sample(samples, "vmwave_step_duration_seconds_count", step="cdi-import") == 3  # not the one that runs
    assert sample(samples, "vmwave_step_failures_total", step="guest-agent", cause="guest-agent-not-connected") == 1
    assert sample(samples, "vmwave_step_failures_total", step="cdi-import", cause="cancelled") == 1
    assert 0 <= sample(samples, "vmwave_step_oldest_running_seconds", step="cdi-import") < 60
    assert sample(samples, "vmwave_step_timeout_seconds", step="cdi-import") == 3600
    assert not any("vm=" in key or "web-0" in key for key in samples)  # never a VM name in a label


def test_a_rerun_that_completes_a_failed_vm_counts_it_succeeded(ledger):
    run_steps(ledger, "w001", "vm-2", "web-02", PIPELINE)
    _, samples = scrape(ledger)
    assert sample(samples, "vmwave_vms", wave="w001", **{"class": "P3"}, state="succeeded") == 2
    assert sample(samples, "vmwave_vms", wave="w001", **{"class": "P3"}, state="failed") == 0


@pytest.mark.skipif(not shutil.which("promtool"), reason="apt-get install -y prometheus (./dev setup does)")
def test_promtool_finds_nothing_wrong_with_the_exposition(ledger):
    text, _ = scrape(ledger, {"convert": 7200.0})
    check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert check.returncode == 0 and not check.stdout.strip() and not check.stderr.strip(), check.stdout + check.stderr


def test_vmwave_exporter_serves_the_ledger_over_http(ledger, tmp_path):
    port = free_port()
    exporter = subprocess.Popen(
        [VMWAVE, "exporter", "--port", str(port), "--listen", "127.0.0.1"],
        env={"VMWAVE_LEDGER": ledger.url, "PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:

        def metrics():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as answer:
                    return answer.read().decode()
            except OSError:
                return None

        assert wait_for(lambda: metrics() is not None, time.monotonic() + 30), "the exporter never answered"
        text = metrics()
        assert 'vmwave_vms{class="P3",state="succeeded",wave="w001"} 1.0' in text
        ledger.begin_wave("w002", "P2", "cold", {"vm-7": "P2", "vm-8": "P2", "vm-9": "P2"})  # seen at the next scrape
        assert 'vmwave_vms{class="P2",state="pending",wave="w002"} 3.0' in metrics()
    finally:
        exporter.terminate()
        exporter.wait(10)
    assert exporter.returncode in (0, -15)


def test_a_bad_port_is_refused_before_anything_listens(tmp_path):
    env = {"VMWAVE_LEDGER": f"sqlite:///{tmp_path / 'l.db'}", "PATH": "/usr/bin:/bin", "COLUMNS": "200"}
    flag = subprocess.run([VMWAVE, "exporter", "--port", "70000"], capture_output=True, text=True, env=env)
    assert flag.returncode == 2 and "'--port'" in flag.stderr and "65535" in flag.stderr
    variable = subprocess.run(
        [VMWAVE, "exporter"], capture_output=True, text=True, env={**env, "VMWAVE_EXPORTER_PORT": "http"}
    )
    assert variable.returncode == 2 and "VMWAVE_EXPORTER_PORT" in variable.stderr and "1-65535" in variable.stderr


def test_each_migrated_vm_has_its_downtime_cold_or_warm(tmp_path):
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger.begin_wave("w004", "P4", "planned-window", {"vm-1": "P4", "vm-2": "P4"})
    for moref, name, warm, seconds in (("vm-1", "db-01", True, 42.5), ("vm-2", "db-02", False, 610.0)):
        if warm:
            run_steps(ledger, "w004", moref, name, ["precopy"])
        run_steps(ledger, "w004", moref, name, PIPELINE)
        ledger.mark("w004", moref, "guest-agent", detail={"downtime_seconds": seconds})
    _, samples = scrape(ledger)
    assert sample(samples, "vmwave_vm_downtime_seconds", wave="w004", vm="db-01", migration="warm") == 42.5
    assert sample(samples, "vmwave_vm_downtime_seconds", wave="w004", vm="db-02", migration="cold") == 610.0
