"""Priority classes P1-P5 from the seed migration, chosen by rules from a YAML file (``vmwave.domain.rules_file``).

Rules are tried in order; the first whose ``when`` matches gives the class,
otherwise ``default``. ``overrides`` pin single VMs (by name or moref).

Conditions (all keys in one ``when`` must hold; ``any``/``all``/``not`` nest)::

    name: "^db-"                 # regular expression on the VM name
    folder: "prod/db*"           # glob on the folder path
    attribute: {tier: "^db$"}    # custom attribute regexes
    tag: tier/db                 # a vSphere tag, "category/tag" or just "tag"
    power_state: poweredOff
    guest_family: windows        # linux | windows | other | unknown
    shared_disks: true
    concern: shared_disk         # this concern id is present
    severity: critical           # some concern at this severity
    class: P4                    # (profile rules only) the VM's class
    min_cpus: 8                  # at least this many vCPUs
    min_memory_gb: 32            # at least this much memory
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from vmwave.domain.concerns import Concern
from vmwave.domain.names import label_value
from vmwave.domain.records import SourceVM
from vmwave.errors import InputError

PROFILES = ("standard", "latency-sensitive")


@dataclass(frozen=True)
class PriorityClass:
    id: str
    title: str
    mode: str
    description: str


CLASSES = {
    c.id: c
    for c in (
        PriorityClass(
            "P1", "powered off", "offline-batch", "powered off, no shared disks: copy in large offline batches"
        ),
        PriorityClass("P2", "stateless", "rebuild", "stateless: rebuild from a template image, no data copy"),
        PriorityClass("P3", "standard", "cold", "standard: migrate with a downtime"),
        PriorityClass("P4", "critical", "planned-window", "business critical: migrate in a planned maintenance window"),
        PriorityClass("P5", "complex", "manual", "complex: migrate with manual verification"),
    )
}

Matcher = Callable[[SourceVM, list[Concern], "str | None"], bool]  # (vm, concerns, class once known)


def tags_of(vm: SourceVM) -> set[str]:
    """A VM's vSphere tags, each both as "category/tag" and as the bare tag name."""
    return set(vm.tags) | {t.split("/", 1)[-1] for t in vm.tags}


@dataclass(frozen=True)
class ClassRule:
    cls: str
    why: str
    matches: Matcher


@dataclass
class Policy:
    """What the rules file says: class rules, overrides, groups and wave settings."""

    rules: list[ClassRule] = field(default_factory=list)
    default: str = "P3"
    overrides: dict[str, str] = field(default_factory=dict)
    groups: dict[str, list[str]] = field(default_factory=dict)  # explicit: group -> VM names
    group_by: str = "app"  # a tag category or custom attribute naming the application
    wave_size: int = 50
    per_host: int = 10
    schedule: dict[str, Any] | None = None
    precopy_interval: str | None = None  # between warm precopy rounds, e.g. "30m" (vmwave.domain.warm)
    profiles: list[ClassRule] = field(default_factory=list)  # `cls` holds the profile name here
    profile_overrides: dict[str, str] = field(default_factory=dict)
    smoke: list[tuple[Matcher, list[dict[str, Any]]]] = field(default_factory=list)
    tag_labels: dict[str, str] = field(default_factory=dict)  # vSphere tag category -> VirtualMachine label key
    source: str = "built-in rules"  # the file it was read from, for errors found when it meets the inventory

    def check_names(self, vms: list[SourceVM]) -> None:
        """Overrides and groups name VMs by name or moref: one that names no VM of the estate is a typo."""
        known = {vm.name for vm in vms} | {vm.moref for vm in vms}
        for where, names in (
            ("overrides", list(self.overrides) + list(self.profile_overrides)),
            *((f"groups.{group}", members) for group, members in self.groups.items()),
        ):
            for name in names:
                if name not in known:
                    raise InputError(
                        self.source,
                        f"{where}.{name}" if where == "overrides" else where,
                        f"{name!r} is no VM of the inventory (by name or moref)",
                        "check the spelling against `vmwave inventory`, or remove it",
                    )

    def labels(self, vm: SourceVM) -> dict[str, str]:
        """The VirtualMachine labels ``tag_labels`` make of the VM's vSphere tags."""
        found = {}
        for tag in sorted(vm.tags):
            category, _, name = tag.partition("/")
            if category in self.tag_labels and name:
                found[self.tag_labels[category]] = label_value(name)
        return found

    def smoke_checks(self, vm: SourceVM, concerns: list[Concern], cls: str) -> list[dict[str, Any]]:
        """Every matching smoke rule adds its checks (not just the first)."""
        return [check for matches, checks in self.smoke if matches(vm, concerns, cls) for check in checks]

    def profile(self, vm: SourceVM, concerns: list[Concern], cls: str) -> str:
        """The performance profile for a VM of class ``cls``: override, first matching rule, else standard."""
        for key in (vm.name, vm.moref):
            if key in self.profile_overrides:
                return self.profile_overrides[key]
        return next((r.cls for r in self.profiles if r.matches(vm, concerns, cls)), "standard")

    def classify(self, vm: SourceVM, concerns: list[Concern]) -> tuple[str, str]:
        """The class of one VM and the reason, for the plan file."""
        for key in (vm.name, vm.moref):
            if key in self.overrides:
                return self.overrides[key], "override"
        for r in self.rules:
            if r.matches(vm, concerns, None):
                return r.cls, r.why
        return self.default, "default"

    def group_of(self, vm: SourceVM) -> str | None:
        for group, members in self.groups.items():
            if vm.name in members or vm.moref in members:
                return group
        for tag in sorted(vm.tags):
            category, _, name = tag.partition("/")
            if category == self.group_by:
                return f"{self.group_by}={name}"
        value = vm.attributes.get(self.group_by, "").strip()
        return f"{self.group_by}={value}" if value else None


DEFAULT_RULES = """\
version: 1
# First match wins; see `vmwave plan --help` and the README for every condition.
rules:
  - class: P5
    why: a critical concern needs manual work
    when: {severity: critical}
  - class: P1
    why: powered off, no shared disks
    when: {power_state: poweredOff, shared_disks: false}
  - class: P4
    why: business-critical workload
    when:
      any:
        - attribute: {criticality: "^(critical|high)$"}
        - attribute: {tier: "^db$"}
        - tag: criticality/critical
  - class: P2
    why: stateless tier, rebuilt from a template
    when:
      any:
        - attribute: {tier: "^(web|stateless)$"}
        - tag: stateless
default: P3
# Performance profiles for the generated VirtualMachines (standard unless a rule matches).
profiles:
  - profile: latency-sensitive
    why: "databases get pinned CPUs, hugepages and native IO (seed: -40% P99)"
    when: {all: [{class: P4}, {any: [{attribute: {tier: "^db$"}}, {tag: tier/db}]}]}
group_by: app        # VMs with the same `app` tag or custom attribute move in one wave
waves: {size: 50, per_host: 10}
# vSphere tag categories that become labels on the VirtualMachine (app/shop -> app.kubernetes.io/part-of=shop).
tag_labels: {app: app.kubernetes.io/part-of, criticality: vmwave.io/criticality}
"""
