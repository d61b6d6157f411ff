"""Flow `migrate_vm`: one VM through the seven steps (and the plan's hooks around them); on a failure retries
cannot fix, roll back.

Manual (P5) migrations pause for a person's approval before cutover and again after boot.

On a failure retries cannot fix, each step the ledger says finished is undone
(newest first, ``vmwave_tasks.undo``): the cluster objects go (or stay,
labelled, when the plan says keep-for-debug), the source runs again if it
ran, its vmwave snapshot stays. The source VM is never deleted.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput

from vmwave.domain.steps import SMOKE_TEST
from vmwave.errors import VmwaveError
from vmwave_tasks.cdi_import import cdi_import, precopy, wait_for_cutover
from vmwave_tasks.convert import convert
from vmwave_tasks.fence import fence
from vmwave_tasks.hooks import post_boot_hook, pre_cutover_hook
from vmwave_tasks.job import Job
from vmwave_tasks.shared import wait_for_group
from vmwave_tasks.smoke import smoke
from vmwave_tasks.snapshot import snapshot
from vmwave_tasks.target import boot, guest_agent, mark_migrated, network_attach, settle_power
from vmwave_tasks.undo import undo_finished


class Approval(RunInput):
    """What a person answers when a manual (P5) migration pauses in the Prefect UI."""

    approve: bool
    note: str = ""


class NotApproved(VmwaveError):
    """A person stopped a manual migration; it is rolled back."""

    cause = "not-approved"


def approved(job: Job, moment: str, timeout: int) -> None:
    """Pause a manual (P5) migration until a person approves it in the Prefect UI."""
    if job.mode != "manual":
        return
    get_run_logger().warning("%s waits for approval %s (resume the flow run with approve: true)", job.vm.name, moment)
    answer = pause_flow_run(wait_for_input=Approval, timeout=timeout, poll_interval=2, key=f"{moment}")
    if not answer.approve:
        raise NotApproved(
            f"{job.vm.name}: not approved {moment}: {answer.note}".rstrip(": "),
            "resolve what the reviewer noted, then run the wave again",
        )


@flow(name="migrate-vm", flow_run_name="{job.wave}-{job.vm.name}", log_prints=True)
def migrate_vm(job: Job, approval_timeout: int = 86400) -> dict[str, Any]:
    """One VM as its own flow run: what a manual (P5) migration needs to pause on its own."""
    return run_steps(job, approval_timeout)


def run_steps(job: Job, approval_timeout: int = 86400) -> dict[str, Any]:
    """The seven steps, undone if one fails for good; called by ``migrate_vm`` or, for a wave, straight from its task.

    A wave runs non-manual VMs this way: subflows started from a wave's threads
    run almost one at a time (measured: 20 one-second subflows on 10 threads
    take 14.7 s, the same work as tasks 2.1 s).
    """
    logger = get_run_logger()
    try:
        copies = {}
        if job.entry.warm:
            copies = precopy(job)  # copies while the source runs, until the cutover is due (or skipped: cold)
        elif job.entry.cutover_at or job.entry.window:
            wait_for_cutover(job)  # its cutover time; or none started after its window ended
        approved(job, "before-cutover", approval_timeout)
        if "pre_cutover" in job.hooks:
            pre_cutover_hook(job)
        down = snapshot(job)
        cdi_import(job, down, copies)
        convert(job)
        network_attach(job)
        boot(job)
        agent = guest_agent(job, down)
        smoke(job, agent)
        if "post_boot" in job.hooks:
            post_boot_hook(job)
        approved(job, "after-boot", approval_timeout)
        settle_power(job)
        wait_for_group(job, SMOKE_TEST, "verified", job.settings.timeouts.until_verified)
        fence(job)  # the source cannot come back beside its copy
        mark_migrated(job)  # the cluster now says it is done: no later run touches it
    except Exception as exc:
        outcome = undo_finished(job)
        logger.error("%s failed: %s; rolled back %s", job.vm.name, exc, ", ".join(outcome["undone"]) or "nothing")
        if outcome["failed"]:
            logger.error("%s: the rollback is incomplete, undo by hand: %s", job.vm.name, "; ".join(outcome["failed"]))
        raise
    return {"vm": job.vm.name, "result": "succeeded", "agent": agent}
