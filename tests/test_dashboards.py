"""The Grafana dashboards, alert rules and Prometheus example: importable, current, and parsed by promtool.

The dashboards are written by ``grafana/build.py``; the files in the repo must
be what it writes. Every PromQL expression of the dashboards goes through
``promtool check rules`` (as a recording rule, Grafana's variables and macros
replaced), the alerts through ``promtool test rules``.
"""

import re
import runpy
import shutil
import subprocess

import pytest
import yaml

from helpers import DASHBOARDS, REPO, as_promql, expressions
from schema_check import SCHEMAS

GRAFANA = REPO / "grafana"
BUILD = runpy.run_path(str(GRAFANA / "build.py"))
PANEL_TYPES = {"timeseries", "stat", "table", "bargauge"}
needs_promtool = pytest.mark.skipif(not shutil.which("promtool"), reason="apt-get install -y prometheus (./dev setup)")


@pytest.mark.parametrize("name", sorted(BUILD["DASHBOARDS"]))
def test_the_files_are_what_build_writes(name):
    assert (GRAFANA / "dashboards" / name).read_text() == BUILD["render"](name), "run: python grafana/build.py"


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_grafana_10_and_11_import_them(name):
    board = DASHBOARDS[name]
    assert 36 <= board["schemaVersion"] <= 39 and re.match(r"^[a-z0-9-]{1,40}$", board["uid"])
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert {p["type"] for p in board["panels"]} <= PANEL_TYPES  # no AngularJS graph
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert all(t["datasource"] == panel["datasource"] for t in panel["targets"]), panel["title"]
        assert panel["description"], panel["title"]


def test_the_failure_panel_says_the_fix_of_every_cause():
    from vmwave.domain.diagnosis import CAUSES

    panel = next(p for p in DASHBOARDS["vmwave-migration.json"]["panels"] if p["title"] == "Failures by cause")
    assert all(f"**{c.id}**: {c.fix}" in panel["description"] for c in CAUSES.values())


@pytest.mark.skipif(
    not (SCHEMAS / "kubevirt-metrics-current.txt").is_file(), reason="../shared/schemas is not beside the repo"
)
def test_every_kubevirt_name_is_current_and_listed_with_where_upstream_defines_it():
    used = {m for expr in expressions(DASHBOARDS["kubevirt-vms.json"]) for m in re.findall(r"\bkubevirt_[a-z_]+", expr)}
    used = {re.sub(r"_bucket$", "", m) for m in used}
    current = set((SCHEMAS / "kubevirt-metrics-current.txt").read_text().split())
    deprecated = set((SCHEMAS / "kubevirt-metrics-deprecated.txt").read_text().split())
    assert used and used <= current and not used & deprecated
    listed = dict(
        re.findall(
            r"^\| `(kubevirt_[a-z_]+)` \|.*\| `(pkg/[^`]+\.go)` \|$",
            (GRAFANA / "kubevirt-metrics.md").read_text(),
            re.M,
        )
    )
    assert set(listed) == used


@needs_promtool
def test_every_dashboard_expression_parses(tmp_path):
    rules = {
        "groups": [
            {
                "name": board["uid"],
                "rules": [
                    {"record": f"dashboard:query_{n}", "expr": as_promql(expr)}
                    for n, expr in enumerate(expressions(board))
                ],
            }
            for board in DASHBOARDS.values()
        ]
    }
    (tmp_path / "queries.yaml").write_text(yaml.safe_dump(rules))
    check = subprocess.run(
        ["promtool", "check", "rules", str(tmp_path / "queries.yaml")], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr


@needs_promtool
def test_the_alert_rules_and_the_prometheus_example_pass_promtool():
    for argv in (
        ["check", "rules", "alerts.yaml"],
        ["test", "rules", "alerts.test.yaml"],
        ["check", "config", "prometheus.yml"],
    ):
        run = subprocess.run(["promtool", *argv], cwd=GRAFANA, capture_output=True, text=True)
        assert run.returncode == 0 and "SUCCESS" in run.stdout + run.stderr, run.stdout + run.stderr


def test_the_provisioning_files_point_at_the_dashboards_and_a_prometheus():
    sources = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yaml").read_text())
    boards = yaml.safe_load((GRAFANA / "provisioning/dashboards/vmwave.yaml").read_text())
    assert sources["apiVersion"] == boards["apiVersion"] == 1
    assert sources["datasources"][0]["type"] == "prometheus"
    assert boards["providers"][0]["type"] == "file" and boards["providers"][0]["options"]["path"]
