"""Host and datastore slots shared by every worker: Prefect global concurrency limits, taken without waiting.

Prefect's ``concurrency()`` sends every acquisition for one set of limits
through one queue per process, and inside task runs each request waits behind
the task runs' own state writes: measured on a Prefect test server, 2.07 s per
acquisition of which 0.24 s is the HTTP call (30 VMs, 10 threads, free slots).
And a SQLite server answers 503 to 58% of increments while a wave's task runs
write (its read-then-write transaction loses to theirs), which Prefect's client
retries after 2, 4, 8... s: some VMs waited 60 s for a free slot. So the
wave's dispatcher takes a VM's slots itself, one request each, before its
task starts, retrying a 503 within a quarter second; a refusal (423) means
"not now, start another VM". The request goes out past Prefect's client's
retry loop, which sleeps ~2 s after a 503 even with no retries allowed
(``_send_with_retry`` sleeps before it checks the count): in a 50-VM wave on
SQLite, 112 such 503s made a slot take last 3.7 s on average, up to 12.8 s.
Each lease is renewed while its VM runs; a killed worker's leases expire,
freeing its slots.
"""

from __future__ import annotations

import random
import threading
import time
from types import TracebackType
from uuid import UUID

import httpx
from prefect import get_client
from prefect.exceptions import ObjectAlreadyExists

LEASE_SECONDS = 60  # a killed worker frees its slots within this
BUSY_TRIES = 40  # 503s in a row before a take gives up: ~6 s of a server that cannot write
GONE_SECONDS = 120  # how long a take waits for a server that does not answer at all (restarting) before giving up


def set_limits(caps: dict[str, int]) -> None:
    """Each global concurrency limit (by name) with its cap, made or updated: every worker of a wave sets the same."""
    with get_client(sync_client=True) as client:
        for name in sorted(caps):
            try:
                client.upsert_global_concurrency_limit_by_name(name, caps[name])
            except ObjectAlreadyExists:  # another worker of the wave made it first: now it is an update
                client.upsert_global_concurrency_limit_by_name(name, caps[name])


class SharedSlots:
    """The slots this worker holds, one lease per running VM, renewed in the background."""

    def __init__(self, lease_seconds: float = LEASE_SECONDS):
        self.lease_seconds = lease_seconds
        self._held: set[UUID] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._client = get_client(sync_client=True)
        self._renewer = threading.Thread(target=self._renew, name="vmwave-slot-leases", daemon=True)

    def __enter__(self) -> "SharedSlots":
        self._client.__enter__()
        self._renewer.start()
        return self

    def __exit__(self, kind: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        self._renewer.join()
        for lease in list(self._held):
            self.give_back(lease)
        self._client.__exit__(kind, exc, tb)

    def take(self, names: list[str]) -> UUID | None:
        """One slot of each limit in ``names`` under one lease, or None when any of them is full."""
        busy, gone_until = 0, time.monotonic() + GONE_SECONDS
        while True:
            try:
                response = self._increment(names)
                break
            except httpx.HTTPStatusError as exc:
                if exc.response.status_code == 423:
                    return None
                busy += 1
                if exc.response.status_code != 503 or busy >= BUSY_TRIES:
                    raise
                time.sleep(random.uniform(0.05, 0.25))  # another writer won the server's database: ask again
            except httpx.TransportError:  # a connection dropped, or a server restarting: it comes back
                if time.monotonic() > gone_until:
                    raise
                time.sleep(random.uniform(0.5, 1.0))
        lease = UUID(response.json()["lease_id"])
        with self._lock:
            self._held.add(lease)
        return lease

    def _increment(self, names: list[str]) -> httpx.Response:
        """One request: Prefect's httpx client (its address, auth and TLS) without its retry loop."""
        http = self._client._client
        request = http.build_request(
            "POST",
            "/v2/concurrency_limits/increment-with-lease",
            json={"names": names, "slots": 1, "mode": "concurrency", "lease_duration": self.lease_seconds},
        )
        return httpx.Client.send(http, request).raise_for_status()

    def give_back(self, lease: UUID) -> None:
        """Release a lease; one the server cannot take back now (restarting) expires by itself within its term."""
        with self._lock:
            self._held.discard(lease)
        try:
            self._client.release_concurrency_slots_with_lease(lease)
        except httpx.TransportError:  # after the client's own retries
            pass

    def _renew(self) -> None:
        with get_client(sync_client=True) as client:
            while not self._stop.wait(self.lease_seconds / 3):
                with self._lock:
                    held = list(self._held)
                for lease in held:
                    try:
                        client.renew_concurrency_lease(lease, self.lease_seconds)
                    except httpx.HTTPError:  # released meanwhile, or the server blinked: the next round tries again
                        pass
