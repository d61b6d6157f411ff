"""The plan file's models: what a (hand-edited) plan may say, checked once when it is read.

``parse_plan`` turns the file's document into a ``PlanFile``: every field
constrained (names, ids, limits, times with their zone, durations, templates,
labels, patterns), unknown fields named with the nearest known one, and the
checks across fields (a VM in one wave, target names unique, a wave within
its size). A VM's entry is then complete: what its wave says (class, mode,
migration, window, hooks, placement, keep-for-debug) and the plan's name
templates are filled in where the VM says nothing, so everything inward reads
one ``PlannedEntry`` and one ``WavePlan``, never the file's dicts.
"""

from __future__ import annotations

from datetime import datetime
from string import Formatter
from typing import Annotated, Any, Callable, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from vmwave.domain.classes import CLASSES
from vmwave.domain.hooks import parse_hooks
from vmwave.domain.manifests import Names
from vmwave.domain.maps import parse_placement
from vmwave.domain.pod_placement import ConversionPods, NadRef, checked_labels
from vmwave.domain.names import TARGET_MAX, WAVE_ID, WAVE_ID_FIX, is_k8s_name, target_name
from vmwave.domain.records import MOREF_PATTERN, UUID_PATTERN
from vmwave.domain.smoke import parse_checks
from vmwave.domain.validate import MAX_DURATION, Node, aware_time, input_errors, node_checked, problem, seconds
from vmwave.domain.warm import DEFAULT_PRECOPY_INTERVAL, MIN_PRECOPY
from vmwave.errors import InputError

PLAN_SCHEMA = "vmwave.io/plan/v1"
TOOLS = ("copy", "virt-v2v")  # how a VM's disks become KubeVirt disks (see vmwave.hookspecs.Conversion)
MAX_NAME, MAX_TEXT = 1024, 4096  # a VM's name (vSphere allows 80), a reason, message or preparation step
DEFAULT_NAMES = Names()
INDEX_SPEC = ("", "d", "02d", "03d", "04d", "2", "3", "4", "02", "03", "04")  # {index:02d}: zero-padded, no wider

ClassId = Literal["P1", "P2", "P3", "P4", "P5"]
Mode = Literal["offline-batch", "rebuild", "cold", "planned-window", "manual"]
Migration = Literal["cold", "warm"]
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT)]
Short = Annotated[str, StringConstraints(max_length=255)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, strict=True)  # "yes" is not true, "3" not 3


class Concern(Model):
    id: Short
    severity: Literal["critical", "warning", "info"]
    message: Text = ""
    fix: Text = ""


class Window(Model):
    start: AwareDatetime
    end: AwareDatetime

    _iso = field_validator("start", "end", mode="before")(aware_time)

    def ended(self, now: datetime) -> bool:
        return now >= self.end

    @model_validator(mode="after")
    def _ordered(self) -> "Window":
        if self.end <= self.start:
            raise problem("the window's end is not after its start", "make the window end after it starts", "end")
        return self


class Fence(Model):
    """What becomes of a source once its migration is verified, so it cannot come back beside its copy: it stays
    off, is renamed (``{name}`` its name, ``{wave}`` the wave), marked ``vmwave.migrated``, its NICs disconnected
    and not connecting at power on, and moved into ``folder`` (a path below its datacenter's VM folder) if given."""

    enabled: bool = True
    rename: Short = "{name}-migrated"
    folder: Short | None = None

    @field_validator("rename")
    @classmethod
    def _rename(cls, template: str) -> str:
        try:
            parts = [(f, s, c) for _, f, s, c in Formatter().parse(template) if f is not None]
        except ValueError as exc:
            raise problem(f"{template!r} is not a template ({exc})", "write e.g. {name}-migrated") from None
        used = {f for f, _, _ in parts}
        if "name" not in used or used - {"name", "wave"} or any(s or c for _, s, c in parts):
            raise problem(
                f"{template!r} must use {{name}} and may use {{wave}}, without a format",
                "write e.g. {name}-migrated or migrated-{wave}-{name}",
            )
        return template

    @field_validator("folder")
    @classmethod
    def _folder(cls, folder: str | None) -> str | None:
        parts = (folder or "").split("/")
        if folder is not None and any(
            not p or p in (".", "..") or len(p) > 80 or any(ord(ch) < 32 for ch in p) for p in parts
        ):
            raise problem(
                f"{folder!r} is not a folder path",
                "write the folders below the datacenter's VM folder, "
                "e.g. migrated or migrated/2026, each at most 80 characters",
            )
        return folder


def _fence_shorthand(value: Any) -> Any:
    """``fence: false`` (or true) for the whole mapping: fencing off (or on, as the defaults say)."""
    return {"enabled": value} if isinstance(value, bool) else value


FenceField = Annotated[Fence, BeforeValidator(_fence_shorthand)]
OnFailure = Literal["keep", "delete"]  # a failed VM's copied volumes: kept for `vmwave retry`, or deleted


class Limits(Model):
    wave_size: Annotated[int, Field(ge=1, le=10_000)]
    per_host: Annotated[int, Field(ge=1, le=10_000)]


class NameTemplates(Model):
    """How a VM's objects are named (``Names``): only the placeholders each may use, and no format but a width."""

    pvc: Short | None = None
    volume: Short | None = None
    interface: Short | None = None

    @model_validator(mode="after")
    def _templates(self) -> "NameTemplates":
        for kind, allowed in Names.FIELDS.items():
            template = getattr(self, kind)
            if template is None:
                continue
            try:
                parts = [(f, s, c) for _, f, s, c in Formatter().parse(template) if f is not None]
            except ValueError as exc:
                raise problem(f"{template!r} is not a template ({exc})", "write e.g. {vm}-disk{index}", kind) from None
            used = {f for f, _, _ in parts}
            odd = [f for f, s, c in parts if c or (s and not (f == "index" and s in INDEX_SPEC))]
            if odd or used - set(allowed) or "index" not in used:
                raise problem(
                    f"{template!r} may use only {{{'}, {'.join(allowed)}}}, must use {{index}}, and no "
                    f"format but {{index:02d}}",
                    "every disk or NIC of a VM needs its own name, e.g. {vm}-disk{index}",
                    kind,
                )
        return self

    def names(self) -> Names:
        return Names(**{k: v for k, v in self.model_dump().items() if v is not None})


Placement = dict[str, Any]
Checks = Annotated[list[dict[str, Any]], node_checked(lambda n: parse_checks(n, "smoke"), "smoke")]
HooksField = Annotated[dict[str, dict[str, Any]], node_checked(parse_hooks, "hooks")]
Labels = dict[Short, Short]


class PlannedEntry(Model):
    """One VM of the plan, as the file says it and completed from its wave (see the module's docstring)."""

    _cutover_iso = field_validator("cutover", mode="before")(aware_time)

    name: Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME)]
    moref: Annotated[str, StringConstraints(pattern=MOREF_PATTERN)]
    uuid: Annotated[str, StringConstraints(pattern=UUID_PATTERN)] = ""
    cls: ClassId | None = Field(None, alias="class")
    reason: Text = ""
    host: Short = ""
    target_name: Short | None = None
    mode: Mode | None = None
    migration: Migration | None = None
    profile: Literal["standard", "latency-sensitive"] = "standard"
    convert: Literal["copy", "virt-v2v"] | None = None
    compatibility: bool = False
    labels: Labels = Field(default_factory=dict)
    target_power_state: Literal["on", "off", "source"] = "on"
    node_selector: dict[str, str] | None = None
    affinity: Placement | None = None
    hooks: HooksField = Field(default_factory=dict)
    group: Short | None = None
    concerns: list[Concern] = Field(default_factory=list)
    smoke: Checks = Field(default_factory=list)
    preparation: Annotated[list[Text], Field(max_length=100)] = Field(default_factory=list)
    keep_for_debug: bool | None = None
    fence: FenceField | None = None
    cutover: AwareDatetime | None = None  # when its cutover is due, before its wave's window ends
    on_failure: OnFailure | None = None
    conversion_pods: ConversionPods | None = None  # where its conversion pod runs: else its wave's, else the maps'
    transfer_network: NadRef | None = None  # the NAD its disks are copied over: else its wave's, else the maps'
    # filled in from the wave and the plan when the file is read, never written in a VM's entry:
    _window: Window | None = PrivateAttr(None)
    _precopy_interval: int = PrivateAttr(DEFAULT_PRECOPY_INTERVAL)
    _names: Names | None = PrivateAttr(None)

    @property
    def window(self) -> Window | None:
        """Its wave's maintenance window."""
        return self._window

    @property
    def precopy_interval(self) -> int:
        """Seconds between its wave's warm precopy rounds."""
        return self._precopy_interval

    @property
    def fencing(self) -> Fence:
        """How its source is fenced once verified: its own, else its wave's, else the plan's (on by default)."""
        return self.fence or Fence()

    @property
    def cutover_at(self) -> datetime | None:
        """When its cutover is due: its own time, else its wave's window start (None: as soon as it can)."""
        return self.cutover or (self._window.start if self._window else None)

    @property
    def object_names(self) -> Names:
        """The plan's name templates for its objects."""
        return self._names or DEFAULT_NAMES

    @field_validator("labels")
    @classmethod
    def _labels(cls, labels: dict[str, str]) -> dict[str, str]:
        return checked_labels(labels, "Kubernetes label")

    _placement = model_validator(mode="before")(classmethod(lambda cls, data: _checked_placement(data)))

    @model_validator(mode="after")
    def _own(self) -> "PlannedEntry":
        if self.target_name is not None and (not is_k8s_name(self.target_name) or len(self.target_name) > TARGET_MAX):
            raise problem(
                f"{self.target_name!r} is not a Kubernetes name of at most {TARGET_MAX} characters",
                "use lower case letters, digits and '-', starting and ending with a letter or digit",
                "target_name",
            )
        if self.compatibility and self.convert != "copy":
            raise problem(
                "compatibility mode boots the guest unconverted, on SATA disks and an e1000e NIC",
                "set `convert: copy` next to it, or remove `compatibility:` to convert the guest",
                "compatibility",
            )
        return self

    @property
    def target(self) -> str:
        return self.target_name or target_name(self.name)

    @property
    def warm(self) -> bool:
        """The plan moves it warm (whether it can is the run's question: vmwave.domain.warm.cold_because)."""
        return self.migration == "warm"


class WavePlan(Model):
    """One wave: its id, class, mode, window, limits and VMs; each VM's entry complete."""

    id: Annotated[str, StringConstraints(pattern=WAVE_ID.pattern)]
    cls: ClassId = Field(alias="class")
    mode: Mode | None = None
    migration: Migration = "cold"
    precopy_interval: Annotated[
        int,
        Field(ge=MIN_PRECOPY, le=MAX_DURATION),  # "30m", or seconds
        BeforeValidator(lambda v: v if isinstance(v, int) else seconds(v, MIN_PRECOPY)),
    ] = DEFAULT_PRECOPY_INTERVAL
    window: Window | None = None
    keep_for_debug: bool = False
    fence: FenceField | None = None
    cutover: AwareDatetime | None = None
    on_failure: OnFailure | None = None
    conversion_pods: ConversionPods | None = None
    transfer_network: NadRef | None = None
    node_selector: dict[str, str] | None = None
    affinity: Placement | None = None
    hooks: HooksField = Field(default_factory=dict)
    vms: Annotated[list[PlannedEntry], Field(min_length=1)]

    _cutover_iso = field_validator("cutover", mode="before")(aware_time)
    _per_host: int = PrivateAttr(10)  # the plan's limit, filled in when the file is read

    @property
    def per_host(self) -> int:
        """VMs in flight per ESXi host: the plan's limit."""
        return self._per_host

    _placement = model_validator(mode="before")(classmethod(lambda cls, data: _checked_placement(data)))

    @model_validator(mode="after")
    def _complete(self) -> "WavePlan":
        self.mode = self.mode or CLASSES[self.cls].mode
        for vm in self.vms:
            vm.cls = vm.cls or self.cls
            vm.mode = vm.mode or self.mode
            vm.migration = vm.migration or self.migration
            vm.keep_for_debug = self.keep_for_debug if vm.keep_for_debug is None else vm.keep_for_debug
            vm.hooks = {**self.hooks, **vm.hooks}
            vm.fence = vm.fence or self.fence
            vm.cutover = vm.cutover or self.cutover
            vm.on_failure = vm.on_failure or self.on_failure
            vm.conversion_pods = vm.conversion_pods or self.conversion_pods
            vm.transfer_network = vm.transfer_network or self.transfer_network
            if vm.node_selector is None and vm.affinity is None:
                vm.node_selector, vm.affinity = self.node_selector, self.affinity
            vm._window, vm._precopy_interval = self.window, self.precopy_interval
        for index, vm in enumerate(self.vms):
            if vm.migration == "warm" and vm.mode == "rebuild":
                raise problem(
                    "a rebuilt VM is not copied, so it cannot be copied warm",
                    "remove `migration: warm`, or give the VM another mode",
                    f"vms[{index}].migration",
                )
            if vm.cutover and self.window and vm.cutover >= self.window.end:
                raise problem(
                    f"its cutover {vm.cutover.isoformat()} is not before its wave's window ends "
                    f"({self.window.end.isoformat()})",
                    "cut over within the window, or move the window",
                    f"vms[{index}].cutover",
                )
        return self

    @property
    def warm(self) -> bool:
        return any(vm.warm for vm in self.vms)


class Skipped(Model):
    name: Annotated[str, StringConstraints(max_length=MAX_NAME)]
    moref: Short
    reason: Short = ""


class PlanFile(Model):
    schema_: Literal["vmwave.io/plan/v1"] = Field(alias="schema")
    source: Short = ""
    limits: Limits
    names: NameTemplates = Field(default_factory=NameTemplates)
    fence: FenceField = Field(default_factory=Fence)
    on_failure: OnFailure = "keep"
    waves: Annotated[list[WavePlan], Field(min_length=1)]
    skipped: list[Skipped] = Field(default_factory=list)

    @model_validator(mode="after")
    def _across(self) -> "PlanFile":
        waves: dict[str, str] = {}
        vms: dict[str, str] = {}
        targets: dict[str, str] = {}
        names = self.names.names()
        for w, wave in enumerate(self.waves):
            twice = lambda _: f"wave id {wave.id!r} appears twice"  # noqa: E731
            _once(waves, wave.id, wave.id, twice, "give every wave its own id", f"waves[{w}].id")
            if len(wave.vms) > self.limits.wave_size:
                raise problem(
                    f"wave {wave.id} has {len(wave.vms)} VMs, more than limits.wave_size {self.limits.wave_size}",
                    "move VMs to another wave or raise limits.wave_size",
                    f"waves[{w}].vms",
                )
            wave._per_host = self.limits.per_host
            for v, vm in enumerate(wave.vms):
                where = f"waves[{w}].vms[{v}]"
                vm._names = names
                vm.fence, vm.on_failure = vm.fence or self.fence, vm.on_failure or self.on_failure
                said = lambda first: f"{vm.moref} is already in wave {first}"  # noqa: E731
                _once(vms, vm.moref, wave.id, said, "keep each VM in exactly one wave", f"{where}.moref")
                said = lambda first: f"{vm.target!r} is also the target name of {first}"  # noqa: E731
                _once(
                    targets, vm.target, vm.name, said, "give one of them another `target_name:`", f"{where}.target_name"
                )
                for kind in Names.FIELDS:
                    made = names.of(kind, vm.target, 0, wave.id)
                    if not is_k8s_name(made):
                        raise problem(
                            f"the plan's names.{kind} makes {made!r} for it, not a Kubernetes name",
                            f"change names.{kind} or this VM's target_name (lower case letters, digits, "
                            "'-', at most 63)",
                            f"{where}.target_name",
                        )
        return self

    def wave(self, wanted: str) -> WavePlan:
        for wave in self.waves:
            if wave.id == wanted:
                return wave
        raise InputError(
            "plan", "waves", f"the plan has no wave {wanted}", "use one of: " + ", ".join(w.id for w in self.waves)
        )


def _once(taken: dict[str, str], key: str, by: str, said: Callable[[str], str], fix: str, field: str) -> None:
    """``key`` is now ``by``'s; when another took it first, the plan is refused: ``said(that one)`` says why."""
    if key in taken:
        raise problem(said(taken[key]), fix, field)
    taken[key] = by


def _checked_placement(data: Any) -> Any:
    """A wave's or VM's ``node_selector`` and ``affinity``, checked as the maps' placement is."""
    if isinstance(data, dict) and ("node_selector" in data or "affinity" in data):
        try:
            parse_placement(Node({k: data[k] for k in ("node_selector", "affinity") if k in data}, "", ""))
        except InputError as exc:
            raise problem(exc.problem, exc.fix, exc.field) from None
    return data


FIXES = {
    "schema": f"write plans with this version (`vmwave plan`), schema {PLAN_SCHEMA}",
    "id": WAVE_ID_FIX,
    "moref": "re-plan, or copy it from `vmwave inventory` (e.g. vm-137)",
    "uuid": "re-plan, or copy the VM's instance UUID from `vmwave inventory`",
    "name": f"give the VM's name as vCenter has it (1-{MAX_NAME} characters)",
    "vms": "a wave holds at least one VM: remove the wave, or move VMs into it",
    "waves": "a plan holds at least one wave",
    "class": "use one of: " + ", ".join(CLASSES),
    "wave_size": "set limits.wave_size to a whole number, at least 1",
    "per_host": "set limits.per_host to a whole number, at least 1",
    "preparation": "write each step as one line of text, at most 100 steps",
}


def parse_plan(data: Any, source: str) -> PlanFile:
    """Validate a (possibly hand-edited) plan: every problem at once, each with its file, field and fix.

    Every edited value is honoured when valid and refused, naming its field, when not; none is recomputed.
    """
    try:
        return PlanFile.model_validate(data)
    except ValidationError as exc:
        raise input_errors(exc, source, PlanFile, FIXES) from None
