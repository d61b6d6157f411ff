"""What every step of a VM's migration needs, as plain values, and which failures a retry can fix."""

from __future__ import annotations

import http.client
import socket
from dataclasses import dataclass, field
from pyVmomi import vim

from vmwave.adapters.vsphere import VCenter
from vmwave.adapters.vsphere_ops import TaskFailed
from vmwave.domain.records import SourceVM
from vmwave.errors import ConnectionFailed, InputError, VmwaveError


@dataclass(frozen=True)
class Transfer:
    cert: str
    key: str
    ca: str


TIMEOUTS = {"shutdown": 300, "convert": 7200, "import": 3600, "boot": 600, "agent": 600}  # seconds


def parse_timeouts(text: str) -> dict[str, float]:
    """``agent=180,boot=300`` (VMWAVE_TIMEOUTS) over the defaults."""
    timeouts = dict(TIMEOUTS)
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, _, value = item.partition("=")
        if key not in TIMEOUTS or not value.replace(".", "", 1).isdigit():
            raise InputError("VMWAVE_TIMEOUTS", item, "is not STEP=SECONDS for a known step",
                             f"write e.g. agent=180,boot=300; steps: {', '.join(TIMEOUTS)}")
        timeouts[key] = float(value)
    return timeouts


@dataclass(frozen=True)
class Job:
    """One VM of one wave. Holds where secrets are, never a secret."""

    wave: str
    mode: str
    vm: SourceVM
    vcenter: VCenter
    kubeconfig: str
    maps: str
    workdir: str
    transfer: Transfer
    ledger: str | None = None
    profile: str = "standard"
    v2v_input: str = "disk"  # disk: virt-v2v converts the downloaded disks; vpx: it reads the VM from vCenter
    vddk_libdir: str = ""  # with vpx input: read through VMware's VDDK library in this directory
    checks: tuple[dict, ...] = ()  # smoke checks from the plan and the guest-OS plugins
    keep_for_debug: bool = False  # a rollback labels the cluster objects instead of removing them
    cls: str = ""  # the VM's priority class in the plan (P1-P5)
    timeouts: dict[str, float] = field(default_factory=lambda: dict(TIMEOUTS))


class StepFailed(VmwaveError):
    """A step failed for a known cause; ``transient`` ones are retried."""

    def __init__(self, what: str, fix: str, cause: str, transient: bool = False):
        super().__init__(what, fix)
        self.cause = cause
        self.transient = transient


def classify(exc: BaseException) -> tuple[str, bool]:
    """(cause for the ledger, whether a retry can fix it) for anything a step raises."""
    if isinstance(exc, StepFailed):
        return exc.cause, exc.transient
    if isinstance(exc, TaskFailed):
        return "vcenter-task-failed", True  # a host busy, a lock held by a backup: the next attempt usually works
    if isinstance(exc, ConnectionFailed):
        permanent = "refused the user name" in exc.what or "does not verify" in exc.what
        return "vcenter-unreachable", not permanent
    if isinstance(exc, vim.fault.NotAuthenticated):
        return "vcenter-session-expired", True  # the retry logs in again
    if isinstance(exc, (vim.fault.MethodDisabled, vim.fault.TaskInProgress)):
        return "vcenter-busy", True
    if isinstance(exc, (http.client.HTTPException, ConnectionError, TimeoutError, socket.timeout)):
        return "vcenter-unavailable", True  # 503 from a restarting vpxd, a dropped connection
    if isinstance(exc, VmwaveError):
        return type(exc).__name__, False
    return "unexpected", False


