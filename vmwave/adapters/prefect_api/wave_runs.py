"""Runs of the migrate-wave deployment started at given times and watched to their end, as a rehearsal drives them.

A run is created Scheduled at its start, so a worker takes it when it is due,
exactly as a schedule in the calendar fires. While they run, a manual (P5)
migration that pauses for a person's approval is approved through Prefect's
API when asked to, and said so in its note: a rehearsal records that it, not
a person, approved. A run whose process died (its worker killed with it, or
crashed) is scheduled again, up to ``RERUNS`` times: the wave resumes from its
ledger on whichever worker takes it. The Prefect server may restart meanwhile:
a poll it cannot answer is skipped.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Callable
from uuid import UUID

import httpx
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, FlowRunFilterState, FlowRunFilterStateType
from prefect.client.schemas.objects import StateType
from prefect.states import Scheduled

from vmwave.adapters.prefect_api.calendar import ensure_deployment

FINAL = {StateType.COMPLETED, StateType.FAILED, StateType.CRASHED, StateType.CANCELLED}
RERUNS = 3  # a wave whose run dies this often is left Crashed: something kills it that a rerun will not fix


@dataclass(frozen=True)
class WaveRun:
    wave: str
    id: UUID
    state: str = "Scheduled"  # its state's name: Completed, Failed (a VM failed), Crashed, ...
    done: bool = False
    message: str = ""  # why, for a run that failed or was refused
    reruns: int = 0  # times it was scheduled again after its process died


def start_runs(
    plan: Path, starts: list[tuple[str, datetime, dict[str, Any]]], deployment: str, pool: str, schema: dict[str, Any]
) -> list[WaveRun]:
    """One run per wave of ``plan``, each scheduled at its time with its parameters."""

    async def start() -> list[WaveRun]:
        async with get_client() as client:
            made = await ensure_deployment(client, plan, deployment, pool, schema)
            runs = []
            for wave, at, parameters in starts:
                run = await client.create_flow_run_from_deployment(
                    made.id,
                    parameters={"plan": str(plan), "wave": wave, **parameters},
                    state=Scheduled(scheduled_time=at),
                    name=f"wave-{wave}",
                )
                runs.append(WaveRun(wave, run.id))
            return runs

    return asyncio.run(start())


def watch(
    runs: list[WaveRun],
    deadline: float,
    approval_note: str | None,
    tick: Callable[[list[WaveRun]], None] = lambda runs: None,
    poll: float = 2.0,
    alive: Callable[[int], bool] = lambda pid: True,
    note: Callable[[str], None] = lambda what: None,
) -> list[WaveRun]:
    """Each run in its final state (or its state at ``deadline``); paused migrations approved with
    ``approval_note`` when given; a run whose process is not ``alive`` (by its pid) or that crashed, scheduled
    again and ``note``d."""

    async def follow() -> list[WaveRun]:
        dead: set[tuple[UUID, str]] = set()  # (run, pid) already scheduled again: that pid is stale until replaced
        async with get_client() as client:
            current = runs
            while True:
                try:
                    current = await _poll(client, current, alive, dead, note)
                    tick(current)
                    if all(r.done for r in current) or time.monotonic() > deadline:
                        return current
                    if approval_note is not None:
                        paused = await client.read_flow_runs(
                            flow_run_filter=FlowRunFilter(
                                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))
                            )
                        )
                        for run in paused:
                            await client.resume_flow_run(run.id, run_input={"approve": True, "note": approval_note})
                except httpx.HTTPError:  # the server restarting (its client already retried): ask again next poll
                    tick(current)
                await asyncio.sleep(poll)

    return asyncio.run(follow())


async def _poll(
    client, runs: list[WaveRun], alive: Callable[[int], bool], dead: set[tuple[UUID, str]], note: Callable[[str], None]
) -> list[WaveRun]:
    """The runs as they are now, read in one request; an ended one is not asked again (a 2000-VM rehearsal read
    its 41 runs one by one every 2 s, ended ones too, from start to end)."""
    open_ids = [r.id for r in runs if not r.done]
    found = (
        {
            fr.id: fr
            for fr in await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=open_ids)), limit=len(open_ids)
            )
        }
        if open_ids
        else {}
    )
    return [await _follow(client, r, found[r.id], alive, dead, note) if r.id in found else r for r in runs]


async def _follow(
    client,
    run: WaveRun,
    flow_run,
    alive: Callable[[int], bool],
    dead: set[tuple[UUID, str]],
    note: Callable[[str], None],
) -> WaveRun:
    """The run as ``flow_run`` says it is now; scheduled again when its process died."""
    state, pid = flow_run.state, flow_run.infrastructure_pid or ""
    lost = state.type == StateType.RUNNING and pid.isdigit() and (run.id, pid) not in dead and not alive(int(pid))
    if (lost or state.type == StateType.CRASHED) and run.reruns < RERUNS:
        why = f"its process {pid} ended without a word" if lost else f"it crashed: {state.message or ''}".rstrip(": ")
        dead.add((run.id, pid))
        await client.set_flow_run_state(
            run.id, Scheduled(message=f"scheduled again by the rehearsal: {why}"), force=True
        )
        note(f"wave {run.wave}'s run: {why}; scheduled again to resume from its ledger")
        return replace(run, state="Scheduled", done=False, reruns=run.reruns + 1)
    return replace(run, state=state.name, done=state.type in FINAL, message=state.message or "")
