"""What every step of a VM's migration needs (its job, its wave), as plain values, and which failures a retry
can fix."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

from vmwave.adapters.kubernetes import connection_cause
from vmwave.adapters.vsphere import fault_cause
from vmwave.domain.build import VMObjects
from vmwave.domain.diagnosis import cause as known_cause
from vmwave.domain.manifests import LABEL_RUN, LABEL_SHARED
from vmwave.domain.maps import Maps
from vmwave.domain.plan_file import PlannedEntry, WavePlan
from vmwave.domain.records import SourceVM
from vmwave.domain.warm import cold_because
from vmwave.errors import Cancelled, VmwaveError
from vmwave.domain.conversion import Conversion
from vmwave.settings import Settings
from vmwave_tasks.clients import Clients


@dataclass(frozen=True)
class Choices:
    """What the person starting a wave's run chose, beside the plan and the settings (the flow's parameters)."""

    ignore_window: bool = False  # run a planned-window wave outside its window; a warm VM cuts over after one copy
    keep_for_debug: bool = False  # keep a failed VM's cluster objects, labelled, instead of removing them
    redo: tuple[str, ...] = ()  # VMs to migrate again although the ledger recorded them: their objects are gone
    retry: tuple[str, ...] | None = None  # only the VMs that failed (those named; () for all), from where they failed


@dataclass(frozen=True)
class Job:
    """One VM of one wave: its plan entry, the settings, the maps and the objects it becomes. No secret."""

    wave: str
    vm: SourceVM
    entry: PlannedEntry  # the plan's entry, complete: class, mode, migration, window, target, hooks, smoke, ...
    settings: Settings
    maps: Maps
    clients: Clients  # its run's cluster and ledger (``open_clients``)
    objects: VMObjects | None = None  # None for a rollback, which finds what exists by its labels
    conversion: Conversion | None = None  # None for a rebuild or a rollback
    checks: tuple[dict, ...] = ()  # smoke checks from the plan and the guest-OS plugins
    keep_for_debug: bool = False  # a rollback labels the cluster objects instead of removing them
    cutover_now: bool = False  # the run ignores the window: a warm VM cuts over after its first copy
    migrated_before: str = ""  # the migrated marker of its VirtualMachine, when a run verified it already
    note: str = ""  # what its wave's report says beside its result (a retry: whether its kept copy was reused)
    shares_with: tuple[tuple[str, str], ...] = ()  # (key, name) of the wave's VMs that share a disk with it
    since: datetime | None = None  # when this run prepared it: what its group did before is another run's

    @property
    def own_volumes(self) -> list[str]:
        """Its DataVolumes but the ones it shares with other VMs: what its conversion may open and write."""
        return [
            dv["metadata"]["name"]
            for dv in (self.objects.datavolumes if self.objects else ())
            if LABEL_SHARED not in dv["metadata"]["labels"]
        ]

    @property
    def run(self) -> str:
        """The run label of what this job makes: its ledger's id."""
        return self.clients.run

    def owns(self, obj: dict | None) -> bool:
        """Whether ``obj`` was made by this job's run (its ledger)."""
        return (((obj or {}).get("metadata") or {}).get("labels") or {}).get(LABEL_RUN) == self.run

    @property
    def mode(self) -> str:
        return self.entry.mode

    @property
    def warm(self) -> bool:
        """The one place warm or cold is decided: the plan moves it warm, and it can (vCenter tracks its disks'
        changes and CDI reads them through VDDK); else it moves cold."""
        return self.entry.warm and cold_because(self.vm, bool(self.settings.vddk_image)) is None

    @property
    def cls(self) -> str:
        return self.entry.cls

    @property
    def target(self) -> str:
        """The VM's name in the cluster."""
        return self.entry.target

    def start_step(self, step: str) -> int:
        """Record an attempt of ``step`` in the ledger; its number."""
        return self.clients.steps.start(
            self.wave, self.vm.key, self.vm.name, step, self.vm.moref, self.vm.instance_uuid
        )

    def check_cancelled(self) -> None:
        """Stop here, to be rolled back, if a person cancelled this VM's migration (`vmwave cancel`)."""
        if self.clients.requests.take_cancel(self.wave, self.vm.instance_uuid):
            raise Cancelled(f"{self.vm.name}: its migration was cancelled", "run the wave again to migrate it")

    def wait_for(
        self,
        api_version: str,
        kind: str,
        name: str,
        done: Callable[[dict | None], bool],
        timeout: float,
        what: str,
        since: dict | None = None,
    ) -> dict | None:
        """Wait on one of this VM's objects in its namespace, stopping early if its migration is cancelled."""
        return self.clients.cluster.wait_for(
            api_version, kind, self.maps.namespace, name, done, timeout, what, since, abort=self.check_cancelled
        )

    @property
    def hooks(self) -> dict:
        """The plan's hooks for this VM, by kind (``pre_cutover``, ``post_boot``); {} when it has none."""
        return self.entry.hooks


@dataclass(frozen=True)
class Wave:
    """One wave being run or rolled back: the plan's wave (id, class, mode, window, limits, VMs) and each VM's job."""

    plan: WavePlan
    jobs: tuple[Job, ...]
    settings: Settings
    maps: Maps
    clients: Clients

    @property
    def id(self) -> str:
        return self.plan.id

    @property
    def per_host(self) -> int:
        """VMs in flight per ESXi host: the setting when given, else the plan's limit."""
        return self.settings.per_host or self.plan.per_host


class StepFailed(VmwaveError):
    """A step failed for a known cause (``vmwave.domain.diagnosis``); the fix is the table's unless given."""

    def __init__(self, cause: str, what: str, fix: str | None = None):
        super().__init__(what, fix or known_cause(cause).fix, cause=cause)


def classify(exc: BaseException) -> tuple[str, bool]:
    """(cause for the ledger, whether a retry can fix it) for anything a step raises."""
    cause = exc.cause if isinstance(exc, VmwaveError) else fault_cause(exc) or connection_cause(exc) or "unexpected"
    return cause, known_cause(cause).transient


def retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """A Prefect ``retry_condition_fn``: retry what the diagnosis table calls transient, nothing else."""
    try:
        state.result()
    except Exception as exc:
        return classify(exc)[1]
    return False
