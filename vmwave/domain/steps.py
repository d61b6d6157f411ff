"""The names of a VM's migration steps, in the order they run: the disks are imported, then the guest converted in
place.

One spelling for the ledger, the report, the undo table and the flows.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

SNAPSHOT = "snapshot"
CONVERT = "convert"
CDI_IMPORT = "cdi-import"
NETWORK_ATTACH = "network-attach"
BOOT = "boot"
GUEST_AGENT = "guest-agent"
SMOKE_TEST = "smoke-test"
ROLLBACK = "rollback"  # the ledger row that records what a rollback undid
PRE_CUTOVER_HOOK = "pre-cutover-hook"  # the plan's hooks (vmwave.domain.hooks): only for VMs that have them
POST_BOOT_HOOK = "post-boot-hook"
PRECOPY = "precopy"  # a warm VM's rounds of copies while it runs (vmwave.domain.warm), before its cutover
FENCE = "fence"  # the verified migration's source fenced in vCenter, so it cannot come back beside its copy
FENCED_ATTRIBUTE = "vmwave.migrated"  # the custom attribute a fenced source carries: "<namespace>/<name> <time UTC>"


def snapshot_name(wave: str) -> str:
    """The vmwave snapshot a VM keeps until its migration is verified: the way back."""
    return f"vmwave-{wave}"


DONE = ("succeeded", "skipped")  # a step recorded so is not run again
OUTCOMES = {"cancelled": "cancelled", "missed-window": "missed its window"}  # what stopped it was not a failure


def stopped_by(cause: str) -> str:
    """A VM's outcome when a step stopped it for ``cause``: the wave's report, the CLI and the flow say it so."""
    return OUTCOMES.get(cause, f"failed: {cause}")


PIPELINE = (SNAPSHOT, CDI_IMPORT, CONVERT, NETWORK_ATTACH, BOOT, GUEST_AGENT, SMOKE_TEST)
STATES = ("pending", "running", "succeeded", "failed", "rolled_back")  # a VM of a wave, as the metrics count it


def vm_state(rows: Iterable[Mapping[str, Any]]) -> str:
    """Where a VM of a wave is, from its ledger rows (step, status, cause): one of STATES.

    A cancelled VM was rolled back at a person's request, so it is not a failure; one that missed its window
    waits for the next.
    """
    rows = list(rows)
    if not rows:
        return "pending"
    failed = [r for r in rows if r["status"] == "failed"]
    if any(r["status"] == "running" for r in rows):
        return "running"
    if failed and all(r["cause"] == "missed-window" for r in failed):
        return "pending"
    if failed:
        return "rolled_back" if all(r["cause"] == "cancelled" for r in failed) else "failed"
    if any(r["status"] == "rolled_back" for r in rows):
        return "rolled_back"
    done = {r["step"] for r in rows if r["status"] in DONE}
    return "succeeded" if set(PIPELINE) <= done else "running"
