"""A real Prometheus scrapes `vmwave exporter` and the lab cluster during and after a lab wave.

After the wave one of its VMs live-migrates (the lab KubeVirt simulates the
copy), so the dashboards' live-migration panels have something to show.
Every query of both dashboards is then evaluated through Prometheus' HTTP API
over that time (Grafana's variables and macros replaced) and returns data;
the alert rules are loaded and the failure-rate and guest-agent alerts fire
for the wave's one VM whose agent never connects.
"""

import json
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from urllib.parse import urlparse

import pytest
import yaml

from helpers import DASHBOARDS, REPO, VMWAVE, as_promql, expressions
from vmwave.adapters.kubernetes import Cluster
from vmwave_lab.kube.qemu import free_port
from vmwave_lab.process import wait_for

pytestmark = [
    pytest.mark.prefect,
    pytest.mark.skipif(not shutil.which("prometheus"), reason="apt-get install -y prometheus (./dev setup does)"),
]


def started(argv, log, env=None):
    return subprocess.Popen(argv, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env)


def ask(base, path, **params):
    with urllib.request.urlopen(f"{base}{path}?{urllib.parse.urlencode(params)}", timeout=10) as answer:
        return json.loads(answer.read())["data"]


def test_prometheus_scrapes_the_exporter_and_the_lab_and_every_dashboard_query_has_data(
    prefect_server, wave_env, planned, tmp_path, agent_never_answers
):
    from prefect.settings import PREFECT_API_URL

    plan, _, wave = planned
    stuck = wave["vms"][0]
    agent_never_answers(
        wave_env["VMWAVE_KUBECONFIG"], "vmwave", stuck["target_name"], wave_env["VMWAVE_LEDGER"], stuck["uuid"]
    )
    kubeconfig = yaml.safe_load(open(wave_env["VMWAVE_KUBECONFIG"]))["clusters"][0]["cluster"]
    exporter_port, prometheus_port = free_port(), free_port()
    shutil.copy(REPO / "grafana/alerts.yaml", tmp_path / "alerts.yaml")
    (tmp_path / "prometheus.yml").write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": ["alerts.yaml"],
                "scrape_configs": [
                    {"job_name": "vmwave", "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}]},
                    {
                        "job_name": "kubevirt",
                        "scheme": "https",
                        "tls_config": {"ca_file": kubeconfig["certificate-authority"]},
                        "static_configs": [{"targets": [urlparse(kubeconfig["server"]).netloc]}],
                    },
                ],
            }
        )
    )
    exporter = started(
        [VMWAVE, "exporter", "--port", str(exporter_port), "--listen", "127.0.0.1"],
        tmp_path / "exporter.log",
        env={**os.environ, **wave_env},
    )
    prometheus = started(
        [
            "prometheus",
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prometheus_port}",
            "--log.level=warn",
        ],
        tmp_path / "prometheus.log",
    )
    base = f"http://127.0.0.1:{prometheus_port}"
    try:

        def all_up() -> bool:
            try:
                targets = ask(base, "/api/v1/targets")["activeTargets"]
            except OSError:
                return False
            return len(targets) == 2 and all(t["health"] == "up" for t in targets)

        assert wait_for(all_up, time.monotonic() + 60), (tmp_path / "prometheus.log").read_text()
        begun = time.time()
        env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "VMWAVE_TIMEOUTS": "agent=8"}
        run = subprocess.run(
            [VMWAVE, "migrate", "--plan", str(plan), "--wave", wave["id"], "--report-dir", str(tmp_path)],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert run.returncode == 1, run.stdout + run.stderr  # the stuck VM failed, the rest succeeded

        def scraped_the_end() -> bool:
            return bool(
                ask(base, "/api/v1/query", query=f'vmwave_wave_end_timestamp_seconds{{wave="{wave["id"]}"}}')["result"]
            )

        assert wait_for(scraped_the_end, time.monotonic() + 30)
        cluster = Cluster(wave_env["VMWAVE_KUBECONFIG"])
        moving = wave["vms"][1]["target_name"]
        cluster.apply(
            {
                "apiVersion": "kubevirt.io/v1",
                "kind": "VirtualMachineInstanceMigration",
                "metadata": {"name": f"{moving}-move", "namespace": "vmwave"},
                "spec": {"vmiName": moving},
            }
        )
        cluster.wait_for(
            "kubevirt.io/v1",
            "VirtualMachineInstanceMigration",
            "vmwave",
            f"{moving}-move",
            lambda o: (o.get("status") or {}).get("phase") == "Succeeded",
            60,
            "migrated",
        )

        def scraped_the_migration() -> bool:
            return bool(
                ask(
                    base,
                    "/api/v1/query",
                    query='kubevirt_vmi_migration_phase_transition_time_from_creation_seconds_count{phase="Succeeded"}',
                )["result"]
            )

        assert wait_for(scraped_the_migration, time.monotonic() + 30)
        window = {"start": begun - 5, "end": time.time(), "step": "1"}  # the wave and the migration
        running = ask(
            base, "/api/v1/query_range", query=f'sum(vmwave_vms{{wave="{wave["id"]}", state="running"}})', **window
        )["result"]
        assert running and max(float(v) for _, v in running[0]["values"]) >= 1  # scraped while the wave ran

        empty = []
        for name, board in DASHBOARDS.items():
            for expr in expressions(board):
                query = as_promql(expr)
                if not ask(base, "/api/v1/query_range", query=query, **window)["result"]:
                    empty.append(f"{name}: {query}")
        assert empty == []

        def firing(alert: str) -> bool:
            return bool(
                ask(base, "/api/v1/query", query=f'ALERTS{{alertname="{alert}", alertstate="firing"}}')["result"]
            )

        assert wait_for(
            lambda: firing("VmwaveWaveFailureRateHigh") and firing("VmwaveGuestAgentNeverConnects"),
            time.monotonic() + 30,
        )
    finally:
        for process in (exporter, prometheus):
            process.terminate()
            process.wait(20)
        subprocess.run(
            [VMWAVE, "rollback", "--plan", str(plan), "--wave", wave["id"]],
            capture_output=True,
            env={**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()},
        )
