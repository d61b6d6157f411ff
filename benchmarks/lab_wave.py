"""What the wave benchmarks share: a lab from an estate, its plan, and one wave run under a Prefect test server."""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml

from vmwave.adapters.files import load_maps, load_policy, write_plan
from vmwave.adapters.ledger import Ledger
from vmwave.adapters.vsphere import inventory
from vmwave.cli.rehearse import SERVER_AT_SCALE
from vmwave.domain.plan import make_plan
from vmwave.plugins import for_planning
from vmwave.settings import Settings
from vmwave_lab import lab


@dataclass
class WaveRun:
    wave: dict[str, Any]
    report: dict[str, Any]
    seconds: float
    rows: list[dict[str, Any]]  # the ledger's, one per VM and step


@contextmanager
def lab_for(
    estate: dict[str, Any], work: Path, kube_config: dict[str, Any] | None = None, **env: str
) -> Iterator[dict[str, str]]:
    """The lab up for ``estate`` (its VMWAVE_* settings exported, with ``env`` over them), down afterwards."""
    (work / "bench.yaml").write_text(yaml.safe_dump(estate))
    settings = lab.up(work / "bench.yaml", state_dir=work / "lab", kube_config=kube_config)
    try:
        os.environ.update(settings, VMWAVE_LEDGER=str(work / "ledger.db"), VMWAVE_WORKDIR=str(work / "work"), **env)
        yield settings
    finally:
        lab.down(work / "lab")


def run_first_wave(work: Path, wave_size: int, before: Callable[[], None] = lambda: None) -> WaveRun:
    """Plan the lab's estate into waves of ``wave_size`` and run the first one; ``before`` runs just before it.

    Its Prefect server records task runs in batches, as deployments/README.md tells a real one to."""
    os.environ.update(PREFECT_SERVER_ANALYTICS_ENABLED="false", **SERVER_AT_SCALE)
    from prefect.testing.utilities import prefect_test_harness

    from vmwave_flows.wave import migrate_wave

    target = Settings.load().need_vcenter()
    doc = make_plan(
        inventory(target),
        load_policy(wave_size=wave_size, per_host=10),
        load_maps(os.environ["VMWAVE_MAPS"]),
        target.url,
        **for_planning(),
    )
    write_plan(doc, work / "plan.yaml")
    wave = doc["waves"][0]
    with prefect_test_harness(server_startup_timeout=120):
        before()
        started = time.perf_counter()
        state = migrate_wave(str(work / "plan.yaml"), wave["id"], report_dir=str(work), return_state=True)
        report = state.result(raise_on_failure=False)  # a wave with a failed VM ends Failed but has its report
        seconds = time.perf_counter() - started
    return WaveRun(wave, report, seconds, Ledger(Settings.load().ledger).rows(wave["id"]))


def busy_seconds(spans: list[tuple]) -> float:
    """Wall time during which at least one of the spans ran (a stage's own clock)."""
    total, end = 0.0, None
    for start, finish in sorted(spans):
        if end is None or start > end:
            total += (finish - start).total_seconds()
            end = finish
        elif finish > end:
            total += (finish - end).total_seconds()
            end = finish
    return total
