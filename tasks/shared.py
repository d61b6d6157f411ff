"""VMs that share a disk (multi-writer: a database or Windows failover cluster) move together.

They are in one wave, and each one's job names the others (``Job.shares_with``).
Each waits here, at two points, for all of them: every source is shut down
before the shared disk is copied (once, onto one DataVolume attached to all),
and every copy is verified before any source is fenced, so a group is cut over
together or, when one of them fails, not at all.
"""

from __future__ import annotations

import time
from datetime import timezone

from vmwave.domain.diagnosis import cause as known_cause
from vmwave.domain.steps import DONE
from vmwave_tasks.job import Job, StepFailed

POLL_SECONDS = 1.0


def wait_for_group(job: Job, step: str, what: str, timeout: float) -> None:
    """Wait until each VM sharing a disk with ``job`` finished ``step``; fail when one of them failed for good
    in this run, or did not get there within ``timeout``."""
    if not job.shares_with:
        return
    ledger, deadline = job.clients.steps, time.monotonic() + timeout
    while True:
        job.check_cancelled()
        rows = {name: ledger.get(job.wave, key, step) or {} for key, name in job.shares_with}
        if all(row.get("status") in DONE for row in rows.values()):
            return
        broken = [name for name, row in rows.items() if _broken(job, row)]
        if broken or time.monotonic() > deadline:
            why = f"{', '.join(broken)} failed" if broken else f"not all of them were {what} within {timeout:.0f}s"
            raise StepFailed(
                "shared-disk-group-failed",
                f"{job.vm.name} shares a disk with {', '.join(rows)}, and {why}: the group moves "
                "together or not at all",
            )
        time.sleep(POLL_SECONDS)


def _broken(job: Job, row: dict) -> bool:
    """A step of this run that failed for good (a transient failure is retried) or was rolled back."""
    started = row.get("started_at")
    if started is not None and started.tzinfo is None:
        started = started.replace(tzinfo=timezone.utc)  # SQLite keeps no zone; the ledger writes UTC
    if started is None or (job.since is not None and started < job.since):
        return False  # not started in this run yet
    return row["status"] == "rolled_back" or (row["status"] == "failed" and not known_cause(row["cause"]).transient)
