"""The wave calendar in Prefect: on the migrate-wave deployment, one schedule per wave with a window.

Schedules are created, moved in place (found by slug) or deleted, and a
scheduled run left from an earlier window is deleted, so the Prefect UI's
calendar shows exactly one run per wave, at its window's start. A missing
deployment is created as deployments/prefect.yaml's shared-storage one, on a
process work pool created if missing; an existing one keeps how it was made.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import DeploymentScheduleCreate, WorkPoolCreate
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.schedules import RRuleSchedule
from prefect.exceptions import ObjectNotFound

from vmwave.domain.calendar import SLUG_PREFIX, WaveStart

FLOW = "migrate-wave"
ENTRYPOINT = "vmwave_flows.wave:migrate_wave"


@dataclass
class Changes:
    deployment: str
    created: list[str] = field(default_factory=list)
    moved: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    stale_runs: int = 0


def schedule_waves(
    plan: Path, starts: dict[str, WaveStart], deployment: str, pool: str, parameter_schema: dict[str, Any]
) -> Changes:
    return asyncio.run(_schedule(plan.resolve(), starts, deployment, pool, parameter_schema))


async def ensure_deployment(client: Any, plan: Path, name: str, pool: str, schema: dict[str, Any]) -> Any:
    """The migrate-wave deployment ``name``, made (with its process work pool) when missing."""
    try:
        return await client.read_deployment_by_name(f"{FLOW}/{name}")
    except ObjectNotFound:
        pass
    try:
        await client.read_work_pool(pool)
    except ObjectNotFound:
        await client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
    flow_id = await client.create_flow_from_name(FLOW)
    made = await client.create_deployment(
        flow_id,
        name,
        entrypoint=ENTRYPOINT,
        work_pool_name=pool,
        work_queue_name="default",
        parameters={"plan": str(plan)},
        parameter_openapi_schema=schema,
        tags=["vmwave", "migrate"],
        description="Migrate one wave of the plan; the run ends Failed when any of its VMs failed.",
        pull_steps=[{"prefect.deployments.steps.set_working_directory": {"directory": str(plan.parent)}}],
    )
    return await client.read_deployment(made)


async def _schedule(plan: Path, starts: dict[str, WaveStart], name: str, pool: str, schema: dict[str, Any]) -> Changes:
    changes = Changes(f"{FLOW}/{name}")
    async with get_client() as client:
        deployment = await ensure_deployment(client, plan, name, pool, schema)
        existing = {
            s.slug: s
            for s in await client.read_deployment_schedules(deployment.id)
            if (s.slug or "").startswith(SLUG_PREFIX)
        }
        for slug, start in sorted(starts.items()):
            schedule = RRuleSchedule(rrule=start.rrule, timezone="UTC")
            parameters = {"plan": str(plan), "wave": start.wave}
            if slug not in existing:
                await client.create_deployment_schedules(
                    deployment.id,
                    [DeploymentScheduleCreate(schedule=schedule, active=True, parameters=parameters, slug=slug)],
                )
                changes.created.append(slug)
            elif (
                getattr(existing[slug].schedule, "rrule", None) != start.rrule
                or existing[slug].parameters != parameters
            ):
                await client.update_deployment_schedule(
                    deployment.id, existing[slug].id, schedule=schedule, parameters=parameters
                )
                changes.moved.append(slug)
            else:
                changes.kept.append(slug)
        for slug in sorted(set(existing) - set(starts)):
            await client.delete_deployment_schedule(deployment.id, existing[slug].id)
            changes.removed.append(slug)
        changes.stale_runs = await _delete_stale_runs(client, deployment.id, starts)
    return changes


async def _delete_stale_runs(client: Any, deployment_id: Any, starts: dict[str, WaveStart]) -> int:
    """Scheduled runs of a wave at a time its window no longer starts, or of a wave no longer scheduled."""
    runs = await client.read_flow_runs(
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
        flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))
        ),
    )
    wanted = {(s.wave, s.start) for s in starts.values()}
    stale = 0
    for run in runs:
        when = run.next_scheduled_start_time or run.expected_start_time
        at = when.astimezone(timezone.utc).replace(microsecond=0) if isinstance(when, datetime) else None
        if run.auto_scheduled and (run.parameters.get("wave"), at) not in wanted:
            await client.delete_flow_run(run.id)
            stale += 1
    return stale
