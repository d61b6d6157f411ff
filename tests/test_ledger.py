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
    assert [(s["step"], s["status"], s["attempts"]) for s in vm["steps"]] == [
        ("snapshot", "succeeded", 1),
        ("convert", "succeeded", 2),
    ]
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
    script = (
        "import sys; from vmwave.adapters.ledger import Ledger; l = Ledger(sys.argv[1]); w = sys.argv[2]\n"
        "for i in range(50):\n    l.start(w, f'vm-{i}', f'vm{i}', 'convert'); l.finish(w, f'vm-{i}', 'convert')\n"
    )
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
    ledger.mark(
        "w004",
        "vm-8",
        "cdi-import",
        detail={
            "disks": [
                {"datavolume": "web-01-disk0", "phase": "ImportInProgress", "progress": "45.00%"},
                {"datavolume": "web-01-disk1", "phase": "Succeeded", "progress": "100.0%"},
            ]
        },
    )
    result = subprocess.run(
        [VMWAVE, "status", "--wave", "3", "--json", "--ledger", str(db)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    [entry] = json.loads(result.stdout)
    assert entry["vm"] == "db-01" and entry["steps"][0]["cause"] == "vmi-unschedulable"
    table = subprocess.run(
        [VMWAVE, "status", "--ledger", str(db)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert "vmi-unschedulable" in table.stdout and "web-01" in table.stdout
    assert "disk0 45.00%, disk1 100.0%" in table.stdout  # each disk's import as CDI reports it


def test_a_vm_is_claimed_by_one_worker_until_released_or_its_worker_goes_silent(tmp_path):
    from datetime import datetime, timedelta, timezone

    from vmwave.adapters import ledger as ledger_module

    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    assert ledger.claims.claim("w001", "vm-1", "worker-a") == "new"
    assert ledger.claims.claim("w001", "vm-1", "worker-a") == "mine"
    assert ledger.claims.claim("w001", "vm-1", "worker-b") == "busy" and ledger.claims.claimed("w001") == 1
    ledger.claims.release_claim("w001", "vm-1", "worker-b")  # not b's to release
    assert ledger.claims.claim("w001", "vm-1", "worker-b") == "busy"
    ledger.claims.release_claim("w001", "vm-1", "worker-a")
    assert ledger.claims.claimed("w001") == 0 and ledger.claims.claim("w001", "vm-1", "worker-b") == "new"

    silent = datetime.now(timezone.utc) - timedelta(seconds=ledger_module.CLAIM_STALE_SECONDS + 1)
    with ledger.engine.begin() as conn:  # worker-b died: its heartbeat stopped a while ago
        conn.execute(ledger_module.claims.update().values(heartbeat=silent))
    assert ledger.claims.claim("w001", "vm-1", "worker-c") == "taken-over"
    ledger.claims.refresh_claims("worker-c")
    assert ledger.claims.claim("w001", "vm-1", "worker-a") == "busy"


LEDGER_OF_AN_EARLIER_VMWAVE = """
CREATE TABLE steps (wave VARCHAR(64) NOT NULL, moref VARCHAR(64) NOT NULL, step VARCHAR(32) NOT NULL,
    vm VARCHAR(256) NOT NULL, status VARCHAR(16) NOT NULL, attempt INTEGER NOT NULL, started_at DATETIME,
    finished_at DATETIME, bytes BIGINT, error TEXT, cause VARCHAR(64), detail JSON, PRIMARY KEY (wave, moref, step));
CREATE TABLE claims (wave VARCHAR(64) NOT NULL, moref VARCHAR(64) NOT NULL, owner VARCHAR(64) NOT NULL,
    heartbeat DATETIME NOT NULL, PRIMARY KEY (wave, moref));
CREATE TABLE waves (wave VARCHAR(64) NOT NULL, cls VARCHAR(16) NOT NULL, mode VARCHAR(16) NOT NULL, members JSON,
    started_at DATETIME, finished_at DATETIME, PRIMARY KEY (wave));
CREATE TABLE cancels (wave VARCHAR(64) NOT NULL, moref VARCHAR(64) NOT NULL, requested_at DATETIME NOT NULL,
    PRIMARY KEY (wave, moref));
CREATE TABLE cutovers (wave VARCHAR(64) NOT NULL, moref VARCHAR(64) NOT NULL, requested_at DATETIME NOT NULL,
    PRIMARY KEY (wave, moref));
INSERT INTO steps VALUES ('w003', 'vm-137', 'snapshot', 'db-01', 'succeeded', 1, '2026-11-01 10:00:00',
    '2026-11-01 10:01:00', 0, '', '', '{"snapshot": "vmwave-w003"}');
INSERT INTO steps VALUES ('w003', 'vm-138', 'snapshot', 'db-02', 'succeeded', 1, '2026-11-01 10:00:00',
    '2026-11-01 10:01:00', 0, '', '', '{}');
INSERT INTO waves VALUES ('w003', 'P3', 'cold', '{"vm-137": "P3", "vm-138": "P3"}', '2026-11-01 10:00:00', NULL);
INSERT INTO cancels VALUES ('w003', 'vm-138', '2026-11-01 10:02:00');
"""


def test_a_ledger_of_an_earlier_vmwave_is_upgraded_on_open_and_kept_by_the_vcenter_that_wrote_it(tmp_path):
    """Morefs are unique only inside one vCenter: VMs are keyed by vCenter and instance UUID. What an earlier
    ledger recorded by moref is kept for the first vCenter that runs with it, and for no other."""
    import sqlite3

    db = tmp_path / "earlier.db"
    with sqlite3.connect(db) as conn:
        conn.executescript(LEDGER_OF_AN_EARLIER_VMWAVE)
    ledger = Ledger(f"sqlite:///{db}")
    assert {(e["key"], e["moref"], e["vm"]) for e in ledger.by_vm("w003")} == {
        ("moref:vm-137", "vm-137", "db-01"),
        ("moref:vm-138", "vm-138", "db-02"),
    }
    assert Ledger(f"sqlite:///{db}").rows("w003") == ledger.rows("w003")  # opened again: nothing more changes

    ledger.adopt("vc-a", {"vm-137": ("vc-a/u-137", "u-137")})  # the vCenter it was written with runs wave w003
    assert ledger.done("w003", "vc-a/u-137", "snapshot")
    assert ledger.get("w003", "vc-a/u-137", "snapshot")["detail"] == {"snapshot": "vmwave-w003"}
    assert ledger.waves()[0]["members"] == {"vc-a/u-137": "P3", "moref:vm-138": "P3"}

    ledger.adopt("vc-b", {"vm-138": ("vc-b/u-999", "u-999")})  # another vCenter's vm-138 is another VM
    assert not ledger.done("w003", "vc-b/u-999", "snapshot") and not ledger.requests.take_cancel("w003", "u-999")

    ledger.adopt("vc-a", {"vm-138": ("vc-a/u-138", "u-138")})
    assert ledger.done("w003", "vc-a/u-138", "snapshot") and ledger.requests.take_cancel("w003", "u-138")
    assert not ledger.done("w003", "vc-a/u-137", "boot") and ledger.by_vm("w004") == []


def test_the_same_moref_in_two_vcenters_is_two_vms(tmp_path):
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger.start("w001", "vc-a/u-1", "web-01", "snapshot", "vm-137", "u-1")
    ledger.finish("w001", "vc-a/u-1", "snapshot")
    assert ledger.done("w001", "vc-a/u-1", "snapshot") and not ledger.done("w001", "vc-b/u-1", "snapshot")
    assert (
        ledger.claims.claim("w001", "vc-a/u-1", "worker-a") == "new"
        and ledger.claims.claim("w001", "vc-b/u-1", "worker-a") == "new"
    )
