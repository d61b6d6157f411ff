"""Flows `migrate_wave` and `rollback_wave`: a wave of the plan, VM by VM, within shared limits.

Settings come from the VMWAVE_* variables (`vmwave lab up` prints them) or
parameters that name files; no parameter is a secret.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE
from prefect.concurrency.sync import concurrency
from prefect.task_runners import ThreadPoolTaskRunner

from vmwave.adapters.ledger import Ledger
from vmwave.errors import InputError
from vmwave.settings import vcenter_target
from vmwave_flows.migrate import migrate_vm, run_steps
from vmwave_tasks.inventory import read_vcenter_inventory
from vmwave_tasks.job import Job, StepFailed, Transfer, parse_timeouts
from vmwave_tasks.undo import rollback
from vmwave_tasks.wave import prepare_wave, progress, share_limits, start_progress, wave_report

IN_FLIGHT = int(os.environ.get("VMWAVE_IN_FLIGHT", "10"))


def _settings(maps: str | None, rules: str | None, workdir: str | None, ledger: str | None,
              ignore_window: bool = False) -> dict[str, Any]:
    env = os.environ
    if env.get("VMWAVE_V2V_INPUT", "disk") not in ("disk", "vpx"):
        raise InputError("VMWAVE_V2V_INPUT", "", f"{env['VMWAVE_V2V_INPUT']!r} is not disk or vpx",
                         "disk: virt-v2v converts the downloaded disks; vpx: it reads the VM from vCenter")
    return {"ignore_window": ignore_window, "vcenter": vcenter_target(), "kubeconfig": env.get("VMWAVE_KUBECONFIG", ""),
            "maps": maps or env.get("VMWAVE_MAPS", ""), "rules": rules,
            "workdir": workdir or env.get("VMWAVE_WORKDIR") or str(Path.home() / ".cache" / "vmwave" / "work"),
            "ledger": ledger or env.get("VMWAVE_LEDGER"),
            "v2v_input": env.get("VMWAVE_V2V_INPUT", "disk"), "vddk_libdir": env.get("VMWAVE_VDDK_LIBDIR", ""),
            "timeouts": parse_timeouts(env.get("VMWAVE_TIMEOUTS", "")),
            "transfer": Transfer(env.get("VMWAVE_TRANSFER_CERT", ""), env.get("VMWAVE_TRANSFER_KEY", ""),
                                 env.get("VMWAVE_TRANSFER_CA", ""))}


@task(name="migrate-one", cache_policy=NONE, persist_result=False)
def migrate_one(job: Job, limits: list[str]) -> str:
    """One VM inside its host's and datastores' limits; its outcome, never an exception."""
    with concurrency(limits, occupy=1, lease_duration=60):  # a killed worker frees its slots within a minute
        try:
            migrate_vm(job) if job.mode == "manual" else run_steps(job)  # only P5 pauses: its own flow run
            return "succeeded"
        except StepFailed as exc:
            return f"failed: {exc.cause}"
        except Exception as exc:  # the rest of the wave goes on
            return f"failed: {type(exc).__name__}"


@flow(name="migrate-wave", flow_run_name="wave-{wave}", log_prints=True,
      task_runner=ThreadPoolTaskRunner(max_workers=IN_FLIGHT))
def migrate_wave(plan: str, wave: str, maps: str | None = None, rules: str | None = None, workdir: str | None = None,
                 ledger: str | None = None, keep_for_debug: bool = False, per_host: int | None = None,
                 per_datastore: int = 10, report_dir: str = ".", ignore_window: bool = False) -> dict[str, Any]:
    logger = get_run_logger()
    settings = _settings(maps, rules, workdir, ledger, ignore_window)
    records = read_vcenter_inventory(settings["vcenter"])
    jobs = prepare_wave(plan, wave, records, settings)
    from vmwave.domain.plan import parse_plan
    from vmwave.files import read_yaml

    cap = per_host or parse_plan(read_yaml(plan, "plan"), plan)["limits"]["per_host"]
    limits = share_limits(jobs, cap, per_datastore)
    bar = start_progress(jobs[0].wave if jobs else wave)
    if keep_for_debug:
        jobs = [replace(job, keep_for_debug=True) for job in jobs]
    futures = {job.vm.moref: migrate_one.submit(job, limits[job.vm.moref]) for job in jobs}
    outcomes: dict[str, str] = {}
    for moref, future in futures.items():
        outcomes[moref] = future.result()
        progress(bar, len(outcomes), len(jobs))
    report = wave_report(jobs, outcomes, settings["ledger"], report_dir)
    logger.info("wave %s: %s/%s VMs succeeded; report %s", report["wave"], report["succeeded"], report["total"],
                report["report"])
    return report


@flow(name="rollback-wave", flow_run_name="rollback-{wave}", log_prints=True,
      task_runner=ThreadPoolTaskRunner(max_workers=IN_FLIGHT))
def rollback_wave(plan: str, wave: str, maps: str | None = None, ledger: str | None = None,
                  keep_for_debug: bool = False) -> dict[str, Any]:
    """Undo a wave on request: every VM the ledger knows in it is rolled back; sources are kept."""
    settings = _settings(maps, None, None, ledger, ignore_window=True)  # undoing is never held to a window
    records = read_vcenter_inventory(settings["vcenter"])
    jobs = prepare_wave(plan, wave, records, settings)
    ledger_db = Ledger(settings["ledger"])
    touched = [job for job in jobs if ledger_db.get(job.wave, job.vm.moref, "snapshot") is not None]
    futures = [rollback.submit(replace(job, keep_for_debug=keep_for_debug or job.keep_for_debug)) for job in touched]
    return {"wave": wave, "rolled_back": len([f.result() for f in futures])}
