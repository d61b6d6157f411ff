"""Start a wave's VMs in the order that ends it soonest, each once its host and datastore slots are free.

The largest disks start first (longest-processing-time order), so the wave
does not end waiting on one big VM started last; a VM whose host or datastore
is full is passed over for the next one that fits, which spreads the wave
across hosts and datastores within their caps. Several workers may run the
same wave: each VM is claimed in the ledger before it starts, so it runs on one.

Taking a VM's slots is one request to the Prefect server, which answers in
~2 s while it records the wave's task runs on SQLite; so up to ``in_flight``
VMs take theirs at once, in a small pool, while the others run.
"""

from __future__ import annotations

import queue
import time
import uuid
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Callable

from prefect.futures import PrefectFuture

from vmwave_tasks.job import Job, Wave
from vmwave.adapters.prefect_api.slots import SharedSlots

POLL_SECONDS = 2.0  # how long a blocked VM waits before it asks again (other workers may have freed slots)
REFRESH_SECONDS = 10.0  # how often this worker says its claims are alive (the ledger's CLAIM_STALE_SECONDS is 60)
ELSEWHERE = "run by another worker"


def disk_bytes(job: Job) -> int:
    return sum(d.capacity_bytes for d in job.vm.disks)


def largest_first(jobs: list[Job]) -> list[Job]:
    return sorted(jobs, key=lambda job: (-disk_bytes(job), job.vm.name))


class WaveDispatcher:
    """One worker's share of a wave: which VMs wait, which take their slots, which run."""

    def __init__(
        self,
        wave: Wave,
        limits: dict[str, list[str]],
        caps: dict[str, int],
        start: Callable[[Job], PrefectFuture],
        finished: Callable[[int, int], None],
    ):
        self.jobs, self.limits, self.caps, self.in_flight = list(wave.jobs), limits, caps, wave.settings.in_flight
        self.start, self.finished = start, finished
        self.owner, self.claims, self.records = uuid.uuid4().hex, wave.clients.claims, wave.clients.steps
        self.pending = largest_first(self.jobs)
        self.outcomes: dict[str, str] = {}
        self.taking: dict[Future, Job] = {}
        self.running: dict[PrefectFuture, tuple[Job, uuid.UUID]] = {}
        self.here: Counter[str] = Counter()  # slots held or being taken here, per limit: no request it would refuse
        self.blocked: dict[tuple[str, ...], float] = {}  # limits refused: not asked again until then
        self.since = datetime.now(timezone.utc)  # what other workers did after this is theirs to report
        self.events: queue.SimpleQueue = queue.SimpleQueue()

    def run(self) -> dict[str, str]:
        refreshed = time.monotonic()
        with SharedSlots() as self.slots, ThreadPoolExecutor(self.in_flight, "vmwave-take-slots") as pool:
            while self.pending or self.taking or self.running:
                self._take_slots(pool)
                for kind, item in self._next_events():
                    self._slots_answered(item) if kind == "taken" else self._vm_finished(item)
                if time.monotonic() - refreshed > REFRESH_SECONDS:
                    self.claims.refresh_claims(self.owner)
                    refreshed = time.monotonic()
        return self.outcomes

    def _take_slots(self, pool: ThreadPoolExecutor) -> None:
        now = time.monotonic()
        for job in list(self.pending):
            if len(self.running) + len(self.taking) >= self.in_flight:
                return
            names = self.limits[job.vm.key]
            if self.blocked.get(tuple(names), 0) > now or any(self.here[n] >= self.caps[n] for n in names):
                continue
            self.pending.remove(job)
            self.here.update(names)
            future = pool.submit(self._claim_and_take, job)
            self.taking[future] = job
            future.add_done_callback(lambda f: self.events.put(("taken", f)))

    def _claim_and_take(self, job: Job) -> tuple[str, uuid.UUID | None]:
        """In the pool: ``run`` with a lease, or why not (``busy``, ``elsewhere``, ``full``).

        A VM another worker ran during this run is theirs (``elsewhere``), failed or not: it is not run again
        here; one whose worker went silent is taken over.
        """
        claim = self.claims.claim(job.wave, job.vm.key, self.owner)
        if claim == "busy":  # it finishes there, or its worker died and its claim goes stale
            return "busy", None
        if claim == "new" and self.records.worked_on_since(job.wave, job.vm.key, self.since):  # done there
            self.claims.release_claim(job.wave, job.vm.key, self.owner)
            return "elsewhere", None
        lease = self.slots.take(self.limits[job.vm.key])
        if lease is None:  # another worker holds the rest of a cap
            self.claims.release_claim(job.wave, job.vm.key, self.owner)
            return "full", None
        return "run", lease

    def _next_events(self) -> list[tuple[str, object]]:
        """What happened: at least one thing, unless POLL_SECONDS pass first."""
        try:
            events = [self.events.get(timeout=POLL_SECONDS)]
        except queue.Empty:
            return []
        while not self.events.empty():
            events.append(self.events.get())
        return events

    def _slots_answered(self, future: Future) -> None:
        job = self.taking.pop(future)
        names = self.limits[job.vm.key]
        answer, lease = future.result()
        if answer == "run":
            started = self.start(job)
            self.running[started] = (job, lease)
            started.add_done_callback(lambda f: self.events.put(("finished", f)))
            return
        self.here.subtract(names)
        if answer == "elsewhere":
            self.outcomes[job.vm.key] = ELSEWHERE
            self.finished(len(self.outcomes), len(self.jobs))
            return
        self.blocked[tuple(names)] = time.monotonic() + POLL_SECONDS
        self.pending = largest_first(self.pending + [job])

    def _vm_finished(self, future: PrefectFuture) -> None:
        job, lease = self.running.pop(future)
        self.outcomes[job.vm.key] = future.result()
        self.slots.give_back(lease)
        self.here.subtract(self.limits[job.vm.key])
        self.blocked.clear()  # slots were freed: everything may be asked again
        self.claims.release_claim(job.wave, job.vm.key, self.owner)
        self.finished(len(self.outcomes), len(self.jobs))


def run_wave(
    wave: Wave,
    limits: dict[str, list[str]],
    caps: dict[str, int],
    start: Callable[[Job], PrefectFuture],
    finished: Callable[[int, int], None],
) -> dict[str, str]:
    """Run every job of the wave through ``start`` within this worker's ``in_flight`` and the shared ``caps``; each
    VM's outcome by its key (SourceVM.key)."""
    if not wave.jobs:
        return {}
    return WaveDispatcher(wave, limits, caps, start, finished).run()
