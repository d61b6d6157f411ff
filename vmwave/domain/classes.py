"""Priority classes P1-P5 from the seed migration, chosen by rules from a YAML file.

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

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from vmwave.domain.concerns import SEVERITIES, Concern
from vmwave.domain.guests import guest_os
from vmwave.domain.names import is_label_key, label_value
from vmwave.domain.records import SourceVM
from vmwave.domain.smoke import parse_checks
from vmwave.domain.patterns import compile_pattern
from vmwave.domain.validate import Node
from vmwave.domain.warm import MIN_PRECOPY
from vmwave.errors import InputError

RULES_VERSION = 1
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
        PriorityClass("P1", "powered off", "offline-batch", "powered off, no shared disks: copy in large offline batches"),
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


def _compile(node: Node) -> Matcher:
    node.only("name", "folder", "attribute", "tag", "power_state", "guest_family", "shared_disks",
              "concern", "severity", "class", "min_cpus", "min_memory_gb", "any", "all", "not")
    tests: list[Matcher] = []

    def regex(key: str, value: str) -> Any:
        return compile_pattern(node, key, value)

    if "name" in node.data:
        pattern = regex("name", node.get("name", str))
        tests.append(lambda vm, c, k: bool(pattern.search(vm.name)))
    if "folder" in node.data:
        glob = node.get("folder", str)
        tests.append(lambda vm, c, k: fnmatch.fnmatchcase(vm.folder, glob))
    if "attribute" in node.data:
        wanted = {k: regex("attribute", str(v)) for k, v in node.get("attribute", dict).items()}
        tests.append(lambda vm, c, k: all(k in vm.attributes and p.search(vm.attributes[k]) for k, p in wanted.items()))
    if "tag" in node.data:
        tag = node.get("tag", str)
        tests.append(lambda vm, c, k: tag in tags_of(vm))
    if "power_state" in node.data:
        state = node.get("power_state", str, choices=["poweredOn", "poweredOff", "suspended"])
        tests.append(lambda vm, c, k: vm.power_state == state)
    if "guest_family" in node.data:
        family = node.get("guest_family", str, choices=["linux", "windows", "other", "unknown"])
        tests.append(lambda vm, c, k: guest_os(vm.guest_id).family == family)
    if "shared_disks" in node.data:
        shared = node.get("shared_disks", bool)
        tests.append(lambda vm, c, k: bool(vm.shared_disks) == shared)
    if "concern" in node.data:
        concern = node.get("concern", str)
        tests.append(lambda vm, c, k: any(x.id == concern for x in c))
    if "severity" in node.data:
        severity = node.get("severity", str, choices=SEVERITIES)
        tests.append(lambda vm, c, k: any(x.severity == severity for x in c))
    if "class" in node.data:
        wanted_class = node.get("class", str, choices=list(CLASSES))
        tests.append(lambda vm, c, k: k == wanted_class)
    if "min_cpus" in node.data:
        cpus = node.get("min_cpus", int)
        tests.append(lambda vm, c, k: vm.cpus >= cpus)
    if "min_memory_gb" in node.data:
        memory_mb = node.get("min_memory_gb", (int, float)) * 1024
        tests.append(lambda vm, c, k: vm.memory_mb >= memory_mb)
    for key, combine in (("any", any), ("all", all)):
        if key in node.data:
            subs = [_compile(n) for n in node.children(key)]
            tests.append(lambda vm, c, k, subs=subs, combine=combine: combine(s(vm, c, k) for s in subs))
    if "not" in node.data:
        negated = _compile(node.child("not"))
        tests.append(lambda vm, c, k: not negated(vm, c, k))
    if not tests:
        raise InputError(node.source, node.path, "an empty condition matches every VM",
                         "give at least one condition, e.g. `name: \"^db-\"`")
    return lambda vm, c, k: all(t(vm, c, k) for t in tests)


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
        for where, names in (("overrides", list(self.overrides) + list(self.profile_overrides)),
                             *((f"groups.{group}", members) for group, members in self.groups.items())):
            for name in names:
                if name not in known:
                    raise InputError(self.source, f"{where}.{name}" if where == "overrides" else where,
                                     f"{name!r} is no VM of the inventory (by name or moref)",
                                     "check the spelling against `vmwave inventory`, or remove it")

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


def parse_rules(data: Any, source: str) -> Policy:
    root = Node(data, source).only("version", "rules", "default", "overrides", "groups", "group_by",
                                   "waves", "schedule", "precopy_interval", "profiles", "profile_overrides", "smoke",
                                   "tag_labels")
    root.get("version", int, choices=[RULES_VERSION])
    policy = Policy(source=source)
    for i, node in enumerate(root.children("rules")):
        node.only("class", "why", "when")
        cls = node.get("class", str, choices=list(CLASSES))
        policy.rules.append(ClassRule(cls, node.get("why", str, f"rule {i + 1}"), _compile(node.child("when"))))
    policy.default = root.get("default", str, "P3", choices=list(CLASSES))
    overrides = root.child("overrides", {})
    policy.overrides = {str(k): overrides.get(str(k), str, choices=list(CLASSES)) for k in overrides.data}
    groups = root.child("groups", {})
    policy.groups = {str(k): [str(x) for x in groups.get(str(k), list)] for k in groups.data}
    policy.group_by = root.get("group_by", str, "app")
    waves = root.child("waves", {}).only("size", "per_host")
    policy.wave_size = waves.get("size", int, 50)
    policy.per_host = waves.get("per_host", int, 10)
    for key, value in (("size", policy.wave_size), ("per_host", policy.per_host)):
        if value < 1:
            raise waves.fail(key, f"must be at least 1, got {value}", "use a positive number")
    for i, node in enumerate(root.children("profiles")):
        node.only("profile", "why", "when")
        policy.profiles.append(ClassRule(node.get("profile", str, choices=PROFILES), node.get("why", str, f"profile rule {i + 1}"),
                                         _compile(node.child("when"))))
    profile_overrides = root.child("profile_overrides", {})
    policy.profile_overrides = {str(k): profile_overrides.get(str(k), str, choices=PROFILES) for k in profile_overrides.data}
    for node in root.children("smoke"):
        node.only("when", "checks")
        policy.smoke.append((_compile(node.child("when")), parse_checks(node, "checks")))
    if "schedule" in root.data:
        policy.schedule = parse_schedule(root.child("schedule"))
    if "precopy_interval" in root.data:
        parse_duration(root, "precopy_interval", MIN_PRECOPY)  # refused here, naming the rules file, if it is no duration
        policy.precopy_interval = root.get("precopy_interval", str)
    tag_labels = root.child("tag_labels", {})
    policy.tag_labels = {str(k): tag_labels.get(str(k), str) for k in tag_labels.data}
    for category, key in policy.tag_labels.items():
        if not is_label_key(key):
            raise tag_labels.fail(category, f"{key!r} is not a Kubernetes label key",
                                  "write [prefix/]name, e.g. example.com/tier")
    return policy


_DURATION = re.compile(r"^(\d{1,9})([smhd])$")
MAX_DURATION = 366 * 86400  # a year: a longer interval, window or cadence is a typo


def parse_duration(node: Node, key: str, minimum: int = 1) -> int:
    """'30s', '90m', '6h', '1d' -> seconds, between ``minimum`` and a year."""
    text = node.get(key, str)
    m = _DURATION.match(text)
    if not m:
        raise node.fail(key, f"{text!r} is not a duration", "write seconds, minutes, hours or days: 30s, 90m, 6h, 1d")
    seconds = int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    if not minimum <= seconds <= MAX_DURATION:
        raise node.fail(key, f"{text!r} is {'shorter than ' + str(minimum) + 's' if seconds < minimum else 'over a year'}",
                        f"write a duration from {minimum}s to 366d")
    return seconds


def parse_time(node: Node, key: str) -> "datetime":
    """An ISO 8601 date-time with its time zone: a naive one would mean another time on every worker."""
    from datetime import datetime

    text = node.get(key, str)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise node.fail(key, f"{text!r} is not an ISO date-time", "write e.g. 2026-12-05T22:00:00+00:00") from None
    if value.tzinfo is None:
        raise node.fail(key, f"{text!r} has no time zone", "add one, e.g. 2026-12-05T22:00:00+00:00 or ...Z")
    return value


def parse_schedule(node: Node) -> dict[str, Any]:
    node.only("start", "every", "length", "waves_per_window")
    every, length = parse_duration(node, "every"), parse_duration(node, "length")
    if length > every:
        raise node.fail("length", "is longer than `every`: windows would overlap", "make length at most every")
    per_window = node.get("waves_per_window", int, 1)
    if not 1 <= per_window <= 1000:
        raise node.fail("waves_per_window", f"{per_window} is not from 1 to 1000", "start at least one wave per window")
    return {"start": parse_time(node, "start"), "every": every, "length": length, "waves_per_window": per_window}


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
