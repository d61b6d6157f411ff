"""Flow `migrate_vm`: one VM through the seven steps; on a failure retries cannot fix, roll back.

Rollback removes what this VM created in the cluster (unless kept for
debugging), powers the source on again if it was on, and keeps the vmwave
snapshot. The source VM is never deleted.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from vmwave_tasks.cdi_import import cdi_import
from vmwave_tasks.convert import convert
from vmwave_tasks.job import Job
from vmwave_tasks.rollback import rollback
from vmwave_tasks.smoke import smoke
from vmwave_tasks.snapshot import snapshot
from vmwave_tasks.target import boot, guest_agent, network_attach


@flow(name="migrate-vm", flow_run_name="{job.wave}-{job.vm.name}", log_prints=True)
def migrate_vm(job: Job, checks: list[dict] | None = None, keep_for_debug: bool = False) -> dict[str, Any]:
    logger = get_run_logger()
    source: dict[str, Any] = {}
    try:
        source = snapshot(job)
        converted = convert(job)
        cdi_import(job, converted)
        network_attach(job)
        boot(job)
        agent = guest_agent(job)
        smoke(job, agent, checks or [])
    except Exception as exc:
        logger.error("%s failed: %s; rolling back", job.vm.name, exc)
        rollback(job, source.get("was_on", job.vm.power_state == "poweredOn"), keep_for_debug)
        raise
    return {"vm": job.vm.name, "result": "succeeded", "agent": agent}
