"""Writes the Grafana dashboards in ``grafana/dashboards/`` from this one description: ``python grafana/build.py``.

Two dashboards, importable by Grafana 10 and 11 (schemaVersion 39, panel types
timeseries, stat, table and bargauge only, a ``datasource`` variable every
panel uses, stable uids): vmwave's migration progress from ``vmwave
exporter`` and the migrated VMs' health from KubeVirt's own metrics, by the
names ``kubevirt-metrics.md`` lists with where upstream defines them. The
failure panel's description holds every cause's fix from
``vmwave.domain.diagnosis``, so a person reading it knows what to do.
``tests/test_dashboards.py`` checks the files are what this writes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run from a checkout: vmwave's causes without installing it

from vmwave.domain.diagnosis import CAUSES  # noqa: E402

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
SEED_SUCCESS = 0.9935  # the seed migration: 1987 of 2000 VMs at the first attempt
WAVE = 'wave=~"$wave"'
VMI = 'namespace=~"$namespace", kubernetes_vmi_label_vmwave_io_wave=~"$wave"'


def target(expr: str, legend: str = "", ref: str = "A", instant: bool = False) -> dict[str, Any]:
    found = {"refId": ref, "datasource": DATASOURCE, "expr": expr, "legendFormat": legend or "__auto"}
    if instant:
        found.update(instant=True, range=False, format="table")
    return found


def panel(
    kind: str,
    title: str,
    targets: list[dict[str, Any]],
    x: int,
    y: int,
    w: int = 12,
    h: int = 8,
    unit: str = "short",
    description: str = "",
    **options: Any,
) -> dict[str, Any]:
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": targets,
        "fieldConfig": {"defaults": {"unit": unit, **options.pop("defaults", {})}, "overrides": []},
        "options": options,
    }


def variable(name: str, query: str, label: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "refresh": 2,
        "query": {"query": query, "refId": name},
        "definition": query,
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"text": "All", "value": "$__all"},
        "sort": 1,
    }


def dashboard(
    uid: str, title: str, description: str, variables: list[dict[str, Any]], panels: list[dict[str, Any]]
) -> dict[str, Any]:
    for number, item in enumerate(panels, start=1):
        item["id"] = number
    source = {
        "name": "datasource",
        "label": "Prometheus",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
        "hide": 0,
        "refresh": 1,
    }
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "tags": ["vmwave", "kubevirt", "migration"],
        "time": {"from": "now-24h", "to": "now"},
        "refresh": "30s",
        "timezone": "utc",
        "graphTooltip": 1,
        "annotations": {"list": []},
        "links": [],
        "templating": {"list": [source, *variables]},
        "panels": panels,
    }


def failures_description() -> str:
    return "Steps that failed, by cause. What to do for each:\n\n" + "\n".join(
        f"- **{c.id}**: {c.fix}" for c in CAUSES.values()
    )


def migration() -> dict[str, Any]:
    states = "sum by (state) (vmwave_vms{%s})" % WAVE
    done = 'sum(vmwave_vms{%s, state="succeeded"}) / clamp_min(sum(vmwave_vms{%s, state=~"succeeded|failed"}), 1)'
    quantile = "histogram_quantile(%s, sum by (le, step) (vmwave_step_duration_seconds_bucket))"
    per_wave = [
        target("sum by (wave, class, mode) (vmwave_wave_info{%s})" % WAVE, ref="A", instant=True),
        target('sum by (wave) (vmwave_vms{%s, state="succeeded"})' % WAVE, ref="B", instant=True),
        target('sum by (wave) (vmwave_vms{%s, state="failed"})' % WAVE, ref="C", instant=True),
        target("sum by (wave) (vmwave_disk_bytes_total{%s})" % WAVE, ref="D", instant=True),
        target("max by (wave) (vmwave_wave_start_timestamp_seconds{%s}) * 1000" % WAVE, ref="E", instant=True),
    ]
    panels = [
        panel(
            "stat",
            "Success rate (seed: 99.35%)",
            [target(done % (WAVE, WAVE), "success")],
            0,
            0,
            6,
            5,
            unit="percentunit",
            description="Succeeded over finished VMs; the seed migration reached 99.35%.",
            defaults={
                "thresholds": {
                    "mode": "absolute",
                    "steps": [
                        {"color": "red", "value": None},
                        {"color": "orange", "value": 0.95},
                        {"color": "green", "value": SEED_SUCCESS},
                    ],
                },
                "min": 0,
                "max": 1,
            },
            reduceOptions={"calcs": ["lastNotNull"]},
            colorMode="background",
        ),
        panel(
            "stat",
            "VMs by state",
            [target(states, "{{state}}")],
            6,
            0,
            18,
            5,
            description="Every VM of the selected waves: pending (not started), running, succeeded, failed, "
            "rolled_back (cancelled or undone on request).",
            reduceOptions={"calcs": ["lastNotNull"]},
            textMode="value_and_name",
        ),
        panel(
            "timeseries",
            "Waves over time: VMs by state",
            [target(states, "{{state}}")],
            0,
            5,
            description="How the selected waves moved, VM by VM, from pending to a result.",
        ),
        panel(
            "bargauge",
            "VMs by class and state",
            [target("sum by (class, state) (vmwave_vms{%s})" % WAVE, "{{class}} {{state}}")],
            12,
            5,
            description="P1 (off, move any time) to P5 (manual, approved one by one).",
            reduceOptions={"calcs": ["lastNotNull"]},
            displayMode="gradient",
            orientation="horizontal",
        ),
        panel(
            "timeseries",
            "Step duration (p50, p95 over the ledger)",
            [target(quantile % "0.5", "p50 {{step}}", "A"), target(quantile % "0.95", "p95 {{step}}", "B")],
            0,
            13,
            unit="s",
            description="How long each step took to its end, from every attempt the ledger holds.",
        ),
        panel(
            "bargauge",
            "Failures by cause",
            [target("sum by (cause) (vmwave_step_failures_total)", "{{cause}}")],
            12,
            13,
            description=failures_description(),
            reduceOptions={"calcs": ["lastNotNull"]},
            displayMode="basic",
            orientation="horizontal",
        ),
        panel(
            "timeseries",
            "Disk bytes imported and throughput",
            [
                target("sum(vmwave_disk_bytes_total{%s})" % WAVE, "imported", "A"),
                target("sum(rate(vmwave_disk_bytes_total{%s}[$__rate_interval]))" % WAVE, "throughput (B/s)", "B"),
            ],
            0,
            21,
            unit="bytes",
            description="What CDI imported into the cluster, and how fast.",
        ),
        panel(
            "timeseries",
            "Oldest running attempt against its deadline",
            [
                target("max by (step) (vmwave_step_oldest_running_seconds)", "running {{step}}", "A"),
                target("max by (step) (vmwave_step_timeout_seconds)", "deadline {{step}}", "B"),
            ],
            12,
            21,
            unit="s",
            description="A step past its deadline (VMWAVE_TIMEOUTS) is about to fail.",
        ),
        panel(
            "bargauge",
            "Downtime per VM: source off until its guest agent answered",
            [target("max by (vm, migration) (vmwave_vm_downtime_seconds{%s})" % WAVE, "{{vm}} ({{migration}})")],
            0,
            37,
            24,
            8,
            unit="s",
            description="A cold VM is down for its whole copy; a warm one (precopy "
            "while it ran) only for the last changes, its conversion and boot.",
            reduceOptions={"calcs": ["lastNotNull"]},
            displayMode="gradient",
            orientation="horizontal",
        ),
        panel(
            "table",
            "Waves",
            per_wave,
            0,
            29,
            24,
            8,
            description="One row per wave: class, mode, VMs succeeded and failed, bytes, when it started.",
            showHeader=True,
        ),
    ]
    panels[-1]["transformations"] = [
        {"id": "merge", "options": {}},
        {
            "id": "organize",
            "options": {
                "excludeByName": {"Time": True},
                "renameByName": {
                    "Value #A": "info",
                    "Value #B": "succeeded",
                    "Value #C": "failed",
                    "Value #D": "bytes",
                    "Value #E": "started",
                },
            },
        },
    ]
    waves = variable("wave", "label_values(vmwave_wave_info, wave)", "Wave")
    return dashboard(
        "vmwave-migration",
        "vmwave migration",
        "Waves, VMs by state and class, steps and failures, from `vmwave exporter` (the ledger).",
        [waves],
        panels,
    )


def kubevirt() -> dict[str, Any]:
    rate = "sum by (name) (rate(%s{%s}[$__rate_interval]))"
    panels = [
        panel(
            "stat",
            "Running VMIs",
            [target("count(count by (namespace, name) (kubevirt_vmi_cpu_usage_seconds_total{%s}))" % VMI, "running")],
            0,
            0,
            6,
            5,
            description="Migrated VMIs whose domain virt-handler reports (only running ones have one).",
            reduceOptions={"calcs": ["lastNotNull"]},
        ),
        panel(
            "timeseries",
            "CPU (all modes)",
            [target(rate % ("kubevirt_vmi_cpu_usage_seconds_total", VMI), "{{name}}")],
            6,
            0,
            18,
            8,
            unit="percentunit",
            description="kubevirt_vmi_cpu_usage_seconds_total: CPU seconds per second, user and system together.",
        ),
        panel(
            "timeseries",
            "Memory used",
            [
                target(
                    "sum by (name) (kubevirt_vmi_memory_available_bytes{%s} - kubevirt_vmi_memory_usable_bytes{%s})"
                    % (VMI, VMI),
                    "{{name}}",
                )
            ],
            0,
            8,
            unit="bytes",
            description="Available minus usable, as KubeVirt's recording rule "
            "vmi:kubevirt_vmi_memory_used_bytes:sum computes it (kubevirt_vmi_memory_used_bytes is "
            "deprecated).",
        ),
        panel(
            "timeseries",
            "Network",
            [
                target(rate % ("kubevirt_vmi_network_receive_bytes_total", VMI), "rx {{name}}", "A"),
                target(rate % ("kubevirt_vmi_network_transmit_bytes_total", VMI), "tx {{name}}", "B"),
            ],
            12,
            8,
            unit="Bps",
            description="Bytes per second over every interface of each VMI.",
        ),
        panel(
            "timeseries",
            "Disk IOPS",
            [
                target(rate % ("kubevirt_vmi_storage_iops_read_total", VMI), "read {{name}}", "A"),
                target(rate % ("kubevirt_vmi_storage_iops_write_total", VMI), "write {{name}}", "B"),
            ],
            0,
            16,
            unit="iops",
            description="Read and write operations per second over every drive.",
        ),
        panel(
            "timeseries",
            "Live migration: data left and moved",
            [
                target("sum by (name) (kubevirt_vmi_migration_data_remaining_bytes{%s})" % VMI, "left {{name}}", "A"),
                target("sum by (name) (kubevirt_vmi_migration_data_processed_bytes{%s})" % VMI, "moved {{name}}", "B"),
            ],
            12,
            16,
            unit="bytes",
            description="Per VMI while it live-migrates (absent otherwise).",
        ),
        panel(
            "timeseries",
            "Live migration phases (p95 from creation)",
            [
                target(
                    "histogram_quantile(0.95, sum by (le, phase) (rate("
                    "kubevirt_vmi_migration_phase_transition_time_from_creation_seconds_bucket[$__rate_interval])))",
                    "{{phase}}",
                )
            ],
            0,
            24,
            24,
            8,
            unit="s",
            description="How long after its creation a migration reaches each phase; labelled by phase only.",
        ),
    ]
    namespace = variable("namespace", "label_values(kubevirt_vmi_cpu_usage_seconds_total, namespace)", "Namespace")
    wave = variable(
        "wave", "label_values(kubevirt_vmi_cpu_usage_seconds_total, kubernetes_vmi_label_vmwave_io_wave)", "Wave"
    )  # virt-handler's domain metrics carry the VMI's labels; virt-controller's do not
    return dashboard(
        "vmwave-kubevirt-vms",
        "KubeVirt VMs (migrated by vmwave)",
        "CPU, memory, network, disk and live migration of the VMs vmwave migrated, per VM and per "
        "wave (the vmwave.io/wave label KubeVirt copies onto its metrics).",
        [namespace, wave],
        panels,
    )


DASHBOARDS = {"vmwave-migration.json": migration, "kubevirt-vms.json": kubevirt}


def render(name: str) -> str:
    return json.dumps(DASHBOARDS[name](), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    for name in DASHBOARDS:
        (HERE / "dashboards" / name).parent.mkdir(exist_ok=True)
        (HERE / "dashboards" / name).write_text(render(name))
        print(f"wrote grafana/dashboards/{name}")
