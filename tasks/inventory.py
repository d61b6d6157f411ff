"""Prefect task: read vCenter's inventory (retried: vCenter drops sessions under load)."""

from __future__ import annotations

from prefect import task

from vmwave.adapters.vsphere import VCenter, inventory
from vmwave.domain.records import SourceVM
from vmwave.errors import ConnectionFailed


def _transient(task, task_run, state) -> bool:
    """Retry network trouble, never a wrong password or a bad certificate."""
    try:
        state.result()
    except ConnectionFailed as exc:
        return "cannot reach" in exc.what or "did not answer" in exc.what
    except Exception:
        return False
    return False


@task(retries=3, retry_delay_seconds=[2, 10, 30], retry_jitter_factor=0.5, retry_condition_fn=_transient,
      persist_result=False)
def read_vcenter_inventory(target: VCenter) -> list[SourceVM]:
    return inventory(target)
