"""Cut classified VMs into waves: classes in order, groups kept whole, at most N per wave.

Pure and deterministic: the same inventory and policy give the same plan,
byte for byte, so a plan can be reviewed as a diff.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Callable, Iterable

from vmwave.domain.classes import CLASSES, Policy
from vmwave.domain.concerns import Concern, Thresholds, assess
from vmwave.domain.maps import Maps
from vmwave.domain.records import ClusterVM, SourceVM
from vmwave.errors import VmwaveError


@dataclass(frozen=True)
class PlannedVM:
    vm: SourceVM
    cls: str
    reason: str
    group: str | None
    concerns: tuple[Concern, ...]
    checks: tuple[dict, ...] = ()  # smoke checks from the rules file
    profile: str = "standard"  # the performance profile its VirtualMachine gets
    convert: str | None = None  # the conversion tool the guest-OS plugins chose (None: none was asked)
    preparation: tuple[str, ...] = ()  # what must be done on the source before cutover (the plugins say)
    labels: dict[str, str] = field(default_factory=dict, hash=False)  # VirtualMachine labels from its vSphere tags


Convert = Callable[[SourceVM], str]  # the guest-OS plugins' choice of tool for a VM, injected by the caller
MoreConcerns = Callable[[SourceVM, "Maps | None"], list[Concern]]  # the guest-OS plugins' concerns, injected too
Prepare = Callable[[SourceVM], list[str]]  # the guest-OS plugins' preparation steps for a VM, injected too


@dataclass
class Wave:
    id: str
    cls: str
    vms: list[PlannedVM] = field(default_factory=list)
    window: tuple | None = None  # (start datetime, end datetime)


@dataclass
class Plan:
    waves: list[Wave]
    skipped: list[PlannedVM]
    wave_size: int
    per_host: int
    source: str = ""
    precopy_interval: str | None = None  # the rules' `precopy_interval`, written into waves with warm VMs

    @property
    def planned(self) -> list[PlannedVM]:
        return [p for w in self.waves for p in w.vms]


def classify(
    vms: Iterable[SourceVM],
    policy: Policy,
    maps: Maps | None = None,
    thresholds: Thresholds | None = None,
    convert: Convert | None = None,
    more_concerns: MoreConcerns | None = None,
    prepare: Prepare | None = None,
    existing: Iterable[ClusterVM] = (),
) -> list[PlannedVM]:
    """Concerns, class, profile and conversion for every VM; a group moves with its most demanding member's class.

    ``more_concerns`` adds what vmwave's own rules do not know (the guest-OS plugins' concerns), before classing.
    """
    vms = list(vms)
    policy.check_names(vms)
    planned = []
    for vm, concerns in assess(vms, maps, thresholds, existing):
        concerns = [*concerns, *(more_concerns(vm, maps) if more_concerns and not vm.template else ())]
        cls, reason = policy.classify(vm, concerns)
        planned.append(PlannedVM(vm, cls, reason, policy.group_of(vm), tuple(concerns)))
    planned = _shared_disk_groups(planned)
    strongest: dict[str, str] = {}
    for p in planned:
        if p.group and not p.vm.template:
            strongest[p.group] = max(strongest.get(p.group, p.cls), p.cls)
    planned = [
        PlannedVM(p.vm, strongest[p.group], f"group {p.group} moves as {strongest[p.group]}", p.group, p.concerns)
        if p.group in strongest and strongest[p.group] != p.cls and p.reason != "override"
        else p
        for p in planned
    ]
    return [
        replace(
            p,
            checks=tuple(policy.smoke_checks(p.vm, list(p.concerns), p.cls)),
            profile=policy.profile(p.vm, list(p.concerns), p.cls),
            convert=convert(p.vm) if convert and not p.vm.template else None,
            preparation=tuple(prepare(p.vm)) if prepare and not p.vm.template else (),
            labels=policy.labels(p.vm),
        )
        for p in planned
    ]


def _shared_disk_groups(planned: list[PlannedVM]) -> list[PlannedVM]:
    """VMs that share a disk are one group (they move in one wave, together): the group one of them has, else one
    named after the disk; two different groups for one disk are refused."""
    by_file: dict[str, list[PlannedVM]] = defaultdict(list)
    for p in planned:
        for disk in p.vm.shared_disks:
            by_file[disk.file].append(p)
    group_of: dict[str, str] = {}
    for file, sharers in sorted(by_file.items()):
        named = sorted(
            {p.group for p in sharers if p.group} | {group_of[p.vm.key] for p in sharers if p.vm.key in group_of}
        )
        if len(named) > 1:
            raise VmwaveError(
                f"{', '.join(p.vm.name for p in sharers)} share disk {file} but are in groups {', '.join(named)}",
                "put them in one group (the rules file's `groups:`): VMs sharing a disk move together",
            )
        group = named[0] if named else "shared-disk=" + file.split("]", 1)[-1].strip()
        group_of.update({p.vm.key: group for p in sharers})
    return [replace(p, group=group_of[p.vm.key]) if p.vm.key in group_of and not p.vm.template else p for p in planned]


def _units(members: list[PlannedVM]) -> list[list[PlannedVM]]:
    """VMs that must stay together, biggest first, then by name."""
    grouped: dict[str, list[PlannedVM]] = defaultdict(list)
    units = []
    for p in members:
        if p.group:
            grouped[p.group].append(p)
        else:
            units.append([p])
    units.extend(grouped.values())
    for unit in units:
        unit.sort(key=lambda p: (p.vm.name, p.vm.moref))
    units.sort(key=lambda u: (-len(u), u[0].group or "", u[0].vm.name, u[0].vm.moref))
    return units


def plan_waves(planned: list[PlannedVM], policy: Policy, source: str = "") -> Plan:
    """First-fit-decreasing packing of units into waves of at most ``policy.wave_size``."""
    skipped = [p for p in planned if p.vm.template]
    waves: list[Wave] = []
    for cls in CLASSES:
        members = [p for p in planned if p.cls == cls and not p.vm.template]
        class_waves: list[Wave] = []
        for unit in _units(members):
            if len(unit) > policy.wave_size:
                raise VmwaveError(
                    f"group {unit[0].group} has {len(unit)} VMs, more than the wave size {policy.wave_size}",
                    "split the group (its `app` tag or attribute, or `groups:` entry) or raise `waves: {size: ...}` "
                    "in the rules file",
                )
            target = next((w for w in class_waves if len(w.vms) + len(unit) <= policy.wave_size), None)
            if target is None:
                target = Wave("", cls)
                class_waves.append(target)
            target.vms.extend(unit)
        for wave in class_waves:
            wave.vms.sort(key=lambda p: (p.group or "~", p.vm.name, p.vm.moref))
        waves.extend(class_waves)
    for number, wave in enumerate(waves, start=1):
        wave.id = f"w{number:03d}"
        wave.window = _window(policy, number - 1)
    return Plan(
        waves,
        sorted(skipped, key=lambda p: p.vm.name),
        policy.wave_size,
        policy.per_host,
        source,
        policy.precopy_interval,
    )


def _window(policy: Policy, index: int) -> tuple | None:
    if not policy.schedule:
        return None
    s = policy.schedule
    start = s["start"] + timedelta(seconds=s["every"] * (index // s["waves_per_window"]))
    return start, start + timedelta(seconds=s["length"])


def build_plan(
    vms: Iterable[SourceVM],
    policy: Policy,
    maps: Maps | None = None,
    source: str = "",
    thresholds: Thresholds | None = None,
    convert: Convert | None = None,
    more_concerns: MoreConcerns | None = None,
    prepare: Prepare | None = None,
    existing: Iterable[ClusterVM] = (),
) -> Plan:
    """The plan: ``existing`` are the VMs already in the target cluster, which new ones must not clash with."""
    return plan_waves(
        classify(vms, policy, maps, thresholds, convert, more_concerns, prepare, existing), policy, source
    )
