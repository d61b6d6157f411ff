"""What every step of a VM's migration needs, as plain values, and the ledger around each step.

A step is a Prefect task that first asks the ledger whether it already
finished (a rerun skips it and returns what it recorded), records each
attempt, and retries only what a retry can fix.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Callable

from prefect import task
from prefect.cache_policies import NONE

from vmwave.adapters.ledger import Ledger
from vmwave.adapters.vsphere import VCenter
from vmwave.domain.records import SourceVM
from vmwave.errors import ConnectionFailed, VmwaveError


@dataclass(frozen=True)
class Transfer:
    cert: str
    key: str
    ca: str


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
    timeouts: dict[str, float] = field(default_factory=lambda: {"shutdown": 300, "import": 3600, "boot": 600,
                                                                "agent": 600})


class StepFailed(VmwaveError):
    """A step failed for a known cause; ``transient`` ones are retried."""

    def __init__(self, what: str, fix: str, cause: str, transient: bool = False):
        super().__init__(what, fix)
        self.cause = cause
        self.transient = transient


def _retry_transient(task, task_run, state) -> bool:
    try:
        state.result()
    except StepFailed as exc:
        return exc.transient
    except ConnectionFailed as exc:
        return "refused the user name" not in exc.what and "does not verify" not in exc.what
    except Exception:
        return False
    return False


def step(name: str, retries: int = 3) -> Callable:
    """A migration step: ledger-checked, recorded, retried with backoff and jitter on transient errors."""

    def wrap(fn: Callable[..., dict[str, Any]]):
        @task(name=name, retries=retries, retry_delay_seconds=[2, 10, 30], retry_jitter_factor=0.5,
              retry_condition_fn=_retry_transient, cache_policy=NONE, persist_result=False)
        @functools.wraps(fn)
        def run(job: Job, *args: Any) -> dict[str, Any]:
            ledger = Ledger(job.ledger)
            recorded = ledger.get(job.wave, job.vm.moref, name)
            if recorded and recorded["status"] in ("succeeded", "skipped"):
                return recorded["detail"]
            ledger.start(job.wave, job.vm.moref, job.vm.name, name)
            try:
                detail = fn(job, *args) or {}
            except StepFailed as exc:
                ledger.finish(job.wave, job.vm.moref, name, "failed", error=str(exc), cause=exc.cause)
                raise
            except VmwaveError as exc:
                ledger.finish(job.wave, job.vm.moref, name, "failed", error=str(exc), cause=type(exc).__name__)
                raise
            except Exception as exc:
                ledger.finish(job.wave, job.vm.moref, name, "failed", error=f"{type(exc).__name__}: {exc}",
                              cause="unexpected")
                raise
            ledger.finish(job.wave, job.vm.moref, name, detail.pop("status", "succeeded"),
                          bytes_done=int(detail.get("bytes", 0)), detail=detail)
            return detail
        return run
    return wrap
