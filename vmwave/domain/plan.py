"""The plan file: the contract between planning and execution.

A person reads it, edits it (move a VM to another wave, change a class) and
commits it; ``make_plan`` writes it, ``vmwave.domain.plan_file.parse_plan``
checks an edited plan into its models before anything runs.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from datetime import datetime
from typing import Any, Iterable

from vmwave.domain.classes import CLASSES, Policy
from vmwave.domain.concerns import CRITICAL
from vmwave.domain.maps import Maps
from vmwave.domain.names import TARGET_MAX, target_name, wave_id
from vmwave.domain.plan_file import PLAN_SCHEMA, PlanFile, WavePlan, parse_plan
from vmwave.domain.records import ClusterVM, SourceVM
from vmwave.domain.warm import planned_migration
from vmwave.domain.waves import Convert, MoreConcerns, Plan, PlannedVM, Prepare, build_plan
from vmwave.errors import InputError, VmwaveError

__all__ = ["PLAN_SCHEMA", "check_window", "find_wave", "make_plan", "parse_plan", "plan_to_dict", "summarize"]


def make_plan(
    records: Iterable[SourceVM],
    policy: Policy,
    maps: Maps | None,
    source: str,
    convert: Convert | None = None,
    more_concerns: MoreConcerns | None = None,
    prepare: Prepare | None = None,
    existing: Iterable[ClusterVM] = (),
) -> dict[str, Any]:
    """Records in, plan document out: what `vmwave plan` and the `plan_migration` flow write."""
    return plan_to_dict(
        build_plan(
            records,
            policy,
            maps,
            source,
            convert=convert,
            more_concerns=more_concerns,
            prepare=prepare,
            existing=existing,
        )
    )


def _vm_entry(p: PlannedVM, mode: str, target: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": p.vm.name,
        "moref": p.vm.moref,
        "uuid": p.vm.instance_uuid,
        "class": p.cls,
        "reason": p.reason,
        "host": p.vm.host,
        "target_name": target,
        "mode": mode,
        "profile": p.profile,
    }
    if planned_migration(p.cls, p.vm) == "warm":
        entry["migration"] = "warm"
    if p.convert:
        entry["convert"] = p.convert
    if p.labels:
        entry["labels"] = dict(p.labels)
    if p.group:
        entry["group"] = p.group
    entry["concerns"] = [{"id": c.id, "severity": c.severity, "message": c.message, "fix": c.fix} for c in p.concerns]
    if p.checks:
        entry["smoke"] = list(p.checks)
    if p.preparation:
        entry["preparation"] = list(p.preparation)
    return entry


def _identity(p: PlannedVM) -> str:
    return p.vm.instance_uuid or p.vm.moref


def target_names(planned: Iterable[PlannedVM]) -> dict[str, str]:
    """moref -> target name; of VMs whose names collide, the first by name keeps it, the others get a suffix: both
    by the VM's instance UUID, which stays when it is re-registered or rehearsed in the lab, as a moref does not."""
    names: dict[str, str] = {}
    taken: set[str] = set()
    for p in sorted(planned, key=lambda p: (p.vm.name, _identity(p))):
        name = target_name(p.vm.name)
        if name in taken:  # the name_collision concern says so; the plan must still name each VM apart
            name = f"{name[: TARGET_MAX - 6].rstrip('-')}-{hashlib.sha256(_identity(p).encode()).hexdigest()[:5]}"
        taken.add(name)
        names[p.vm.moref] = name
    return names


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    targets = target_names(plan.planned)
    waves = []
    for wave in plan.waves:
        mode = CLASSES[wave.cls].mode
        doc: dict[str, Any] = {"id": wave.id, "class": wave.cls, "mode": mode}
        if wave.window:
            doc["window"] = {"start": wave.window[0].isoformat(), "end": wave.window[1].isoformat()}
        doc["vms"] = [_vm_entry(p, mode, targets[p.vm.moref]) for p in wave.vms]
        if plan.precopy_interval and any(vm.get("migration") == "warm" for vm in doc["vms"]):
            doc["precopy_interval"] = plan.precopy_interval
        waves.append(doc)
    return {
        "schema": PLAN_SCHEMA,
        "source": plan.source,
        "limits": {"wave_size": plan.wave_size, "per_host": plan.per_host},
        "waves": waves,
        "skipped": [{"name": p.vm.name, "moref": p.vm.moref, "reason": "template"} for p in plan.skipped],
    }


def check_window(wave: WavePlan, now: datetime, ignore: bool) -> None:
    """A planned-window (P4) wave runs only inside its maintenance window; other waves whenever they are started.

    A wave with warm VMs may start before its window: they copy while they run, and every VM of the wave goes
    down only at the window's start (its cutover).
    """
    window = wave.window
    if ignore or (wave.mode != "planned-window" and not window):
        return
    if wave.warm and (not window or now < window.end):
        return
    if not window:
        raise VmwaveError(
            f"wave {wave.id} is {wave.mode} but has no maintenance window",
            "add `schedule:` to the rules file and re-plan, or start it with --ignore-window",
        )
    if not window.start <= now < window.end:
        raise VmwaveError(
            f"wave {wave.id} may only run in its window {window.start.isoformat()} - "
            f"{window.end.isoformat()} (now {now.isoformat(timespec='seconds')})",
            "start it inside the window (schedule its deployment there), or use --ignore-window",
        )


def find_wave(plan: PlanFile, wave: str | int) -> WavePlan:
    """A wave by id (w003) or by number (3, "3")."""
    try:
        wanted = wave_id(wave)
    except ValueError as exc:
        raise InputError("--wave", "", str(exc), "name a wave of the plan, e.g. 3 or w003") from None
    return plan.wave(wanted)


def summarize(plan: PlanFile) -> dict[str, Any]:
    """Counts a person checks first: VMs per class, per wave, and critical concerns."""
    per_class: Counter = Counter()
    critical: Counter = Counter()
    waves = []
    for wave in plan.waves:
        crit = sum(1 for vm in wave.vms for c in vm.concerns if c.severity == CRITICAL)
        waves.append(
            {
                "id": wave.id,
                "class": wave.cls,
                "mode": wave.mode,
                "vms": len(wave.vms),
                "critical": crit,
                "window": wave.window.start.isoformat() if wave.window else "",
            }
        )
        for vm in wave.vms:
            per_class[vm.cls] += 1
            for c in vm.concerns:
                if c.severity == CRITICAL:
                    critical[c.id] += 1
    return {
        "vms": sum(per_class.values()),
        "waves": waves,
        "classes": [
            {"class": c, "title": CLASSES[c].title, "mode": CLASSES[c].mode, "vms": per_class[c]} for c in CLASSES
        ],
        "critical_concerns": dict(sorted(critical.items())),
        "skipped": len(plan.skipped),
    }
