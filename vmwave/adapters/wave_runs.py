"""Runs of the migrate-wave deployment started at given times and watched to their end, as a rehearsal drives them.

A run is created Scheduled at its start, so a worker takes it when it is due,
exactly as a schedule in the calendar fires. While they run, a manual (P5)
migration that pauses for a person's approval is approved through Prefect's
API when asked to, and said so in its note: a rehearsal records that it, not
a person, approved.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
from prefect.client.schemas.objects import StateType
from prefect.states import Scheduled

from vmwave.adapters.calendar import ensure_deployment

FINAL = {StateType.COMPLETED, StateType.FAILED, StateType.CRASHED, StateType.CANCELLED}


@dataclass(frozen=True)
class WaveRun:
    wave: str
    id: UUID
    state: str = "Scheduled"  # its state's name: Completed, Failed (a VM failed), Crashed, ...
    done: bool = False
    message: str = ""  # why, for a run that failed or was refused


def start_runs(plan: Path, starts: list[tuple[str, datetime, dict[str, Any]]], deployment: str, pool: str,
               schema: dict[str, Any]) -> list[WaveRun]:
    """One run per wave of ``plan``, each scheduled at its time with its parameters."""
    async def start() -> list[WaveRun]:
        async with get_client() as client:
            made = await ensure_deployment(client, plan, deployment, pool, schema)
            runs = []
            for wave, at, parameters in starts:
                run = await client.create_flow_run_from_deployment(
                    made.id, parameters={"plan": str(plan), "wave": wave, **parameters},
                    state=Scheduled(scheduled_time=at), name=f"wave-{wave}")
                runs.append(WaveRun(wave, run.id))
            return runs
    return asyncio.run(start())


def watch(runs: list[WaveRun], deadline: float, approval_note: str | None,
          tick: Callable[[list[WaveRun]], None] = lambda runs: None, poll: float = 2.0) -> list[WaveRun]:
    """Each run in its final state (or its state at ``deadline``); paused migrations approved with
    ``approval_note`` when given."""
    async def follow() -> list[WaveRun]:
        async with get_client() as client:
            current = runs
            while True:
                read = [(r, (await client.read_flow_run(r.id)).state) for r in current]
                current = [WaveRun(r.wave, r.id, state.name, state.type in FINAL, state.message or "")
                           for r, state in read]
                tick(current)
                if all(r.done for r in current) or time.monotonic() > deadline:
                    return current
                if approval_note is not None:
                    paused = await client.read_flow_runs(flow_run_filter=FlowRunFilter(state=FlowRunFilterState(
                        type=FlowRunFilterStateType(any_=[StateType.PAUSED]))))
                    for run in paused:
                        await client.resume_flow_run(run.id, run_input={"approve": True, "note": approval_note})
                await asyncio.sleep(poll)
    return asyncio.run(follow())

