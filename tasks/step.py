"""The ledger around each step of a VM's migration.

A step is a Prefect task that first asks the ledger whether it already
finished (a rerun skips it and returns what it recorded), records each
attempt, and retries only what a retry can fix, with backoff and jitter.
A step that makes something has an undo (``vmwave_tasks.undo``): run by the
step itself when it gives up, and by ``migrate_vm`` for every finished step
when a later one fails for good.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

from prefect import task
from prefect.cache_policies import NONE
from prefect.runtime import task_run
from prefect.utilities.annotations import quote

from vmwave.errors import VmwaveError
from vmwave.plugins import diagnose
from vmwave.domain.steps import BOOT, CDI_IMPORT
from vmwave_tasks.job import Job, StepFailed, classify, retry_transient
from vmwave_tasks.undo import UNDO, undo

DELAYS = [2, 10, 30]
KEEP = ("missed-window",)  # a step that stops for these keeps what it made: the next run goes on from it


def _plugins_diagnosis(job: Job, step_name: str, error: str) -> tuple[str, str] | None:
    """(cause, error with the plugin's fix) when a plugin's ``vmwave_diagnose`` knows the failure."""
    try:
        found = diagnose(job.vm, step_name, error, job.settings.disable_plugins)
    except VmwaveError:  # a plugin that fails to diagnose must not hide the failure it was asked about
        return None
    return (found["cause"], f"{error} ({found['fix']})") if found else None


MADE = {CDI_IMPORT: ("cdi.kubevirt.io/v1beta1", "DataVolume"), BOOT: ("kubevirt.io/v1", "VirtualMachine")}


def still_there(job: Job, name: str, recorded: dict) -> None:
    """A step the ledger says is done is skipped only when what it made is still in the cluster: the ledger is not
    the only memory, and one from another cluster (or kept across a rebuilt one) must not pass for done."""
    if name not in MADE or recorded["status"] != "succeeded" or job.objects is None:
        return
    api_version, kind = MADE[name]
    made = job.objects.datavolumes if kind == "DataVolume" else (job.objects.virtual_machine,)
    for obj in made:
        if job.clients.cluster.get(api_version, kind, job.maps.namespace, obj["metadata"]["name"]) is None:
            raise StepFailed(
                "recorded-but-gone",
                f"{job.vm.name}: recorded as migrated in wave {job.wave}, but "
                f"{kind} {job.maps.namespace}/{obj['metadata']['name']} is gone",
            )


def step(name: str, retries: int = len(DELAYS)) -> Callable:
    """A migration step: ledger-checked, recorded, retried on transient errors, its half-made work undone when
    it gives up.

    The Job goes in quoted: Prefect walks every parameter twice per call looking for futures, and walking the
    Job (its plan entry, settings, maps and objects) took 34 of the 57 CPU seconds of a 50-VM wave's tasks
    (yappi, benchmarks/wave_50.py). The task still gets the Job itself.
    """

    def wrap(fn: Callable[..., dict[str, Any]]):
        @task(
            name=name,
            task_run_name="{job.vm.name} / " + name,
            retries=retries,
            retry_delay_seconds=DELAYS[:retries],
            retry_jitter_factor=0.5,
            retry_condition_fn=retry_transient,
            cache_policy=NONE,
            persist_result=False,
        )
        @functools.wraps(fn)
        def run(job: Job, *args: Any) -> dict[str, Any]:
            ledger = job.clients.steps
            recorded = ledger.begin(job.wave, job.vm.key, job.vm.name, name, job.vm.moref, job.vm.instance_uuid)
            if recorded is not None:
                still_there(job, name, recorded)
                return recorded["detail"]
            try:
                job.check_cancelled()  # between steps too: a VM still queued or between waits stops here
                detail = fn(job, *args) or {}
            except Exception as exc:
                cause, transient = classify(exc)
                error = (
                    str(exc) if isinstance(exc, VmwaveError) else f"{type(exc).__name__}: {getattr(exc, 'msg', exc)}"
                )
                if cause == "unexpected":  # the table does not know it: perhaps a guest-OS plugin does
                    cause, error = _plugins_diagnosis(job, name, error) or (cause, error)
                ledger.finish(job.wave, job.vm.key, name, "failed", error=error, cause=cause)
                if name in UNDO and (not transient or task_run.run_count > retries) and cause not in KEEP:
                    undo(job, name, mark=False)  # what this step left half-made; its failure stays in the ledger
                raise
            ledger.finish(
                job.wave,
                job.vm.key,
                name,
                detail.pop("status", "succeeded"),
                bytes_done=int(detail.get("bytes", 0)),
                detail=detail,
            )
            return detail

        @functools.wraps(fn)
        def call(job: Job, *args: Any) -> dict[str, Any]:
            return run(quote(job), *args)

        return call

    return wrap
