"""Prefect task: read vCenter's inventory (retried: vCenter drops sessions under load)."""

from __future__ import annotations

from prefect import task

from vmwave.adapters.vsphere import inventory
from vmwave.settings import VCenter
from vmwave.domain.records import SourceVM
from vmwave_tasks.job import retry_transient


@task(
    retries=3,
    retry_delay_seconds=[2, 10, 30],
    retry_jitter_factor=0.5,
    retry_condition_fn=retry_transient,
    persist_result=False,
)
def read_vcenter_inventory(target: VCenter, only: list[str] | None = None) -> list[SourceVM]:
    """Every VM, or ``only`` those (by moref); network trouble is retried, a wrong password or a bad certificate
    is not."""
    return inventory(target, only=only)
