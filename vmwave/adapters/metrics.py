"""Migration metrics for Prometheus, computed from the ledger at each scrape.

The ledger is what every worker writes, so a scrape tells the truth after a
worker crashed, between waves and across workers; no worker holds a counter
of its own. Names follow Prometheus' conventions (base units, ``_total``
counters, ``_seconds`` histograms) and every label is bounded: wave, class,
step, cause, state; never a VM name. The counters are as monotonic as the
ledger: a failed step that a rerun of its wave completes stops counting as a
failure, which Prometheus reads as a counter reset.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timezone
from typing import Any, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from vmwave.adapters.ledger import Ledger
from vmwave.domain.steps import GUEST_AGENT, PRECOPY, STATES, outcome

BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800, 86400)  # a second to a day
FINISHED = ("succeeded", "failed", "rolled_back")  # a step that ran to an end (skipped ones did nothing)


def _seconds(row: dict[str, Any]) -> float | None:
    if not (row["started_at"] and row["finished_at"]):
        return None
    return max(0.0, (_utc(row["finished_at"]) - _utc(row["started_at"])).total_seconds())


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)  # SQLite drops the zone


class LedgerCollector(Collector):
    """Every family at each scrape, from one read of the ledger."""

    def __init__(self, ledger: Ledger, timeouts: dict[str, float] | None = None):
        self.ledger, self.timeouts = ledger, timeouts or {}

    def collect(self) -> Iterator[Metric]:
        waves, rows = {w["wave"]: w for w in self.ledger.waves()}, self.ledger.rows()
        yield from self._waves(waves, rows)
        yield from self._steps(rows)

    def _waves(self, waves: dict[str, dict[str, Any]], rows: list[dict[str, Any]]) -> Iterator[Metric]:
        by_vm: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
        for row in rows:
            by_vm[row["wave"]][row["vm_key"]].append(row)
        vms = GaugeMetricFamily(
            "vmwave_vms",
            "VMs of each wave by state (pending, running, succeeded, failed, rolled_back)",
            labels=["wave", "class", "state"],
        )
        info = GaugeMetricFamily(
            "vmwave_wave_info", "Each wave the ledger knows, with its class and mode", labels=["wave", "class", "mode"]
        )
        start = GaugeMetricFamily(
            "vmwave_wave_start_timestamp_seconds", "When the wave's last run started", labels=["wave"]
        )
        end = GaugeMetricFamily(
            "vmwave_wave_end_timestamp_seconds",
            "When the wave's last run ended (absent while it runs)",
            labels=["wave"],
        )
        imported = CounterMetricFamily("vmwave_disk_bytes", "Disk bytes imported into the cluster", labels=["wave"])
        downtime = GaugeMetricFamily(
            "vmwave_vm_downtime_seconds",
            "How long each migrated VM's source was down until its guest agent answered",
            labels=["wave", "vm", "migration"],
        )
        for wave in sorted(set(waves) | set(by_vm)):
            meta = waves.get(wave) or {"class": "unknown", "mode": "unknown", "members": {}}
            members = meta["members"] or {}
            states = Counter(
                (members.get(key, meta["class"]), outcome(steps).state) for key, steps in by_vm[wave].items()
            )
            states.update((cls, "pending") for key, cls in members.items() if key not in by_vm[wave])
            for cls in sorted({cls for cls, _ in states} or {meta["class"]}):
                for state in STATES:
                    vms.add_metric([wave, cls, state], states[(cls, state)])
            info.add_metric([wave, meta["class"], meta["mode"]], 1)
            if meta.get("started_at"):
                start.add_metric([wave], _utc(meta["started_at"]).timestamp())
            if meta.get("finished_at"):
                end.add_metric([wave], _utc(meta["finished_at"]).timestamp())
            imported.add_metric([wave], sum(r["bytes"] or 0 for steps in by_vm[wave].values() for r in steps))
            for steps in by_vm[wave].values():
                done = {r["step"]: r for r in steps if r["status"] == "succeeded"}
                seconds = ((done.get(GUEST_AGENT) or {}).get("detail") or {}).get("downtime_seconds")
                if seconds is not None:
                    downtime.add_metric([wave, done[GUEST_AGENT]["vm"], "warm" if PRECOPY in done else "cold"], seconds)
        yield from (vms, info, start, end, imported, downtime)

    def _steps(self, rows: list[dict[str, Any]]) -> Iterator[Metric]:
        durations: dict[str, list[float]] = defaultdict(list)
        failures: Counter = Counter()
        oldest: dict[str, float] = {}
        now = datetime.now(timezone.utc)
        for row in rows:
            seconds = _seconds(row)
            if row["status"] in FINISHED and seconds is not None:
                durations[row["step"]].append(seconds)
            if row["status"] == "failed":
                failures[(row["step"], row["cause"] or "unknown")] += 1
            if row["status"] == "running" and row["started_at"]:
                age = (now - _utc(row["started_at"])).total_seconds()
                oldest[row["step"]] = max(age, oldest.get(row["step"], 0.0))
        histogram = HistogramMetricFamily(
            "vmwave_step_duration_seconds", "How long each step took, to its end", labels=["step"]
        )
        for step, values in sorted(durations.items()):
            buckets = [(str(float(le)), sum(v <= le for v in values)) for le in BUCKETS]
            histogram.add_metric([step], buckets + [("+Inf", len(values))], sum(values))
        failed = CounterMetricFamily("vmwave_step_failures", "Steps that failed, by cause", labels=["step", "cause"])
        for (step, cause), count in sorted(failures.items()):
            failed.add_metric([step, cause], count)
        running = GaugeMetricFamily(
            "vmwave_step_oldest_running_seconds",
            "Age of the oldest attempt of each step still running",
            labels=["step"],
        )
        for step, age in sorted(oldest.items()):
            running.add_metric([step], age)
        deadline = GaugeMetricFamily(
            "vmwave_step_timeout_seconds", "How long each waiting step may take (VMWAVE_TIMEOUTS)", labels=["step"]
        )
        for step, seconds in sorted(self.timeouts.items()):
            deadline.add_metric([step], seconds)
        yield from (histogram, failed, running, deadline)


def registry(ledger: Ledger, timeouts: dict[str, float] | None = None) -> CollectorRegistry:
    """A registry holding only the ledger's metrics (no process or Python series to confuse a dashboard)."""
    found = CollectorRegistry(auto_describe=False)
    found.register(LedgerCollector(ledger, timeouts))
    return found
