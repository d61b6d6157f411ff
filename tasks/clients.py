"""The connections a wave's run uses, opened once and passed down with each VM's job: nothing fetches a client from
a global, and a test opens them as a flow does (``open_clients``).

The ledger is one database with three uses, each seen through its own part of ``vmwave.adapters.ledger``:
- ``steps`` (``Ledger``): what each step of each VM did, so a rerun skips what finished, an undo knows what to
  undo, and the report and the metrics read it. Data passes from step to step as return values, not through it.
- ``claims`` (``Claims``): which worker runs a VM now, when several share a wave.
- ``requests`` (``Requests``): what a person asked of a running VM (`vmwave cancel`, `vmwave cutover`). The ledger
  is their one adapter: a request must reach whichever worker runs the VM, on any machine, and be made by the CLI
  without a Prefect server; the VM asks before each step and every few seconds while it waits.

vCenter is not one of them: a pyVmomi session is not shared between threads, so each step logs in with the
settings' ``VCenter`` (``vmwave.adapters.vsphere.connect``).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from vmwave.adapters.kubernetes import Cluster
from vmwave.adapters.ledger import Claims, Ledger, Requests
from vmwave.settings import Settings


@dataclass(frozen=True, eq=False)
class Clients:
    """A run's cluster and ledger; ``run`` is the ledger's id, the label of every object the run makes."""

    cluster: Cluster
    steps: Ledger
    claims: Claims
    requests: Requests
    run: str


@contextmanager
def open_clients(settings: Settings) -> Iterator[Clients]:
    """The run's clients, closed when it ends."""
    ledger = Ledger(settings.ledger)
    try:
        cluster = Cluster(settings.need_kubeconfig())
        try:
            yield Clients(cluster, ledger, ledger.claims, ledger.requests, ledger.run_id)
        finally:
            cluster.close()
    finally:
        ledger.close()
