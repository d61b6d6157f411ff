"""The ledger: attempts, statuses and resume decisions survive processes; a shared URL works the same."""

import json
import os
import subprocess
import sys

import pytest

from vmwave.adapters.ledger import Ledger


def test_attempts_statuses_and_resume(tmp_path):
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = Ledger(url)
    assert ledger.start("w001", "vm-1", "web-01", "snapshot") == 1
    ledger.finish("w001", "vm-1", "snapshot", detail={"snapshot": "vmwave-w001"})
    assert ledger.start("w001", "vm-1", "web-01", "convert") == 1
    ledger.finish("w001", "vm-1", "convert", "failed", error="qemu-img: no space", cause="disk-full")
    assert ledger.start("w001", "vm-1", "web-01", "convert") == 2
    ledger.finish("w001", "vm-1", "convert", bytes_done=64 << 20)
    again = Ledger(url)  # another process, the same file
    assert again.done("w001", "vm-1", "snapshot") and again.done("w001", "vm-1", "convert")
    assert not again.done("w001", "vm-1", "boot") and not again.done("w002", "vm-1", "snapshot")
    [vm] = again.by_vm("w001")
    assert [(s["step"], s["status"], s["attempts"]) for s in vm["steps"]] == [("snapshot", "succeeded", 1),
                                                                             ("convert", "succeeded", 2)]
    assert vm["steps"][1]["bytes"] == 64 << 20 and vm["steps"][1]["cause"] == ""
    with pytest.raises(ValueError):
        again.finish("w001", "vm-1", "convert", "weird")
    before = again.get("w001", "vm-1", "convert")
    again.mark("w001", "vm-1", "convert", "rolled_back")  # a rollback keeps what the step took and moved
    after = again.get("w001", "vm-1", "convert")
    assert after["status"] == "rolled_back"
    assert (after["finished_at"], after["bytes"]) == (before["finished_at"], before["bytes"])


def test_a_path_or_the_environment_names_the_ledger(tmp_path, monkeypatch):
    from vmwave.settings import Settings

    monkeypatch.setenv("VMWAVE_LEDGER", str(tmp_path / "from-env.db"))
    Ledger(Settings.load().ledger).start("w1", "vm-9", "x", "boot")
    assert (tmp_path / "from-env.db").exists()
    assert Ledger(f"sqlite:///{tmp_path / 'from-env.db'}").get("w1", "vm-9", "boot")["status"] == "running"
    assert Settings.load(ledger="postgresql+psycopg://db/vmwave").ledger == "postgresql+psycopg://db/vmwave"
    monkeypatch.delenv("VMWAVE_LEDGER")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert Settings.load().ledger == f"sqlite:///{tmp_path / 'state' / 'vmwave' / 'ledger.db'}"


def test_concurrent_writers_share_one_file(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    Ledger(url)
    script = ("import sys; from vmwave.adapters.ledger import Ledger; l = Ledger(sys.argv[1]); w = sys.argv[2]\n"
              "for i in range(50):\n    l.start(w, f'vm-{i}', f'vm{i}', 'convert'); l.finish(w, f'vm-{i}', 'convert')\n")
    workers = [subprocess.Popen([sys.executable, "-c", script, url, f"w{n}"]) for n in range(3)]
    assert [w.wait(timeout=120) for w in workers] == [0, 0, 0]
    rows = Ledger(url).rows()
    assert len(rows) == 150 and {r["status"] for r in rows} == {"succeeded"}


def test_status_command_prints_the_ledger(tmp_path):
    from helpers import VMWAVE

    db = tmp_path / "ledger.db"
    ledger = Ledger(f"sqlite:///{db}")
    ledger.start("w003", "vm-7", "db-01", "boot")
    ledger.finish("w003", "vm-7", "boot", "failed", error="VMI never started", cause="vmi-unschedulable")
    ledger.start("w004", "vm-8", "web-01", "cdi-import")
    ledger.mark("w004", "vm-8", "cdi-import", detail={"disks": [
        {"datavolume": "web-01-disk0", "phase": "ImportInProgress", "progress": "45.00%"},
        {"datavolume": "web-01-disk1", "phase": "Succeeded", "progress": "100.0%"}]})
    result = subprocess.run([VMWAVE, "status", "--wave", "3", "--json", "--ledger", str(db)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    [entry] = json.loads(result.stdout)
    assert entry["vm"] == "db-01" and entry["steps"][0]["cause"] == "vmi-unschedulable"
    table = subprocess.run([VMWAVE, "status", "--ledger", str(db)], capture_output=True, text=True, timeout=60,
                           env={**os.environ, "COLUMNS": "200"})
    assert "vmi-unschedulable" in table.stdout and "web-01" in table.stdout
    assert "disk0 45.00%, disk1 100.0%" in table.stdout  # each disk's import as CDI reports it


def test_a_vm_is_claimed_by_one_worker_until_released_or_its_worker_goes_silent(tmp_path):
    from datetime import datetime, timedelta, timezone

    from vmwave.adapters import ledger as ledger_module

    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    assert ledger.claim("w001", "vm-1", "worker-a") == "new"
    assert ledger.claim("w001", "vm-1", "worker-a") == "mine"
    assert ledger.claim("w001", "vm-1", "worker-b") == "busy" and ledger.claimed("w001") == 1
    ledger.release_claim("w001", "vm-1", "worker-b")  # not b's to release
    assert ledger.claim("w001", "vm-1", "worker-b") == "busy"
    ledger.release_claim("w001", "vm-1", "worker-a")
    assert ledger.claimed("w001") == 0 and ledger.claim("w001", "vm-1", "worker-b") == "new"

    silent = datetime.now(timezone.utc) - timedelta(seconds=ledger_module.CLAIM_STALE_SECONDS + 1)
    with ledger.engine.begin() as conn:  # worker-b died: its heartbeat stopped a while ago
        conn.execute(ledger_module.claims.update().values(heartbeat=silent))
    assert ledger.claim("w001", "vm-1", "worker-c") == "taken-over"
    ledger.refresh_claims("worker-c")
    assert ledger.claim("w001", "vm-1", "worker-a") == "busy"
