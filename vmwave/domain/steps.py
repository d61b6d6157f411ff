"""The names of a VM's migration steps, in the order they run: the disks are imported, then the guest converted in
place.

One spelling for the ledger, the report, the undo table and the flows.
"""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True)
class Outcome:
    """Where a VM of a wave is: ``state`` as the metrics count it (one of STATES), ``said`` as the wave's report,
    the CLI and the flow say it (``succeeded``, ``failed: CAUSE``, ``cancelled``, ``missed its window``, ...)."""

    state: str
    said: str

    @property
    def succeeded(self) -> bool:
        return self.state == "succeeded"


def outcome(rows: Iterable[Mapping[str, Any]]) -> Outcome:
    """A VM's outcome from its ledger rows (step, status, cause): the one place it is decided.

    A cancelled VM was rolled back at a person's request, so it is not a failure; one that missed its window
    waits for the next. What a step that stopped it said wins over a step still running (another worker's).
    """
    rows = list(rows)
    if not rows:
        return Outcome("pending", "not run")
    failed = [r for r in rows if r["status"] == "failed"]
    said = stopped_by(failed[0]["cause"]) if failed else ""
    if any(r["status"] == "running" for r in rows):
        return Outcome("running", said or "not finished")
    if failed and all(r["cause"] == "missed-window" for r in failed):
        return Outcome("pending", said)
    if failed:
        return Outcome("rolled_back" if all(r["cause"] == "cancelled" for r in failed) else "failed", said)
    if any(r["status"] == "rolled_back" for r in rows):
        return Outcome("rolled_back", "rolled back")
    done = {r["step"] for r in rows if r["status"] in DONE}
    return Outcome("succeeded", "succeeded") if set(PIPELINE) <= done else Outcome("running", "not finished")
