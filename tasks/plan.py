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
    """The plan, checked against the VMs already in the cluster when there is a kubeconfig."""
    doc = make_plan(records, policy, maps, source, existing=cluster_vms(kubeconfig), **for_planning(disabled))
    write_plan(doc, out)
    return doc


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
