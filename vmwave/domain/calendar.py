"""The wave calendar: each wave with a maintenance window as the one schedule that starts it, by a stable slug.

The slug (``wave-<id>``) lets a re-run of `vmwave schedule` move a wave's run in
place when its window moved, and find the schedules of waves that are gone or
lost their window. A schedule fires once: an RRule whose UNTIL is its start.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from vmwave.domain.plan_file import PlanFile

SLUG_PREFIX = "wave-"


@dataclass(frozen=True)
class WaveStart:
    slug: str
    wave: str
    start: datetime  # UTC

    @property
    def rrule(self) -> str:
        stamp = self.start.strftime("%Y%m%dT%H%M%S")
        return f"DTSTART:{stamp}\nRRULE:FREQ=DAILY;UNTIL={stamp}"


def wave_starts(plan: PlanFile) -> dict[str, WaveStart]:
    """By slug, the start of every wave of the plan that has a window."""
    found = {}
    for wave in plan.waves:
        if wave.window:
            start = wave.window.start.astimezone(timezone.utc).replace(microsecond=0)
            found[SLUG_PREFIX + wave.id] = WaveStart(SLUG_PREFIX + wave.id, wave.id, start)
    return found
