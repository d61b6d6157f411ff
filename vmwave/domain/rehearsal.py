"""A rehearsal's calendar: the plan's months compressed onto minutes, each wave's windows in order and proportion.

`vmwave rehearse --clock 1h=1s` runs an hour of the real calendar in a second
of the rehearsal: a maintenance window's start moves as far from the
rehearsal's start as it was from the plan's, divided by the ratio, and so does
its length (never under 15 minutes, so a busy worker still starts its run in
it) and a warm wave's precopy interval (never under the plan's minimum).
Waves without a window start at once, in the plan's order, as a person would
start them from the UI or CI one after another; warm waves start at once too
and precopy until their window opens, as on the real calendar.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, PlainValidator, TypeAdapter, ValidationError

from vmwave.domain.plan_file import MIN_PRECOPY, PlanFile, parse_plan
from vmwave.domain.validate import input_errors, problem
from vmwave.errors import InputError

# A window, however compressed, stays long enough for its wave's run to start in it: a busy worker takes a due run
# within minutes, and a real window (hours) never closes on a run that late.
MIN_WINDOW = timedelta(minutes=15)
_CLOCK = re.compile(r"^(\d{1,6})([smhd])=(\d{1,6})([smhd])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def clock_ratio(text: str) -> float:
    """``'1h=1s'`` -> 3600.0: real seconds per rehearsal second."""
    found = _CLOCK.match((text or "").replace(" ", ""))
    if not found or not int(found.group(1)) or not int(found.group(3)):
        raise InputError(
            "--clock",
            "",
            f"{text!r} is not REAL=REHEARSAL",
            "write e.g. 1h=1s: an hour of the calendar in a second of the rehearsal",
        )
    real = int(found.group(1)) * _UNIT[found.group(2)]
    rehearsed = int(found.group(3)) * _UNIT[found.group(4)]
    if real < rehearsed:
        raise InputError("--clock", "", f"{text} would slow the calendar down", "put the longer time first: 1h=1s")
    return real / rehearsed


@dataclass(frozen=True)
class Start:
    """When the rehearsal starts a wave's run."""

    wave: str
    at: datetime


def compressed(plan: PlanFile, now: datetime, ratio: float) -> PlanFile:
    """The plan with every window and precopy interval on the rehearsal clock that starts ``now``."""
    doc: dict[str, Any] = plan.model_dump(mode="json", by_alias=True, exclude_none=True)
    for wave, model in zip(doc["waves"], plan.waves):
        if model.window:
            start = now + (model.window.start - now) / ratio
            length = max((model.window.end - model.window.start) / ratio, MIN_WINDOW)
            wave["window"] = {"start": start.isoformat(), "end": (start + length).isoformat()}
        if "precopy_interval" in wave:
            wave["precopy_interval"] = max(MIN_PRECOPY, round(model.precopy_interval / ratio))
    return parse_plan(doc, "the rehearsal's plan")


PRECOPY_LEAD = 3  # precopy rounds a warm wave makes before its window opens


def starts(plan: PlanFile, now: datetime) -> list[Start]:
    """Each wave's start on the (compressed) plan's clock: a cold wave with a window at its start, a warm one a few
    precopy rounds before it (on the real calendar, days before: here it would only hold a worker), any other now."""

    def at(wave) -> datetime:
        if not wave.window:
            return now
        lead = timedelta(seconds=PRECOPY_LEAD * wave.precopy_interval) if wave.warm else timedelta(0)
        return max(now, wave.window.start - lead)

    return sorted((Start(w.id, at(w)) for w in plan.waves), key=lambda s: s.at)


def span(plan: PlanFile, now: datetime) -> timedelta:
    """How long the rehearsal's calendar lasts: until its last window closes."""
    ends = [w.window.end for w in plan.waves if w.window]
    return max([end - now for end in ends] + [timedelta(0)])


# Failures on purpose: a cause of the diagnosis table, and how the lab makes it happen (lab/kube/faults.py).
LAB_FAULTS = {
    "guest-agent-not-connected": "agent-never",  # the seed's first cause
    "smoke-check-failed": "unreachable",  # its second: a NAD on the wrong VLAN, nothing reaches the guest
    "timed-out": "import-stalls",  # its slow disks, at their worst: an import that stops moving
    "conversion-failed": "conversion-fails",
}
SEED_FAILURES = {"guest-agent-not-connected": "0.25%", "smoke-check-failed": "0.2%", "timed-out": "0.2%"}  # 13/2000
_RATE = re.compile(r"^(\d{1,3}(\.\d{1,3})?)%$")


def _amount(value: Any) -> int | str | tuple[str, ...]:
    """A count, a share of the estate ("0.25%", at most 100%) or VM names."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 100_000:
        return value
    if isinstance(value, str) and _RATE.match(value) and float(value[:-1]) <= 100:
        return value
    if (
        isinstance(value, (list, tuple))
        and len(value) <= 100_000
        and all(isinstance(v, str) and len(v) <= 255 for v in value)
    ):
        return tuple(value)
    raise problem(f"{value!r} is not a count, a share or a list of VM names", "write 5, 0.25% or [web-01, web-02]")


Amount = Annotated[Union[int, str, tuple[str, ...]], PlainValidator(_amount)]
FAILURES = TypeAdapter(dict[Literal[tuple(LAB_FAULTS)], Amount])  # type: ignore[misc]


class Failures(BaseModel):
    """The --failures file: per cause a count (5), a share of the estate ("0.25%") or the VMs by name."""

    model_config = ConfigDict(frozen=True)

    by_cause: dict[str, Amount]


def parse_failures(data: Any, source: str) -> Failures:
    try:
        return Failures(by_cause=FAILURES.validate_python(data if data is not None else {}))
    except ValidationError as exc:
        raise input_errors(exc, source) from None


def planted(plan: PlanFile, failures: Failures) -> dict[str, str]:
    """Which VMs fail on purpose, by name, with the cause: those named, else a fixed choice (the same every run)
    among the VMs the cause can happen to (a copied disk has no conversion to fail)."""
    entries = [vm for wave in plan.waves for vm in wave.vms]
    by_name = {vm.name: vm for vm in entries}
    chosen: dict[str, str] = {}
    for cause, amount in failures.by_cause.items():
        if isinstance(amount, tuple):
            unknown = sorted(set(amount) - set(by_name))
            if unknown:
                raise InputError(
                    "--failures", cause, f"{unknown[0]!r} is not a VM of the plan", "name VMs as the plan does"
                )
            chosen.update({name: cause for name in amount})
            continue
        eligible = sorted(
            (vm for vm in entries if vm.name not in chosen and _can_fail(vm, cause)),
            key=lambda vm: hashlib.sha256(f"{cause}/{vm.uuid or vm.name}".encode()).hexdigest(),
        )
        count = amount if isinstance(amount, int) else round(len(entries) * float(amount[:-1]) / 100)
        if count > len(eligible):
            raise InputError(
                "--failures", cause, f"{count} VMs asked, {len(eligible)} of the plan can fail so", "ask fewer"
            )
        chosen.update({vm.name: cause for vm in eligible[:count]})
    return chosen


def _can_fail(vm: Any, cause: str) -> bool:
    return cause != "conversion-failed" or (vm.convert == "virt-v2v" and vm.mode != "rebuild")
