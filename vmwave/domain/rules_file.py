"""The rules file's models: what a rules file may say (see ``vmwave.domain.classes`` for its conditions), checked
once, every problem at once, then compiled into the ``Policy`` the planner uses.

Patterns are RE2 (``vmwave.domain.patterns``), durations bounded, times carry
their zone, limits are whole numbers from 1, labels are Kubernetes labels.
"""

from __future__ import annotations

import fnmatch
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from vmwave.domain.classes import ClassRule, Matcher, Policy, tags_of
from vmwave.domain.guests import guest_os
from vmwave.domain.names import is_label_key
from vmwave.domain.patterns import compile_pattern
from vmwave.domain.smoke import parse_checks
from vmwave.domain.validate import Node, aware_time, input_errors, node_checked, problem, seconds
from vmwave.domain.warm import MIN_PRECOPY
from vmwave.errors import InputError

ClassId = Literal["P1", "P2", "P3", "P4", "P5"]
Profile = Literal["standard", "latency-sensitive"]
Short = Annotated[str, StringConstraints(max_length=255)]


def _pattern(value: str) -> str:
    try:
        compile_pattern(Node({"p": value}, "", ""), "p", value)
    except InputError as exc:
        raise problem(exc.problem, exc.fix) from None
    return value


Pattern = Annotated[str, StringConstraints(max_length=1000), AfterValidator(_pattern)]
Duration = Annotated[str, AfterValidator(lambda v: (seconds(v), v)[1])]  # kept as written, checked


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)


class Condition(_Model):
    """All keys of one ``when`` must hold; ``any``, ``all`` and ``not`` nest."""

    name: Pattern | None = None
    folder: Short | None = None
    attribute: dict[Short, Pattern] | None = None
    tag: Short | None = None
    power_state: Literal["poweredOn", "poweredOff", "suspended"] | None = None
    guest_family: Literal["linux", "windows", "other", "unknown"] | None = None
    shared_disks: bool | None = None
    concern: Short | None = None
    severity: Literal["critical", "warning", "info"] | None = None
    cls: ClassId | None = Field(None, alias="class")
    min_cpus: Annotated[int, Field(ge=0)] | None = None
    min_memory_gb: Annotated[float, Field(ge=0)] | None = None
    any: list["Condition"] | None = None
    all: list["Condition"] | None = None
    not_: "Condition | None" = Field(None, alias="not")

    @model_validator(mode="after")
    def _not_empty(self) -> "Condition":
        if not self.model_fields_set:
            raise problem("an empty condition matches every VM", 'give at least one condition, e.g. `name: "^db-"`')
        return self

    def matcher(self) -> Matcher:
        tests: list[Matcher] = []
        if self.name is not None:
            pattern = compile_pattern(Node({}, "", ""), "name", self.name)
            tests.append(lambda vm, c, k: pattern.search(vm.name) is not None)
        if self.folder is not None:
            glob = self.folder
            tests.append(lambda vm, c, k: fnmatch.fnmatchcase(vm.folder, glob))
        if self.attribute is not None:
            wanted = {key: compile_pattern(Node({}, "", ""), "attribute", p) for key, p in self.attribute.items()}
            tests.append(
                lambda vm, c, k: all(
                    key in vm.attributes and p.search(vm.attributes[key]) is not None for key, p in wanted.items()
                )
            )
        if self.tag is not None:
            tag = self.tag
            tests.append(lambda vm, c, k: tag in tags_of(vm))
        if self.power_state is not None:
            state = self.power_state
            tests.append(lambda vm, c, k: vm.power_state == state)
        if self.guest_family is not None:
            family = self.guest_family
            tests.append(lambda vm, c, k: guest_os(vm.guest_id).family == family)
        if self.shared_disks is not None:
            shared = self.shared_disks
            tests.append(lambda vm, c, k: bool(vm.shared_disks) == shared)
        if self.concern is not None:
            concern = self.concern
            tests.append(lambda vm, c, k: any(x.id == concern for x in c))
        if self.severity is not None:
            severity = self.severity
            tests.append(lambda vm, c, k: any(x.severity == severity for x in c))
        if self.cls is not None:
            wanted_class = self.cls
            tests.append(lambda vm, c, k: k == wanted_class)
        if self.min_cpus is not None:
            cpus = self.min_cpus
            tests.append(lambda vm, c, k: vm.cpus >= cpus)
        if self.min_memory_gb is not None:
            memory_mb = self.min_memory_gb * 1024
            tests.append(lambda vm, c, k: vm.memory_mb >= memory_mb)
        for subs, combine in ((self.any, any), (self.all, all)):
            if subs is not None:
                found = [s.matcher() for s in subs]
                tests.append(lambda vm, c, k, found=found, combine=combine: combine(s(vm, c, k) for s in found))
        if self.not_ is not None:
            negated = self.not_.matcher()
            tests.append(lambda vm, c, k: not negated(vm, c, k))
        return lambda vm, c, k: all(t(vm, c, k) for t in tests)


class Rule(_Model):
    cls: ClassId = Field(alias="class")
    why: Short | None = None
    when: Condition


class ProfileRule(_Model):
    profile: Profile
    why: Short | None = None
    when: Condition


class SmokeRule(_Model):
    when: Condition
    checks: Annotated[list[dict[str, Any]], node_checked(lambda n: parse_checks(n, "checks"), "checks")]


class Waves(_Model):
    size: Annotated[int, Field(ge=1, le=10_000)] = 50
    per_host: Annotated[int, Field(ge=1, le=10_000)] = 10


class Schedule(_Model):
    start: datetime
    every: Duration
    length: Duration
    waves_per_window: Annotated[int, Field(ge=1, le=1000)] = 1

    _start = field_validator("start", mode="before")(aware_time)

    @model_validator(mode="after")
    def _fits(self) -> "Schedule":
        if seconds(self.length) > seconds(self.every):
            raise problem("is longer than `every`: windows would overlap", "make length at most every", "length")
        return self

    def as_dict(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "every": seconds(self.every),
            "length": seconds(self.length),
            "waves_per_window": self.waves_per_window,
        }


class RulesFile(_Model):
    version: Literal[1]
    rules: list[Rule] = Field(default_factory=list)
    default: ClassId = "P3"
    overrides: dict[Short, ClassId] = Field(default_factory=dict)
    groups: dict[Short, list[Short]] = Field(default_factory=dict)
    group_by: Short = "app"
    waves: Waves = Field(default_factory=Waves)
    schedule: Schedule | None = None
    precopy_interval: Annotated[str, AfterValidator(lambda v: (seconds(v, MIN_PRECOPY), v)[1])] | None = None
    profiles: list[ProfileRule] = Field(default_factory=list)
    profile_overrides: dict[Short, Profile] = Field(default_factory=dict)
    smoke: list[SmokeRule] = Field(default_factory=list)
    tag_labels: dict[Short, Annotated[str, AfterValidator(lambda v: _label_key(v))]] = Field(default_factory=dict)

    def policy(self, source: str) -> Policy:
        return Policy(
            rules=[ClassRule(r.cls, r.why or f"rule {i + 1}", r.when.matcher()) for i, r in enumerate(self.rules)],
            default=self.default,
            overrides=dict(self.overrides),
            groups={k: list(v) for k, v in self.groups.items()},
            group_by=self.group_by,
            wave_size=self.waves.size,
            per_host=self.waves.per_host,
            schedule=self.schedule.as_dict() if self.schedule else None,
            precopy_interval=self.precopy_interval,
            profiles=[
                ClassRule(r.profile, r.why or f"profile rule {i + 1}", r.when.matcher())
                for i, r in enumerate(self.profiles)
            ],
            profile_overrides=dict(self.profile_overrides),
            smoke=[(s.when.matcher(), list(s.checks)) for s in self.smoke],
            tag_labels=dict(self.tag_labels),
            source=source,
        )


def _label_key(value: str) -> str:
    if not is_label_key(value):
        raise problem(f"{value!r} is not a Kubernetes label key", "write [prefix/]name, e.g. example.com/tier")
    return value


FIXES = {
    "version": "use one of: 1",
    "size": "use a positive number",
    "per_host": "use a positive number",
    "waves_per_window": "start at least one wave per window",
}


def parse_rules(data: Any, source: str) -> Policy:
    """A rules document, checked (every problem at once, each with its field and fix), as the planner's Policy."""
    try:
        return RulesFile.model_validate(data).policy(source)
    except ValidationError as exc:
        raise input_errors(exc, source, RulesFile, FIXES) from None
