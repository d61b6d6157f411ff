"""Prefect tasks: build the plan document and publish its summary as a table artifact."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NONE

from vmwave.adapters.files import write_plan
from vmwave.adapters.kubernetes import cluster_vms
from vmwave.domain.classes import Policy
from vmwave.domain.maps import Maps
from vmwave.domain.plan import make_plan, parse_plan, summarize
from vmwave.domain.records import SourceVM
from vmwave.plugins import for_planning


def write_plan_document(
    records: list[SourceVM],
    policy: Policy,
    maps: Maps | None,
    source: str,
    out: str | Path,
    disabled: frozenset[str] = frozenset(),
    kubeconfig: Path | None = None,
) -> tuple[dict[str, Any], int]:
    """The plan, written to ``out``, checked against the VMs already in the cluster when there is a kubeconfig;
    and how many there were. `vmwave plan` and the plan flow both make it so."""
    existing = cluster_vms(kubeconfig)
    doc = make_plan(records, policy, maps, source, existing=existing, **for_planning(disabled))
    write_plan(doc, out)
    return doc, len(existing)


@task(persist_result=False, cache_policy=NONE)
def build_plan_document(
    records: list[SourceVM],
    policy: Policy,
    maps: Maps | None,
    source: str,
    out: str,
    disabled: frozenset[str] = frozenset(),
    kubeconfig: Path | None = None,
) -> dict[str, Any]:
    """The plan document of a flow run (``write_plan_document``)."""
    return write_plan_document(records, policy, maps, source, out, disabled, kubeconfig)[0]


@task(persist_result=False, cache_policy=NONE)
def publish_summary(doc: dict[str, Any]) -> dict[str, Any]:
    summary = summarize(parse_plan(doc, "the plan"))
    rows = [
        {
            "wave": w["id"],
            "class": w["class"],
            "mode": w["mode"],
            "vms": w["vms"],
            "critical concerns": w["critical"],
            "window": w["window"],
        }
        for w in summary["waves"]
    ]
    create_table_artifact(
        key="wave-plan",
        table=rows,
        description=f"{summary['vms']} VMs in {len(rows)} waves; "
        + ", ".join(f"{c['class']}: {c['vms']}" for c in summary["classes"]),
    )
    return summary
