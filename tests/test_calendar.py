"""`vmwave schedule`: the plan's windows become the Prefect calendar, one run per wave, moved or removed on re-runs.

Against a real Prefect server. Its scheduler is asked to create the runs the
schedules call for (the API the scheduler service uses), then the runs are
counted per wave.
"""

import asyncio
import subprocess
from datetime import datetime, timedelta, timezone

import pytest

from helpers import VMWAVE, estate_records
from vmwave.adapters.files import load_policy, write_plan
from vmwave.domain.calendar import wave_starts
from vmwave.domain.plan import make_plan, parse_plan

pytestmark = pytest.mark.prefect


def runs_by_wave(deployment: str) -> dict[str, list[datetime]]:
    """Ask the server to schedule the deployment's runs now, then its scheduled runs by their wave parameter."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    async def read() -> dict[str, list[datetime]]:
        async with get_client() as client:
            found = await client.read_deployment_by_name(deployment)
            answer = await client._client.post(f"/deployments/{found.id}/schedule", json={})
            answer.raise_for_status()
            runs = await client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[found.id]))
            )
            waves: dict[str, list[datetime]] = {}
            for run in runs:
                if run.state_type.value == "SCHEDULED":
                    waves.setdefault(run.parameters["wave"], []).append(
                        run.expected_start_time.astimezone(timezone.utc)
                    )
            return waves

    return asyncio.run(read())


def test_windows_become_one_run_each_and_a_rerun_moves_or_removes_them(prefect_server, tmp_path):
    from prefect.settings import PREFECT_API_URL

    doc = make_plan(estate_records(), load_policy(), None, "estate")
    first, second, third = doc["waves"][:3]
    soon = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=2)
    for wave, days in ((first, 0), (second, 1)):
        wave["window"] = {
            "start": (soon + timedelta(days=days)).isoformat(),
            "end": (soon + timedelta(days=days, hours=4)).isoformat(),
        }
    plan = tmp_path / "plan.yaml"
    write_plan(doc, plan)
    env = {"PREFECT_API_URL": PREFECT_API_URL.value(), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}

    def schedule():
        run = subprocess.run(
            [VMWAVE, "schedule", "--plan", str(plan), "--pool", "calendar-test", "--deployment", "calendar-test"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert run.returncode == 0, run.stdout + run.stderr
        return run.stdout + run.stderr

    said = schedule()
    assert f"{third['id']}" in said and "none: run it from the UI or CI" in said  # no window: run by a person or CI
    assert runs_by_wave("migrate-wave/calendar-test") == {first["id"]: [soon], second["id"]: [soon + timedelta(days=1)]}
    assert "unchanged" in schedule() and len(runs_by_wave("migrate-wave/calendar-test")[first["id"]]) == 1  # idempotent

    first["window"] = {
        "start": (soon + timedelta(days=5)).isoformat(),
        "end": (soon + timedelta(days=5, hours=4)).isoformat(),
    }
    del second["window"]
    write_plan(doc, plan)
    said = schedule()
    assert "moved" in said and f"wave-{second['id']}" in said  # named as removed
    assert runs_by_wave("migrate-wave/calendar-test") == {first["id"]: [soon + timedelta(days=5)]}  # never two
    assert set(wave_starts(parse_plan(doc, "plan.yaml"))) == {f"wave-{first['id']}"}
