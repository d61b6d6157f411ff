"""Prefect tasks: build the plan document and publish its summary as a table artifact."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.artifacts import create_table_artifact

from vmwave.domain.plan import summarize
from vmwave.domain.records import SourceVM
from vmwave.planning import load_maps, load_policy, make_plan, write_plan


@task(persist_result=False)
def build_plan_document(records: list[SourceVM], rules: str | None, maps: str | None, source: str,
                        out: str) -> dict[str, Any]:
    doc = make_plan(records, load_policy(rules), load_maps(maps), source)
    write_plan(doc, out)
    return doc


@task(persist_result=False)
def publish_summary(doc: dict[str, Any]) -> dict[str, Any]:
    summary = summarize(doc)
    rows = [{"wave": w["id"], "class": w["class"], "mode": w["mode"], "vms": w["vms"],
             "critical concerns": w["critical"], "window": w["window"]} for w in summary["waves"]]
    create_table_artifact(key="wave-plan", table=rows,
                          description=f"{summary['vms']} VMs in {len(rows)} waves; "
                                      + ", ".join(f"{c['class']}: {c['vms']}" for c in summary["classes"]))
    return summary
