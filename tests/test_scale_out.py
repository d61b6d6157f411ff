"""Beyond one machine: a Prefect server and the ledger on PostgreSQL, two process workers sharing one wave.

Prefect recommends PostgreSQL for a server that many workers share, and
SQLite cannot hold a ledger for workers on different machines. Here both live
in one real PostgreSQL 15; two `prefect worker` processes (one flow run each)
get two runs of the same wave from `prefect deployment run`, and split its VMs
through the ledger's claims while the per-host caps (Prefect global
concurrency limits) hold across both.
"""

import os
import subprocess
import time

import pytest
import yaml

from helpers import REPO, VMWAVE, assert_shared_once_within_caps, share_a_wave
from vmwave_lab.servers import PREFECT, postgres, prefect_server_on
from vmwave.adapters.ledger import Ledger


@pytest.mark.prefect
def test_two_workers_share_one_wave_on_postgresql(wave_env, planned, tmp_path):
    plan, doc, wave = planned
    go = tmp_path / "both-workers-run"  # a barrier: each VM's pre-cutover hook waits for it
    hosts = share_a_wave(doc, wave, go)
    plan.write_text(yaml.safe_dump(doc, sort_keys=False))
    with postgres() as pg:
        pg.create("prefect")
        pg.create("vmwave")
        ledger_url = pg.url("psycopg", "vmwave")
        with prefect_server_on(pg.url("asyncpg", "prefect"), tmp_path / "prefect-home") as server:
            api = server.api
            env = {
                **os.environ,
                **wave_env,
                "PREFECT_API_URL": api,
                "VMWAVE_LEDGER": ledger_url,
                "VMWAVE_PLAN_DIR": str(tmp_path),
                "VMWAVE_PER_HOST": "1",
                "VMWAVE_IN_FLIGHT": "1",
                "PREFECT_WORKER_QUERY_SECONDS": "1",
                "PREFECT_WORKER_PREFETCH_SECONDS": "1",
            }

            def run(*argv, timeout=180):
                done = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=timeout)
                assert done.returncode == 0, done.stdout + done.stderr
                return done.stdout

            run(PREFECT, "work-pool", "create", "vmwave", "--type", "process")
            run(PREFECT, "--no-prompt", "deploy", "--all", "--prefect-file", str(REPO / "deployments" / "prefect.yaml"))
            workers = [
                subprocess.Popen(
                    [
                        PREFECT,
                        "worker",
                        "start",
                        "--pool",
                        "vmwave",
                        "--type",
                        "process",
                        "--limit",
                        "1",
                        "--name",
                        f"worker-{n}",
                    ],
                    env=env,
                    cwd=tmp_path,
                    stdout=open(tmp_path / f"worker-{n}.log", "w"),
                    stderr=subprocess.STDOUT,
                )
                for n in (1, 2)
            ]
            try:
                for n in (1, 2):
                    (tmp_path / f"run-{n}").mkdir()
                runs = [
                    subprocess.Popen(
                        [
                            PREFECT,
                            "deployment",
                            "run",
                            "migrate-wave/shared-storage",
                            "--param",
                            f"wave={wave['id']}",
                            "--param",
                            f"report_dir={tmp_path / f'run-{n}'}",
                            "--watch",
                            "--watch-timeout",
                            "600",
                        ],
                        env=env,
                        cwd=tmp_path,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT,
                        text=True,
                    )
                    for n in (1, 2)
                ]
                ledger = Ledger(ledger_url)
                deadline = time.monotonic() + 300
                while ledger.claims.claimed(wave["id"]) < 2:  # one VM on each worker, held at its hook
                    assert all(r.poll() is None for r in runs) and time.monotonic() < deadline, (
                        "both runs did not take a VM: " + (tmp_path / "worker-1.log").read_text()[-2000:]
                    )
                    time.sleep(0.2)
                go.touch()
                outputs = [r.communicate(timeout=660)[0] for r in runs]
                assert [r.returncode for r in runs] == [0, 0], outputs
            finally:
                for worker in workers:
                    worker.terminate()
                    worker.wait(30)
            logs = [(tmp_path / f"worker-{n}.log").read_text() for n in (1, 2)]
            assert all("Completed" in log for log in logs), logs  # each worker ran one of the two flow runs

            assert_shared_once_within_caps(
                ledger.rows(wave["id"]), hosts, [tmp_path / f"run-{n}" / f"wave-{wave['id']}-report.md" for n in (1, 2)]
            )
            status = run(VMWAVE, "status", "--wave", wave["id"], "--json")  # the one ledger, read from PostgreSQL
            assert {e["vm"] for e in yaml.safe_load(status)} == {vm["name"] for vm in wave["vms"]}
            run(VMWAVE, "rollback", "--plan", str(plan), "--wave", wave["id"], timeout=300)
