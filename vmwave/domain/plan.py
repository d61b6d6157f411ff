"""The plan file: the contract between planning and execution.

A person reads it, edits it (move a VM to another wave, change a class) and
commits it; ``parse_plan`` checks an edited plan before anything runs.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from vmwave.domain.classes import CLASSES
from vmwave.domain.concerns import CRITICAL, SEVERITIES
from vmwave.domain.smoke import parse_checks
from vmwave.domain.validate import Node
from vmwave.domain.waves import Plan, PlannedVM

PLAN_SCHEMA = "vmwave.io/plan/v1"


def _vm_entry(p: PlannedVM) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": p.vm.name,
        "moref": p.vm.moref,
        "uuid": p.vm.instance_uuid,
        "class": p.cls,
        "reason": p.reason,
        "host": p.vm.host,
    }
    if p.group:
        entry["group"] = p.group
    entry["concerns"] = [{"id": c.id, "severity": c.severity, "message": c.message} for c in p.concerns]
    if p.checks:
        entry["smoke"] = list(p.checks)
    return entry


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    waves = []
    for wave in plan.waves:
        doc: dict[str, Any] = {"id": wave.id, "class": wave.cls, "mode": CLASSES[wave.cls].mode}
        if wave.window:
            doc["window"] = {"start": wave.window[0].isoformat(), "end": wave.window[1].isoformat()}
        doc["vms"] = [_vm_entry(p) for p in wave.vms]
        waves.append(doc)
    return {
        "schema": PLAN_SCHEMA,
        "source": plan.source,
        "limits": {"wave_size": plan.wave_size, "per_host": plan.per_host},
        "waves": waves,
        "skipped": [{"name": p.vm.name, "moref": p.vm.moref, "reason": "template"} for p in plan.skipped],
    }


def parse_plan(data: Any, source: str) -> dict[str, Any]:
    """Validate a (possibly hand-edited) plan and return it normalised."""
    root = Node(data, source).only("schema", "source", "limits", "waves", "skipped")
    schema = root.get("schema", str)
    if schema != PLAN_SCHEMA:
        raise root.fail("schema", f"{schema!r} is not a plan schema this vmwave reads",
                        f"write plans with this version (`vmwave plan`), schema {PLAN_SCHEMA}")
    limits = root.child("limits").only("wave_size", "per_host")
    wave_size, per_host = limits.get("wave_size", int), limits.get("per_host", int)
    seen_waves: set[str] = set()
    seen_vms: dict[str, str] = {}
    waves = []
    for wave in root.children("waves", required=True):
        wave.only("id", "class", "mode", "window", "keep_for_debug", "vms")
        keep_wave = wave.get("keep_for_debug", bool, False)
        wid = wave.get("id", str)
        if wid in seen_waves:
            raise wave.fail("id", f"wave id {wid!r} appears twice", "give every wave its own id")
        seen_waves.add(wid)
        cls = wave.get("class", str, choices=list(CLASSES))
        window = None
        if "window" in wave.data:
            w = wave.child("window").only("start", "end")
            try:
                start, end = (datetime.fromisoformat(str(w.get(k, (str, datetime)))) for k in ("start", "end"))
            except ValueError:
                raise w.fail("start", "is not an ISO date-time", "write e.g. 2026-12-05T22:00:00+00:00") from None
            if end <= start:
                raise w.fail("end", "is not after start", "make the window end after it starts")
            window = {"start": start.isoformat(), "end": end.isoformat()}
        vms = []
        for vm in wave.children("vms", required=True):
            vm.only("name", "moref", "uuid", "class", "reason", "host", "group", "concerns", "smoke", "keep_for_debug")
            moref = vm.get("moref", str)
            if moref in seen_vms:
                raise vm.fail("moref", f"{moref} is already in wave {seen_vms[moref]}",
                              "keep each VM in exactly one wave")
            seen_vms[moref] = wid
            concerns = []
            for c in vm.children("concerns"):
                c.only("id", "severity", "message")
                concerns.append({"id": c.get("id", str), "severity": c.get("severity", str, choices=SEVERITIES),
                                 "message": c.get("message", str, "")})
            vms.append({"name": vm.get("name", str), "moref": moref, "uuid": vm.get("uuid", str, ""),
                        "class": vm.get("class", str, cls, choices=list(CLASSES)), "reason": vm.get("reason", str, ""),
                        "host": vm.get("host", str, ""), "group": vm.get("group", str, None), "concerns": concerns,
                        "smoke": parse_checks(vm, "smoke"), "keep_for_debug": vm.get("keep_for_debug", bool, keep_wave)})
        if len(vms) > wave_size:
            raise wave.fail("vms", f"wave {wid} has {len(vms)} VMs, more than limits.wave_size {wave_size}",
                            "move VMs to another wave or raise limits.wave_size")
        waves.append({"id": wid, "class": cls, "mode": CLASSES[cls].mode, "window": window, "vms": vms})
    return {"schema": schema, "source": root.get("source", str, ""),
            "limits": {"wave_size": wave_size, "per_host": per_host}, "waves": waves,
            "skipped": root.get("skipped", list, [])}


def summarize(doc: dict[str, Any]) -> dict[str, Any]:
    """Counts a person checks first: VMs per class, per wave, and critical concerns."""
    per_class: Counter = Counter()
    critical: Counter = Counter()
    waves = []
    for wave in doc["waves"]:
        crit = sum(1 for vm in wave["vms"] for c in vm["concerns"] if c["severity"] == CRITICAL)
        waves.append({"id": wave["id"], "class": wave["class"], "mode": wave["mode"], "vms": len(wave["vms"]),
                      "critical": crit, "window": (wave.get("window") or {}).get("start", "")})
        for vm in wave["vms"]:
            per_class[vm["class"]] += 1
            for c in vm["concerns"]:
                if c["severity"] == CRITICAL:
                    critical[c["id"]] += 1
    return {
        "vms": sum(per_class.values()),
        "waves": waves,
        "classes": [{"class": c, "title": CLASSES[c].title, "mode": CLASSES[c].mode, "vms": per_class[c]}
                    for c in CLASSES],
        "critical_concerns": dict(sorted(critical.items())),
        "skipped": len(doc.get("skipped", [])),
    }
