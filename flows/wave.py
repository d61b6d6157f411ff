"""Flows `migrate_wave` and `rollback_wave`: a wave of the plan, VM by VM, within shared limits.

Their parameters are typed, so the Prefect UI shows a form for a run; a
parameter left empty takes its VMWAVE_* variable (`vmwave lab up` prints
them). No parameter is a secret: secrets stay in files or Secret blocks.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE
from prefect.states import State
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import quote

from vmwave.adapters.prefect_api.notifications import emit_window_missed
from vmwave.adapters.prefect_api.secrets import kubeconfig_file
from vmwave.domain.steps import stopped_by
from vmwave.errors import VmwaveError
from vmwave.settings import Settings, Timeouts
from vmwave_flows.migrate import migrate_vm, run_steps
from vmwave_flows.refusals import incomplete, quiet_refusals, refused
from vmwave_tasks.inventory import read_vcenter_inventory
from vmwave_tasks.dispatch import run_wave
from vmwave_tasks.clients import open_clients
from vmwave_tasks.job import Choices, Job, Wave, classify
from vmwave_tasks.undo import rollback
from vmwave_tasks.wave import (
    end_wave,
    planned_wave,
    prepare_wave,
    progress,
    remove_credentials,
    rollback_jobs,
    share_limits,
    start_progress,
    wave_report,
)


@task(name="migrate-one", task_run_name="{job.vm.name}", cache_policy=NONE, persist_result=False)
def migrate_one(job: Job) -> str:
    """One VM, its host's and datastores' slots already taken; its outcome, never an exception."""
    if job.migrated_before:  # verified by an earlier run: nothing is applied, converted, deleted or powered
        return f"succeeded: already migrated ({job.migrated_before})"
    try:
        migrate_vm(job) if job.mode == "manual" else run_steps(job)  # only P5 pauses: its own flow run
        return "succeeded"
    except Exception as exc:  # recorded in the ledger by its step; the rest of the wave goes on
        return stopped_by(classify(exc)[0])


@flow(name="migrate-wave", flow_run_name="wave-{wave}", log_prints=True)
def migrate_wave(
    plan: str,
    wave: str | int,
    maps: str | None = None,
    ledger: str | None = None,
    workdir: str | None = None,
    keep_for_debug: bool = False,
    ignore_window: bool = False,
    in_flight: int | None = None,
    per_host: int | None = None,
    per_datastore: int | None = None,
    timeouts: Timeouts | None = None,
    report_dir: str = ".",
    vcenter_secret_block: str | None = None,
    kubeconfig_secret_block: str | None = None,
    redo: list[str] | None = None,
    retry: list[str] | None = None,
) -> dict[str, Any] | State:
    """Migrate one wave of the plan file ``plan``: every VM through the seven steps, at most ``in_flight`` at once.

    The run ends Completed when every VM succeeded, Failed (its report still published) when one did not.

    Args:
        plan: path of the plan file (`vmwave plan` writes it); it says everything each VM's migration uses
        wave: the wave's id (w003) or number (3)
        maps: storage and network maps file [VMWAVE_MAPS]
        ledger: ledger file or SQLAlchemy URL [VMWAVE_LEDGER]
        workdir: where each VM's conversion log is kept, never a disk [VMWAVE_WORKDIR]
        keep_for_debug: keep a failed VM's cluster objects, labelled, instead of removing them
        ignore_window: run a planned-window (P4) wave outside its maintenance window
        in_flight: VMs migrating at once in this worker [VMWAVE_IN_FLIGHT, 10]
        per_host: VMs in flight per ESXi host across workers [the plan's limit]
        per_datastore: VMs in flight per datastore across workers [VMWAVE_PER_DATASTORE, 10]
        timeouts: seconds each waiting step may take [VMWAVE_TIMEOUTS]
        report_dir: where the wave's Markdown report is written
        vcenter_secret_block: the Prefect Secret block holding the vCenter password [VMWAVE_VCENTER_SECRET_BLOCK]
        kubeconfig_secret_block: the Prefect Secret block holding the target cluster's kubeconfig [VMWAVE_KUBECONFIG]
        redo: VMs (by name) to migrate again although the ledger recorded them: their objects are gone
        retry: run only the VMs that failed (those named; [] for all), from their first failed step, on the copy
            their failure kept when their source did not change since (`vmwave retry`)
    """
    logger = get_run_logger()
    quiet_refusals()
    try:
        with kubeconfig_file(kubeconfig_secret_block) as kubeconfig:
            settings = Settings.load(
                maps=maps,
                ledger=ledger,
                workdir=workdir,
                in_flight=in_flight,
                per_host=per_host,
                per_datastore=per_datastore,
                timeouts=timeouts,
                kubeconfig=kubeconfig,
                vcenter={"secret_block": vcenter_secret_block},
            )
            choices = Choices(ignore_window, keep_for_debug, tuple(redo or ()), None if retry is None else tuple(retry))
            report = _run_wave(plan, wave, settings, choices, report_dir)
    except VmwaveError as exc:  # refused before anything changed: its message says why and what to do
        return refused(exc, logger)
    logger.info(
        "wave %s: %s/%s VMs succeeded; report %s",
        report["wave"],
        report["succeeded"],
        report["total"],
        report["report"],
    )
    missed = [r["vm"] for r in report["rows"] if r["result"].startswith(stopped_by("missed-window"))]
    if missed:  # the automation `vmwave notify set` made tells the platform team
        emit_window_missed(report["wave"], missed, report["report"])
    if report["succeeded"] != report["total"]:  # the run's state is the wave's result (the UI, `--watch` in CI)
        others = [r["vm"] for r in report["rows"] if not r["result"].startswith("succeeded")]
        return incomplete(
            f"wave {report['wave']}: {len(others)} of {report['total']} VMs did not succeed "
            f"({', '.join(others[:20])}{', ...' if len(others) > 20 else ''}); the report says why: "
            f"{report['report']}",
            "fix each cause as the report says, then run the wave again",
            report,
        )
    return report


def _run_wave(plan: str, wave: str | int, settings: Settings, choices: Choices, report_dir: str) -> dict[str, Any]:
    """Check the wave (refused here, before anything changes), run its VMs within the shared limits, report."""
    wave_plan = planned_wave(plan, wave, settings, choices.ignore_window)  # refused outside its window: none read yet
    records = read_vcenter_inventory(settings.need_vcenter(), [vm.moref for vm in wave_plan.vms])
    with open_clients(settings) as clients:
        to_run = prepare_wave(wave_plan, records, settings, quote(clients), choices)
        limits, caps = share_limits(quote(to_run))  # a Wave walked for futures costs as much as its VMs
        bar = start_progress(to_run.id)
        with ThreadPoolTaskRunner(max_workers=settings.in_flight) as runner:
            outcomes = run_wave(
                to_run,
                limits,
                caps,
                start=lambda job: runner.submit(migrate_one, {"job": quote(job)}),
                finished=lambda done, total: progress(bar, done, total),
            )
        remove_credentials(to_run)
        end_wave(quote(to_run))
        return wave_report(quote(to_run), outcomes, report_dir)


@flow(name="rollback-wave", flow_run_name="rollback-{wave}", log_prints=True)
def rollback_wave(
    plan: str,
    wave: str | int,
    maps: str | None = None,
    ledger: str | None = None,
    keep_for_debug: bool = False,
    vcenter_secret_block: str | None = None,
    kubeconfig_secret_block: str | None = None,
    vms: list[str] | None = None,
) -> dict[str, Any] | State:
    """Undo a wave on request: every VM the ledger knows in it (or only ``vms``) is rolled back; sources are kept.

    The run ends Failed when an undo failed for some VM, naming what is left to undo by hand.

    Nothing a migration checks first (drivers, conversion tools, the window) is needed to undo it.

    Args:
        plan: path of the plan file the wave ran from
        wave: the wave's id (w003) or number (3)
        maps: storage and network maps file [VMWAVE_MAPS]
        ledger: ledger file or SQLAlchemy URL [VMWAVE_LEDGER]
        keep_for_debug: label the VMs' cluster objects instead of removing them
        vcenter_secret_block: the Prefect Secret block holding the vCenter password [VMWAVE_VCENTER_SECRET_BLOCK]
        kubeconfig_secret_block: the Prefect Secret block holding the target cluster's kubeconfig [VMWAVE_KUBECONFIG]
        vms: only these VMs (by name); the wave's credentials stay while others of it remain
    """
    quiet_refusals()
    try:
        with kubeconfig_file(kubeconfig_secret_block) as kubeconfig:
            settings = Settings.load(
                maps=maps, ledger=ledger, kubeconfig=kubeconfig, vcenter={"secret_block": vcenter_secret_block}
            )
            return _roll_back(plan, wave, settings, keep_for_debug, vms or [])
    except VmwaveError as exc:  # refused before anything changed
        return refused(exc, get_run_logger())


def _roll_back(
    plan: str, wave: str | int, settings: Settings, keep_for_debug: bool, vms: list[str]
) -> dict[str, Any] | State:
    """Every VM the ledger knows in the wave (or those named) rolled back, then the wave's credentials removed."""
    with open_clients(settings) as clients:
        return _undo_jobs(rollback_jobs(plan, wave, settings, quote(clients), keep_for_debug, vms), vms)


def _undo_jobs(to_undo: Wave, vms: list[str]) -> dict[str, Any] | State:
    """Each job's VM rolled back, then the wave's credentials removed unless only some VMs were named."""
    with ThreadPoolTaskRunner(max_workers=to_undo.settings.in_flight) as runner:
        done = {job.vm.name: runner.submit(rollback, {"job": quote(job)}) for job in to_undo.jobs}
        failed = {name: outcome["failed"] for name, f in done.items() if (outcome := f.result())["failed"]}
    try:
        if not vms:
            remove_credentials(to_undo)
    except Exception as exc:  # named with the VMs' undos, which all ran: the person fixes and reruns once
        failed["the wave's credentials Secret"] = [f"{type(exc).__name__}: {getattr(exc, 'msg', exc)}"]
    result = {"wave": to_undo.id, "rolled_back": len([name for name in done if name not in failed]), "failed": failed}
    if failed:  # what a person must undo by hand: the run ends Failed, as a wave with a failed VM does
        return incomplete(
            f"wave {result['wave']}: the rollback is incomplete: "
            + "; ".join(f"{name}: {', '.join(why)}" for name, why in failed.items()),
            "undo what is named by hand, or fix it and run the rollback again",
            result,
        )
    return result
