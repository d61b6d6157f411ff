"""Start a wave's VMs in the order that ends it soonest, each once its host and datastore slots are free.

The largest disks start first (longest-processing-time order), so the wave
does not end waiting on one big VM started last; a VM whose host or datastore
is full is passed over for the next one that fits, which spreads the wave
across hosts and datastores within their caps. Several workers may run the
same wave: each VM is claimed in the ledger before it starts, so it runs on one.
"""

from __future__ import annotations

import queue
import time
import uuid
from collections import Counter
from typing import Callable

from prefect.futures import PrefectFuture

from vmwave_tasks.job import Job
from vmwave_tasks.slots import SharedSlots

POLL_SECONDS = 2.0  # how often a blocked worker asks again for slots other workers may have freed
REFRESH_SECONDS = 10.0  # how often this worker says its claims are alive (the ledger's CLAIM_STALE_SECONDS is 60)
ELSEWHERE = "run by another worker"


def disk_bytes(job: Job) -> int:
    return sum(d.capacity_bytes for d in job.vm.disks)


def largest_first(jobs: list[Job]) -> list[Job]:
    return sorted(jobs, key=lambda job: (-disk_bytes(job), job.vm.name))


def run_wave(jobs: list[Job], limits: dict[str, list[str]], caps: dict[str, int], in_flight: int,
             start: Callable[[Job], PrefectFuture], finished: Callable[[int, int], None]) -> dict[str, str]:
    """Run every job through ``start`` within ``in_flight`` and the shared ``caps``; each VM's outcome by moref."""
    if not jobs:
        return {}
    owner, ledger = uuid.uuid4().hex, jobs[0].ledger()
    pending, outcomes, busy = largest_first(jobs), {}, set()  # busy: VMs another live worker had claimed
    running: dict[PrefectFuture, tuple[Job, uuid.UUID]] = {}
    here: Counter[str] = Counter()  # slots this worker holds, per limit: no request when it alone fills one
    refreshed, finishing = time.monotonic(), queue.SimpleQueue()
    with SharedSlots() as slots:
        while pending or running:
            full: set[tuple[str, ...]] = set()
            for job in list(pending):
                names = limits[job.vm.moref]
                if len(running) >= in_flight:
                    break
                if tuple(names) in full or any(here[n] >= caps[n] for n in names):
                    continue
                claim = ledger.claim(job.wave, job.vm.moref, owner)
                if claim == "busy":  # wait: it finishes there, or its worker died and its claim goes stale
                    busy.add(job.vm.moref)
                    continue
                if claim == "new" and job.vm.moref in busy:  # the other worker finished it
                    ledger.release_claim(job.wave, job.vm.moref, owner)
                    pending.remove(job)
                    outcomes[job.vm.moref] = ELSEWHERE
                    finished(len(outcomes), len(jobs))
                    continue
                lease = slots.take(names)
                if lease is None:  # another worker holds the rest of a cap
                    ledger.release_claim(job.wave, job.vm.moref, owner)
                    full.add(tuple(names))
                    continue
                pending.remove(job)
                here.update(names)
                future = start(job)
                running[future] = (job, lease)
                future.add_done_callback(finishing.put)
            for future in _finished(finishing):
                job, lease = running.pop(future)
                outcomes[job.vm.moref] = future.result()
                slots.give_back(lease)
                here.subtract(limits[job.vm.moref])
                ledger.release_claim(job.wave, job.vm.moref, owner)
                finished(len(outcomes), len(jobs))
            if time.monotonic() - refreshed > REFRESH_SECONDS:
                ledger.refresh_claims(owner)
                refreshed = time.monotonic()
    return outcomes


def _finished(finishing: queue.SimpleQueue) -> list[PrefectFuture]:
    """The VMs that finished: at least one, unless POLL_SECONDS pass first."""
    try:
        done = [finishing.get(timeout=POLL_SECONDS)]
    except queue.Empty:
        return []
    while not finishing.empty():
        done.append(finishing.get())
    return done
