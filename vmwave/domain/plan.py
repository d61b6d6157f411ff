"""The plan file: the contract between planning and execution.

A person reads it, edits it (move a VM to another wave, change a class) and
commits it; ``parse_plan`` checks an edited plan before anything runs.
"""

from __future__ import annotations

import hashlib
import re
from string import Formatter
from collections import Counter
from datetime import datetime
from typing import Any, Iterable

from vmwave.domain.classes import CLASSES, PROFILES, Policy, parse_duration, parse_time
from vmwave.domain.concerns import CRITICAL, SEVERITIES
from vmwave.domain.maps import Maps
from vmwave.domain.hooks import parse_hooks
from vmwave.domain.manifests import Names
from vmwave.domain.maps import parse_placement
from vmwave.domain.names import TARGET_MAX, WAVE_ID_FIX, is_k8s_name, is_label_key, is_label_value, is_wave_id, \
    target_name, wave_id
from vmwave.domain.records import MOREF_PATTERN, UUID_PATTERN, ClusterVM, SourceVM
from vmwave.domain.smoke import parse_checks
from vmwave.domain.validate import Node
from vmwave.domain.warm import DEFAULT_PRECOPY_INTERVAL, MIGRATIONS, MIN_PRECOPY, planned_migration
from vmwave.domain.waves import Convert, MoreConcerns, Plan, PlannedVM, Prepare, build_plan
from vmwave.errors import InputError, VmwaveError

PLAN_SCHEMA = "vmwave.io/plan/v1"
INDEX_SPEC = re.compile(r"^0?[1-9]?d?$")  # {index:02d}: a zero-padded number, at most 9 wide
UUID = re.compile(UUID_PATTERN)
MOREF = re.compile(MOREF_PATTERN)
MAX_NAME, MAX_TEXT = 1024, 4096  # a VM's name (vSphere allows 80), a reason or a preparation step
MODES = tuple(dict.fromkeys(c.mode for c in CLASSES.values()))
TOOLS = ("copy", "virt-v2v")  # how a VM's disks become KubeVirt disks (see vmwave.hookspecs.Conversion)


def make_plan(records: Iterable[SourceVM], policy: Policy, maps: Maps | None, source: str,
              convert: Convert | None = None, more_concerns: MoreConcerns | None = None,
              prepare: Prepare | None = None, existing: Iterable[ClusterVM] = ()) -> dict[str, Any]:
    """Records in, plan document out: what `vmwave plan` and the `plan_migration` flow write."""
    return plan_to_dict(build_plan(records, policy, maps, source, convert=convert, more_concerns=more_concerns,
                                   prepare=prepare, existing=existing))


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


def target_names(planned: Iterable[PlannedVM]) -> dict[str, str]:
    """moref -> target name; of VMs whose names collide, the first by name keeps it, the others get a suffix."""
    names: dict[str, str] = {}
    taken: set[str] = set()
    for p in sorted(planned, key=lambda p: (p.vm.name, p.vm.moref)):
        name = target_name(p.vm.name)
        if name in taken:  # the name_collision concern says so; the plan must still name each VM apart
            name = f"{name[:TARGET_MAX - 6].rstrip('-')}-{hashlib.sha256(p.vm.moref.encode()).hexdigest()[:5]}"
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


PLACEMENT = ("node_selector", "affinity")
POWER_STATES = ("on", "off", "source")  # after verification: running, stopped, or as the source was
VM_FIELDS = ("name", "moref", "uuid", "class", "reason", "host", "target_name", "mode", "migration", "profile",
             "convert",
             "compatibility", "labels", "target_power_state", *PLACEMENT, "hooks", "group",
             "concerns", "smoke", "preparation", "keep_for_debug")


def parse_plan(data: Any, source: str) -> dict[str, Any]:
    """Validate a (possibly hand-edited) plan and return it normalised.

    Every edited value is honoured when valid and refused, naming its field, when not; none is recomputed.
    """
    root = Node(data, source).only("schema", "source", "limits", "names", "waves", "skipped")
    schema = root.get("schema", str)
    if schema != PLAN_SCHEMA:
        raise root.fail("schema", f"{schema!r} is not a plan schema this vmwave reads",
                        f"write plans with this version (`vmwave plan`), schema {PLAN_SCHEMA}")
    limits = root.child("limits").only("wave_size", "per_host")
    wave_size, per_host = limits.get("wave_size", int), limits.get("per_host", int)
    for key, value in (("wave_size", wave_size), ("per_host", per_host)):
        if not 1 <= value <= 10_000:
            raise limits.fail(key, f"{value} is not from 1 to 10000", f"set limits.{key} to a whole number, at least 1")
    names = _names(root)
    seen_waves: set[str] = set()
    seen_vms: dict[str, str] = {}
    seen_targets: dict[str, str] = {}
    waves = []
    for wave in root.children("waves", required=True):
        wave.only("id", "class", "mode", "migration", "precopy_interval", "window", "keep_for_debug", *PLACEMENT,
                  "hooks", "vms")
        wave_placement, wave_hooks = _placement(wave), parse_hooks(wave)
        keep_wave = wave.get("keep_for_debug", bool, False)
        wid = wave.get("id", str)
        if not is_wave_id(wid):
            raise wave.fail("id", f"{wid!r} is not a wave id", WAVE_ID_FIX)
        if wid in seen_waves:
            raise wave.fail("id", f"wave id {wid!r} appears twice", "give every wave its own id")
        seen_waves.add(wid)
        cls = wave.get("class", str, choices=list(CLASSES))
        mode = wave.get("mode", str, CLASSES[cls].mode, choices=MODES)
        migration = wave.get("migration", str, "cold", choices=MIGRATIONS)
        interval = parse_duration(wave, "precopy_interval", MIN_PRECOPY) if "precopy_interval" in wave.data \
            else DEFAULT_PRECOPY_INTERVAL
        vms = []
        for vm in wave.children("vms", required=True):
            entry = _parse_vm(vm, cls, mode, keep_wave)
            entry["migration"] = vm.get("migration", str, migration, choices=MIGRATIONS)
            if entry["migration"] == "warm" and entry["mode"] == "rebuild":
                raise vm.fail("migration", "a rebuilt VM is not copied, so it cannot be copied warm",
                              "remove `migration: warm`, or give the VM another mode")
            entry.update(names=names, hooks={**wave_hooks, **parse_hooks(vm)}, **(_placement(vm) or wave_placement or {}))
            _check_names(vm, entry)
            if entry["moref"] in seen_vms:
                raise vm.fail("moref", f"{entry['moref']} is already in wave {seen_vms[entry['moref']]}",
                              "keep each VM in exactly one wave")
            seen_vms[entry["moref"]] = wid
            if entry["target_name"] in seen_targets:
                raise vm.fail("target_name", f"{entry['target_name']!r} is also the target name of "
                              f"{seen_targets[entry['target_name']]}", "give one of them another `target_name:`")
            seen_targets[entry["target_name"]] = entry["name"]
            vms.append(entry)
        if not vms:
            raise wave.fail("vms", f"wave {wid} has no VMs", "remove the wave, or move VMs into it")
        if len(vms) > wave_size:
            raise wave.fail("vms", f"wave {wid} has {len(vms)} VMs, more than limits.wave_size {wave_size}",
                            "move VMs to another wave or raise limits.wave_size")
        waves.append({"id": wid, "class": cls, "mode": mode, "window": _window(wave), "precopy_interval": interval,
                      "vms": vms})
    return {"schema": schema, "source": root.get("source", str, ""),
            "limits": {"wave_size": wave_size, "per_host": per_host}, "names": names, "waves": waves,
            "skipped": root.get("skipped", list, [])}


def _names(root: Node) -> dict[str, str]:
    """The plan's name templates (``names:``), checked for what they may say; {} keeps vmwave's names."""
    names = root.child("names", {}).only(*Names.FIELDS)
    found = {}
    for kind, allowed in Names.FIELDS.items():
        if kind not in names.data:
            continue
        template = names.get(kind, str)
        try:
            parts = [(field, spec, conversion) for _, field, spec, conversion in Formatter().parse(template)
                     if field is not None]
        except ValueError as exc:
            raise names.fail(kind, f"{template!r} is not a template ({exc})", "write e.g. {vm}-disk{index}") from None
        used = {field for field, _, _ in parts}
        odd = [f"{{{field}{'!' + conversion if conversion else ''}{':' + spec if spec else ''}}}"
               for field, spec, conversion in parts if conversion or (spec and not (field == "index" and INDEX_SPEC.match(spec)))]
        if odd or len(template) > 200:
            raise names.fail(kind, f"{template!r} is not a name template vmwave can use" + (f" ({odd[0]})" if odd else ""),
                             "use {vm}, {index} (or {index:02d}) and {wave}, with no other format, e.g. {vm}-disk{index}")
        if used - set(allowed) or "index" not in used:
            raise names.fail(kind, f"{template!r} may use only {{{'}, {'.join(allowed)}}} and must use {{index}}",
                             "every disk or NIC of a VM needs its own name, e.g. {vm}-disk{index}")
        found[kind] = template
    return found


def _check_names(vm: Node, entry: dict[str, Any]) -> None:
    """What the templates make for this VM must be Kubernetes names, or nothing could be applied."""
    names = Names(**entry["names"])
    for kind in Names.FIELDS:
        made = names.of(kind, entry["target_name"], 0, "w001")
        if not is_k8s_name(made):
            raise vm.fail("target_name", f"the plan's names.{kind} makes {made!r} for it, not a Kubernetes name",
                          f"change names.{kind} or this VM's target_name (lower case letters, digits, '-', at most 63)")


def _placement(node: Node) -> dict[str, Any]:
    """A wave's or VM's ``node_selector`` and ``affinity``, as given; {} when it gives neither."""
    if not any(key in node.data for key in PLACEMENT):
        return {}
    selector, affinity = parse_placement(node)
    return {"node_selector": selector, "affinity": affinity}


def _window(wave: Node) -> dict[str, str] | None:
    if "window" not in wave.data:
        return None
    w = wave.child("window").only("start", "end")
    start, end = parse_time(w, "start"), parse_time(w, "end")
    if end <= start:
        raise w.fail("end", "is not after start", "make the window end after it starts")
    return {"start": start.isoformat(), "end": end.isoformat()}


def _parse_vm(vm: Node, wave_class: str, wave_mode: str, keep_wave: bool) -> dict[str, Any]:
    vm.only(*VM_FIELDS)
    name = vm.get("name", str)
    if not 0 < len(name) <= MAX_NAME:
        raise vm.fail("name", f"is {len(name)} characters long", f"give the VM's name as vCenter has it (1-{MAX_NAME})")
    for key, pattern, what in (("moref", MOREF, "a vCenter managed object id, e.g. vm-137"),
                               ("uuid", UUID, "the VM's instance UUID as vCenter reports it")):
        if not pattern.match(vm.get(key, str, "")):
            raise vm.fail(key, f"{vm.get(key, str, '')!r} is not {what}", "re-plan, or copy it from `vmwave inventory`")
    target = vm.get("target_name", str, target_name(name))
    if not is_k8s_name(target) or len(target) > TARGET_MAX:
        raise vm.fail("target_name", f"{target!r} is not a Kubernetes name of at most {TARGET_MAX} characters",
                      "use lower case letters, digits and '-', starting and ending with a letter or digit")
    convert = vm.get("convert", str, None, choices=TOOLS)
    compatibility = vm.get("compatibility", bool, False)
    if compatibility and convert != "copy":
        raise vm.fail("compatibility", "compatibility mode boots the guest unconverted, on SATA disks and an e1000e NIC",
                      "set `convert: copy` next to it, or remove `compatibility:` to convert the guest")
    concerns = []
    for c in vm.children("concerns"):
        c.only("id", "severity", "message", "fix")
        concerns.append({"id": c.get("id", str), "severity": c.get("severity", str, choices=SEVERITIES),
                         "message": c.get("message", str, ""), "fix": c.get("fix", str, "")})
    return {"name": name, "moref": vm.get("moref", str), "uuid": vm.get("uuid", str, ""),
            "class": vm.get("class", str, wave_class, choices=list(CLASSES)), "reason": vm.get("reason", str, ""),
            "host": vm.get("host", str, ""), "target_name": target, "mode": vm.get("mode", str, wave_mode, choices=MODES),
            "profile": vm.get("profile", str, "standard", choices=PROFILES),
            "convert": convert, "compatibility": compatibility, "labels": _labels(vm),
            "target_power_state": vm.get("target_power_state", str, "on", choices=POWER_STATES),
            "group": vm.get("group", str, None),
            "concerns": concerns, "smoke": parse_checks(vm, "smoke"),
            "preparation": _texts(vm, "preparation"),
            "keep_for_debug": vm.get("keep_for_debug", bool, keep_wave)}


def _texts(vm: Node, key: str) -> list[str]:
    """A list of short texts (the plugins' preparation steps), each one line of at most MAX_TEXT."""
    found = [str(step) for step in vm.get(key, list, [])]
    if len(found) > 100 or any(len(step) > MAX_TEXT or not isinstance(step, str) for step in vm.get(key, list, [])):
        raise vm.fail(key, f"holds {len(found)} entries, or one that is not text of at most {MAX_TEXT} characters",
                      "write each step as one line of text")
    return found


def _labels(vm: Node) -> dict[str, str]:
    """Extra labels for the VirtualMachine, checked as Kubernetes checks them."""
    labels = vm.child("labels", {})
    found = {str(k): labels.get(str(k), str) for k in labels.data}
    for key, value in found.items():
        if not is_label_key(key) or not is_label_value(value):
            raise labels.fail(key, f"{key}={value!r} is not a Kubernetes label",
                              "keys are [prefix/]name, values at most 63 letters, digits, '-', '_' or '.'")
    return found


def check_window(wave: dict[str, Any], now: datetime, ignore: bool) -> None:
    """A planned-window (P4) wave runs only inside its maintenance window; other waves whenever they are started.

    A wave with warm VMs may start before its window: they copy while they run, and every VM of the wave goes
    down only at the window's start (its cutover).
    """
    window = wave.get("window")
    if ignore or (wave["mode"] != "planned-window" and not window):
        return
    if any(vm.get("migration") == "warm" for vm in wave.get("vms", ())) and (
            not window or now < datetime.fromisoformat(window["end"])):
        return
    if not window:
        raise VmwaveError(f"wave {wave['id']} is {wave['mode']} but has no maintenance window",
                          "add `schedule:` to the rules file and re-plan, or start it with --ignore-window")
    start, end = datetime.fromisoformat(window["start"]), datetime.fromisoformat(window["end"])
    if not start <= now < end:
        raise VmwaveError(f"wave {wave['id']} may only run in its window {window['start']} - {window['end']} "
                          f"(now {now.isoformat(timespec='seconds')})",
                          "start it inside the window (schedule its deployment there), or use --ignore-window")


def find_wave(doc: dict[str, Any], wave: str | int) -> dict[str, Any]:
    """A wave by id (w003) or by number (3, "3")."""
    try:
        wanted = wave_id(wave)
    except ValueError as exc:
        raise InputError("--wave", "", str(exc), "name a wave of the plan, e.g. 3 or w003") from None
    for entry in doc["waves"]:
        if entry["id"] == wanted:
            return entry
    raise InputError("plan", "waves", f"the plan has no wave {wanted}",
                     "use one of: " + ", ".join(w["id"] for w in doc["waves"]))


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
