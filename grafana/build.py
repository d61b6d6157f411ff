"""Writes the Grafana dashboards in ``grafana/dashboards/`` from this one description: ``python grafana/build.py``.

Built with Grafana's own typed builders (``grafana-foundation-sdk``), so a
field is named and typed as Grafana's schema has it, not as this file spells
it. Two dashboards, importable by Grafana 10 and 11 (schemaVersion 36, panel types
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

from grafana_foundation_sdk.builders import bargauge, dashboard, prometheus, stat, table, timeseries
from grafana_foundation_sdk.builders.common import ReduceDataOptions, VizTooltipOptions
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import (
    BarGaugeDisplayMode,
    BigValueColorMode,
    BigValueTextMode,
    TooltipDisplayMode,
    VizOrientation,
)
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DataSourceRef,
    DataTransformerConfig,
    GridPos,
    Threshold,
    ThresholdsMode,
    VariableOption,
    VariableRefresh,
    VariableSort,
)
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run from a checkout: vmwave's causes without installing it

from vmwave.domain.diagnosis import CAUSES  # noqa: E402

DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
SEED_SUCCESS = 0.9935  # the seed migration: 1987 of 2000 VMs at the first attempt
WAVE = 'wave=~"$wave"'
VMI = 'namespace=~"$namespace", kubernetes_vmi_label_vmwave_io_wave=~"$wave"'
LAST = ReduceDataOptions().calcs(["lastNotNull"])


def target(expr: str, legend: str = "", ref: str = "A", instant: bool = False) -> prometheus.Dataquery:
    query = prometheus.Dataquery().expr(expr).legend_format(legend or "__auto").ref_id(ref).datasource(DATASOURCE)
    return query.instant().format(PromQueryFormat.TABLE) if instant else query


def panel(
    kind: Any,
    title: str,
    targets: list[prometheus.Dataquery],
    at: tuple[int, ...],
    unit: str = "short",
    description: str = "",
) -> Any:
    """A panel of the builder ``kind`` (``stat.Panel()``, ...) at its place ``at`` (x, y and, unless 12 wide and 8
    high, width and height), every query on the dashboard's source."""
    x, y, w, h = (*at, 12, 8)[:4]
    placed = kind.title(title).description(description).datasource(DATASOURCE).unit(unit)
    placed = placed.grid_pos(GridPos(h=h, w=w, x=x, y=y))
    for query in targets:
        placed = placed.with_target(query)
    return placed


def series() -> timeseries.Panel:
    """A time series whose tooltip lists every series at the time under the cursor (shared across panels)."""
    return timeseries.Panel().tooltip(VizTooltipOptions().mode(TooltipDisplayMode.MULTI))


def variable(name: str, query: str, label: str) -> dashboard.QueryVariable:
    return (
        dashboard.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .query({"query": query, "refId": name})
        .include_all(True)
        .multi(True)
        .all_value(".*")
        .current(VariableOption(text="All", value="$__all"))
        .sort(VariableSort.ALPHABETICAL_ASC)
    )


def board(uid: str, title: str, description: str, variables: list[Any], panels: list[Any]) -> dashboard.Dashboard:
    found = (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["vmwave", "kubevirt", "migration"])
        .time("now-24h", "now")
        .refresh("30s")
        .timezone("utc")
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .editable()
        .with_variable(dashboard.DatasourceVariable("datasource").label("Prometheus").type("prometheus"))
    )
    for item in variables:
        found = found.with_variable(item)
    for number, item in enumerate(panels, start=1):
        found = found.with_panel(item.id(number))
    return found


def failures_description() -> str:
    return "Steps that failed, by cause. What to do for each:\n\n" + "\n".join(
        f"- **{c.id}**: {c.fix}" for c in CAUSES.values()
    )


def migration() -> dashboard.Dashboard:
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
    seed = [
        Threshold(color="red", value=None),
        Threshold(color="orange", value=0.95),
        Threshold(color="green", value=SEED_SUCCESS),
    ]
    panels = [
        panel(
            stat.Panel(),
            "Success rate (seed: 99.35%)",
            [target(done % (WAVE, WAVE), "success")],
            (0, 0, 6, 5),
            unit="percentunit",
            description="Succeeded over finished VMs; the seed migration reached 99.35%.",
        )
        .thresholds(dashboard.ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps(seed))
        .min(0)
        .max(1)
        .reduce_options(LAST)
        .color_mode(BigValueColorMode.BACKGROUND),
        panel(
            stat.Panel(),
            "VMs by state",
            [target(states, "{{state}}")],
            (6, 0, 18, 5),
            description="Every VM of the selected waves: pending (not started), running, succeeded, failed, "
            "rolled_back (cancelled or undone on request).",
        )
        .reduce_options(LAST)
        .text_mode(BigValueTextMode.VALUE_AND_NAME),
        panel(
            series(),
            "Waves over time: VMs by state",
            [target(states, "{{state}}")],
            (0, 5),
            description="How the selected waves moved, VM by VM, from pending to a result.",
        ),
        panel(
            bargauge.Panel(),
            "VMs by class and state",
            [target("sum by (class, state) (vmwave_vms{%s})" % WAVE, "{{class}} {{state}}")],
            (12, 5),
            description="P1 (off, move any time) to P5 (manual, approved one by one).",
        )
        .reduce_options(LAST)
        .display_mode(BarGaugeDisplayMode.GRADIENT)
        .orientation(VizOrientation.HORIZONTAL),
        panel(
            series(),
            "Step duration (p50, p95 over the ledger)",
            [target(quantile % "0.5", "p50 {{step}}", "A"), target(quantile % "0.95", "p95 {{step}}", "B")],
            (0, 13),
            unit="s",
            description="How long each step took to its end, from every attempt the ledger holds.",
        ),
        panel(
            bargauge.Panel(),
            "Failures by cause",
            [target("sum by (cause) (vmwave_step_failures_total)", "{{cause}}")],
            (12, 13),
            description=failures_description(),
        )
        .reduce_options(LAST)
        .display_mode(BarGaugeDisplayMode.BASIC)
        .orientation(VizOrientation.HORIZONTAL),
        panel(
            series(),
            "Disk bytes imported and throughput",
            [
                target("sum(vmwave_disk_bytes_total{%s})" % WAVE, "imported", "A"),
                target("sum(rate(vmwave_disk_bytes_total{%s}[$__rate_interval]))" % WAVE, "throughput (B/s)", "B"),
            ],
            (0, 21),
            unit="bytes",
            description="What CDI imported into the cluster, and how fast.",
        ),
        panel(
            series(),
            "Oldest running attempt against its deadline",
            [
                target("max by (step) (vmwave_step_oldest_running_seconds)", "running {{step}}", "A"),
                target("max by (step) (vmwave_step_timeout_seconds)", "deadline {{step}}", "B"),
            ],
            (12, 21),
            unit="s",
            description="A step past its deadline (VMWAVE_TIMEOUTS) is about to fail.",
        ),
        panel(
            bargauge.Panel(),
            "Downtime per VM: source off until its guest agent answered",
            [target("max by (vm, migration) (vmwave_vm_downtime_seconds{%s})" % WAVE, "{{vm}} ({{migration}})")],
            (0, 37, 24, 8),
            unit="s",
            description="A cold VM is down for its whole copy; a warm one (precopy "
            "while it ran) only for the last changes, its conversion and boot.",
        )
        .reduce_options(LAST)
        .display_mode(BarGaugeDisplayMode.GRADIENT)
        .orientation(VizOrientation.HORIZONTAL),
        panel(
            table.Panel(),
            "Waves",
            per_wave,
            (0, 29, 24, 8),
            description="One row per wave: class, mode, VMs succeeded and failed, bytes, when it started.",
        )
        .show_header(True)
        .with_transformation(DataTransformerConfig(id_val="merge", options={}))
        .with_transformation(
            DataTransformerConfig(
                id_val="organize",
                options={
                    "excludeByName": {"Time": True},
                    "renameByName": {
                        "Value #A": "info",
                        "Value #B": "succeeded",
                        "Value #C": "failed",
                        "Value #D": "bytes",
                        "Value #E": "started",
                    },
                },
            )
        ),
    ]
    waves = variable("wave", "label_values(vmwave_wave_info, wave)", "Wave")
    return board(
        "vmwave-migration",
        "vmwave migration",
        "Waves, VMs by state and class, steps and failures, from `vmwave exporter` (the ledger).",
        [waves],
        panels,
    )


def kubevirt() -> dashboard.Dashboard:
    rate = "sum by (name) (rate(%s{%s}[$__rate_interval]))"
    running = "count(count by (namespace, name) (kubevirt_vmi_cpu_usage_seconds_total{%s}))" % VMI
    memory = "sum by (name) (kubevirt_vmi_memory_available_bytes{%s} - kubevirt_vmi_memory_usable_bytes{%s})"
    phases = (
        "histogram_quantile(0.95, sum by (le, phase) (rate("
        "kubevirt_vmi_migration_phase_transition_time_from_creation_seconds_bucket[$__rate_interval])))"
    )
    panels = [
        panel(
            stat.Panel(),
            "Running VMIs",
            [target(running, "running")],
            (0, 0, 6, 5),
            description="Migrated VMIs whose domain virt-handler reports (only running ones have one).",
        ).reduce_options(LAST),
        panel(
            series(),
            "CPU (all modes)",
            [target(rate % ("kubevirt_vmi_cpu_usage_seconds_total", VMI), "{{name}}")],
            (6, 0, 18, 8),
            unit="percentunit",
            description="kubevirt_vmi_cpu_usage_seconds_total: CPU seconds per second, user and system together.",
        ),
        panel(
            series(),
            "Memory used",
            [target(memory % (VMI, VMI), "{{name}}")],
            (0, 8),
            unit="bytes",
            description="Available minus usable, as KubeVirt's recording rule "
            "vmi:kubevirt_vmi_memory_used_bytes:sum computes it (kubevirt_vmi_memory_used_bytes is deprecated).",
        ),
        panel(
            series(),
            "Network",
            [
                target(rate % ("kubevirt_vmi_network_receive_bytes_total", VMI), "rx {{name}}", "A"),
                target(rate % ("kubevirt_vmi_network_transmit_bytes_total", VMI), "tx {{name}}", "B"),
            ],
            (12, 8),
            unit="Bps",
            description="Bytes per second over every interface of each VMI.",
        ),
        panel(
            series(),
            "Disk IOPS",
            [
                target(rate % ("kubevirt_vmi_storage_iops_read_total", VMI), "read {{name}}", "A"),
                target(rate % ("kubevirt_vmi_storage_iops_write_total", VMI), "write {{name}}", "B"),
            ],
            (0, 16),
            unit="iops",
            description="Read and write operations per second over every drive.",
        ),
        panel(
            series(),
            "Live migration: data left and moved",
            [
                target("sum by (name) (kubevirt_vmi_migration_data_remaining_bytes{%s})" % VMI, "left {{name}}", "A"),
                target("sum by (name) (kubevirt_vmi_migration_data_processed_bytes{%s})" % VMI, "moved {{name}}", "B"),
            ],
            (12, 16),
            unit="bytes",
            description="Per VMI while it live-migrates (absent otherwise).",
        ),
        panel(
            series(),
            "Live migration phases (p95 from creation)",
            [target(phases, "{{phase}}")],
            (0, 24, 24, 8),
            unit="s",
            description="How long after its creation a migration reaches each phase; labelled by phase only.",
        ),
    ]
    namespace = variable("namespace", "label_values(kubevirt_vmi_cpu_usage_seconds_total, namespace)", "Namespace")
    wave = variable(
        "wave", "label_values(kubevirt_vmi_cpu_usage_seconds_total, kubernetes_vmi_label_vmwave_io_wave)", "Wave"
    )  # virt-handler's domain metrics carry the VMI's labels; virt-controller's do not
    return board(
        "vmwave-kubevirt-vms",
        "KubeVirt VMs (migrated by vmwave)",
        "CPU, memory, network, disk and live migration of the VMs vmwave migrated, per VM and per "
        "wave (the vmwave.io/wave label KubeVirt copies onto its metrics).",
        [namespace, wave],
        panels,
    )


DASHBOARDS = {"vmwave-migration.json": migration, "kubevirt-vms.json": kubevirt}


def render(name: str) -> str:
    return json.dumps(DASHBOARDS[name]().build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    for name in DASHBOARDS:
        (HERE / "dashboards" / name).parent.mkdir(exist_ok=True)
        (HERE / "dashboards" / name).write_text(render(name))
        print(f"wrote grafana/dashboards/{name}")
